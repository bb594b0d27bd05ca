//! The interpreter: a dense `match` over pre-decoded operations.

use crate::env::RunEnv;
use crate::helpers::{HelperContext, HelperError, Helpers};
use crate::memory::Regions;
use crate::program::{Bound, Kind, Op, ProgRef, Program, FRAME_SIZE, MAX_FRAMES};
use crate::run_memory::{memory_entry, RunMemory, STACK_SIZE};
use crate::{LoadError, VmError};
use std::sync::Arc;

/// The default instruction budget of a run.
pub const DEFAULT_BUDGET: u64 = 100_000_000;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// r0 at exit.
    pub r0: u64,
    /// Instructions executed (LDDW counts once).
    pub insns: u64,
}

#[repr(align(64))]
struct RegFile([u64; 16]);

#[derive(Clone, Copy)]
struct Frame {
    ret: *const Op,
    /// Instruction index of the return point, for the count.
    ret_idx: i64,
    saved: [u64; 4],
    /// A bpf_loop callback frame: on exit the loop may call again.
    is_loop: bool,
}

/// The state of a bpf_loop in progress (one per frame depth).
#[derive(Clone, Copy, Default)]
struct LoopState {
    slot: usize,
    /// Instruction index of the callback's entry, for the count.
    entry_idx: i64,
    done: u32,
    iterations: u32,
    ctx: u64,
}

/// How a run starts: r1..r5, and the packet LD_ABS/LD_IND read (address,
/// length).
#[derive(Clone, Copy, Debug, Default)]
pub struct Entry {
    pub args: [u64; 5],
    pub packet: (u64, u64),
}

/// Runs one program. Owns the stack and the region table, so a run allocates
/// nothing; create one per thread.
pub struct Interpreter<'p> {
    prog: Bound<'p>,
    mem: RunMemory,
    budget: u64,
    /// The environment of [`Self::run`] (which takes none).
    own_env: Option<Box<RunEnv>>,
}

impl<'p> Interpreter<'p> {
    /// Binds a program to a helper registry. Fails if the program calls a
    /// helper the registry lacks.
    pub fn new(prog: &'p Program, helpers: &Helpers) -> Result<Self, LoadError> {
        Self::with(ProgRef::Borrowed(prog), helpers)
    }

