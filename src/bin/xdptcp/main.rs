//! `xdptcp`: the command line. `xdptcp serve --iface IF --port P ...` runs the AF_XDP data path
//! until SIGINT/SIGTERM or `--duration`, printing a status line every second and a final report;
//! `xdptcp stats` asks a running server for its counters; `xdptcp load` generates load.
//!
//! Logs of the control plane go through `tracing` to stderr, filtered by `RUST_LOG` (default
//! `info`); the status lines and the final report are printed as they are.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand, ValueEnum};

use xdptcp::xdp::{BindMode, XdpMode, XskConfig};

mod config;
mod load;
mod memory_limit;
mod report;
mod serve;
mod stats;

use load::LoadArgs;
use serve::ServeArgs;
use stats::StatsArgs;

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
    /// Ask a running server for its connections by state and its counters.
    Stats(StatsArgs),
}

#[derive(Debug, Clone)]
pub(crate) struct Cores(pub(crate) Vec<usize>);

pub(crate) fn parse_cores(s: &str) -> Result<Cores, String> {
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

/// A size in bytes: a number with an optional unit, `B`, `KiB`/`K`, `MiB`/`M`, `GiB`/`G`
/// (powers of 1024), e.g. `512`, `64KiB`, `100MiB`.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("bad size {s:?}: use e.g. 4096, 64KiB, 100MiB or 1GiB");
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(digits);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum ModeArg {
    Auto,
    Native,
    Generic,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
#[value(rename_all = "kebab-case")]
pub(crate) enum BindArg {
    Auto,
    ZeroCopy,
    Copy,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum MultiBufferArg {
    Auto,
    On,
    Off,
}

pub(crate) static STOP: AtomicBool = AtomicBool::new(false);
pub(crate) static DUMP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGUSR1 {
        DUMP.store(true, Ordering::SeqCst);
    } else {
        STOP.store(true, Ordering::SeqCst);
    }
}

pub(crate) fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
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
    init_logs();
    let argv = match config::merge(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("xdptcp: {e:#}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(argv);
    let result = match cli.command {
        Command::Serve(args) => serve::serve(args),
        Command::Load(args) => load::load(args),
        Command::Stats(args) => stats::stats(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xdptcp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Control-plane logs on stderr, filtered by `RUST_LOG` (e.g. `RUST_LOG=debug`,
/// `RUST_LOG=xdptcp=warn`, `RUST_LOG=off`); `info` when unset.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

pub(crate) fn mode_of(arg: ModeArg) -> XdpMode {
    match arg {
        ModeArg::Auto => XdpMode::Auto,
        ModeArg::Native => XdpMode::Native,
        ModeArg::Generic => XdpMode::Generic,
    }
}

/// Parses `--ring-size`: entries in each AF_XDP ring, a power of two from 64 to 32768.
pub(crate) fn parse_ring_size(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|_| format!("bad ring size {s:?}: use a power of two, e.g. 2048"))?;
    if !n.is_power_of_two() || !(64..=32768).contains(&n) {
        return Err(format!(
            "ring size {n}: use a power of two from 64 to 32768"
        ));
    }
    Ok(n)
}

/// The AF_XDP sizes for `--ring-size` and `--bind`: four 4 KiB UMEM frames per ring entry, so
/// a full fill, RX and TX ring fit at once (the default 2048 gives 8192 frames, 32 MiB).
pub(crate) fn xsk_config(bind: BindArg, ring_size: u32) -> XskConfig {
    XskConfig {
        ring_size,
        frames: ring_size * 4,
        bind: bind_of(bind),
        ..XskConfig::default()
    }
}

pub(crate) fn bind_of(arg: BindArg) -> BindMode {
    match arg {
        BindArg::Auto => BindMode::Auto,
        BindArg::ZeroCopy => BindMode::ZeroCopy,
        BindArg::Copy => BindMode::Copy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent_and_takes_every_load_option() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "xdptcp",
            "load",
            "--iface",
            "x",
            "--target",
            "[fd00::1]:80",
            "--mode",
            "keepalive",
            "--connections",
            "200000",
            "--sources",
            "fd00::100/126",
            "--interval",
            "5",
            "--late-ms",
            "1000",
            "--queues",
            "2",
            "--cores",
            "0,1",
            "--ports",
            "1024-65535",
            "--ring-size",
            "8192",
        ])
        .expect("a keep-alive open-loop command line parses");
        assert!(matches!(cli.command, Command::Load(_)));
        let serve = Cli::try_parse_from([
            "xdptcp",
            "serve",
            "--iface",
            "x",
            "--port",
            "80",
            "--ring-size",
            "8192",
        ]);
        assert!(serve.is_ok());
    }

    #[test]
    fn ring_sizes_are_powers_of_two_in_range_and_get_four_frames_per_entry() {
        assert_eq!(parse_ring_size("8192"), Ok(8192));
        assert!(parse_ring_size("3000").is_err());
        assert!(parse_ring_size("32").is_err());
        assert!(parse_ring_size("65536").is_err());
        assert!(parse_ring_size("lots").is_err());
        let x = xsk_config(BindArg::Auto, 2048);
        let d = XskConfig::default();
        assert_eq!(
            (x.frames, x.ring_size, x.frame_size),
            (d.frames, d.ring_size, d.frame_size)
        );
    }

    #[test]
    fn sizes_take_binary_units_and_refuse_anything_else() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10B"), Ok(10));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("100MiB"), Ok(100 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        for bad in [
            "",
            "MiB",
            "1.5MiB",
            "10 parsecs",
            "-1",
            "99999999999999999999GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
