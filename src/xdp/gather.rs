//! AF_XDP multi-buffer receive (`Documentation/networking/af_xdp.rst`, "Multi-Buffer
//! Support"): a packet larger than one UMEM frame arrives as a chain of RX descriptors, every
//! one but the last with `XDP_PKT_CONTD`, and is gathered here into one frame for the engine.
//!
//! One copy into a per-socket buffer, not a view over the chain's frames: the engine parses and
//! checksums one contiguous frame, and each frame of a chain goes back to the fill ring as soon
//! as its bytes are copied, however long the engine then keeps the data. Plain data, no rings
//! and no `unsafe`: [`super::socket`] feeds it the bytes of each descriptor.
//!
//! The kernel publishes a chain's descriptors together (`__xsk_rcv` reserves them all before
//! the producer index moves), so a chain still open when the RX ring runs dry was cut (a
//! CONTD on the last descriptor), and a chain longer than any IP packet is not one; both are
//! dropped and counted, never passed on in part.

use crate::wire::{ethernet, ipv6};

/// The longest frame a chain can carry: an Ethernet header with an 802.1Q tag and the longest
/// IP packet, an IPv6 header with a 65 535-byte payload (IPv4's total length counts its own
/// header, so its longest is shorter). veth's 64 KiB GSO frames fit.
pub const MAX_FRAME_LEN: usize = ethernet::VLAN_HEADER_LEN + ipv6::Repr::HEADER_LEN + 65_535;

/// Why a chain was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainDrop {
    /// Its frames add up to more than [`MAX_FRAME_LEN`] bytes.
    TooLong,
    /// The RX ring ran dry inside it: its last descriptor said more would follow.
    Cut,
}

/// What one descriptor of a chain gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Gathered<'a> {
    /// Nothing yet: the chain goes on (or the rest of a dropped chain is being skipped).
    Nothing,
    /// The chain is complete: the whole frame.
    Frame(&'a [u8]),
    /// The chain was dropped (once per chain; its remaining descriptors give `Nothing`).
    Dropped(ChainDrop),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between packets.
    Idle,
    /// Inside a chain, its bytes so far in the buffer.
    Open,
    /// Inside a chain already dropped: skipping to its last descriptor.
    Skipping,
}

/// The reassembly buffer of one socket.
#[derive(Debug)]
pub struct Gather {
    buf: Vec<u8>,
    state: State,
}

impl Default for Gather {
    fn default() -> Gather {
        Gather::new()
    }
}

impl Gather {
    /// An empty buffer; its [`MAX_FRAME_LEN`] bytes are allocated at the first chain.
    pub fn new() -> Gather {
        Gather {
            buf: Vec::new(),
            state: State::Idle,
        }
    }

    /// Whether a chain is in progress (its next descriptor must come to [`Gather::push`]).
    pub fn is_open(&self) -> bool {
        self.state != State::Idle
    }

