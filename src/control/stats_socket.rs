//! The stats socket: a unix stream socket on which a running server answers every connection
//! with its status (one JSON object, [`crate::control::status_json`]) and closes. `xdptcp
//! stats` is its client ([`query`], [`discover`]).
//!
//! One socket per served interface (default [`default_path`]), so two servers never clash; a
//! second server for the same path is refused while the first answers. Nothing is left behind
//! for the next user: the server removes its socket file on every exit that runs destructors
//! ([`StatsSocket`] owns it); a file left by a server that could not (SIGKILL, a crash) is
//! *stale* — the kernel refuses connections to it — and is replaced by the next server for
//! that path, and removed by `xdptcp stats` when it looks for servers. Only a refused connect
//! counts as stale: a server too busy to accept (its backlog full) is alive. Probing, removing
//! and binding happen under an exclusive `flock` of the socket's directory, so that a client
//! never removes a socket a new server has just put in the stale one's place.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::control::clients::{ClientCounters, Clients};
use crate::time::Instant;

/// Where the sockets live by default (the environment variable [`DIR_VARIABLE`] overrides it).
pub const DEFAULT_DIR: &str = "/run/xdptcp";
/// The environment variable that, when set, replaces [`DEFAULT_DIR`] for `serve` and `stats`
/// alike (tests use a directory of their own).
pub const DIR_VARIABLE: &str = "XDPTCP_STATS_DIR";
/// How long `xdptcp stats` may take to connect and read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The directory the sockets live in: `$XDPTCP_STATS_DIR`, or [`DEFAULT_DIR`].
pub fn default_dir() -> PathBuf {
    std::env::var_os(DIR_VARIABLE)
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from)
}

/// The default socket of the server on `iface`: `/run/xdptcp/IFACE.sock` (in
/// [`default_dir`]).
pub fn default_path(iface: &str) -> PathBuf {
    default_dir().join(format!("{iface}.sock"))
}

/// Why the stats socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StatsSocketError {
    /// Another server answers on that path.
    #[error(
        "another xdptcp already answers on the stats socket {path} (serving the same interface?); stop it, or give this one --stats-socket PATH"
    )]
    InUse {
        /// The socket.
        path: PathBuf,
    },
    /// Something that is not a socket is in the way.
    #[error("{path} exists and is not a socket; remove it, or give --stats-socket another PATH")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The directory or the socket could not be made.
    #[error(
        "cannot create the stats socket {path}: {source}; run as root (for /run) or give --stats-socket a writable PATH"
    )]
    Create {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Why `xdptcp stats` got no status.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Nothing at that path.
    #[error(
        "no xdptcp server is running for this socket: {path} does not exist; start one with `xdptcp serve --iface IFACE ...` (or give --socket the path it printed)"
    )]
    NoSocket {
        /// The socket.
        path: PathBuf,
    },
    /// A socket file, but nobody listens behind it.
    #[error(
        "no xdptcp server behind {path}: the socket is left over from a server that is gone (killed?){}; start one with `xdptcp serve`",
        if *removed { ", and was removed" } else { "" }
    )]
    NoServer {
        /// The socket.
        path: PathBuf,
        /// Whether the stale file was removed.
        removed: bool,
    },
    /// Not allowed to connect.
    #[error("not allowed to connect to {path}: {source}; run `xdptcp stats` as root")]
    Permission {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The connection failed some other way, or the server's answer was not JSON.
    #[error("reading the status from {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// What a connection attempt says about the server behind a socket path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// A server listens: it took the connection, or its backlog is full (busy, not gone).
    Live,
    /// A socket file nobody listens on: its server is gone without removing it.
    Stale,
    /// Nothing at the path, or something that is not a socket.
    NoSocket,
    /// The attempt failed otherwise (e.g. not allowed to connect): it may well be alive.
    Unknown(io::ErrorKind),
}

