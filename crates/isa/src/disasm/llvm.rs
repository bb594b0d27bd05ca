//! The LLVM dialect, exactly as `llvm-objdump-19 -d --mcpu=v4` prints it.
//!
//! Numbers are signed hexadecimal (`0x10`, `-0x1`), memory operands are
//! `(rN + 0x4)` / `(rN - 0x8)`, jump targets are offsets relative to the next
//! slot (`goto +0x3`). With `--mcpu=v4` (or any alu32 cpu) objdump names the
//! value register of 8/16/32-bit loads, stores and atomics `wN`, and only in
//! that mode does it have a syntax for every 32-bit atomic, so that is the mode
//! matched here.
//!
//! A few encodings have no LLVM 19 syntax, or one that loses information;
//! they are printed so that [`crate::asm`] reads them back to the same bytes:
//!
//! | encoding                         | printed as                              | why |
//! |----------------------------------|-----------------------------------------|-----|
//! | `call` with src=1 (local call)   | `call pc+0x3`, `call pc-0x1`            | objdump prints `call 0x3` for every call kind; this is the kernel verifier log form, in hex |
//! | `call` with src=2 (kfunc)        | `call kfunc 0x3`                        | as above; the kernel prints `call kernel-function#3` (also accepted) |
//! | lddw src=1..6, second slot 0     | `ld_pseudo r1, 0x2, 0x3`                | objdump's own syntax (kind, first-slot imm as unsigned hex) |
//! | lddw src=1..6, second slot != 0  | `ld_pseudo r1, 0x2, 0x3, 0x8`           | objdump drops the second slot's imm (the value offset of map_value); it is the fourth operand |
//! | `ldind` with imm != 0            | `r0 = *(u32 *)skb[r1 + 0x4]`            | objdump prints `skb[r1]` whatever the imm; the kernel prints `skb[r1 + 4]` |
//! | load-acquire / store-release     | `w0 = load_acquire((u8 *)(r1 + 0x0))`, `store_release((u64 *)(r1 + 0x0), r2)` | LLVM 21 syntax; LLVM 19 prints `<unknown>` |

use crate::{AtomicOp, CallKind, Instruction, PacketMode, Pseudo, Reg, Size, Source, Width};

/// Signed hexadecimal, the way LLVM prints immediates and offsets.
fn hex(v: i64) -> String {
    if v < 0 {
        format!("-{:#x}", v.unsigned_abs())
    } else {
        format!("{v:#x}")
    }
}

/// A jump offset: always signed so `+0x0` reads as relative.
fn rel(v: i64) -> String {
    if v < 0 {
        hex(v)
    } else {
        format!("+{v:#x}")
    }
}

fn reg(width: Width, r: Reg) -> String {
    match width {
        Width::W64 => format!("r{}", r.num()),
        Width::W32 => format!("w{}", r.num()),
    }
}

/// The register that carries the value of a memory access: 32-bit sub-register
/// for sizes up to a word (objdump's alu32 mode), full register for 64 bits.
fn val(size: Size, r: Reg) -> String {
    reg(
        if size == Size::DW {
            Width::W64
        } else {
            Width::W32
        },
        r,
    )
}

/// `(r1 + 0x4)` without the parentheses: `r1 + 0x4`, `r10 - 0x8`.
fn addr(r: Reg, off: i16) -> String {
    if off < 0 {
        format!("r{} - {:#x}", r.num(), off.unsigned_abs())
    } else {
        format!("r{} + {:#x}", r.num(), off)
    }
}

fn src(width: Width, s: Source) -> String {
    match s {
        Source::Reg(r) => reg(width, r),
        Source::Imm(i) => hex(i as i64),
    }
}

