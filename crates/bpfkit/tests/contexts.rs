//! The VM's program contexts against the kernel's: which context accesses
//! each program type may make, the value of every readable field of xdp_md
//! and __sk_buff, and the packet helpers, all compared with
//! BPF_PROG_TEST_RUN on the same packets. Root only: skipped with a reason
//! otherwise, a failure under CI=true.

mod common;
use common::available;

use bpfkit::isa::{asm::assemble, Dialect, RawInsn};
use bpfkit::kernel::{self, LoadOptions, LogMode, ProgType, TestRun};
use bpfkit::vm::context::{self, fields, ContextKind, PacketContext};
use bpfkit::vm::{Helpers, Interpreter, Program, RunEnv};

const KINDS: [ContextKind; 4] = [
    ContextKind::Xdp,
    ContextKind::SchedCls,
    ContextKind::SocketFilter,
    ContextKind::CgroupSkb,
];

fn prog_type(kind: ContextKind) -> ProgType {
    match kind {
        ContextKind::Xdp => ProgType::Xdp,
        ContextKind::SchedCls => ProgType::SchedCls,
        ContextKind::SocketFilter => ProgType::SocketFilter,
        ContextKind::CgroupSkb => ProgType::Other(8),
        k => panic!("no kernel program type for {k:?}"),
    }
}

fn struct_size(kind: ContextKind) -> i64 {
    if kind == ContextKind::Xdp {
        fields::XDP_MD_SIZE as i64
    } else {
        fields::SK_BUFF_SIZE as i64
    }
}

/// An immediate operand: a 64-bit load when it does not fit 32 bits.
fn imm(v: i64) -> String {
    if i32::try_from(v).is_ok() {
        v.to_string()
    } else {
        format!("{v} ll")
    }
}

