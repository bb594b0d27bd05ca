//! Building and parsing test packets: Ethernet (with an optional 802.1Q
//! tag), IPv4, IPv6, TCP, UDP, ICMP and ICMPv6 with valid checksums, and a
//! corpus of named frames that reaches every branch of the programs in
//! bpf/examples.
//!
//! The parser here is independent of the programs under test: tests
//! compute what a program should do from it.

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_LLDP: u16 = 0x88cc;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_GRE: u8 = 47;
pub const PROTO_ICMPV6: u8 = 58;

pub const MAC_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];
/// The address of the loopback device, which test runs of skb programs
/// receive on: frames to it are PACKET_HOST.
pub const MAC_ZERO: [u8; 6] = [0; 6];
pub const MAC_BROADCAST: [u8; 6] = [0xff; 6];
/// 224.0.0.251 (mDNS).
pub const MAC_MDNS4: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
/// ff02::fb (mDNS).
pub const MAC_MDNS6: [u8; 6] = [0x33, 0x33, 0x00, 0x00, 0x00, 0xfb];
pub const MAC_STP: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x00];

pub const IP6_A: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a,
];
pub const IP6_B: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b,
];
pub const IP6_MDNS: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfb];

// --- Checksums -------------------------------------------------------------

/// The 16-bit ones' complement sum of `data` (big-endian words, an odd last
/// byte padded with zero), added to `initial`, not complemented.
pub fn ones_sum(data: &[u8], initial: u32) -> u16 {
    let mut sum = initial as u64;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum += word as u64;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum of `data` (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    !ones_sum(data, 0)
}

/// The ones' complement sum of the IPv4 TCP/UDP pseudo-header.
fn pseudo4(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> u32 {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    ones_sum(&p, 0) as u32
}

/// The ones' complement sum of the IPv6 upper-layer pseudo-header.
fn pseudo6(src: [u8; 16], dst: [u8; 16], proto: u8, len: usize) -> u32 {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, proto]);
    ones_sum(&p, 0) as u32
}

/// The checksum of a TCP/UDP/ICMPv6 segment with its pseudo-header sum; UDP
/// sends a computed 0 as 0xffff.
fn l4_checksum(pseudo: u32, segment: &[u8], udp: bool) -> u16 {
    let c = !ones_sum(segment, pseudo);
    if udp && c == 0 {
        0xffff
    } else {
        c
    }
}

// --- Builders --------------------------------------------------------------

/// An Ethernet frame.
pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An Ethernet frame with one 802.1Q tag (priority 0).
pub fn ethernet_vlan(
    dst: [u8; 6],
    src: [u8; 6],
    vid: u16,
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut tag = Vec::with_capacity(4 + payload.len());
    tag.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    tag.extend_from_slice(&ethertype.to_be_bytes());
    tag.extend_from_slice(payload);
    ethernet(dst, src, ETH_P_8021Q, &tag)
}

/// An IPv4 packet (DF set, no options unless given; options are padded to
/// 4 bytes) with a valid header checksum.
pub fn ipv4_with_options(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    ttl: u8,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut opts = options.to_vec();
    while !opts.len().is_multiple_of(4) {
        opts.push(0);
    }
    let hlen = 20 + opts.len();
    let total = hlen + payload.len();
    let mut p = Vec::with_capacity(total);
    p.push(0x40 | (hlen / 4) as u8);
    p.push(0);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&0x1234u16.to_be_bytes());
    p.extend_from_slice(&0x4000u16.to_be_bytes());
    p.push(ttl);
    p.push(proto);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&opts);
    let c = checksum(&p[..hlen]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, ttl: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_with_options(src, dst, proto, ttl, &[], payload)
}

/// An IPv6 packet.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], nexthdr: u8, hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + payload.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.push(nexthdr);
    p.push(hop_limit);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

