//! The JIT against the interpreter on arbitrary bytes: the same program and
//! memory through both (and through the JIT with constant blinding) must
//! give the same r0, instruction count, error (variant, instruction, size;
//! addresses aside, as the engines' stacks live apart) and memory after the
//! run. x86-64 Linux only (where the JIT exists).
//!
//! Input layout: byte 0 picks how many 8-byte slots (modulo what is there)
//! are the program; byte 1 whether to blind; the rest is the memory.

#![no_main]

use bpfkit_vm::{
    HelperError, Helpers, Interpreter, Jit, JitOptions, Outcome, Program, VmError,
};
use libfuzzer_sys::fuzz_target;

const BUDGET: u64 = 10_000;

fn helpers() -> Helpers {
    let mut h = bpfkit_vm::helpers::conformance();
    h.register(1, "add", |_, a| Ok(a[0].wrapping_add(a[1])));
    h.register(2, "read8", |ctx, a| {
        let b = ctx.read(a[0], 8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap()))
    });
    h.register(3, "write8", |ctx, a| {
        ctx.write(a[0], &a[1].to_le_bytes())?;
        Ok(0)
    });
    h.register(4, "stop", |_, a| Err(HelperError::Exit(a[0])));
    h
}

/// What must agree: the outcome, or the error without its address.
fn key(r: &Result<Outcome, VmError>) -> String {
    match r {
        Ok(o) => format!("{o:?}"),
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
    // One buffer for both: programs may store its address into it.
    let mut buf = input.to_vec();
    let a = interp.run(&mut buf);
    let after_interp = std::mem::replace(&mut buf, input.to_vec());
    let b = jit.run(&mut buf);
    assert_eq!(key(&a), key(&b), "interpreter {a:?}, jit {b:?}");
    // Stack addresses stored into memory differ between the engines; only
    // compare memory when neither run could have stored one (r10 unread).
    let reads_r10 = prog.slots().iter().any(|s| s.src == 10 && s.code != 0x18);
    if !reads_r10 {
        assert_eq!(after_interp, buf, "memory differs after the run");
    }
});
