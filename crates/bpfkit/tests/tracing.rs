//! Tracing programs with argument contexts in both engines: a raw tracepoint
//! program from a committed object runs with the same u64 arguments in the
//! VM (argument memory) and in the kernel (BPF_PROG_TEST_RUN with the
//! arguments as its context), with the same task facts, and ends with the
//! same maps.

mod common;
use common::available;

use bpfkit::{Engine, Loaded, Object};
use std::path::PathBuf;

fn object() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf/kernel/tracepoint_count.bpf.o")
}

/// The calling thread's pid_tgid as the kernel reports it to programs.
fn pid_tgid() -> u64 {
    // SAFETY: plain syscalls without arguments.
    let (tgid, tid) = unsafe { (libc::getpid() as u64, libc::gettid() as u64) };
    tgid << 32 | tid
}

fn load(engine: Engine, target: u32) -> Loaded {
    let mut obj = Object::open(object()).unwrap();
    obj.set_global("target_tgid", &target);
    let mut loaded = obj.load(engine).unwrap_or_else(|e| panic!("{e}"));
    if let Some(vm) = loaded.vm_mut() {
        vm.set_host(bpfkit::vm::HostEnv {
            pid_tgid: Some(pid_tgid()),
            ..Default::default()
        });
    }
    loaded
}

fn args(a: &[u64]) -> Vec<u8> {
    a.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

fn raw_counts(l: &Loaded) -> Vec<u64> {
    let m = l.map("raw_counts").unwrap();
    (0u32..2)
        .map(|k| {
            let v = m.lookup(&k.to_ne_bytes()).unwrap().unwrap();
            u64::from_ne_bytes(v[..8].try_into().unwrap())
        })
        .collect()
}

/// sys_enter arguments: (struct pt_regs *, syscall number).
const CALLS: [[u64; 2]; 5] = [[0, 257], [0, 1], [0, 257], [0, 39], [0, 257]];

fn run_all(l: &mut Loaded) {
    for a in CALLS {
        let out = l.run_context("raw_sys_enter", &args(&a)).unwrap();
        assert_eq!(out.retval, 0);
    }
}

#[test]
fn raw_tracepoint_counts_the_same_in_both_engines() {
    let me = (pid_tgid() >> 32) as u32;
    let mut vm = load(Engine::Vm, me);
    run_all(&mut vm);
    // Three openat (257) calls from the target process, in slot 0.
    assert_eq!(raw_counts(&vm), vec![3, 0]);
    if !available() {
        return;
    }
    let mut kernel = load(Engine::Kernel, me);
    run_all(&mut kernel);
    assert_eq!(raw_counts(&kernel), raw_counts(&vm));
    let diffs = bpfkit::compare::maps(&mut kernel, &mut vm).unwrap();
    assert!(diffs.is_empty(), "{diffs:?}");
}

#[test]
fn another_process_is_not_counted_in_either_engine() {
    let other = (pid_tgid() >> 32) as u32 + 1;
    let mut vm = load(Engine::Vm, other);
    run_all(&mut vm);
    assert_eq!(raw_counts(&vm), vec![0, 0]);
    if !available() {
        return;
    }
    let mut kernel = load(Engine::Kernel, other);
    run_all(&mut kernel);
    assert_eq!(raw_counts(&kernel), vec![0, 0]);
}

#[test]
fn a_tracepoint_record_runs_in_the_vm() {
    // The kernel cannot test-run tracepoint programs; the VM runs them on a
    // record the caller builds (struct trace_event_raw_sys_enter: 8-byte
    // common header, long id, unsigned long args[6]).
    let me = (pid_tgid() >> 32) as u32;
    let mut vm = load(Engine::Vm, me);
    let mut record = vec![0u8; 8 + 8 + 48];
    record[8..16].copy_from_slice(&257u64.to_ne_bytes());
    for _ in 0..4 {
        assert_eq!(vm.run_context("count_openat", &record).unwrap().retval, 0);
    }
    let calls = vm.typed_map::<u32, u64>("openat_calls").unwrap();
    assert_eq!(calls.get(&0).unwrap(), Some(4));
    // getppid events: ring buffer records in order with sequence numbers.
    for _ in 0..3 {
        vm.run_context("emit_getppid", &record).unwrap();
    }
    let events = vm.drain_ringbuf("events_ring").unwrap();
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| u64::from_ne_bytes(e[..8].try_into().unwrap()))
        .collect();
    assert_eq!(seqs, vec![0, 1, 2]);
    assert!(events
        .iter()
        .all(|e| u64::from_ne_bytes(e[8..16].try_into().unwrap()) == pid_tgid()));
    // A packet program is not run on a context this way, and the kernel
    // refuses to test-run tracepoints: both are named errors.
    let e = vm.run("count_openat", &[0u8; 64], 1).unwrap_err();
    assert!(e.to_string().contains("does not run on packets"), "{e}");
}
