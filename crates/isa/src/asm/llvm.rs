//! The LLVM / kernel dialect: `r0 = 1`, `w0 += w1`, `r0 = *(u32 *)(r1 + 4)`,
//! `if r1 > 5 goto +3`, `lock *(u64 *)(r10 - 8) += r1`, `call 1`, `exit`.
//!
//! Accepted on top of what [`crate::disasm`] prints (see its LLVM module for the
//! forms LLVM has no syntax for):
//! - decimal or hex numbers, with or without spaces (`r0=*(u32*)(r1+4)`);
//! - jump targets as `+3`, `-1`, `3`, `pc+3` / `pc-1` (verifier log) or a
//!   label; a trailing `<symbol>` as objdump prints it is ignored;
//! - the verifier log's line prefix `12: (b7) ` (the opcode in parentheses is
//!   checked against the instruction, and `(18)` makes `r1 = 0x5` an lddw)
//!   and objdump's `12: b7 01 00 00 05 00 00 00` prefix;
//! - the verifier log spellings: `(r10 -8)`, `skb[r1 + 4]`, `call pc+2`,
//!   `call bpf_map_lookup_elem#1` (a helper: the name is not checked),
//!   `call kernel-function#5` (a kfunc), `atomic64_fetch_add(...)`,
//!   `atomic64_xchg(...)`, `atomic64_cmpxchg(...)`, and `rN` instead of `wN`
//!   as the value register of 8/16/32-bit memory accesses;
//! - `ld_pseudo r1, map_value, 3, 8`: the lddw kind may be named
//!   (`map_fd`, `map_value`, `btf_id`, `func`, `map_idx`, `map_idx_value`).

use super::num::{imm32, imm64, parse_int};
use super::{Parsed, Target};
use crate::{
    AluOp, AtomicOp, ByteOrder, CallKind, Instruction, JmpCond, PacketMode, Pseudo, Reg, Size,
    Source, Width,
};

pub fn parse(line: &str) -> Result<Parsed, String> {
    let (line, opcode_hint) = strip_prefixes(line.trim())?;
    let line = strip_symbol(line);
    if line.contains("map[id:") {
        return Err(
            "the verifier log's `map[id:N]` names a loaded map, which cannot be \
                    assembled: write `ld_pseudo rN, map_fd, FD`"
                .into(),
        );
    }
    let parsed = if let Some(rest) = keyword(line, "call") {
        parse_call(rest)?
    } else {
        let toks = tokenize(line)?;
        let mut p = Parser { toks, i: 0 };
        let parsed = p.instruction(opcode_hint).map_err(|e| {
            // Point at the other dialect when the line is written in it.
            if e.starts_with("unknown mnemonic") && super::conformance::parse(line).is_ok() {
                format!(
                    "{e}: this is the conformance dialect (`mov %r0, 1`), not LLVM's (`r0 = 1`)"
                )
            } else {
                e
            }
        })?;
        p.end()?;
        parsed
    };
    if let Some(code) = opcode_hint {
        let got = parsed.insn.encode().as_slice()[0].code;
        if got != code {
            return Err(format!(
                "opcode ({code:02x}) in front of the instruction does not match its encoding ({got:02x})"
            ));
        }
    }
    Ok(parsed)
}

/// Strips `12:` (verifier log, objdump), `(b7)` (verifier log, returned as a
/// hint) and eight or sixteen raw bytes (objdump).
fn strip_prefixes(line: &str) -> Result<(&str, Option<u8>), String> {
    let mut s = line;
    if let Some((n, rest)) = s.split_once(':') {
        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            s = rest.trim_start();
            if s.is_empty() {
                return Err(format!(
                    "numeric label `{n}:` is not supported: use a name such as `l{n}:`"
                ));
            }
        }
    }
    let mut hint = None;
    if let Some(rest) = s.strip_prefix('(') {
        if let Some((h, tail)) = rest.split_once(')') {
            if h.len() == 2 {
                if let Ok(code) = u8::from_str_radix(h, 16) {
                    hint = Some(code);
                    s = tail.trim_start();
                }
            }
        }
    }
    let bytes = s
        .split_whitespace()
        .take_while(|t| t.len() == 2 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .count();
    if bytes == 8 || bytes == 16 {
        for _ in 0..bytes {
            s = s.trim_start();
            s = &s[2..];
        }
        s = s.trim_start();
    }
    Ok((s, hint))
}

