//! `--cookie-secret-file`: a SYN-cookie secret shared by several hosts, so that hosts behind
//! ECMP or an L4 balancer validate each other's cookies (a SYN-ACK from one host, the third ACK
//! to another). Every host derives the same keys from the same file and the wall clock
//! ([`crate::tcp::syncookie::CookieKeys`]); the file is read at start (a file that cannot be
//! used is an error) and watched afterwards: a changed file replaces the secret, a file gone
//! bad keeps the old secret and says why, once per problem.
//!
//! The control thread reads the file every second, so a read must never block and never
//! grow: it is opened `O_NOFOLLOW | O_NONBLOCK` (a symlink is refused, a FIFO opens without a
//! writer and is then refused by `fstat`), and only a regular file of at most
//! [`MAX_SECRET_FILE_BYTES`] is read, at most that many bytes. Since whoever may write the
//! file decides every key, it must belong to root or to the service user and must not be
//! writable by group or others; every re-read checks all of it again, on the opened file.

use std::fs::File;
use std::hash::Hasher;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use siphasher::sip::SipHasher24;

use crate::tcp::Secret;

/// The least a secret file holds, in bytes (e.g. `head -c 32 /dev/urandom`, or `openssl rand
/// -hex 32`, whose 64 characters are more than enough).
pub const MIN_SECRET_BYTES: usize = 32;

/// The most a secret file may hold, in bytes: 128 times what a secret needs (a hex or base64
/// secret with a comment fits), and little enough to read every second.
pub const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The file cannot be opened or read.
    #[error("cannot read the SYN-cookie secret file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The path is a symbolic link (refused: whoever can change the link decides the keys).
    #[error(
        "the SYN-cookie secret file {path} is a symbolic link; give the file it points to (links are not followed)"
    )]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// Not a regular file (a FIFO, a device, a directory, a socket).
    #[error("the SYN-cookie secret file {path} is {what}, not a regular file")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is instead ("a FIFO", ...).
        what: &'static str,
    },
    /// Larger than [`MAX_SECRET_FILE_BYTES`].
    #[error(
        "the SYN-cookie secret file {path} is larger than {MAX_SECRET_FILE_BYTES} bytes; a secret needs {MIN_SECRET_BYTES} (e.g. `head -c 32 /dev/urandom > {path}`)"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Owned by someone else than root or the service user.
    #[error(
        "the SYN-cookie secret file {path} belongs to uid {uid}; it must belong to root or to the user xdptcp runs as (chown it)"
    )]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// Group or others may write it.
    #[error(
        "the SYN-cookie secret file {path} is writable by group or others (mode {mode:03o}); `chmod 600 {path}`"
    )]
    Writable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds too little to be a secret.
    #[error(
        "the SYN-cookie secret file {path} holds {len} byte(s); it needs at least {MIN_SECRET_BYTES} (e.g. `head -c 32 /dev/urandom > {path}`)"
    )]
    Short {
        /// The file.
        path: PathBuf,
        /// Its length (surrounding whitespace not counted).
        len: usize,
    },
}

impl SecretFileError {
    /// Which problem this is, apart from details that change while it lasts (a length, an
    /// owner): a file that stays bad the same way is reported once.
    fn problem(
        &self,
    ) -> (
        std::mem::Discriminant<SecretFileError>,
        Option<io::ErrorKind>,
    ) {
        let kind = match self {
            SecretFileError::Read { source, .. } => Some(source.kind()),
            _ => None,
        };
        (std::mem::discriminant(self), kind)
    }
}

/// The 32-byte secret a file's contents stand for: every byte of it counts (surrounding
/// whitespace aside, so that a trailing newline of a hex file does not), hashed four times
/// under fixed keys into four 8-byte words.
pub fn secret_from_contents(contents: &[u8]) -> Option<[u8; 32]> {
    let body = contents.trim_ascii();
    if body.len() < MIN_SECRET_BYTES {
        return None;
    }
    let mut secret = [0u8; 32];
    for (i, word) in secret.chunks_mut(8).enumerate() {
        let mut h = SipHasher24::new_with_keys(0x7864_7074_6370_636b, i as u64);
        h.write(body);
        word.copy_from_slice(&h.finish().to_le_bytes());
    }
    Some(secret)
}

/// A secret file and the secret it held when last read.
#[derive(Debug)]
pub struct SecretFile {
    path: PathBuf,
    secret: Secret,
    /// Who may own the file besides root.
    owner: u32,
    /// The file's permission bits when last read.
    mode: u32,
    /// The last problem reported, so a file that stays bad is reported once.
    reported: Option<(
        std::mem::Discriminant<SecretFileError>,
        Option<io::ErrorKind>,
    )>,
}

impl SecretFile {
    /// Reads `path`, which must belong to root or to the user this process runs as; any
    /// problem is an error.
    pub fn open(path: &Path) -> Result<SecretFile, SecretFileError> {
        // SAFETY: geteuid has no preconditions.
        SecretFile::open_owned_by(path, unsafe { libc::geteuid() })
    }

