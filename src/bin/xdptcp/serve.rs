//! `xdptcp serve`: the AF_XDP data path until SIGINT/SIGTERM or `--duration`, a status line
//! every second and a final report.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant as StdInstant};

use anyhow::{Context, Result, anyhow, bail};
use clap::ValueEnum;

use xdptcp::app::discard::Discard;
use xdptcp::app::echo::Echo;
use xdptcp::app::http::{Http, HttpConfig, generated_body};
use xdptcp::control::control_loop::ControlLoop;
use xdptcp::control::cookie_secret::SecretFile;
use xdptcp::control::metrics::{self, MetricsEndpoint};
use xdptcp::control::stats_socket::{self, StatsSocket};
use xdptcp::control::{ServerInfo, status_json};
use xdptcp::output::{self, OutputDir};
use xdptcp::tcp::cc::Algorithm;
use xdptcp::tcp::{
    Config, Engine, FastOpen, Keepalive, Listener, RtoFormula, Secret, SynCookieMode,
};
use xdptcp::time::Instant;
use xdptcp::wire::ipv4::Repr as Ipv4Repr;
use xdptcp::xdp::gather::MAX_FRAME_LEN;
use xdptcp::xdp::privileges::{self, User};
use xdptcp::xdp::sys::{self, Interface};
use xdptcp::xdp::{
    CaptureConfig, CaptureLimit, Control, LinkMss, Server, ServerConfig, StartError, XdpMode,
};

use crate::memory_limit;
use crate::report::{report, write_hist};
use crate::{
    BindArg, Cores, DUMP, ModeArg, MultiBufferArg, STOP, install_signal_handlers, mode_of,
    parse_cores, parse_ring_size, parse_size, xsk_config,
};

/// The IPv4 header: `serve` takes both families and announces IPv4's MSS, as Linux's MTU - 40.
const IPV4_HEADER_LEN: usize = Ipv4Repr::HEADER_LEN;

/// The largest `--body-size` (the body is held in memory once, shared by every worker).
const MAX_BODY: u64 = 1 << 30;

