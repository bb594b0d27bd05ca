//! Validation and pre-decoding: a program is checked and translated once into
//! a compact form the interpreter runs many times.

use crate::LoadError;
use bpfkit_isa::{
    decode_program, AluOp, AtomicOp, ByteOrder, CallKind, Instruction, JmpCond, PacketMode, Pseudo,
    RawInsn, Reg, Size, Source, Width,
};

/// Bytes of stack each frame gets, as in the kernel.
pub const FRAME_SIZE: usize = 512;
/// Frames at most (the main program and seven nested bpf-to-bpf calls).
pub const MAX_FRAMES: usize = 8;

/// One operation of the pre-decoded form: a variant per (operation, width,
/// operand kind), with jump targets resolved to absolute indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    // ALU64, immediate (imm holds the sign-extended 64-bit value).
    Add64I,
    Sub64I,
    Mul64I,
    Div64I,
    SDiv64I,
    Or64I,
    And64I,
    Lsh64I,
    Rsh64I,
    Mod64I,
    SMod64I,
    Xor64I,
    Mov64I,
    Arsh64I,
    // ALU64, register.
    Add64R,
    Sub64R,
    Mul64R,
    Div64R,
    SDiv64R,
    Or64R,
    And64R,
    Lsh64R,
    Rsh64R,
    Mod64R,
    SMod64R,
    Xor64R,
    Mov64R,
    Arsh64R,
    MovSx8_64,
    MovSx16_64,
    MovSx32_64,
    // ALU32, immediate (imm holds the 32-bit value zero-extended).
    Add32I,
    Sub32I,
    Mul32I,
    Div32I,
    SDiv32I,
    Or32I,
    And32I,
    Lsh32I,
    Rsh32I,
    Mod32I,
    SMod32I,
    Xor32I,
    Mov32I,
    Arsh32I,
    // ALU32, register.
    Add32R,
    Sub32R,
    Mul32R,
    Div32R,
    SDiv32R,
    Or32R,
    And32R,
    Lsh32R,
    Rsh32R,
    Mod32R,
    SMod32R,
    Xor32R,
    Mov32R,
    Arsh32R,
    MovSx8_32,
    MovSx16_32,
    Neg64,
    Neg32,
    Le16,
    Le32,
    Be16,
    Be32,
    Be64,
    Nop,
    LdImm64,
    LdAbsB,
    LdAbsH,
    LdAbsW,
    LdIndB,
    LdIndH,
    LdIndW,
    // Checked memory access through any register.
    LdxB,
    LdxH,
    LdxW,
    LdxDW,
    LdxSB,
    LdxSH,
    LdxSW,
    StB,
    StH,
    StW,
    StDW,
    StxB,
    StxH,
    StxW,
    StxDW,
    // Accesses at a constant offset from r10 that lie inside the frame: no check.
    FpLdxB,
    FpLdxH,
    FpLdxW,
    FpLdxDW,
    FpLdxSB,
    FpLdxSH,
    FpLdxSW,
    FpStB,
    FpStH,
    FpStW,
    FpStDW,
    FpStxB,
    FpStxH,
    FpStxW,
    FpStxDW,
    Atomic32,
    Atomic64,
    /// `lock *(u64 *)(dst + off) += src`: the counter idiom
    /// (`__sync_fetch_and_add` with the result unused), kept inline.
    AtomicAdd64,
    AtomicLoadB,
    AtomicLoadH,
    AtomicLoadW,
    AtomicLoadDW,
    AtomicStoreB,
    AtomicStoreH,
    AtomicStoreW,
    AtomicStoreDW,
    Ja,
    // Conditional jumps: 64-bit/32-bit, immediate/register.
    Jeq64I,
    Jgt64I,
    Jge64I,
    Jset64I,
    Jne64I,
    Jsgt64I,
    Jsge64I,
    Jlt64I,
    Jle64I,
    Jslt64I,
    Jsle64I,
    Jeq64R,
    Jgt64R,
    Jge64R,
    Jset64R,
    Jne64R,
    Jsgt64R,
    Jsge64R,
    Jlt64R,
    Jle64R,
    Jslt64R,
    Jsle64R,
    Jeq32I,
    Jgt32I,
    Jge32I,
    Jset32I,
    Jne32I,
    Jsgt32I,
    Jsge32I,
    Jlt32I,
    Jle32I,
    Jslt32I,
    Jsle32I,
    Jeq32R,
    Jgt32R,
    Jge32R,
    Jset32R,
    Jne32R,
    Jsgt32R,
    Jsge32R,
    Jlt32R,
    Jle32R,
    Jslt32R,
    Jsle32R,
    Call,
    CallLocal,
    CallReg,
    Exit,
    /// The second slot of an LDDW, or the sentinel after the last instruction:
    /// never reached (validation rules it out), kept so indices equal slots.
    Unreachable,
}

