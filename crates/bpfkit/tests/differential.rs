//! The kernel as oracle: the conformance suite and random programs run in the
//! Linux kernel (XDP, BPF_PROG_TEST_RUN) and in the VM, and must agree.
//!
//! Needs root (or CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN). Without it the tests
//! say why and pass, except under CI=true, where a skip is a failure.
//!
//! Environment:
//! - BPFKIT_CONFORMANCE_DIR: the bpf_conformance `tests` directory (default:
//!   shared/conformance/bpf_conformance/tests beside the repository);
//! - BPFKIT_DIFF_CASES: how many random programs (default 3000);
//! - BPFKIT_DIFF_SEED: the seed of the random programs (default: the time).

use bpfkit::differential::{
    check, check_with, kernel_incompatibility, run_vm, Divergence, Outcome, Verdict,
};
use bpfkit_isa::gen::{self, GenConfig, Rng};
use bpfkit_isa::testfile::{self, Parsed};
use bpfkit_isa::{asm::assemble, Dialect};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Whether the kernel side can run; prints why not once.
fn kernel_available() -> bool {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    let probe = PROBE.get_or_init(|| {
        bpfkit_kernel::probe().map_err(|e| {
            let msg = format!("kernel differential tests skipped: {e}");
            // Straight to stderr: the test harness captures eprintln!, and a
            // skip must be seen.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{msg}");
            msg
        })
    });
    match probe {
        Ok(()) => true,
        Err(msg) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{msg}\n(CI=true: a skipped kernel test is a failure)")
        }
        Err(_) => false,
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

/// Verifier messages with their numbers taken out, to count rejections by
/// kind.
fn reason_kind(line: &str) -> String {
    let mut out = String::new();
    let mut in_num = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !in_num {
                out.push('N');
            }
            in_num = true;
        } else {
            in_num = false;
            out.push(c);
        }
    }
    out
}

/// The first line of the verifier's complaint, or the error itself when the
/// kernel gave no log.
fn rejection_line(e: &bpfkit_kernel::LoadError) -> String {
    match e.verifier_log() {
        Some(log) => log.error_line().to_string(),
        None => e.to_string(),
    }
}

fn print_reasons(what: &str, reasons: &BTreeMap<String, (usize, String)>) {
    let mut by_count: Vec<_> = reasons.iter().collect();
    by_count.sort_by_key(|r| std::cmp::Reverse(r.1 .0));
    for (reason, (n, example)) in by_count {
        println!("  {n:5} {reason}    (e.g. {example})");
    }
    if reasons.is_empty() {
        println!("  (no {what})");
    }
}

