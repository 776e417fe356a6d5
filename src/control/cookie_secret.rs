//! `--cookie-secret-file`: a SYN-cookie secret shared by several hosts, so that hosts behind
//! ECMP or an L4 balancer validate each other's cookies (a SYN-ACK from one host, the third ACK
//! to another). Every host derives the same keys from the same file and the wall clock
//! ([`crate::tcp::syncookie::CookieKeys`]); the file is read at start (a missing, unreadable
//! or short file is an error) and watched afterwards: a changed file replaces the secret, a
//! file gone bad keeps the old secret and says so.

use std::fs;
use std::hash::Hasher;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use siphasher::sip::SipHasher24;

use crate::tcp::Secret;

/// The least a secret file holds, in bytes (e.g. `head -c 32 /dev/urandom`, or `openssl rand
/// -hex 32`, whose 64 characters are more than enough).
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The file cannot be read.
    #[error("cannot read the SYN-cookie secret file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
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
    /// The last problem reported, so a file that stays bad is reported once.
    reported: Option<String>,
}

impl SecretFile {
    /// Reads `path`; any problem is an error.
    pub fn open(path: &Path) -> Result<SecretFile, SecretFileError> {
        Ok(SecretFile {
            secret: read(path)?,
            path: path.to_path_buf(),
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

    /// Whether others than the owner may read the file (worth a warning).
    pub fn readable_by_others(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }

    /// Reads the file again. `Ok(Some(secret))` when it holds a new secret, `Ok(None)` when it
    /// is unchanged, `Err` (once per distinct problem) when it went bad: the old secret stays.
    pub fn reread(&mut self) -> Result<Option<Secret>, SecretFileError> {
        match read(&self.path) {
            Ok(secret) => {
                self.reported = None;
                if secret == self.secret {
                    return Ok(None);
                }
                self.secret = secret;
                Ok(Some(secret))
            }
            Err(e) => {
                let text = e.to_string();
                if self.reported.as_deref() == Some(text.as_str()) {
                    return Ok(None);
                }
                self.reported = Some(text);
                Err(e)
            }
        }
    }
}

fn read(path: &Path) -> Result<Secret, SecretFileError> {
    let contents = fs::read(path).map_err(|source| SecretFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    secret_from_contents(&contents)
        .map(Secret)
        .ok_or_else(|| SecretFileError::Short {
            path: path.to_path_buf(),
            len: contents.trim_ascii().len(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::secret::shows_bytes_of;

    fn temp(name: &str, contents: &[u8]) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("xdptcp-secret-{}-{name}", std::process::id()));
        fs::write(&path, contents).unwrap();
        path
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
        assert_eq!(
            f.reread().unwrap(),
            None,
            "the same problem is reported once"
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
}
