//! What the JIT can prove about memory accesses before the program runs: a
//! forward analysis of register values over the program's control flow, in
//! the spirit of the kernel verifier's tracking of pointers and scalar
//! ranges, as far as the JIT needs it to drop bounds checks.
//!
//! Each register holds, on every path to an op, a value in one of:
//! - `Stack(lo, hi)`: r10 of the running function plus an offset in
//!   `[lo, hi]`;
//! - `Input(lo, hi)`: r1 at the program's entry plus an offset in `[lo, hi]`
//!   (the start of the run's input: the memory, or the context);
//! - `Scalar`: an unsigned number in `[min, max]` whose low `tz` bits are
//!   zero, maybe linked to other registers: registers with the same link
//!   id hold one value plus each its own constant (`r7 = r4; r4 += 8`), so a
//!   branch that bounds one bounds the others, as the kernel's linked
//!   scalars;
//! - `MaybeStack`: maybe a stack address, with no known offset; `Any`.
//!
//! Joins take the hull. A value still changing after [`WIDEN_AFTER`] visits
//! of an op is widened: a scalar's bounds jump to the next of the program's
//! constants (each, one less and one more) or of a few powers of two, so a
//! loop counter compared with a constant settles at that constant; pointers
//! give up their offsets. Narrowing sweeps then take back what widening gave
//! up where a branch bounds a value.
//!
//! Soundness is the point. An access is reported in-frame only when every
//! value its base register can hold on every path, plus the offset, covers
//! bytes of `[r10 - 512, r10)` of the function executing it. An access
//! through an `Input` base is reported with the bytes of input it needs
//! (offset + size); the JIT runs such code only when the region holding
//! entry r1 covers the largest of them ([`Proofs::input_read`],
//! [`Proofs::input_write`]), and calls (whose helpers may change regions)
//! end every `Input` value. Function entries (bpf-to-bpf call targets and
//! subprograms whose address the program takes, for bpf_loop or callx)
//! start with nothing known but r10; pc 0 also with r1, unless it is such
//! an entry too.

use crate::program::{Kind, Op, FRAME_SIZE};

/// A number: `[min, max]`, the low `tz` bits zero, and maybe a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sc {
    min: u64,
    max: u64,
    tz: u8,
    /// (id, delta): every register with this id holds one hidden value
    /// plus its own delta, with no wrap-around on the way.
    link: Option<(u32, i32)>,
}

impl Sc {
    const FULL: Sc = Sc {
        min: 0,
        max: u64::MAX,
        tz: 0,
        link: None,
    };

    fn range(min: u64, max: u64) -> Sc {
        Sc {
            min,
            max,
            tz: 0,
            link: None,
        }
    }

    fn constant(c: u64) -> Sc {
        Sc {
            min: c,
            max: c,
            tz: c.trailing_zeros() as u8,
            link: None,
        }
    }

