//! The example programs in bpf/examples, run over a corpus of packets
//! (tests/common/packets.rs). Every check is written against the engine-
//! neutral API and takes the engine as an argument; what a program should
//! do is computed here, in Rust, from the packets themselves.
//!
//! Kernel tests need root: skipped with a reason otherwise, a failure under
//! CI=true.

mod common;
use common::available;

use bpfkit::{Engine, ExecMode, Loaded, Map, Object, RunOutput, BPF_ANY};
use common::packets::{self, be16, corpus, parse, L3};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;

const XDP_ABORTED: u64 = 0;
const XDP_DROP: u64 = 1;
const XDP_PASS: u64 = 2;
const XDP_TX: u64 = 3;
const XDP_REDIRECT: u64 = 4;
const TC_ACT_OK: u64 = 0;
const TC_ACT_SHOT: u64 = 2;

fn object(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../bpf/examples")
        .join(format!("{name}.bpf.o"))
}

fn load(name: &str, engine: Engine) -> Loaded {
    load_with(Object::open(object(name)).unwrap(), engine)
}

thread_local! {
    /// How this test's VM loads run programs (each test has its thread).
    static EXEC: std::cell::Cell<ExecMode> = std::cell::Cell::new(ExecMode::default());
}

fn load_with(mut obj: Object, engine: Engine) -> Loaded {
    obj.set_exec_mode(EXEC.get());
    obj.load(engine).unwrap_or_else(|e| panic!("{e}"))
}

/// Test runs of skb programs (tc, socket filters) refuse IPv4 frames
/// without a whole IPv4 header and IPv6 frames without a whole IPv6 header
/// (by the Ethernet header's EtherType); checks that they do.
fn skb_refuses(loaded: &mut Loaded, program: &str, name: &str, input: &[u8]) -> bool {
    let needed = match be16(input, 12) {
        packets::ETH_P_IP => 14 + 20,
        packets::ETH_P_IPV6 => 14 + 40,
        _ => 14,
    };
    if input.len() >= needed {
        return false;
    }
    let e = loaded.run(program, input, 1);
    assert!(
        e.is_err(),
        "{program} on {name}: a {}-byte frame ran",
        input.len()
    );
    true
}

fn run(loaded: &mut Loaded, program: &str, name: &str, input: &[u8]) -> RunOutput {
    loaded
        .run(program, input, 1)
        .unwrap_or_else(|e| panic!("{program} on {name}: {e}"))
}

// Host-side map plumbing.

fn set_prog_array(loaded: &mut Loaded, map: &str, index: u32, program: &str) {
    loaded
        .set_prog_array(map, index, program)
        .unwrap_or_else(|e| panic!("{e}"));
}

fn set_map_of_maps(loaded: &mut Loaded, map: &str, index: u32, inner: &str) {
    loaded
        .set_map_of_maps(map, index, inner)
        .unwrap_or_else(|e| panic!("{e}"));
}

fn drain_ringbuf(loaded: &mut Loaded, map: &str) -> Vec<Vec<u8>> {
    loaded.drain_ringbuf(map).unwrap_or_else(|e| panic!("{e}"))
}

fn map(loaded: &Loaded, name: &str) -> Map {
    loaded.map(name).unwrap_or_else(|e| panic!("{e}"))
}

/// Values of an ARRAY of __u64, in index order.
fn u64_array(loaded: &Loaded, name: &str) -> Vec<u64> {
    let m = map(loaded, name);
    let mut keys = m.keys().unwrap();
    keys.sort_by_key(|k| u32::from_ne_bytes(k[..4].try_into().unwrap()));
    keys.iter()
        .map(|k| {
            let v = m.lookup(k).unwrap().unwrap();
            u64::from_ne_bytes(v[..8].try_into().unwrap())
        })
        .collect()
}

/// A HASH's contents as sorted (key, value) pairs of bytes.
fn hash_contents(loaded: &Loaded, name: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let m = map(loaded, name);
    m.keys()
        .unwrap()
        .into_iter()
        .map(|k| {
            let v = m.lookup(&k).unwrap().unwrap();
            (k, v)
        })
        .collect()
}

/// Sums the __u64 fields of a per-CPU value (one 8-byte-aligned slot per
/// possible CPU) over the CPUs.
fn percpu_sum(bytes: &[u8], value_size: usize) -> Vec<u64> {
    let slot = value_size.div_ceil(8) * 8;
    let mut sum = vec![0u64; value_size / 8];
    for cpu in bytes.chunks(slot) {
        for (i, s) in sum.iter_mut().enumerate() {
            *s += u64::from_ne_bytes(cpu[i * 8..i * 8 + 8].try_into().unwrap());
        }
    }
    sum
}

// --- xdp_proto_count ---------------------------------------------------------