    /// The bytes of the next descriptor of a chain; `more`: its `XDP_PKT_CONTD`.
    pub fn push(&mut self, piece: &[u8], more: bool) -> Gathered<'_> {
        match self.state {
            State::Idle => {
                if self.buf.capacity() < MAX_FRAME_LEN {
                    self.buf.reserve_exact(MAX_FRAME_LEN);
                }
                self.buf.clear();
                self.state = State::Open;
            }
            State::Skipping => {
                if !more {
                    self.state = State::Idle;
                }
                return Gathered::Nothing;
            }
            State::Open => {}
        }
        if self.buf.len() + piece.len() > MAX_FRAME_LEN {
            self.buf.clear();
            self.state = if more { State::Skipping } else { State::Idle };
            return Gathered::Dropped(ChainDrop::TooLong);
        }
        self.buf.extend_from_slice(piece);
        if more {
            return Gathered::Nothing;
        }
        self.state = State::Idle;
        Gathered::Frame(&self.buf)
    }

    /// The RX ring has no more descriptors: a chain still open was cut, and is dropped
    /// (`Some(Cut)`; a chain already dropped is not counted again).
    pub fn ring_dry(&mut self) -> Option<ChainDrop> {
        let open = self.state == State::Open;
        self.state = State::Idle;
        self.buf.clear();
        open.then_some(ChainDrop::Cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_chain_is_gathered_into_one_frame_in_order() {
        let mut g = Gather::new();
        assert_eq!(g.push(b"abc", true), Gathered::Nothing);
        assert!(g.is_open());
        assert_eq!(g.push(b"def", true), Gathered::Nothing);
        assert_eq!(g.push(b"gh", false), Gathered::Frame(b"abcdefgh"));
        assert!(!g.is_open());
        // The next chain starts afresh.
        assert_eq!(g.push(b"x", true), Gathered::Nothing);
        assert_eq!(g.push(b"y", false), Gathered::Frame(b"xy"));
    }

    #[test]
    fn a_chain_longer_than_any_ip_packet_is_dropped_once_and_skipped_to_its_end() {
        let mut g = Gather::new();
        let piece = vec![7u8; 3840];
        let mut got = Vec::new();
        // 18 pieces hold 69 120 bytes: the 18th overflows.
        for i in 0..20 {
            got.push(match g.push(&piece, i < 19) {
                Gathered::Nothing => None,
                Gathered::Dropped(why) => Some(why),
                Gathered::Frame(f) => panic!("a {}-byte frame passed", f.len()),
            });
        }
        let drops: Vec<usize> = (0..20).filter(|&i| got[i].is_some()).collect();
        assert_eq!(drops, [MAX_FRAME_LEN / 3840]);
        assert_eq!(got[drops[0]], Some(ChainDrop::TooLong));
        assert!(
            !g.is_open(),
            "the chain's last descriptor ends the skipping"
        );
        assert_eq!(g.push(b"ok", false), Gathered::Frame(b"ok"));
    }

    #[test]
    fn a_chain_of_exactly_the_longest_frame_passes() {
        let mut g = Gather::new();
        let whole = vec![1u8; MAX_FRAME_LEN];
        let pieces: Vec<&[u8]> = whole.chunks(3840).collect();
        for (i, p) in pieces.iter().enumerate() {
            let last = i + 1 == pieces.len();
            match g.push(p, !last) {
                Gathered::Frame(f) => assert!(last && f.len() == MAX_FRAME_LEN),
                Gathered::Nothing => assert!(!last),
                Gathered::Dropped(why) => panic!("dropped: {why:?}"),
            }
        }
    }

    #[test]
    fn a_chain_cut_by_a_dry_ring_is_dropped_and_the_next_packet_is_whole() {
        let mut g = Gather::new();
        assert_eq!(g.ring_dry(), None, "nothing open, nothing cut");
        assert_eq!(g.push(b"head", true), Gathered::Nothing);
        assert_eq!(g.ring_dry(), Some(ChainDrop::Cut));
        assert!(!g.is_open());
        assert_eq!(g.push(b"new", false), Gathered::Frame(b"new"));
        // A chain already dropped for its length is not counted again when cut.
        let big = vec![0u8; MAX_FRAME_LEN + 1];
        assert_eq!(g.push(&big, true), Gathered::Dropped(ChainDrop::TooLong));
        assert_eq!(g.ring_dry(), None);
    }

    proptest! {
        /// Whatever the descriptors say, every chain ends in exactly one outcome: its frame
        /// (the concatenation of its pieces, when it fits) or one drop.
        #[test]
        fn every_chain_gives_its_bytes_or_one_drop(
            chains in proptest::collection::vec(
                proptest::collection::vec(0usize..9000, 1..12), 0..20),
            cut_last in any::<bool>(),
        ) {
            let mut g = Gather::new();
            let n = chains.len();
            for (c, lens) in chains.iter().enumerate() {
                let cut = cut_last && c + 1 == n;
                let mut outcomes = 0;
                let mut want = Vec::new();
                for (i, &len) in lens.iter().enumerate() {
                    let piece = vec![(c + i) as u8; len];
                    want.extend_from_slice(&piece);
                    let more = cut || i + 1 < lens.len();
                    match g.push(&piece, more) {
                        Gathered::Nothing => {}
                        Gathered::Frame(f) => {
                            outcomes += 1;
                            prop_assert!(want.len() <= MAX_FRAME_LEN);
                            prop_assert_eq!(f, &want[..]);
                        }
                        Gathered::Dropped(why) => {
                            outcomes += 1;
                            prop_assert_eq!(why, ChainDrop::TooLong);
                        }
                    }
                }
                if cut {
                    let dropped = g.ring_dry();
                    outcomes += usize::from(dropped.is_some());
                }
                prop_assert_eq!(outcomes, 1, "chain {} of lengths {:?}", c, lens);
                prop_assert!(!g.is_open());
            }
        }
    }
}