    /// The same facts with the bounds rounded to the alignment; `None` if
    /// no number satisfies them.
    fn norm(mut self) -> Option<Sc> {
        if self.tz >= 64 {
            return (self.min == 0).then_some(Sc { max: 0, ..self });
        }
        let m = (1u64 << self.tz) - 1;
        self.min = self.min.checked_add(m)? & !m;
        self.max &= !m;
        (self.min <= self.max).then_some(self)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum V {
    Any,
    MaybeStack,
    Scalar(Sc),
    Stack(i64, i64),
    Input(i64, i64),
}

use V::*;

const WIDEN_AFTER: u32 = 3;
/// Widenings of a block's state to thresholds before values that still
/// change give up their bounds: each round reruns the loop's blocks.
const THRESHOLD_ROUNDS: u32 = 24;
const NARROWING_SWEEPS: usize = 3;

/// r0-r9 (r10 is always `Stack(0, 0)`: see [`get`]).
type State = [V; 10];

/// Register `r` in `s`.
fn get(s: &State, r: usize) -> V {
    s.get(r).copied().unwrap_or(Stack(0, 0))
}

/// A scalar view of a value, if it has one (anything not a pointer of ours
/// is some number).
fn num(v: V) -> Option<Sc> {
    match v {
        Scalar(s) => Some(s),
        Any => Some(Sc::FULL),
        _ => None,
    }
}

fn scalar(s: Sc) -> V {
    if s.min == 0 && s.max == u64::MAX && s.tz == 0 && s.link.is_none() {
        Any
    } else {
        Scalar(s)
    }
}

fn join(a: V, b: V) -> V {
    match (a, b) {
        _ if a == b => a,
        (Scalar(x), Scalar(y)) => Scalar(Sc {
            min: x.min.min(y.min),
            max: x.max.max(y.max),
            tz: x.tz.min(y.tz),
            link: if x.link == y.link { x.link } else { None },
        }),
        (Stack(a0, a1), Stack(b0, b1)) => Stack(a0.min(b0), a1.max(b1)),
        (Input(a0, a1), Input(b0, b1)) => Input(a0.min(b0), a1.max(b1)),
        (Stack(..) | MaybeStack, _) | (_, Stack(..) | MaybeStack) => MaybeStack,
        _ => Any,
    }
}

/// Bounds a widened scalar may take: the constants the program compares
/// it with, each one less and one more, and the limits of the usual
/// integer types.
struct Thresholds(Vec<u64>);

/// [`Thresholds`] for each register r0-r9. Registers copied into one
/// another anywhere in the program share theirs (a loop may test a copy of
/// its counter); a comparison of two registers gives each the constants
/// moved into the other. Which constants a register gets only decides how
/// precise widening is, never whether it is sound.
struct RegThresholds([Thresholds; 10]);

impl RegThresholds {
    fn of(ops: &[Op]) -> RegThresholds {
        // Union-find over r0-r9 along register moves.
        let mut parent: [usize; 10] = std::array::from_fn(|r| r);
        fn root(p: &mut [usize; 10], mut r: usize) -> usize {
            while p[r] != r {
                p[r] = p[p[r]];
                r = p[r];
            }
            r
        }
        let reg = |r: u8| (r as usize) < 10;
        for op in ops {
            if matches!(op.kind, Kind::Mov64R | Kind::Mov32R) && reg(op.dst) && reg(op.src) {
                let (a, b) = (
                    root(&mut parent, op.dst as usize),
                    root(&mut parent, op.src as usize),
                );
                parent[a] = b;
            }
        }
        let group: [usize; 10] = std::array::from_fn(|r| root(&mut parent, r));
        let mut moved: [Vec<u64>; 10] = Default::default();
        for op in ops {
            let c = match op.kind {
                Kind::LdImm64 | Kind::Mov64I => op.imm,
                Kind::Mov32I => op.imm as u32 as u64,
                _ => continue,
            };
            if reg(op.dst) {
                moved[group[op.dst as usize]].push(c);
            }
        }
        let mut cs: [Vec<u64>; 10] = Default::default();
        for op in ops {
            let Some((_, _, w64, by_reg)) = comparison(op.kind) else {
                continue;
            };
            if !reg(op.dst) {
                continue;
            }
            let d = group[op.dst as usize];
            if !by_reg {
                cs[d].push(if w64 {
                    op.lo() as i64 as u64
                } else {
                    op.lo() as u32 as u64
                });
            } else if reg(op.src) {
                let s = group[op.src as usize];
                let (md, ms) = (moved[d].clone(), moved[s].clone());
                cs[d].extend(ms);
                cs[s].extend(md);
            }
        }
        RegThresholds(std::array::from_fn(|r| Thresholds::of(&cs[group[r]])))
    }
}

impl Thresholds {
    fn of(constants: &[u64]) -> Thresholds {
        let mut t = vec![0, u64::MAX];
        for k in [8u32, 16, 32, 63] {
            t.push((1u64 << k) - 1);
        }
        for &c in constants {
            t.extend([c.wrapping_sub(1), c, c.wrapping_add(1)]);
        }
        t.sort_unstable();
        t.dedup();
        Thresholds(t)
    }

    /// The least threshold at or above `v` (`u64::MAX` past them all).
    fn at_least(&self, v: u64) -> u64 {
        let i = self.0.partition_point(|&t| t < v);
        self.0.get(i).copied().unwrap_or(u64::MAX)
    }

    /// The greatest threshold at or below `v` (0 below them all).
    fn at_most(&self, v: u64) -> u64 {
        let i = self.0.partition_point(|&t| t <= v);
        if i == 0 {
            0
        } else {
            self.0[i - 1]
        }
    }
}

/// A value that kept changing: scalar bounds move out to thresholds,
/// pointers keep their kind and give up their range.
fn widen(old: V, new: V, th: &Thresholds) -> V {
    let j = join(old, new);
    if j == old {
        return old;
    }
    match (old, j) {
        (Scalar(o), Scalar(mut n)) => {
            if n.max > o.max {
                n.max = th.at_least(n.max);
            }
            if n.min < o.min {
                n.min = th.at_most(n.min);
            }
            // Rounding keeps every value of `n`: its bounds were multiples
            // of 2^tz before the thresholds moved them out.
            n.norm().map_or(Any, scalar)
        }
        (Input(o0, o1), Input(n0, n1)) if n0 >= 0 => {
            let hi = if n1 > o1 {
                th.at_least(n1 as u64).min(i64::MAX as u64) as i64
            } else {
                n1
            };
            let lo = if n0 < o0 {
                th.at_most(n0 as u64) as i64
            } else {
                n0
            };
            Input(lo, hi)
        }
        (_, Stack(..) | MaybeStack) => MaybeStack,
        _ => Any,
    }
}

/// What the JIT may rely on for each memory access of the program.
pub(super) struct Proofs {
    /// The access's base may point into the stack.
    pub stack_likely: Vec<bool>,
    /// The access lies inside the current frame on every path.
    pub in_frame: Vec<bool>,
    /// The access lies in the first `input_read` (a load) or `input_write`
    /// (a store) bytes after entry r1 on every path.
    pub in_input: Vec<bool>,
    pub input_read: u64,
    pub input_write: u64,
    /// Divisions and modulos whose divisor is neither 0 nor, for the
    /// signed ones, -1 on every path.
    pub divisor_ok: Vec<bool>,
    /// Unsigned 64-bit divisions and modulos whose dividend and divisor
    /// both fit 32 bits on every path (a 32-bit `div` gives the same
    /// result, faster).
    pub narrow_div: Vec<bool>,
    /// Local calls whose callee writes none of r6-r9.
    pub keeps_r6_r9: Vec<bool>,
    /// What each exit does.
    pub exits: Vec<ExitKind>,
    /// Loops whose instruction count is bounded ([`CountedLoop`]).
    pub counted: Vec<CountedLoop>,
}

/// A loop the code can run without counting: one path from `head` to the
/// conditional jump back at `latch` (forward exits only, nothing else
/// entering it, no call, exit or atomic), `iv` written once in it, by
/// `iv += 2^step_log2` at `inc`, and bounded at the head so that it is
/// reached at most `trips` times per entry. Each pass runs `cost` (the
/// latch's count delta) instructions, so a loop entered with `trips *
/// cost` budget left cannot run out of it; the count on the way out is
/// worked out from `iv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CountedLoop {
    pub head: usize,
    pub latch: usize,
    pub iv: u8,
    pub step_log2: u8,
    pub inc: usize,
    pub cost: u32,
    pub trips: u64,
}

/// The loops of `ops` shaped as [`CountedLoop`]s wants, `trips` not set.
fn loop_candidates(ops: &[Op], callbacks: &[usize]) -> Vec<CountedLoop> {
    use Kind::*;
    let entered = super::emit::entered(ops, callbacks);
    let mut found = Vec::new();
    for (latch, op) in ops.iter().enumerate() {
        if !super::emit::is_jump(op.kind) || op.hi() <= 0 {
            continue;
        }
        let head = op.aux as usize;
        let body = head..=latch;
        let simple = body.clone().all(|pc| {
            let o = &ops[pc];
            let k = o.kind;
            let allowed = !matches!(
                k,
                Call | CallReg
                    | CallLocal
                    | Exit
                    | Ja
                    | LdAbsB
                    | LdAbsH
                    | LdAbsW
                    | LdIndB
                    | LdIndH
                    | LdIndW
                    | AtomicAdd64
                    | Atomic32
                    | Atomic64
                    | AtomicLoadB
                    | AtomicLoadH
                    | AtomicLoadW
                    | AtomicLoadDW
                    | AtomicStoreB
                    | AtomicStoreH
                    | AtomicStoreW
                    | AtomicStoreDW
            );
            let exit_only = pc == latch || !super::emit::is_jump(k) || o.aux as usize > latch;
            allowed && exit_only && (pc == head || !entered[pc])
        });
        if !simple {
            continue;
        }
        let mut writes = [0u32; 10];
        let mut last = [usize::MAX; 10];
        for pc in body.clone() {
            if let Some(r) = written(&ops[pc]).filter(|&r| r < 10) {
                writes[r as usize] += 1;
                last[r as usize] = pc;
            }
        }
        let iv = (0..10u8).find(|&r| {
            if writes[r as usize] != 1 {
                return false;
            }
            let inc = &ops[last[r as usize]];
            inc.kind == Add64I && inc.imm.is_power_of_two() && inc.imm <= 1 << 30
        });
        if let Some(iv) = iv {
            let inc = last[iv as usize];
            found.push(CountedLoop {
                head,
                latch,
                iv,
                step_log2: ops[inc].imm.trailing_zeros() as u8,
                inc,
                cost: op.hi() as u32,
                trips: 0,
            });
        }
    }
    found
}

/// The register `op` writes, if any (of the ops a counted loop may hold).
fn written(op: &Op) -> Option<u8> {
    let none = op.kind.is_store()
        || matches!(op.kind, Kind::Nop | Kind::Unreachable)
        || super::emit::is_jump(op.kind);
    (!none).then_some(op.dst)
}

impl Proofs {
    /// Only what holds on every input: the frame proofs.
    pub fn without_input(mut self) -> Proofs {
        self.in_input.fill(false);
        self.input_read = 0;
        self.input_write = 0;
        self
    }
}

/// `v + i`: a constant added.
fn add_const(v: V, i: i64) -> V {
    match v {
        Stack(lo, hi) => match (lo.checked_add(i), hi.checked_add(i)) {
            (Some(lo), Some(hi)) => Stack(lo, hi),
            _ => MaybeStack,
        },
        Input(lo, hi) => match (lo.checked_add(i), hi.checked_add(i)) {
            (Some(lo), Some(hi)) => Input(lo, hi),
            _ => Any,
        },
        Scalar(s) => {
            let r = if i >= 0 {
                s.min.checked_add(i as u64).zip(s.max.checked_add(i as u64))
            } else {
                s.min
                    .checked_sub(i.unsigned_abs())
                    .zip(s.max.checked_sub(i.unsigned_abs()))
            };
            match r {
                Some((min, max)) => scalar(Sc {
                    min,
                    max,
                    tz: s.tz.min(i.trailing_zeros() as u8),
                    link: s
                        .link
                        .and_then(|(id, d)| Some((id, d.checked_add(i32::try_from(i).ok()?)?))),
                }),
                None => Any,
            }
        }
        MaybeStack => MaybeStack,
        Any => Any,
    }
}

/// A pointer's offset range moved by a number in `[a, b]`.
fn offset(lo: i64, hi: i64, a: u64, b: u64) -> Option<(i64, i64)> {
    if b > i64::MAX as u64 {
        return None;
    }
    Some((lo.checked_add(a as i64)?, hi.checked_add(b as i64)?))
}

fn add(d: V, s: V) -> V {
    match (d, s) {
        (Stack(lo, hi), Scalar(x)) | (Scalar(x), Stack(lo, hi)) => {
            offset(lo, hi, x.min, x.max).map_or(MaybeStack, |(lo, hi)| Stack(lo, hi))
        }
        (Input(lo, hi), Scalar(x)) | (Scalar(x), Input(lo, hi)) => {
            offset(lo, hi, x.min, x.max).map_or(Any, |(lo, hi)| Input(lo, hi))
        }
        (Scalar(x), Scalar(y)) => match (x.min.checked_add(y.min), x.max.checked_add(y.max)) {
            (Some(min), Some(max)) => scalar(Sc {
                min,
                max,
                tz: x.tz.min(y.tz),
                link: None,
            }),
            _ => Any,
        },
        (Stack(..) | MaybeStack, _) | (_, Stack(..) | MaybeStack) => MaybeStack,
        _ => Any,
    }
}

fn sub(d: V, s: V) -> V {
    match (d, s) {
        (Stack(lo, hi), Scalar(x)) if x.max <= i64::MAX as u64 => {
            match (lo.checked_sub(x.max as i64), hi.checked_sub(x.min as i64)) {
                (Some(lo), Some(hi)) => Stack(lo, hi),
                _ => MaybeStack,
            }
        }
        (Input(lo, hi), Scalar(x)) if x.max <= i64::MAX as u64 => {
            match (lo.checked_sub(x.max as i64), hi.checked_sub(x.min as i64)) {
                (Some(lo), Some(hi)) => Input(lo, hi),
                _ => Any,
            }
        }
        (Scalar(x), Scalar(y)) if x.min >= y.max => scalar(Sc {
            min: x.min - y.max,
            max: x.max - y.min,
            tz: x.tz.min(y.tz),
            link: None,
        }),
        (Stack(..) | MaybeStack, Scalar(..) | Any) => MaybeStack,
        _ => Any,
    }
}

fn umax(v: V) -> u64 {
    num(v).map_or(u64::MAX, |s| s.max)
}

fn tz(v: V) -> u8 {
    num(v).map_or(0, |s| s.tz)
}

/// The number `[min, max]` with its low `tz` bits zero, no link.
fn number(min: u64, max: u64, tz: u8) -> V {
    Sc {
        min,
        max,
        tz,
        link: None,
    }
    .norm()
    .map_or(Any, scalar)
}

/// The largest `a | b` for `a <= x`, `b <= y`: every bit up to the higher
/// top bit.
fn or_bound(x: u64, y: u64) -> u64 {
    let m = x.max(y);
    if m == 0 {
        0
    } else {
        u64::MAX >> m.leading_zeros()
    }
}

/// The state after `op` at `pc`, given the state before it.
fn step(pc: usize, op: &Op, s: &mut State) {
    use Kind::*;
    let d = (op.dst as usize).min(10);
    let src = (op.src as usize).min(10);
    let imm = op.imm as i64;
    let k = op.imm as u32;
    let u32v = Scalar(Sc::range(0, u32::MAX as u64));
    let value = match op.kind {
        Mov64R => Some(match get(s, src) {
            Scalar(mut x) => {
                // A copy links the two registers. The id names this op: an
                // older copy made here is another value, so it lets go.
                if x.link.is_none() {
                    let id = pc as u32;
                    for r in s.iter_mut() {
                        if let Scalar(y) = r {
                            if y.link.is_some_and(|(i, _)| i == id) {
                                y.link = None;
                            }
                        }
                    }
                    x.link = Some((id, 0));
                    s[src] = Scalar(x);
                }
                Scalar(x)
            }
            v => v,
        }),
        Mov64I => Some(Scalar(Sc::constant(imm as u64))),
        Add64I => Some(add_const(get(s, d), imm)),
        Sub64I => Some(match imm.checked_neg() {
            Some(n) => add_const(get(s, d), n),
            None => Any,
        }),
        Add64R => Some(add(get(s, d), get(s, src))),
        Sub64R => Some(sub(get(s, d), get(s, src))),
        And64I if imm >= 0 => Some(number(
            0,
            (imm as u64).min(umax(get(s, d))),
            tz(get(s, d)).max(imm.trailing_zeros() as u8),
        )),
        And64I => Some(number(
            0,
            umax(get(s, d)),
            tz(get(s, d)).max(imm.trailing_zeros() as u8),
        )),
        And64R => Some(number(
            0,
            umax(get(s, d)).min(umax(get(s, src))),
            tz(get(s, d)).max(tz(get(s, src))),
        )),
        // a | b is at least each and has no bit above the higher's top bit.
        Or64I if imm >= 0 => Some(match num(get(s, d)) {
            Some(x) => number(
                x.min.max(imm as u64),
                or_bound(x.max, imm as u64),
                x.tz.min(imm.trailing_zeros() as u8),
            ),
            None => Any,
        }),
        Or64R => Some(match (num(get(s, d)), num(get(s, src))) {
            (Some(x), Some(y)) => number(x.min.max(y.min), or_bound(x.max, y.max), x.tz.min(y.tz)),
            _ => Any,
        }),
        Mul64I if imm >= 0 => Some(match num(get(s, d)) {
            Some(x) => match x.max.checked_mul(imm as u64) {
                Some(max) => number(
                    x.min * imm as u64,
                    max,
                    (x.tz as u32 + imm.trailing_zeros()).min(64) as u8,
                ),
                None => Any,
            },
            None => Any,
        }),
        Lsh64I => Some(match num(get(s, d)) {
            Some(x) if x.max.leading_zeros() >= k & 63 => number(
                x.min << (k & 63),
                x.max << (k & 63),
                (x.tz as u32 + (k & 63)).min(64) as u8,
            ),
            _ => Any,
        }),
        Rsh64I => Some(match num(get(s, d)) {
            Some(x) => number(
                x.min >> (k & 63),
                x.max >> (k & 63),
                x.tz.saturating_sub((k & 63) as u8),
            ),
            None => number(0, u64::MAX >> (k & 63), 0),
        }),
        Mod64I if imm > 0 => Some(number(0, imm as u64 - 1, 0)),
        Mod64I if imm == 0 => Some(match get(s, d) {
            Scalar(x) => Scalar(Sc { link: None, ..x }),
            v => v,
        }),
        LdImm64 => Some(Scalar(Sc::constant(op.imm))),
        Mov32I => Some(Scalar(Sc::constant(k as u64))),
        And32I => Some(number(0, k as u64, (k as u64).trailing_zeros() as u8)),
        Rsh32I => Some(number(0, (u32::MAX >> (k & 31)) as u64, 0)),
        Mov32R => Some(match num(get(s, src)) {
            Some(x) if x.max <= u32::MAX as u64 => Scalar(Sc { link: None, ..x }),
            _ => u32v,
        }),
        Add32I | Sub32I | Mul32I | Div32I | SDiv32I | Or32I | Xor32I | Lsh32I | Arsh32I
        | Mod32I | SMod32I | Add32R | Sub32R | Mul32R | Div32R | SDiv32R | Or32R | And32R
        | Lsh32R | Rsh32R | Mod32R | SMod32R | Xor32R | Arsh32R | MovSx8_32 | MovSx16_32
        | Neg32 | Le32 | Be32 => Some(u32v),
        Le16 | Be16 => Some(number(0, u16::MAX as u64, 0)),
        LdxB | FpLdxB => Some(number(0, u8::MAX as u64, 0)),
        LdxH | FpLdxH => Some(number(0, u16::MAX as u64, 0)),
        LdxW | FpLdxW => Some(u32v),
        // Stores, jumps and no-ops write no register.
        k if k.is_store() => None,
        AtomicAdd64 | AtomicStoreB | AtomicStoreH | AtomicStoreW | AtomicStoreDW | Ja | Exit
        | Nop | Unreachable => None,
        Call | CallReg => {
            s[..6].fill(Any);
            forget_input(s);
            None
        }
        // The edge back from the callee: see `successors`.
        CallLocal => {
            s[..6].fill(Any);
            None
        }
        LdAbsB | LdAbsH | LdAbsW | LdIndB | LdIndH | LdIndW => {
            s[..6].fill(Any);
            None
        }
        Atomic32 | Atomic64 => {
            s[0] = Any;
            if src < 10 {
                s[src] = Any;
            }
            None
        }
        k if super::emit::is_jump(k) => None,
        // Everything else writes dst with something this does not follow.
        _ => Some(Any),
    };
    if let Some(v) = value {
        if d < 10 {
            s[d] = v;
        }
    }
}

/// A helper may move or shrink regions: no input offset survives one.
fn forget_input(s: &mut State) {
    for r in s.iter_mut() {
        if matches!(r, Input(..)) {
            *r = Any;
        }
    }
}

/// Where control goes after an op, and the state on each edge.
type Edges = [Option<(usize, State)>; 2];

/// The edges out of op `pc`; `pure_call`: op `pc` is a local call whose
/// callee (and everything it calls) calls no helper, so the input's region
/// is as it was when the callee returns.
fn successors(
    ops: &[Op],
    pc: usize,
    after: &mut State,
    pure_call: bool,
    to: &mut impl FnMut(usize, &State),
) {
    use Kind::*;
    let op = &ops[pc];
    step(pc, op, after);
    if op.kind == CallLocal && !pure_call {
        forget_input(after);
    }
    match op.kind {
        Exit | Unreachable => {}
        Ja => to(op.aux as usize, after),
        CallLocal => {
            to(op.aux as usize, &entry(false));
            to(pc + 1, after);
        }
        LdImm64 => to(pc + 2, after),
        k if super::emit::is_jump(k) => match refine(op, after) {
            None => {
                to(op.aux as usize, after);
                to(pc + 1, after);
            }
            Some((taken, fall)) => {
                if let Some(t) = taken {
                    to(op.aux as usize, &t);
                }
                if let Some(f) = fall {
                    to(pc + 1, &f);
                }
            }
        },
        _ => to(pc + 1, after),
    }
}

/// A comparison, as far as refinement cares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    /// `c <cmp> x` as `x <mirror> c`.
    fn mirror(self) -> Cmp {
        match self {
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
            c => c,
        }
    }
}

