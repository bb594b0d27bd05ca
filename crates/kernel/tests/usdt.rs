//! USDT probes and `__kconfig` externs in the running kernel: a C program
//! with `<sys/sdt.h>` probes, compiled here with `cc`, fires each probe a
//! known number of times with known arguments, and bpf/kernel/usdt_count.bpf.o
//! (written against libbpf's usdt.bpf.h) counts them and records what
//! BPF_USDT handed it. Root only, as every kernel test.

mod common;
use bpfkit_kernel::object::{Attach, KernelObject, ObjectLoader};
use bpfkit_kernel::usdt::{ArgKind, Probes};
use common::{available, object, skip, u64_at};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Probes fired per run.
const N: i64 = 5;

/// The test program, built once per test process; `None` (after saying why)
/// when there is no C compiler or no <sys/sdt.h>.
fn target() -> Option<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/usdt_target");
        let dir = std::env::temp_dir().join(format!("bpfkit-usdt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let exe = dir.join("usdt_target");
        let out = Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&exe)
            .arg(src.join("usdt_target.c"))
            .arg(src.join("guarded.c"))
            .output()
            .map_err(|e| format!("cannot run cc: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cc could not build the USDT test program (is systemtap-sdt-dev installed?): {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(exe)
    });
    match built {
        Ok(p) => Some(p.clone()),
        Err(why) => {
            skip(why);
            None
        }
    }
}

