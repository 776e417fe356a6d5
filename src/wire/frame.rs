//! Whole Ethernet frames carrying TCP over IPv4 or IPv6: what the engine receives and sends.

use std::net::IpAddr;

use super::{Error, IPPROTO_TCP, ethernet, ipv4, ipv6, tcp};

/// The IP header of a TCP frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpRepr {
    /// An IPv4 header (no options, not a fragment).
    V4(ipv4::Repr),
    /// An IPv6 fixed header.
    V6(ipv6::Repr),
}

impl IpRepr {
    /// Source address.
    pub fn src(&self) -> IpAddr {
        match self {
            IpRepr::V4(r) => r.src.into(),
            IpRepr::V6(r) => r.src.into(),
        }
    }

    /// Destination address.
    pub fn dst(&self) -> IpAddr {
        match self {
            IpRepr::V4(r) => r.dst.into(),
            IpRepr::V6(r) => r.dst.into(),
        }
    }

    /// 20 for IPv4, 40 for IPv6.
    pub fn header_len(&self) -> usize {
        match self {
            IpRepr::V4(_) => ipv4::Repr::HEADER_LEN,
            IpRepr::V6(_) => ipv6::Repr::HEADER_LEN,
        }
    }

    /// The payload length the header carries.
    pub fn payload_len(&self) -> usize {
        match self {
            IpRepr::V4(r) => r.payload_len,
            IpRepr::V6(r) => r.payload_len,
        }
    }

    /// The EtherType that carries this header.
    pub fn ethertype(&self) -> u16 {
        match self {
            IpRepr::V4(_) => ethernet::ETHERTYPE_IPV4,
            IpRepr::V6(_) => ethernet::ETHERTYPE_IPV6,
        }
    }

    /// Writes the header into `buf[..self.header_len()]` with the given payload length (which
    /// overrides `payload_len`), IPv4 checksum filled.
    ///
    /// Panics if `buf` is shorter than the header.
    pub fn emit(&self, buf: &mut [u8], payload_len: usize) {
        match *self {
            IpRepr::V4(r) => ipv4::Repr { payload_len, ..r }.emit(buf),
            IpRepr::V6(r) => ipv6::Repr { payload_len, ..r }.emit(buf),
        }
    }
}

/// An Ethernet frame carrying one TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFrame<'a> {
    /// The Ethernet header (with its VLAN tag, if any).
    pub eth: ethernet::Repr,
    /// The IP header.
    pub ip: IpRepr,
    /// The TCP segment; its payload borrows from the frame.
    pub tcp: tcp::Repr<'a>,
}

impl<'a> TcpFrame<'a> {
    /// Parses a received frame: Ethernet (+ one 802.1Q tag), IPv4 or IPv6
    /// ([`Error::QinQ`] for an 802.1ad tag, [`Error::UnsupportedEtherType`] for anything
    /// else), TCP as the protocol ([`Error::NotTcp`]
    /// otherwise, IPv6 extension headers included), then TCP with its checksum over the IP
    /// payload, cut at the IP length so Ethernet padding is ignored.
    pub fn parse(frame: &'a [u8]) -> Result<TcpFrame<'a>, Error> {
        let eth = ethernet::Repr::parse(frame)?;
        let rest = frame.get(eth.header_len()..).ok_or(Error::Truncated)?;
        let (ip, segment) = match eth.ethertype {
            ethernet::ETHERTYPE_IPV4 => {
                let p = ipv4::Packet::new_checked(rest)?;
                let ip = ipv4::Repr::parse(&p)?;
                if ip.protocol != IPPROTO_TCP {
                    return Err(Error::NotTcp);
                }
                (
                    IpRepr::V4(ip),
                    ip_payload(rest, ip.header_len(), ip.payload_len)?,
                )
            }
            ethernet::ETHERTYPE_IPV6 => {
                let p = ipv6::Packet::new_checked(rest)?;
                let ip = ipv6::Repr::parse(&p)?;
                if ip.next_header != IPPROTO_TCP {
                    return Err(Error::NotTcp);
                }
                (
                    IpRepr::V6(ip),
                    ip_payload(rest, ip.header_len(), ip.payload_len)?,
                )
            }
            ethernet::ETHERTYPE_QINQ => return Err(Error::QinQ),
            _ => return Err(Error::UnsupportedEtherType),
        };
        let p = tcp::Packet::new_checked(segment)?;
        let tcp = tcp::Repr::parse(&p, ip.src(), ip.dst())?;
        Ok(TcpFrame { eth, ip, tcp })
    }

    /// Ethernet header + IP header + TCP header and options + payload.
    pub fn buffer_len(&self) -> usize {
        self.eth.header_len() + self.ip.header_len() + self.tcp.buffer_len()
    }

    /// Writes the whole frame into `buf[..self.buffer_len()]`: the IP payload length comes
    /// from the TCP repr (`ip`'s `payload_len` is ignored) and the EtherType from the IP
    /// version (`eth.ethertype` is ignored); IPv4 and TCP checksums are filled.
    ///
    /// Panics if `buf` is shorter than [`TcpFrame::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) {
        let eth_len = self.eth.header_len();
        let ip_len = self.ip.header_len();
        let tcp_len = self.tcp.buffer_len();
        let buf = &mut buf[..eth_len + ip_len + tcp_len];
        let (eth_buf, rest) = buf.split_at_mut(eth_len);
        let (ip_buf, tcp_buf) = rest.split_at_mut(ip_len);
        ethernet::Repr {
            ethertype: self.ip.ethertype(),
            ..self.eth
        }
        .emit(eth_buf);
        self.ip.emit(ip_buf, tcp_len);
        self.tcp.emit(tcp_buf, self.ip.src(), self.ip.dst());
    }
}