#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// The interface (its MAC and MTU configure the engine).
    #[arg(long)]
    iface: String,
    /// A local address to serve (repeat for several); default: the interface's own IPv4 and
    /// IPv6 addresses, followed as they change.
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
    /// Congestion control (CUBIC, RFC 9438, as Linux; or NewReno, RFC 5681/6582).
    #[arg(long, value_enum, default_value_t = CongestionControl::Cubic)]
    cc: CongestionControl,
    /// Where the 200 ms RTO floor goes: on the variance term, RTO = SRTT + max(4 RTTVAR,
    /// 200 ms), as Linux; or on the RTO, max(SRTT + 4 RTTVAR, 200 ms), as RFC 6298.
    #[arg(long = "rto-formula", value_enum, default_value_t = RtoArg::Linux)]
    rto_formula: RtoArg,
    /// Nagle's algorithm on accepted connections (RFC 896, RFC 1122 §4.2.3.4, with Minshall's
    /// check as Linux's `tcp_nagle_check`): a segment shorter than the MSS waits while an
    /// earlier short one is unacknowledged. Off by default: connections start with
    /// `TCP_NODELAY`, as nginx sets it (the built-in apps write whole responses, so Nagle
    /// would only delay their last segment behind a delayed ACK).
    #[arg(long)]
    nagle: bool,
    /// Where the XDP program runs.
    #[arg(long = "xdp-mode", value_enum, default_value_t = ModeArg::Auto)]
    xdp_mode: ModeArg,
    /// How the AF_XDP sockets bind.
    #[arg(long, value_enum, default_value_t = BindArg::Auto)]
    bind: BindArg,
    /// Packets larger than a UMEM frame (AF_XDP multi-buffer, Linux 6.6+): a frags-aware XDP
    /// program and sockets bound with XDP_USE_SG, whose descriptor chains each worker gathers
    /// into one segment; on veth the peer's GSO is kept, so a kernel sender's 64 KiB segments
    /// arrive whole. `auto` falls back to single-buffer, with a log line, where the kernel
    /// refuses it.
    #[arg(long = "multi-buffer", value_enum, default_value_t = MultiBufferArg::Auto)]
    multi_buffer: MultiBufferArg,
    /// Entries in each AF_XDP ring (a power of two; four UMEM frames each). Deeper rings ride
    /// out longer stalls of the worker (a busy or virtualised CPU) without dropping frames.
    #[arg(long = "ring-size", value_parser = parse_ring_size, default_value_t = 2048)]
    ring_size: u32,
    /// On stop, keep serving existing connections this long (new ones are refused).
    #[arg(long = "drain-secs", default_value_t = 0)]
    drain_secs: u64,
    /// Stop by itself after this many seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// Write latency histograms (.hgrm, .svg) and summary.json here, on exit and on SIGUSR1.
    #[arg(long = "hist-out")]
    hist_out: Option<std::path::PathBuf>,
    /// Bytes of connection buffers (send, receive, reassembly, SACK scoreboards) all workers
    /// may hold together, e.g. 512MiB (B, KiB, MiB, GiB), shared equally among them. Above 2/3
    /// of it memory is under pressure (out-of-order data pruned, windows and send space held
    /// back); at it, buffers stop growing and new connections are refused. Default: what
    /// Linux's tcp_mem would allow on this machine (3/32 of its memory).
    #[arg(long = "memory-limit", value_name = "SIZE", value_parser = parse_size)]
    memory_limit: Option<u64>,
    /// TCP keepalive for accepted connections, as IDLE:INTERVAL:COUNT in seconds (e.g.
    /// 7200:75:9, Linux's defaults); off by default.
    #[arg(long, value_parser = parse_keepalive)]
    keepalive: Option<Keepalive>,
    /// TCP Fast Open (RFC 7413): take the data of a SYN with a valid cookie at once, at most
    /// this many such connections waiting for their handshake's last ACK (Linux's
    /// `TCP_FASTOPEN` queue); off by default. Cookies derive from the SYN-cookie secret and
    /// rotate with its keys, lasting one to two `--cookie-rotation-secs`.
    #[arg(long, value_name = "QLEN", value_parser = clap::value_parser!(u32).range(1..))]
    fastopen: Option<u32>,
    /// Serve Prometheus metrics on GET /metrics at this management address (kernel TCP, never
    /// the AF_XDP port), e.g. 127.0.0.1:9100.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<SocketAddr>,
    /// The unix socket `xdptcp stats` asks; default: /run/xdptcp/IFACE.sock (in
    /// $XDPTCP_STATS_DIR if set). One left by a server that is gone is replaced.
    #[arg(long = "stats-socket", value_name = "PATH")]
    stats_socket: Option<PathBuf>,
    /// Capture the frames the engine receives and sends into this pcap file (created mode
    /// 0600; an existing file is an error without --force).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Replace an existing --pcap file (never through a symbolic link).
    #[arg(long)]
    force: bool,
    /// After setup, switch to this user (and its groups); every capability is dropped after
    /// setup anyway. Its files: --cookie-secret-file must be readable by it, --hist-out
    /// writable (a directory xdptcp creates is given to it), and the stats socket's directory
    /// writable for the socket to be removed at exit.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Stop capturing after this many frames (a plain number) or file bytes (with a unit:
    /// B, KiB, MiB, GiB).
    #[arg(long = "pcap-limit", value_parser = parse_pcap_limit, default_value = "100000")]
    pcap_limit: CaptureLimit,
    /// HTTP: a generated body of this size (B, KiB, MiB, GiB), unique 16-byte lines
    /// (offset in hex, newline).
    #[arg(long = "body-size", value_name = "SIZE", value_parser = parse_size, conflicts_with = "body_file")]
    body_size: Option<u64>,
    /// HTTP: serve this file's contents as the body.
    #[arg(long = "body-file", value_name = "PATH")]
    body_file: Option<PathBuf>,
    /// HTTP: the Content-Type of the body.
    #[arg(
        long = "content-type",
        value_name = "TYPE",
        default_value = "text/plain"
    )]
    content_type: String,
    /// HTTP: close a connection whose request head is not complete this many seconds after
    /// its first byte (the first request's: after the handshake), as nginx's
    /// client_header_timeout; 0: never.
    #[arg(long = "header-timeout", value_name = "SECS", default_value_t = 60)]
    header_timeout: u64,
    /// HTTP: close a keep-alive connection idle this many seconds after its last response,
    /// as nginx's keepalive_timeout (TCP keepalive probes are --keepalive); 0: never.
    #[arg(long = "keepalive-timeout", value_name = "SECS", default_value_t = 75)]
    keepalive_timeout: u64,
    /// Seconds between SYN-cookie key rotations: the key of each period derives from the
    /// secret and the period's number on the wall clock (a cookie stays valid one period
    /// after the one it was made in).
    #[arg(long = "cookie-rotation-secs", value_name = "SECS", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..))]
    cookie_rotation_secs: u64,
    /// Derive SYN-cookie keys from this file (at least 32 bytes, e.g. `head -c 32
    /// /dev/urandom`) instead of a random secret, so that hosts sharing it validate each
    /// other's cookies (keep their clocks in sync). A regular file of at most 4 KiB, owned by
    /// root or the user xdptcp runs as, not writable by group or others; symlinks are not
    /// followed. Watched: a changed file replaces the secret; a bad one keeps the old secret
    /// and is reported.
    #[arg(long = "cookie-secret-file", value_name = "PATH")]
    cookie_secret_file: Option<PathBuf>,
    /// Read settings from this TOML file: the keys are these flags' long names (`port =
    /// 8080`, `addr = ["192.0.2.10"]`); flags given on the command line win.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

