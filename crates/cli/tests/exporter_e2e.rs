//! `bpfkit exporter` end to end, as root: the real binary serving a config
//! dir built from bpf/exporter over HTTP, counters that follow a known
//! workload of child processes, histogram invariants, self-metrics, the
//! landing page, OpenMetrics negotiation, a clean SIGTERM that leaves no
//! program behind, and a dir with one broken config. Skipped with a reason
//! when not root, except under CI=true where a skip fails.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BPFKIT: &str = env!("CARGO_BIN_EXE_bpfkit");

/// How long to wait for the exporter to answer, or for its programs to be
/// freed, before giving up (a deadline, not an assertion on speed).
const PATIENCE: Duration = Duration::from_secs(60);

fn privileged(test: &str) -> bool {
    common::privileged(test, "load and attach BPF programs")
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    common::temp_dir("bpfkit-exporter-e2e", name)
}

/// bpf/exporter, from the workspace root.
fn builtin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bpf/exporter")
}

/// Copies `<name>.yaml` and `<name>.bpf.o` of the built-in configs to `dir`.
fn copy_config(dir: &Path, name: &str) {
    for ext in ["yaml", "bpf.o"] {
        let from = builtin_dir().join(format!("{name}.{ext}"));
        std::fs::copy(&from, dir.join(format!("{name}.{ext}")))
            .unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running `bpfkit exporter`, killed if the test ends without stopping it.
struct Running {
    child: Option<Child>,
    addr: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(dir: &Path, names: Option<&str>) -> Running {
        Running::start_in(dir, names, None)
    }

    /// Started in `cwd` (where relative paths in sections resolve).
    fn start_in(dir: &Path, names: Option<&str>, cwd: Option<&Path>) -> Running {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(BPFKIT);
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        cmd.arg("exporter")
            .arg("--config.dir")
            .arg(dir)
            .args(["--web.listen-address", &addr]);
        if let Some(names) = names {
            cmd.args(["--config.names", names]);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bpfkit exporter");
        let pipe = child.stderr.take().expect("stderr");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut running = Running {
            child: Some(child),
            addr,
            stderr,
        };
        running.wait_until_answering();
        running
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn wait_until_answering(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = self.child.as_mut().expect("child").try_wait() {
                // Let the reader thread drain what is left.
                std::thread::sleep(Duration::from_millis(200));
                panic!("exporter exited with {status}:\n{}", self.stderr());
            }
            if let Ok(resp) = try_get(&self.addr, "/", None) {
                if resp.status == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "exporter not answering on {}:\n{}",
                self.addr,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn get(&self, path: &str, accept: Option<&str>) -> Response {
        try_get(&self.addr, path, accept)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.stderr()))
    }

    fn metrics(&self) -> Metrics {
        let resp = self.get("/metrics", None);
        assert_eq!(resp.status, 200, "{}", resp.body);
        Metrics::parse(&resp.body)
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("child");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().expect("wait")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Response {
    status: u16,
    /// Header names lowercased.
    headers: BTreeMap<String, String>,
    body: String,
}

/// A minimal HTTP/1.1 GET over a fresh connection.
fn try_get(addr: &str, path: &str, accept: Option<&str>) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8(body).map_err(|_| bad("body is not UTF-8"))?,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Label pairs, sorted by name.
type Labels = BTreeMap<String, String>;

/// The samples of one text-format scrape: name → [(labels, value)].
struct Metrics {
    samples: BTreeMap<String, Vec<(Labels, f64)>>,
    text: String,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut samples: BTreeMap<String, Vec<(Labels, f64)>> = BTreeMap::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, labels, rest) =
                parse_sample(line).unwrap_or_else(|| panic!("unparsable sample line {line:?}"));
            let value = match rest.split_whitespace().next() {
                Some("+Inf") => f64::INFINITY,
                Some("-Inf") => f64::NEG_INFINITY,
                Some(v) => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
                None => panic!("no value in {line:?}"),
            };
            samples.entry(name).or_default().push((labels, value));
        }
        Metrics {
            samples,
            text: text.to_string(),
        }
    }

    /// The value of the sample with exactly these labels, 0 when absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .get(name)
            .and_then(|s| s.iter().find(|(l, _)| *l == want))
            .map(|(_, v)| *v)
            .unwrap_or(0.0)
    }

    fn series(&self, name: &str) -> &[(Labels, f64)] {
        self.samples.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// `name{a="b",...} rest` → (name, labels, rest).
fn parse_sample(line: &str) -> Option<(String, Labels, &str)> {
    let end = line.find(['{', ' '])?;
    let name = line[..end].to_string();
    let mut labels = Labels::new();
    let mut rest = &line[end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        loop {
            // Label name up to '=', or the closing brace.
            let (start, c) = chars.next()?;
            if c == '}' {
                rest = &inner[start + 1..];
                break;
            }
            if c == ',' {
                continue;
            }
            let eq = inner[start..].find('=')? + start;
            let key = inner[start..eq].to_string();
            while chars.next()?.0 < eq {}
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            }
            labels.insert(key, value);
        }
    }
    Some((name, labels, rest.trim_start()))
}

/// Runs a child process to completion; panics unless it exits 0.
fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?}: {status}");
}

/// Program ids in `bpfkit prog list --json`.
fn loaded_program_ids() -> BTreeSet<u64> {
    let out = Command::new(BPFKIT)
        .args(["prog", "list", "--json"])
        .output()
        .expect("run bpfkit prog list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("prog list JSON");
    list.as_array()
        .expect("a JSON array")
        .iter()
        .filter_map(|p| p["id"].as_u64())
        .collect()
}

const NAMES: [&str; 4] = ["syscalls", "syscall_errors", "execs", "schedlat"];
const FAILING_OPENS: f64 = 500.0;
const EXECS: f64 = 20.0;
const SCHEDLAT: &str = "ebpf_exporter_run_queue_latency_seconds";

/// Buckets in `le` order: cumulative, `+Inf` equal to `_count`, `_sum` ≥ 0.
/// Returns `_count`.
fn check_histogram(m: &Metrics) -> f64 {
    let mut buckets: Vec<(f64, f64)> = m
        .series(&format!("{SCHEDLAT}_bucket"))
        .iter()
        .map(|(labels, v)| {
            let le = labels.get("le").expect("a bucket without le");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le")
            };
            (le, *v)
        })
        .collect();
    assert!(buckets.len() > 1, "no buckets:\n{}", m.text);
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    for pair in buckets.windows(2) {
        assert!(
            pair[0].0 < pair[1].0,
            "duplicate le {}:\n{}",
            pair[0].0,
            m.text
        );
        assert!(
            pair[0].1 <= pair[1].1,
            "buckets not cumulative at le={} ({} > {})",
            pair[1].0,
            pair[0].1,
            pair[1].1
        );
    }
    let (last_le, inf) = *buckets.last().expect("buckets");
    assert!(last_le.is_infinite(), "no +Inf bucket");
    let count = m.value(&format!("{SCHEDLAT}_count"), &[]);
    let sum = m.value(&format!("{SCHEDLAT}_sum"), &[]);
    assert!(
        m.samples.contains_key(&format!("{SCHEDLAT}_count")),
        "no _count"
    );
    assert!(
        m.samples.contains_key(&format!("{SCHEDLAT}_sum")),
        "no _sum"
    );
    assert_eq!(inf, count, "+Inf bucket != _count");
    assert!(sum >= 0.0, "_sum {sum} < 0");
    count
}

#[test]
fn exporter_counts_a_known_workload() {
    if !privileged("exporter_counts_a_known_workload") {
        return;
    }
    let dir = temp_dir("workload");
    for name in NAMES {
        copy_config(&dir, name);
    }
    let mut exporter = Running::start(&dir, Some(&NAMES.join(",")));

    let before = exporter.metrics();
    assert!(
        before.samples.contains_key("ebpf_exporter_syscalls_total"),
        "{}",
        before.text
    );
    let count_before = check_histogram(&before);

    // Self-metrics: every config enabled, every program attached.
    for name in NAMES {
        assert_eq!(
            before.value("ebpf_exporter_enabled_configs", &[("name", name)]),
            1.0,
            "{name} not enabled:\n{}",
            before.text
        );
    }
    assert_eq!(
        before.series("ebpf_exporter_enabled_configs").len(),
        NAMES.len()
    );
    let info = before.series("ebpf_exporter_ebpf_program_info");
    let mut ids = BTreeSet::new();
    for name in NAMES {
        let programs: Vec<&Labels> = info
            .iter()
            .map(|(l, _)| l)
            .filter(|l| l.get("config").map(String::as_str) == Some(name))
            .collect();
        assert!(!programs.is_empty(), "{name}: no program:\n{}", before.text);
        for p in programs {
            let id = p.get("id").expect("id label");
            assert_ne!(id, "0", "{name}: program not loaded: {p:?}");
            assert_eq!(
                before.value("ebpf_exporter_ebpf_program_attached", &[("id", id)]),
                1.0,
                "{name}: program {p:?} not attached:\n{}",
                before.text
            );
            ids.insert(id.parse::<u64>().expect("numeric id"));
        }
    }
    assert!(
        loaded_program_ids().is_superset(&ids),
        "exporter's programs {ids:?} not all in bpfkit prog list"
    );

    // The workload: failing openat from a shell loop, and execs of true.
    run(
        "/bin/sh",
        &[
            "-c",
            "i=0; while [ $i -lt 500 ]; do read -r x < /nonexistent; i=$((i+1)); done",
        ],
    );
    for _ in 0..EXECS as usize {
        run("/bin/true", &[]);
    }

    let after = exporter.metrics();
    let grew = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let enoent = [("syscall", "openat"), ("errno", "ENOENT")];
    assert!(
        grew("ebpf_exporter_syscall_errors_total", &enoent) >= FAILING_OPENS,
        "openat ENOENT grew by {}:\n{}",
        grew("ebpf_exporter_syscall_errors_total", &enoent),
        after.text
    );
    let openat = [("syscall", "openat")];
    assert!(
        grew("ebpf_exporter_syscalls_total", &openat) >= FAILING_OPENS,
        "openat grew by {}",
        grew("ebpf_exporter_syscalls_total", &openat)
    );
    let true_comm = [("comm", "true")];
    assert!(
        grew("ebpf_exporter_execs_total", &true_comm) >= EXECS,
        "execs of true grew by {}:\n{}",
        grew("ebpf_exporter_execs_total", &true_comm),
        after.text
    );
    let count_after = check_histogram(&after);
    assert!(
        count_after > count_before,
        "run queue latency count did not grow ({count_before} -> {count_after})"
    );

    // The landing page lists the configs.
    let home = exporter.get("/", None);
    assert_eq!(home.status, 200);
    for name in NAMES {
        assert!(home.body.contains(&format!("<h3>{name}</h3>")), "{name}");
    }
    assert!(home.body.contains("href=\"/metrics\""), "{}", home.body);

    // Content negotiation over the real server.
    let text = exporter.get("/metrics", None);
    let ct = text
        .headers
        .get("content-type")
        .cloned()
        .unwrap_or_default();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert!(!text.body.contains("# EOF"));
    let om = exporter.get(
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert_eq!(om.status, 200);
    let ct = om.headers.get("content-type").cloned().unwrap_or_default();
    assert!(
        ct.starts_with("application/openmetrics-text; version=1.0.0"),
        "{ct}"
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    assert!(
        om.body
            .contains("# TYPE ebpf_exporter_syscall_errors counter\n"),
        "{}",
        om.body
    );
    assert!(om
        .body
        .contains("ebpf_exporter_syscall_errors_total{errno=\"ENOENT\",syscall=\"openat\"} "));
    assert!(
        om.body.contains(&format!("# TYPE {SCHEDLAT} histogram\n")),
        "{}",
        om.body
    );
    let plain = exporter.get("/metrics", Some("text/plain"));
    let ct = plain
        .headers
        .get("content-type")
        .cloned()
        .unwrap_or_default();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert_eq!(exporter.get("/nope", None).status, 404);

    // SIGTERM: a clean exit, and no program left behind.
    let status = exporter.stop();
    assert!(status.success(), "{status:?}:\n{}", exporter.stderr());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left: BTreeSet<u64> = loaded_program_ids().intersection(&ids).copied().collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "programs {left:?} still loaded after the exporter exited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exporter_serves_the_good_config_beside_a_broken_one() {
    if !privileged("exporter_serves_the_good_config_beside_a_broken_one") {
        return;
    }
    let dir = temp_dir("broken");
    copy_config(&dir, "syscalls");
    let broken = dir.join("broken.yaml");
    let yaml = std::fs::read_to_string(builtin_dir().join("execs.yaml")).expect("execs.yaml");
    assert!(yaml.contains("- name: string"));
    std::fs::write(
        &broken,
        yaml.replace("- name: string", "- name: no_such_decoder"),
    )
    .expect("write");
    std::fs::copy(builtin_dir().join("execs.bpf.o"), dir.join("broken.bpf.o")).expect("copy");

    // Every config of the dir: the broken one is left out.
    let mut exporter = Running::start(&dir, None);
    let m = exporter.metrics();
    assert_eq!(
        m.value("ebpf_exporter_enabled_configs", &[("name", "syscalls")]),
        1.0,
        "{}",
        m.text
    );
    assert_eq!(m.series("ebpf_exporter_enabled_configs").len(), 1);
    assert!(
        !m.series("ebpf_exporter_syscalls_total").is_empty(),
        "{}",
        m.text
    );
    assert!(m.series("ebpf_exporter_execs_total").is_empty());
    let home = exporter.get("/", None);
    assert!(home.body.contains("<h3>broken</h3>"), "{}", home.body);
    assert!(home.body.contains("no_such_decoder"), "{}", home.body);

    let status = exporter.stop();
    let stderr = exporter.stderr();
    assert!(status.success(), "{status:?}:\n{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("no_such_decoder"))
        .unwrap_or_else(|| panic!("the bad decoder is not named:\n{stderr}"));
    assert!(line.contains(&broken.display().to_string()), "{line}");
    assert!(line.contains("metric `execs_total`"), "{line}");
    assert!(line.contains("field `"), "{line}");
    assert!(line.contains("decoders"), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The USDT test program of crates/kernel, built with `cc` into `dir`;
/// `None` (after saying why, or failing under CI=true) without a C
/// compiler or <sys/sdt.h>.
fn build_usdt_target(dir: &Path) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel/tests/usdt_target");
    let exe = dir.join("usdt_target");
    let out = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(src.join("usdt_target.c"))
        .arg(src.join("guarded.c"))
        .output();
    match out {
        Ok(o) if o.status.success() => Some(exe),
        other => {
            common::skip(&format!(
                "exporter_counts_usdt_probe_hits: skipped, cc could not build the USDT test program (is systemtap-sdt-dev installed?): {other:?}"
            ));
            None
        }
    }
}

/// Runs the USDT test program once: every probe fires `n` times. Returns
/// its last line, `done S` with S the guarded probe's semaphore count.
fn fire_usdt(exe: &Path, n: u32) -> String {
    let mut child = Command::new(exe)
        .arg(n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the USDT test program");
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{out}");
    out.lines().last().unwrap_or_default().to_string()
}

#[test]
fn exporter_counts_usdt_probe_hits() {
    if !privileged("exporter_counts_usdt_probe_hits") {
        return;
    }
    let dir = temp_dir("usdt");
    let Some(exe) = build_usdt_target(&dir) else {
        return;
    };
    let kernel_objects = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bpf/kernel");
    for (from, to) in [
        ("usdt_exporter.yaml", "usdt.yaml"),
        ("usdt_exporter.bpf.o", "usdt.bpf.o"),
    ] {
        std::fs::copy(kernel_objects.join(from), dir.join(to)).expect("copy the usdt config");
    }
    // Sections say usdt/./usdt_target:...: relative to the exporter's
    // working directory, as with ebpf_exporter.
    let mut exporter = Running::start_in(&dir, Some("usdt"), Some(&dir));
    let before = exporter.metrics();
    let attached = before.series("ebpf_exporter_ebpf_program_attached");
    assert_eq!(attached.len(), 2, "{}\n{}", before.text, exporter.stderr());
    assert!(
        attached.iter().all(|(_, v)| *v == 1.0),
        "{}\n{}",
        before.text,
        exporter.stderr()
    );
    const N: u32 = 7;
    // The exporter holds the guarded probe's semaphore.
    assert_eq!(fire_usdt(&exe, N), "done 1");
    assert_eq!(fire_usdt(&exe, N), "done 1");
    let after = exporter.metrics();
    let hits = |probe: &str| after.value("ebpf_exporter_usdt_hits_total", &[("probe", probe)]);
    assert_eq!(hits("42"), f64::from(2 * N), "{}", after.text);
    assert_eq!(hits("1"), f64::from(2 * N), "{}", after.text);
    assert!(exporter.stop().success(), "{}", exporter.stderr());
    // Detached: the semaphore is released.
    assert_eq!(fire_usdt(&exe, 1), "done 0");
    let _ = std::fs::remove_dir_all(&dir);
}