/// The IP payload: `payload_len` bytes after a `header_len` header, padding cut off.
fn ip_payload(packet: &[u8], header_len: usize, payload_len: usize) -> Result<&[u8], Error> {
    packet
        .get(header_len..header_len + payload_len)
        .ok_or(Error::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::SeqNumber;
    use crate::wire::captured::{CURL_GET_DATA, CURL_SYN, KERNEL_SYN_ACK};
    use crate::wire::checksum;
    use crate::wire::tcp::{Flags, Options};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
    const CLIENT_MAC: [u8; 6] = [0xee, 0x3f, 0xc7, 0x60, 0xa1, 0x68];
    const SERVER_MAC: [u8; 6] = [0xfe, 0x8a, 0xa8, 0x78, 0x6b, 0x1e];

    #[test]
    fn curl_syn_parses_to_its_fields() {
        let f = TcpFrame::parse(&CURL_SYN).unwrap();
        assert_eq!(f.eth.src, CLIENT_MAC);
        assert_eq!(f.eth.dst, SERVER_MAC);
        assert_eq!(f.eth.vlan, None);
        assert_eq!((f.ip.src(), f.ip.dst()), (CLIENT.into(), SERVER.into()));
        let IpRepr::V4(ip) = f.ip else { panic!("IPv4") };
        assert_eq!((ip.ttl, ip.protocol, ip.payload_len), (64, 6, 40));
        assert_eq!((f.tcp.src_port, f.tcp.dst_port), (57296, 8080));
        assert_eq!(f.tcp.seq, SeqNumber(2657006917));
        assert_eq!(f.tcp.flags, Flags::SYN);
        assert_eq!(f.tcp.window, 64240);
        assert_eq!(
            f.tcp.options,
            Options {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamp: Some((3370480142, 0)),
                ..Options::default()
            }
        );
        assert!(f.tcp.payload.is_empty());
        assert_eq!(f.tcp.segment_len(), 1);
    }

    #[test]
    fn captured_kernel_frames_have_valid_ip_and_tcp_checksums() {
        for frame in [&CURL_SYN[..], &KERNEL_SYN_ACK[..], &CURL_GET_DATA[..]] {
            let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
            assert!(ip.verify_checksum());
            let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
            let segment = tcp::Packet::new_checked(ip.payload()).unwrap();
            assert!(segment.verify_checksum(src, dst));
        }
    }

    #[test]
    fn curl_syn_re_emits_byte_for_byte() {
        // The kernel's IP ident is not in the Repr (we send 0), so patch it in and refill
        // the header checksum before comparing.
        let f = TcpFrame::parse(&CURL_SYN).unwrap();
        let mut buf = [0xa5; 74];
        f.emit(&mut buf);
        let mut ip = ipv4::Packet::new_unchecked(&mut buf[14..34]);
        ip.set_ident(0x0116);
        ip.fill_checksum();
        assert_eq!(buf, CURL_SYN);
    }

    #[test]
    fn kernel_syn_ack_parses_and_re_emits_byte_for_byte() {
        let f = TcpFrame::parse(&KERNEL_SYN_ACK).unwrap();
        assert_eq!(f.tcp.flags, Flags::SYN | Flags::ACK);
        assert_eq!(f.tcp.ack, SeqNumber(2657006917) + 1u32);
        assert_eq!(f.tcp.options.mss, Some(1460));
        assert_eq!(f.tcp.options.timestamp, Some((2285608436, 3370480142)));
        let mut buf = [0xa5; 74];
        f.emit(&mut buf);
        assert_eq!(
            buf, KERNEL_SYN_ACK,
            "ident 0 and DF, as Linux sends a SYN-ACK"
        );
    }

    #[test]
    fn curl_data_segment_carries_the_request() {
        let f = TcpFrame::parse(&CURL_GET_DATA).unwrap();
        assert_eq!(f.tcp.flags, Flags::PSH | Flags::ACK);
        assert_eq!(f.tcp.seq, SeqNumber(2657006918));
        assert_eq!(f.tcp.ack, SeqNumber(2435742527));
        assert_eq!(f.tcp.window, 502);
        assert_eq!(f.tcp.options.timestamp, Some((3370480143, 2285608436)));
        assert_eq!(f.tcp.options.mss, None);
        assert_eq!(f.tcp.payload.len(), 88);
        assert!(f.tcp.payload.starts_with(b"GET /index.html HTTP/1.1\r\n"));
        assert_eq!(f.buffer_len(), CURL_GET_DATA.len());
    }

    #[test]
    fn ethernet_padding_is_not_part_of_the_segment() {
        // A 60-byte minimum frame: 14 + 20 + 20 and 6 bytes of padding.
        let f = TcpFrame {
            eth: ethernet::Repr {
                dst: SERVER_MAC,
                src: CLIENT_MAC,
                vlan: None,
                ethertype: 0,
            },
            ip: v4(),
            tcp: tcp::Repr {
                flags: Flags::RST,
                options: Options::default(),
                ..seg(b"")
            },
        };
        let mut buf = [0xee; 60];
        f.emit(&mut buf[..54]);
        let back = TcpFrame::parse(&buf).unwrap();
        assert!(back.tcp.payload.is_empty());
        assert_eq!(back.tcp.flags, Flags::RST);
    }

    fn v4() -> IpRepr {
        IpRepr::V4(ipv4::Repr {
            src: CLIENT,
            dst: SERVER,
            protocol: 6,
            payload_len: 0,
            ttl: 64,
        })
    }

    fn v6() -> IpRepr {
        IpRepr::V6(ipv6::Repr {
            src: "fd77::1".parse().unwrap(),
            dst: "fd77::2".parse().unwrap(),
            next_header: 6,
            payload_len: 0,
            hop_limit: 64,
        })
    }

    fn seg(payload: &[u8]) -> tcp::Repr<'_> {
        tcp::Repr {
            src_port: 40000,
            dst_port: 80,
            seq: SeqNumber(1),
            ack: SeqNumber(2),
            flags: Flags::ACK,
            window: 100,
            options: Options {
                timestamp: Some((5, 6)),
                ..Options::default()
            },
            payload,
        }
    }

    /// Emits a frame into a buffer of exactly `buffer_len` bytes pre-filled with 0xa5.
    fn emit(f: &TcpFrame<'_>) -> Vec<u8> {
        let mut buf = vec![0xa5; f.buffer_len()];
        f.emit(&mut buf);
        buf
    }

    fn normalized<'a>(mut f: TcpFrame<'a>) -> TcpFrame<'a> {
        let len = f.tcp.buffer_len();
        match &mut f.ip {
            IpRepr::V4(r) => r.payload_len = len,
            IpRepr::V6(r) => r.payload_len = len,
        }
        f.eth.ethertype = f.ip.ethertype();
        f
    }

    fn syn_frame() -> Vec<u8> {
        CURL_SYN.to_vec()
    }

    #[test]
    fn every_prefix_of_a_syn_is_an_error_never_a_panic() {
        let frame = syn_frame();
        for n in 0..frame.len() {
            assert!(TcpFrame::parse(&frame[..n]).is_err(), "prefix of {n} bytes");
        }
        assert!(TcpFrame::parse(&frame).is_ok());
    }

    #[test]
    fn a_bad_tcp_checksum_is_rejected() {
        let mut frame = syn_frame();
        frame[50] ^= 0xff;
        assert_eq!(TcpFrame::parse(&frame), Err(Error::BadChecksum));
    }

    #[test]
    fn a_bad_ipv4_header_checksum_is_rejected() {
        let mut frame = syn_frame();
        frame[24] ^= 0x01;
        assert_eq!(TcpFrame::parse(&frame), Err(Error::BadChecksum));
    }

    /// Rewrites the TCP part of the SYN with `f` and refills the TCP checksum.
    fn patched_tcp(f: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let mut frame = syn_frame();
        f(&mut frame[34..]);
        let sum = checksum::pseudo_header(CLIENT.into(), SERVER.into(), 6, 40);
        frame[50..52].copy_from_slice(&[0, 0]);
        let c = checksum::finish(sum + checksum::sum(&frame[34..]));
        frame[50..52].copy_from_slice(&c.to_be_bytes());
        frame
    }

    #[test]
    fn data_offset_four_is_a_bad_header_length() {
        let frame = patched_tcp(|t| t[12] = 0x40);
        assert_eq!(TcpFrame::parse(&frame), Err(Error::BadHeaderLength));
    }

    #[test]
    fn data_offset_beyond_the_packet_is_a_bad_header_length() {
        let frame = patched_tcp(|t| t[12] = 0xf0);
        assert_eq!(TcpFrame::parse(&frame), Err(Error::BadHeaderLength));
    }

    #[test]
    fn illegal_option_lengths_are_rejected() {
        // Options start at TCP byte 20: [2,4,5,180, 4,2, 8,10,...]. Kind 4 at 24, its length 25.
        for (at, value) in [(25, 0), (25, 1), (25, 30), (21, 3)] {
            let frame = patched_tcp(|t| t[at] = value);
            assert_eq!(
                TcpFrame::parse(&frame),
                Err(Error::BadOptionLength),
                "byte {at} = {value}"
            );
        }
    }

    #[test]
    fn ipv4_options_are_rejected() {
        let mut frame = syn_frame();
        frame[14] = 0x46; // IHL 6: the first 4 TCP bytes now read as IP options
        let mut ip = ipv4::Packet::new_unchecked(&mut frame[14..]);
        ip.fill_checksum();
        assert_eq!(TcpFrame::parse(&frame), Err(Error::IpOptions));
    }

    #[test]
    fn ipv4_fragments_are_rejected() {
        for (mf, offset) in [(true, 0), (false, 1480)] {
            let mut frame = syn_frame();
            let mut ip = ipv4::Packet::new_unchecked(&mut frame[14..]);
            ip.set_flags_and_frag_offset(false, mf, offset);
            ip.fill_checksum();
            assert_eq!(TcpFrame::parse(&frame), Err(Error::Fragment));
        }
    }

    #[test]
    fn udp_over_ipv4_is_not_tcp() {
        let mut frame = syn_frame();
        let mut ip = ipv4::Packet::new_unchecked(&mut frame[14..]);
        ip.set_protocol(17);
        ip.fill_checksum();
        assert_eq!(TcpFrame::parse(&frame), Err(Error::NotTcp));
    }

    #[test]
    fn ipv6_with_a_hop_by_hop_header_is_not_tcp() {
        let f = TcpFrame {
            eth: ethernet::Repr {
                dst: SERVER_MAC,
                src: CLIENT_MAC,
                vlan: None,
                ethertype: 0,
            },
            ip: v6(),
            tcp: seg(b"x"),
        };
        let mut frame = emit(&f);
        assert!(TcpFrame::parse(&frame).is_ok());
        frame[14 + 6] = 0; // next header: hop-by-hop options
        assert_eq!(TcpFrame::parse(&frame), Err(Error::NotTcp));
    }

    #[test]
    fn arp_is_an_unsupported_ethertype() {
        let mut arp = [0u8; 42];
        arp[..12].copy_from_slice(&[0xff; 12]);
        arp[12..14].copy_from_slice(&ethernet::ETHERTYPE_ARP.to_be_bytes());
        assert_eq!(TcpFrame::parse(&arp), Err(Error::UnsupportedEtherType));
    }

    #[test]
    fn a_second_vlan_tag_is_an_unsupported_ethertype() {
        let mut frame = vec![0u8; 80];
        frame[12..14].copy_from_slice(&[0x81, 0x00]);
        frame[16..18].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(TcpFrame::parse(&frame), Err(Error::UnsupportedEtherType));
    }

    #[test]
    fn an_8021ad_service_tag_outside_or_inside_a_vlan_tag_is_qinq() {
        // A valid SYN behind an 802.1ad tag (TPID 0x88A8, then the 802.1Q-style TCI and the
        // inner EtherType): the same bytes behind 0x8100 parse.
        let syn = syn_frame();
        let tagged = |tpid: [u8; 2]| {
            let mut f = syn[..12].to_vec();
            f.extend_from_slice(&tpid);
            f.extend_from_slice(&[0x00, 0x05]);
            f.extend_from_slice(&syn[12..]);
            f
        };
        assert!(TcpFrame::parse(&tagged([0x81, 0x00])).is_ok());
        assert_eq!(TcpFrame::parse(&tagged([0x88, 0xa8])), Err(Error::QinQ));
        let mut inner = tagged([0x81, 0x00]);
        inner[16..18].copy_from_slice(&ethernet::ETHERTYPE_QINQ.to_be_bytes());
        assert_eq!(TcpFrame::parse(&inner), Err(Error::QinQ));
    }

    #[test]
    fn an_ipv4_version_under_the_ipv6_ethertype_is_a_bad_version() {
        let mut frame = syn_frame();
        frame.resize(80, 0);
        frame[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
        assert_eq!(TcpFrame::parse(&frame), Err(Error::BadVersion));
    }

    /// One generated segment (see `tcp::tests::arb_segment`) and a TTL / address byte.
    type FrameCase = (tcp::tests::ArbSegment, u8);

    fn arb_frame() -> impl Strategy<Value = FrameCase> {
        (tcp::tests::arb_segment(), any::<u8>())
    }

    fn frame_round_trips(
        ((sp, dp, seq, ack, flags, window, options, payload), ttl): FrameCase,
        vlan: Option<u16>,
        is_v6: bool,
    ) -> Result<(), TestCaseError> {
        let ip = if is_v6 {
            IpRepr::V6(ipv6::Repr {
                src: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(ttl)),
                dst: "2001:db8::ffff".parse().unwrap(),
                next_header: 6,
                payload_len: 0,
                hop_limit: ttl,
            })
        } else {
            IpRepr::V4(ipv4::Repr {
                src: Ipv4Addr::new(192, 0, 2, ttl),
                dst: Ipv4Addr::new(198, 51, 100, 7),
                protocol: 6,
                payload_len: 0,
                ttl,
            })
        };
        let f = TcpFrame {
            eth: ethernet::Repr {
                dst: SERVER_MAC,
                src: CLIENT_MAC,
                vlan,
                ethertype: 0,
            },
            ip,
            tcp: tcp::Repr {
                src_port: sp,
                dst_port: dp,
                seq: SeqNumber(seq),
                ack: SeqNumber(ack),
                flags: Flags(flags),
                window,
                options,
                payload: &payload,
            },
        };
        let buf = emit(&f);
        prop_assert_eq!(buf.len(), f.buffer_len());
        prop_assert_eq!(TcpFrame::parse(&buf), Ok(normalized(f)));
        Ok(())
    }

    proptest! {
        #[test]
        fn ipv4_frames_round_trip(x in arb_frame()) {
            frame_round_trips(x, None, false)?;
        }

        #[test]
        fn ipv6_frames_round_trip(x in arb_frame()) {
            frame_round_trips(x, None, true)?;
        }

        #[test]
        fn vlan_tagged_ipv4_frames_round_trip(tci: u16, x in arb_frame()) {
            frame_round_trips(x, Some(tci), false)?;
        }

        #[test]
        fn vlan_tagged_ipv6_frames_round_trip(tci: u16, x in arb_frame()) {
            frame_round_trips(x, Some(tci), true)?;
        }

        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = TcpFrame::parse(&bytes);
        }

        #[test]
        fn parsing_a_mutated_syn_never_panics(at in 0usize..74, value: u8, cut in 0usize..=74) {
            let mut frame = syn_frame();
            frame[at] = value;
            let _ = TcpFrame::parse(&frame[..cut]);
        }

        #[test]
        fn parsing_a_frame_with_valid_headers_and_random_rest_never_panics(
            is_v6: bool, rest in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            // Random bytes behind a valid Ethernet + IP header, with their TCP checksum filled
            // in so they get past it to the TCP header and option parsers.
            let ip = if is_v6 { v6() } else { v4() };
            let eth = ethernet::Repr { dst: SERVER_MAC, src: CLIENT_MAC, vlan: None, ethertype: ip.ethertype() };
            let mut frame = vec![0u8; 14 + ip.header_len() + rest.len()];
            eth.emit(&mut frame);
            ip.emit(&mut frame[14..], rest.len());
            let segment = &mut frame[14 + ip.header_len()..];
            segment.copy_from_slice(&rest);
            if segment.len() >= tcp::HEADER_LEN {
                tcp::Packet::new_unchecked(&mut segment[..]).fill_checksum(ip.src(), ip.dst());
            }
            let parsed = TcpFrame::parse(&frame);
            prop_assert_ne!(parsed.err(), Some(Error::BadChecksum));
        }
    }
}
