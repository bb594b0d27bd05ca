//! Seeded random programs for differential testing.
//!
//! [`program`] builds a body that follows the conformance convention (r1
//! points to `mem_len` bytes of input memory, or is 0 when there are none; r2
//! holds the length; the result is r0) and that the Linux verifier accepts
//! when the body runs as a bpf-to-bpf subprogram whose caller has range-checked
//! r1 (the differential runner's XDP wrapper). The same seed and config always
//! give the same program: the generator carries its own PRNG ([`Rng`]).
//!
//! What the generator keeps true so the verifier accepts the program:
//! - every register is written before it is read (r0, r3-r9 are set first;
//!   after a local call r1-r5 are set again);
//! - r1 stays the only pointer besides r10 (and r9 when calls are on, which
//!   keeps a copy of r1 to restore it after a call): no pointer ever reaches
//!   an ALU operation, a comparison, a store or r0;
//! - memory accesses through r1 stay inside `0..mem_len`; stack accesses are
//!   at constant, size-aligned offsets inside a region initialised before
//!   anything reads it; atomics touch the stack only, and only one slot of
//!   it that no plain store writes (see `Frame::atomic` in the source for
//!   the Linux verifier bug this avoids), and r0 is read as 64 bits right
//!   after a 32-bit cmpxchg (another verifier bug);
//! - shifts by an immediate stay below the width, division and modulo by an
//!   immediate never divide by zero (by a register they may: that is defined);
//! - the code is built from nested blocks (skip, if/else, early exit, counted
//!   loop): jumps go forward, except the one closing a loop whose counter
//!   nothing else writes, so the program terminates and every instruction
//!   is reachable.

use crate::{
    AluOp, AtomicOp, ByteOrder, CallKind, Instruction, JmpCond, Pseudo, RawInsn, Reg, Size, Source,
    Width,
};

/// A small, fast, deterministic PRNG (splitmix64). Not for cryptography.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` must be non-zero).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo) as u64 + 1) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// An immediate biased toward the values where semantics differ: zero,
    /// one, minus one, the extremes, powers of two and their neighbours.
    pub fn interesting_i32(&mut self) -> i32 {
        match self.below(8) {
            0 => self.pick(&[0, 1, -1, 2, -2, 7, 8, 15, 16, 31, 32, 63, 64, 255, 256]),
            1 => self.pick(&[
                i32::MIN,
                i32::MAX,
                i32::MIN + 1,
                i32::MAX - 1,
                0x7fff,
                0x8000,
                0xffff,
            ]),
            2 => {
                let p = 1i32.wrapping_shl(self.below(32) as u32);
                p.wrapping_add(self.pick(&[-1, 0, 1]))
            }
            3 => self.below(256) as i32 - 128,
            _ => self.next_u64() as i32,
        }
    }

    /// A 64-bit constant with the same bias, for LDDW.
    pub fn interesting_i64(&mut self) -> i64 {
        match self.below(6) {
            0 => self.pick(&[
                i64::MIN,
                i64::MAX,
                -1,
                0,
                1,
                0x8000_0000,
                0xffff_ffff,
                0x1_0000_0000,
            ]),
            1 => {
                let p = 1i64.wrapping_shl(self.below(64) as u32);
                p.wrapping_add(self.pick(&[-1, 0, 1]))
            }
            2 => self.interesting_i32() as i64,
            _ => self.next_u64() as i64,
        }
    }
}

