//! Which memory accesses reach the stack, and which of those provably stay
//! inside the current frame: a forward analysis of register values over the
//! program's control flow, in the spirit of the kernel verifier's tracking
//! of stack pointers and scalar ranges, but only as far as this needs.
//!
//! Each register holds, on every path to an op, a value in one of:
//! `Stack(lo, hi)`: r10 of the running function plus an offset in
//! `[lo, hi]`; `Scalar(min, max)`: an unsigned number in that range;
//! `MaybeStack`: maybe a stack address, with no known offset; `Any`. Joins
//! take the hull; a value still changing after [`WIDEN_AFTER`] visits of an
//! op is widened to `MaybeStack` or `Any`, so the analysis ends.
//!
//! Soundness is the point: an access is reported in-frame only when every
//! value its base register can hold on every path, plus the offset, covers
//! bytes of `[r10 - 512, r10)` of the function executing it. Function entries
//! (pc 0 and bpf-to-bpf call targets) start with nothing known but r10;
//! code reached only as a bpf_loop callback gets no state and no proof.

use crate::program::{Kind, Op, FRAME_SIZE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum V {
    Any,
    MaybeStack,
    Scalar(u64, u64),
    Stack(i64, i64),
}

use V::*;

const WIDEN_AFTER: u32 = 3;
const NARROWING_SWEEPS: usize = 3;

type State = [V; 11];

fn join(a: V, b: V) -> V {
    match (a, b) {
        _ if a == b => a,
        (Scalar(a0, a1), Scalar(b0, b1)) => Scalar(a0.min(b0), a1.max(b1)),
        (Stack(a0, a1), Stack(b0, b1)) => Stack(a0.min(b0), a1.max(b1)),
        (Stack(..) | MaybeStack, _) | (_, Stack(..) | MaybeStack) => MaybeStack,
        _ => Any,
    }
}

/// A value that kept changing: its kind is kept, its range given up.
fn widen(old: V, new: V) -> V {
    match join(old, new) {
        v if v == old => v,
        Stack(..) | MaybeStack => MaybeStack,
        _ => Any,
    }
}

/// What every memory access of the program can be told apart by.
pub(super) struct Frames {
    /// The access's base may point into the stack.
    pub stack_likely: Vec<bool>,
    /// The access lies inside the current frame on every path.
    pub in_frame: Vec<bool>,
}

fn scalar_add(v: V, i: i64) -> V {
    match v {
        Stack(lo, hi) => match (lo.checked_add(i), hi.checked_add(i)) {
            (Some(lo), Some(hi)) => Stack(lo, hi),
            _ => MaybeStack,
        },
        Scalar(a, b) => {
            let r = if i >= 0 {
                a.checked_add(i as u64).zip(b.checked_add(i as u64))
            } else {
                a.checked_sub(i.unsigned_abs())
                    .zip(b.checked_sub(i.unsigned_abs()))
            };
            r.map_or(Any, |(a, b)| Scalar(a, b))
        }
        MaybeStack => MaybeStack,
        Any => Any,
    }
}

fn add(d: V, s: V) -> V {
    let small = |b: u64| b <= i64::MAX as u64;
    match (d, s) {
        (Stack(lo, hi), Scalar(a, b)) | (Scalar(a, b), Stack(lo, hi)) if small(b) => {
            match (lo.checked_add(a as i64), hi.checked_add(b as i64)) {
                (Some(lo), Some(hi)) => Stack(lo, hi),
                _ => MaybeStack,
            }
        }
        (Scalar(a0, a1), Scalar(b0, b1)) => match (a0.checked_add(b0), a1.checked_add(b1)) {
            (Some(lo), Some(hi)) => Scalar(lo, hi),
            _ => Any,
        },
        (Stack(..) | MaybeStack, _) | (_, Stack(..) | MaybeStack) => MaybeStack,
        _ => Any,
    }
}

fn sub(d: V, s: V) -> V {
    match (d, s) {
        (Stack(lo, hi), Scalar(a, b)) if b <= i64::MAX as u64 => {
            match (lo.checked_sub(b as i64), hi.checked_sub(a as i64)) {
                (Some(lo), Some(hi)) => Stack(lo, hi),
                _ => MaybeStack,
            }
        }
        (Scalar(a0, a1), Scalar(b0, b1)) if a0 >= b1 => Scalar(a0 - b1, a1 - b0),
        (Stack(..) | MaybeStack, Scalar(..) | Any) => MaybeStack,
        _ => Any,
    }
}

fn umax(v: V) -> u64 {
    match v {
        Scalar(_, b) => b,
        _ => u64::MAX,
    }
}

/// The state after `op`, given the state before it.
fn step(op: &Op, mut s: State) -> State {
    use Kind::*;
    let d = (op.dst as usize).min(10);
    let src = (op.src as usize).min(10);
    let imm = op.imm as i64;
    let k = op.imm as u32;
    const U32: V = Scalar(0, u32::MAX as u64);
    let value = match op.kind {
        Mov64R => Some(s[src]),
        Mov64I => Some(Scalar(imm as u64, imm as u64)),
        Add64I => Some(scalar_add(s[d], imm)),
        Sub64I => Some(match imm.checked_neg() {
            Some(n) => scalar_add(s[d], n),
            None => Any,
        }),
        Add64R => Some(add(s[d], s[src])),
        Sub64R => Some(sub(s[d], s[src])),
        And64I if imm >= 0 => Some(Scalar(0, (imm as u64).min(umax(s[d])))),
        And64I => Some(Scalar(0, umax(s[d]))),
        And64R => Some(Scalar(0, umax(s[d]).min(umax(s[src])))),
        Lsh64I => Some(match s[d] {
            Scalar(a, b) if b.leading_zeros() >= k & 63 => Scalar(a << (k & 63), b << (k & 63)),
            _ => Any,
        }),
        Rsh64I => Some(match s[d] {
            Scalar(a, b) => Scalar(a >> (k & 63), b >> (k & 63)),
            _ => Scalar(0, u64::MAX >> (k & 63)),
        }),
        Mod64I if imm > 0 => Some(Scalar(0, imm as u64 - 1)),
        Mod64I if imm == 0 => Some(s[d]),
        LdImm64 => Some(Scalar(op.imm, op.imm)),
        Mov32I => Some(Scalar(k as u64, k as u64)),
        And32I => Some(Scalar(0, k as u64)),
        Rsh32I => Some(Scalar(0, (u32::MAX >> (k & 31)) as u64)),
        Mov32R => Some(match s[src] {
            Scalar(a, b) if b <= u32::MAX as u64 => Scalar(a, b),
            _ => U32,
        }),
        Add32I | Sub32I | Mul32I | Div32I | SDiv32I | Or32I | Xor32I | Lsh32I | Arsh32I
        | Mod32I | SMod32I | Add32R | Sub32R | Mul32R | Div32R | SDiv32R | Or32R | And32R
        | Lsh32R | Rsh32R | Mod32R | SMod32R | Xor32R | Arsh32R | MovSx8_32 | MovSx16_32
        | Neg32 | Le32 | Be32 => Some(U32),
        Le16 | Be16 => Some(Scalar(0, u16::MAX as u64)),
        LdxB | FpLdxB => Some(Scalar(0, u8::MAX as u64)),
        LdxH | FpLdxH => Some(Scalar(0, u16::MAX as u64)),
        LdxW | FpLdxW => Some(U32),
        // Stores, jumps and no-ops write no register.
        StB | StH | StW | StDW | StxB | StxH | StxW | StxDW | FpStB | FpStH | FpStW | FpStDW
        | FpStxB | FpStxH | FpStxW | FpStxDW | AtomicAdd64 | AtomicStoreB | AtomicStoreH
        | AtomicStoreW | AtomicStoreDW | Ja | Exit | Nop | Unreachable => None,
        Call | CallReg | CallLocal | LdAbsB | LdAbsH | LdAbsW | LdIndB | LdIndH | LdIndW => {
            s[..6].fill(Any);
            None
        }
        Atomic32 | Atomic64 => {
            s[0] = Any;
            s[src] = Any;
            None
        }
        k if super::emit::is_jump(k) => None,
        // Everything else writes dst with something this does not follow.
        _ => Some(Any),
    };
    if let Some(v) = value {
        s[d] = v;
    }
    s[10] = Stack(0, 0);
    s
}

/// Where control goes after op `pc`, and the state on each edge.
fn successors(ops: &[Op], pc: usize, before: State) -> Vec<(usize, State)> {
    use Kind::*;
    let op = &ops[pc];
    let after = step(op, before);
    match op.kind {
        Exit | Unreachable => vec![],
        Ja => vec![(op.aux as usize, after)],
        CallLocal => vec![(op.aux as usize, entry()), (pc + 1, after)],
        LdImm64 => vec![(pc + 2, after)],
        k if super::emit::is_jump(k) => {
            let (taken, fall) = refine(op, after);
            let mut out = Vec::with_capacity(2);
            if let Some(t) = taken {
                out.push((op.aux as usize, t));
            }
            if let Some(f) = fall {
                out.push((pc + 1, f));
            }
            out
        }
        _ => vec![(pc + 1, after)],
    }
}

/// The states on a conditional jump's two edges (taken, fall-through):
/// a 64-bit unsigned comparison of a register with an immediate bounds the
/// register's range on each edge. `None`: no value takes that edge.
fn refine(op: &Op, s: State) -> (Option<State>, Option<State>) {
    use Kind::*;
    let d = (op.dst as usize).min(10);
    let c = op.lo() as i64 as u64;
    let (lo, hi) = match s[d] {
        Scalar(a, b) => (a, b),
        Any => (0, u64::MAX),
        _ => return (Some(s), Some(s)),
    };
    // The range of values for which `d <cond> c` holds, and its complement
    // as one or two ranges (kept only when it is one).
    let below = |n: u64| (n > 0).then(|| (lo, hi.min(n - 1)));
    let at_least = |n: u64| Some((lo.max(n), hi));
    let (yes, no) = match op.kind {
        Jlt64I => (below(c), at_least(c)),
        Jle64I => (
            c.checked_add(1).map_or(Some((lo, hi)), below),
            c.checked_add(1).and_then(at_least),
        ),
        Jgt64I => (
            c.checked_add(1).and_then(at_least),
            c.checked_add(1).map_or(Some((lo, hi)), below),
        ),
        Jge64I => (at_least(c), below(c)),
        Jeq64I => (Some((lo.max(c), hi.min(c))), Some((lo, hi))),
        Jne64I => (Some((lo, hi)), Some((lo.max(c), hi.min(c)))),
        _ => return (Some(s), Some(s)),
    };
    let with = |r: Option<(u64, u64)>| {
        r.filter(|&(a, b)| a <= b).map(|(a, b)| {
            let mut t = s;
            t[d] = if (a, b) == (0, u64::MAX) {
                Any
            } else {
                Scalar(a, b)
            };
            t
        })
    };
    (with(yes), with(no))
}

/// The state a function starts with: only r10 known.
fn entry() -> State {
    let mut s = [Any; 11];
    s[10] = Stack(0, 0);
    s
}

pub(super) fn analyse(ops: &[Op]) -> Frames {
    use Kind::*;
    let n = ops.len();
    let mut stack_likely = vec![false; n];
    let mut in_frame = vec![false; n];
    // Without r10 read as a register, no register but r10 can hold a stack
    // address: nothing to find.
    if !ops
        .iter()
        .any(|op| op.src == 10 && !matches!(op.kind, LdImm64))
    {
        return Frames {
            stack_likely,
            in_frame,
        };
    }
    let mut state: Vec<Option<State>> = vec![None; n];
    let mut visits = vec![0u32; n];
    let mut dirty = vec![false; n];
    let mut flow = |state: &mut Vec<Option<State>>, dirty: &mut Vec<bool>, to: usize, s: State| {
        if to >= n {
            return;
        }
        let merged = match state[to] {
            None => s,
            Some(old) => {
                visits[to] += 1;
                let f = if visits[to] > WIDEN_AFTER {
                    widen
                } else {
                    join
                };
                std::array::from_fn(|r| f(old[r], s[r]))
            }
        };
        if state[to] != Some(merged) {
            state[to] = Some(merged);
            dirty[to] = true;
        }
    };
    flow(&mut state, &mut dirty, 0, entry());
    // Sweeps in program order: forward edges settle in one sweep, loops
    // in a few (widening bounds them).
    let mut again = true;
    while again {
        again = false;
        for pc in 0..n {
            if !std::mem::take(&mut dirty[pc]) {
                continue;
            }
            again = true;
            let Some(before) = state[pc] else { continue };
            for (to, s) in successors(ops, pc, before) {
                flow(&mut state, &mut dirty, to, s);
            }
        }
    }
    // Narrowing: recomputing a state from its predecessors' keeps the
    // result sound (it stays a post-fixpoint) and takes back what widening
    // gave up where a branch bounds a value (a loop counter below its
    // limit). In program order, in place, so a loop body sees its head's
    // narrowed state in the same sweep.
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (pc, st) in state.iter().enumerate() {
        if let Some(before) = *st {
            for (to, _) in successors(ops, pc, before) {
                if to < n && !preds[to].contains(&pc) {
                    preds[to].push(pc);
                }
            }
        }
    }
    for _ in 0..NARROWING_SWEEPS {
        for pc in 0..n {
            if state[pc].is_none() {
                continue;
            }
            let mut acc = (pc == 0).then(entry);
            for &p in &preds[pc] {
                let Some(sp) = state[p] else { continue };
                for (to, s) in successors(ops, p, sp) {
                    if to == pc {
                        acc = Some(match acc {
                            None => s,
                            Some(a) => std::array::from_fn(|r| join(a[r], s[r])),
                        });
                    }
                }
            }
            state[pc] = acc;
        }
    }
    for (pc, op) in ops.iter().enumerate() {
        let (base, size) = match op.kind {
            LdxB | LdxSB => (op.src, 1),
            LdxH | LdxSH => (op.src, 2),
            LdxW | LdxSW => (op.src, 4),
            LdxDW => (op.src, 8),
            StB | StxB => (op.dst, 1),
            StH | StxH => (op.dst, 2),
            StW | StxW => (op.dst, 4),
            StDW | StxDW => (op.dst, 8),
            _ => continue,
        };
        let Some(s) = state[pc] else { continue };
        let v = s[(base as usize).min(10)];
        stack_likely[pc] = matches!(v, Stack(..) | MaybeStack);
        if let Stack(lo, hi) = v {
            let (lo, hi, off) = (lo as i128, hi as i128, op.aux as i128);
            in_frame[pc] = lo + off >= -(FRAME_SIZE as i128) && hi + off + size <= 0;
        }
    }
    Frames {
        stack_likely,
        in_frame,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_widening_keep_kinds_apart() {
        assert_eq!(join(Scalar(1, 2), Scalar(5, 9)), Scalar(1, 9));
        assert_eq!(join(Stack(-8, -8), Stack(-16, -4)), Stack(-16, -4));
        assert_eq!(join(Stack(-8, -8), Scalar(0, 0)), MaybeStack);
        assert_eq!(join(Scalar(0, 0), Any), Any);
        assert_eq!(widen(Stack(-8, -8), Stack(-16, -8)), MaybeStack);
        assert_eq!(widen(Scalar(0, 1), Scalar(0, 2)), Any);
        assert_eq!(widen(Scalar(0, 2), Scalar(0, 1)), Scalar(0, 2));
    }

    #[test]
    fn arithmetic_that_could_wrap_gives_up() {
        assert_eq!(scalar_add(Scalar(0, u64::MAX), 1), Any);
        assert_eq!(scalar_add(Scalar(3, 10), -4), Any);
        assert_eq!(scalar_add(Scalar(4, 10), -4), Scalar(0, 6));
        assert_eq!(add(Stack(-256, -256), Scalar(0, u64::MAX)), MaybeStack);
        assert_eq!(add(Stack(-256, -256), Scalar(0, 252)), Stack(-256, -4));
        assert_eq!(sub(Stack(0, 0), Scalar(8, 16)), Stack(-16, -8));
        assert_eq!(sub(Scalar(0, 5), Scalar(1, 1)), Any);
    }
}
