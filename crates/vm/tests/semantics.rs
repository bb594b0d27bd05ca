//! Exact instruction counts and control flow, checked against counts worked
//! out by hand: the interpreter counts at control transfers only, so every
//! kind of transfer is covered here.

use bpfkit_isa::{asm::assemble, Dialect};
use bpfkit_vm::{HelperError, Helpers, Interpreter, Outcome, Program, VmError};

fn run_with(src: &str, helpers: &Helpers, mem: &mut [u8]) -> Result<Outcome, VmError> {
    let slots = assemble(src, Dialect::Conformance).unwrap();
    let prog = Program::new(&slots).unwrap();
    let mut vm = Interpreter::new(&prog, helpers).unwrap();
    vm.run(mem)
}

fn run(src: &str) -> Outcome {
    run_with(src, &Helpers::new(), &mut []).unwrap()
}

#[test]
fn straight_line_counts_each_instruction_once_and_lddw_once() {
    let o = run("mov %r0, 1\nlddw %r1, 0x100000000\nadd %r0, %r1\nexit");
    assert_eq!(
        o,
        Outcome {
            r0: 0x1_0000_0001,
            insns: 4
        }
    );
}

#[test]
fn loops_count_every_iteration() {
    // 2 setup + 10 iterations of 3 + exit = 33; an LDDW inside the loop counts once.
    let o = run("mov %r0, 0\nmov %r1, 10\nl:\nadd %r0, 2\nsub %r1, 1\njne %r1, 0, l\nexit");
    assert_eq!(o, Outcome { r0: 20, insns: 33 });
    let o = run(
        "mov %r0, 0\nmov %r1, 3\nl:\nlddw %r2, 0x5\nadd %r0, %r2\nsub %r1, 1\njne %r1, 0, l\nexit",
    );
    assert_eq!(
        o,
        Outcome {
            r0: 15,
            insns: 2 + 3 * 4 + 1
        }
    );
}

#[test]
fn forward_jumps_skip_uncounted_instructions() {
    // ja over two instructions: mov, ja, mov, exit = 4.
    let o = run("mov %r0, 1\nja +2\nmov %r0, 2\nmov %r0, 3\nmov %r0, 4\nexit");
    assert_eq!(o, Outcome { r0: 4, insns: 4 });
    // Conditional not taken, then taken past an lddw.
    let o = run("mov %r0, 1\njeq %r0, 0, +3\njeq %r0, 1, +2\nlddw %r0, 7\nexit");
    assert_eq!(o, Outcome { r0: 1, insns: 4 });
}

#[test]
fn local_calls_count_callee_and_return() {
    // main: mov, call, add, exit (4); f: mov, exit (2) => 6, called once.
    let src = "mov %r0, 1\ncall local f\nadd %r0, 1\nexit\nf:\nmov %r0, 41\nexit";
    assert_eq!(run(src), Outcome { r0: 42, insns: 6 });
    // Nested and repeated: g called twice from f, f once from main.
    let src = "call local f\nexit\nf:\ncall local g\ncall local g\nexit\ng:\nadd %r0, 1\nexit";
    // main 2 + f 3 + g 2*2 = 9
    assert_eq!(run(src), Outcome { r0: 2, insns: 9 });
}

#[test]
fn helper_calls_count_and_helper_exit_stops_with_the_count_so_far() {
    let mut h = Helpers::new();
    h.register(1, "double", |_, a| Ok(a[0] * 2));
    h.register(2, "stop", |_, a| Err(HelperError::Exit(a[0])));
    let o = run_with("mov %r1, 21\ncall 1\nexit", &h, &mut []).unwrap();
    assert_eq!(o, Outcome { r0: 42, insns: 3 });
    let o = run_with("mov %r1, 7\ncall 2\nmov %r0, 0\nexit", &h, &mut []).unwrap();
    assert_eq!(o, Outcome { r0: 7, insns: 2 });
}

