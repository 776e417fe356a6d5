//! The files xdptcp writes (the pcap, the latency histograms, load results), created as a
//! process that runs as root must create them: mode 0600 whatever the umask (a pcap holds
//! whole payloads), never through a symbolic link, and never over a file already there
//! unless asked to (`--force`). So a link planted at `/tmp/x.pcap` cannot make `sudo xdptcp
//! serve --pcap /tmp/x.pcap` truncate whatever it points at.
//!
//! - [`create_file`]: one file, `O_CREAT | O_EXCL | O_NOFOLLOW`. Replacing an existing one
//!   unlinks it first and creates a new file, so that another name of the old one (a hard
//!   link) is left alone, and a symbolic link is refused even then.
//! - [`OutputDir`]: a directory of outputs written again and again (the `--hist-out` files
//!   on every SIGUSR1). It must be a real directory that only the account writing there may
//!   change (so nobody else can plant anything in it); each file is written aside (`O_EXCL |
//!   O_NOFOLLOW`) and renamed into place, so a reader never sees half of one.

use std::ffi::CString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The mode of every file and directory created here (less what the umask removes).
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// Why an output could not be created.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The file is there already.
    #[error(
        "{path} already exists; remove it, write somewhere else, or give --force to replace it"
    )]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A symbolic link is in the way (refused even with `--force`).
    #[error("{path} is a symbolic link: refusing to write through it; give the real path")]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// Something else than a regular file (or, for a directory of outputs, a directory) is
    /// in the way.
    #[error("{path} exists and is not a {want}: refusing to replace it")]
    NotA {
        /// The path.
        path: PathBuf,
        /// What was expected there.
        want: &'static str,
    },
    /// A directory of outputs that others may change, or that another account owns.
    #[error("{path}: {why}; give a directory of your own (or let xdptcp create it)")]
    Unsafe {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The OS refused.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> OutputError + Copy + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `path` for writing, mode 0600. An existing file is an error unless `replace`, when
/// it is unlinked and a new one created; a symbolic link at `path` is an error either way.
pub fn create_file(path: &Path, replace: bool) -> Result<File, OutputError> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
    };
    match open() {
        Ok(file) => return Ok(file),
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(io_error(path)(e)),
        Err(_) => {}
    }
    let meta = fs::symlink_metadata(path).map_err(io_error(path))?;
    let err = if meta.file_type().is_symlink() {
        OutputError::Symlink {
            path: path.to_path_buf(),
        }
    } else if !replace {
        OutputError::Exists {
            path: path.to_path_buf(),
        }
    } else if !meta.is_file() {
        OutputError::NotA {
            path: path.to_path_buf(),
            want: "regular file",
        }
    } else {
        fs::remove_file(path).map_err(io_error(path))?;
        // Whatever took the name in between (EEXIST) is refused like any existing file.
        return open().map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => OutputError::Exists {
                path: path.to_path_buf(),
            },
            _ => io_error(path)(e),
        });
    };
    Err(err)
}

/// A directory of outputs, held open: its files are created relative to it, so a directory
/// swapped for a link after it was opened is never followed.
#[derive(Debug)]
pub struct OutputDir {
    dir: File,
    path: PathBuf,
}

