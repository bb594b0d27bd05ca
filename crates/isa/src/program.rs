//! Whole-program decoding and the structural checks every engine relies on.

use crate::{DecodeError, DecodeErrorKind, Instruction, RawInsn};

/// A decoded instruction with the slot index it starts at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located {
    pub pc: usize,
    pub insn: Instruction,
}

/// Decodes every instruction of a program without checking control flow.
/// Used by the disassembler, which must show programs the VM would refuse.
pub fn decode_all(slots: &[RawInsn]) -> Result<Vec<Located>, DecodeError> {
    let mut out = Vec::with_capacity(slots.len());
    let mut pc = 0;
    while pc < slots.len() {
        let insn = Instruction::decode(slots, pc)?;
        out.push(Located { pc, insn });
        pc += insn.slots();
    }
    Ok(out)
}

/// Decodes a program and checks what every engine needs before it runs it:
/// it is not empty, every jump and local call lands on the first slot of an
/// instruction inside the program, r10 is never written, and execution cannot
/// run past the last instruction.
pub fn decode_program(slots: &[RawInsn]) -> Result<Vec<Located>, DecodeError> {
    if slots.is_empty() {
        return Err(DecodeError::new(0, DecodeErrorKind::Empty));
    }
    let insns = decode_all(slots)?;
    let mut starts = vec![false; slots.len()];
    for l in &insns {
        starts[l.pc] = true;
    }
    for l in &insns {
        if l.insn.written_reg() == Some(crate::Reg::R10) {
            return Err(DecodeError::new(l.pc, DecodeErrorKind::WriteToFramePointer));
        }
        if let Some(off) = l.insn.branch_offset() {
            let target = l.pc as i64 + 1 + off;
            if target < 0 || target >= slots.len() as i64 {
                return Err(DecodeError::new(
                    l.pc,
                    DecodeErrorKind::JumpOutOfRange {
                        target,
                        len: slots.len(),
                    },
                ));
            }
            if !starts[target as usize] {
                return Err(DecodeError::new(
                    l.pc,
                    DecodeErrorKind::JumpIntoLddw {
                        target: target as usize,
                    },
                ));
            }
        }
    }
    let last = insns.last().expect("not empty");
    if !matches!(
        last.insn,
        Instruction::Exit | Instruction::Ja { .. } | Instruction::JaLong { .. }
    ) {
        return Err(DecodeError::new(last.pc, DecodeErrorKind::FallsOffEnd));
    }
    Ok(insns)
}
