//! Program contexts: the rewriting of context accesses, the layout of packet
//! contexts, and the packet helpers' edge cases.

use bpfkit_isa::{asm::assemble, Dialect, Instruction, RawInsn, Size};
use bpfkit_vm::context::{
    self, csum, fields, register_packet_helpers, ContextKind, PacketContext, XDP_HEADROOM,
};
use bpfkit_vm::maps::{types, MapDef, MapRegistry};
use bpfkit_vm::{Helpers, Interpreter, Program, Redirect, RunEnv};

fn asm(text: &str) -> Vec<RawInsn> {
    assemble(text, Dialect::Llvm).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn rewrite(kind: ContextKind, text: &str) -> Result<Vec<RawInsn>, String> {
    context::rewrite(kind, &asm(text)).map_err(|e| e.to_string())
}

fn load_at(slots: &[RawInsn], pc: usize) -> (Size, i16) {
    match Instruction::decode(slots, pc).unwrap() {
        Instruction::Load { size, off, .. } => (size, off),
        i => panic!("not a load: {i:?}"),
    }
}

fn env_with(packet: PacketContext) -> RunEnv {
    RunEnv {
        packet: Some(packet),
        ..RunEnv::default()
    }
}

/// Rewrites, runs and returns (r0, the packet context after the run).
fn run(kind: ContextKind, text: &str, packet: PacketContext) -> (u64, PacketContext) {
    let (r0, env) = run_env(kind, text, env_with(packet));
    (r0, env.packet.unwrap())
}

fn run_env(kind: ContextKind, text: &str, mut env: RunEnv) -> (u64, RunEnv) {
    let slots = context::rewrite(kind, &asm(text)).unwrap();
    let prog = Program::new(&slots).unwrap();
    let mut h = Helpers::new();
    register_packet_helpers(&mut h);
    let mut vm = Interpreter::new(&prog, &h).unwrap();
    let out = context::run(&mut vm, &mut env).unwrap();
    (out.r0, env)
}

fn frame(len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len).map(|i| i as u8).collect();
    p[12] = 0x08;
    p[13] = 0x00;
    p
}

// ---- rewrite ---------------------------------------------------------------

#[test]
fn packet_pointer_loads_become_64_bit_shadow_loads() {
    let s = rewrite(ContextKind::Xdp, "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = *(u32 *)(r1 + 8)\nr5 = *(u32 *)(r1 + 12)\nr0 = 0\nexit").unwrap();
    let shadow = fields::XDP_SHADOW as i16;
    assert_eq!(load_at(&s, 0), (Size::DW, shadow));
    assert_eq!(load_at(&s, 1), (Size::DW, shadow + 8));
    assert_eq!(load_at(&s, 2), (Size::DW, shadow + 16));
    assert_eq!(load_at(&s, 3), (Size::W, 12));
    let s = rewrite(
        ContextKind::SchedCls,
        "r2 = *(u32 *)(r1 + 76)\nr3 = *(u32 *)(r1 + 80)\nr4 = *(u32 *)(r1 + 140)\nr0 = 0\nexit",
    )
    .unwrap();
    let shadow = fields::SKB_SHADOW as i16;
    assert_eq!(load_at(&s, 0), (Size::DW, shadow));
    assert_eq!(load_at(&s, 1), (Size::DW, shadow + 8));
    assert_eq!(load_at(&s, 2), (Size::DW, shadow + 16));
}

