//! The disassembler: instructions to text in either dialect.

mod conformance;
mod llvm;

use crate::{decode_all, DecodeError, Dialect, Instruction, RawInsn};

/// Formats one instruction. Jump targets are printed as relative offsets
/// (`+3`, `-1`), which the assembler reads back to the same bytes.
pub fn format_insn(insn: &Instruction, dialect: Dialect) -> String {
    match dialect {
        Dialect::Conformance => conformance::format(insn),
        Dialect::Llvm => llvm::format(insn),
    }
}

/// Disassembles a program, one instruction a line.
pub fn disassemble(slots: &[RawInsn], dialect: Dialect) -> Result<String, DecodeError> {
    let mut out = String::new();
    for l in decode_all(slots)? {
        out.push_str(&format_insn(&l.insn, dialect));
        out.push('\n');
    }
    Ok(out)
}

/// Disassembles a program with slot numbers and raw bytes, the way
/// `llvm-objdump -d` lays it out; undecodable slots are shown, not fatal.
pub fn listing(slots: &[RawInsn], dialect: Dialect) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut pc = 0;
    while pc < slots.len() {
        let bytes = |s: &RawInsn| {
            s.to_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match Instruction::decode(slots, pc) {
            Ok(insn) => {
                let _ = writeln!(
                    out,
                    "{pc:>6}:\t{}\t{}",
                    bytes(&slots[pc]),
                    format_insn(&insn, dialect)
                );
                for extra in 1..insn.slots() {
                    let _ = writeln!(out, "{:>6}:\t{}", pc + extra, bytes(&slots[pc + extra]));
                }
                pc += insn.slots();
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "{pc:>6}:\t{}\t<invalid: {}>",
                    bytes(&slots[pc]),
                    e.kind
                );
                pc += 1;
            }
        }
    }
    out
}
