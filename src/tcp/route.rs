//! Where a connection's frames go: its 4-tuple plus the link-layer next hop (RFC 9293 §3.3.1
//! names a connection by its socket pair; Ethernet and an optional 802.1Q tag carry it).

use super::FourTuple;
use crate::wire::ethernet::MacAddr;

/// Where replies to a received frame go: back to the sender's MAC, on the same VLAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    /// The connection's 4-tuple, from our side.
    pub(crate) tuple: FourTuple,
    /// The peer's (next hop's) Ethernet address.
    pub(crate) mac: MacAddr,
    /// The VLAN tag the peer's frames came with, repeated on ours.
    pub(crate) vlan: Option<u16>,
}
