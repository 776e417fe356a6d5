//! `xdptcp`: the command line. `xdptcp serve --iface IF --port P ...` runs the AF_XDP data path
//! until SIGINT/SIGTERM or `--duration`, printing a status line every second and a final report.

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant as StdInstant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use xdptcp::stats::{DropReason, Latencies, Stats, write_reports};
use xdptcp::tcp::Engine;
use xdptcp::tcp::{Config, Listener, State, SynCookieMode};
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
            keepalive: None,
        }]
    } else {
        args.addrs
            .iter()
            .map(|a| Listener {
                addr: Some(*a),
                port: args.port,
                keepalive: None,
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
        xdp_mode: match args.xdp_mode {
            ModeArg::Auto => XdpMode::Auto,
            ModeArg::Native => XdpMode::Native,
            ModeArg::Generic => XdpMode::Generic,
        },
        xsk: XskConfig {
            bind: match args.bind {
                BindArg::Auto => BindMode::Auto,
                BindArg::ZeroCopy => BindMode::ZeroCopy,
                BindArg::Copy => BindMode::Copy,
            },
            ..XskConfig::default()
        },
    };
    let now = sys::monotonic_now();
    let server = match args.app {
        AppKind::Http => Server::start(server_config, move |_| {
            Engine::new(engine.clone(), interim::Http, now)
        })?,
        AppKind::Echo => Server::start(server_config, move |_| {
            Engine::new(engine.clone(), interim::Echo, now)
        })?,
        AppKind::Discard => Server::start(server_config, move |_| {
            Engine::new(engine.clone(), interim::Discard, now)
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

/// The `--hist-out` files: histograms plus a summary with every counter.
fn write_hist(dir: &std::path::Path, lat: &Latencies, t: &Totals, elapsed: Duration) -> Result<()> {
    let app: serde_json::Map<String, serde_json::Value> = t
        .app
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).into()))
        .collect();
    let mut extra = t.stats.to_json();
    extra["app"] = serde_json::Value::Object(app);
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

/// Minimal stand-ins for `xdptcp::app::{http, echo, discard}` until those land on main; the
/// binary switches to them then.
mod interim {
    use xdptcp::app::{App, Io};

    const RESPONSE: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world\n";

    /// Answers every complete request (up to the blank line) with a fixed 200; closes after
    /// the response when the request says `Connection: close`.
    pub(crate) struct Http;

    impl App for Http {
        type State = ();

        fn on_data(&mut self, _: &mut (), io: &mut Io<'_>, data: &[u8]) -> usize {
            let mut used = 0;
            while let Some(end) = data[used..].windows(4).position(|w| w == b"\r\n\r\n") {
                if io.send_space() < RESPONSE.len() {
                    break;
                }
                let request = &data[used..used + end];
                io.write(RESPONSE);
                used += end + 4;
                let close = request
                    .split(|&b| b == b'\n')
                    .any(|l| l.to_ascii_lowercase().starts_with(b"connection: close"));
                if close {
                    io.close();
                    return data.len();
                }
            }
            used
        }
    }

    /// Sends back what it receives, as far as the send buffer takes it.
    pub(crate) struct Echo;

    impl App for Echo {
        type State = ();

        fn on_data(&mut self, _: &mut (), io: &mut Io<'_>, data: &[u8]) -> usize {
            io.write(data)
        }
    }

    /// Takes everything, says nothing.
    pub(crate) struct Discard;

    impl App for Discard {
        type State = ();

        fn on_data(&mut self, _: &mut (), _: &mut Io<'_>, data: &[u8]) -> usize {
            data.len()
        }
    }
}
