//! An x86-64 JIT compiler with the interpreter's observable behaviour.
//!
//! [`Jit`] compiles a [`Program`] once to native code and runs it with the
//! same results as [`crate::Interpreter`]: the same r0, memory effects and
//! [`Outcome::insns`], and the same [`VmError`] (variant, pc and fields) when
//! a run fails. It keeps the interpreter's counting scheme (the count moves
//! at control transfers only, by the deltas `program::lower` recorded) and
//! checks the budget at the same points, so even `BudgetExhausted` names
//! the same instruction.
//!
//! Compiled inline: every ALU, jump, byte-swap and frame-relative access,
//! checked loads and stores (a shared bounds-check routine scans the region
//! table the run mirrors for it; the stack region is checked against rbp),
//! LD_ABS/LD_IND, the aligned in-bounds `lock add` of `AtomicAdd64`, and
//! bpf-to-bpf calls as native calls. Through `extern "C"` trampolines into
//! Rust: helper calls (with bpf_loop, whose iterations the native code then
//! drives), the other atomics (`crate::atomic`, as the interpreter), and the
//! slow path of `AtomicAdd64`.
//!
//! Code is assembled with `dynasmrt` into a `Vec`, copied into an anonymous
//! mapping, and the mapping is switched from read+write to read+execute
//! before it runs (never both), and unmapped when the `Jit` is dropped.

mod emit;
mod encode;
mod exec;
mod values;

use crate::env::RunEnv;
use crate::helpers::{HelperContext, HelperError, Helpers};
use crate::memory::{Region, Regions};
use crate::program::{Bound, Kind, ProgRef, Program, FRAME_SIZE, MAX_FRAMES};
use crate::run_memory::{memory_entry, RunMemory, STACK_SIZE};
use crate::{Entry, LoadError, Outcome, VmError, DEFAULT_BUDGET};
use std::any::Any;
use std::sync::Arc;

// How the native code returns.
const ST_OK: u64 = 0;
const ST_OOB: u64 = 1;
const ST_BUDGET: u64 = 2;
const ST_DEPTH: u64 = 3;
/// A trampoline stopped the run; its result is in `Run::stop`.
const ST_STOP: u64 = 4;

// What a trampoline tells the native code.
const TR_CONTINUE: u64 = 0;
/// Run the bpf_loop set up in the context's `l_*` fields.
const TR_LOOP: u64 = 1;
const TR_STOP: u64 = 2;

/// The state native code reads and writes through r12. Field offsets are
/// baked into the code ([`ctx_off`]).
#[repr(C)]
struct Ctx {
    /// eBPF registers while Rust runs (trampolines, entry, exit); `[u64; 16]`
    /// as `crate::atomic::execute` takes them.
    regs: [u64; 16],
    /// The interpreter's `count` minus the budget: the code finds the
    /// budget spent when it reaches 0.
    count: i64,
    budget: i64,
    stack_top: u64,
    /// r10 at or below this cannot enter another frame (MAX_FRAMES).
    stack_limit: u64,
    /// The last address an access of 1, 2, 4, 8 bytes may start at in the
    /// stack region.
    stack_last: [u64; 4],
    /// The lowest r10 of the run, to clear the frames it used.
    min_fp: u64,
    /// The region table (the stack aside): all regions, and the writable
    /// ones.
    rd: *const TEntry,
    rd_end: *const TEntry,
    wr: *const TEntry,
    wr_end: *const TEntry,
    pkt_addr: u64,
    pkt_len: u64,
    scratch: u64,
    /// Copies of the table entries the last full check of a read and of a
    /// write found the access in (at first, entries nothing fits in): the
    /// code tests an access against them inline before it calls the full
    /// check.
    hot_rd: TEntry,
    hot_wr: TEntry,
    saved_rsp: u64,
    err_pc: u64,
    err_addr: u64,
    err_size: u64,
    err_write: u64,
    /// A bpf_loop to run: native address of the callback, its instruction
    /// index, ctx, iterations, and the call's return index.
    l_target: u64,
    l_entry: u64,
    l_ctx: u64,
    l_iters: u64,
    l_ret: u64,
    /// The counter of the counted loop running uncounted, as it entered
    /// (see [`values::CountedLoop`]).
    loop_base: u64,
    /// The [`Run`] in progress, for the trampolines.
    run: *mut (),
}