impl Kind {
    /// A store (register or immediate, through a register or r10); not the
    /// atomics.
    pub fn is_store(self) -> bool {
        use Kind::*;
        matches!(
            self,
            StB | StH
                | StW
                | StDW
                | StxB
                | StxH
                | StxW
                | StxDW
                | FpStB
                | FpStH
                | FpStW
                | FpStDW
                | FpStxB
                | FpStxH
                | FpStxW
                | FpStxDW
        )
    }
}

/// A pre-decoded operation, 16 bytes.
///
/// `aux` is the memory offset of loads and stores, or the absolute index of a
/// jump or local-call target. `imm` is the operand, already widened; for
/// operations that end a straight-line run (jumps, calls, exits, legacy packet
/// loads) its upper half carries instruction-count bookkeeping instead (see
/// the interpreter's counting scheme) and the operand sits in the lower half.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct Op {
    pub imm: u64,
    pub aux: i32,
    pub kind: Kind,
    pub dst: u8,
    pub src: u8,
    _pad: u8,
}

const _: () = assert!(std::mem::size_of::<Op>() == 16);

impl Op {
    /// The same operation under another kind.
    pub fn with_kind(self, kind: Kind) -> Op {
        Op { kind, ..self }
    }
    #[inline(always)]
    pub fn lo(&self) -> i32 {
        self.imm as i32
    }
    #[inline(always)]
    pub fn hi(&self) -> i32 {
        (self.imm >> 32) as i32
    }
    fn set_hi(&mut self, v: i64) {
        self.imm = (self.imm & 0xffff_ffff) | ((v as u32 as u64) << 32);
    }
    fn set_lo(&mut self, v: i32) {
        self.imm = (self.imm & !0xffff_ffff) | v as u32 as u64;
    }
}

/// A validated, pre-decoded program, ready to run any number of times.
#[derive(Clone, Debug)]
pub struct Program {
    pub(crate) ops: Vec<Op>,
    slots: Vec<RawInsn>,
    /// Helper ids the program calls directly.
    helper_calls: Vec<(usize, u32)>,
    /// Slots whose address the program takes (LDDW of a BPF_PSEUDO_FUNC):
    /// the subprograms it may pass to bpf_loop, as (slot, instruction
    /// index), sorted.
    callbacks: Vec<(usize, usize)>,
}

/// The tag of a callback address (the value LDDW of a BPF_PSEUDO_FUNC
/// loads): `FUNC_TAG | slot`, so a program cannot make any integer a callback.
pub const FUNC_TAG: u64 = 0xffff_c0de_0000_0000;

impl Program {
    /// Validates and pre-decodes instruction slots.
    pub fn new(slots: &[RawInsn]) -> Result<Program, LoadError> {
        let insns = decode_program(slots)?;
        let mut ops = vec![op(Kind::Unreachable); slots.len() + 1];
        let mut helper_calls = Vec::new();
        let mut callbacks = Vec::new();
        let mut idx = vec![0u32; slots.len()];
        for (i, l) in insns.iter().enumerate() {
            idx[l.pc] = i as u32;
            if l.insn.slots() == 2 {
                idx[l.pc + 1] = i as u32;
            }
        }
        for l in &insns {
            if let Instruction::Call {
                kind: CallKind::Kfunc,
                imm,
            } = l.insn
            {
                return Err(LoadError::Kfunc { pc: l.pc, id: imm });
            }
            if let Instruction::Call {
                kind: CallKind::Helper,
                imm,
            } = l.insn
            {
                helper_calls.push((l.pc, imm as u32));
            }
            ops[l.pc] = lower(l.pc, &l.insn, &idx);
            if let Instruction::LoadImm64 {
                pseudo: Pseudo::Func,
                imm,
                ..
            } = l.insn
            {
                // As the kernel: the immediate is the callback's offset from
                // the instruction after the LDDW's first slot.
                let target = l.pc as i64 + 1 + imm as i32 as i64;
                let starts = target >= 0
                    && (target as usize) < slots.len()
                    && insns.iter().any(|x| x.pc == target as usize);
                if !starts {
                    return Err(LoadError::BadCallback { pc: l.pc, target });
                }
                ops[l.pc].imm = FUNC_TAG | target as u64;
                callbacks.push((target as usize, idx[target as usize] as usize));
            }
        }
        callbacks.sort_unstable();
        callbacks.dedup();
        Ok(Program {
            ops,
            slots: slots.to_vec(),
            helper_calls,
            callbacks,
        })
    }

