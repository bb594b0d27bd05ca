//! Code generation: one pass over the pre-decoded ops, then the cold stubs
//! (error exits, counted jump edges, trampoline result handling) after them.
//!
//! Register use:
//! - eBPF r0-r10 live in rax, rdi, rsi, rdx, rcx, r8, rbx, r13, r14, r15,
//!   rbp (as in the kernel's JIT, so r10 is rbp and frame accesses are
//!   `[rbp + off]`);
//! - r12 holds the run context ([`super::Ctx`]), r9 the interpreter's
//!   instruction count (`count`), r10 and r11 are scratch.
//!
//! Native frames mirror eBPF frames: a bpf-to-bpf call is a native `call`
//! with r6-r9 pushed before it, `exit` in a subprogram is `ret`. Body code
//! always runs with rsp = 8 (mod 16), as right after a call, so calls into
//! Rust made one level down are aligned.

// dynasm's macros pass dynamic register operands through `.into()`.
#![allow(clippy::useless_conversion)]

use super::encode::{self, Mem, Width};
use super::values::{CountedLoop, ExitKind, Proofs};
use super::{ctx_off, Ctx, TEntry, ST_BUDGET, ST_DEPTH, ST_OOB, ST_STOP, TR_LOOP};
use crate::program::{Kind, Op, FRAME_SIZE};
use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};

type Asm = VecAssembler<X64Relocation>;

const RAX: u8 = 0;
const RCX: u8 = 1;
const RDX: u8 = 2;
const RBX: u8 = 3;
const RBP: u8 = 5;
const RSI: u8 = 6;
const RDI: u8 = 7;
const R8: u8 = 8;
const R13: u8 = 13;
const R14: u8 = 14;
const R10: u8 = 10;
const R11: u8 = 11;
const R15: u8 = 15;

/// x86-64 register of each eBPF register.
const MAP: [u8; 11] = [RAX, RDI, RSI, RDX, RCX, R8, RBX, R13, R14, R15, RBP];

const FRAME: i32 = FRAME_SIZE as i32;

macro_rules! asm {
    ($a:expr; $($t:tt)*) => {
        dynasm!($a ; .arch x64 ; $($t)*)
    };
}

/// Offsets of the context fields the code reads and writes.
const REGS: i32 = ctx_off::REGS;
const COUNT: i32 = ctx_off::COUNT;
const STACK_TOP: i32 = ctx_off::STACK_TOP;
const STACK_LIMIT: i32 = ctx_off::STACK_LIMIT;
const STACK_LAST: i32 = ctx_off::STACK_LAST;
const MIN_FP: i32 = ctx_off::MIN_FP;
const RD: i32 = ctx_off::RD;
const RD_END: i32 = ctx_off::RD_END;
const WR: i32 = ctx_off::WR;
const WR_END: i32 = ctx_off::WR_END;
const PKT_ADDR: i32 = ctx_off::PKT_ADDR;
const PKT_LEN: i32 = ctx_off::PKT_LEN;
const SCRATCH: i32 = ctx_off::SCRATCH;
const HOT_RD: i32 = ctx_off::HOT_RD;
const HOT_WR: i32 = ctx_off::HOT_WR;
const SAVED_RSP: i32 = ctx_off::SAVED_RSP;
const ERR_PC: i32 = ctx_off::ERR_PC;
const ERR_ADDR: i32 = ctx_off::ERR_ADDR;
const ERR_SIZE: i32 = ctx_off::ERR_SIZE;
const ERR_WRITE: i32 = ctx_off::ERR_WRITE;
const L_TARGET: i32 = ctx_off::L_TARGET;
const L_ENTRY: i32 = ctx_off::L_ENTRY;
const L_CTX: i32 = ctx_off::L_CTX;
const L_ITERS: i32 = ctx_off::L_ITERS;
const L_RET: i32 = ctx_off::L_RET;
const LOOP_BASE: i32 = ctx_off::LOOP_BASE;

const TENTRY: i32 = std::mem::size_of::<TEntry>() as i32;
const _: () = assert!(std::mem::size_of::<TEntry>() == 64);
const _: () = assert!(std::mem::offset_of!(Ctx, regs) == 0);

/// The code of one program and where each op's code starts.
pub(super) struct Compiled {
    pub code: Vec<u8>,
    /// Accesses through computed pointers proved inside the frame, and
    /// inside the input (no run-time check).
    pub proved: usize,
    pub proved_input: usize,
    /// Loops with an uncounted copy.
    pub uncounted: usize,
    /// Exit regions moved out of line (see [`Tail`]).
    pub exits_moved: usize,
    /// Offset of the code of op `i` (slot index); the entry point is 0.
    pub offsets: Vec<u32>,
}

/// Condition codes of the conditional jumps.
#[derive(Clone, Copy)]
enum Cc {
    E,
    Ne,
    A,
    Ae,
    B,
    Be,
    G,
    Ge,
    L,
    Le,
}

impl Cc {
    /// The condition that holds where this one does not.
    fn inverse(self) -> Cc {
        match self {
            Cc::E => Cc::Ne,
            Cc::Ne => Cc::E,
            Cc::A => Cc::Be,
            Cc::Be => Cc::A,
            Cc::Ae => Cc::B,
            Cc::B => Cc::Ae,
            Cc::G => Cc::Le,
            Cc::Le => Cc::G,
            Cc::Ge => Cc::L,
            Cc::L => Cc::Ge,
        }
    }
}

/// Out-of-line code, emitted after the body.
enum Cold {
    Budget {
        label: DynamicLabel,
        pc: usize,
    },
    Depth {
        label: DynamicLabel,
        pc: usize,
    },
    Oob {
        label: DynamicLabel,
        pc: usize,
        k: usize,
        write: bool,
    },
    /// A helper trampoline that did not simply return: stop or run a loop.
    HelperResult {
        label: DynamicLabel,
        resume: DynamicLabel,
    },
    /// An inline atomic add whose fast path failed: the trampoline names
    /// the fault (or performs the access).
    AtomicSlow {
        label: DynamicLabel,
        pc: usize,
        resume: DynamicLabel,
    },
    /// An access that missed its inline test: the other quick test, the
    /// full check, then back.
    Check {
        label: DynamicLabel,
        check: DynamicLabel,
        fail: DynamicLabel,
        resume: DynamicLabel,
        k: usize,
        write: bool,
        stack_first: bool,
    },
    /// A loop latch whose budget check fired: the jump's test again.
    BackEdge {
        label: DynamicLabel,
        op: Op,
        s: u8,
        cc: Cc,
        delta: i32,
        budget: DynamicLabel,
        resume: DynamicLabel,
    },
    /// A call into a frame below every frame used so far.
    Deeper {
        label: DynamicLabel,
        depth: DynamicLabel,
        resume: DynamicLabel,
    },
    /// A taken jump that moves the count on the way.
    Edge {
        label: DynamicLabel,
        delta: i32,
        target: DynamicLabel,
    },
    /// A division by a register holding 0, or (signed) -1.
    DivSpecial {
        zero: DynamicLabel,
        minus_one: Option<DynamicLabel>,
        resume: DynamicLabel,
        d: u8,
        w64: bool,
        modulo: bool,
    },
    /// A jump out of counted loop `lp`'s uncounted copy: the count it
    /// skipped, then the jump's own move of it.
    FastExit {
        label: DynamicLabel,
        lp: usize,
        pc: usize,
        delta: i32,
        target: DynamicLabel,
    },
    /// LD_ABS/LD_IND outside the packet: the program ends with r0 = 0.
    PacketMiss {
        label: DynamicLabel,
        delta: i32,
    },
}

struct Emitter<'a> {
    a: Asm,
    ops: &'a [Op],
    labels: Vec<DynamicLabel>,
    cold: Vec<Cold>,
    /// Bounds-check routines by [write][log2 size].
    check: [[DynamicLabel; 4]; 2],
    /// Out-of-bounds exits by [write][log2 size].
    oob: [[DynamicLabel; 4]; 2],
    /// The constant-blinding key, when blinding.
    blind: Option<u32>,
    /// Forward conditional jumps that leave a loop (jump past a back edge
    /// whose target is not after them).
    loop_exit: &'a [bool],
    /// The count's excess at each op (see [`excess`]).
    excess: &'a [i32],
    /// Which accesses may reach the stack, and which provably stay in the
    /// current frame or the input.
    proofs: &'a Proofs,
    /// The jumps (in emission order) the previous pass found within an
    /// 8-bit displacement of their target.
    short: &'a [bool],
    /// This pass's label jumps: start, length, target.
    jumps: Vec<(u32, u8, DynamicLabel)>,
    /// Per counted loop ([`Proofs::counted`]): the entry of its uncounted
    /// copy, and where its counted code resumes after the head's budget
    /// test (its back edge's target).
    fast_entry: Vec<DynamicLabel>,
    body: Vec<DynamicLabel>,
    /// Where the uncounted copy goes round again (past the entry's saving
    /// of the counter).
    fast_body: Vec<DynamicLabel>,
    /// The counted loop whose uncounted copy is being emitted.
    fast: Option<usize>,
    /// Where each op's code goes (see [`Tail`]).
    tail: &'a [Tail],
    loop_head: &'a [bool],
    /// This pass lays the code out as it will run (the first only
    /// measures it).
    last_pass: bool,
    /// Exit regions still to emit: their label and ops.
    moved: Vec<(DynamicLabel, std::ops::Range<usize>)>,
}

/// Loop heads (the ops jumps back reach) and the bodies of uncounted
/// copies start a 64-byte line: with the loop's first instructions at the
/// line's start, a pass fetches the fewest lines, and a small loop sits in
/// one. (A counted loop's head begins with its entry test, so its counted
/// body starts a few bytes in; its uncounted copy is the one that runs
/// when the budget allows.) Measured on the bench workloads: 5-13% faster
/// loops (switch, memread, fnv, call), none slower. Padding runs when the
/// op before falls into the head: up to six NOPs each time.
const LOOP_ALIGN: usize = 64;

/// The scale of `lea d, [a + a * 2^scale]` that multiplies by `m` (3, 5
/// or 9): one cycle where `imul` takes three.
fn lea_scale(m: u64) -> Option<u8> {
    match m {
        3 => Some(1),
        5 => Some(2),
        9 => Some(3),
        _ => None,
    }
}

/// Whether an immediate has a sign-extended 8-bit encoding.
fn fits8(i: i32) -> bool {
    i as i8 as i32 == i
}

fn log2(size: usize) -> usize {
    size.trailing_zeros() as usize
}

/// Addresses of the Rust functions the code calls:
/// `extern "C" fn(*mut Ctx, pc: u64) -> u64`.
pub(super) struct Tramps {
    pub helper: usize,
    pub atomic: usize,
}

/// Compiles `ops`; with `blind`, every immediate operand is blinded with
/// that key (see [`super::JitOptions::blinding`]).
///
/// Two passes: the first emits every jump to a label with a 32-bit
/// displacement (but backward ones that fit 8 bits), then [`Pass::relax`]
/// works out from that layout which jumps reach their targets with 8 bits
/// once the others shrink, and the second pass emits those short. Only the
/// jumps and the padding before loop heads change size between the
/// passes, and the first pads as much as any head could need, so no jump
/// is further from its target in the second pass than computed. (dynasm
/// does not relax jumps; unrelaxed code is about a third larger, which
/// costs instruction fetch on large programs.)
pub(super) fn compile(
    ops: &[Op],
    entries: &[usize],
    proofs: Proofs,
    tramps: &Tramps,
    blind: Option<u32>,
) -> Compiled {
    let plan = Plan::new(ops, entries, &proofs.counted);
    let first = emit(ops, &plan, &proofs, tramps, blind, &[]);
    let short = first.relax();
    // The first pass pads loop heads fully; the second aligns them.
    if short.iter().all(|&s| !s) && !plan.loop_head.contains(&true) {
        return first.compiled;
    }
    // A loop head means a jump back, so `short` is not empty: the second
    // pass knows itself by that (`Emitter::last_pass`).
    debug_assert!(!short.is_empty());
    match emit(ops, &plan, &proofs, tramps, blind, &short).compiled_checked() {
        Some(second) => second,
        // Unreachable by the argument above; the long form is always right.
        None => {
            debug_assert!(false, "a jump given 8 bits did not reach");
            first.compiled
        }
    }
}

