//! `xdptcp load`: HTTP connect-close or keep-alive load, closed or open loop, or a spoofed SYN
//! flood, from our own engines over AF_XDP (one per queue).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant as StdInstant};

use anyhow::{Context, Result, bail, ensure};
use clap::ValueEnum;

use xdptcp::app::http_client::{ClientMode, HttpClient, Pacing};
use xdptcp::load::{LoadConfig, LoadGen, LoadMode};
use xdptcp::output::{self, OutputDir};
use xdptcp::tcp::{Config, Engine, Secret};
use xdptcp::wire::{ipv4::Repr as Ipv4Repr, ipv6::Repr as Ipv6Repr};
use xdptcp::xdp::server::Totals;
use xdptcp::xdp::sys::{self, Interface};
use xdptcp::xdp::{Control, LinkMss, Server, ServerConfig, SynAckTemplate};

use crate::report::{report, write_hist};
use crate::{
    BindArg, Cores, ModeArg, STOP, install_signal_handlers, mode_of, parse_cores, parse_ring_size,
    xsk_config,
};

#[derive(clap::Args, Debug)]
pub(crate) struct LoadArgs {
    /// The interface to send from (its address of the target's family is our source address,
    /// unless --sources).
    #[arg(long)]
    iface: String,
    /// The server: an IPv4 or IPv6 address and a port (IPv6 in brackets: [fd00::1]:8080).
    #[arg(long)]
    target: SocketAddr,
    /// What to do.
    #[arg(long, value_enum, default_value_t = LoadModeArg::ConnectClose)]
    mode: LoadModeArg,
    /// connect-close: connections in flight at most; keepalive: handshakes in flight at most
    /// while opening.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// keepalive: connections kept open.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// keepalive: requests per connection before it closes.
    #[arg(long = "requests-per-conn", default_value_t = 1_000_000)]
    requests_per_conn: u64,
    /// Open loop, on a fixed schedule: keepalive requests per second (all connections
    /// together), connect-close connections per second; synflood: SYNs per second (default
    /// 100000). Latency counts from each request's intended time.
    #[arg(long)]
    rate: Option<u64>,
    /// keepalive, open loop: each connection sends one request every this many seconds
    /// (instead of --rate; the rate is then connections / interval).
    #[arg(long)]
    interval: Option<f64>,
    /// An answer later than this many milliseconds after its request's intended time counts
    /// as late.
    #[arg(long = "late-ms", default_value_t = 1000)]
    late_ms: u64,
    /// Source addresses: every address of this prefix (IPv4 /20../32 or IPv6 /116../128), each
    /// of which must be an address of --iface (so the kernel answers ARP and neighbour
    /// solicitations for it); connections spread over them and over --ports.
    #[arg(long, value_parser = parse_sources)]
    sources: Option<Sources>,
    /// synflood: spoofed sources are random hosts of this IPv4 prefix (keep it to test
    /// addresses of your own topology).
    #[arg(long = "flood-sources", value_parser = parse_prefix, default_value = "198.18.0.0/15")]
    flood_sources: (std::net::Ipv4Addr, u8),
    /// connect-close and synflood: stop opening after this many seconds; keepalive: hold the
    /// connections this long once all are open. Connections in flight then get a few seconds
    /// to finish.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// keepalive: give up waiting for every connection to open after this many seconds (the
    /// hold starts anyway, and the report says how many opened).
    #[arg(long = "ramp-secs", default_value_t = 60)]
    ramp_secs: u64,
    /// Stop opening after this many connections (or SYNs).
    #[arg(long = "max-conns", default_value_t = u64::MAX)]
    max_conns: u64,
    /// Our source ports on each source address (default: 1024-32767 on the interface's own
    /// address, to stay out of the kernel's ephemeral range; 1024-65535 on --sources).
    #[arg(long, value_parser = parse_ports)]
    ports: Option<std::ops::RangeInclusive<u16>>,
    /// The next hop's MAC (default: the kernel's neighbour entry for the target, resolving it
    /// by ARP or neighbour discovery if needed).
    #[arg(long = "next-hop", value_parser = parse_mac)]
    next_hop: Option<[u8; 6]>,
    /// The request path.
    #[arg(long, default_value = "/")]
    path: String,
    /// Receive queues, one generator each (the load is split between them). Each flow's
    /// replies must come back on the queue it was sent from, as xdptcp's workers do.
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// The cores to pin the generators to, e.g. 1 or 0,1 (generator i on the i-th, cycling).
    #[arg(long, value_parser = parse_cores)]
    cores: Option<Cores>,
    /// Write the result as JSON here (created mode 0600; an existing file is an error without
    /// --force).
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Replace an existing --json file (never through a symbolic link).
    #[arg(long)]
    force: bool,
    /// Write latency histograms (.hgrm, .svg) and summary.json here.
    #[arg(long = "hist-out")]
    hist_out: Option<std::path::PathBuf>,
    /// Where the XDP program runs.
    #[arg(long = "xdp-mode", value_enum, default_value_t = ModeArg::Auto)]
    xdp_mode: ModeArg,
    /// How the AF_XDP socket binds.
    #[arg(long, value_enum, default_value_t = BindArg::Auto)]
    bind: BindArg,
    /// Entries in each AF_XDP ring (a power of two; four UMEM frames each). The default rides
    /// out stalls of ~80 ms at 100 000 frames/s, which 100 000+ connections need on a busy or
    /// virtualised CPU.
    #[arg(long = "ring-size", value_parser = parse_ring_size, default_value_t = 8192)]
    ring_size: u32,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "kebab-case")]