#[test]
fn conformance_suite_agrees_with_the_kernel() {
    if !kernel_available() {
        return;
    }
    let dir = testfile::suite_dir();
    let files = testfile::list(&dir).unwrap_or_else(|e| {
        panic!("conformance tests not found ({e}); set BPFKIT_CONFORMANCE_DIR")
    });
    assert!(
        files.len() > 100,
        "only {} files in {}",
        files.len(),
        dir.display()
    );
    let (mut agreed, mut skipped) = (0, BTreeMap::<String, Vec<String>>::new());
    let mut rejected: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut n_rejected = 0;
    let mut divergences: Vec<(String, Box<Divergence>)> = Vec::new();
    let mut suite_disagrees = Vec::new();
    for path in &files {
        let v = match testfile::load(path).unwrap() {
            Parsed::Test(v) => v,
            Parsed::Skipped(why) => {
                skipped
                    .entry(why)
                    .or_default()
                    .push(path.display().to_string());
                continue;
            }
        };
        let why_not = if v.error.is_some() {
            Some("expects an error")
        } else {
            kernel_incompatibility(&v.program)
        };
        if let Some(why) = why_not {
            skipped
                .entry(why.to_string())
                .or_default()
                .push(v.name.clone());
            continue;
        }
        match check(&v.program, &v.mem).unwrap_or_else(|e| panic!("{}: {e}", v.name)) {
            Verdict::Agree(out) => {
                agreed += 1;
                if v.result.is_some_and(|r| r != out.r0) {
                    suite_disagrees.push(format!(
                        "{}: kernel and VM give {:#x}, the suite expects {:#x}",
                        v.name,
                        out.r0,
                        v.result.unwrap()
                    ));
                }
            }
            Verdict::Rejected(e) => {
                n_rejected += 1;
                let line = rejection_line(&e);
                let line = line.as_str();
                let entry = rejected
                    .entry(reason_kind(line))
                    .or_insert((0, format!("{}: {line}", v.name)));
                entry.0 += 1;
            }
            Verdict::Diverged(d) => divergences.push((v.name.clone(), d)),
        }
    }
    println!(
        "conformance vs kernel: {} files, {agreed} agreed, {} diverged, {n_rejected} rejected by the verifier, {} skipped",
        files.len(),
        divergences.len(),
        skipped.values().map(Vec::len).sum::<usize>()
    );
    for (why, names) in &skipped {
        println!("  skipped ({why}): {}", names.join(" "));
    }
    println!("verifier rejections by first line of the error:");
    print_reasons("rejections", &rejected);
    for s in &suite_disagrees {
        println!("  note: {s}");
    }
    for (name, d) in &divergences {
        println!("--- {name}\n{d}");
    }
    assert!(
        divergences.is_empty(),
        "{} conformance programs diverge between the kernel and the VM: {:?}",
        divergences.len(),
        divergences.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    assert!(
        agreed >= 280,
        "only {agreed} conformance programs were compared (accepted by the verifier)"
    );
}

/// The seed of case `i` of a run.
fn case_seed(seed: u64, i: u64) -> u64 {
    Rng::new(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64()
}

#[test]
fn random_programs_agree_with_the_kernel() {
    if !kernel_available() {
        return;
    }
    let cases = env_u64("BPFKIT_DIFF_CASES").unwrap_or(3000);
    let seed = env_u64("BPFKIT_DIFF_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    println!("random differential: {cases} cases, BPFKIT_DIFF_SEED={seed:#x}");
    let start = std::time::Instant::now();
    let (mut agreed, mut n_rejected) = (0u64, 0u64);
    let mut rejected: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut divergences: Vec<(u64, Box<Divergence>)> = Vec::new();
    for i in 0..cases {
        let s = case_seed(seed, i);
        let cfg = GenConfig::random(s);
        let prog = gen::program(s, &cfg);
        let mut mem = vec![0u8; cfg.mem_len];
        Rng::new(!s).fill(&mut mem);
        match check(&prog, &mem).unwrap_or_else(|e| {
            panic!("case {i} (BPFKIT_DIFF_SEED={seed:#x}, case seed {s:#x}): {e}")
        }) {
            Verdict::Agree(_) => agreed += 1,
            Verdict::Rejected(e) => {
                n_rejected += 1;
                let line = rejection_line(&e);
                let line = line.as_str();
                let entry = rejected
                    .entry(reason_kind(line))
                    .or_insert((0, format!("case seed {s:#x}: {line}")));
                entry.0 += 1;
            }
            Verdict::Diverged(d) => divergences.push((s, d)),
        }
    }
    let accepted = agreed + divergences.len() as u64;
    println!(
        "random differential: {agreed} agreed, {} diverged, {n_rejected} rejected by the verifier \
         ({:.1}% accepted) in {:.1?}",
        divergences.len(),
        100.0 * accepted as f64 / cases.max(1) as f64,
        start.elapsed()
    );
    print_reasons("rejections", &rejected);
    for (s, d) in divergences.iter().take(5) {
        println!("--- case seed {s:#x} (gen::program({s:#x}, &GenConfig::random({s:#x})))\n{d}");
    }
    assert!(
        divergences.is_empty(),
        "{} of {cases} random programs diverge (BPFKIT_DIFF_SEED={seed:#x}); first case seeds: {:x?}",
        divergences.len(),
        divergences.iter().take(10).map(|(s, _)| s).collect::<Vec<_>>()
    );
    assert!(
        accepted * 10 >= cases * 9,
        "the verifier accepted only {accepted} of {cases} generated programs (BPFKIT_DIFF_SEED={seed:#x})"
    );
}

#[test]
fn a_planted_divergence_is_reported() {
    if !kernel_available() {
        return;
    }
    let body = assemble(
        "ldxb %r0, [%r1+2]\nstb [%r1+0], 7\nlddw %r2, 0x100000000\nadd %r0, %r2\nexit",
        Dialect::Conformance,
    )
    .unwrap();
    let mem = [0xaa, 0xbb, 0x11, 0xcc];
    // The honest VM agrees.
    let Verdict::Agree(out) = check(&body, &mem).unwrap() else {
        panic!("the reference program must agree")
    };
    assert_eq!(out.r0, 0x1_0000_0011);
    assert_eq!(out.mem, [7, 0xbb, 0x11, 0xcc]);

    // A VM whose r0 is off by one bit in the high half.
    let wrong_r0 = |b: &[_], m: &[u8]| {
        run_vm(b, m).map(|o| Outcome {
            r0: o.r0 ^ (1 << 40),
            ..o
        })
    };
    let Verdict::Diverged(d) = check_with(&body, &mem, wrong_r0).unwrap() else {
        panic!("a wrong r0 must be reported")
    };
    let text = d.to_string();
    println!("{text}");
    assert!(
        text.contains("r0:     kernel 0x0000000100000011  vm 0x0000010100000011"),
        "{text}"
    );
    assert!(text.contains("ldxb %r0, [%r1+2]"), "{text}");
    assert!(text.contains("aa bb 11 cc"), "{text}");

    // A VM that forgets a store.
    let wrong_mem = |b: &[_], m: &[u8]| {
        run_vm(b, m).map(|mut o| {
            o.mem[0] = 0xaa;
            o
        })
    };
    let Verdict::Diverged(d) = check_with(&body, &mem, wrong_mem).unwrap() else {
        panic!("a wrong memory byte must be reported")
    };
    assert_eq!(d.mem_diff(), vec![0]);

    // A VM that fails.
    let Verdict::Diverged(d) =
        check_with(&body, &mem, |_, _| Err("VM run failed: boom".into())).unwrap()
    else {
        panic!("a failing VM must be reported")
    };
    assert!(d.to_string().contains("boom"));
}

#[test]
fn a_refused_program_is_a_rejection_with_the_verifier_log() {
    if !kernel_available() {
        return;
    }
    // Reads r3 before writing it: the verifier refuses that.
    let body = assemble("mov %r0, %r6\nexit", Dialect::Conformance).unwrap();
    match check(&body, &[]).unwrap() {
        Verdict::Rejected(e) => {
            let line = e.verifier_log().unwrap().error_line();
            assert!(line.contains("R6 !read_ok"), "{e}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Kernel bugs this harness found (Linux 6.18). The generator works around
/// both (see bpfkit_isa::gen); this test keeps the reproducers, checks the VM
/// gives the RFC 9669 answer, and says whether the running kernel still has
/// the bug, so the workarounds can go once it is fixed.
#[test]
fn known_kernel_bugs() {
    if !kernel_available() {
        return;
    }
    struct Bug {
        name: &'static str,
        asm: &'static str,
        mem: &'static [u8],
        expected: u64,
    }
    let bugs = [
        Bug {
            // Precision backtracking does not follow an atomic fetch to the
            // stack slot it loads from, so the path through `jge32` (taken
            // at run time) is pruned against the path that stored a constant
            // there, `mov %r0, 1` is never visited, and the verifier removes
            // it as dead code.
            name: "atomic fetch from the stack: unsound pruning",
            asm: "mov %r0, 0
                  ldxdw %r9, [%r1+0]
                  ldxw %r6, [%r1+2]
                  stxdw [%r10-24], %r6
                  jset %r2, 16, +6
                  jge32 %r9, %r9, +3
                  ldxdw %r7, [%r10-24]
                  lddw %r9, 0xc13970557f539a63
                  stxw [%r10-24], %r9
                  lock fetch or32 [%r10-24], %r2
                  jsge32 %r2, 63, +1
                  mov %r0, 1
                  exit",
            mem: &[0x73, 0x03, 0x8a, 0xa7, 0x23, 0xdb, 0x4d, 0x0d],
            expected: 1,
        },
        Bug {
            // x86 cmpxchg leaves rax alone when the comparison succeeds; the
            // verifier must add the zero extension of r0, and adds it only
            // when it sees a 64-bit read of r0 on an explored path. Here the
            // path through the cmpxchg is pruned after the call returns.
            name: "cmpxchg32: r0 not zero-extended",
            asm: "lddw %r0, 0x12345678ffffffff
                  stdw [%r10-8], -1
                  mov %r3, 5
                  ldxb %r4, [%r1+0]
                  jeq %r4, 0, +1
                  ja +1
                  lock cmpxchg32 [%r10-8], %r3
                  exit",
            mem: &[0],
            expected: 0xffff_ffff,
        },
    ];
    for bug in &bugs {
        let body = assemble(bug.asm, Dialect::Conformance).unwrap();
        let vm = run_vm(&body, bug.mem).unwrap();
        assert_eq!(vm.r0, bug.expected, "{}: the VM", bug.name);
        match check(&body, bug.mem).unwrap() {
            Verdict::Agree(_) => println!("kernel bug fixed here: {}", bug.name),
            Verdict::Diverged(d) => println!(
                "kernel bug still present: {} (kernel r0 {:#x}, expected {:#x})",
                bug.name, d.kernel.r0, bug.expected
            ),
            Verdict::Rejected(e) => {
                println!("kernel now rejects the reproducer of {}: {e}", bug.name)
            }
        }
    }
}