/// What both passes need, computed once.
struct Plan {
    /// The count's excess at each op (see [`excess`]).
    excess: Vec<i32>,
    /// Forward conditional jumps that leave a loop.
    loop_exit: Vec<bool>,
    /// Ops control reaches other than from the op before.
    entered: Vec<bool>,
    /// Per op: where its code sits (see [`exit_tails`]).
    tail: Vec<Tail>,
    /// Ops a jump back reaches: loop heads, aligned (see [`LOOP_ALIGN`]).
    loop_head: Vec<bool>,
}

/// Where an op's code sits in the emitted order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tail {
    /// In program order.
    InPlace,
    /// A forward conditional jump to `t` over a region that ends in
    /// `exit`: its test is inverted to leave for the region, which goes
    /// after the body, and its taken path falls into `t`.
    Over(usize),
    /// In such a region.
    Moved,
}

impl Plan {
    fn new(ops: &[Op], entries: &[usize], counted: &[CountedLoop]) -> Plan {
        let n = ops.len();
        // Where the count must be exact (excess 0): function entries, loop
        // heads, and calls (helpers and callees read it).
        let mut sync = vec![false; n];
        let mut loop_head = vec![false; n];
        for &t in entries.iter().chain(std::iter::once(&0)) {
            if t < n {
                sync[t] = true;
            }
        }
        for (pc, op) in ops.iter().enumerate() {
            if (op.kind == Kind::Ja || is_jump(op.kind)) && op.hi() > 0 {
                let t = op.aux as usize;
                sync[t] = true;
                loop_head[t] = true;
            }
            if matches!(op.kind, Kind::Call | Kind::CallReg | Kind::CallLocal) {
                sync[pc] = true;
            }
            if op.kind == Kind::CallLocal {
                sync[op.aux as usize] = true;
            }
        }
        let loop_exit = loop_exits(ops);
        Plan {
            loop_head,
            excess: excess(ops, &sync, &loop_exit),
            tail: exit_tails(ops, entries, counted, &loop_exit),
            loop_exit,
            entered: entered(ops, entries),
        }
    }
}

/// The forward conditional jumps whose fall-through path ends in `exit`
/// (`p: if .. goto t; ..; exit; t:`), as a loop's latch placed before its
/// body is (`goto t` is the loop going round): the exit region moves out
/// of line, so the path that goes on falls through instead of jumping
/// over it. An exit runs once per call, so the jump to the region costs
/// next to nothing.
/// Left in place: loop exits (their taken path is the rare one), regions
/// holding a function entry, and anything counted loops span (their
/// uncounted copies follow program order).
fn exit_tails(
    ops: &[Op],
    entries: &[usize],
    counted: &[CountedLoop],
    loop_exit: &[bool],
) -> Vec<Tail> {
    let n = ops.len();
    let mut tail = vec![Tail::InPlace; n];
    let mut pc = 0;
    while pc < n {
        let op = &ops[pc];
        let t = op.aux as usize;
        let fits = is_jump(op.kind)
            && op.hi() <= 0
            && t > pc + 1
            && t < n
            && !loop_exit[pc]
            && ops[t - 1].kind == Kind::Exit
            && !entries.iter().any(|&e| e > pc && e < t)
            && !counted.iter().any(|c| c.head <= t && pc <= c.latch);
        if fits {
            tail[pc] = Tail::Over(t);
            tail[pc + 1..t].fill(Tail::Moved);
            pc = t;
        } else {
            pc += 1;
        }
    }
    tail
}

/// One pass's code, with where its label jumps went.
struct Pass {
    compiled: Compiled,
    /// Per relaxable jump: where its code starts, how long it is, and its
    /// target's offset.
    jumps: Vec<(u32, u8, u32)>,
    /// The assembler failed (a jump given 8 bits that needed more).
    failed: bool,
}

impl Pass {
    /// Which jumps reach their target with an 8-bit displacement
    /// (measured from the end of the 2-byte short form) when every jump
    /// found short so far is short. Starts from all long and only ever
    /// shortens jumps, which only brings others nearer, until nothing
    /// changes.
    fn relax(&self) -> Vec<bool> {
        let n = self.jumps.len();
        let starts: Vec<u32> = self.jumps.iter().map(|j| j.0).collect();
        let mut short = vec![false; n];
        // saved[k]: bytes the short jumps among the first k save.
        let mut saved = vec![0u32; n + 1];
        loop {
            for (k, &(_, len, _)) in self.jumps.iter().enumerate() {
                let gain = if short[k] { u32::from(len) - 2 } else { 0 };
                saved[k + 1] = saved[k] + gain;
            }
            // An offset of this pass, in the next one.
            let moved = |x: u32| x - saved[starts.partition_point(|&s| s < x)];
            let mut changed = false;
            for (k, &(start, _, target)) in self.jumps.iter().enumerate() {
                if short[k] {
                    continue;
                }
                let disp = i64::from(moved(target)) - (i64::from(moved(start)) + 2);
                if (-128..=127).contains(&disp) {
                    short[k] = true;
                    changed = true;
                }
            }
            if !changed {
                return short;
            }
        }
    }

    fn compiled_checked(self) -> Option<Compiled> {
        (!self.failed).then_some(self.compiled)
    }
}

fn emit(
    ops: &[Op],
    plan: &Plan,
    proofs: &Proofs,
    tramps: &Tramps,
    blind: Option<u32>,
    short: &[bool],
) -> Pass {
    let mut a = Asm::new(0);
    let labels = (0..ops.len()).map(|_| a.new_dynamic_label()).collect();
    let new4 = |a: &mut Asm| {
        [
            a.new_dynamic_label(),
            a.new_dynamic_label(),
            a.new_dynamic_label(),
            a.new_dynamic_label(),
        ]
    };
    let check = [new4(&mut a), new4(&mut a)];
    let oob = [new4(&mut a), new4(&mut a)];
    let mut e = Emitter {
        a,
        ops,
        labels,
        cold: Vec::new(),
        check,
        oob,
        blind,
        excess: &plan.excess,
        loop_exit: &plan.loop_exit,
        proofs,
        short,
        jumps: Vec::new(),
        fast_entry: Vec::new(),
        body: Vec::new(),
        fast_body: Vec::new(),
        fast: None,
        tail: &plan.tail,
        loop_head: &plan.loop_head,
        last_pass: !short.is_empty(),
        moved: Vec::new(),
    };
    for _ in &proofs.counted {
        let (f, b, fb) = (e.label(), e.label(), e.label());
        e.fast_entry.push(f);
        e.body.push(b);
        e.fast_body.push(fb);
    }
    let entered = &plan.entered;
    e.prologue();
    let mut offsets = vec![0u32; ops.len()];
    let in_place: Vec<usize> = (0..ops.len())
        .filter(|&pc| plan.tail[pc] != Tail::Moved)
        .collect();
    e.run_of_ops(&in_place, &mut offsets, entered);
    // The exit regions jumped to by inverted tests, in program order.
    for (r, range) in std::mem::take(&mut e.moved) {
        asm!(e.a; =>r);
        let pcs: Vec<usize> = range.collect();
        e.run_of_ops(&pcs, &mut offsets, entered);
    }
    for lp in 0..proofs.counted.len() {
        e.uncounted_loop(lp, entered);
    }
    e.cold();
    e.shared(tramps);
    let proved = proofs.in_frame.iter().filter(|&&p| p).count();
    let proved_input = proofs.in_input.iter().filter(|&&p| p).count();
    let uncounted = proofs.counted.len();
    let exits_moved = plan
        .tail
        .iter()
        .filter(|t| matches!(t, Tail::Over(_)))
        .count();
    let jumps = e
        .jumps
        .iter()
        .map(|&(start, len, l)| {
            let target =
                e.a.labels()
                    .resolve_dynamic(l)
                    .expect("every label the JIT uses is defined");
            (start, len, target.0 as u32)
        })
        .collect();
    let (code, failed) = match e.a.finalize() {
        Ok(code) => (code, false),
        Err(_) => (Vec::new(), true),
    };
    Pass {
        compiled: Compiled {
            code,
            offsets,
            proved,
            proved_input,
            uncounted,
            exits_moved,
        },
        jumps,
        failed,
    }
}

