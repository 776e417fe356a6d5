//! `xdptcp`: the command line. `xdptcp serve --iface IF --port P ...` runs the AF_XDP data path
//! until SIGINT/SIGTERM or `--duration`, printing a status line every second and a final report.

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant as StdInstant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use xdptcp::app::discard::Discard;
use xdptcp::app::echo::Echo;
use xdptcp::app::http::{Http, HttpConfig};
use xdptcp::app::http_client::{ClientMode, HttpClient};
use xdptcp::load::{LoadConfig, LoadGen, LoadMode};
use xdptcp::stats::{DropReason, Latencies, Stats, write_reports};
use xdptcp::tcp::Engine;
use xdptcp::tcp::{Config, Keepalive, Listener, State, SynCookieMode};
use xdptcp::xdp::server::Totals;
use xdptcp::xdp::sys::{self, Interface};
use xdptcp::xdp::{BindMode, Control, Server, ServerConfig, XdpCounters, XdpMode, XskConfig};

#[derive(Parser, Debug)]
#[command(
    name = "xdptcp",
    version,
    about = "A kernel-bypass TCP server: XDP + AF_XDP + a userspace TCP engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve TCP on an interface through AF_XDP.
    Serve(ServeArgs),
    /// Generate load (HTTP connect-close or keep-alive, or a SYN flood) from our own engine
    /// over AF_XDP.
    Load(LoadArgs),
}

#[derive(clap::Args, Debug)]
struct LoadArgs {
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

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// The interface (its MAC and MTU configure the engine).
    #[arg(long)]
    iface: String,
    /// A local address to serve (repeat for several); default: every address.
    #[arg(long = "addr")]
    addrs: Vec<IpAddr>,
    /// The TCP port to serve.
    #[arg(long)]
    port: u16,
    /// Receive queues (one socket and one worker each); default: all of the interface's.
    #[arg(long)]
    queues: Option<u32>,
    /// Cores to pin workers to, e.g. `0,1` or `0-3`; default: worker i on core i.
    #[arg(long, value_parser = parse_cores)]
    cores: Option<Cores>,
    /// The application.
    #[arg(long, value_enum, default_value_t = AppKind::Http)]
    app: AppKind,
    /// SYN cookies.
    #[arg(long, value_enum, default_value_t = Cookies::Auto)]
    syncookies: Cookies,
    /// Where the XDP program runs.
    #[arg(long = "xdp-mode", value_enum, default_value_t = ModeArg::Auto)]
    xdp_mode: ModeArg,
    /// How the AF_XDP sockets bind.
    #[arg(long, value_enum, default_value_t = BindArg::Auto)]
    bind: BindArg,
    /// On stop, keep serving existing connections this long (new ones are refused).
    #[arg(long = "drain-secs", default_value_t = 0)]
    drain_secs: u64,
    /// Stop by itself after this many seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// Write latency histograms (.hgrm, .svg) and summary.json here, on exit and on SIGUSR1.
    #[arg(long = "hist-out")]
    hist_out: Option<std::path::PathBuf>,
    /// TCP keepalive for accepted connections, as IDLE:INTERVAL:COUNT in seconds (e.g.
    /// 7200:75:9, Linux's defaults); off by default.
    #[arg(long, value_parser = parse_keepalive)]
    keepalive: Option<Keepalive>,
}

fn parse_keepalive(s: &str) -> Result<Keepalive, String> {
    let bad = || format!("bad keepalive {s:?}: use IDLE:INTERVAL:COUNT, e.g. 7200:75:9");
    let f: Vec<&str> = s.split(':').collect();
    let [idle, interval, count] = f.as_slice() else {
        return Err(bad());
    };
    let secs = |v: &str| v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(bad);
    Ok(Keepalive {
        idle: Duration::from_secs(secs(idle)?),
        interval: Duration::from_secs(secs(interval)?),
        count: count
            .parse()
            .ok()
            .filter(|n: &u32| *n > 0)
            .ok_or_else(bad)?,
    })
}

#[derive(Debug, Clone)]
struct Cores(Vec<usize>);

