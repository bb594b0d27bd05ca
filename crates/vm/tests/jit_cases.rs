#![cfg(all(target_arch = "x86_64", target_os = "linux"))]
use bpfkit_isa::{asm::assemble, Dialect};
use bpfkit_vm::{Helpers, Interpreter, Jit, JitOptions, Program};

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
