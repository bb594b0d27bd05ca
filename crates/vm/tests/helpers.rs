//! The kernel helpers, each run from a program: results and errnos as the
//! kernel gives them, and the run failures for arguments the verifier would
//! have rejected.

use bpfkit_isa::{asm::assemble, Dialect, RawInsn};
use bpfkit_vm::helpers::ids::{helper_id, helper_name, HELPERS};
use bpfkit_vm::helpers::kernel::kernel_helpers;
use bpfkit_vm::maps::{types, MapDef, MapRegistry, ProgArray, RingBuf};
use bpfkit_vm::{Entry, Interpreter, Outcome, Program, RunEnv, VmError, FUNC_TAG};
use std::ffi::CString;

const EINVAL: u64 = -22i64 as u64;
const ENOENT: u64 = -2i64 as u64;
const EEXIST: u64 = -17i64 as u64;
const E2BIG: u64 = -7i64 as u64;
const EAGAIN: u64 = -11i64 as u64;
const ENOSPC: u64 = -28i64 as u64;

// ---- harness -----------------------------------------------------------------

/// Assembles LLVM-dialect text where `ld_pseudo rN, func, @label` takes the
/// address of the subprogram at `label:` (a label alone on its line).
fn asm(text: &str) -> Vec<RawInsn> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let slots = |l: &str| -> usize {
        if l.is_empty() || l.starts_with("//") || l.ends_with(':') {
            0
        } else if l.ends_with(" ll") || l.starts_with("ld_pseudo") {
            2
        } else {
            1
        }
    };
    let slot_of_line = |n: usize| lines[..n].iter().map(|l| slots(l)).sum::<usize>();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        match line.find('@') {
            Some(pos) => {
                let label = format!("{}:", &line[pos + 1..]);
                let target = lines.iter().position(|l| *l == label).expect("label");
                let rel = slot_of_line(target) as i64 - slot_of_line(n) as i64 - 1;
                out.push(format!("{}{rel}", &line[..pos]));
            }
            None => out.push(line.to_string()),
        }
    }
    let insns = assemble(&out.join("\n"), Dialect::Llvm).unwrap();
    assert_eq!(
        insns.len(),
        slot_of_line(lines.len()),
        "slot count of {text}"
    );
    insns
}

fn prog(text: &str) -> Program {
    Program::new(&asm(text)).unwrap()
}

/// Runs `text` in `env` with the given entry registers.
fn run_prog(text: &str, env: &mut RunEnv, args: [u64; 5]) -> Result<Outcome, VmError> {
    let p = prog(text);
    let mut vm = Interpreter::new(&p, &kernel_helpers()).unwrap();
    vm.run_with(env, |_| Entry {
        args,
        packet: (0, 0),
    })
}

/// Calls helper `id` once with registers computed from the addresses of
/// `bufs` (each a writable region of the run) and returns r0.
fn call(
    id: u32,
    env: &mut RunEnv,
    bufs: &mut [&mut [u8]],
    args: impl FnOnce(&[u64]) -> [u64; 5],
) -> Result<u64, VmError> {
    let p = prog(&format!("call {id}\nexit"));
    let mut vm = Interpreter::new(&p, &kernel_helpers()).unwrap();
    // SAFETY (every region below): the buffers outlive the run.
    vm.run_with(env, |regions| {
        let addrs: Vec<u64> = bufs
            .iter_mut()
            .map(|b| unsafe { regions.add_rw(b.as_mut_ptr(), b.len()) })
            .collect();
        Entry {
            args: args(&addrs),
            packet: (0, 0),
        }
    })
    .map(|o| o.r0)
}

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

fn env_with(defs: &[MapDef]) -> (RunEnv, Vec<u64>) {
    let env = RunEnv::default();
    let handles = defs
        .iter()
        .map(|d| MapRegistry::handle(env.maps.create(d).unwrap()))
        .collect();
    (env, handles)
}

fn helper_failed(r: Result<impl std::fmt::Debug, VmError>, needle: &str) {
    match r {
        Err(VmError::Helper { message, .. }) => {
            assert!(
                message.contains(needle),
                "message {message:?} lacks {needle:?}"
            )
        }
        other => panic!("expected a helper failure ({needle}), got {other:?}"),
    }
}

// ---- ids ---------------------------------------------------------------------

#[test]
fn ids_cover_the_6_18_helper_list() {
    assert_eq!(HELPERS.len(), 211);
    assert_eq!(helper_name(1), Some("map_lookup_elem"));
    assert_eq!(helper_name(12), Some("tail_call"));
    assert_eq!(helper_name(165), Some("snprintf"));
    assert_eq!(helper_name(181), Some("loop"));
    assert_eq!(helper_name(211), Some("cgrp_storage_delete"));
    assert_eq!(helper_name(0), None);
    assert_eq!(helper_name(212), None);
    assert_eq!(helper_id("strncmp"), Some(182));
    assert_eq!(helper_id("bpf_ringbuf_query"), Some(134));
    assert_eq!(helper_id("no_such_helper"), None);
}

#[test]
fn kernel_helpers_register_under_kernel_names() {
    let h = kernel_helpers();
    let ids: Vec<u32> = h.ids().collect();
    assert_eq!(
        ids,
        [
            1, 2, 3, 5, 6, 7, 8, 12, 14, 15, 16, 42, 87, 88, 89, 125, 130, 131, 132, 133, 134, 160,
            165, 177, 181, 182
        ]
    );
    for id in ids {
        assert_eq!(Some(h.get(id).unwrap().name), helper_name(id));
    }
}

// ---- hash and array maps ---------------------------------------------------------

/// update(key 7 -> value r6) with flags r7, then lookup; r0 = the update's
/// result << 32 | the looked-up value (0xffffffff when absent).
fn update_then_lookup(handle: u64) -> String {
    format!(
        "r9 = {handle:#x} ll
        *(u32 *)(r10 - 4) = 7
        *(u64 *)(r10 - 16) = r6
        r1 = r9
        r2 = r10
        r2 += -4
        r3 = r10
        r3 += -16
        r4 = r7
        call 2
        r8 = r0
        r8 <<= 32
        r1 = r9
        r2 = r10
        r2 += -4
        call 1
        if r0 == 0 goto missing
        r0 = *(u32 *)(r0 + 0)
        r0 |= r8
        exit
        missing:
        r0 = 0x7fffffff
        r0 |= r8
        exit"
    )
}

#[test]
fn map_update_and_lookup_through_the_value_pointer() {
    let (mut env, h) = env_with(&[def("h", types::HASH, 4, 8, 4)]);
    let text = format!("r6 = 41\nr7 = 0\n{}", update_then_lookup(h[0]));
    let o = run_prog(&text, &mut env, [0; 5]).unwrap();
    assert_eq!(o.r0, 41);
    let map = env.maps.get(0).unwrap();
    assert_eq!(
        map.lookup(&7u32.to_ne_bytes()).unwrap(),
        41u64.to_ne_bytes()
    );
}

