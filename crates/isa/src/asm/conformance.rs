//! The conformance dialect (bpf_conformance and ubpf): `mnemonic operands`,
//! registers `%rN`, memory `[%rN+off]`, jump targets `+N`, `-N` or a label.

use super::num::{imm32, imm64, off16};
use super::{Parsed, Target};
use crate::{
    AluOp, AtomicOp, ByteOrder, CallKind, Instruction, JmpCond, PacketMode, Pseudo, Reg, Size,
    Source, Width,
};

pub fn parse(line: &str) -> Result<Parsed, String> {
    let (mnemonic, rest) = match line.find(char::is_whitespace) {
        Some(i) => (&line[..i], line[i..].trim()),
        None => (line, ""),
    };
    let ops = operands(rest);
    let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
    let want = |n: usize| -> Result<(), String> {
        if ops.len() == n {
            Ok(())
        } else {
            Err(format!(
                "`{mnemonic}` takes {n} operand{}, found {}",
                if n == 1 { "" } else { "s" },
                ops.len()
            ))
        }
    };
    let plain = |i| Ok(Parsed::plain(i));

    match mnemonic {
        "exit" => {
            want(0)?;
            return plain(Instruction::Exit);
        }
        "ja" => {
            want(1)?;
            return Ok(Parsed {
                insn: Instruction::Ja { off: 0 },
                target: Some(target(ops[0])?),
            });
        }
        "ja32" => {
            want(1)?;
            return Ok(Parsed {
                insn: Instruction::JaLong { imm: 0 },
                target: Some(target(ops[0])?),
            });
        }
        "call" => return parse_call(&ops),
        "lock" => return parse_lock(&ops),
        "lddw" => {
            want(2)?;
            return plain(Instruction::LoadImm64 {
                dst: reg(ops[0])?,
                pseudo: Pseudo::Imm64,
                imm: imm64(ops[1])?,
            });
        }
        "neg" | "neg64" | "neg32" => {
            want(1)?;
            let width = if mnemonic == "neg32" {
                Width::W32
            } else {
                Width::W64
            };
            return plain(Instruction::Neg {
                width,
                dst: reg(ops[0])?,
            });
        }
        _ => {}
    }

    if let Some(p) = mnemonic.strip_prefix("lddw.") {
        want(3)?;
        let pseudo = Pseudo::ALL
            .iter()
            .copied()
            .find(|ps| ps.src() != 0 && ps.mnemonic() == p)
            .ok_or_else(|| format!("unknown lddw form `{p}`"))?;
        let lo = imm32(ops[1])? as u32 as u64;
        let hi = imm32(ops[2])? as u32 as u64;
        return plain(Instruction::LoadImm64 {
            dst: reg(ops[0])?,
            pseudo,
            imm: (lo | (hi << 32)) as i64,
        });
    }
    // ubpf's older `swapN` spelling is accepted beside the table's names.
    let orders = ByteOrder::ALL.map(|o| (o.mnemonic(), o));
    for (prefix, order) in orders.into_iter().chain([("swap", ByteOrder::Swap)]) {
        if let Some(bits) = mnemonic.strip_prefix(prefix) {
            if let Ok(bits @ (16 | 32 | 64)) = bits.parse::<u8>() {
                want(1)?;
                return plain(Instruction::Endian {
                    order,
                    bits,
                    dst: reg(ops[0])?,
                });
            }
        }
    }
    if let Some(p) = mnemonic.strip_prefix("ldabs") {
        want(1)?;
        return plain(Instruction::LoadPacket {
            mode: PacketMode::Abs,
            size: packet_size(p, mnemonic)?,
            imm: imm32(ops[0])?,
        });
    }
    if let Some(p) = mnemonic.strip_prefix("ldind") {
        want(2)?;
        return plain(Instruction::LoadPacket {
            mode: PacketMode::Ind(reg(ops[0])?),
            size: packet_size(p, mnemonic)?,
            imm: imm32(ops[1])?,
        });
    }
    if let Some(p) = mnemonic.strip_prefix("ldacq") {
        want(2)?;
        // The kernel encoding: dst = load_acquire(src + off).
        let (src, off) = mem(ops[1])?;
        return plain(Instruction::Atomic {
            size: size(p, mnemonic)?,
            op: AtomicOp::LoadAcquire,
            dst: reg(ops[0])?,
            src,
            off,
        });
    }
    if let Some(p) = mnemonic.strip_prefix("strel") {
        want(2)?;
        let (dst, off) = mem(ops[0])?;
        return plain(Instruction::Atomic {
            size: size(p, mnemonic)?,
            op: AtomicOp::StoreRelease,
            dst,
            src: reg(ops[1])?,
            off,
        });
    }
    if let Some(p) = mnemonic.strip_prefix("ldxs") {
        if let Ok(sz @ (Size::B | Size::H | Size::W)) = size(p, mnemonic) {
            want(2)?;
            let (src, off) = mem(ops[1])?;
            return plain(Instruction::Load {
                size: sz,
                signed: true,
                dst: reg(ops[0])?,
                src,
                off,
            });
        }
    }
    if let Some(p) = mnemonic.strip_prefix("ldx") {
        want(2)?;
        let (src, off) = mem(ops[1])?;
        return plain(Instruction::Load {
            size: size(p, mnemonic)?,
            signed: false,
            dst: reg(ops[0])?,
            src,
            off,
        });
    }
    if let Some(p) = mnemonic.strip_prefix("stx") {
        want(2)?;
        let (dst, off) = mem(ops[0])?;
        return plain(Instruction::Store {
            size: size(p, mnemonic)?,
            dst,
            src: reg(ops[1])?,
            off,
        });
    }
    if let Some(p) = mnemonic.strip_prefix("st") {
        if let Ok(sz) = size(p, mnemonic) {
            want(2)?;
            let (dst, off) = mem(ops[0])?;
            return plain(Instruction::StoreImm {
                size: sz,
                dst,
                off,
                imm: imm32(ops[1])?,
            });
        }
    }

    let (base, width) = split_width(mnemonic);
    if let Some(cond) = JmpCond::ALL.iter().copied().find(|c| c.mnemonic() == base) {
        want(3)?;
        return Ok(Parsed {
            insn: Instruction::Jump {
                width,
                cond,
                dst: reg(ops[0])?,
                src: source(ops[1])?,
                off: 0,
            },
            target: Some(target(ops[2])?),
        });
    }
    if let Some(op) = AluOp::ALL.iter().copied().find(|o| o.mnemonic() == base) {
        want(2)?;
        if width == Width::W32 && !op.valid_in_alu32() {
            return Err(format!("`{mnemonic}` does not exist: use {base}64"));
        }
        let src = source(ops[1])?;
        if !op.takes_imm() && matches!(src, Source::Imm(_)) {
            return Err(format!("`{mnemonic}` takes a register source"));
        }
        return plain(Instruction::Alu {
            width,
            op,
            dst: reg(ops[0])?,
            src,
        });
    }
    Err(format!("unknown mnemonic `{mnemonic}`"))
}