#[test]
fn ctx_is_tracked_through_moves_spills_and_calls() {
    let shadow = fields::SKB_SHADOW as i16;
    // Copied to r6.
    let s = rewrite(
        ContextKind::SchedCls,
        "r6 = r1\nr1 = 0\nr2 = *(u32 *)(r6 + 76)\nr0 = 0\nexit",
    )
    .unwrap();
    assert_eq!(load_at(&s, 2), (Size::DW, shadow));
    // Spilled and filled, through r10 and through a copy of r10.
    let s = rewrite(
        ContextKind::SchedCls,
        "*(u64 *)(r10 - 16) = r1\nr1 = 0\nr7 = r10\nr7 += -16\nr6 = *(u64 *)(r7 + 0)\nr2 = *(u32 *)(r6 + 80)\nr0 = 0\nexit",
    )
    .unwrap();
    assert_eq!(load_at(&s, 5), (Size::DW, shadow + 8));
    // Passed to a subprogram (as r2), which reads data from it; a lddw
    // before keeps its two slots.
    let s = rewrite(
        ContextKind::SchedCls,
        "r2 = r1\nr1 = 0x100000000 ll\ncall sub\nexit\nsub:\nr0 = *(u32 *)(r2 + 76)\nexit",
    )
    .unwrap();
    assert_eq!(s.len(), 7);
    assert_eq!(load_at(&s, 5), (Size::DW, shadow));
    // A subprogram returning the context.
    let s = rewrite(
        ContextKind::SchedCls,
        "call sub\nr2 = *(u32 *)(r0 + 76)\nr0 = 0\nexit\nsub:\nr0 = r1\nexit",
    )
    .unwrap();
    assert_eq!(load_at(&s, 1), (Size::DW, shadow));
    // A loop keeps the context in r6 across iterations.
    let s = rewrite(
        ContextKind::Xdp,
        "r6 = r1\nr7 = 4\nl:\nr2 = *(u32 *)(r6 + 0)\nr7 += -1\nif r7 != 0 goto l\nr0 = 2\nexit",
    )
    .unwrap();
    assert_eq!(load_at(&s, 2), (Size::DW, fields::XDP_SHADOW as i16));
    // Not the context: a stack slot overwritten by a scalar; a helper's result.
    let s = rewrite(
        ContextKind::SchedCls,
        "*(u64 *)(r10 - 8) = r1\nr2 = 0\n*(u64 *)(r10 - 8) = r2\nr6 = *(u64 *)(r10 - 8)\nr0 = *(u32 *)(r10 - 8)\nexit",
    )
    .unwrap();
    assert_eq!(load_at(&s, 4), (Size::W, -8));
}

#[test]
fn invalid_accesses_are_refused_with_the_instruction_and_field() {
    let cases: &[(ContextKind, &str, &str)] = &[
        (
            ContextKind::SchedCls,
            "r0 = 0\nr6 = r1\nr1 = 1\nr2 = 2\nr3 = 3\nr4 = 4\nr5 = 5\n*(u32 *)(r6 + 0) = r2\nexit",
            "instruction 7: invalid write to __sk_buff at offset 0 (len), 4 bytes",
        ),
        (
            ContextKind::Xdp,
            "r2 = 0\n*(u32 *)(r1 + 16) = r2\nr0 = 0\nexit",
            "instruction 1: invalid write to xdp_md at offset 16 (rx_queue_index), 4 bytes",
        ),
        (
            ContextKind::Xdp,
            "r0 = *(u16 *)(r1 + 0)\nexit",
            "instruction 0: invalid read from xdp_md at offset 0 (data), 2 bytes",
        ),
        (
            ContextKind::SocketFilter,
            "r0 = *(u32 *)(r1 + 76)\nexit",
            "instruction 0: invalid read from __sk_buff at offset 76 (data), 4 bytes",
        ),
        (
            ContextKind::SocketFilter,
            "r2 = 1\n*(u32 *)(r1 + 8) = r2\nr0 = 0\nexit",
            "instruction 1: invalid write to __sk_buff at offset 8 (mark), 4 bytes",
        ),
        (
            ContextKind::SchedCls,
            "r0 = *(u64 *)(r1 + 0)\nexit",
            "instruction 0: invalid read from __sk_buff at offset 0 (len), 8 bytes",
        ),
        (
            ContextKind::SchedCls,
            "r0 = *(u32 *)(r1 + 192)\nexit",
            "instruction 0: invalid read from __sk_buff at offset 192 (out of range), 4 bytes",
        ),
        (
            ContextKind::SchedCls,
            "r1 += 8\nr0 = *(u32 *)(r1 + 0)\nexit",
            "instruction 1: dereference of a modified context pointer",
        ),
        (
            ContextKind::SchedCls,
            "r2 = 1\nlock *(u32 *)(r1 + 48) += r2\nr0 = 0\nexit",
            "instruction 1: atomic operations on the context",
        ),
        // The context on one path only.
        (
            ContextKind::SchedCls,
            "r6 = r10\nr6 += -8\nif r1 == 0 goto l\nr6 = r1\nl:\nr0 = *(u32 *)(r6 + 0)\nexit",
            "instruction 4: r6 holds the context (__sk_buff) on some paths only",
        ),
        (
            ContextKind::Xdp,
            "call sub\nr0 = 0\nr1 = r10\ncall sub\nexit\nsub:\nr0 = *(u32 *)(r1 + 12)\nexit",
            "instruction 5: r1 holds the context (xdp_md) on some paths only",
        ),
    ];
    for (kind, text, want) in cases {
        let e = rewrite(*kind, text).expect_err(text);
        assert!(e.starts_with(want), "{text}\n got: {e}\nwant: {want}");
    }
    // Allowed writes.
    for (kind, off) in [
        (ContextKind::SchedCls, 8),
        (ContextKind::SchedCls, 44),
        (ContextKind::SchedCls, 72),
        (ContextKind::SchedCls, 12),
        (ContextKind::SocketFilter, 48),
        (ContextKind::CgroupSkb, 8),
    ] {
        let t = format!("r2 = 1\n*(u32 *)(r1 + {off}) = r2\nr0 = 0\nexit");
        rewrite(kind, &t).unwrap_or_else(|e| panic!("{kind:?} {off}: {e}"));
    }
}

