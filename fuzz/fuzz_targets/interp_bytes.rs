//! Arbitrary bytes as a program and its memory: loading either fails with a
//! typed error or gives a program that runs, within a budget, to Ok or a
//! typed error, without writing outside its memory.
//!
//! With `BPFKIT_FUZZ_DETERMINISM=1` it also runs every program twice on the
//! same interpreter and memory and requires the same outcome. That fails
//! today for programs that read stack slots they never wrote: the
//! interpreter keeps its stack between runs, so the second run sees what the
//! first one left there.
//!
//! Input layout: byte 0 picks how many 8-byte slots (modulo what is there)
//! are the program; the rest is the memory.

#![no_main]

use bpfkit_vm::{Interpreter, LoadError, Program, MAX_FRAMES};

#[path = "common.rs"]
mod common;
use common::helpers;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const GUARD: usize = 32;
const BUDGET: u64 = 10_000;
const GUARD_BYTE: u8 = 0xa5;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let slots = (n as usize).min(rest.len() / 8);
    let (code, input) = rest.split_at(slots * 8);
    let Ok(prog) = Program::from_bytes(code) else {
        return;
    };
    let helpers = helpers();
    let mut vm = match Interpreter::new(&prog, &helpers) {
        Ok(vm) => vm,
        Err(LoadError::UnknownHelper { .. }) => return,
        Err(e) => panic!("unexpected load error: {e:?}"),
    };
    vm.set_budget(BUDGET);

    // One buffer for both runs: programs may store addresses (of the input
    // or the stack) into memory, and those must be the same both times.
    let mut buf = vec![GUARD_BYTE; GUARD + input.len() + GUARD];
    static TWICE: OnceLock<bool> = OnceLock::new();
    let runs = if *TWICE.get_or_init(|| std::env::var_os("BPFKIT_FUZZ_DETERMINISM").is_some()) {
        2
    } else {
        1
    };
    let mut results = Vec::new();
    for _ in 0..runs {
        buf.fill(GUARD_BYTE);
        buf[GUARD..GUARD + input.len()].copy_from_slice(input);
        let r = vm.run(&mut buf[GUARD..GUARD + input.len()]);
        assert!(
            buf[..GUARD].iter().all(|&b| b == GUARD_BYTE),
            "wrote before the input: {r:?}"
        );
        assert!(
            buf[GUARD + input.len()..].iter().all(|&b| b == GUARD_BYTE),
            "wrote after the input: {r:?}"
        );
        match &r {
            Err(e) => assert!(e.pc() < prog.slots().len(), "{e:?} names no instruction"),
            // Past the budget only forward jumps and returns are left.
            Ok(o) => assert!(
                o.insns <= BUDGET + (prog.slots().len() * MAX_FRAMES) as u64,
                "{} instructions with a budget of {BUDGET}",
                o.insns
            ),
        }
        results.push((
            r.as_ref().map(|o| o.insns).map_err(|e| e.pc()),
            buf[GUARD..GUARD + input.len()].to_vec(),
        ));
    }
    if runs == 2 {
        assert_eq!(results[0], results[1], "two runs of the same input differ");
    }
});
