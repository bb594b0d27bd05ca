//! bpfkit: one eBPF toolkit with two engines under one API, the Linux kernel
//! ([`bpfkit_kernel`]) and the userspace VM ([`bpfkit_vm`]).
//!
//! [`Object::open`] -> set globals -> [`Object::load`] into an [`Engine`] ->
//! [`Loaded::attach`] programs and read and write [`Map`]s. The
//! [`differential`] runner runs the same program in both engines on the same
//! input: any difference is a bug (in the VM, usually: the kernel is the
//! reference).

pub mod compare;
pub mod differential;
mod object;

pub use object::{
    attach_point, Attach, Engine, Entry, Error, ExecMode, Loaded, Map, Object, RunOutput, Sample,
    TypedMap, XdpMode, BPF_ANY, BPF_EXIST, BPF_NOEXIST,
};

pub use bpfkit_isa as isa;
pub use bpfkit_kernel as kernel;
pub use bpfkit_vm as vm;