pub fn format(insn: &Instruction) -> String {
    match *insn {
        Instruction::Alu {
            width,
            op,
            dst,
            src: s,
        } => {
            let d = reg(width, dst);
            if op.takes_imm() {
                format!("{d} {} {}", op.llvm(), src(width, s))
            } else {
                // Sign-extending moves: `r1 = (s8)r2`.
                format!("{d} {}{}", op.llvm(), src(width, s))
            }
        }
        Instruction::Neg { width, dst } => {
            let d = reg(width, dst);
            format!("{d} = -{d}")
        }
        Instruction::Endian { order, bits, dst } => {
            let m = order.mnemonic();
            format!("r{0} = {m}{bits} r{0}", dst.num())
        }
        Instruction::LoadImm64 { dst, pseudo, imm } => {
            if pseudo == Pseudo::Imm64 {
                format!("r{} = {} ll", dst.num(), hex(imm))
            } else {
                let lo = imm as u32;
                let hi = (imm >> 32) as u32;
                let mut s = format!("ld_pseudo r{}, {:#x}, {lo:#x}", dst.num(), pseudo.src());
                if hi != 0 {
                    s.push_str(&format!(", {hi:#x}"));
                }
                s
            }
        }
        Instruction::LoadPacket { mode, size, imm } => match mode {
            PacketMode::Abs => format!("r0 = *({} *)skb[{}]", size.llvm(), hex(imm as i64)),
            PacketMode::Ind(r) if imm == 0 => {
                format!("r0 = *({} *)skb[r{}]", size.llvm(), r.num())
            }
            PacketMode::Ind(r) => {
                let (sign, mag) = if imm < 0 {
                    ('-', imm.unsigned_abs())
                } else {
                    ('+', imm as u32)
                };
                format!("r0 = *({} *)skb[r{} {sign} {mag:#x}]", size.llvm(), r.num())
            }
        },
        Instruction::Load {
            size,
            signed,
            dst,
            src: s,
            off,
        } => {
            if signed {
                format!(
                    "r{} = *({} *)({})",
                    dst.num(),
                    size.llvm_signed(),
                    addr(s, off)
                )
            } else {
                format!(
                    "{} = *({} *)({})",
                    val(size, dst),
                    size.llvm(),
                    addr(s, off)
                )
            }
        }
        Instruction::StoreImm {
            size,
            dst,
            off,
            imm,
        } => format!(
            "*({} *)({}) = {}",
            size.llvm(),
            addr(dst, off),
            hex(imm as i64)
        ),
        Instruction::Store {
            size,
            dst,
            src: s,
            off,
        } => format!(
            "*({} *)({}) = {}",
            size.llvm(),
            addr(dst, off),
            val(size, s)
        ),
        Instruction::Atomic {
            size,
            op,
            dst,
            src: s,
            off,
        } => {
            let v = val(size, s);
            let a = addr(dst, off);
            let t = size.llvm();
            let suffix = if size == Size::DW { "_64" } else { "32_32" };
            match op {
                AtomicOp::Add | AtomicOp::Or | AtomicOp::And | AtomicOp::Xor => {
                    format!("lock *({t} *)({a}) {} {v}", op.llvm())
                }
                AtomicOp::FetchAdd
                | AtomicOp::FetchOr
                | AtomicOp::FetchAnd
                | AtomicOp::FetchXor => {
                    format!("{v} = {}(({t} *)({a}), {v})", op.llvm_fn())
                }
                AtomicOp::Xchg => format!("{v} = xchg{suffix}({a}, {v})"),
                AtomicOp::CmpXchg => {
                    let r0 = val(size, Reg::R0);
                    format!("{r0} = cmpxchg{suffix}({a}, {r0}, {v})")
                }
                // The kernel encoding: dst_reg = load_acquire(src_reg + off).
                AtomicOp::LoadAcquire => {
                    format!(
                        "{} = load_acquire(({t} *)({}))",
                        val(size, dst),
                        addr(s, off)
                    )
                }
                AtomicOp::StoreRelease => format!("store_release(({t} *)({a}), {v})"),
            }
        }
        Instruction::Ja { off } => format!("goto {}", rel(off as i64)),
        Instruction::JaLong { imm } => format!("gotol {}", rel(imm as i64)),
        Instruction::Jump {
            width,
            cond,
            dst,
            src: s,
            off,
        } => format!(
            "if {} {} {} goto {}",
            reg(width, dst),
            cond.llvm(),
            src(width, s),
            rel(off as i64)
        ),
        Instruction::Call { kind, imm } => match kind {
            CallKind::Helper => format!("call {}", hex(imm as i64)),
            CallKind::Local => format!("call pc{}", rel(imm as i64)),
            CallKind::Kfunc => format!("call kfunc {}", hex(imm as i64)),
        },
        Instruction::CallReg { reg } => format!("callx r{}", reg.num()),
        Instruction::Exit => "exit".to_string(),
    }
}
