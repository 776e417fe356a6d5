//! What a handshake settles (RFC 9293 §3.7.1 MSS, RFC 7323 §2 window scale and §3 timestamps,
//! RFC 2018 §2 SACK-permitted): one rule for a SYN that reaches a listener, for a SYN-ACK
//! that answers ours, and for the SYN a cookie ACK stands for.
//!
//! An option is in use only if both ends sent it (and we are configured to offer it); window
//! scaling needs both Window Scale options (RFC 7323 §2.2), so without the peer's neither side
//! scales. The MSS we send with is the smaller of the peer's and ours, and never below
//! [`MIN_MSS`], whatever the peer says.

use super::Config;
use crate::wire::tcp::{DEFAULT_MSS_IPV4, DEFAULT_MSS_IPV6, MAX_WINDOW_SCALE, Options};

/// The smallest MSS we send with, whatever the peer announced: tiny segments only multiply
/// per-segment costs.
pub(crate) const MIN_MSS: u16 = 64;

/// Options negotiated on the handshake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// The MSS we send with (min of the peer's and ours).
    pub(crate) mss: u16,
    /// Shift applied to windows the peer advertises (RFC 7323 §2.3).
    pub(crate) snd_wscale: u8,
    /// Shift applied to windows we advertise.
    pub(crate) rcv_wscale: u8,
    /// RFC 7323 timestamps in use.
    pub(crate) ts: bool,
    /// SACK-permitted exchanged both ways.
    pub(crate) sack: bool,
}

/// The MSS to assume for a peer that sent none: [`DEFAULT_MSS_IPV4`] or [`DEFAULT_MSS_IPV6`].
pub(crate) fn default_mss(ipv4: bool) -> u16 {
    if ipv4 {
        DEFAULT_MSS_IPV4
    } else {
        DEFAULT_MSS_IPV6
    }
}

impl Negotiated {
    /// What our own SYN offers (active open, SYN-SENT); the SYN-ACK settles it
    /// ([`Negotiated::from_syn`]).
    pub(crate) fn offer(cfg: &Config) -> Negotiated {
        Negotiated {
            mss: cfg.mss,
            snd_wscale: 0,
            rcv_wscale: cfg.window_scale.min(MAX_WINDOW_SCALE),
            ts: cfg.timestamps,
            sack: cfg.sack,
        }
    }

    /// What the handshake settles given the options of the peer's SYN (or SYN-ACK), from a
    /// peer over IPv4 (`ipv4`) or IPv6.
    pub(crate) fn from_syn(cfg: &Config, ipv4: bool, peer: &Options) -> Negotiated {
        let peer_mss = peer.mss.unwrap_or(default_mss(ipv4));
        let ws = peer.window_scale.is_some() && cfg.window_scale > 0;
        Negotiated {
            mss: peer_mss.min(cfg.mss).max(MIN_MSS),
            snd_wscale: if ws {
                peer.window_scale.unwrap_or(0).min(MAX_WINDOW_SCALE)
            } else {
                0
            },
            rcv_wscale: if ws {
                cfg.window_scale.min(MAX_WINDOW_SCALE)
            } else {
                0
            },
            ts: cfg.timestamps && peer.timestamp.is_some(),
            sack: cfg.sack && peer.sack_permitted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux_syn() -> Options {
        Options {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: Some((1, 0)),
            ..Options::default()
        }
    }

    #[test]
    fn every_option_both_ends_offer_is_used() {
        let n = Negotiated::from_syn(&Config::default(), true, &linux_syn());
        let want = Negotiated {
            mss: 1460,
            snd_wscale: 7,
            rcv_wscale: 7,
            ts: true,
            sack: true,
        };
        assert_eq!(n, want);
    }

    #[test]
    fn without_the_peers_window_scale_neither_side_scales() {
        let peer = Options {
            window_scale: None,
            ..linux_syn()
        };
        let n = Negotiated::from_syn(&Config::default(), true, &peer);
        assert_eq!((n.snd_wscale, n.rcv_wscale), (0, 0));
        let off = Config {
            window_scale: 0,
            ..Config::default()
        };
        let n = Negotiated::from_syn(&off, true, &linux_syn());
        assert_eq!((n.snd_wscale, n.rcv_wscale), (0, 0));
    }

    #[test]
    fn options_we_do_not_offer_are_not_used() {
        let cfg = Config {
            timestamps: false,
            sack: false,
            ..Config::default()
        };
        let n = Negotiated::from_syn(&cfg, true, &linux_syn());
        assert!(!n.ts && !n.sack);
    }

    #[test]
    fn a_missing_mss_means_the_family_default_and_the_mss_is_bounded() {
        let none = Options::default();
        assert_eq!(
            Negotiated::from_syn(&Config::default(), true, &none).mss,
            536
        );
        assert_eq!(
            Negotiated::from_syn(&Config::default(), false, &none).mss,
            1220
        );
        let big = Options {
            mss: Some(9000),
            ..none
        };
        assert_eq!(
            Negotiated::from_syn(&Config::default(), true, &big).mss,
            1460
        );
        let tiny = Options {
            mss: Some(1),
            ..none
        };
        assert_eq!(
            Negotiated::from_syn(&Config::default(), true, &tiny).mss,
            MIN_MSS
        );
    }

    #[test]
    fn a_configured_scale_above_fourteen_is_offered_as_fourteen() {
        let cfg = Config {
            window_scale: 20,
            ..Config::default()
        };
        assert_eq!(Negotiated::offer(&cfg).rcv_wscale, MAX_WINDOW_SCALE);
        let n = Negotiated::from_syn(&cfg, true, &linux_syn());
        assert_eq!(n.rcv_wscale, MAX_WINDOW_SCALE);
    }
}