fn check_proto_count(engine: Engine) -> Loaded {
    let mut loaded = load("xdp_proto_count", engine);
    let mut expected: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    let (mut packets, mut bytes) = (0u64, 0u64);
    for (name, pkt) in corpus() {
        let p = parse(&pkt);
        let (key, verdict) = match &p.l3 {
            L3::V4(ip) => (ip.proto as u32, XDP_PASS),
            L3::V6(ip) => (ip.nexthdr as u32, XDP_PASS),
            L3::Malformed => (0xfffe, XDP_DROP),
            L3::None if !p.eth => (0xfffe, XDP_DROP),
            L3::None => (0xffff, XDP_PASS),
        };
        let out = run(&mut loaded, "count_protocols", &name, &pkt);
        assert_eq!(out.retval, verdict, "{name}");
        assert_eq!(out.output, pkt, "{name}");
        let e = expected.entry(key).or_default();
        e.0 += 1;
        e.1 += pkt.len() as u64;
        packets += 1;
        bytes += pkt.len() as u64;
    }
    // Every branch was taken.
    for key in [1, 6, 17, 58, 0xffff, 0xfffe] {
        assert!(
            expected.contains_key(&key),
            "the corpus has no frame for key {key:#x}"
        );
    }
    let got: BTreeMap<u32, (u64, u64)> = hash_contents(&loaded, "proto_stats")
        .into_iter()
        .map(|(k, v)| {
            let v = percpu_sum(&v, 16);
            (u32::from_ne_bytes(k[..4].try_into().unwrap()), (v[0], v[1]))
        })
        .collect();
    assert_eq!(got, expected);
    let totals = map(&loaded, "totals");
    let t = totals.lookup(&0u32.to_ne_bytes()).unwrap().unwrap();
    assert_eq!(percpu_sum(&t, 16), vec![packets, bytes]);
    loaded
}

// --- xdp_blocklist -----------------------------------------------------------

const BLOCKED: [u16; 4] = [22, 53, 9999, 12345];

fn check_blocklist(engine: Engine) -> Loaded {
    let mut loaded = load("xdp_blocklist", engine);
    let blocked = loaded.typed_map::<u16, u64>("blocked_ports").unwrap();
    for port in BLOCKED {
        blocked.insert(&port, &0, BPF_ANY).unwrap();
    }
    let mut hits: BTreeMap<u16, u64> = BLOCKED.iter().map(|&p| (p, 0)).collect();
    let (mut pass, mut drop) = (0, 0);
    for (name, pkt) in corpus() {
        let port = parse(&pkt).dst_port();
        let verdict = match port {
            Some(p) if BLOCKED.contains(&p) => {
                *hits.get_mut(&p).unwrap() += 1;
                drop += 1;
                XDP_DROP
            }
            _ => {
                pass += 1;
                XDP_PASS
            }
        };
        let out = run(&mut loaded, "blocklist", &name, &pkt);
        assert_eq!(out.retval, verdict, "{name}");
        assert_eq!(out.output, pkt, "{name}");
    }
    assert!(hits[&22] > 0 && hits[&53] > 0 && hits[&9999] > 0 && pass > 0);
    let blocked = loaded.typed_map::<u16, u64>("blocked_ports").unwrap();
    let got: BTreeMap<u16, u64> = blocked
        .keys()
        .unwrap()
        .into_iter()
        .map(|k| (k, blocked.get(&k).unwrap().unwrap()))
        .collect();
    assert_eq!(got, hits);
    assert_eq!(u64_array(&loaded, "stats"), vec![pass, drop]);
    loaded
}

// --- tc_nat ------------------------------------------------------------------

fn check_tc_nat(engine: Engine) -> Loaded {
    let mut loaded = load("tc_nat", engine);
    let mut stats = [0u64; 5];
    for (name, pkt) in corpus() {
        if skb_refuses(&mut loaded, "nat", &name, &pkt) {
            continue;
        }
        let p = parse(&pkt);
        let mut expected = pkt.clone();
        let mut verdict = TC_ACT_OK;
        let mut rewritten = false;
        match p.ipv4() {
            Some(ip) if ip.proto == packets::PROTO_UDP || ip.proto == packets::PROTO_TCP => {
                let check_end = ip.l4.off
                    + if ip.proto == packets::PROTO_UDP {
                        8
                    } else {
                        18
                    };
                match ip.l4.ports {
                    Some((_, 9999)) if ip.proto == packets::PROTO_UDP => {
                        verdict = TC_ACT_SHOT;
                        stats[2] += 1;
                    }
                    Some((_, 7777)) if check_end <= pkt.len() => {
                        rewritten = true;
                        stats[0] += 1;
                        expected[ip.l4.off + 2..ip.l4.off + 4]
                            .copy_from_slice(&8888u16.to_be_bytes());
                        if ip.dst == [10, 0, 0, 1] {
                            stats[1] += 1;
                            expected[p.l3_off + 16..p.l3_off + 20].copy_from_slice(&[10, 0, 0, 2]);
                        }
                        packets::refresh_ipv4_checksums(&mut expected);
                    }
                    _ => stats[3] += 1,
                }
            }
            _ => stats[3] += 1,
        }
        let out = run(&mut loaded, "nat", &name, &pkt);
        assert_eq!(out.retval, verdict, "{name}");
        assert_eq!(out.output, expected, "{name}");
        if rewritten {
            assert!(
                packets::ipv4_header_ok(&out.output, p.l3_off),
                "{name}: IPv4 checksum"
            );
            assert!(packets::ipv4_l4_ok(&out.output), "{name}: TCP/UDP checksum");
            if name.contains("no_checksum") {
                assert_eq!(be16(&out.output, p.ipv4().unwrap().l4.off + 6), 0, "{name}");
            }
        }
    }
    assert!(stats[0] >= 4 && stats[1] >= 3 && stats[2] >= 1, "{stats:?}");
    stats[4] = 0x42 | 7 << 32;
    assert_eq!(u64_array(&loaded, "nat_stats"), stats.to_vec());
    loaded
}

// --- socket_filter -------------------------------------------------------------

