//! Runs the whole bpf_conformance suite through the JIT, with the
//! environment the suite assumes (r1/r2 = memory and length, helper 5), and
//! checks the JIT, with and without constant blinding, agrees with the
//! interpreter on every vector.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use bpfkit_isa::testfile::{self, Parsed};
use bpfkit_vm::{Interpreter, Jit, JitOptions, Program};

#[test]
fn all_conformance_vectors_pass() {
    let dir = testfile::suite_dir();
    let files = testfile::list(&dir).unwrap_or_else(|e| panic!("conformance suite: {e}"));
    assert!(
        files.len() >= 313,
        "expected the 313 vectors, found {}",
        files.len()
    );
    let helpers = bpfkit_vm::helpers::conformance();
    let mut failures = Vec::new();
    let mut passed = 0;
    for path in &files {
        let t = match testfile::load(path).unwrap() {
            Parsed::Test(t) => t,
            Parsed::Skipped(why) => panic!("{}: skipped: {why}", path.display()),
        };
        let prog = Program::new(&t.program);
        let jit = |blinding| {
            prog.as_ref().map_err(|e| e.to_string()).and_then(|p| {
                let mut jit = Jit::with_options(p, &helpers, JitOptions { blinding })
                    .map_err(|e| e.to_string())?;
                let mut mem = t.mem.clone();
                jit.run(&mut mem).map_err(|e| e.to_string())
            })
        };
        let outcome = jit(false);
        let blinded = jit(true);
        if blinded != outcome {
            failures.push(format!(
                "{}: blinded jit {:?} != jit {:?}",
                t.name, blinded, outcome
            ));
            continue;
        }
        // The interpreter on the same input: the same outcome or error.
        let reference = prog.as_ref().map_err(|e| e.to_string()).and_then(|p| {
            let mut vm = Interpreter::new(p, &helpers).map_err(|e| e.to_string())?;
            let mut mem = t.mem.clone();
            vm.run(&mut mem).map_err(|e| e.to_string())
        });
        if outcome != reference {
            failures.push(format!(
                "{}: jit {:?} != interpreter {:?}",
                t.name, outcome, reference
            ));
            continue;
        }
        match (&outcome, t.result, &t.error) {
            (Ok(o), Some(want), _) if o.r0 == want => passed += 1,
            (Err(_), None, Some(_)) => passed += 1,
            _ => failures.push(format!(
                "{}: got {:?}, want result {:x?} error {:?}",
                t.name, outcome, t.result, t.error
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(passed, files.len());
    println!("jit conformance: {passed} of {} passed", files.len());
}
