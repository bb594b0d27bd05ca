//! One type for "whatever runs the code": the interpreter or the JIT,
//! chosen per instance or per program with [`ExecMode`].

use crate::env::RunEnv;
use crate::memory::Regions;
use crate::{Entry, Helpers, Interpreter, LoadError, Outcome, Program, VmError};
use std::sync::Arc;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
use crate::jit::{Jit, JitOptions};

/// How the VM executes programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecMode {
    /// The pre-decoding interpreter: every host.
    Interpret,
    /// The x86-64 JIT (x86-64 Linux hosts), optionally with constant
    /// blinding.
    Jit { blinding: bool },
}

impl ExecMode {
    /// Whether this host can run the JIT.
    pub const JIT_AVAILABLE: bool = cfg!(all(target_arch = "x86_64", target_os = "linux"));

    /// The JIT where the host has one, else the interpreter.
    pub const fn host_default() -> ExecMode {
        if Self::JIT_AVAILABLE {
            ExecMode::Jit { blinding: false }
        } else {
            ExecMode::Interpret
        }
    }

    /// A short name: `interpreter`, `jit` or `jit+blinding`.
    pub fn name(self) -> &'static str {
        match self {
            ExecMode::Interpret => "interpreter",
            ExecMode::Jit { blinding: false } => "jit",
            ExecMode::Jit { blinding: true } => "jit+blinding",
        }
    }
}

impl Default for ExecMode {
    fn default() -> Self {
        Self::host_default()
    }
}

/// A program ready to run in the chosen mode, with the interface the
/// interpreter and the JIT share.
pub enum Executor<'p> {
    Interpreter(Interpreter<'p>),
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    // Boxed: a `Jit` (its code, tables and run state) is several times
    // the interpreter's size.
    Jit(Box<Jit<'p>>),
}

impl<'p> Executor<'p> {
    /// Binds (and for the JIT, compiles) a program.
    pub fn new(prog: &'p Program, helpers: &Helpers, mode: ExecMode) -> Result<Self, LoadError> {
        match mode {
            ExecMode::Interpret => Interpreter::new(prog, helpers).map(Executor::Interpreter),
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            ExecMode::Jit { blinding } => Jit::with_options(prog, helpers, JitOptions { blinding })
                .map(|j| Executor::Jit(Box::new(j))),
            #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
            ExecMode::Jit { .. } => Err(LoadError::NoJit),
        }
    }

    /// Like [`Self::new`], for a program shared by reference count.
    pub fn shared(
        prog: Arc<Program>,
        helpers: &Helpers,
        mode: ExecMode,
    ) -> Result<Executor<'static>, LoadError> {
        match mode {
            ExecMode::Interpret => Interpreter::shared(prog, helpers).map(Executor::Interpreter),
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            ExecMode::Jit { blinding } => Jit::shared(prog, helpers, JitOptions { blinding })
                .map(|j| Executor::Jit(Box::new(j))),
            #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
            ExecMode::Jit { .. } => Err(LoadError::NoJit),
        }
    }

    /// Sets how many instructions a run may execute.
    pub fn set_budget(&mut self, budget: u64) -> &mut Self {
        match self {
            Executor::Interpreter(i) => {
                i.set_budget(budget);
            }
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Executor::Jit(j) => {
                j.set_budget(budget);
            }
        }
        self
    }

    /// As [`Interpreter::run`].
    pub fn run(&mut self, mem: &mut [u8]) -> Result<Outcome, VmError> {
        match self {
            Executor::Interpreter(i) => i.run(mem),
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Executor::Jit(j) => j.run(mem),
        }
    }

    /// As [`Interpreter::run_in`].
    pub fn run_in(
        &mut self,
        env: &mut RunEnv,
        setup: impl FnOnce(&mut RunEnv, &mut Regions) -> Entry,
    ) -> Result<Outcome, VmError> {
        match self {
            Executor::Interpreter(i) => i.run_in(env, setup),
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Executor::Jit(j) => j.run_in(env, setup),
        }
    }
}
