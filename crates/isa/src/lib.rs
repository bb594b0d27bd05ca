//! The eBPF instruction set: RFC 9669 with the cpu v4 additions, the legacy
//! packet loads, callx, the pseudo forms of LDDW and CALL, and the load-acquire
//! / store-release atomics of recent kernels.
//!
//! One set of opcode tables ([`opcode`]) drives [`Instruction::decode`],
//! [`Instruction::encode`], validation and both text dialects ([`asm`] and
//! [`disasm`]). Nothing here knows about ELF files or Linux.

pub mod asm;
pub mod disasm;
mod error;
pub mod gen;
mod instruction;
pub mod opcode;
mod program;
mod raw;
pub mod testfile;

pub use error::{DecodeError, DecodeErrorKind};
pub use instruction::{ByteOrder, EncodedInsn, Instruction, PacketMode, Reg, Source, Width};
pub use opcode::{AluOp, AtomicOp, CallKind, JmpCond, Pseudo, Size};
pub use program::{decode_all, decode_program, Located};
pub use raw::{slots_from_bytes, slots_to_bytes, RawInsn};

/// The text dialects the assembler reads and the disassembler writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// The dialect of the bpf_conformance suite and ubpf: `mov %r0, 1`,
    /// `ldxw %r0, [%r1+4]`, `lock fetch add [%r10-8], %r1`.
    Conformance,
    /// The dialect `llvm-objdump -d` and the kernel verifier log print:
    /// `r0 = 1`, `w0 += w1`, `r0 = *(u32 *)(r1 + 4)`, `if r1 > 0x5 goto +3`.
    #[default]
    Llvm,
}