/// (comparison, signed, 64-bit, register operand) of a jump kind; `None`
/// for JSET.
fn comparison(k: Kind) -> Option<(Cmp, bool, bool, bool)> {
    use Kind::*;
    let (c, signed) = match k {
        Jeq64I | Jeq64R | Jeq32I | Jeq32R => (Cmp::Eq, false),
        Jne64I | Jne64R | Jne32I | Jne32R => (Cmp::Ne, false),
        Jlt64I | Jlt64R | Jlt32I | Jlt32R => (Cmp::Lt, false),
        Jle64I | Jle64R | Jle32I | Jle32R => (Cmp::Le, false),
        Jgt64I | Jgt64R | Jgt32I | Jgt32R => (Cmp::Gt, false),
        Jge64I | Jge64R | Jge32I | Jge32R => (Cmp::Ge, false),
        Jslt64I | Jslt64R | Jslt32I | Jslt32R => (Cmp::Lt, true),
        Jsle64I | Jsle64R | Jsle32I | Jsle32R => (Cmp::Le, true),
        Jsgt64I | Jsgt64R | Jsgt32I | Jsgt32R => (Cmp::Gt, true),
        Jsge64I | Jsge64R | Jsge32I | Jsge32R => (Cmp::Ge, true),
        _ => return None,
    };
    let w64 = matches!(
        k,
        Jeq64I
            | Jeq64R
            | Jne64I
            | Jne64R
            | Jlt64I
            | Jlt64R
            | Jle64I
            | Jle64R
            | Jgt64I
            | Jgt64R
            | Jge64I
            | Jge64R
            | Jslt64I
            | Jslt64R
            | Jsle64I
            | Jsle64R
            | Jsgt64I
            | Jsgt64R
            | Jsge64I
            | Jsge64R
    );
    let reg = matches!(
        k,
        Jeq64R
            | Jne64R
            | Jlt64R
            | Jle64R
            | Jgt64R
            | Jge64R
            | Jslt64R
            | Jsle64R
            | Jsgt64R
            | Jsge64R
            | Jeq32R
            | Jne32R
            | Jlt32R
            | Jle32R
            | Jgt32R
            | Jge32R
            | Jslt32R
            | Jsle32R
            | Jsgt32R
            | Jsge32R
    );
    Some((c, signed, w64, reg))
}