/// skb->protocol as eth_type_trans sets it.
fn skb_protocol(frame: &[u8]) -> u16 {
    let t = be16(frame, 12);
    if t >= 0x0600 {
        t
    } else if frame.len() >= 16 && frame[14..16] == [0xff, 0xff] {
        0x0001 // ETH_P_802_3
    } else {
        0x0004 // ETH_P_802_2
    }
}

/// skb->pkt_type for a frame received on the loopback device, whose address
/// and broadcast address are both 00:00:00:00:00:00: PACKET_HOST for that
/// address, PACKET_MULTICAST for any group address (ff:ff:ff:ff:ff:ff too:
/// it is not the device's broadcast address), PACKET_OTHERHOST otherwise.
fn pkt_type(frame: &[u8]) -> u32 {
    let dst = &frame[..6];
    if dst == packets::MAC_ZERO {
        0
    } else if dst[0] & 1 == 1 {
        2
    } else {
        3
    }
}

fn socket_keeps(frame: &[u8], port: u16) -> bool {
    let net = &frame[14..];
    let l4 = match skb_protocol(frame) {
        packets::ETH_P_IP => {
            if net.len() < 20
                || net[0] >> 4 != 4
                || net[0] & 0xf < 5
                || net[9] != packets::PROTO_UDP
            {
                return false;
            }
            (net[0] & 0xf) as usize * 4
        }
        packets::ETH_P_IPV6 => {
            if net.len() < 40 || net[6] != packets::PROTO_UDP {
                return false;
            }
            40
        }
        _ => return false,
    };
    net.len() >= l4 + 8 && be16(net, l4 + 2) == port
}

fn check_socket_filter(engine: Engine) -> Loaded {
    let mut kept = None;
    for port in [None, Some(53u16)] {
        let mut obj = Object::open(object("socket_filter")).unwrap();
        if let Some(p) = port {
            obj.set_global("port", &p);
        }
        let port = port.unwrap_or(5353);
        let mut loaded = load_with(obj, engine);
        let mut stats = [0u64; 4];
        let mut types = [0u64; 8];
        let mut protocols: BTreeMap<u32, u64> = BTreeMap::new();
        for (name, pkt) in corpus() {
            if skb_refuses(&mut loaded, "keep_port", &name, &pkt) {
                continue;
            }
            let keep = socket_keeps(&pkt, port);
            stats[0] += 1;
            stats[if keep { 1 } else { 2 }] += 1;
            stats[3] += pkt.len() as u64 - 14;
            types[pkt_type(&pkt) as usize] += 1;
            *protocols.entry(skb_protocol(&pkt) as u32).or_default() += 1;
            let out = run(&mut loaded, "keep_port", &name, &pkt);
            assert_eq!(
                out.retval,
                if keep { 64 } else { 0 },
                "{name} (port {port})"
            );
            // The program saw the frame from its network header; the
            // Ethernet header comes back zeroed.
            let mut expected = vec![0; 14];
            expected.extend_from_slice(&pkt[14..]);
            assert_eq!(out.output, expected, "{name}");
        }
        assert!(stats[1] >= 3, "port {port}: {stats:?}");
        assert_eq!(u64_array(&loaded, "filter_stats"), stats.to_vec());
        assert_eq!(u64_array(&loaded, "pkt_types"), types.to_vec());
        let got: BTreeMap<u32, u64> = hash_contents(&loaded, "protocols")
            .into_iter()
            .map(|(k, v)| {
                (
                    u32::from_ne_bytes(k[..4].try_into().unwrap()),
                    u64::from_ne_bytes(v[..8].try_into().unwrap()),
                )
            })
            .collect();
        assert_eq!(got, protocols);
        kept = Some(loaded);
    }
    kept.expect("two ports")
}

// --- xdp_tail_chain --------------------------------------------------------------

/// Whether the tail chain's verdict stage drops the frame: an IPv4 header
/// (EtherType 0x0800, version 4) with a TTL below 5.
fn ttl_too_low(frame: &[u8]) -> bool {
    frame.len() >= 34
        && be16(frame, 12) == packets::ETH_P_IP
        && frame[14] >> 4 == 4
        && frame[22] < 5
}

/// `chain_state`'s one value, summed over the CPUs (8 bytes: magic, is_ipv4,
/// ttl, padding).
fn chain_state(loaded: &Loaded) -> [u8; 8] {
    let all = map(loaded, "chain_state")
        .lookup(&0u32.to_ne_bytes())
        .unwrap()
        .unwrap();
    let sum = percpu_sum(&all, 8)[0];
    sum.to_ne_bytes()
}