impl Emitter<'_> {
    /// Emits `pcs` (ascending; where one is not the op after the last, the
    /// op before it does not fall through) each at its label, after the
    /// count move the way from the op before needs. Nothing folds across
    /// a gap: jumps fold into nothing.
    fn run_of_ops(&mut self, pcs: &[usize], offsets: &mut [u32], entered: &[bool]) {
        // Ops folded into an earlier op's code still to pass.
        let mut folded = 0;
        for &pc in pcs {
            let l = self.labels[pc];
            if falls_into(self.ops, pc) && self.excess[pc] != self.excess[pc - 1] {
                let adj = self.excess[pc] - self.excess[pc - 1];
                self.lea_count(adj);
            }
            if self.loop_head[pc] {
                self.align_loop();
            }
            asm!(self.a; =>l);
            offsets[pc] = self.a.offset().0 as u32;
            if let Some(lp) = self.proofs.counted.iter().position(|c| c.head == pc) {
                self.loop_head(lp);
            }
            self.op_or_fold(pc, &mut folded, entered);
        }
    }

    /// Emits op `pc` with the ops after it it folds with, or nothing if an
    /// earlier op folded it (`folded`: how many of those are still to pass).
    fn op_or_fold(&mut self, pc: usize, folded: &mut usize, entered: &[bool]) {
        if *folded > 0 {
            *folded -= 1;
            return;
        }
        *folded = self.fuse(pc, entered);
        if *folded == 0 {
            self.op(pc);
        }
    }

    /// Pads with NOPs to the next multiple of [`LOOP_ALIGN`] bytes; the
    /// first pass pads as much as any offset could need, so that no jump
    /// is further from its target in the second (see [`Pass::relax`]).
    fn align_loop(&mut self) {
        let off = self.a.offset().0;
        let mut pad = if self.last_pass {
            (LOOP_ALIGN - off % LOOP_ALIGN) % LOOP_ALIGN
        } else {
            LOOP_ALIGN - 1
        };
        while pad > 0 {
            let n = pad.min(encode::NOP_MAX);
            self.a.extend(encode::nop(n).iter().copied());
            pad -= n;
        }
    }

    /// Appends an instruction encoded by [`encode`].
    fn put(&mut self, code: encode::Bytes) {
        self.a.extend(code.as_slice().iter().copied());
    }

    fn label(&mut self) -> DynamicLabel {
        self.a.new_dynamic_label()
    }

    /// `extern "sysv64" fn(*mut Ctx) -> u64`: saves the callee-saved
    /// registers, loads the eBPF registers from the context, runs op 0.
    fn prologue(&mut self) {
        asm!(self.a
            ; push rbx
            ; push rbp
            ; push r12
            ; push r13
            ; push r14
            ; push r15
            ; mov r12, rdi
            ; mov [r12 + SAVED_RSP], rsp
            ; mov rbp, [r12 + REGS + 80]
            ; mov r9, [r12 + COUNT]
        );
        self.reload();
    }

    /// Stores eBPF r0-r10 and the count into the context.
    fn spill(&mut self) {
        for (i, &r) in MAP.iter().enumerate() {
            asm!(self.a; mov [r12 + REGS + 8 * i as i32], Rq(r));
        }
        asm!(self.a; mov [r12 + COUNT], r9);
    }

    /// Loads eBPF r0-r9 and the count from the context (r10 never changes
    /// in Rust, and rbp is callee-saved).
    fn reload(&mut self) {
        for (i, &r) in MAP.iter().enumerate().take(10) {
            asm!(self.a; mov Rq(r), [r12 + REGS + 8 * i as i32]);
        }
        asm!(self.a; mov r9, [r12 + COUNT]);
    }

    /// r9 += delta, flags set (for the budget's `jge`).
    fn add_count(&mut self, delta: i32) {
        if fits8(delta) {
            asm!(self.a; add r9, BYTE delta as i8);
        } else {
            asm!(self.a; add r9, delta);
        }
    }

    /// r9 += delta, flags kept.
    fn lea_count(&mut self, delta: i32) {
        if delta == 0 {
            return;
        }
        if fits8(delta) {
            // dynasm encodes a run-time displacement in 32 bits; this is
            // `lea r9, [r9 + disp8]`, four bytes instead of seven.
            self.a.extend([0x4d, 0x8d, 0x49, delta as i8 as u8]);
        } else {
            asm!(self.a; lea r9, [r9 + delta]);
        }
    }

    /// `cmp reg, imm8` (sign-extended), which dynasm does not pick for a
    /// run-time immediate: REX (W for 64 bits, B for r8-r15), 83 /7 ib.
    fn cmp_imm8(&mut self, reg: u8, imm: i8, w64: bool) {
        let rex = 0x40 | (w64 as u8) << 3 | (reg >> 3);
        if rex != 0x40 {
            self.a.push(rex);
        }
        self.a.extend([0x83, 0xf8 | (reg & 7), imm as u8]);
    }

    /// `jmp` (no condition) or `jcc` to a label, with an 8-bit
    /// displacement where it reaches: a target behind that is near, or
    /// one the previous pass found near (see [`compile`]).
    fn jump(&mut self, cc: Option<Cc>, l: DynamicLabel) {
        let start = self.a.offset().0;
        let near_behind = self
            .a
            .labels()
            .resolve_dynamic(l)
            .is_ok_and(|t| t.0 as i64 - (start as i64 + 2) >= -128);
        let short = near_behind || self.short.get(self.jumps.len()).copied().unwrap_or(false);
        // dynasm takes mnemonics as written: one arm per condition.
        macro_rules! to {
            ($m:ident) => {
                if short {
                    asm!(self.a; $m BYTE =>l)
                } else {
                    asm!(self.a; $m =>l)
                }
            };
        }
        match cc {
            None => to!(jmp),
            Some(Cc::E) => to!(je),
            Some(Cc::Ne) => to!(jne),
            Some(Cc::A) => to!(ja),
            Some(Cc::Ae) => to!(jae),
            Some(Cc::B) => to!(jb),
            Some(Cc::Be) => to!(jbe),
            Some(Cc::G) => to!(jg),
            Some(Cc::Ge) => to!(jge),
            Some(Cc::L) => to!(jl),
            Some(Cc::Le) => to!(jle),
        }
        let len = (self.a.offset().0 - start) as u8;
        self.jumps.push((start as u32, len, l));
    }

    fn budget_stub(&mut self, pc: usize) -> DynamicLabel {
        let label = self.label();
        self.cold.push(Cold::Budget { label, pc });
        label
    }

    fn oob_stub(&mut self, pc: usize, size: usize, write: bool) -> DynamicLabel {
        let label = self.label();
        self.cold.push(Cold::Oob {
            label,
            pc,
            k: log2(size),
            write,
        });
        label
    }

    /// The address of `size` bytes at `base + off`, as (register,
    /// displacement): as it stands when the access provably stays in the
    /// current frame or the input ([`super::values`]); else in r10, checked,
    /// leaving to the out-of-bounds exit of `pc` when no region holds it.
    /// Two tests inline, the other out of line, then the full check: the
    /// stack (from this frame up: rbp - 512 .. top) and the entry the last
    /// full check of this direction hit, whichever the base register more
    /// likely points into first.
    fn address(&mut self, base: u8, off: i32, size: usize, write: bool, pc: usize) -> (u8, i32) {
        if self.proofs.in_frame[pc] || self.proofs.in_input[pc] {
            return (base, off);
        }
        self.checked(base, off, size, write, pc);
        (R10, 0)
    }

    /// r10 = `base + off`, checked as [`Self::address`] does.
    fn checked(&mut self, base: u8, off: i32, size: usize, write: bool, pc: usize) {
        asm!(self.a; lea r10, [Rq(base) + off]);
        let k = log2(size);
        let check = self.check[write as usize][k];
        let fail = self.oob_stub(pc, size, write);
        let label = self.label();
        let resume = self.label();
        let stack_first = self.proofs.stack_likely[pc];
        if stack_first {
            self.stack_test(k, label);
        } else {
            self.hot_test(k, write, label);
        }
        asm!(self.a; =>resume);
        self.cold.push(Cold::Check {
            label,
            check,
            fail,
            resume,
            k,
            write,
            stack_first,
        });
    }

    /// Jumps to `miss` unless r10 .. r10 + 2^k is in the stack's live frames.
    fn stack_test(&mut self, k: usize, miss: DynamicLabel) {
        asm!(self.a
            ; lea r11, [rbp - FRAME]
            ; cmp r10, r11
        );
        self.jump(Some(Cc::B), miss);
        asm!(self.a; cmp r10, [r12 + STACK_LAST + 8 * k as i32]);
        self.jump(Some(Cc::A), miss);
    }

    /// Jumps to `miss` unless r10 .. r10 + 2^k is in the hot entry.
    fn hot_test(&mut self, k: usize, write: bool, miss: DynamicLabel) {
        let hot = if write { HOT_WR } else { HOT_RD };
        asm!(self.a; cmp r10, [r12 + hot + 8 * k as i32]);
        self.jump(Some(Cc::B), miss);
        asm!(self.a; cmp r10, [r12 + hot + 32 + 8 * k as i32]);
        self.jump(Some(Cc::A), miss);
    }

    /// Emits ops `pc..` as one x86 instruction where a pattern allows
    /// (x86 adds in its addressing; eBPF needs three ops), and returns how
    /// many ops after `pc` that code also covers (0: none matched). Only
    /// straight-line ops that nothing jumps into are folded.
    /// - `d = a; d += b; d = *(size *)(d + off)`, the access proved safe:
    ///   a load from `[a + b + off]`;
    /// - `d = a; d += b`: `lea d, [a + b]` (not with rbp and r13 both);
    /// - `d = a; d += c; d += b`: `lea d, [a + b + c]`;
    /// - `d = a; d += c`: `lea d, [a + c]`;
    /// - `i <<= k; d = a; d += c; d += i` (k = 1..3, an array index):
    ///   `lea d, [a + i * 2^k + c]` from i before its shift, then the shift
    ///   (off the address's path);
    /// - `d = a; d *= 3, 5 or 9` (or `d *= ..` alone): `lea d, [a + a * 2^k]`;
    /// - `t = y; t >>= 64 - k; y <<= k; y |= t` (or the shifts the other
    ///   way round): a rotate, `rol y, k`, t still computed.
    fn fuse(&mut self, pc: usize, entered: &[bool]) -> usize {
        use Kind::*;
        let ops = self.ops;
        let at = |i: usize| ops.get(pc + i).filter(|_| !entered[pc + i]);
        if let Some(n) = self.fuse_scaled(pc, &at) {
            return n;
        }
        let (Some(mov), Some(add)) = (ops.get(pc), at(1)) else {
            return 0;
        };
        if mov.kind != Mov64R || add.dst != mov.dst {
            return 0;
        }
        let d = MAP[mov.dst as usize % 11];
        let a = MAP[mov.src as usize % 11];
        let reg_add = |op: &Op| op.kind == Add64R && op.dst == mov.dst && op.src != mov.dst;
        // Immediates stay out of addressing when blinding.
        let imm_add = |op: &Op| self.blind.is_none() && op.kind == Add64I && op.dst == mov.dst;
        if reg_add(add) {
            let b = MAP[add.src as usize % 11];
            if let Some(load) = at(2) {
                let proved = self.proofs.in_frame[pc + 2] || self.proofs.in_input[pc + 2];
                if load.src == mov.dst && load.dst == mov.dst && proved {
                    let m = Mem::indexed(a, b, 0, load.aux);
                    let code = match load.kind {
                        LdxB => encode::load(d, Width::B, m),
                        LdxH => encode::load(d, Width::H, m),
                        LdxW => encode::load(d, Width::W, m),
                        LdxDW => encode::load(d, Width::Dw, m),
                        LdxSB => encode::load_signed(d, Width::B, m),
                        LdxSH => encode::load_signed(d, Width::H, m),
                        LdxSW => encode::load_signed(d, Width::W, m),
                        _ => return 0,
                    };
                    self.put(code);
                    return 2;
                }
            }
            // `lea d, [a + b]`: one instruction for two. rbp and r13 as the
            // base need a displacement, which makes a three-operand (slower)
            // `lea`, so they go in the index; two of them keep `mov; add`.
            let (base, index) = if a & 7 == 5 { (b, a) } else { (a, b) };
            if base & 7 == 5 {
                return 0;
            }
            self.put(encode::lea(d, Mem::indexed(base, index, 0, 0)));
            return 1;
        }
        if imm_add(add) {
            let c = add.imm as i32;
            if let Some(add2) = at(2) {
                if reg_add(add2) {
                    let b = MAP[add2.src as usize % 11];
                    self.fuse_lea(d, a, Some(b), c);
                    return 2;
                }
            }
            return self.fuse_lea(d, a, None, c);
        }
        0
    }

    /// The scaled-index, multiply and rotate patterns of [`Self::fuse`].
    fn fuse_scaled<'o>(
        &mut self,
        pc: usize,
        at: &impl Fn(usize) -> Option<&'o Op>,
    ) -> Option<usize> {
        use Kind::*;
        let first = self.ops[pc];
        let reg = |r: u8| MAP[r as usize % 11];
        // Scales and multipliers are not immediates an attacker picks
        // freely, but blinding keeps every constant out: no folding.
        if self.blind.is_some() {
            return None;
        }
        match first.kind {
            Lsh64I if (1..=3).contains(&first.imm) => {
                let (mov, add, add2) = (at(1)?, at(2)?, at(3)?);
                let (i, dst) = (first.dst, mov.dst);
                let fits = mov.kind == Mov64R
                    && dst != i
                    && mov.src != i
                    && add.kind == Add64I
                    && add.dst == dst
                    && add2.kind == Add64R
                    && add2.dst == dst
                    && add2.src == i;
                if !fits {
                    return None;
                }
                let m = Mem::indexed(reg(mov.src), reg(i), first.imm as u8, add.imm as i32);
                self.put(encode::lea(reg(dst), m));
                asm!(self.a; shl Rq(reg(i)), first.imm as i8);
                Some(3)
            }
            Mov64R => {
                let next = at(1)?;
                if next.dst != first.dst {
                    return None;
                }
                match next.kind {
                    Mul64I => {
                        let scale = lea_scale(next.imm)?;
                        let a = reg(first.src);
                        self.put(encode::lea(reg(first.dst), Mem::indexed(a, a, scale, 0)));
                        Some(1)
                    }
                    Rsh64I | Lsh64I => {
                        let (other, or) = (at(2)?, at(3)?);
                        let (t, y) = (first.dst, first.src);
                        let opposite = if next.kind == Rsh64I { Lsh64I } else { Rsh64I };
                        let fits = t != y
                            && other.kind == opposite
                            && other.dst == y
                            && (1..64).contains(&next.imm)
                            && next.imm + other.imm == 64
                            && or.kind == Or64R
                            && or.dst == y
                            && or.src == t;
                        if !fits {
                            return None;
                        }
                        let left = if next.kind == Lsh64I {
                            next.imm
                        } else {
                            other.imm
                        };
                        self.emit_op(pc, first, reg(y));
                        self.emit_op(pc + 1, *next, 0);
                        asm!(self.a; rol Rq(reg(y)), left as i8);
                        Some(3)
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// `lea d, [a + b + c]`; returns 1 (the ops covered after the first).
    fn fuse_lea(&mut self, d: u8, a: u8, b: Option<u8>, c: i32) -> usize {
        let m = match b {
            Some(b) => Mem::indexed(a, b, 0, c),
            None => Mem::at(a, c),
        };
        self.put(encode::lea(d, m));
        1
    }

    fn op(&mut self, pc: usize) {
        let op = self.ops[pc];
        if let Some(key) = self.blind {
            if self.blinded(pc, op, key) {
                return;
            }
        }
        self.emit_op(pc, op, MAP[op.src as usize % 11]);
    }

    /// Emits `op` with its immediate blinded, if it has one worth blinding:
    /// r11 = imm ^ key, r11 ^= key (both sign-extended 32-bit constants, so
    /// r11 ends up the sign-extended immediate), then the register form of
    /// the operation reading r11. Returns whether it did.
    fn blinded(&mut self, pc: usize, op: Op, key: u32) -> bool {
        use Kind::*;
        let k = key as i32;
        let masked = op.lo() ^ k;
        let d = MAP[op.dst as usize % 11];
        match op.kind {
            LdImm64 => {
                let k64 = (key as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                asm!(self.a
                    ; mov Rq(d), QWORD (op.imm ^ k64) as i64
                    ; mov r11, QWORD k64 as i64
                    ; xor Rq(d), r11
                );
                true
            }
            StB | StH | StW | StDW | FpStB | FpStH | FpStW | FpStDW => {
                let size = match op.kind {
                    StB | FpStB => 1,
                    StH | FpStH => 2,
                    StW | FpStW => 4,
                    _ => 8,
                };
                let fp = matches!(op.kind, FpStB | FpStH | FpStW | FpStDW);
                let (b, o) = if fp {
                    (RBP, op.aux)
                } else {
                    self.address(d, op.aux, size, true, pc)
                };
                asm!(self.a; mov r11, masked; xor r11, k);
                let width = match size {
                    1 => Width::B,
                    2 => Width::H,
                    4 => Width::W,
                    _ => Width::Dw,
                };
                self.put(encode::store(R11, width, Mem::at(b, o)));
                true
            }
            LdAbsB | LdAbsH | LdAbsW | LdIndB | LdIndH | LdIndW => {
                self.packet_load(pc, &op);
                true
            }
            kind => match register_form(kind) {
                Some(reg) => {
                    asm!(self.a; mov r11, masked; xor r11, k);
                    self.emit_op(pc, op.with_kind(reg), R11);
                    true
                }
                None => false,
            },
        }
    }

    /// Emits `op`, whose register operand (if any) is in `s`.
    fn emit_op(&mut self, pc: usize, op: Op, s: u8) {
        use Kind::*;
        let d = MAP[op.dst as usize % 11];
        // ALU immediates: the low 32 bits; the 64-bit forms sign-extend them,
        // as x86 does with imm32.
        let i = op.imm as i32;
        let off = op.aux;
        match op.kind {
            Add64I if fits8(i) => asm!(self.a; add Rq(d), BYTE i as i8),
            Add64I => asm!(self.a; add Rq(d), i),
            Sub64I if fits8(i) => asm!(self.a; sub Rq(d), BYTE i as i8),
            Sub64I => asm!(self.a; sub Rq(d), i),
            // Blinded code never gets here with an immediate.
            Mul64I if lea_scale(op.imm).is_some() => {
                let scale = lea_scale(op.imm).unwrap_or(0);
                self.put(encode::lea(d, Mem::indexed(d, d, scale, 0)));
            }
            Mul64I if fits8(i) => asm!(self.a; imul Rq(d), Rq(d), BYTE i as i8),
            Mul64I => asm!(self.a; imul Rq(d), Rq(d), i),
            Div64I => self.divmod(pc, d, None, i, true, false, false),
            SDiv64I => self.divmod(pc, d, None, i, true, true, false),
            Mod64I => self.divmod(pc, d, None, i, true, false, true),
            SMod64I => self.divmod(pc, d, None, i, true, true, true),
            Or64I if fits8(i) => asm!(self.a; or Rq(d), BYTE i as i8),
            Or64I => asm!(self.a; or Rq(d), i),
            And64I if fits8(i) => asm!(self.a; and Rq(d), BYTE i as i8),
            And64I => asm!(self.a; and Rq(d), i),
            Xor64I if fits8(i) => asm!(self.a; xor Rq(d), BYTE i as i8),
            Xor64I => asm!(self.a; xor Rq(d), i),
            // A non-negative immediate through the 32-bit form, which
            // zero-extends: the same value, a shorter encoding.
            Mov64I if i >= 0 => self.put(encode::mov_imm32(d, i as u32)),
            Mov64I => asm!(self.a; mov Rq(d), i),
            Lsh64I => self.shift_imm(Shift::Shl, d, i, true),
            Rsh64I => self.shift_imm(Shift::Shr, d, i, true),
            Arsh64I => self.shift_imm(Shift::Sar, d, i, true),
            Add64R => asm!(self.a; add Rq(d), Rq(s)),
            Sub64R => asm!(self.a; sub Rq(d), Rq(s)),
            Mul64R => asm!(self.a; imul Rq(d), Rq(s)),
            Div64R => self.divmod(pc, d, Some(s), 0, true, false, false),
            SDiv64R => self.divmod(pc, d, Some(s), 0, true, true, false),
            Mod64R => self.divmod(pc, d, Some(s), 0, true, false, true),
            SMod64R => self.divmod(pc, d, Some(s), 0, true, true, true),
            Or64R => asm!(self.a; or Rq(d), Rq(s)),
            And64R => asm!(self.a; and Rq(d), Rq(s)),
            Xor64R => asm!(self.a; xor Rq(d), Rq(s)),
            Mov64R => {
                if d != s {
                    asm!(self.a; mov Rq(d), Rq(s))
                }
            }
            Lsh64R => self.shift_reg(Shift::Shl, d, s, true),
            Rsh64R => self.shift_reg(Shift::Shr, d, s, true),
            Arsh64R => self.shift_reg(Shift::Sar, d, s, true),
            MovSx8_64 => asm!(self.a; movsx Rq(d), Rb(s)),
            MovSx16_64 => asm!(self.a; movsx Rq(d), Rw(s)),
            MovSx32_64 => asm!(self.a; movsxd Rq(d), Rd(s)),
            Add32I if fits8(i) => asm!(self.a; add Rd(d), BYTE i as i8),
            Add32I => asm!(self.a; add Rd(d), i),
            Sub32I if fits8(i) => asm!(self.a; sub Rd(d), BYTE i as i8),
            Sub32I => asm!(self.a; sub Rd(d), i),
            Mul32I if fits8(i) => asm!(self.a; imul Rd(d), Rd(d), BYTE i as i8),
            Mul32I => asm!(self.a; imul Rd(d), Rd(d), i),
            Div32I => self.divmod(pc, d, None, i, false, false, false),
            SDiv32I => self.divmod(pc, d, None, i, false, true, false),
            Mod32I => self.divmod(pc, d, None, i, false, false, true),
            SMod32I => self.divmod(pc, d, None, i, false, true, true),
            Or32I if fits8(i) => asm!(self.a; or Rd(d), BYTE i as i8),
            Or32I => asm!(self.a; or Rd(d), i),
            And32I if fits8(i) => asm!(self.a; and Rd(d), BYTE i as i8),
            And32I => asm!(self.a; and Rd(d), i),
            Xor32I if fits8(i) => asm!(self.a; xor Rd(d), BYTE i as i8),
            Xor32I => asm!(self.a; xor Rd(d), i),
            Mov32I => self.put(encode::mov_imm32(d, i as u32)),
            Lsh32I => self.shift_imm(Shift::Shl, d, i, false),
            Rsh32I => self.shift_imm(Shift::Shr, d, i, false),
            Arsh32I => self.shift_imm(Shift::Sar, d, i, false),
            Add32R => asm!(self.a; add Rd(d), Rd(s)),
            Sub32R => asm!(self.a; sub Rd(d), Rd(s)),
            Mul32R => asm!(self.a; imul Rd(d), Rd(s)),
            Div32R => self.divmod(pc, d, Some(s), 0, false, false, false),
            SDiv32R => self.divmod(pc, d, Some(s), 0, false, true, false),
            Mod32R => self.divmod(pc, d, Some(s), 0, false, false, true),
            SMod32R => self.divmod(pc, d, Some(s), 0, false, true, true),
            Or32R => asm!(self.a; or Rd(d), Rd(s)),
            And32R => asm!(self.a; and Rd(d), Rd(s)),
            Xor32R => asm!(self.a; xor Rd(d), Rd(s)),
            // A 32-bit move zero-extends, also onto itself.
            Mov32R => asm!(self.a; mov Rd(d), Rd(s)),
            Lsh32R => self.shift_reg(Shift::Shl, d, s, false),
            Rsh32R => self.shift_reg(Shift::Shr, d, s, false),
            Arsh32R => self.shift_reg(Shift::Sar, d, s, false),
            MovSx8_32 => asm!(self.a; movsx Rd(d), Rb(s)),
            MovSx16_32 => asm!(self.a; movsx Rd(d), Rw(s)),
            Neg64 => asm!(self.a; neg Rq(d)),
            Neg32 => asm!(self.a; neg Rd(d)),
            Le16 => asm!(self.a; movzx Rd(d), Rw(d)),
            Le32 => asm!(self.a; mov Rd(d), Rd(d)),
            Be16 => asm!(self.a; rol Rw(d), 8; movzx Rd(d), Rw(d)),
            Be32 => asm!(self.a; bswap Rd(d)),
            Be64 => asm!(self.a; bswap Rq(d)),
            Nop => {}
            LdImm64 => asm!(self.a; mov Rq(d), QWORD op.imm as i64),
            LdAbsB | LdAbsH | LdAbsW | LdIndB | LdIndH | LdIndW => self.packet_load(pc, &op),
            LdxB => {
                let (b, o) = self.address(s, off, 1, false, pc);
                self.put(encode::load(d, Width::B, Mem::at(b, o)));
            }
            LdxH => {
                let (b, o) = self.address(s, off, 2, false, pc);
                self.put(encode::load(d, Width::H, Mem::at(b, o)));
            }
            LdxW => {
                let (b, o) = self.address(s, off, 4, false, pc);
                self.put(encode::load(d, Width::W, Mem::at(b, o)));
            }
            LdxDW => {
                let (b, o) = self.address(s, off, 8, false, pc);
                self.put(encode::load(d, Width::Dw, Mem::at(b, o)));
            }
            LdxSB => {
                let (b, o) = self.address(s, off, 1, false, pc);
                self.put(encode::load_signed(d, Width::B, Mem::at(b, o)));
            }
            LdxSH => {
                let (b, o) = self.address(s, off, 2, false, pc);
                self.put(encode::load_signed(d, Width::H, Mem::at(b, o)));
            }
            LdxSW => {
                let (b, o) = self.address(s, off, 4, false, pc);
                self.put(encode::load_signed(d, Width::W, Mem::at(b, o)));
            }
            StB => {
                let (b, o) = self.address(d, off, 1, true, pc);
                self.put(encode::store_imm(i, Width::B, Mem::at(b, o)));
            }
            StH => {
                let (b, o) = self.address(d, off, 2, true, pc);
                self.put(encode::store_imm(i, Width::H, Mem::at(b, o)));
            }
            StW => {
                let (b, o) = self.address(d, off, 4, true, pc);
                self.put(encode::store_imm(i, Width::W, Mem::at(b, o)));
            }
            StDW => {
                let (b, o) = self.address(d, off, 8, true, pc);
                self.put(encode::store_imm(i, Width::Dw, Mem::at(b, o)));
            }
            StxB => {
                let (b, o) = self.address(d, off, 1, true, pc);
                self.put(encode::store(s, Width::B, Mem::at(b, o)));
            }
            StxH => {
                let (b, o) = self.address(d, off, 2, true, pc);
                self.put(encode::store(s, Width::H, Mem::at(b, o)));
            }
            StxW => {
                let (b, o) = self.address(d, off, 4, true, pc);
                self.put(encode::store(s, Width::W, Mem::at(b, o)));
            }
            StxDW => {
                let (b, o) = self.address(d, off, 8, true, pc);
                self.put(encode::store(s, Width::Dw, Mem::at(b, o)));
            }
            // Proved in-frame at decode time: rbp is the frame's top.
            FpLdxB => self.put(encode::load(d, Width::B, Mem::at(RBP, off))),
            FpLdxH => self.put(encode::load(d, Width::H, Mem::at(RBP, off))),
            FpLdxW => self.put(encode::load(d, Width::W, Mem::at(RBP, off))),
            FpLdxDW => self.put(encode::load(d, Width::Dw, Mem::at(RBP, off))),
            FpLdxSB => self.put(encode::load_signed(d, Width::B, Mem::at(RBP, off))),
            FpLdxSH => self.put(encode::load_signed(d, Width::H, Mem::at(RBP, off))),
            FpLdxSW => self.put(encode::load_signed(d, Width::W, Mem::at(RBP, off))),
            FpStB => self.put(encode::store_imm(i, Width::B, Mem::at(RBP, off))),
            FpStH => self.put(encode::store_imm(i, Width::H, Mem::at(RBP, off))),
            FpStW => self.put(encode::store_imm(i, Width::W, Mem::at(RBP, off))),
            FpStDW => self.put(encode::store_imm(i, Width::Dw, Mem::at(RBP, off))),
            FpStxB => self.put(encode::store(s, Width::B, Mem::at(RBP, off))),
            FpStxH => self.put(encode::store(s, Width::H, Mem::at(RBP, off))),
            FpStxW => self.put(encode::store(s, Width::W, Mem::at(RBP, off))),
            FpStxDW => self.put(encode::store(s, Width::Dw, Mem::at(RBP, off))),
            AtomicAdd64 => {
                // Inline when aligned and in bounds, like the interpreter;
                // otherwise the shared path reports the fault.
                let slow = self.label();
                let resume = self.label();
                let check = self.check[1][3];
                asm!(self.a
                    ; lea r10, [Rq(d) + off]
                    ; test r10b, 7
                    ; jnz =>slow
                    ; call =>check
                    ; jne =>slow
                    ; lock add QWORD [r10], Rq(s)
                    ; =>resume
                );
                self.cold.push(Cold::AtomicSlow {
                    label: slow,
                    pc,
                    resume,
                });
            }
            Atomic32 | Atomic64 | AtomicLoadB | AtomicLoadH | AtomicLoadW | AtomicLoadDW
            | AtomicStoreB | AtomicStoreH | AtomicStoreW | AtomicStoreDW => {
                asm!(self.a
                    ; mov r10d, pc as i32
                    ; call ->atomic_stub
                    ; test r10, r10
                    ; jnz ->stop
                );
            }
            Ja => self.edge(pc, &op, None),
            Call | CallReg => {
                let label = self.label();
                let resume = self.label();
                asm!(self.a
                    ; mov r10d, pc as i32
                    ; call ->helper_stub
                    ; test r10, r10
                );
                self.jump(Some(Cc::Ne), label);
                asm!(self.a; =>resume);
                self.cold.push(Cold::HelperResult { label, resume });
            }
            CallLocal => {
                let depth = self.label();
                self.cold.push(Cold::Depth { label: depth, pc });
                let budget = self.budget_stub(pc);
                let target = self.labels[op.aux as usize];
                // A frame deeper than any before: out of line, the depth
                // check and the new lowest frame (the clearing after the run
                // reaches it). Any other call is shallower than one that
                // passed the check.
                let deeper = self.label();
                let back = self.label();
                self.cold.push(Cold::Deeper {
                    label: deeper,
                    depth,
                    resume: back,
                });
                asm!(self.a; cmp rbp, [r12 + MIN_FP]);
                self.jump(Some(Cc::Be), deeper);
                asm!(self.a; =>back);
                self.add_count(op.hi());
                self.jump(Some(Cc::Ge), budget);
                // 8 bytes to keep rsp = 8 (mod 16) in the callee.
                asm!(self.a; sub rsp, 8);
                // r6-r9 of the caller, unless the callee leaves them be
                // (which keeps the alignment: four pushes).
                let save = !self.proofs.keeps_r6_r9[pc];
                if save {
                    asm!(self.a; push rbx; push r13; push r14; push r15);
                }
                asm!(self.a
                    ; sub rbp, FRAME
                    ; call =>target
                    ; add rbp, FRAME
                );
                if save {
                    asm!(self.a; pop r15; pop r14; pop r13; pop rbx);
                }
                asm!(self.a
                    ; add rsp, 8
                    ; sub r9, op.lo()
                );
            }
            Exit => {
                // Returns to the caller's frame, or ends the run at depth 0
                // (where the function it is in settles which);
                // r10 names this exit for a bpf_loop budget check.
                asm!(self.a; add r9, op.imm as i32 - self.excess[pc]);
                match self.proofs.exits[pc] {
                    ExitKind::Run => asm!(self.a; jmp ->exit_ok),
                    ExitKind::Return => asm!(self.a; mov r10d, pc as i32; ret),
                    ExitKind::Either => asm!(self.a
                        ; cmp rbp, [r12 + STACK_TOP]
                        ; je ->exit_ok
                        ; mov r10d, pc as i32
                        ; ret
                    ),
                }
            }
            Unreachable => {
                // LDDW second slots fall through to nothing; the sentinel
                // after the program is never reached.
                if pc + 1 == self.ops.len() {
                    asm!(self.a; ud2);
                }
            }
            k => {
                let cc = jump_info(k).expect("every other kind is a jump").0;
                let cc = cc.unwrap_or(Cc::Ne);
                if let Some(lp) = self.fast {
                    self.uncounted_jump(lp, pc, &op, s, cc);
                    return;
                }
                if op.hi() > 0 {
                    self.back_edge(pc, &op, s, cc);
                } else if let Tail::Over(t) = self.tail[pc] {
                    // Out to the exit region; the taken path falls into t.
                    let r = self.label();
                    self.compare(&op, s);
                    self.jump(Some(cc.inverse()), r);
                    self.lea_count(op.hi() + self.excess[t] - self.excess[pc]);
                    self.moved.push((r, pc + 1..t));
                } else {
                    self.compare(&op, s);
                    self.edge(pc, &op, Some(cc));
                }
            }
        }
    }

    /// The head of counted loop `lp`: with budget left for every pass the
    /// loop can make, its uncounted copy runs; else the code below.
    fn loop_head(&mut self, lp: usize) {
        let l = self.proofs.counted[lp];
        debug_assert_eq!(self.excess[l.head], 0, "a loop head is a sync point");
        let need = (l.trips * l.cost as u64) as i32;
        asm!(self.a; cmp r9, -need);
        self.jump(Some(Cc::L), self.fast_entry[lp]);
        asm!(self.a; =>self.body[lp]);
    }

    /// Counted loop `lp` again, without its count: r9 stays as it was at
    /// the head, the counter's value there is kept in the context, and
    /// each way out adds what the passes made would have.
    fn uncounted_loop(&mut self, lp: usize, entered: &[bool]) {
        let l = self.proofs.counted[lp];
        asm!(self.a
            ; =>self.fast_entry[lp]
            ; mov [r12 + LOOP_BASE], Rq(MAP[l.iv as usize])
        );
        self.align_loop();
        asm!(self.a; =>self.fast_body[lp]);
        self.fast = Some(lp);
        let mut folded = 0;
        for pc in l.head..=l.latch {
            debug_assert_eq!(self.excess[pc], 0, "no count moves inside the loop");
            self.op_or_fold(pc, &mut folded, entered);
        }
        self.fast = None;
    }

    /// A conditional jump in an uncounted loop: the back edge to the copy's
    /// head, falling through to the code after the loop; an exit through
    /// out-of-line code that settles the count.
    fn uncounted_jump(&mut self, lp: usize, pc: usize, op: &Op, s: u8, cc: Cc) {
        let l = self.proofs.counted[lp];
        self.compare(op, s);
        if pc == l.latch {
            self.jump(Some(cc), self.fast_body[lp]);
            self.skipped_count(lp, pc);
            // The code after the loop expects what falling into it brings.
            let next = pc + 1;
            self.lea_count(self.excess[next] - self.excess[pc]);
            self.jump(None, self.labels[next]);
            return;
        }
        let target = op.aux as usize;
        let label = self.label();
        self.jump(Some(cc), label);
        self.cold.push(Cold::FastExit {
            label,
            lp,
            pc,
            delta: op.hi() + self.excess[target] - self.excess[pc],
            target: self.labels[target],
        });
    }

    /// r9 += the count of the passes an uncounted loop made before the one
    /// leaving at `pc`: (counter - its value at entry) >> step, less the
    /// pass in progress if it has stepped the counter already, times the
    /// loop's cost.
    fn skipped_count(&mut self, lp: usize, pc: usize) {
        let l = self.proofs.counted[lp];
        let iv = MAP[l.iv as usize];
        asm!(self.a
            ; mov r11, Rq(iv)
            ; sub r11, [r12 + LOOP_BASE]
        );
        if l.step_log2 > 0 {
            asm!(self.a; shr r11, l.step_log2 as i8);
        }
        if l.inc < pc {
            asm!(self.a; sub r11, 1);
        }
        asm!(self.a
            ; imul r11, r11, l.cost as i32
            ; add r9, r11
        );
    }

    /// The flags of a conditional jump's test (`s` holds its register
    /// operand).
    fn compare(&mut self, op: &Op, s: u8) {
        let d = MAP[op.dst as usize % 11];
        let (cc, w64, reg) = jump_info(op.kind).expect("a jump");
        let lo = op.lo();
        match (w64, reg, cc) {
            (true, false, None) => asm!(self.a; test Rq(d), lo),
            (true, true, None) => asm!(self.a; test Rq(d), Rq(s)),
            (false, false, None) => asm!(self.a; test Rd(d), lo),
            (false, true, None) => asm!(self.a; test Rd(d), Rd(s)),
            // `test r, r` sets the flags `cmp r, 0` would.
            (true, false, Some(_)) if lo == 0 => asm!(self.a; test Rq(d), Rq(d)),
            (true, false, Some(_)) if fits8(lo) => self.cmp_imm8(d, lo as i8, true),
            (true, false, Some(_)) => asm!(self.a; cmp Rq(d), lo),
            (true, true, Some(_)) => asm!(self.a; cmp Rq(d), Rq(s)),
            (false, false, Some(_)) if lo == 0 => asm!(self.a; test Rd(d), Rd(d)),
            (false, false, Some(_)) if fits8(lo) => self.cmp_imm8(d, lo as i8, false),
            (false, false, Some(_)) => asm!(self.a; cmp Rd(d), lo),
            (false, true, Some(_)) => asm!(self.a; cmp Rd(d), Rd(s)),
        }
    }

    /// A conditional jump back (a loop's latch). The count moves and its
    /// budget check runs first, its flags set by the `add`: when that
    /// check fires, out of line, the test is redone, and the budget is
    /// spent only if the jump is taken (else the count moves back and the
    /// code falls through). The hot path is `add; jge` and the test.
    fn back_edge(&mut self, pc: usize, op: &Op, s: u8, cc: Cc) {
        let target = op.aux as usize;
        let delta = op.hi() + self.excess[target] - self.excess[pc];
        let label = self.label();
        let resume = self.label();
        let budget = self.budget_stub(pc);
        self.add_count(delta);
        self.jump(Some(Cc::Ge), label);
        self.compare(op, s);
        // A counted loop's head starts with its budget test, for entries
        // only.
        let head = match self.proofs.counted.iter().position(|c| c.latch == pc) {
            Some(lp) => self.body[lp],
            None => self.labels[target],
        };
        self.jump(Some(cc), head);
        self.lea_count(-delta);
        asm!(self.a; =>resume);
        self.cold.push(Cold::BackEdge {
            label,
            op: *op,
            s,
            cc,
            delta,
            budget,
            resume,
        });
    }

    /// A jump taken (always, or on `cc`): adds the count delta, checks the
    /// budget when the target is not ahead, as the interpreter does. r9 is
    /// the count minus the budget, so `add r9, delta` sets the flags `jge`
    /// needs to find the budget spent.
    fn edge(&mut self, pc: usize, op: &Op, cc: Option<Cc>) {
        let target = op.aux as usize;
        // The interpreter's delta, and the excess the target expects.
        let delta = op.hi() + self.excess[target] - self.excess[pc];
        let tl = self.labels[target];
        if op.hi() > 0 {
            // Backward and unconditional: a loop (conditional jumps back go
            // through `back_edge`).
            debug_assert!(cc.is_none());
            // Taken while budget remains: one branch on the loop's path.
            let b = self.budget_stub(pc);
            self.add_count(delta);
            self.jump(Some(Cc::L), tl);
            self.jump(None, b);
            return;
        }
        match cc {
            None => {
                if delta != 0 {
                    self.add_count(delta);
                }
                self.jump(None, tl);
            }
            Some(cc) if delta == 0 => self.jump(Some(cc), tl),
            // A loop's exit, taken once per loop: the count moves out of
            // line, so the loop's path stays free of it.
            Some(cc) if self.loop_exit[pc] => {
                let label = self.label();
                self.jump(Some(cc), label);
                self.cold.push(Cold::Edge {
                    label,
                    delta,
                    target: tl,
                });
            }
            // Forward: the count moves on both paths and comes back on the
            // fall-through one, so the taken branch goes straight there.
            Some(cc) => {
                self.lea_count(delta);
                self.jump(Some(cc), tl);
                self.lea_count(-delta);
            }
        }
    }

    /// Division and modulo with the interpreter's semantics: by 0 the
    /// quotient is 0 and the remainder the dividend, signed INT_MIN / -1
    /// wraps (x86 would fault), 32-bit forms zero-extend.
    #[allow(clippy::too_many_arguments)]
    fn divmod(
        &mut self,
        pc: usize,
        d: u8,
        src: Option<u8>,
        imm: i32,
        w64: bool,
        signed: bool,
        modulo: bool,
    ) {
        let neg_one = |v: i32| signed && v == -1;
        // A register divisor the analysis proved neither 0 nor (signed) -1
        // needs no test; the tests of the others branch to out-of-line code.
        let src = src.map(|s| (s, !self.proofs.divisor_ok[pc]));
        let (zero, minus_one, resume) = (self.label(), self.label(), self.label());
        match src {
            None if imm == 0 => {
                self.div_by_zero(d, w64, modulo);
                return;
            }
            None if neg_one(imm) => {
                self.div_by_minus_one(d, w64, modulo);
                return;
            }
            None => {
                if w64 {
                    asm!(self.a; mov r11, imm);
                } else {
                    asm!(self.a; mov r11d, imm);
                }
            }
            Some((s, test)) => {
                if w64 {
                    asm!(self.a; mov r11, Rq(s));
                    if test {
                        asm!(self.a; test r11, r11);
                        self.jump(Some(Cc::E), zero);
                        if signed {
                            asm!(self.a; cmp r11, -1);
                            self.jump(Some(Cc::E), minus_one);
                        }
                    }
                } else {
                    asm!(self.a; mov r11d, Rd(s));
                    if test {
                        asm!(self.a; test r11d, r11d);
                        self.jump(Some(Cc::E), zero);
                        if signed {
                            asm!(self.a; cmp r11d, -1);
                            self.jump(Some(Cc::E), minus_one);
                        }
                    }
                }
            }
        }
        // rdx:rax is the dividend; keep r0 and r3 unless they are the result.
        if d != RAX {
            asm!(self.a; mov r10, rax; mov rax, Rq(d));
        }
        if d != RDX {
            asm!(self.a; mov [r12 + SCRATCH], rdx);
        }
        match (w64, signed) {
            // Both operands fit 32 bits: the 32-bit form, which zero-extends
            // its results, is faster on every x86.
            (true, false) if self.proofs.narrow_div[pc] => asm!(self.a; xor edx, edx; div r11d),
            (true, false) => asm!(self.a; xor edx, edx; div r11),
            (true, true) => asm!(self.a; cqo; idiv r11),
            (false, false) => asm!(self.a; xor edx, edx; div r11d),
            (false, true) => asm!(self.a; cdq; idiv r11d),
        }
        let res = if modulo { RDX } else { RAX };
        if d != res {
            asm!(self.a; mov Rq(d), Rq(res));
        }
        if d != RAX {
            asm!(self.a; mov rax, r10);
        }
        if d != RDX {
            asm!(self.a; mov rdx, [r12 + SCRATCH]);
        }
        if let Some((_, true)) = src {
            asm!(self.a; =>resume);
            self.cold.push(Cold::DivSpecial {
                zero,
                minus_one: signed.then_some(minus_one),
                resume,
                d,
                w64,
                modulo,
            });
        }
    }

    fn div_by_zero(&mut self, d: u8, w64: bool, modulo: bool) {
        match (modulo, w64) {
            (false, _) => asm!(self.a; xor Rd(d), Rd(d)),
            (true, true) => {}
            (true, false) => asm!(self.a; mov Rd(d), Rd(d)),
        }
    }

    fn div_by_minus_one(&mut self, d: u8, w64: bool, modulo: bool) {
        match (modulo, w64) {
            (false, true) => asm!(self.a; neg Rq(d)),
            (false, false) => asm!(self.a; neg Rd(d)),
            (true, _) => asm!(self.a; xor Rd(d), Rd(d)),
        }
    }

    /// Shifts by an immediate, masked to the width as the interpreter's
    /// wrapping shifts are.
    fn shift_imm(&mut self, sh: Shift, d: u8, imm: i32, w64: bool) {
        let n = (imm as u32 & if w64 { 63 } else { 31 }) as i8;
        if n == 0 {
            if !w64 {
                asm!(self.a; mov Rd(d), Rd(d));
            }
            return;
        }
        match (sh, w64) {
            (Shift::Shl, true) => asm!(self.a; shl Rq(d), n),
            (Shift::Shr, true) => asm!(self.a; shr Rq(d), n),
            (Shift::Sar, true) => asm!(self.a; sar Rq(d), n),
            (Shift::Shl, false) => asm!(self.a; shl Rd(d), n),
            (Shift::Shr, false) => asm!(self.a; shr Rd(d), n),
            (Shift::Sar, false) => asm!(self.a; sar Rd(d), n),
        }
    }

    /// Shifts by a register: x86 masks the count in cl to 5 or 6 bits, the
    /// same masking as the interpreter's. The value is shifted in r11 (a
    /// 32-bit copy, zero-extended, so a shift by 0 still clears the upper
    /// half) with r4's rcx saved around it.
    fn shift_reg(&mut self, sh: Shift, d: u8, s: u8, w64: bool) {
        if w64 {
            asm!(self.a; mov r11, Rq(d));
        } else {
            asm!(self.a; mov r11d, Rd(d));
        }
        if s != RCX {
            asm!(self.a; mov r10, rcx; mov rcx, Rq(s));
        }
        match (sh, w64) {
            (Shift::Shl, true) => asm!(self.a; shl r11, cl),
            (Shift::Shr, true) => asm!(self.a; shr r11, cl),
            (Shift::Sar, true) => asm!(self.a; sar r11, cl),
            (Shift::Shl, false) => asm!(self.a; shl r11d, cl),
            (Shift::Shr, false) => asm!(self.a; shr r11d, cl),
            (Shift::Sar, false) => asm!(self.a; sar r11d, cl),
        }
        if s != RCX {
            asm!(self.a; mov rcx, r10);
        }
        asm!(self.a; mov Rq(d), r11);
    }

    /// LD_ABS / LD_IND: a big-endian load from the packet into r0; outside
    /// the packet the program ends with r0 = 0.
    fn packet_load(&mut self, pc: usize, op: &Op) {
        use Kind::*;
        let size: usize = match op.kind {
            LdAbsB | LdIndB => 1,
            LdAbsH | LdIndH => 2,
            _ => 4,
        };
        let miss = self.label();
        self.cold.push(Cold::PacketMiss {
            label: miss,
            delta: op.hi() - self.excess[pc],
        });
        let ind = matches!(op.kind, LdIndB | LdIndH | LdIndW);
        if ind {
            let s = MAP[op.src as usize % 11];
            asm!(self.a; movsxd r10, Rd(s));
        }
        match (self.blind, ind) {
            (None, true) => asm!(self.a; add r10, op.lo()),
            (None, false) => asm!(self.a; mov r10, op.lo()),
            (Some(key), true) => {
                let k = key as i32;
                asm!(self.a; mov r11, op.lo() ^ k; xor r11, k; add r10, r11);
            }
            (Some(key), false) => {
                let k = key as i32;
                asm!(self.a; mov r10, op.lo() ^ k; xor r10, k);
            }
        }
        let check = self.check[0][log2(size)];
        let fail = self.oob_stub(pc, size, false);
        asm!(self.a
            ; test r10, r10
            ; js =>miss
            ; lea r11, [r10 + size as i32]
            ; cmp r11, [r12 + PKT_LEN]
            ; ja =>miss
            ; add r10, [r12 + PKT_ADDR]
            ; call =>check
            ; jne =>fail
        );
        match size {
            1 => asm!(self.a; movzx eax, BYTE [r10]),
            2 => asm!(self.a; movzx eax, WORD [r10]; rol ax, 8; movzx eax, ax),
            _ => asm!(self.a; mov eax, DWORD [r10]; bswap eax),
        }
    }

    fn cold(&mut self) {
        for c in std::mem::take(&mut self.cold) {
            match c {
                Cold::Budget { label, pc } => {
                    asm!(self.a; =>label; mov r11d, pc as i32; jmp ->budget_err);
                }
                Cold::Depth { label, pc } => {
                    asm!(self.a; =>label; mov r11d, pc as i32; jmp ->depth_err);
                }
                Cold::Oob {
                    label,
                    pc,
                    k,
                    write,
                } => {
                    let h = self.oob[write as usize][k];
                    asm!(self.a; =>label; mov r11d, pc as i32);
                    self.jump(None, h);
                }
                Cold::HelperResult { label, resume } => {
                    asm!(self.a
                        ; =>label
                        ; cmp r10, TR_LOOP as i32
                        ; jne ->stop
                        ; call ->loop_runner
                    );
                    self.jump(None, resume);
                }
                Cold::AtomicSlow { label, pc, resume } => {
                    asm!(self.a
                        ; =>label
                        ; mov r10d, pc as i32
                        ; call ->atomic_stub
                        ; test r10, r10
                        ; jnz ->stop
                    );
                    self.jump(None, resume);
                }
                Cold::Check {
                    label,
                    check,
                    fail,
                    resume,
                    k,
                    write,
                    stack_first,
                } => {
                    let full = self.label();
                    asm!(self.a; =>label);
                    if stack_first {
                        self.hot_test(k, write, full);
                    } else {
                        self.stack_test(k, full);
                    }
                    self.jump(None, resume);
                    asm!(self.a; =>full; call =>check);
                    self.jump(Some(Cc::Ne), fail);
                    self.jump(None, resume);
                }
                Cold::BackEdge {
                    label,
                    op,
                    s,
                    cc,
                    delta,
                    budget,
                    resume,
                } => {
                    asm!(self.a; =>label);
                    self.compare(&op, s);
                    self.jump(Some(cc), budget);
                    self.lea_count(-delta);
                    self.jump(None, resume);
                }
                Cold::Deeper {
                    label,
                    depth,
                    resume,
                } => {
                    asm!(self.a
                        ; =>label
                        ; cmp rbp, [r12 + STACK_LIMIT]
                    );
                    self.jump(Some(Cc::Be), depth);
                    asm!(self.a
                        ; lea r11, [rbp - FRAME]
                        ; mov [r12 + MIN_FP], r11
                    );
                    self.jump(None, resume);
                }
                Cold::Edge {
                    label,
                    delta,
                    target,
                } => {
                    asm!(self.a; =>label);
                    self.lea_count(delta);
                    self.jump(None, target);
                }
                Cold::DivSpecial {
                    zero,
                    minus_one,
                    resume,
                    d,
                    w64,
                    modulo,
                } => {
                    asm!(self.a; =>zero);
                    self.div_by_zero(d, w64, modulo);
                    self.jump(None, resume);
                    if let Some(m) = minus_one {
                        asm!(self.a; =>m);
                        self.div_by_minus_one(d, w64, modulo);
                        self.jump(None, resume);
                    }
                }
                Cold::FastExit {
                    label,
                    lp,
                    pc,
                    delta,
                    target,
                } => {
                    asm!(self.a; =>label);
                    self.skipped_count(lp, pc);
                    self.lea_count(delta);
                    self.jump(None, target);
                }
                Cold::PacketMiss { label, delta } => {
                    asm!(self.a
                        ; =>label
                        ; add r9, delta
                        ; xor eax, eax
                        ; jmp ->exit_ok
                    );
                }
            }
        }
    }

    /// Code every program shares: exits, bounds checks, trampolines, the
    /// bpf_loop driver.
    fn shared(&mut self, tramps: &Tramps) {
        asm!(self.a
            ; ->exit_ok:
            ; mov [r12 + REGS], rax
            ; mov [r12 + COUNT], r9
            ; xor eax, eax
            ; ->leave:
            ; mov rsp, [r12 + SAVED_RSP]
            ; pop r15
            ; pop r14
            ; pop r13
            ; pop r12
            ; pop rbp
            ; pop rbx
            ; ret
            ; ->stop:
            ; mov eax, ST_STOP as i32
            ; jmp ->leave
            ; ->budget_err:
            ; mov [r12 + ERR_PC], r11
            ; mov eax, ST_BUDGET as i32
            ; jmp ->leave
            ; ->depth_err:
            ; mov [r12 + ERR_PC], r11
            ; mov eax, ST_DEPTH as i32
            ; jmp ->leave
        );
        for w in 0..2 {
            for k in 0..4 {
                let h = self.oob[w][k];
                asm!(self.a
                    ; =>h
                    ; mov [r12 + ERR_PC], r11
                    ; mov [r12 + ERR_ADDR], r10
                    ; mov QWORD [r12 + ERR_SIZE], 1 << k
                    ; mov QWORD [r12 + ERR_WRITE], w as i32
                    ; mov eax, ST_OOB as i32
                    ; jmp ->leave
                );
            }
        }
        for w in 0..2 {
            for k in 0..4 {
                self.check_routine(w == 1, k);
            }
        }
        asm!(self.a; ->helper_stub:);
        self.tramp_stub(tramps.helper as i64);
        asm!(self.a; ->atomic_stub:);
        self.tramp_stub(tramps.atomic as i64);
        self.loop_runner();
    }

    /// Whether r10 .. r10 + 2^k lies in one region (writable for `write`):
    /// ZF set if so. A table entry that holds it is copied into the hot
    /// entry of its direction (xmm0 is scratch: eBPF code never uses it). The stack region is [rbp - FRAME_SIZE, stack top) (the
    /// current frame and its callers', as the interpreter's region 0);
    /// the others are scanned from the context's table, whose entries hold
    /// the first and last valid address for each access size.
    fn check_routine(&mut self, write: bool, k: usize) {
        let l = self.check[write as usize][k];
        let (tab, tab_end) = if write { (WR, WR_END) } else { (RD, RD_END) };
        let hot = if write { HOT_WR } else { HOT_RD };
        let first = 8 * k as i32;
        let last = 32 + 8 * k as i32;
        asm!(self.a
            ; =>l
            ; lea r11, [rbp - FRAME]
            ; cmp r10, r11
            ; jb >tables
            ; cmp r10, [r12 + STACK_LAST + 8 * k as i32]
            ; jbe >ok
            ; tables:
            ; mov r11, [r12 + tab]
            ; scan:
            ; cmp r11, [r12 + tab_end]
            ; jae >fail
            ; cmp r10, [r11 + first]
            ; jb >next
            ; cmp r10, [r11 + last]
            ; jbe >hit
            ; next:
            ; add r11, TENTRY
            ; jmp <scan
            ; hit:
            ; movdqu xmm0, [r11]
            ; movdqu [r12 + hot], xmm0
            ; movdqu xmm0, [r11 + 16]
            ; movdqu [r12 + hot + 16], xmm0
            ; movdqu xmm0, [r11 + 32]
            ; movdqu [r12 + hot + 32], xmm0
            ; movdqu xmm0, [r11 + 48]
            ; movdqu [r12 + hot + 48], xmm0
            ; ok:
            ; cmp r11, r11
            ; ret
            ; fail:
            ; test r12, r12
            ; ret
        );
    }

    /// Calls `f(ctx, pc = r10) -> status` with the eBPF registers in the
    /// context; returns the status in r10 with the registers reloaded.
    fn tramp_stub(&mut self, f: i64) {
        self.spill();
        asm!(self.a
            ; mov rdi, r12
            ; mov rsi, r10
            ; mov rax, QWORD f
            ; call rax
            ; mov r10, rax
        );
        self.reload();
        asm!(self.a; ret);
    }

    /// Runs a bpf_loop the helper trampoline set up: the callback is called
    /// in a new frame until it returns non-zero or the iterations are done;
    /// r0 is then the number of calls. The trampoline already checked depth
    /// and budget for the first call, set r1, r2 and the count.
    fn loop_runner(&mut self) {
        asm!(self.a
            ; ->loop_runner:
            ; push rbx
            ; push r13
            ; push r14
            ; push r15
            ; push QWORD [r12 + L_TARGET]
            ; push QWORD [r12 + L_ENTRY]
            ; push QWORD [r12 + L_CTX]
            ; push QWORD [r12 + L_ITERS]
            ; push QWORD [r12 + L_RET]
            ; push 0
            // [rsp]: calls done, +8: return index, +16: iterations,
            // +24: ctx, +32: entry index, +40: callback.
            ; sub rbp, FRAME
            ; cmp rbp, [r12 + MIN_FP]
            ; jae >again
            ; mov [r12 + MIN_FP], rbp
            ; again:
            ; call QWORD [rsp + 40]
            ; add QWORD [rsp], 1
            ; test rax, rax
            ; jnz >fin
            ; mov r11, [rsp]
            ; cmp r11, [rsp + 16]
            ; jae >fin
            ; sub r9, [rsp + 32]
            ; jge >exhausted
            ; mov rdi, [rsp]
            ; mov rsi, [rsp + 24]
            ; jmp <again
            ; exhausted:
            // The pc of the callback's exit.
            ; mov r11, r10
            ; jmp ->budget_err
            ; fin:
            ; mov rax, [rsp]
            ; add rbp, FRAME

            ; sub r9, [rsp + 8]
            ; add rsp, 48
            ; pop r15
            ; pop r14
            ; pop r13
            ; pop rbx
            ; ret
        );
    }
}

#[derive(Clone, Copy)]
enum Shift {
    Shl,
    Shr,
    Sar,
}

/// Forward conditional jumps that leave a loop: past the end of a back
/// edge `q -> h` with `h <= pc < q`. One sweep over the ops with the back
/// edges spanning each op in a heap by their end.
fn loop_exits(ops: &[Op]) -> Vec<bool> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut backs: Vec<(usize, usize)> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| (op.kind == Kind::Ja || jump_info(op.kind).is_some()) && op.hi() > 0)
        .map(|(q, op)| (op.aux as usize, q))
        .collect();
    backs.sort_unstable();
    let mut spanning = BinaryHeap::new();
    let mut next = 0;
    let mut exits = vec![false; ops.len()];
    for (pc, op) in ops.iter().enumerate() {
        while next < backs.len() && backs[next].0 <= pc {
            spanning.push(Reverse(backs[next].1));
            next += 1;
        }
        while spanning.peek().is_some_and(|&Reverse(q)| q <= pc) {
            spanning.pop();
        }
        let t = op.aux as usize;
        exits[pc] = jump_info(op.kind).is_some()
            && t > pc
            && spanning.peek().is_some_and(|&Reverse(q)| q < t);
    }
    exits
}

/// Whether code falls from op `pc - 1` into op `pc` (the second slot of an
/// LDDW counts as falling through).
fn falls_into(ops: &[Op], pc: usize) -> bool {
    pc > 0 && !matches!(ops[pc - 1].kind, Kind::Ja | Kind::Exit)
}

/// The count's excess at each op: the code keeps r9 = the interpreter's
/// `count` - budget + excess. The interpreter's count lags the true count
/// by the op's instruction index, so it moves on every taken jump; an
/// excess that absorbs that move makes the jump a plain `jcc`. Ops where
/// the count is read or checked (`sync`) have none, and exits and packet
/// misses fold theirs into what they add. Every other op takes the excess
/// that saves the most count moves on the ways into it: each way in (the
/// op before falling in, a forward jump) brings its own, and one that
/// differs costs a move on that way: an `add` or `lea` for a fall-through
/// or a `ja`, two for a conditional jump (the count moves and comes back
/// around it), none on the hot path for a loop's exit (out of line). So a
/// merge after a branch tree moves the count on the fewest of its leaves.
fn excess(ops: &[Op], sync: &[bool], loop_exit: &[bool]) -> Vec<i32> {
    let n = ops.len();
    // The forward jumps into each op, grouped by target (`from[start[t]..
    // start[t + 1]]`), with what a count move on each costs.
    let forward = |pc: usize| {
        let op = &ops[pc];
        let conditional = is_jump(op.kind);
        let t = op.aux as usize;
        ((op.kind == Kind::Ja || conditional) && op.hi() <= 0 && t > pc && t < n).then(|| {
            let cost = match (conditional, loop_exit[pc]) {
                (false, _) => 1,
                (true, false) => 2,
                (true, true) => 0,
            };
            (t, cost)
        })
    };
    let mut start = vec![0usize; n + 1];
    for pc in 0..n {
        if let Some((t, _)) = forward(pc) {
            start[t + 1] += 1;
        }
    }
    for t in 0..n {
        start[t + 1] += start[t];
    }
    let mut from = vec![(0usize, 0u32); start[n]];
    let mut fill = start.clone();
    for pc in 0..n {
        if let Some((t, cost)) = forward(pc) {
            from[fill[t]] = (pc, cost);
            fill[t] += 1;
        }
    }
    let mut e = vec![0i32; n];
    // Per op: the excess each way in brings, and what a move on it costs.
    let mut ways: Vec<(i32, u32)> = Vec::new();
    for pc in 0..n {
        if sync[pc] {
            continue;
        }
        ways.clear();
        if falls_into(ops, pc) {
            ways.push((e[pc - 1], 1));
        }
        for &(p, cost) in &from[start[pc]..start[pc + 1]] {
            ways.push((e[p] - ops[p].hi(), cost));
        }
        e[pc] = best_excess(&ways);
    }
    e
}

/// The excess that costs the fewest count moves over `ways` (excess, cost
/// of a move): the first such way's, 0 with none.
fn best_excess(ways: &[(i32, u32)]) -> i32 {
    let mut best: Option<(i32, u32)> = None;
    for &(x, _) in ways {
        let saved: u32 = ways.iter().filter(|w| w.0 == x).map(|w| w.1).sum();
        if best.is_none_or(|b| saved > b.1) {
            best = Some((x, saved));
        }
    }
    best.map_or(0, |b| b.0)
}

/// Ops control reaches other than from the op before: pc 0, `entries`
/// (function entries and callbacks), jump and local-call targets.
pub(super) fn entered(ops: &[Op], entries: &[usize]) -> Vec<bool> {
    let n = ops.len();
    let mut entered = vec![false; n];
    for &t in entries.iter().chain(std::iter::once(&0)) {
        if t < n {
            entered[t] = true;
        }
    }
    for op in ops {
        let jumps = op.kind == Kind::Ja || op.kind == Kind::CallLocal || is_jump(op.kind);
        if jumps && (op.aux as usize) < n {
            entered[op.aux as usize] = true;
        }
    }
    entered
}

/// Whether `k` is a conditional jump.
pub(super) fn is_jump(k: Kind) -> bool {
    jump_info(k).is_some()
}

/// The register-operand kind computing what an immediate-operand kind
/// computes, for blinding. Shifts are left out: their counts are 6 bits.
fn register_form(k: Kind) -> Option<Kind> {
    use Kind::*;
    Some(match k {
        Add64I => Add64R,
        Sub64I => Sub64R,
        Mul64I => Mul64R,
        Div64I => Div64R,
        SDiv64I => SDiv64R,
        Or64I => Or64R,
        And64I => And64R,
        Mod64I => Mod64R,
        SMod64I => SMod64R,
        Xor64I => Xor64R,
        Mov64I => Mov64R,
        Add32I => Add32R,
        Sub32I => Sub32R,
        Mul32I => Mul32R,
        Div32I => Div32R,
        SDiv32I => SDiv32R,
        Or32I => Or32R,
        And32I => And32R,
        Mod32I => Mod32R,
        SMod32I => SMod32R,
        Xor32I => Xor32R,
        Mov32I => Mov32R,
        Jeq64I => Jeq64R,
        Jgt64I => Jgt64R,
        Jge64I => Jge64R,
        Jset64I => Jset64R,
        Jne64I => Jne64R,
        Jsgt64I => Jsgt64R,
        Jsge64I => Jsge64R,
        Jlt64I => Jlt64R,
        Jle64I => Jle64R,
        Jslt64I => Jslt64R,
        Jsle64I => Jsle64R,
        Jeq32I => Jeq32R,
        Jgt32I => Jgt32R,
        Jge32I => Jge32R,
        Jset32I => Jset32R,
        Jne32I => Jne32R,
        Jsgt32I => Jsgt32R,
        Jsge32I => Jsge32R,
        Jlt32I => Jlt32R,
        Jle32I => Jle32R,
        Jslt32I => Jslt32R,
        Jsle32I => Jsle32R,
        _ => return None,
    })
}

/// (condition, or None for JSET; 64-bit; register operand) of a jump kind.
fn jump_info(k: Kind) -> Option<(Option<Cc>, bool, bool)> {
    use Kind::*;
    let cc = |c| Some(c);
    Some(match k {
        Jeq64I => (cc(Cc::E), true, false),
        Jgt64I => (cc(Cc::A), true, false),
        Jge64I => (cc(Cc::Ae), true, false),
        Jset64I => (None, true, false),
        Jne64I => (cc(Cc::Ne), true, false),
        Jsgt64I => (cc(Cc::G), true, false),
        Jsge64I => (cc(Cc::Ge), true, false),
        Jlt64I => (cc(Cc::B), true, false),
        Jle64I => (cc(Cc::Be), true, false),
        Jslt64I => (cc(Cc::L), true, false),
        Jsle64I => (cc(Cc::Le), true, false),
        Jeq64R => (cc(Cc::E), true, true),
        Jgt64R => (cc(Cc::A), true, true),
        Jge64R => (cc(Cc::Ae), true, true),
        Jset64R => (None, true, true),
        Jne64R => (cc(Cc::Ne), true, true),
        Jsgt64R => (cc(Cc::G), true, true),
        Jsge64R => (cc(Cc::Ge), true, true),
        Jlt64R => (cc(Cc::B), true, true),
        Jle64R => (cc(Cc::Be), true, true),
        Jslt64R => (cc(Cc::L), true, true),
        Jsle64R => (cc(Cc::Le), true, true),
        Jeq32I => (cc(Cc::E), false, false),
        Jgt32I => (cc(Cc::A), false, false),
        Jge32I => (cc(Cc::Ae), false, false),
        Jset32I => (None, false, false),
        Jne32I => (cc(Cc::Ne), false, false),
        Jsgt32I => (cc(Cc::G), false, false),
        Jsge32I => (cc(Cc::Ge), false, false),
        Jlt32I => (cc(Cc::B), false, false),
        Jle32I => (cc(Cc::Be), false, false),
        Jslt32I => (cc(Cc::L), false, false),
        Jsle32I => (cc(Cc::Le), false, false),
        Jeq32R => (cc(Cc::E), false, true),
        Jgt32R => (cc(Cc::A), false, true),
        Jge32R => (cc(Cc::Ae), false, true),
        Jset32R => (None, false, true),
        Jne32R => (cc(Cc::Ne), false, true),
        Jsgt32R => (cc(Cc::G), false, true),
        Jsge32R => (cc(Cc::Ge), false, true),
        Jlt32R => (cc(Cc::B), false, true),
        Jle32R => (cc(Cc::Be), false, true),
        Jslt32R => (cc(Cc::L), false, true),
        Jsle32R => (cc(Cc::Le), false, true),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Code, Decoder, DecoderOptions, OpKind};

    /// The program's final code, and how many label jumps the first pass
    /// alone made short.
    fn compiled(src: &str) -> (Compiled, usize) {
        let slots = bpfkit_isa::asm::assemble(src, bpfkit_isa::Dialect::Conformance).unwrap();
        let prog = crate::Program::new(&slots).unwrap();
        let proofs = || super::super::values::analyse(&prog.ops, &[]);
        let tramps = Tramps {
            helper: 0,
            atomic: 0,
        };
        let plan = Plan::new(&prog.ops, &[], &proofs().counted);
        let first = emit(&prog.ops, &plan, &proofs(), &tramps, None, &[]);
        let first_short = first.jumps.iter().filter(|j| j.1 == 2).count();
        (
            compile(&prog.ops, &[], proofs(), &tramps, None),
            first_short,
        )
    }

    /// A 16-way compare tree over each of 8 bytes, every case a few ops:
    /// most jumps reach their targets with 8 bits only once the jumps
    /// between them are short too.
    fn switch_program() -> String {
        let mut src = String::from("mov %r0, 0\n");
        for byte in 0..8 {
            src += &format!("ldxb %r2, [%r1+{byte}]\n");
            for case in 0..15 {
                src += &format!("jeq %r2, {case}, case{byte}_{case}\n");
            }
            src += &format!("add %r0, 99\nja join{byte}\n");
            for case in 0..15 {
                src += &format!(
                    "case{byte}_{case}:\nmul %r0, {}\nxor %r0, %r2\nja join{byte}\n",
                    case + 3
                );
            }
            src += &format!("join{byte}:\n");
        }
        src + "exit\n"
    }

    /// Every jump from the body to the body uses the 2-byte form when its
    /// target is within reach of it, many more than the first pass could
    /// tell.
    #[test]
    fn jumps_within_reach_are_short() {
        let (c, first_short) = compiled(&switch_program());
        let body_end = *c.offsets.last().unwrap() as u64;
        let mut d = Decoder::with_ip(64, &c.code, 0, DecoderOptions::NONE);
        let (mut short, mut long) = (0, 0);
        while d.can_decode() && d.ip() < body_end {
            let i = d.decode();
            assert_ne!(i.code(), Code::INVALID);
            if i.op0_kind() != OpKind::NearBranch64 || i.code() == Code::Call_rel32_64 {
                continue;
            }
            let target = i.near_branch_target();
            if target >= body_end {
                continue;
            }
            if i.len() == 2 {
                short += 1;
            } else {
                long += 1;
                let disp = target as i64 - (i.ip() as i64 + 2);
                assert!(
                    !(-128..=127).contains(&disp),
                    "{:#x}: a {}-byte jump to {target:#x} would fit 8 bits",
                    i.ip(),
                    i.len()
                );
            }
        }
        assert!(
            short > 2 * first_short,
            "{short} short after relaxing, {first_short} before ({long} long)"
        );
    }

    /// The ways into each op: (the op a way comes from, the excess it
    /// brings, the cost of a count move on it), as `excess` weighs them.
    fn ways(ops: &[Op], e: &[i32], loop_exit: &[bool]) -> Vec<Vec<(i32, u32)>> {
        let mut ways = vec![Vec::new(); ops.len()];
        for (pc, op) in ops.iter().enumerate() {
            if pc + 1 < ops.len() && falls_into(ops, pc + 1) {
                ways[pc + 1].push((e[pc], 1));
            }
            let t = op.aux as usize;
            if (op.kind == Kind::Ja || is_jump(op.kind)) && op.hi() <= 0 && t > pc {
                let cost = match (is_jump(op.kind), loop_exit[pc]) {
                    (false, _) => 1,
                    (true, false) => 2,
                    (true, true) => 0,
                };
                ways[t].push((e[pc] - op.hi(), cost));
            }
        }
        ways
    }

    /// Branch trees of depth 4 over 8 bytes, leaves of 1 to 3 ops joining
    /// after each tree, as clang lays out a switch.
    fn tree_program() -> String {
        let mut src = String::from("mov %r0, 0\n");
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for byte in 0..8 {
            src += &format!("ldxb %r2, [%r1+{byte}]\nand %r2, 15\n");
            fn node(src: &mut String, b: usize, lo: u32, hi: u32, next: &mut dyn FnMut() -> u64) {
                if hi - lo == 1 {
                    for _ in 0..=next() % 3 {
                        *src += &format!("add %r0, {}\n", lo + 1);
                    }
                    *src += &format!("ja join{b}\n");
                    return;
                }
                let mid = (lo + hi) / 2;
                *src += &format!("jgt %r2, {}, n{b}_{mid}_{hi}\n", mid - 1);
                node(src, b, lo, mid, next);
                *src += &format!("n{b}_{mid}_{hi}:\n");
                node(src, b, mid, hi, next);
            }
            node(&mut src, byte, 0, 16, &mut next);
            src += &format!("join{byte}:\nxor %r0, %r2\n");
        }
        src + "exit\n"
    }

    /// Every op takes the excess that leaves the fewest count moves on the
    /// ways into it, and over the branch trees that is fewer moves than
    /// taking the excess of the first way in (the fall-through's, if any).
    #[test]
    fn merges_take_the_excess_that_moves_the_count_least() {
        let slots =
            bpfkit_isa::asm::assemble(&tree_program(), bpfkit_isa::Dialect::Conformance).unwrap();
        let prog = crate::Program::new(&slots).unwrap();
        let plan = Plan::new(&prog.ops, &[], &[]);
        let cost = |ways: &[(i32, u32)], x: i32| -> u32 {
            ways.iter().filter(|w| w.0 != x).map(|w| w.1).sum()
        };
        let chosen = ways(&prog.ops, &plan.excess, &plan.loop_exit);
        let mut total = 0;
        for (pc, w) in chosen.iter().enumerate() {
            let here = cost(w, plan.excess[pc]);
            for &(x, _) in w {
                assert!(
                    here <= cost(w, x),
                    "op {pc}: excess {} costs {here}, {x} less",
                    plan.excess[pc]
                );
            }
            total += here;
        }
        // The first way's excess everywhere, worked out in program order.
        let mut first = vec![0i32; prog.ops.len()];
        for pc in 0..prog.ops.len() {
            first[pc] = ways(&prog.ops, &first, &plan.loop_exit)[pc]
                .first()
                .map_or(0, |w| w.0);
        }
        let baseline: u32 = ways(&prog.ops, &first, &plan.loop_exit)
            .iter()
            .enumerate()
            .map(|(pc, w)| cost(w, first[pc]))
            .sum();
        assert!(
            total < baseline,
            "{total} count moves, {baseline} taking the first way's excess"
        );
    }

    /// A loop whose latch comes before its body and jumps over the code
    /// after the loop: that code goes out of line, the latch's test is
    /// inverted, and the loop's body follows the latch.
    #[test]
    fn a_latch_before_its_body_falls_into_it() {
        let src = "mov %r0, 0\nmov %r2, 0\nja head\n\
                   latch:\nadd %r2, 1\njne %r2, 100, head\nmov %r0, %r2\nexit\n\
                   head:\nadd %r0, %r2\nja latch\n";
        let slots = bpfkit_isa::asm::assemble(src, bpfkit_isa::Dialect::Conformance).unwrap();
        let prog = crate::Program::new(&slots).unwrap();
        let plan = Plan::new(&prog.ops, &[], &[]);
        assert_eq!(plan.tail[4], Tail::Over(7));
        assert_eq!(&plan.tail[5..7], &[Tail::Moved, Tail::Moved]);
        let (c, _) = compiled(src);
        assert!(
            c.offsets[5] > c.offsets[8],
            "the exit region comes after the body"
        );
        // The latch's jump is the last instruction before the body, and
        // leads to the exit region.
        let mut d = Decoder::with_ip(64, &c.code, 0, DecoderOptions::NONE);
        d.set_position(c.offsets[4] as usize).unwrap();
        d.set_ip(u64::from(c.offsets[4]));
        let mut last = None;
        while d.ip() < u64::from(c.offsets[7]) {
            last = Some(d.decode());
        }
        let jcc = last.expect("the latch has code");
        assert_eq!(jcc.next_ip(), u64::from(c.offsets[7]));
        assert_eq!(jcc.code(), Code::Je_rel8_64);
        let target = jcc.near_branch_target();
        assert!(target > u64::from(c.offsets[8]) && target <= u64::from(c.offsets[5]));
    }

    /// Loop heads, and the heads of uncounted copies, start 64-byte lines.
    #[test]
    fn loop_heads_start_a_line() {
        let src = "mov %r0, 0\nmov %r2, 0\n\
                   counted:\nadd %r0, %r2\nadd %r2, 1\njlt %r2, 100, counted\n\
                   ldxb %r3, [%r1+0]\n\
                   plain:\nadd %r0, 3\nsub %r3, 1\njne %r3, 0, plain\nexit\n";
        let (c, _) = compiled(src);
        assert_eq!(c.uncounted, 1);
        assert_eq!(c.offsets[2] % 64, 0, "{:#x}", c.offsets[2]);
        assert_eq!(c.offsets[6] % 64, 0, "{:#x}", c.offsets[6]);
        // The uncounted copy: after saving its counter, NOPs up to the line.
        let mut d = Decoder::with_ip(64, &c.code, 0, DecoderOptions::NONE);
        let mut after_save = false;
        let mut heads = 0;
        while d.can_decode() {
            let i = d.decode();
            if after_save && i.mnemonic() != iced_x86::Mnemonic::Nop {
                assert_eq!(i.ip() % 64, 0, "uncounted head at {:#x}", i.ip());
                heads += 1;
                after_save = false;
            }
            if i.mnemonic() == iced_x86::Mnemonic::Mov
                && i.op0_kind() == OpKind::Memory
                && i.memory_base() == iced_x86::Register::R12
                && i.memory_displacement64() == LOOP_BASE as u64
            {
                after_save = true;
            }
        }
        assert_eq!(heads, 1);
    }
}