enum LoadModeArg {
    ConnectClose,
    Keepalive,
    Synflood,
}

/// Most source addresses --sources may name.
const MAX_SOURCES: u32 = 4096;

fn parse_prefix(s: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    let bad = || format!("bad IPv4 prefix {s:?}: use e.g. 10.201.78.0/24");
    let (a, l) = s.split_once('/').ok_or_else(bad)?;
    let len: u8 = l.parse().map_err(|_| bad())?;
    if !(8..=30).contains(&len) {
        return Err(format!("prefix length {len} out of range 8..=30"));
    }
    Ok((a.parse().map_err(|_| bad())?, len))
}

/// The addresses `--sources` names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sources(Vec<IpAddr>);

/// Every address of an IPv4 or IPv6 prefix, at most [`MAX_SOURCES`] of them.
fn parse_sources(s: &str) -> Result<Sources, String> {
    let bad = || format!("bad prefix {s:?}: use e.g. 10.201.77.64/28 or fd00:201:77::100/124");
    let (a, l) = s.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = a.parse().map_err(|_| bad())?;
    let len: u32 = l.parse().map_err(|_| bad())?;
    let bits: u32 = if addr.is_ipv4() { 32 } else { 128 };
    let host_bits = bits.checked_sub(len).ok_or_else(bad)?;
    if 1u64
        .checked_shl(host_bits)
        .is_none_or(|n| n > u64::from(MAX_SOURCES))
    {
        return Err(format!(
            "--sources {s} has more than {MAX_SOURCES} addresses: use /{} or longer",
            bits - MAX_SOURCES.ilog2()
        ));
    }
    let count = 1u128 << host_bits;
    Ok(Sources(match addr {
        IpAddr::V4(v4) => {
            let net = u32::from(v4) & !((count - 1) as u32);
            (0..count as u32)
                .map(|i| IpAddr::V4((net + i).into()))
                .collect()
        }
        IpAddr::V6(v6) => {
            let net = u128::from(v6) & !(count - 1);
            (0..count).map(|i| IpAddr::V6((net + i).into())).collect()
        }
    }))
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

/// Our source addresses: --sources (each checked to be an address of the interface), or the
/// interface's own address of the target's family (a global one unless the target is
/// link-local).
fn source_addresses(args: &LoadArgs) -> Result<Vec<IpAddr>> {
    let target = args.target.ip();
    let on_iface = sys::interface_addresses(&args.iface)
        .with_context(|| format!("reading the addresses of {}", args.iface))?;
    let Some(Sources(sources)) = &args.sources else {
        let own = on_iface
            .iter()
            .copied()
            .filter(|a| a.is_ipv4() == target.is_ipv4())
            .find(|a| sys::is_link_local(*a) == sys::is_link_local(target));
        let family = if target.is_ipv4() { "IPv4" } else { "IPv6" };
        return own.map(|a| vec![a]).with_context(|| {
            format!(
                "{} has no {family} address to send to {target} from",
                args.iface
            )
        });
    };
    for s in sources {
        ensure!(
            s.is_ipv4() == target.is_ipv4(),
            "--sources {s} and --target {target} are of different IP families"
        );
        ensure!(
            on_iface.contains(s),
            "source {s} is not an address of {iface}: add every address of the prefix to it \
             first (e.g. `ip addr add {s}/{len} dev {iface}{nodad}`), so the kernel answers ARP \
             and neighbour solicitations for them",
            iface = args.iface,
            len = if s.is_ipv4() { 32 } else { 128 },
            nodad = if s.is_ipv4() { "" } else { " nodad" },
        );
    }
    Ok(sources.clone())
}

/// The load mode and the client app's pacing from the arguments.
fn mode_and_pacing(args: &LoadArgs) -> Result<(LoadMode, Pacing)> {
    let scheduled = Pacing::Scheduled {
        period: Duration::ZERO,
    };
    if args.interval.is_some() && args.mode != LoadModeArg::Keepalive {
        bail!("--interval applies to --mode keepalive only (connect-close takes --rate)");
    }
    if args.rate == Some(0) {
        bail!("--rate 0: give a rate of at least 1 per second");
    }
    Ok(match args.mode {
        LoadModeArg::ConnectClose => (
            LoadMode::ConnectClose {
                concurrency: args.concurrency.max(1),
                rate: args.rate,
            },
            if args.rate.is_some() {
                scheduled
            } else {
                Pacing::BackToBack
            },
        ),
        LoadModeArg::Keepalive => {
            ensure!(args.connections > 0, "--connections 0: nothing to hold");
            let period = match (args.rate, args.interval) {
                (Some(_), Some(_)) => bail!("give --rate or --interval, not both"),
                (Some(rate), None) => Some(Duration::from_secs_f64(
                    args.connections as f64 / rate as f64,
                )),
                (None, Some(secs)) => {
                    ensure!(
                        secs.is_finite() && secs >= 1e-5,
                        "--interval {secs}: give at least 0.00001 s"
                    );
                    Some(Duration::from_secs_f64(secs))
                }
                (None, None) => None,
            };
            let pacing = period.map_or(Pacing::BackToBack, |period| Pacing::Scheduled { period });
            (
                LoadMode::KeepAlive {
                    connections: args.connections,
                    opening: args.concurrency.max(1),
                    period,
                },
                pacing,
            )
        }
        LoadModeArg::Synflood => {
            ensure!(
                args.target.is_ipv4(),
                "--mode synflood sends IPv4 SYNs only: give an IPv4 --target"
            );
            (
                LoadMode::SynFlood {
                    rate: args.rate.unwrap_or(100_000),
                    sources: args.flood_sources,
                },
                Pacing::BackToBack,
            )
        }
    })
}

pub(crate) fn load(args: LoadArgs) -> Result<()> {
    sys::check_privileges()?;
    let iface = Interface::lookup(&args.iface)?;
    let (mode, pacing) = mode_and_pacing(&args)?;
    let sources = source_addresses(&args)?;
    let ports = args.ports.clone().unwrap_or(if args.sources.is_some() {
        1024..=65535
    } else {
        1024..=32767
    });
    ensure!(args.queues >= 1, "--queues 0: give at least one queue");
    ensure!(
        ports.len() >= args.queues as usize,
        "--ports {ports:?} has fewer ports than --queues {}",
        args.queues
    );
    // The outputs are made before the load runs: one in the way fails now, not at the end.
    let json = args
        .json
        .as_deref()
        .map(|path| output::create_file(path, args.force))
        .transpose()?;
    let hist = args
        .hist_out
        .as_deref()
        .map(|dir| OutputDir::open(dir, output::effective_ids()))
        .transpose()?;
    let next_hop = match args.next_hop {
        Some(mac) => mac,
        None => sys::resolve_mac(args.target.ip(), &iface, Duration::from_secs(2))?,
    };
    let load = LoadConfig {
        mode,
        target: args.target,
        sources: sources.clone(),
        ports: ports.clone(),
        next_hop,
        local_mac: iface.mac,
        max_conns: args.max_conns,
        seed: u64::from_le_bytes(sys::random_bytes()?),
    };
    let shares: Vec<LoadConfig> = (0..args.queues)
        .map(|q| load.share(q, args.queues))
        .collect();
    for (q, share) in shares.iter().enumerate() {
        if let LoadMode::KeepAlive { connections, .. } = share.mode {
            ensure!(
                connections as u64 <= share.tuples(),
                "queue {q} would hold {connections} connections on {} source address(es) × {} \
                 port(s): widen --sources or --ports",
                share.sources.len(),
                share.ports.len()
            );
        }
    }
    let per_queue_conns = match mode {
        LoadMode::KeepAlive {
            connections,
            opening,
            ..
        } => connections / args.queues as usize + opening,
        LoadMode::ConnectClose { concurrency, .. } => concurrency,
        LoadMode::SynFlood { .. } => 0,
    };
    let ip_header = if args.target.is_ipv4() {
        Ipv4Repr::HEADER_LEN
    } else {
        Ipv6Repr::HEADER_LEN
    };
    let frame_len = xsk_config(args.bind, args.ring_size).frame_len()?;
    let mut engine = Config {
        local_mac: iface.mac,
        mss: LinkMss::new(iface.mtu, frame_len, ip_header).mss,
        max_connections: per_queue_conns * 2 + 1024,
        ..Config::default()
    };
    engine.secret = Secret(boot_secret()?);
    let client_mode = match args.mode {
        LoadModeArg::Keepalive => ClientMode::KeepAlive {
            requests: args.requests_per_conn,
        },
        _ => ClientMode::ConnectClose,
    };
    // Dedicated source addresses are ours entirely (port 0: every port); on the kernel's own
    // address only our source ports are, so the kernel's connections keep working.
    let listeners = if args.sources.is_some() {
        sources.iter().map(|a| (Some(*a), 0)).collect()
    } else {
        ports.clone().map(|p| (Some(sources[0]), p)).collect()
    };
    let server_config = ServerConfig {
        iface: args.iface.clone(),
        listeners,
        queues: Some(args.queues),
        cores: args.cores.clone().map(|c| c.0),
        xdp_mode: mode_of(args.xdp_mode),
        xsk: xsk_config(args.bind, args.ring_size),
        synack: SynAckTemplate::from_engine(&engine),
        cookie_keys: None,
        capture: None,
        // Single-buffer, as before: every segment a server sends the generator fits a frame.
        multi_buffer: false,
    };
    let (path, host) = (args.path.clone(), args.target.to_string());
    let late_after = Duration::from_millis(args.late_ms);
    let now = sys::monotonic_now();
    let server = Server::start(server_config, move |queue| {
        let app = HttpClient::new(client_mode, &path, &host)
            .with_pacing(pacing)
            .with_late_after(late_after);
        let share = shares[queue as usize % shares.len()].clone();
        LoadGen::new(Engine::new(engine.clone(), app, now), share)
    })?;
    install_signal_handlers();
    eprintln!(
        "xdptcp load: {:?} from {} on {} ({} queue(s)) to {} for {} s",
        args.mode,
        if sources.len() == 1 {
            sources[0].to_string()
        } else {
            format!("{} addresses", sources.len())
        },
        args.iface,
        args.queues,
        args.target,
        args.duration
    );
    run(server, &args, mode, json, hist.as_ref())
}

/// An application counter of the totals.
fn app(t: &Totals, name: &str) -> u64 {
    t.app
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, v)| *v)
}

