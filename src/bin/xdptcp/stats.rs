//! `xdptcp stats`: asks a running server over its stats socket and prints connections by state
//! (like `ss -s`) and counters (like `nstat`), or the whole status as JSON; `--watch SECS`
//! prints what moved every SECS seconds, as per-second rates.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use xdptcp::control::stats_socket;

#[derive(clap::Args, Debug)]
pub(crate) struct StatsArgs {
    /// The interface the server serves (its socket: /run/xdptcp/IFACE.sock, or in
    /// $XDPTCP_STATS_DIR). Default: the only server running (sockets left by servers that are
    /// gone are removed).
    #[arg(long, conflicts_with = "socket")]
    iface: Option<String>,
    /// The server's stats socket, as it printed at start (`--stats-socket` of `serve`).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the whole status as JSON (one object per line with --watch).
    #[arg(long)]
    json: bool,
    /// Ask again every SECS seconds and print the counters that moved, per second.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    watch: Option<u64>,
    /// With --watch: stop after this many reports.
    #[arg(long, requires = "watch")]
    count: Option<u64>,
    /// Also print the counters that are zero.
    #[arg(long, short)]
    all: bool,
}

pub(crate) fn stats(args: StatsArgs) -> Result<()> {
    let path = socket_path(&args)?;
    let mut previous: Option<(Instant, Value)> = None;
    let mut reports = 0u64;
    loop {
        let status = stats_socket::query(&path)?;
        let at = Instant::now();
        if args.json {
            println!("{status}");
        } else {
            let since = previous.as_ref().map(|(t, v)| (at.duration_since(*t), v));
            print!("{}", render(&status, since, args.all));
        }
        reports += 1;
        let Some(secs) = args.watch else {
            return Ok(());
        };
        if args.count.is_some_and(|n| reports >= n) {
            return Ok(());
        }
        previous = Some((at, status));
        std::thread::sleep(Duration::from_secs(secs));
    }
}

