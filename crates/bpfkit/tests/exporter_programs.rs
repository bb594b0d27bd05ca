//! The exporter's built-in programs (bpf/exporter): each object loads and
//! attaches in the kernel and counts a known workload under the right key,
//! and each YAML config (ebpf_exporter's format) describes its object's maps:
//! every metric names a map, and its labels' sizes and paddings add up to
//! that map's key size. Loading is root only: skipped with a reason
//! otherwise, a failure under CI=true.

mod common;
use common::available;

use bpfkit::{Engine, Loaded, Object};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

/// Every config shipped, by name: `<name>.yaml` beside `<name>.bpf.o`.
const PROGRAMS: [&str; 5] = [
    "syscalls",
    "syscall_errors",
    "execs",
    "schedlat",
    "biolatency",
];

/// The decoders ebpf_exporter knows (decoder/decoder.go).
const DECODERS: [&str; 18] = [
    "cgroup",
    "dname",
    "errno",
    "hex",
    "ifname",
    "inet_ip",
    "kstack",
    "ksym",
    "majorminor",
    "pci_class",
    "pci_device",
    "pci_subclass",
    "pci_vendor",
    "regexp",
    "static_map",
    "string",
    "syscall",
    "uint",
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf/exporter")
}

fn open(name: &str) -> Object {
    Object::open(dir().join(format!("{name}.bpf.o"))).unwrap_or_else(|e| panic!("{e}"))
}

