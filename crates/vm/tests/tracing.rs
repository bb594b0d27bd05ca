//! The tracing helpers, each run from a program: results and errnos as the
//! kernel gives them; and the tracepoint object, whose programs emit perf
//! and ring buffer records.

use bpfkit_isa::{asm::assemble, Dialect};
use bpfkit_vm::context::{ContextKind, PacketContext};
use bpfkit_vm::instance::kernel_helpers;
use bpfkit_vm::maps::{self, types, MapDef, MapRegistry, PerfEventArray, RingBuf};
use bpfkit_vm::{Entry, HostEnv, Instance, Interpreter, Program, RunEnv, VmError};
use std::sync::Arc;

const EFAULT: u64 = -14i64 as u64;
const EINVAL: u64 = -22i64 as u64;
const E2BIG: u64 = -7i64 as u64;
const ENOSPC: u64 = -28i64 as u64;
const EOPNOTSUPP: u64 = -95i64 as u64;
const CURRENT_CPU: u64 = 0xffff_ffff;

// ---- harness -----------------------------------------------------------------

/// Calls helper `id` once with registers computed from the addresses of
/// `bufs` (each a writable region of the run) and returns r0.
fn call(
    id: u32,
    env: &mut RunEnv,
    bufs: &mut [&mut [u8]],
    args: impl FnOnce(&[u64]) -> [u64; 5],
) -> Result<u64, VmError> {
    let p = Program::new(&assemble(&format!("call {id}\nexit"), Dialect::Llvm).unwrap()).unwrap();
    let mut vm = Interpreter::new(&p, &kernel_helpers()).unwrap();
    vm.run_with(env, |regions| {
        let addrs: Vec<u64> = bufs
            .iter_mut()
            // SAFETY: the buffers outlive the run.
            .map(|b| unsafe { regions.add_rw(b.as_mut_ptr(), b.len()) })
            .collect();
        Entry {
            args: args(&addrs),
            packet: (0, 0),
        }
    })
    .map(|o| o.r0)
}

/// Calls helper `id` with no buffers.
fn call0(id: u32, env: &mut RunEnv) -> u64 {
    call(id, env, &mut [], |_| [0; 5]).unwrap()
}

fn helper_failed(r: Result<u64, VmError>) {
    assert!(
        matches!(r, Err(VmError::Helper { .. })),
        "expected a failed run, got {r:?}"
    );
}

/// An address no region of any run holds.
const WILD: u64 = 0x10;

// ---- probe reads ---------------------------------------------------------------

#[test]
fn probe_read_copies_the_runs_memory() {
    for id in [4, 112, 113] {
        let mut env = RunEnv::default();
        let mut src = *b"0123456789abcdef";
        let mut dst = [0xffu8; 8];
        let r = call(id, &mut env, &mut [&mut dst, &mut src], |a| {
            [a[0], 8, a[1] + 4, 0, 0]
        });
        assert_eq!(r.unwrap(), 0, "helper {id}");
        assert_eq!(&dst, b"456789ab");
    }
}

#[test]
fn probe_read_of_other_memory_zeroes_and_faults() {
    for id in [4, 112, 113] {
        let mut env = RunEnv::default();
        let mut src = [7u8; 8];
        let mut dst = [0xffu8; 8];
        // Nowhere.
        let r = call(id, &mut env, &mut [&mut dst], |a| [a[0], 8, WILD, 0, 0]);
        assert_eq!(r.unwrap(), EFAULT, "helper {id}");
        assert_eq!(dst, [0; 8]);
        // Starting inside a region, running past its end.
        dst = [0xff; 8];
        let r = call(id, &mut env, &mut [&mut dst, &mut src], |a| {
            [a[0], 8, a[1] + 1, 0, 0]
        });
        assert_eq!(r.unwrap(), EFAULT);
        assert_eq!(dst, [0; 8]);
        // Size 0 copies nothing, from anywhere.
        dst = [0xff; 8];
        let r = call(id, &mut env, &mut [&mut dst], |a| [a[0], 0, WILD, 0, 0]);
        assert_eq!(r.unwrap(), 0);
        assert_eq!(dst, [0xff; 8]);
    }
}