    /// Like [`Self::new`], for a program shared by reference count.
    pub fn shared(
        prog: Arc<Program>,
        helpers: &Helpers,
    ) -> Result<Interpreter<'static>, LoadError> {
        Interpreter::with(ProgRef::Shared(prog), helpers)
    }

    fn with(prog: ProgRef<'p>, helpers: &Helpers) -> Result<Self, LoadError> {
        Ok(Interpreter {
            prog: Bound::new(prog, helpers)?,
            mem: RunMemory::new(),
            budget: DEFAULT_BUDGET,
            own_env: None,
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

    /// Runs with `r1` pointing at `mem` (0 when it is empty) and `r2` holding
    /// its length; `mem` is also the packet legacy LD_ABS/LD_IND loads read.
    pub fn run(&mut self, mem: &mut [u8]) -> Result<Outcome, VmError> {
        let mut env = self.own_env.take().unwrap_or_default();
        let out = self.run_with(&mut env, |regions| memory_entry(regions, mem));
        self.own_env = Some(env);
        out
    }

    /// Runs in `env` (maps, CPU, packet context): `setup` adds the regions of
    /// the run's context and packet after the stack and returns the entry
    /// registers; the regions of `env`'s maps follow.
    pub fn run_with(
        &mut self,
        env: &mut RunEnv,
        setup: impl FnOnce(&mut Regions) -> Entry,
    ) -> Result<Outcome, VmError> {
        self.run_in(env, |_, regions| setup(regions))
    }

    /// Like [`Self::run_with`], with `setup` also given the environment (to
    /// place the packet context it holds).
    pub fn run_in(
        &mut self,
        env: &mut RunEnv,
        setup: impl FnOnce(&mut RunEnv, &mut Regions) -> Entry,
    ) -> Result<Outcome, VmError> {
        let entry = self.mem.enter(env, setup);
        self.execute(entry.args, entry.packet, env)
    }

    fn execute(
        &mut self,
        args: [u64; 5],
        packet: (u64, u64),
        env: &mut RunEnv,
    ) -> Result<Outcome, VmError> {
        let ops: &[Op] = &self.prog.ops;
        let stack_ptr = self.mem.stack.as_mut_ptr().cast::<u8>();
        let stack_base = stack_ptr.addr() as u64;
        // Cache-line aligned: an unaligned register file straddling lines made
        // run time vary by a third from one process to the next.
        let mut file = RegFile([0u64; 16]);
        let regs = &mut file.0;
        regs[1..6].copy_from_slice(&args);
        // Offset of the current frame's top in the stack. Constant-offset frame
        // accesses use it rather than r10, so they stay inside the stack even
        // if a bug ever let a program write r10.
        let mut fp = STACK_SIZE;
        regs[10] = stack_base + fp as u64;
        let mut frames = [Frame {
            ret: std::ptr::null(),
            ret_idx: 0,
            saved: [0; 4],
            is_loop: false,
        }; MAX_FRAMES];
        let mut loops = [LoopState::default(); MAX_FRAMES];
        let mut depth = 0usize;
        // Executed instructions, counted at control transfers only: each op
        // that ends a straight-line run carries the count bookkeeping (see
        // `program::lower`). Between transfers `count` lags the true count by
        // the index of the run's first instruction, so the budget, checked on
        // backward jumps and calls, holds to within one program length.
        let mut count: i64 = 0;
        let budget = self.budget.min(i64::MAX as u64) as i64;
        let base: *const Op = ops.as_ptr();
        let mut ip = base;

        macro_rules! oob {
            ($addr:expr, $size:expr, $write:expr) => {
                return Err(VmError::OutOfBounds {
                    pc: cur!(),
                    addr: $addr,
                    size: $size,
                    write: $write,
                })
            };
        }

        // The slot index of the executing op (for errors: off the hot path).
        macro_rules! cur {
            // SAFETY: ip points one past the executing op, inside `ops`.
            () => {
                unsafe { ip.offset_from(base) as usize - 1 }
            };
        }
        macro_rules! goto {
            // SAFETY: validated targets are indices inside `ops`.
            ($t:expr) => {
                ip = unsafe { base.add($t as usize) }
            };
        }
        macro_rules! budget_check {
            () => {
                if count >= budget {
                    return Err(VmError::BudgetExhausted {
                        pc: cur!(),
                        budget: budget as u64,
                    });
                }
            };
        }

        loop {
            // SAFETY: validation guarantees every jump target is an op index
            // and the last instruction cannot fall through; `ops` ends with an
            // `Unreachable` sentinel, so `ip` never leaves `ops`.
            let op = unsafe { &*ip };
            ip = unsafe { ip.add(1) };
            let d = op.dst as usize;
            let s = op.src as usize;
            // SAFETY: ops are built from `Reg`s, which are at most 10.
            unsafe {
                std::hint::assert_unchecked(d < 11);
                std::hint::assert_unchecked(s < 11);
            }

            macro_rules! alu64 {
                (|$a:ident, $b:ident| $e:expr, $b_val:expr) => {{
                    let $a = regs[d];
                    let $b = $b_val;
                    regs[d] = $e;
                }};
            }
            macro_rules! alu32 {
                (|$a:ident, $b:ident| $e:expr, $b_val:expr) => {{
                    let $a = regs[d] as u32;
                    let $b = $b_val as u32;
                    regs[d] = ($e) as u32 as u64;
                }};
            }
            macro_rules! jump {
                ($cond:expr) => {{
                    if $cond {
                        let delta = op.hi() as i64;
                        count += delta;
                        // A positive delta means the target is not ahead.
                        if delta > 0 {
                            budget_check!();
                        }
                        goto!(op.aux);
                    }
                }};
            }
            macro_rules! load {
                ($ty:ty) => {{
                    let addr = regs[s].wrapping_add(op.aux as i64 as u64);
                    match self
                        .mem
                        .regions
                        .translate(addr, std::mem::size_of::<$ty>(), false)
                    {
                        // SAFETY: translate checked the range lies in a live region.
                        Some(p) => unsafe { p.cast::<$ty>().read_unaligned() },
                        None => oob!(addr, std::mem::size_of::<$ty>(), false),
                    }
                }};
            }
            macro_rules! store {
                ($ty:ty, $val:expr) => {{
                    let addr = regs[d].wrapping_add(op.aux as i64 as u64);
                    match self
                        .mem
                        .regions
                        .translate(addr, std::mem::size_of::<$ty>(), true)
                    {
                        // SAFETY: translate checked the range lies in a live writable region.
                        Some(p) => unsafe { p.cast::<$ty>().write_unaligned($val as $ty) },
                        None => oob!(addr, std::mem::size_of::<$ty>(), true),
                    }
                }};
            }
            // Constant-offset frame accesses were proved in-frame at decode
            // time, and r10 always points at the top of a frame in the stack.
            macro_rules! fp_ptr {
                () => {{
                    // SAFETY: fp is a frame top within the stack and
                    // -FRAME_SIZE <= off, off + size <= 0 (checked in lowering).
                    unsafe { stack_ptr.add(fp).offset(op.aux as isize) }
                }};
            }
            macro_rules! fp_load {
                ($ty:ty) => {{
                    let p = fp_ptr!().cast::<$ty>();
                    // SAFETY: see fp_ptr.
                    unsafe { p.read_unaligned() }
                }};
            }
            macro_rules! fp_store {
                ($ty:ty, $val:expr) => {{
                    let p = fp_ptr!().cast::<$ty>();
                    // SAFETY: see fp_ptr.
                    unsafe { p.write_unaligned($val as $ty) }
                }};
            }

            use Kind::*;
            match op.kind {
                Add64I => alu64!(|a, b| a.wrapping_add(b), op.imm),
                Sub64I => alu64!(|a, b| a.wrapping_sub(b), op.imm),
                Mul64I => alu64!(|a, b| a.wrapping_mul(b), op.imm),
                Div64I => alu64!(|a, b| a.checked_div(b).unwrap_or(0), op.imm),
                SDiv64I => alu64!(|a, b| sdiv64(a, b), op.imm),
                Or64I => alu64!(|a, b| a | b, op.imm),
                And64I => alu64!(|a, b| a & b, op.imm),
                Lsh64I => alu64!(|a, b| a.wrapping_shl(b as u32), op.imm),
                Rsh64I => alu64!(|a, b| a.wrapping_shr(b as u32), op.imm),
                Mod64I => alu64!(|a, b| a.checked_rem(b).unwrap_or(a), op.imm),
                SMod64I => alu64!(|a, b| smod64(a, b), op.imm),
                Xor64I => alu64!(|a, b| a ^ b, op.imm),
                Mov64I => regs[d] = op.imm,
                Arsh64I => alu64!(|a, b| (a as i64).wrapping_shr(b as u32) as u64, op.imm),
                Add64R => alu64!(|a, b| a.wrapping_add(b), regs[s]),
                Sub64R => alu64!(|a, b| a.wrapping_sub(b), regs[s]),
                Mul64R => alu64!(|a, b| a.wrapping_mul(b), regs[s]),
                Div64R => alu64!(|a, b| a.checked_div(b).unwrap_or(0), regs[s]),
                SDiv64R => alu64!(|a, b| sdiv64(a, b), regs[s]),
                Or64R => alu64!(|a, b| a | b, regs[s]),
                And64R => alu64!(|a, b| a & b, regs[s]),
                Lsh64R => alu64!(|a, b| a.wrapping_shl(b as u32), regs[s]),
                Rsh64R => alu64!(|a, b| a.wrapping_shr(b as u32), regs[s]),
                Mod64R => alu64!(|a, b| a.checked_rem(b).unwrap_or(a), regs[s]),
                SMod64R => alu64!(|a, b| smod64(a, b), regs[s]),
                Xor64R => alu64!(|a, b| a ^ b, regs[s]),
                Mov64R => regs[d] = regs[s],
                Arsh64R => alu64!(|a, b| (a as i64).wrapping_shr(b as u32) as u64, regs[s]),
                MovSx8_64 => regs[d] = regs[s] as i8 as i64 as u64,
                MovSx16_64 => regs[d] = regs[s] as i16 as i64 as u64,
                MovSx32_64 => regs[d] = regs[s] as i32 as i64 as u64,
                Add32I => alu32!(|a, b| a.wrapping_add(b), op.imm),
                Sub32I => alu32!(|a, b| a.wrapping_sub(b), op.imm),
                Mul32I => alu32!(|a, b| a.wrapping_mul(b), op.imm),
                Div32I => alu32!(|a, b| a.checked_div(b).unwrap_or(0), op.imm),
                SDiv32I => alu32!(|a, b| sdiv32(a, b), op.imm),
                Or32I => alu32!(|a, b| a | b, op.imm),
                And32I => alu32!(|a, b| a & b, op.imm),
                Lsh32I => alu32!(|a, b| a.wrapping_shl(b), op.imm),
                Rsh32I => alu32!(|a, b| a.wrapping_shr(b), op.imm),
                Mod32I => alu32!(|a, b| a.checked_rem(b).unwrap_or(a), op.imm),
                SMod32I => alu32!(|a, b| smod32(a, b), op.imm),
                Xor32I => alu32!(|a, b| a ^ b, op.imm),
                Mov32I => regs[d] = op.imm,
                Arsh32I => alu32!(|a, b| (a as i32).wrapping_shr(b) as u32, op.imm),
                Add32R => alu32!(|a, b| a.wrapping_add(b), regs[s]),
                Sub32R => alu32!(|a, b| a.wrapping_sub(b), regs[s]),
                Mul32R => alu32!(|a, b| a.wrapping_mul(b), regs[s]),
                Div32R => alu32!(|a, b| a.checked_div(b).unwrap_or(0), regs[s]),
                SDiv32R => alu32!(|a, b| sdiv32(a, b), regs[s]),
                Or32R => alu32!(|a, b| a | b, regs[s]),
                And32R => alu32!(|a, b| a & b, regs[s]),
                Lsh32R => alu32!(|a, b| a.wrapping_shl(b), regs[s]),
                Rsh32R => alu32!(|a, b| a.wrapping_shr(b), regs[s]),
                Mod32R => alu32!(|a, b| a.checked_rem(b).unwrap_or(a), regs[s]),
                SMod32R => alu32!(|a, b| smod32(a, b), regs[s]),
                Xor32R => alu32!(|a, b| a ^ b, regs[s]),
                Mov32R => regs[d] = regs[s] as u32 as u64,
                Arsh32R => alu32!(|a, b| (a as i32).wrapping_shr(b) as u32, regs[s]),
                MovSx8_32 => regs[d] = regs[s] as i8 as i32 as u32 as u64,
                MovSx16_32 => regs[d] = regs[s] as i16 as i32 as u32 as u64,
                Neg64 => regs[d] = regs[d].wrapping_neg(),
                Neg32 => regs[d] = (regs[d] as u32).wrapping_neg() as u64,
                Le16 => regs[d] = regs[d] as u16 as u64,
                Le32 => regs[d] = regs[d] as u32 as u64,
                Be16 => regs[d] = (regs[d] as u16).swap_bytes() as u64,
                Be32 => regs[d] = (regs[d] as u32).swap_bytes() as u64,
                Be64 => regs[d] = regs[d].swap_bytes(),
                Nop => {}
                LdImm64 => {
                    regs[d] = op.imm;
                    // SAFETY: skips LDDW's second slot, which validation
                    // guarantees exists.
                    ip = unsafe { ip.add(1) };
                }
                LdAbsB | LdAbsH | LdAbsW | LdIndB | LdIndH | LdIndW => {
                    let size: u64 = match op.kind {
                        LdAbsB | LdIndB => 1,
                        LdAbsH | LdIndH => 2,
                        _ => 4,
                    };
                    let ind = if matches!(op.kind, LdIndB | LdIndH | LdIndW) {
                        regs[s] as u32 as i32 as i64
                    } else {
                        0
                    };
                    let off = ind + op.lo() as i64;
                    // Like the kernel: an access outside the packet ends the
                    // program with r0 = 0.
                    if off < 0 || off as u64 + size > packet.1 {
                        return Ok(Outcome {
                            r0: 0,
                            insns: (count + op.hi() as i64) as u64,
                        });
                    }
                    let addr = packet.0 + off as u64;
                    let p = match self.mem.regions.translate(addr, size as usize, false) {
                        Some(p) => p,
                        None => oob!(addr, size as usize, false),
                    };
                    // SAFETY: translate checked the range.
                    regs[0] = unsafe {
                        match size {
                            1 => p.read() as u64,
                            2 => u16::from_be(p.cast::<u16>().read_unaligned()) as u64,
                            _ => u32::from_be(p.cast::<u32>().read_unaligned()) as u64,
                        }
                    };
                }
                LdxB => regs[d] = load!(u8) as u64,
                LdxH => regs[d] = load!(u16) as u64,
                LdxW => regs[d] = load!(u32) as u64,
                LdxDW => regs[d] = load!(u64),
                LdxSB => regs[d] = load!(i8) as i64 as u64,
                LdxSH => regs[d] = load!(i16) as i64 as u64,
                LdxSW => regs[d] = load!(i32) as i64 as u64,
                StB => store!(u8, op.imm),
                StH => store!(u16, op.imm),
                StW => store!(u32, op.imm),
                StDW => store!(u64, op.imm),
                StxB => store!(u8, regs[s]),
                StxH => store!(u16, regs[s]),
                StxW => store!(u32, regs[s]),
                StxDW => store!(u64, regs[s]),
                FpLdxB => regs[d] = fp_load!(u8) as u64,
                FpLdxH => regs[d] = fp_load!(u16) as u64,
                FpLdxW => regs[d] = fp_load!(u32) as u64,
                FpLdxDW => regs[d] = fp_load!(u64),
                FpLdxSB => regs[d] = fp_load!(i8) as i64 as u64,
                FpLdxSH => regs[d] = fp_load!(i16) as i64 as u64,
                FpLdxSW => regs[d] = fp_load!(i32) as i64 as u64,
                FpStB => fp_store!(u8, op.imm),
                FpStH => fp_store!(u16, op.imm),
                FpStW => fp_store!(u32, op.imm),
                FpStDW => fp_store!(u64, op.imm),
                FpStxB => fp_store!(u8, regs[s]),
                FpStxH => fp_store!(u16, regs[s]),
                FpStxW => fp_store!(u32, regs[s]),
                FpStxDW => fp_store!(u64, regs[s]),
                AtomicAdd64 => {
                    let addr = regs[d].wrapping_add(op.aux as i64 as u64);
                    match self.mem.regions.translate(addr, 8, true) {
                        // SAFETY: translate checked the 8 bytes lie in a
                        // live writable region; alignment is checked here.
                        Some(p) if addr.is_multiple_of(8) => unsafe {
                            std::sync::atomic::AtomicU64::from_ptr(p.cast())
                                .fetch_add(regs[s], std::sync::atomic::Ordering::SeqCst);
                        },
                        // The out-of-line path names the fault.
                        _ => crate::atomic::execute(&self.mem.regions, op, cur!(), regs)?,
                    }
                }
                Atomic32 | Atomic64 | AtomicLoadB | AtomicLoadH | AtomicLoadW | AtomicLoadDW
                | AtomicStoreB | AtomicStoreH | AtomicStoreW | AtomicStoreDW => {
                    crate::atomic::execute(&self.mem.regions, op, cur!(), regs)?
                }
                Ja => jump!(true),
                Jeq64I => jump!(regs[d] == (op.lo() as i64 as u64)),
                Jgt64I => jump!(regs[d] > (op.lo() as i64 as u64)),
                Jge64I => jump!(regs[d] >= (op.lo() as i64 as u64)),
                Jset64I => jump!(regs[d] & (op.lo() as i64 as u64) != 0),
                Jne64I => jump!(regs[d] != (op.lo() as i64 as u64)),
                Jsgt64I => jump!((regs[d] as i64) > op.lo() as i64),
                Jsge64I => jump!((regs[d] as i64) >= op.lo() as i64),
                Jlt64I => jump!(regs[d] < (op.lo() as i64 as u64)),
                Jle64I => jump!(regs[d] <= (op.lo() as i64 as u64)),
                Jslt64I => jump!((regs[d] as i64) < op.lo() as i64),
                Jsle64I => jump!((regs[d] as i64) <= op.lo() as i64),
                Jeq64R => jump!(regs[d] == regs[s]),
                Jgt64R => jump!(regs[d] > regs[s]),
                Jge64R => jump!(regs[d] >= regs[s]),
                Jset64R => jump!(regs[d] & regs[s] != 0),
                Jne64R => jump!(regs[d] != regs[s]),
                Jsgt64R => jump!((regs[d] as i64) > regs[s] as i64),
                Jsge64R => jump!((regs[d] as i64) >= regs[s] as i64),
                Jlt64R => jump!(regs[d] < regs[s]),
                Jle64R => jump!(regs[d] <= regs[s]),
                Jslt64R => jump!((regs[d] as i64) < regs[s] as i64),
                Jsle64R => jump!((regs[d] as i64) <= regs[s] as i64),
                Jeq32I => jump!(regs[d] as u32 == op.lo() as u32),
                Jgt32I => jump!(regs[d] as u32 > op.lo() as u32),
                Jge32I => jump!(regs[d] as u32 >= op.lo() as u32),
                Jset32I => jump!(regs[d] as u32 & op.lo() as u32 != 0),
                Jne32I => jump!(regs[d] as u32 != op.lo() as u32),
                Jsgt32I => jump!((regs[d] as i32) > op.lo()),
                Jsge32I => jump!((regs[d] as i32) >= op.lo()),
                Jlt32I => jump!((regs[d] as u32) < op.lo() as u32),
                Jle32I => jump!(regs[d] as u32 <= op.lo() as u32),
                Jslt32I => jump!((regs[d] as i32) < op.lo()),
                Jsle32I => jump!((regs[d] as i32) <= op.lo()),
                Jeq32R => jump!(regs[d] as u32 == regs[s] as u32),
                Jgt32R => jump!(regs[d] as u32 > regs[s] as u32),
                Jge32R => jump!(regs[d] as u32 >= regs[s] as u32),
                Jset32R => jump!(regs[d] as u32 & regs[s] as u32 != 0),
                Jne32R => jump!(regs[d] as u32 != regs[s] as u32),
                Jsgt32R => jump!((regs[d] as i32) > regs[s] as i32),
                Jsge32R => jump!((regs[d] as i32) >= regs[s] as i32),
                Jlt32R => jump!((regs[d] as u32) < regs[s] as u32),
                Jle32R => jump!(regs[d] as u32 <= regs[s] as u32),
                Jslt32R => jump!((regs[d] as i32) < regs[s] as i32),
                Jsle32R => jump!((regs[d] as i32) <= regs[s] as i32),
                Call | CallReg => {
                    let id = if op.kind == Call {
                        op.lo() as u32 as u64
                    } else {
                        regs[d]
                    };
                    let Some(f) = self.prog.helper(id) else {
                        return Err(VmError::UnknownHelper { pc: cur!(), id });
                    };
                    let mut ctx = HelperContext {
                        regions: &mut self.mem.regions,
                        env: &mut *env,
                    };
                    let executed = count + op.hi() as i64;
                    match f(&mut ctx, [regs[1], regs[2], regs[3], regs[4], regs[5]]) {
                        Ok(v) => regs[0] = v,
                        Err(HelperError::Exit(v)) => {
                            return Ok(Outcome {
                                r0: v,
                                insns: executed as u64,
                            })
                        }
                        Err(HelperError::Failed(message)) => {
                            return Err(VmError::Helper {
                                pc: cur!(),
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
                                return Err(VmError::BadCallback {
                                    pc: cur!(),
                                    addr: callback,
                                });
                            };
                            if iterations == 0 {
                                regs[0] = 0;
                            } else {
                                if depth + 1 >= MAX_FRAMES {
                                    return Err(VmError::CallDepth {
                                        pc: cur!(),
                                        max: MAX_FRAMES,
                                    });
                                }
                                // Enter the callback as a bpf-to-bpf call
                                // from this instruction; `Exit` calls it
                                // again until it returns non-zero.
                                count = executed - entry_idx as i64;
                                budget_check!();
                                frames[depth] = Frame {
                                    ret: ip,
                                    ret_idx: op.hi() as i64,
                                    saved: [regs[6], regs[7], regs[8], regs[9]],
                                    is_loop: true,
                                };
                                loops[depth] = LoopState {
                                    slot,
                                    entry_idx: entry_idx as i64,
                                    done: 0,
                                    iterations,
                                    ctx,
                                };
                                depth += 1;
                                fp -= FRAME_SIZE;
                                regs[10] = stack_base + fp as u64;
                                self.mem
                                    .regions
                                    .set_start(0, stack_base + (fp - FRAME_SIZE) as u64);
                                self.mem.dirty_frames = self.mem.dirty_frames.max(depth + 1);
                                regs[1] = 0;
                                regs[2] = ctx;
                                goto!(slot);
                                continue;
                            }
                        }
                    }
                    if executed >= budget {
                        return Err(VmError::BudgetExhausted {
                            pc: cur!(),
                            budget: budget as u64,
                        });
                    }
                }
                CallLocal => {
                    if depth + 1 >= MAX_FRAMES {
                        return Err(VmError::CallDepth {
                            pc: cur!(),
                            max: MAX_FRAMES,
                        });
                    }
                    count += op.hi() as i64;
                    budget_check!();
                    frames[depth] = Frame {
                        ret: ip,
                        ret_idx: op.lo() as i64,
                        saved: [regs[6], regs[7], regs[8], regs[9]],
                        is_loop: false,
                    };
                    depth += 1;
                    fp -= FRAME_SIZE;
                    regs[10] = stack_base + fp as u64;
                    self.mem
                        .regions
                        .set_start(0, stack_base + (fp - FRAME_SIZE) as u64);
                    self.mem.dirty_frames = self.mem.dirty_frames.max(depth + 1);
                    goto!(op.aux);
                }
                Exit => {
                    count += op.imm as i64;
                    if depth == 0 {
                        return Ok(Outcome {
                            r0: regs[0],
                            insns: count as u64,
                        });
                    }
                    if frames[depth - 1].is_loop {
                        let l = &mut loops[depth - 1];
                        l.done += 1;
                        if regs[0] == 0 && l.done < l.iterations {
                            count -= l.entry_idx;
                            budget_check!();
                            regs[1] = l.done as u64;
                            regs[2] = l.ctx;
                            goto!(l.slot);
                            continue;
                        }
                        regs[0] = l.done as u64;
                    }
                    depth -= 1;
                    let f = frames[depth];
                    count -= f.ret_idx;
                    regs[6..10].copy_from_slice(&f.saved);
                    fp += FRAME_SIZE;
                    regs[10] = stack_base + fp as u64;
                    self.mem
                        .regions
                        .set_start(0, stack_base + (fp - FRAME_SIZE) as u64);
                    ip = f.ret;
                }
                Unreachable => unreachable!("validated programs never reach pc {}", cur!()),
            }
        }
    }
}

#[inline(always)]
fn sdiv64(a: u64, b: u64) -> u64 {
    if b == 0 {
        0
    } else {
        (a as i64).wrapping_div(b as i64) as u64
    }
}

#[inline(always)]
fn smod64(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        (a as i64).wrapping_rem(b as i64) as u64
    }
}

#[inline(always)]
fn sdiv32(a: u32, b: u32) -> u32 {
    if b == 0 {
        0
    } else {
        (a as i32).wrapping_div(b as i32) as u32
    }
}

#[inline(always)]
fn smod32(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        (a as i32).wrapping_rem(b as i32) as u32
    }
}