// SAFETY: the pointers in a context point into the `Jit` that owns it (its
// region tables) or at the run in progress, which holds the `Jit` mutably;
// they are only followed during a run, never through a shared reference.
unsafe impl Send for Ctx {}
// SAFETY: as above: `&Ctx` gives nothing to follow them with.
unsafe impl Sync for Ctx {}

impl Ctx {
    fn new() -> Ctx {
        Ctx {
            regs: [0; 16],
            count: 0,
            budget: 0,
            stack_top: 0,
            stack_limit: 0,
            stack_last: [0; 4],
            min_fp: 0,
            rd: std::ptr::null(),
            rd_end: std::ptr::null(),
            wr: std::ptr::null(),
            wr_end: std::ptr::null(),
            pkt_addr: 0,
            pkt_len: 0,
            scratch: 0,
            hot_rd: TEntry::NONE,
            hot_wr: TEntry::NONE,
            saved_rsp: 0,
            err_pc: 0,
            err_addr: 0,
            err_size: 0,
            err_write: 0,
            l_target: 0,
            l_entry: 0,
            l_ctx: 0,
            l_iters: 0,
            l_ret: 0,
            loop_base: 0,
            run: std::ptr::null_mut(),
        }
    }
}

mod ctx_off {
    use super::Ctx;
    use std::mem::offset_of;
    pub const REGS: i32 = offset_of!(Ctx, regs) as i32;
    pub const COUNT: i32 = offset_of!(Ctx, count) as i32;
    pub const STACK_TOP: i32 = offset_of!(Ctx, stack_top) as i32;
    pub const STACK_LIMIT: i32 = offset_of!(Ctx, stack_limit) as i32;
    pub const STACK_LAST: i32 = offset_of!(Ctx, stack_last) as i32;
    pub const MIN_FP: i32 = offset_of!(Ctx, min_fp) as i32;
    pub const RD: i32 = offset_of!(Ctx, rd) as i32;
    pub const RD_END: i32 = offset_of!(Ctx, rd_end) as i32;
    pub const WR: i32 = offset_of!(Ctx, wr) as i32;
    pub const WR_END: i32 = offset_of!(Ctx, wr_end) as i32;
    pub const PKT_ADDR: i32 = offset_of!(Ctx, pkt_addr) as i32;
    pub const PKT_LEN: i32 = offset_of!(Ctx, pkt_len) as i32;
    pub const SCRATCH: i32 = offset_of!(Ctx, scratch) as i32;
    pub const HOT_RD: i32 = offset_of!(Ctx, hot_rd) as i32;
    pub const HOT_WR: i32 = offset_of!(Ctx, hot_wr) as i32;
    pub const SAVED_RSP: i32 = offset_of!(Ctx, saved_rsp) as i32;
    pub const ERR_PC: i32 = offset_of!(Ctx, err_pc) as i32;
    pub const ERR_ADDR: i32 = offset_of!(Ctx, err_addr) as i32;
    pub const ERR_SIZE: i32 = offset_of!(Ctx, err_size) as i32;
    pub const ERR_WRITE: i32 = offset_of!(Ctx, err_write) as i32;
    pub const L_TARGET: i32 = offset_of!(Ctx, l_target) as i32;
    pub const L_ENTRY: i32 = offset_of!(Ctx, l_entry) as i32;
    pub const L_CTX: i32 = offset_of!(Ctx, l_ctx) as i32;
    pub const L_ITERS: i32 = offset_of!(Ctx, l_iters) as i32;
    pub const L_RET: i32 = offset_of!(Ctx, l_ret) as i32;
    pub const LOOP_BASE: i32 = offset_of!(Ctx, loop_base) as i32;
}

/// One region as the bounds check reads it: for each access size (1, 2, 4,
/// 8 bytes), the first and last address an access may start at. A region
/// shorter than the size gets an empty range.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct TEntry {
    first: [u64; 4],
    last: [u64; 4],
}

impl TEntry {
    const NONE: TEntry = TEntry {
        first: [u64::MAX; 4],
        last: [0; 4],
    };

    fn of(r: &Region) -> TEntry {
        let mut e = TEntry {
            first: [u64::MAX; 4],
            last: [0; 4],
        };
        for k in 0..4 {
            let size = 1u64 << k;
            if r.len() >= size {
                e.first[k] = r.start;
                e.last[k] = r.end - size;
            }
        }
        e
    }
}