    /// Parses raw bytes (a multiple of 8) and validates them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Program, LoadError> {
        Program::new(&bpfkit_isa::slots_from_bytes(bytes)?)
    }

    /// The original instruction slots.
    pub fn slots(&self) -> &[RawInsn] {
        &self.slots
    }

    /// (slot index, helper id) of every direct helper call.
    pub fn helper_calls(&self) -> &[(usize, u32)] {
        &self.helper_calls
    }

    /// The slot a callback address designates, if the program took the
    /// address of a subprogram starting there.
    pub fn callback_slot(&self, addr: u64) -> Option<usize> {
        self.callback(addr).map(|(slot, _)| slot)
    }

    /// The slots callbacks start at.
    pub(crate) fn callback_slots(&self) -> Vec<usize> {
        self.callbacks.iter().map(|c| c.0).collect()
    }

    /// (slot, instruction index) of a callback address.
    pub(crate) fn callback(&self, addr: u64) -> Option<(usize, usize)> {
        if addr & !0xffff_ffff != FUNC_TAG {
            return None;
        }
        let slot = (addr & 0xffff_ffff) as usize;
        let i = self.callbacks.binary_search_by_key(&slot, |c| c.0).ok()?;
        Some(self.callbacks[i])
    }
}

const fn op(kind: Kind) -> Op {
    Op {
        imm: 0,
        aux: 0,
        kind,
        dst: 0,
        src: 0,
        _pad: 0,
    }
}

fn alu_kind(width: Width, aop: AluOp, reg: bool) -> Kind {
    use Kind::*;
    let t: [Kind; 4] = match aop {
        AluOp::Add => [Add64I, Add64R, Add32I, Add32R],
        AluOp::Sub => [Sub64I, Sub64R, Sub32I, Sub32R],
        AluOp::Mul => [Mul64I, Mul64R, Mul32I, Mul32R],
        AluOp::Div => [Div64I, Div64R, Div32I, Div32R],
        AluOp::SDiv => [SDiv64I, SDiv64R, SDiv32I, SDiv32R],
        AluOp::Or => [Or64I, Or64R, Or32I, Or32R],
        AluOp::And => [And64I, And64R, And32I, And32R],
        AluOp::Lsh => [Lsh64I, Lsh64R, Lsh32I, Lsh32R],
        AluOp::Rsh => [Rsh64I, Rsh64R, Rsh32I, Rsh32R],
        AluOp::Mod => [Mod64I, Mod64R, Mod32I, Mod32R],
        AluOp::SMod => [SMod64I, SMod64R, SMod32I, SMod32R],
        AluOp::Xor => [Xor64I, Xor64R, Xor32I, Xor32R],
        AluOp::Mov => [Mov64I, Mov64R, Mov32I, Mov32R],
        AluOp::Arsh => [Arsh64I, Arsh64R, Arsh32I, Arsh32R],
        // Decoding guarantees sign-extending moves take a register.
        AluOp::MovSx8 => [Unreachable, MovSx8_64, Unreachable, MovSx8_32],
        AluOp::MovSx16 => [Unreachable, MovSx16_64, Unreachable, MovSx16_32],
        AluOp::MovSx32 => [Unreachable, MovSx32_64, Unreachable, Unreachable],
    };
    t[(width == Width::W32) as usize * 2 + reg as usize]
}

fn jmp_kind(width: Width, cond: JmpCond, reg: bool) -> Kind {
    use Kind::*;
    let t: [Kind; 4] = match cond {
        JmpCond::Eq => [Jeq64I, Jeq64R, Jeq32I, Jeq32R],
        JmpCond::Gt => [Jgt64I, Jgt64R, Jgt32I, Jgt32R],
        JmpCond::Ge => [Jge64I, Jge64R, Jge32I, Jge32R],
        JmpCond::Set => [Jset64I, Jset64R, Jset32I, Jset32R],
        JmpCond::Ne => [Jne64I, Jne64R, Jne32I, Jne32R],
        JmpCond::SGt => [Jsgt64I, Jsgt64R, Jsgt32I, Jsgt32R],
        JmpCond::SGe => [Jsge64I, Jsge64R, Jsge32I, Jsge32R],
        JmpCond::Lt => [Jlt64I, Jlt64R, Jlt32I, Jlt32R],
        JmpCond::Le => [Jle64I, Jle64R, Jle32I, Jle32R],
        JmpCond::SLt => [Jslt64I, Jslt64R, Jslt32I, Jslt32R],
        JmpCond::SLe => [Jsle64I, Jsle64R, Jsle32I, Jsle32R],
    };
    t[(width == Width::W32) as usize * 2 + reg as usize]
}

