//! `xdptcp load`: HTTP connect-close or keep-alive load, or a spoofed SYN flood, from our own
//! engine over AF_XDP.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant as StdInstant};

use anyhow::{Context, Result};
use clap::ValueEnum;

use xdptcp::app::http_client::{ClientMode, HttpClient};
use xdptcp::load::{LoadConfig, LoadGen, LoadMode};
use xdptcp::tcp::{Config, Engine};
use xdptcp::xdp::server::Totals;
use xdptcp::xdp::sys::{self, Interface};
use xdptcp::xdp::{Control, Server, ServerConfig, SynAckTemplate, XskConfig};

use crate::report::{report, write_hist};
use crate::{
    BindArg, Cores, ModeArg, STOP, bind_of, install_signal_handlers, mode_of, parse_cores,
};

#[derive(clap::Args, Debug)]
pub(crate) struct LoadArgs {
    /// The interface to send from (its IPv4 address is our source address).
    #[arg(long)]
    iface: String,
    /// The server, IPv4 address and port.
    #[arg(long)]
    target: std::net::SocketAddr,
    /// What to do.
    #[arg(long, value_enum, default_value_t = LoadModeArg::ConnectClose)]
    mode: LoadModeArg,
    /// connect-close: connections in flight at once.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// keepalive: connections kept open.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// keepalive: requests per connection before it closes.
    #[arg(long = "requests-per-conn", default_value_t = 1_000_000)]
    requests_per_conn: u64,
    /// synflood: SYNs per second.
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// synflood: spoofed sources are random hosts of this IPv4 prefix (keep it to test
    /// addresses of your own topology).
    #[arg(long = "flood-sources", value_parser = parse_prefix, default_value = "198.18.0.0/15")]
    flood_sources: (std::net::Ipv4Addr, u8),
    /// Stop opening after this many seconds (connections in flight get 3 s to finish).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Stop opening after this many connections (or SYNs).
    #[arg(long = "max-conns", default_value_t = u64::MAX)]
    max_conns: u64,
    /// Our source ports, e.g. 1024-32767: keep them outside the kernel's ephemeral range.
    #[arg(long, value_parser = parse_ports, default_value = "1024-32767")]
    ports: std::ops::RangeInclusive<u16>,
    /// The next hop's MAC (default: the kernel's neighbour entry for the target, ARPing if
    /// needed).
    #[arg(long = "next-hop", value_parser = parse_mac)]
    next_hop: Option<[u8; 6]>,
    /// The request path.
    #[arg(long, default_value = "/")]
    path: String,
    /// The core to pin the generator to.
    #[arg(long, value_parser = parse_cores)]
    cores: Option<Cores>,
    /// Write the result as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Write latency histograms (.hgrm, .svg) and summary.json here.
    #[arg(long = "hist-out")]
    hist_out: Option<std::path::PathBuf>,
    /// Where the XDP program runs.
    #[arg(long = "xdp-mode", value_enum, default_value_t = ModeArg::Auto)]
    xdp_mode: ModeArg,
    /// How the AF_XDP socket binds.
    #[arg(long, value_enum, default_value_t = BindArg::Auto)]
    bind: BindArg,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "kebab-case")]
enum LoadModeArg {
    ConnectClose,
    Keepalive,
    Synflood,
}

fn parse_prefix(s: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    let bad = || format!("bad IPv4 prefix {s:?}: use e.g. 10.201.78.0/24");
    let (a, l) = s.split_once('/').ok_or_else(bad)?;
    let len: u8 = l.parse().map_err(|_| bad())?;
    if !(8..=30).contains(&len) {
        return Err(format!("prefix length {len} out of range 8..=30"));
    }
    Ok((a.parse().map_err(|_| bad())?, len))
}