fn parse_pcap_limit(s: &str) -> Result<CaptureLimit, String> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(CaptureLimit::Frames)
            .map_err(|_| format!("bad --pcap-limit {s:?}: a frame count, or a size like 64MiB"));
    }
    parse_size(s).map(CaptureLimit::Bytes)
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

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum AppKind {
    Http,
    Echo,
    Discard,
}

impl AppKind {
    fn name(self) -> &'static str {
        match self {
            AppKind::Http => "http",
            AppKind::Echo => "echo",
            AppKind::Discard => "discard",
        }
    }
}

/// The HTTP app's configuration from `--body-size`, `--body-file` and `--content-type`.
fn http_config(args: &ServeArgs) -> Result<HttpConfig> {
    let http_only = args.body_size.is_some() || args.body_file.is_some();
    if args.app != AppKind::Http && http_only {
        bail!("--body-size and --body-file apply to --app http only");
    }
    let body = match (&args.body_file, args.body_size) {
        (Some(path), _) => std::fs::read(path)
            .map_err(|e| {
                anyhow!(
                    "cannot read --body-file {}: {e}; give a readable file, or --body-size N for a generated body",
                    path.display()
                )
            })?
            .into(),
        (None, Some(n)) if n > MAX_BODY => {
            bail!("--body-size {n} is larger than 1 GiB; serve a file with --body-file instead")
        }
        (None, Some(n)) => generated_body(n as usize),
        (None, None) => HttpConfig::default().body,
    };
    let secs = |n: u64| (n > 0).then(|| Duration::from_secs(n));
    Ok(HttpConfig {
        body,
        content_type: args.content_type.clone(),
        header_timeout: secs(args.header_timeout),
        keepalive_timeout: secs(args.keepalive_timeout),
        ..HttpConfig::default()
    })
}

/// The control thread's windows: the stats socket and, if asked for, the metrics endpoint.
struct Windows {
    stats: StatsSocket,
    metrics: Option<MetricsEndpoint>,
}

impl Windows {
    /// The metrics endpoint is bound before the data path starts (a taken address fails with
    /// the NIC untouched); the stats socket once it is set up, before privileges are dropped
    /// (a second server on the same interface is refused by its AF_XDP bind first, with the
    /// explanation that goes with it).
    fn bind_metrics(
        args: &ServeArgs,
        listeners: &[(Option<IpAddr>, u16)],
    ) -> Result<Option<MetricsEndpoint>> {
        Ok(args
            .metrics
            .map(|addr| MetricsEndpoint::bind(addr, listeners))
            .transpose()?)
    }