/// Connects to the unix socket `path` without blocking: `Ok` once connected; `WouldBlock` when
/// the listener's backlog is full.
fn connect_nonblocking(path: &Path) -> io::Result<OwnedFd> {
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain old data; all zeroes is a valid (empty) value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a usable unix socket path (empty, too long, or with a NUL)",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: socket(2) has no memory preconditions; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    // SAFETY: `addr` is a valid sockaddr_un, NUL-terminated within `len` bytes (checked above).
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&raw const addr).cast::<libc::sockaddr>(),
            len as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Whether a server listens behind `path`. Never waits: a busy server is [`Probe::Live`].
pub fn probe(path: &Path) -> Probe {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {}
        _ => return Probe::NoSocket,
    }
    match connect_nonblocking(path) {
        Ok(_) => Probe::Live,
        Err(e) => match e.kind() {
            io::ErrorKind::WouldBlock => Probe::Live,
            io::ErrorKind::ConnectionRefused => Probe::Stale,
            io::ErrorKind::NotFound => Probe::NoSocket,
            kind => Probe::Unknown(kind),
        },
    }
}

/// An exclusive `flock` of a directory, held while sockets in it are probed, removed or bound.
struct DirLock {
    _file: File,
}

impl DirLock {
    fn new(dir: &Path) -> io::Result<DirLock> {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let f = File::open(dir)?;
        // SAFETY: flock(2) on a descriptor we own; blocks only while another xdptcp probes or
        // binds (a nonblocking connect, an unlink, a bind: microseconds).
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(DirLock { _file: f })
    }
}

/// The directory `path` lives in.
fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Removes `path` if it is still a stale socket (probed under the directory lock). Returns
/// whether it removed it.
pub fn remove_if_stale(path: &Path) -> io::Result<bool> {
    let _lock = DirLock::new(parent(path))?;
    if probe(path) != Probe::Stale {
        return Ok(false);
    }
    std::fs::remove_file(path)?;
    Ok(true)
}

/// The stats sockets found in `dir`, sorted: the live ones (and those that may be: not
/// allowed to ask), and the stale ones, which were removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Sockets a server listens on (or may).
    pub live: Vec<PathBuf>,
    /// Sockets nobody listened on, removed.
    pub removed: Vec<PathBuf>,
}

/// Looks for servers: every `*.sock` socket in `dir` is probed; stale ones are removed.
pub fn discover(dir: &Path) -> io::Result<Discovered> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Discovered::default()),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect();
    paths.sort();
    let _lock = DirLock::new(dir)?;
    let mut found = Discovered::default();
    for path in paths {
        match probe(&path) {
            Probe::NoSocket => {}
            Probe::Stale => {
                std::fs::remove_file(&path)?;
                found.removed.push(path);
            }
            Probe::Live | Probe::Unknown(_) => found.live.push(path),
        }
    }
    Ok(found)
}

/// The listening stats socket and the queries in progress (each has
/// [`crate::control::clients::CLIENT_DEADLINE`] to read its answer). It owns the socket file:
/// dropping it (any exit that unwinds or returns: a normal stop, SIGTERM or SIGINT through the
/// control loop, an error after the socket was made, a panic) removes the file, if it is still
/// the one it made.
#[derive(Debug)]
pub struct StatsSocket {
    listener: UnixListener,
    path: PathBuf,
    clients: Clients<UnixStream>,
    /// The socket file's device and inode, to remove only our own file.
    file: (u64, u64),
}

