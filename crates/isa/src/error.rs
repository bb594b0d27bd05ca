use thiserror::Error;

/// An instruction that cannot be decoded, with the slot index it starts at.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("instruction {pc}: {kind}")]
pub struct DecodeError {
    pub pc: usize,
    pub kind: DecodeErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DecodeErrorKind {
    #[error("unknown opcode {0:#04x}")]
    UnknownOpcode(u8),
    #[error("register r{0} does not exist (r0 to r10)")]
    BadRegister(u8),
    #[error("reserved {field} field is {value}, must be zero")]
    ReservedField { field: &'static str, value: i64 },
    #[error("byte swap width {0} is not 16, 32 or 64")]
    BadEndianWidth(i32),
    #[error("unknown atomic operation {0:#x}")]
    BadAtomicOp(i32),
    #[error("lddw is missing its second slot")]
    IncompleteLddw,
    #[error("second slot of lddw must have opcode, registers and offset zero")]
    BadLddwSecondSlot,
    #[error("program length {len} bytes is not a multiple of 8")]
    TruncatedProgram { len: usize },
    #[error("program is empty")]
    Empty,
    #[error("jump target {target} is outside the program (0..{len})")]
    JumpOutOfRange { target: i64, len: usize },
    #[error("jump target {target} is the second slot of an lddw")]
    JumpIntoLddw { target: usize },
    #[error("r10 is the read-only frame pointer and cannot be written")]
    WriteToFramePointer,
    #[error(
        "execution can fall off the end of the program (last instruction is not exit or jump)"
    )]
    FallsOffEnd,
}

impl DecodeError {
    pub fn new(pc: usize, kind: DecodeErrorKind) -> Self {
        DecodeError { pc, kind }
    }
}
