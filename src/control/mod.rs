//! The control plane's windows on a running server, served from the control thread (never a
//! worker) over the kernel's own sockets:
//!
//! - [`metrics`]: Prometheus text exposition on `/metrics`, over kernel TCP on a management
//!   address;
//! - [`stats_socket`]: the status as JSON over a unix socket, what `xdptcp stats` reads;
//! - [`cookie_secret`]: a SYN-cookie secret file shared by several hosts, watched for changes;
//! - [`control_loop`]: the duties kept to their period (cookie keys, addresses, the secret
//!   file, [`xdp_tx`]'s fallback when the driver drops the XDP program's SYN-ACKs).
//!
//! Both are polled without blocking ([`clients`]): the control thread calls `serve_pending`
//! between two collections of worker snapshots, each request is answered from the latest
//! snapshots, and no client can hold the thread longer than a non-blocking read or write.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::state::State;
use crate::xdp::Server;

pub mod clients;
pub mod control_loop;
pub mod cookie_secret;
pub mod metrics;
pub mod stats_socket;
pub mod xdp_tx;

/// What the control thread knows about the server beyond its snapshots.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    /// How long the server has been running.
    pub uptime: Duration,
    /// The application served.
    pub app: String,
    /// The stats socket, if any.
    pub stats_socket: Option<PathBuf>,
    /// The metrics address, if any.
    pub metrics: Option<std::net::SocketAddr>,
    /// Whether SYNs go to the workers because the driver drops the XDP program's SYN-ACKs
    /// ([`xdp_tx`]).
    pub xdp_tx_fallback: bool,
    /// What became of the control-plane clients, by endpoint (`metrics`, `stats_socket`).
    pub clients: Vec<(&'static str, clients::ClientCounters)>,
}

/// The whole status of a running server as one JSON object: who it is, connections by state,
/// engine counters and drop reasons (added up and per queue), socket counters, UMEM frame
/// accounting, memory per connection (now and at the most connections), XDP counters, the
/// pcap capture, and latency summaries.
pub fn status_json(server: &Server, info: &ServerInfo) -> Value {
    let t = server.totals();
    let mut total = t.stats.to_json();
    total["socket"] = socket_json(&t.socket);
    total["frames"] = frames_json(&t.frames);
    total["app"] = pairs_json(&t.app);
    total["memory"] = t.memory.to_json();
    total["memory_peak"] = t.memory_peak.to_json();
    let queues: Vec<Value> = server
        .snapshots()
        .map(|s| {
            let mut q = s.stats.to_json();
            q["queue"] = s.queue.into();
            q["socket"] = socket_json(&s.socket);
            q["frames"] = frames_json(&s.frames);
            q["frames_balanced"] = s.frames.balanced().into();
            q["app"] = pairs_json(&s.app);
            q["capture"] = json!({ "queued": s.capture.queued, "dropped": s.capture.dropped });
            q
        })
        .collect();
    let xdp = server
        .xdp_counters()
        .map(|x| pairs_json(&x.fields()))
        .unwrap_or(Value::Null);
    let capture = server.capture().map(|c| {
        let w = c.totals();
        json!({
            "path": c.path().display().to_string(),
            "written_frames": w.written_frames,
            "written_bytes": w.written_bytes,
            "limit_reached": w.limit_reached,
            "dropped": t.capture.dropped,
        })
    });
    let listeners: Vec<String> = server
        .listeners()
        .iter()
        .map(|(addr, port)| match addr {
            Some(a) => std::net::SocketAddr::new(*a, *port).to_string(),
            None => format!("*:{port}"),
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "iface": server.interface().name,
        "listeners": listeners,
        "app": info.app,
        "queues": server.workers(),
        "xdp_mode": server.xdp_mode().map(|m| format!("{m:?}").to_lowercase()),
        "zero_copy": server.zero_copy(),
        "multi_buffer": server.multi_buffer(),
        "uptime_s": info.uptime.as_secs_f64(),
        "stats_socket": info.stats_socket.as_ref().map(|p| p.display().to_string()),
        "metrics": info.metrics.map(|a| a.to_string()),
        "cookie_epoch": server.cookie_epoch(),
        "xdp_tx_fallback": info.xdp_tx_fallback,
        "control_clients": clients_json(&info.clients),
        "total": total,
        "per_queue": queues,
        "xdp": xdp,
        "capture": capture,
        "latency": server.latencies().summary_json(),
        "state_order": State::ALL.iter().map(|s| s.label()).collect::<Vec<_>>(),
    })
}

fn clients_json(clients: &[(&'static str, clients::ClientCounters)]) -> Value {
    Value::Object(
        clients
            .iter()
            .map(|(endpoint, c)| ((*endpoint).to_string(), pairs_json(&c.fields())))
            .collect(),
    )
}

fn pairs_json(pairs: &[(&'static str, u64)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).into()))
            .collect(),
    )
}

fn socket_json(s: &crate::xdp::socket::SocketCounters) -> Value {
    pairs_json(&s.fields())
}

fn frames_json(f: &crate::xdp::FrameAccount) -> Value {
    pairs_json(&frame_fields(f))
}

/// Where the UMEM frames are, as (place, frames), `total` first.
pub(crate) fn frame_fields(f: &crate::xdp::FrameAccount) -> [(&'static str, u64); 6] {
    [
        ("total", f.total),
        ("free", f.free),
        ("fill", f.fill),
        ("rx_held", f.rx_held),
        ("tx_pending", f.tx_pending),
        ("tx_in_flight", f.tx_in_flight),
    ]
}