#[test]
fn legacy_packet_load_out_of_bounds_ends_with_zero() {
    let mut mem = [0x12, 0x34, 0x56, 0x78];
    let o = run_with("ldabsh 2\nexit", &Helpers::new(), &mut mem).unwrap();
    assert_eq!(
        o,
        Outcome {
            r0: 0x5678,
            insns: 2
        }
    );
    let o = run_with("mov %r0, 9\nldabsw 2\nexit", &Helpers::new(), &mut mem).unwrap();
    assert_eq!(o, Outcome { r0: 0, insns: 2 });
    let o = run_with("mov %r3, 1\nldindb %r3, 2\nexit", &Helpers::new(), &mut mem).unwrap();
    assert_eq!(o.r0, 0x78);
}

#[test]
fn budget_stops_a_loop_within_one_program_length() {
    let slots = assemble(
        "mov %r0, 0\nl:\nadd %r0, 1\nja l\nexit",
        Dialect::Conformance,
    )
    .unwrap();
    let prog = Program::new(&slots).unwrap();
    let mut vm = Interpreter::new(&prog, &Helpers::new()).unwrap();
    vm.set_budget(1000);
    match vm.run(&mut []) {
        Err(VmError::BudgetExhausted { pc, budget }) => {
            assert_eq!(pc, 2);
            assert_eq!(budget, 1000);
        }
        other => panic!("expected budget exhaustion, got {other:?}"),
    }
    // A budget that fits lets the same kind of loop finish.
    let slots = assemble(
        "mov %r0, 0\nl:\nadd %r0, 1\njlt %r0, 100, l\nexit",
        Dialect::Conformance,
    )
    .unwrap();
    let prog = Program::new(&slots).unwrap();
    let mut vm = Interpreter::new(&prog, &Helpers::new()).unwrap();
    vm.set_budget(202);
    assert_eq!(
        vm.run(&mut []).unwrap(),
        Outcome {
            r0: 100,
            insns: 202
        }
    );
}

#[test]
fn callee_reads_caller_frame_but_dead_frames_are_not_addressable() {
    // The caller passes a pointer into its own frame; the callee reads it.
    let src = "stdw [%r10-8], 77\nmov %r1, %r10\nadd %r1, -8\ncall local f\nexit\n\
               f:\nldxdw %r0, [%r1]\nexit";
    assert_eq!(run(src).r0, 77);
    // The callee returns a pointer into its own frame; once it has returned
    // that frame is gone, and reading through the pointer is out of bounds.
    let src = "call local f\nldxdw %r0, [%r0]\nexit\n\
               f:\nstdw [%r10-8], 5\nmov %r0, %r10\nadd %r0, -8\nexit";
    let slots = assemble(src, Dialect::Conformance).unwrap();
    let prog = Program::new(&slots).unwrap();
    let mut vm = Interpreter::new(&prog, &Helpers::new()).unwrap();
    assert!(matches!(
        vm.run(&mut []),
        Err(VmError::OutOfBounds {
            pc: 1,
            size: 8,
            write: false,
            ..
        })
    ));
}

#[test]
fn every_run_starts_with_a_zeroed_stack_including_callee_frames() {
    // Reads frame slots before writing them: the first run sees zeros and
    // leaves 99s behind; the second must see zeros again.
    let src = "ldxdw %r6, [%r10-8]\nstdw [%r10-8], 99\ncall local f\nadd %r0, %r6\nexit\n\
               f:\nldxdw %r0, [%r10-16]\nstdw [%r10-16], 99\nexit";
    let slots = assemble(src, Dialect::Conformance).unwrap();
    let prog = Program::new(&slots).unwrap();
    let mut vm = Interpreter::new(&prog, &Helpers::new()).unwrap();
    assert_eq!(vm.run(&mut []).unwrap().r0, 0);
    assert_eq!(vm.run(&mut []).unwrap().r0, 0);
}