/// What [`program`] generates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenConfig {
    /// Length of the memory r1 points to; 0 means r1 is the scalar 0.
    /// Accesses use offsets below 32768; the differential runner's XDP
    /// wrapper takes at most 3072 bytes.
    pub mem_len: usize,
    /// Approximate number of random instructions in the body (excluding
    /// register and stack initialisation and the final fold); at most 4096
    /// are used, so every jump fits its 16-bit offset.
    pub insns: usize,
    /// Bytes of stack the body uses below r10 for plain loads and stores
    /// (rounded down to a multiple of 8, between 8 and 256); atomics use one
    /// more 8-byte slot below them.
    pub stack_bytes: u16,
    /// Maximum nesting of generated blocks (skips and if/else).
    pub max_depth: u8,
    /// Generate a second function and bpf-to-bpf calls to it.
    pub calls: bool,
    /// Generate bounded loops: a counter in r6-r8 set to 1-4, decremented
    /// at the end of the body and tested by a backward `jne`; the body only
    /// moves values between memory, stack and registers.
    ///
    /// Off by default: the Linux 6.18 verifier walks such a loop with the
    /// counter's value, then widens the counter to unknown and walks the
    /// loop, and everything after it, again for each state until they
    /// converge. Most programs with a loop then reach its limit of 1M
    /// instructions, after a second or more each.
    pub loops: bool,
    /// Generate atomic read-modify-write operations on the stack.
    pub atomics: bool,
    /// Generate load-acquire and store-release on the stack (Linux 6.15+).
    pub acquire_release: bool,
    /// Before exit, fold every scalar register and the used stack into r0 so
    /// that a difference anywhere shows in the result.
    pub fold: bool,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            mem_len: 32,
            insns: 64,
            stack_bytes: 64,
            max_depth: 3,
            calls: true,
            loops: false,
            atomics: true,
            acquire_release: true,
            fold: true,
        }
    }
}

impl GenConfig {
    /// A config whose shape (memory length, size, features) is itself drawn
    /// from `seed`, so a run over many seeds covers many shapes.
    pub fn random(seed: u64) -> GenConfig {
        let mut rng = Rng::new(seed ^ 0x5eed_c0f1_6000_0000);
        GenConfig {
            mem_len: rng.pick(&[0, 1, 3, 8, 13, 16, 32, 64, 100, 256]),
            insns: rng.range(8, 120),
            stack_bytes: 8 * rng.range(1, 32) as u16,
            max_depth: rng.range(0, 4) as u8,
            calls: rng.chance(1, 3),
            loops: false,
            atomics: true,
            acquire_release: rng.chance(1, 2),
            fold: rng.chance(7, 8),
        }
    }
}

/// Generates the slots of one program; see the module documentation.
pub fn program(seed: u64, cfg: &GenConfig) -> Vec<RawInsn> {
    let mut gen = Gen {
        rng: Rng::new(seed),
        cfg,
        next_label: 0,
        in_loop: false,
    };
    let has_mem = cfg.mem_len > 0;
    let main_stack = cfg.stack_bytes.clamp(8, 256) & !7;
    let leaf_stack = main_stack.min(32);
    let mut funcs = vec![gen.function(FnKind::Main, main_stack, has_mem)];
    if cfg.calls {
        funcs.push(gen.function(FnKind::Leaf, leaf_stack, has_mem));
    }
    layout(&funcs)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FnKind {
    Main,
    Leaf,
}

/// One element of a function before layout: jumps and calls name a label or
/// function, resolved to relative offsets once every slot position is known.
#[derive(Clone, Debug)]
enum Item {
    Insn(Instruction),
    Jump(Instruction, usize),
    Label(usize),
    Call(usize),
}

struct Gen<'c> {
    rng: Rng,
    cfg: &'c GenConfig,
    next_label: usize,
    /// Inside a loop body: no nested blocks or loops (the verifier walks
    /// every iteration, so they multiply its work).
    in_loop: bool,
}

/// The registers of the function being generated.
struct Frame {
    kind: FnKind,
    /// Registers holding initialised scalars.
    scalars: Vec<Reg>,
    /// The memory pointer (r1), when there is memory.
    ptr: Option<Reg>,
    /// Bytes of initialised stack below r10 that plain loads and stores use.
    stack: u16,
    /// The slot below them that atomics use, when atomics are on.
    ///
    /// Plain stores never write it, so the verifier never sees a register
    /// spilled there: it holds STACK_MISC, an unknown value, from its
    /// initialisation on. This works around a verifier bug (Linux 6.18):
    /// precision backtracking treats an atomic fetch (`lock fetch add`,
    /// `xchg`, `cmpxchg`) as a plain store and does not mark the stack slot
    /// it loads from as precise. When the slot holds a spilled constant on
    /// one path, the fetched value decides a branch there, and another path
    /// reaches the same instruction with a different value in that slot,
    /// the verifier prunes the second path as equivalent, never visits code
    /// only it reaches, and removes that code as dead: the kernel then
    /// computes a wrong result. (Found by this harness; the program is in
    /// the bpfkit crate's differential tests.)
    atomic: Option<i16>,
    items: Vec<Item>,
    /// The label of the final fold and exit.
    out: usize,
}

