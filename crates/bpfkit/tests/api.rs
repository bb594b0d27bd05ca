//! The library API over the kernel engine: the same calls the VM engine will
//! answer. Root only: skipped with a reason otherwise, a failure under CI=true.

mod common;
use common::available;

use bpfkit::{Attach, Engine, Error, Object, XdpMode};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn object(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../bpf/kernel")
        .join(name)
}

#[test]
fn open_set_global_load_attach_and_read_a_typed_map() {
    if !available() {
        return;
    }
    const N: u64 = 4;
    let mut child = Command::new("/bin/sh")
        .args([
            "-c",
            &format!(
                "echo ready; read x; {}",
                "exec 3</dev/null; ".repeat(N as usize)
            ),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut obj = Object::open(object("tracepoint_count.bpf.o")).unwrap();
    obj.set_global("target_tgid", &child.id());
    let mut loaded = obj.load(Engine::Kernel).unwrap();
    assert_eq!(loaded.engine(), Engine::Kernel);
    assert!(loaded.program_names().contains(&"count_openat".to_string()));
    assert!(loaded.map_names().contains(&"openat_calls".to_string()));
    loaded
        .attach(
            "count_openat",
            Attach::Tracepoint {
                category: "syscalls",
                name: "sys_enter_openat",
            },
        )
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    assert!(child.wait().unwrap().success());
    let calls = loaded.typed_map::<u32, u64>("openat_calls").unwrap();
    assert_eq!(calls.get(&0).unwrap(), Some(N));
    // Writes from user space are seen by the next read.
    calls.insert(&0, &100, bpfkit::BPF_EXIST).unwrap();
    assert_eq!(calls.get(&0).unwrap(), Some(100));
    assert_eq!(calls.keys().unwrap(), vec![0]);
    // Wrong types are refused with both sizes named.
    let e = loaded.typed_map::<u64, u64>("openat_calls").err().unwrap();
    assert!(
        e.to_string()
            .contains("keys are 4 bytes and values 8 bytes"),
        "{e}"
    );
}

#[test]
fn verifier_rejection_is_an_error_with_the_log() {
    if !available() {
        return;
    }
    let mut loaded = Object::open(object("verifier_reject.bpf.o"))
        .unwrap()
        .load(Engine::Kernel)
        .unwrap();
    // The program is verified before the interface is looked up.
    let e = loaded
        .attach(
            "unchecked_read",
            Attach::Xdp {
                interface: "bpfkit-none0",
                mode: XdpMode::Generic,
            },
        )
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("verifier_reject.bpf.o"), "{text}");
    let first = text.lines().next().unwrap();
    // The complaint, and the failing instruction through bpfkit's own
    // disassembler, on the first line; the whole log after it.
    assert!(
        first.contains("program `unchecked_read`: the verifier rejected it"),
        "{first}"
    );
    assert!(first.contains("invalid access to packet"), "{first}");
    assert!(
        first.ends_with("at instruction 1: w1 = *(u8 *)(r1 + 0xc)"),
        "{first}"
    );
    assert!(text.contains("1: (71) r1 = *(u8 *)(r1 +12)"), "{text}");
}

#[test]
fn bad_objects_and_engines_are_named_errors() {
    let e = Object::open("/nonexistent/x.bpf.o").err().unwrap();
    assert!(matches!(e, Error::Read { .. }));
    assert!(e.to_string().starts_with("/nonexistent/x.bpf.o:"), "{e}");
    // The VM reads the object itself: a broken one is a named error there.
    let e = Object::from_bytes("garbage", b"\x7fELF but not really".to_vec())
        .load(Engine::Vm)
        .err()
        .unwrap();
    assert!(matches!(e, Error::Object { .. }), "{e}");
    assert!(e.to_string().starts_with("garbage: "), "{e}");
    // The VM has no kernel hooks: attaching is refused by name.
    let mut vm = Object::open(object("xdp_count.bpf.o"))
        .unwrap()
        .load(Engine::Vm)
        .unwrap();
    let prog = vm.program_names()[0].clone();
    let e = vm
        .attach(
            &prog,
            bpfkit::Attach::Xdp {
                interface: "lo",
                mode: bpfkit::XdpMode::Generic,
            },
        )
        .err()
        .unwrap();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("no kernel hooks"), "{e}");
    if !available() {
        return;
    }
    let e = Object::from_bytes("garbage", b"\x7fELF but not really".to_vec())
        .load(Engine::Kernel)
        .err()
        .unwrap();
    assert!(
        e.to_string().starts_with("garbage: loading the object"),
        "{e}"
    );
}

