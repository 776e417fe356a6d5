//! The final report and the `--hist-out` files.

use std::time::Duration;

use anyhow::Result;

use xdptcp::output::OutputDir;
use xdptcp::state::State;
use xdptcp::stats::{DropReason, Latencies, Stats, write_reports};
use xdptcp::xdp::XdpCounters;
use xdptcp::xdp::server::Totals;

/// The `--hist-out` files: histograms plus a summary with every counter.
pub(crate) fn write_hist(
    dir: &OutputDir,
    lat: &Latencies,
    t: &Totals,
    xdp: &XdpCounters,
    elapsed: Duration,
) -> Result<()> {
    let app: serde_json::Map<String, serde_json::Value> = t
        .app
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).into()))
        .collect();
    let mut extra = t.stats.to_json();
    extra["app"] = serde_json::Value::Object(app);
    extra["rx_per_queue"] = t.rx_per_queue.clone().into();
    extra["memory"] = t.memory.to_json();
    extra["memory_peak"] = t.memory_peak.to_json();
    extra["xdp"] = xdp
        .fields()
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).into()))
        .collect::<serde_json::Map<_, _>>()
        .into();
    extra["elapsed_s"] = elapsed.as_secs_f64().into();
    Ok(write_reports(dir, lat, extra)?)
}

pub(crate) fn report(t: &Totals, xdp: &XdpCounters, elapsed: Duration) {
    let s: &Stats = &t.stats;
    eprintln!("== xdptcp final report ({:.1} s)", elapsed.as_secs_f64());
    eprintln!("{s}");
    let states: Vec<String> = State::ALL
        .iter()
        .map(|st| format!("{}={}", st.label(), s.in_state(*st)))
        .collect();
    eprintln!("states: {}", states.join(" "));
    let counters: Vec<String> = s
        .counters()
        .iter()
        .map(|(name, v)| format!("{name}={v}"))
        .collect();
    eprintln!("counters: {}", counters.join(" "));
    let drops: Vec<String> = DropReason::ALL
        .iter()
        .filter(|r| s.dropped(**r) > 0)
        .map(|r| format!("{}={}", r.label(), s.dropped(*r)))
        .collect();
    eprintln!(
        "drops: total={} {}",
        s.total_drops(),
        if drops.is_empty() {
            "none".to_string()
        } else {
            drops.join(" ")
        }
    );
    if !t.app.is_empty() {
        let app: Vec<String> = t.app.iter().map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!("app: {}", app.join(" "));
    }
    eprintln!("{xdp}");
    eprintln!("memory: {}", t.memory);
    eprintln!("memory at the most connections: {}", t.memory_peak);
    let per_queue: Vec<String> = t.rx_per_queue.iter().map(u64::to_string).collect();
    eprintln!("rx frames per queue: {}", per_queue.join(" "));
    let sockets: Vec<String> = t
        .socket
        .fields()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    eprintln!("sockets: {}", sockets.join(" "));
    let f = &t.frames;
    eprintln!(
        "frames: total={} free={} fill={} rx_held={} tx_pending={} tx_in_flight={} balanced={}",
        f.total, f.free, f.fill, f.rx_held, f.tx_pending, f.tx_in_flight, t.frames_balanced
    );
}
