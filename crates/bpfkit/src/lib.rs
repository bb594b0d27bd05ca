//! bpfkit: one eBPF toolkit with two engines under one API, the Linux kernel
//! ([`bpfkit_kernel`]) and the userspace VM ([`bpfkit_vm`]).
//!
//! For now the library holds the [`differential`] runner: the same program
//! runs in both engines on the same input, and any difference is a bug (in
//! the VM, usually: the kernel is the reference).

pub mod differential;

pub use bpfkit_isa as isa;
pub use bpfkit_kernel as kernel;
pub use bpfkit_vm as vm;
