//! The committed clang objects under bpf/kernel.

mod common;

use bpfkit_object::{parse, MapSection, ProgramKind};
use common::{kernel_object, lddws, map_fd_refs};

#[test]
fn xdp_count() {
    let obj = parse(&kernel_object("xdp_count.bpf.o")).unwrap();
    assert_eq!(obj.license, "GPL");
    assert_eq!(obj.programs.len(), 1);
    let p = obj.program("count_packets").unwrap();
    assert_eq!(p.section, "xdp");
    assert_eq!(p.kind, ProgramKind::Xdp);
    assert!(p.kind.is_packet());
    assert_eq!(p.insns.last().unwrap().code, 0x95, "ends with exit");

    assert_eq!(obj.maps.len(), 2);
    let pp = obj.map_index("proto_packets").unwrap();
    let er = obj.map_index("echo_requests").unwrap();
    let m = &obj.maps[pp];
    assert_eq!(
        (m.map_type, m.key_size, m.value_size, m.max_entries),
        (6, 4, 8, 256)
    );
    assert_eq!(m.section, MapSection::Maps);
    assert!(m.initial.is_empty() && m.variables.is_empty() && m.inner.is_none());
    assert!(!m.pinning);
    let m = &obj.maps[er];
    assert_eq!(
        (m.map_type, m.key_size, m.value_size, m.max_entries),
        (2, 4, 8, 1)
    );

    // proto_packets is looked up first, echo_requests second.
    assert_eq!(map_fd_refs(&p.insns), vec![pp as i32, er as i32]);

    // Key and value BTF: u32 and u64.
    let btf = obj.btf.as_ref().unwrap();
    assert_eq!(btf.type_name(m.btf_key_type_id.unwrap()), "u32");
    assert_eq!(btf.type_name(m.btf_value_type_id.unwrap()), "u64");
}

#[test]
fn tracepoint_count() {
    let obj = parse(&kernel_object("tracepoint_count.bpf.o")).unwrap();
    let expect = [
        (
            "count_openat",
            "tracepoint/syscalls/sys_enter_openat",
            ProgramKind::Tracepoint,
        ),
        (
            "emit_getppid",
            "tracepoint/syscalls/sys_enter_getppid",
            ProgramKind::Tracepoint,
        ),
        (
            "raw_sys_enter",
            "raw_tracepoint/sys_enter",
            ProgramKind::RawTracepoint,
        ),
        ("btf_sys_enter", "tp_btf/sys_enter", ProgramKind::TpBtf),
    ];
    assert_eq!(obj.programs.len(), expect.len());
    for (p, (name, section, kind)) in obj.programs.iter().zip(expect) {
        assert_eq!(
            (p.name.as_str(), p.section.as_str(), p.kind),
            (name, section, kind)
        );
        assert!(!p.kind.is_packet());
    }

    let m = obj.map("openat_calls").unwrap();
    assert_eq!(
        (m.map_type, m.key_size, m.value_size, m.max_entries),
        (2, 4, 8, 1)
    );
    let m = obj.map("events_ring").unwrap();
    assert_eq!((m.map_type, m.max_entries), (27, 256 * 1024));
    let m = obj.map("events_perf").unwrap();
    assert_eq!((m.map_type, m.key_size, m.value_size), (4, 4, 4));
    let m = obj.map("raw_counts").unwrap();
    assert_eq!(
        (m.map_type, m.key_size, m.value_size, m.max_entries),
        (2, 4, 8, 2)
    );

    let ro = obj.map(".rodata").unwrap();
    assert_eq!(ro.section, MapSection::Rodata);
    assert_eq!(
        (ro.map_type, ro.key_size, ro.value_size, ro.max_entries),
        (2, 4, 4, 1)
    );
    assert_eq!(ro.variables.len(), 1);
    assert_eq!(ro.variables[0].name, "target_tgid");
    let bss = obj.map(".bss").unwrap();
    assert_eq!(bss.initial, vec![0; 8]);
    assert_eq!(bss.variables[0].name, "next_seq");

    // count_openat reads target_tgid (.rodata, offset 0) and bumps openat_calls.
    let p = obj.program("count_openat").unwrap();
    let ro_index = obj.map_index(".rodata").unwrap() as i32;
    assert!(lddws(&p.insns)
        .iter()
        .any(|(_, a, b)| a.src == 2 && a.imm == ro_index && b.imm == 0));
    assert!(map_fd_refs(&p.insns).contains(&(obj.map_index("openat_calls").unwrap() as i32)));
    let p = obj.program("emit_getppid").unwrap();
    let refs = map_fd_refs(&p.insns);
    assert!(refs.contains(&(obj.map_index("events_ring").unwrap() as i32)));
    assert!(refs.contains(&(obj.map_index("events_perf").unwrap() as i32)));
}