/// The native copies of the region table (the stack aside) the code scans,
/// and the regions they were built from.
#[derive(Default)]
struct Tables {
    rd: Vec<TEntry>,
    wr: Vec<TEntry>,
    from: Vec<Region>,
    skip0: bool,
}

/// How the JIT compiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitOptions {
    /// Constant blinding, as the kernel's `bpf_jit_harden`: every immediate
    /// of an ALU operation, jump, store or 64-bit load reaches the machine
    /// code only xored with a random key drawn for this compilation (and
    /// the key as a separate constant), so a program's constants cannot
    /// plant chosen bytes in executable memory. Shift counts (6 bits) are
    /// left as they are.
    pub blinding: bool,
}

/// A program compiled to x86-64, with the interface of
/// [`crate::Interpreter`]. Owns its stack and region table, so a run
/// allocates nothing once the region table has grown; create one per thread.
pub struct Jit<'p> {
    prog: Bound<'p>,
    /// The code, which may rely on the input being `need` bytes long.
    code: Code,
    need: InputNeed,
    /// Whether the program has an op that can write memory (a store, an
    /// atomic, a helper call): without one, the stack stays as it was
    /// (zero) and needs no clearing between runs.
    writes: bool,
    /// Code that checks every input access, for inputs shorter than
    /// `need`: compiled on the first such run.
    checked: Option<Box<Code>>,
    blind: Option<u32>,
    mem: RunMemory,
    tables: Tables,
    /// The run context, kept between runs: most of it does not change.
    ctx: Box<Ctx>,
    budget: u64,
    /// The environment of [`Self::run`] (which takes none).
    own_env: Option<Box<RunEnv>>,
    /// What the last [`Self::run`] set up and mirrored into the native
    /// tables (see [`Repeat`]); valid while the region table's version is
    /// the one recorded.
    repeat: Option<Repeat>,
}

/// A run of [`Jit::run`] on the same memory as the last, in an unchanged
/// map registry, sets up the same region table: the table (and the
/// native tables mirrored from it) are kept, and only the stack is made
/// ready again. `version` is the table's version after that setup: any
/// change since (a helper, or a run through another entry point) moves it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Repeat {
    mem: (usize, usize),
    maps: (usize, u64),
    version: u64,
}

/// Machine code for one program.
struct Code {
    mem: exec::ExecMem,
    len: usize,
    proved: usize,
    proved_input: usize,
    uncounted: usize,
    exits_moved: usize,
    /// Offset of each op's code (by slot), for bpf_loop callbacks.
    offsets: Vec<u32>,
}

impl Code {
    fn new(
        ops: &[crate::program::Op],
        entries: &[usize],
        proofs: values::Proofs,
        blind: Option<u32>,
    ) -> Result<Code, std::io::Error> {
        let tramps = emit::Tramps {
            helper: helper_tramp as *const () as usize,
            atomic: atomic_tramp as *const () as usize,
        };
        let compiled = emit::compile(ops, entries, proofs, &tramps, blind);
        Ok(Code {
            mem: exec::ExecMem::new(&compiled.code)?,
            len: compiled.code.len(),
            proved: compiled.proved,
            proved_input: compiled.proved_input,
            uncounted: compiled.uncounted,
            exits_moved: compiled.exits_moved,
            offsets: compiled.offsets,
        })
    }
}

/// How much of the region at entry r1 the code's unchecked input accesses
/// reach: loads, stores (0: none).
#[derive(Clone, Copy, Debug, Default)]
struct InputNeed {
    read: u64,
    write: u64,
}

impl InputNeed {
    /// Whether `regions` give `start` the bytes this needs.
    fn met(&self, start: u64, regions: &[Region]) -> bool {
        let ok = |need: u64, write: bool| {
            need == 0
                || regions.iter().any(|r| {
                    r.start <= start
                        && start.checked_add(need).is_some_and(|end| end <= r.end)
                        && (r.writable || !write)
                })
        };
        ok(self.read, false) && ok(self.write, true)
    }
}

impl<'p> Jit<'p> {
    /// Compiles a program bound to a helper registry. Fails if the program
    /// calls a helper the registry lacks, or the system refuses executable
    /// memory.
    pub fn new(prog: &'p Program, helpers: &Helpers) -> Result<Self, LoadError> {
        Self::with(ProgRef::Borrowed(prog), helpers, JitOptions::default())
    }