/// `add32` -> (add, 32-bit); `add` and `add64` -> (add, 64-bit).
fn split_width(m: &str) -> (&str, Width) {
    if let Some(b) = m.strip_suffix("32") {
        (b, Width::W32)
    } else if let Some(b) = m.strip_suffix("64") {
        (b, Width::W64)
    } else {
        (m, Width::W64)
    }
}

fn parse_call(ops: &[&str]) -> Result<Parsed, String> {
    let (kind, t) = match ops {
        [t] => (CallKind::Helper, *t),
        [k, t] => (
            CallKind::ALL
                .iter()
                .copied()
                .find(|c| c.mnemonic() == *k)
                .ok_or_else(|| format!("unknown call kind `{k}` (helper, local or runtime)"))?,
            *t,
        ),
        _ => return Err(format!("`call` takes 1 or 2 operands, found {}", ops.len())),
    };
    if t.starts_with('%') {
        if kind != CallKind::Helper {
            return Err("only helper calls can go through a register".into());
        }
        return Ok(Parsed::plain(Instruction::CallReg { reg: reg(t)? }));
    }
    if kind == CallKind::Local {
        return Ok(Parsed {
            insn: Instruction::Call { kind, imm: 0 },
            target: Some(target(t)?),
        });
    }
    Ok(Parsed::plain(Instruction::Call {
        kind,
        imm: imm32(t)?,
    }))
}

