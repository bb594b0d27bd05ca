//! clang-built objects from bpf/kernel loaded and attached in the running
//! kernel, checking exact numbers. Root only: skipped with a reason
//! otherwise, and a skip fails the run under CI=true.

mod common;
use bpfkit_kernel::object::{Attach, ObjectLoader};
use common::{available, object, u64_at};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

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

/// The getppid-driven tests target this whole process, so they take turns.
static GETPPID: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn ring_buffer_delivers_every_event_in_order() {
    if !available(true) {
        return;
    }
    let _turn = GETPPID.lock().unwrap_or_else(|e| e.into_inner());
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

#[test]
fn perf_buffer_delivers_every_event_in_order() {
    if !available(true) {
        return;
    }
    let _turn = GETPPID.lock().unwrap_or_else(|e| e.into_inner());
    const N: u64 = 40;
    let mut loader = ObjectLoader::open(&object("tracepoint_count.bpf.o")).unwrap();
    loader.set_global("target_tgid", &std::process::id().to_ne_bytes());
    let mut obj = loader.load().unwrap();
    let perf = obj.aya().take_map("events_perf").unwrap();
    let mut perf = aya::maps::PerfEventArray::try_from(perf).unwrap();
    let mut buffers: Vec<_> = aya::util::online_cpus()
        .unwrap()
        .into_iter()
        .map(|cpu| perf.open(cpu, None).unwrap())
        .collect();
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
    let mut all = Vec::new();
    for buf in &mut buffers {
        let mut mine = Vec::new();
        buf.for_each(|ev| match ev {
            aya::maps::perf::PerfEvent::Sample { head, tail } => {
                let bytes: Vec<u8> = head.iter().chain(tail.iter()).copied().collect();
                mine.push(u64_at(&bytes, 0));
            }
            aya::maps::perf::PerfEvent::Lost { count } => panic!("{count} events lost"),
        });
        // Each CPU's buffer is in order.
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        all.extend(mine);
    }
    all.sort();
    assert_eq!(all, (0..N).collect::<Vec<_>>());
}

/// The function the uprobe test probes: not inlined, with a symbol of its own.
#[no_mangle]
#[inline(never)]
pub extern "C" fn bpfkit_uprobe_target(x: u64) -> u64 {
    std::hint::black_box(x).wrapping_mul(3)
}

#[test]
fn uprobe_and_uretprobe_count_calls_of_a_function() {
    if !available(false) {
        return;
    }
    let mut obj = ObjectLoader::open(&object("uprobe_count.bpf.o"))
        .unwrap()
        .load()
        .unwrap();
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    for prog in ["on_call", "on_return"] {
        obj.attach(
            prog,
            Attach::Uprobe {
                target: &exe,
                symbol: Some("bpfkit_uprobe_target"),
                offset: 0,
                pid: Some(std::process::id()),
            },
        )
        .unwrap();
    }
    let mut sum = 0;
    for i in 1..=10u64 {
        sum += std::hint::black_box(bpfkit_uprobe_target(i));
    }
    assert_eq!(sum, 165);
    let bss = obj.map(".bss").unwrap();
    let v = bss.lookup(&0u32.to_ne_bytes()).unwrap().unwrap();
    assert_eq!(u64_at(&v, 0), 10, "calls");
    assert_eq!(u64_at(&v, 1), 10, "returns");
    assert_eq!(u64_at(&v, 2), 55, "sum of arguments");
}

#[test]
fn cpu_clock_sampling_records_samples() {
    if !available(false) {
        return;
    }
    let mut loader = ObjectLoader::open(&object("perf_sample.bpf.o")).unwrap();
    loader.set_global("target_tgid", &std::process::id().to_ne_bytes());
    let mut obj = loader.load().unwrap();
    obj.attach("on_sample", Attach::CpuClock { frequency: 1000 })
        .unwrap();
    // Burn about 300 ms of CPU in this process.
    let start = std::time::Instant::now();
    let mut x = 0u64;
    while start.elapsed() < std::time::Duration::from_millis(300) {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    let samples = obj.map("samples").unwrap();
    let v = samples.lookup(&0u32.to_ne_bytes()).unwrap().unwrap();
    let total: u64 = v
        .chunks(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .sum();
    let bss = obj.map(".bss").unwrap();
    let mine = u64_at(&bss.lookup(&0u32.to_ne_bytes()).unwrap().unwrap(), 0);
    // 1000 Hz for 0.3 s of this process's CPU time: well over 50 samples of
    // it, and the per-CPU total includes them.
    assert!(mine >= 50, "only {mine} samples hit this process");
    assert!(total >= mine, "per-CPU total {total} < {mine}");
}

#[test]
fn kernels_without_kprobes_or_trampolines_say_which_feature_is_missing() {
    if !available(false) {
        return;
    }
    use bpfkit_kernel::object::ObjectError;
    let mut obj = ObjectLoader::open(&object("needs_features.bpf.o"))
        .unwrap()
        .load()
        .unwrap();
    let cases: [(&str, Attach, &str); 3] = [
        (
            "on_kprobe",
            Attach::Kprobe {
                function: "do_sys_openat2",
            },
            "kprobes",
        ),
        (
            "on_fentry",
            Attach::Fentry {
                function: "do_sys_openat2",
            },
            "trampolines",
        ),
        ("on_file_open", Attach::Lsm { hook: "file_open" }, "BPF LSM"),
    ];
    for (prog, at, feature) in cases {
        match obj.attach(prog, at) {
            // A kernel with the feature attaches: nothing to report.
            Ok(()) => eprintln!("{prog}: this kernel supports it"),
            Err(e @ ObjectError::Unsupported { .. }) => {
                let text = e.to_string();
                assert!(text.contains(feature), "{text}");
                assert!(text.contains(&format!("program `{prog}`")), "{text}");
            }
            Err(e) => panic!("{prog}: unexpected error kind: {e}"),
        }
    }
}

#[test]
fn test_run_of_an_object_program_updates_its_maps() {
    if !available(false) {
        return;
    }
    let mut obj = ObjectLoader::open(&object("xdp_count.bpf.o"))
        .unwrap()
        .load()
        .unwrap();
    // Ethernet + IPv4 (ihl 5, protocol ICMP) + ICMP echo request.
    let mut pkt = vec![0u8; 14 + 20 + 8];
    pkt[12..14].copy_from_slice(&[0x08, 0x00]);
    pkt[14] = 0x45;
    pkt[14 + 9] = 1;
    pkt[34] = 8;
    let out = obj
        .test_run(
            "count_packets",
            &bpfkit_kernel::TestRun::new(&pkt).repeat(10),
        )
        .unwrap();
    assert_eq!(out.retval, 2, "XDP_PASS");
    assert_eq!(out.data_out, pkt);
    let echo = obj.map("echo_requests").unwrap();
    let v = echo.lookup(&0u32.to_ne_bytes()).unwrap().unwrap();
    assert_eq!(u64_at(&v, 0), 10);
    // Programs that cannot be test-run say so.
    let mut tp = ObjectLoader::open(&object("tracepoint_count.bpf.o"))
        .unwrap()
        .load()
        .unwrap();
    let e = tp
        .test_run("count_openat", &bpfkit_kernel::TestRun::new(&pkt))
        .unwrap_err();
    assert!(e.to_string().contains("cannot be test-run here"), "{e}");
}
