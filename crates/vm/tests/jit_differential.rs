//! Differential testing of the JIT against the interpreter: random but
//! well-formed programs (arbitrary jumps, so loops that only the budget
//! stops; accesses in and out of bounds; divisions by zero; helper calls
//! that return, exit, fail or run bpf_loop; bpf-to-bpf calls, recursion
//! included) run in both engines, which must agree on r0, the instruction
//! count, the error and the memory left behind. Half the main functions
//! first walk the input in loops whose accesses the JIT may prove in
//! bounds, and every third program runs a second time on half its input,
//! so the JIT's unchecked and checked code both run.
//!
//! The seed comes from `BPFKIT_FUZZ_SEED` (else the clock) and is printed;
//! `BPFKIT_FUZZ_CASES` sets how many programs to run; `BPFKIT_FUZZ_TRACE`
//! prints each program before it runs (for a crash).
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use bpfkit_isa::gen::{self, GenConfig, Rng};
use bpfkit_isa::{
    AluOp, AtomicOp, ByteOrder, CallKind, Dialect, Instruction, JmpCond, PacketMode, Pseudo,
    RawInsn, Reg, Size, Source, Width,
};
use bpfkit_vm::{
    Entry, HelperError, Helpers, Interpreter, Jit, JitOptions, Outcome, Program, RunEnv, VmError,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One element of a generated program before layout.
#[derive(Clone, Copy)]
enum Item {
    Insn(Instruction),
    /// A jump (its offset filled in at layout) to item `usize`.
    Jump(Instruction, usize),
    /// `call local` to function `usize`.
    Call(usize),
    /// `lddw dst, func` of function `usize` (a bpf_loop callback address).
    FuncAddr(Reg, usize),
    /// An `exit` that stays where it is: an early return, after its own
    /// fold.
    EarlyExit,
}

struct Gen {
    rng: Rng,
    mem_len: usize,
    funcs: usize,
}

/// `dst op= src`, 64-bit.
fn alu(op: AluOp, dst: Reg, src: Source) -> Item {
    Item::Insn(Instruction::Alu {
        width: Width::W64,
        op,
        dst,
        src,
    })
}

fn reg(n: u8) -> Reg {
    Reg::new(n).unwrap()
}

impl Gen {
    /// A register to write: r0-r9, rarely r1 and r9 (which keep the memory
    /// pointer in the main function).
    fn dst(&mut self) -> Reg {
        if self.rng.chance(1, 10) {
            reg(self.rng.pick(&[1, 9]))
        } else {
            reg(self.rng.pick(&[0, 2, 3, 4, 5, 6, 7, 8]))
        }
    }

    /// A register to read. Never r10: the two engines' stacks live at
    /// different addresses, so a stack address must not reach a value.
    fn src(&mut self) -> Reg {
        reg(self.rng.below(10) as u8)
    }

    fn operand(&mut self) -> Source {
        if self.rng.chance(1, 2) {
            Source::Reg(self.src())
        } else {
            Source::Imm(self.rng.interesting_i32())
        }
    }

    fn width(&mut self) -> Width {
        if self.rng.chance(1, 2) {
            Width::W64
        } else {
            Width::W32
        }
    }

    /// A base register and offset for `size` bytes: mostly the memory
    /// pointer near its bounds (in or out), sometimes any register.
    fn addr(&mut self, size: usize) -> (Reg, i16) {
        let base = if self.rng.chance(4, 5) {
            reg(self.rng.pick(&[1, 1, 1, 9, 3]))
        } else {
            self.src()
        };
        let hi = self.mem_len as i64 + 4;
        let off = if self.rng.chance(1, 8) {
            self.rng.interesting_i32() as i16
        } else {
            (self.rng.below((hi + 5) as u64) as i64 - 5 - (size as i64 / 2)) as i16
        };
        (base, off)
    }

    /// An offset inside the frame (`-512 <= off`, `off + size <= 0`), in
    /// its top 64 bytes mostly so that loads see earlier stores; aligned to
    /// the size for atomics.
    fn frame_off(&mut self, size: usize, aligned: bool) -> i16 {
        let span = if self.rng.chance(7, 8) { 64 } else { 512 };
        if aligned || self.rng.chance(1, 2) {
            -((self.rng.range(1, span / size) * size) as i64) as i16
        } else {
            -(self.rng.range(size, span) as i64) as i16
        }
    }

    /// An offset from r10: mostly inside the frame; sometimes outside it
    /// (checked accesses: into the callers' frames, past either end of the
    /// stack) or misaligned.
    fn stack_off(&mut self, size: usize, aligned: bool) -> i16 {
        match self.rng.below(8) {
            0 => self.rng.range(0, 1100) as i16 - 24,
            1 => -(self.rng.range(500, 1100) as i16),
            2 => -(self.rng.range(1, 64) as i16),
            _ => self.frame_off(size, aligned),
        }
    }

    fn size(&mut self) -> Size {
        self.rng.pick(Size::ALL)
    }

    /// A stack access through a computed pointer: r10 plus a constant plus
    /// a masked index, then a load or store at an offset: in the frame
    /// (where the JIT may prove it and drop the check), or out of it. The
    /// pointer register is cleared after, so no stack address reaches r0
    /// or memory.
    fn stack_access(&mut self, items: &mut Vec<Item>) {
        let p = reg(self.rng.pick(&[2, 3, 4, 5]));
        let x = reg(self.rng.pick(&[0, 6, 7, 8]));
        let base = self.rng.pick(&[-8, -64, -256, -512, -520, 0]);
        let mut guard = None;
        // Offsets stay within 8 KiB of the stack top, where addresses are
        // compared relative to it (the engines' stacks live apart).
        let mask = self.rng.pick(&[3, 7, 63, 127, 255, 504, 900]);
        // The index scaled first, as clang orders an array access (the
        // JIT folds that into one `lea`), or the other way round.
        let scale_first = self.rng.chance(1, 2);
        if scale_first {
            items.push(alu(AluOp::And, x, Source::Imm(mask)));
            items.push(alu(AluOp::Lsh, x, Source::Imm(self.rng.pick(&[1, 2, 3]))));
        }
        items.push(alu(AluOp::Mov, p, Source::Reg(Reg::R10)));
        items.push(alu(AluOp::Add, p, Source::Imm(base)));
        if scale_first {
            // Masked above.
        } else if self.rng.chance(1, 2) {
            items.push(alu(AluOp::And, x, Source::Imm(mask)));
        } else {
            // Bounded by a branch instead: the access is skipped unless x
            // is at most a limit (or equal to it), so addresses stay near
            // the stack top.
            let cond = self.rng.pick(&[JmpCond::Ge, JmpCond::Gt, JmpCond::Ne]);
            let skip = Instruction::Jump {
                width: Width::W64,
                cond,
                dst: x,
                src: Source::Imm(self.rng.pick(&[0, 1, 63, 64, 255, 256, 511, 512, 1000])),
                off: 0,
            };
            // Skips the rest of the pattern but the final clear of p
            // (its target is set once that is placed).
            guard = Some((items.len(), skip));
            items.push(Item::Insn(skip));
        }
        if !scale_first && self.rng.chance(1, 3) {
            items.push(alu(AluOp::Lsh, x, Source::Imm(self.rng.pick(&[1, 2, 3]))));
        }
        items.push(alu(AluOp::Add, p, Source::Reg(x)));
        let size = self.rng.pick(&[Size::B, Size::H, Size::W, Size::DW]);
        let off = self.rng.pick(&[-16, -8, -1, 0, 4, 8, 300, -600]);
        items.push(Item::Insn(match self.rng.below(3) {
            0 => Instruction::Load {
                size,
                signed: false,
                dst: x,
                src: p,
                off,
            },
            1 => Instruction::Store {
                size,
                dst: p,
                src: x,
                off,
            },
            _ => Instruction::StoreImm {
                size,
                dst: p,
                off,
                imm: self.rng.interesting_i32(),
            },
        }));
        items.push(alu(AluOp::Mov, p, Source::Imm(0)));
        if let Some((at, skip)) = guard {
            items[at] = Item::Jump(skip, items.len() - 1);
        }
    }

    /// The sequences the JIT folds into one x86 instruction or a shorter
    /// one, and near misses that must not fold: an array index (`i <<= k;
    /// d = a; d += c; d += i`), a multiply by 3, 5 or 9 (alone or after a
    /// copy), a rotate (`t = y; t >>= 64 - k; y <<= k; y |= t`, the shifts
    /// either way round), and a 64-bit division whose operands are masked
    /// to fit 32 bits (or not quite).
    /// An early return: a conditional jump over a few instructions, a
    /// fold into `acc` and an `exit` (the shape of a loop whose latch comes
    /// before its body and jumps over the code after the loop).
    fn early_exit(&mut self, items: &mut Vec<Item>, acc: Reg) {
        let at = items.len();
        let jump = Instruction::Jump {
            width: self.width(),
            cond: self.rng.pick(JmpCond::ALL),
            dst: self.src(),
            src: self.operand(),
            off: 0,
        };
        items.push(Item::Jump(jump, at));
        for _ in 0..self.rng.below(3) {
            items.push(alu(
                self.rng.pick(&[AluOp::Add, AluOp::Xor, AluOp::Mul]),
                self.dst(),
                self.operand(),
            ));
        }
        fold(items, acc);
        items.push(Item::EarlyExit);
        items[at] = Item::Jump(jump, items.len());
    }

    fn fused_shape(&mut self, items: &mut Vec<Item>) {
        let imm = |v: i32| Source::Imm(v);
        match self.rng.below(4) {
            0 => {
                let (i, d, a) = (self.dst(), self.dst(), self.src());
                let k = self.rng.pick(&[1, 2, 3, 3, 0, 4]);
                items.push(alu(AluOp::Lsh, i, imm(k)));
                items.push(alu(AluOp::Mov, d, Source::Reg(a)));
                items.push(alu(AluOp::Add, d, imm(self.rng.interesting_i32())));
                items.push(alu(AluOp::Add, d, Source::Reg(i)));
            }
            1 => {
                let (d, a) = (self.dst(), self.src());
                let m = self.rng.pick(&[3, 5, 9, 9, 7, -3]);
                if self.rng.chance(1, 2) {
                    items.push(alu(AluOp::Mov, d, Source::Reg(a)));
                }
                items.push(alu(AluOp::Mul, d, imm(m)));
            }
            2 => {
                let (t, y) = (self.dst(), self.dst());
                let k = self.rng.pick(&[1, 5, 7, 32, 63]);
                let other = if self.rng.chance(7, 8) {
                    64 - k
                } else {
                    63 - k
                };
                let (first, second) = if self.rng.chance(1, 2) {
                    (AluOp::Rsh, AluOp::Lsh)
                } else {
                    (AluOp::Lsh, AluOp::Rsh)
                };
                items.push(alu(AluOp::Mov, t, Source::Reg(y)));
                items.push(alu(first, t, imm(other)));
                items.push(alu(second, y, imm(k)));
                items.push(alu(AluOp::Or, y, Source::Reg(t)));
            }
            _ => {
                let (x, y) = (self.dst(), self.src());
                for r in [x, y] {
                    match self.rng.below(4) {
                        // Zero-extends the low 32 bits.
                        0 => items.push(Item::Insn(Instruction::Alu {
                            width: Width::W32,
                            op: AluOp::Mov,
                            dst: r,
                            src: Source::Reg(r),
                        })),
                        1 => items.push(alu(AluOp::And, r, imm(0x7fff_ffff))),
                        2 => items.push(alu(AluOp::Rsh, r, imm(self.rng.pick(&[31, 32, 33])))),
                        _ => {}
                    }
                }
                let op = self.rng.pick(&[AluOp::Div, AluOp::Mod]);
                let src = if self.rng.chance(1, 3) {
                    imm(self.rng.pick(&[3, 10, 0x7fff_ffff, -1, 0]))
                } else {
                    Source::Reg(y)
                };
                items.push(alu(op, x, src));
            }
        }
    }

    /// A walk over the input, placed before anything else runs (while r1
    /// still points at it, for the JIT's value analysis): a loop reading,
    /// sometimes writing, `r1 + i + off` for a counter `i` running from a
    /// start by a stride to a limit tested with `!=`, `<` (64- or 32-bit,
    /// immediate) or `limit > copy` (the limit in a register, the copy
    /// taken before the step); or one access at a masked input byte. The
    /// bounds fall inside the input, at its end and past it (or off the
    /// counter's grid, so `!=` never holds), so the JIT proves some of these
    /// accesses and must not prove others.
    fn input_walk(&mut self, items: &mut Vec<Item>) {
        let (i, j, p, v, acc, lim) = (Reg::R7, Reg::R8, Reg::R2, Reg::R3, Reg::R6, Reg::R5);
        let size = self.rng.pick(&[Size::B, Size::H, Size::W, Size::DW]);
        let off = self.rng.pick(&[0, 0, 0, 1, -1, 3]);
        let access = |g: &mut Gen, items: &mut Vec<Item>| {
            // Loading into the pointer's own register is the shape the JIT
            // folds into one instruction with the add before it.
            let into = if g.rng.chance(1, 3) { p } else { v };
            items.push(Item::Insn(if g.rng.chance(1, 4) {
                Instruction::Store {
                    size,
                    dst: p,
                    src: acc,
                    off,
                }
            } else {
                Instruction::Load {
                    size,
                    signed: size != Size::DW && g.rng.chance(1, 4),
                    dst: into,
                    src: p,
                    off,
                }
            }));
            items.push(alu(AluOp::Xor, acc, Source::Reg(into)));
            items.push(alu(AluOp::Mul, acc, Source::Imm(0x3b9a_ca07)));
        };
        if self.rng.chance(1, 4) {
            let mask = self.rng.pick(&[0, 1, 3, 7, 15, 31, 63]);
            items.push(Item::Insn(Instruction::Load {
                size: Size::B,
                signed: false,
                dst: v,
                src: Reg::R1,
                off: 0,
            }));
            items.push(alu(AluOp::And, v, Source::Imm(mask)));
            items.push(alu(AluOp::Mov, p, Source::Reg(Reg::R1)));
            items.push(alu(AluOp::Add, p, Source::Reg(v)));
            access(self, items);
            return;
        }
        let stride = self.rng.pick(&[1i32, 2, 4, 8]);
        let start = self.rng.pick(&[0i32, 0, 1, 2, 8]);
        let n = self.rng.below(self.mem_len as u64 / stride as u64 + 3) as i32;
        let end = start + n * stride + if self.rng.chance(1, 6) { 1 } else { 0 };
        let style = self.rng.below(4);
        items.push(alu(AluOp::Mov, i, Source::Imm(start)));
        if style == 1 {
            items.push(alu(AluOp::Mov, lim, Source::Imm(end)));
        }
        let head = items.len();
        items.push(alu(AluOp::Mov, p, Source::Reg(Reg::R1)));
        if style == 1 {
            items.push(alu(AluOp::Mov, j, Source::Reg(i)));
            items.push(alu(AluOp::Add, p, Source::Reg(j)));
        } else {
            items.push(alu(AluOp::Add, p, Source::Reg(i)));
        }
        access(self, items);
        items.push(alu(AluOp::Add, i, Source::Imm(stride)));
        let (width, cond, dst, src) = match style {
            0 => (Width::W64, JmpCond::Ne, i, Source::Imm(end)),
            1 => (Width::W64, JmpCond::Gt, lim, Source::Reg(j)),
            2 => (Width::W64, JmpCond::Lt, i, Source::Imm(end)),
            _ => (Width::W32, JmpCond::Lt, i, Source::Imm(end)),
        };
        items.push(Item::Jump(
            Instruction::Jump {
                width,
                cond,
                dst,
                src,
                off: 0,
            },
            head,
        ));
    }

    fn insn(&mut self, items: &mut Vec<Item>, lo: usize, hi: usize) {
        if self.rng.chance(1, 20) {
            self.stack_access(items);
            return;
        }
        if self.rng.chance(1, 16) {
            self.fused_shape(items);
            return;
        }
        let r = &mut self.rng;
        let choice = r.below(100);
        let insn = match choice {
            0..=29 => {
                let op = self.rng.pick(AluOp::ALL);
                let mut width = self.width();
                let src = match op {
                    AluOp::MovSx8 | AluOp::MovSx16 => Source::Reg(self.src()),
                    AluOp::MovSx32 => {
                        width = Width::W64;
                        Source::Reg(self.src())
                    }
                    AluOp::Div | AluOp::SDiv | AluOp::Mod | AluOp::SMod
                        if self.rng.chance(1, 4) =>
                    {
                        Source::Imm(self.rng.pick(&[0, -1, 1, i32::MIN]))
                    }
                    _ => self.operand(),
                };
                Instruction::Alu {
                    width,
                    op,
                    dst: self.dst(),
                    src,
                }
            }
            30..=32 => Instruction::Neg {
                width: self.width(),
                dst: self.dst(),
            },
            33..=35 => Instruction::Endian {
                order: self.rng.pick(&ByteOrder::ALL),
                bits: self.rng.pick(&[16, 32, 64]),
                dst: self.dst(),
            },
            36..=38 => Instruction::LoadImm64 {
                dst: self.dst(),
                pseudo: Pseudo::Imm64,
                imm: self.rng.interesting_i64(),
            },
            39..=46 => {
                let size = self.size();
                let signed = size != Size::DW && self.rng.chance(1, 3);
                let (src, off) = if self.rng.chance(1, 3) {
                    (Reg::R10, self.stack_off(size.bytes(), false))
                } else {
                    self.addr(size.bytes())
                };
                Instruction::Load {
                    size,
                    signed,
                    dst: self.dst(),
                    src,
                    off,
                }
            }
            47..=54 => {
                let size = self.size();
                let (dst, off) = if self.rng.chance(1, 3) {
                    (Reg::R10, self.stack_off(size.bytes(), false))
                } else {
                    self.addr(size.bytes())
                };
                if self.rng.chance(1, 2) {
                    Instruction::Store {
                        size,
                        dst,
                        src: self.src(),
                        off,
                    }
                } else {
                    Instruction::StoreImm {
                        size,
                        dst,
                        off,
                        imm: self.rng.interesting_i32(),
                    }
                }
            }
            55..=59 => {
                let op = self.rng.pick(AtomicOp::ALL);
                let size = loop {
                    let s = self.size();
                    if op.valid_size(s) {
                        break s;
                    }
                };
                let (base, off) = if self.rng.chance(1, 2) {
                    (Reg::R10, self.stack_off(size.bytes(), true))
                } else {
                    self.addr(size.bytes())
                };
                if op == AtomicOp::LoadAcquire {
                    Instruction::Atomic {
                        size,
                        op,
                        dst: self.dst(),
                        src: base,
                        off,
                    }
                } else {
                    let src = if op.fetches() { self.dst() } else { self.src() };
                    Instruction::Atomic {
                        size,
                        op,
                        dst: base,
                        src,
                        off,
                    }
                }
            }
            60..=62 => {
                let size = self.rng.pick(&[Size::B, Size::H, Size::W]);
                let mode = if self.rng.chance(1, 2) {
                    PacketMode::Abs
                } else {
                    PacketMode::Ind(self.src())
                };
                Instruction::LoadPacket {
                    mode,
                    size,
                    imm: self.rng.below(self.mem_len as u64 + 8) as i32 - 4,
                }
            }
            63..=80 => {
                // Mostly forward, sometimes back: loops the budget ends.
                let here = items.len();
                let target = if self.rng.chance(3, 4) && here + 1 < hi {
                    self.rng.range(here + 1, hi - 1)
                } else {
                    self.rng.range(lo, here)
                };
                let jump = if self.rng.chance(1, 8) {
                    if self.rng.chance(1, 4) {
                        Instruction::JaLong { imm: 0 }
                    } else {
                        Instruction::Ja { off: 0 }
                    }
                } else {
                    Instruction::Jump {
                        width: self.width(),
                        cond: self.rng.pick(JmpCond::ALL),
                        dst: self.src(),
                        src: self.operand(),
                        off: 0,
                    }
                };
                items.push(Item::Jump(jump, target));
                return;
            }
            81..=82 => {
                // A region granted by a helper (r0), used at once.
                items.push(Item::Insn(Instruction::Alu {
                    width: Width::W64,
                    op: AluOp::Mov,
                    dst: Reg::R1,
                    src: Source::Imm(self.rng.below(4) as i32),
                }));
                items.push(Item::Insn(Instruction::Call {
                    kind: CallKind::Helper,
                    imm: 7,
                }));
                for _ in 0..self.rng.range(1, 3) {
                    let size = self.size();
                    let off = self.rng.below(40) as i16 - 4;
                    items.push(Item::Insn(if self.rng.chance(1, 2) {
                        Instruction::Load {
                            size,
                            signed: false,
                            dst: reg(self.rng.pick(&[2, 3, 4, 5])),
                            src: Reg::R0,
                            off,
                        }
                    } else {
                        Instruction::Store {
                            size,
                            dst: Reg::R0,
                            src: self.src(),
                            off,
                        }
                    }));
                }
                return;
            }
            83..=88 => {
                let id = self.rng.range(1, 4) as i32;
                if self.rng.chance(1, 4) {
                    let r = self.dst();
                    let id = if self.rng.chance(1, 8) { 77 } else { id };
                    items.push(Item::Insn(Instruction::Alu {
                        width: Width::W64,
                        op: AluOp::Mov,
                        dst: r,
                        src: Source::Imm(id),
                    }));
                    Instruction::CallReg { reg: r }
                } else {
                    Instruction::Call {
                        kind: CallKind::Helper,
                        imm: id,
                    }
                }
            }
            89..=92 if self.funcs > 1 => {
                // bpf_loop(iterations = r1, callback = r2, ctx = r3); a random
                // r2 now and then for BadCallback.
                let f = self.rng.range(1, self.funcs - 1);
                if self.rng.chance(7, 8) {
                    items.push(Item::FuncAddr(Reg::R2, f));
                }
                items.push(Item::Insn(Instruction::Alu {
                    width: Width::W64,
                    op: AluOp::Mov,
                    dst: Reg::R1,
                    src: Source::Imm(self.rng.below(6) as i32),
                }));
                Instruction::Call {
                    kind: CallKind::Helper,
                    imm: 5,
                }
            }
            93..=96 if self.funcs > 1 => {
                let f = self.rng.below(self.funcs as u64) as usize;
                items.push(Item::Call(f));
                return;
            }
            97 => Instruction::Exit,
            _ => Instruction::Alu {
                width: Width::W64,
                op: AluOp::Mov,
                dst: self.dst(),
                src: self.operand(),
            },
        };
        items.push(Item::Insn(insn));
    }
}

/// A random program: a main function and up to two more, each a body of
/// random instructions ending in `exit`.
fn random_program(seed: u64, mem_len: usize) -> Vec<RawInsn> {
    let mut g = Gen {
        rng: Rng::new(seed),
        mem_len,
        funcs: 1,
    };
    g.funcs = g.rng.range(1, 3);
    let mut items = Vec::new();
    let mut starts = Vec::new();
    for f in 0..g.funcs {
        starts.push(items.len());
        let lo = items.len();
        let n = g.rng.range(4, if f == 0 { 50 } else { 20 });
        if f == 0 && g.rng.chance(1, 2) {
            for _ in 0..g.rng.range(1, 3) {
                g.input_walk(&mut items);
            }
        }
        if f == 0 {
            // Keep a copy of the memory pointer, tell the harness where
            // the stack is (helper 6 records r1), and seed registers.
            let mov = |dst, src| alu(AluOp::Mov, dst, Source::Reg(src));
            items.push(mov(Reg::R9, Reg::R1));
            items.push(mov(Reg::R1, Reg::R10));
            items.push(Item::Insn(Instruction::Call {
                kind: CallKind::Helper,
                imm: 6,
            }));
            items.push(mov(Reg::R1, Reg::R9));
        }
        if f > 0 {
            // Whatever the frame holds on entry (zero, unless a frame
            // leaked from an earlier run or call), to the witness.
            fold_frame(&mut items, Reg::R0);
            items.push(alu(AluOp::Mov, Reg::R1, Source::Reg(Reg::R0)));
            items.push(Item::Insn(Instruction::Call {
                kind: CallKind::Helper,
                imm: 8,
            }));
        }
        for r in [0u8, 4, 5, 6, 7, 8] {
            if g.rng.chance(1, 2) {
                items.push(Item::Insn(Instruction::LoadImm64 {
                    dst: reg(r),
                    pseudo: Pseudo::Imm64,
                    imm: g.rng.interesting_i64(),
                }));
            }
        }
        // Jumps land within this function's body (never in the prologue,
        // whose probe must see r10).
        let body = items.len();
        let acc = if f == 0 { Reg::R0 } else { Reg::R5 };
        while items.len() < body + n {
            if g.rng.chance(1, 24) {
                g.early_exit(&mut items, acc);
            } else {
                g.insn(&mut items, body, body + n);
            }
        }
        // Targets past the end of the body land on its tail.
        let end = items.len();
        for it in &mut items[lo..] {
            if let Item::Jump(_, t) = it {
                *t = (*t).min(end);
            }
        }
        // Every exit goes through a fold of r0-r9 and the top of the
        // frame, so a difference anywhere shows: into r0 in main, into r5
        // in the others (r0 is their result; the caller still sees r5).
        for it in &mut items[lo..] {
            if let Item::Insn(Instruction::Exit) = it {
                *it = Item::Jump(Instruction::Ja { off: 0 }, end);
            }
        }
        fold(&mut items, if f == 0 { Reg::R0 } else { Reg::R5 });
        items.push(Item::Insn(Instruction::Exit));
    }
    layout(&items, &starts)
}

/// `acc` = a mix of r0-r9 and the top 64 bytes of the frame (r1 is
/// clobbered).
fn fold(items: &mut Vec<Item>, acc: Reg) {
    let mix = |items: &mut Vec<Item>, r| {
        items.push(alu(AluOp::Mul, acc, Source::Imm(0x3b9a_ca07)));
        items.push(alu(AluOp::Xor, acc, Source::Reg(r)));
    };
    for r in 0..10 {
        if reg(r) != acc {
            mix(items, reg(r));
        }
    }
    fold_frame(items, acc);
}

/// `acc` = a mix of `acc` and the top 64 bytes of the frame (r1 is
/// clobbered).
fn fold_frame(items: &mut Vec<Item>, acc: Reg) {
    for k in 1..=8 {
        items.push(Item::Insn(Instruction::Load {
            size: Size::DW,
            signed: false,
            dst: Reg::R1,
            src: Reg::R10,
            off: -8 * k,
        }));
        items.push(alu(AluOp::Mul, acc, Source::Imm(0x3b9a_ca07)));
        items.push(alu(AluOp::Xor, acc, Source::Reg(Reg::R1)));
    }
}

fn layout(items: &[Item], starts: &[usize]) -> Vec<RawInsn> {
    let size = |it: &Item| match it {
        Item::Insn(i) | Item::Jump(i, _) => i.slots(),
        Item::Call(_) | Item::EarlyExit => 1,
        Item::FuncAddr(..) => 2,
    };
    let mut pos = Vec::with_capacity(items.len());
    let mut p = 0i64;
    for it in items {
        pos.push(p);
        p += size(it) as i64;
    }
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let rel = |t: usize| pos[t] - (pos[i] + 1);
        let insn = match *it {
            Item::Insn(insn) => insn,
            Item::Jump(insn, t) => match insn {
                Instruction::Ja { .. } => Instruction::Ja { off: rel(t) as i16 },
                Instruction::JaLong { .. } => Instruction::JaLong { imm: rel(t) as i32 },
                Instruction::Jump {
                    width,
                    cond,
                    dst,
                    src,
                    ..
                } => Instruction::Jump {
                    width,
                    cond,
                    dst,
                    src,
                    off: rel(t) as i16,
                },
                other => other,
            },
            Item::Call(f) => Instruction::Call {
                kind: CallKind::Local,
                imm: rel(starts[f]) as i32,
            },
            Item::FuncAddr(dst, f) => Instruction::LoadImm64 {
                dst,
                pseudo: Pseudo::Func,
                imm: rel(starts[f]),
            },
            Item::EarlyExit => Instruction::Exit,
        };
        out.extend_from_slice(insn.encode().as_slice());
    }
    out
}

