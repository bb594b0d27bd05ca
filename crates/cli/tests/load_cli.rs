//! `bpfkit load`: attach a tracepoint program of a clang-built object, watch
//! its counter map, and stop on --duration or SIGINT, detaching cleanly.
//! Kernel tests need root; skipped with a reason otherwise, except under
//! CI=true where a skip fails. Argument errors are checked everywhere.

mod common;
use common::is_root;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BPFKIT: &str = env!("CARGO_BIN_EXE_bpfkit");

/// True when the test may run; prints why not otherwise (panics under CI).
fn privileged(test: &str) -> bool {
    let why = if !is_root() {
        "needs root to load and attach BPF programs"
    } else if !std::path::Path::new("/sys/kernel/tracing/events").exists() {
        "tracefs is not mounted at /sys/kernel/tracing"
    } else {
        return true;
    };
    let why = format!("{test}: skipped, {why}");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}, and CI=true");
    }
    let _ = writeln!(std::io::stderr(), "{why}");
    false
}

fn object(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../bpf/kernel")
        .join(name)
        .display()
        .to_string()
}

/// A shell that says it is ready, waits for a line, then opens /dev/null
/// `n` times (one openat each in dash) and exits.
fn openat_child(n: usize) -> Child {
    let script = format!("echo ready; read x; {}", "exec 3</dev/null; ".repeat(n));
    let mut child = Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn /bin/sh");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

/// Starts `bpfkit load` counting the openats of `tgid`; returns it and a
/// channel of its stdout lines.
fn start_load(tgid: u32, duration: Option<&str>) -> (Child, mpsc::Receiver<String>) {
    let global = format!(
        "target_tgid={}",
        tgid.to_ne_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let obj = object("tracepoint_count.bpf.o");
    let mut args = vec![
        "load",
        &obj,
        "--global",
        &global,
        "--attach",
        "tracepoint:syscalls:sys_enter_openat=count_openat",
        "--watch",
        "openat_calls",
        "--interval",
        "0.2",
    ];
    if let Some(d) = duration {
        args.extend(["--duration", d]);
    }
    let mut load = Command::new(BPFKIT)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = load.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (load, rx)
}

/// Lines until one contains `what` (within 10 s); all lines seen.
fn wait_for(rx: &mpsc::Receiver<String>, what: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) => {
                let hit = l.contains(what);
                seen.push(l);
                if hit {
                    return seen;
                }
            }
            Err(e) => panic!("no line with `{what}` ({e}); got {seen:#?}"),
        }
    }
}

fn rest(rx: &mpsc::Receiver<String>) -> Vec<String> {
    rx.iter().collect()
}

const N: usize = 7;

/// The count line: key 0, value N as hex bytes in memory order then decimal.
fn count_line() -> String {
    let hex: String = (N as u64)
        .to_ne_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("openat_calls 00000000 = {hex} ({N})")
}

#[test]
fn load_counts_openats_and_detaches_after_duration() {
    if !privileged("load_counts_openats_and_detaches_after_duration") {
        return;
    }
    let mut child = openat_child(N);
    let (mut load, rx) = start_load(child.id(), Some("2"));
    let mut lines = wait_for(&rx, "attached count_openat");
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    assert!(child.wait().unwrap().success());
    lines.extend(rest(&rx));
    let status = load.wait().unwrap();
    assert!(status.success(), "{status}: {lines:#?}");
    let want = count_line();
    assert!(
        lines.iter().any(|l| l.ends_with(&want)),
        "no `{want}`: {lines:#?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("detached"),
        "{lines:#?}"
    );
}

#[test]
fn load_detaches_on_sigint() {
    if !privileged("load_detaches_on_sigint") {
        return;
    }
    let mut child = openat_child(N);
    let (mut load, rx) = start_load(child.id(), None);
    let mut lines = wait_for(&rx, "attached count_openat");
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    assert!(child.wait().unwrap().success());
    // A watch print that shows all the openats, then Ctrl-C.
    lines.extend(wait_for(&rx, &count_line()));
    let kill = Command::new("kill")
        .args(["-INT", &load.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    lines.extend(rest(&rx));
    let status = load.wait().unwrap();
    assert!(status.success(), "{status}: {lines:#?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("detached"),
        "{lines:#?}"
    );
}

/// Runs bpfkit expecting failure with a one-line error containing `want`.
fn fails(args: &[&str], want: &[&str]) {
    let out: Output = Command::new(BPFKIT).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "bpfkit {args:?} succeeded");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    for w in want {
        assert!(err.contains(w), "bpfkit {args:?}: no `{w}` in {err}");
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains("detached"));
}

#[test]
fn bad_specs_and_missing_files_are_one_line_errors() {
    let obj = object("tracepoint_count.bpf.o");
    fails(
        &["load", &obj, "--attach", "kprobe:do_sys_open=count_openat"],
        &[
            "kprobe:do_sys_open=count_openat",
            "accepted forms",
            "tracepoint:CATEGORY:NAME=PROGRAM",
        ],
    );
    fails(
        &[
            "load",
            &obj,
            "--attach",
            "tracepoint:syscalls:sys_enter_openat",
        ],
        &[
            "tracepoint:syscalls:sys_enter_openat",
            "missing `=PROGRAM`",
            "accepted forms",
        ],
    );
    fails(
        &[
            "load",
            &obj,
            "--attach",
            "tracepoint:syscalls:sys_enter_openat=",
        ],
        &["empty program name", "accepted forms"],
    );
    fails(
        &[
            "load",
            "/nonexistent/x.bpf.o",
            "--attach",
            "tp_btf:sys_enter=btf_sys_enter",
        ],
        &["/nonexistent/x.bpf.o", "No such file"],
    );
    fails(&["load", &obj, "--global", "target_tgid"], &["NAME=HEX"]);
}

#[test]
fn unknown_program_and_no_attach_list_the_programs() {
    if !privileged("unknown_program_and_no_attach_list_the_programs") {
        return;
    }
    let obj = object("tracepoint_count.bpf.o");
    fails(
        &[
            "load",
            &obj,
            "--attach",
            "tracepoint:syscalls:sys_enter_openat=nope",
        ],
        &["no program `nope`", "count_openat"],
    );
    fails(&["load", &obj], &["no --attach given", "count_openat"]);
}