fn udp_header(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(8 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    s
}

fn tcp_header(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(20 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&0x0102_0304u32.to_be_bytes()); // seq
    s.extend_from_slice(&0u32.to_be_bytes()); // ack
    s.push(5 << 4);
    s.push(flags);
    s.extend_from_slice(&0xfaf0u16.to_be_bytes()); // window
    s.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    s.extend_from_slice(payload);
    s
}

/// A UDP datagram for IPv4 with its checksum (`checksum: false` leaves the
/// field 0, "no checksum").
pub fn udp4(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    payload: &[u8],
    checksum: bool,
) -> Vec<u8> {
    let mut s = udp_header(sport, dport, payload);
    if checksum {
        let c = l4_checksum(pseudo4(src, dst, PROTO_UDP, s.len()), &s, true);
        s[6..8].copy_from_slice(&c.to_be_bytes());
    }
    s
}

/// A TCP segment for IPv4 with its checksum.
pub fn tcp4(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut s = tcp_header(sport, dport, flags, payload);
    let c = l4_checksum(pseudo4(src, dst, PROTO_TCP, s.len()), &s, false);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

pub fn udp6(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = udp_header(sport, dport, payload);
    let c = l4_checksum(pseudo6(src, dst, PROTO_UDP, s.len()), &s, true);
    s[6..8].copy_from_slice(&c.to_be_bytes());
    s
}

pub fn tcp6(
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut s = tcp_header(sport, dport, flags, payload);
    let c = l4_checksum(pseudo6(src, dst, PROTO_TCP, s.len()), &s, false);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

/// An ICMP echo request (type 8) with its checksum.
pub fn icmp4_echo(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An ICMPv6 echo request (type 128) with its checksum.
pub fn icmp6_echo(src: [u8; 16], dst: [u8; 16], id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![128, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    let c = l4_checksum(pseudo6(src, dst, PROTO_ICMPV6, m.len()), &m, false);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// Ethernet + IPv4 + UDP, from MAC_A to MAC_B, TTL 64.
pub fn eth_udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    ethernet(
        MAC_B,
        MAC_A,
        ETH_P_IP,
        &ipv4(
            src,
            dst,
            PROTO_UDP,
            64,
            &udp4(src, dst, sport, dport, payload, true),
        ),
    )
}

/// Ethernet + IPv4 + TCP (PSH|ACK), from MAC_A to MAC_B, TTL 64.
pub fn eth_tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    ethernet(
        MAC_B,
        MAC_A,
        ETH_P_IP,
        &ipv4(
            src,
            dst,
            PROTO_TCP,
            64,
            &tcp4(src, dst, sport, dport, 0x18, payload),
        ),
    )
}

// --- Parsing ---------------------------------------------------------------

/// What a frame holds, as far as the example programs look.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The frame length.
    pub len: usize,
    /// Whether the 14-byte Ethernet header is whole.
    pub eth: bool,
    pub dst_mac: [u8; 6],
    /// The EtherType of the Ethernet header (0x8100 for a tagged frame).
    pub outer_ethertype: u16,
    /// The 802.1Q tag's VID, when tagged and the tag is whole.
    pub vlan: Option<u16>,
    /// The EtherType after at most one tag.
    pub ethertype: u16,
    /// Offset of the network header.
    pub l3_off: usize,
    pub l3: L3,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum L3 {
    /// Not IPv4 or IPv6 (or no whole Ethernet header or tag).
    #[default]
    None,
    /// EtherType IPv4 or IPv6 but the header is cut short (or the version
    /// field disagrees, or the IPv4 IHL is below 5 or past the frame).
    Malformed,
    V4(Ip4),
    V6(Ip6),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ip4 {
    pub ihl: usize,
    pub ttl: u8,
    pub proto: u8,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub l4: L4,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ip6 {
    pub nexthdr: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub l4: L4,
}

/// The transport header, when the protocol is TCP or UDP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L4 {
    /// Offset of the transport header in the frame.
    pub off: usize,
    /// Source and destination ports, when both are in the frame.
    pub ports: Option<(u16, u16)>,
}

pub fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

fn l4_at(frame: &[u8], off: usize) -> L4 {
    let ports = (off + 4 <= frame.len()).then(|| (be16(frame, off), be16(frame, off + 2)));
    L4 { off, ports }
}

pub fn parse(frame: &[u8]) -> Parsed {
    let mut p = Parsed {
        len: frame.len(),
        ..Parsed::default()
    };
    if frame.len() < 14 {
        return p;
    }
    p.eth = true;
    p.dst_mac.copy_from_slice(&frame[..6]);
    p.outer_ethertype = be16(frame, 12);
    p.ethertype = p.outer_ethertype;
    p.l3_off = 14;
    if p.ethertype == ETH_P_8021Q {
        if frame.len() < 18 {
            p.l3 = L3::Malformed;
            return p;
        }
        p.vlan = Some(be16(frame, 14) & 0x0fff);
        p.ethertype = be16(frame, 16);
        p.l3_off = 18;
    }
    let ip = &frame[p.l3_off..];
    p.l3 = match p.ethertype {
        ETH_P_IP => {
            let ihl = ip.first().map_or(0, |b| (b & 0x0f) as usize);
            if ip.len() < 20 || ip[0] >> 4 != 4 || ihl < 5 || ihl * 4 > ip.len() {
                L3::Malformed
            } else {
                L3::V4(Ip4 {
                    ihl,
                    ttl: ip[8],
                    proto: ip[9],
                    src: ip[12..16].try_into().unwrap(),
                    dst: ip[16..20].try_into().unwrap(),
                    l4: l4_at(frame, p.l3_off + ihl * 4),
                })
            }
        }
        ETH_P_IPV6 => {
            if ip.len() < 40 || ip[0] >> 4 != 6 {
                L3::Malformed
            } else {
                L3::V6(Ip6 {
                    nexthdr: ip[6],
                    src: ip[8..24].try_into().unwrap(),
                    dst: ip[24..40].try_into().unwrap(),
                    l4: l4_at(frame, p.l3_off + 40),
                })
            }
        }
        _ => L3::None,
    };
    p
}

impl Parsed {
    /// The destination port of TCP or UDP over IPv4 or IPv6, untagged.
    pub fn dst_port(&self) -> Option<u16> {
        if self.vlan.is_some() || self.outer_ethertype == ETH_P_8021Q {
            return None;
        }
        let (proto, l4) = match &self.l3 {
            L3::V4(ip) => (ip.proto, &ip.l4),
            L3::V6(ip) => (ip.nexthdr, &ip.l4),
            _ => return None,
        };
        if proto != PROTO_TCP && proto != PROTO_UDP {
            return None;
        }
        l4.ports.map(|(_, d)| d)
    }

    /// The untagged IPv4 header, if any.
    pub fn ipv4(&self) -> Option<&Ip4> {
        match &self.l3 {
            L3::V4(ip) if self.vlan.is_none() => Some(ip),
            _ => None,
        }
    }
}

/// Whether the IPv4 header at `off` has a valid checksum.
pub fn ipv4_header_ok(frame: &[u8], off: usize) -> bool {
    let ihl = (frame[off] & 0x0f) as usize * 4;
    ones_sum(&frame[off..off + ihl], 0) == 0xffff
}

/// Whether the TCP or UDP checksum of an IPv4 frame (untagged, whole) is
/// valid; a UDP checksum of 0 ("none") counts as valid.
pub fn ipv4_l4_ok(frame: &[u8]) -> bool {
    let p = parse(frame);
    let ip = p.ipv4().expect("an IPv4 frame");
    let seg = &frame[ip.l4.off..];
    if ip.proto == PROTO_UDP && be16(seg, 6) == 0 {
        return true;
    }
    ones_sum(seg, pseudo4(ip.src, ip.dst, ip.proto, seg.len())) == 0xffff
}

/// Recomputes the IPv4 header checksum and the TCP/UDP checksum of an
/// untagged IPv4 frame from scratch (a UDP checksum of 0 stays 0).
pub fn refresh_ipv4_checksums(frame: &mut [u8]) {
    let p = parse(frame);
    let ip = p.ipv4().expect("an IPv4 frame").clone();
    let off = p.l3_off;
    frame[off + 10..off + 12].fill(0);
    let c = checksum(&frame[off..off + ip.ihl * 4]);
    frame[off + 10..off + 12].copy_from_slice(&c.to_be_bytes());
    let l4 = ip.l4.off;
    let check = match ip.proto {
        PROTO_UDP if be16(frame, l4 + 6) == 0 => return,
        PROTO_UDP => l4 + 6,
        PROTO_TCP => l4 + 16,
        _ => return,
    };
    frame[check..check + 2].fill(0);
    let seg = &frame[l4..];
    let c = l4_checksum(
        pseudo4(ip.src, ip.dst, ip.proto, seg.len()),
        seg,
        ip.proto == PROTO_UDP,
    );
    frame[check..check + 2].copy_from_slice(&c.to_be_bytes());
}

// --- The corpus --------------------------------------------------------------

/// Named frames reaching every branch of the example programs: IPv4 and
/// IPv6 TCP, UDP, ICMP; VLAN; ports the examples single out (22, 53, 5353,
/// 7777, 9999); routes; TTLs around 5; short, truncated and malformed
/// frames; other EtherTypes and destination MAC kinds.
pub fn corpus() -> Vec<(String, Vec<u8>)> {
    let h1 = [10, 1, 1, 1];
    let mut c: Vec<(&str, Vec<u8>)> = Vec::new();
    let http = b"GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n";

    // IPv4 UDP.
    c.push((
        "udp4_dns",
        eth_udp4(h1, [10, 0, 0, 9], 40000, 53, b"\x12\x34\x01\x00\x00\x01"),
    ));
    c.push((
        "udp4_dns_long",
        eth_udp4(h1, [8, 8, 8, 8], 40001, 53, &[0x5a; 40]),
    ));
    c.push((
        "udp4_mdns_multicast",
        ethernet(
            MAC_MDNS4,
            MAC_A,
            ETH_P_IP,
            &ipv4(
                h1,
                [224, 0, 0, 251],
                PROTO_UDP,
                255,
                &udp4(h1, [224, 0, 0, 251], 5353, 5353, &[0; 24], true),
            ),
        ),
    ));
    c.push((
        "udp4_mdns_to_host",
        ethernet(
            MAC_ZERO,
            MAC_A,
            ETH_P_IP,
            &ipv4(
                h1,
                [10, 0, 0, 9],
                PROTO_UDP,
                64,
                &udp4(h1, [10, 0, 0, 9], 5353, 5353, &[7; 150], true),
            ),
        ),
    ));
    c.push((
        "udp4_mdns_other_host_short",
        eth_udp4(h1, [10, 0, 0, 9], 5353, 5353, b"q"),
    ));
    c.push((
        "udp4_5354",
        eth_udp4(h1, [10, 0, 0, 9], 5353, 5354, &[1; 30]),
    ));
    c.push((
        "udp4_get_payload",
        eth_udp4(h1, [172, 16, 1, 1], 41000, 8080, http),
    ));
    c.push((
        "udp4_post_payload",
        eth_udp4(
            h1,
            [172, 31, 255, 1],
            41000,
            8080,
            b"POST /submit HTTP/1.1\r\n",
        ),
    ));
    c.push((
        "udp4_bye_payload",
        eth_udp4(
            h1,
            [192, 168, 3, 4],
            41000,
            8080,
            b"BYE and some more bytes",
        ),
    ));
    c.push((
        "udp4_to_7777_nat_addr",
        eth_udp4([10, 9, 9, 9], [10, 0, 0, 1], 33333, 7777, b"nat me, please"),
    ));
    c.push((
        "udp4_to_7777_other_addr",
        eth_udp4([10, 9, 9, 9], [10, 0, 0, 5], 33333, 7777, &[0xab; 33]),
    ));
    c.push((
        "udp4_to_7777_no_checksum",
        ethernet(
            MAC_B,
            MAC_A,
            ETH_P_IP,
            &ipv4(
                [10, 9, 9, 9],
                [10, 0, 0, 1],
                PROTO_UDP,
                64,
                &udp4(
                    [10, 9, 9, 9],
                    [10, 0, 0, 1],
                    33334,
                    7777,
                    b"unchecked",
                    false,
                ),
            ),
        ),
    ));
    c.push((
        "udp4_to_9999",
        eth_udp4(h1, [10, 0, 0, 1], 40000, 9999, b"drop me"),
    ));
    c.push((
        "udp4_from_7777",
        eth_udp4([10, 0, 0, 1], h1, 7777, 40000, b"reply"),
    ));
    c.push((
        "udp4_to_8888",
        eth_udp4(h1, [10, 0, 0, 1], 40000, 8888, b"already there"),
    ));
    // IPv4 TCP.
    c.push((
        "tcp4_http_get",
        eth_tcp4(h1, [93, 184, 216, 34], 50000, 80, http),
    ));
    c.push((
        "tcp4_ssh",
        eth_tcp4(h1, [10, 0, 0, 9], 50001, 22, b"SSH-2.0-x\r\n"),
    ));
    c.push((
        "tcp4_telnet_syn",
        eth_tcp4(h1, [192, 168, 1, 20], 50002, 23, b""),
    ));
    c.push((
        "tcp4_to_7777_nat_addr",
        eth_tcp4([10, 9, 9, 9], [10, 0, 0, 1], 44444, 7777, b"tcp nat me"),
    ));
    c.push((
        "tcp4_to_7777_other_addr",
        eth_tcp4(
            [10, 9, 9, 9],
            [10, 200, 0, 1],
            44444,
            7777,
            b"port only, odd",
        ),
    ));
    c.push((
        "tcp4_to_9999",
        eth_tcp4(h1, [10, 0, 0, 1], 50003, 9999, b"tcp is not dropped"),
    ));
    // IPv4 with options, TTLs, ICMP, other protocols.
    c.push((
        "udp4_options_to_5353",
        ethernet(
            MAC_B,
            MAC_A,
            ETH_P_IP,
            &ipv4_with_options(
                h1,
                [10, 0, 0, 1],
                PROTO_UDP,
                64,
                &[0x94, 0x04, 0, 0],
                &udp4(h1, [10, 0, 0, 1], 5353, 5353, &[3; 20], true),
            ),
        ),
    ));
    c.push((
        "tcp4_options_to_7777",
        ethernet(
            MAC_B,
            MAC_A,
            ETH_P_IP,
            &ipv4_with_options(
                [10, 9, 9, 9],
                [10, 0, 0, 1],
                PROTO_TCP,
                64,
                &[1, 1, 1, 0],
                &tcp4([10, 9, 9, 9], [10, 0, 0, 1], 44445, 7777, 0x02, b""),
            ),
        ),
    ));
    c.push((
        "icmp4_echo",
        ethernet(
            MAC_B,
            MAC_A,
            ETH_P_IP,
            &ipv4(
                h1,
                [10, 0, 0, 9],
                PROTO_ICMP,
                64,
                &icmp4_echo(1, 1, b"abcdefghijklmnopqrstuvwabcdefghi"),
            ),
        ),
    ));
    c.push((
        "icmp4_echo_ttl_3",
        ethernet(
            MAC_B,
            MAC_A,
            ETH_P_IP,
            &ipv4(
                h1,
                [192, 168, 7, 7],
                PROTO_ICMP,
                3,
                &icmp4_echo(1, 2, b"traceroute"),
            ),
        ),
    ));
    c.push((
        "udp4_ttl_1",
        ethernet(
            MAC_B,
            MAC_A,
            ETH_P_IP,
            &ipv4(
                h1,
                [10, 0, 0, 77],
                PROTO_UDP,
                1,
                &udp4(h1, [10, 0, 0, 77], 33434, 33434, &[0; 12], true),
            ),
        ),
    ));
    c.push((
        "udp4_ttl_4",
        ethernet(
            MAC_B,
            MAC_A,
            ETH_P_IP,
            &ipv4(
                h1,
                [10, 0, 0, 77],
                PROTO_UDP,
                4,
                &udp4(h1, [10, 0, 0, 77], 33435, 53, &[0; 13], true),
            ),
        ),
    ));
    c.push((
        "udp4_ttl_5",
        ethernet(
            MAC_B,
            MAC_A,
            ETH_P_IP,
            &ipv4(
                h1,
                [10, 0, 0, 77],
                PROTO_UDP,
                5,
                &udp4(h1, [10, 0, 0, 77], 33436, 33436, &[0; 14], true),
            ),
        ),
    ));
    c.push((
        "ipv4_gre",
        ethernet(
            MAC_B,
            MAC_A,
            ETH_P_IP,
            &ipv4(
                h1,
                [198, 51, 100, 1],
                PROTO_GRE,
                64,
                &[0, 0, 0x08, 0, 1, 2, 3, 4],
            ),
        ),
    ));
    // IPv6.
    c.push((
        "udp6_dns",
        ethernet(
            MAC_B,
            MAC_A,
            ETH_P_IPV6,
            &ipv6(
                IP6_A,
                IP6_B,
                PROTO_UDP,
                64,
                &udp6(IP6_A, IP6_B, 40000, 53, b"\xab\xcd\x01\x00"),
            ),
        ),
    ));
    c.push((
        "udp6_mdns",
        ethernet(
            MAC_MDNS6,
            MAC_A,
            ETH_P_IPV6,
            &ipv6(
                IP6_A,
                IP6_MDNS,
                PROTO_UDP,
                255,
                &udp6(IP6_A, IP6_MDNS, 5353, 5353, &[9; 21]),
            ),
        ),
    ));
    c.push((
        "tcp6_http",
        ethernet(
            MAC_B,
            MAC_A,
            ETH_P_IPV6,
            &ipv6(
                IP6_A,
                IP6_B,
                PROTO_TCP,
                64,
                &tcp6(IP6_A, IP6_B, 50000, 80, 0x18, http),
            ),
        ),
    ));
    c.push((
        "tcp6_ssh",
        ethernet(
            MAC_B,
            MAC_A,
            ETH_P_IPV6,
            &ipv6(
                IP6_A,
                IP6_B,
                PROTO_TCP,
                64,
                &tcp6(IP6_A, IP6_B, 50001, 22, 0x02, b""),
            ),
        ),
    ));
    c.push((
        "icmp6_echo",
        ethernet(
            MAC_B,
            MAC_A,
            ETH_P_IPV6,
            &ipv6(
                IP6_A,
                IP6_B,
                PROTO_ICMPV6,
                64,
                &icmp6_echo(IP6_A, IP6_B, 7, 1, b"ping6 payload"),
            ),
        ),
    ));
    c.push((
        "ipv6_hop_by_hop",
        ethernet(
            MAC_B,
            MAC_A,
            ETH_P_IPV6,
            &ipv6(IP6_A, IP6_B, 0, 64, &[PROTO_UDP, 0, 1, 4, 0, 0, 0, 0]),
        ),
    ));
    // VLAN.
    c.push((
        "vlan_udp4_dns",
        ethernet_vlan(
            MAC_B,
            MAC_A,
            100,
            ETH_P_IP,
            &ipv4(
                h1,
                [10, 0, 0, 9],
                PROTO_UDP,
                64,
                &udp4(h1, [10, 0, 0, 9], 40000, 53, b"tagged", true),
            ),
        ),
    ));
    c.push((
        "vlan_icmp6",
        ethernet_vlan(
            MAC_B,
            MAC_A,
            200,
            ETH_P_IPV6,
            &ipv6(
                IP6_A,
                IP6_B,
                PROTO_ICMPV6,
                64,
                &icmp6_echo(IP6_A, IP6_B, 8, 2, b"tagged ping"),
            ),
        ),
    ));
    c.push((
        "vlan_arp",
        ethernet_vlan(MAC_BROADCAST, MAC_A, 300, ETH_P_ARP, &arp_request()),
    ));
    c.push((
        "vlan_truncated_tag",
        ethernet(MAC_B, MAC_A, ETH_P_8021Q, &[0x00, 0x64]),
    ));
    // Not IP.
    c.push((
        "arp_broadcast",
        ethernet(MAC_BROADCAST, MAC_A, ETH_P_ARP, &arp_request()),
    ));
    c.push((
        "lldp",
        ethernet(
            [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e],
            MAC_A,
            ETH_P_LLDP,
            &[
                0x02, 0x07, 0x04, 2, 0, 0, 0, 0, 0x0a, 0x04, 0x03, 0x02, 0, 0x78, 0, 0,
            ],
        ),
    ));
    c.push((
        "llc_stp",
        ethernet(
            MAC_STP,
            MAC_A,
            0x0026,
            &[
                0x42, 0x42, 0x03, 0, 0, 0, 0, 0, 0x80, 0, 0x02, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0,
            ],
        ),
    ));
    // Short, truncated and malformed.
    c.push(("eth_only_ipv4", ethernet(MAC_B, MAC_A, ETH_P_IP, &[])));
    let full = eth_udp4(h1, [10, 0, 0, 1], 40000, 7777, b"cut");
    c.push(("ipv4_truncated_header", full[..14 + 12].to_vec()));
    c.push(("udp4_truncated_ports", full[..14 + 20 + 2].to_vec()));
    let mut bad_ihl = eth_udp4(h1, [10, 0, 0, 9], 40000, 53, b"bad ihl");
    bad_ihl[14] = 0x44;
    c.push(("ipv4_ihl_4", bad_ihl));
    let mut long_ihl = eth_udp4(h1, [10, 0, 0, 9], 40000, 53, b"");
    long_ihl[14] = 0x4f;
    c.push(("ipv4_ihl_past_end", long_ihl));
    let mut v6_in_v4 = eth_udp4(h1, [10, 0, 0, 9], 40000, 53, b"wrong version");
    v6_in_v4[14] = 0x65;
    c.push(("ipv4_version_6", v6_in_v4));
    let v6 = ethernet(
        MAC_B,
        MAC_A,
        ETH_P_IPV6,
        &ipv6(
            IP6_A,
            IP6_B,
            PROTO_UDP,
            64,
            &udp6(IP6_A, IP6_B, 40000, 53, b""),
        ),
    );
    c.push(("ipv6_truncated_header", v6[..14 + 30].to_vec()));

    c.into_iter().map(|(n, p)| (n.to_string(), p)).collect()
}

/// An ARP request for 10.0.0.9 from 10.1.1.1.
pub fn arp_request() -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&MAC_A);
    a.extend_from_slice(&[10, 1, 1, 1]);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&[10, 0, 0, 9]);
    a
}

/// The corpus as a pcap file (LINKTYPE_ETHERNET, microsecond timestamps,
/// little-endian): frame `i` at 1 700 000 000 s + `i` ms.
pub fn corpus_pcap() -> Vec<u8> {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use pcap_file::{DataLink, Endianness, TsResolution};
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: 65535,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
    };
    let mut w = PcapWriter::with_header(Vec::new(), header).expect("pcap header");
    for (i, (_, frame)) in corpus().iter().enumerate() {
        let ts = std::time::Duration::from_secs(1_700_000_000)
            + std::time::Duration::from_millis(i as u64);
        w.write_packet(&PcapPacket::new(ts, frame.len() as u32, frame))
            .expect("pcap packet");
    }
    w.into_writer()
}
