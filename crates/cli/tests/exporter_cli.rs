//! `bpfkit exporter`: flags, config checks, and (as root) one scrape of the
//! built-in configs and the HTTP server. Kernel tests are skipped with a
//! reason when not root, except under CI=true where a skip fails.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const BPFKIT: &str = env!("CARGO_BIN_EXE_bpfkit");

fn privileged(test: &str) -> bool {
    common::privileged(test, "load and attach BPF programs")
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    common::temp_dir("bpfkit-exporter-cli", name)
}

#[test]
fn help_lists_ebpf_exporter_flags() {
    let out = Command::new(BPFKIT)
        .args(["exporter", "--help"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config.dir",
        "--config.names",
        "--config.check",
        "--config.strict",
        "--web.listen-address",
        "--web.telemetry-path",
        "--capabilities.keep",
        "--debug",
        "--once",
        "--openmetrics",
        "[default: :9435]",
        "[default: /metrics]",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn config_check_names_the_bad_file() {
    let dir = temp_dir("bad");
    let file = dir.join("broken.yaml");
    std::fs::write(
        &file,
        "metrics:\n  counters:\n    - name: x\n      labels: [{name: a, size: 4}]\n",
    )
    .expect("write");
    std::fs::write(dir.join("broken.bpf.o"), b"not an object").expect("write");
    let out = Command::new(BPFKIT)
        .args(["exporter", "--config.check", "--config.dir"])
        .arg(&dir)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&file.display().to_string()),
        "file not named: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_fail_before_loading() {
    for (args, want) in [
        (&["--web.listen-address", "9435"][..], "missing port"),
        (&["--web.listen-address", "host:notaport"][..], "port"),
        (&["--web.listen-address", "fd://x"][..], "file descriptor"),
        (
            &["--web.telemetry-path", "metrics"][..],
            "must start with '/'",
        ),
        (&["--capabilities.keep", "cap_nope"][..], "cap_nope"),
        (&["--openmetrics"][..], "--once"),
    ] {
        let out = Command::new(BPFKIT)
            .arg("exporter")
            .args(args)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

#[test]
fn once_prints_the_builtin_metrics() {
    if !privileged("once_prints_the_builtin_metrics") {
        return;
    }
    let out = Command::new(BPFKIT)
        .args(["exporter", "--once", "--capabilities.keep", "none"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("ebpf_exporter_syscalls_total"),
        "{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("# EOF"));
    assert!(stderr.contains("dropped capabilities to none"), "{stderr}");

    let out = Command::new(BPFKIT)
        .args([
            "exporter",
            "--once",
            "--openmetrics",
            "--config.names",
            "syscalls",
        ])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.ends_with("# EOF\n"), "{stdout}");
    assert!(stdout.contains("ebpf_exporter_syscalls_total"), "{stdout}");
}

#[test]
fn serves_metrics_until_sigterm() {
    if !privileged("serves_metrics_until_sigterm") {
        return;
    }
    let mut child = Command::new(BPFKIT)
        .args([
            "exporter",
            "--config.names",
            "syscalls",
            "--web.listen-address",
            "127.0.0.1:0",
            "--debug",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addr = None;
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        if let Some(rest) = line.strip_prefix("ebpf_exporter: listening on 127.0.0.1:0 (") {
            addr = rest.strip_suffix(')').map(str::to_string);
            break;
        }
        seen.push(line);
    }
    let Some(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no listening line: {seen:?}");
    };
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read");
        resp
    };
    let metrics = get("/metrics");
    let home = get("/");
    let maps = get("/maps");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("content-type: text/plain; version=0.0.4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ebpf_exporter_syscalls_total"),
        "{metrics}"
    );
    assert!(home.contains("<h3>syscalls</h3>"), "{home}");
    assert!(maps.starts_with("HTTP/1.1 200"), "{maps}");
    assert!(status.success(), "{status:?}");
}
