//! Encode / decode / disassemble / assemble round trips, in both dialects.

use bpfkit_isa::asm::assemble;
use bpfkit_isa::disasm::{disassemble, format_insn};
use bpfkit_isa::{AtomicOp, Dialect, Instruction, RawInsn, Reg, Size};
use common::instruction;
use proptest::prelude::*;

mod common;

const DIALECTS: [Dialect; 2] = [Dialect::Conformance, Dialect::Llvm];

/// The text of `insn` in `dialect` assembles back to `slots`.
fn assert_text_roundtrip(insn: &Instruction, slots: &[RawInsn]) -> Result<(), TestCaseError> {
    for d in DIALECTS {
        let text = format_insn(insn, d);
        let back = assemble(&text, d)
            .map_err(|e| TestCaseError::fail(format!("{d:?} `{text}` ({insn:?}): {e}")))?;
        prop_assert_eq!(&back[..], slots, "{:?} `{}` ({:?})", d, text, insn);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn instruction_roundtrips(insn in instruction()) {
        let enc = insn.encode();
        let slots = enc.as_slice();
        prop_assert_eq!(slots.len(), insn.slots());
        prop_assert_eq!(Instruction::decode(slots, 0), Ok(insn));
        assert_text_roundtrip(&insn, slots)?;
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whole programs through `disassemble` and `assemble`.
    #[test]
    fn program_roundtrips(insns in proptest::collection::vec(instruction(), 1..24)) {
        let slots: Vec<RawInsn> = insns.iter().flat_map(|i| i.encode().as_slice().to_vec()).collect();
        for d in DIALECTS {
            let text = disassemble(&slots, d).unwrap();
            prop_assert_eq!(assemble(&text, d).unwrap(), slots.clone(), "{:?}:\n{}", d, text);
        }
    }
}

/// Every opcode against a grid of field values: whatever decodes re-encodes
/// to the same slots, and its text in both dialects assembles to them.
#[test]
fn every_opcode_reencodes() {
    let regs = [0u8, 1, 5, 10, 11, 15];
    let offs = [0i16, 1, -1, 8, 16, 32, i16::MIN, i16::MAX];
    let imms = [
        0i32,
        1,
        -1,
        16,
        32,
        64,
        0x40,
        0x41,
        0x50,
        0x51,
        0xa0,
        0xa1,
        0xe1,
        0xf1,
        0x100,
        0x110,
        i32::MIN,
        i32::MAX,
    ];
    let seconds = [
        RawInsn::new(0, 0, 0, 0, 0),
        RawInsn::new(0, 0, 0, 0, -1),
        RawInsn::new(0, 0, 0, 0, i32::MIN),
        RawInsn::new(0, 1, 0, 0, 0),
        RawInsn::new(0x18, 0, 0, 0, 0),
    ];
    let (mut decoded, mut rejected) = (0usize, 0usize);
    let mut seen = std::collections::HashSet::new();
    for code in 0..=255u8 {
        // Only lddw reads a second slot.
        let seconds = if code == 0x18 {
            &seconds[..]
        } else {
            &seconds[..1]
        };
        for &dst in &regs {
            for src in 0..=15u8 {
                for &off in &offs {
                    for &imm in &imms {
                        for &second in seconds {
                            let slots = [RawInsn::new(code, dst, src, off, imm), second];
                            let Ok(insn) = Instruction::decode(&slots, 0) else {
                                rejected += 1;
                                continue;
                            };
                            decoded += 1;
                            let enc = insn.encode();
                            assert_eq!(enc.as_slice(), &slots[..insn.slots()], "{insn:?}");
                            if seen.insert(insn) {
                                assert_text_roundtrip(&insn, enc.as_slice())
                                    .unwrap_or_else(|e| panic!("{e}"));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(
        decoded > 10_000 && rejected > 100_000,
        "{decoded} decoded, {rejected} rejected"
    );
}

/// Labels, comments and relative targets in both dialects give the same bytes.
#[test]
fn labels_and_relative_targets_agree() {
    let llvm = "
        ; a loop counting down from 3
        r0 = 3
    loop:
        r0 -= 1            // comment
        if r0 != 0 goto loop
        call helper_exit   # local call by label
        exit
    helper_exit: exit
    ";
    let llvm_rel = "r0 = 3\nr0 -= 1\nif r0 != 0 goto -2\ncall pc+1\nexit\nexit\n";
    let conf = "mov %r0, 3\nloop:\nsub %r0, 1\njne %r0, 0, loop\ncall local +1\nexit\nexit\n";
    let a = assemble(llvm, Dialect::Llvm).unwrap();
    assert_eq!(a, assemble(llvm_rel, Dialect::Llvm).unwrap());
    assert_eq!(a, assemble(conf, Dialect::Conformance).unwrap());
    assert_eq!(a.len(), 6);
    assert_eq!(a[2].off, -2);
    assert_eq!(a[3], RawInsn::new(0x85, 0, 1, 0, 1));
}

/// The forms people paste from objdump and the verifier log.
#[test]
fn llvm_dialect_accepts_other_spellings() {
    let cases: &[(&str, &str)] = &[
        ("r0=*(u32*)(r1+4)", "w0 = *(u32 *)(r1 + 0x4)"),
        ("r0 = *(u32 *)(r1 +4)", "w0 = *(u32 *)(r1 + 0x4)"),
        ("*(u64 *)(r10 -8) = r1", "*(u64 *)(r10 - 0x8) = r1"),
        ("goto pc+3", "goto +0x3"),
        ("goto pc-1", "goto -0x1"),
        ("goto 3", "goto +0x3"),
        ("if r1 > 0xffffffff goto pc+3", "if r1 > -0x1 goto +0x3"),
        ("if w1 s< w2 goto -0x1 <LBB0_2>", "if w1 s< w2 goto -0x1"),
        ("goto +0x20 <prog+0x150>", "goto +0x20"),
        ("r1 = 5 ll", "r1 = 0x5 ll"),
        ("r1 = 0xffffffffffffffff ll", "r1 = -0x1 ll"),
        ("0: (b7) r0 = 1", "r0 = 0x1"),
        ("3: (18) r1 = 0xffff888000000000", "r1 = -0x778000000000 ll"),
        ("  12:\tb7 01 00 00 05 00 00 00\tr1 = 0x5", "r1 = 0x5"),
        ("call bpf_map_lookup_elem#1", "call 0x1"),
        ("call kernel-function#77", "call kfunc 0x4d"),
        ("call pc+2", "call pc+0x2"),
        ("call 1", "call 0x1"),
        ("r0 = *(u16 *)skb[r1 + 4]", "r0 = *(u16 *)skb[r1 + 0x4]"),
        ("r0 = *(u16 *)skb[r1 + 0]", "r0 = *(u16 *)skb[r1]"),
        ("r0 = *(u8 *)skb[12]", "r0 = *(u8 *)skb[0xc]"),
        (
            "r2 = atomic64_fetch_add((u64 *)(r10 -8), r2)",
            "r2 = atomic_fetch_add((u64 *)(r10 - 0x8), r2)",
        ),
        (
            "r2 = atomic_fetch_and((u32 *)(r10 -8), r2)",
            "w2 = atomic_fetch_and((u32 *)(r10 - 0x8), w2)",
        ),
        (
            "r2 = atomic64_xchg((u64 *)(r1 +0), r2)",
            "r2 = xchg_64(r1 + 0x0, r2)",
        ),
        (
            "r0 = atomic_cmpxchg((u32 *)(r1 +0), r0, r3)",
            "w0 = cmpxchg32_32(r1 + 0x0, w0, w3)",
        ),
        (
            "lock *(u32 *)(r1 + 0) += r2",
            "lock *(u32 *)(r1 + 0x0) += w2",
        ),
        ("*(u8 *)(r1 + 0) = r2", "*(u8 *)(r1 + 0x0) = w2"),
        (
            "ld_pseudo r1, map_value, 3, 8",
            "ld_pseudo r1, 0x2, 0x3, 0x8",
        ),
        ("ld_pseudo r1, 1, -1", "ld_pseudo r1, 0x1, 0xffffffff"),
        ("w0 = 0xffffffff", "w0 = -0x1"),
    ];
    for (input, want) in cases {
        let slots = assemble(input, Dialect::Llvm).unwrap_or_else(|e| panic!("`{input}`: {e}"));
        let got = disassemble(&slots, Dialect::Llvm).unwrap();
        assert_eq!(got.trim(), *want, "`{input}`");
    }
}

/// The kernel encodes load-acquire as `dst = *(src + off)`; both dialects and
/// `written_reg` must agree.
#[test]
fn load_acquire_writes_dst() {
    let insn = Instruction::Atomic {
        size: Size::DW,
        op: AtomicOp::LoadAcquire,
        dst: Reg::R0,
        src: Reg::R1,
        off: 8,
    };
    assert_eq!(
        insn.encode().as_slice()[0],
        RawInsn::new(0xdb, 0, 1, 8, 0x100)
    );
    assert_eq!(
        format_insn(&insn, Dialect::Llvm),
        "r0 = load_acquire((u64 *)(r1 + 0x8))"
    );
    assert_eq!(
        format_insn(&insn, Dialect::Conformance),
        "ldacqdw %r0, [%r1+8]"
    );
    assert_eq!(insn.written_reg(), Some(Reg::R0));
}
