use crate::{AtomicOp, CallKind, Instruction, PacketMode, Pseudo, Size, Source, Width};

fn mem(r: crate::Reg, off: i16) -> String {
    if off < 0 {
        format!("[%r{}-{}]", r.num(), -(off as i32))
    } else {
        format!("[%r{}+{}]", r.num(), off)
    }
}

fn rel(off: i64) -> String {
    if off < 0 {
        format!("{off}")
    } else {
        format!("+{off}")
    }
}

fn src(s: Source) -> String {
    match s {
        Source::Reg(r) => format!("%r{}", r.num()),
        Source::Imm(i) => format!("{i}"),
    }
}

pub fn format(insn: &Instruction) -> String {
    let w = |width: Width| if width == Width::W32 { "32" } else { "" };
    match *insn {
        Instruction::Alu {
            width,
            op,
            dst,
            src: s,
        } => {
            // Sign-extending moves always carry their width so the source size
            // and the destination size read together (movsx832, movsx1664).
            let suffix = match (op.takes_imm(), width) {
                (false, Width::W64) => "64",
                _ => w(width),
            };
            format!("{}{} %r{}, {}", op.mnemonic(), suffix, dst.num(), src(s))
        }
        Instruction::Neg { width, dst } => format!("neg{} %r{}", w(width), dst.num()),
        Instruction::Endian { order, bits, dst } => {
            let m = order.mnemonic();
            format!("{m}{bits} %r{}", dst.num())
        }
        Instruction::LoadImm64 { dst, pseudo, imm } => {
            if pseudo == Pseudo::Imm64 {
                format!("lddw %r{}, {:#x}", dst.num(), imm as u64)
            } else {
                format!(
                    "lddw.{} %r{}, {}, {}",
                    pseudo.mnemonic(),
                    dst.num(),
                    imm as i32,
                    (imm >> 32) as i32
                )
            }
        }
        Instruction::LoadPacket { mode, size, imm } => match mode {
            PacketMode::Abs => format!("ldabs{} {imm}", size.suffix()),
            PacketMode::Ind(r) => format!("ldind{} %r{}, {imm}", size.suffix(), r.num()),
        },
        Instruction::Load {
            size,
            signed,
            dst,
            src: s,
            off,
        } => format!(
            "ldx{}{} %r{}, {}",
            if signed { "s" } else { "" },
            size.suffix(),
            dst.num(),
            mem(s, off)
        ),
        Instruction::StoreImm {
            size,
            dst,
            off,
            imm,
        } => {
            format!("st{} {}, {imm}", size.suffix(), mem(dst, off))
        }
        Instruction::Store {
            size,
            dst,
            src: s,
            off,
        } => {
            format!("stx{} {}, %r{}", size.suffix(), mem(dst, off), s.num())
        }
        Instruction::Atomic {
            size,
            op,
            dst,
            src: s,
            off,
        } => match op {
            AtomicOp::LoadAcquire => {
                format!("ldacq{} %r{}, {}", size.suffix(), dst.num(), mem(s, off))
            }
            AtomicOp::StoreRelease => {
                format!("strel{} {}, %r{}", size.suffix(), mem(dst, off), s.num())
            }
            _ => format!(
                "lock {}{} {}, %r{}",
                op.mnemonic(),
                if size == Size::W { "32" } else { "" },
                mem(dst, off),
                s.num()
            ),
        },
        Instruction::Ja { off } => format!("ja {}", rel(off as i64)),
        Instruction::JaLong { imm } => format!("ja32 {}", rel(imm as i64)),
        Instruction::Jump {
            width,
            cond,
            dst,
            src: s,
            off,
        } => format!(
            "{}{} %r{}, {}, {}",
            cond.mnemonic(),
            w(width),
            dst.num(),
            src(s),
            rel(off as i64)
        ),
        Instruction::Call { kind, imm } => match kind {
            CallKind::Helper => format!("call {imm}"),
            CallKind::Local => format!("call local {}", rel(imm as i64)),
            CallKind::Kfunc => format!("call runtime {imm}"),
        },
        Instruction::CallReg { reg } => format!("call %r{}", reg.num()),
        Instruction::Exit => "exit".to_string(),
    }
}
