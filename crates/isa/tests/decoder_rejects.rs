//! What the decoder and the program checks refuse, with the exact error kind
//! and the slot it is reported at.

use bpfkit_isa::{
    decode_all, decode_program, slots_from_bytes, DecodeError, DecodeErrorKind as K, RawInsn,
};

const fn raw(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
    RawInsn::new(code, dst, src, off, imm)
}

const EXIT: RawInsn = raw(0x95, 0, 0, 0, 0);
const MOV_R0_0: RawInsn = raw(0xb7, 0, 0, 0, 0);

fn reserved(field: &'static str, value: i64) -> K {
    K::ReservedField { field, value }
}

/// One instruction (plus an `exit`, so only the instruction can be at fault).
fn single_cases() -> Vec<(&'static str, RawInsn, K)> {
    vec![
        // Opcodes that do not exist.
        (
            "LD class, IMM mode, W size",
            raw(0x00, 0, 0, 0, 0),
            K::UnknownOpcode(0x00),
        ),
        (
            "neg with the X bit",
            raw(0x8c, 0, 0, 0, 0),
            K::UnknownOpcode(0x8c),
        ),
        ("ALU op 0xe0", raw(0xe4, 0, 0, 0, 0), K::UnknownOpcode(0xe4)),
        (
            "ALU64 op 0xf0",
            raw(0xf7, 0, 0, 0, 0),
            K::UnknownOpcode(0xf7),
        ),
        (
            "ALU64 END with the X bit",
            raw(0xdf, 0, 0, 0, 16),
            K::UnknownOpcode(0xdf),
        ),
        (
            "ja with the X bit",
            raw(0x0d, 0, 0, 0, 0),
            K::UnknownOpcode(0x0d),
        ),
        (
            "call in JMP32",
            raw(0x86, 0, 0, 0, 1),
            K::UnknownOpcode(0x86),
        ),
        (
            "exit in JMP32",
            raw(0x96, 0, 0, 0, 0),
            K::UnknownOpcode(0x96),
        ),
        (
            "exit with the X bit",
            raw(0x9d, 0, 0, 0, 0),
            K::UnknownOpcode(0x9d),
        ),
        (
            "JMP op 0xe0 (may_goto)",
            raw(0xe5, 0, 0, 0, 0),
            K::UnknownOpcode(0xe5),
        ),
        ("JMP op 0xf0", raw(0xf5, 0, 0, 0, 0), K::UnknownOpcode(0xf5)),
        (
            "DW packet load, ABS",
            raw(0x38, 0, 0, 0, 4),
            K::UnknownOpcode(0x38),
        ),
        (
            "DW packet load, IND",
            raw(0x58, 0, 1, 0, 4),
            K::UnknownOpcode(0x58),
        ),
        (
            "LD class, MEM mode",
            raw(0x60, 0, 0, 0, 0),
            K::UnknownOpcode(0x60),
        ),
        (
            "sign-extending DW load",
            raw(0x99, 0, 1, 0, 0),
            K::UnknownOpcode(0x99),
        ),
        (
            "LDX mode 0xa0",
            raw(0xa1, 0, 1, 0, 0),
            K::UnknownOpcode(0xa1),
        ),
        (
            "ST in ATOMIC mode",
            raw(0xc2, 1, 0, 0, 0),
            K::UnknownOpcode(0xc2),
        ),
        (
            "STX in MEMSX mode",
            raw(0x83, 1, 2, 0, 0),
            K::UnknownOpcode(0x83),
        ),
        (
            "atomic add on a byte",
            raw(0xd3, 1, 2, 0, 0x00),
            K::UnknownOpcode(0xd3),
        ),
        (
            "atomic xchg on a half",
            raw(0xcb, 1, 2, 0, 0xe1),
            K::UnknownOpcode(0xcb),
        ),
        (
            "sign-extending move from an immediate",
            raw(0xb7, 0, 0, 8, 1),
            K::UnknownOpcode(0xb7),
        ),
        // Reserved fields that must be zero.
        ("src on ALU K", raw(0x07, 0, 1, 0, 5), reserved("src", 1)),
        (
            "imm on ALU X",
            raw(0x0f, 0, 1, 0, 5),
            reserved("immediate", 5),
        ),
        ("off on add", raw(0x07, 0, 0, 1, 5), reserved("offset", 1)),
        ("off 2 on div", raw(0x3f, 0, 1, 2, 0), reserved("offset", 2)),
        ("off on mov", raw(0xbf, 0, 1, 7, 0), reserved("offset", 7)),
        (
            "movsx32 in ALU32",
            raw(0xbc, 0, 1, 32, 0),
            reserved("offset", 32),
        ),
        (
            "imm on neg",
            raw(0x87, 0, 0, 0, 1),
            reserved("immediate", 1),
        ),
        ("src on neg", raw(0x87, 0, 3, 0, 0), reserved("src", 3)),
        ("off on neg", raw(0x84, 0, 0, -1, 0), reserved("offset", -1)),
        ("src on be16", raw(0xdc, 0, 1, 0, 16), reserved("src", 1)),
        (
            "off on bswap",
            raw(0xd7, 0, 0, 4, 32),
            reserved("offset", 4),
        ),
        ("dst on ja", raw(0x05, 1, 0, 0, 0), reserved("dst", 1)),
        ("src on ja", raw(0x05, 0, 1, 0, 0), reserved("src", 1)),
        ("imm on ja", raw(0x05, 0, 0, 0, 9), reserved("immediate", 9)),
        ("off on gotol", raw(0x06, 0, 0, 3, 0), reserved("offset", 3)),
        ("off on call", raw(0x85, 0, 0, 1, 1), reserved("offset", 1)),
        ("dst on call", raw(0x85, 2, 0, 0, 1), reserved("dst", 2)),
        ("call kind 3", raw(0x85, 0, 3, 0, 1), reserved("src", 3)),
        (
            "imm on callx",
            raw(0x8d, 1, 0, 0, 4),
            reserved("immediate", 4),
        ),
        ("src on callx", raw(0x8d, 1, 2, 0, 0), reserved("src", 2)),
        ("dst on exit", raw(0x95, 1, 0, 0, 0), reserved("dst", 1)),
        ("src on exit", raw(0x95, 0, 1, 0, 0), reserved("src", 1)),
        ("off on exit", raw(0x95, 0, 0, 1, 0), reserved("offset", 1)),
        (
            "imm on exit",
            raw(0x95, 0, 0, 0, 1),
            reserved("immediate", 1),
        ),
        ("src on jeq K", raw(0x15, 1, 2, 0, 0), reserved("src", 2)),
        (
            "imm on jeq X",
            raw(0x1d, 1, 2, 0, 3),
            reserved("immediate", 3),
        ),
        (
            "imm on jeq32 X",
            raw(0x1e, 1, 2, 0, -1),
            reserved("immediate", -1),
        ),
        ("off on lddw", raw(0x18, 1, 0, 1, 0), reserved("offset", 1)),
        (
            "lddw pseudo kind 7",
            raw(0x18, 1, 7, 0, 0),
            reserved("src", 7),
        ),
        ("dst on ldabs", raw(0x20, 1, 0, 0, 0), reserved("dst", 1)),
        ("off on ldind", raw(0x40, 0, 1, 2, 0), reserved("offset", 2)),
        ("src on ldabs", raw(0x30, 0, 1, 0, 0), reserved("src", 1)),
        (
            "imm on ldx",
            raw(0x79, 0, 1, 0, 1),
            reserved("immediate", 1),
        ),
        (
            "imm on ldxs",
            raw(0x91, 0, 1, 0, 1),
            reserved("immediate", 1),
        ),
        ("src on st", raw(0x7a, 10, 1, -8, 0), reserved("src", 1)),
        (
            "imm on stx",
            raw(0x7b, 10, 1, -8, 1),
            reserved("immediate", 1),
        ),
        // Registers 11 to 15.
        ("ALU dst r11", raw(0xb7, 11, 0, 0, 0), K::BadRegister(11)),
        ("ALU src r15", raw(0xbf, 0, 15, 0, 0), K::BadRegister(15)),
        ("ALU32 dst r12", raw(0x04, 12, 0, 0, 1), K::BadRegister(12)),
        ("neg r13", raw(0x87, 13, 0, 0, 0), K::BadRegister(13)),
        ("jump dst r12", raw(0x15, 12, 0, 0, 0), K::BadRegister(12)),
        ("jump src r14", raw(0x2d, 1, 14, 0, 0), K::BadRegister(14)),
        ("load src r13", raw(0x61, 0, 13, 0, 0), K::BadRegister(13)),
        ("load dst r11", raw(0x61, 11, 1, 0, 0), K::BadRegister(11)),
        ("store dst r14", raw(0x63, 14, 1, 0, 0), K::BadRegister(14)),
        (
            "store imm dst r15",
            raw(0x62, 15, 0, 0, 0),
            K::BadRegister(15),
        ),
        (
            "atomic src r11",
            raw(0xdb, 10, 11, -8, 0),
            K::BadRegister(11),
        ),
        ("callx r11", raw(0x8d, 11, 0, 0, 0), K::BadRegister(11)),
        ("ldind r11", raw(0x40, 0, 11, 0, 0), K::BadRegister(11)),
        ("lddw r11", raw(0x18, 11, 0, 0, 0), K::BadRegister(11)),
        ("bswap r15", raw(0xd7, 15, 0, 0, 16), K::BadRegister(15)),
        // Byte swap widths.
        ("le8", raw(0xd4, 0, 0, 0, 8), K::BadEndianWidth(8)),
        ("be0", raw(0xdc, 0, 0, 0, 0), K::BadEndianWidth(0)),
        ("bswap128", raw(0xd7, 0, 0, 0, 128), K::BadEndianWidth(128)),
        ("bswap-16", raw(0xd7, 0, 0, 0, -16), K::BadEndianWidth(-16)),
        // Atomic operation immediates.
        (
            "atomic imm 2",
            raw(0xdb, 10, 1, -8, 0x02),
            K::BadAtomicOp(0x02),
        ),
        (
            "xchg without fetch",
            raw(0xdb, 10, 1, -8, 0xe0),
            K::BadAtomicOp(0xe0),
        ),
        (
            "cmpxchg without fetch",
            raw(0xc3, 10, 1, -8, 0xf0),
            K::BadAtomicOp(0xf0),
        ),
        (
            "atomic sub",
            raw(0xdb, 10, 1, -8, 0x10),
            K::BadAtomicOp(0x10),
        ),
        (
            "load-acquire with fetch",
            raw(0xdb, 0, 1, 0, 0x101),
            K::BadAtomicOp(0x101),
        ),
        (
            "atomic imm -1",
            raw(0xc3, 10, 1, -8, -1),
            K::BadAtomicOp(-1),
        ),
    ]
}

