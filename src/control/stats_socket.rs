//! The stats socket: a unix stream socket on which a running server answers every connection
//! with its status (one JSON object, [`crate::control::status_json`]) and closes. `xdptcp
//! stats` is its client ([`query`]).
//!
//! One socket per served interface (default [`default_path`]), so two servers never clash; a
//! second server for the same path is refused while the first answers, and a file left behind
//! by a server that was killed is replaced.

use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::control::clients::{ClientCounters, Clients};
use crate::time::Instant;

/// Where the sockets live by default.
pub const DEFAULT_DIR: &str = "/run/xdptcp";
/// How long `xdptcp stats` waits for the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The default socket of the server on `iface`: `/run/xdptcp/IFACE.sock`.
pub fn default_path(iface: &str) -> PathBuf {
    Path::new(DEFAULT_DIR).join(format!("{iface}.sock"))
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
        "no xdptcp server behind {path}: the socket is left over from a server that is gone (killed?); start one with `xdptcp serve`, or remove the file"
    )]
    NoServer {
        /// The socket.
        path: PathBuf,
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

/// The listening stats socket and the queries in progress (each has
/// [`crate::control::clients::CLIENT_DEADLINE`] to read its answer). Dropping it removes the
/// socket file.
#[derive(Debug)]
pub struct StatsSocket {
    listener: UnixListener,
    path: PathBuf,
    clients: Clients<UnixStream>,
}

impl StatsSocket {
    /// Listens on `path`, creating its directory. A socket file nobody answers on (left by a
    /// server that was killed) is replaced; one that answers is another server's: refused.
    pub fn bind(path: &Path) -> Result<StatsSocket, StatsSocketError> {
        let create = |source| StatsSocketError::Create {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(create)?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(StatsSocketError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
            Ok(_) => match UnixStream::connect(path) {
                Ok(_) => {
                    return Err(StatsSocketError::InUse {
                        path: path.to_path_buf(),
                    });
                }
                Err(_) => std::fs::remove_file(path).map_err(create)?,
            },
            Err(_) => {}
        }
        let listener = UnixListener::bind(path).map_err(create)?;
        listener.set_nonblocking(true).map_err(create)?;
        Ok(StatsSocket {
            listener,
            path: path.to_path_buf(),
            clients: Clients::new("stats socket", |_| true),
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
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Asks the server behind `path` for its status.
pub fn query(path: &Path) -> Result<serde_json::Value, QueryError> {
    let p = || path.to_path_buf();
    let mut stream = UnixStream::connect(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => QueryError::NoSocket { path: p() },
        io::ErrorKind::ConnectionRefused => QueryError::NoServer { path: p() },
        io::ErrorKind::PermissionDenied => QueryError::Permission { path: p(), source },
        _ => QueryError::Io { path: p(), source },
    })?;
    let io_error = |source| QueryError::Io { path: p(), source };
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

    #[test]
    fn a_socket_left_by_a_dead_server_is_explained_to_the_client_and_replaced_by_the_next_server() {
        let path = temp("stale");
        let _ = std::fs::remove_file(&path);
        // A listener that goes away without removing its file, as after SIGKILL.
        drop(UnixListener::bind(&path).unwrap());
        let err = query(&path).unwrap_err();
        assert!(matches!(err, QueryError::NoServer { .. }), "{err}");
        assert!(err.to_string().contains("no xdptcp server behind"), "{err}");
        let socket = StatsSocket::bind(&path).unwrap();
        drop(socket);
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
