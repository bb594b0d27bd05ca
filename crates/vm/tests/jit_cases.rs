#![cfg(all(target_arch = "x86_64", target_os = "linux"))]
use bpfkit_isa::{asm::assemble, Dialect};
use bpfkit_vm::{Helpers, Interpreter, Jit, Program};

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