fn asm(text: &str) -> Vec<RawInsn> {
    assemble(text, Dialect::Llvm).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn kload(kind: ContextKind, slots: &[RawInsn]) -> Option<kernel::Program> {
    kernel::load(
        slots,
        &LoadOptions::new(prog_type(kind)).log(LogMode::Never),
    )
    .ok()
}

fn kload_verbose(kind: ContextKind, slots: &[RawInsn]) -> kernel::Program {
    match kernel::load(slots, &LoadOptions::new(prog_type(kind))) {
        Ok(p) => p,
        Err(e) => panic!(
            "kernel refused a {kind:?} program: {e}\n{}",
            e.verifier_log().map(|l| l.to_string()).unwrap_or_default()
        ),
    }
}

fn krun(p: &kernel::Program, pkt: &[u8]) -> Result<(u32, Vec<u8>), String> {
    p.test_run(&TestRun::new(pkt))
        .map(|o| (o.retval, o.data_out))
        .map_err(|e| e.to_string())
}

fn vm_run(kind: ContextKind, slots: &[RawInsn], pkt: &[u8]) -> Result<(u32, Vec<u8>), String> {
    let slots = context::rewrite(kind, slots).map_err(|e| e.to_string())?;
    let prog = Program::new(&slots).map_err(|e| e.to_string())?;
    let mut h = Helpers::new();
    context::register_packet_helpers(&mut h);
    let mut vm = Interpreter::new(&prog, &h).map_err(|e| e.to_string())?;
    let mut env = RunEnv {
        packet: Some(match kind {
            ContextKind::Xdp => PacketContext::xdp(pkt),
            k => PacketContext::skb(k, pkt),
        }),
        ..RunEnv::default()
    };
    let out = context::run(&mut vm, &mut env).map_err(|e| e.to_string())?;
    let p = env.packet.take().ok_or("context gone")?;
    Ok((out.r0 as u32, p.output()))
}

// ---- packets ---------------------------------------------------------------

fn ipv4_header(proto: u8, payload_len: usize, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let total = 20 + payload_len;
    let mut h = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0x12,
        0x34,
        0x40,
        0,
        64,
        proto,
        0,
        0,
    ];
    h.extend(src);
    h.extend(dst);
    let c = context::csum::internet(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

fn tcp_v4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut tcp = vec![
        0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0x20, 0x00, 0, 0, 0, 0,
    ];
    tcp.extend(payload);
    let mut pseudo = Vec::new();
    pseudo.extend(src);
    pseudo.extend(dst);
    pseudo.extend([0, 6, 0, tcp.len() as u8]);
    pseudo.extend(&tcp);
    let c = context::csum::internet(&pseudo);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    tcp
}

fn eth(dst: [u8; 6], proto: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = dst.to_vec();
    p.extend([0x02, 0, 0, 0, 0, 0x02]);
    p.extend(proto.to_be_bytes());
    p.extend(payload);
    p
}

const SRC: [u8; 4] = [10, 0, 0, 1];
const DST: [u8; 4] = [192, 168, 1, 20];

fn tcp_packet() -> Vec<u8> {
    let tcp = tcp_v4(SRC, DST, b"hello, kernel");
    let mut ip = ipv4_header(6, tcp.len(), SRC, DST);
    ip.extend(tcp);
    eth([0x00, 0x11, 0x22, 0x33, 0x44, 0x55], 0x0800, &ip)
}

fn udp_packet_zero_csum() -> Vec<u8> {
    let udp = [0x04, 0xd2, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 1, 2, 3, 4];
    let mut ip = ipv4_header(17, udp.len(), SRC, DST);
    ip.extend(udp);
    eth([0; 6], 0x0800, &ip)
}

fn ipv6_packet() -> Vec<u8> {
    let mut ip = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
    ip.extend((0..16).map(|i| 0x20 + i as u8));
    ip.extend((0..16).map(|i| 0xf0 - i as u8));
    ip.extend([0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00]);
    eth([0x33, 0x33, 0, 0, 0, 1], 0x86dd, &ip)
}

fn packets() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("ipv4 tcp", tcp_packet()),
        ("ipv4 udp to host", udp_packet_zero_csum()),
        ("ipv6 udp multicast", ipv6_packet()),
        (
            "arp broadcast",
            eth([0xff; 6], 0x0806, &[0x00, 0x01, 0x08, 0x00, 6, 4, 0, 1]),
        ),
        (
            "802.3 raw",
            eth(
                [0x00, 0x11, 0x22, 0x33, 0x44, 0x55],
                0x0040,
                &[0xff, 0xff, 1, 2],
            ),
        ),
        (
            "802.2 llc",
            eth(
                [0x00, 0x11, 0x22, 0x33, 0x44, 0x55],
                0x0040,
                &[0xaa, 0xaa, 3, 0],
            ),
        ),
        (
            "vlan",
            eth(
                [0x00, 0x11, 0x22, 0x33, 0x44, 0x56],
                0x8100,
                &[0x00, 0x05, 0x08, 0x00, 0x45],
            ),
        ),
        (
            "short payload",
            eth([0, 0, 0, 0, 0, 1], 0x0805, &[0x45, 0, 0, 20]),
        ),
    ]
}

// ---- access validity ---------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Op {
    Ldx,
    LdxSx,
    Stx,
    St,
}

fn access_program(op: Op, size: usize, off: i64) -> String {
    let ty = |s: &str| match size {
        1 => format!("{s}8"),
        2 => format!("{s}16"),
        4 => format!("{s}32"),
        _ => format!("{s}64"),
    };
    match op {
        Op::Ldx => format!("r2 = *({} *)(r1 {off:+})\nr0 = 0\nexit", ty("u")),
        Op::LdxSx => format!("r2 = *({} *)(r1 {off:+})\nr0 = 0\nexit", ty("s")),
        Op::Stx => format!("r2 = 0\n*({} *)(r1 {off:+}) = r2\nr0 = 0\nexit", ty("u")),
        Op::St => format!("*({} *)(r1 {off:+}) = 0\nr0 = 0\nexit", ty("u")),
    }
}

