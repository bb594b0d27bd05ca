//! clang-built objects from bpf/kernel loaded and attached in the running
//! kernel, checking exact numbers. Root only: skipped with a reason
//! otherwise, and a skip fails the run under CI=true.

use bpfkit_kernel::object::{Attach, ObjectLoader};
use bpfkit_kernel::probe;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn skip(reason: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("kernel test skipped: {reason}\n(CI=true: a skipped kernel test is a failure)");
    }
    let _ = writeln!(std::io::stderr(), "kernel test skipped: {reason}");
    true
}

/// Whether the kernel tests can run here; prints why not.
fn available(need_tracefs: bool) -> bool {
    if let Err(e) = probe() {
        return !skip(&e.to_string());
    }
    if need_tracefs && !Path::new("/sys/kernel/tracing/events").exists() {
        return !skip("tracefs is not mounted at /sys/kernel/tracing (mount -t tracefs tracefs /sys/kernel/tracing)");
    }
    true
}

fn object(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../bpf/kernel")
        .join(name)
}

fn u64_at(bytes: &[u8], i: usize) -> u64 {
    u64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap())
}

/// A shell that says it is ready, waits for a line, then opens /dev/null
/// `n` times (one openat each in dash) and exits.
fn openat_child(n: usize) -> std::process::Child {
    let script = format!("echo ready; read x; {}", "exec 3</dev/null; ".repeat(n));
    Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn /bin/sh")
}

#[test]
fn tracepoints_count_exactly_the_openat_calls_of_a_child() {
    if !available(true) {
        return;
    }
    const N: usize = 7;
    let mut child = openat_child(N);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");

    let mut loader = ObjectLoader::open(&object("tracepoint_count.bpf.o")).unwrap();
    loader.set_global("target_tgid", &child.id().to_ne_bytes());
    let mut obj = loader.load().unwrap();
    obj.attach(
        "count_openat",
        Attach::Tracepoint {
            category: "syscalls",
            name: "sys_enter_openat",
        },
    )
    .unwrap();
    obj.attach("raw_sys_enter", Attach::RawTracepoint { name: "sys_enter" })
        .unwrap();
    obj.attach("btf_sys_enter", Attach::BtfTracepoint { name: "sys_enter" })
        .unwrap();

    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    assert!(child.wait().unwrap().success());

    let counts = obj.map("openat_calls").unwrap();
    let v = counts.lookup(&0u32.to_ne_bytes()).unwrap().unwrap();
    assert_eq!(u64_at(&v, 0), N as u64, "tracepoint count");
    let raw = obj.map("raw_counts").unwrap();
    let v = raw.lookup(&0u32.to_ne_bytes()).unwrap().unwrap();
    assert_eq!(u64_at(&v, 0), N as u64, "raw tracepoint count");
    let v = raw.lookup(&1u32.to_ne_bytes()).unwrap().unwrap();
    assert_eq!(u64_at(&v, 0), N as u64, "tp_btf count");
    // Out of range keys and wrong key sizes are errors or absent, not panics.
    assert_eq!(counts.lookup(&5u32.to_ne_bytes()).unwrap(), None);
    assert!(counts.lookup(&[0u8; 3]).is_err());
}

#[test]
fn ring_buffer_delivers_every_event_in_order() {
    if !available(true) {
        return;
    }
    const N: u64 = 50;
    let mut loader = ObjectLoader::open(&object("tracepoint_count.bpf.o")).unwrap();
    loader.set_global("target_tgid", &std::process::id().to_ne_bytes());
    let mut obj = loader.load().unwrap();
    obj.attach(
        "emit_getppid",
        Attach::Tracepoint {
            category: "syscalls",
            name: "sys_enter_getppid",
        },
    )
    .unwrap();
    for _ in 0..N {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() };
    }
    let ring = obj.aya().take_map("events_ring").unwrap();
    let mut ring = aya::maps::RingBuf::try_from(ring).unwrap();
    let mut seqs = Vec::new();
    while let Some(item) = ring.next() {
        assert_eq!(item.len(), 16);
        seqs.push(u64_at(&item, 0));
        let tgid = (u64_at(&item, 1) >> 32) as u32;
        assert_eq!(tgid, std::process::id());
    }
    assert_eq!(seqs, (0..N).collect::<Vec<_>>());
}

#[test]
fn programs_of_the_wrong_kind_and_missing_names_are_named_errors() {
    if !available(false) {
        return;
    }
    let mut obj = ObjectLoader::open(&object("tracepoint_count.bpf.o"))
        .unwrap()
        .load()
        .unwrap();
    let e = obj
        .attach("nope", Attach::RawTracepoint { name: "sys_enter" })
        .unwrap_err();
    assert_eq!(e.to_string(), "the object has no program `nope`");
    let e = obj
        .attach("count_openat", Attach::RawTracepoint { name: "sys_enter" })
        .unwrap_err();
    assert!(e.to_string().contains("`count_openat` is a"), "{e}");
    assert!(obj.map("nope").is_err());
    let e = ObjectLoader::open(Path::new("/nonexistent.bpf.o"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("/nonexistent.bpf.o"), "{e}");
    let e = ObjectLoader::from_bytes(b"not an elf".to_vec())
        .load()
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("loading the object"), "{e}");
}

#[test]
fn verifier_rejection_carries_the_log() {
    if !available(false) {
        return;
    }
    let mut obj = ObjectLoader::open(&object("verifier_reject.bpf.o"))
        .unwrap()
        .load()
        .unwrap();
    let p: &mut aya::programs::Xdp = obj
        .aya()
        .program_mut("unchecked_read")
        .unwrap()
        .try_into()
        .unwrap();
    let e = p.load().unwrap_err();
    let text = format!("{e:?}");
    assert!(text.contains("invalid access to packet"), "{text}");
}