fn constant_of(v: V) -> Option<u64> {
    match v {
        Scalar(s) if s.min == s.max => Some(s.min),
        _ => None,
    }
}

/// The states on a conditional jump's two edges (taken, fall-through): a
/// comparison of a register with a constant (an immediate, or a register
/// known to hold one) bounds the register on each edge, and every register
/// linked to it. Signed and 32-bit comparisons count where they agree with
/// the 64-bit unsigned one (both sides within range). `None`: no value
/// takes that edge. `None`: both edges keep `s` as it is.
fn refine(op: &Op, s: &State) -> Option<(Option<State>, Option<State>)> {
    let unchanged = None;
    let Some((mut cmp, signed, w64, reg)) = comparison(op.kind) else {
        return unchanged;
    };
    let d = (op.dst as usize).min(10);
    let src = (op.src as usize).min(10);
    let (r, c) = if !reg {
        let c = if w64 {
            op.lo() as i64 as u64
        } else {
            op.lo() as u32 as u64
        };
        (d, c)
    } else if let Some(c) = constant_of(get(s, src)) {
        (d, c)
    } else if let Some(c) = constant_of(get(s, d)) {
        cmp = cmp.mirror();
        (src, c)
    } else {
        return unchanged;
    };
    let Some(x) = num(get(s, r)) else {
        return unchanged;
    };
    // Where the comparison is the 64-bit unsigned one.
    let limit = match (signed, w64) {
        (false, true) => u64::MAX,
        (true, true) => i64::MAX as u64,
        (false, false) => u32::MAX as u64,
        (true, false) => i32::MAX as u64,
    };
    let c = if w64 { c } else { c as u32 as u64 };
    if x.max > limit || c > limit {
        return unchanged;
    }
    let (lo, hi) = (x.min, x.max);
    let below = |n: u64| (n > 0).then(|| (lo, hi.min(n - 1)));
    let at_least = |n: u64| Some((lo.max(n), hi));
    let all = Some((lo, hi));
    let (yes, no) = match cmp {
        Cmp::Lt => (below(c), at_least(c)),
        Cmp::Le => (
            c.checked_add(1).map_or(all, below),
            c.checked_add(1).and_then(at_least),
        ),
        Cmp::Gt => (
            c.checked_add(1).and_then(at_least),
            c.checked_add(1).map_or(all, below),
        ),
        Cmp::Ge => (at_least(c), below(c)),
        // Inequality excludes a constant only at an end of the range.
        Cmp::Eq => (Some((lo.max(c), hi.min(c))), Some(without(lo, hi, c))),
        Cmp::Ne => (Some(without(lo, hi, c)), Some((lo.max(c), hi.min(c)))),
    };
    let with = |range: Option<(u64, u64)>| {
        let (a, b) = range.filter(|&(a, b)| a <= b)?;
        bound(*s, r, x, a, b)
    };
    Some((with(yes), with(no)))
}