fn check_tail_chain(engine: Engine) -> Loaded {
    const ENTRY: usize = 0;
    const PARSE: usize = 1;
    const VERDICT: usize = 2;
    const MISS: usize = 3;
    const SELF: usize = 4;
    const TTL_DROP: usize = 5;
    const PASSED: usize = 6;
    const NO_STATE: usize = 7;
    let mut loaded = load("xdp_tail_chain", engine);
    let mut hits = [0u64; 8];
    let corpus = corpus();
    let (name, pkt) = &corpus[0];

    // An empty table: the entry's tail call fails.
    let out = run(&mut loaded, "xdp_entry", name, pkt);
    assert_eq!(out.retval, XDP_ABORTED);
    assert_eq!(out.output, *pkt);
    hits[ENTRY] += 1;
    hits[MISS] += 1;
    assert_eq!(u64_array(&loaded, "stage_hits"), hits.to_vec());

    // Only the parse stage: its own tail call fails, after it left what it
    // found in its CPU's slot of `chain_state` (one CPU's slot, so the sum
    // over CPUs is that state); the frame is untouched.
    set_prog_array(&mut loaded, "jmp_table", 0, "xdp_stage_parse");
    let out = run(&mut loaded, "xdp_entry", name, pkt);
    assert_eq!(out.retval, XDP_ABORTED);
    assert_eq!(out.output, *pkt);
    hits[ENTRY] += 1;
    hits[PARSE] += 1;
    hits[MISS] += 1;
    assert_eq!(u64_array(&loaded, "stage_hits"), hits.to_vec());
    assert!(
        !ttl_too_low(pkt) && pkt[14] >> 4 == 4,
        "{name}: an IPv4 frame"
    );
    let state = chain_state(&loaded);
    assert_eq!(state, [0xf0, 0xb7, 1, pkt[22], 0, 0, 0, 0], "{name}");
    // The host clears every CPU's slot (a per-CPU update writes them all).
    let slots = map(&loaded, "chain_state");
    let zeros = vec![0u8; slots.lookup(&0u32.to_ne_bytes()).unwrap().unwrap().len()];
    slots.update(&0u32.to_ne_bytes(), &zeros, BPF_ANY).unwrap();
    assert_eq!(chain_state(&loaded), [0; 8]);

    // The whole chain; the verdict stage takes the state, leaving none.
    set_prog_array(&mut loaded, "jmp_table", 1, "xdp_stage_verdict");
    for (name, pkt) in &corpus {
        let drop = ttl_too_low(pkt);
        let out = run(&mut loaded, "xdp_entry", name, pkt);
        assert_eq!(out.retval, if drop { XDP_DROP } else { XDP_PASS }, "{name}");
        assert_eq!(out.output, *pkt, "{name}");
        hits[ENTRY] += 1;
        hits[PARSE] += 1;
        hits[VERDICT] += 1;
        hits[if drop { TTL_DROP } else { PASSED }] += 1;
        assert_eq!(chain_state(&loaded), [0; 8], "{name}");
    }
    assert!(hits[TTL_DROP] >= 3);
    assert_eq!(u64_array(&loaded, "stage_hits"), hits.to_vec());

    // The verdict stage alone finds no state, directly or from the entry.
    let out = run(&mut loaded, "xdp_stage_verdict", name, pkt);
    assert_eq!(out.retval, XDP_PASS);
    hits[VERDICT] += 1;
    hits[PASSED] += 1;
    hits[NO_STATE] += 1;
    assert_eq!(u64_array(&loaded, "stage_hits"), hits.to_vec());
    set_prog_array(&mut loaded, "jmp_table", 0, "xdp_stage_verdict");
    let low_ttl = corpus
        .iter()
        .find(|(_, p)| ttl_too_low(p))
        .expect("a frame with a low TTL");
    // Without the parse stage, not even a low TTL is dropped.
    let out = run(&mut loaded, "xdp_entry", &low_ttl.0, &low_ttl.1);
    assert_eq!(out.retval, XDP_PASS);
    hits[ENTRY] += 1;
    hits[VERDICT] += 1;
    hits[PASSED] += 1;
    hits[NO_STATE] += 1;
    assert_eq!(u64_array(&loaded, "stage_hits"), hits.to_vec());

    // A program tail-calling itself: alone once (its slot is empty), then
    // 1 + 33 times (the kernel's limit) per run.
    let out = run(&mut loaded, "xdp_self_loop", name, pkt);
    assert_eq!(out.retval, XDP_PASS);
    hits[SELF] += 1;
    assert_eq!(u64_array(&loaded, "stage_hits"), hits.to_vec());
    set_prog_array(&mut loaded, "jmp_table", 2, "xdp_self_loop");
    for _ in 0..2 {
        let out = run(&mut loaded, "xdp_self_loop", name, pkt);
        assert_eq!(out.retval, XDP_PASS);
        hits[SELF] += 34;
    }
    assert_eq!(u64_array(&loaded, "stage_hits"), hits.to_vec());
    loaded
}

// --- xdp_ringbuf -----------------------------------------------------------------

/// The event `emit_events` should emit for a frame, if any.
fn ring_event(frame: &[u8]) -> Option<Vec<u8>> {
    if frame.len() < 60 {
        return None;
    }
    let mut e = Vec::with_capacity(20);
    e.extend_from_slice(&(frame.len() as u32).to_ne_bytes());
    let ethertype = be16(frame, 12);
    if frame.len() >= 34 && ethertype == packets::ETH_P_IP {
        let proto = frame[23];
        let l4 = 14 + (frame[14] & 0xf) as usize * 4;
        e.extend_from_slice(&packets::ETH_P_IP.to_ne_bytes());
        e.extend_from_slice(&[proto, 0]);
        e.extend_from_slice(&frame[26..34]);
        if (proto == packets::PROTO_TCP || proto == packets::PROTO_UDP)
            && frame[14] & 0xf >= 5
            && l4 + 4 <= frame.len()
        {
            e.extend_from_slice(&frame[l4..l4 + 4]);
        } else {
            e.extend_from_slice(&[0; 4]);
        }
    } else {
        e.extend_from_slice(&ethertype.to_ne_bytes());
        let proto = if ethertype == packets::ETH_P_IPV6 && frame.len() >= 54 {
            frame[20]
        } else {
            0
        };
        e.extend_from_slice(&[proto, 0]);
        e.extend_from_slice(&[0; 12]);
    }
    Some(e)
}