#[test]
fn map_update_flags_follow_the_kernel() {
    let (mut env, h) = env_with(&[def("h", types::HASH, 4, 8, 1)]);
    let t = |v: u64, flags: u64| format!("r6 = {v}\nr7 = {flags}\n{}", update_then_lookup(h[0]));
    // BPF_EXIST on a missing key: ENOENT, nothing stored.
    let o = run_prog(&t(1, 2), &mut env, [0; 5]).unwrap();
    assert_eq!(o.r0, (ENOENT << 32) | 0x7fff_ffff);
    // BPF_NOEXIST inserts, then fails with EEXIST.
    assert_eq!(run_prog(&t(5, 1), &mut env, [0; 5]).unwrap().r0, 5);
    let o = run_prog(&t(6, 1), &mut env, [0; 5]).unwrap();
    assert_eq!(o.r0, (EEXIST << 32) | 5);
    // Unknown flags: EINVAL.
    let o = run_prog(&t(6, 8), &mut env, [0; 5]).unwrap();
    assert_eq!(o.r0, (EINVAL << 32) | 5);
}

#[test]
fn map_full_hash_and_array_out_of_range_are_e2big() {
    let (mut env, h) = env_with(&[
        def("h", types::HASH, 4, 8, 1),
        def("a", types::ARRAY, 4, 8, 4),
    ]);
    let insert = |handle: u64, key: u32| {
        format!(
            "*(u32 *)(r10 - 4) = {key}
            *(u64 *)(r10 - 16) = 1
            r1 = {handle:#x} ll
            r2 = r10
            r2 += -4
            r3 = r10
            r3 += -16
            r4 = 0
            call 2
            exit"
        )
    };
    assert_eq!(run_prog(&insert(h[0], 1), &mut env, [0; 5]).unwrap().r0, 0);
    assert_eq!(
        run_prog(&insert(h[0], 2), &mut env, [0; 5]).unwrap().r0,
        E2BIG
    );
    assert_eq!(run_prog(&insert(h[1], 3), &mut env, [0; 5]).unwrap().r0, 0);
    assert_eq!(
        run_prog(&insert(h[1], 4), &mut env, [0; 5]).unwrap().r0,
        E2BIG
    );
}

#[test]
fn map_delete_and_lookup_of_missing_keys() {
    let (mut env, h) = env_with(&[
        def("h", types::HASH, 4, 8, 4),
        def("a", types::ARRAY, 4, 8, 4),
    ]);
    let map = env.maps.get(0).unwrap();
    map.update(&3u32.to_ne_bytes(), &9u64.to_ne_bytes(), 0)
        .unwrap();
    let del = |handle: u64, key: u32| {
        format!(
            "*(u32 *)(r10 - 4) = {key}
            r1 = {handle:#x} ll
            r2 = r10
            r2 += -4
            call 3
            exit"
        )
    };
    assert_eq!(run_prog(&del(h[0], 3), &mut env, [0; 5]).unwrap().r0, 0);
    assert_eq!(
        run_prog(&del(h[0], 3), &mut env, [0; 5]).unwrap().r0,
        ENOENT
    );
    assert!(map.lookup(&3u32.to_ne_bytes()).is_err());
    // Array elements cannot be deleted: EINVAL, as array_map_delete_elem.
    assert_eq!(
        run_prog(&del(h[1], 0), &mut env, [0; 5]).unwrap().r0,
        EINVAL
    );
    let look = format!(
        "*(u32 *)(r10 - 4) = 3
        r1 = {:#x} ll
        r2 = r10
        r2 += -4
        call 1
        exit",
        h[0]
    );
    assert_eq!(run_prog(&look, &mut env, [0; 5]).unwrap().r0, 0);
}

#[test]
fn percpu_map_helpers_use_the_run_cpu() {
    let cpus = bpfkit_vm::maps::possible_cpus();
    if cpus < 2 {
        return;
    }
    let (mut env, h) = env_with(&[def("pc", types::PERCPU_ARRAY, 4, 8, 1)]);
    env.cpu = 1;
    let text = format!(
        "*(u32 *)(r10 - 4) = 0
        *(u64 *)(r10 - 16) = 77
        r1 = {:#x} ll
        r2 = r10
        r2 += -4
        r3 = r10
        r3 += -16
        r4 = 0
        call 2
        exit",
        h[0]
    );
    assert_eq!(run_prog(&text, &mut env, [0; 5]).unwrap().r0, 0);
    let all = env
        .maps
        .get(0)
        .unwrap()
        .lookup(&0u32.to_ne_bytes())
        .unwrap();
    assert_eq!(&all[0..8], &0u64.to_ne_bytes());
    assert_eq!(&all[8..16], &77u64.to_ne_bytes());
}

#[test]
fn map_helpers_reject_non_maps_and_bad_pointers() {
    let (mut env, h) = env_with(&[def("h", types::HASH, 4, 8, 4)]);
    let r = run_prog(
        "r1 = 1234\nr2 = r10\nr2 += -8\ncall 1\nexit",
        &mut env,
        [0; 5],
    );
    helper_failed(r, "r1 is not a map");
    // A key pointer outside the program's memory.
    let text = format!("r1 = {:#x} ll\nr2 = 16\ncall 1\nexit", h[0]);
    helper_failed(
        run_prog(&text, &mut env, [0; 5]),
        "outside the program's memory",
    );
    // A value pointer outside it.
    let text = format!(
        "r1 = {:#x} ll\nr2 = r10\nr2 += -8\nr3 = 64\nr4 = 0\ncall 2\nexit",
        h[0]
    );
    helper_failed(
        run_prog(&text, &mut env, [0; 5]),
        "outside the program's memory",
    );
    helper_failed(
        run_prog("r1 = 0\ncall 3\nexit", &mut env, [0; 5]),
        "r1 is not a map",
    );
}

// ---- queue and stack -----------------------------------------------------------------

fn push(handle: u64, v: u64, flags: u64) -> String {
    format!(
        "*(u64 *)(r10 - 8) = {v}
        r1 = {handle:#x} ll
        r2 = r10
        r2 += -8
        r3 = {flags}
        call 87
        exit"
    )
}

/// pop (88) or peek (89): r0 = result << 32 | the value's low 32 bits.
fn take(handle: u64, id: u32) -> String {
    format!(
        "*(u64 *)(r10 - 8) = -1
        r1 = {handle:#x} ll
        r2 = r10
        r2 += -8
        call {id}
        r0 <<= 32
        r1 = *(u32 *)(r10 - 8)
        r0 |= r1
        exit"
    )
}

#[test]
fn queue_push_pop_peek_in_fifo_order() {
    let (mut env, h) = env_with(&[def("q", types::QUEUE, 0, 8, 2)]);
    let q = h[0];
    assert_eq!(run_prog(&push(q, 10, 0), &mut env, [0; 5]).unwrap().r0, 0);
    assert_eq!(run_prog(&push(q, 20, 0), &mut env, [0; 5]).unwrap().r0, 0);
    // Full: E2BIG, unless BPF_EXIST, which drops the oldest.
    assert_eq!(
        run_prog(&push(q, 30, 0), &mut env, [0; 5]).unwrap().r0,
        E2BIG
    );
    assert_eq!(run_prog(&push(q, 30, 2), &mut env, [0; 5]).unwrap().r0, 0);
    assert_eq!(
        run_prog(&push(q, 30, 1), &mut env, [0; 5]).unwrap().r0,
        EINVAL
    );
    assert_eq!(run_prog(&take(q, 89), &mut env, [0; 5]).unwrap().r0, 20);
    assert_eq!(run_prog(&take(q, 88), &mut env, [0; 5]).unwrap().r0, 20);
    assert_eq!(run_prog(&take(q, 88), &mut env, [0; 5]).unwrap().r0, 30);
    // Empty: ENOENT, and the value is zeroed as the kernel does.
    assert_eq!(
        run_prog(&take(q, 88), &mut env, [0; 5]).unwrap().r0,
        ENOENT << 32
    );
    assert_eq!(
        run_prog(&take(q, 89), &mut env, [0; 5]).unwrap().r0,
        ENOENT << 32
    );
}

#[test]
fn stack_pops_in_lifo_order() {
    let (mut env, h) = env_with(&[def("s", types::STACK, 0, 8, 4)]);
    for v in [1, 2, 3] {
        assert_eq!(run_prog(&push(h[0], v, 0), &mut env, [0; 5]).unwrap().r0, 0);
    }
    for v in [3, 2, 1] {
        assert_eq!(run_prog(&take(h[0], 88), &mut env, [0; 5]).unwrap().r0, v);
    }
}

#[test]
fn queue_helpers_on_other_maps_and_bad_pointers() {
    let (mut env, h) = env_with(&[
        def("h", types::HASH, 4, 8, 4),
        def("q", types::QUEUE, 0, 8, 2),
    ]);
    // ENOTSUPP (524) from a map without push/pop.
    assert_eq!(
        run_prog(&push(h[0], 1, 0), &mut env, [0; 5]).unwrap().r0,
        -524i64 as u64
    );
    assert_eq!(
        run_prog(&take(h[0], 88), &mut env, [0; 5]).unwrap().r0 >> 32,
        (-524i64 as u64) & 0xffff_ffff
    );
    // A bad output pointer fails before the element is taken.
    run_prog(&push(h[1], 5, 0), &mut env, [0; 5]).unwrap();
    let text = format!("r1 = {:#x} ll\nr2 = 8\ncall 88\nexit", h[1]);
    helper_failed(
        run_prog(&text, &mut env, [0; 5]),
        "outside the program's memory",
    );
    assert_eq!(run_prog(&take(h[1], 88), &mut env, [0; 5]).unwrap().r0, 5);
}

// ---- ring buffers ------------------------------------------------------------------

fn ringbuf_env() -> (RunEnv, u64) {
    let (env, h) = env_with(&[def("rb", types::RINGBUF, 0, 0, 4096)]);
    (env, h[0])
}

fn ring(env: &RunEnv) -> std::sync::Arc<dyn bpfkit_vm::maps::BpfMap> {
    env.maps.get(0).unwrap()
}

fn rb_drain(env: &RunEnv) -> Vec<Vec<u8>> {
    let m = ring(env);
    m.as_any().downcast_ref::<RingBuf>().unwrap().drain()
}

#[test]
fn ringbuf_reserve_submit_and_discard() {
    let (mut env, rb) = ringbuf_env();
    let text = format!(
        "r1 = {rb:#x} ll
        r2 = 8
        r3 = 0
        call 131
        if r0 == 0 goto fail
        r1 = 0x1122334455667788 ll
        *(u64 *)(r0 + 0) = r1
        r1 = r0
        r2 = 0
        call 132
        r1 = {rb:#x} ll
        r2 = 4
        r3 = 0
        call 131
        if r0 == 0 goto fail
        *(u32 *)(r0 + 0) = 99
        r1 = r0
        r2 = 0
        call 133
        r0 = 1
        exit
        fail:
        r0 = 0
        exit"
    );
    assert_eq!(run_prog(&text, &mut env, [0; 5]).unwrap().r0, 1);
    assert_eq!(
        rb_drain(&env),
        vec![0x1122334455667788u64.to_ne_bytes().to_vec()]
    );
}

#[test]
fn ringbuf_reserve_failures_return_null() {
    let (mut env, rb) = ringbuf_env();
    let reserve = |size: u64, flags: u64| {
        format!("r1 = {rb:#x} ll\nr2 = {size}\nr3 = {flags}\ncall 131\nexit")
    };
    assert_eq!(run_prog(&reserve(8, 1), &mut env, [0; 5]).unwrap().r0, 0);
    assert_eq!(run_prog(&reserve(4096, 0), &mut env, [0; 5]).unwrap().r0, 0);
    assert_ne!(run_prog(&reserve(16, 0), &mut env, [0; 5]).unwrap().r0, 0);
}

#[test]
fn ringbuf_output_and_query() {
    let (mut env, rb) = ringbuf_env();
    let output = |size: u64, flags: u64| {
        format!(
            "*(u64 *)(r10 - 8) = 0x41424344
            r1 = {rb:#x} ll
            r2 = r10
            r2 += -8
            r3 = {size}
            r4 = {flags}
            call 130
            exit"
        )
    };
    assert_eq!(run_prog(&output(4, 0), &mut env, [0; 5]).unwrap().r0, 0);
    assert_eq!(run_prog(&output(4, 2), &mut env, [0; 5]).unwrap().r0, 0);
    assert_eq!(
        run_prog(&output(4, 4), &mut env, [0; 5]).unwrap().r0,
        EINVAL
    );
    let query = |flag: u64| format!("r1 = {rb:#x} ll\nr2 = {flag}\ncall 134\nexit");
    // Two 16-byte records (8-byte header + 4 bytes, rounded up).
    assert_eq!(run_prog(&query(0), &mut env, [0; 5]).unwrap().r0, 32);
    assert_eq!(run_prog(&query(1), &mut env, [0; 5]).unwrap().r0, 4096);
    assert_eq!(run_prog(&query(3), &mut env, [0; 5]).unwrap().r0, 32);
    assert_eq!(run_prog(&query(99), &mut env, [0; 5]).unwrap().r0, 0);
    assert_eq!(rb_drain(&env), vec![b"DCBA".to_vec(), b"DCBA".to_vec()]);
    assert_eq!(run_prog(&query(2), &mut env, [0; 5]).unwrap().r0, 32);
    assert_eq!(run_prog(&query(0), &mut env, [0; 5]).unwrap().r0, 0);
}

#[test]
fn ringbuf_output_without_room_is_eagain() {
    let (mut env, rb) = ringbuf_env();
    let mut data = vec![7u8; 2048];
    let r = call(130, &mut env, &mut [&mut data], |a| [rb, a[0], 2040, 0, 0]).unwrap();
    assert_eq!(r, 0);
    let r = call(130, &mut env, &mut [&mut data], |a| [rb, a[0], 2040, 0, 0]).unwrap();
    assert_eq!(r, EAGAIN);
}

#[test]
fn ringbuf_helpers_reject_other_maps_and_foreign_samples() {
    let (mut env, h) = env_with(&[def("h", types::HASH, 4, 8, 4)]);
    let text = format!("r1 = {:#x} ll\nr2 = 8\nr3 = 0\ncall 131\nexit", h[0]);
    helper_failed(run_prog(&text, &mut env, [0; 5]), "not a ring buffer map");
    helper_failed(
        run_prog("r1 = 7\nr2 = 0\ncall 134\nexit", &mut env, [0; 5]),
        "r1 is not a map",
    );
    // A stack pointer is no reservation.
    helper_failed(
        run_prog(
            "r1 = r10\nr1 += -8\nr2 = 0\ncall 132\nexit",
            &mut env,
            [0; 5],
        ),
        "not a ring buffer reservation",
    );
    helper_failed(
        run_prog("r1 = 0\nr2 = 0\ncall 133\nexit", &mut env, [0; 5]),
        "not a ring buffer reservation",
    );
}

// ---- tail calls ----------------------------------------------------------------------

fn tail_call_text(array: u64, index: u64) -> String {
    format!(
        "r6 = r1
        r2 = {array:#x} ll
        r3 = {index} ll
        call 12
        r0 = 42
        exit"
    )
}

fn prog_array_env(slots: &[(u32, u32)]) -> (RunEnv, u64) {
    let (mut env, h) = env_with(&[def("pa", types::PROG_ARRAY, 4, 4, 4)]);
    let m = env.maps.get(0).unwrap();
    let pa = m.as_any().downcast_ref::<ProgArray>().unwrap();
    for &(i, p) in slots {
        pa.set(i, p).unwrap();
    }
    env.programs = 4;
    (env, h[0])
}

#[test]
fn tail_call_sets_the_next_program_and_ends_the_run() {
    let (mut env, pa) = prog_array_env(&[(1, 3)]);
    let o = run_prog(&tail_call_text(pa, 1), &mut env, [0; 5]).unwrap();
    assert_eq!(o.r0, 0);
    assert_eq!(env.tail_call, Some(3));
    assert_eq!(env.tail_calls, 1);
}

#[test]
fn failing_tail_calls_continue_the_program() {
    let (mut env, pa) = prog_array_env(&[(1, 3)]);
    // Index past max_entries (and its upper half ignored: the index is a u32).
    let o = run_prog(&tail_call_text(pa, 4), &mut env, [0; 5]).unwrap();
    assert_eq!((o.r0, env.tail_call, env.tail_calls), (42, None, 0));
    let o = run_prog(&tail_call_text(pa, 0x1_0000_0001), &mut env, [0; 5]).unwrap();
    assert_eq!((o.r0, env.tail_call), (0, Some(3)));
    // An empty slot: the program continues, and the count still goes up
    // (the kernel counts before looking at the slot).
    let (mut env, pa) = prog_array_env(&[(1, 3)]);
    let o = run_prog(&tail_call_text(pa, 2), &mut env, [0; 5]).unwrap();
    assert_eq!((o.r0, env.tail_call, env.tail_calls), (42, None, 1));
}

#[test]
fn tail_calls_stop_at_33() {
    let (mut env, pa) = prog_array_env(&[(0, 1)]);
    for n in 1..=33 {
        env.tail_call = None;
        let o = run_prog(&tail_call_text(pa, 0), &mut env, [0; 5]).unwrap();
        assert_eq!((o.r0, env.tail_call, env.tail_calls), (0, Some(1), n));
    }
    env.tail_call = None;
    let o = run_prog(&tail_call_text(pa, 0), &mut env, [0; 5]).unwrap();
    assert_eq!((o.r0, env.tail_call, env.tail_calls), (42, None, 33));
}

#[test]
fn tail_call_rejects_other_maps_and_unknown_programs() {
    let (mut env, h) = env_with(&[def("h", types::HASH, 4, 8, 4)]);
    helper_failed(
        run_prog(&tail_call_text(h[0], 0), &mut env, [0; 5]),
        "r2 is not a program array",
    );
    helper_failed(
        run_prog(&tail_call_text(5, 0), &mut env, [0; 5]),
        "r2 is not a map",
    );
    let (mut env, pa) = prog_array_env(&[(0, 9)]);
    helper_failed(
        run_prog(&tail_call_text(pa, 0), &mut env, [0; 5]),
        "holds program 9",
    );
}

// ---- bpf_loop -------------------------------------------------------------------------

/// Sums the indices the callback sees into a stack slot of the caller;
/// r0 = loop result << 32 | sum.
fn sum_loop(nr: &str, flags: u64, callback: &str) -> String {
    format!(
        "ld_pseudo r2, func, @cb
        r1 = {nr}
        *(u64 *)(r10 - 8) = 0
        r3 = r10
        r3 += -8
        r4 = {flags}
        call 181
        r0 <<= 32
        r1 = *(u64 *)(r10 - 8)
        r0 |= r1
        exit
        cb:
        {callback}"
    )
}

const SUM_CB: &str = "r3 = *(u64 *)(r2 + 0)
    r3 += r1
    *(u64 *)(r2 + 0) = r3
    r0 = 0
    exit";

#[test]
fn loop_calls_the_callback_nr_times() {
    let mut env = RunEnv::default();
    let o = run_prog(&sum_loop("10", 0, SUM_CB), &mut env, [0; 5]).unwrap();
    assert_eq!(o.r0, (10 << 32) | 45);
    let o = run_prog(&sum_loop("0", 0, SUM_CB), &mut env, [0; 5]).unwrap();
    assert_eq!(o.r0, 0);
    // nr_loops is a u32: 2^32 + 3 runs three times.
    let o = run_prog(&sum_loop("0x100000003 ll", 0, SUM_CB), &mut env, [0; 5]).unwrap();
    assert_eq!(o.r0, (3 << 32) | 3);
}

#[test]
fn loop_stops_when_the_callback_returns_nonzero() {
    let cb = "r3 = *(u64 *)(r2 + 0)
        r3 += r1
        *(u64 *)(r2 + 0) = r3
        r0 = 0
        if r1 != 3 goto out
        r0 = 1
        out:
        exit";
    let o = run_prog(&sum_loop("100", 0, cb), &mut RunEnv::default(), [0; 5]).unwrap();
    assert_eq!(o.r0, (4 << 32) | 6);
}

#[test]
fn loop_argument_errors() {
    let mut env = RunEnv::default();
    let o = run_prog(&sum_loop("10", 1, SUM_CB), &mut env, [0; 5]).unwrap();
    assert_eq!(o.r0, EINVAL << 32);
    let o = run_prog(&sum_loop("0x800001", 0, SUM_CB), &mut env, [0; 5]).unwrap();
    assert_eq!(o.r0, E2BIG << 32);
    // flags are checked before the count, as in the kernel.
    let o = run_prog(&sum_loop("0x800001", 1, SUM_CB), &mut env, [0; 5]).unwrap();
    assert_eq!(o.r0, EINVAL << 32);
}

#[test]
fn loop_callbacks_get_their_own_frame_and_may_call() {
    // The callback writes its own stack and calls a subprogram; the caller's
    // r6..r9 and stack survive.
    let text = "ld_pseudo r2, func, @cb
        r6 = 6
        r9 = 9
        *(u64 *)(r10 - 16) = 1234
        r1 = 5
        *(u64 *)(r10 - 8) = 0
        r3 = r10
        r3 += -8
        r4 = 0
        call 181
        if r6 != 6 goto bad
        if r9 != 9 goto bad
        r1 = *(u64 *)(r10 - 16)
        if r1 != 1234 goto bad
        r0 = *(u64 *)(r10 - 8)
        exit
        bad:
        r0 = -1
        exit
        cb:
        r6 = r2
        *(u64 *)(r10 - 16) = 1
        r1 += 1
        call double
        r3 = *(u64 *)(r6 + 0)
        r3 += r0
        *(u64 *)(r6 + 0) = r3
        r9 = 0
        r0 = 0
        exit
        double:
        r0 = r1
        r0 += r1
        exit";
    let o = run_prog(text, &mut RunEnv::default(), [0; 5]).unwrap();
    // sum of 2 * (i + 1) for i in 0..5
    assert_eq!(o.r0, 30);
}

#[test]
fn nested_loops() {
    // 3 outer iterations, each running a 4-iteration inner loop on the same ctx.
    let text = "ld_pseudo r2, func, @outer
        r1 = 3
        *(u64 *)(r10 - 8) = 0
        r3 = r10
        r3 += -8
        r4 = 0
        call 181
        r0 = *(u64 *)(r10 - 8)
        exit
        outer:
        r3 = r2
        ld_pseudo r2, func, @inner
        r1 = 4
        r4 = 0
        call 181
        r0 = 0
        exit
        inner:
        r3 = *(u64 *)(r2 + 0)
        r3 += 1
        *(u64 *)(r2 + 0) = r3
        r0 = 0
        exit";
    let o = run_prog(text, &mut RunEnv::default(), [0; 5]).unwrap();
    assert_eq!(o.r0, 12);
}

#[test]
fn loop_budget_runs_out_inside_the_callback() {
    let p = prog(&sum_loop("0x800000", 0, SUM_CB));
    let mut vm = Interpreter::new(&p, &kernel_helpers()).unwrap();
    vm.set_budget(10_000);
    let r = vm.run_with(&mut RunEnv::default(), |_| Entry::default());
    assert!(
        matches!(r, Err(VmError::BudgetExhausted { budget: 10_000, .. })),
        "{r:?}"
    );
}

#[test]
fn loop_with_a_bad_callback_address() {
    let mut env = RunEnv::default();
    for addr in [1234u64, FUNC_TAG | 3] {
        let text = format!(
            "ld_pseudo r2, func, @cb
            r1 = 1
            r2 = {addr:#x} ll
            r3 = 0
            r4 = 0
            call 181
            exit
            cb:
            r0 = 0
            exit"
        );
        let r = run_prog(&text, &mut env, [0; 5]);
        assert!(
            matches!(r, Err(VmError::BadCallback { addr: a, .. }) if a == addr),
            "{r:?}"
        );
    }
}

// ---- time, random, CPU, task -----------------------------------------------------------

fn clock(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec.
    assert_eq!(unsafe { libc::clock_gettime(id, &mut ts) }, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[test]
fn ktime_helpers_read_their_clocks() {
    let mut env = RunEnv::default();
    for (id, clk) in [
        (5, libc::CLOCK_MONOTONIC),
        (125, libc::CLOCK_BOOTTIME),
        (160, libc::CLOCK_MONOTONIC_COARSE),
    ] {
        let before = clock(clk);
        let t = run_prog(&format!("call {id}\nexit"), &mut env, [0; 5])
            .unwrap()
            .r0;
        let after = clock(clk);
        assert!(
            before <= t && t <= after,
            "helper {id}: {before} <= {t} <= {after}"
        );
    }
    let o = run_prog("call 5\nr6 = r0\ncall 5\nr0 -= r6\nexit", &mut env, [0; 5]).unwrap();
    assert!((o.r0 as i64) >= 0);
}

#[test]
fn prandom_is_reproducible_from_the_seed() {
    let seq = |seed: u64| {
        let mut env = RunEnv {
            host: std::sync::Arc::new(bpfkit_vm::HostEnv {
                prandom: seed.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        (0..8)
            .map(|_| run_prog("call 7\nexit", &mut env, [0; 5]).unwrap().r0)
            .collect::<Vec<_>>()
    };
    let a = seq(1);
    assert_eq!(a, seq(1));
    assert_ne!(a, seq(2));
    assert!(a.iter().all(|&v| v <= u32::MAX as u64));
    let mut d = a.clone();
    d.dedup();
    assert_eq!(d.len(), a.len());
}

#[test]
fn cpu_numa_pid_uid() {
    let mut env = RunEnv {
        cpu: 3,
        ..Default::default()
    };
    let r = |id: u32, env: &mut RunEnv| {
        run_prog(&format!("call {id}\nexit"), env, [0; 5])
            .unwrap()
            .r0
    };
    // By default, the calling thread's own ids, as in a kernel test run.
    // SAFETY: plain id syscalls.
    let (tgid, tid, uid, gid) = unsafe {
        (
            libc::getpid(),
            libc::gettid(),
            libc::getuid(),
            libc::getgid(),
        )
    };
    assert_eq!(r(14, &mut env), (tgid as u64) << 32 | tid as u64);
    assert_eq!(r(15, &mut env), (gid as u64) << 32 | uid as u64);
    // Or what the host sets.
    env.host = std::sync::Arc::new(bpfkit_vm::HostEnv {
        pid_tgid: Some(0x0000_1234_0000_1235),
        uid_gid: Some(0x0000_03e8_0000_03e9),
        ..Default::default()
    });
    assert_eq!(r(8, &mut env), 3);
    assert_eq!(r(42, &mut env), 0);
    assert_eq!(r(14, &mut env), 0x0000_1234_0000_1235);
    assert_eq!(r(15, &mut env), 0x0000_03e8_0000_03e9);
}

#[test]
fn get_current_comm_is_strscpy_pad() {
    let mut comm = [0u8; 16];
    comm[..6].copy_from_slice(b"bpfkit");
    let mut env = RunEnv {
        host: std::sync::Arc::new(bpfkit_vm::HostEnv {
            comm: Some(comm),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut buf = [0xffu8; 20];
    assert_eq!(
        call(16, &mut env, &mut [&mut buf], |a| [a[0], 20, 0, 0, 0]).unwrap(),
        0
    );
    let mut want = [0u8; 20];
    want[..6].copy_from_slice(b"bpfkit");
    assert_eq!(buf, want);
    // Truncated to size - 1 bytes and NUL-terminated.
    let mut buf = [0xffu8; 8];
    assert_eq!(
        call(16, &mut env, &mut [&mut buf], |a| [a[0], 4, 0, 0, 0]).unwrap(),
        0
    );
    assert_eq!(buf, *b"bpf\0\xff\xff\xff\xff");
    // Size 0 (which the verifier rejects) writes nothing.
    assert_eq!(
        call(16, &mut env, &mut [&mut buf], |a| [a[0], 0, 0, 0, 0]).unwrap(),
        0
    );
    assert_eq!(buf, *b"bpf\0\xff\xff\xff\xff");
    // A buffer shorter than size.
    helper_failed(
        call(16, &mut env, &mut [&mut buf], |a| [a[0], 9, 0, 0, 0]),
        "outside the program's memory",
    );
    // By default, the calling thread's name, as the kernel reports it.
    let mut env = RunEnv::default();
    let mut buf = [0xffu8; 16];
    call(16, &mut env, &mut [&mut buf], |a| [a[0], 16, 0, 0, 0]).unwrap();
    let name = std::fs::read("/proc/thread-self/comm").unwrap();
    let name = &name[..name.len() - 1];
    assert_eq!(&buf[..name.len()], name);
    assert_eq!(buf[name.len()], 0);
}

// ---- strncmp ---------------------------------------------------------------------------

fn strncmp(s1: &[u8], n: u64, s2: &[u8]) -> Result<u64, VmError> {
    let (mut a, mut b) = (s1.to_vec(), s2.to_vec());
    call(182, &mut RunEnv::default(), &mut [&mut a, &mut b], |x| {
        [x[0], n, x[1], 0, 0]
    })
}

#[test]
fn strncmp_returns_minus_one_zero_or_one() {
    assert_eq!(strncmp(b"abc", 3, b"abc\0").unwrap(), 0);
    assert_eq!(strncmp(b"abc", 3, b"abd\0").unwrap(), -1i64 as u64);
    assert_eq!(strncmp(b"abz", 3, b"aba\0").unwrap(), 1);
    // Not the difference of the bytes, unlike glibc.
    assert_eq!(strncmp(b"a", 1, b"z\0").unwrap(), -1i64 as u64);
    // Bytes compare unsigned.
    assert_eq!(strncmp(b"\xff", 1, b"a\0").unwrap(), 1);
    // Only s1_sz bytes count; a NUL in s1 ends the comparison.
    assert_eq!(strncmp(b"abcX", 3, b"abcdef\0").unwrap(), 0);
    assert_eq!(strncmp(b"ab\0x", 4, b"ab\0").unwrap(), 0);
    assert_eq!(strncmp(b"abc", 3, b"ab\0").unwrap(), 1);
    assert_eq!(strncmp(b"ab\0", 3, b"abc\0").unwrap(), -1i64 as u64);
    assert_eq!(strncmp(b"x", 0, b"y\0").unwrap(), 0);
}

#[test]
fn strncmp_bad_arguments_fail_the_run() {
    // s2 runs off the end of its memory without a NUL.
    helper_failed(strncmp(b"abcd", 4, b"ab"), "not NUL-terminated");
    // s1 shorter than s1_sz.
    helper_failed(strncmp(b"ab", 8, b"ab\0"), "outside the program's memory");
}

// ---- snprintf --------------------------------------------------------------------------

/// bpf_snprintf into a `size`-byte buffer: (r0, the buffer up to its NUL).
fn bpf_snprintf_sized(fmt: &[u8], args: &[u64], size: usize) -> (u64, Vec<u8>) {
    let mut out = vec![0xaau8; size.max(1)];
    let mut f = fmt.to_vec();
    f.push(0);
    let mut data: Vec<u8> = args.iter().flat_map(|a| a.to_ne_bytes()).collect();
    data.push(0);
    let n = args.len() as u64 * 8;
    let r = call(
        165,
        &mut RunEnv::default(),
        &mut [&mut out, &mut f, &mut data],
        |a| [a[0], size as u64, a[1], if n == 0 { 0 } else { a[2] }, n],
    )
    .unwrap();
    let end = out.iter().position(|&b| b == 0).unwrap_or(out.len());
    (r, out[..end].to_vec())
}

fn bpf_snprintf(fmt: &str, args: &[u64]) -> (u64, String) {
    let (r, out) = bpf_snprintf_sized(fmt.as_bytes(), args, 512);
    (r, String::from_utf8_lossy(&out).into_owned())
}

trait Arg: Copy {
    fn raw(self) -> u64;
}
impl Arg for i32 {
    fn raw(self) -> u64 {
        self as i64 as u64
    }
}
impl Arg for u32 {
    fn raw(self) -> u64 {
        self as u64
    }
}
impl Arg for i64 {
    fn raw(self) -> u64 {
        self as u64
    }
}
impl Arg for u64 {
    fn raw(self) -> u64 {
        self
    }
}

/// Formats with glibc's snprintf and with bpf_snprintf, which must agree on
/// the text and on the length (bpf_snprintf's counts the NUL).
macro_rules! same_as_glibc {
    ($fmt:literal $(, $arg:expr)*) => {{
        let cfmt = CString::new($fmt).unwrap();
        let mut buf = [0u8; 512];
        // SAFETY: the format's conversions match the argument types.
        let n = unsafe {
            libc::snprintf(buf.as_mut_ptr().cast(), buf.len(), cfmt.as_ptr() $(, $arg)*)
        };
        assert!(n >= 0);
        let want = String::from_utf8(buf[..n as usize].to_vec()).unwrap();
        let got = bpf_snprintf($fmt, &[$(Arg::raw($arg)),*]);
        assert_eq!(got, (n as u64 + 1, want), "format {:?}", $fmt);
    }};
}

#[test]
fn snprintf_integers_match_glibc() {
    same_as_glibc!("plain text");
    same_as_glibc!("%d", 0i32);
    same_as_glibc!("%d", -1i32);
    same_as_glibc!("%d|%i", i32::MIN, i32::MAX);
    same_as_glibc!("%u", u32::MAX);
    same_as_glibc!("%x %X", 0xdead_beefu32, 0xdead_beefu32);
    same_as_glibc!("%ld", i64::MIN);
    same_as_glibc!("%lu %llu", u64::MAX, u64::MAX);
    same_as_glibc!("%lld %lli", -5i64, i64::MAX);
    same_as_glibc!("%lx %llx %lX", u64::MAX, 0x1234u64, 0xabcdefu64);
    same_as_glibc!("%5d|%-5d|%05d", 42i32, 42i32, 42i32);
    same_as_glibc!("%+d %+d % d % d", 7i32, -7i32, 7i32, -7i32);
    same_as_glibc!("%+5d|%-+5d|%0-5d|%+05d", 3i32, 3i32, 3i32, -3i32);
    same_as_glibc!("% 05d|%+ d|% +d", 12i32, 12i32, 12i32);
    same_as_glibc!("%08x|%-8x|%8X", 0xbeefu32, 0xbeefu32, 0xbeefu32);
    same_as_glibc!("%+u|% u|%+x", 5u32, 5u32, 5u32);
    same_as_glibc!("%20lu|%-20lld|%020llx", u64::MAX, i64::MIN, 0xffu64);
    same_as_glibc!("%1d|%2d|%3d", 1000i32, 1000i32, 1000i32);
    same_as_glibc!("100%% %d%%", 5i32);
    same_as_glibc!("%%d %%%%");
    same_as_glibc!(
        "%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d",
        1i32,
        2i32,
        3i32,
        4i32,
        5i32,
        6i32,
        7i32,
        8i32,
        9i32,
        10i32,
        11i32,
        12i32
    );
    same_as_glibc!("tab\tnew\nline %dabc", 3i32);
}

#[test]
fn snprintf_chars_match_glibc() {
    same_as_glibc!("%c%c", 'o' as i32, 'k' as i32);
    same_as_glibc!("[%5c][%-5c]", 'x' as i32, 'y' as i32);
}

#[test]
fn snprintf_takes_the_low_half_of_32_bit_arguments() {
    assert_eq!(
        bpf_snprintf("%d %u %x", &[0x1_ffff_fffe, 0xff_0000_0007, 0x5_0000_000a]),
        (7, "-2 7 a".into())
    );
    assert_eq!(bpf_snprintf("%c", &[0x141]), (2, "A".into()));
}

/// bpf_snprintf where each argument may be a string placed in program
/// memory: `Str` arguments become their address.
enum A<'s> {
    N(u64),
    Str(&'s [u8]),
}

fn snprintf_with(fmt: &str, args: &[A<'_>], size: usize) -> (u64, Vec<u8>) {
    let p = prog("call 165\nexit");
    let mut vm = Interpreter::new(&p, &kernel_helpers()).unwrap();
    let mut out = vec![0xaau8; size.max(1)];
    let mut f = fmt.as_bytes().to_vec();
    f.push(0);
    let mut strs: Vec<Vec<u8>> = args
        .iter()
        .map(|a| match a {
            A::Str(s) => s.to_vec(),
            A::N(_) => Vec::new(),
        })
        .collect();
    let mut data = vec![0u8; args.len() * 8 + 8];
    let r = vm
        // SAFETY (every region below): the buffers outlive the run.
        .run_with(&mut RunEnv::default(), |regions| {
            let o = unsafe { regions.add_rw(out.as_mut_ptr(), out.len()) };
            let fa = unsafe { regions.add_ro(f.as_ptr(), f.len()) };
            for (i, a) in args.iter().enumerate() {
                let v = match a {
                    A::N(n) => *n,
                    A::Str(_) => unsafe { regions.add_ro(strs[i].as_mut_ptr(), strs[i].len()) },
                };
                data[i * 8..i * 8 + 8].copy_from_slice(&v.to_ne_bytes());
            }
            let d = unsafe { regions.add_ro(data.as_ptr(), data.len()) };
            Entry {
                args: [o, size as u64, fa, d, args.len() as u64 * 8],
                packet: (0, 0),
            }
        })
        .unwrap();
    let end = out.iter().position(|&b| b == 0).unwrap_or(out.len());
    (r.r0, out[..end].to_vec())
}

#[test]
fn snprintf_string_conversions() {
    let s = |fmt: &str, args: &[A<'_>]| {
        let (r, out) = snprintf_with(fmt, args, 512);
        (r, String::from_utf8_lossy(&out).into_owned())
    };
    assert_eq!(s("[%s]", &[A::Str(b"hi\0")]), (5, "[hi]".into()));
    assert_eq!(
        s("[%6s][%-6s]", &[A::Str(b"hi\0"), A::Str(b"yo\0")]),
        (17, "[    hi][yo    ]".into())
    );
    // The kernel pads strings with spaces even with '0'.
    assert_eq!(s("[%05s]", &[A::Str(b"hi\0")]), (8, "[   hi]".into()));
    assert_eq!(s("%s.", &[A::Str(b"a\0")]), (3, "a.".into()));
    // %pks / %pus read the same memory; the width is not applied to them.
    assert_eq!(
        s("%pks %10pus", &[A::Str(b"k\0"), A::Str(b"u\0")]),
        (4, "k u".into())
    );
    // An unreadable string prints as "" (the kernel's nofault copy fails).
    assert_eq!(s("[%s]", &[A::N(16)]), (3, "[]".into()));
    // A string without a NUL before its memory ends is unreadable too.
    assert_eq!(s("[%s]", &[A::Str(b"abc")]), (3, "[]".into()));
    // Long strings are cut at what fits the 512-byte argument buffer.
    let long = vec![b'x'; 600];
    let (r, out) = s("%s", &[A::Str(&[&long[..], b"\0"].concat())]);
    assert_eq!((r, out.len()), (512, 511));
    // ... and then nothing else fits.
    let (r, _) = s("%s%d", &[A::Str(&[&long[..], b"\0"].concat()), A::N(1)]);
    assert_eq!(r, ENOSPC);
    let (r, _) = s("%s%c", &[A::Str(&[&long[..], b"\0"].concat()), A::N(65)]);
    assert_eq!(r, ENOSPC);
}

#[test]
fn snprintf_pointers_and_addresses() {
    let s = |fmt: &str, args: &[A<'_>]| {
        let (r, out) = snprintf_with(fmt, args, 512);
        (r, String::from_utf8_lossy(&out).into_owned())
    };
    assert_eq!(s("%px", &[A::N(0x1234)]), (17, "0000000000001234".into()));
    assert_eq!(
        s("%p|%pK", &[A::N(0), A::N(0xffff)]),
        (34, "0000000000000000|000000000000ffff".into())
    );
    assert_eq!(
        s("[%8px][%-8px]", &[A::N(0xab), A::N(0xab)]),
        (21, "[      ab][ab      ]".into())
    );
    // Letters after %pK/%px are swallowed, as bstr_printf does.
    assert_eq!(s("%pxyz!", &[A::N(1)]), (18, "0000000000000001!".into()));
    assert_eq!(
        s("%ps", &[A::N(0xffffffff81000000)]),
        (19, "0xffffffff81000000".into())
    );
    assert_eq!(s("%pB", &[A::N(0x10)]), (5, "0x10".into()));
    let v4 = [127u8, 0, 0, 1];
    assert_eq!(
        s("%pI4 %pi4", &[A::Str(&v4), A::Str(&v4)]),
        (26, "127.0.0.1 127.000.000.001".into())
    );
    let v6: Vec<u8> = (0..16).collect();
    assert_eq!(
        s("%pI6", &[A::Str(&v6)]),
        (40, "0001:0203:0405:0607:0809:0a0b:0c0d:0e0f".into())
    );
    assert_eq!(
        s("%pi6", &[A::Str(&v6)]),
        (33, "000102030405060708090a0b0c0d0e0f".into())
    );
    // An unreadable address prints as zeros.
    assert_eq!(s("%pI4", &[A::N(8)]), (8, "0.0.0.0".into()));
}

#[test]
fn snprintf_truncates_and_counts_the_whole_string() {
    assert_eq!(
        bpf_snprintf_sized(b"hello world", &[], 5),
        (12, b"hell".to_vec())
    );
    assert_eq!(bpf_snprintf_sized(b"%d", &[123456], 1), (7, b"".to_vec()));
    // Size 0 writes nothing at all.
    let (r, out) = snprintf_with("abc", &[], 0);
    assert_eq!((r, out), (4, vec![0xaa]));
    assert_eq!(
        bpf_snprintf_sized(b"%100d", &[1], 8),
        (101, b"       ".to_vec())
    );
}

#[test]
fn snprintf_rejects_what_the_kernel_rejects() {
    for fmt in [
        "%",
        "%f",
        "%hd",
        "%#x",
        "%.3d",
        "%5%",
        "%lc",
        "%llc",
        "%lld%",
        "%--------",
        "%12345678",
        "%a",
        "%pi5",
        "%pI",
        "%pX",
        "%sabc",
        "%p%",
        "%s%",
        "%lllu",
        "%ls",
        "%z",
        "%*d",
        "\u{1}",
        "caf\u{e9}",
        "%\u{80}",
    ] {
        assert_eq!(
            bpf_snprintf_sized(fmt.as_bytes(), &[1, 2], 64).0,
            EINVAL,
            "{fmt:?}"
        );
    }
    // More conversions than arguments.
    assert_eq!(bpf_snprintf("%d %d", &[1]).0, EINVAL);
    assert_eq!(bpf_snprintf("%d", &[]).0, EINVAL);
}

#[test]
fn snprintf_data_array_checks() {
    let mut out = [0u8; 16];
    let mut fmt = *b"%d\0";
    let mut data = [0u8; 13 * 8];
    let mut env = RunEnv::default();
    let mut c = |len: u64, null: bool| {
        call(165, &mut env, &mut [&mut out, &mut fmt, &mut data], |a| {
            [a[0], 16, a[1], if null { 0 } else { a[2] }, len]
        })
        .unwrap()
    };
    assert_eq!(c(8, false), 2);
    assert_eq!(c(4, false), EINVAL);
    assert_eq!(c(13 * 8, false), EINVAL);
    assert_eq!(c(8, true), EINVAL);
    assert_eq!(c(12 * 8, false), 2);
}

#[test]
fn snprintf_bad_pointers_fail_the_run() {
    let mut out = [0u8; 4];
    let mut fmt = *b"abcdef\0";
    let mut env = RunEnv::default();
    // Output shorter than its size.
    helper_failed(
        call(165, &mut env, &mut [&mut out, &mut fmt], |a| {
            [a[0], 8, a[1], 0, 0]
        }),
        "outside the program's memory",
    );
    // A format without a NUL.
    let mut fmt = *b"abc";
    helper_failed(
        call(165, &mut env, &mut [&mut out, &mut fmt], |a| {
            [a[0], 4, a[1], 0, 0]
        }),
        "not NUL-terminated",
    );
    // A data array outside the program's memory.
    let mut fmt = *b"%d\0";
    helper_failed(
        call(165, &mut env, &mut [&mut out, &mut fmt], |a| {
            [a[0], 4, a[1], 8, 8]
        }),
        "outside the program's memory",
    );
}

// ---- trace_printk ---------------------------------------------------------------------

fn trace_lines(env: &RunEnv) -> Vec<String> {
    env.host.trace.lock().unwrap().clone()
}

#[test]
fn trace_printk_records_the_line_and_returns_its_length() {
    let mut env = RunEnv::default();
    let mut fmt = *b"pid %d: %s %x\n\0";
    let mut s = *b"up\0";
    let r = call(6, &mut env, &mut [&mut fmt, &mut s], |a| {
        [a[0], 15, 42, a[1], 255]
    })
    .unwrap();
    assert_eq!(r, 14);
    assert_eq!(trace_lines(&env), ["pid 42: up ff\n"]);
    let mut fmt = *b"no args\0";
    assert_eq!(
        call(6, &mut env, &mut [&mut fmt], |a| [a[0], 8, 0, 0, 0]).unwrap(),
        7
    );
    assert_eq!(trace_lines(&env).len(), 2);
}

#[test]
fn trace_printk_matches_glibc_on_integers() {
    let mut env = RunEnv::default();
    let cases: &[(&str, [i64; 3])] = &[
        ("%d %i %u", [-1, 7, -1]),
        ("%5x|%-5X|%05d", [255, 255, -42]),
        ("%ld %lu %lld", [i64::MIN, -1, i64::MAX]),
        ("%llx %lx %+d", [-1, 16, 3]),
    ];
    for (fmt, args) in cases {
        let cfmt = CString::new(*fmt).unwrap();
        let mut buf = [0u8; 256];
        // The formats read ints as int and longs as long: pass each as such.
        let n = unsafe {
            match *fmt {
                "%d %i %u" | "%5x|%-5X|%05d" => libc::snprintf(
                    buf.as_mut_ptr().cast(),
                    256,
                    cfmt.as_ptr(),
                    args[0] as i32,
                    args[1] as i32,
                    args[2] as i32,
                ),
                "%llx %lx %+d" => libc::snprintf(
                    buf.as_mut_ptr().cast(),
                    256,
                    cfmt.as_ptr(),
                    args[0],
                    args[1],
                    args[2] as i32,
                ),
                _ => libc::snprintf(
                    buf.as_mut_ptr().cast(),
                    256,
                    cfmt.as_ptr(),
                    args[0],
                    args[1],
                    args[2],
                ),
            }
        };
        let want = String::from_utf8(buf[..n as usize].to_vec()).unwrap();
        let mut f = cfmt.as_bytes_with_nul().to_vec();
        let len = f.len() as u64;
        let r = call(6, &mut env, &mut [&mut f], |a| {
            [a[0], len, args[0] as u64, args[1] as u64, args[2] as u64]
        })
        .unwrap();
        assert_eq!(r, n as u64, "{fmt}");
        assert_eq!(trace_lines(&env).last().unwrap(), &want, "{fmt}");
    }
}

#[test]
fn trace_printk_errors() {
    let mut env = RunEnv::default();
    // No NUL within fmt_size.
    let mut fmt = *b"abc\0";
    assert_eq!(
        call(6, &mut env, &mut [&mut fmt], |a| [a[0], 3, 0, 0, 0]).unwrap(),
        EINVAL
    );
    assert_eq!(
        call(6, &mut env, &mut [&mut fmt], |a| [a[0], 0, 0, 0, 0]).unwrap(),
        EINVAL
    );
    // Four conversions, three arguments.
    let mut fmt = *b"%d%d%d%d\0";
    assert_eq!(
        call(6, &mut env, &mut [&mut fmt], |a| [a[0], 9, 0, 0, 0]).unwrap(),
        EINVAL
    );
    let mut fmt = *b"%f\0";
    assert_eq!(
        call(6, &mut env, &mut [&mut fmt], |a| [a[0], 3, 0, 0, 0]).unwrap(),
        EINVAL
    );
    assert!(trace_lines(&env).is_empty());
    // fmt_size past the format's memory.
    helper_failed(
        call(6, &mut env, &mut [&mut fmt], |a| [a[0], 64, 0, 0, 0]),
        "outside the program's memory",
    );
}

#[test]
fn trace_printk_truncates_to_1023_bytes() {
    let mut env = RunEnv::default();
    let mut fmt = *b"%2000d\0";
    assert_eq!(
        call(6, &mut env, &mut [&mut fmt], |a| [a[0], 7, 5, 0, 0]).unwrap(),
        2000
    );
    let line = trace_lines(&env).pop().unwrap();
    assert_eq!(line.len(), 1023);
    assert!(line.bytes().all(|b| b == b' '));
}

#[test]
fn trace_vprintk_takes_a_data_array() {
    let mut env = RunEnv::default();
    let mut fmt = *b"%d %d %d %d %d\0";
    let mut data: Vec<u8> = (1u64..=5).flat_map(|v| v.to_ne_bytes()).collect();
    let r = call(177, &mut env, &mut [&mut fmt, &mut data], |a| {
        [a[0], 15, a[1], 40, 0]
    })
    .unwrap();
    assert_eq!(r, 9);
    assert_eq!(trace_lines(&env), ["1 2 3 4 5"]);
    assert_eq!(
        call(177, &mut env, &mut [&mut fmt, &mut data], |a| [
            a[0], 15, a[1], 12, 0
        ])
        .unwrap(),
        EINVAL
    );
    assert_eq!(
        call(177, &mut env, &mut [&mut fmt, &mut data], |a| [
            a[0], 15, a[1], 32, 0
        ])
        .unwrap(),
        EINVAL
    );
}
