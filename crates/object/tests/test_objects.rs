//! Objects built from the C sources in tests/data (build commands in each).

mod common;

use bpfkit_object::{parse, MapSection, ObjectError, ProgramKind};
use common::{lddws, map_fd_refs, test_object};
use serde_json::json;

#[test]
fn global_data_sections() {
    let obj = parse(&test_object("globals.o")).unwrap();
    assert_eq!(obj.license, "Dual MIT/GPL");
    let names: Vec<_> = obj
        .maps
        .iter()
        .map(|m| (m.name.as_str(), m.section))
        .collect();
    assert_eq!(
        names,
        vec![
            (".data", MapSection::Data),
            (".rodata", MapSection::Rodata),
            (".data.custom", MapSection::Data),
            (".rodata.custom", MapSection::Rodata),
            (".bss", MapSection::Bss),
        ]
    );
    for m in &obj.maps {
        assert_eq!(
            (m.map_type, m.key_size, m.max_entries),
            (2, 4, 1),
            "{}",
            m.name
        );
        assert_eq!(m.initial.len(), m.value_size as usize, "{}", m.name);
        assert_eq!(
            m.map_flags,
            if m.section == MapSection::Rodata {
                0x80
            } else {
                0
            }
        );
    }
    let data = obj.map(".data").unwrap();
    let vars: Vec<_> = data
        .variables
        .iter()
        .map(|v| (v.name.as_str(), v.offset, v.size))
        .collect();
    assert_eq!(
        vars,
        vec![("counter", 0, 4), ("origin", 4, 16), ("hidden", 20, 4)]
    );
    assert_eq!(&data.initial[0..4], &5i32.to_le_bytes());
    assert_eq!(&data.initial[20..24], &11i32.to_le_bytes());
    let bss = obj.map(".bss").unwrap();
    assert_eq!(bss.initial, vec![0; 16]);
    let vars: Vec<_> = bss
        .variables
        .iter()
        .map(|v| (v.name.as_str(), v.offset, v.size))
        .collect();
    assert_eq!(vars, vec![("hits", 0, 4), ("total", 8, 8)]);
    assert_eq!(
        obj.map(".data.custom").unwrap().initial,
        42i32.to_le_bytes()
    );
    assert_eq!(
        obj.map(".rodata.custom").unwrap().initial,
        9i32.to_le_bytes()
    );
    // bpf_printk's format string is a function-local static in .rodata.
    let ro = obj.map(".rodata").unwrap();
    let fmt = ro
        .variables
        .iter()
        .find(|v| v.name.ends_with("____fmt"))
        .unwrap();
    assert_eq!(
        &ro.initial[fmt.offset as usize..][..fmt.size as usize],
        b"hits %u\0"
    );
}

#[test]
fn global_references_are_map_values() {
    let obj = parse(&test_object("globals.o")).unwrap();
    let p = obj.program("use_globals").unwrap();
    assert_eq!(p.kind, ProgramKind::Xdp);
    let idx = |n: &str| obj.map_index(n).unwrap() as i32;
    // Every LDDW in the program is a global reference: (map, offset).
    let mut refs: Vec<_> = lddws(&p.insns)
        .into_iter()
        .map(|(_, a, b)| {
            assert_eq!(a.src, 2, "BPF_PSEUDO_MAP_VALUE");
            (a.imm, b.imm)
        })
        .collect();
    refs.sort();
    let mut expected = vec![
        (idx(".bss"), 0),           // hits
        (idx(".rodata"), 0),        // limit
        (idx(".bss"), 8),           // total
        (idx(".data"), 4),          // origin
        (idx(".data.custom"), 0),   // custom_data
        (idx(".rodata.custom"), 0), // custom_ro
        (idx(".rodata"), 8),        // shade
        (idx(".data"), 0),          // counter
        (idx(".data"), 20),         // hidden (static: section symbol + addend)
    ];
    expected.sort();
    assert_eq!(refs, expected);
    let p = obj.program("say_hello").unwrap();
    assert_eq!(p.kind, ProgramKind::Tracepoint);
    assert_eq!(p.section, "tracepoint/syscalls/sys_enter_getpid");
    let fmt = obj
        .map(".rodata")
        .unwrap()
        .variables
        .iter()
        .find(|v| v.name.ends_with("____fmt"))
        .unwrap()
        .offset;
    let refs: Vec<_> = lddws(&p.insns)
        .into_iter()
        .map(|(_, a, b)| (a.src, a.imm, b.imm))
        .collect();
    assert!(refs.contains(&(2, idx(".rodata"), fmt as i32)), "{refs:?}");
}

