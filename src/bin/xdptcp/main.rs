//! `xdptcp`: the command line. `xdptcp serve --iface IF --port P ...` runs the AF_XDP data path
//! until SIGINT/SIGTERM or `--duration`, printing a status line every second and a final report.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand, ValueEnum};

use xdptcp::xdp::{BindMode, XdpMode, XskConfig};

mod load;
mod report;
mod serve;

use load::LoadArgs;
use serve::ServeArgs;

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
        Command::Serve(args) => serve::serve(args),
        Command::Load(args) => load::load(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xdptcp: {e:#}");
            ExitCode::FAILURE
        }
    }
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
}
