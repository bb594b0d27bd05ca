//! Reproducers of defects found in review, kept so they stay fixed.

use bpfkit_isa::{asm::assemble, Dialect};
use bpfkit_vm::helpers::kernel::kernel_helpers;
use bpfkit_vm::maps::{types, MapDef, MapRegistry, RingBuf};
use bpfkit_vm::{Entry, Interpreter, Program, RunEnv, VmError};

fn array_def() -> MapDef {
    MapDef {
        name: "a".into(),
        map_type: types::ARRAY,
        key_size: 4,
        value_size: 4096,
        max_entries: 1,
        flags: 0,
        inner: None,
    }
}

/// An interpreter that ran with one registry must not keep publishing that
/// registry's map memory when it later runs with another registry (one the
/// allocator may have placed at the same address): the old map's value is
/// no longer memory the program owns.
#[test]
fn map_regions_of_a_previous_registry_are_not_reused() {
    let text = "r0 = *(u64 *)(r1 + 0)\nr2 = 0x4141414141414141 ll\n*(u64 *)(r1 + 0) = r2\nexit";
    let p = Program::new(&assemble(text, Dialect::Llvm).unwrap()).unwrap();
    let h = kernel_helpers();
    let mut vm = Interpreter::new(&p, &h).unwrap();
    let reg = MapRegistry::new();
    reg.create(&array_def()).unwrap();
    let a = reg
        .get(0)
        .unwrap()
        .prog_lookup(&0u32.to_ne_bytes(), 0)
        .unwrap();
    let mut env = RunEnv {
        maps: reg,
        ..RunEnv::default()
    };
    let entry = Entry {
        args: [a, 0, 0, 0, 0],
        packet: (0, 0),
    };
    // With its registry, the value is the program's to read and write.
    assert_eq!(vm.run_with(&mut env, |_| entry).unwrap().r0, 0);
    drop(env);
    // A fresh registry with the same shape (same generation): the old
    // value's address is outside every region now.
    let reg = MapRegistry::new();
    reg.create(&array_def()).unwrap();
    let mut env = RunEnv {
        maps: reg,
        ..RunEnv::default()
    };
    let e = vm.run_with(&mut env, |_| entry).unwrap_err();
    assert!(
        matches!(e, VmError::OutOfBounds { addr, .. } if addr == a) || {
            // The new map may have landed where the old one was; then the
            // access is to the new map, which the program does own.
            let b = env.maps.get(0).unwrap().prog_lookup(&0u32.to_ne_bytes(), 0);
            b == Some(a)
        },
        "{e:?}"
    );
}

/// A program that scribbles over the 8 bytes before its reservation (where
/// the kernel keeps the record header) cannot corrupt the ring: the host
/// reads its record intact and later reservations still work.
#[test]
fn ring_buffer_bookkeeping_is_out_of_the_programs_reach() {
    let reg = MapRegistry::new();
    let id = reg
        .create(&MapDef {
            name: "rb".into(),
            map_type: types::RINGBUF,
            key_size: 0,
            value_size: 0,
            max_entries: 4096,
            flags: 0,
            inner: None,
        })
        .unwrap();
    let h = MapRegistry::handle(id);
    let text = format!(
        "r1 = {h:#x} ll\nr2 = 8\nr3 = 0\ncall 131\nif r0 == 0 goto +7\n\
         r1 = 0x100000\n*(u32 *)(r0 - 8) = w1\n*(u32 *)(r0 - 4) = w1\n\
         r1 = 0x1122334455667788 ll\n*(u64 *)(r0 + 0) = r1\n\
         r1 = r0\nr2 = 0\ncall 132\nr0 = 0\nexit"
    );
    let p = Program::new(&assemble(&text, Dialect::Llvm).unwrap()).unwrap();
    let helpers = kernel_helpers();
    let mut vm = Interpreter::new(&p, &helpers).unwrap();
    let mut env = RunEnv {
        maps: reg.clone(),
        ..RunEnv::default()
    };
    let m = reg.get(id).unwrap();
    let rb = m.as_any().downcast_ref::<RingBuf>().unwrap();
    for _ in 0..1000 {
        vm.run_with(&mut env, |_| Entry::default()).unwrap();
        let records = rb.drain();
        assert_eq!(records, vec![0x1122334455667788u64.to_ne_bytes().to_vec()]);
    }
}

/// A map programs may only read (BPF_F_RDONLY_PROG, as `.rodata` is) can
/// neither be written through its value pointer nor updated by helpers.
#[test]
fn read_only_maps_stay_read_only_to_programs() {
    let reg = MapRegistry::new();
    let id = reg
        .create(&MapDef {
            flags: bpfkit_vm::maps::create_flags::RDONLY_PROG,
            value_size: 8,
            ..array_def()
        })
        .unwrap();
    let h = MapRegistry::handle(id);
    let helpers = kernel_helpers();
    let run = |text: &str| {
        let p = Program::new(&assemble(text, Dialect::Llvm).unwrap()).unwrap();
        let mut vm = Interpreter::new(&p, &helpers).unwrap();
        let mut env = RunEnv {
            maps: reg.clone(),
            ..RunEnv::default()
        };
        vm.run_with(&mut env, |_| Entry::default())
    };
    let lookup = format!(
        "*(u32 *)(r10 - 4) = 0\nr2 = r10\nr2 += -4\nr1 = {h:#x} ll\ncall 1\nif r0 == 0 goto +2\n"
    );
    // Reading through the pointer works.
    assert_eq!(
        run(&format!("{lookup}r0 = *(u64 *)(r0 + 0)\nexit\nexit"))
            .unwrap()
            .r0,
        0
    );
    // Writing through it is outside the program's writable memory.
    let e = run(&format!("{lookup}*(u64 *)(r0 + 0) = 1\nr0 = 0\nexit\nexit")).unwrap_err();
    assert!(
        matches!(e, VmError::OutOfBounds { write: true, .. }),
        "{e:?}"
    );
    // bpf_map_update_elem and bpf_map_delete_elem are refused by name.
    let update = format!(
        "*(u32 *)(r10 - 4) = 0\n*(u64 *)(r10 - 16) = 7\nr2 = r10\nr2 += -4\nr3 = r10\nr3 += -16\nr4 = 0\nr1 = {h:#x} ll\ncall 2\nexit"
    );
    let e = run(&update).unwrap_err();
    assert!(
        e.to_string().contains("only read (BPF_F_RDONLY_PROG)"),
        "{e}"
    );
    let delete = format!("*(u32 *)(r10 - 4) = 0\nr2 = r10\nr2 += -4\nr1 = {h:#x} ll\ncall 3\nexit");
    assert!(run(&delete).is_err());
}