/// `[lo, hi]` without `c`, as one range (an inner `c` stays).
fn without(lo: u64, hi: u64, c: u64) -> (u64, u64) {
    match () {
        _ if lo == c && hi == c => (1, 0),
        _ if lo == c => (lo + 1, hi),
        _ if hi == c => (lo, hi - 1),
        _ => (lo, hi),
    }
}

/// `s` with register `r` (holding `x`) bounded to `[a, b]`, and every
/// register linked to it bounded alike; `None` if that leaves no value.
fn bound(mut s: State, r: usize, x: Sc, a: u64, b: u64) -> Option<State> {
    let nx = Sc {
        min: a,
        max: b,
        ..x
    }
    .norm()?;
    s[r] = scalar(nx);
    let Some((id, dx)) = x.link else {
        return Some(s);
    };
    for (i, v) in s.iter_mut().enumerate() {
        let Scalar(y) = *v else { continue };
        let Some((yid, dy)) = y.link else { continue };
        if i == r || yid != id {
            continue;
        }
        // y = x - dx + dy, with no wrap-around on either side.
        let shift = dy as i128 - dx as i128;
        let lo = (nx.min as i128 + shift).max(y.min as i128);
        let hi = (nx.max as i128 + shift).min(y.max as i128);
        if lo > hi {
            return None;
        }
        let ny = Sc {
            min: lo.clamp(0, u64::MAX as i128) as u64,
            max: hi.clamp(0, u64::MAX as i128) as u64,
            ..y
        }
        .norm()?;
        *v = Scalar(ny);
    }
    Some(s)
}

/// The state a function starts with: r10 known, and at the program's
/// entry r1 (the input).
fn entry(main: bool) -> State {
    let mut s = [Any; 10];
    if main {
        s[1] = Input(0, 0);
    }
    s
}

/// (signed, 64-bit, by a register) of a division or modulo (by an
/// immediate: a register when blinded).
fn division(k: Kind) -> Option<(bool, bool, bool)> {
    use Kind::*;
    Some(match k {
        Div64R | Mod64R => (false, true, true),
        SDiv64R | SMod64R => (true, true, true),
        Div32R | Mod32R => (false, false, true),
        SDiv32R | SMod32R => (true, false, true),
        Div64I | Mod64I => (false, true, false),
        SDiv64I | SMod64I => (true, true, false),
        Div32I | Mod32I => (false, false, false),
        SDiv32I | SMod32I => (true, false, false),
        _ => return None,
    })
}

/// Whether a divisor in `[min, max]` is neither 0 nor, signed, -1 in the
/// operation's width.
fn divisor_ok(min: u64, max: u64, signed: bool, w64: bool) -> bool {
    if w64 {
        min > 0 && (!signed || max < u64::MAX)
    } else {
        max <= u32::MAX as u64 && min > 0 && (!signed || max < u32::MAX as u64)
    }
}

/// The base register, size and direction of a load or store through a
/// computed pointer.
fn access(op: &Op) -> Option<(u8, i64, bool)> {
    use Kind::*;
    Some(match op.kind {
        LdxB | LdxSB => (op.src, 1, false),
        LdxH | LdxSH => (op.src, 2, false),
        LdxW | LdxSW => (op.src, 4, false),
        LdxDW => (op.src, 8, false),
        StB | StxB => (op.dst, 1, true),
        StH | StxH => (op.dst, 2, true),
        StW | StxW => (op.dst, 4, true),
        StDW | StxDW => (op.dst, 8, true),
        _ => return None,
    })
}

/// Whether op `pc` ends a straight-line run of the control flow.
fn ends_block(op: &Op) -> bool {
    matches!(
        op.kind,
        Kind::Ja | Kind::Exit | Kind::Unreachable | Kind::CallLocal
    ) || super::emit::is_jump(op.kind)
}

