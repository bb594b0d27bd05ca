//! Program contexts: what r1 points to for each program type, and the
//! rewriting of context accesses the kernel's verifier does.
//!
//! In the VM pointers are 64-bit host addresses, so the packet pointers of
//! `struct xdp_md` and `struct __sk_buff` (u32 in the uapi) cannot live in
//! the uapi struct. As the kernel's convert_ctx_access does, [`rewrite`]
//! turns every 32-bit load of data, data_end or data_meta into a 64-bit load
//! of a pointer the VM keeps after the uapi struct, and refuses the context
//! accesses the kernel refuses for the program type.

pub mod csum;
pub mod fields;
mod helpers;
mod packet;
mod rewrite;

pub use helpers::register_packet_helpers;
pub use packet::{
    ContextEntry, PacketContext, ETH_HLEN, LOOPBACK_IFINDEX, SKB_HEADROOM, XDP_FRAME,
    XDP_FRAME_HEADER, XDP_HEADROOM, XDP_META_MAX, XDP_TAILROOM,
};

use crate::env::RunEnv;
use crate::memory::Regions;
use crate::{Entry, Interpreter, Outcome, VmError};
use bpfkit_isa::RawInsn;

/// The context a program type receives in r1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContextKind {
    /// Plain memory (r1 = address, r2 = length): no rewriting.
    Plain,
    /// BPF_PROG_TYPE_XDP: struct xdp_md.
    Xdp,
    /// BPF_PROG_TYPE_SCHED_CLS (tc): struct __sk_buff from the Ethernet header.
    SchedCls,
    /// BPF_PROG_TYPE_SOCKET_FILTER: struct __sk_buff from the network header.
    SocketFilter,
    /// BPF_PROG_TYPE_CGROUP_SKB: struct __sk_buff from the network header.
    CgroupSkb,
    /// BPF_PROG_TYPE_SK_SKB: struct __sk_buff (no kernel test run exists).
    SkSkb,
    /// BPF_PROG_TYPE_TRACEPOINT: the raw trace record.
    Tracepoint,
    /// BPF_PROG_TYPE_RAW_TRACEPOINT: an array of u64 arguments.
    RawTracepoint,
    /// BPF_PROG_TYPE_PERF_EVENT: struct bpf_perf_event_data.
    PerfEvent,
}

impl ContextKind {
    /// Whether the context is xdp_md or __sk_buff (rewritten, with a packet).
    pub fn is_packet(self) -> bool {
        matches!(
            self,
            ContextKind::Xdp
                | ContextKind::SchedCls
                | ContextKind::SocketFilter
                | ContextKind::CgroupSkb
                | ContextKind::SkSkb
        )
    }

    /// The kind of a `enum bpf_prog_type` value, if the VM knows it.
    pub fn from_prog_type(t: u32) -> Option<ContextKind> {
        Some(match t {
            1 => ContextKind::SocketFilter,
            3 | 4 => ContextKind::SchedCls,
            5 => ContextKind::Tracepoint,
            6 => ContextKind::Xdp,
            7 => ContextKind::PerfEvent,
            8 => ContextKind::CgroupSkb,
            14 => ContextKind::SkSkb,
            17 => ContextKind::RawTracepoint,
            _ => return None,
        })
    }
}

/// A context access the kernel would refuse, at slot index `pc`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("instruction {pc}: {message}")]
pub struct ContextError {
    pub pc: usize,
    pub message: String,
}

/// Rewrites the context accesses of a program of kind `kind`, in place (the
/// slot count, LDDW pairs and jump offsets stay as they are). Programs whose
/// context is not xdp_md or __sk_buff are returned unchanged.
pub fn rewrite(kind: ContextKind, slots: &[RawInsn]) -> Result<Vec<RawInsn>, ContextError> {
    rewrite::rewrite(kind, slots)
}

/// Runs `interp` on the packet context in `env.packet` (set it with
/// [`PacketContext::xdp`] or [`PacketContext::skb`]); helpers registered by
/// [`register_packet_helpers`] act on it, and [`PacketContext::output`] is
/// the packet afterwards.
pub fn run(interp: &mut Interpreter<'_>, env: &mut RunEnv) -> Result<Outcome, VmError> {
    let entry = match env.packet.as_mut() {
        Some(p) => p.entry(),
        None => return interp.run_with(env, |_| Entry::default()),
    };
    // SAFETY: the context stays in `env` for the whole run; helpers inside
    // the crate never replace it, and helpers outside it cannot.
    interp.run_with(env, move |regions| unsafe { entry.enter(regions) })
}

/// A plain-memory context: r1 = the memory (writable), r2 = its length.
pub fn plain(mem: &mut [u8]) -> impl FnOnce(&mut Regions) -> Entry + '_ {
    move |regions| crate::run_memory::memory_entry(regions, mem)
}

fn read_only(mem: &[u8]) -> impl FnOnce(&mut Regions) -> Entry + '_ {
    move |regions| {
        let addr = if mem.is_empty() {
            0
        } else {
            // SAFETY: as in `plain`.
            unsafe { regions.add_ro(mem.as_ptr(), mem.len()) }
        };
        Entry {
            args: [addr, 0, 0, 0, 0],
            packet: (0, 0),
        }
    }
}

/// A tracepoint context: r1 = the raw record (common header, then the
/// event's fields), read-only as the kernel has it.
pub fn tracepoint(record: &[u8]) -> impl FnOnce(&mut Regions) -> Entry + '_ {
    read_only(record)
}

/// A raw tracepoint context: r1 = the u64 arguments, read-only.
pub fn raw_tracepoint(args: &[u64]) -> impl FnOnce(&mut Regions) -> Entry + '_ {
    move |regions| {
        let addr = if args.is_empty() {
            0
        } else {
            // SAFETY: as in `plain`.
            unsafe { regions.add_ro(args.as_ptr().cast::<u8>(), std::mem::size_of_val(args)) }
        };
        Entry {
            args: [addr, 0, 0, 0, 0],
            packet: (0, 0),
        }
    }
}

/// A perf event context: r1 = struct bpf_perf_event_data (the registers,
/// then sample_period and addr), read-only.
pub fn perf_event(data: &[u8]) -> impl FnOnce(&mut Regions) -> Entry + '_ {
    read_only(data)
}