#[test]
fn set_global_patches_initial_values() {
    let mut obj = parse(&test_object("globals.o")).unwrap();
    obj.set_global("limit", &77u64.to_le_bytes()).unwrap();
    obj.set_global("custom_ro", &(-1i32).to_le_bytes()).unwrap();
    obj.set_global("total", &3u64.to_le_bytes()).unwrap();
    obj.set_global("custom_data", &100i32.to_le_bytes())
        .unwrap();
    obj.set_global("hidden", &12i32.to_le_bytes()).unwrap();
    assert_eq!(
        &obj.map(".rodata").unwrap().initial[0..8],
        &77u64.to_le_bytes()
    );
    assert_eq!(
        obj.map(".rodata.custom").unwrap().initial,
        (-1i32).to_le_bytes()
    );
    assert_eq!(
        &obj.map(".bss").unwrap().initial[8..16],
        &3u64.to_le_bytes()
    );
    assert_eq!(&obj.map(".bss").unwrap().initial[0..8], &[0; 8]);
    assert_eq!(
        obj.map(".data.custom").unwrap().initial,
        100i32.to_le_bytes()
    );
    assert_eq!(
        &obj.map(".data").unwrap().initial[20..24],
        &12i32.to_le_bytes()
    );
    // Neighbours untouched.
    assert_eq!(
        &obj.map(".data").unwrap().initial[0..4],
        &5i32.to_le_bytes()
    );
}

#[test]
fn btf_formats_struct_enum_bitfields_and_datasec() {
    let obj = parse(&test_object("globals.o")).unwrap();
    let btf = obj.btf.as_ref().unwrap();
    let data = obj.map(".data").unwrap();
    let dsec = data.btf_value_type_id.unwrap();
    assert_eq!(btf.type_name(dsec), ".data");
    let v = btf.format_value(dsec, &data.initial);
    assert_eq!(
        v,
        json!({
            "counter": 5,
            "origin": { "x": -3, "y": 7, "tag": "abc", "flags": 5, "mode": 17 },
            "hidden": 11,
        })
    );
    let point = btf.find("point").unwrap();
    assert_eq!(btf.type_name(point), "struct point");
    assert_eq!(btf.type_size(point), Some(16));
    assert_eq!(
        btf.format_value(point, &data.initial[4..20])["tag"],
        json!("abc")
    );

    let ro = obj.map(".rodata").unwrap();
    let v = btf.format_value(ro.btf_value_type_id.unwrap(), &ro.initial);
    assert_eq!(v["limit"], json!(1000));
    assert_eq!(v["shade"], json!("GREEN"), "enum by name");
    // An enum value with no name is a number.
    let mut bytes = ro.initial.clone();
    bytes[8] = 3;
    assert_eq!(
        btf.format_value(ro.btf_value_type_id.unwrap(), &bytes)["shade"],
        json!(3)
    );
    // Too few bytes: null, not a panic.
    assert_eq!(
        btf.format_value(point, &[1, 2]),
        json!({"x": null, "y": null, "tag": null, "flags": null, "mode": null})
    );
    assert_eq!(btf.format_value(9999, &[0; 8]), serde_json::Value::Null);
    assert!(btf.type_name(9999).contains("invalid"));
}