/// Runs the load: ramp (keep-alive), hold or open for --duration, stop, drain, report.
fn run(
    mut server: Server,
    args: &LoadArgs,
    mode: LoadMode,
    json: Option<std::fs::File>,
    hist: Option<&OutputDir>,
) -> Result<()> {
    let keepalive = args.mode == LoadModeArg::Keepalive;
    let start = StdInstant::now();
    let (hold, stopped) = drive(&mut server, args, start);
    let end = StdInstant::now();
    let (hold_at, at_hold) = hold.unwrap_or((start, Totals::default()));
    let (stop_at, at_stop) = stopped.unwrap_or((end, server.totals()));
    let fin = server.stop();
    let t = &fin.totals;
    let held = stop_at.duration_since(hold_at);
    let secs = held.as_secs_f64().max(1e-3);
    let in_hold = |name: &str| app(&at_stop, name).saturating_sub(app(&at_hold, name));
    let (requests, failed) = (app(t, "completed"), app(t, "failed"));
    let connections = if args.mode == LoadModeArg::Synflood {
        app(t, "opened")
    } else {
        t.stats.active_opens
    };
    let errors = failed + t.stats.failed_opens + t.stats.timeouts;
    let offered_per_s = match mode {
        LoadMode::KeepAlive {
            connections,
            period: Some(p),
            ..
        } => Some(connections as f64 / p.as_secs_f64()),
        LoadMode::ConnectClose { rate, .. } => rate.map(|r| r as f64),
        LoadMode::SynFlood { rate, .. } => Some(rate as f64),
        LoadMode::KeepAlive { period: None, .. } => None,
    };
    let achieved_per_s = match args.mode {
        LoadModeArg::Keepalive => in_hold("completed") as f64 / secs,
        _ => connections as f64 / secs,
    };
    let lat = fin.latencies.summary_json();
    let mut result = serde_json::json!({
        "mode": format!("{:?}", args.mode),
        "open_loop": offered_per_s.is_some() && args.mode != LoadModeArg::Synflood,
        "queues": args.queues,
        "target": args.target.to_string(),
        "connections": connections,
        "opened": app(t, "opened"),
        "failed_opens": t.stats.failed_opens,
        "reset": t.stats.resets_received,
        "timeouts": t.stats.timeouts,
        "requests": requests,
        "requests_in_hold": in_hold("completed"),
        "requests_due": app(t, "due"),
        "requests_sent": app(t, "sent"),
        "failed": failed,
        "late": app(t, "late"),
        "late_after_ms": args.late_ms,
        "errors": errors,
        "ports_in_use": app(t, "ports_in_use"),
        "ramp_s": hold_at.duration_since(start).as_secs_f64(),
        "elapsed_s": secs,
        "drain_s": end.duration_since(stop_at).as_secs_f64(),
        "held_at_stop": app(&at_stop, "in_flight"),
        "left_at_end": app(t, "in_flight"),
        "conn_per_s": connections as f64 / secs,
        "req_per_s": requests as f64 / secs,
        "offered_per_s": offered_per_s,
        "achieved_per_s": achieved_per_s,
        "client_memory": t.memory_peak.to_json(),
        "connect_latency": lat["handshake"],
        "request_latency": lat["request"],
        "send_lag": lat["send_lag"],
    });
    if keepalive {
        // Requests per second over the hold only (the ramp sends none in the open loop).
        result["req_per_s"] = achieved_per_s.into();
    }
    for (k, v) in lat["request"].as_object().into_iter().flatten() {
        result[k.as_str()] = v.clone();
    }
    eprintln!("== xdptcp load result");
    eprintln!("{}", serde_json::to_string_pretty(&result)?);
    report(t, &fin.xdp, end.duration_since(start));
    println!("{}", serde_json::to_string(&result)?);
    if let (Some(mut file), Some(path)) = (json, &args.json) {
        use std::io::Write;
        file.write_all((serde_json::to_string(&result)? + "\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = hist {
        write_hist(dir, &fin.latencies, t, &fin.xdp, end.duration_since(start))?;
    }
    Ok(())
}

/// A moment of the run and the totals then.
type Mark = Option<(StdInstant, Totals)>;

/// Runs the load until it is over, with a status line a second: returns when the hold began
/// (keep-alive: once every generator is ready) and when the generators were told to stop.
fn drive(server: &mut Server, args: &LoadArgs, start: StdInstant) -> (Mark, Mark) {
    let keepalive = args.mode == LoadModeArg::Keepalive;
    // Keep-alive: the hold starts once every generator is ready (or the ramp gave up).
    let mut hold: Mark = (!keepalive).then(|| (start, Totals::default()));
    let mut stopped: Mark = None;
    let mut next_status = start + Duration::from_secs(1);
    let mut last = (0u64, start);
    // Closing 200 000 connections takes a while: a few seconds plus 50 µs each.
    let drain = Duration::from_secs(3) + Duration::from_micros(50 * args.connections as u64);
    loop {
        server.collect(Duration::from_millis(100));
        let now = StdInstant::now();
        let t = server.totals();
        if hold.is_none() {
            let ready = app(&t, "ready") >= u64::from(args.queues);
            if ready || now >= start + Duration::from_secs(args.ramp_secs) {
                if !ready {
                    eprintln!(
                        "xdptcp load: only {} of {} connections open after {} s; holding them",
                        app(&t, "opened"),
                        args.connections,
                        args.ramp_secs
                    );
                }
                eprintln!(
                    "xdptcp load: {} connections open after {:.1} s; holding for {} s",
                    app(&t, "in_flight"),
                    now.duration_since(start).as_secs_f64(),
                    args.duration
                );
                hold = Some((now, t.clone()));
            }
        }
        let hold_over = hold
            .as_ref()
            .is_some_and(|(h, _)| now >= *h + Duration::from_secs(args.duration));
        if stopped.is_none() && (hold_over || STOP.load(Ordering::SeqCst)) {
            server.broadcast(Control::StopAccepting);
            stopped = Some((now, t.clone()));
        }
        if let Some((s, _)) = &stopped {
            let drained = app(&t, "in_flight") == 0 || args.mode == LoadModeArg::Synflood;
            if drained || now.duration_since(*s) > drain {
                break;
            }
        }
        if now >= next_status {
            let done = app(&t, "completed");
            let secs = now.duration_since(last.1).as_secs_f64().max(1e-3);
            eprintln!(
                "[{:>5.1}s] {:.0} req/s | opened={} completed={} failed={} late={} in_flight={} | {}",
                now.duration_since(start).as_secs_f64(),
                (done - last.0) as f64 / secs,
                app(&t, "opened"),
                done,
                app(&t, "failed"),
                app(&t, "late"),
                app(&t, "in_flight"),
                t.stats
            );
            last = (done, now);
            next_status = now + Duration::from_secs(1);
        }
    }
    (hold, stopped)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_name_every_address_of_the_prefix() {
        let v4 = parse_sources("10.201.77.70/30").unwrap().0;
        let want: Vec<IpAddr> = (68..72)
            .map(|h| IpAddr::V4([10, 201, 77, h].into()))
            .collect();
        assert_eq!(v4, want, "the host bits of the address given are ignored");
        let v6 = parse_sources("fd00:201:77::100/126").unwrap().0;
        assert_eq!(v6.len(), 4);
        assert_eq!(v6[3], "fd00:201:77::103".parse::<IpAddr>().unwrap());
        assert_eq!(parse_sources("10.0.0.1/32").unwrap().0.len(), 1);
    }

    #[test]
    fn sources_refuse_huge_or_malformed_prefixes() {
        let e = parse_sources("10.0.0.0/8").unwrap_err();
        assert!(e.contains("more than 4096") && e.contains("/20"), "{e}");
        assert!(parse_sources("fd00::/64").unwrap_err().contains("/116"));
        assert!(parse_sources("10.0.0.0/33").is_err());
        assert!(parse_sources("10.0.0.0").is_err());
        assert!(parse_sources("banana/24").is_err());
    }
}