fn parse_ports(s: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let bad = || format!("bad port range {s:?}: use e.g. 1024-32767");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a == 0 || a > b {
        return Err(bad());
    }
    Ok(a..=b)
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("bad MAC {s:?}: use e.g. 02:00:00:00:00:01");
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next().ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

pub(crate) fn load(args: LoadArgs) -> Result<()> {
    sys::check_privileges()?;
    let iface = Interface::lookup(&args.iface)?;
    let std::net::IpAddr::V4(target_ip) = args.target.ip() else {
        anyhow::bail!("the load generator targets IPv4 addresses only");
    };
    let local = sys::ipv4_address(&args.iface)?
        .with_context(|| format!("{} has no IPv4 address to send from", args.iface))?;
    let next_hop = match args.next_hop {
        Some(mac) => mac,
        None => sys::resolve_mac(target_ip, &args.iface, Duration::from_secs(2))?,
    };
    let mut engine = Config {
        local_mac: iface.mac,
        mss: iface.mtu.saturating_sub(40).clamp(536, 9000) as u16,
        max_connections: args.concurrency.max(args.connections) * 4 + 1024,
        ..Config::default()
    };
    engine.secret = boot_secret()?;
    let mode = match args.mode {
        LoadModeArg::ConnectClose => LoadMode::ConnectClose {
            concurrency: args.concurrency,
        },
        LoadModeArg::Keepalive => LoadMode::KeepAlive {
            connections: args.connections,
        },
        LoadModeArg::Synflood => LoadMode::SynFlood {
            rate: args.rate,
            sources: args.flood_sources,
        },
    };
    let client_mode = match args.mode {
        LoadModeArg::Keepalive => ClientMode::KeepAlive {
            requests: args.requests_per_conn,
        },
        _ => ClientMode::ConnectClose,
    };
    let load = LoadConfig {
        mode,
        target: args.target,
        local_addr: local.into(),
        ports: args.ports.clone(),
        next_hop,
        local_mac: iface.mac,
        max_conns: args.max_conns,
        seed: u64::from_le_bytes(sys::random_bytes()?),
    };
    let server_config = ServerConfig {
        iface: args.iface.clone(),
        listeners: args
            .ports
            .clone()
            .map(|p| (Some(local.into()), p))
            .collect(),
        queues: Some(1),
        cores: args.cores.clone().map(|c| c.0),
        xdp_mode: mode_of(args.xdp_mode),
        xsk: XskConfig {
            bind: bind_of(args.bind),
            ..XskConfig::default()
        },
        synack: SynAckTemplate::from_engine(&engine),
        cookie_keys: None,
        capture: None,
    };
    let (path, host) = (args.path.clone(), args.target.to_string());
    let now = sys::monotonic_now();
    let mut server = Server::start(server_config, move |_| {
        let app = HttpClient::new(client_mode, &path, &host);
        LoadGen::new(Engine::new(engine.clone(), app, now), load.clone())
    })?;
    install_signal_handlers();
    eprintln!(
        "xdptcp load: {:?} from {local} on {} to {} for {} s",
        args.mode, args.iface, args.target, args.duration
    );
    let start = StdInstant::now();
    let stop_at = start + Duration::from_secs(args.duration);
    let mut next_status = start + Duration::from_secs(1);
    let mut last = (0u64, start);
    let app = |t: &Totals, name: &str| {
        t.app
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    };
    let mut load_elapsed = None;
    loop {
        server.collect(Duration::from_millis(100));
        let now = StdInstant::now();
        let t = server.totals();
        if load_elapsed.is_none() && (now >= stop_at || STOP.load(Ordering::SeqCst)) {
            server.broadcast(Control::StopAccepting);
            load_elapsed = Some(now.duration_since(start));
        }
        if let Some(e) = load_elapsed {
            let drained = app(&t, "in_flight") == 0 || args.mode == LoadModeArg::Synflood;
            if drained || now.duration_since(start) > e + Duration::from_secs(3) {
                break;
            }
        }
        if now >= next_status {
            let done = app(&t, "completed");
            let secs = now.duration_since(last.1).as_secs_f64().max(1e-3);
            eprintln!(
                "[{:>5.1}s] {:.0} req/s | opened={} completed={} failed={} in_flight={} | {}",
                now.duration_since(start).as_secs_f64(),
                (done - last.0) as f64 / secs,
                app(&t, "opened"),
                done,
                app(&t, "failed"),
                app(&t, "in_flight"),
                t.stats
            );
            last = (done, now);
            next_status = now + Duration::from_secs(1);
        }
    }
    let elapsed = load_elapsed.unwrap_or_else(|| start.elapsed());
    let fin = server.stop();
    let t = &fin.totals;
    let secs = elapsed.as_secs_f64().max(1e-3);
    let (requests, failed) = (app(t, "completed"), app(t, "failed"));
    let connections = if args.mode == LoadModeArg::Synflood {
        app(t, "opened")
    } else {
        t.stats.active_opens
    };
    let errors = failed + t.stats.failed_opens + t.stats.timeouts;
    let lat = fin.latencies.summary_json();
    let mut result = serde_json::json!({
        "mode": format!("{:?}", args.mode),
        "connections": connections,
        "requests": requests,
        "errors": errors,
        "elapsed_s": secs,
        "conn_per_s": connections as f64 / secs,
        "req_per_s": requests as f64 / secs,
        "connect_latency": lat["handshake"],
        "request_latency": lat["request"],
    });
    for (k, v) in lat["request"].as_object().into_iter().flatten() {
        result[k.as_str()] = v.clone();
    }
    eprintln!("== xdptcp load result");
    eprintln!("{}", serde_json::to_string_pretty(&result)?);
    report(t, &fin.xdp, elapsed);
    println!("{}", serde_json::to_string(&result)?);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string(&result)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = &args.hist_out {
        write_hist(dir, &fin.latencies, t, &fin.xdp, elapsed)?;
    }
    Ok(())
}

/// The load generator's secret: derived from this boot's random `boot_id`, like Linux's
/// boot-time secrets, so successive runs give a reused 4-tuple larger ISNs and timestamps and
/// the server's TIME-WAIT takes the new SYN (RFC 6191) instead of answering it as an old
/// duplicate. (A server keeps fresh random secrets: `boot_id` is readable by local users.)
fn boot_secret() -> Result<[u8; 32]> {
    use std::hash::Hasher;
    let id = std::fs::read("/proc/sys/kernel/random/boot_id")
        .context("reading /proc/sys/kernel/random/boot_id")?;
    let mut secret = [0u8; 32];
    for (i, chunk) in secret.chunks_mut(8).enumerate() {
        let mut h = siphasher::sip::SipHasher24::new_with_keys(0x7864_7074_6370, i as u64);
        h.write(b"xdptcp load");
        h.write(&id);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    Ok(secret)
}
