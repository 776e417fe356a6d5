//! The secrets the engine is handed (its seed, a SYN-cookie secret shared by several hosts),
//! in a type whose `Debug` never shows them: a `{:?}` of a configuration, of cookie keys or of
//! a control message in a log line leaks nothing. The keys derived from them are
//! [`Key`](super::hash::Key)s, redacted the same way.

use core::fmt;

/// A 32-byte secret. `Debug` prints `Secret(..)`, never the bytes; the bytes are read
/// through the field where a key is derived.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Secret(pub [u8; 32]);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl From<[u8; 32]> for Secret {
    fn from(bytes: [u8; 32]) -> Secret {
        Secret(bytes)
    }
}

/// Whether `text` shows four bytes of `bytes` in a row, as `Debug` prints a byte array
/// (`[171, 205, ...]`) or as hex: what the tests of every type holding a secret look for.
#[cfg(test)]
pub(crate) fn shows_bytes_of(text: &str, bytes: &[u8]) -> bool {
    bytes.windows(4).any(|w| {
        let decimal = w.iter().map(u8::to_string).collect::<Vec<_>>().join(", ");
        let hex: String = w.iter().map(|b| format!("{b:02x}")).collect();
        text.contains(&decimal) || text.to_lowercase().contains(&hex)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::Config;
    use crate::time::Instant;

    /// Bytes no other field of a configuration is made of.
    const SEED: Secret = Secret([
        0xab, 0xcd, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x13, 0x57, 0x9b, 0xdf, 0x24,
        0x68, 0xac, 0xe0, 0x35, 0x79, 0xbd, 0xf1, 0x46, 0x8a, 0xce, 0x02, 0x57, 0x9c, 0xe1, 0x26,
        0x6b, 0xb0,
    ]);
    const SHARED: Secret = Secret([0xc3; 32]);

    #[test]
    fn debug_shows_no_byte_of_the_secret() {
        let text = format!("{SEED:?} {SEED:#?}");
        assert_eq!(format!("{SEED:?}"), "Secret(..)");
        assert!(!shows_bytes_of(&text, &SEED.0), "{text}");
        assert!(
            shows_bytes_of(&format!("{:?}", SEED.0), &SEED.0),
            "the check finds a raw array"
        );
    }

    #[test]
    fn no_key_byte_shows_in_the_debug_of_a_config_or_of_its_cookie_keys() {
        let config = Config {
            secret: SEED,
            cookie_secret: Some(SHARED),
            ..Config::default()
        };
        let text = format!("{config:?}");
        assert!(text.contains("secret: Secret(..)"), "{text}");
        let mut keys = config.cookie_keys(Instant::from_secs(1000));
        keys.replace_secret(SEED, Instant::from_secs(1001));
        let keys_text = format!("{keys:#?}");
        for (what, bytes) in [
            ("seed", SEED.0.to_vec()),
            ("shared secret", SHARED.0.to_vec()),
            ("current key", keys.current().0.to_vec()),
        ] {
            assert!(!shows_bytes_of(&text, &bytes), "{what} in {text}");
            assert!(!shows_bytes_of(&keys_text, &bytes), "{what} in {keys_text}");
        }
    }
}