const ALU_OPS: &[AluOp] = AluOp::ALL;
const COND: &[JmpCond] = JmpCond::ALL;
const RMW: &[AtomicOp] = &[
    AtomicOp::Add,
    AtomicOp::Or,
    AtomicOp::And,
    AtomicOp::Xor,
    AtomicOp::FetchAdd,
    AtomicOp::FetchOr,
    AtomicOp::FetchAnd,
    AtomicOp::FetchXor,
    AtomicOp::Xchg,
    AtomicOp::CmpXchg,
];

impl Gen<'_> {
    fn label(&mut self) -> usize {
        self.next_label += 1;
        self.next_label - 1
    }

    fn function(&mut self, kind: FnKind, stack: u16, has_mem: bool) -> Vec<Item> {
        let out = self.label();
        let ptr = has_mem.then_some(Reg::R1);
        // With calls on, r9 keeps a copy of the memory pointer in the main
        // function so r1 can be restored after each call clobbers it.
        let keep_ptr = kind == FnKind::Main && self.cfg.calls && has_mem;
        let mut scalars: Vec<Reg> = (0..=9)
            .filter_map(Reg::new)
            .filter(|r| !((has_mem && *r == Reg::R1) || (keep_ptr && *r == Reg::R9)))
            .collect();
        let atomics = self.cfg.atomics || self.cfg.acquire_release;
        let mut f = Frame {
            kind,
            scalars: Vec::new(),
            ptr,
            stack,
            atomic: atomics.then_some(-(stack as i16) - 8),
            items: Vec::new(),
            out,
        };
        // Registers the caller set: r2 (length) in the main function, r2-r5
        // (and a scalar r1) in the leaf.
        let preset: Vec<Reg> = match kind {
            FnKind::Main if has_mem => vec![Reg::R2],
            FnKind::Main => vec![Reg::R1, Reg::R2],
            FnKind::Leaf if has_mem => vec![Reg::R2, Reg::R3, Reg::R4, Reg::R5],
            FnKind::Leaf => vec![Reg::R1, Reg::R2, Reg::R3, Reg::R4, Reg::R5],
        };
        f.scalars.extend(preset.iter().copied());
        if keep_ptr {
            f.items.push(Item::Insn(mov64_reg(Reg::R9, Reg::R1)));
        }
        scalars.retain(|r| !preset.contains(r));
        self.rng_shuffle(&mut scalars);
        for r in scalars {
            self.init_reg(&mut f, r);
            f.scalars.push(r);
        }
        // Initialise the stack region, one 8-byte slot at a time.
        for k in 1..=(stack / 8) {
            let off = -(8 * k as i16);
            self.init_slot(&mut f, off);
        }
        if let Some(off) = f.atomic {
            // A constant, then an atomic add of an unknown value: from here
            // on the verifier sees STACK_MISC.
            f.items.push(Item::Insn(Instruction::StoreImm {
                size: Size::DW,
                dst: Reg::R10,
                off,
                imm: self.rng.interesting_i32(),
            }));
            let src = self.scalar(&f);
            f.items.push(Item::Insn(Instruction::Atomic {
                size: Size::DW,
                op: AtomicOp::Add,
                dst: Reg::R10,
                src,
                off,
            }));
        }
        let insns = self.cfg.insns.min(4096);
        let budget = match kind {
            FnKind::Main => insns,
            FnKind::Leaf => insns / 3 + 2,
        };
        self.block(&mut f, budget, 0);
        if kind == FnKind::Main
            && self.cfg.calls
            && !f.items.iter().any(|i| matches!(i, Item::Call(_)))
        {
            // An uncalled function would be unreachable code, which the
            // verifier refuses.
            self.call(&mut f);
        }
        f.items.push(Item::Label(out));
        if self.cfg.fold {
            self.fold(&mut f);
        }
        f.items.push(Item::Insn(Instruction::Exit));
        f.items
    }

    fn rng_shuffle(&mut self, v: &mut [Reg]) {
        for i in (1..v.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }

    fn scalar(&mut self, f: &Frame) -> Reg {
        self.rng.pick(&f.scalars)
    }

    fn init_reg(&mut self, f: &mut Frame, r: Reg) {
        let insn = match self.rng.below(6) {
            0 => Instruction::LoadImm64 {
                dst: r,
                pseudo: Pseudo::Imm64,
                imm: self.rng.interesting_i64(),
            },
            1 => Instruction::Alu {
                width: Width::W32,
                op: AluOp::Mov,
                dst: r,
                src: Source::Imm(self.rng.interesting_i32()),
            },
            2 if !f.scalars.is_empty() => {
                let s = self.scalar(f);
                f.items.push(Item::Insn(mov64_reg(r, s)));
                Instruction::Alu {
                    width: Width::W64,
                    op: self.rng.pick(&[AluOp::Add, AluOp::Xor, AluOp::Mul]),
                    dst: r,
                    src: Source::Imm(self.rng.interesting_i32()),
                }
            }
            3 | 4 if f.ptr.is_some() => {
                let size = self.rng.pick(Size::ALL);
                self.mem_load(f, r, size)
            }
            _ => Instruction::Alu {
                width: Width::W64,
                op: AluOp::Mov,
                dst: r,
                src: Source::Imm(self.rng.interesting_i32()),
            },
        };
        f.items.push(Item::Insn(insn));
    }

    fn init_slot(&mut self, f: &mut Frame, off: i16) {
        match self.rng.below(4) {
            0 => f.items.push(Item::Insn(Instruction::StoreImm {
                size: Size::DW,
                dst: Reg::R10,
                off,
                imm: self.rng.interesting_i32(),
            })),
            1 => {
                // Two 32-bit halves.
                for half in 0..2 {
                    let src = self.scalar(f);
                    f.items.push(Item::Insn(Instruction::Store {
                        size: Size::W,
                        dst: Reg::R10,
                        src,
                        off: off + 4 * half,
                    }));
                }
            }
            _ => {
                let src = self.scalar(f);
                f.items.push(Item::Insn(Instruction::Store {
                    size: Size::DW,
                    dst: Reg::R10,
                    src,
                    off,
                }));
            }
        }
    }

    /// A load from the input memory at a random in-bounds offset.
    fn mem_load(&mut self, f: &Frame, dst: Reg, size: Size) -> Instruction {
        let ptr = f.ptr.expect("memory");
        let len = self.cfg.mem_len.min(i16::MAX as usize);
        let size = if size.bytes() > len { Size::B } else { size };
        let off = self.rng.below((len - size.bytes() + 1) as u64) as i16;
        Instruction::Load {
            size,
            signed: size != Size::DW && self.rng.chance(1, 3),
            dst,
            src: ptr,
            off,
        }
    }

    /// A size-aligned offset inside the initialised stack region.
    fn stack_off(&mut self, f: &Frame, size: Size) -> i16 {
        let slots = (f.stack / 8) as u64;
        let base = -8 * (1 + self.rng.below(slots) as i16);
        let b = size.bytes() as i16;
        base + b * self.rng.below((8 / b) as u64) as i16
    }

    fn block(&mut self, f: &mut Frame, budget: usize, depth: u8) {
        let mut left = budget;
        while left > 0 {
            let spent = self.step(f, left, depth);
            left = left.saturating_sub(spent.max(1));
        }
    }

    /// Emits one random construct and returns roughly how many instructions
    /// of the budget it used.
    fn step(&mut self, f: &mut Frame, left: usize, depth: u8) -> usize {
        let nest = depth < self.cfg.max_depth && left >= 3 && !self.in_loop;
        let roll = if self.in_loop {
            // Loop bodies only move values between memory, the stack and
            // registers. The Linux 6.18 verifier walks the loop with the
            // counter's value, then widens the counter to unknown and walks
            // it again until the states converge; arithmetic and branches
            // in the body keep them changing, and it then runs into its
            // limit of 1M instructions (after a second or more).
            let mut arms = vec![60..=71];
            if f.ptr.is_some() {
                arms.push(48..=59);
            }
            if self.cfg.atomics || self.cfg.acquire_release {
                arms.push(72..=77);
            }
            let arm = self.rng.below(arms.len() as u64) as usize;
            let r = arms.swap_remove(arm);
            r.start() + self.rng.below((r.end() - r.start() + 1) as u64)
        } else {
            self.rng.below(100)
        };
        match roll {
            0..=39 => {
                let i = self.alu(f);
                f.items.push(Item::Insn(i));
                1
            }
            40..=44 => {
                let dst = self.scalar(f);
                let width = self.width();
                let insn = match self.rng.below(4) {
                    0 => Instruction::Neg { width, dst },
                    _ => Instruction::Endian {
                        order: self
                            .rng
                            .pick(&[ByteOrder::ToLe, ByteOrder::ToBe, ByteOrder::Swap]),
                        bits: self.rng.pick(&[16, 32, 64]),
                        dst,
                    },
                };
                f.items.push(Item::Insn(insn));
                1
            }
            45..=47 => {
                let dst = self.scalar(f);
                f.items.push(Item::Insn(Instruction::LoadImm64 {
                    dst,
                    pseudo: Pseudo::Imm64,
                    imm: self.rng.interesting_i64(),
                }));
                1
            }
            48..=59 if f.ptr.is_some() => {
                let size = self.rng.pick(Size::ALL);
                let insn = if self.rng.chance(1, 2) {
                    let dst = self.scalar(f);
                    self.mem_load(f, dst, size)
                } else {
                    let Instruction::Load { size, src, off, .. } = self.mem_load(f, Reg::R0, size)
                    else {
                        unreachable!()
                    };
                    self.store(f, src, off, size)
                };
                f.items.push(Item::Insn(insn));
                1
            }
            60..=71 => {
                let size = self.rng.pick(Size::ALL);
                let off = self.stack_off(f, size);
                let insn = if self.rng.chance(1, 2) {
                    let off = match f.atomic {
                        Some(a) if self.rng.chance(1, 4) => self.atomic_off(a, size),
                        _ => off,
                    };
                    Instruction::Load {
                        size,
                        signed: size != Size::DW && self.rng.chance(1, 3),
                        dst: self.scalar(f),
                        src: Reg::R10,
                        off,
                    }
                } else {
                    self.store(f, Reg::R10, off, size)
                };
                f.items.push(Item::Insn(insn));
                1
            }
            72..=77 if self.cfg.atomics || self.cfg.acquire_release => {
                let insn = self.atomic(f);
                f.items.push(Item::Insn(insn));
                if let Instruction::Atomic {
                    size: Size::W,
                    op: AtomicOp::CmpXchg,
                    ..
                } = insn
                {
                    // Works around a verifier bug (Linux 6.18): the x86-64
                    // JIT relies on the verifier to zero-extend r0 after a
                    // 32-bit cmpxchg (the CPU leaves the upper half alone
                    // when the comparison succeeds), and the verifier adds
                    // that only when it sees r0 read as 64 bits on the path
                    // it explores; a path it prunes before such a read keeps
                    // stale upper bits. Reading r0 here, before any branch,
                    // makes the zero extension unconditional.
                    f.items.push(Item::Insn(mov64_reg(Reg::R0, Reg::R0)));
                }
                1
            }
            78..=87 if nest => {
                // if (cond) skip { block }
                let l = self.label();
                let j = self.cond_jump(f);
                f.items.push(Item::Jump(j, l));
                let inner = self.rng.range(1, (left - 1).min(12));
                self.block(f, inner, depth + 1);
                f.items.push(Item::Label(l));
                inner + 1
            }
            92..=93 if nest && self.cfg.loops && !self.in_loop => self.looped(f, left, depth),
            88..=93 if nest => {
                // if (cond) { a } else { b }
                let (l_else, l_end) = (self.label(), self.label());
                let j = self.cond_jump(f);
                f.items.push(Item::Jump(j, l_else));
                let a = self.rng.range(1, (left / 2).clamp(1, 8));
                self.block(f, a, depth + 1);
                let ja = if self.rng.chance(1, 4) {
                    Instruction::JaLong { imm: 0 }
                } else {
                    Instruction::Ja { off: 0 }
                };
                f.items.push(Item::Jump(ja, l_end));
                f.items.push(Item::Label(l_else));
                let b = self.rng.range(1, (left / 2).clamp(1, 8));
                self.block(f, b, depth + 1);
                f.items.push(Item::Label(l_end));
                a + b + 2
            }
            94..=95 => {
                // Early exit to the fold.
                let j = self.cond_jump(f);
                f.items.push(Item::Jump(j, f.out));
                1
            }
            96..=99 if f.kind == FnKind::Main && self.cfg.calls => {
                self.call(f);
                6
            }
            _ => {
                let i = self.alu(f);
                f.items.push(Item::Insn(i));
                1
            }
        }
    }

    /// `c = N; head: { block } c -= 1; if c != 0 goto head`, the counter a
    /// callee-saved register the body does not touch.
    fn looped(&mut self, f: &mut Frame, left: usize, depth: u8) -> usize {
        let counters: Vec<Reg> = f
            .scalars
            .iter()
            .copied()
            .filter(|r| (6..=8).contains(&r.num()))
            .collect();
        if counters.is_empty() {
            let i = self.alu(f);
            f.items.push(Item::Insn(i));
            return 1;
        }
        let c = self.rng.pick(&counters);
        f.scalars.retain(|r| *r != c);
        let head = self.label();
        f.items
            .push(Item::Insn(mov64_imm(c, self.rng.range(1, 4) as i32)));
        f.items.push(Item::Label(head));
        self.in_loop = true;
        let inner = self.rng.range(1, (left - 1).min(8));
        self.block(f, inner, depth + 1);
        self.in_loop = false;
        f.items.push(Item::Insn(Instruction::Alu {
            width: Width::W64,
            op: AluOp::Sub,
            dst: c,
            src: Source::Imm(1),
        }));
        f.items.push(Item::Jump(
            Instruction::Jump {
                width: Width::W64,
                cond: JmpCond::Ne,
                dst: c,
                src: Source::Imm(0),
                off: 0,
            },
            head,
        ));
        f.scalars.push(c);
        inner + 3
    }

    fn width(&mut self) -> Width {
        if self.rng.chance(1, 2) {
            Width::W64
        } else {
            Width::W32
        }
    }

    fn alu(&mut self, f: &Frame) -> Instruction {
        let width = self.width();
        let dst = self.scalar(f);
        let mut op = self.rng.pick(ALU_OPS);
        if width == Width::W32 && !op.valid_in_alu32() {
            op = AluOp::MovSx16;
        }
        let bits = if width == Width::W64 { 64 } else { 32 };
        let use_reg = !op.takes_imm() || self.rng.chance(1, 2);
        let src = if use_reg {
            Source::Reg(self.scalar(f))
        } else {
            let imm = match op {
                AluOp::Lsh | AluOp::Rsh | AluOp::Arsh => self.rng.below(bits) as i32,
                AluOp::Div | AluOp::Mod | AluOp::SDiv | AluOp::SMod => {
                    match self.rng.interesting_i32() {
                        0 => self.rng.pick(&[1, -1, 3]),
                        v => v,
                    }
                }
                _ => self.rng.interesting_i32(),
            };
            Source::Imm(imm)
        };
        Instruction::Alu {
            width,
            op,
            dst,
            src,
        }
    }

    fn store(&mut self, f: &Frame, base: Reg, off: i16, size: Size) -> Instruction {
        if self.rng.chance(1, 3) {
            Instruction::StoreImm {
                size,
                dst: base,
                off,
                imm: self.rng.interesting_i32(),
            }
        } else {
            Instruction::Store {
                size,
                dst: base,
                src: self.scalar(f),
                off,
            }
        }
    }

    /// A size-aligned offset inside the atomic slot at `base`.
    fn atomic_off(&mut self, base: i16, size: Size) -> i16 {
        let b = size.bytes() as i16;
        base + b * self.rng.below((8 / b) as u64) as i16
    }

    fn atomic(&mut self, f: &Frame) -> Instruction {
        let base = f.atomic.expect("atomics are on");
        let acq_rel = self.cfg.acquire_release && (!self.cfg.atomics || self.rng.chance(1, 4));
        if acq_rel {
            let size = self.rng.pick(Size::ALL);
            let off = self.atomic_off(base, size);
            let reg = self.scalar(f);
            return if self.rng.chance(1, 2) {
                // The kernel's encoding: dst_reg = load_acquire(src_reg + off).
                Instruction::Atomic {
                    size,
                    op: AtomicOp::LoadAcquire,
                    dst: reg,
                    src: Reg::R10,
                    off,
                }
            } else {
                Instruction::Atomic {
                    size,
                    op: AtomicOp::StoreRelease,
                    dst: Reg::R10,
                    src: reg,
                    off,
                }
            };
        }
        let size = if self.rng.chance(1, 2) {
            Size::W
        } else {
            Size::DW
        };
        let off = self.atomic_off(base, size);
        Instruction::Atomic {
            size,
            op: self.rng.pick(RMW),
            dst: Reg::R10,
            src: self.scalar(f),
            off,
        }
    }

    fn cond_jump(&mut self, f: &Frame) -> Instruction {
        let src = if self.rng.chance(1, 2) {
            Source::Reg(self.scalar(f))
        } else {
            Source::Imm(self.rng.interesting_i32())
        };
        Instruction::Jump {
            width: self.width(),
            cond: self.rng.pick(COND),
            dst: self.scalar(f),
            src,
            off: 0,
        }
    }

    /// A call to the leaf function; r1-r5 are clobbered and set again.
    fn call(&mut self, f: &mut Frame) {
        f.items.push(Item::Call(1));
        if f.ptr.is_some() {
            f.items.push(Item::Insn(mov64_reg(Reg::R1, Reg::R9)));
        } else {
            f.items
                .push(Item::Insn(mov64_imm(Reg::R1, self.rng.interesting_i32())));
        }
        let sources: Vec<Reg> = f
            .scalars
            .iter()
            .copied()
            .filter(|r| r.num() == 0 || r.num() > 5)
            .collect();
        for n in 2..=5 {
            let r = Reg::new(n).expect("register");
            let insn = if self.rng.chance(1, 2) && !sources.is_empty() {
                mov64_reg(r, self.rng.pick(&sources))
            } else {
                mov64_imm(r, self.rng.interesting_i32())
            };
            f.items.push(Item::Insn(insn));
        }
    }

    /// Folds every scalar register and the stack region into r0.
    fn fold(&mut self, f: &mut Frame) {
        let regs: Vec<Reg> = f
            .scalars
            .iter()
            .copied()
            .filter(|r| *r != Reg::R0)
            .collect();
        let mut push = |i: Instruction| f.items.push(Item::Insn(i));
        for r in regs {
            push(Instruction::Alu {
                width: Width::W64,
                op: AluOp::Mul,
                dst: Reg::R0,
                src: Source::Imm(0x0100_0193),
            });
            push(Instruction::Alu {
                width: Width::W64,
                op: AluOp::Xor,
                dst: Reg::R0,
                src: Source::Reg(r),
            });
        }
        // Any scalar but r0 will do as the scratch register for the stack.
        let Some(&tmp) = f.scalars.iter().find(|r| **r != Reg::R0) else {
            return;
        };
        let slots = (1..=(f.stack / 8) as i16).map(|k| -8 * k).chain(f.atomic);
        for off in slots {
            f.items.push(Item::Insn(Instruction::Load {
                size: Size::DW,
                signed: false,
                dst: tmp,
                src: Reg::R10,
                off,
            }));
            f.items.push(Item::Insn(Instruction::Alu {
                width: Width::W64,
                op: AluOp::Mul,
                dst: Reg::R0,
                src: Source::Imm(0x0100_0193),
            }));
            f.items.push(Item::Insn(Instruction::Alu {
                width: Width::W64,
                op: AluOp::Xor,
                dst: Reg::R0,
                src: Source::Reg(tmp),
            }));
        }
    }
}