#[test]
fn btf_formats_map_keys() {
    let obj = parse(&test_object("maps.o")).unwrap();
    let btf = obj.btf.as_ref().unwrap();
    let flows = obj.map("flows").unwrap();
    let key = flows.btf_key_type_id.unwrap();
    assert_eq!(btf.type_name(key), "struct flow");
    let mut bytes = Vec::new();
    bytes.extend(0x0a000001u32.to_le_bytes());
    bytes.extend(0x0a000002u32.to_le_bytes());
    bytes.extend(80u16.to_le_bytes());
    bytes.extend(443u16.to_le_bytes());
    assert_eq!(
        btf.format_value(key, &bytes),
        json!({"saddr": 0x0a000001u32, "daddr": 0x0a000002u32, "sport": 80, "dport": 443})
    );
    assert_eq!(btf.type_name(flows.btf_value_type_id.unwrap()), "__u64");
    assert_eq!(
        btf.format_value(flows.btf_value_type_id.unwrap(), &u64::MAX.to_le_bytes()),
        json!(u64::MAX)
    );
}

#[test]
fn legacy_and_btf_maps() {
    let obj = parse(&test_object("maps.o")).unwrap();
    let find = |n: &str| obj.map(n).unwrap_or_else(|| panic!("map {n}"));
    let m = find("legacy_hash");
    assert_eq!(m.section, MapSection::LegacyMaps);
    assert_eq!(
        (
            m.map_type,
            m.key_size,
            m.value_size,
            m.max_entries,
            m.map_flags
        ),
        (1, 4, 8, 64, 0)
    );
    assert_eq!((m.btf_key_type_id, m.btf_value_type_id), (None, None));
    let m = find("legacy_array");
    assert_eq!(
        (m.map_type, m.key_size, m.value_size, m.max_entries),
        (2, 4, 16, 3)
    );
    let m = find("flows");
    assert_eq!(
        (
            m.map_type,
            m.key_size,
            m.value_size,
            m.max_entries,
            m.map_flags
        ),
        (9, 12, 8, 1024, 2)
    );
    let m = find("events");
    assert_eq!(
        (m.map_type, m.key_size, m.value_size, m.max_entries),
        (27, 0, 0, 4096)
    );
    let m = find("pinned_stats");
    assert_eq!((m.map_type, m.max_entries), (5, 8));
    assert!(m.pinning);
    assert!(!find("flows").pinning);

    let outer = find("outer");
    assert_eq!(
        (
            outer.map_type,
            outer.key_size,
            outer.value_size,
            outer.max_entries
        ),
        (12, 4, 4, 5)
    );
    let inner = outer.inner.as_ref().unwrap();
    assert_eq!(
        (
            inner.map_type,
            inner.key_size,
            inner.value_size,
            inner.max_entries
        ),
        (2, 4, 4, 2)
    );
    assert!(inner.inner.is_none());

    // Legacy maps come first (section order), then .maps by offset.
    let p = obj.program("touch_maps").unwrap();
    let idx = |n: &str| obj.map_index(n).unwrap() as i32;
    assert_eq!(
        map_fd_refs(&p.insns),
        vec![
            idx("legacy_hash"),
            idx("legacy_array"),
            idx("flows"),
            idx("pinned_stats"),
            idx("outer"),
            idx("events")
        ]
    );
    assert!(idx("legacy_hash") < idx("legacy_array") && idx("legacy_array") < idx("flows"));
    obj.check_map_types().unwrap();
}

