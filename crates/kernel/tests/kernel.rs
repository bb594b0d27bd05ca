//! Loads and test-runs programs in the running kernel. Needs root (or
//! CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN); without it each test says why and
//! passes, except under CI=true, where a skip is a failure.

use bpfkit_isa::{asm::assemble, Dialect, RawInsn};
use bpfkit_kernel::{
    load, probe, LoadError, LoadOptions, LogMode, Privilege, ProgType, TestRun, TestRunError,
};

fn available() -> bool {
    match probe() {
        Ok(()) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("kernel tests skipped: {e}\n(CI=true: a skipped kernel test is a failure)")
        }
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "kernel tests skipped: {e}");
            false
        }
    }
}

fn asm(text: &str) -> Vec<RawInsn> {
    assemble(text, Dialect::Conformance).unwrap()
}

#[test]
fn xdp_test_run_returns_the_verdict_and_the_packet() {
    if !available() {
        return;
    }
    // Write 0x2a into the first packet byte (after a range check), pass.
    let prog = asm("ldxw %r2, [%r1+0]
                    ldxw %r3, [%r1+4]
                    mov %r4, %r2
                    add %r4, 1
                    jgt %r4, %r3, +1
                    stb [%r2+0], 0x2a
                    mov %r0, 2
                    exit");
    let p = load(&prog, &LoadOptions::new(ProgType::Xdp).name("bpfkit-test")).unwrap();
    let out = p.test_run(&TestRun::new(&[0u8; 32]).repeat(10)).unwrap();
    assert_eq!(out.retval, 2);
    assert_eq!(out.data_out.len(), 32);
    assert_eq!(out.data_out[0], 0x2a);
    assert!(out.data_out[1..].iter().all(|b| *b == 0));
}

#[test]
fn socket_filter_and_sched_cls_run_too() {
    if !available() {
        return;
    }
    for (ty, ret) in [(ProgType::SocketFilter, 7), (ProgType::SchedCls, 0)] {
        let prog = asm(&format!("mov %r0, {ret}\nexit"));
        let p = load(&prog, &LoadOptions::new(ty)).unwrap();
        assert_eq!(p.prog_type(), ty);
        let out = p.test_run(&TestRun::new(&[0u8; 64])).unwrap();
        assert_eq!(out.retval, ret as u32, "{ty:?}");
    }
}

#[test]
fn a_rejected_program_carries_the_verifier_log() {
    if !available() {
        return;
    }
    let prog = asm("mov %r0, %r5\nexit");
    let err = load(&prog, &LoadOptions::new(ProgType::Xdp)).unwrap_err();
    let LoadError::Rejected { log, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(log.error_line(), "R5 !read_ok");
    assert!(log.as_str().contains("processed"), "{log}");
    assert!(err.to_string().contains("R5 !read_ok"), "{err}");
}

#[test]
fn always_logging_keeps_the_log_of_an_accepted_program() {
    if !available() {
        return;
    }
    let prog = asm("mov %r0, 2\nexit");
    let p = load(
        &prog,
        &LoadOptions::new(ProgType::Xdp).log(LogMode::Always(1)),
    )
    .unwrap();
    assert!(p
        .verifier_log()
        .unwrap()
        .as_str()
        .contains("processed 2 insns"));
}

#[test]
fn a_small_log_buffer_is_grown() {
    if !available() {
        return;
    }
    // A long program whose log at level 1 is far larger than 4 KiB.
    let mut text = String::new();
    for i in 0..2000 {
        text.push_str(&format!("mov %r0, {i}\n"));
    }
    text.push_str("mov %r0, %r7\nexit\n");
    let opts = LoadOptions {
        log_size: 4096,
        ..LoadOptions::new(ProgType::Xdp)
    };
    let err = load(&asm(&text), &opts).unwrap_err();
    let log = err.verifier_log().unwrap();
    assert!(log.as_str().len() > 4096, "{}", log.as_str().len());
    assert!(log.as_str().starts_with("func#0") || log.as_str().starts_with("0:"));
    assert_eq!(log.error_line(), "R7 !read_ok");
}

#[test]
fn bpf_only_privilege_refuses_reading_stale_stack() {
    if !available() {
        return;
    }
    let prog = asm("ldxdw %r0, [%r10-8]\nexit");
    // As root the verifier allows it (the value is whatever the stack held).
    load(&prog, &LoadOptions::new(ProgType::SocketFilter)).unwrap();
    let err = load(
        &prog,
        &LoadOptions::new(ProgType::SocketFilter).privilege(Privilege::BpfOnly),
    )
    .unwrap_err();
    let line = err.verifier_log().unwrap().error_line().to_string();
    assert!(line.contains("invalid read from stack"), "{line}");
}

#[test]
fn a_short_output_buffer_is_an_error_with_the_size_needed() {
    if !available() {
        return;
    }
    let p = load(&asm("mov %r0, 2\nexit"), &LoadOptions::new(ProgType::Xdp)).unwrap();
    let run = TestRun {
        data_out_len: Some(8),
        ..TestRun::new(&[0u8; 64])
    };
    match p.test_run(&run) {
        Err(TestRunError::DataOutTooSmall { needed, capacity }) => {
            assert_eq!((needed, capacity), (64, 8))
        }
        other => panic!("{other:?}"),
    }
}