#[test]
fn sockmap_redirect() {
    let obj = parse(&kernel_object("sockmap_redirect.bpf.o")).unwrap();
    let kinds: Vec<_> = obj
        .programs
        .iter()
        .map(|p| (p.name.as_str(), p.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("parse_all", ProgramKind::SkSkbStreamParser),
            ("redirect_to_peer", ProgramKind::SkSkbStreamVerdict),
            ("redirect_msg", ProgramKind::SkMsg),
        ]
    );
    assert!(obj.programs[0].kind.is_packet() && obj.programs[1].kind.is_packet());
    let m = obj.map("sock_pair").unwrap();
    assert_eq!(
        (m.map_type, m.key_size, m.value_size, m.max_entries),
        (15, 4, 4, 2)
    );
    let m = obj.map("sock_by_port").unwrap();
    assert_eq!(
        (m.map_type, m.key_size, m.value_size, m.max_entries),
        (18, 4, 4, 16)
    );
    let m = obj.map("port_index").unwrap();
    assert_eq!((m.map_type, m.max_entries), (1, 16));
    let m = obj.map("msg_route").unwrap();
    assert_eq!((m.map_type, m.max_entries), (1, 16));

    let verdict = obj.program("redirect_to_peer").unwrap();
    assert_eq!(
        map_fd_refs(&verdict.insns),
        vec![
            obj.map_index("port_index").unwrap() as i32,
            obj.map_index("sock_pair").unwrap() as i32
        ]
    );
    // redirected_bytes is a .bss global at offset 0.
    let bss = obj.map_index(".bss").unwrap() as i32;
    assert!(lddws(&verdict.insns)
        .iter()
        .any(|(_, a, b)| a.src == 2 && a.imm == bss && b.imm == 0));
    let msg = obj.program("redirect_msg").unwrap();
    assert_eq!(
        map_fd_refs(&msg.insns),
        vec![
            obj.map_index("msg_route").unwrap() as i32,
            obj.map_index("sock_by_port").unwrap() as i32
        ]
    );
    // redirected_msgs is the second .bss variable.
    let off = obj
        .map(".bss")
        .unwrap()
        .variables
        .iter()
        .find(|v| v.name == "redirected_msgs")
        .unwrap()
        .offset;
    assert_eq!(off, 8);
    assert!(lddws(&msg.insns)
        .iter()
        .any(|(_, a, b)| a.src == 2 && a.imm == bss && b.imm == 8));
    obj.check_map_types().unwrap();
}

#[test]
fn needs_features() {
    let obj = parse(&kernel_object("needs_features.bpf.o")).unwrap();
    let kinds: Vec<_> = obj
        .programs
        .iter()
        .map(|p| (p.name.as_str(), p.section.as_str(), p.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("on_kprobe", "kprobe/do_sys_openat2", ProgramKind::Kprobe),
            ("on_fentry", "fentry/do_sys_openat2", ProgramKind::Fentry),
            ("on_file_open", "lsm/file_open", ProgramKind::Lsm),
        ]
    );
    assert_eq!(obj.maps.len(), 1);
    assert_eq!(obj.maps[0].name, ".bss");
    assert_eq!(obj.maps[0].variables[0].name, "hits");
}

#[test]
fn tc_rewrite_classifier_and_rodata() {
    let mut obj = parse(&kernel_object("tc_rewrite.bpf.o")).unwrap();
    let p = obj.program("rewrite_udp").unwrap();
    assert_eq!(p.section, "classifier");
    assert_eq!(p.kind, ProgramKind::SchedCls);
    assert!(p.kind.is_packet());
    let ro = obj.map(".rodata").unwrap();
    assert_eq!(ro.map_flags, 0x80, "BPF_F_RDONLY_PROG");
    assert_eq!(
        ro.initial,
        [9999u16, 7777, 8888]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>()
    );
    let names: Vec<_> = ro
        .variables
        .iter()
        .map(|v| (v.name.as_str(), v.offset, v.size))
        .collect();
    assert_eq!(
        names,
        vec![("drop_port", 0, 2), ("from_port", 2, 2), ("to_port", 4, 2)]
    );

    obj.set_global("from_port", &1234u16.to_le_bytes()).unwrap();
    assert_eq!(
        &obj.map(".rodata").unwrap().initial[2..4],
        &1234u16.to_le_bytes()
    );
    let bss = obj.map(".bss").unwrap();
    assert_eq!(bss.value_size, 24);
    assert_eq!(bss.variables[0].name, "counters");

    // The DATASEC formats with the patched value.
    let btf = obj.btf.as_ref().unwrap();
    let ro = obj.map(".rodata").unwrap();
    let v = btf.format_value(ro.btf_value_type_id.unwrap(), &ro.initial);
    assert_eq!(
        v,
        serde_json::json!({"drop_port": 9999, "from_port": 1234, "to_port": 8888})
    );
}

#[test]
fn perf_sample() {
    let obj = parse(&kernel_object("perf_sample.bpf.o")).unwrap();
    let p = obj.program("on_sample").unwrap();
    assert_eq!(
        (p.section.as_str(), p.kind),
        ("perf_event", ProgramKind::PerfEvent)
    );
    let m = obj.map("samples").unwrap();
    assert_eq!(
        (m.map_type, m.key_size, m.value_size, m.max_entries),
        (6, 4, 8, 1)
    );
    assert_eq!(
        map_fd_refs(&p.insns),
        vec![obj.map_index("samples").unwrap() as i32]
    );
}

#[test]
fn other_kernel_objects() {
    let obj = parse(&kernel_object("cgroup_count.bpf.o")).unwrap();
    let kinds: Vec<_> = obj
        .programs
        .iter()
        .map(|p| (p.section.as_str(), p.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("cgroup_skb/egress", ProgramKind::CgroupSkb),
            ("cgroup_skb/ingress", ProgramKind::CgroupSkb)
        ]
    );
    let obj = parse(&kernel_object("uprobe_count.bpf.o")).unwrap();
    let kinds: Vec<_> = obj.programs.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, vec![ProgramKind::Uprobe, ProgramKind::Uretprobe]);
    let obj = parse(&kernel_object("socket_filter.bpf.o")).unwrap();
    assert_eq!(obj.programs[0].kind, ProgramKind::SocketFilter);
    assert_eq!(obj.programs[0].section, "socket");
    let obj = parse(&kernel_object("verifier_reject.bpf.o")).unwrap();
    assert!(obj.maps.is_empty());
    assert_eq!(obj.programs[0].kind, ProgramKind::Xdp);
}