#[test]
fn non_packet_contexts_are_not_rewritten() {
    let text = "r0 = *(u32 *)(r1 + 76)\n*(u32 *)(r1 + 0) = r0\nexit";
    for kind in [
        ContextKind::Plain,
        ContextKind::Tracepoint,
        ContextKind::RawTracepoint,
        ContextKind::PerfEvent,
    ] {
        assert_eq!(rewrite(kind, text).unwrap(), asm(text));
    }
    assert!(context::rewrite(ContextKind::Xdp, &[]).is_err());
}

#[test]
fn rewrite_never_panics_on_random_programs() {
    use bpfkit_isa::gen::{program, GenConfig};
    for seed in 0..300 {
        let slots = program(seed, &GenConfig::random(seed));
        for kind in [
            ContextKind::Xdp,
            ContextKind::SchedCls,
            ContextKind::SocketFilter,
        ] {
            if let Ok(out) = context::rewrite(kind, &slots) {
                assert_eq!(out.len(), slots.len());
            }
        }
    }
}

// ---- layout ----------------------------------------------------------------

#[test]
fn xdp_context_layout() {
    let pkt = frame(60);
    let (r0, p) = run(
        ContextKind::Xdp,
        "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = *(u32 *)(r1 + 8)\nr0 = r3\nr0 -= r2\nr2 -= r4\nr2 <<= 16\nr0 |= r2\nr5 = *(u32 *)(r1 + 12)\nr5 <<= 32\nr0 |= r5\nexit",
        PacketContext::xdp(&pkt),
    );
    // data_end - data = 60, data - data_meta = 0, ingress_ifindex = 1.
    assert_eq!(r0, 60 | (1 << 32));
    assert_eq!(p.output(), pkt);
    assert_eq!(
        p.room(),
        (XDP_HEADROOM, context::XDP_FRAME - XDP_HEADROOM - 60)
    );
}

