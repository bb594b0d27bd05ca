//! bpfkit's userspace eBPF engine.
//!
//! A [`Program`] is validated and pre-decoded once; an [`Interpreter`], or
//! on x86-64 Linux the JIT (`Jit`, machine code with the same observable
//! behaviour), runs it any number of times against memory it checks on
//! every access it could not prove safe ([`memory::Regions`]), with an
//! instruction budget, bpf-to-bpf calls in their own 512-byte frames, and
//! helpers registered by id ([`Helpers`]). [`Executor`] runs either, as
//! [`ExecMode`] says.
//!
//! ```
//! use bpfkit_isa::{asm::assemble, Dialect};
//! use bpfkit_vm::{Helpers, Interpreter, Program};
//!
//! let slots = assemble("ldxw %r0, [%r1+4]\nadd %r0, 1\nexit", Dialect::Conformance).unwrap();
//! let prog = Program::new(&slots).unwrap();
//! let mut vm = Interpreter::new(&prog, &Helpers::new()).unwrap();
//! let mut mem = [0, 0, 0, 0, 41, 0, 0, 0];
//! assert_eq!(vm.run(&mut mem).unwrap().r0, 42);
//! ```

mod atomic;
pub mod context;
pub mod env;
mod error;
mod exec;
pub mod helpers;
pub mod instance;
mod interp;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod jit;
pub mod maps;
pub mod memory;
mod program;
mod run_memory;

pub use env::{HostEnv, Redirect, RunEnv};
pub use error::{LoadError, VmError};
pub use exec::{ExecMode, Executor};
pub use helpers::{HelperContext, HelperError, Helpers};
pub use instance::{Instance, InstanceError, PacketRun, RunError};
pub use interp::{Entry, Interpreter, Outcome, DEFAULT_BUDGET};
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub use jit::{Jit, JitOptions};
pub use program::{Program, FRAME_SIZE, FUNC_TAG, MAX_FRAMES};