#[test]
fn run_a_packet_program_and_read_what_it_counted() {
    if !available() {
        return;
    }
    let mut loaded = Object::open(object("xdp_count.bpf.o"))
        .unwrap()
        .load(Engine::Kernel)
        .unwrap();
    let mut pkt = vec![0u8; 14 + 20 + 8];
    pkt[12..14].copy_from_slice(&[0x08, 0x00]);
    pkt[14] = 0x45;
    pkt[14 + 9] = 17; // UDP
    let out = loaded.run("count_packets", &pkt, 3).unwrap();
    assert_eq!(out.retval, 2);
    assert_eq!(out.output, pkt);
    let per_proto = loaded.map("proto_packets").unwrap();
    let v = per_proto.lookup(&17u32.to_ne_bytes()).unwrap().unwrap();
    let total: u64 = v
        .chunks(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .sum();
    assert_eq!(total, 3);
    let e = loaded.run("nope", &pkt, 1).unwrap_err();
    assert!(e.to_string().contains("no program `nope`"), "{e}");
}

/// Section names to attach points, as libbpf's auto-attach reads them; the
/// ones that need a target the name cannot give are refused by name.
#[test]
fn sections_say_where_to_attach() {
    use bpfkit::attach_point;
    let ok = |s: &str| {
        format!(
            "{:?}",
            attach_point(s).unwrap_or_else(|e| panic!("{s}: {e}"))
        )
    };
    assert!(ok("tracepoint/syscalls/sys_enter_openat")
        .contains("category: \"syscalls\", name: \"sys_enter_openat\""));
    assert!(ok("tp/sched/sched_switch").contains("name: \"sched_switch\""));
    assert_eq!(
        ok("raw_tracepoint/sys_enter"),
        "RawTracepoint { name: \"sys_enter\" }"
    );
    assert_eq!(
        ok("raw_tp/sys_exit"),
        "RawTracepoint { name: \"sys_exit\" }"
    );
    assert_eq!(
        ok("tp_btf/sched_wakeup"),
        "BtfTracepoint { name: \"sched_wakeup\" }"
    );
    assert_eq!(
        ok("kprobe/do_sys_openat2"),
        "Kprobe { function: \"do_sys_openat2\" }"
    );
    assert_eq!(ok("fentry/vfs_read"), "Fentry { function: \"vfs_read\" }");
    assert_eq!(ok("lsm/file_open"), "Lsm { hook: \"file_open\" }");
    assert!(ok("uprobe//usr/lib/libc.so.6:malloc").contains("symbol: Some(\"malloc\")"));
    assert_eq!(
        ok("usdt//usr/bin/python3:python:function__entry"),
        "Usdt { target: \"/usr/bin/python3\", provider: \"python\", name: \"function__entry\", pid: None, cookie: 0 }"
    );
    // ebpf_exporter's perf_event and xdp sections.
    assert_eq!(
        ok("perf_event/type=0,config=3,frequency=1"),
        "PerfEvent { event_type: 0, config: 3, sample: Frequency(1) }"
    );
    assert_eq!(
        ok("perf_event/type=1,period=10000"),
        "PerfEvent { event_type: 1, config: 0, sample: Period(10000) }"
    );
    assert_eq!(ok("xdp/eth0"), "Xdp { interface: \"eth0\", mode: Default }");
    for (bad, why) in [
        ("perf_event/type=1", "needs frequency=N or period=N"),
        ("perf_event/type=1,frequency=0", "above 0"),
        ("perf_event/config=1,frequency=9", "needs type=N"),
        (
            "perf_event/type=x,frequency=9",
            "\"x\" is not a whole number",
        ),
        (
            "perf_event/type=1,colour=2",
            "unknown perf_event item \"colour=2\"",
        ),
        ("perf_event/type", "expected KEY=NUMBER"),
        ("perf_event/type=4294967296,frequency=1", "type is a u32"),
        ("xdp/a/b", "use attach()"),
        ("tracepoint/syscalls", "tracepoint/CATEGORY/NAME"),
        ("tracepoint//x", "tracepoint/CATEGORY/NAME"),
        ("raw_tp", "names no tracepoint"),
        ("kprobe/", "names no kernel function"),
        ("uprobe/libc.so", "uprobe/PATH:SYMBOL"),
        ("usdt", "usdt/PATH:PROVIDER:NAME"),
        ("usdt/bin:probe", "usdt/PATH:PROVIDER:NAME"),
        ("usdt/a:b:c:d", "usdt/PATH:PROVIDER:NAME"),
        ("usdt/:p:n", "usdt/PATH:PROVIDER:NAME"),
        ("xdp", "use attach()"),
        ("classifier", "use attach()"),
        ("socket", "use attach()"),
        ("perf_event", "use attach()"),
        ("cgroup_skb/ingress", "use attach()"),
    ] {
        let e = attach_point(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
    // Through the library: the VM has no hooks; an unknown program is named.
    let mut vm = Object::open(object("tracepoint_count.bpf.o"))
        .unwrap()
        .load(Engine::Vm)
        .unwrap();
    let e = vm.attach_auto("count_openat").unwrap_err();
    assert!(e.to_string().contains("no kernel hooks"), "{e}");
    let e = vm.attach_auto("nope").unwrap_err();
    assert!(e.to_string().contains("no program `nope`"), "{e}");
}

/// `__kconfig` externs: a strong one no kernel has fails the load naming the
/// object and the extern; the VM reads such objects with zeros.
#[test]
fn a_missing_strong_kconfig_extern_names_the_object_and_the_extern() {
    let path = object("usdt_kconfig_missing.bpf.o");
    let file = Object::open(&path).unwrap().parse().unwrap();
    assert_eq!(
        file.map(".rodata.kconfig").map(|m| m.initial.clone()),
        Some(vec![0; 8])
    );
    if !available() {
        return;
    }
    let e = Object::open(&path)
        .unwrap()
        .load(Engine::Kernel)
        .err()
        .expect("the load must fail")
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}: loading the object: kconfig extern `CONFIG_BPFKIT_NO_SUCH_OPTION`: this kernel has no such option and the extern is not __weak",
            path.display()
        )
    );
}