/// Helpers that return, exit, fail, touch memory, run loops.
/// `grant` is 4 spare 32-byte blocks the granting helper hands out.
fn helpers(grant: u64) -> Helpers {
    let mut h = Helpers::new();
    h.register(7, "grant", move |ctx, a| {
        // Block a[0] & 3, read-only when odd.
        let k = a[0] & 3;
        let start = grant + 32 * k;
        // SAFETY: the blocks lie inside the arena, which outlives every run.
        unsafe {
            let regions = ctx.regions_mut();
            let p = std::ptr::with_exposed_provenance_mut::<u8>(start as usize);
            // Once per block, or loops would grow the table without end.
            if !regions.iter().any(|r| r.start == start) {
                if k & 1 == 0 {
                    regions.add_rw(p, 32);
                } else {
                    regions.add_ro(p, 32);
                }
            }
        }
        Ok(start)
    });
    h.register(1, "mix", |_, a| {
        Ok(a[0].wrapping_mul(3) ^ a[1].rotate_left(7) ^ a[4])
    });
    h.register(2, "maybe_exit", |_, a| {
        if a[0] & 3 == 0 {
            Err(HelperError::Exit(a[0] ^ 0x55))
        } else {
            Ok(a[0].wrapping_add(1))
        }
    });
    h.register(3, "maybe_fail", |_, a| {
        if a[1] & 3 == 0 {
            Err(HelperError::Failed(format!("failed on {}", a[1])))
        } else {
            Ok(a[1] >> 1)
        }
    });
    h.register(4, "poke", |ctx, a| {
        let n = (a[2] & 7) as usize + 1;
        if a[3] & 1 == 0 {
            ctx.write(a[0], &a[1].to_le_bytes()[..n])?;
            Ok(n as u64)
        } else {
            let v = ctx.read(a[0], n)?;
            Ok(v.iter().map(|&b| b as u64).sum())
        }
    });
    h.register(8, "witness", |_, a| {
        WITNESS.with(|w| w.set(w.get().wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ a[0]));
        Ok(0)
    });
    h.register(6, "stack_probe", |_, a| {
        STACK_TOP.with(|t| t.set(a[0]));
        Ok(0)
    });
    h.register(5, "loop", |_, a| {
        Err(HelperError::Loop {
            callback: a[1],
            iterations: (a[0] & 7) as u32,
            ctx: a[2],
        })
    });
    h
}