/// The test program, started and waiting for a line on stdin.
struct Child {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Child {
    fn start(exe: &Path) -> Child {
        let mut child = Command::new(exe)
            .arg(N.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the USDT test program");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        Child { child, out }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fires the probes; returns the semaphore value the program saw.
    fn fire(mut self) -> u32 {
        writeln!(self.child.stdin.take().unwrap(), "go").unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        assert!(self.child.wait().unwrap().success());
        line.trim()
            .strip_prefix("done ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected output {line:?}"))
    }
}

/// Loads one of the test objects into the kernel.
fn load(name: &str) -> KernelObject {
    ObjectLoader::open(&object(name)).unwrap().load().unwrap()
}

/// The object's `.bss`, as bytes.
fn bss(obj: &KernelObject) -> Vec<u8> {
    obj.map(".bss")
        .unwrap()
        .lookup(&0u32.to_ne_bytes())
        .unwrap()
        .unwrap()
}

/// The object's `.bss` as the i64 counters the USDT programs keep there.
fn stats(obj: &KernelObject) -> Vec<i64> {
    let v = bss(obj);
    (0..v.len() / 8).map(|i| u64_at(&v, i) as i64).collect()
}

fn usdt<'a>(exe: &'a Path, name: &'a str, pid: Option<u32>, cookie: u64) -> Attach<'a> {
    Attach::Usdt {
        target: exe,
        provider: "bpfkit",
        name,
        pid,
        cookie,
    }
}

#[test]
fn the_test_program_has_register_memory_constant_and_semaphore_arguments() {
    // No kernel needed: what the other tests rely on the compiler to emit.
    let Some(exe) = target() else { return };
    let probes = Probes::read(&exe).unwrap();
    let kinds: Vec<ArgKind> = ["args", "mem", "konst"]
        .iter()
        .flat_map(|p| probes.targets("bpfkit", p).unwrap())
        .flat_map(|t| t.args.into_iter().map(|a| a.kind))
        .collect();
    for k in [ArgKind::Reg, ArgKind::RegDeref, ArgKind::Const] {
        assert!(
            kinds.contains(&k),
            "no {k:?} argument in {:?}",
            probes.notes
        );
    }
    let guarded = probes.targets("bpfkit", "guarded").unwrap();
    assert_eq!(guarded.len(), 1);
    assert_ne!(
        guarded[0].semaphore_offset, 0,
        "the guarded probe has no semaphore"
    );
    let args = &probes.targets("bpfkit", "args").unwrap()[0].args;
    let sizes: Vec<(bool, u8)> = args.iter().map(|a| (a.signed, 64 - a.bitshift)).collect();
    assert_eq!(
        sizes,
        [
            (true, 8),
            (false, 8),
            (true, 16),
            (false, 16),
            (true, 32),
            (false, 32),
            (true, 64),
            (false, 64)
        ]
    );
}

#[test]
fn usdt_probes_count_every_hit_and_read_every_argument() {
    if !available(false) {
        return;
    }
    let Some(exe) = target() else { return };
    let child = Child::start(&exe);
    let mut obj = load("usdt_count.bpf.o");
    let pid = Some(child.pid());
    obj.attach("on_args", usdt(&exe, "args", pid, 0)).unwrap();
    obj.attach("on_mem", usdt(&exe, "mem", pid, 0)).unwrap();
    obj.attach("on_konst", usdt(&exe, "konst", pid, 0xc0ffee))
        .unwrap();
    obj.attach("on_guarded", usdt(&exe, "guarded", pid, 0))
        .unwrap();
    assert_eq!(child.fire(), 1, "the semaphore while attached");

    let s = stats(&obj);
    assert_eq!(&s[0..4], &[N, N, N, N], "hits of args, mem, konst, guarded");
    let is = 0..N;
    let sum = |f: &dyn Fn(i64) -> i64| is.clone().map(f).fold(0i64, i64::wrapping_add);
    let u64_base = 0xfedcba9876543210u64 as i64;
    let args: [&dyn Fn(i64) -> i64; 8] = [
        &|i| -(i + 1),
        &|i| 250 + i,
        &|i| -1000 * (i + 1),
        &|i| 60000 + i,
        &|i| -100000 * (i + 1),
        &|i| 4000000000 + i,
        &|i| -5000000000 * (i + 1),
        &|i| u64_base.wrapping_add(i),
    ];
    let want_sums: Vec<i64> = args.iter().map(|f| sum(f)).collect();
    let want_last: Vec<i64> = args.iter().map(|f| f(N - 1)).collect();
    assert_eq!(
        &s[4..12],
        &want_sums[..],
        "sums of s8 u8 s16 u16 s32 u32 s64 u64"
    );
    assert_eq!(&s[12..20], &want_last[..], "last values");
    assert_eq!(
        &s[20..23],
        &[sum(&|i| -77 * (i + 1)), sum(&|i| 65000 + i), sum(&|i| i)],
        "memory arguments (s64, u16) and a register"
    );
    assert_eq!(&s[23..25], &[42, -7], "constants");
    assert_eq!(s[25], sum(&|i| i), "guarded probe argument");
    assert_eq!(s[26], 0xc0ffee, "bpf_usdt_cookie");
    assert_eq!(&s[27..31], &[8, 3, 2, 1], "bpf_usdt_arg_cnt");
}

#[test]
fn usdt_probes_in_every_process_and_semaphores_only_while_attached() {
    if !available(false) {
        return;
    }
    let Some(exe) = target() else { return };
    // Nothing attached to the guarded probe: its semaphore stays 0 and the
    // program skips it.
    let mut obj = load("usdt_count.bpf.o");
    obj.attach("on_konst", usdt(&exe, "konst", None, 0))
        .unwrap();
    for _ in 0..2 {
        let child = Child::start(&exe);
        assert_eq!(child.fire(), 0, "semaphore without a tracer");
    }
    let s = stats(&obj);
    assert_eq!(s[2], 2 * N, "konst hits from two processes");
    assert_eq!(&s[23..25], &[42, -7]);
    // Detached with the object: the probes fire into nothing.
    drop(obj);
    let mut obj = load("usdt_count.bpf.o");
    obj.attach("on_guarded", usdt(&exe, "guarded", None, 0))
        .unwrap();
    let child = Child::start(&exe);
    assert_eq!(child.fire(), 1, "semaphore with a tracer in every process");
    assert_eq!(stats(&obj)[3], N, "guarded hits");
    drop(obj);
    let child = Child::start(&exe);
    assert_eq!(child.fire(), 0, "semaphore after detach");
}

#[test]
fn missing_probes_and_binaries_without_notes_are_errors_naming_them() {
    if !available(false) {
        return;
    }
    let Some(exe) = target() else { return };
    let mut obj = load("usdt_count.bpf.o");
    let err = obj
        .attach("on_args", usdt(&exe, "nope", None, 0))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&exe.display().to_string())
            && err.contains("no USDT probe bpfkit:nope")
            && err.contains("bpfkit:args")
            && err.contains("`on_args`"),
        "{err}"
    );
    // This test binary has no USDT notes.
    let me = std::env::current_exe().unwrap();
    let err = obj
        .attach("on_args", usdt(&me, "args", None, 0))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&me.display().to_string()) && err.contains("no USDT probes"),
        "{err}"
    );
    let err = obj
        .attach(
            "on_args",
            usdt(Path::new("/nonexistent/bin"), "args", None, 0),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/bin"), "{err}");
    // Not a uprobe program / no such program.
    assert!(obj.attach("nope", usdt(&exe, "args", None, 0)).is_err());
}