    fn bind_stats(args: &ServeArgs, metrics: Option<MetricsEndpoint>) -> Result<Windows> {
        let path = args
            .stats_socket
            .clone()
            .unwrap_or_else(|| stats_socket::default_path(&args.iface));
        let stats = StatsSocket::bind(&path)?;
        Ok(Windows { stats, metrics })
    }

    fn info(&self, app: AppKind, start: StdInstant, control: &ControlLoop) -> ServerInfo {
        let mut clients = vec![("stats_socket", self.stats.counters())];
        clients.extend(self.metrics.as_ref().map(|m| ("metrics", m.counters())));
        ServerInfo {
            uptime: start.elapsed(),
            app: app.name().to_string(),
            stats_socket: Some(self.stats.path().to_path_buf()),
            metrics: self.metrics.as_ref().and_then(|m| m.local_addr().ok()),
            xdp_tx_fallback: control.xdp_tx_fallback(),
            clients,
        }
    }

    /// Moves the clients of both endpoints on, without waiting; returns how many are still in
    /// progress.
    fn serve_pending(&mut self, server: &Server, info: &ServerInfo) -> usize {
        let now = sys::monotonic_now();
        let scrapes = self.metrics.as_mut().map_or(0, |m| {
            m.serve_pending(now, || metrics::render(server, info))
        });
        scrapes + self.stats.serve_pending(now, || status_json(server, info))
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum CongestionControl {
    Cubic,
    Newreno,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum RtoArg {
    Linux,
    Rfc6298,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Cookies {
    Always,
    Auto,
    Never,
}

/// The MSS for the interface's MTU and the frames the sockets take: one UMEM frame of those
/// `args` give them, or with multi-buffer a chain of them, up to the longest IP packet.
fn link_mss(args: &ServeArgs, iface: &Interface, multi_buffer: bool) -> Result<LinkMss> {
    let frame_len = if multi_buffer {
        MAX_FRAME_LEN
    } else {
        xsk_config(args.bind, args.ring_size).frame_len()?
    };
    Ok(LinkMss::new(iface.mtu, frame_len, IPV4_HEADER_LEN))
}

/// Says so when the frames, not the MTU, set the MSS.
fn warn_if_clamped(args: &ServeArgs, iface: &Interface, mss: LinkMss) {
    if mss.clamped() {
        let xsk = xsk_config(args.bind, args.ring_size);
        tracing::warn!(
            mtu = iface.mtu,
            frame_size = xsk.frame_size,
            mss = mss.mss,
            "the MTU ({}) is larger than a UMEM frame carries ({} bytes, single-buffer): announcing MSS {} instead of {}, so that full segments fit one frame",
            iface.mtu,
            mss.from_frame + 78,
            mss.mss,
            mss.from_mtu
        );
    }
}

/// The engine configuration for this interface and these arguments (`secret_file`: the
/// opened `--cookie-secret-file`).
fn engine_config(
    args: &ServeArgs,
    iface: &Interface,
    secret_file: Option<&SecretFile>,
) -> Result<Config> {
    let listeners = if args.addrs.is_empty() {
        vec![Listener {
            addr: None,
            port: args.port,
            keepalive: args.keepalive,
            fastopen: args.fastopen.map(FastOpen::with_queue),
            options: Default::default(),
        }]
    } else {
        args.addrs
            .iter()
            .map(|a| Listener {
                addr: Some(*a),
                port: args.port,
                keepalive: args.keepalive,
                fastopen: args.fastopen.map(FastOpen::with_queue),
                options: Default::default(),
            })
            .collect()
    };
    let memory_total = match args.memory_limit {
        Some(bytes) => bytes,
        None => memory_limit::machine_default()?,
    };
    let workers = args.queues.unwrap_or(iface.rx_queues);
    Ok(Config {
        local_mac: iface.mac,
        listeners,
        memory_limit: memory_limit::per_worker(memory_total, workers)?,
        syncookies: match args.syncookies {
            Cookies::Always => SynCookieMode::Always,
            Cookies::Auto => SynCookieMode::Auto,
            Cookies::Never => SynCookieMode::Never,
        },
        congestion_control: match args.cc {
            CongestionControl::Cubic => Algorithm::Cubic,
            CongestionControl::Newreno => Algorithm::NewReno,
        },
        rto_formula: match args.rto_formula {
            RtoArg::Linux => RtoFormula::Linux,
            RtoArg::Rfc6298 => RtoFormula::Rfc6298,
        },
        nodelay: !args.nagle,
        mss: link_mss(args, iface, false)?.mss,
        // Several queues: a flow may show up on a worker that does not own it (veth can move
        // a flow between queues); drop such segments rather than reset someone else's flow.
        reset_unknown: args.queues.unwrap_or(iface.rx_queues) <= 1,
        secret: Secret(sys::random_bytes().context("reading /dev/urandom")?),
        cookie_secret: secret_file.map(SecretFile::secret),
        cookie_rotation: Duration::from_secs(args.cookie_rotation_secs),
        cookie_clock_offset_us: sys::wall_clock_offset_us(),
        ..Config::default()
    })
}

pub(crate) fn serve(args: ServeArgs) -> Result<()> {
    sys::check_privileges()?;
    let iface = Interface::lookup(&args.iface)?;
    let user = args.user.as_deref().map(User::lookup).transpose()?;
    // The file is read again every second by the user the server becomes.
    let owner = user
        .as_ref()
        .map_or_else(|| output::effective_ids().0, |u| u.uid);
    let secret_file = args
        .cookie_secret_file
        .as_deref()
        .map(|path| SecretFile::open_owned_by(path, owner))
        .transpose()?;
    if let Some(f) = secret_file.as_ref().filter(|f| f.readable_by_others()) {
        tracing::warn!(
            path = %f.path().display(),
            "the SYN-cookie secret file is readable by others (chmod 600 it)"
        );
    }
    let writer = user
        .as_ref()
        .map_or_else(output::effective_ids, |u| (u.uid, u.gid));
    let hist = args
        .hist_out
        .as_deref()
        .map(|dir| OutputDir::open(dir, writer))
        .transpose()?;
    let engine = engine_config(&args, &iface, secret_file.as_ref())?;
    tracing::info!(
        per_worker = engine.memory_limit,
        "memory budget for connection buffers: {} MiB per worker",
        engine.memory_limit >> 20
    );
    let http = Arc::new(http_config(&args)?);
    let listeners: Vec<_> = engine.listeners.iter().map(|l| (l.addr, l.port)).collect();
    let metrics = Windows::bind_metrics(&args, &listeners)?;
    let now = sys::monotonic_now();
    let mut windows = None;
    let mut metrics = Some(metrics);
    let mut setup_done = || -> Result<()> {
        let metrics = metrics.take().expect("set up once");
        // From the moment the stats socket exists, SIGTERM and SIGINT stop the control loop,
        // whose return removes it (their default action would leave it behind).
        install_signal_handlers();
        let bound = Windows::bind_stats(&args, metrics)?;
        drop_privileges(user.as_ref(), &bound, secret_file.as_ref())?;
        windows = Some(bound);
        Ok(())
    };
    // `auto`: multi-buffer, whose MSS may be larger (jumbo MTUs); single-buffer, with a log
    // line and the MSS of one frame, where the kernel refuses it. Nothing is set up before
    // the refusal, so the second try starts afresh.
    let tries: &[bool] = match args.multi_buffer {
        MultiBufferArg::On => &[true],
        MultiBufferArg::Off => &[false],
        MultiBufferArg::Auto => &[true, false],
    };
    let mut started = None;
    for (i, &multi_buffer) in tries.iter().enumerate() {
        let mss = link_mss(&args, &iface, multi_buffer)?;
        let engine = Config {
            mss: mss.mss,
            ..engine.clone()
        };
        let server_config = ServerConfig {
            queues: args.queues,
            cores: args.cores.clone().map(|c| c.0),
            xdp_mode: mode_of(args.xdp_mode),
            xsk: xsk_config(args.bind, args.ring_size),
            multi_buffer,
            capture: args.pcap.clone().map(|path| CaptureConfig {
                path,
                limit: args.pcap_limit,
                overwrite: args.force,
            }),
            ..ServerConfig::for_engine(&args.iface, &engine, now)
        };
        match start_app(&args, server_config, engine, &http, now, &mut setup_done) {
            Ok(server) => {
                warn_if_clamped(&args, &iface, mss);
                started = Some(server);
                break;
            }
            Err(e) if i + 1 < tries.len() && e.multi_buffer_refused() => {
                tracing::warn!(error = %e, "multi-buffer refused by the kernel; single-buffer, MSS of one UMEM frame");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let server = started.expect("the last try returns");
    let windows = windows.expect("set up before the workers start");
    run(server, &args, windows, secret_file, hist.as_ref())
}

/// Starts the data path with the engines of `args.app`.
fn start_app(
    args: &ServeArgs,
    config: ServerConfig,
    engine: Config,
    http: &Arc<HttpConfig>,
    now: Instant,
    setup_done: impl FnOnce() -> Result<()>,
) -> Result<Server, StartError> {
    match args.app {
        AppKind::Http => {
            let http = Arc::clone(http);
            Server::start_then(
                config,
                move |_| Engine::new(engine.clone(), Http::new((*http).clone()), now),
                setup_done,
            )
        }
        AppKind::Echo => Server::start_then(
            config,
            move |_| Engine::new(engine.clone(), Echo::default(), now),
            setup_done,
        ),
        AppKind::Discard => Server::start_then(
            config,
            move |_| Engine::new(engine.clone(), Discard::default(), now),
            setup_done,
        ),
    }
}

/// The privileges step of the start: with the data path, the stats socket and every output
/// set up, and before any thread runs, drop every capability (and switch to `--user`); then
/// make sure the files the server still opens are open to what it has become.
fn drop_privileges(
    user: Option<&User>,
    windows: &Windows,
    secret_file: Option<&SecretFile>,
) -> Result<()> {
    let privileges::Dropped { before, after } = privileges::drop_privileges(user)?;
    tracing::info!(
        "privileges dropped: uid {} -> {}, CapEff {:016x} -> {:016x}, NoNewPrivs {}",
        before.uid[1],
        after.uid[1],
        before.cap_eff,
        after.cap_eff,
        u8::from(after.no_new_privs)
    );
    if let Some(f) = secret_file {
        // It is read again every second from now on, by what the server has become.
        std::fs::File::open(f.path()).with_context(|| {
            format!(
                "the SYN-cookie secret file {} is not readable once privileges are dropped{}: make it readable by that user",
                f.path().display(),
                user.map(|u| format!(" (to user {})", u.name))
                    .unwrap_or_default()
            )
        })?;
    }
    let dir = windows.stats.path().parent().unwrap_or(Path::new("."));
    if !sys::writable(dir) {
        tracing::warn!(
            dir = %dir.display(),
            "the stats socket's directory is not writable now: the socket will be left behind at exit (the next server replaces it); give --user a directory of its own (systemd: RuntimeDirectory=)"
        );
    }
    Ok(())
}

fn run(
    mut server: Server,
    args: &ServeArgs,
    mut windows: Windows,
    secret_file: Option<SecretFile>,
    hist: Option<&OutputDir>,
) -> Result<()> {
    let start = StdInstant::now();
    let mut control = ControlLoop::new(sys::monotonic_now(), secret_file);
    announce(&server, args, &windows, start, &control);
    let deadline = args.duration.map(|d| start + Duration::from_secs(d));
    let mut next_status = start + Duration::from_secs(1);
    let mut last = (0u64, 0u64, start);
    let mut draining_until: Option<StdInstant> = None;
    let mut clients_in_progress = 0;
    loop {
        // Nothing below blocks: each turn takes this wait and a bounded amount of work, so
        // signals, the cookie keys and the addresses keep their period. Clients in progress
        // are polled often, so that an answer goes out as fast as its client reads it.
        // The control poll first: from the first turn on, the cookie keys keep up.
        for event in control.poll(sys::monotonic_now(), &mut server) {
            event.log();
        }
        let wait = if clients_in_progress > 0 { 5 } else { 50 };
        server.collect(Duration::from_millis(wait));
        // A dead worker stops the server: dropping it detaches XDP, and the stats socket goes
        // with `windows` on the way out (see `Server::supervise`).
        server.supervise().map_err(|died| {
            anyhow!("{died}; stopped the server (XDP detached) for a supervisor to restart it")
        })?;
        let info = windows.info(args.app, start, &control);
        clients_in_progress = windows.serve_pending(&server, &info);
        let now = StdInstant::now();
        let stop_asked = STOP.load(Ordering::SeqCst) || deadline.is_some_and(|d| now >= d);
        if stop_asked && draining_until.is_none() {
            server.broadcast(Control::StopAccepting);
            draining_until = Some(now + Duration::from_secs(args.drain_secs));
            tracing::info!(drain_secs = args.drain_secs, "stopping: no new connections");
        }
        if draining_until.is_some_and(|d| now >= d) {
            break;
        }
        if DUMP.swap(false, Ordering::SeqCst) {
            if let Some(dir) = hist {
                let elapsed = now.duration_since(start);
                let xdp = server.xdp_counters().unwrap_or_default();
                match write_hist(dir, server.latencies(), &server.totals(), &xdp, elapsed) {
                    Ok(()) => tracing::info!(dir = %dir.path().display(), "histograms written"),
                    Err(e) => tracing::error!("SIGUSR1: {e:#}"),
                }
            }
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
    finish(server, args, hist, start.elapsed())
}

/// The log lines that say what is being served and how to watch it.
fn announce(
    server: &Server,
    args: &ServeArgs,
    windows: &Windows,
    start: StdInstant,
    control: &ControlLoop,
) {
    tracing::info!(
        "serving port {} on {} ({} queue(s), XDP {:?}, {} mode, {}-buffer, app {}); status: xdptcp stats --socket {}{}; stop with Ctrl-C{}",
        args.port,
        server.interface().name,
        server.workers(),
        server.xdp_mode().unwrap_or(XdpMode::Auto),
        if server.zero_copy() {
            "zero-copy"
        } else {
            "copy"
        },
        if server.multi_buffer() {
            "multi"
        } else {
            "single"
        },
        args.app.name(),
        windows.stats.path().display(),
        windows
            .info(args.app, start, control)
            .metrics
            .map(|a| format!("; metrics: http://{a}/metrics"))
            .unwrap_or_default(),
        args.duration
            .map(|d| format!(" or after {d} s"))
            .unwrap_or_default()
    );
    if !server.own_addresses().is_empty() {
        let addrs: Vec<String> = server
            .own_addresses()
            .iter()
            .map(|a| a.to_string())
            .collect();
        tracing::info!(addresses = %addrs.join(" "), "serving the interface's own addresses");
    }
}

/// Stops the server and reports: the final report, the capture's outcome, the histograms.
fn finish(
    server: Server,
    args: &ServeArgs,
    hist: Option<&OutputDir>,
    elapsed: Duration,
) -> Result<()> {
    let fin = server.stop();
    tracing::info!(
        elapsed_s = elapsed.as_secs_f64(),
        "stopped; XDP program detached"
    );
    report(&fin.totals, &fin.xdp, elapsed);
    eprintln!("latency: {}", fin.latencies.one_line());
    match (&fin.capture, &args.pcap) {
        (Some(Ok(c)), Some(path)) => eprintln!(
            "pcap: {} frame(s), {} bytes written to {}{}; {} frame(s) dropped (queue full)",
            c.written_frames,
            c.written_bytes,
            path.display(),
            if c.limit_reached {
                " (limit reached)"
            } else {
                ""
            },
            fin.totals.capture.dropped
        ),
        (Some(Err(e)), Some(path)) => {
            tracing::error!(path = %path.display(), error = %e, "pcap write failed")
        }
        _ => {}
    }
    if let Some(dir) = hist {
        write_hist(dir, &fin.latencies, &fin.totals, &fin.xdp, elapsed)?;
        tracing::info!(dir = %dir.path().display(), "histograms written");
    }
    Ok(())
}