fn check_ringbuf(engine: Engine) -> Loaded {
    let mut loaded = load("xdp_ringbuf", engine);
    let mut stats = [0u64; 4];
    let mut expected = Vec::new();
    for (name, pkt) in corpus() {
        let out = run(&mut loaded, "emit_events", &name, &pkt);
        assert_eq!(out.retval, XDP_PASS, "{name}");
        assert_eq!(out.output, pkt, "{name}");
        match ring_event(&pkt) {
            None => stats[2] += 1,
            Some(e) => {
                stats[if be16(&pkt, 12) == packets::ETH_P_IP {
                    0
                } else {
                    1
                }] += 1;
                expected.push(e);
            }
        }
        // Every few frames, check what has arrived.
        if expected.len() >= 5 {
            assert_eq!(
                drain_ringbuf(&mut loaded, "events"),
                expected,
                "up to {name}"
            );
            expected.clear();
        }
    }
    assert_eq!(drain_ringbuf(&mut loaded, "events"), expected);
    assert!(drain_ringbuf(&mut loaded, "events").is_empty());
    assert!(stats[0] > 0 && stats[1] > 0 && stats[2] > 0, "{stats:?}");
    assert_eq!(u64_array(&loaded, "rb_stats"), stats.to_vec());
    loaded
}

// --- xdp_lpm_route ----------------------------------------------------------------

/// (prefix, prefix length, action, route id)
const ROUTES: [([u8; 4], u32, u32, u32); 6] = [
    ([10, 0, 0, 0], 8, 2, 1),
    ([10, 0, 0, 0], 24, 3, 2),
    ([10, 0, 0, 9], 32, 1, 3),
    ([192, 168, 0, 0], 16, 1, 4),
    ([172, 16, 0, 0], 12, 9, 5),
    ([93, 184, 216, 0], 24, 2, 6),
];

fn route_for(addr: [u8; 4]) -> Option<(u32, u32)> {
    let a = u32::from_be_bytes(addr);
    ROUTES
        .iter()
        .filter(|(net, len, _, _)| {
            let mask = if *len == 0 { 0 } else { u32::MAX << (32 - len) };
            a & mask == u32::from_be_bytes(*net) & mask
        })
        .max_by_key(|r| r.1)
        .map(|r| (r.2, r.3))
}