#[test]
fn kconfig_externs_get_the_running_kernels_values() {
    if !available(false) {
        return;
    }
    let mut obj = load("usdt_kconfig.bpf.o");
    let args = [0u64; 2];
    let ctx: Vec<u8> = args.iter().flat_map(|a| a.to_ne_bytes()).collect();
    // Raw tracepoint test runs take a context only, no repeat count.
    let run = bpfkit_kernel::TestRun {
        data_in: &[],
        data_out_len: Some(0),
        ctx_in: Some(&ctx),
        ctx_out_len: 0,
        repeat: 0,
        flags: 0,
    };
    obj.test_run("read_kconfig", &run).unwrap();
    let v = bss(&obj);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let nums: Vec<u64> = release
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|n| n.parse().unwrap())
        .collect();
    let version = (nums[0] << 16) + (nums[1] << 8) + nums[2].min(255);
    assert_eq!(u64_at(&v, 0), version, "LINUX_KERNEL_VERSION");
    assert_eq!(u64_at(&v, 1), 1, "LINUX_HAS_BPF_COOKIE on {release}");
    assert_eq!(u64_at(&v, 5), 0, "a weak unknown option is 0");
    let config = bpfkit_kernel::kconfig::KernelConfig::running();
    if config.source.is_none() {
        eprintln!("no /boot/config-* or /proc/config.gz: CONFIG_* values not checked");
        return;
    }
    // This very test loaded a BPF program.
    assert_eq!(u64_at(&v, 2), 1, "CONFIG_BPF_SYSCALL");
    let hz: i64 = config.get("CONFIG_HZ").unwrap().parse().unwrap();
    assert_eq!(u64_at(&v, 3) as i64, hz, "CONFIG_HZ");
    let ipv6 = match config.get("CONFIG_IPV6").as_deref() {
        Some("y") => 1,
        Some("m") => 2,
        _ => 0,
    };
    assert_eq!(u64_at(&v, 4), ipv6, "CONFIG_IPV6 (tristate)");
    let host = config.get("CONFIG_DEFAULT_HOSTNAME").unwrap_or_default();
    let host = host.trim_matches('"');
    let got = &v[48..64];
    let got = &got[..got.iter().position(|&b| b == 0).unwrap_or(16)];
    assert_eq!(
        got,
        &host.as_bytes()[..host.len().min(15)],
        "CONFIG_DEFAULT_HOSTNAME"
    );
}

#[test]
fn a_strong_kconfig_extern_the_kernel_lacks_is_an_error_naming_it() {
    if !available(false) {
        return;
    }
    let err = ObjectLoader::open(&object("usdt_kconfig_missing.bpf.o"))
        .unwrap()
        .load()
        .err()
        .expect("the load must fail")
        .to_string();
    assert_eq!(
        err,
        "loading the object: kconfig extern `CONFIG_BPFKIT_NO_SUCH_OPTION`: this kernel has no such option and the extern is not __weak"
    );
}
