use bpfkit_isa::DecodeError;
use thiserror::Error;

/// Why a program could not be prepared for execution.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LoadError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("instruction {pc}: helper {id} is not registered")]
    UnknownHelper { pc: usize, id: u32 },
    #[error("instruction {pc}: callback address points to slot {target}, which does not start an instruction of the program")]
    BadCallback { pc: usize, target: i64 },
    #[error("instruction {pc}: kfunc calls (call runtime {id}) are not supported by the VM")]
    Kfunc { pc: usize, id: i32 },
    #[error("the JIT compiles for x86-64 Linux only; use the interpreter on this host")]
    NoJit,
    #[error("cannot map executable memory for the JIT: {0}")]
    ExecMemory(String),
}

/// Why a run stopped before the program exited. Every variant names the
/// instruction (slot index) that was executing.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum VmError {
    #[error("instruction {pc}: {} of {size} bytes at {addr:#x} is outside every region the program owns", if *.write { "write" } else { "read" })]
    OutOfBounds {
        pc: usize,
        addr: u64,
        size: usize,
        write: bool,
    },
    #[error("instruction {pc}: atomic access of {size} bytes at {addr:#x} is not aligned")]
    MisalignedAtomic { pc: usize, addr: u64, size: usize },
    #[error("instruction {pc}: instruction budget of {budget} exhausted (runaway loop?)")]
    BudgetExhausted { pc: usize, budget: u64 },
    #[error("instruction {pc}: call depth exceeds {max} frames")]
    CallDepth { pc: usize, max: usize },
    #[error("instruction {pc}: helper {id} is not registered")]
    UnknownHelper { pc: usize, id: u64 },
    #[error("instruction {pc}: helper {id} failed: {message}")]
    Helper { pc: usize, id: u32, message: String },
    #[error("instruction {pc}: bpf_loop callback {addr:#x} is not a subprogram whose address the program took")]
    BadCallback { pc: usize, addr: u64 },
    /// The JIT could not map the code it runs on inputs shorter than its
    /// fast code needs.
    #[error("instruction {pc}: cannot map executable memory for the JIT: {message}")]
    ExecMemory { pc: usize, message: String },
}

impl VmError {
    /// The slot index of the instruction that failed.
    pub fn pc(&self) -> usize {
        match *self {
            VmError::OutOfBounds { pc, .. }
            | VmError::MisalignedAtomic { pc, .. }
            | VmError::BudgetExhausted { pc, .. }
            | VmError::CallDepth { pc, .. }
            | VmError::UnknownHelper { pc, .. }
            | VmError::Helper { pc, .. }
            | VmError::BadCallback { pc, .. }
            | VmError::ExecMemory { pc, .. } => pc,
        }
    }
}
