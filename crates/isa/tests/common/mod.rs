//! Proptest strategies shared by the integration tests.

use bpfkit_isa::{
    AluOp, AtomicOp, ByteOrder, CallKind, Instruction, JmpCond, PacketMode, Pseudo, Reg, Size,
    Source, Width,
};
use proptest::prelude::*;
use proptest::sample::select;

fn reg() -> impl Strategy<Value = Reg> {
    (0u8..=10).prop_map(|n| Reg::new(n).unwrap())
}

/// Edge values often, any value sometimes.
fn imm32() -> impl Strategy<Value = i32> {
    prop_oneof![
        select(vec![
            0,
            1,
            -1,
            2,
            16,
            32,
            64,
            i32::MIN,
            i32::MAX,
            i32::MIN + 1,
            0x7fff,
            -0x8000
        ]),
        any::<i32>(),
    ]
}

fn off16() -> impl Strategy<Value = i16> {
    prop_oneof![
        select(vec![0, 1, -1, 8, -8, i16::MIN, i16::MAX, i16::MIN + 1]),
        any::<i16>(),
    ]
}

fn imm64() -> impl Strategy<Value = i64> {
    prop_oneof![
        select(vec![
            0,
            1,
            -1,
            i64::MIN,
            i64::MAX,
            u32::MAX as i64,
            1 << 32,
            i32::MIN as i64,
            0x1234_5678_9abc_def0,
        ]),
        any::<i64>(),
    ]
}

fn width() -> impl Strategy<Value = Width> {
    select(vec![Width::W32, Width::W64])
}

fn size() -> impl Strategy<Value = Size> {
    select(Size::ALL)
}

fn source() -> impl Strategy<Value = Source> {
    prop_oneof![reg().prop_map(Source::Reg), imm32().prop_map(Source::Imm)]
}

/// Every valid instruction: all variants, all fields, the constraints the
/// decoder enforces respected by construction.
pub fn instruction() -> impl Strategy<Value = Instruction> {
    prop_oneof![
        (width(), select(AluOp::ALL), reg(), reg(), source()).prop_map(
            |(width, op, dst, s, src)| {
                // Sign-extending moves take a register, and movsx32 is 64-bit only.
                let src = if op.takes_imm() { src } else { Source::Reg(s) };
                let width = if op.valid_in_alu32() {
                    width
                } else {
                    Width::W64
                };
                Instruction::Alu {
                    width,
                    op,
                    dst,
                    src,
                }
            }
        ),
        (width(), reg()).prop_map(|(width, dst)| Instruction::Neg { width, dst }),
        (
            select(vec![ByteOrder::ToLe, ByteOrder::ToBe, ByteOrder::Swap]),
            select(vec![16u8, 32, 64]),
            reg()
        )
            .prop_map(|(order, bits, dst)| Instruction::Endian { order, bits, dst }),
        (reg(), select(Pseudo::ALL), imm64())
            .prop_map(|(dst, pseudo, imm)| Instruction::LoadImm64 { dst, pseudo, imm }),
        (
            prop_oneof![Just(PacketMode::Abs), reg().prop_map(PacketMode::Ind)],
            select(vec![Size::B, Size::H, Size::W]),
            imm32()
        )
            .prop_map(|(mode, size, imm)| Instruction::LoadPacket { mode, size, imm }),
        (size(), any::<bool>(), reg(), reg(), off16()).prop_map(|(size, signed, dst, src, off)| {
            Instruction::Load {
                size,
                signed: signed && size != Size::DW,
                dst,
                src,
                off,
            }
        }),
        (size(), reg(), off16(), imm32()).prop_map(|(size, dst, off, imm)| Instruction::StoreImm {
            size,
            dst,
            off,
            imm
        }),
        (size(), reg(), reg(), off16()).prop_map(|(size, dst, src, off)| Instruction::Store {
            size,
            dst,
            src,
            off
        }),
        (select(AtomicOp::ALL), size(), reg(), reg(), off16()).prop_map(
            |(op, size, dst, src, off)| {
                let size = if op.valid_size(size) { size } else { Size::DW };
                Instruction::Atomic {
                    size,
                    op,
                    dst,
                    src,
                    off,
                }
            }
        ),
        off16().prop_map(|off| Instruction::Ja { off }),
        imm32().prop_map(|imm| Instruction::JaLong { imm }),
        (width(), select(JmpCond::ALL), reg(), source(), off16()).prop_map(
            |(width, cond, dst, src, off)| Instruction::Jump {
                width,
                cond,
                dst,
                src,
                off,
            }
        ),
        (select(CallKind::ALL), imm32()).prop_map(|(kind, imm)| Instruction::Call { kind, imm }),
        reg().prop_map(|reg| Instruction::CallReg { reg }),
        Just(Instruction::Exit),
    ]
}
