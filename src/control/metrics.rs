//! Prometheus metrics: the text exposition format (version 0.0.4, encoded by the
//! `prometheus-client` crate) served on `GET /metrics` over the kernel's TCP, on a management
//! address that the XDP program does not steer.
//!
//! Every family is built from the workers' latest snapshots when a scrape arrives: engine
//! counters and drop reasons (label `reason`) and connections by state (label `state`), per
//! queue (label `queue`); AF_XDP socket counters and UMEM frame accounting per queue; the XDP
//! program's counters; the pcap capture's; the memory budget per queue (bytes counted, limit,
//! pressure); and the three latency histograms, as Prometheus histograms in seconds.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::control::clients::{ClientCounters, Clients};
use crate::control::{ServerInfo, frame_fields};
use crate::state::State;
use crate::stats::{DropReason, LatencyKind, Stats};
use crate::time::Instant;
use crate::xdp::Server;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency histograms' buckets, in seconds: 1-2-5 steps from 1 µs to 10 s.
const LATENCY_BOUNDS_S: [f64; 22] = [
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1,
    0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Something else listens there.
    #[error(
        "metrics address {addr} is already in use (another exporter, or another xdptcp?): {source}; pick a free one with --metrics ADDR:PORT"
    )]
    InUse {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The address is not one of this host (or of this network namespace).
    #[error(
        "metrics address {addr} is not an address of this host: {source}; use one it has (e.g. 127.0.0.1:9100 or a management NIC's)"
    )]
    NotLocal {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The address is one the XDP program steers to the engine: the kernel would never see it.
    #[error(
        "metrics address {addr} is served by the engine (port {port} on the AF_XDP interface); use a management address or another port"
    )]
    Served {
        /// The address asked for.
        addr: SocketAddr,
        /// The served port.
        port: u16,
    },
    /// Any other failure.
    #[error("binding the metrics address {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// The `/metrics` listener on the kernel's TCP and the scrapes in progress (each has
/// [`crate::control::clients::CLIENT_DEADLINE`] for its request and answer).
#[derive(Debug)]
pub struct MetricsEndpoint {
    listener: TcpListener,
    clients: Clients<TcpStream>,
}

impl MetricsEndpoint {
    /// Listens on `addr`, refusing one of the `served` endpoints (whose segments the XDP
    /// program takes away from the kernel). Loopback addresses never cross the served NIC.
    pub fn bind(
        addr: SocketAddr,
        served: &[(Option<IpAddr>, u16)],
    ) -> Result<MetricsEndpoint, MetricsError> {
        let clash = served.iter().find(|(a, port)| {
            *port == addr.port() && !addr.ip().is_loopback() && a.is_none_or(|a| a == addr.ip())
        });
        if let Some((_, port)) = clash {
            return Err(MetricsError::Served { addr, port: *port });
        }
        let listener = TcpListener::bind(addr).map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse => MetricsError::InUse { addr, source },
            io::ErrorKind::AddrNotAvailable => MetricsError::NotLocal { addr, source },
            _ => MetricsError::Bind { addr, source },
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| MetricsError::Bind { addr, source })?;
        Ok(MetricsEndpoint {
            listener,
            clients: Clients::new("metrics endpoint", request_head_complete),
        })
    }

    /// The address listened on (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Moves the scrapes on as far as their sockets allow, without waiting: takes in new ones,
    /// answers each complete request with the exposition `render` builds, closes those done
    /// or past their deadline. Returns how many are still in progress.
    pub fn serve_pending(&mut self, now: Instant, render: impl Fn() -> String) -> usize {
        self.clients
            .poll(now, &self.listener, |head| answer(head, &render))
    }

    /// What became of the scrapes so far.
    pub fn counters(&self) -> ClientCounters {
        self.clients.counters()
    }
}

/// Whether an HTTP request head is complete (an empty line ends it).
fn request_head_complete(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n")
}