/// Every (operation, size, offset) on the context of every program type:
/// the kernel accepts it exactly when rewrite() does.
#[test]
fn context_access_validity_matches_the_kernel() {
    if !available() {
        return;
    }
    let mut mismatches = Vec::new();
    let mut checked = 0;
    for kind in KINDS {
        for op in [Op::Ldx, Op::LdxSx, Op::Stx, Op::St] {
            for size in [1usize, 2, 4, 8] {
                if matches!(op, Op::LdxSx) && size == 8 {
                    continue;
                }
                for off in -8..struct_size(kind) + 8 {
                    // Misaligned offsets only for the narrow sizes.
                    if off.rem_euclid(size as i64) != 0 && size > 2 {
                        continue;
                    }
                    let text = access_program(op, size, off);
                    let slots = asm(&text);
                    let k = kload(kind, &slots).is_some();
                    let v = context::rewrite(kind, &slots);
                    checked += 1;
                    if k != v.is_ok() {
                        mismatches.push(format!(
                            "{kind:?} {op:?} size {size} off {off} ({}): kernel {}, vm {}",
                            fields::field_name(kind, off),
                            if k { "accepts" } else { "refuses" },
                            match &v {
                                Ok(_) => "accepts".to_string(),
                                Err(e) => format!("refuses ({e})"),
                            }
                        ));
                    }
                }
            }
        }
    }
    eprintln!("{checked} context accesses compared");
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

// ---- field values -------------------------------------------------------------

/// Fields that are kernel pointers: their values cannot be compared.
fn pointer_field(kind: ContextKind, off: i64) -> bool {
    use fields::sk_buff as s;
    use fields::xdp_md as x;
    if kind == ContextKind::Xdp {
        return off < x::INGRESS_IFINDEX as i64;
    }
    [s::DATA, s::DATA_END, s::DATA_META].contains(&(off as usize))
        || (s::SK as i64..s::SK as i64 + 8).contains(&off)
        || (s::FLOW_KEYS as i64..s::FLOW_KEYS as i64 + 8).contains(&off)
}

/// Every readable field, at every size and offset the kernel allows, read
/// on every packet: the same value in both engines; and the packet pointers
/// as data_end - data and data - data_meta.
#[test]
fn every_readable_field_matches_the_kernel() {
    if !available() {
        return;
    }
    let pkts = packets();
    let mut mismatches = Vec::new();
    let mut compared = 0;
    let mut programs: Vec<(ContextKind, String)> = Vec::new();
    for kind in KINDS {
        for (signed, sizes) in [(false, &[1usize, 2, 4, 8][..]), (true, &[1, 2, 4][..])] {
            for &size in sizes {
                for off in (0..struct_size(kind)).step_by(size) {
                    if pointer_field(kind, off) || fields::check(kind, off, size, false).is_none() {
                        continue;
                    }
                    let op = if signed { Op::LdxSx } else { Op::Ldx };
                    let text = access_program(op, size, off).replace("r2 = *", "r0 = *");
                    let text = text.replace("r0 = 0\n", "");
                    programs.push((kind, text));
                }
            }
        }
        // Packet pointers, where the program type may read them.
        let (data, end, meta) = if kind == ContextKind::Xdp {
            (0, 4, 8)
        } else {
            (76, 80, 140)
        };
        if fields::check(kind, data, 4, false).is_some() {
            programs.push((
                kind,
                format!(
                    "r2 = *(u32 *)(r1 + {data})\nr3 = *(u32 *)(r1 + {end})\nr0 = r3\nr0 -= r2\nexit"
                ),
            ));
        }
        if fields::check(kind, meta, 4, false).is_some() {
            programs.push((
                kind,
                format!(
                    "r2 = *(u32 *)(r1 + {data})\nr3 = *(u32 *)(r1 + {meta})\nr0 = r2\nr0 -= r3\nexit"
                ),
            ));
        }
    }
    // cgroup skb programs must return 0 or 1: their fields are compared
    // one bit per program.
    let mut sliced = Vec::new();
    for (kind, text) in programs.drain(..) {
        if kind != ContextKind::CgroupSkb {
            sliced.push((kind, text));
            continue;
        }
        if !(text.contains("(u32 *)") || text.contains("(u64 *)")) {
            continue;
        }
        for bit in 0..32 {
            let t = text.replace("exit", &format!("r0 >>= {bit}\nr0 &= 1\nexit"));
            sliced.push((kind, t));
        }
    }
    let programs = sliced;
    for (kind, text) in &programs {
        let slots = asm(text);
        let Some(kp) = kload(*kind, &slots) else {
            mismatches.push(format!("{kind:?}: kernel refuses\n{text}"));
            continue;
        };
        for (name, pkt) in &pkts {
            let k = match krun(&kp, pkt) {
                Ok(k) => k,
                Err(e) => {
                    mismatches.push(format!("{kind:?} {name}: kernel test run failed: {e}"));
                    continue;
                }
            };
            let v = vm_run(*kind, &slots, pkt);
            compared += 1;
            if v.as_ref() != Ok(&k) {
                mismatches.push(format!(
                    "{kind:?} {name}: `{}`: kernel {:#x}, vm {:x?}",
                    text.replace('\n', "; "),
                    k.0,
                    v.map(|v| v.0)
                ));
            }
        }
    }
    eprintln!(
        "{} field programs, {compared} runs compared",
        programs.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

// ---- helpers ------------------------------------------------------------------

struct Case {
    kind: ContextKind,
    name: String,
    text: String,
    pkt: Vec<u8>,
}

fn compare(cases: &[Case]) {
    let mut mismatches = Vec::new();
    for c in cases {
        let slots = asm(&c.text);
        let kp = kload_verbose(c.kind, &slots);
        let k = krun(&kp, &c.pkt);
        let v = vm_run(c.kind, &slots, &c.pkt);
        match (&k, &v) {
            (Ok(k), Ok(v)) if k == v => {}
            _ => mismatches.push(format!(
                "{:?} {}:\n  kernel {:x?}\n  vm     {:x?}",
                c.kind, c.name, k, v
            )),
        }
    }
    eprintln!("{} helper cases compared", cases.len());
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

fn case(kind: ContextKind, name: impl Into<String>, text: String, pkt: &[u8]) -> Case {
    Case {
        kind,
        name: name.into(),
        text,
        pkt: pkt.to_vec(),
    }
}

/// Writes 0xdd to the first byte of the packet (if there is one) so the
/// output shows where data points, and returns `r7`.
const MARK_DATA_XDP: &str = "
r2 = *(u32 *)(r6 + 0)
r3 = *(u32 *)(r6 + 4)
r4 = r2
r4 += 1
if r4 > r3 goto out
r5 = 0xdd
*(u8 *)(r2 + 0) = r5
out:
r0 = r7
exit";

#[test]
fn xdp_helpers_match_the_kernel() {
    if !available() {
        return;
    }
    let pkt = tcp_packet();
    let len = pkt.len() as i64;
    let mut cases = Vec::new();
    for off in [
        0,
        -8,
        -14,
        -216,
        -217,
        -256,
        14,
        len - 14,
        len - 13,
        1 << 20,
        -(1 << 20),
    ] {
        cases.push(case(
            ContextKind::Xdp,
            format!("adjust_head({off})"),
            format!("r6 = r1\nr2 = {off}\ncall 44\nr7 = r0\n{MARK_DATA_XDP}"),
            &pkt,
        ));
    }
    let max = (context::XDP_FRAME - context::XDP_HEADROOM - context::XDP_TAILROOM) as i64;
    for off in [
        0,
        -1,
        -(len - 14),
        -(len - 13),
        10,
        100,
        max - len,
        max - len + 1,
        5000,
    ] {
        cases.push(case(
            ContextKind::Xdp,
            format!("adjust_tail({off})"),
            format!("r6 = r1\nr2 = {off}\ncall 65\nr7 = r0\n{MARK_DATA_XDP}"),
            &pkt,
        ));
    }
    // Some kernel builds leave bpf_xdp_adjust_meta out of XDP's helpers
    // (the verifier then says "program of this type cannot use helper"):
    // with nothing to compare against, its cases are left out, saying so.
    let has_adjust_meta = kload(ContextKind::Xdp, &asm("r2 = 0\ncall 54\nr0 = 2\nexit")).is_some();
    if !has_adjust_meta {
        eprintln!(
            "xdp_helpers_match_the_kernel: this kernel refuses bpf_xdp_adjust_meta (#54) in XDP programs; its cases are left out"
        );
    }
    let meta_offsets: &[i64] = if has_adjust_meta {
        &[0, -4, -8, -32, -36, -2, -6, -252, -256, -216, -220, 4, 8]
    } else {
        &[]
    };
    for &off in meta_offsets {
        // Metadata written right after adjust_meta, to show where it is.
        cases.push(case(
            ContextKind::Xdp,
            format!("adjust_meta({off})"),
            format!(
                "r6 = r1\nr2 = {off}\ncall 54\nr7 = r0
r2 = *(u32 *)(r6 + 8)
r3 = *(u32 *)(r6 + 0)
r4 = r2
r4 += 4
if r4 > r3 goto out
r5 = 0x11223344
*(u32 *)(r2 + 0) = r5
out:
r0 = r7
exit"
            ),
            &pkt,
        ));
    }
    // Metadata moves with the head.
    let heads: &[i64] = if has_adjust_meta {
        &[-16, 8, -220]
    } else {
        &[]
    };
    for &head in heads {
        cases.push(case(
            ContextKind::Xdp,
            format!("adjust_meta(-8) then adjust_head({head})"),
            format!(
                "r6 = r1\nr2 = -8\ncall 54
r2 = *(u32 *)(r6 + 8)
r3 = *(u32 *)(r6 + 0)
r4 = r2
r4 += 8
if r4 > r3 goto skip
r5 = 0x5566778811223344 ll
*(u64 *)(r2 + 0) = r5
skip:
r1 = r6\nr2 = {head}\ncall 44\nr7 = r0\n{MARK_DATA_XDP}"
            ),
            &pkt,
        ));
    }
    for (ifindex, flags) in [(5, 0), (1, 1), (7, 8)] {
        cases.push(case(
            ContextKind::Xdp,
            format!("redirect({ifindex}, {flags})"),
            format!("r1 = {ifindex}\nr2 = {flags}\ncall 23\nexit"),
            &pkt,
        ));
    }
    compare(&cases);
}

/// A program that stores `bytes` on the stack at r10 - 128, then runs `body`.
fn with_stack_bytes(bytes: &[u8], body: &str) -> String {
    let mut t = String::from("r6 = r1\n");
    for (i, c) in bytes.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        t += &format!(
            "r1 = {:#x} ll\n*(u64 *)(r10 - {}) = r1\n",
            u64::from_le_bytes(w),
            128 - i * 8
        );
    }
    t + body
}

#[test]
fn skb_helpers_match_the_kernel() {
    if !available() {
        return;
    }
    let tc = ContextKind::SchedCls;
    let sf = ContextKind::SocketFilter;
    let pkt = tcp_packet();
    let len = pkt.len() as i64;
    let mut cases = Vec::new();
    let zero_stack = "r1 = 0\n*(u64 *)(r10 - 64) = r1\n*(u64 *)(r10 - 56) = r1\n";
    for kind in [tc, sf] {
        for (off, n) in [
            (0, 4),
            (12, 4),
            (len - 4, 4),
            (len - 3, 4),
            (len, 1),
            (1 << 31, 4),
            (-1, 4),
        ] {
            cases.push(case(
                kind,
                format!("skb_load_bytes({off}, {n})"),
                format!(
                    "r6 = r1\n{zero_stack}r1 = r6\nr2 = {}\nr3 = r10\nr3 += -64\nr4 = {n}\ncall 26
r7 = r0\nr0 = *(u32 *)(r10 - 64)\nr0 ^= r7\nexit",
                    imm(off)
                ),
                &pkt,
            ));
        }
        for (off, n, start) in [
            (0, 4, 0),
            (12, 2, 0),
            (0, 4, 1),
            (16, 4, 1),
            (len - 14 - 4, 4, 1),
            (len - 14 - 3, 4, 1),
            (0, 4, 2),
            (0x10000, 4, 0),
        ] {
            cases.push(case(
                kind,
                format!("skb_load_bytes_relative({off}, {n}, {start})"),
                format!(
                    "r6 = r1\n{zero_stack}r1 = r6\nr2 = {off}\nr3 = r10\nr3 += -64\nr4 = {n}\nr5 = {start}\ncall 68
r7 = r0\nr0 = *(u32 *)(r10 - 64)\nr0 ^= r7\nexit"
                ),
                &pkt,
            ));
        }
    }
    let new = [0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04];
    for (off, n, flags) in [
        (0, 4, 0),
        (len - 4, 4, 0),
        (len - 3, 4, 0),
        (20, 8, 1),
        (20, 8, 2),
        (20, 8, 4),
        (1 << 31, 4, 0),
    ] {
        cases.push(case(
            tc,
            format!("skb_store_bytes({off}, {n}, {flags})"),
            with_stack_bytes(
                &new,
                &format!(
                    "r1 = r6\nr2 = {}\nr3 = r10\nr3 += -128\nr4 = {n}\nr5 = {flags}\ncall 9\nexit",
                    imm(off)
                ),
            ),
            &pkt,
        ));
    }
    // Rewrite the IPv4 source address and fix both checksums incrementally.
    let old_src = u32::from_ne_bytes(SRC);
    let new_src = u32::from_ne_bytes([172, 16, 5, 9]);
    let src_off = 14 + 12;
    let ip_csum = 14 + 10;
    let tcp_csum = 14 + 20 + 16;
    for (l3flags, l4flags) in [
        (4, 0x14),
        (4, 4),
        (2, 0x12),
        (0, 0x10),
        (5, 0x14),
        (4, 0x100),
        (4, 0x34),
    ] {
        let (from, to) = if l3flags & 0xf == 2 {
            (old_src & 0xffff, new_src & 0xffff)
        } else if l3flags & 0xf == 0 {
            (0, 0x1234)
        } else {
            (old_src, new_src)
        };
        cases.push(case(
            tc,
            format!("l3/l4 csum_replace flags {l3flags:#x}/{l4flags:#x}"),
            with_stack_bytes(
                &new_src.to_ne_bytes(),
                &format!(
                    "r1 = r6\nr2 = {src_off}\nr3 = r10\nr3 += -128\nr4 = 4\nr5 = 0\ncall 9
r1 = r6\nr2 = {ip_csum}\nr3 = {from:#x}\nr4 = {to:#x}\nr5 = {l3flags}\ncall 10\nr7 = r0
r1 = r6\nr2 = {tcp_csum}\nr3 = {from:#x}\nr4 = {to:#x}\nr5 = {l4flags}\ncall 11
r0 <<= 8\nr0 |= r7\nexit"
                ),
            ),
            &pkt,
        ));
    }
    for off in [ip_csum + 1, len - 1, 0x10000] {
        cases.push(case(
            tc,
            format!("l4_csum_replace at {off}"),
            format!("r1 = r1\nr2 = {off}\nr3 = 0\nr4 = 0x100\nr5 = 0\ncall 11\nexit"),
            &pkt,
        ));
    }
    // UDP checksum 0 with BPF_F_MARK_MANGLED_0 (and _ENFORCE).
    let udp = udp_packet_zero_csum();
    for flags in [0x24, 0x64, 0x04] {
        cases.push(case(
            tc,
            format!("udp l4_csum_replace flags {flags:#x}"),
            format!("r2 = 40\nr3 = 0x0100000a\nr4 = 0x0100000a\nr5 = {flags}\ncall 11\nexit"),
            &udp,
        ));
    }
    // csum_diff vectors.
    let bytes: Vec<u8> = (0..=255u8)
        .map(|b| b.wrapping_mul(37).wrapping_add(11))
        .collect();
    for (from, to, seed) in [
        (4, 4, 0),
        (8, 0, 0),
        (0, 8, 0),
        (20, 20, 0),
        (0, 0, 0x1234),
        (2, 4, 0),
        (0, 12, 0xffff_ffffu32),
        (16, 0, 0xabcd),
        (64, 64, 7),
    ] {
        cases.push(case(
            tc,
            format!("csum_diff({from}, {to}, {seed:#x})"),
            with_stack_bytes(
                &bytes[..128],
                &format!("r1 = r10\nr1 += -128\nr2 = {from}\nr3 = r10\nr3 += -64\nr4 = {to}\nr5 = {}\ncall 28\nexit", imm(seed as i64)),
            ),
            &pkt,
        ));
    }
    for (ifindex, flags) in [(5, 0), (5, 1), (5, 2)] {
        cases.push(case(
            tc,
            format!("redirect({ifindex}, {flags})"),
            format!("r1 = {ifindex}\nr2 = {flags}\ncall 23\nexit"),
            &pkt,
        ));
    }
    // What socket filters see of the packet: a write to cb and the output.
    cases.push(case(
        sf,
        "socket filter output",
        "r0 = *(u32 *)(r1 + 0)\nexit".into(),
        &pkt,
    ));
    cases.push(case(
        tc,
        "tc output",
        "r0 = *(u32 *)(r1 + 0)\nexit".into(),
        &pkt,
    ));
    compare(&cases);
}

/// The context followed through registers, spills, subprograms and joins:
/// the kernel and rewrite() accept and refuse the same programs, and the
/// accepted ones compute the same values.
#[test]
fn context_tracking_matches_the_kernel() {
    if !available() {
        return;
    }
    let tc = ContextKind::SchedCls;
    let xdp = ContextKind::Xdp;
    let cases: &[(ContextKind, &str)] = &[
        (tc, "r6 = r1\nr1 = 0\nr2 = *(u32 *)(r6 + 80)\nr3 = *(u32 *)(r6 + 76)\nr0 = r2\nr0 -= r3\nexit"),
        (tc, "*(u64 *)(r10 - 16) = r1\nr1 = 0\nr6 = *(u64 *)(r10 - 16)\nr0 = *(u32 *)(r6 + 16)\nexit"),
        (tc, "r7 = r10\nr7 += -24\n*(u64 *)(r7 + 0) = r1\nr6 = *(u64 *)(r10 - 24)\nr0 = *(u32 *)(r6 + 0)\nexit"),
        (tc, "r2 = r1\nr1 = 5\ncall sub\nexit\nsub:\nr3 = *(u32 *)(r2 + 80)\nr4 = *(u32 *)(r2 + 76)\nr0 = r3\nr0 -= r4\nr0 += r1\nexit"),
        (tc, "call sub\nr2 = *(u32 *)(r0 + 0)\nr0 = r2\nexit\nsub:\nr0 = r1\nexit"),
        (xdp, "r6 = r1\nr7 = 3\nr8 = 0\nl:\nr2 = *(u32 *)(r6 + 4)\nr3 = *(u32 *)(r6 + 0)\nr2 -= r3\nr8 += r2\nr7 += -1\nif r7 != 0 goto l\nr0 = r8\nexit"),
        (xdp, "r6 = r10\nr6 += -8\nif r1 == 0 goto l\nr6 = r1\nl:\nr0 = *(u32 *)(r6 + 12)\nexit"),
        (xdp, "r1 += 4\nr0 = *(u32 *)(r1 + 0)\nexit"),
        (xdp, "call sub\nr1 = r10\nr1 += -8\ncall sub\nr0 = 0\nexit\nsub:\nr0 = *(u32 *)(r1 + 12)\nexit"),
        (tc, "r2 = 7\n*(u32 *)(r1 + 8) = r2\nr0 = *(u32 *)(r1 + 8)\nexit"),
        (tc, "r2 = 7\n*(u32 *)(r1 + 0) = r2\nr0 = 0\nexit"),
        (tc, "*(u32 *)(r1 + 52) = 9\nr0 = *(u8 *)(r1 + 52)\nexit"),
        (tc, "r2 = 1\nlock *(u32 *)(r1 + 48) += r2\nr0 = 0\nexit"),
        (xdp, "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 14\nif r4 > r3 goto out\nr0 = *(u16 *)(r2 + 12)\nexit\nout:\nr0 = 0\nexit"),
    ];
    let pkt = tcp_packet();
    let mut mismatches = Vec::new();
    for (kind, text) in cases {
        let slots = asm(text);
        let k = kload(*kind, &slots).map(|p| krun(&p, &pkt));
        let v = context::rewrite(*kind, &slots);
        match (k, v) {
            (None, Err(_)) => {}
            (Some(Ok(k)), Ok(_)) => {
                let v = vm_run(*kind, &slots, &pkt);
                if v.as_ref() != Ok(&k) {
                    mismatches.push(format!("{kind:?} `{text}`: kernel {k:x?}, vm {v:x?}"));
                }
            }
            (k, v) => mismatches.push(format!(
                "{kind:?} `{text}`: kernel {}, vm {:?}",
                if k.is_some() { "accepts" } else { "refuses" },
                v.map(|_| "accepts")
            )),
        }
    }
    eprintln!("{} tracking cases compared", cases.len());
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// bpf_redirect_map on a DEVMAP: a present key, a missing one (the low
/// bits of flags come back), broadcast, unknown flags.
#[test]
fn redirect_map_matches_the_kernel() {
    use bpfkit::vm::maps::{types, MapDef, MapRegistry};
    if !available() {
        return;
    }
    let km = kernel::maps::create("ctx_devmap", types::DEVMAP, 4, 4, 8, 0).unwrap();
    km.update(&1u32.to_ne_bytes(), &1u32.to_ne_bytes(), 0)
        .unwrap();
    let maps = MapRegistry::new();
    let id = maps
        .create(&MapDef {
            name: "ctx_devmap".into(),
            map_type: types::DEVMAP,
            key_size: 4,
            value_size: 4,
            max_entries: 8,
            flags: 0,
            inner: None,
        })
        .unwrap();
    maps.get(id)
        .unwrap()
        .update(&1u32.to_ne_bytes(), &1u32.to_ne_bytes(), 0)
        .unwrap();
    let pkt = tcp_packet();
    let mut mismatches = Vec::new();
    for (key, flags) in [
        (1, 0),
        (2, 0),
        (2, 1),
        (2, 2),
        (2, 3),
        (5, 8),
        (1, 0x18),
        (1, 0x20),
        (1, 4),
    ] {
        let body = format!("r2 = {key}\nr3 = {flags}\ncall 51\nexit");
        let ktext = format!("ld_pseudo r1, map_fd, {}\n{body}", km.raw_fd());
        let vtext = format!("r1 = {:#x} ll\n{body}", MapRegistry::handle(id));
        let k = krun(&kload_verbose(ContextKind::Xdp, &asm(&ktext)), &pkt);
        let slots = context::rewrite(ContextKind::Xdp, &asm(&vtext)).unwrap();
        let prog = Program::new(&slots).unwrap();
        let mut h = Helpers::new();
        context::register_packet_helpers(&mut h);
        let mut vm = Interpreter::new(&prog, &h).unwrap();
        let mut env = RunEnv {
            maps: maps.clone(),
            packet: Some(PacketContext::xdp(&pkt)),
            ..RunEnv::default()
        };
        let v = context::run(&mut vm, &mut env)
            .map(|o| (o.r0 as u32, env.packet.take().unwrap().output()));
        if k.as_ref().ok() != v.as_ref().ok() {
            mismatches.push(format!(
                "key {key} flags {flags:#x}: kernel {k:x?}, vm {v:x?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