impl StatsSocket {
    /// Listens on `path`, creating its directory. A socket file nobody answers on (left by a
    /// server that was killed) is replaced; one a server listens on is refused.
    pub fn bind(path: &Path) -> Result<StatsSocket, StatsSocketError> {
        let create = |source| StatsSocketError::Create {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(parent(path)).map_err(create)?;
        let _lock = DirLock::new(parent(path)).map_err(create)?;
        match probe(path) {
            Probe::NoSocket if std::fs::symlink_metadata(path).is_ok() => {
                return Err(StatsSocketError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
            Probe::NoSocket => {}
            Probe::Stale => std::fs::remove_file(path).map_err(create)?,
            Probe::Live | Probe::Unknown(_) => {
                return Err(StatsSocketError::InUse {
                    path: path.to_path_buf(),
                });
            }
        }
        let listener = UnixListener::bind(path).map_err(create)?;
        listener.set_nonblocking(true).map_err(create)?;
        let meta = std::fs::symlink_metadata(path).map_err(create)?;
        Ok(StatsSocket {
            listener,
            path: path.to_path_buf(),
            clients: Clients::new("stats socket", |_| true),
            file: (meta.dev(), meta.ino()),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the queries on as far as their sockets allow, without waiting: takes in new
    /// ones, answers each with `status()` (a client sends nothing), closes those done or past
    /// their deadline. Returns how many are still in progress.
    pub fn serve_pending(&mut self, now: Instant, status: impl Fn() -> serde_json::Value) -> usize {
        self.clients.poll(now, &self.listener, |_| {
            (status().to_string() + "\n").into_bytes()
        })
    }

    /// What became of the queries so far.
    pub fn counters(&self) -> ClientCounters {
        self.clients.counters()
    }
}

impl Drop for StatsSocket {
    fn drop(&mut self) {
        // Removed while the listener is still open, so that no one takes it for stale and
        // puts another in its place in between.
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file);
        if !ours {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the stats socket");
        }
    }
}

/// Asks the server behind `path` for its status. A stale socket (its server gone) is removed
/// on the way ([`QueryError::NoServer`] says so).
pub fn query(path: &Path) -> Result<serde_json::Value, QueryError> {
    let p = || path.to_path_buf();
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    let fd = loop {
        match connect_nonblocking(path) {
            Ok(fd) => break fd,
            // A busy server (backlog full): try again, within the deadline.
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(source) => {
                return Err(match source.kind() {
                    io::ErrorKind::NotFound => QueryError::NoSocket { path: p() },
                    io::ErrorKind::ConnectionRefused => QueryError::NoServer {
                        removed: remove_if_stale(path).unwrap_or(false),
                        path: p(),
                    },
                    io::ErrorKind::PermissionDenied => QueryError::Permission { path: p(), source },
                    _ => QueryError::Io { path: p(), source },
                });
            }
        }
    };
    let io_error = |source| QueryError::Io { path: p(), source };
    let mut stream = UnixStream::from(fd);
    stream.set_nonblocking(false).map_err(io_error)?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(io_error)?;
    let mut text = String::new();
    stream.read_to_string(&mut text).map_err(io_error)?;
    serde_json::from_str(&text).map_err(|e| QueryError::Io {
        path: p(),
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("xdptcp-stats-{name}-{}.sock", std::process::id()))
    }

    #[test]
    fn the_default_path_is_per_interface_under_run() {
        assert_eq!(default_path("eth1"), PathBuf::from("/run/xdptcp/eth1.sock"));
        assert_ne!(default_path("eth1"), default_path("eth2"));
    }

    #[test]
    fn a_query_gets_the_status_and_the_file_goes_with_the_socket() {
        let path = temp("query");
        let mut socket = StatsSocket::bind(&path).unwrap();
        let client = {
            let path = path.clone();
            std::thread::spawn(move || query(&path))
        };
        for _ in 0..500 {
            let now = crate::xdp::sys::monotonic_now();
            socket.serve_pending(now, || serde_json::json!({ "pid": 7 }));
            if socket.counters().answered > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(client.join().unwrap().unwrap()["pid"], 7);
        drop(socket);
        assert!(!path.exists());
    }

    #[test]
    fn a_second_server_on_a_live_socket_is_refused() {
        let path = temp("live");
        let _first = StatsSocket::bind(&path).unwrap();
        let err = StatsSocket::bind(&path).unwrap_err();
        assert!(matches!(err, StatsSocketError::InUse { .. }), "{err}");
        assert!(err.to_string().contains("--stats-socket"), "{err}");
    }

    /// A directory of the test's own, empty.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xdptcp-stats-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A socket file whose listener went away without removing it, as after SIGKILL.
    fn stale(path: &Path) {
        let _ = std::fs::remove_file(path);
        drop(UnixListener::bind(path).unwrap());
    }

    /// A listener that accepts nothing and whose backlog is full: a server too busy to answer.
    fn busy(path: &Path) -> (UnixListener, Vec<UnixStream>) {
        let l = UnixListener::bind(path).unwrap();
        // SAFETY: listen(2) again on a listening socket we own, to shrink its backlog to 0.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
        let mut held = Vec::new();
        while let Ok(fd) = connect_nonblocking(path) {
            held.push(UnixStream::from(fd));
            assert!(held.len() < 16, "the backlog never filled");
        }
        (l, held)
    }

    #[test]
    fn a_socket_left_by_a_dead_server_is_explained_to_the_client_removed_and_replaced() {
        let path = temp("stale");
        stale(&path);
        assert_eq!(probe(&path), Probe::Stale);
        let err = query(&path).unwrap_err();
        assert!(
            matches!(err, QueryError::NoServer { removed: true, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("no xdptcp server behind"), "{err}");
        assert!(err.to_string().contains("was removed"), "{err}");
        assert!(!path.exists());
        stale(&path);
        let socket = StatsSocket::bind(&path).expect("the next server replaces a stale socket");
        assert_eq!(probe(&path), Probe::Live);
        drop(socket);
        assert_eq!(probe(&path), Probe::NoSocket);
    }

    #[test]
    fn discovery_removes_stale_sockets_and_keeps_live_busy_and_foreign_files() {
        let dir = temp_dir("discover");
        let live = StatsSocket::bind(&dir.join("live.sock")).unwrap();
        let (_busy, _held) = busy(&dir.join("busy.sock"));
        stale(&dir.join("gone.sock"));
        std::fs::write(dir.join("notes.sock"), b"not a socket").unwrap();
        stale(&dir.join("other.socket"));
        let found = discover(&dir).unwrap();
        assert_eq!(
            found,
            Discovered {
                live: vec![dir.join("busy.sock"), dir.join("live.sock")],
                removed: vec![dir.join("gone.sock")],
            }
        );
        assert!(!dir.join("gone.sock").exists());
        assert!(dir.join("notes.sock").exists(), "only sockets are removed");
        assert!(
            dir.join("other.socket").exists(),
            "only *.sock is looked at"
        );
        assert_eq!(
            discover(&dir.join("nonexistent")).unwrap(),
            Discovered::default()
        );
        drop(live);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_busy_server_is_alive_for_the_next_server_and_for_the_client() {
        let path = temp("busy");
        let _ = std::fs::remove_file(&path);
        let (listener, held) = busy(&path);
        assert_eq!(probe(&path), Probe::Live);
        let err = StatsSocket::bind(&path).unwrap_err();
        assert!(matches!(err, StatsSocketError::InUse { .. }), "{err}");
        assert!(!remove_if_stale(&path).unwrap());
        assert!(path.exists());
        drop((listener, held));
        assert_eq!(probe(&path), Probe::Stale);
        assert!(remove_if_stale(&path).unwrap());
    }

    #[test]
    fn a_server_removes_only_its_own_socket_file() {
        let path = temp("own");
        let _ = std::fs::remove_file(&path);
        let first = StatsSocket::bind(&path).unwrap();
        // Someone removed our file and put another socket there.
        std::fs::remove_file(&path).unwrap();
        let other = UnixListener::bind(&path).unwrap();
        drop(first);
        assert_eq!(probe(&path), Probe::Live, "the other socket stays");
        drop(other);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn no_socket_at_all_says_no_server_runs() {
        let err = query(Path::new("/nonexistent-dir/x.sock")).unwrap_err();
        assert!(matches!(err, QueryError::NoSocket { .. }), "{err}");
        assert!(err.to_string().contains("xdptcp serve"), "{err}");
    }

    #[test]
    fn a_regular_file_in_the_way_is_not_removed() {
        let path = temp("file");
        std::fs::write(&path, b"keep me").unwrap();
        let err = StatsSocket::bind(&path).unwrap_err();
        assert!(matches!(err, StatsSocketError::NotASocket { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        let _ = std::fs::remove_file(&path);
    }
}