fn check_lpm_route(engine: Engine) -> Loaded {
    let mut loaded = load("xdp_lpm_route", engine);
    let routes = map(&loaded, "routes");
    for (net, len, action, id) in ROUTES {
        let mut key = len.to_ne_bytes().to_vec();
        key.extend_from_slice(&net);
        let mut value = action.to_ne_bytes().to_vec();
        value.extend_from_slice(&id.to_ne_bytes());
        routes.update(&key, &value, BPF_ANY).unwrap();
    }
    let mut hits: BTreeMap<u32, u64> = BTreeMap::new();
    for (name, pkt) in corpus() {
        let mut expected = pkt.clone();
        let verdict = if pkt.len() >= 34 && be16(&pkt, 12) == packets::ETH_P_IP {
            match route_for(pkt[30..34].try_into().unwrap()) {
                None => {
                    *hits.entry(0xffff_ffff).or_default() += 1;
                    XDP_PASS
                }
                Some((action, id)) => {
                    *hits.entry(id).or_default() += 1;
                    match action {
                        1 => XDP_DROP,
                        2 => XDP_PASS,
                        3 => {
                            expected[..6].copy_from_slice(&pkt[6..12]);
                            expected[6..12].copy_from_slice(&pkt[..6]);
                            XDP_TX
                        }
                        _ => XDP_ABORTED,
                    }
                }
            }
        } else {
            *hits.entry(0xffff_fffe).or_default() += 1;
            XDP_PASS
        };
        let out = run(&mut loaded, "route", &name, &pkt);
        assert_eq!(out.retval, verdict, "{name}");
        assert_eq!(out.output, expected, "{name}");
    }
    for id in [1, 2, 3, 4, 5, 6, 0xffff_ffff, 0xffff_fffe] {
        assert!(hits.contains_key(&id), "no frame took route {id:#x}");
    }
    let got: BTreeMap<u32, u64> = loaded
        .typed_map::<u32, u64>("route_hits")
        .unwrap()
        .keys()
        .unwrap()
        .into_iter()
        .map(|k| {
            (
                k,
                loaded
                    .typed_map::<u32, u64>("route_hits")
                    .unwrap()
                    .get(&k)
                    .unwrap()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(got, hits);
    loaded
}

// --- xdp_config --------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Config {
    blocked_port: u16,
    drop_icmp: u8,
    min_len: u32,
}

/// The drop_reasons index `configured_filter` should count a frame under.
fn config_reason(c: Config, frame: &[u8]) -> usize {
    if (frame.len() as u32) < c.min_len {
        return 0;
    }
    let p = parse(frame);
    if p.vlan.is_some() || p.outer_ethertype == packets::ETH_P_8021Q {
        return 3;
    }
    let icmp = match &p.l3 {
        L3::V4(ip) => ip.proto == packets::PROTO_ICMP,
        L3::V6(ip) => ip.nexthdr == packets::PROTO_ICMPV6,
        _ => return 3,
    };
    if c.drop_icmp != 0 && icmp {
        return 1;
    }
    match p.dst_port() {
        Some(port) if c.blocked_port != 0 && port == c.blocked_port => 2,
        _ => 3,
    }
}

fn check_config(engine: Engine) -> Loaded {
    let configs = [
        Config {
            blocked_port: 0,
            drop_icmp: 0,
            min_len: 0,
        },
        Config {
            blocked_port: 53,
            drop_icmp: 1,
            min_len: 60,
        },
        Config {
            blocked_port: 22,
            drop_icmp: 0,
            min_len: 0,
        },
    ];
    let mut kept = None;
    for (i, c) in configs.into_iter().enumerate() {
        let mut obj = Object::open(object("xdp_config")).unwrap();
        if i > 0 {
            obj.set_global("blocked_port", &c.blocked_port)
                .set_global("drop_icmp", &c.drop_icmp)
                .set_global("min_len", &c.min_len);
        }
        let mut loaded = load_with(obj, engine);
        let data = map(&loaded, ".data");
        assert_eq!(
            data.lookup(&0u32.to_ne_bytes()).unwrap().unwrap(),
            0xffff_ffffu32.to_ne_bytes()
        );
        let mut reasons = [0u64; 4];
        let mut last = 0;
        for (name, pkt) in corpus() {
            let reason = config_reason(c, &pkt);
            reasons[reason] += 1;
            last = if reason == 3 { XDP_PASS } else { XDP_DROP };
            let out = run(&mut loaded, "configured_filter", &name, &pkt);
            assert_eq!(out.retval, last, "{name} with {c:?}");
            assert_eq!(out.output, pkt, "{name}");
        }
        if i == 1 {
            assert!(reasons.iter().all(|&n| n > 0), "{reasons:?}");
        }
        let n = corpus().len() as u64;
        assert_eq!(
            u64_array(&loaded, "drop_reasons"),
            reasons.to_vec(),
            "{c:?}"
        );
        let bss = map(&loaded, ".bss");
        assert_eq!(
            bss.lookup(&0u32.to_ne_bytes()).unwrap().unwrap(),
            n.to_ne_bytes()
        );
        let data = map(&loaded, ".data");
        assert_eq!(
            data.lookup(&0u32.to_ne_bytes()).unwrap().unwrap(),
            (last as u32).to_ne_bytes()
        );
        kept = Some(loaded);
    }
    kept.expect("three configurations")
}

// --- xdp_helpers ---------------------------------------------------------------------

fn strncmp_sign(s1: &[u8], s2: &[u8]) -> i32 {
    for (a, b) in s1.iter().zip(s2) {
        if a != b {
            return if a < b { -1 } else { 1 };
        }
        if *a == 0 {
            break;
        }
    }
    0
}

fn check_helpers(engine: Engine) -> Loaded {
    let mut loaded = load("xdp_helpers", engine);
    let mut stats = [0u64; 6];
    let corpus = corpus();

    // xdp_adjust
    for (name, pkt) in &corpus {
        let out = run(&mut loaded, "xdp_adjust", name, pkt);
        if pkt.len() >= 28 {
            let mut expected = b"bpfkit\x00\x01".to_vec();
            expected.extend_from_slice(&pkt[..pkt.len() - 4]);
            assert_eq!((out.retval, &out.output), (XDP_TX, &expected), "{name}");
            stats[0] += 1;
        } else {
            assert_eq!((out.retval, &out.output), (XDP_PASS, pkt), "{name}");
            stats[1] += 1;
        }
    }
    assert!(stats[1] > 0);

    // xdp_payload
    let mut handled = 0;
    for (name, pkt) in &corpus {
        let p = parse(pkt);
        let payload = match p.ipv4() {
            Some(ip) if ip.ihl == 5 && ip.proto == packets::PROTO_UDP && pkt.len() >= 42 + 16 => {
                Some(&pkt[42..58])
            }
            _ => None,
        };
        let before = map(&loaded, "payload_result")
            .lookup(&0u32.to_ne_bytes())
            .unwrap()
            .unwrap();
        let out = run(&mut loaded, "xdp_payload", name, pkt);
        assert_eq!((out.retval, &out.output), (XDP_PASS, pkt), "{name}");
        let after = map(&loaded, "payload_result")
            .lookup(&0u32.to_ne_bytes())
            .unwrap()
            .unwrap();
        let Some(bytes) = payload else {
            stats[3] += 1;
            assert_eq!(after, before, "{name}");
            continue;
        };
        stats[2] += 1;
        handled += 1;
        let sum: u32 = bytes.iter().map(|&b| b as u32).sum();
        let cmp = strncmp_sign(&bytes[..4], b"GET \0");
        // bpf_csum_diff sums 16-bit words in memory (little-endian) order.
        let csum = packets::checksum(bytes).swap_bytes() as u32;
        let mut text = format!("sum={sum} cmp={cmp} csum={csum:04x} first=").into_bytes();
        text.push(bytes[0]);
        text.push(0);
        let field = |i: usize| u32::from_ne_bytes(after[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!(field(0), sum, "{name}");
        assert_eq!(field(1) as i32, cmp, "{name}");
        assert_eq!(field(2), csum, "{name}");
        assert_eq!(field(3) as usize, text.len(), "{name}");
        assert_eq!(&after[16..16 + text.len()], &text[..], "{name}");
        if name == "udp4_get_payload" {
            assert_eq!(cmp, 0);
        }
    }
    assert!(handled >= 3);

    // xdp_queue_stack: a queue and a stack of 8, the oldest element making
    // room when full.
    let mut fifo: VecDeque<u32> = VecDeque::new();
    let mut lifo: VecDeque<u32> = VecDeque::new();
    let mut results = [0u64; 4];
    for (name, pkt) in &corpus {
        let len = pkt.len() as u32;
        for q in [&mut fifo, &mut lifo] {
            if q.len() == 8 {
                q.pop_front();
            }
            q.push_back(len);
        }
        results[0] = *fifo.front().unwrap() as u64;
        results[1] = *lifo.back().unwrap() as u64;
        if len.is_multiple_of(2) {
            results[2] = fifo.pop_front().map_or(0xffff_ffff, |v| v as u64);
            results[3] = lifo.pop_back().map_or(0xffff_ffff, |v| v as u64);
        }
        let out = run(&mut loaded, "xdp_queue_stack", name, pkt);
        assert_eq!((out.retval, &out.output), (XDP_PASS, pkt), "{name}");
        assert_eq!(
            u64_array(&loaded, "queue_result"),
            results.to_vec(),
            "{name}"
        );
    }

    // xdp_inner_map: a miss, then `inner` at index 0 of `outer`.
    let (name, pkt) = &corpus[0];
    let out = run(&mut loaded, "xdp_inner_map", name, pkt);
    assert_eq!(out.retval, XDP_PASS);
    stats[4] += 1;
    set_map_of_maps(&mut loaded, "outer", 0, "inner");
    let mut inner = [0u64; 4];
    for (name, pkt) in &corpus {
        let out = run(&mut loaded, "xdp_inner_map", name, pkt);
        assert_eq!((out.retval, &out.output), (XDP_PASS, pkt), "{name}");
        inner[1 + pkt.len() % 3] += 1;
    }
    assert_eq!(u64_array(&loaded, "inner"), inner.to_vec());
    map(&loaded, "inner")
        .update(&0u32.to_ne_bytes(), &1u64.to_ne_bytes(), BPF_ANY)
        .unwrap();
    let out = run(&mut loaded, "xdp_inner_map", name, pkt);
    assert_eq!(out.retval, XDP_DROP);
    inner[0] = 1;
    inner[1 + pkt.len() % 3] += 1;
    assert_eq!(u64_array(&loaded, "inner"), inner.to_vec());

    // xdp_redirect: the fallback without a device, a redirect with one.
    let out = run(&mut loaded, "xdp_redirect", name, pkt);
    assert_eq!((out.retval, &out.output), (XDP_PASS, pkt));
    // The loopback device (ifindex 1); the value may carry a program too.
    let tx_ports = map(&loaded, "tx_ports");
    let mut dev = vec![0; tx_ports.value_size()];
    dev[..4].copy_from_slice(&1u32.to_ne_bytes());
    tx_ports.update(&0u32.to_ne_bytes(), &dev, BPF_ANY).unwrap();
    let out = run(&mut loaded, "xdp_redirect", name, pkt);
    assert_eq!(out.retval, XDP_REDIRECT);
    stats[5] += 2;

    assert_eq!(u64_array(&loaded, "helper_stats"), stats.to_vec());
    loaded
}

// --- The corpus ----------------------------------------------------------------------

#[test]
fn corpus_is_well_formed_and_matches_the_committed_pcap() {
    let corpus = corpus();
    assert!(corpus.len() >= 40, "{}", corpus.len());
    let mut names = HashMap::new();
    for (i, (name, pkt)) in corpus.iter().enumerate() {
        assert!(names.insert(name.clone(), i).is_none(), "{name} twice");
        assert!(pkt.len() >= 14, "{name}: shorter than an Ethernet header");
        let p = parse(pkt);
        // Whole IPv4 headers and segments carry valid checksums.
        if let Some(ip) = p.ipv4() {
            if !name.contains("ihl") && !name.contains("truncated") {
                assert!(packets::ipv4_header_ok(pkt, p.l3_off), "{name}");
                if ip.proto == packets::PROTO_UDP || ip.proto == packets::PROTO_TCP {
                    assert!(packets::ipv4_l4_ok(pkt), "{name}");
                }
            }
        }
    }
    let pcap = packets::corpus_pcap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf/examples/corpus.pcap");
    if std::env::var_os("BPFKIT_WRITE_CORPUS").is_some() {
        std::fs::write(&path, &pcap).unwrap();
    }
    let committed = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (BPFKIT_WRITE_CORPUS=1 writes it)", path.display()));
    assert!(
        committed == pcap,
        "{} is stale: BPFKIT_WRITE_CORPUS=1 rewrites it",
        path.display()
    );
    let mut reader = pcap_file::pcap::PcapReader::new(&committed[..]).unwrap();
    assert_eq!(reader.header().datalink, pcap_file::DataLink::ETHERNET);
    let mut n = 0;
    while let Some(packet) = reader.next_packet() {
        assert_eq!(packet.unwrap().data.as_ref(), &corpus[n].1[..]);
        n += 1;
    }
    assert_eq!(n, corpus.len());
}

// --- xdp_meta --------------------------------------------------------------------

/// xdp_meta over the corpus: the metadata comes back in front of the frame.
/// `None` when the kernel refuses bpf_xdp_adjust_meta to XDP programs (some
/// builds leave it out; the verifier says "cannot use helper"), saying so.
fn check_meta(engine: Engine) -> Option<Loaded> {
    let mut loaded = load("xdp_meta", engine);
    let corpus = corpus();
    for (i, (name, pkt)) in corpus.iter().enumerate() {
        // The kernel engine loads a program on its first run.
        let out = match loaded.run("xdp_meta", pkt, 1) {
            Ok(out) => out,
            Err(e)
                if i == 0
                    && engine == Engine::Kernel
                    && e.to_string()
                        .contains("cannot use helper bpf_xdp_adjust_meta") =>
            {
                eprintln!(
                    "xdp_meta: this kernel does not offer bpf_xdp_adjust_meta (#54) to XDP \
                     programs; its kernel run is left out (xdp_meta_vm checks the VM's)"
                );
                return None;
            }
            Err(e) => panic!("xdp_meta on {name}: {e}"),
        };
        let mut expected = (pkt.len() as u32 ^ 0xc0ff_ee00).to_ne_bytes().to_vec();
        expected.extend_from_slice(pkt);
        assert_eq!((out.retval, &out.output), (XDP_PASS, &expected), "{name}");
    }
    assert_eq!(
        u64_array(&loaded, "meta_stats"),
        vec![corpus.len() as u64, 0]
    );
    Some(loaded)
}

#[test]
fn xdp_meta_vm() {
    assert!(check_meta(Engine::Vm).is_some());
    EXEC.set(ExecMode::Interpret);
    assert!(check_meta(Engine::Vm).is_some());
}

#[test]
fn xdp_meta_kernel_and_both() {
    if !available() {
        return;
    }
    let Some(mut kernel) = check_meta(Engine::Kernel) else {
        return;
    };
    let mut vm = check_meta(Engine::Vm).unwrap();
    let diffs = bpfkit::compare::maps(&mut kernel, &mut vm).unwrap();
    assert!(diffs.is_empty(), "the engines' maps differ: {diffs:?}");
}

// --- Kernel -------------------------------------------------------------------------

macro_rules! kernel_tests {
    ($($test:ident => $check:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                if available() {
                    let _ = $check(Engine::Kernel);
                }
            }
        )*
    };
}

kernel_tests! {
    proto_count_kernel => check_proto_count,
    blocklist_kernel => check_blocklist,
    tc_nat_kernel => check_tc_nat,
    socket_filter_kernel => check_socket_filter,
    tail_chain_kernel => check_tail_chain,
    ringbuf_kernel => check_ringbuf,
    lpm_route_kernel => check_lpm_route,
    config_kernel => check_config,
    helpers_kernel => check_helpers,
}

// --- VM -------------------------------------------------------------------------

macro_rules! vm_tests {
    ($($test:ident => $check:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                let _ = $check(Engine::Vm);
            }
        )*
    };
}

// The VM's default on this host (the JIT on x86-64 Linux) above; the
// interpreter, and the interpreter against the JIT, here.

macro_rules! interpreter_tests {
    ($($test:ident => $check:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                EXEC.set(ExecMode::Interpret);
                let mut interp = $check(Engine::Vm);
                if !ExecMode::JIT_AVAILABLE {
                    return;
                }
                EXEC.set(ExecMode::Jit { blinding: true });
                let mut jit = $check(Engine::Vm);
                let diffs = bpfkit::compare::maps(&mut interp, &mut jit).unwrap();
                assert!(diffs.is_empty(), "the interpreter's and the JIT's maps differ:\n{}",
                    diffs.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"));
            }
        )*
    };
}

interpreter_tests! {
    proto_count_interpreter_and_jit => check_proto_count,
    blocklist_interpreter_and_jit => check_blocklist,
    tc_nat_interpreter_and_jit => check_tc_nat,
    socket_filter_interpreter_and_jit => check_socket_filter,
    tail_chain_interpreter_and_jit => check_tail_chain,
    ringbuf_interpreter_and_jit => check_ringbuf,
    lpm_route_interpreter_and_jit => check_lpm_route,
    config_interpreter_and_jit => check_config,
    helpers_interpreter_and_jit => check_helpers,
}

#[test]
fn the_vm_runs_the_jit_by_default_where_the_host_has_one() {
    let loaded = load("xdp_proto_count", Engine::Vm);
    let mode = loaded.vm().unwrap().exec_mode();
    if ExecMode::JIT_AVAILABLE {
        assert_eq!(mode, ExecMode::Jit { blinding: false });
    } else {
        assert_eq!(mode, ExecMode::Interpret);
    }
}

vm_tests! {
    proto_count_vm => check_proto_count,
    blocklist_vm => check_blocklist,
    tc_nat_vm => check_tc_nat,
    socket_filter_vm => check_socket_filter,
    tail_chain_vm => check_tail_chain,
    ringbuf_vm => check_ringbuf,
    lpm_route_vm => check_lpm_route,
    config_vm => check_config,
    helpers_vm => check_helpers,
}

// --- Both: the same code in each engine ends with identical maps ----------------

macro_rules! same_in_both {
    ($($test:ident => $check:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                if !available() {
                    return;
                }
                let mut kernel = $check(Engine::Kernel);
                let mut vm = $check(Engine::Vm);
                let diffs = bpfkit::compare::maps(&mut kernel, &mut vm).unwrap();
                assert!(diffs.is_empty(), "the engines' maps differ:\n{}",
                    diffs.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"));
                // Every map was compared (none skipped as unreadable but
                // the ones that hold engine-local ids).
                assert_eq!(kernel.map_names(), vm.map_names());
            }
        )*
    };
}

same_in_both! {
    proto_count_same_in_both => check_proto_count,
    blocklist_same_in_both => check_blocklist,
    tc_nat_same_in_both => check_tc_nat,
    socket_filter_same_in_both => check_socket_filter,
    tail_chain_same_in_both => check_tail_chain,
    ringbuf_same_in_both => check_ringbuf,
    lpm_route_same_in_both => check_lpm_route,
    config_same_in_both => check_config,
    helpers_same_in_both => check_helpers,
}