/// Drops the `<symbol>` objdump prints after jump and call targets.
fn strip_symbol(line: &str) -> &str {
    let is_branch = ["if", "goto", "gotol", "call"]
        .iter()
        .any(|k| keyword(line, k).is_some());
    if !is_branch || !line.ends_with('>') {
        return line;
    }
    match line.rfind('<') {
        Some(i)
            if i > 0
                && line[..i].ends_with(char::is_whitespace)
                && !line[i + 1..line.len() - 1].contains(char::is_whitespace) =>
        {
            line[..i].trim_end()
        }
        _ => line,
    }
}

/// `line` minus a leading word `kw`, if the line starts with exactly that word.
fn keyword<'a>(line: &'a str, kw: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(kw)?;
    match rest.chars().next() {
        None => Some(rest),
        Some(c) if is_word_char(c) => None,
        Some(_) => Some(rest.trim_start()),
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$')
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    /// Registers, keywords, labels and numbers (which start with a digit).
    Word(&'a str),
    Punct(&'static str),
}

impl std::fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::Punct(p) => write!(f, "`{p}`"),
        }
    }
}

/// Longest first, so `<<=` is not read as `<` `<=`. The signed operators are
/// tried before words so `s>=` is not read as the word `s`.
const PUNCT: &[&str] = &[
    "s>>=", "<<=", ">>=", "s/=", "s%=", "s>=", "s<=", "s>", "s<", "+=", "-=", "*=", "/=", "%=",
    "|=", "&=", "^=", "==", "!=", ">=", "<=", ">", "<", "=", "&", "*", "(", ")", "[", "]", ",",
    "+", "-",
];

fn tokenize(line: &str) -> Result<Vec<Tok<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else {
            return Ok(out);
        };
        if let Some(p) = PUNCT.iter().find(|p| rest.starts_with(**p)) {
            out.push(Tok::Punct(p));
            rest = &rest[p.len()..];
        } else if is_word_char(c) {
            let end = rest.find(|c| !is_word_char(c)).unwrap_or(rest.len());
            out.push(Tok::Word(&rest[..end]));
            rest = &rest[end..];
        } else {
            return Err(format!("unexpected character `{c}`"));
        }
    }
}

struct Parser<'a> {
    toks: Vec<Tok<'a>>,
    i: usize,
}