/// `lock [fetch] op[32] [%rD+off], %rS`
fn parse_lock(ops: &[&str]) -> Result<Parsed, String> {
    let (fetch, rest) = match ops.first() {
        Some(&"fetch") => (true, &ops[1..]),
        _ => (false, ops),
    };
    let [opname, memop, srcop] = rest else {
        return Err("`lock` takes [fetch] OP [%rD+off], %rS".into());
    };
    let (base, width) = split_width(opname);
    let name = if fetch {
        format!("fetch {base}")
    } else {
        base.to_string()
    };
    let op = AtomicOp::ALL
        .iter()
        .copied()
        .find(|o| {
            o.mnemonic() == name && !matches!(o, AtomicOp::LoadAcquire | AtomicOp::StoreRelease)
        })
        .ok_or_else(|| format!("unknown atomic operation `{name}`"))?;
    let (dst, off) = mem(memop)?;
    Ok(Parsed::plain(Instruction::Atomic {
        size: if width == Width::W32 {
            Size::W
        } else {
            Size::DW
        },
        op,
        dst,
        src: reg(srcop)?,
        off,
    }))
}

fn size(suffix: &str, mnemonic: &str) -> Result<Size, String> {
    Size::ALL
        .iter()
        .copied()
        .find(|s| s.suffix() == suffix)
        .ok_or_else(|| format!("unknown mnemonic `{mnemonic}`"))
}

fn packet_size(suffix: &str, mnemonic: &str) -> Result<Size, String> {
    match size(suffix, mnemonic)? {
        Size::DW => Err(format!("`{mnemonic}`: packet loads are 1, 2 or 4 bytes")),
        s => Ok(s),
    }
}

pub(crate) fn reg(s: &str) -> Result<Reg, String> {
    let n = s
        .strip_prefix("%r")
        .and_then(|n| n.parse::<u8>().ok())
        .ok_or_else(|| format!("`{s}` is not a register (%r0 to %r10)"))?;
    Reg::new(n).ok_or_else(|| format!("register `{s}` does not exist (%r0 to %r10)"))
}

fn source(s: &str) -> Result<Source, String> {
    if s.starts_with('%') {
        Ok(Source::Reg(reg(s)?))
    } else {
        Ok(Source::Imm(imm32(s)?))
    }
}

fn target(s: &str) -> Result<Target, String> {
    if s.starts_with('+') || s.starts_with('-') {
        Ok(Target::Rel(
            super::num::parse_int(s)?
                .try_into()
                .map_err(|_| format!("jump offset {s} is out of range"))?,
        ))
    } else if s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !s.is_empty()
        && !s.chars().next().unwrap().is_ascii_digit()
    {
        Ok(Target::Label(s.to_string()))
    } else {
        Err(format!("`{s}` is not a jump target (+N, -N or a label)"))
    }
}

/// `[%r1+4]`, `[%r10-8]`, `[%r1]`.
fn mem(s: &str) -> Result<(Reg, i16), String> {
    let inner = s
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("`{s}` is not a memory operand ([%rN+off])"))?;
    match inner.find(['+', '-']) {
        Some(i) => Ok((reg(&inner[..i])?, off16(&inner[i..])?)),
        None => Ok((reg(inner)?, 0)),
    }
}

/// Splits operands on commas and white space, keeping `[...]` together.
fn operands(rest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for c in rest.chars() {
        match c {
            '[' => {
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth -= 1;
                cur.push(c);
            }
            c if depth > 0 && c.is_whitespace() => {}
            c if c == ',' || c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}