#[test]
fn subprograms_are_linked_per_program() {
    let obj = parse(&test_object("linking.o")).unwrap();
    let names: Vec<_> = obj
        .programs
        .iter()
        .map(|p| (p.name.as_str(), p.section.as_str(), p.kind))
        .collect();
    assert_eq!(
        names,
        vec![
            ("tc_main", "tc", ProgramKind::SchedCls),
            ("tcx_loop", "tcx/ingress", ProgramKind::SchedCls),
            ("only_global", "classifier", ProgramKind::SchedCls),
            ("no_calls", "tc/egress", ProgramKind::SchedCls),
        ]
    );
    // Subprograms never show up as programs.
    assert!(obj.program("triple").is_none() && obj.program("add_global").is_none());

    // tc_main (27 slots) + triple (4) + add_global (5), both callees once.
    let p = obj.program("tc_main").unwrap();
    assert_eq!(p.insns.len(), 27 + 4 + 5);
    let calls: Vec<_> = p
        .insns
        .iter()
        .enumerate()
        .filter(|(_, i)| i.code == 0x85 && i.src == 1)
        .map(|(n, i)| (n as i64 + i.imm as i64 + 1) as usize)
        .collect();
    assert_eq!(calls.len(), 2);
    // triple: r0 = r1; r0 *= 3; r0 += 1; exit
    let t = calls[0];
    assert_eq!(
        (p.insns[t].code, p.insns[t + 1].code, p.insns[t + 1].imm),
        (0xbf, 0x27, 3)
    );
    // add_global: r0 = r2; r0 += r1; r1 &= 7; ...
    let g = calls[1];
    assert_eq!((p.insns[g + 2].code, p.insns[g + 2].imm), (0x57, 7));
    assert_eq!(
        map_fd_refs(&p.insns),
        vec![obj.map_index("results").unwrap() as i32]
    );

    // only_global: 5 slots + add_global.
    let p = obj.program("only_global").unwrap();
    assert_eq!(p.insns.len(), 5 + 5);
    let call = p
        .insns
        .iter()
        .position(|i| i.code == 0x85 && i.src == 1)
        .unwrap();
    assert_eq!(call as i32 + p.insns[call].imm + 1, 5);

    assert_eq!(obj.program("no_calls").unwrap().insns.len(), 2);
}

#[test]
fn bpf_loop_callback_is_pseudo_func() {
    let obj = parse(&test_object("linking.o")).unwrap();
    let p = obj.program("tcx_loop").unwrap();
    let funcs: Vec<_> = lddws(&p.insns)
        .into_iter()
        .filter(|(_, a, _)| a.src == 4)
        .collect();
    assert_eq!(funcs.len(), 1);
    let (at, a, b) = funcs[0];
    assert_eq!(b.imm, 0);
    let target = at as i64 + a.imm as i64 + 1;
    // The callback (7 slots) is appended after the 21-slot program.
    assert_eq!(target, 21);
    assert_eq!(p.insns.len(), 21 + 7);
    // sum_step starts with r1 <<= 32.
    assert_eq!((p.insns[21].code, p.insns[21].imm), (0x67, 32));
    // bpf_loop is helper 181.
    assert!(p
        .insns
        .iter()
        .any(|i| i.code == 0x85 && i.src == 0 && i.imm == 181));
}

#[test]
fn set_global_errors_name_the_variable() {
    let mut obj = parse(&test_object("globals.o")).unwrap();
    let before = obj.maps.clone();
    assert_eq!(
        obj.set_global("no_such_var", &[0; 4]),
        Err(ObjectError::UnknownGlobal {
            name: "no_such_var".into()
        })
    );
    let e = obj.set_global("limit", &[0; 4]).unwrap_err();
    assert_eq!(
        e,
        ObjectError::GlobalSize {
            name: "limit".into(),
            expected: 8,
            got: 4
        }
    );
    assert!(e.to_string().contains("limit"));
    let e = obj.set_global("hits", &[]).unwrap_err();
    assert_eq!(
        e,
        ObjectError::GlobalSize {
            name: "hits".into(),
            expected: 4,
            got: 0
        }
    );
    // Maps are not variables, and programs are not variables.
    assert!(matches!(
        obj.set_global("use_globals", &[0; 8]),
        Err(ObjectError::UnknownGlobal { .. })
    ));
    assert!(matches!(
        obj.set_global(".data", &[0; 24]),
        Err(ObjectError::UnknownGlobal { .. })
    ));
    assert_eq!(obj.maps, before, "failed set_global changes nothing");
}