/// The answer to a request head (`/metrics`, a 404 or a 405), to be sent before closing.
fn answer(head: &[u8], render: &impl Fn() -> String) -> Vec<u8> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.trim_ascii().split(|&b| b == b' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next());
    let path = target.map(|t| t.split(|&b| b == b'?').next().unwrap_or_default());
    let (status, content_type, body) = match (method, path) {
        (b"GET" | b"HEAD", Some(b"/metrics")) => ("200 OK", CONTENT_TYPE, render()),
        (b"GET" | b"HEAD", Some(_)) => (
            "404 Not Found",
            "text/plain",
            "xdptcp: the metrics are at /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "xdptcp: GET /metrics\n".to_string(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nServer: xdptcp\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != b"HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    response
}

/// The exposition of a running server's metrics.
pub fn render(server: &Server, info: &ServerInfo) -> String {
    let mut families = Families::default();
    let mode = server
        .xdp_mode()
        .map(|m| format!("{m:?}").to_lowercase())
        .unwrap_or_default();
    families.gauge(
        "xdptcp_info",
        "The server: version, interface, application, XDP mode and bind mode (always 1).",
        vec![(
            vec![
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("iface", server.interface().name.clone()),
                ("app", info.app.clone()),
                ("xdp_mode", mode),
                (
                    "bind",
                    if server.zero_copy() {
                        "zero-copy"
                    } else {
                        "copy"
                    }
                    .to_string(),
                ),
            ],
            Value::Int(1),
        )],
    );
    families.gauge(
        "xdptcp_uptime_seconds",
        "Seconds since the server started.",
        vec![(Vec::new(), Value::Float(info.uptime.as_secs_f64()))],
    );
    if let Some(epoch) = server.cookie_epoch() {
        families.gauge(
            "xdptcp_cookie_epoch",
            "The SYN-cookie key rotation epoch in use (the wall clock over --cookie-rotation-secs).",
            vec![(Vec::new(), Value::Int(epoch))],
        );
    }
    families.gauge(
        "xdptcp_xdp_tx_fallback",
        "1 while SYNs go to the workers because the driver drops the XDP program's SYN-ACKs.",
        vec![(Vec::new(), Value::Int(u64::from(info.xdp_tx_fallback)))],
    );
    let clients = info
        .clients
        .iter()
        .flat_map(|(endpoint, c)| {
            c.fields().map(|(outcome, n)| {
                (
                    vec![
                        ("endpoint", endpoint.to_string()),
                        ("outcome", outcome.to_string()),
                    ],
                    Value::Int(n),
                )
            })
        })
        .collect();
    families.counter(
        "xdptcp_control_clients",
        "Control-plane clients (scrapes, stats queries) by endpoint and outcome: answered, timed_out (closed at the 2 s deadline), failed.",
        clients,
    );
    add_queue_families(&mut families, server);
    if let Ok(xdp) = server.xdp_counters() {
        for (name, v) in xdp.fields() {
            families.counter(
                &format!("xdptcp_xdp_{name}"),
                &format!("The XDP program's `{name}` counter (all CPUs)."),
                vec![(Vec::new(), Value::Int(v))],
            );
        }
    }
    if let Some(c) = server.capture() {
        let w = c.totals();
        families.counter(
            "xdptcp_pcap_written_frames",
            "Frames written to the pcap file.",
            vec![(Vec::new(), Value::Int(w.written_frames))],
        );
        families.counter(
            "xdptcp_pcap_written_bytes",
            "Bytes of the pcap file, headers included.",
            vec![(Vec::new(), Value::Int(w.written_bytes))],
        );
        families.gauge(
            "xdptcp_pcap_limit_reached",
            "1 once the --pcap-limit is reached.",
            vec![(Vec::new(), Value::Int(u64::from(w.limit_reached)))],
        );
    }
    for kind in LatencyKind::ALL {
        families.histograms.push(histogram(
            kind,
            server.latencies().get(kind),
            &format!("{} latency, in seconds.", kind_help(kind)),
        ));
    }
    families.encode()
}

/// The per-queue families: engine counters, drops by reason, connections by state, socket
/// counters, UMEM frames by place, application and capture counters.
fn add_queue_families(families: &mut Families, server: &Server) {
    let snaps: Vec<_> = server.snapshots().collect();
    let q = |queue: u32| vec![("queue", queue.to_string())];
    let per_queue = |value: &dyn Fn(&crate::xdp::Snapshot) -> u64| {
        snaps
            .iter()
            .map(|s| (q(s.queue), Value::Int(value(s))))
            .collect::<Vec<_>>()
    };
    for (i, (name, _)) in Stats::default().counters().into_iter().enumerate() {
        families.counter(
            &format!("xdptcp_{name}"),
            Stats::COUNTER_HELP[i].1.trim(),
            per_queue(&|s| s.stats.counters()[i].1),
        );
    }
    let mut drops = Vec::new();
    let mut states = Vec::new();
    for s in &snaps {
        for r in DropReason::ALL {
            let mut labels = q(s.queue);
            labels.push(("reason", r.label().to_string()));
            drops.push((labels, Value::Int(s.stats.dropped(*r))));
        }
        for st in State::ALL {
            let mut labels = q(s.queue);
            labels.push(("state", st.label().to_string()));
            states.push((labels, Value::Int(s.stats.in_state(*st))));
        }
    }
    families.counter(
        "xdptcp_drops",
        "Received frames dropped without being acted on, by reason.",
        drops,
    );
    families.gauge("xdptcp_connections", "Live connections, by state.", states);
    for (i, (name, _)) in crate::xdp::socket::SocketCounters::default()
        .fields()
        .into_iter()
        .enumerate()
    {
        families.counter(
            &format!("xdptcp_socket_{name}"),
            &format!("AF_XDP socket counter `{name}`."),
            per_queue(&|s| s.socket.fields()[i].1),
        );
    }
    let mut places = Vec::new();
    for s in &snaps {
        for (place, n) in frame_fields(&s.frames).into_iter().skip(1) {
            let mut labels = q(s.queue);
            labels.push(("place", place.to_string()));
            places.push((labels, Value::Int(n)));
        }
    }
    families.gauge(
        "xdptcp_umem_frames",
        "UMEM frames by where they are (free list, fill/RX ring, held, pending TX, TX/completion ring).",
        places,
    );
    families.gauge(
        "xdptcp_umem_frames_configured",
        "UMEM frames of the queue's socket.",
        per_queue(&|s| s.frames.total),
    );
    families.gauge(
        "xdptcp_umem_balanced",
        "1 when every UMEM frame is in exactly one place.",
        per_queue(&|s| u64::from(s.frames.balanced())),
    );
    let app_names: Vec<&'static str> = snaps
        .first()
        .map(|s| s.app.iter().map(|(n, _)| *n).collect())
        .unwrap_or_default();
    for name in app_names {
        families.counter(
            &format!("xdptcp_app_{name}"),
            &format!("The application's `{name}` counter."),
            per_queue(&|s| {
                s.app
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(0, |(_, v)| *v)
            }),
        );
    }
    add_memory_families(families, server);
    if server.capture().is_some() {
        families.counter(
            "xdptcp_pcap_queued",
            "Frames the worker copied into the capture queue.",
            per_queue(&|s| s.capture.queued),
        );
        families.counter(
            "xdptcp_pcap_dropped",
            "Frames the worker could not capture because the queue was full.",
            per_queue(&|s| s.capture.dropped),
        );
    }
}

/// One figure of a queue's memory budget.
type MemoryField = fn(&crate::stats::Memory) -> u64;

/// The memory budget per queue: buffer bytes counted, the limit, and the pressure state.
fn add_memory_families(families: &mut Families, server: &Server) {
    let per_queue = |value: &dyn Fn(&crate::stats::Memory) -> u64| {
        server
            .queue_memory()
            .iter()
            .enumerate()
            .map(|(q, m)| (vec![("queue", q.to_string())], Value::Int(value(m))))
            .collect::<Vec<_>>()
    };
    let gauges: [(&str, &str, MemoryField); 4] = [
        (
            "xdptcp_memory_buffer_bytes",
            "Connection buffers (send, receive, reassembly, SACK scoreboard; capacities) counted against the memory budget.",
            |m| m.budget_used,
        ),
        (
            "xdptcp_memory_limit_bytes",
            "The memory budget (--memory-limit, divided among the queues).",
            |m| m.budget_limit,
        ),
        (
            "xdptcp_memory_pressure",
            "1 while under memory pressure (windows and send buffers held back, out-of-order queues pruned).",
            |m| m.under_pressure,
        ),
        (
            "xdptcp_memory_at_limit",
            "1 while at the memory limit (no buffer grows, new connections refused).",
            |m| m.at_limit,
        ),
    ];
    for (name, help, value) in gauges {
        families.gauge(name, help, per_queue(&value));
    }
}

fn kind_help(kind: LatencyKind) -> &'static str {
    match kind {
        LatencyKind::Handshake => "SYN to ESTABLISHED",
        LatencyKind::Request => "Request arrival to response handed to the TX ring",
        LatencyKind::RxBatch => "RX batch (taken from the RX ring to replies on the TX ring)",
        LatencyKind::SendLag => {
            "open-loop send lag (a request's intended time to its connection's wake)"
        }
    }
}

/// A HdrHistogram (nanoseconds) as Prometheus buckets (seconds). Each recorded value is counted
/// in the first bucket whose bound is at least the highest value equivalent to it.
fn histogram(kind: LatencyKind, h: &hdrhistogram::Histogram<u64>, help: &str) -> HistogramFamily {
    let mut buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_S.iter().map(|b| (*b, 0)).collect();
    let mut sum_ns = 0f64;
    for v in h.iter_recorded() {
        let ns = v.value_iterated_to();
        sum_ns += ns as f64 * v.count_at_value() as f64;
        let s = ns as f64 / 1e9;
        if let Some(b) = buckets.iter_mut().find(|(bound, _)| s <= *bound) {
            b.1 += v.count_at_value();
        }
    }
    HistogramFamily {
        name: format!("xdptcp_{}_latency_seconds", kind.label()),
        help: help.to_string(),
        sum: sum_ns / 1e9,
        count: h.len(),
        buckets,
    }
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: MetricType,
    samples: Vec<(Labels, Value)>,
}

#[derive(Debug)]
struct HistogramFamily {
    name: String,
    help: String,
    sum: f64,
    count: u64,
    /// (upper bound, count in this bucket alone); +Inf is implied.
    buckets: Vec<(f64, u64)>,
}

/// One scrape's metric families, owned, encoded through a [`Registry`] collector.
#[derive(Debug, Default)]
struct Families {
    families: Vec<Family>,
    histograms: Vec<HistogramFamily>,
}

impl Families {
    fn counter(&mut self, name: &str, help: &str, samples: Vec<(Labels, Value)>) {
        self.push(name, help, MetricType::Counter, samples);
    }

    fn gauge(&mut self, name: &str, help: &str, samples: Vec<(Labels, Value)>) {
        self.push(name, help, MetricType::Gauge, samples);
    }

    fn push(&mut self, name: &str, help: &str, kind: MetricType, samples: Vec<(Labels, Value)>) {
        self.families.push(Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            samples,
        });
    }

    fn encode(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            let mut metric = encoder.encode_descriptor(&f.name, &f.help, None, f.kind)?;
            for (labels, value) in &f.samples {
                let mut sample = metric.encode_family(labels)?;
                match (f.kind, value) {
                    (MetricType::Counter, Value::Int(v)) => {
                        sample.encode_counter::<NoLabelSet, _, u64>(v, None)?
                    }
                    (MetricType::Counter, Value::Float(v)) => {
                        sample.encode_counter::<NoLabelSet, _, f64>(v, None)?
                    }
                    (_, Value::Int(v)) => sample.encode_gauge(v)?,
                    (_, Value::Float(v)) => sample.encode_gauge(v)?,
                }
            }
        }
        for h in &self.histograms {
            let mut metric =
                encoder.encode_descriptor(&h.name, &h.help, None, MetricType::Histogram)?;
            metric.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn families_encode_as_prometheus_text_with_labels_and_total_suffixes() {
        let mut f = Families::default();
        f.counter(
            "xdptcp_drops",
            "Dropped.",
            vec![(
                vec![("queue", "0".into()), ("reason", "bad_checksum".into())],
                Value::Int(3),
            )],
        );
        f.gauge(
            "xdptcp_uptime_seconds",
            "Up.",
            vec![(Vec::new(), Value::Float(1.5))],
        );
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        h.record(1_500).unwrap(); // 1.5 µs
        h.record(3_000_000).unwrap(); // 3 ms
        h.record(30_000_000_000).unwrap(); // 30 s: beyond the last bound
        f.histograms
            .push(histogram(LatencyKind::Request, &h, "Request latency."));
        let text = f.encode();
        assert!(
            text.contains("# TYPE xdptcp_drops_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("xdptcp_drops_total{queue=\"0\",reason=\"bad_checksum\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("xdptcp_uptime_seconds 1.5\n"), "{text}");
        assert!(
            text.contains("# TYPE xdptcp_request_latency_seconds histogram\n"),
            "{text}"
        );
        let bucket = |le: &str| {
            let key = format!("xdptcp_request_latency_seconds_bucket{{le=\"{le}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&key))
                .unwrap_or_else(|| panic!("no bucket {le}: {text}"))
                .parse::<u64>()
                .unwrap()
        };
        assert_eq!(bucket("1e-06"), 0);
        assert_eq!(bucket("2e-06"), 1);
        assert_eq!(bucket("0.002"), 1);
        assert_eq!(bucket("0.005"), 2);
        assert_eq!(bucket("10"), 2);
        assert_eq!(bucket("+Inf"), 3);
        assert!(
            text.contains("xdptcp_request_latency_seconds_count 3\n"),
            "{text}"
        );
    }

    #[test]
    fn a_served_endpoint_is_refused_but_loopback_on_the_same_port_is_fine() {
        let served = [(Some(IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9))), 18080)];
        let addr: SocketAddr = "10.9.9.9:18080".parse().unwrap();
        let err = MetricsEndpoint::bind(addr, &served).unwrap_err();
        assert!(matches!(err, MetricsError::Served { .. }), "{err}");
        let any = [(None, 18080)];
        let err = MetricsEndpoint::bind("10.9.9.8:18080".parse().unwrap(), &any).unwrap_err();
        assert!(err.to_string().contains("served by the engine"), "{err}");
        let ok = MetricsEndpoint::bind("127.0.0.1:0".parse().unwrap(), &any).unwrap();
        assert!(ok.local_addr().unwrap().ip().is_loopback());
    }

    #[test]
    fn an_address_in_use_is_an_error_naming_it_and_the_fix() {
        let first = MetricsEndpoint::bind("127.0.0.1:0".parse().unwrap(), &[]).unwrap();
        let addr = first.local_addr().unwrap();
        let err = MetricsEndpoint::bind(addr, &[]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, MetricsError::InUse { .. }), "{msg}");
        assert!(
            msg.contains(&addr.to_string()) && msg.contains("--metrics"),
            "{msg}"
        );
    }

    #[test]
    fn a_scrape_gets_the_rendered_text_and_other_paths_get_404() {
        use std::io::{Read, Write};
        let mut endpoint = MetricsEndpoint::bind("127.0.0.1:0".parse().unwrap(), &[]).unwrap();
        let addr = endpoint.local_addr().unwrap();
        let get = |path: &'static str| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                out
            })
        };
        for (path, want) in [("/metrics?x=1", "200 OK"), ("/nope", "404 Not Found")] {
            let client = get(path);
            let answered = endpoint.counters().answered;
            for _ in 0..500 {
                endpoint.serve_pending(crate::xdp::sys::monotonic_now(), || "up 1\n".to_string());
                if endpoint.counters().answered > answered {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let out = client.join().unwrap();
            assert!(out.starts_with(&format!("HTTP/1.1 {want}\r\n")), "{out}");
            if want == "200 OK" {
                assert!(out.contains(CONTENT_TYPE), "{out}");
                assert!(out.ends_with("\r\n\r\nup 1\n"), "{out}");
            }
        }
    }
}
