#![cfg(all(target_arch = "x86_64", target_os = "linux"))]
use bpfkit_isa::{asm::assemble, Dialect};
use bpfkit_vm::{Helpers, Interpreter, Jit, JitOptions, Program, VmError};

#[test]
fn callee_frames_are_cleared_between_runs() {
    let src = "call local f\nexit\nf:\nldxdw %r0, [%r10-8]\nstdw [%r10-8], 5\nexit";
    let slots = assemble(src, Dialect::Conformance).unwrap();
    let prog = Program::new(&slots).unwrap();
    let mut jit = Jit::new(&prog, &Helpers::new()).unwrap();
    let mut vm = Interpreter::new(&prog, &Helpers::new()).unwrap();
    for _ in 0..2 {
        assert_eq!(jit.run(&mut []).unwrap(), vm.run(&mut []).unwrap());
    }
}

/// With blinding, no immediate of the program appears in the machine code;
/// without it, they do (so the search below can find them); results agree.
#[test]
fn constant_blinding_keeps_immediates_out_of_the_code() {
    let src =
        "mov %r0, 0x3c3b3a39\nadd %r0, 0x1d1c1b1a\nlddw %r2, 0x5f5e5d5c5b5a5958\nxor %r0, %r2\n\
               stdw [%r10-8], 0x2e2d2c2b\nldxdw %r3, [%r10-8]\nadd %r0, %r3\n\
               jeq %r0, 0x4f4e4d4c, +1\nexit\nmov %r0, 1\nexit";
    let slots = assemble(src, Dialect::Conformance).unwrap();
    let prog = Program::new(&slots).unwrap();
    let helpers = Helpers::new();
    let imms: [&[u8]; 5] = [
        &0x3c3b3a39u32.to_le_bytes(),
        &0x1d1c1b1au32.to_le_bytes(),
        &0x5f5e5d5c5b5a5958u64.to_le_bytes(),
        &0x2e2d2c2bu32.to_le_bytes(),
        &0x4f4e4d4cu32.to_le_bytes(),
    ];
    let contains = |code: &[u8], needle: &[u8]| code.windows(needle.len()).any(|w| w == needle);
    let plain = Jit::new(&prog, &helpers).unwrap();
    for imm in imms {
        assert!(
            contains(plain.machine_code(), imm),
            "{imm:02x?} not in plain code"
        );
    }
    let want = Interpreter::new(&prog, &helpers)
        .unwrap()
        .run(&mut [])
        .unwrap();
    // Keys are random: several compilations, none leaking an immediate.
    for _ in 0..8 {
        let mut blinded =
            Jit::with_options(&prog, &helpers, JitOptions { blinding: true }).unwrap();
        for imm in imms {
            assert!(
                !contains(blinded.machine_code(), imm),
                "{imm:02x?} in blinded code"
            );
        }
        assert_eq!(blinded.run(&mut []).unwrap(), want);
    }
}

/// A program calling a helper the registry lacks is refused when compiled,
/// naming the instruction, as the interpreter refuses it.
#[test]
fn an_unknown_helper_is_refused_at_compile_time() {
    let slots = assemble("mov %r0, 0\ncall 77\nexit", Dialect::Conformance).unwrap();
    let prog = Program::new(&slots).unwrap();
    let e = Jit::new(&prog, &Helpers::new()).err().expect("refused");
    assert_eq!(e.to_string(), "instruction 1: helper 77 is not registered");
}

