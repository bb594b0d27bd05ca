//! End-to-end tests of the `bpfkit` binary and the conformance plugin,
//! run as a user would run them.

use bpfkit_isa::testfile::{self, Parsed};
use bpfkit_isa::{slots_to_bytes, RawInsn};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const BPFKIT: &str = env!("CARGO_BIN_EXE_bpfkit");
const PLUGIN: &str = env!("CARGO_BIN_EXE_bpfkit-conformance-plugin");

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bpfkit-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn bpfkit(args: &[&str]) -> Output {
    Command::new(BPFKIT).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn asm_then_disasm_then_run() {
    let d = tmpdir("roundtrip");
    let src = d.join("sum.asm");
    std::fs::write(
        &src,
        "# sum the first two bytes of memory\nldxb %r0, [%r1]\nldxb %r2, [%r1+1]\nadd %r0, %r2\nexit\n",
    )
    .unwrap();
    let out = bpfkit(&["asm", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bin = d.join("sum.bin");
    assert_eq!(std::fs::read(&bin).unwrap().len(), 4 * 8);

    let out = bpfkit(&["disasm", bin.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.lines().last().unwrap().trim() == "exit", "{text}");

    let out = bpfkit(&["disasm", "--dialect", "conformance", bin.to_str().unwrap()]);
    assert_eq!(
        stdout(&out),
        "ldxb %r0, [%r1+0]\nldxb %r2, [%r1+1]\nadd %r0, %r2\nexit\n"
    );

    let out = bpfkit(&["run", bin.to_str().unwrap(), "--mem-hex", "05 07"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("r0 = 0xc (12)"), "{text}");
    assert!(text.contains("instructions executed: 4"), "{text}");

    // Assembly runs directly too, with memory from a file.
    let mem = d.join("mem.hex");
    std::fs::write(&mem, "ff 01\n").unwrap();
    let out = bpfkit(&["run", src.to_str().unwrap(), "--mem", mem.to_str().unwrap()]);
    assert!(
        stdout(&out).contains("r0 = 0x100 (256)"),
        "{}",
        stdout(&out)
    );
}

/// `--interpret`, `--jit` and `--blinding` pick how the VM executes; each
/// gives the same result, the same count and the same errors, and says which
/// ran.
#[test]
fn run_in_each_execution_mode() {
    let d = tmpdir("modes");
    let src = d.join("prime.asm");
    std::fs::write(
        &src,
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/prime.asm"
        ))
        .unwrap(),
    )
    .unwrap();
    let oob = d.join("oob.asm");
    std::fs::write(&oob, "ldxdw %r0, [%r1+8]\nexit\n").unwrap();
    let mut modes: Vec<(&[&str], &str)> = vec![(&["--interpret"], "(interpreter)")];
    if bpfkit_vm::ExecMode::JIT_AVAILABLE {
        modes.push((&["--jit"], "(jit)"));
        modes.push((&["--blinding"], "(jit+blinding)"));
        modes.push((&[], "(jit)"));
    } else {
        modes.push((&[], "(interpreter)"));
        let out = bpfkit(&["run", src.to_str().unwrap(), "--jit"]);
        assert!(
            stderr(&out).contains("x86-64 Linux only"),
            "{}",
            stderr(&out)
        );
    }
    let mut seen = Vec::new();
    for (flags, label) in modes {
        let mut args = vec!["run", src.to_str().unwrap(), "--mem-hex", "e8 03 00 00"];
        args.extend_from_slice(flags);
        let out = bpfkit(&args);
        assert!(out.status.success(), "{flags:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("r0 = 0xa8 (168)"), "{flags:?}: {text}");
        assert!(text.contains(label), "{flags:?}: {text}");
        seen.push(text.lines().nth(1).unwrap().to_string());
        let mut args = vec!["run", oob.to_str().unwrap(), "--mem-hex", "00"];
        args.extend_from_slice(flags);
        let out = bpfkit(&args);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("oob.asm: instruction 0: read of 8 bytes"),
            "{flags:?}: {}",
            stderr(&out)
        );
    }
    // The same instruction count in every mode.
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    let out = bpfkit(&["run", src.to_str().unwrap(), "--interpret", "--jit"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_dump_mem_shows_stores() {
    let d = tmpdir("dump");
    let src = d.join("store.asm");
    std::fs::write(&src, "stb [%r1+1], 0x7f\nmov %r0, 0\nexit\n").unwrap();
    let out = bpfkit(&[
        "run",
        src.to_str().unwrap(),
        "--mem-hex",
        "00 00 00",
        "--dump-mem",
    ]);
    assert!(
        stdout(&out).contains("memory: 00 7f 00"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn asm_to_stdout_matches_file() {
    let d = tmpdir("stdout");
    let src = d.join("p.asm");
    std::fs::write(&src, "r0 = 42\nexit\n").unwrap();
    let out = bpfkit(&["asm", "-o", "-", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        out.stdout,
        hex_bytes("b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00")
    );
}

fn hex_bytes(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// Each bad input: one line naming the file and the line or instruction,
/// and a non-zero exit.
#[test]
fn errors_name_the_place() {
    let d = tmpdir("errors");
    let cases: &[(&str, &[u8], &[&str], &str)] = &[
        (
            "bad_mnemonic.asm",
            b"mov %r0, 1\nfrob %r1\nexit\n",
            &["asm"],
            "bad_mnemonic.asm:2: unknown mnemonic `frob`",
        ),
        (
            "bad_reg.asm",
            b"mov %r11, 1\nexit\n",
            &["asm"],
            "bad_reg.asm:1:",
        ),
        (
            "bad_label.asm",
            b"ja nowhere\nexit\n",
            &["asm"],
            "bad_label.asm:1: unknown label `nowhere`",
        ),
        (
            "truncated.bin",
            &[0xb7, 0, 0, 0, 1],
            &["disasm"],
            "truncated.bin: program length 5 bytes is not a multiple of 8",
        ),
        (
            "badop.bin",
            &[0xff, 0, 0, 0, 0, 0, 0, 0],
            &["disasm"],
            "badop.bin: instruction 0: unknown opcode 0xff",
        ),
        (
            "oob.asm",
            b"ldxdw %r0, [%r1+8]\nexit\n",
            &["run", "--mem-hex", "00"],
            "oob.asm: instruction 0: read of 8 bytes",
        ),
        (
            "loop.asm",
            b"ja -1\nexit\n",
            &["run", "--budget", "1000"],
            "oob.asm",
        ),
        (
            "noexit.asm",
            b"mov %r0, 1\n",
            &["run"],
            "noexit.asm: instruction 0: execution can fall off the end",
        ),
    ];
    for (name, content, args, want) in cases {
        let p = d.join(name);
        std::fs::write(&p, content).unwrap();
        let mut argv: Vec<&str> = vec![args[0], p.to_str().unwrap()];
        argv.extend_from_slice(&args[1..]);
        let out = bpfkit(&argv);
        assert!(!out.status.success(), "{name}: expected failure");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{name}: one line expected: {err}");
        let want = if *name == "loop.asm" {
            "loop.asm: instruction 0: instruction budget of 1000 exhausted"
        } else {
            want
        };
        assert!(
            err.contains(want),
            "{name}: `{err}` does not contain `{want}`"
        );
    }
    let out = bpfkit(&["run", d.join("missing.asm").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("missing.asm: cannot read"),
        "{}",
        stderr(&out)
    );
}

/// Formats bytes the way the bpf_conformance runner hands them to a plugin.
fn runner_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}  ")).collect()
}

fn plugin(mem: &[u8], program: &[RawInsn], extra: &[&str]) -> Output {
    let mut cmd = Command::new(PLUGIN);
    if !mem.is_empty() {
        cmd.arg(runner_hex(mem));
    }
    cmd.args(extra);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // A plugin refusing its arguments exits without reading the program:
    // the write may then fail with a closed pipe, which is not the test's
    // concern (its exit status and message are).
    let _ = writeln!(stdin, "{}", runner_hex(&slots_to_bytes(program)));
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// The plugin protocol, driven exactly as the public runner drives it, over
/// the whole suite: interpreter, JIT, JIT with blinding, and the default.
#[test]
fn plugin_passes_the_conformance_suite() {
    let files = testfile::list(&testfile::suite_dir()).unwrap();
    assert!(files.len() >= 313);
    let mut modes: Vec<&[&str]> = vec![&["--interpret"], &[]];
    if bpfkit_vm::ExecMode::JIT_AVAILABLE {
        modes.extend([&["--jit"][..], &["--jit", "--blinding"][..]]);
    }
    for mode in modes {
        let mut failures = Vec::new();
        let mut passed = 0;
        for path in &files {
            let Parsed::Test(t) = testfile::load(path).unwrap() else {
                panic!("{}: skipped", path.display())
            };
            let out = plugin(&t.mem, &t.program, mode);
            let got = u64::from_str_radix(stdout(&out).trim().trim_start_matches("0x"), 16).ok();
            if !out.status.success() || got != t.result {
                failures.push(format!("{}: {:?} {}", t.name, got, stdout(&out)));
            } else {
                passed += 1;
            }
        }
        assert!(failures.is_empty(), "{mode:?}: {}", failures.join("\n"));
        println!(
            "plugin {mode:?}: passed {passed} out of {} tests",
            files.len()
        );
    }
}

#[test]
fn plugin_reports_errors_with_nonzero_exit() {
    // Falls off the end: rejected at load.
    let prog = [RawInsn::new(0xb7, 0, 0, 0, 1)];
    let out = plugin(&[], &prog, &[]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("fall off the end"),
        "{}",
        stdout(&out)
    );
    // Out-of-bounds read at run time.
    let prog = [
        RawInsn::new(0x79, 0, 1, 8, 0),
        RawInsn::new(0x95, 0, 0, 0, 0),
    ];
    let out = plugin(&[1, 2], &prog, &[]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("instruction 0: read of 8 bytes"),
        "{}",
        stdout(&out)
    );
    if bpfkit_vm::ExecMode::JIT_AVAILABLE {
        let out = plugin(&[1, 2], &prog, &["--jit"]);
        assert!(!out.status.success());
        assert!(
            stdout(&out).contains("instruction 0: read of 8 bytes"),
            "{}",
            stdout(&out)
        );
    }
    let out = plugin(&[1], &prog, &["--interpret", "--blinding"]);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("--blinding is a JIT option"));
    // Unknown option.
    let out = plugin(&[1], &prog, &["--bogus"]);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("unknown argument `--bogus`"));
    // Bad hex on stdin.
    let mut child = Command::new(PLUGIN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"zz\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(stdout(&out).contains("not a hex digit"), "{}", stdout(&out));
}