#[test]
fn probe_read_into_memory_the_program_does_not_own_fails_the_run() {
    let mut env = RunEnv::default();
    let mut src = [1u8; 8];
    helper_failed(call(113, &mut env, &mut [&mut src], |a| {
        [WILD, 8, a[0], 0, 0]
    }));
    // A destination shorter than size.
    let mut dst = [0u8; 4];
    helper_failed(call(113, &mut env, &mut [&mut dst, &mut src], |a| {
        [a[0], 8, a[1], 0, 0]
    }));
}

#[test]
fn probe_read_str_copies_through_the_nul() {
    for id in [45, 114, 115] {
        let mut env = RunEnv::default();
        let mut src = *b"hello\0world\0";
        let mut dst = [0xffu8; 16];
        let r = call(id, &mut env, &mut [&mut dst, &mut src], |a| {
            [a[0], 16, a[1], 0, 0]
        });
        assert_eq!(r.unwrap(), 6, "helper {id}: the length with the NUL");
        assert_eq!(&dst[..6], b"hello\0");
        // The rest of dst is left alone.
        assert_eq!(&dst[6..], &[0xff; 10]);
    }
}

#[test]
fn probe_read_str_truncates_and_terminates() {
    for id in [45, 114, 115] {
        let mut env = RunEnv::default();
        let mut src = *b"hello world\0";
        let mut dst = [0xffu8; 8];
        let r = call(id, &mut env, &mut [&mut dst, &mut src], |a| {
            [a[0], 6, a[1], 0, 0]
        });
        assert_eq!(r.unwrap(), 6, "helper {id}: size when truncated");
        assert_eq!(&dst, b"hello\0\xff\xff");
        // A string that exactly fills the buffer.
        let mut src = *b"hello\0";
        let mut dst = [0xffu8; 6];
        let r = call(id, &mut env, &mut [&mut dst, &mut src], |a| {
            [a[0], 6, a[1], 0, 0]
        });
        assert_eq!(r.unwrap(), 6);
        assert_eq!(&dst, b"hello\0");
        // size 1: only the NUL.
        let mut dst = [0xffu8; 2];
        let r = call(id, &mut env, &mut [&mut dst, &mut src], |a| {
            [a[0], 1, a[1], 0, 0]
        });
        assert_eq!(r.unwrap(), 1);
        assert_eq!(dst, [0, 0xff]);
    }
}

#[test]
fn probe_read_str_faults_zero_the_whole_buffer() {
    for id in [45, 114, 115] {
        let mut env = RunEnv::default();
        let mut dst = [0xffu8; 8];
        let r = call(id, &mut env, &mut [&mut dst], |a| [a[0], 8, WILD, 0, 0]);
        assert_eq!(r.unwrap(), EFAULT, "helper {id}");
        assert_eq!(dst, [0; 8]);
        // No NUL before the region ends, and the region is shorter than
        // size: the copy faults part-way.
        let mut src = *b"abc";
        let mut dst = [0xffu8; 8];
        let r = call(id, &mut env, &mut [&mut dst, &mut src], |a| {
            [a[0], 8, a[1], 0, 0]
        });
        assert_eq!(r.unwrap(), EFAULT);
        assert_eq!(dst, [0; 8]);
        // The same region, with room for "ab" and the NUL: no fault.
        let mut dst = [0xffu8; 3];
        let r = call(id, &mut env, &mut [&mut dst, &mut src], |a| {
            [a[0], 3, a[1], 0, 0]
        });
        assert_eq!(r.unwrap(), 3);
        assert_eq!(&dst, b"ab\0");
        // Size 0 writes nothing.
        let mut dst = [0xffu8; 2];
        let r = call(id, &mut env, &mut [&mut dst], |a| [a[0], 0, WILD, 0, 0]);
        assert_eq!(r.unwrap(), 0);
        assert_eq!(dst, [0xff; 2]);
    }
}

// ---- task, cgroup, attachment, time ----------------------------------------------

#[test]
fn no_task_no_cookie_no_function() {
    let mut env = RunEnv::default();
    for id in [35, 158, 173, 174] {
        assert_eq!(call0(id, &mut env), 0, "helper {id}");
    }
}

#[test]
fn cgroup_id_comes_from_the_host() {
    let mut env = RunEnv::default();
    // By default the calling thread's cgroup v2 id: its directory's inode,
    // wherever cgroup2 is mounted (a hybrid system mounts it below
    // /sys/fs/cgroup/unified).
    let own = bpfkit_vm::env::current_cgroup_id();
    assert_eq!(call0(80, &mut env), own);
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - cgroup2 ");
    assert_eq!(own != 0, mounted, "cgroup2 mounted: {mounted}, id {own}");
    env.host = Arc::new(HostEnv {
        cgroup_id: Some(0x1234),
        ..Default::default()
    });
    assert_eq!(call0(80, &mut env), 0x1234);
}