/// The op after `pc` in straight-line code.
fn next(ops: &[Op], pc: usize) -> usize {
    if ops[pc].kind == Kind::LdImm64 {
        pc + 2
    } else {
        pc + 1
    }
}

/// The program's functions: each runs from an entry (pc 0, a local call's
/// target, a callback) to the next.
struct Functions {
    entries: Vec<usize>,
    n: usize,
    /// Whether each function stays in its range: no jump out of it, no
    /// fall off its end.
    contained: Vec<bool>,
}

impl Functions {
    fn of(ops: &[Op], callbacks: &[usize]) -> Functions {
        let n = ops.len();
        let mut entries: Vec<usize> = std::iter::once(0)
            .chain(callbacks.iter().copied())
            .chain(
                ops.iter()
                    .filter(|op| op.kind == Kind::CallLocal)
                    .map(|op| op.aux as usize),
            )
            .filter(|&e| e < n)
            .collect();
        entries.sort_unstable();
        entries.dedup();
        let mut funcs = Functions {
            entries,
            n,
            contained: Vec::new(),
        };
        funcs.contained = (0..funcs.entries.len())
            .map(|f| funcs.stays_in(ops, f))
            .collect();
        funcs
    }

    /// The function holding op `pc`.
    fn of_pc(&self, pc: usize) -> usize {
        self.entries.partition_point(|&e| e <= pc) - 1
    }

    fn range(&self, f: usize) -> std::ops::Range<usize> {
        self.entries[f]..self.entries.get(f + 1).copied().unwrap_or(self.n)
    }

    /// Whether function `f` stays in its range: no jump out of it, no fall
    /// off its end.
    fn stays_in(&self, ops: &[Op], f: usize) -> bool {
        let r = self.range(f);
        let escapes = |op: &Op| {
            (op.kind == Kind::Ja || super::emit::is_jump(op.kind))
                && !r.contains(&(op.aux as usize))
        };
        // (Before the program's end, an `Unreachable` is the second slot of
        // an LDDW, which falls through.)
        let falls_off = r.end < self.n && !matches!(ops[r.end - 1].kind, Kind::Ja | Kind::Exit);
        !falls_off && !ops[r.clone()].iter().any(escapes)
    }

    /// For each op: a local call whose callee has `property` (by function).
    fn calls_with(&self, ops: &[Op], property: &[bool]) -> Vec<bool> {
        ops.iter()
            .map(|op| {
                op.kind == Kind::CallLocal
                    && (op.aux as usize) < self.n
                    && property[self.of_pc(op.aux as usize)]
            })
            .collect()
    }
}