fn parse_cores(s: &str) -> Result<Cores, String> {
    let mut cores = Vec::new();
    for part in s.split(',') {
        let bad = || format!("bad core list {s:?}: use e.g. 0,1 or 0-3");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                cores.extend(a..=b);
            }
            None => cores.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(Cores(cores))
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum AppKind {
    Http,
    Echo,
    Discard,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Cookies {
    Always,
    Auto,
    Never,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum ModeArg {
    Auto,
    Native,
    Generic,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
#[value(rename_all = "kebab-case")]
enum BindArg {
    Auto,
    ZeroCopy,
    Copy,
}

static STOP: AtomicBool = AtomicBool::new(false);
static DUMP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGUSR1 {
        DUMP.store(true, Ordering::SeqCst);
    } else {
        STOP.store(true, Ordering::SeqCst);
    }
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1] {
        // Safety: the handler only stores to an atomic, which is async-signal-safe; the
        // sigaction struct is fully initialised (zeroed, then handler set) before the call.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Load(args) => load(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xdptcp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The engine configuration for this interface and these arguments.
fn engine_config(args: &ServeArgs, iface: &Interface) -> Result<Config> {
    let listeners = if args.addrs.is_empty() {
        vec![Listener {
            addr: None,
            port: args.port,
            keepalive: args.keepalive,
        }]
    } else {
        args.addrs
            .iter()
            .map(|a| Listener {
                addr: Some(*a),
                port: args.port,
                keepalive: args.keepalive,
            })
            .collect()
    };
    Ok(Config {
        local_mac: iface.mac,
        listeners,
        syncookies: match args.syncookies {
            Cookies::Always => SynCookieMode::Always,
            Cookies::Auto => SynCookieMode::Auto,
            Cookies::Never => SynCookieMode::Never,
        },
        mss: iface.mtu.saturating_sub(40).min(u16::MAX as u32) as u16,
        // Several queues: a flow may show up on a worker that does not own it (veth can move
        // a flow between queues); drop such segments rather than reset someone else's flow.
        reset_unknown: args.queues.unwrap_or(iface.rx_queues) <= 1,
        secret: sys::random_bytes().context("reading /dev/urandom")?,
        ..Config::default()
    })
}

fn serve(args: ServeArgs) -> Result<()> {
    sys::check_privileges()?;
    let iface = Interface::lookup(&args.iface)?;
    let engine = engine_config(&args, &iface)?;
    let server_config = ServerConfig {
        iface: args.iface.clone(),
        listeners: engine.listeners.iter().map(|l| (l.addr, l.port)).collect(),
        queues: args.queues,
        cores: args.cores.clone().map(|c| c.0),
        xdp_mode: mode_of(args.xdp_mode),
        xsk: XskConfig {
            bind: bind_of(args.bind),
            ..XskConfig::default()
        },
    };
    let now = sys::monotonic_now();
    let server = match args.app {
        AppKind::Http => Server::start(server_config, move |_| {
            Engine::new(engine.clone(), Http::new(HttpConfig::default()), now)
        })?,
        AppKind::Echo => Server::start(server_config, move |_| {
            Engine::new(engine.clone(), Echo::default(), now)
        })?,
        AppKind::Discard => Server::start(server_config, move |_| {
            Engine::new(engine.clone(), Discard::default(), now)
        })?,
    };
    run(server, &args)
}

fn mode_of(arg: ModeArg) -> XdpMode {
    match arg {
        ModeArg::Auto => XdpMode::Auto,
        ModeArg::Native => XdpMode::Native,
        ModeArg::Generic => XdpMode::Generic,
    }
}

fn bind_of(arg: BindArg) -> BindMode {
    match arg {
        BindArg::Auto => BindMode::Auto,
        BindArg::ZeroCopy => BindMode::ZeroCopy,
        BindArg::Copy => BindMode::Copy,
    }
}

fn load(args: LoadArgs) -> Result<()> {
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
        write_hist(dir, &fin.latencies, t, elapsed)?;
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

fn run(mut server: Server, args: &ServeArgs) -> Result<()> {
    install_signal_handlers();
    eprintln!(
        "xdptcp: serving port {} on {} ({} queue(s), XDP {:?}, {} mode); stop with Ctrl-C{}",
        args.port,
        server.interface().name,
        server.workers(),
        server.xdp_mode().unwrap_or(XdpMode::Auto),
        if server.zero_copy() {
            "zero-copy"
        } else {
            "copy"
        },
        args.duration
            .map(|d| format!(" or after {d} s"))
            .unwrap_or_default()
    );
    let start = StdInstant::now();
    let deadline = args.duration.map(|d| start + Duration::from_secs(d));
    let mut next_status = start + Duration::from_secs(1);
    let mut next_rotation = start + Duration::from_secs(64);
    let mut last = (0u64, 0u64, start);
    let mut draining_until: Option<StdInstant> = None;
    loop {
        server.collect(Duration::from_millis(100));
        let now = StdInstant::now();
        let stop_asked = STOP.load(Ordering::SeqCst) || deadline.is_some_and(|d| now >= d);
        if stop_asked && draining_until.is_none() {
            server.broadcast(Control::StopAccepting);
            draining_until = Some(now + Duration::from_secs(args.drain_secs));
            if args.drain_secs > 0 {
                eprintln!("xdptcp: draining for {} s", args.drain_secs);
            }
        }
        if draining_until.is_some_and(|d| now >= d) {
            break;
        }
        if DUMP.swap(false, Ordering::SeqCst) {
            if let Some(dir) = &args.hist_out {
                write_hist(
                    dir,
                    server.latencies(),
                    &server.totals(),
                    now.duration_since(start),
                )?;
                eprintln!("xdptcp: histograms written to {}", dir.display());
            }
        }
        if now >= next_rotation {
            server.broadcast(Control::RotateCookieSecret(sys::random_bytes()?));
            next_rotation = now + Duration::from_secs(64);
        }
        if now >= next_status {
            let t = server.totals();
            let secs = now.duration_since(last.2).as_secs_f64().max(1e-3);
            let rx_pps = (t.socket.rx_frames - last.0) as f64 / secs;
            let tx_pps = (t.socket.tx_frames - last.1) as f64 / secs;
            eprintln!(
                "[{:>5.1}s] rx {rx_pps:.0} pps tx {tx_pps:.0} pps | {}",
                now.duration_since(start).as_secs_f64(),
                t.stats
            );
            last = (t.socket.rx_frames, t.socket.tx_frames, now);
            next_status = now + Duration::from_secs(1);
        }
    }
    let elapsed = start.elapsed();
    let fin = server.stop();
    report(&fin.totals, &fin.xdp, elapsed);
    eprintln!("latency: {}", fin.latencies.one_line());
    if let Some(dir) = &args.hist_out {
        write_hist(dir, &fin.latencies, &fin.totals, elapsed)?;
        eprintln!("xdptcp: histograms written to {}", dir.display());
    }
    Ok(())
}

/// The `--hist-out` files: histograms plus a summary with every counter.
fn write_hist(dir: &std::path::Path, lat: &Latencies, t: &Totals, elapsed: Duration) -> Result<()> {
    let app: serde_json::Map<String, serde_json::Value> = t
        .app
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).into()))
        .collect();
    let mut extra = t.stats.to_json();
    extra["app"] = serde_json::Value::Object(app);
    extra["rx_per_queue"] = t.rx_per_queue.clone().into();
    extra["elapsed_s"] = elapsed.as_secs_f64().into();
    write_reports(dir, lat, extra).with_context(|| format!("writing {}", dir.display()))
}

fn report(t: &Totals, xdp: &XdpCounters, elapsed: Duration) {
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
    let per_queue: Vec<String> = t.rx_per_queue.iter().map(u64::to_string).collect();
    eprintln!("rx frames per queue: {}", per_queue.join(" "));
    eprintln!(
        "sockets: rx_frames={} tx_frames={} tx_no_frame={} tx_kicks={} kernel_rx_dropped={}",
        t.socket.rx_frames,
        t.socket.tx_frames,
        t.socket.tx_no_frame,
        t.socket.tx_kicks,
        t.socket.kernel_rx_dropped
    );
    let f = &t.frames;
    eprintln!(
        "frames: total={} free={} fill={} rx_held={} tx_pending={} tx_in_flight={} balanced={}",
        f.total, f.free, f.fill, f.rx_held, f.tx_pending, f.tx_in_flight, t.frames_balanced
    );
}
