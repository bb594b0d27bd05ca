//! Program kinds, from libbpf's ELF section naming conventions.
//!
//! The kind is decided here, from the section name, rather than taken from
//! aya-obj's `ProgramSection`: libbpf knows names aya-obj does not (`tc`,
//! `tcx/ingress`, `action`, `syscall`, ...), and the VM only needs to know what
//! context a program runs with.

/// What a program is: the `BPF_PROG_TYPE_*` (and, where it changes the
/// context or return convention, the attach type) its section name implies.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProgramKind {
    /// `xdp`, `xdp.frags`, `xdp/devmap`, `xdp/cpumap`.
    Xdp,
    /// `tc`, `tc/...`, `tcx/ingress`, `tcx/egress`, `classifier`.
    SchedCls,
    /// `action`.
    SchedAct,
    /// `socket`.
    SocketFilter,
    /// `tracepoint/...`, `tp/...`.
    Tracepoint,
    /// `raw_tracepoint/...`, `raw_tp/...` (and the writable `.w` forms).
    RawTracepoint,
    /// `tp_btf/...`.
    TpBtf,
    /// `kprobe/...`, `kprobe.multi/...`, `ksyscall/...`.
    Kprobe,
    /// `kretprobe/...`, `kretprobe.multi/...`, `kretsyscall/...`.
    Kretprobe,
    /// `uprobe...`, `uprobe.s...`, `usdt...`.
    Uprobe,
    /// `uretprobe...`, `uretprobe.s...`.
    Uretprobe,
    /// `perf_event`.
    PerfEvent,
    /// `sk_skb/stream_parser`.
    SkSkbStreamParser,
    /// `sk_skb/stream_verdict`, `sk_skb/verdict`, bare `sk_skb`.
    SkSkbStreamVerdict,
    /// `sk_msg`.
    SkMsg,
    /// `sockops`.
    SockOps,
    /// `cgroup_skb/ingress`, `cgroup_skb/egress`, `cgroup/skb`.
    CgroupSkb,
    /// `cgroup/sock`, `cgroup/sock_create`, `cgroup/sock_release`, `cgroup/post_bind{4,6}`.
    CgroupSock,
    /// `cgroup/bind4`, `cgroup/connect6`, `cgroup/sendmsg4`, ...
    CgroupSockAddr,
    /// `cgroup/sysctl`.
    CgroupSysctl,
    /// `cgroup/getsockopt`, `cgroup/setsockopt`.
    CgroupSockopt,
    /// `cgroup/dev`.
    CgroupDevice,
    /// `lirc_mode2`.
    LircMode2,
    /// `fentry/...`, `fentry.s/...`.
    Fentry,
    /// `fexit/...`, `fexit.s/...`.
    Fexit,
    /// `fmod_ret/...`, `fmod_ret.s/...`.
    FmodRet,
    /// `lsm/...`, `lsm.s/...`.
    Lsm,
    /// `lsm_cgroup/...`.
    LsmCgroup,
    /// `flow_dissector`.
    FlowDissector,
    /// `freplace/...`.
    Extension,
    /// `sk_lookup`.
    SkLookup,
    /// `sk_reuseport`, `sk_reuseport/migrate`.
    SkReuseport,
    /// `iter/...`, `iter.s/...`.
    Iter,
    /// `syscall`.
    Syscall,
    /// `lwt_in`.
    LwtIn,
    /// `lwt_out`.
    LwtOut,
    /// `lwt_xmit`.
    LwtXmit,
    /// `lwt_seg6local`.
    LwtSeg6local,
    /// `netfilter`.
    Netfilter,
    /// `struct_ops/...`, `struct_ops.s/...`.
    StructOps,
}

impl ProgramKind {
    /// Whether the program's context is a packet (it runs on `xdp_md` or
    /// `__sk_buff`): XDP, tc classifier/action, socket filter, cgroup_skb,
    /// sk_skb, lwt.
    pub fn is_packet(&self) -> bool {
        matches!(
            self,
            ProgramKind::Xdp
                | ProgramKind::SchedCls
                | ProgramKind::SchedAct
                | ProgramKind::SocketFilter
                | ProgramKind::CgroupSkb
                | ProgramKind::SkSkbStreamParser
                | ProgramKind::SkSkbStreamVerdict
                | ProgramKind::LwtIn
                | ProgramKind::LwtOut
                | ProgramKind::LwtXmit
                | ProgramKind::LwtSeg6local
        )
    }