/// Which ops are local calls into functions that call no helper, directly
/// or through their own local calls.
fn pure_calls(ops: &[Op], funcs: &Functions) -> Vec<bool> {
    let nf = funcs.entries.len();
    let mut pure: Vec<bool> = (0..nf)
        .map(|f| {
            funcs.contained[f]
                && !ops[funcs.range(f)]
                    .iter()
                    .any(|op| matches!(op.kind, Kind::Call | Kind::CallReg))
        })
        .collect();
    // A function calling an impure one is impure: to a fixpoint.
    loop {
        let mut changed = false;
        for f in 0..nf {
            if pure[f]
                && ops[funcs.range(f)].iter().any(|op| {
                    op.kind == Kind::CallLocal
                        && (op.aux as usize) < funcs.n
                        && !pure[funcs.of_pc(op.aux as usize)]
                })
            {
                pure[f] = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    funcs.calls_with(ops, &pure)
}

/// What an `exit` does at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ExitKind {
    /// Ends the run: it is in the main function, which nothing calls.
    Run,
    /// Returns from a call: it is in a subprogram.
    Return,
    /// Either: the code it is in may run at any depth.
    Either,
}

/// What each op, if an exit, does: when every function keeps to its range
/// and nothing calls the main function, exits in the main function end the
/// run and the others return.
fn exit_kinds(ops: &[Op], callbacks: &[usize], funcs: &Functions) -> Vec<ExitKind> {
    let main_called = callbacks.contains(&0)
        || ops
            .iter()
            .any(|op| op.kind == Kind::CallLocal && op.aux == 0);
    let known = !main_called && funcs.contained.iter().all(|&c| c);
    ops.iter()
        .enumerate()
        .map(|(pc, _)| match (known, funcs.of_pc(pc)) {
            (false, _) => ExitKind::Either,
            (true, 0) => ExitKind::Run,
            (true, _) => ExitKind::Return,
        })
        .collect()
}

/// Which ops are local calls into functions that write none of r6-r9
/// themselves (their own calls keep them as this one does), so the caller's
/// values need no saving around the call.
fn calls_keeping_r6_r9(ops: &[Op], funcs: &Functions) -> Vec<bool> {
    use Kind::*;

    let callee_saved = |r: u8| (6..=9).contains(&r);
    let writes = |op: &Op| match op.kind {
        k if k.is_store() => false,
        AtomicStoreB | AtomicStoreH | AtomicStoreW | AtomicStoreDW | AtomicAdd64 | Ja | Exit
        | Call | CallReg | CallLocal | Nop | Unreachable => false,
        // Fetching atomics write their source register (or r0).
        Atomic32 | Atomic64 => callee_saved(op.src) || callee_saved(op.dst),
        k if super::emit::is_jump(k) => false,
        _ => callee_saved(op.dst),
    };
    let keeps: Vec<bool> = (0..funcs.entries.len())
        .map(|f| funcs.contained[f] && !ops[funcs.range(f)].iter().any(writes))
        .collect();
    funcs.calls_with(ops, &keeps)
}

/// The control flow in basic blocks: states are kept at block starts only,
/// and a block's ops are stepped in place.
struct Blocks {
    /// Block starts, in program order.
    starts: Vec<usize>,
    /// Index of the block starting at each op (`u32::MAX`: none).
    index: Vec<u32>,
    /// Local calls whose callee calls no helper, directly or through
    /// further local calls.
    pure_call: Vec<bool>,
}

impl Blocks {
    fn of(ops: &[Op], callbacks: &[usize], funcs: &Functions) -> Blocks {
        let n = ops.len();
        let mut leader = vec![false; n];
        leader[0] = true;
        for &c in callbacks {
            if c < n {
                leader[c] = true;
            }
        }
        for (pc, op) in ops.iter().enumerate() {
            if ends_block(op) {
                if pc + 1 < n {
                    leader[pc + 1] = true;
                }
                if op.kind != Kind::Exit && op.kind != Kind::Unreachable && (op.aux as usize) < n {
                    leader[op.aux as usize] = true;
                }
            }
        }
        let mut index = vec![u32::MAX; n];
        let mut starts = Vec::new();
        for (pc, &l) in leader.iter().enumerate() {
            if l {
                index[pc] = starts.len() as u32;
                starts.push(pc);
            }
        }
        Blocks {
            starts,
            index,
            pure_call: pure_calls(ops, funcs),
        }
    }

    /// Runs block `b` from state `s`: calls `at` before each op with the
    /// state there, returns the edges out of the block.
    fn run(
        &self,
        ops: &[Op],
        b: usize,
        mut s: State,
        mut at: impl FnMut(usize, &State),
        mut to: impl FnMut(usize, &State),
    ) {
        let mut pc = self.starts[b];
        loop {
            at(pc, &s);
            let op = &ops[pc];
            let next_pc = next(ops, pc);
            if ends_block(op) || next_pc >= ops.len() || self.index[next_pc] != u32::MAX {
                successors(ops, pc, &mut s, self.pure_call[pc], &mut to);
                return;
            }
            step(pc, op, &mut s);
            pc = next_pc;
        }
    }

    /// The edges out of block `b` run from `s`.
    fn edges(&self, ops: &[Op], b: usize, s: State) -> Edges {
        let mut e: Edges = [None, None];
        let mut i = 0;
        self.run(
            ops,
            b,
            s,
            |_, _| {},
            |to, s| {
                e[i] = Some((to, *s));
                i += 1;
            },
        );
        e
    }

    /// The last op of block `b`.
    fn last(&self, ops: &[Op], b: usize) -> usize {
        let mut pc = self.starts[b];
        loop {
            let to = next(ops, pc);
            if ends_block(&ops[pc]) || to >= ops.len() || self.index[to] != u32::MAX {
                return pc;
            }
            pc = to;
        }
    }
}

/// Analyses `ops`, whose functions start at pc 0, at the targets of local
/// calls, and at `callbacks` (subprograms whose address the program takes:
/// bpf_loop callbacks and callx targets, entered with nothing known).
pub(super) fn analyse(ops: &[Op], callbacks: &[usize]) -> Proofs {
    let n = ops.len();
    let funcs = Functions::of(ops, callbacks);
    let mut p = Proofs {
        stack_likely: vec![false; n],
        in_frame: vec![false; n],
        in_input: vec![false; n],
        input_read: 0,
        input_write: 0,
        divisor_ok: vec![false; n],
        narrow_div: vec![false; n],
        keeps_r6_r9: calls_keeping_r6_r9(ops, &funcs),
        exits: exit_kinds(ops, callbacks, &funcs),
        counted: Vec::new(),
    };
    for (pc, op) in ops.iter().enumerate() {
        if let Some((signed, w64, false)) = division(op.kind) {
            let v = if w64 { op.imm } else { op.imm as u32 as u64 };
            p.divisor_ok[pc] = divisor_ok(v, v, signed, w64);
        }
    }
    // Nothing to find without an access through a computed pointer or a
    // division by a register.
    let loops = loop_candidates(ops, callbacks);
    if loops.is_empty()
        && !ops.iter().any(|op| {
            access(op).is_some()
                || matches!(division(op.kind), Some((_, _, true)))
                || matches!(op.kind, Kind::Div64I | Kind::Mod64I)
        })
    {
        return p;
    }
    let th = RegThresholds::of(ops);
    let blocks = Blocks::of(ops, callbacks, &funcs);
    let nb = blocks.starts.len();
    let last: Vec<usize> = (0..nb).map(|b| blocks.last(ops, b)).collect();
    let mut state: Vec<Option<State>> = vec![None; nb];
    let mut visits = vec![0u32; nb];
    let mut rounds = vec![0u32; nb];
    let mut widened = false;
    let mut dirty = vec![false; nb];
    // Merges `s` into block `to`'s state. Widening happens where loops
    // close: at the target of an edge that does not go forward.
    let mut flow =
        |state: &mut [Option<State>], dirty: &mut [bool], from: usize, to: usize, s: &State| {
            // Every edge ends at a block start (`Blocks::of`).
            let Some(b) = blocks.index.get(to).filter(|&&b| b != u32::MAX) else {
                return;
            };
            let b = *b as usize;
            let changed = match &mut state[b] {
                slot @ None => {
                    *slot = Some(*s);
                    true
                }
                Some(old) => {
                    if to <= from {
                        visits[b] += 1;
                    }
                    let wide = visits[b] > WIDEN_AFTER;
                    widened |= wide;
                    let hard = rounds[b] >= THRESHOLD_ROUNDS;
                    let mut changed = false;
                    for ((o, &v), t) in old.iter_mut().zip(s.iter()).zip(&th.0) {
                        let m = match (wide, hard) {
                            (false, _) => join(*o, v),
                            (true, false) => widen(*o, v, t),
                            (true, true) => widen(*o, v, &Thresholds(Vec::new())),
                        };
                        if m != *o {
                            *o = m;
                            changed = true;
                        }
                    }
                    rounds[b] += (wide && changed) as u32;
                    changed
                }
            };
            dirty[b] |= changed;
        };
    flow(&mut state, &mut dirty, 0, 0, &entry(true));
    for &c in callbacks {
        flow(&mut state, &mut dirty, 0, c, &entry(false));
    }
    // Sweeps in program order: forward edges settle in one sweep, loops
    // in a few (widening bounds them).
    let mut again = true;
    while again {
        again = false;
        for b in 0..nb {
            if !std::mem::take(&mut dirty[b]) {
                continue;
            }
            again = true;
            let Some(before) = state[b] else { continue };
            blocks.run(
                ops,
                b,
                before,
                |_, _| {},
                |to, s| flow(&mut state, &mut dirty, last[b], to, s),
            );
        }
    }
    if widened {
        narrow(ops, callbacks, &blocks, &mut state);
    }
    for (b, st) in state.iter().enumerate() {
        let Some(st) = *st else { continue };
        let proofs_at = |pc: usize, s: &State| {
            let op = &ops[pc];
            if let Some((signed, w64, true)) = division(op.kind) {
                if let Some(x) = num(get(s, op.src as usize)) {
                    p.divisor_ok[pc] = divisor_ok(x.min, x.max, signed, w64);
                }
            }
            let narrow = |v: V| num(v).is_some_and(|x| x.max <= u32::MAX as u64);
            p.narrow_div[pc] = match op.kind {
                Kind::Div64R | Kind::Mod64R => {
                    narrow(get(s, op.dst as usize)) && narrow(get(s, op.src as usize))
                }
                Kind::Div64I | Kind::Mod64I => {
                    narrow(get(s, op.dst as usize)) && op.imm <= u32::MAX as u64
                }
                _ => false,
            };
            let Some((base, size, write)) = access(op) else {
                return;
            };
            let v = get(s, base as usize);
            let off = op.aux as i128;
            p.stack_likely[pc] = matches!(v, Stack(..) | MaybeStack);
            match v {
                Stack(lo, hi) => {
                    p.in_frame[pc] = lo as i128 + off >= -(FRAME_SIZE as i128)
                        && hi as i128 + off + size as i128 <= 0;
                }
                Input(lo, hi) if lo as i128 + off >= 0 => {
                    let end = hi as i128 + off + size as i128;
                    if let Ok(end) = u64::try_from(end) {
                        p.in_input[pc] = true;
                        let need = if write {
                            &mut p.input_write
                        } else {
                            &mut p.input_read
                        };
                        *need = (*need).max(end);
                    }
                }
                _ => {}
            }
        };
        blocks.run(ops, b, st, proofs_at, |_, _| {});
    }
    for l in loops {
        let Some(&b) = blocks.index.get(l.head).filter(|&&b| b != u32::MAX) else {
            continue;
        };
        let Some(x) = state[b as usize].and_then(|st| num(get(&st, l.iv as usize))) else {
            continue;
        };
        let step = 1u64 << l.step_log2;
        // The counter cannot wrap: every pass adds a step, and every head
        // visit finds it in [min, max].
        if x.max.checked_add(step).is_none() {
            continue;
        }
        let trips = (x.max - x.min) / step + 1;
        if trips.saturating_mul(l.cost as u64) <= i32::MAX as u64 {
            p.counted.push(CountedLoop { trips, ..l });
        }
    }
    p
}

/// Narrowing: recomputing a state from its predecessors' keeps the result
/// sound (it stays a post-fixpoint) and takes back what widening gave up
/// where a branch bounds a value (a loop counter below its limit). In
/// program order, in place, so a loop body sees its head's narrowed state in
/// the same sweep; each block's out-edges are kept from when it was last
/// run (a later block's, from the sweep before: still sound, as narrowing
/// only shrinks states).
fn narrow(ops: &[Op], callbacks: &[usize], blocks: &Blocks, state: &mut [Option<State>]) {
    let nb = blocks.starts.len();
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); nb];
    let mut edges: Vec<Edges> = vec![[None, None]; nb];
    for b in 0..nb {
        if let Some(before) = state[b] {
            edges[b] = blocks.edges(ops, b, before);
            for (to, _) in edges[b].iter().flatten() {
                if let Some(&t) = blocks.index.get(*to).filter(|&&t| t != u32::MAX) {
                    let t = t as usize;
                    if !preds[t].contains(&b) {
                        preds[t].push(b);
                    }
                }
            }
        }
    }
    let join_all = |a: Option<State>, b: &State| -> State {
        match a {
            None => *b,
            Some(a) => std::array::from_fn(|r| join(a[r], b[r])),
        }
    };
    for _ in 0..NARROWING_SWEEPS {
        for b in 0..nb {
            if state[b].is_none() {
                continue;
            }
            let pc = blocks.starts[b];
            let mut acc = (pc == 0).then(|| entry(true));
            if callbacks.contains(&pc) {
                acc = Some(join_all(acc, &entry(false)));
            }
            for &q in &preds[b] {
                for (to, s) in edges[q].iter().flatten() {
                    if *to == pc {
                        acc = Some(join_all(acc, s));
                    }
                }
            }
            state[b] = acc;
            edges[b] = acc.map_or([None, None], |a| blocks.edges(ops, b, a));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(min: u64, max: u64) -> V {
        Scalar(Sc::range(min, max))
    }

    #[test]
    fn joins_and_widening_keep_kinds_apart() {
        let th = Thresholds(vec![0, 16, 255, u64::MAX]);
        assert_eq!(join(sc(1, 2), sc(5, 9)), sc(1, 9));
        assert_eq!(join(Stack(-8, -8), Stack(-16, -4)), Stack(-16, -4));
        assert_eq!(join(Input(0, 8), Input(4, 16)), Input(0, 16));
        assert_eq!(join(Stack(-8, -8), sc(0, 0)), MaybeStack);
        assert_eq!(join(Input(0, 0), sc(0, 0)), Any);
        assert_eq!(join(sc(0, 0), Any), Any);
        assert_eq!(widen(Stack(-8, -8), Stack(-16, -8), &th), MaybeStack);
        assert_eq!(widen(sc(0, 1), sc(0, 2), &th), sc(0, 16));
        assert_eq!(widen(sc(0, 16), sc(0, 17), &th), sc(0, 255));
        assert_eq!(widen(sc(0, 255), sc(0, 256), &th), Any);
        assert_eq!(widen(sc(0, 2), sc(0, 1), &th), sc(0, 2));
        assert_eq!(widen(Input(0, 1), Input(0, 2), &th), Input(0, 16));
    }

    #[test]
    fn or_bounds_reach_the_top_bit() {
        assert_eq!(or_bound(0x7ffc, 3), 0x7fff);
        assert_eq!(or_bound(0, 0), 0);
        assert_eq!(or_bound(1, 0x100), 0x1ff);
        assert_eq!(or_bound(1 << 63, 0), u64::MAX);
        let mut s: State = [Any; 10];
        s[2] = sc(8, 0x7ffc);
        let slots = bpfkit_isa::asm::assemble("or %r2, 3\nexit", bpfkit_isa::Dialect::Conformance);
        let prog = crate::Program::new(&slots.unwrap()).unwrap();
        step(0, &prog.ops[0], &mut s);
        assert_eq!(num(s[2]).map(|x| (x.min, x.max)), Some((8, 0x7fff)));
    }

    #[test]
    fn arithmetic_that_could_wrap_gives_up() {
        assert_eq!(add_const(Any, 1), Any);
        assert_eq!(add_const(sc(3, 10), -4), Any);
        assert_eq!(add_const(sc(4, 10), -4), sc(0, 6));
        assert_eq!(add(Stack(-256, -256), Any), MaybeStack);
        assert_eq!(add(Stack(-256, -256), sc(0, 252)), Stack(-256, -4));
        assert_eq!(add(Input(0, 0), sc(0, u64::MAX - 1)), Any);
        assert_eq!(add(sc(0, 8), Input(4, 4)), Input(4, 12));
        assert_eq!(sub(Stack(0, 0), sc(8, 16)), Stack(-16, -8));
        assert_eq!(sub(sc(0, 5), sc(1, 1)), Any);
    }

    #[test]
    fn alignment_rounds_bounds() {
        let x = Sc {
            min: 1,
            max: 0x7f7,
            tz: 3,
            link: None,
        };
        let n = x.norm().unwrap();
        assert_eq!((n.min, n.max), (8, 0x7f0));
        assert_eq!(
            Sc {
                min: 1,
                max: 7,
                ..x
            }
            .norm(),
            None
        );
        assert_eq!(Sc::constant(0).norm().map(|s| s.max), Some(0));
    }

    #[test]
    fn a_branch_bounds_linked_registers() {
        let x = Sc {
            min: 0,
            max: 100,
            tz: 0,
            link: Some((7, 0)),
        };
        let y = Sc {
            link: Some((7, 8)),
            min: 8,
            max: 108,
            ..x
        };
        let mut s = entry(false);
        s[2] = Scalar(x);
        s[3] = Scalar(y);
        let b = bound(s, 2, x, 0, 9).unwrap();
        assert_eq!(
            b[3],
            Scalar(Sc {
                min: 8,
                max: 17,
                ..y
            })
        );
        // A range the linked register cannot take: no such path.
        let mut s2 = s;
        s2[3] = Scalar(Sc { min: 50, ..y });
        assert_eq!(bound(s2, 2, x, 0, 9), None);
    }
}
