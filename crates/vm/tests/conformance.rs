//! Runs the whole bpf_conformance suite, with the environment the suite
//! assumes (r1/r2 = memory and length, helper 5), through every execution
//! mode of this host: the interpreter, and the JIT with and without constant
//! blinding. Each vector must give its expected result in every mode, and
//! every mode the interpreter's exact outcome (r0 and instruction count) or
//! error.

use bpfkit_isa::testfile::{self, Parsed};
use bpfkit_vm::{ExecMode, Executor, Program};

#[test]
fn all_conformance_vectors_pass_in_every_mode() {
    let dir = testfile::suite_dir();
    let files = testfile::list(&dir).unwrap_or_else(|e| panic!("conformance suite: {e}"));
    assert!(
        files.len() >= 313,
        "expected the 313 vectors, found {}",
        files.len()
    );
    let mut modes = vec![ExecMode::Interpret];
    if ExecMode::JIT_AVAILABLE {
        modes.push(ExecMode::Jit { blinding: false });
        modes.push(ExecMode::Jit { blinding: true });
    }
    let helpers = bpfkit_vm::helpers::conformance();
    let mut failures = Vec::new();
    let mut passed = 0;
    for path in &files {
        let t = match testfile::load(path).unwrap() {
            Parsed::Test(t) => t,
            Parsed::Skipped(why) => panic!("{}: skipped: {why}", path.display()),
        };
        let prog = Program::new(&t.program).map_err(|e| e.to_string());
        let run = |mode| {
            prog.as_ref().map_err(|e| e.clone()).and_then(|p| {
                let mut vm = Executor::new(p, &helpers, mode).map_err(|e| e.to_string())?;
                let mut mem = t.mem.clone();
                vm.run(&mut mem).map_err(|e| e.to_string())
            })
        };
        let reference = run(ExecMode::Interpret);
        for &mode in &modes {
            let outcome = run(mode);
            if outcome != reference {
                failures.push(format!(
                    "{} ({}): {outcome:?}, the interpreter {reference:?}",
                    t.name,
                    mode.name()
                ));
                continue;
            }
            match (&outcome, t.result, &t.error) {
                (Ok(o), Some(want), _) if o.r0 == want => passed += 1,
                (Err(_), None, Some(_)) => passed += 1,
                _ => failures.push(format!(
                    "{} ({}): got {:?}, want result {:x?} error {:?}",
                    t.name,
                    mode.name(),
                    outcome,
                    t.result,
                    t.error
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(passed, files.len() * modes.len());
    println!(
        "conformance: {passed} of {} passed ({} vectors in {} modes)",
        files.len() * modes.len(),
        files.len(),
        modes.len()
    );
}