type Res = Result<Outcome, VmError>;

thread_local! {
    /// r10 of the main frame in the run in progress (helper 6).
    static STACK_TOP: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// JITs that proved input accesses, and those of them that also ran
    /// their checked code (the input was too short).
    static INPUT_PROOFS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    /// Programs with loops the JIT runs uncounted when the budget allows.
    static UNCOUNTED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// Programs with an exit region moved out of line.
    static EXITS_MOVED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// A hash of the values helper 8 saw in the run in progress.
    static WITNESS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Addresses in an error near the stack as offsets from its top (the two
/// engines' stacks live at different addresses), in the shared arena as
/// they are, anywhere else as [`FAR`].
fn normalise(r: Res, top: u64, arena: std::ops::Range<u64>) -> Res {
    let fix = |addr: u64| {
        let rel = addr.wrapping_sub(top) as i64;
        if top != 0 && (-8192..8192).contains(&rel) {
            0x5eac_0000_0000_0000u64.wrapping_add(rel as u64)
        } else if arena.contains(&addr) || top == 0 {
            addr
        } else {
            // Far from both: a stack address plus garbage (the engines'
            // stacks live apart) or garbage alone; the pc, size and
            // direction still have to agree.
            FAR
        }
    };
    match r {
        Err(VmError::OutOfBounds {
            pc,
            addr,
            size,
            write,
        }) => Err(VmError::OutOfBounds {
            pc,
            addr: fix(addr),
            size,
            write,
        }),
        Err(VmError::MisalignedAtomic { pc, addr, size }) => Err(VmError::MisalignedAtomic {
            pc,
            addr: fix(addr),
            size,
        }),
        r => r,
    }
}

fn kind(r: &Runs) -> String {
    match r {
        Err(_) => "rejected".into(),
        Ok(runs) => match &runs[0].0 {
            Ok(_) => "ok".into(),
            Err(e) => format!("{e:?}").split([' ', '{']).next().unwrap().into(),
        },
    }
}

/// Per run: the result, the memory after it, the witness.
type Runs = Result<Vec<(Res, Vec<u8>, u64)>, String>;

/// Where the input memory and the read-only region sit in the arena: far
/// from its ends, so no offset a program forms from them (at most 32 KiB)
/// leaves the arena. Otherwise an access just past a small buffer could
/// land in one engine's own stack and not in the other's.
const ARENA: usize = 1 << 20;
/// What [`normalise`] makes of an address far from the arena and the stack.
const FAR: u64 = 0xfa7f_a7fa_7fa7_fa70;
const MEM_AT: usize = 256 << 10;
const RO_AT: usize = 640 << 10;
const GRANT_AT: usize = 768 << 10;

/// Runs `slots` twice in each engine (the second run checks that no stack
/// content leaks across runs), on the same memory so addresses agree. With
/// `ro`, through `run_with`: r3 then points at a read-only region holding
/// `ro`; else through `run`. With `shrink`, the second run gets half the
/// input.
#[allow(clippy::too_many_arguments)]
fn both(
    arena: &mut [u8],
    slots: &[RawInsn],
    init: &[u8],
    ro: Option<&[u8]>,
    budget: u64,
    h: &Helpers,
    blinding: bool,
    shrink: bool,
) -> [Runs; 2] {
    let prog = match Program::new(slots) {
        Ok(p) => p,
        Err(e) => return [Err(e.to_string()), Err(e.to_string())],
    };
    let arena_range = arena.as_ptr() as u64..arena.as_ptr() as u64 + arena.len() as u64;
    let (low, high) = arena.split_at_mut(RO_AT);
    let buf = &mut low[MEM_AT..MEM_AT + init.len()];
    let (ro_area, grant_area) = high.split_at_mut(GRANT_AT - RO_AT);
    let ro_buf = &mut ro_area[..16];
    let grant_buf = &mut grant_area[..128];
    macro_rules! runs {
        ($engine:expr, $after:expr) => {
            $engine.map_err(|e| e.to_string()).map(|mut vm| {
                vm.set_budget(budget);
                let mut env = RunEnv::default();
                let r = (0..2)
                    .map(|i| {
                        buf.copy_from_slice(init);
                        // With `shrink`, the second run sees half the input
                        // (the JIT's code for short inputs).
                        let len = if i == 1 && shrink {
                            init.len() / 2
                        } else {
                            init.len()
                        };
                        let buf = &mut buf[..len];
                        grant_buf.fill(0);
                        STACK_TOP.with(|t| t.set(0));
                        WITNESS.with(|w| w.set(0));
                        let r = match ro {
                            None => vm.run(buf),
                            Some(ro) => vm.run_with(&mut env, |regions| {
                                ro_buf.copy_from_slice(ro);
                                let len = buf.len();
                                // SAFETY: both buffers outlive the run, and
                                // nothing else touches them meanwhile.
                                let (addr, ro_addr) = unsafe {
                                    let addr = if len == 0 {
                                        0
                                    } else {
                                        regions.add_rw(buf.as_mut_ptr(), len)
                                    };
                                    (addr, regions.add_ro(ro_buf.as_ptr(), ro_buf.len()))
                                };
                                Entry {
                                    args: [addr, len as u64, ro_addr, 0, 0],
                                    packet: (addr, len as u64),
                                }
                            }),
                        };
                        (
                            normalise(r, STACK_TOP.with(|t| t.get()), arena_range.clone()),
                            [&buf[..], &grant_buf[..]].concat(),
                            WITNESS.with(|w| w.get()),
                        )
                    })
                    .collect::<Vec<_>>();
                $after(&vm);
                r
            })
        };
    }
    let interp = runs!(Interpreter::new(&prog, h), |_: &Interpreter| {});
    let jit = runs!(
        Jit::with_options(&prog, h, JitOptions { blinding }),
        |j: &Jit| {
            UNCOUNTED.with(|c| c.set(c.get() + (j.uncounted_loops() > 0) as u64));
            EXITS_MOVED.with(|c| c.set(c.get() + (j.exits_out_of_line() > 0) as u64));
            INPUT_PROOFS.with(|c| {
                let (mut with, mut checked) = c.get();
                if j.proved_in_input() > 0 {
                    with += 1;
                    checked += j.has_checked_code() as u64;
                }
                c.set((with, checked));
            })
        }
    );
    [interp, jit]
}

fn seed() -> u64 {
    match std::env::var("BPFKIT_FUZZ_SEED") {
        Ok(s) => s.parse().expect("BPFKIT_FUZZ_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

#[test]
fn jit_agrees_with_the_interpreter_on_random_programs() {
    let seed = seed();
    println!("jit differential: BPFKIT_FUZZ_SEED={seed}");
    eprintln!("jit differential: BPFKIT_FUZZ_SEED={seed}");
    let cases: u64 = std::env::var("BPFKIT_FUZZ_CASES")
        .ok()
        .map(|s| s.parse().expect("BPFKIT_FUZZ_CASES is a number"))
        .unwrap_or(50_000);
    let mut arena = vec![0u8; ARENA];
    let grant = arena[GRANT_AT..].as_mut_ptr().expose_provenance() as u64;
    let h = helpers(grant);
    let conformance = bpfkit_vm::helpers::conformance();
    let mut rng = Rng::new(seed);
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let start = Instant::now();
    let mut ran = 0;
    for case in 0..cases {
        // Stay well inside the time a debug build may take.
        if start.elapsed() > Duration::from_secs(20) {
            break;
        }
        let case_seed = rng.next_u64();
        let mut crng = Rng::new(case_seed);
        let mem_len = crng.pick(&[0, 1, 4, 8, 13, 16, 32, 64]);
        let budget = crng.pick(&[0, 9, 40, 300, 2000, 20_000, 20_000]);
        // One case in five from the verifier-shaped generator, with loops.
        let (slots, helpers) = if case % 5 == 4 {
            let mut cfg = GenConfig::random(case_seed);
            cfg.loops = crng.chance(1, 2);
            cfg.mem_len = mem_len;
            (gen::program(case_seed, &cfg), &conformance)
        } else {
            (random_program(case_seed, mem_len), &h)
        };
        let mut init = vec![0u8; mem_len];
        crng.fill(&mut init);
        let mut ro = [0u8; 16];
        crng.fill(&mut ro);
        let ro = crng.chance(1, 2).then_some(&ro[..]);
        // Every other case with constant blinding.
        let blinding = case % 2 == 1;
        // Every third case runs the second time on half the input.
        let shrink = case % 3 == 2;
        if std::env::var_os("BPFKIT_FUZZ_TRACE").is_some() {
            eprintln!(
                "case {case} seed {case_seed:#x} budget {budget} shrink {shrink} mem {mem_len}"
            );
            eprintln!(
                "{}",
                bpfkit_isa::disasm::listing(&slots, Dialect::Conformance)
            );
        }
        let [a, b] = both(
            &mut arena, &slots, &init, ro, budget, helpers, blinding, shrink,
        );
        if a != b {
            panic!(
                "engines disagree (BPFKIT_FUZZ_SEED={seed}, case {case}, case seed \
                 {case_seed:#x}, budget {budget}, blinding {blinding}, shrink {shrink}, memory {init:02x?}, \
                 read-only {ro:02x?})\n\
                 interpreter: {a:?}\njit: {b:?}\nprogram:\n{}",
                bpfkit_isa::disasm::listing(&slots, Dialect::Conformance)
            );
        }
        *kinds.entry(kind(&a)).or_default() += 1;
        ran += 1;
    }
    let (proofs, checked) = INPUT_PROOFS.with(|c| c.get());
    let uncounted = UNCOUNTED.with(|c| c.get());
    let exits_moved = EXITS_MOVED.with(|c| c.get());
    println!(
        "jit differential: {ran} programs in {:.1?}: {kinds:?}; {proofs} with input \
         accesses proved, {checked} of them also run checked; {uncounted} with loops \
         that may run uncounted; {exits_moved} with exits moved out of line",
        start.elapsed()
    );
    // The generator must keep reaching every kind of ending, or the
    // comparison proves little.
    assert!(ran >= 200, "only {ran} programs ran");
    let share = |k: &str| kinds.get(k).copied().unwrap_or(0) * 1000 / ran;
    assert!(
        share("rejected") < 50,
        "too many invalid programs: {kinds:?}"
    );
    for k in ["ok", "OutOfBounds", "BudgetExhausted", "Helper"] {
        assert!(share(k) >= 10, "too few {k} endings: {kinds:?}");
    }
    for k in ["CallDepth", "MisalignedAtomic", "UnknownHelper"] {
        assert!(kinds.contains_key(k), "no {k} ending: {kinds:?}");
    }
    assert!(
        uncounted * 10 >= ran,
        "too few programs with loops that may run uncounted: {uncounted} of {ran}"
    );
    assert!(
        exits_moved * 10 >= ran,
        "too few programs with exits moved out of line: {exits_moved} of {ran}"
    );
    // Both kinds of code the input proofs lead to must run often.
    assert!(
        proofs * 100 >= ran,
        "too few input proofs: {proofs} of {ran}"
    );
    assert!(
        checked * 10 >= proofs && (proofs - checked) * 10 >= proofs,
        "fast and checked runs out of balance: {checked} checked of {proofs}"
    );
}
