//! The running exporter against the kernel: the built-in set loads,
//! attaches and counts a known workload; broken configs in a directory are
//! reported while the good one runs; concurrent scrapes see counters that
//! never go back. Root only: skipped with a reason otherwise, a failure
//! under CI=true.

use bpfkit_exporter::metrics::{encode_text, Family};
use bpfkit_exporter::runtime::{Exporter, Options};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Whether kernel tests can run here; prints why not otherwise.
fn available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let why = if unsafe { libc::geteuid() } != 0 {
        Some("not root".to_string())
    } else {
        bpfkit::kernel::probe().err().map(|e| e.to_string())
    };
    match why {
        None => true,
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("kernel test skipped: {why}\n(CI=true: a skipped kernel test is a failure)")
        }
        Some(why) => {
            eprintln!("kernel test skipped: {why}");
            false
        }
    }
}

fn builtin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf/exporter")
}

fn builtin() -> Exporter {
    Exporter::start(&Options {
        config_dir: None,
        config_names: Vec::new(),
        strict: false,
        keep_capabilities: None,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The value of the counter or gauge `name` with exactly `labels` (0 when
/// the series is not there).
fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> f64 {
    families
        .iter()
        .filter_map(|f| match f {
            Family::Counter {
                name: n, samples, ..
            }
            | Family::Gauge {
                name: n, samples, ..
            } if n == name => Some(samples),
            _ => None,
        })
        .flatten()
        .filter(|s| {
            s.labels.len() == labels.len()
                && s.labels
                    .iter()
                    .zip(labels)
                    .all(|((k, v), (lk, lv))| k == lk && v == lv)
        })
        .map(|s| s.value)
        .sum()
}

fn workload() {
    for _ in 0..1000 {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() };
    }
    for _ in 0..200 {
        // SAFETY: closing an invalid fd only fails with EBADF.
        let r = unsafe { libc::close(-1) };
        assert_eq!(r, -1);
    }
}

fn getppid_total(f: &[Family]) -> f64 {
    value(f, "ebpf_exporter_syscalls_total", &[("syscall", "getppid")])
}

#[test]
fn builtin_set_counts_a_workload() {
    if !available() {
        return;
    }
    let exporter = builtin();
    let status = exporter.status();
    let names: Vec<&str> = status.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "syscalls",
            "syscall_errors",
            "execs",
            "schedlat",
            "biolatency"
        ]
    );
    for s in &status {
        assert_eq!(s.error, None, "config {}", s.name);
        assert!(!s.programs.is_empty(), "config {}: no programs", s.name);
        for p in &s.programs {
            assert!(
                p.attached && p.error.is_none(),
                "{}: program {} ({}): {:?}",
                s.name,
                p.name,
                p.section,
                p.error
            );
            assert!(p.id > 0, "{}: program {}: no id", s.name, p.name);
            assert_eq!(p.tag.len(), 16, "{}: program {}: tag", s.name, p.name);
        }
    }

    let before = exporter.scrape();
    workload();
    let after = exporter.scrape();

    let ebadf = |f: &[Family]| {
        value(
            f,
            "ebpf_exporter_syscall_errors_total",
            &[("syscall", "close"), ("errno", "EBADF")],
        )
    };
    assert!(
        getppid_total(&after) - getppid_total(&before) >= 1000.0,
        "getppid: {} -> {}",
        getppid_total(&before),
        getppid_total(&after)
    );
    assert!(
        ebadf(&after) - ebadf(&before) >= 200.0,
        "close EBADF: {} -> {}",
        ebadf(&before),
        ebadf(&after)
    );

    // Histograms: cumulative, +Inf == count.
    let mut histograms = Vec::new();
    for f in &after {
        if let Family::Histogram { name, series, .. } = f {
            histograms.push(name.as_str());
            for s in series {
                let counts: Vec<u64> = s.buckets.iter().map(|(_, c)| *c).collect();
                assert!(
                    counts.windows(2).all(|w| w[0] <= w[1]),
                    "{name} {:?}: not cumulative: {counts:?}",
                    s.labels
                );
                assert!(
                    s.buckets.windows(2).all(|w| w[0].0 < w[1].0),
                    "{name}: bounds not increasing"
                );
                assert_eq!(
                    counts.last().copied(),
                    Some(s.count),
                    "{name}: +Inf != count"
                );
            }
        }
    }
    assert!(histograms.contains(&"ebpf_exporter_run_queue_latency_seconds"));
    assert!(histograms.contains(&"ebpf_exporter_bio_latency_seconds"));
    let mut text = String::new();
    encode_text(&after, &mut text);
    for line in text.lines().filter(|l| l.contains("_bucket{")) {
        assert!(line.contains("le=\""), "{line}");
    }
    assert!(text.contains("ebpf_exporter_run_queue_latency_seconds_bucket{le=\"+Inf\"}"));

    // Self metrics.
    for s in &status {
        assert_eq!(
            value(
                &after,
                "ebpf_exporter_enabled_configs",
                &[("name", &s.name)]
            ),
            1.0
        );
        for p in &s.programs {
            let id = p.id.to_string();
            assert_eq!(
                value(
                    &after,
                    "ebpf_exporter_ebpf_program_attached",
                    &[("id", &id)]
                ),
                1.0,
                "{}: {}",
                s.name,
                p.name
            );
            assert_eq!(
                value(
                    &after,
                    "ebpf_exporter_ebpf_program_info",
                    &[
                        ("config", &s.name),
                        ("program", &p.name),
                        ("tag", &p.tag),
                        ("id", &id)
                    ]
                ),
                1.0
            );
        }
        assert_eq!(
            value(
                &after,
                "ebpf_exporter_decoder_errors_total",
                &[("config", &s.name)]
            ),
            0.0
        );
    }

    // The debug dump names every map and decodes the metric maps' keys.
    let maps = exporter.maps_json();
    let configs = maps["configs"].as_array().expect("configs");
    assert_eq!(configs.len(), 5);
    let syscalls = &configs[0];
    assert_eq!(syscalls["name"], "syscalls");
    let map = syscalls["maps"]
        .as_array()
        .expect("maps")
        .iter()
        .find(|m| m["name"] == "syscalls_total")
        .expect("syscalls_total map");
    assert!(map["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .any(|e| e["labels"]["syscall"] == "getppid"));
}

/// A fresh directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "bpfkit-exporter-runtime-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const UNKNOWN_FIELD: &str = "metrics:
  counters:
    - name: syscalls_total
      help: Total number of syscalls made, by syscall
      bogus_setting: 1
      labels:
        - name: syscall
          size: 8
          decoders:
            - name: uint
";

const BAD_KEY: &str = "metrics:
  counters:
    - name: syscalls_total
      help: Total number of syscalls made, by syscall
      labels:
        - name: syscall
          size: 4
          decoders:
            - name: uint
";

#[test]
fn broken_configs_are_reported_and_the_good_one_runs() {
    if !available() {
        return;
    }
    let tmp = TempDir::new("broken");
    let dir = &tmp.0;
    let src = builtin_dir();
    let object = src.join("syscalls.bpf.o");
    std::fs::copy(src.join("syscalls.yaml"), dir.join("good.yaml")).unwrap();
    std::fs::copy(&object, dir.join("good.bpf.o")).unwrap();
    std::fs::copy(src.join("syscalls.yaml"), dir.join("noobject.yaml")).unwrap();
    std::fs::write(dir.join("badyaml.yaml"), "metrics: [counters: {\n  - x").unwrap();
    std::fs::copy(&object, dir.join("badyaml.bpf.o")).unwrap();
    std::fs::write(dir.join("badkey.yaml"), BAD_KEY).unwrap();
    std::fs::copy(&object, dir.join("badkey.bpf.o")).unwrap();

    let exporter = Exporter::start(&Options {
        config_dir: Some(dir.clone()),
        config_names: ["good", "noobject", "badyaml", "badkey"]
            .map(String::from)
            .to_vec(),
        strict: false,
        keep_capabilities: None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let status = exporter.status();
    let get = |name: &str| {
        status
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no status for {name}: {status:?}"))
    };
    assert_eq!(get("good").error, None);
    assert!(get("good").programs.iter().all(|p| p.attached));
    let err = |name: &str| get(name).error.clone().unwrap_or_default();
    let e = err("noobject");
    assert!(
        e.contains("noobject.yaml") && e.contains("noobject.bpf.o"),
        "{e}"
    );
    let e = err("badyaml");
    assert!(
        e.contains("badyaml.yaml") && e.contains("invalid YAML"),
        "{e}"
    );
    let e = err("badkey");
    assert!(
        e.contains("badkey.yaml")
            && e.contains("syscalls_total")
            && e.contains("syscall 4")
            && e.contains("8 bytes"),
        "{e}"
    );
    assert_eq!(exporter.configs(), ["good"]);

    workload();
    let families = exporter.scrape();
    assert!(getppid_total(&families) >= 1000.0);
    assert_eq!(
        value(
            &families,
            "ebpf_exporter_enabled_configs",
            &[("name", "good")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &families,
            "ebpf_exporter_enabled_configs",
            &[("name", "badkey")]
        ),
        0.0
    );

    // Strict mode: an unknown field is fatal, naming file and field.
    std::fs::write(dir.join("unknown.yaml"), UNKNOWN_FIELD).unwrap();
    std::fs::copy(&object, dir.join("unknown.bpf.o")).unwrap();
    let Err(e) = Exporter::start(&Options {
        config_dir: Some(dir.clone()),
        config_names: ["good", "unknown"].map(String::from).to_vec(),
        strict: true,
        keep_capabilities: None,
    }) else {
        panic!("strict start with an unknown field succeeded");
    };
    let e = e.to_string();
    assert!(
        e.contains("unknown.yaml") && e.contains("bogus_setting"),
        "{e}"
    );
    // Not strict: a warning, and it runs.
    let lax = Exporter::start(&Options {
        config_dir: Some(dir.clone()),
        config_names: ["unknown"].map(String::from).to_vec(),
        strict: false,
        keep_capabilities: None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lax.configs(), ["unknown"]);

    // Nothing startable: an error naming each config.
    let Err(e) = Exporter::start(&Options {
        config_dir: Some(dir.clone()),
        config_names: ["noobject", "badkey"].map(String::from).to_vec(),
        strict: false,
        keep_capabilities: None,
    }) else {
        panic!("start with only broken configs succeeded");
    };
    let e = e.to_string();
    assert!(e.contains("noobject") && e.contains("badkey"), "{e}");
}

#[test]
fn concurrent_scrapes_never_go_back() {
    if !available() {
        return;
    }
    let exporter = Arc::new(
        Exporter::start(&Options {
            config_dir: None,
            config_names: vec!["syscalls".into(), "syscall_errors".into()],
            strict: false,
            keep_capabilities: None,
        })
        .unwrap_or_else(|e| panic!("{e}")),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                workload();
            }
        })
    };
    let scrapers: Vec<_> = (0..4)
        .map(|_| {
            let exporter = exporter.clone();
            std::thread::spawn(move || {
                let mut last = 0.0;
                for _ in 0..50 {
                    let families = exporter.scrape();
                    assert!(
                        families
                            .iter()
                            .any(|f| f.name() == "ebpf_exporter_syscalls_total"),
                        "scrape without syscalls_total"
                    );
                    let now = getppid_total(&families);
                    assert!(now >= last, "getppid went back: {last} -> {now}");
                    last = now;
                    let mut text = String::new();
                    encode_text(&families, &mut text);
                    assert!(text.contains("ebpf_exporter_syscalls_total{"));
                }
                last
            })
        })
        .collect();
    let results: Vec<_> = scrapers.into_iter().map(|t| t.join()).collect();
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    for r in results {
        let last = r.unwrap_or_else(|_| panic!("a scraper failed"));
        assert!(last > 0.0);
    }
}

/// `kaddrs`: the address of each listed kernel symbol is passed to the
/// program before load (as `kaddr_<symbol>`); a program counting under that
/// address is decoded back to the symbol by `ksym`. A symbol the kernel does
/// not have is named in the config's error.
#[test]
fn kaddrs_pass_kernel_addresses_to_the_program() {
    if !available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("bpfkit-kaddrs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf/testdata");
    std::fs::copy(data.join("exporter_kaddrs.bpf.o"), dir.join("kaddrs.bpf.o")).unwrap();
    let yaml = std::fs::read_to_string(data.join("exporter_kaddrs.yaml")).unwrap();
    std::fs::write(dir.join("kaddrs.yaml"), &yaml).unwrap();
    // The same object, asked for a symbol no kernel has.
    std::fs::copy(data.join("exporter_kaddrs.bpf.o"), dir.join("nosym.bpf.o")).unwrap();
    std::fs::write(
        dir.join("nosym.yaml"),
        yaml.replace("- vfs_read", "- no_such_symbol_here"),
    )
    .unwrap();
    let exporter = Exporter::start(&Options {
        config_dir: Some(dir.clone()),
        config_names: Vec::new(),
        strict: false,
        keep_capabilities: None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let status = exporter.status();
    let nosym = status.iter().find(|c| c.name == "nosym").unwrap();
    let err = nosym.error.as_deref().unwrap_or_default();
    assert!(
        err.contains("no kernel symbol `no_such_symbol_here`"),
        "{err}"
    );
    for _ in 0..3 {
        assert!(std::process::Command::new("/bin/true")
            .status()
            .unwrap()
            .success());
    }
    let families = exporter.scrape();
    let n = value(
        &families,
        "ebpf_exporter_kaddr_execs_total",
        &[("symbol", "vfs_read")],
    );
    assert!(n >= 3.0, "{}", {
        let mut s = String::new();
        encode_text(&families, &mut s);
        s
    });
    drop(exporter);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Scrapes until `done` holds for the families, or ten seconds pass (events
/// from perf buffers arrive on the exporter's own thread); returns the last.
fn scrape_until(exporter: &Exporter, done: impl Fn(&[Family]) -> bool) -> Vec<Family> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let families = exporter.scrape();
        if done(&families) || std::time::Instant::now() > deadline {
            return families;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `perf_event_array` counters: every event the program sends counts one
/// for its decoded labels; `regexp` drops a label set; `flush_interval`
/// starts the counts again; a counter whose perf event array is missing
/// names the file and the metric, and the others keep running.
#[test]
fn perf_event_array_counters_count_events() {
    if !available() {
        return;
    }
    let dir = TempDir::new("perf");
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf/testdata");
    let yaml = std::fs::read_to_string(data.join("exporter_perf.yaml")).unwrap();
    for name in ["perf", "flushed", "nomap"] {
        std::fs::copy(
            data.join("exporter_perf.bpf.o"),
            dir.0.join(format!("{name}.bpf.o")),
        )
        .unwrap();
    }
    std::fs::write(dir.0.join("perf.yaml"), &yaml).unwrap();
    std::fs::write(
        dir.0.join("flushed.yaml"),
        yaml.replace(
            "      perf_event_array: true\n",
            "      perf_event_array: true\n      flush_interval: 1s\n",
        ),
    )
    .unwrap();
    std::fs::write(
        dir.0.join("nomap.yaml"),
        yaml.replace("name: perf_syscalls_total", "name: perf_nothing_total"),
    )
    .unwrap();
    let exporter = Exporter::start(&Options {
        config_dir: Some(dir.0.clone()),
        config_names: Vec::new(),
        strict: false,
        keep_capabilities: None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let status = exporter.status();
    let nomap = status.iter().find(|c| c.name == "nomap").unwrap();
    let err = nomap.error.as_deref().unwrap_or_default();
    assert!(
        err.contains("nomap.yaml")
            && err.contains("metric `perf_nothing_total`")
            && err.contains("no map `perf_nothing_total`"),
        "{err}"
    );
    assert_eq!(exporter.configs(), ["flushed", "perf"]);

    let tgid = std::process::id().to_string();
    for _ in 0..300 {
        // SAFETY: these syscalls have no preconditions.
        unsafe {
            libc::getppid();
            libc::getpgid(0);
            libc::getsid(0);
        }
    }
    let name = "ebpf_exporter_perf_syscalls_total";
    let mine = |f: &[Family], syscall: &str| {
        value(f, name, &[("tgid", tgid.as_str()), ("syscall", syscall)])
    };
    let families = scrape_until(&exporter, |f| {
        mine(f, "getppid") >= 600.0 && mine(f, "getpgid") >= 600.0
    });
    let text = {
        let mut s = String::new();
        encode_text(&families, &mut s);
        s
    };
    // Both configs count every event: 300 of each, twice.
    assert_eq!(mine(&families, "getppid"), 600.0, "{text}");
    assert_eq!(mine(&families, "getpgid"), 600.0, "{text}");
    // getsid is kind 3, which the regexp drops.
    assert!(!text.contains("syscall=\"getsid\""), "{text}");
    assert!(!text.contains("unknown:"), "{text}");
    assert!(
        text.contains("dropped_perf_event_map_events_perf_syscalls_total 0"),
        "{text}"
    );

    // After the one-second flush of `flushed`, only `perf` still has them.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let families = exporter.scrape();
    assert_eq!(mine(&families, "getppid"), 300.0);
    assert_eq!(mine(&families, "getpgid"), 300.0);
}

/// Forks a child that moves itself into the cgroup `dir`, calls getppid
/// `n` times and exits; waits for it.
fn getppid_in_cgroup(dir: &std::path::Path, n: usize) {
    let procs = std::ffi::CString::new(
        dir.join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    // SAFETY: the child only makes async-signal-safe calls (open, write,
    // getppid, _exit) on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            // "0" moves the writer itself.
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(2);
            }
            libc::close(fd);
            for _ in 0..n {
                libc::getppid();
            }
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status:#x}"
    );
}

/// Polls `done` every 20 ms for up to ten seconds; whether it held.
fn eventually(done: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    done()
}

/// `cgroup_id_map`, as a hash map and as cgroup storage: cgroups matching
/// the regexps at start and cgroups created later are in the map (the
/// program counts only their getppid calls), a cgroup that does not match
/// is not, and a removed cgroup leaves the hash map.
#[test]
fn cgroup_id_map_follows_the_cgroup_tree() {
    if !available() {
        return;
    }
    let root = bpfkit_exporter::decoders::cgroup2_root();
    let base = root.join(format!("bpfkit-cgmap-{}", std::process::id()));
    let _ = std::fs::remove_dir(base.join("match-early"));
    std::fs::create_dir_all(base.join("match-early")).unwrap();
    std::fs::create_dir_all(base.join("other")).unwrap();
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for d in ["match-early", "match-late", "other"] {
                let _ = std::fs::remove_dir(self.0.join(d));
            }
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _cleanup = Cleanup(base.clone());

    let dir = TempDir::new("cgmap");
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf/testdata");
    let yaml = std::fs::read_to_string(data.join("exporter_cgroup.yaml"))
        .unwrap()
        .replace(
            "- /match",
            &format!("- {}/match", base.file_name().unwrap().to_string_lossy()),
        );
    for (name, object, map_type) in [
        ("cghash", "exporter_cgroup_hash.bpf.o", "hash"),
        ("cgstorage", "exporter_cgroup_storage.bpf.o", "cgrp_storage"),
    ] {
        std::fs::copy(data.join(object), dir.0.join(format!("{name}.bpf.o"))).unwrap();
        std::fs::write(
            dir.0.join(format!("{name}.yaml")),
            yaml.replace("type: hash", &format!("type: {map_type}")),
        )
        .unwrap();
    }
    let exporter = Exporter::start(&Options {
        config_dir: Some(dir.0.clone()),
        config_names: Vec::new(),
        strict: true,
        keep_capabilities: None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(exporter.configs(), ["cghash", "cgstorage"]);

    use std::os::unix::fs::MetadataExt;
    let id = |d: &str| std::fs::metadata(base.join(d)).unwrap().ino();
    let filter = exporter.map("cghash", "cgroup_filter").unwrap();
    let in_filter = |d: &str| filter.lookup(&id(d).to_ne_bytes()).unwrap().is_some();
    assert!(in_filter("match-early"));
    assert!(!in_filter("other"));

    std::fs::create_dir(base.join("match-late")).unwrap();
    assert!(
        eventually(|| in_filter("match-late")),
        "a new cgroup never reached the map"
    );
    // The storage map is written in the same pass as the hash map.
    for d in ["match-early", "match-late", "other"] {
        getppid_in_cgroup(&base.join(d), 40);
    }
    let families = exporter.scrape();
    let path = |d: &str| base.join(d).to_string_lossy().into_owned();
    let count = |d: &str| {
        value(
            &families,
            "ebpf_exporter_filtered_getppid_total",
            &[("cgroup", path(d).as_str())],
        )
    };
    let text = {
        let mut s = String::new();
        encode_text(&families, &mut s);
        s
    };
    // Both configs count: 40 each.
    assert_eq!(count("match-early"), 80.0, "{text}");
    assert_eq!(count("match-late"), 80.0, "{text}");
    assert_eq!(count("other"), 0.0, "{text}");

    let late = id("match-late");
    std::fs::remove_dir(base.join("match-late")).unwrap();
    assert!(
        eventually(|| filter.lookup(&late.to_ne_bytes()).unwrap().is_none()),
        "a removed cgroup stayed in the map"
    );
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace of the test's own, deleted on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// Programs attached by their sections alone: `perf_event/type=1,config=0,
/// frequency=199` samples the CPU clock on every CPU and `xdp/lo` counts
/// the packets of the exporter's network namespace's loopback (a namespace
/// the test makes, so the host's lo is left alone).
#[test]
fn perf_event_and_xdp_sections_attach() {
    if !available() {
        return;
    }
    let ns = Netns(format!("bpfkit-exp-{}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    let dir = TempDir::new("attach");
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf/testdata");
    std::fs::copy(
        data.join("exporter_attach.bpf.o"),
        dir.0.join("attach.bpf.o"),
    )
    .unwrap();
    std::fs::copy(data.join("exporter_attach.yaml"), dir.0.join("attach.yaml")).unwrap();
    let config_dir = dir.0.clone();
    let netns = ns.0.clone();
    std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/run/netns/{netns}")).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: setns on this thread only, with a valid netns fd.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        let exporter = Exporter::start(&Options {
            config_dir: Some(config_dir),
            config_names: Vec::new(),
            strict: true,
            keep_capabilities: None,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let status = exporter.status();
        for p in &status[0].programs {
            assert!(p.attached, "{p:?}");
        }
        // Ten pings over lo: at least 20 packets (requests and replies).
        ip(&[
            "netns",
            "exec",
            &netns,
            "ping",
            "-q",
            "-c",
            "10",
            "-i",
            "0.02",
            "127.0.0.1",
        ]);
        let families = scrape_until(&exporter, |f| {
            value(f, "ebpf_exporter_cpu_clock_samples_total", &[]) > 0.0
        });
        let packets = value(&families, "ebpf_exporter_lo_xdp_packets_total", &[]);
        assert!(packets >= 20.0, "{packets} packets");
        assert!(value(&families, "ebpf_exporter_cpu_clock_samples_total", &[]) > 0.0);
    })
    .join()
    .unwrap();
}