#[test]
fn skb_context_layout() {
    let mut pkt = frame(60);
    pkt[..6].copy_from_slice(&[0xff; 6]);
    let tc = PacketContext::skb(ContextKind::SchedCls, &pkt);
    assert_eq!(tc.field_u32(fields::sk_buff::LEN), 60);
    assert_eq!(tc.field_u32(fields::sk_buff::PROTOCOL), 0x0008);
    assert_eq!(tc.field_u32(fields::sk_buff::PKT_TYPE), 2);
    assert_eq!(tc.field_u32(fields::sk_buff::IFINDEX), 1);
    assert_eq!(tc.data(), pkt);
    let sf = PacketContext::skb(ContextKind::SocketFilter, &pkt);
    assert_eq!(sf.field_u32(fields::sk_buff::LEN), 46);
    assert_eq!(sf.data(), pkt[14..]);
    let mut out = vec![0u8; 14];
    out.extend(&pkt[14..]);
    assert_eq!(sf.output(), out);
    // tc reads data through the rewritten loads and may write mark and cb.
    let (r0, p) = run(
        ContextKind::SchedCls,
        "r2 = *(u32 *)(r1 + 76)\nr3 = *(u32 *)(r1 + 80)\nr4 = r2\nr4 += 14\nif r4 > r3 goto out\nr0 = *(u16 *)(r2 + 12)\nr5 = 7\n*(u32 *)(r1 + 8) = r5\n*(u8 *)(r1 + 50) = r5\nexit\nout:\nr0 = 0\nexit",
        tc,
    );
    assert_eq!(r0, 0x0008);
    assert_eq!(p.field_u32(fields::sk_buff::MARK), 7);
    assert_eq!(p.field_u32(fields::sk_buff::CB), 7 << 16);
}

#[test]
fn shadow_pointers_are_read_only_and_the_packet_is_bounded() {
    // A program cannot reach the shadow slots with a write (rewrite refuses
    // it), nor read past data_end (the region ends there).
    assert!(rewrite(
        ContextKind::Xdp,
        "r2 = 0\n*(u64 *)(r1 + 24) = r2\nr0 = 0\nexit"
    )
    .is_err());
    let slots = context::rewrite(
        ContextKind::Xdp,
        &asm("r2 = *(u32 *)(r1 + 4)\nr0 = *(u8 *)(r2 + 0)\nexit"),
    )
    .unwrap();
    let prog = Program::new(&slots).unwrap();
    let mut h = Helpers::new();
    register_packet_helpers(&mut h);
    let mut vm = Interpreter::new(&prog, &h).unwrap();
    let mut env = env_with(PacketContext::xdp(&frame(20)));
    let e = context::run(&mut vm, &mut env).unwrap_err();
    assert!(e.to_string().contains("outside every region"), "{e}");
}

#[test]
fn plain_tracepoint_and_raw_tracepoint_contexts() {
    let slots = asm("r0 = *(u64 *)(r1 + 8)\nr0 += r2\nexit");
    let prog = Program::new(&slots).unwrap();
    let h = Helpers::new();
    let mut vm = Interpreter::new(&prog, &h).unwrap();
    let mut env = RunEnv::default();
    let mut mem = [0u8; 16];
    mem[8] = 5;
    assert_eq!(
        vm.run_with(&mut env, context::plain(&mut mem)).unwrap().r0,
        21
    );
    let args = [1u64, 40, 3];
    assert_eq!(
        vm.run_with(&mut env, context::raw_tracepoint(&args))
            .unwrap()
            .r0,
        40
    );
    let rec = [9u8; 16];
    assert_eq!(
        vm.run_with(&mut env, context::tracepoint(&rec)).unwrap().r0,
        0x0909_0909_0909_0909
    );
    // Read-only: a write to a tracepoint record faults.
    let slots = asm("r2 = 1\n*(u8 *)(r1 + 0) = r2\nr0 = 0\nexit");
    let prog = Program::new(&slots).unwrap();
    let mut vm = Interpreter::new(&prog, &h).unwrap();
    assert!(vm.run_with(&mut env, context::tracepoint(&rec)).is_err());
}

// ---- helpers ---------------------------------------------------------------

fn xdp_call(helper: u32, off: i64, pkt: &[u8]) -> (i64, PacketContext) {
    let (r0, p) = run(
        ContextKind::Xdp,
        &format!("r2 = {off}\ncall {helper}\nexit"),
        PacketContext::xdp(pkt),
    );
    (r0 as i64, p)
}

