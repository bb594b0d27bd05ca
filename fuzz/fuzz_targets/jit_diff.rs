//! The JIT against the interpreter on arbitrary bytes: the same program and
//! memory through both (and through the JIT with constant blinding) must
//! give the same r0, instruction count, error (variant, instruction, size;
//! addresses aside, as the engines' stacks live apart) and memory after the
//! run. x86-64 Linux only (where the JIT exists).
//!
//! Input layout: byte 0 picks how many 8-byte slots (modulo what is there)
//! are the program; byte 1 whether to blind; the rest is the memory.

#![no_main]

use bpfkit_vm::{Interpreter, Jit, JitOptions, Outcome, Program, VmError};

#[path = "common.rs"]
mod common;
use common::helpers;
use libfuzzer_sys::fuzz_target;

const BUDGET: u64 = 10_000;

/// What must agree: the outcome (r0 only when it cannot hold a stack
/// address), or the error without its address.
fn key(r: &Result<Outcome, VmError>, with_r0: bool) -> String {
    match r {
        Ok(o) if with_r0 => format!("{o:?}"),
        Ok(o) => format!("ok, {} instructions", o.insns),
        Err(VmError::OutOfBounds { pc, size, write, .. }) => {
            format!("oob pc={pc} size={size} write={write}")
        }
        Err(VmError::MisalignedAtomic { pc, size, .. }) => format!("misaligned pc={pc} size={size}"),
        Err(VmError::Helper { pc, id, .. }) => format!("helper pc={pc} id={id}"),
        Err(e) => e.to_string(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let Some((&blind, rest)) = rest.split_first() else {
        return;
    };
    let slots = (n as usize).min(rest.len() / 8);
    let (code, input) = rest.split_at(slots * 8);
    let Ok(prog) = Program::from_bytes(code) else {
        return;
    };
    let helpers = helpers();
    let Ok(mut interp) = Interpreter::new(&prog, &helpers) else {
        return;
    };
    let options = JitOptions {
        blinding: blind & 1 == 1,
    };
    let mut jit = Jit::with_options(&prog, &helpers, options).expect("the JIT compiles what the interpreter takes");
    interp.set_budget(BUDGET);
    jit.set_budget(BUDGET);
    // The engines' stacks live apart: a program that reads r10 may put a
    // stack address in r0 or memory.
    let reads_r10 = prog.slots().iter().any(|s| s.src == 10 && s.code != 0x18);
    // One buffer, at one address, for both: programs may store its address.
    let mut buf = input.to_vec();
    let a = interp.run(&mut buf);
    let after_interp = buf.clone();
    buf.copy_from_slice(input);
    let b = jit.run(&mut buf);
    assert_eq!(
        key(&a, !reads_r10),
        key(&b, !reads_r10),
        "interpreter {a:?}, jit {b:?}"
    );
    if !reads_r10 {
        assert_eq!(after_interp, buf, "memory differs after the run");
    }
});