/// The socket to ask: `--socket`, `--iface`'s default, or the only live one in the socket
/// directory (stale ones, left by servers that are gone, are removed on the way).
fn socket_path(args: &StatsArgs) -> Result<PathBuf> {
    if let Some(p) = &args.socket {
        return Ok(p.clone());
    }
    if let Some(iface) = &args.iface {
        return Ok(stats_socket::default_path(iface));
    }
    let dir = stats_socket::default_dir();
    let mut found = stats_socket::discover(&dir)
        .with_context(|| format!("looking for stats sockets in {}", dir.display()))?;
    for p in &found.removed {
        eprintln!(
            "xdptcp stats: removed {}: no server listened on it (left by one that is gone)",
            p.display()
        );
    }
    match found.live.len() {
        0 => bail!(
            "no xdptcp server is running: no stats socket in {}; start one with `xdptcp serve --iface IFACE ...` (or give --socket PATH)",
            dir.display()
        ),
        1 => Ok(found.live.remove(0)),
        _ => bail!(
            "several servers run ({}); say which with --iface IFACE or --socket PATH",
            found
                .live
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The text report: a header, the `ss -s`-style state line, then `nstat`-style counters (with
/// `since`, only those that moved, as the change and the rate per second).
fn render(status: &Value, since: Option<(Duration, &Value)>, all: bool) -> String {
    let mut out = String::new();
    let total = &status["total"];
    out += &format!(
        "xdptcp {} (pid {}) on {}: {} on {}, {} queue(s), XDP {}, {}, up {:.1} s\n",
        str_of(&status["version"]),
        status["pid"],
        str_of(&status["iface"]),
        str_of(&status["app"]),
        status["listeners"]
            .as_array()
            .map(|l| l.iter().map(str_of).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        status["queues"],
        str_of(&status["xdp_mode"]),
        if status["zero_copy"] == true {
            "zero-copy"
        } else {
            "copy mode"
        },
        status["uptime_s"].as_f64().unwrap_or(0.0),
    );
    let states: Vec<(&str, u64)> = status["state_order"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s, total["states"][s].as_u64().unwrap_or(0)))
        .collect();
    let connections: u64 = states
        .iter()
        .filter(|(s, _)| *s != "listen")
        .map(|(_, n)| n)
        .sum();
    let list: Vec<String> = states.iter().map(|(s, n)| format!("{s} {n}")).collect();
    out += &format!(
        "Total: {connections}\nTCP:   {connections} ({})\n",
        list.join(", ")
    );
    let frames = &total["frames"];
    out += &format!(
        "UMEM:  {} frames (free {}, fill {}, rx_held {}, tx_pending {}, tx_in_flight {})\n",
        frames["total"],
        frames["free"],
        frames["fill"],
        frames["rx_held"],
        frames["tx_pending"],
        frames["tx_in_flight"]
    );
    let memory = &total["memory"];
    if memory.is_object() {
        out += &format!(
            "Memory: {} connections, {:.0} B each in use, {:.0} B each allocated; {} TIME-WAIT \
             entries, {} B (at the most connections, {}: {:.0} B each in use)\n",
            memory["connections"],
            memory["bytes_per_connection"].as_f64().unwrap_or(0.0),
            memory["allocated_per_connection"].as_f64().unwrap_or(0.0),
            memory["time_wait"],
            memory["time_wait_bytes"],
            total["memory_peak"]["connections"],
            total["memory_peak"]["bytes_per_connection"]
                .as_f64()
                .unwrap_or(0.0),
        );
    }
    let limit = memory["budget_limit"].as_u64().unwrap_or(0);
    if limit > 0 {
        let used = memory["budget_used"].as_u64().unwrap_or(0);
        out += &format!(
            "Buffers: {used} B of a {limit} B memory budget ({:.1} %); {} of {} queue(s) under \
             memory pressure, {} at the limit\n",
            used as f64 * 100.0 / limit as f64,
            memory["under_pressure"],
            memory["engines"],
            memory["at_limit"],
        );
    }
    let now = counters(status);
    match since {
        None => {
            out += &format!("#{:<38}{:>16}\n", "xdptcp", "value");
            for (name, v) in &now {
                if all || *v > 0 {
                    out += &format!("{name:<39}{v:>16}\n");
                }
            }
        }
        Some((elapsed, before)) => {
            let before = counters(before);
            let secs = elapsed.as_secs_f64().max(1e-3);
            out += &format!(
                "#{:<38}{:>16}{:>14}   (over {secs:.1} s)\n",
                "xdptcp", "delta", "per second"
            );
            for (name, v) in &now {
                let old = before
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(0, |(_, v)| *v);
                let delta = v.saturating_sub(old);
                if all || delta > 0 {
                    out += &format!("{name:<39}{delta:>16}{:>14.1}\n", delta as f64 / secs);
                }
            }
        }
    }
    out
}

/// Every counter of the status, nstat-style names: engine counters, `drop_<reason>`,
/// `xsk_<counter>`, `xdp_<counter>`, `app_<counter>`, `pcap_<counter>`.
fn counters(status: &Value) -> Vec<(String, u64)> {
    let total = &status["total"];
    let mut out = Vec::new();
    let mut add = |prefix: &str, obj: &Value| {
        for (k, v) in obj.as_object().into_iter().flatten() {
            if let Some(n) = v.as_u64() {
                out.push((format!("{prefix}{k}"), n));
            }
        }
    };
    add("", &total["counters"]);
    add("drop_", &total["drops"]);
    add("xsk_", &total["socket"]);
    add("xdp_", &status["xdp"]);
    add("app_", &total["app"]);
    if status["capture"].is_object() {
        add("pcap_", &status["capture"]);
    }
    out
}

fn str_of(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(established: u64, rx: u64) -> Value {
        serde_json::json!({
            "version": "0.1.0", "pid": 42, "iface": "veth0", "app": "http",
            "listeners": ["10.0.0.1:8080"], "queues": 1, "xdp_mode": "native",
            "zero_copy": false, "uptime_s": 3.0,
            "state_order": ["listen", "established", "time_wait"],
            "total": {
                "states": { "listen": 1, "established": established, "time_wait": 2 },
                "counters": { "rx_frames": rx, "resets_sent": 0 },
                "drops": { "bad_checksum": 1 },
                "socket": { "rx_frames": rx },
                "frames": { "total": 8192, "free": 100, "fill": 8092, "rx_held": 0,
                            "tx_pending": 0, "tx_in_flight": 0 },
                "app": { "requests": 5 },
            },
            "xdp": { "redirected": rx },
            "capture": null,
        })
    }

    #[test]
    fn the_report_reads_like_ss_s_then_nstat() {
        let text = render(&status(10, 500), None, false);
        assert!(
            text.starts_with("xdptcp 0.1.0 (pid 42) on veth0: http on 10.0.0.1:8080"),
            "{text}"
        );
        assert!(
            text.contains("\nTotal: 12\nTCP:   12 (listen 1, established 10, time_wait 2)\n"),
            "{text}"
        );
        assert!(text.contains("\nrx_frames "), "{text}");
        assert!(text.contains("\ndrop_bad_checksum "), "{text}");
        assert!(text.contains("\nxdp_redirected "), "{text}");
        assert!(
            !text.contains("resets_sent"),
            "zeros only with --all: {text}"
        );
        assert!(render(&status(10, 500), None, true).contains("resets_sent"));
    }

    #[test]
    fn the_report_gives_memory_per_connection_when_the_server_measured_it() {
        let mut s = status(10, 500);
        assert!(!render(&s, None, false).contains("Memory:"));
        let m = xdptcp::stats::Memory {
            connections: 10,
            connection_bytes: 6000,
            allocated_bytes: 9000,
            time_wait: 2,
            time_wait_bytes: 136,
            buffer_bytes: 2048,
            budget_used: 2048,
            budget_limit: 8192,
            engines: 2,
            under_pressure: 1,
            at_limit: 0,
        };
        s["total"]["memory"] = m.to_json();
        s["total"]["memory_peak"] = m.to_json();
        let text = render(&s, None, false);
        assert!(
            text.contains(
                "\nMemory: 10 connections, 600 B each in use, 900 B each allocated; 2 TIME-WAIT \
                 entries, 136 B (at the most connections, 10: 600 B each in use)\n\
                 Buffers: 2048 B of a 8192 B memory budget (25.0 %); 1 of 2 queue(s) under \
                 memory pressure, 0 at the limit\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn watching_prints_what_moved_as_rates() {
        let before = status(10, 500);
        let text = render(
            &status(11, 1500),
            Some((Duration::from_secs(2), &before)),
            false,
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("rx_frames "))
            .expect(&text);
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields, ["rx_frames", "1000", "500.0"], "{text}");
        assert!(!text.contains("drop_bad_checksum"), "unchanged: {text}");
    }
}