/// What a register operand is: its number and whether it was written `wN`.
type RegOp = (Width, Reg);

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Tok<'a>> {
        self.toks.get(self.i).copied()
    }
    fn peek_at(&self, n: usize) -> Option<Tok<'a>> {
        self.toks.get(self.i + n).copied()
    }
    fn next(&mut self) -> Option<Tok<'a>> {
        let t = self.peek();
        self.i += t.is_some() as usize;
        t
    }
    fn found(&self) -> String {
        match self.peek() {
            Some(t) => t.to_string(),
            None => "end of line".to_string(),
        }
    }
    fn eat(&mut self, p: &str) -> bool {
        let hit = match self.peek() {
            Some(Tok::Punct(q)) => q == p,
            Some(Tok::Word(w)) => w == p,
            None => false,
        };
        self.i += hit as usize;
        hit
    }
    fn expect(&mut self, p: &str, ctx: &str) -> Result<(), String> {
        if self.eat(p) {
            Ok(())
        } else if self.peek().is_none() {
            Err(format!("missing operand: expected `{p}` {ctx}"))
        } else {
            Err(format!("expected `{p}` {ctx}, found {}", self.found()))
        }
    }
    fn end(&self) -> Result<(), String> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(format!("extra operand {t} at the end of the instruction")),
        }
    }
    fn word(&mut self, what: &str) -> Result<&'a str, String> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                self.i += 1;
                Ok(w)
            }
            None => Err(format!("missing operand: expected {what}")),
            Some(t) => Err(format!("expected {what}, found {t}")),
        }
    }

    fn is_reg_next(&self) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if reg_name(w).is_some())
    }

    fn reg(&mut self) -> Result<RegOp, String> {
        let w = self.word("a register")?;
        reg_name(w).unwrap_or_else(|| Err(format!("expected a register (r0 to r10), found `{w}`")))
    }

    /// A full 64-bit register where the syntax has no `wN` form.
    fn reg64(&mut self, ctx: &str) -> Result<Reg, String> {
        match self.reg()? {
            (Width::W64, r) => Ok(r),
            (Width::W32, r) => Err(format!("{ctx} must be a 64-bit register (r{})", r.num())),
        }
    }

    /// A number with an optional sign, returned as text for the range checks
    /// of [`super::num`] (so their messages quote what was written).
    fn number(&mut self, what: &str) -> Result<String, String> {
        let sign = if self.eat("-") {
            "-"
        } else {
            self.eat("+");
            ""
        };
        match self.peek() {
            Some(Tok::Word(w)) if w.starts_with(|c: char| c.is_ascii_digit()) => {
                self.i += 1;
                Ok(format!("{sign}{w}"))
            }
            Some(Tok::Word(w)) if reg_name(w).is_some() => {
                Err(format!("expected {what}, found register `{w}`"))
            }
            None => Err(format!("missing operand: expected {what}")),
            _ => Err(format!("expected {what}, found {}", self.found())),
        }
    }

    fn imm32(&mut self, what: &str) -> Result<i32, String> {
        imm32(&self.number(what)?)
    }

    /// `rN + 4`, `rN - 0x8`, `rN` (offset 0), `rN -8` (verifier log).
    fn address(&mut self) -> Result<(Reg, i16), String> {
        let base = self.reg64("the address register")?;
        let neg = if self.eat("+") {
            false
        } else if self.eat("-") {
            true
        } else {
            return Ok((base, 0));
        };
        let text = self.number("an offset")?;
        let v = parse_int(&text)?;
        let v = if neg { -v } else { v };
        let shown = format!("{}{text}", if neg { "-" } else { "+" });
        if v < i16::MIN as i128 || v > i16::MAX as i128 {
            return Err(format!(
                "offset {shown} does not fit in 16 bits (-32768 to 32767)"
            ));
        }
        Ok((base, v as i16))
    }

    /// `(rN + off)`.
    fn paren_address(&mut self) -> Result<(Reg, i16), String> {
        self.expect("(", "before the address")?;
        let a = self.address()?;
        self.expect(")", "after the address")?;
        Ok(a)
    }

    /// `(u32 *)`: the access type of a memory operand.
    fn access_type(&mut self) -> Result<(Size, bool), String> {
        self.expect("(", "before the access type (u8, u16, u32, u64)")?;
        let w = self.word("an access type (u8, u16, u32, u64, s8, s16, s32)")?;
        let ty = Size::ALL
            .iter()
            .find_map(|s| {
                if s.llvm() == w {
                    Some((*s, false))
                } else if s.llvm_signed() == w {
                    Some((*s, true))
                } else {
                    None
                }
            })
            .ok_or_else(|| {
                format!("unknown access type `{w}` (u8, u16, u32, u64, s8, s16, s32)")
            })?;
        self.expect("*", "after the access type")?;
        self.expect(")", "after the access type")?;
        Ok(ty)
    }

    fn unsigned_type(&mut self) -> Result<Size, String> {
        match self.access_type()? {
            (s, false) => Ok(s),
            (s, true) => Err(format!("`{}` is only valid in loads", s.llvm_signed())),
        }
    }

    fn target(&mut self) -> Result<Target, String> {
        let t = match self.peek() {
            Some(Tok::Word("pc")) if matches!(self.peek_at(1), Some(Tok::Punct("+" | "-"))) => {
                self.i += 1;
                self.rel_target()?
            }
            Some(Tok::Word(w)) if !w.starts_with(|c: char| c.is_ascii_digit()) => {
                self.i += 1;
                if reg_name(w).is_some() {
                    return Err(format!("`{w}` is a register, not a jump target"));
                }
                Target::Label(w.to_string())
            }
            Some(Tok::Word(w))
                if w.ends_with(['f', 'b'])
                    && w[..w.len() - 1].bytes().all(|b| b.is_ascii_digit()) =>
            {
                return Err(format!(
                    "numeric local label `{w}` is not supported: use a named label"
                ))
            }
            Some(Tok::Word(_) | Tok::Punct("+" | "-")) => self.rel_target()?,
            None => {
                return Err("missing operand: expected a jump target (+N, -N or a label)".into())
            }
            Some(t) => {
                return Err(format!(
                    "expected a jump target (+N, -N or a label), found {t}"
                ))
            }
        };
        Ok(t)
    }

    fn rel_target(&mut self) -> Result<Target, String> {
        let text = self.number("a jump offset")?;
        let v = parse_int(&text)?;
        i64::try_from(v)
            .map(Target::Rel)
            .map_err(|_| format!("jump offset {text} is out of range"))
    }

    fn instruction(&mut self, hint: Option<u8>) -> Result<Parsed, String> {
        let plain = |i| Ok(Parsed::plain(i));
        match self.peek() {
            None => Err("empty instruction".into()),
            Some(Tok::Word("exit")) => {
                self.i += 1;
                if self.peek().is_some() {
                    return Err("`exit` takes no operands".into());
                }
                plain(Instruction::Exit)
            }
            Some(Tok::Word("goto")) => {
                self.i += 1;
                Ok(Parsed {
                    insn: Instruction::Ja { off: 0 },
                    target: Some(self.target()?),
                })
            }
            Some(Tok::Word("gotol")) => {
                self.i += 1;
                Ok(Parsed {
                    insn: Instruction::JaLong { imm: 0 },
                    target: Some(self.target()?),
                })
            }
            Some(Tok::Word("if")) => {
                self.i += 1;
                self.jump()
            }
            Some(Tok::Word("callx")) => {
                self.i += 1;
                let reg = self.reg64("the `callx` operand")?;
                plain(Instruction::CallReg { reg })
            }
            Some(Tok::Word("lock")) => {
                self.i += 1;
                self.lock()
            }
            Some(Tok::Word("ld_pseudo")) => {
                self.i += 1;
                self.ld_pseudo()
            }
            Some(Tok::Word("store_release")) => {
                self.i += 1;
                self.expect("(", "after `store_release`")?;
                let size = self.unsigned_type()?;
                let (dst, off) = self.paren_address()?;
                self.expect(",", "after the address")?;
                let src = self.value_reg(size)?;
                self.expect(")", "after the value register")?;
                plain(Instruction::Atomic {
                    size,
                    op: AtomicOp::StoreRelease,
                    dst,
                    src,
                    off,
                })
            }
            Some(Tok::Punct("*")) => {
                self.i += 1;
                self.store()
            }
            Some(Tok::Word(w)) if reg_name(w).is_some() => {
                let d = self.reg()?;
                self.assignment(d, hint)
            }
            Some(Tok::Word(w)) => Err(format!("unknown mnemonic `{w}`")),
            Some(t) => Err(format!("unexpected {t} at the start of an instruction")),
        }
    }

    /// The value register of a memory access of `size`: `wN` or `rN` below 64
    /// bits (objdump's alu32 and plain modes), `rN` for 64 bits.
    fn value_reg(&mut self, size: Size) -> Result<Reg, String> {
        match self.reg()? {
            (Width::W32, r) if size == Size::DW => Err(format!(
                "a 64-bit access needs a 64-bit register: r{}, not w{}",
                r.num(),
                r.num()
            )),
            (_, r) => Ok(r),
        }
    }

    /// `if rD op (rS|imm) goto target`.
    fn jump(&mut self) -> Result<Parsed, String> {
        let (width, dst) = self.reg()?;
        let cond = match self.next() {
            Some(Tok::Punct(p)) => JmpCond::ALL
                .iter()
                .copied()
                .find(|c| c.llvm() == p)
                .ok_or_else(|| format!("unknown comparison `{p}`"))?,
            None => return Err("missing operand: expected a comparison after `if rN`".into()),
            Some(t) => return Err(format!("expected a comparison, found {t}")),
        };
        let src = self.source(width)?;
        self.expect("goto", "after the comparison")?;
        Ok(Parsed {
            insn: Instruction::Jump {
                width,
                cond,
                dst,
                src,
                off: 0,
            },
            target: Some(self.target()?),
        })
    }

    /// A register of the same width as the destination, or an immediate.
    fn source(&mut self, width: Width) -> Result<Source, String> {
        if self.is_reg_next() {
            let (w, r) = self.reg()?;
            if w != width {
                return Err(mixed_widths());
            }
            Ok(Source::Reg(r))
        } else {
            Ok(Source::Imm(self.imm32("a register or an immediate")?))
        }
    }

    /// `lock *(u64 *)(rD + off) op= rS`.
    fn lock(&mut self) -> Result<Parsed, String> {
        self.expect("*", "after `lock`")?;
        let size = self.unsigned_type()?;
        let (dst, off) = self.paren_address()?;
        let op = match self.next() {
            Some(Tok::Punct(p)) => [AtomicOp::Add, AtomicOp::Or, AtomicOp::And, AtomicOp::Xor]
                .into_iter()
                .find(|o| o.llvm() == p)
                .ok_or_else(|| format!("unknown atomic operator `{p}` (+=, |=, &=, ^=)"))?,
            None => {
                return Err("missing operand: expected an atomic operator (+=, |=, &=, ^=)".into())
            }
            Some(t) => {
                return Err(format!(
                    "expected an atomic operator (+=, |=, &=, ^=), found {t}"
                ))
            }
        };
        let src = self.value_reg(size)?;
        atomic(size, op, dst, src, off)
    }

    /// `ld_pseudo rD, kind, imm[, imm of the second slot]`.
    fn ld_pseudo(&mut self) -> Result<Parsed, String> {
        let dst = self.reg64("the `ld_pseudo` destination")?;
        self.expect(",", "after the destination")?;
        let pseudo = match self.peek() {
            Some(Tok::Word(w)) if !w.starts_with(|c: char| c.is_ascii_digit()) => {
                self.i += 1;
                Pseudo::ALL
                    .iter()
                    .copied()
                    .find(|p| p.src() != 0 && p.llvm() == w)
                    .ok_or_else(|| format!("unknown ld_pseudo kind `{w}`"))?
            }
            _ => {
                let text = self.number("an ld_pseudo kind (0 to 6)")?;
                let v = parse_int(&text)?;
                u8::try_from(v)
                    .ok()
                    .and_then(Pseudo::from_src)
                    .ok_or_else(|| format!("unknown ld_pseudo kind {text} (0 to 6)"))?
            }
        };
        self.expect(",", "after the ld_pseudo kind")?;
        let lo = self.imm32("an immediate")?;
        let hi = if self.eat(",") {
            self.imm32("the second slot's immediate")?
        } else {
            0
        };
        Ok(Parsed::plain(Instruction::LoadImm64 {
            dst,
            pseudo,
            imm: (lo as u32 as u64 | ((hi as u32 as u64) << 32)) as i64,
        }))
    }

    /// `*(u32 *)(rD + off) = rS | imm`.
    fn store(&mut self) -> Result<Parsed, String> {
        let size = self.unsigned_type()?;
        let (dst, off) = self.paren_address()?;
        self.expect("=", "after the address")?;
        if self.is_reg_next() {
            let src = self.value_reg(size)?;
            Ok(Parsed::plain(Instruction::Store {
                size,
                dst,
                src,
                off,
            }))
        } else {
            Ok(Parsed::plain(Instruction::StoreImm {
                size,
                dst,
                off,
                imm: self.imm32("a register or an immediate")?,
            }))
        }
    }

    /// Everything that starts with a register: ALU operations, loads, the
    /// atomics that return a value, lddw.
    fn assignment(&mut self, (width, dst): RegOp, hint: Option<u8>) -> Result<Parsed, String> {
        let plain = |i| Ok(Parsed::plain(i));
        let op = match self.next() {
            Some(Tok::Punct(p)) => p,
            None => return Err("missing operand: expected an operator after the register".into()),
            Some(t) => {
                return Err(format!(
                    "expected an operator such as `=` or `+=`, found {t}"
                ))
            }
        };
        if op != "=" {
            let aop = AluOp::ALL
                .iter()
                .copied()
                .find(|o| o.takes_imm() && o.llvm() == op)
                .ok_or_else(|| format!("unknown operator `{op}`"))?;
            let src = self.source(width)?;
            return plain(Instruction::Alu {
                width,
                op: aop,
                dst,
                src,
            });
        }
        match self.peek() {
            Some(Tok::Punct("*")) => {
                self.i += 1;
                self.load(width, dst)
            }
            Some(Tok::Punct("-")) if matches!(self.peek_at(1), Some(Tok::Word(w)) if reg_name(w).is_some()) =>
            {
                self.i += 1;
                let (w, r) = self.reg()?;
                if w != width || r != dst {
                    return Err(format!(
                        "negation is in place: write `{0} = -{0}`",
                        show(width, dst)
                    ));
                }
                plain(Instruction::Neg { width, dst })
            }
            Some(Tok::Punct("(")) => {
                self.i += 1;
                let ty = self.word("a sign-extension type (s8, s16, s32)")?;
                let aop = AluOp::ALL
                    .iter()
                    .copied()
                    .find(|o| !o.takes_imm() && o.llvm() == format!("= ({ty})"))
                    .ok_or_else(|| format!("unknown sign-extension type `{ty}` (s8, s16, s32)"))?;
                self.expect(")", "after the sign-extension type")?;
                let (w, src) = self.reg()?;
                if w != width {
                    return Err(mixed_widths());
                }
                if width == Width::W32 && !aop.valid_in_alu32() {
                    return Err(format!("`({ty})` needs 64-bit registers"));
                }
                plain(Instruction::Alu {
                    width,
                    op: aop,
                    dst,
                    src: Source::Reg(src),
                })
            }
            Some(Tok::Word(w)) if reg_name(w).is_some() => {
                let src = self.source(width)?;
                plain(Instruction::Alu {
                    width,
                    op: AluOp::Mov,
                    dst,
                    src,
                })
            }
            Some(Tok::Word(w)) if w.starts_with(|c: char| c.is_ascii_digit()) => {
                self.mov_imm(width, dst, hint)
            }
            Some(Tok::Punct("-" | "+")) => self.mov_imm(width, dst, hint),
            Some(Tok::Word(w)) => {
                self.i += 1;
                if let Some(p) = endian(w) {
                    let (order, bits) = p?;
                    let (sw, src) = self.reg()?;
                    if width != Width::W64 || sw != Width::W64 || src != dst {
                        return Err(format!(
                            "byte swaps are in place on a 64-bit register: write `r{0} = {w} r{0}`",
                            dst.num()
                        ));
                    }
                    return plain(Instruction::Endian { order, bits, dst });
                }
                self.atomic_call(w, (width, dst))
            }
            None => Err("missing operand: expected a value after `=`".into()),
            Some(t) => Err(format!("unexpected {t} after `=`")),
        }
    }

    /// `rD = imm`, `rD = imm ll`, and with the verifier log's `(18)` opcode
    /// `rD = imm` as an lddw.
    fn mov_imm(&mut self, width: Width, dst: Reg, hint: Option<u8>) -> Result<Parsed, String> {
        let text = self.number("an immediate")?;
        let lddw = self.eat("ll") || hint == Some(0x18);
        if lddw {
            if width != Width::W64 {
                return Err(format!(
                    "a 64-bit immediate needs a 64-bit register: r{}",
                    dst.num()
                ));
            }
            return Ok(Parsed::plain(Instruction::LoadImm64 {
                dst,
                pseudo: Pseudo::Imm64,
                imm: imm64(&text)?,
            }));
        }
        parse_int(&text)?;
        let imm =
            imm32(&text).map_err(|e| format!("{e} (write `{text} ll` for a 64-bit immediate)"))?;
        Ok(Parsed::plain(Instruction::Alu {
            width,
            op: AluOp::Mov,
            dst,
            src: Source::Imm(imm),
        }))
    }

    /// After `rD = *`: `(u32 *)(rS + off)` or `(u32 *)skb[...]`.
    fn load(&mut self, width: Width, dst: Reg) -> Result<Parsed, String> {
        let (size, signed) = self.access_type()?;
        if self.eat("skb") {
            if signed || size == Size::DW {
                return Err("packet loads are u8, u16 or u32".into());
            }
            if dst != Reg::R0 || width != Width::W64 {
                return Err("packet loads always write r0".into());
            }
            self.expect("[", "after `skb`")?;
            let mode = if self.is_reg_next() {
                let r = self.reg64("the packet offset register")?;
                let imm = if self.eat("+") {
                    self.imm32("an offset")?
                } else if self.eat("-") {
                    let text = self.number("an offset")?;
                    imm32(&format!("-{text}"))?
                } else {
                    0
                };
                (PacketMode::Ind(r), imm)
            } else {
                (PacketMode::Abs, self.imm32("a packet offset")?)
            };
            self.expect("]", "after the packet offset")?;
            return Ok(Parsed::plain(Instruction::LoadPacket {
                mode: mode.0,
                size,
                imm: mode.1,
            }));
        }
        if width == Width::W32 && (signed || size == Size::DW) {
            return Err(format!(
                "a {} load needs a 64-bit destination: r{}",
                if signed {
                    size.llvm_signed()
                } else {
                    size.llvm()
                },
                dst.num()
            ));
        }
        if signed && size == Size::DW {
            return Err("`s64` loads do not exist: use u64".into());
        }
        let (src, off) = self.paren_address()?;
        Ok(Parsed::plain(Instruction::Load {
            size,
            signed,
            dst,
            src,
            off,
        }))
    }

    /// `rD = name(...)`: fetching atomics, xchg, cmpxchg and load-acquire, in
    /// LLVM's spelling and the verifier log's.
    fn atomic_call(&mut self, name: &str, (width, lhs): RegOp) -> Result<Parsed, String> {
        enum Form {
            Fetch(AtomicOp),
            Xchg,
            CmpXchg,
            LoadAcquire,
        }
        // (form, size fixed by the name, whether the address carries a type)
        let (form, fixed, typed) = match name {
            "xchg_64" => (Form::Xchg, Some(Size::DW), false),
            "xchg32_32" => (Form::Xchg, Some(Size::W), false),
            "cmpxchg_64" => (Form::CmpXchg, Some(Size::DW), false),
            "cmpxchg32_32" => (Form::CmpXchg, Some(Size::W), false),
            "atomic_xchg" => (Form::Xchg, Some(Size::W), true),
            "atomic64_xchg" => (Form::Xchg, Some(Size::DW), true),
            "atomic_cmpxchg" => (Form::CmpXchg, Some(Size::W), true),
            "atomic64_cmpxchg" => (Form::CmpXchg, Some(Size::DW), true),
            "load_acquire" => (Form::LoadAcquire, None, true),
            _ => {
                // `atomic_fetch_add` (LLVM, any size; kernel, 32-bit) and
                // `atomic64_fetch_add` (kernel, 64-bit).
                let (generic, fixed) = match name.strip_prefix("atomic64_") {
                    Some(rest) => (format!("atomic_{rest}"), Some(Size::DW)),
                    None => (name.to_string(), None),
                };
                let op = AtomicOp::ALL
                    .iter()
                    .copied()
                    .find(|o| {
                        o.fetches() && o.llvm_fn() == generic && o.llvm_fn().starts_with("atomic_")
                    })
                    .ok_or_else(|| format!("unknown function `{name}`"))?;
                (Form::Fetch(op), fixed, true)
            }
        };
        self.expect("(", &format!("after `{name}`"))?;
        let (size, (addr_reg, off)) = if typed {
            let size = self.unsigned_type()?;
            if fixed.is_some_and(|f| f != size) {
                return Err(format!("`{name}` does not take a {} address", size.llvm()));
            }
            (size, self.paren_address()?)
        } else {
            (fixed.unwrap_or(Size::DW), self.address()?)
        };
        if width == Width::W32 && size == Size::DW {
            return Err(format!(
                "a 64-bit atomic needs a 64-bit register: r{}",
                lhs.num()
            ));
        }
        let op = match form {
            Form::LoadAcquire => {
                self.expect(")", "after the address")?;
                // The kernel encoding: dst_reg = load_acquire(src_reg + off).
                return atomic(size, AtomicOp::LoadAcquire, lhs, addr_reg, off);
            }
            Form::CmpXchg => {
                if lhs != Reg::R0 {
                    return Err(format!(
                        "`{name}` returns its result in r0, not r{}",
                        lhs.num()
                    ));
                }
                self.expect(",", "after the address")?;
                let r0 = self.value_reg(size)?;
                if r0 != Reg::R0 {
                    return Err(format!("`{name}` compares with r0, not r{}", r0.num()));
                }
                self.expect(",", "after r0")?;
                AtomicOp::CmpXchg
            }
            Form::Xchg => {
                self.expect(",", "after the address")?;
                AtomicOp::Xchg
            }
            Form::Fetch(op) => {
                self.expect(",", "after the address")?;
                op
            }
        };
        let src = self.value_reg(size)?;
        self.expect(")", "after the value register")?;
        if op != AtomicOp::CmpXchg && src != lhs {
            return Err(format!(
                "`{name}` returns the old value in its source register: write `r{0} = {name}(..., r{0})`",
                src.num()
            ));
        }
        atomic(size, op, addr_reg, src, off)
    }
}

