//! Decoded instructions, and the decoder and encoder between them and slots.

use crate::opcode::{class, mode, op, AluOp, AtomicOp, CallKind, JmpCond, Pseudo, Size, SRC_X};
use crate::{DecodeError, DecodeErrorKind, RawInsn};

/// A register number, always in 0..=10.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(u8);

impl Reg {
    pub const R0: Reg = Reg(0);
    pub const R1: Reg = Reg(1);
    pub const R2: Reg = Reg(2);
    pub const R3: Reg = Reg(3);
    pub const R4: Reg = Reg(4);
    pub const R5: Reg = Reg(5);
    pub const R6: Reg = Reg(6);
    pub const R7: Reg = Reg(7);
    pub const R8: Reg = Reg(8);
    pub const R9: Reg = Reg(9);
    /// The read-only frame pointer.
    pub const R10: Reg = Reg(10);
    pub const FP: Reg = Reg::R10;
    pub const COUNT: usize = 11;

    pub const fn new(n: u8) -> Option<Reg> {
        if n <= 10 {
            Some(Reg(n))
        } else {
            None
        }
    }
    pub const fn num(self) -> u8 {
        self.0
    }
    pub const fn idx(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for Reg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Operand width of ALU and JMP operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    W32,
    W64,
}

/// The second operand of ALU and conditional-jump instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Reg(Reg),
    Imm(i32),
}

/// Byte-order operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// `le16/32/64`: convert to little endian (ALU class, src bit clear).
    ToLe,
    /// `be16/32/64`: convert to big endian (ALU class, src bit set).
    ToBe,
    /// `bswap16/32/64`: unconditional swap (ALU64 class, cpu v4).
    Swap,
}

impl ByteOrder {
    pub const ALL: [ByteOrder; 3] = [ByteOrder::ToLe, ByteOrder::ToBe, ByteOrder::Swap];

    /// The mnemonic stem both dialects print (`le16`, `be32`, `bswap64`).
    pub const fn mnemonic(self) -> &'static str {
        match self {
            ByteOrder::ToLe => "le",
            ByteOrder::ToBe => "be",
            ByteOrder::Swap => "bswap",
        }
    }
}

/// Legacy packet-access modes (`BPF_LD | BPF_ABS` and `BPF_LD | BPF_IND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketMode {
    Abs,
    Ind(Reg),
}

