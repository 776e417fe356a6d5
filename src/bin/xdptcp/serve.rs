//! `xdptcp serve`: the AF_XDP data path until SIGINT/SIGTERM or `--duration`, a status line
//! every second and a final report.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant as StdInstant};

use anyhow::{Context, Result};
use clap::ValueEnum;

use xdptcp::app::discard::Discard;
use xdptcp::app::echo::Echo;
use xdptcp::app::http::{Http, HttpConfig};
use xdptcp::tcp::{Config, Engine, Keepalive, Listener, SynCookieMode};
use xdptcp::xdp::sys::{self, Interface};
use xdptcp::xdp::{Control, Server, ServerConfig, SynAckTemplate, XdpMode, XskConfig};

use crate::report::{report, write_hist};
use crate::{
    BindArg, Cores, DUMP, ModeArg, STOP, bind_of, install_signal_handlers, mode_of, parse_cores,
};

#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
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

pub(crate) fn serve(args: ServeArgs) -> Result<()> {
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
        synack: SynAckTemplate::from_engine(&engine),
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