/// Loads `<name>.bpf.o` into the kernel and attaches every program in it.
fn load_and_attach(name: &str) -> Loaded {
    let obj = open(name);
    let file = obj.parse().unwrap_or_else(|e| panic!("{e}"));
    let mut loaded = obj.load(Engine::Kernel).unwrap_or_else(|e| panic!("{e}"));
    assert!(!file.programs.is_empty(), "{name}: no programs");
    for p in &file.programs {
        // Where its section says, as the exporter attaches it.
        loaded
            .attach_auto(&p.name)
            .unwrap_or_else(|e| panic!("{name}: program `{}`: {e}", p.name));
    }
    loaded
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// A counter's value at `key` (0 when the key is not there yet).
fn counter(l: &Loaded, map: &str, key: &[u8]) -> u64 {
    let m = l.map(map).unwrap();
    assert_eq!(m.key_size(), key.len(), "map `{map}`");
    m.lookup(key).unwrap().map_or(0, |v| u64_at(&v, 0))
}

/// Runs `work` on a new thread and waits for it.
fn on_thread(work: impl FnOnce() + Send + 'static) {
    std::thread::spawn(work).join().unwrap();
}

// ---- the configs ----

struct Label {
    name: String,
    size: u64,
    padding: u64,
    decoders: Vec<String>,
}

struct Metric {
    name: String,
    histogram: bool,
    labels: Vec<Label>,
    /// For histograms.
    bucket_max: u64,
}

fn config(name: &str) -> Vec<Metric> {
    let path = dir().join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let doc: Value =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let metrics = &doc["metrics"];
    let mut out = Vec::new();
    for (kind, histogram) in [("counters", false), ("histograms", true)] {
        let Some(list) = metrics[kind].as_sequence() else {
            continue;
        };
        for m in list {
            let metric = m["name"].as_str().expect("metric name").to_string();
            let ctx = format!("{name}.yaml: {metric}");
            assert!(
                m["help"].as_str().is_some_and(|h| !h.is_empty()),
                "{ctx}: no help"
            );
            let labels = m["labels"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{ctx}: no labels"))
                .iter()
                .map(|l| Label {
                    name: l["name"].as_str().expect("label name").to_string(),
                    size: l["size"].as_u64().unwrap_or(0),
                    padding: l["padding"].as_u64().unwrap_or(0),
                    decoders: l["decoders"]
                        .as_sequence()
                        .map(|d| {
                            d.iter()
                                .map(|d| d["name"].as_str().expect("decoder name").to_string())
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect();
            let bucket_max = if histogram {
                assert_eq!(m["bucket_type"].as_str(), Some("exp2"), "{ctx}");
                assert_eq!(m["bucket_min"].as_u64(), Some(0), "{ctx}");
                assert!(
                    m["bucket_multiplier"].as_f64().is_some_and(|x| x > 0.0),
                    "{ctx}: bucket_multiplier"
                );
                m["bucket_max"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{ctx}: no bucket_max"))
            } else {
                0
            };
            out.push(Metric {
                name: metric,
                histogram,
                labels,
                bucket_max,
            });
        }
    }
    assert!(!out.is_empty(), "{name}.yaml defines no metrics");
    out
}

/// What ebpf_exporter checks when it decodes a key, checked ahead of time:
/// every label has a size and decoders it knows, `uint` reads a width it
/// can, and a histogram's last label is its u64 bucket.
fn check_labels(config: &str, m: &Metric) {
    let ctx = format!("{config}.yaml: {}", m.name);
    assert!(!m.labels.is_empty(), "{ctx}: no labels");
    for l in &m.labels {
        assert!(l.size > 0, "{ctx}: label `{}` has no size", l.name);
        assert!(
            !l.decoders.is_empty(),
            "{ctx}: label `{}` has no decoders",
            l.name
        );
        for d in &l.decoders {
            assert!(
                DECODERS.contains(&d.as_str()),
                "{ctx}: label `{}`: unknown decoder `{d}`",
                l.name
            );
        }
        if l.decoders[0] == "uint" {
            assert!(
                [1, 2, 4, 8].contains(&l.size),
                "{ctx}: label `{}`: uint reads 1, 2, 4 or 8 bytes, not {}",
                l.name,
                l.size
            );
        }
    }
    if m.histogram {
        let b = m.labels.last().unwrap();
        assert_eq!(
            (b.size, b.padding, b.decoders.as_slice()),
            (8, 0, &["uint".to_string()][..]),
            "{ctx}: the last label is the bucket, a u64 read with uint"
        );
    }
}

fn key_size(m: &Metric) -> u64 {
    m.labels.iter().map(|l| l.size + l.padding).sum()
}

#[test]
fn configs_describe_their_objects() {
    // The object as bpfkit reads it: no kernel needed.
    for name in PROGRAMS {
        let file = open(name).parse().unwrap_or_else(|e| panic!("{e}"));
        for m in config(name) {
            check_labels(name, &m);
            let spec = file
                .maps
                .iter()
                .find(|s| s.name == m.name)
                .unwrap_or_else(|| panic!("{name}.yaml: metric `{}` names no map", m.name));
            assert_eq!(
                key_size(&m),
                spec.key_size as u64,
                "{name}.yaml: the labels of `{}` do not add up to its key",
                m.name
            );
            assert_eq!(spec.value_size, 8, "{name}: `{}` values are u64", m.name);
        }
    }
    // The maps the kernel created.
    if !available() {
        return;
    }
    for name in PROGRAMS {
        let loaded = open(name)
            .load(Engine::Kernel)
            .unwrap_or_else(|e| panic!("{e}"));
        for m in config(name) {
            assert!(
                loaded.map_names().contains(&m.name),
                "{name}: no map `{}` in the kernel",
                m.name
            );
            let map = loaded.map(&m.name).unwrap();
            assert_eq!(
                key_size(&m),
                map.key_size() as u64,
                "{name}.yaml: the labels of `{}` do not add up to its key",
                m.name
            );
            assert_eq!(map.value_size(), 8, "{name}: `{}`", m.name);
        }
    }
}

// ---- the counters ----

#[test]
fn syscalls_counts_calls_by_syscall_number() {
    if !available() {
        return;
    }
    const N: u64 = 1000;
    let l = load_and_attach("syscalls");
    let key = (libc::SYS_getppid as u64).to_ne_bytes();
    let before = counter(&l, "syscalls_total", &key);
    on_thread(|| {
        for _ in 0..N {
            // SAFETY: getppid takes no arguments and cannot fail.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
    });
    let after = counter(&l, "syscalls_total", &key);
    // Counts are system-wide: others may call getppid too.
    assert!(after - before >= N, "getppid: {before} -> {after}");
    // Every key is a syscall number the `syscall` decoder can read.
    for (k, _) in l.map("syscalls_total").unwrap().entries().unwrap() {
        assert!(u64_at(&k, 0) <= i64::MAX as u64, "key {k:?}");
    }
}

#[test]
fn syscall_errors_counts_failures_by_syscall_and_errno() {
    if !available() {
        return;
    }
    const N: u64 = 500;
    let l = load_and_attach("syscall_errors");
    let key: Vec<u8> = [libc::SYS_close as u64, libc::EBADF as u64]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect();
    let before = counter(&l, "syscall_errors_total", &key);
    on_thread(|| {
        for _ in 0..N {
            // SAFETY: closing fd -1 fails with EBADF and touches nothing.
            let r = unsafe { libc::syscall(libc::SYS_close, -1 as libc::c_long) };
            assert_eq!(r, -1);
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EBADF)
            );
        }
    });
    let after = counter(&l, "syscall_errors_total", &key);
    assert!(after - before >= N, "close/EBADF: {before} -> {after}");
    // Errnos are positive and at most MAX_ERRNO, as the `errno` decoder
    // wants them.
    for (k, _) in l.map("syscall_errors_total").unwrap().entries().unwrap() {
        let errno = u64_at(&k, 8);
        assert!((1..=4095).contains(&errno), "key {k:?}");
    }
}

#[test]
fn execs_counts_execs_by_comm() {
    if !available() {
        return;
    }
    const N: u64 = 10;
    let l = load_and_attach("execs");
    let mut key = [0u8; 16];
    key[..4].copy_from_slice(b"true");
    let before = counter(&l, "execs_total", &key);
    for _ in 0..N {
        let status = Command::new("/bin/true").status().unwrap();
        assert!(status.success());
    }
    let after = counter(&l, "execs_total", &key);
    assert!(after - before >= N, "execs of true: {before} -> {after}");
    // Every key is a NUL-padded name, as the `string` decoder reads it.
    for (k, _) in l.map("execs_total").unwrap().entries().unwrap() {
        let len = k.iter().position(|&b| b == 0).unwrap_or(k.len());
        assert!(k[len..].iter().all(|&b| b == 0), "key {k:?}");
    }
}

// ---- the histograms ----

/// A histogram map: labels (the key without its bucket) -> bucket -> value.
/// Checks every bucket is one the config declares, or the sum slot after
/// them.
fn histogram(l: &Loaded, m: &Metric) -> BTreeMap<Vec<u8>, BTreeMap<u64, u64>> {
    let mut out: BTreeMap<Vec<u8>, BTreeMap<u64, u64>> = BTreeMap::new();
    for (k, v) in l.map(&m.name).unwrap().entries().unwrap() {
        let at = k.len() - 8;
        let bucket = u64_at(&k, at);
        assert!(
            bucket <= m.bucket_max + 1,
            "{}: bucket {bucket} is past bucket_max {} + 1 (the sum)",
            m.name,
            m.bucket_max
        );
        out.entry(k[..at].to_vec())
            .or_default()
            .insert(bucket, u64_at(&v, 0));
    }
    out
}

/// How many observations a histogram holds (its sum slot aside).
fn observations(buckets: &BTreeMap<u64, u64>, bucket_max: u64) -> u64 {
    buckets.range(..=bucket_max).map(|(_, n)| n).sum()
}

fn histogram_metric(config_name: &str) -> Metric {
    let mut metrics = config(config_name);
    assert_eq!(metrics.len(), 1);
    let m = metrics.pop().unwrap();
    assert!(m.histogram);
    m
}

#[test]
fn schedlat_observes_wakeups() {
    if !available() {
        return;
    }
    const N: u64 = 50;
    let m = histogram_metric("schedlat");
    let l = load_and_attach("schedlat");
    let total = |l: &Loaded| -> u64 {
        let h = histogram(l, &m);
        // The only label is the bucket.
        assert!(h.keys().all(|labels| labels.is_empty()));
        h.values().map(|b| observations(b, m.bucket_max)).sum()
    };
    let before = total(&l);
    // Each sleep blocks the thread; its timer wakes it and it is switched
    // back in: one observation each, at least.
    on_thread(|| {
        for _ in 0..N {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
    let after = total(&l);
    assert!(after - before >= N, "observations: {before} -> {after}");
    let h = histogram(&l, &m);
    assert!(
        h[&Vec::new()].contains_key(&(m.bucket_max + 1)) || after == 0,
        "no sum slot"
    );
}

/// The (major, minor) pairs of /proc/partitions, which ebpf_exporter's
/// `majorminor` decoder names devices by.
fn partitions() -> Vec<(u32, u32)> {
    std::fs::read_to_string("/proc/partitions")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                [major, minor, _, _] => Some((major.parse().ok()?, minor.parse().ok()?)),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn biolatency_observes_synced_writes() {
    if !available() {
        return;
    }
    const N: u64 = 8;
    const REQ_OP_WRITE: u32 = 1;
    let m = histogram_metric("biolatency");
    let l = load_and_attach("biolatency");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dev = std::fs::metadata(&dir).unwrap().dev();
    if libc::major(dev) == 0 {
        eprintln!(
            "biolatency workload skipped: {} is on no block device (the programs did attach)",
            dir.display()
        );
        return;
    }
    let writes = |l: &Loaded| -> u64 {
        histogram(l, &m)
            .iter()
            .filter(|(labels, _)| {
                u32::from_ne_bytes(labels[4..8].try_into().unwrap()) == REQ_OP_WRITE
            })
            .map(|(_, b)| observations(b, m.bucket_max))
            .sum()
    };
    let before = writes(&l);
    let path = dir.join(format!("biolatency-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0x5au8; 4096];
        // Each fdatasync waits for the new block to reach the disk: one
        // write request each, at least.
        for _ in 0..N {
            f.write_all(&block).unwrap();
            f.sync_data().unwrap();
        }
    }
    std::fs::remove_file(&path).unwrap();
    let after = writes(&l);
    assert!(after - before >= N, "writes: {before} -> {after}");
    // Every device is one the `majorminor` decoder can name.
    let known = partitions();
    for labels in histogram(&l, &m).keys() {
        let dev = u32::from_ne_bytes(labels[..4].try_into().unwrap());
        let (major, minor) = ((dev >> 8) & 0xfff, (dev & 0xff) | ((dev >> 12) & !0xff));
        assert!(
            dev == 0 || known.contains(&(major, minor)),
            "device {major}:{minor} is not in /proc/partitions"
        );
    }
}