/// One decoded instruction. LDDW is one instruction that takes two slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Instruction {
    Alu {
        width: Width,
        op: AluOp,
        dst: Reg,
        src: Source,
    },
    Neg {
        width: Width,
        dst: Reg,
    },
    Endian {
        order: ByteOrder,
        bits: u8,
        dst: Reg,
    },
    /// `lddw`: for `Pseudo::Imm64` `imm` is the 64-bit constant; for the other
    /// forms the low half is the first slot's immediate and the high half the
    /// second slot's, as the loader reads them.
    LoadImm64 {
        dst: Reg,
        pseudo: Pseudo,
        imm: i64,
    },
    LoadPacket {
        mode: PacketMode,
        size: Size,
        imm: i32,
    },
    Load {
        size: Size,
        signed: bool,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    StoreImm {
        size: Size,
        dst: Reg,
        off: i16,
        imm: i32,
    },
    Store {
        size: Size,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// `dst + off` is the address and `src` the operand, except for
    /// load-acquire, which the kernel encodes as `dst = *(src + off)`.
    Atomic {
        size: Size,
        op: AtomicOp,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// `ja`/`goto`: unconditional jump with a 16-bit offset.
    Ja {
        off: i16,
    },
    /// `ja32`/`gotol`: unconditional jump with a 32-bit offset (JMP32 class).
    JaLong {
        imm: i32,
    },
    Jump {
        width: Width,
        cond: JmpCond,
        dst: Reg,
        src: Source,
        off: i16,
    },
    Call {
        kind: CallKind,
        imm: i32,
    },
    /// `callx`: call the helper whose number (or address) is in a register.
    CallReg {
        reg: Reg,
    },
    Exit,
}

impl Instruction {
    /// How many slots the instruction occupies.
    pub const fn slots(&self) -> usize {
        match self {
            Instruction::LoadImm64 { .. } => 2,
            _ => 1,
        }
    }

    /// Offset, in slots relative to the next slot, of the jump or local call
    /// target, if the instruction has one.
    pub fn branch_offset(&self) -> Option<i64> {
        match *self {
            Instruction::Ja { off } | Instruction::Jump { off, .. } => Some(off as i64),
            Instruction::JaLong { imm } => Some(imm as i64),
            Instruction::Call {
                kind: CallKind::Local,
                imm,
            } => Some(imm as i64),
            _ => None,
        }
    }

    /// The register the instruction writes, if any (atomics that fetch write
    /// their source, or r0 for cmpxchg).
    pub fn written_reg(&self) -> Option<Reg> {
        match *self {
            Instruction::Alu { dst, .. }
            | Instruction::Neg { dst, .. }
            | Instruction::Endian { dst, .. }
            | Instruction::LoadImm64 { dst, .. }
            | Instruction::Load { dst, .. } => Some(dst),
            Instruction::Atomic { op, dst, src, .. } => match op {
                AtomicOp::CmpXchg => Some(Reg::R0),
                // The kernel encoding: dst = load_acquire(src + off).
                AtomicOp::LoadAcquire => Some(dst),
                o if o.fetches() => Some(src),
                _ => None,
            },
            Instruction::LoadPacket { .. } => Some(Reg::R0),
            _ => None,
        }
    }

    /// Decodes the instruction at `slots[pc]` (and `slots[pc + 1]` for LDDW).
    pub fn decode(slots: &[RawInsn], pc: usize) -> Result<Instruction, DecodeError> {
        let raw = slots[pc];
        let err = |kind| DecodeError { pc, kind };
        let reg = |n: u8| Reg::new(n).ok_or(err(DecodeErrorKind::BadRegister(n)));
        let zero = |field: &'static str, v: i64| {
            if v == 0 {
                Ok(())
            } else {
                Err(err(DecodeErrorKind::ReservedField { field, value: v }))
            }
        };
        let code = raw.code;
        match code & 0x07 {
            class::ALU | class::ALU64 => {
                let width = if code & 0x07 == class::ALU64 {
                    Width::W64
                } else {
                    Width::W32
                };
                let dst = reg(raw.dst)?;
                let opn = code & 0xf0;
                let x = code & SRC_X != 0;
                match opn {
                    op::NEG => {
                        if x {
                            return Err(err(DecodeErrorKind::UnknownOpcode(code)));
                        }
                        zero("src", raw.src as i64)?;
                        zero("offset", raw.off as i64)?;
                        zero("immediate", raw.imm as i64)?;
                        Ok(Instruction::Neg { width, dst })
                    }
                    op::END => {
                        let order = match (width, x) {
                            (Width::W32, false) => ByteOrder::ToLe,
                            (Width::W32, true) => ByteOrder::ToBe,
                            (Width::W64, false) => ByteOrder::Swap,
                            (Width::W64, true) => {
                                return Err(err(DecodeErrorKind::UnknownOpcode(code)))
                            }
                        };
                        zero("src", raw.src as i64)?;
                        zero("offset", raw.off as i64)?;
                        if !matches!(raw.imm, 16 | 32 | 64) {
                            return Err(err(DecodeErrorKind::BadEndianWidth(raw.imm)));
                        }
                        Ok(Instruction::Endian {
                            order,
                            bits: raw.imm as u8,
                            dst,
                        })
                    }
                    _ => {
                        let aop = AluOp::from_code(opn, raw.off).ok_or_else(|| {
                            if AluOp::from_code(opn, 0).is_some() {
                                err(DecodeErrorKind::ReservedField {
                                    field: "offset",
                                    value: raw.off as i64,
                                })
                            } else {
                                err(DecodeErrorKind::UnknownOpcode(code))
                            }
                        })?;
                        if width == Width::W32 && !aop.valid_in_alu32() {
                            return Err(err(DecodeErrorKind::ReservedField {
                                field: "offset",
                                value: raw.off as i64,
                            }));
                        }
                        let src = if x {
                            zero("immediate", raw.imm as i64)?;
                            Source::Reg(reg(raw.src)?)
                        } else {
                            if !aop.takes_imm() {
                                return Err(err(DecodeErrorKind::UnknownOpcode(code)));
                            }
                            zero("src", raw.src as i64)?;
                            Source::Imm(raw.imm)
                        };
                        Ok(Instruction::Alu {
                            width,
                            op: aop,
                            dst,
                            src,
                        })
                    }
                }
            }
            class::JMP | class::JMP32 => {
                let width = if code & 0x07 == class::JMP {
                    Width::W64
                } else {
                    Width::W32
                };
                let opn = code & 0xf0;
                let x = code & SRC_X != 0;
                match (opn, width) {
                    (op::JA, _) => {
                        if x {
                            return Err(err(DecodeErrorKind::UnknownOpcode(code)));
                        }
                        zero("dst", raw.dst as i64)?;
                        zero("src", raw.src as i64)?;
                        if width == Width::W64 {
                            zero("immediate", raw.imm as i64)?;
                            Ok(Instruction::Ja { off: raw.off })
                        } else {
                            zero("offset", raw.off as i64)?;
                            Ok(Instruction::JaLong { imm: raw.imm })
                        }
                    }
                    (op::CALL, Width::W64) => {
                        zero("offset", raw.off as i64)?;
                        if x {
                            zero("src", raw.src as i64)?;
                            zero("immediate", raw.imm as i64)?;
                            Ok(Instruction::CallReg { reg: reg(raw.dst)? })
                        } else {
                            zero("dst", raw.dst as i64)?;
                            let kind = CallKind::from_src(raw.src).ok_or(err(
                                DecodeErrorKind::ReservedField {
                                    field: "src",
                                    value: raw.src as i64,
                                },
                            ))?;
                            Ok(Instruction::Call { kind, imm: raw.imm })
                        }
                    }
                    (op::EXIT, Width::W64) => {
                        if x {
                            return Err(err(DecodeErrorKind::UnknownOpcode(code)));
                        }
                        zero("dst", raw.dst as i64)?;
                        zero("src", raw.src as i64)?;
                        zero("offset", raw.off as i64)?;
                        zero("immediate", raw.imm as i64)?;
                        Ok(Instruction::Exit)
                    }
                    _ => {
                        let cond = JmpCond::from_code(opn)
                            .ok_or(err(DecodeErrorKind::UnknownOpcode(code)))?;
                        let dst = reg(raw.dst)?;
                        let src = if x {
                            zero("immediate", raw.imm as i64)?;
                            Source::Reg(reg(raw.src)?)
                        } else {
                            zero("src", raw.src as i64)?;
                            Source::Imm(raw.imm)
                        };
                        Ok(Instruction::Jump {
                            width,
                            cond,
                            dst,
                            src,
                            off: raw.off,
                        })
                    }
                }
            }
            class::LD => {
                let size = Size::from_code(code);
                match code & 0xe0 {
                    mode::IMM if size == Size::DW => {
                        let dst = reg(raw.dst)?;
                        zero("offset", raw.off as i64)?;
                        let pseudo = Pseudo::from_src(raw.src).ok_or(err(
                            DecodeErrorKind::ReservedField {
                                field: "src",
                                value: raw.src as i64,
                            },
                        ))?;
                        let next = *slots
                            .get(pc + 1)
                            .ok_or(err(DecodeErrorKind::IncompleteLddw))?;
                        if next.code != 0 || next.dst != 0 || next.src != 0 || next.off != 0 {
                            return Err(err(DecodeErrorKind::BadLddwSecondSlot));
                        }
                        let imm = (raw.imm as u32 as u64 | ((next.imm as u32 as u64) << 32)) as i64;
                        Ok(Instruction::LoadImm64 { dst, pseudo, imm })
                    }
                    mode::ABS | mode::IND if size != Size::DW => {
                        zero("dst", raw.dst as i64)?;
                        zero("offset", raw.off as i64)?;
                        let m = if code & 0xe0 == mode::ABS {
                            zero("src", raw.src as i64)?;
                            PacketMode::Abs
                        } else {
                            PacketMode::Ind(reg(raw.src)?)
                        };
                        Ok(Instruction::LoadPacket {
                            mode: m,
                            size,
                            imm: raw.imm,
                        })
                    }
                    _ => Err(err(DecodeErrorKind::UnknownOpcode(code))),
                }
            }
            class::LDX => {
                let size = Size::from_code(code);
                let signed = match code & 0xe0 {
                    mode::MEM => false,
                    mode::MEMSX if size != Size::DW => true,
                    _ => return Err(err(DecodeErrorKind::UnknownOpcode(code))),
                };
                zero("immediate", raw.imm as i64)?;
                Ok(Instruction::Load {
                    size,
                    signed,
                    dst: reg(raw.dst)?,
                    src: reg(raw.src)?,
                    off: raw.off,
                })
            }
            class::ST => {
                if code & 0xe0 != mode::MEM {
                    return Err(err(DecodeErrorKind::UnknownOpcode(code)));
                }
                zero("src", raw.src as i64)?;
                Ok(Instruction::StoreImm {
                    size: Size::from_code(code),
                    dst: reg(raw.dst)?,
                    off: raw.off,
                    imm: raw.imm,
                })
            }
            class::STX => {
                let size = Size::from_code(code);
                let dst = reg(raw.dst)?;
                let src = reg(raw.src)?;
                match code & 0xe0 {
                    mode::MEM => {
                        zero("immediate", raw.imm as i64)?;
                        Ok(Instruction::Store {
                            size,
                            dst,
                            src,
                            off: raw.off,
                        })
                    }
                    mode::ATOMIC => {
                        let aop = AtomicOp::from_imm(raw.imm)
                            .ok_or(err(DecodeErrorKind::BadAtomicOp(raw.imm)))?;
                        if !aop.valid_size(size) {
                            return Err(err(DecodeErrorKind::UnknownOpcode(code)));
                        }
                        Ok(Instruction::Atomic {
                            size,
                            op: aop,
                            dst,
                            src,
                            off: raw.off,
                        })
                    }
                    _ => Err(err(DecodeErrorKind::UnknownOpcode(code))),
                }
            }
            _ => unreachable!("class is three bits"),
        }
    }

    /// Encodes the instruction into one or two slots.
    pub fn encode(&self) -> EncodedInsn {
        let one = |code, dst: Reg, src: u8, off, imm| {
            EncodedInsn::One(RawInsn::new(code, dst.num(), src, off, imm))
        };
        let width_class = |w: Width, c64: u8, c32: u8| if w == Width::W64 { c64 } else { c32 };
        match *self {
            Instruction::Alu {
                width,
                op,
                dst,
                src,
            } => {
                let cls = width_class(width, class::ALU64, class::ALU);
                match src {
                    Source::Reg(s) => one(cls | op.code() | SRC_X, dst, s.num(), op.off(), 0),
                    Source::Imm(i) => one(cls | op.code(), dst, 0, op.off(), i),
                }
            }
            Instruction::Neg { width, dst } => one(
                width_class(width, class::ALU64, class::ALU) | op::NEG,
                dst,
                0,
                0,
                0,
            ),
            Instruction::Endian { order, bits, dst } => {
                let code = match order {
                    ByteOrder::ToLe => class::ALU | op::END,
                    ByteOrder::ToBe => class::ALU | op::END | SRC_X,
                    ByteOrder::Swap => class::ALU64 | op::END,
                };
                one(code, dst, 0, 0, bits as i32)
            }
            Instruction::LoadImm64 { dst, pseudo, imm } => EncodedInsn::Two([
                RawInsn::new(
                    class::LD | mode::IMM | Size::DW.code(),
                    dst.num(),
                    pseudo.src(),
                    0,
                    imm as i32,
                ),
                RawInsn::new(0, 0, 0, 0, (imm >> 32) as i32),
            ]),
            Instruction::LoadPacket { mode: m, size, imm } => match m {
                PacketMode::Abs => one(class::LD | mode::ABS | size.code(), Reg::R0, 0, 0, imm),
                PacketMode::Ind(r) => one(
                    class::LD | mode::IND | size.code(),
                    Reg::R0,
                    r.num(),
                    0,
                    imm,
                ),
            },
            Instruction::Load {
                size,
                signed,
                dst,
                src,
                off,
            } => {
                let m = if signed { mode::MEMSX } else { mode::MEM };
                one(class::LDX | m | size.code(), dst, src.num(), off, 0)
            }
            Instruction::StoreImm {
                size,
                dst,
                off,
                imm,
            } => one(class::ST | mode::MEM | size.code(), dst, 0, off, imm),
            Instruction::Store {
                size,
                dst,
                src,
                off,
            } => one(class::STX | mode::MEM | size.code(), dst, src.num(), off, 0),
            Instruction::Atomic {
                size,
                op,
                dst,
                src,
                off,
            } => one(
                class::STX | mode::ATOMIC | size.code(),
                dst,
                src.num(),
                off,
                op.imm(),
            ),
            Instruction::Ja { off } => one(class::JMP | op::JA, Reg::R0, 0, off, 0),
            Instruction::JaLong { imm } => one(class::JMP32 | op::JA, Reg::R0, 0, 0, imm),
            Instruction::Jump {
                width,
                cond,
                dst,
                src,
                off,
            } => {
                let cls = width_class(width, class::JMP, class::JMP32);
                match src {
                    Source::Reg(s) => one(cls | cond.code() | SRC_X, dst, s.num(), off, 0),
                    Source::Imm(i) => one(cls | cond.code(), dst, 0, off, i),
                }
            }
            Instruction::Call { kind, imm } => {
                one(class::JMP | op::CALL, Reg::R0, kind.src(), 0, imm)
            }
            Instruction::CallReg { reg } => one(class::JMP | op::CALL | SRC_X, reg, 0, 0, 0),
            Instruction::Exit => one(class::JMP | op::EXIT, Reg::R0, 0, 0, 0),
        }
    }
}

/// The slots of one encoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodedInsn {
    One(RawInsn),
    Two([RawInsn; 2]),
}

impl EncodedInsn {
    pub fn as_slice(&self) -> &[RawInsn] {
        match self {
            EncodedInsn::One(r) => std::slice::from_ref(r),
            EncodedInsn::Two(r) => r,
        }
    }
}