/// Picks the kind for an access size from [byte, half, word, double word].
fn sized(kinds: [Kind; 4], size: Size) -> Kind {
    kinds[match size {
        Size::B => 0,
        Size::H => 1,
        Size::W => 2,
        Size::DW => 3,
    }]
}

/// Whether `[r10 + off, r10 + off + size)` lies inside the current frame.
fn in_frame(off: i16, size: Size) -> bool {
    let off = off as i64;
    off >= -(FRAME_SIZE as i64) && off + size.bytes() as i64 <= 0
}

/// Lowers one instruction. `idx[slot]` is the instruction index of each slot
/// (slots minus the LDDW second slots before it), for the counting scheme:
/// an op that ends a straight-line run records `idx(here) + 1`, a jump the
/// difference `idx(here) + 1 - idx(target)`, so the interpreter can count
/// executed instructions at control transfers only.
fn lower(pc: usize, insn: &Instruction, idx: &[u32]) -> Op {
    use Kind::*;
    let here_end = idx[pc] as i64 + 1;
    let jump_to = |o: &mut Op, insn: &Instruction| {
        let t = (pc as i64 + 1 + insn.branch_offset().expect("branch")) as usize;
        o.aux = t as i32;
        o.set_hi(here_end - idx[t] as i64);
    };
    let mut o = op(Unreachable);
    match *insn {
        Instruction::Alu {
            width,
            op: aop,
            dst,
            src,
        } => {
            o.dst = dst.num();
            match src {
                Source::Reg(s) => {
                    o.kind = alu_kind(width, aop, true);
                    o.src = s.num();
                }
                Source::Imm(i) => {
                    o.kind = alu_kind(width, aop, false);
                    o.imm = match width {
                        Width::W64 => i as i64 as u64,
                        Width::W32 => i as u32 as u64,
                    };
                }
            }
        }
        Instruction::Neg { width, dst } => {
            o.kind = if width == Width::W64 { Neg64 } else { Neg32 };
            o.dst = dst.num();
        }
        Instruction::Endian { order, bits, dst } => {
            o.dst = dst.num();
            // The host is little endian: `le` only truncates, `be` and
            // `bswap` swap.
            o.kind = match (order, bits) {
                (ByteOrder::ToLe, 16) => Le16,
                (ByteOrder::ToLe, 32) => Le32,
                (ByteOrder::ToLe, _) => Nop,
                (_, 16) => Be16,
                (_, 32) => Be32,
                _ => Be64,
            };
        }
        Instruction::LoadImm64 { dst, pseudo, imm } => {
            // Pseudo forms are resolved by the object loader before a program
            // reaches the VM; unresolved they load their raw value.
            let _ = pseudo == Pseudo::Imm64;
            o.kind = LdImm64;
            o.dst = dst.num();
            o.imm = imm as u64;
        }
        Instruction::LoadPacket { mode, size, imm } => {
            let (abs, ind) = match size {
                Size::B => (LdAbsB, LdIndB),
                Size::H => (LdAbsH, LdIndH),
                _ => (LdAbsW, LdIndW),
            };
            o.set_lo(imm);
            o.set_hi(here_end);
            match mode {
                PacketMode::Abs => o.kind = abs,
                PacketMode::Ind(r) => {
                    o.kind = ind;
                    o.src = r.num();
                }
            }
        }
        Instruction::Load {
            size,
            signed,
            dst,
            src,
            off,
        } => {
            let fp = src == Reg::R10 && in_frame(off, size);
            o.kind = match (signed, fp) {
                (false, false) => sized([LdxB, LdxH, LdxW, LdxDW], size),
                (true, false) => sized([LdxSB, LdxSH, LdxSW, LdxDW], size),
                (false, true) => sized([FpLdxB, FpLdxH, FpLdxW, FpLdxDW], size),
                (true, true) => sized([FpLdxSB, FpLdxSH, FpLdxSW, FpLdxDW], size),
            };
            o.dst = dst.num();
            o.src = src.num();
            o.aux = off as i32;
        }
        Instruction::StoreImm {
            size,
            dst,
            off,
            imm,
        } => {
            o.kind = if dst == Reg::R10 && in_frame(off, size) {
                sized([FpStB, FpStH, FpStW, FpStDW], size)
            } else {
                sized([StB, StH, StW, StDW], size)
            };
            o.dst = dst.num();
            o.aux = off as i32;
            o.imm = imm as i64 as u64;
        }
        Instruction::Store {
            size,
            dst,
            src,
            off,
        } => {
            o.kind = if dst == Reg::R10 && in_frame(off, size) {
                sized([FpStxB, FpStxH, FpStxW, FpStxDW], size)
            } else {
                sized([StxB, StxH, StxW, StxDW], size)
            };
            o.dst = dst.num();
            o.src = src.num();
            o.aux = off as i32;
        }
        Instruction::Atomic {
            size,
            op: aop,
            dst,
            src,
            off,
        } => {
            o.kind = match (aop, size) {
                (AtomicOp::LoadAcquire, Size::B) => AtomicLoadB,
                (AtomicOp::LoadAcquire, Size::H) => AtomicLoadH,
                (AtomicOp::LoadAcquire, Size::W) => AtomicLoadW,
                (AtomicOp::LoadAcquire, Size::DW) => AtomicLoadDW,
                (AtomicOp::StoreRelease, Size::B) => AtomicStoreB,
                (AtomicOp::StoreRelease, Size::H) => AtomicStoreH,
                (AtomicOp::StoreRelease, Size::W) => AtomicStoreW,
                (AtomicOp::StoreRelease, Size::DW) => AtomicStoreDW,
                (_, Size::W) => Atomic32,
                (AtomicOp::Add, _) => AtomicAdd64,
                _ => Atomic64,
            };
            o.dst = dst.num();
            o.src = src.num();
            o.aux = off as i32;
            o.imm = aop.imm() as u64;
        }
        Instruction::Ja { .. } | Instruction::JaLong { .. } => {
            o.kind = Ja;
            jump_to(&mut o, insn);
        }
        Instruction::Jump {
            width,
            cond,
            dst,
            src,
            ..
        } => {
            o.dst = dst.num();
            match src {
                Source::Reg(s) => {
                    o.kind = jmp_kind(width, cond, true);
                    o.src = s.num();
                }
                Source::Imm(i) => {
                    o.kind = jmp_kind(width, cond, false);
                    o.set_lo(i);
                }
            }
            jump_to(&mut o, insn);
        }
        Instruction::Call { kind, imm } => match kind {
            CallKind::Local => {
                o.kind = CallLocal;
                jump_to(&mut o, insn);
                o.set_lo(here_end as i32);
            }
            _ => {
                o.kind = Call;
                o.set_lo(imm);
                o.set_hi(here_end);
            }
        },
        Instruction::CallReg { reg } => {
            o.kind = CallReg;
            o.dst = reg.num();
            o.set_hi(here_end);
        }
        Instruction::Exit => {
            o.kind = Exit;
            o.imm = here_end as u64;
        }
    }
    o
}