    /// Like [`Self::new`], with options.
    pub fn with_options(
        prog: &'p Program,
        helpers: &Helpers,
        options: JitOptions,
    ) -> Result<Self, LoadError> {
        Self::with(ProgRef::Borrowed(prog), helpers, options)
    }

    /// Like [`Self::with_options`], for a program shared by reference count.
    pub fn shared(
        prog: Arc<Program>,
        helpers: &Helpers,
        options: JitOptions,
    ) -> Result<Jit<'static>, LoadError> {
        Jit::with(ProgRef::Shared(prog), helpers, options)
    }

    fn with(prog: ProgRef<'p>, helpers: &Helpers, options: JitOptions) -> Result<Self, LoadError> {
        let prog = Bound::new(prog, helpers)?;
        let blind = options.blinding.then(blinding_key);
        let callbacks = prog.callback_slots();
        let writes = writes_memory(&prog.ops);
        let proofs = values::analyse(&prog.ops, &callbacks);
        let need = InputNeed {
            read: proofs.input_read,
            write: proofs.input_write,
        };
        let code = Code::new(&prog.ops, &callbacks, proofs, blind)
            .map_err(|e| LoadError::ExecMemory(e.to_string()))?;
        Ok(Jit {
            prog,
            code,
            need,
            writes,
            checked: None,
            blind,
            mem: RunMemory::new(),
            tables: Tables::default(),
            ctx: Box::new(Ctx::new()),
            budget: DEFAULT_BUDGET,
            own_env: None,
            repeat: None,
        })
    }

    /// Sets how many instructions a run may execute before it is stopped.
    pub fn set_budget(&mut self, budget: u64) -> &mut Self {
        self.budget = budget;
        self
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes of machine code.
    pub fn code_len(&self) -> usize {
        self.code.len
    }

    /// How many loads and stores through computed pointers the JIT proved
    /// to stay inside the current stack frame, and runs unchecked.
    pub fn proved_in_frame(&self) -> usize {
        self.code.proved
    }

    /// How many loads and stores the JIT proved to stay inside the input
    /// (the region r1 points at on entry) when it is at least
    /// [`Self::input_needed`] bytes long, and runs unchecked on such inputs.
    pub fn proved_in_input(&self) -> usize {
        self.code.proved_input
    }

    /// How many loops the JIT bounded (a counter stepping to a limit, one
    /// path round): each has a copy without the instruction count, which
    /// runs when the budget left covers every pass the loop can make.
    pub fn uncounted_loops(&self) -> usize {
        self.code.uncounted
    }

    /// How many exit regions (the code a forward conditional jump passes
    /// over when what it passes over ends in `exit`, as after a loop whose
    /// latch comes before its body) the JIT moved out of line, so that the
    /// jump's taken path falls through.
    pub fn exits_out_of_line(&self) -> usize {
        self.code.exits_moved
    }

    /// Bytes of input from r1 the unchecked input accesses need (0: none);
    /// a run on a shorter input (or a read-only one, when the program
    /// stores into it) runs code that checks them, compiled on the first
    /// such run.
    pub fn input_needed(&self) -> u64 {
        self.need.read.max(self.need.write)
    }

    /// Whether the code that checks every input access has been compiled.
    pub fn has_checked_code(&self) -> bool {
        self.checked.is_some()
    }

    /// The machine code, as it runs on inputs of [`Self::input_needed`]
    /// bytes or more.
    pub fn machine_code(&self) -> &[u8] {
        self.code.mem.bytes(self.code.len)
    }

    /// As [`crate::Interpreter::run`]: `r1` points at `mem` (0 when empty),
    /// `r2` holds its length, and `mem` is the LD_ABS/LD_IND packet.
    pub fn run(&mut self, mem: &mut [u8]) -> Result<Outcome, VmError> {
        let mut env = self.own_env.take().unwrap_or_default();
        let key = Repeat {
            // Exposed as `Regions::add_rw` does: this may be another
            // allocation at the same address as the last run's.
            mem: (mem.as_mut_ptr().expose_provenance(), mem.len()),
            maps: (Arc::as_ptr(&env.maps).addr(), env.maps.generation()),
            version: self.mem.regions.version(),
        };
        let out = if self.repeat == Some(key) {
            self.mem.reenter();
            let (addr, len) = match mem.len() {
                0 => (0, 0),
                n => (key.mem.0 as u64, n as u64),
            };
            self.execute([addr, len, 0, 0, 0], (addr, len), &mut env, false)
        } else {
            let entry = self
                .mem
                .enter(&mut env, |_, regions| memory_entry(regions, mem));
            let version = self.mem.regions.version();
            let out = self.execute(entry.args, entry.packet, &mut env, true);
            // A failure to map the checked code returns before the native
            // tables are mirrored: nothing to reuse then.
            self.repeat = match out {
                Err(VmError::ExecMemory { .. }) => None,
                _ => Some(Repeat { version, ..key }),
            };
            out
        };
        self.own_env = Some(env);
        out
    }

    /// As [`crate::Interpreter::run_with`].
    pub fn run_with(
        &mut self,
        env: &mut RunEnv,
        setup: impl FnOnce(&mut Regions) -> Entry,
    ) -> Result<Outcome, VmError> {
        self.run_in(env, |_, regions| setup(regions))
    }

    /// As [`crate::Interpreter::run_in`].
    pub fn run_in(
        &mut self,
        env: &mut RunEnv,
        setup: impl FnOnce(&mut RunEnv, &mut Regions) -> Entry,
    ) -> Result<Outcome, VmError> {
        let entry = self.mem.enter(env, setup);
        self.execute(entry.args, entry.packet, env, true)
    }

    /// Runs the code on the region table set up for this run; `mirror`:
    /// whether the native tables may differ from it.
    fn execute(
        &mut self,
        args: [u64; 5],
        packet: (u64, u64),
        env: &mut RunEnv,
        mirror: bool,
    ) -> Result<Outcome, VmError> {
        let fast = self.need.met(args[0], self.mem.regions.as_slice());
        if !fast && self.checked.is_none() {
            let callbacks = self.prog.callback_slots();
            let proofs = values::analyse(&self.prog.ops, &callbacks).without_input();
            match Code::new(&self.prog.ops, &callbacks, proofs, self.blind) {
                Ok(c) => self.checked = Some(Box::new(c)),
                Err(e) => {
                    return Err(VmError::ExecMemory {
                        pc: 0,
                        message: e.to_string(),
                    })
                }
            }
        }
        let code = match &self.checked {
            Some(c) if !fast => c,
            _ => &self.code,
        };
        let stack_base = self.mem.stack.as_mut_ptr().cast::<u8>().addr() as u64;
        let top = stack_base + STACK_SIZE as u64;
        let budget = self.budget.min(i64::MAX as u64) as i64;
        // The context persists between runs (a fresh one showed in short
        // programs' run time): only what a run may have changed is set.
        let ctx = &mut *self.ctx;
        ctx.regs[..11].copy_from_slice(&[
            0, args[0], args[1], args[2], args[3], args[4], 0, 0, 0, 0, top,
        ]);
        ctx.count = -budget;
        ctx.budget = budget;
        ctx.stack_top = top;
        ctx.stack_limit = stack_base + FRAME_SIZE as u64;
        ctx.stack_last = [top - 1, top - 2, top - 4, top - 8];
        ctx.min_fp = top;
        ctx.pkt_addr = packet.0;
        ctx.pkt_len = packet.1;
        let mut run = Run {
            ctx,
            prog: &self.prog,
            regions: &mut self.mem.regions,
            env,
            tables: &mut self.tables,
            code: code.mem.addr() as u64,
            offsets: &code.offsets,
            stop: None,
            panic: None,
        };
        run.ctx.run = (&mut run as *mut Run<'_>).cast();
        if mirror {
            run.mirror();
        }
        // SAFETY: the mapping holds code `emit::compile` produced, whose
        // entry at offset 0 has this signature.
        let entry: unsafe extern "sysv64" fn(*mut Ctx) -> u64 =
            unsafe { std::mem::transmute(code.mem.addr()) };
        // SAFETY: `run` and its context outlive the call, and the context
        // points back at `run` for the trampolines. Every
        // region in the table is live for the run (the contract of
        // `Regions::add_*`), and the code touches memory only through it,
        // the stack, or frame offsets proved in-frame at load time.
        let ctx_ptr: *mut Ctx = &mut *run.ctx;
        let status = unsafe { entry(ctx_ptr) };
        let ctx = &*run.ctx;
        self.mem.dirty_frames = if self.writes {
            (top - ctx.min_fp) as usize / FRAME_SIZE + 1
        } else {
            0
        };
        if let Some(p) = run.panic.take() {
            std::panic::resume_unwind(p);
        }
        let pc = ctx.err_pc as usize;
        match status {
            ST_OK => Ok(Outcome {
                r0: ctx.regs[0],
                insns: (ctx.count + budget) as u64,
            }),
            ST_OOB => Err(VmError::OutOfBounds {
                pc,
                addr: ctx.err_addr,
                size: ctx.err_size as usize,
                write: ctx.err_write != 0,
            }),
            ST_BUDGET => Err(VmError::BudgetExhausted {
                pc,
                budget: budget as u64,
            }),
            ST_DEPTH => Err(VmError::CallDepth {
                pc,
                max: MAX_FRAMES,
            }),
            _ => run
                .stop
                .take()
                .expect("a stopping trampoline leaves its result"),
        }
    }
}

/// Whether any op of `ops` may write memory.
fn writes_memory(ops: &[crate::program::Op]) -> bool {
    use Kind::*;
    ops.iter().any(|op| {
        op.kind.is_store()
            || matches!(
                op.kind,
                AtomicAdd64
                    | Atomic32
                    | Atomic64
                    | AtomicStoreB
                    | AtomicStoreH
                    | AtomicStoreW
                    | AtomicStoreDW
                    | Call
                    | CallReg
            )
    })
}

/// A fresh random key for constant blinding (from the kernel's random
/// pool; the std hasher's random keys where getrandom fails).
fn blinding_key() -> u32 {
    let mut key = [0u8; 4];
    // SAFETY: `key` is writable for its length.
    let n = unsafe { libc::getrandom(key.as_mut_ptr().cast(), key.len(), 0) };
    if n == key.len() as isize {
        return u32::from_ne_bytes(key);
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_usize(&key as *const _ as usize);
    h.finish() as u32
}

/// A run in progress: the context the code sees, then what the trampolines
/// need.
#[repr(C)]
struct Run<'a> {
    ctx: &'a mut Ctx,
    prog: &'a Bound<'a>,
    regions: &'a mut Regions,
    env: &'a mut RunEnv,
    tables: &'a mut Tables,
    /// Address of the code.
    code: u64,
    offsets: &'a [u32],
    stop: Option<Result<Outcome, VmError>>,
    panic: Option<Box<dyn Any + Send>>,
}

impl Run<'_> {
    /// The stack region as the interpreter keeps it: the current frame and
    /// the frames of its callers.
    fn stack_region(&self) -> Region {
        Region {
            start: self.ctx.regs[10] - FRAME_SIZE as u64,
            end: self.ctx.stack_top,
            writable: true,
        }
    }

    /// Brings region 0 (the stack) up to date before Rust looks at regions.
    fn sync_stack(&mut self) {
        let start = self.stack_region().start;
        self.regions.set_start(0, start);
    }

    /// Rebuilds the native region tables from the region table. The stack
    /// (region 0) is checked against rbp instead, as its start moves with
    /// every call.
    fn mirror(&mut self) {
        let stack = self.stack_region();
        let regions = self.regions.as_slice();
        let skip0 = regions.first() == Some(&stack);
        let t = &mut *self.tables;
        // Runs of one program on one context see the same regions: the
        // tables are rebuilt only when the regions differ.
        if t.skip0 != skip0 || t.from != regions {
            t.rd.clear();
            t.wr.clear();
            for r in &regions[skip0 as usize..] {
                let e = TEntry::of(r);
                t.rd.push(e);
                if r.writable {
                    t.wr.push(e);
                }
            }
            t.from.clear();
            t.from.extend_from_slice(regions);
            t.skip0 = skip0;
            self.ctx.rd = t.rd.as_ptr();
            self.ctx.rd_end = t.rd.as_ptr_range().end;
            self.ctx.wr = t.wr.as_ptr();
            self.ctx.wr_end = t.wr.as_ptr_range().end;
            // The regions changed: none is hot until the next check. (With
            // the same regions, the hot entries, copies of table entries,
            // still hold: the next run starts where this one left off.)
            self.ctx.hot_rd = TEntry::NONE;
            self.ctx.hot_wr = TEntry::NONE;
        }
    }

    fn fail(&mut self, e: VmError) -> u64 {
        self.stop = Some(Err(e));
        TR_STOP
    }

    /// A helper call, as the interpreter's `Call | CallReg`.
    fn helper(&mut self, pc: usize) -> u64 {
        self.sync_stack();
        let op = self.prog.ops[pc];
        let prog = self.prog;
        let id = if op.kind == Kind::Call {
            op.lo() as u32 as u64
        } else {
            self.ctx.regs[op.dst as usize & 15]
        };
        let Some(f) = prog.helper(id) else {
            return self.fail(VmError::UnknownHelper { pc, id });
        };
        let budget = self.ctx.budget;
        let executed = self.ctx.count + budget + op.hi() as i64;
        let r = &self.ctx.regs;
        let args = [r[1], r[2], r[3], r[4], r[5]];
        let before = self.regions.version();
        let result = {
            let mut hctx = HelperContext {
                regions: &mut *self.regions,
                env: &mut *self.env,
            };
            f(&mut hctx, args)
        };
        if self.regions.version() != before {
            self.mirror();
        }
        match result {
            Ok(v) => self.ctx.regs[0] = v,
            Err(HelperError::Exit(v)) => {
                self.stop = Some(Ok(Outcome {
                    r0: v,
                    insns: executed as u64,
                }));
                return TR_STOP;
            }
            Err(HelperError::Failed(message)) => {
                return self.fail(VmError::Helper {
                    pc,
                    id: id as u32,
                    message,
                })
            }
            Err(HelperError::Loop {
                callback,
                iterations,
                ctx,
            }) => {
                let Some((slot, entry_idx)) = self.prog.callback(callback) else {
                    return self.fail(VmError::BadCallback { pc, addr: callback });
                };
                if iterations == 0 {
                    self.ctx.regs[0] = 0;
                } else {
                    let depth = (self.ctx.stack_top - self.ctx.regs[10]) as usize / FRAME_SIZE;
                    if depth + 1 >= MAX_FRAMES {
                        return self.fail(VmError::CallDepth {
                            pc,
                            max: MAX_FRAMES,
                        });
                    }
                    let count = executed - entry_idx as i64;
                    if count >= budget {
                        return self.fail(VmError::BudgetExhausted {
                            pc,
                            budget: budget as u64,
                        });
                    }
                    self.ctx.count = count - budget;
                    self.ctx.regs[1] = 0;
                    self.ctx.regs[2] = ctx;
                    self.ctx.l_target = self.code + self.offsets[slot] as u64;
                    self.ctx.l_entry = entry_idx as u64;
                    self.ctx.l_ctx = ctx;
                    self.ctx.l_iters = iterations as u64;
                    self.ctx.l_ret = op.hi() as i64 as u64;
                    return TR_LOOP;
                }
            }
        }
        if executed >= budget {
            return self.fail(VmError::BudgetExhausted {
                pc,
                budget: budget as u64,
            });
        }
        TR_CONTINUE
    }

    /// An atomic the code does not do inline: the interpreter's path.
    fn atomic(&mut self, pc: usize) -> u64 {
        self.sync_stack();
        let op = self.prog.ops[pc];
        match crate::atomic::execute(self.regions, &op, pc, &mut self.ctx.regs) {
            Ok(()) => TR_CONTINUE,
            Err(e) => self.fail(e),
        }
    }
}

/// Runs `f` on the run behind `ctx`, turning a panic into a stop that
/// `execute` resumes once the native frames are gone (unwinding must not
/// cross them).
///
/// # Safety
/// `ctx` is the pointer `execute` entered the code with.
unsafe fn trampoline(ctx: *mut Ctx, f: impl FnOnce(&mut Run<'_>) -> u64) -> u64 {
    // SAFETY: per the contract, `ctx` is the context of a live `Run`, which
    // its `run` field points at and nothing else borrows while the native
    // code waits for us.
    let run = unsafe { &mut *(*ctx).run.cast::<Run<'_>>() };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut *run))) {
        Ok(status) => status,
        Err(p) => {
            run.panic = Some(p);
            TR_STOP
        }
    }
}

extern "C" fn helper_tramp(ctx: *mut Ctx, pc: u64) -> u64 {
    // SAFETY: called only by the JIT's code, with its context.
    unsafe { trampoline(ctx, |run| run.helper(pc as usize)) }
}

extern "C" fn atomic_tramp(ctx: *mut Ctx, pc: u64) -> u64 {
    // SAFETY: called only by the JIT's code, with its context.
    unsafe { trampoline(ctx, |run| run.atomic(pc as usize)) }
}