fn atomic(size: Size, op: AtomicOp, dst: Reg, src: Reg, off: i16) -> Result<Parsed, String> {
    if !op.valid_size(size) {
        return Err(format!(
            "atomic `{}` exists for u32 and u64 only, not {}",
            op.mnemonic(),
            size.llvm()
        ));
    }
    Ok(Parsed::plain(Instruction::Atomic {
        size,
        op,
        dst,
        src,
        off,
    }))
}

fn mixed_widths() -> String {
    "operands mix 32-bit (wN) and 64-bit (rN) registers".into()
}

fn show(width: Width, r: Reg) -> String {
    match width {
        Width::W64 => format!("r{}", r.num()),
        Width::W32 => format!("w{}", r.num()),
    }
}

/// `r5`, `w5` -> register; `r11` -> error; anything else -> None.
fn reg_name(w: &str) -> Option<Result<RegOp, String>> {
    let (width, digits) = if let Some(d) = w.strip_prefix('r') {
        (Width::W64, d)
    } else if let Some(d) = w.strip_prefix('w') {
        (Width::W32, d)
    } else {
        return None;
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        digits
            .parse::<u8>()
            .ok()
            .and_then(Reg::new)
            .map(|r| (width, r))
            .ok_or_else(|| format!("register `{w}` does not exist (r0 to r10)")),
    )
}