#[test]
fn xdp_adjust_head_edges() {
    let pkt = frame(64);
    let room = (XDP_HEADROOM - context::XDP_FRAME_HEADER) as i64;
    let (r, p) = xdp_call(44, -room, &pkt);
    assert_eq!(r, 0);
    assert_eq!(p.data().len(), 64 + room as usize);
    assert_eq!(xdp_call(44, -room - 1, &pkt).0, -22);
    assert_eq!(xdp_call(44, 50, &pkt).0, 0);
    assert_eq!(xdp_call(44, 51, &pkt).0, -22);
    let (r, p) = xdp_call(44, 14, &pkt);
    assert_eq!(r, 0);
    assert_eq!(p.output(), pkt[14..]);
}

#[test]
fn xdp_adjust_tail_edges() {
    let pkt = frame(64);
    let max = (context::XDP_FRAME - XDP_HEADROOM - context::XDP_TAILROOM) as i64;
    let (r, p) = xdp_call(65, max - 64, &pkt);
    assert_eq!(r, 0);
    assert_eq!(p.data().len(), max as usize);
    assert!(p.data()[64..].iter().all(|&b| b == 0));
    assert_eq!(xdp_call(65, max - 63, &pkt).0, -22);
    assert_eq!(xdp_call(65, -50, &pkt).0, 0);
    assert_eq!(xdp_call(65, -51, &pkt).0, -22);
}

