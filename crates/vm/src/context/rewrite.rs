//! Finds the loads and stores whose base register may hold the context
//! pointer and rewrites them as the kernel's convert_ctx_access does: a
//! forward data-flow analysis over the control-flow graph tracking, for
//! every register and every 8-byte slot of the frame, whether it may hold
//! the context pointer (through moves, spills and fills, and bpf-to-bpf
//! calls).

use super::fields::{self, Access};
use super::{ContextError, ContextKind};
use bpfkit_isa::{
    decode_program, AluOp, CallKind, Instruction, Located, Pseudo, RawInsn, Reg, Size, Source,
    Width,
};

/// May hold the unmodified context pointer.
const CTX: u8 = 1;
/// May hold something else (a scalar, another pointer).
const OTHER: u8 = 2;
/// May hold the context pointer plus an offset (the kernel refuses to
/// dereference it).
const MODCTX: u8 = 4;
/// Holds the frame pointer plus `fp` (the only stack addresses tracked).
const FP: u8 = 8;

const SLOTS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Val {
    bits: u8,
    fp: i64,
}

const OTHER_VAL: Val = Val { bits: OTHER, fp: 0 };

impl Val {
    fn join(self, b: Val) -> Val {
        if self.bits == 0 {
            return b;
        }
        if b.bits == 0 {
            return self;
        }
        let mut bits = self.bits | b.bits;
        let mut fp = if self.bits & FP != 0 { self.fp } else { b.fp };
        if self.bits & FP != 0 && b.bits & FP != 0 && self.fp != b.fp {
            bits = (bits & !FP) | OTHER;
            fp = 0;
        }
        Val { bits, fp }
    }

    /// The result of arithmetic other than adding a constant.
    fn clobbered(self, other: Val) -> Val {
        let ctxish = (self.bits | other.bits) & (CTX | MODCTX) != 0;
        Val {
            bits: OTHER | if ctxish { MODCTX } else { 0 },
            fp: 0,
        }
    }