    /// Reads `path`, which must belong to root or to `owner` (the service user a server
    /// switches to after start); any problem is an error.
    pub fn open_owned_by(path: &Path, owner: u32) -> Result<SecretFile, SecretFileError> {
        let (secret, mode) = read(path, owner)?;
        Ok(SecretFile {
            secret,
            path: path.to_path_buf(),
            owner,
            mode,
            reported: None,
        })
    }

    /// The secret.
    pub fn secret(&self) -> Secret {
        self.secret
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether others than the owner could read the file when last read (worth a warning).
    pub fn readable_by_others(&self) -> bool {
        self.mode & 0o077 != 0
    }

    /// Reads the file again, with every check of [`SecretFile::open`]. `Ok(Some(secret))`
    /// when it holds a new secret, `Ok(None)` when it is unchanged, `Err` (once per distinct
    /// problem) when it went bad: the old secret stays.
    pub fn reread(&mut self) -> Result<Option<Secret>, SecretFileError> {
        match read(&self.path, self.owner) {
            Ok((secret, mode)) => {
                self.reported = None;
                self.mode = mode;
                if secret == self.secret {
                    return Ok(None);
                }
                self.secret = secret;
                Ok(Some(secret))
            }
            Err(e) => {
                if self.reported == Some(e.problem()) {
                    return Ok(None);
                }
                self.reported = Some(e.problem());
                Err(e)
            }
        }
    }
}

/// Opens, checks and reads the secret file: its secret and permission bits.
fn read(path: &Path, owner: u32) -> Result<(Secret, u32), SecretFileError> {
    let p = || path.to_path_buf();
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            // O_NOFOLLOW on a symlink.
            Some(libc::ELOOP) => SecretFileError::Symlink { path: p() },
            _ => SecretFileError::Read { path: p(), source },
        })?;
    let meta = file
        .metadata()
        .map_err(|source| SecretFileError::Read { path: p(), source })?;
    let kind = meta.mode() & libc::S_IFMT;
    if kind != libc::S_IFREG {
        let what = match kind {
            libc::S_IFIFO => "a FIFO",
            libc::S_IFCHR => "a character device",
            libc::S_IFBLK => "a block device",
            libc::S_IFDIR => "a directory",
            libc::S_IFSOCK => "a socket",
            _ => "something else",
        };
        return Err(SecretFileError::NotRegular { path: p(), what });
    }
    if meta.uid() != 0 && meta.uid() != owner {
        return Err(SecretFileError::Owner {
            path: p(),
            uid: meta.uid(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(SecretFileError::Writable { path: p(), mode });
    }
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(SecretFileError::TooLarge { path: p() });
    }
    // The file may grow between fstat and read: never read more than the bound.
    let mut contents = Vec::with_capacity(MAX_SECRET_FILE_BYTES as usize + 1);
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut contents)
        .map_err(|source| SecretFileError::Read { path: p(), source })?;
    if contents.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(SecretFileError::TooLarge { path: p() });
    }
    let secret = secret_from_contents(&contents).ok_or_else(|| SecretFileError::Short {
        path: p(),
        len: contents.trim_ascii().len(),
    })?;
    Ok((Secret(secret), mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::secret::shows_bytes_of;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn temp(name: &str, contents: &[u8]) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("xdptcp-secret-{}-{name}", std::process::id()));
        let _ = fs::remove_file(&path);
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// Replaces `path` by a FIFO.
    fn mkfifo(path: &Path) {
        let _ = fs::remove_file(path);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn debug_shows_no_byte_of_the_secret_nor_of_the_file() {
        let path = temp("debug", &[0x9e; 40]);
        let f = SecretFile::open(&path).unwrap();
        let text = format!("{f:?}");
        assert!(!shows_bytes_of(&text, &f.secret().0), "{text}");
        assert!(!shows_bytes_of(&text, &[0x9e; 40]), "{text}");
        fs::remove_file(path).unwrap();
    }

    #[test]
    fn every_byte_counts_but_surrounding_whitespace_does_not() {
        let a = secret_from_contents(&[7; 40]).unwrap();
        let mut other = [7; 40];
        other[39] = 8;
        assert_ne!(Some(a), secret_from_contents(&other));
        let hex = b"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let mut with_newline = hex.to_vec();
        with_newline.push(b'\n');
        assert_eq!(
            secret_from_contents(hex),
            secret_from_contents(&with_newline)
        );
        assert_eq!(secret_from_contents(&[1; 31]), None);
        assert_eq!(secret_from_contents(b"   short   \n"), None);
    }

    #[test]
    fn a_missing_or_short_file_is_an_error_naming_it() {
        let missing = std::env::temp_dir().join("xdptcp-no-such-secret");
        let e = SecretFile::open(&missing).unwrap_err();
        assert!(e.to_string().contains("xdptcp-no-such-secret"), "{e}");
        let short = temp("short", b"0123456789");
        let e = SecretFile::open(&short).unwrap_err();
        assert!(e.to_string().contains("holds 10 byte(s)"), "{e}");
        fs::remove_file(short).unwrap();
    }

    #[test]
    fn reread_reports_a_change_once_and_a_bad_file_once_keeping_the_secret() {
        let path = temp("reread", &[1; 32]);
        let mut f = SecretFile::open(&path).unwrap();
        let first = f.secret();
        assert_eq!(f.reread().unwrap(), None);
        fs::write(&path, [2; 32]).unwrap();
        let changed = f.reread().unwrap().expect("a new secret");
        assert_ne!(changed, first);
        assert_eq!(f.secret(), changed);
        fs::write(&path, b"tiny").unwrap();
        assert!(f.reread().is_err());
        fs::write(&path, b"tinier").unwrap();
        assert_eq!(
            f.reread().unwrap(),
            None,
            "the same problem is reported once, whatever its details"
        );
        assert_eq!(f.secret(), changed, "a bad file keeps the old secret");
        fs::remove_file(&path).unwrap();
        assert!(f.reread().is_err(), "a new problem is reported");
        fs::write(&path, [2; 32]).unwrap();
        assert_eq!(
            f.reread().unwrap(),
            None,
            "back to the same secret: no change"
        );
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_at_once_at_start_and_when_swapped_in_later_keeping_the_secret() {
        let path = temp("fifo", &[3; 32]);
        let mut f = SecretFile::open(&path).unwrap();
        let secret = f.secret();
        mkfifo(&path);
        // Without O_NONBLOCK, opening a FIFO nobody writes to blocks for good: on a thread,
        // so that the test fails rather than hangs.
        let (done, result) = std::sync::mpsc::channel();
        let reader = {
            let path = path.clone();
            std::thread::spawn(move || {
                let first = f.reread().map_err(|e| e.to_string());
                let again = f.reread().map_err(|e| e.to_string());
                let at_start = SecretFile::open(&path)
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                let _ = done.send((first, again, at_start, f.secret()));
            })
        };
        let (first, again, at_start, kept) = result
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("reading a FIFO blocked");
        reader.join().unwrap();
        let e = first.unwrap_err();
        assert!(e.contains("is a FIFO, not a regular file"), "{e}");
        assert_eq!(again, Ok(None), "reported once");
        assert_eq!(kept, secret);
        assert!(at_start.unwrap_err().contains("a FIFO"));
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_symlink_is_refused_even_to_a_good_file() {
        let target = temp("link-target", &[4; 32]);
        let link = target.with_extension("link");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = SecretFile::open(&link).unwrap_err();
        assert!(matches!(e, SecretFileError::Symlink { .. }), "{e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        // A good file replaced by a link later: refused at the re-read, the secret kept.
        let path = temp("becomes-link", &[5; 32]);
        let mut f = SecretFile::open(&path).unwrap();
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(matches!(f.reread(), Err(SecretFileError::Symlink { .. })));
        assert_eq!(Some(f.secret()), secret_from_contents(&[5; 32]).map(Secret));
        for p in [target, link, path] {
            fs::remove_file(p).unwrap();
        }
    }

    #[test]
    fn a_group_or_world_writable_file_is_refused_and_a_world_readable_one_is_flagged() {
        let path = temp("modes", &[6; 32]);
        for mode in [0o620, 0o602, 0o666] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let e = SecretFile::open(&path).unwrap_err();
            assert!(
                matches!(e, SecretFileError::Writable { .. }),
                "{mode:o}: {e}"
            );
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let mut f = SecretFile::open(&path).unwrap();
        assert!(f.readable_by_others());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(f.reread().unwrap(), None);
        assert!(!f.readable_by_others());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o660)).unwrap();
        assert!(matches!(f.reread(), Err(SecretFileError::Writable { .. })));
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_file_larger_than_the_bound_is_refused_and_one_at_the_bound_is_read() {
        let at = MAX_SECRET_FILE_BYTES as usize;
        let path = temp("large", &vec![b'a'; at]);
        let mut f = SecretFile::open(&path).unwrap();
        fs::write(&path, vec![b'b'; at + 1]).unwrap();
        let e = f.reread().unwrap_err();
        assert!(matches!(e, SecretFileError::TooLarge { .. }), "{e}");
        assert_eq!(
            Some(f.secret()),
            secret_from_contents(&vec![b'a'; at]).map(Secret)
        );
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_file_of_another_user_than_root_or_the_service_user_is_refused() {
        let path = temp("owner", &[7; 32]);
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        // Root owns its files, and root is always trusted: give this one away first.
        let owner = if me == 0 {
            std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
            4242
        } else {
            me
        };
        let e = SecretFile::open_owned_by(&path, owner + 1).unwrap_err();
        assert!(
            matches!(e, SecretFileError::Owner { uid, .. } if uid == owner),
            "{e}"
        );
        assert!(e.to_string().contains("chown"), "{e}");
        assert!(SecretFile::open_owned_by(&path, owner).is_ok());
        fs::remove_file(&path).unwrap();
    }
}