fn mov64_reg(dst: Reg, src: Reg) -> Instruction {
    Instruction::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst,
        src: Source::Reg(src),
    }
}

fn mov64_imm(dst: Reg, imm: i32) -> Instruction {
    Instruction::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst,
        src: Source::Imm(imm),
    }
}

/// Lays the functions out one after the other and resolves jumps and calls.
fn layout(funcs: &[Vec<Item>]) -> Vec<RawInsn> {
    use std::collections::HashMap;
    let mut labels: HashMap<usize, usize> = HashMap::new();
    let mut starts = Vec::with_capacity(funcs.len());
    let mut pc = 0usize;
    for items in funcs {
        starts.push(pc);
        for item in items {
            match item {
                Item::Insn(i) | Item::Jump(i, _) => pc += i.slots(),
                Item::Call(_) => pc += 1,
                Item::Label(l) => {
                    labels.insert(*l, pc);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(pc);
    for items in funcs {
        for item in items {
            let at = out.len() as i64;
            let insn = match item {
                Item::Insn(i) => *i,
                Item::Label(_) => continue,
                Item::Jump(i, l) => {
                    let rel = labels[l] as i64 - at - 1;
                    let mut i = *i;
                    match &mut i {
                        Instruction::Jump { off, .. } | Instruction::Ja { off } => {
                            // Generated blocks stay far below 32767 slots.
                            *off = i16::try_from(rel).expect("jump fits in 16 bits")
                        }
                        Instruction::JaLong { imm } => *imm = rel as i32,
                        _ => unreachable!("only jumps carry labels"),
                    }
                    i
                }
                Item::Call(func) => Instruction::Call {
                    kind: CallKind::Local,
                    imm: (starts[*func] as i64 - at - 1) as i32,
                },
            };
            out.extend_from_slice(insn.encode().as_slice());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_program;

    #[test]
    fn deterministic() {
        let cfg = GenConfig::default();
        assert_eq!(program(7, &cfg), program(7, &cfg));
        assert_ne!(program(7, &cfg), program(8, &cfg));
    }

    #[test]
    fn programs_decode_and_are_well_formed() {
        for seed in 0..2000 {
            let cfg = GenConfig::random(seed);
            let p = program(seed, &cfg);
            let insns = decode_program(&p).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            for l in &insns {
                if let Some(off) = l.insn.branch_offset() {
                    // Backward only to close a counted loop.
                    assert!(
                        off >= 0
                            || matches!(
                                l.insn,
                                Instruction::Jump {
                                    cond: JmpCond::Ne,
                                    src: Source::Imm(0),
                                    ..
                                }
                            ),
                        "seed {seed}: backward jump at {}",
                        l.pc
                    );
                }
                match l.insn {
                    Instruction::Load { src, off, size, .. } if src == Reg::R1 => {
                        assert!(off >= 0 && off as usize + size.bytes() <= cfg.mem_len)
                    }
                    Instruction::Load { src, off, size, .. } if src == Reg::R10 => {
                        assert!(off < 0 && off as i64 % size.bytes() as i64 == 0)
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn extreme_configs_are_well_formed() {
        let base = GenConfig::default();
        let configs = [
            GenConfig {
                insns: 0,
                ..base.clone()
            },
            GenConfig {
                loops: true,
                ..base.clone()
            },
            GenConfig {
                loops: true,
                mem_len: 0,
                atomics: false,
                acquire_release: false,
                ..base.clone()
            },
            GenConfig {
                insns: 100_000,
                max_depth: 8,
                ..base.clone()
            },
            GenConfig {
                mem_len: 0,
                stack_bytes: 0,
                ..base.clone()
            },
            GenConfig {
                mem_len: 1,
                stack_bytes: 13,
                ..base.clone()
            },
            GenConfig {
                mem_len: 100_000,
                ..base.clone()
            },
            GenConfig {
                atomics: false,
                acquire_release: false,
                calls: false,
                fold: false,
                ..base.clone()
            },
        ];
        for cfg in &configs {
            for seed in 0..20 {
                let p = program(seed, cfg);
                decode_program(&p).unwrap_or_else(|e| panic!("{cfg:?} seed {seed}: {e}"));
            }
        }
    }

    #[test]
    fn rng_below_is_in_range() {
        let mut r = Rng::new(1);
        for n in 1..200 {
            assert!(r.below(n) < n);
        }
    }
}