    /// What a spill keeps: stack addresses in memory are not tracked.
    fn spilled(self) -> u8 {
        if self.bits & FP != 0 {
            (self.bits & !FP) | OTHER
        } else {
            self.bits
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    regs: [Val; 11],
    stack: [u8; SLOTS],
}

impl State {
    fn entry(r1: Val, args: [Val; 4]) -> State {
        let mut regs = [OTHER_VAL; 11];
        regs[1] = r1;
        regs[2..6].copy_from_slice(&args);
        regs[10] = Val { bits: FP, fp: 0 };
        State {
            regs,
            stack: [OTHER; SLOTS],
        }
    }

    /// Joins `o` into `self`; whether anything changed.
    fn join_from(&mut self, o: &State) -> bool {
        let mut changed = false;
        for (a, b) in self.regs.iter_mut().zip(o.regs.iter()) {
            let j = a.join(*b);
            changed |= j != *a;
            *a = j;
        }
        for (a, b) in self.stack.iter_mut().zip(o.stack.iter()) {
            changed |= *a | *b != *a;
            *a |= *b;
        }
        changed
    }

    /// The stack slots `size` bytes at `base + off` cover, when `base` is a
    /// known frame address.
    fn slots(&self, base: Reg, off: i16, size: usize) -> Option<(usize, usize, bool)> {
        let v = self.regs[base.idx()];
        if v.bits != FP {
            return None;
        }
        let addr = v.fp.checked_add(off as i64)?;
        if addr < -(SLOTS as i64 * 8) || addr.saturating_add(size as i64) > 0 {
            return None;
        }
        let first = ((addr + SLOTS as i64 * 8) / 8) as usize;
        let last = ((addr + size as i64 - 1 + SLOTS as i64 * 8) / 8) as usize;
        Some((first, last.min(SLOTS - 1), addr % 8 == 0 && size == 8))
    }

    fn clobber_slots(&mut self, base: Reg, off: i16, size: usize) {
        if let Some((a, b, _)) = self.slots(base, off, size) {
            for s in &mut self.stack[a..=b] {
                *s = OTHER;
            }
        }
    }
}

struct Func {
    start: usize,
    end: usize,
}

struct Analysis<'a> {
    insns: &'a [Located],
    /// Instruction index of each slot that starts one.
    index: Vec<Option<usize>>,
    funcs: Vec<Func>,
    entries: Vec<Option<State>>,
    exits: Vec<Val>,
    /// The state before each instruction (final once the analysis is stable).
    before: Vec<Option<State>>,
}

fn local_target(l: &Located) -> Option<usize> {
    match l.insn {
        Instruction::Call {
            kind: CallKind::Local,
            imm,
        } => usize::try_from(l.pc as i64 + 1 + imm as i64).ok(),
        Instruction::LoadImm64 {
            pseudo: Pseudo::Func,
            imm,
            ..
        } => usize::try_from(l.pc as i64 + 1 + imm as i32 as i64).ok(),
        _ => None,
    }
}

impl<'a> Analysis<'a> {
    fn new(insns: &'a [Located], nslots: usize) -> Self {
        let mut index = vec![None; nslots];
        for (i, l) in insns.iter().enumerate() {
            index[l.pc] = Some(i);
        }
        let mut starts = vec![0usize];
        let mut callbacks = Vec::new();
        for l in insns {
            if let Some(t) = local_target(l) {
                if t < nslots && index[t].is_some() {
                    starts.push(t);
                    if matches!(l.insn, Instruction::LoadImm64 { .. }) {
                        callbacks.push(t);
                    }
                }
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let funcs: Vec<Func> = starts
            .iter()
            .enumerate()
            .map(|(i, &s)| Func {
                start: s,
                end: starts.get(i + 1).copied().unwrap_or(nslots),
            })
            .collect();
        let mut entries = vec![None; funcs.len()];
        entries[0] = Some(State::entry(Val { bits: CTX, fp: 0 }, [OTHER_VAL; 4]));
        for c in callbacks {
            if let Some(f) = funcs.iter().position(|f| f.start == c) {
                // Helpers call callbacks with scalars and their own pointers.
                let e = State::entry(OTHER_VAL, [OTHER_VAL; 4]);
                match &mut entries[f] {
                    Some(s) => {
                        s.join_from(&e);
                    }
                    slot => *slot = Some(e),
                }
            }
        }
        Analysis {
            insns,
            index,
            exits: vec![Val::default(); funcs.len()],
            funcs,
            entries,
            before: vec![None; insns.len()],
        }
    }

    fn func_of(&self, slot: usize) -> Option<usize> {
        self.funcs.iter().position(|f| f.start == slot)
    }

    fn run(&mut self) {
        loop {
            let mut changed = false;
            for f in 0..self.funcs.len() {
                changed |= self.analyze(f);
            }
            if !changed {
                break;
            }
        }
    }

    /// Analyzes function `f` from its entry state; whether any callee entry
    /// or exit summary changed.
    fn analyze(&mut self, f: usize) -> bool {
        let Some(entry) = self.entries[f].clone() else {
            return false;
        };
        let (start, end) = (self.funcs[f].start, self.funcs[f].end);
        let (Some(first), last) = (
            self.index[start],
            self.index[..end].iter().rev().find_map(|i| *i).unwrap_or(0),
        ) else {
            return false;
        };
        for b in &mut self.before[first..=last] {
            *b = None;
        }
        let mut changed = false;
        let mut work = vec![first];
        self.before[first] = Some(entry);
        let mut queued = vec![false; last + 1 - first];
        queued[0] = true;
        while let Some(i) = work.pop() {
            queued[i - first] = false;
            let Some(mut s) = self.before[i].clone() else {
                continue;
            };
            let l = self.insns[i];
            let next = l.pc + l.insn.slots();
            let mut succ: [Option<usize>; 2] = [None, None];
            match l.insn {
                Instruction::Exit => {
                    let j = self.exits[f].join(s.regs[0]);
                    changed |= j != self.exits[f];
                    self.exits[f] = j;
                }
                Instruction::Ja { .. } | Instruction::JaLong { .. } => {
                    succ[0] = l
                        .insn
                        .branch_offset()
                        .map(|o| (l.pc as i64 + 1 + o) as usize);
                }
                Instruction::Jump { .. } => {
                    succ[0] = Some(next);
                    succ[1] = l
                        .insn
                        .branch_offset()
                        .map(|o| (l.pc as i64 + 1 + o) as usize);
                }
                Instruction::Call {
                    kind: CallKind::Local,
                    ..
                } => {
                    let callee = local_target(&l).and_then(|t| self.func_of(t));
                    let mut ret = OTHER_VAL;
                    if let Some(g) = callee {
                        let mut args = [OTHER_VAL; 4];
                        args.copy_from_slice(&s.regs[2..6]);
                        let e = State::entry(s.regs[1], args);
                        match &mut self.entries[g] {
                            Some(cur) => changed |= cur.join_from(&e),
                            slot => {
                                *slot = Some(e);
                                changed = true;
                            }
                        }
                        ret = self.exits[g];
                    }
                    s.regs[0] = ret;
                    for r in &mut s.regs[1..6] {
                        *r = OTHER_VAL;
                    }
                    succ[0] = Some(next);
                }
                _ => {
                    transfer(&mut s, &l.insn);
                    succ[0] = Some(next);
                }
            }
            for t in succ {
                let Some(t) = t else { continue };
                let Some(Some(ti)) = self.index.get(t).copied() else {
                    continue;
                };
                if ti < first || ti > last {
                    continue;
                }
                let st = &s;
                let grew = match &mut self.before[ti] {
                    Some(cur) => cur.join_from(st),
                    slot => {
                        *slot = Some(st.clone());
                        true
                    }
                };
                if grew && !queued[ti - first] {
                    queued[ti - first] = true;
                    work.push(ti);
                }
            }
        }
        changed
    }
}

/// The effect of one instruction (not a local call, not control flow).
fn transfer(s: &mut State, insn: &Instruction) {
    match *insn {
        Instruction::Alu {
            width,
            op,
            dst,
            src,
        } => {
            let d = s.regs[dst.idx()];
            let v = match (width, op, src) {
                (Width::W64, AluOp::Mov, Source::Reg(r)) => s.regs[r.idx()],
                (_, AluOp::Mov, Source::Imm(_)) => OTHER_VAL,
                (Width::W64, AluOp::Add | AluOp::Sub, Source::Imm(i)) => {
                    let i = if op == AluOp::Sub {
                        -(i as i64)
                    } else {
                        i as i64
                    };
                    let mut bits = d.bits & OTHER;
                    if d.bits & CTX != 0 {
                        bits |= if i == 0 { CTX } else { MODCTX };
                    }
                    bits |= d.bits & MODCTX;
                    let mut fp = 0;
                    if d.bits & FP != 0 {
                        bits |= FP;
                        fp = d.fp.wrapping_add(i);
                    }
                    Val { bits, fp }
                }
                (_, _, Source::Reg(r)) => d.clobbered(s.regs[r.idx()]),
                (_, _, Source::Imm(_)) => d.clobbered(Val::default()),
            };
            s.regs[dst.idx()] = v;
        }
        Instruction::Neg { dst, .. } | Instruction::Endian { dst, .. } => {
            s.regs[dst.idx()] = s.regs[dst.idx()].clobbered(Val::default());
        }
        Instruction::LoadImm64 { dst, .. } => s.regs[dst.idx()] = OTHER_VAL,
        Instruction::LoadPacket { .. } => {
            for r in &mut s.regs[0..6] {
                *r = OTHER_VAL;
            }
        }
        Instruction::Load {
            size,
            signed,
            dst,
            src,
            off,
        } => {
            let v = match s.slots(src, off, size.bytes()) {
                Some((a, _, true)) if !signed => Val {
                    bits: s.stack[a],
                    fp: 0,
                },
                _ => OTHER_VAL,
            };
            s.regs[dst.idx()] = v;
        }
        Instruction::Store {
            size,
            dst,
            src,
            off,
        } => match s.slots(dst, off, size.bytes()) {
            Some((a, _, true)) => s.stack[a] = s.regs[src.idx()].spilled(),
            _ => s.clobber_slots(dst, off, size.bytes()),
        },
        Instruction::StoreImm { size, dst, off, .. } => s.clobber_slots(dst, off, size.bytes()),
        Instruction::Atomic {
            size, dst, off, op, ..
        } => {
            if op == bpfkit_isa::AtomicOp::LoadAcquire {
                // dst = *(src + off)
                s.regs[dst.idx()] = OTHER_VAL;
            } else {
                s.clobber_slots(dst, off, size.bytes());
                if let Some(r) = insn.written_reg() {
                    s.regs[r.idx()] = OTHER_VAL;
                }
            }
        }
        Instruction::Call { .. } | Instruction::CallReg { .. } => {
            for r in &mut s.regs[0..6] {
                *r = OTHER_VAL;
            }
        }
        Instruction::Ja { .. }
        | Instruction::JaLong { .. }
        | Instruction::Jump { .. }
        | Instruction::Exit => {}
    }
}

/// The base register and offset of a memory access, its size, and whether
/// it writes.
fn mem_access(insn: &Instruction) -> Option<(Reg, i16, Size, bool)> {
    match *insn {
        Instruction::Load { size, src, off, .. } => Some((src, off, size, false)),
        Instruction::Store { size, dst, off, .. }
        | Instruction::StoreImm { size, dst, off, .. } => Some((dst, off, size, true)),
        Instruction::Atomic {
            size,
            op,
            dst,
            src,
            off,
        } => {
            if op == bpfkit_isa::AtomicOp::LoadAcquire {
                Some((src, off, size, false))
            } else {
                Some((dst, off, size, true))
            }
        }
        _ => None,
    }
}

pub(super) fn rewrite(kind: ContextKind, slots: &[RawInsn]) -> Result<Vec<RawInsn>, ContextError> {
    let insns = decode_program(slots).map_err(|e| ContextError {
        pc: e.pc,
        message: e.kind.to_string(),
    })?;
    let mut out = slots.to_vec();
    if !kind.is_packet() {
        return Ok(out);
    }
    let mut a = Analysis::new(&insns, slots.len());
    a.run();
    let name = fields::struct_name(kind);
    for (i, l) in insns.iter().enumerate() {
        let Some((base, off, size, write)) = mem_access(&l.insn) else {
            continue;
        };
        let Some(s) = &a.before[i] else { continue };
        let b = s.regs[base.idx()].bits;
        if b & (CTX | MODCTX) == 0 {
            continue;
        }
        let err = |message: String| ContextError { pc: l.pc, message };
        if b & MODCTX != 0 {
            return Err(err(format!(
                "dereference of a modified context pointer ({base} holds {name} plus an offset)"
            )));
        }
        if b & (OTHER | FP) != 0 {
            return Err(err(format!(
                "{base} holds the context ({name}) on some paths only"
            )));
        }
        let bytes = size.bytes();
        let (verb, prep) = if write {
            ("write", "to")
        } else {
            ("read", "from")
        };
        let invalid = || {
            err(format!(
                "invalid {verb} {prep} {name} at offset {off} ({}), {bytes} byte{}",
                fields::field_name(kind, off as i64),
                if bytes == 1 { "" } else { "s" }
            ))
        };
        if let Instruction::Atomic { .. } = l.insn {
            return Err(err(format!(
                "atomic operations on the context ({name}) are not allowed"
            )));
        }
        match fields::check(kind, off as i64, bytes, write) {
            None => return Err(invalid()),
            Some(Access::Keep) => {}
            Some(Access::Whole(new_off)) => {
                if let Instruction::Load {
                    size,
                    signed,
                    dst,
                    src,
                    ..
                } = l.insn
                {
                    let new = Instruction::Load {
                        size,
                        signed,
                        dst,
                        src,
                        off: new_off,
                    };
                    out[l.pc] = new.encode().as_slice()[0];
                }
            }
            Some(Access::Shadow(new_off)) => {
                let Instruction::Load {
                    dst, src, signed, ..
                } = l.insn
                else {
                    return Err(invalid());
                };
                if signed {
                    return Err(invalid());
                }
                let new = Instruction::Load {
                    size: Size::DW,
                    signed: false,
                    dst,
                    src,
                    off: new_off,
                };
                out[l.pc] = new.encode().as_slice()[0];
            }
        }
    }
    Ok(out)
}