    /// Classifies a program section name the way libbpf does (a prefix and,
    /// for most kinds, anything after a `/`). `None` for names neither libbpf
    /// nor aya-obj know.
    pub fn from_section(section: &str) -> Option<ProgramKind> {
        use ProgramKind::*;
        let mut parts = section.splitn(2, '/');
        let head = parts.next().unwrap_or("");
        let rest = parts.next();
        Some(match (head, rest) {
            ("xdp" | "xdp.frags", None | Some("devmap" | "cpumap")) => Xdp,
            // ebpf_exporter's `xdp/IFACE`: the interface to attach to.
            ("xdp", Some(iface)) if !iface.is_empty() && !iface.contains('/') => Xdp,
            ("tc" | "classifier", _) => SchedCls,
            ("tcx", Some("ingress" | "egress")) => SchedCls,
            ("action", _) => SchedAct,
            ("socket", _) => SocketFilter,
            ("tracepoint" | "tp", _) => Tracepoint,
            ("raw_tracepoint" | "raw_tp" | "raw_tracepoint.w" | "raw_tp.w", _) => RawTracepoint,
            ("tp_btf", _) => TpBtf,
            ("kprobe" | "kprobe.multi" | "ksyscall", _) => Kprobe,
            ("kretprobe" | "kretprobe.multi" | "kretsyscall", _) => Kretprobe,
            ("uprobe" | "uprobe.s" | "uprobe.multi" | "uprobe.multi.s" | "usdt", _) => Uprobe,
            ("uretprobe" | "uretprobe.s" | "uretprobe.multi" | "uretprobe.multi.s", _) => Uretprobe,
            ("perf_event", _) => PerfEvent,
            ("sk_skb", Some("stream_parser")) => SkSkbStreamParser,
            ("sk_skb", None | Some("stream_verdict" | "verdict")) => SkSkbStreamVerdict,
            ("sk_msg", _) => SkMsg,
            ("sockops", _) => SockOps,
            ("cgroup_skb", Some("ingress" | "egress")) => CgroupSkb,
            ("cgroup", Some(what)) => match what {
                "skb" => CgroupSkb,
                "sock" | "sock_create" | "sock_release" | "post_bind4" | "post_bind6" => CgroupSock,
                "bind4" | "bind6" | "connect4" | "connect6" | "connect_unix" | "getpeername4"
                | "getpeername6" | "getpeername_unix" | "getsockname4" | "getsockname6"
                | "getsockname_unix" | "sendmsg4" | "sendmsg6" | "sendmsg_unix" | "recvmsg4"
                | "recvmsg6" | "recvmsg_unix" => CgroupSockAddr,
                "sysctl" => CgroupSysctl,
                "getsockopt" | "setsockopt" => CgroupSockopt,
                "dev" => CgroupDevice,
                _ => return None,
            },
            ("lirc_mode2", _) => LircMode2,
            ("fentry" | "fentry.s", _) => Fentry,
            ("fexit" | "fexit.s", _) => Fexit,
            ("fmod_ret" | "fmod_ret.s", _) => FmodRet,
            ("lsm" | "lsm.s", _) => Lsm,
            ("lsm_cgroup", _) => LsmCgroup,
            ("flow_dissector", _) => FlowDissector,
            ("freplace", _) => Extension,
            ("sk_lookup", _) => SkLookup,
            ("sk_reuseport", None | Some("migrate")) => SkReuseport,
            ("iter" | "iter.s", _) => Iter,
            ("syscall", None) => Syscall,
            ("lwt_in", None) => LwtIn,
            ("lwt_out", None) => LwtOut,
            ("lwt_xmit", None) => LwtXmit,
            ("lwt_seg6local", None) => LwtSeg6local,
            ("netfilter", None) => Netfilter,
            ("struct_ops" | "struct_ops.s", _) => StructOps,
            _ => return None,
        })
    }
}