/// A program an engine runs: borrowed, or shared with the instance that
/// loaded it (so engines can be cached beside it).
pub(crate) enum ProgRef<'p> {
    Borrowed(&'p Program),
    Shared(std::sync::Arc<Program>),
}

/// A program bound to a helper registry, as the interpreter and the JIT hold
/// it: every helper the program calls by id is known to exist, and calls
/// find helpers through a dense table first.
pub(crate) struct Bound<'p> {
    prog: ProgRef<'p>,
    dense: Vec<Option<std::sync::Arc<crate::helpers::HelperFn>>>,
    sparse: crate::Helpers,
}

impl<'p> Bound<'p> {
    /// Fails if the program calls a helper the registry lacks.
    pub fn new(prog: ProgRef<'p>, helpers: &crate::Helpers) -> Result<Self, crate::LoadError> {
        let bound = Bound {
            prog,
            dense: helpers.dense(),
            sparse: helpers.clone(),
        };
        for &(pc, id) in bound.helper_calls() {
            if helpers.get(id).is_none() {
                return Err(crate::LoadError::UnknownHelper { pc, id });
            }
        }
        Ok(bound)
    }

    /// The helper with this id (a `call` immediate or a callx register).
    #[inline(always)]
    pub fn helper(&self, id: u64) -> Option<&crate::helpers::HelperFn> {
        match self.dense.get(id as usize) {
            Some(Some(f)) => Some(&**f),
            _ => u32::try_from(id)
                .ok()
                .and_then(|i| self.sparse.get(i))
                .map(|h| &*h.func),
        }
    }
}

impl std::ops::Deref for Bound<'_> {
    type Target = Program;
    #[inline(always)]
    fn deref(&self) -> &Program {
        match &self.prog {
            ProgRef::Borrowed(p) => p,
            ProgRef::Shared(p) => p,
        }
    }
}