/// `le16`, `be32`, `bswap64` -> (order, bits); other widths -> error.
fn endian(w: &str) -> Option<Result<(ByteOrder, u8), String>> {
    let (order, bits) = ByteOrder::ALL
        .into_iter()
        .find_map(|o| w.strip_prefix(o.mnemonic()).map(|b| (o, b)))?;
    if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match bits.parse::<u8>() {
        Ok(b @ (16 | 32 | 64)) => Ok((order, b)),
        _ => Err(format!("`{w}`: byte swaps are 16, 32 or 64 bits")),
    })
}

/// The operand of `call`: `0x1` / `1` (helper), `pc+3` (local), a label
/// (local), `kfunc 0x5` (kfunc), or the verifier log's `name#N`.
fn parse_call(rest: &str) -> Result<Parsed, String> {
    let t = rest.trim();
    let helper = |text: &str, kind| {
        Ok(Parsed::plain(Instruction::Call {
            kind,
            imm: imm32(text.trim())?,
        }))
    };
    if t.is_empty() {
        return Err("missing operand: `call` needs a helper number, `pc+N` or a label".into());
    }
    if let Some((name, num)) = t.rsplit_once('#') {
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("`call {t}`: expected `name#N`"));
        }
        let kind = if name == "kernel-function" {
            CallKind::Kfunc
        } else {
            CallKind::Helper
        };
        return helper(num, kind);
    }
    if let Some(n) = keyword(t, "kfunc") {
        return helper(n, CallKind::Kfunc);
    }
    let toks = tokenize(t)?;
    let mut p = Parser { toks, i: 0 };
    match p.peek() {
        Some(Tok::Word(w)) if reg_name(w).is_some() => {
            return Err(format!("calls through a register are written `callx {w}`"))
        }
        Some(Tok::Word("pc")) | Some(Tok::Word(_))
            if !t.starts_with(|c: char| c.is_ascii_digit()) =>
        {
            let target = p.target()?;
            p.end()?;
            return Ok(Parsed {
                insn: Instruction::Call {
                    kind: CallKind::Local,
                    imm: 0,
                },
                target: Some(target),
            });
        }
        _ => {}
    }
    let text = p.number("a helper number")?;
    p.end()?;
    helper(&text, CallKind::Helper)
}