#[test]
fn xdp_adjust_meta_edges_and_region_updates() {
    let pkt = frame(64);
    assert_eq!(xdp_call(54, -32, &pkt).0, 0);
    assert_eq!(xdp_call(54, -2, &pkt).0, -13);
    // Past the xdp_frame at the start of the headroom.
    assert_eq!(xdp_call(54, -256, &pkt).0, -22);
    assert_eq!(xdp_call(54, -216, &pkt).0, 0);
    assert_eq!(xdp_call(54, 4, &pkt).0, -22);
    let room = (XDP_HEADROOM - context::XDP_FRAME_HEADER) as i64;
    assert_eq!(xdp_call(54, -room - 4, &pkt).0, -22);
    // After adjust_meta the program may write the metadata it made room
    // for; the output starts with it.
    let (r0, p) = run(
        ContextKind::Xdp,
        "r6 = r1\nr2 = -8\ncall 54\nr2 = *(u32 *)(r6 + 8)\nr3 = *(u32 *)(r6 + 0)\nr4 = r2\nr4 += 8\nif r4 > r3 goto out\nr5 = 0x0807060504030201 ll\n*(u64 *)(r2 + 0) = r5\nout:\nr0 = 2\nexit",
        PacketContext::xdp(&pkt),
    );
    assert_eq!(r0, 2);
    assert_eq!(p.metadata(), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(p.output()[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(p.output()[8..], pkt);
    // Growing the tail makes the new bytes addressable in the same run.
    let (r0, _) = run(
        ContextKind::Xdp,
        "r6 = r1\nr2 = 100\ncall 65\nr2 = *(u32 *)(r6 + 0)\nr3 = *(u32 *)(r6 + 4)\nr0 = r3\nr0 -= r2\nr2 += 163\nr4 = *(u8 *)(r2 + 0)\nr0 += r4\nexit",
        PacketContext::xdp(&pkt),
    );
    assert_eq!(r0, 164);
}

#[test]
fn skb_store_and_load_bytes_edges() {
    let pkt = frame(40);
    let store = |off: i64, len: u32, flags: u64| {
        run(
            ContextKind::SchedCls,
            &format!("r6 = r1\nr1 = 0x0403020104030201 ll\n*(u64 *)(r10 - 8) = r1\nr1 = r6\nr2 = {off}\nr3 = r10\nr3 += -8\nr4 = {len}\nr5 = {flags}\ncall 9\nexit"),
            PacketContext::skb(ContextKind::SchedCls, &pkt),
        )
    };
    let (r, p) = store(36, 4, 0);
    assert_eq!(r, 0);
    assert_eq!(p.output()[36..], [1, 2, 3, 4]);
    assert_eq!(store(37, 4, 0).0 as i64, -14);
    assert_eq!(store(0x8000_0000, 4, 0).0 as i64, -14);
    assert_eq!(store(0, 4, 3).0, 0);
    assert_eq!(store(0, 4, 4).0 as i64, -22);
    let load = |off: i64, len: u32| {
        run(
            ContextKind::SchedCls,
            &format!("r1 = r1\nr2 = {off}\nr3 = r10\nr3 += -8\nr4 = {len}\ncall 26\nr0 <<= 32\nr2 = *(u32 *)(r10 - 8)\nr0 |= r2\nexit"),
            PacketContext::skb(ContextKind::SchedCls, &pkt),
        )
        .0
    };
    assert_eq!(load(36, 4), u32::from_le_bytes([36, 37, 38, 39]) as u64);
    assert_eq!(load(37, 4) >> 32, (-14i64 as u64) & 0xffff_ffff);
    assert_eq!(load(37, 4) & 0xffff_ffff, 0, "cleared on error");
}

#[test]
fn csum_diff_known_vectors() {
    // RFC 1071 example words 0001 f203 f4f5 f6f7: sum 0xddf2.
    let w: [u8; 8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
    let folded = |v: u32| csum::from32to16(v);
    assert_eq!(folded(csum::partial(&w, 0)).swap_bytes(), 0xddf2);
    assert_eq!(csum::internet(&w), !0xddf2);
    let (r0, _) = run(
        ContextKind::SchedCls,
        "r1 = 0xf7f6f5f403f20100 ll\n*(u64 *)(r10 - 8) = r1\nr1 = 0\nr2 = 0\nr3 = r10\nr3 += -8\nr4 = 8\nr5 = 0\ncall 28\nexit",
        PacketContext::skb(ContextKind::SchedCls, &frame(20)),
    );
    assert_eq!((r0 as u16).swap_bytes(), 0xddf2);
    // from == to: no difference.
    let (r0, _) = run(
        ContextKind::SchedCls,
        "r1 = 0x1234567890abcdef ll\n*(u64 *)(r10 - 8) = r1\nr1 = r10\nr1 += -8\nr2 = 8\nr3 = r10\nr3 += -8\nr4 = 8\nr5 = 0\ncall 28\nexit",
        PacketContext::skb(ContextKind::SchedCls, &frame(20)),
    );
    assert!(r0 == 0 || r0 == 0xffff, "{r0:#x}");
}

/// An IPv4/TCP frame with correct checksums.
fn tcp_frame(src: [u8; 4]) -> Vec<u8> {
    let dst = [10, 1, 2, 3];
    let mut tcp = vec![
        0x12, 0x34, 0x00, 0x50, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, 0x02, 0x10, 0, 0, 0, 0, 0, b'x',
        b'y', b'z',
    ];
    let mut ph = Vec::new();
    ph.extend(src);
    ph.extend(dst);
    ph.extend([0, 6, 0, tcp.len() as u8]);
    ph.extend(&tcp);
    let c = csum::internet(&ph);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let total = 20 + tcp.len();
    let mut ip = vec![0x45, 0, 0, total as u8, 0, 1, 0, 0, 64, 6, 0, 0];
    ip.extend(src);
    ip.extend(dst);
    let c = csum::internet(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00];
    f.extend(ip);
    f.extend(tcp);
    f
}

#[test]
fn l3_and_l4_csum_replace_match_checksums_recomputed_from_scratch() {
    let old = [192, 168, 0, 1];
    let new = [172, 31, 255, 254];
    let from = u32::from_ne_bytes(old);
    let to = u32::from_ne_bytes(new);
    for (l3, l4) in [(4, 0x14), (0, 0x10)] {
        let (f, t) = if l3 == 0 { (0, 0) } else { (from, to) };
        let diff = if l3 == 0 {
            // A csum_diff of the addresses, as programs compute it.
            csum::sub(to, from)
        } else {
            t
        };
        let (r0, p) = run(
            ContextKind::SchedCls,
            &format!(
                "r6 = r1\nr1 = {to:#x}\n*(u32 *)(r10 - 4) = r1\nr1 = r6\nr2 = 26\nr3 = r10\nr3 += -4\nr4 = 4\nr5 = 0\ncall 9
r1 = r6\nr2 = 24\nr3 = {f:#x}\nr4 = {diff:#x}\nr5 = {l3}\ncall 10\nr7 = r0
r1 = r6\nr2 = 50\nr3 = {f:#x}\nr4 = {diff:#x}\nr5 = {l4}\ncall 11\nr0 |= r7\nexit"
            ),
            PacketContext::skb(ContextKind::SchedCls, &tcp_frame(old)),
        );
        assert_eq!(r0, 0);
        assert_eq!(p.output(), tcp_frame(new), "flags {l3}/{l4:#x}");
    }
    // Misaligned or out-of-range checksum offsets.
    for (off, want) in [(25, -14i64), (1000, -14), (0x10000, -14)] {
        let (r0, _) = run(
            ContextKind::SchedCls,
            &format!("r2 = {off}\nr3 = 0\nr4 = 0\nr5 = 0\ncall 11\nexit"),
            PacketContext::skb(ContextKind::SchedCls, &tcp_frame(old)),
        );
        assert_eq!(r0 as i64, want);
    }
    // Unknown flags.
    let (r0, _) = run(
        ContextKind::SchedCls,
        "r2 = 24\nr3 = 0\nr4 = 0\nr5 = 0x10\ncall 10\nexit",
        PacketContext::skb(ContextKind::SchedCls, &tcp_frame(old)),
    );
    assert_eq!(r0 as i64, -22);
}

#[test]
fn redirect_and_redirect_map() {
    let pkt = frame(20);
    let (r0, env) = run_env(
        ContextKind::Xdp,
        "r1 = 3\nr2 = 0\ncall 23\nexit",
        env_with(PacketContext::xdp(&pkt)),
    );
    assert_eq!(r0, 4);
    assert_eq!(
        env.redirect,
        Some(Redirect::Ifindex {
            ifindex: 3,
            flags: 0
        })
    );
    let (r0, _) = run_env(
        ContextKind::Xdp,
        "r1 = 3\nr2 = 1\ncall 23\nexit",
        env_with(PacketContext::xdp(&pkt)),
    );
    assert_eq!(r0, 0);
    let (r0, _) = run_env(
        ContextKind::SchedCls,
        "r1 = 3\nr2 = 1\ncall 23\nexit",
        env_with(PacketContext::skb(ContextKind::SchedCls, &pkt)),
    );
    assert_eq!(r0, 7);
    let (r0, _) = run_env(
        ContextKind::SchedCls,
        "r1 = 3\nr2 = 2\ncall 23\nexit",
        env_with(PacketContext::skb(ContextKind::SchedCls, &pkt)),
    );
    assert_eq!(r0, 2);

    let maps = MapRegistry::new();
    let id = maps
        .create(&MapDef {
            name: "tx".into(),
            map_type: types::DEVMAP,
            key_size: 4,
            value_size: 4,
            max_entries: 4,
            flags: 0,
            inner: None,
        })
        .unwrap();
    maps.get(id)
        .unwrap()
        .update(&1u32.to_ne_bytes(), &1u32.to_ne_bytes(), 0)
        .unwrap();
    let handle = MapRegistry::handle(id);
    let call = |key: u32, flags: u64| {
        let env = RunEnv {
            maps: maps.clone(),
            ..env_with(PacketContext::xdp(&pkt))
        };
        run_env(
            ContextKind::Xdp,
            &format!("r1 = {handle:#x} ll\nr2 = {key}\nr3 = {flags}\ncall 51\nexit"),
            env,
        )
    };
    let (r0, env) = call(1, 0);
    assert_eq!(r0, 4);
    assert_eq!(
        env.redirect,
        Some(Redirect::Map {
            map: id,
            key: 1,
            flags: 0
        })
    );
    let (r0, env) = call(2, 2);
    assert_eq!(
        (r0, env.redirect),
        (2, None),
        "missing key: the low bits of flags"
    );
    assert_eq!(call(2, 0x20).0, 0, "unknown flags: XDP_ABORTED");
    assert_eq!(call(3, 8).0, 4, "broadcast needs no key");
}
