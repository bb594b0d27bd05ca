//! Section names to program kinds (libbpf's names, including those aya-obj lacks).

use bpfkit_object::ProgramKind::{self, *};

#[test]
fn known_sections() {
    let cases: &[(&str, ProgramKind)] = &[
        ("xdp", Xdp),
        ("xdp.frags", Xdp),
        ("xdp/devmap", Xdp),
        ("tc", SchedCls),
        ("tc/ingress", SchedCls),
        ("tcx/egress", SchedCls),
        ("classifier", SchedCls),
        ("action", SchedAct),
        ("socket", SocketFilter),
        ("tp/sched/sched_switch", Tracepoint),
        ("raw_tp/sys_enter", RawTracepoint),
        ("raw_tracepoint.w/x", RawTracepoint),
        ("kretprobe/do_exit", Kretprobe),
        ("ksyscall/openat", Kprobe),
        ("uretprobe.s//bin/sh:main", Uretprobe),
        ("usdt/libc:probe", Uprobe),
        ("xdp/lo", Xdp),
        ("sk_skb/verdict", SkSkbStreamVerdict),
        ("sk_skb", SkSkbStreamVerdict),
        ("cgroup/skb", CgroupSkb),
        ("cgroup_skb/ingress", CgroupSkb),
        ("cgroup/sock_create", CgroupSock),
        ("cgroup/connect4", CgroupSockAddr),
        ("cgroup/getsockopt", CgroupSockopt),
        ("fmod_ret/x", FmodRet),
        ("lsm.s/bprm", Lsm),
        ("syscall", Syscall),
        ("lwt_xmit", LwtXmit),
    ];
    for (name, kind) in cases {
        assert_eq!(ProgramKind::from_section(name), Some(*kind), "{name}");
    }
}

#[test]
fn unknown_sections() {
    for name in [
        "bogus/thing",
        "xdp/foo/bar",
        "tcx/sideways",
        "cgroup/bogus",
        "cgroup_skb/sideways",
        "sk_skb/other",
        "",
        "/",
        "syscall/x",
    ] {
        assert_eq!(ProgramKind::from_section(name), None, "{name}");
    }
}

#[test]
fn packet_kinds() {
    for k in [
        Xdp,
        SchedCls,
        SocketFilter,
        CgroupSkb,
        SkSkbStreamParser,
        SkSkbStreamVerdict,
    ] {
        assert!(k.is_packet(), "{k:?}");
    }
    for k in [Tracepoint, Kprobe, SkMsg, PerfEvent, Fentry, CgroupSock] {
        assert!(!k.is_packet(), "{k:?}");
    }
}