/// Stack accesses through computed pointers: a callee writes its caller's
/// frame through a pointer (allowed), then leaves a pointer into its own
/// frame, which is dead once it returns: the caller's access through it is
/// out of bounds in both engines, even right after the same address was
/// accessed inside the callee (the JIT caches the region an access hit).
#[test]
fn stack_pointers_follow_the_live_frames() {
    let ok = "mov %r1, %r10\nadd %r1, -8\ncall local f\nldxdw %r0, [%r10-8]\nexit\n\
              f:\nstdw [%r1+0], 42\nmov %r2, %r10\nadd %r2, -16\nstdw [%r2+0], 7\nldxdw %r0, [%r2+0]\nexit";
    let dead = "call local f\nldxdw %r0, [%r0+0]\nexit\n\
                f:\nmov %r0, %r10\nadd %r0, -16\nstdw [%r0+0], 7\nldxdw %r3, [%r0+0]\nexit";
    let helpers = Helpers::new();
    for (src, want) in [(ok, Some(42)), (dead, None)] {
        let slots = assemble(src, Dialect::Conformance).unwrap();
        let prog = Program::new(&slots).unwrap();
        for blinding in [false, true] {
            let mut jit = Jit::with_options(&prog, &helpers, JitOptions { blinding }).unwrap();
            let mut vm = Interpreter::new(&prog, &helpers).unwrap();
            for _ in 0..3 {
                let j = jit.run(&mut []);
                let i = vm.run(&mut []);
                match want {
                    Some(r0) => {
                        assert_eq!(j.as_ref().unwrap().r0, r0);
                        assert_eq!(j.unwrap(), i.unwrap());
                    }
                    None => {
                        // Both engines fail at the load; the addresses lie
                        // in their own stacks.
                        for e in [j.unwrap_err(), i.unwrap_err()] {
                            assert!(
                                matches!(
                                    e,
                                    VmError::OutOfBounds {
                                        pc: 1,
                                        size: 8,
                                        write: false,
                                        ..
                                    }
                                ),
                                "{e}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Loops with one and with several back edges to the same head, and a
/// budget that runs out on each: the same count and the same failing
/// instruction as the interpreter.
#[test]
fn back_edges_count_and_stop_like_the_interpreter() {
    let one = "mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 1000, loop\nexit";
    let two =
        "mov %r0, 0\nloop:\nadd %r0, 1\njset %r0, 1, loop\nadd %r0, 2\njlt %r0, 1000, loop\nexit";
    let uncond = "mov %r0, 0\nloop:\nadd %r0, 3\njgt %r0, 900, out\nja loop\nout:\nexit";
    let helpers = Helpers::new();
    for src in [one, two, uncond] {
        let slots = assemble(src, Dialect::Conformance).unwrap();
        let prog = Program::new(&slots).unwrap();
        for budget in [0, 1, 2, 3, 7, 100, 2001, 2002, 2003, 1_000_000] {
            let mut jit = Jit::new(&prog, &helpers).unwrap();
            let mut vm = Interpreter::new(&prog, &helpers).unwrap();
            jit.set_budget(budget);
            vm.set_budget(budget);
            assert_eq!(jit.run(&mut []), vm.run(&mut []), "{src} budget {budget}");
        }
    }
}

/// A table in the stack indexed by a masked byte: with the mask keeping the
/// index inside the frame, both accesses run unchecked; with a wider mask
/// they stay checked, and an index past the frame fails as in the
/// interpreter.
#[test]
fn stack_accesses_proved_in_frame_run_unchecked() {
    let table = |mask: u32| {
        format!(
            "ldxb %r2, [%r1+0]\nand %r2, {mask}\nlsh %r2, 2\nmov %r3, %r10\nadd %r3, -256\n\
             add %r3, %r2\nldxw %r0, [%r3+0]\nadd %r0, 1\nstxw [%r3+0], %r0\nexit"
        )
    };
    let helpers = Helpers::new();
    for (mask, proved) in [(63, 2), (127, 0)] {
        let slots = assemble(&table(mask), Dialect::Conformance).unwrap();
        let prog = Program::new(&slots).unwrap();
        let mut jit = Jit::new(&prog, &helpers).unwrap();
        assert_eq!(jit.proved_in_frame(), proved, "mask {mask}");
        let mut vm = Interpreter::new(&prog, &helpers).unwrap();
        for byte in [0u8, 1, 63, 64, 100, 127, 255] {
            let (mut a, mut b) = ([byte], [byte]);
            let j = jit.run(&mut a);
            let i = vm.run(&mut b);
            match (&j, &i) {
                (Ok(j), Ok(i)) => assert_eq!(j, i, "mask {mask} byte {byte}"),
                (Err(je), Err(ie)) => {
                    // The same failure; the stacks (and addresses) differ.
                    assert!(
                        matches!(
                            je,
                            VmError::OutOfBounds {
                                pc: 6,
                                size: 4,
                                write: false,
                                ..
                            }
                        ),
                        "{je}"
                    );
                    assert!(
                        matches!(
                            ie,
                            VmError::OutOfBounds {
                                pc: 6,
                                size: 4,
                                write: false,
                                ..
                            }
                        ),
                        "{ie}"
                    );
                }
                _ => panic!("mask {mask} byte {byte}: jit {j:?}, interpreter {i:?}"),
            }
            // Within the frame only when the index is below 64.
            assert_eq!(
                j.is_ok(),
                (byte & mask as u8) < 64,
                "mask {mask} byte {byte}"
            );
        }
    }
    // A pointer into the frame handed to a function is not followed there:
    // checked (and right), not proved.
    let src = "mov %r1, %r10\nadd %r1, -8\ncall local f\nexit\nf:\nstdw [%r1+0], 5\nldxdw %r0, [%r1+0]\nexit";
    let slots = assemble(src, Dialect::Conformance).unwrap();
    let prog = Program::new(&slots).unwrap();
    let mut jit = Jit::new(&prog, &helpers).unwrap();
    assert_eq!(jit.proved_in_frame(), 0);
    assert_eq!(jit.run(&mut []).unwrap().r0, 5);
}

/// Loop counters bounded by their loop's condition: `t[i]` for i below the
/// table's length is proved in the frame (top- and bottom-tested loops),
/// one past it is not, and fails where the interpreter fails.
#[test]
fn loop_bounded_stack_indexes_are_proved() {
    // r2 = i; t = r10 - 256 (64 u32 slots).
    let top_tested = |limit: u32| {
        format!(
            "mov %r2, 0\nmov %r0, 0\nloop:\njge %r2, {limit}, done\nmov %r3, %r2\nlsh %r3, 2\n\
             mov %r4, %r10\nadd %r4, -256\nadd %r4, %r3\nstxw [%r4+0], %r2\nldxw %r5, [%r4+0]\n\
             add %r0, %r5\nadd %r2, 1\nja loop\ndone:\nexit"
        )
    };
    let bottom_tested = |limit: u32| {
        format!(
            "mov %r2, 0\nmov %r0, 0\nloop:\nmov %r3, %r2\nlsh %r3, 2\nmov %r4, %r10\nadd %r4, -256\n\
             add %r4, %r3\nstxw [%r4+0], %r2\nldxw %r5, [%r4+0]\nadd %r0, %r5\nadd %r2, 1\n\
             jlt %r2, {limit}, loop\nexit"
        )
    };
    let helpers = Helpers::new();
    for (src, proved, ok) in [
        (top_tested(64), 2, true),
        (bottom_tested(64), 2, true),
        (top_tested(65), 0, false),
        (bottom_tested(65), 0, false),
    ] {
        let slots = assemble(&src, Dialect::Conformance).unwrap();
        let prog = Program::new(&slots).unwrap();
        let mut jit = Jit::new(&prog, &helpers).unwrap();
        assert_eq!(jit.proved_in_frame(), proved, "{src}");
        let mut vm = Interpreter::new(&prog, &helpers).unwrap();
        let (j, i) = (jit.run(&mut []), vm.run(&mut []));
        if ok {
            assert_eq!(j.as_ref().unwrap().r0, (0..64).sum::<u64>());
            assert_eq!(j.unwrap(), i.unwrap());
        } else {
            // i = 64 writes t[64] = r10 + 0: past the frame's top.
            let (j, i) = (j.unwrap_err(), i.unwrap_err());
            assert!(
                matches!(
                    j,
                    VmError::OutOfBounds {
                        size: 4,
                        write: true,
                        ..
                    }
                ),
                "{j}"
            );
            assert_eq!(j.pc(), i.pc());
        }
    }
}

/// A loop reading the input 8 bytes at a time through a copy of its
/// counter (`r7 = r4; r4 += 8; if r5 > r7`): the JIT proves every load
/// within 64 bytes of r1, runs them unchecked on inputs that long, and on a
/// shorter input runs checked code that fails like the interpreter.
#[test]
fn input_loads_in_a_counted_loop_are_proved() {
    let src = "mov %r0, 0\nmov %r4, 0\nmov %r5, 56\n\
               l:\nmov %r7, %r4\nmov %r2, %r1\nadd %r2, %r7\nldxdw %r3, [%r2+0]\nadd %r0, %r3\n\
               add %r4, 8\njgt %r5, %r7, l\nexit";
    let slots = assemble(src, Dialect::Conformance).unwrap();
    let prog = Program::new(&slots).unwrap();
    let h = Helpers::new();
    let mut jit = Jit::new(&prog, &h).unwrap();
    let mut vm = Interpreter::new(&prog, &h).unwrap();
    assert_eq!(jit.proved_in_input(), 1);
    assert_eq!(jit.input_needed(), 64);
    let mut mem: Vec<u8> = (0..64u8).collect();
    let want = vm.run(&mut mem).unwrap();
    assert_eq!(jit.run(&mut mem).unwrap(), want);
    assert!(
        !jit.has_checked_code(),
        "a long enough input runs the fast code"
    );
    // 63 bytes: the last load is out of bounds in both engines.
    let mut short: Vec<u8> = (0..63u8).collect();
    let want = vm.run(&mut short).unwrap_err();
    assert!(
        matches!(
            want,
            VmError::OutOfBounds {
                pc: 6,
                size: 8,
                write: false,
                ..
            }
        ),
        "{want:?}"
    );
    assert_eq!(jit.run(&mut short).unwrap_err(), want);
    assert!(jit.has_checked_code());
    // Long inputs still take the fast code after that.
    assert_eq!(jit.run(&mut mem).unwrap(), vm.run(&mut mem).unwrap());
}

/// `i != limit` loops, stores into the input, and what ends a proof.
#[test]
fn input_proofs_follow_the_program() {
    let h = Helpers::new();
    let jit_of = |src: &str| {
        let slots = assemble(src, Dialect::Conformance).unwrap();
        Program::new(&slots).unwrap()
    };
    // A byte loop to `!= 32` storing each byte's double: 32 bytes, writable.
    let p = jit_of(
        "mov %r2, 0\nl:\nmov %r3, %r1\nadd %r3, %r2\nldxb %r4, [%r3+0]\nlsh %r4, 1\n\
         stxb [%r3+0], %r4\nadd %r2, 1\njne %r2, 32, l\nmov %r0, 0\nexit",
    );
    let mut jit = Jit::new(&p, &h).unwrap();
    let mut vm = Interpreter::new(&p, &h).unwrap();
    assert_eq!(jit.proved_in_input(), 2);
    assert_eq!(jit.input_needed(), 32);
    let (mut a, mut b) = (vec![3u8; 32], vec![3u8; 32]);
    assert_eq!(jit.run(&mut a).unwrap(), vm.run(&mut b).unwrap());
    assert_eq!(a, vec![6u8; 32]);
    assert_eq!(a, b);
    // A counter that may pass the limit (stride 3 never equals 32): no proof.
    let p = jit_of(
        "mov %r2, 0\nl:\nmov %r3, %r1\nadd %r3, %r2\nldxb %r4, [%r3+0]\nadd %r2, 3\n\
         jne %r2, 32, l\nmov %r0, 0\nexit",
    );
    assert_eq!(Jit::new(&p, &h).unwrap().proved_in_input(), 0);
    // After a helper call (which may change regions), r1's copy proves
    // nothing; before it, the access is proved.
    let mut h2 = Helpers::new();
    h2.register(1, "nop", |_, _| Ok(0));
    let p = jit_of("mov %r6, %r1\nldxb %r0, [%r6+3]\ncall 1\nldxb %r0, [%r6+7]\nexit");
    let jit = Jit::new(&p, &h2).unwrap();
    assert_eq!(jit.proved_in_input(), 1);
    assert_eq!(jit.input_needed(), 4);
}

/// Stores proved into the input need it writable: a read-only input runs
/// the checked code, which refuses the store like the interpreter.
/// A run's setup giving `data` read-only as the input (r1, r2 and the
/// packet).
fn read_only(data: &[u8]) -> impl FnOnce(&mut bpfkit_vm::memory::Regions) -> bpfkit_vm::Entry + '_ {
    move |regions| {
        // SAFETY: `data` outlives the run and nothing writes it.
        let addr = unsafe { regions.add_ro(data.as_ptr(), data.len()) };
        let len = data.len() as u64;
        bpfkit_vm::Entry {
            args: [addr, len, 0, 0, 0],
            packet: (addr, len),
        }
    }
}

#[test]
fn a_read_only_input_runs_checked_code() {
    use bpfkit_vm::RunEnv;
    let slots = assemble("stb [%r1+2], 7\nmov %r0, 1\nexit", Dialect::Conformance).unwrap();
    let prog = Program::new(&slots).unwrap();
    let h = Helpers::new();
    let mut jit = Jit::new(&prog, &h).unwrap();
    let mut vm = Interpreter::new(&prog, &h).unwrap();
    let data = [0u8; 8];
    let mut env = RunEnv::default();
    let want = vm.run_with(&mut env, read_only(&data)).unwrap_err();
    assert!(
        matches!(
            want,
            VmError::OutOfBounds {
                pc: 0,
                write: true,
                ..
            }
        ),
        "{want:?}"
    );
    assert_eq!(jit.run_with(&mut env, read_only(&data)).unwrap_err(), want);
    assert!(jit.has_checked_code());
    assert_eq!(data, [0u8; 8]);
}

/// A 64-bit division whose operands the analysis bounds to 32 bits runs as
/// a 32-bit `div` (`div r11d`, 41 f7 f3); one it cannot bound, as the
/// 64-bit one (`div r11`, 49 f7 f3). Both give the interpreter's results.
#[test]
fn divisions_of_32_bit_values_use_the_32_bit_divide() {
    let has = |code: &[u8], insn: &[u8]| code.windows(insn.len()).any(|w| w == insn);
    let (div32, div64): (&[u8], &[u8]) = (&[0x41, 0xf7, 0xf3], &[0x49, 0xf7, 0xf3]);
    let cases = [
        ("and %r2, 0x7fffffff\nand %r3, 0xff\nor %r3, 1", true),
        ("mov32 %r2, %r2\nrsh %r3, 32\nor %r3, 1", true),
        ("rsh %r2, 31\nand %r3, 0xff\nor %r3, 1", false),
        ("and %r3, 0xff\nor %r3, 1", false),
    ];
    for (setup, narrow) in cases {
        for op in ["div", "mod"] {
            let src = format!(
                "ldxdw %r2, [%r1]\nldxdw %r3, [%r1+8]\n{setup}\n{op} %r2, %r3\nmov %r0, %r2\nexit"
            );
            let slots = assemble(&src, Dialect::Conformance).unwrap();
            let prog = Program::new(&slots).unwrap();
            let mut jit = Jit::new(&prog, &Helpers::new()).unwrap();
            let code = jit.machine_code().to_vec();
            assert_eq!(has(&code, div32), narrow, "{src}");
            assert_eq!(has(&code, div64), !narrow, "{src}");
            let mut vm = Interpreter::new(&prog, &Helpers::new()).unwrap();
            for (a, b) in [(u64::MAX, u64::MAX), (0xffff_ffff, 7), (1 << 40, 3), (5, 0)] {
                let mut mem = [a.to_le_bytes(), b.to_le_bytes()].concat();
                let mut mem2 = mem.clone();
                assert_eq!(
                    jit.run(&mut mem).unwrap(),
                    vm.run(&mut mem2).unwrap(),
                    "{src}"
                );
            }
        }
    }
}

/// A counted loop (counter stepped once per pass, bounded by its exit
/// test) has an uncounted copy; whichever runs, the result, the count and
/// where the budget runs out are the interpreter's, on every budget from
/// none to plenty, leaving by the latch or by a break in the middle.
#[test]
fn uncounted_loops_count_like_the_interpreter() {
    // r2 steps by 4 up to 400; the loop breaks early when a byte sum hits
    // a value the input decides.
    let src = "mov %r0, 0\nmov %r2, 0\nldxb %r4, [%r1]\n\
               loop:\nadd %r0, %r2\nadd %r2, 4\njeq %r0, %r4, out\nxor %r0, 5\n\
               jlt %r2, 400, loop\nout:\nexit";
    let slots = assemble(src, Dialect::Conformance).unwrap();
    let prog = Program::new(&slots).unwrap();
    let helpers = Helpers::new();
    let mut jit = Jit::new(&prog, &helpers).unwrap();
    assert_eq!(jit.uncounted_loops(), 1);
    let mut vm = Interpreter::new(&prog, &helpers).unwrap();
    for byte in [0u8, 9, 200] {
        for budget in (0..40).chain([400, 499, 500, 501, 502, 503, 600, 1 << 20]) {
            jit.set_budget(budget);
            vm.set_budget(budget);
            let (a, b) = (jit.run(&mut [byte]), vm.run(&mut [byte]));
            assert_eq!(a, b, "byte {byte}, budget {budget}");
        }
    }
}

/// Runs on the memory of the run before keep its setup; every change of
/// memory, length or region table between runs is still seen: results,
/// memory and errors stay the interpreter's, and frames left by a call are
/// cleared each time.
#[test]
fn repeated_runs_on_one_memory_agree_with_the_interpreter() {
    use bpfkit_vm::RunEnv;
    let src = "ldxdw %r6, [%r1+0]\nmov %r7, %r2\nstdw [%r1+8], 7\ncall local f\n\
               add %r0, %r6\nadd %r0, %r7\nexit\n\
               f:\nldxdw %r0, [%r10-8]\nstdw [%r10-8], 99\nexit";
    let slots = assemble(src, Dialect::Conformance).unwrap();
    let prog = Program::new(&slots).unwrap();
    let h = Helpers::new();
    let mut jit = Jit::new(&prog, &h).unwrap();
    let mut vm = Interpreter::new(&prog, &h).unwrap();
    let mut a = [0u8; 16];
    a[0] = 40;
    let mut b = [0u8; 16];
    b[0] = 90;
    let (mut a2, mut b2) = (a, b);
    macro_rules! check {
        ($jit_mem:expr, $vm_mem:expr) => {{
            let (jit_mem, vm_mem): (&mut [u8], &mut [u8]) = ($jit_mem, $vm_mem);
            // Error addresses as offsets from the memory's start.
            let rel = |r: Result<_, VmError>, base: *const u8| {
                r.map_err(|e| match e {
                    VmError::OutOfBounds {
                        pc,
                        addr,
                        size,
                        write,
                    } => VmError::OutOfBounds {
                        pc,
                        addr: addr.wrapping_sub(base as u64),
                        size,
                        write,
                    },
                    e => e,
                })
            };
            let want = rel(vm.run(vm_mem), vm_mem.as_ptr());
            assert_eq!(rel(jit.run(jit_mem), jit_mem.as_ptr()), want);
            assert_eq!(jit_mem, vm_mem);
            want
        }};
    }
    for _ in 0..3 {
        assert_eq!(check!(&mut a, &mut a2).unwrap().r0, 40 + 16);
    }
    // Same length, other memory; then a shorter slice of the first.
    assert_eq!(check!(&mut b, &mut b2).unwrap().r0, 90 + 16);
    let short = check!(&mut a[..8], &mut a2[..8]).unwrap_err();
    assert!(
        matches!(short, VmError::OutOfBounds { write: true, .. }),
        "{short:?}"
    );
    assert_eq!(check!(&mut a, &mut a2).unwrap().r0, 40 + 16);
    // A run through another entry point, with `a` read-only: the store
    // fails; the next plain run writes again.
    let mut env = RunEnv::default();
    let data = a;
    let ro = jit.run_with(&mut env, read_only(&data)).unwrap_err();
    assert!(
        matches!(ro, VmError::OutOfBounds { write: true, .. }),
        "{ro:?}"
    );
    a[8] = 0;
    a2[8] = 0;
    assert_eq!(check!(&mut a, &mut a2).unwrap().r0, 40 + 16);
    assert_eq!(a[8], 7);
}