fn clock(c: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    assert_eq!(unsafe { libc::clock_gettime(c, &mut ts) }, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[test]
fn tai_time_is_clock_tai() {
    let mut env = RunEnv::default();
    let before = clock(libc::CLOCK_TAI);
    let t = call0(208, &mut env);
    let after = clock(libc::CLOCK_TAI);
    assert!(before <= t && t <= after, "{before} <= {t} <= {after}");
}

#[test]
fn jiffies_count_from_the_kernels_start_value() {
    let mut env = RunEnv::default();
    let a = call0(118, &mut env);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let b = call0(118, &mut env);
    // INITIAL_JIFFIES is 2^32 - 300 * HZ; HZ is at most 1000.
    assert!(a >= (1u64 << 32) - 300_000, "{a}");
    assert!(b > a, "jiffies advance: {a} -> {b}");
    let up_s = clock(libc::CLOCK_MONOTONIC) / 1_000_000_000 + 1;
    assert!(b < (1u64 << 32) + up_s * 1000, "{b}");
    // Where the kernel shows its jiffies, the VM's agree to within a second.
    if let Ok(text) = std::fs::read_to_string("/proc/timer_list") {
        let kernel = text.lines().find_map(|l| {
            l.strip_prefix("jiffies: ")
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        if let Some(k) = kernel {
            let vm = call0(118, &mut env);
            assert!(vm.abs_diff(k) <= 1000, "VM {vm}, kernel {k}");
        }
    }
}

// ---- bpf_perf_event_output ---------------------------------------------------------

fn def(name: &str, map_type: u32, key_size: u32, value_size: u32, max_entries: u32) -> MapDef {
    MapDef {
        name: name.into(),
        map_type,
        key_size,
        value_size,
        max_entries,
        flags: 0,
        inner: None,
    }
}

/// A run environment with a 4-index perf event array; its handle and the map.
fn perf_env(cpu: u32) -> (RunEnv, u64, Arc<dyn maps::BpfMap>) {
    let env = RunEnv {
        cpu,
        ..Default::default()
    };
    let id = env
        .maps
        .create(&def("perf", types::PERF_EVENT_ARRAY, 4, 4, 4))
        .unwrap();
    let map = env.maps.get(id).unwrap();
    (env, MapRegistry::handle(id), map)
}

fn perf(map: &Arc<dyn maps::BpfMap>) -> &PerfEventArray {
    map.as_any().downcast_ref::<PerfEventArray>().unwrap()
}

#[test]
fn perf_event_output_goes_to_the_current_cpu_or_the_given_index() {
    let (mut env, h, map) = perf_env(2);
    let mut data = *b"0123456789abcdef";
    let r = call(25, &mut env, &mut [&mut data], |a| {
        [0, h, CURRENT_CPU, a[0], 16]
    });
    assert_eq!(r.unwrap(), 0);
    let r = call(25, &mut env, &mut [&mut data], |a| [0, h, 1, a[0], 5]);
    assert_eq!(r.unwrap(), 0);
    let r = call(25, &mut env, &mut [], |_| [0, h, 3, 0, 0]);
    assert_eq!(r.unwrap(), 0);
    // Samples padded to 8n + 4 bytes, as perf readers see them.
    assert_eq!(
        perf(&map).drain(2),
        vec![[&b"0123456789abcdef"[..], &[0; 4]].concat()]
    );
    assert_eq!(perf(&map).drain(1), vec![[&b"01234"[..], &[0; 7]].concat()]);
    assert_eq!(perf(&map).drain(3), vec![vec![0; 4]]);
    assert!(perf(&map).drain(0).is_empty());
}

#[test]
fn perf_event_output_refuses_bad_flags_and_indexes() {
    let (mut env, h, map) = perf_env(7);
    let mut data = [1u8; 8];
    let mut out = |flags: u64, env: &mut RunEnv| {
        call(25, env, &mut [&mut data], |a| [0, h, flags, a[0], 8]).unwrap()
    };
    // The run's CPU is past max_entries.
    assert_eq!(out(CURRENT_CPU, &mut env), E2BIG);
    assert_eq!(out(4, &mut env), E2BIG);
    assert_eq!(out(0xffff_fffe, &mut env), E2BIG);
    // Bits past the index: BPF_F_CTXLEN_MASK is for packet programs only.
    assert_eq!(out(1 << 32, &mut env), EINVAL);
    assert_eq!(out(1 << 63, &mut env), EINVAL);
    assert_eq!(out(1 << 32 | CURRENT_CPU, &mut env), EINVAL);
    assert!((0..4).all(|i| perf(&map).pending(i) == 0));
}

#[test]
fn perf_event_output_loses_records_when_the_queue_is_full() {
    let (mut env, h, map) = perf_env(0);
    let mut data = vec![9u8; 1020];
    let fit = maps::perf_event_array::RING_BYTES / 1032;
    for _ in 0..fit {
        let r = call(25, &mut env, &mut [&mut data], |a| [0, h, 0, a[0], 1020]);
        assert_eq!(r.unwrap(), 0);
    }
    let r = call(25, &mut env, &mut [&mut data], |a| [0, h, 0, a[0], 1020]);
    assert_eq!(r.unwrap(), ENOSPC);
    assert_eq!(perf(&map).lost(0), 1);
    assert_eq!(perf(&map).drain(0).len(), fit);
}

#[test]
fn perf_event_output_needs_a_perf_event_array_and_readable_data() {
    let (mut env, h, _) = perf_env(0);
    let array = MapRegistry::handle(env.maps.create(&def("a", types::ARRAY, 4, 8, 1)).unwrap());
    let mut data = [0u8; 8];
    helper_failed(call(25, &mut env, &mut [&mut data], |a| {
        [0, array, 0, a[0], 8]
    }));
    helper_failed(call(25, &mut env, &mut [], |_| [0, 0x1234, 0, 0, 0]));
    helper_failed(call(25, &mut env, &mut [&mut data], |a| [0, h, 0, a[0], 9]));
    helper_failed(call(25, &mut env, &mut [], |_| [0, h, 0, WILD, 8]));
}

#[test]
fn packet_programs_may_append_packet_bytes() {
    let (mut env, h, map) = perf_env(0);
    let mut frame = vec![0u8; 40];
    for (i, b) in frame.iter_mut().enumerate() {
        *b = i as u8;
    }
    env.packet = Some(PacketContext::skb(ContextKind::SchedCls, &frame));
    let mut data = *b"meta";
    let r = call(25, &mut env, &mut [&mut data], |a| {
        [0, h, 6 << 32 | 1, a[0], 4]
    });
    assert_eq!(r.unwrap(), 0);
    // "meta", the first 6 bytes of the frame, 2 bytes of padding.
    assert_eq!(
        perf(&map).drain(1),
        vec![[&b"meta"[..], &[0, 1, 2, 3, 4, 5], &[0, 0]].concat()]
    );
    // More packet bytes than the packet has.
    let r = call(25, &mut env, &mut [&mut data], |a| {
        [0, h, 41 << 32 | 1, a[0], 4]
    });
    assert_eq!(r.unwrap(), EFAULT);
    // Bits above the length field are still refused.
    let r = call(25, &mut env, &mut [&mut data], |a| {
        [0, h, 1 << 60 | 1, a[0], 4]
    });
    assert_eq!(r.unwrap(), EINVAL);
}

// ---- socket helpers that need a socket -------------------------------------------

#[test]
fn sock_map_updates_from_sock_ops_are_not_supported() {
    let mut env = RunEnv::default();
    assert_eq!(call0(53, &mut env), EOPNOTSUPP);
    assert_eq!(call0(70, &mut env), EOPNOTSUPP);
}

// ---- the tracepoint object ----------------------------------------------------------

fn kernel_object(name: &str) -> Instance {
    let path = format!(
        "{}/../../bpf/kernel/{name}.bpf.o",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap();
    Instance::load(&bpfkit_object::parse(&bytes).unwrap()).unwrap()
}

fn u64_at(inst: &Instance, map: &str, key: u32) -> u64 {
    let v = inst.map(map).unwrap().lookup(&key.to_ne_bytes()).unwrap();
    u64::from_ne_bytes(v[..8].try_into().unwrap())
}

/// A sys_enter tracepoint record (struct trace_event_raw_sys_enter): the
/// common fields, the syscall number, six arguments.
fn sys_enter(nr: u64) -> Vec<u8> {
    let mut rec = vec![0u8; 64];
    rec[8..16].copy_from_slice(&nr.to_ne_bytes());
    rec
}

/// The object with `target_tgid` (.rodata) set, and the host's task in
/// process `tgid`.
fn tracepoint_object(target: u32, tgid: u32) -> Instance {
    let mut inst = kernel_object("tracepoint_count");
    inst.map(".rodata")
        .unwrap()
        .update(&0u32.to_ne_bytes(), &target.to_ne_bytes(), maps::BPF_ANY)
        .unwrap();
    inst.set_host(HostEnv {
        pid_tgid: Some((tgid as u64) << 32 | (tgid as u64 + 1)),
        ..Default::default()
    });
    inst
}

#[test]
fn the_tracepoint_object_counts_the_targets_openat_calls() {
    let inst = tracepoint_object(4242, 4242);
    for _ in 0..3 {
        let out = inst
            .run_memory("count_openat", &mut sys_enter(257))
            .unwrap();
        assert_eq!(out.r0, 0);
    }
    assert_eq!(u64_at(&inst, "openat_calls", 0), 3);
    // Another process is not counted.
    let other = tracepoint_object(4242, 7);
    other
        .run_memory("count_openat", &mut sys_enter(257))
        .unwrap();
    assert_eq!(u64_at(&other, "openat_calls", 0), 0);
}

#[test]
fn the_tracepoint_object_emits_getppid_events_to_both_buffers() {
    let inst = tracepoint_object(4242, 4242);
    let pid_tgid = 4242u64 << 32 | 4243;
    for _ in 0..3 {
        inst.run_memory("emit_getppid", &mut sys_enter(110))
            .unwrap();
    }
    let event = |seq: u64| [seq.to_ne_bytes(), pid_tgid.to_ne_bytes()].concat();
    let ring = inst.map("events_ring").unwrap();
    let ring = ring.as_any().downcast_ref::<RingBuf>().unwrap();
    assert_eq!(ring.drain(), vec![event(0), event(1), event(2)]);
    // The perf records went to the run's CPU (BPF_F_CURRENT_CPU), one
    // index, as 20-byte samples: the 16-byte event and the kernel's padding.
    let perf_map = inst.map("events_perf").unwrap();
    let pa = perf_map.as_any().downcast_ref::<PerfEventArray>().unwrap();
    let cpus = maps::possible_cpus();
    assert_eq!(perf_map.def().max_entries, cpus);
    let per_cpu: Vec<Vec<Vec<u8>>> = (0..cpus).map(|i| pa.drain(i)).collect();
    let used: Vec<&Vec<Vec<u8>>> = per_cpu.iter().filter(|r| !r.is_empty()).collect();
    let padded = |seq| [event(seq), vec![0; 4]].concat();
    // Runs from one thread may land on different CPUs: every record once.
    let mut all: Vec<Vec<u8>> = used.iter().flat_map(|r| r.iter().cloned()).collect();
    all.sort();
    assert_eq!(all, vec![padded(0), padded(1), padded(2)]);
    assert!((0..cpus).all(|i| pa.lost(i) == 0));
    // next_seq (.bss) counted the events.
    assert_eq!(u64_at(&inst, ".bss", 0), 3);

    // Not the target: nothing.
    let other = tracepoint_object(4242, 1);
    other
        .run_memory("emit_getppid", &mut sys_enter(110))
        .unwrap();
    let perf_map = other.map("events_perf").unwrap();
    let pa = perf_map.as_any().downcast_ref::<PerfEventArray>().unwrap();
    assert!((0..maps::possible_cpus()).all(|i| pa.pending(i) == 0));
}

#[test]
fn the_raw_and_btf_tracepoints_count_openat_by_syscall_number() {
    let inst = tracepoint_object(4242, 4242);
    let args = |nr: u64| {
        [0u64, nr]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect::<Vec<u8>>()
    };
    inst.run_memory("raw_sys_enter", &mut args(257)).unwrap();
    inst.run_memory("raw_sys_enter", &mut args(257)).unwrap();
    inst.run_memory("raw_sys_enter", &mut args(2)).unwrap();
    inst.run_memory("btf_sys_enter", &mut args(257)).unwrap();
    inst.run_memory("btf_sys_enter", &mut args(39)).unwrap();
    assert_eq!(u64_at(&inst, "raw_counts", 0), 2);
    assert_eq!(u64_at(&inst, "raw_counts", 1), 1);
}