#[test]
fn single_instructions_are_rejected() {
    let mut failures = Vec::new();
    for (what, insn, kind) in single_cases() {
        let want = Err(DecodeError::new(0, kind.clone()));
        for program in [vec![insn, EXIT], vec![insn, raw(0, 0, 0, 0, 0), EXIT]] {
            let got = decode_all(&program).map(|_| ());
            if got != want {
                failures.push(format!("{what}: {insn:?} gave {got:?}, want {kind:?}"));
            }
        }
        // The error is reported where the instruction starts.
        let got = decode_all(&[MOV_R0_0, insn, EXIT]).map(|_| ());
        if got != Err(DecodeError::new(1, kind.clone())) {
            failures.push(format!("{what} at slot 1: gave {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lddw_second_slot() {
    let lddw = raw(0x18, 1, 0, 0, 5);
    let cases: Vec<(Vec<RawInsn>, DecodeError)> = vec![
        (vec![lddw], DecodeError::new(0, K::IncompleteLddw)),
        (vec![MOV_R0_0, lddw], DecodeError::new(1, K::IncompleteLddw)),
        (
            vec![lddw, raw(0x18, 0, 0, 0, 0)],
            DecodeError::new(0, K::BadLddwSecondSlot),
        ),
        (
            vec![lddw, raw(0, 1, 0, 0, 0)],
            DecodeError::new(0, K::BadLddwSecondSlot),
        ),
        (
            vec![lddw, raw(0, 0, 1, 0, 0)],
            DecodeError::new(0, K::BadLddwSecondSlot),
        ),
        (
            vec![lddw, raw(0, 0, 0, 1, 0)],
            DecodeError::new(0, K::BadLddwSecondSlot),
        ),
        (
            vec![lddw, EXIT, EXIT],
            DecodeError::new(0, K::BadLddwSecondSlot),
        ),
        // After an lddw, the next instruction starts two slots on.
        (
            vec![lddw, raw(0, 0, 0, 0, 1), raw(0x00, 0, 0, 0, 0)],
            DecodeError::new(2, K::UnknownOpcode(0)),
        ),
    ];
    for (program, want) in cases {
        assert_eq!(
            decode_all(&program).map(|_| ()),
            Err(want.clone()),
            "{program:?}"
        );
        assert_eq!(
            decode_program(&program).map(|_| ()),
            Err(want),
            "{program:?}"
        );
    }
}

#[test]
fn programs_are_rejected() {
    let ja = |off| raw(0x05, 0, 0, off, 0);
    let lddw = [raw(0x18, 1, 0, 0, 5), raw(0, 0, 0, 0, 0)];
    let cases: Vec<(&str, Vec<RawInsn>, DecodeError)> = vec![
        ("empty", vec![], DecodeError::new(0, K::Empty)),
        (
            "jump past the end",
            vec![ja(5), EXIT],
            DecodeError::new(0, K::JumpOutOfRange { target: 6, len: 2 }),
        ),
        (
            "jump to the end",
            vec![MOV_R0_0, raw(0x15, 0, 0, 1, 0), EXIT],
            DecodeError::new(1, K::JumpOutOfRange { target: 3, len: 3 }),
        ),
        (
            "jump before the start",
            vec![EXIT, ja(-3)],
            DecodeError::new(1, K::JumpOutOfRange { target: -1, len: 2 }),
        ),
        (
            "gotol past the end",
            vec![raw(0x06, 0, 0, 0, 100), EXIT],
            DecodeError::new(
                0,
                K::JumpOutOfRange {
                    target: 101,
                    len: 2,
                },
            ),
        ),
        (
            "local call past the end",
            vec![raw(0x85, 0, 1, 0, 7), EXIT],
            DecodeError::new(0, K::JumpOutOfRange { target: 8, len: 2 }),
        ),
        (
            "jump into an lddw",
            vec![ja(1), lddw[0], lddw[1], EXIT],
            DecodeError::new(0, K::JumpIntoLddw { target: 2 }),
        ),
        (
            "backward jump into an lddw",
            vec![lddw[0], lddw[1], raw(0x15, 1, 0, -2, 0), EXIT],
            DecodeError::new(2, K::JumpIntoLddw { target: 1 }),
        ),
        (
            "local call into an lddw",
            vec![raw(0x85, 0, 1, 0, 1), lddw[0], lddw[1], EXIT],
            DecodeError::new(0, K::JumpIntoLddw { target: 2 }),
        ),
        (
            "mov to r10",
            vec![raw(0xb7, 10, 0, 0, 1), EXIT],
            DecodeError::new(0, K::WriteToFramePointer),
        ),
        (
            "load into r10",
            vec![MOV_R0_0, raw(0x79, 10, 1, 0, 0), EXIT],
            DecodeError::new(1, K::WriteToFramePointer),
        ),
        (
            "lddw into r10",
            vec![raw(0x18, 10, 0, 0, 0), raw(0, 0, 0, 0, 0), EXIT],
            DecodeError::new(0, K::WriteToFramePointer),
        ),
        (
            "neg r10",
            vec![raw(0x87, 10, 0, 0, 0), EXIT],
            DecodeError::new(0, K::WriteToFramePointer),
        ),
        (
            "fetching atomic into r10",
            vec![raw(0xdb, 1, 10, 0, 0x01), EXIT],
            DecodeError::new(0, K::WriteToFramePointer),
        ),
        (
            "load-acquire into r10",
            vec![raw(0xdb, 10, 1, 0, 0x100), EXIT],
            DecodeError::new(0, K::WriteToFramePointer),
        ),
        (
            "falls off the end",
            vec![MOV_R0_0],
            DecodeError::new(0, K::FallsOffEnd),
        ),
        (
            "ends in a conditional jump",
            vec![raw(0x15, 0, 0, -1, 0)],
            DecodeError::new(0, K::FallsOffEnd),
        ),
        (
            "ends in a call",
            vec![EXIT, raw(0x85, 0, 0, 0, 1)],
            DecodeError::new(1, K::FallsOffEnd),
        ),
        (
            "ends in an lddw",
            vec![EXIT, lddw[0], lddw[1]],
            DecodeError::new(1, K::FallsOffEnd),
        ),
        (
            "decode errors keep their slot",
            vec![MOV_R0_0, lddw[0], lddw[1], raw(0xb7, 11, 0, 0, 0), EXIT],
            DecodeError::new(3, K::BadRegister(11)),
        ),
    ];
    for (what, program, want) in cases {
        assert_eq!(decode_program(&program).map(|_| ()), Err(want), "{what}");
    }
}

#[test]
fn accepted_programs_for_contrast() {
    // What the rejections above are measured against: each of these is fine.
    let ok: Vec<Vec<RawInsn>> = vec![
        vec![EXIT],
        vec![raw(0x05, 0, 0, -1, 0)],
        vec![raw(0x06, 0, 0, 0, -1)],
        vec![raw(0x15, 1, 0, 1, 0), MOV_R0_0, EXIT],
        vec![raw(0x18, 1, 0, 0, 5), raw(0, 0, 0, 0, 0), EXIT],
        vec![raw(0x85, 0, 1, 0, 1), EXIT, MOV_R0_0, EXIT],
        vec![raw(0xbf, 1, 10, 0, 0), EXIT],
        vec![raw(0xdb, 10, 1, -8, 0x01), EXIT],
        vec![raw(0xdb, 1, 10, 0, 0x100), EXIT],
    ];
    for program in ok {
        decode_program(&program).unwrap_or_else(|e| panic!("{program:?}: {e}"));
    }
}

#[test]
fn truncated_bytes() {
    assert_eq!(
        slots_from_bytes(&[0x95, 0, 0, 0, 0, 0, 0, 0, 0xb7, 0, 0, 0]),
        Err(DecodeError::new(1, K::TruncatedProgram { len: 12 }))
    );
    assert_eq!(
        slots_from_bytes(&[0x95; 7]),
        Err(DecodeError::new(0, K::TruncatedProgram { len: 7 }))
    );
    assert_eq!(slots_from_bytes(&[]), Ok(vec![]));
}