impl OutputDir {
    /// Opens `path` for a process that writes there as `owner` (uid, gid), creating it (mode
    /// 0700, owned by `owner`; missing parents as `mkdir -p` makes them) when missing. An
    /// existing one must be a directory, not a symbolic link, owned by `owner`, and not
    /// writable by its group or others.
    pub fn open(path: &Path, owner: (u32, u32)) -> Result<OutputDir, OutputError> {
        let created = match DirBuilder::new().mode(DIR_MODE).create(path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent).map_err(io_error(parent))?;
                }
                DirBuilder::new()
                    .mode(DIR_MODE)
                    .create(path)
                    .map_err(io_error(path))?;
                true
            }
            Err(e) => return Err(io_error(path)(e)),
        };
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                // O_NOFOLLOW with O_DIRECTORY answers ENOTDIR for a link, ELOOP without.
                Some(libc::ELOOP | libc::ENOTDIR) => {
                    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                        OutputError::Symlink {
                            path: path.to_path_buf(),
                        }
                    } else {
                        OutputError::NotA {
                            path: path.to_path_buf(),
                            want: "directory",
                        }
                    }
                }
                _ => io_error(path)(e),
            })?;
        if created {
            // SAFETY: fchown on a directory fd we hold.
            if unsafe { libc::fchown(dir.as_raw_fd(), owner.0, owner.1) } != 0 {
                return Err(io_error(path)(io::Error::last_os_error()));
            }
        }
        let meta = dir.metadata().map_err(io_error(path))?;
        let why = if meta.uid() != owner.0 {
            Some(format!(
                "owned by uid {}, but written by uid {}",
                meta.uid(),
                owner.0
            ))
        } else if meta.mode() & 0o022 != 0 {
            Some(format!(
                "writable by others than its owner (mode {:o})",
                meta.mode() & 0o7777
            ))
        } else {
            None
        };
        if let Some(why) = why {
            return Err(OutputError::Unsafe {
                path: path.to_path_buf(),
                why,
            });
        }
        Ok(OutputDir {
            dir,
            path: path.to_path_buf(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to the file `name` of the directory (mode 0600), replacing what was
    /// there: written to `.NAME.tmp` first, then renamed.
    pub fn write(&self, name: &str, contents: &[u8]) -> Result<(), OutputError> {
        let path = self.path.join(name);
        let err = io_error(&path);
        // One plain name inside the directory (the names are ours, never a user's).
        let (Ok(tmp), Ok(target)) = (CString::new(format!(".{name}.tmp")), CString::new(name))
        else {
            return Err(err(io::Error::from(io::ErrorKind::InvalidInput)));
        };
        if name.contains('/') || name.starts_with('.') {
            return Err(err(io::Error::from(io::ErrorKind::InvalidInput)));
        }
        let fd = self.dir.as_raw_fd();
        // A leftover of a write that died half-way; a new one is made exclusively below.
        // SAFETY: `tmp` is NUL-terminated; unlinkat only reads it.
        unsafe { libc::unlinkat(fd, tmp.as_ptr(), 0) };
        // SAFETY: `tmp` is NUL-terminated; the flags and mode are plain integers.
        let file_fd = unsafe {
            libc::openat(
                fd,
                tmp.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                FILE_MODE,
            )
        };
        if file_fd < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        // SAFETY: a fresh fd nothing else owns.
        let mut file = unsafe { File::from_raw_fd(file_fd) };
        file.write_all(contents).map_err(err)?;
        drop(file);
        // SAFETY: both names are NUL-terminated and relative to the directory we hold.
        if unsafe { libc::renameat(fd, tmp.as_ptr(), fd, target.as_ptr()) } != 0 {
            return Err(err(io::Error::last_os_error()));
        }
        Ok(())
    }
}

/// The effective uid and gid of the process: the owner its outputs are written as.
pub fn effective_ids() -> (u32, u32) {
    // SAFETY: geteuid/getegid have no preconditions.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fresh directory under the temp dir, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("xdptcp-output-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir(&dir).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_new_file_is_0600_whatever_the_umask_and_an_existing_one_is_kept() {
        let s = Scratch::new("new");
        let path = s.0.join("out.pcap");
        create_file(&path, false)
            .unwrap()
            .write_all(b"first")
            .unwrap();
        assert_eq!(mode(&path), 0o600);
        let e = create_file(&path, false).unwrap_err();
        assert!(matches!(e, OutputError::Exists { .. }), "{e}");
        assert!(e.to_string().contains("--force"), "{e}");
        assert!(e.to_string().contains("out.pcap"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"first", "not truncated");
    }

    #[test]
    fn replace_makes_a_new_file_and_leaves_other_names_of_the_old_one_alone() {
        let s = Scratch::new("replace");
        let path = s.0.join("result.json");
        let other = s.0.join("hard-link");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::hard_link(&path, &other).unwrap();
        create_file(&path, true).unwrap().write_all(b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600, "a new file, not the old one's mode");
        assert_eq!(
            fs::read(&other).unwrap(),
            b"old",
            "the other name untouched"
        );
    }

    #[test]
    fn a_symlink_is_never_written_through_not_even_with_force() {
        let s = Scratch::new("link");
        let victim = s.0.join("victim");
        fs::write(&victim, b"precious").unwrap();
        let link = s.0.join("x.pcap");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for replace in [false, true] {
            let e = create_file(&link, replace).unwrap_err();
            assert!(matches!(e, OutputError::Symlink { .. }), "{e}");
            assert!(e.to_string().contains("symbolic link"), "{e}");
        }
        // A dangling link would be created through by a plain O_CREAT.
        let dangling = s.0.join("dangling");
        std::os::unix::fs::symlink(s.0.join("made-through-the-link"), &dangling).unwrap();
        assert!(create_file(&dangling, true).is_err());
        assert!(!s.0.join("made-through-the-link").exists());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn force_refuses_to_replace_a_directory() {
        let s = Scratch::new("dir");
        let e = create_file(&s.0, true).unwrap_err();
        assert!(matches!(e, OutputError::NotA { .. }), "{e}");
    }

    #[test]
    fn a_missing_directory_is_made_0700_and_its_files_replaced_whole_each_time() {
        let s = Scratch::new("hist");
        let path = s.0.join("a/b/hist");
        let dir = OutputDir::open(&path, effective_ids()).unwrap();
        assert_eq!(mode(&path), 0o700);
        dir.write("summary.json", b"{\"n\": 1}").unwrap();
        dir.write("summary.json", b"{\"n\": 2}").unwrap();
        assert_eq!(fs::read(path.join("summary.json")).unwrap(), b"{\"n\": 2}");
        assert_eq!(mode(&path.join("summary.json")), 0o600);
        let names: Vec<_> = fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["summary.json"], "no temporary file left");
        // Opening it again (a second server, SIGUSR1 after a restart) is fine: it is ours.
        OutputDir::open(&path, effective_ids()).unwrap();
    }

    #[test]
    fn a_directory_that_others_may_write_or_another_owns_or_a_link_is_refused() {
        let s = Scratch::new("unsafe");
        let shared = s.0.join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        let e = OutputDir::open(&shared, effective_ids()).unwrap_err();
        assert!(e.to_string().contains("writable by others"), "{e}");
        let (uid, gid) = effective_ids();
        let e = OutputDir::open(&s.0, (uid + 1, gid)).unwrap_err();
        assert!(e.to_string().contains("owned by uid"), "{e}");
        let link = s.0.join("link");
        std::os::unix::fs::symlink(&s.0, &link).unwrap();
        let e = OutputDir::open(&link, effective_ids()).unwrap_err();
        assert!(matches!(e, OutputError::Symlink { .. }), "{e}");
        let file = s.0.join("file");
        fs::write(&file, b"").unwrap();
        let e = OutputDir::open(&file, effective_ids()).unwrap_err();
        assert!(matches!(e, OutputError::NotA { .. }), "{e}");
    }

    #[test]
    fn a_planted_link_inside_the_directory_is_replaced_not_followed() {
        let s = Scratch::new("planted");
        let victim = s.0.join("victim");
        fs::write(&victim, b"precious").unwrap();
        let dir = OutputDir::open(&s.0.join("out"), effective_ids()).unwrap();
        std::os::unix::fs::symlink(&victim, s.0.join("out/summary.json")).unwrap();
        std::os::unix::fs::symlink(&victim, s.0.join("out/.summary.json.tmp")).unwrap();
        dir.write("summary.json", b"{}").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(
            !fs::symlink_metadata(s.0.join("out/summary.json"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(dir.write("../escape", b"x").is_err());
    }
}
