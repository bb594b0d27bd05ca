//! ebpf_exporter's config format: real configs parse into the expected
//! structures, broken ones fail naming the file, the metric and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bpfkit_exporter::config::{
    self, BucketType, CgroupIdMap, CgroupIdMapType, Config, ConfigError, DecoderConfig, Histogram,
    Label, KNOWN_DECODERS,
};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn parse_data(file: &str) -> (Config, Vec<config::Warning>) {
    let path = data(file);
    let text = std::fs::read_to_string(&path).unwrap();
    config::parse(&path, &text, true).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// One line per metric or span: name, kind, buckets, then labels as
/// `name size[+padding] [decoders]`.
fn summary(config: &Config) -> Vec<String> {
    fn labels(labels: &[Label]) -> String {
        labels
            .iter()
            .map(|l| {
                let decoders: Vec<String> = l
                    .decoders
                    .iter()
                    .map(|d| match d.name.as_str() {
                        "static_map" => format!("static_map{{{}}}", d.static_map.len()),
                        "regexp" => format!("regexp{{{}}}", d.regexps.len()),
                        other => other.to_string(),
                    })
                    .collect();
                let padding = if l.padding > 0 {
                    format!("+{}", l.padding)
                } else {
                    String::new()
                };
                format!("{} {}{} [{}]", l.name, l.size, padding, decoders.join(","))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
    let mut out = Vec::new();
    for c in &config.metrics.counters {
        let perf = if c.perf_event_array {
            " perf_event_array"
        } else {
            ""
        };
        out.push(format!("counter {}{perf}: {}", c.name, labels(&c.labels)));
    }
    for h in &config.metrics.histograms {
        let buckets = match h.bucket_type {
            BucketType::Fixed => format!("{:?}", h.bucket_keys),
            _ => format!("{}..{}", h.bucket_min, h.bucket_max),
        };
        out.push(format!(
            "histogram {} {} {buckets} x{}: {}",
            h.name,
            h.bucket_type,
            h.bucket_multiplier,
            labels(&h.labels)
        ));
    }
    for s in &config.tracing.spans {
        out.push(format!(
            "span {} ringbuf={} service={}: {}",
            s.name,
            s.ringbuf,
            s.service,
            labels(&s.labels)
        ));
    }
    out
}

#[test]
fn real_configs_parse() {
    let table: &[(&str, &[&str])] = &[
        (
            "biolatency.yaml",
            &["histogram bio_latency_seconds exp2 0..27 x0.000001: device 4 [majorminor], operation 4 [uint,static_map{8}], bucket 8 [uint]"],
        ),
        ("timers.yaml", &["counter timer_starts_total: function 8 [ksym]"]),
        (
            "syscalls.yaml",
            &[
                "counter syscalls_total: syscall 8 [uint,syscall]",
                "counter syscall_errors_total: errno 8 [uint,errno]",
            ],
        ),
        ("cgroup.yaml", &["counter cgroup_sched_migrations_total: cgroup 8 [uint,cgroup]"]),
        ("shrinklat.yaml", &["histogram shrink_node_latency_seconds exp2 0..26 x0.000001: bucket 4 [uint]"]),
        (
            "llcstat.yaml",
            &["counter llc_references_total: cpu 4 [uint]", "counter llc_misses_total: cpu 4 [uint]"],
        ),
        ("oomkill.yaml", &["counter oom_kills_total perf_event_array: cgroup_path 8 [uint,cgroup]"]),
        (
            "percpu-softirq.yaml",
            &["counter softirqs_total: vec 4 [uint,static_map{10}], cpu 2 [uint]"],
        ),
        ("regexp.yaml", &["counter mm_shrink_slab_events_total: comm 16 [string,regexp{3}]"]),
        (
            "cgroup_id_map.yaml",
            &[
                "counter cgroup_sched_migrations_total: cgroup 8 [uint,cgroup]",
                "counter cgroup_sched_migrations_not_match_total: cgroup 8 [uint,cgroup]",
            ],
        ),
        (
            "cgroup_id_map_cgrp_storage.yaml",
            &["counter cgroup_sched_migrations_total: cgroup 8 [uint,cgroup]"],
        ),
        (
            "pci.yaml",
            &["counter pci_user_read_config_ops_total: pci_vendor 4 [uint,pci_vendor], pci_device 4 [uint,pci_device], pci_class 2 [uint,pci_class], pci_subclass 2 [uint,pci_subclass]"],
        ),
        ("kstack.yaml", &["counter mark_page_accessed_total: kstack 160 [kstack]"]),
        ("tcp-syn-backlog.yaml", &["histogram tcp_syn_backlog linear 0..20 x50: bucket 8 [uint]"]),
        ("tcp-syn-backlog-exp2zero.yaml", &["histogram tcp_syn_backlog exp2zero 0..17 x1: bucket 8 [uint]"]),
        ("inet-frags.yaml", &["counter inet_frags_total: interface 4 [ifname], ip_version 1+3 [uint]"]),
        ("bpf-jit.yaml", &["counter bpf_jit_pages_currently_allocated: "]),
        (
            "sched-trace.yaml",
            &["span sched_switch ringbuf=sched_switch_spans service=sched: trace_id 16 [hex], parent_span_id 8 [hex], span_id 8 [hex], span_monotonic_timestamp_ns 8 [uint], span_duration_ns 8 [uint], state 4 [uint,static_map{3}], preempt 1 [uint,static_map{2}]"],
        ),
        (
            "fixed-buckets.yaml",
            &[
                "counter exec_total perf_event_array: comm 16 [string]",
                "histogram request_size_bytes fixed [64.0, 512.0, 4096.0, 65536.0] x1: op 1+7 [uint,static_map{2}], bucket 8 [uint]",
            ],
        ),
    ];
    for (file, expected) in table {
        let (config, warnings) = parse_data(file);
        assert_eq!(summary(&config), *expected, "{file}");
        assert!(warnings.is_empty(), "{file}: {warnings:?}");
        assert_eq!(config.name, file.trim_end_matches(".yaml"), "{file}");
        assert_eq!(
            config.object_path(),
            data(&format!("{}.bpf.o", config.name)),
            "{file}"
        );
    }
}

#[test]
fn biolatency_structure() {
    let (config, _) = parse_data("biolatency.yaml");
    assert_eq!(config.name, "biolatency");
    assert!(config.kaddrs.is_empty());
    assert_eq!(config.cgroup_id_map, None);
    assert!(config.metrics.counters.is_empty());
    let h = &config.metrics.histograms[0];
    let static_map: BTreeMap<String, String> = [
        ("0", "read"),
        ("1", "write"),
        ("2", "flush"),
        ("3", "discard"),
        ("5", "secure_erase"),
        ("9", "write_zeroes"),
        ("34", "drv_in"),
        ("35", "drv_out"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let decoder = |name: &str| DecoderConfig {
        name: name.to_string(),
        ..DecoderConfig::default()
    };
    let expected = Histogram {
        name: "bio_latency_seconds".into(),
        help: "Block IO latency histogram".into(),
        bucket_type: BucketType::Exp2,
        bucket_multiplier: 0.000001,
        bucket_min: 0,
        bucket_max: 27,
        bucket_keys: vec![],
        labels: vec![
            Label {
                name: "device".into(),
                size: 4,
                padding: 0,
                decoders: vec![decoder("majorminor")],
            },
            Label {
                name: "operation".into(),
                size: 4,
                padding: 0,
                decoders: vec![
                    decoder("uint"),
                    DecoderConfig {
                        static_map,
                        ..decoder("static_map")
                    },
                ],
            },
            Label {
                name: "bucket".into(),
                size: 8,
                padding: 0,
                decoders: vec![decoder("uint")],
            },
        ],
    };
    assert_eq!(*h, expected);
    let exported: Vec<&str> = h
        .exported_labels()
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(exported, ["device", "operation"]);
    assert_eq!(h.bucket_label().unwrap().name, "bucket");
}

#[test]
fn other_fields() {
    let (config, _) = parse_data("cgroup_id_map.yaml");
    assert_eq!(
        config.cgroup_id_map,
        Some(CgroupIdMap {
            name: "cgroup_id_map".into(),
            map_type: CgroupIdMapType::Hash,
            regexps: vec!["^.*(system.slice/.*)$".into()],
        })
    );
    let (config, _) = parse_data("cgroup_id_map_cgrp_storage.yaml");
    let map = config.cgroup_id_map.unwrap();
    assert_eq!(map.map_type, CgroupIdMapType::CgrpStorage);
    assert_eq!(map.map_type.key_size(), 4);

    let (config, _) = parse_data("bpf-jit.yaml");
    assert_eq!(config.kaddrs, ["bpf_jit_current"]);
    assert!(config.metrics.counters[0].labels.is_empty());

    let (config, _) = parse_data("regexp.yaml");
    let regexp = &config.metrics.counters[0].labels[0].decoders[1];
    assert_eq!(regexp.regexps, ["^(kswapd).*$", "^(systemd.*)$", "^.*$"]);

    let (config, _) = parse_data("oomkill.yaml");
    assert!(config.metrics.counters[0].perf_event_array);
    assert_eq!(config.metrics.counters[0].flush_interval, None);

    let (config, _) = parse_data("fixed-buckets.yaml");
    let exec = &config.metrics.counters[0];
    assert_eq!(exec.flush_interval, Some(Duration::from_secs(90)));
    let op = &config.metrics.histograms[0].labels[0].decoders[1];
    assert!(op.allow_unknown);
    assert_eq!(config.metrics.histograms[0].bucket_min, 0);
    assert_eq!(config.metrics.histograms[0].bucket_max, 0);

    assert_eq!(KNOWN_DECODERS.len(), 18);
}

/// Configs that load, with the warnings they give outside strict mode.
#[test]
fn warnings() {
    let table: &[(&str, &str, &[&str])] = &[
        (
            "unknown label field",
            "metrics:\n  counters:\n    - name: x\n      help: X\n      labels:\n        - name: a\n          size: 8\n          sizee: 4\n          decoders: [{name: uint}]\n",
            &["w.yaml: metric `x`: field `labels[0].sizee`: unknown field (did you mean `size`?)"],
        ),
        (
            "unknown top-level and metrics fields",
            "metrics:\n  countres: []\n  counters: [{name: x, help: X}]\nprogram: foo\n",
            &[
                "w.yaml: field `program`: unknown field",
                "w.yaml: field `metrics.countres`: unknown field (did you mean `counters`?)",
            ],
        ),
        (
            "unknown decoder field",
            "metrics:\n  counters:\n    - name: x\n      help: X\n      labels:\n        - name: a\n          size: 8\n          decoders: [{name: uint, base: 16}]\n",
            &["w.yaml: metric `x`: field `labels[0].decoders[0].base`: unknown field"],
        ),
        (
            "flush_interval without perf_event_array",
            "metrics:\n  counters: [{name: x, help: X, flush_interval: 10s}]\n",
            &["w.yaml: metric `x`: field `flush_interval`: has no effect without `perf_event_array: true`"],
        ),
        (
            "bare number flush_interval is nanoseconds",
            "metrics:\n  counters: [{name: x, help: X, perf_event_array: true, flush_interval: 60}]\n",
            &["w.yaml: metric `x`: field `flush_interval`: a bare number is 60 nanoseconds; write a unit, e.g. `60s`"],
        ),
        (
            "linear without multiplier",
            "metrics:\n  histograms:\n    - {name: h, help: H, bucket_type: linear, bucket_max: 10, labels: [{name: bucket, size: 8, decoders: [{name: uint}]}]}\n",
            &["w.yaml: metric `h`: field `bucket_multiplier`: not set for a linear histogram: buckets are 1 apart"],
        ),
        (
            "bucket_keys on exp2",
            "metrics:\n  histograms:\n    - {name: h, help: H, bucket_type: exp2, bucket_max: 10, bucket_keys: [1], labels: [{name: bucket, size: 8, decoders: [{name: uint}]}]}\n",
            &["w.yaml: metric `h`: field `bucket_keys`: ignored for exp2 histograms (fixed only)"],
        ),
        (
            "bucket_max on fixed",
            "metrics:\n  histograms:\n    - {name: h, help: H, bucket_type: fixed, bucket_max: 10, bucket_keys: [1], labels: [{name: bucket, size: 8, decoders: [{name: uint}]}]}\n",
            &["w.yaml: metric `h`: field `bucket_max`: ignored for fixed histograms (they use bucket_keys)"],
        ),
        (
            "static_map on another decoder",
            "metrics:\n  counters:\n    - name: x\n      help: X\n      labels:\n        - {name: a, size: 8, decoders: [{name: uint, static_map: {1: one}}]}\n",
            &["w.yaml: metric `x`: field `labels[0].decoders[0].static_map`: ignored: only the `static_map` decoder uses it, this is `uint`"],
        ),
        (
            "top-level name",
            "name: other\nmetrics:\n  counters: [{name: x, help: X}]\n",
            &["w.yaml: field `name`: ignored: a config's name is its file name"],
        ),
    ];
    for (what, yaml, expected) in table {
        let (config, warnings) = config::parse(Path::new("w.yaml"), yaml, false)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(config.name, "w");
        let got: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(got, *expected, "{what}");
    }
}

const COUNTER_HEAD: &str = "metrics:\n  counters:\n    - name: x\n      help: X\n";
const HISTOGRAM_HEAD: &str = "metrics:\n  histograms:\n    - name: h\n      help: H\n";
const BUCKET_LABEL: &str = "      labels: [{name: bucket, size: 8, decoders: [{name: uint}]}]\n";

#[test]
fn broken_configs() {
    let counter = |rest: &str| format!("{COUNTER_HEAD}{rest}");
    let histogram = |rest: &str| format!("{HISTOGRAM_HEAD}{rest}");
    let exp2 = |rest: &str| histogram(&format!("      bucket_type: exp2\n{rest}"));
    let label =
        |fields: &str| counter(&format!("      labels:\n        - {{name: a, {fields}}}\n"));
    // (what, yaml, strict, exact error)
    let table: Vec<(&str, String, bool, &str)> = vec![
        (
            "bad YAML",
            "metrics:\n  counters:\n    - name: x\n   help: X\n".into(),
            false,
            "bad.yaml: invalid YAML at line 4 column 4: did not find expected key, while parsing a block mapping",
        ),
        (
            "duplicate YAML key",
            "metrics:\n  counters: []\n  counters: []\n".into(),
            false,
            "bad.yaml: invalid YAML at line 2 column 3: metrics: duplicate entry with key \"counters\"",
        ),
        (
            "not a mapping",
            "- metrics\n".into(),
            false,
            "bad.yaml: field `(top level)`: expected a mapping, found a list",
        ),
        ("empty", "".into(), false, "bad.yaml: field `metrics`: neither metrics nor tracing are defined"),
        (
            "no metrics",
            "metrics:\n  counters: []\nkaddrs: [foo]\n".into(),
            false,
            "bad.yaml: field `metrics`: neither metrics nor tracing are defined",
        ),
        (
            "unknown field, strict",
            label("size: 8, sizee: 4, decoders: [{name: uint}]"),
            true,
            "bad.yaml: metric `x`: field `labels[0].sizee`: unknown field (did you mean `size`?)",
        ),
        (
            "unknown top-level field, strict",
            "metrics:\n  counters: [{name: x, help: X}]\nkaddr: [foo]\n".into(),
            true,
            "bad.yaml: field `kaddr`: unknown field (did you mean `kaddrs`?)",
        ),
        (
            "unknown histogram field, strict",
            exp2(&format!("      bucket_maximum: 10\n      bucket_max: 10\n{BUCKET_LABEL}")),
            true,
            "bad.yaml: metric `h`: field `bucket_maximum`: unknown field",
        ),
        (
            "counter without name",
            "metrics:\n  counters:\n    - help: X\n".into(),
            false,
            "bad.yaml: field `metrics.counters[0].name`: a metric needs a name (its map's name)",
        ),
        (
            "counter without help",
            "metrics:\n  counters:\n    - name: x\n".into(),
            false,
            "bad.yaml: metric `x`: field `help`: a metric needs a help text",
        ),
        (
            "histogram with empty help",
            "metrics:\n  histograms:\n    - name: h\n      help: ''\n".into(),
            false,
            "bad.yaml: metric `h`: field `help`: a metric needs a help text",
        ),
        (
            "invalid metric name",
            "metrics:\n  counters:\n    - name: bio-latency\n      help: X\n".into(),
            false,
            "bad.yaml: metric `bio-latency`: field `name`: not a valid Prometheus metric name: use letters, digits, `_` and `:`",
        ),
        (
            "duplicate metric names",
            format!("{}  histograms:\n    - name: x\n      help: H\n", counter("")),
            false,
            "bad.yaml: metric `x`: field `name`: duplicate metric name, first defined at `metrics.counters[0]`",
        ),
        (
            "unknown decoder",
            label("size: 8, decoders: [{name: uint}, {name: sycall}]"),
            false,
            "bad.yaml: metric `x`: field `labels[0].decoders[1].name`: label `a`: unknown decoder `sycall` (did you mean `syscall`?)",
        ),
        (
            "label without size",
            label("decoders: [{name: ksym}]"),
            false,
            "bad.yaml: metric `x`: field `labels[0].size`: label `a` needs a size in bytes greater than zero",
        ),
        (
            "label size of wrong type",
            label("size: eight, decoders: [{name: ksym}]"),
            false,
            "bad.yaml: metric `x`: field `labels[0].size`: expected a whole number, found a string",
        ),
        (
            "negative padding",
            label("size: 1, padding: -3, decoders: [{name: uint}]"),
            false,
            "bad.yaml: metric `x`: field `labels[0].padding`: must not be negative, found -3",
        ),
        (
            "label without decoders",
            label("size: 8"),
            false,
            "bad.yaml: metric `x`: field `labels[0].decoders`: label `a` needs at least one decoder",
        ),
        (
            "uint of 3 bytes",
            label("size: 3, decoders: [{name: uint}]"),
            false,
            "bad.yaml: metric `x`: field `labels[0].size`: the `uint` decoder reads 1, 2, 4 or 8 bytes, but label `a` has 3",
        ),
        (
            "invalid label name",
            counter("      labels:\n        - {name: 1st, size: 8, decoders: [{name: uint}]}\n"),
            false,
            "bad.yaml: metric `x`: field `labels[0].name`: `1st` is not a valid Prometheus label name: use letters, digits and `_`, not starting with a digit or `__`",
        ),
        (
            "duplicate label names",
            counter("      labels:\n        - {name: a, size: 4, decoders: [{name: uint}]}\n        - {name: a, size: 4, decoders: [{name: uint}]}\n"),
            false,
            "bad.yaml: metric `x`: field `labels[1].name`: duplicate label name `a`, also labels[0]",
        ),
        (
            "static_map decoder without map",
            label("size: 4, decoders: [{name: uint}, {name: static_map}]"),
            false,
            "bad.yaml: metric `x`: field `labels[0].decoders[1].static_map`: the `static_map` decoder of label `a` needs a non-empty `static_map`",
        ),
        (
            "static_map that is a list",
            label("size: 4, decoders: [{name: uint}, {name: static_map, static_map: [read, write]}]"),
            false,
            "bad.yaml: metric `x`: field `labels[0].decoders[1].static_map`: expected a mapping, found a list",
        ),
        (
            "allow_unknown not a boolean",
            label("size: 4, decoders: [{name: uint}, {name: static_map, allow_unknown: maybe, static_map: {1: a}}]"),
            false,
            "bad.yaml: metric `x`: field `labels[0].decoders[1].allow_unknown`: expected a boolean, found \"maybe\"",
        ),
        (
            "regexp decoder without regexps",
            label("size: 16, decoders: [{name: string}, {name: regexp}]"),
            false,
            "bad.yaml: metric `x`: field `labels[0].decoders[1].regexps`: the `regexp` decoder of label `a` needs `regexps`",
        ),
        (
            "invalid regexp",
            label("size: 16, decoders: [{name: string}, {name: regexp, regexps: ['^ok$', '^(kswapd.*$']}]"),
            false,
            "bad.yaml: metric `x`: field `labels[0].decoders[1].regexps[1]`: invalid regexp \"^(kswapd.*$\": unclosed group",
        ),
        (
            "perf_event_array not a boolean",
            counter("      perf_event_array: 2\n"),
            false,
            "bad.yaml: metric `x`: field `perf_event_array`: expected a boolean, found a number",
        ),
        (
            "bad flush_interval",
            counter("      perf_event_array: true\n      flush_interval: 5 minutes\n"),
            false,
            "bad.yaml: metric `x`: field `flush_interval`: invalid duration \"5 minutes\": expected a Go duration like `30s`, `1m30s` or `500ms`",
        ),
        (
            "flush_interval with unknown unit",
            counter("      perf_event_array: true\n      flush_interval: 1d\n"),
            false,
            "bad.yaml: metric `x`: field `flush_interval`: invalid duration \"1d\": unknown unit `d`",
        ),
        (
            "negative flush_interval",
            counter("      perf_event_array: true\n      flush_interval: -5s\n"),
            false,
            "bad.yaml: metric `x`: field `flush_interval`: must not be negative",
        ),
        (
            "histogram without bucket_type",
            histogram(&format!("      bucket_max: 10\n{BUCKET_LABEL}")),
            false,
            "bad.yaml: metric `h`: field `bucket_type`: missing: one of exp2, exp2zero, linear, fixed",
        ),
        (
            "unknown bucket_type",
            histogram(&format!("      bucket_type: exp10\n      bucket_max: 10\n{BUCKET_LABEL}")),
            false,
            "bad.yaml: metric `h`: field `bucket_type`: unknown bucket type `exp10`: expected one of exp2, exp2zero, linear, fixed",
        ),
        (
            "bucket_max below bucket_min",
            exp2(&format!("      bucket_min: 10\n      bucket_max: 5\n{BUCKET_LABEL}")),
            false,
            "bad.yaml: metric `h`: field `bucket_max`: bucket_max (5) must be greater than bucket_min (10)",
        ),
        (
            "no buckets",
            exp2(BUCKET_LABEL),
            false,
            "bad.yaml: metric `h`: field `bucket_max`: bucket_max (0) must be greater than bucket_min (0)",
        ),
        (
            "negative bucket_min",
            histogram(&format!("      bucket_type: linear\n      bucket_min: -1\n      bucket_max: 5\n{BUCKET_LABEL}")),
            false,
            "bad.yaml: metric `h`: field `bucket_min`: must not be negative, found -1",
        ),
        (
            "exp2 beyond f64",
            exp2(&format!("      bucket_max: 1024\n{BUCKET_LABEL}")),
            false,
            "bad.yaml: metric `h`: field `bucket_max`: 1024 is too large for exp2 buckets (at most 1023)",
        ),
        (
            "negative multiplier",
            exp2(&format!("      bucket_max: 10\n      bucket_multiplier: -0.5\n{BUCKET_LABEL}")),
            false,
            "bad.yaml: metric `h`: field `bucket_multiplier`: must be positive, found -0.5",
        ),
        (
            "multiplier not a number",
            exp2(&format!("      bucket_max: 10\n      bucket_multiplier: micro\n{BUCKET_LABEL}")),
            false,
            "bad.yaml: metric `h`: field `bucket_multiplier`: expected a number, found a string",
        ),
        (
            "fixed without bucket_keys",
            histogram(&format!("      bucket_type: fixed\n{BUCKET_LABEL}")),
            false,
            "bad.yaml: metric `h`: field `bucket_keys`: a fixed histogram needs bucket keys",
        ),
        (
            "fixed with unsorted keys",
            histogram(&format!("      bucket_type: fixed\n      bucket_keys: [1, 10, 5]\n{BUCKET_LABEL}")),
            false,
            "bad.yaml: metric `h`: field `bucket_keys[2]`: bucket keys must be strictly increasing: 5 follows 10",
        ),
        (
            "fixed with duplicate keys",
            histogram(&format!("      bucket_type: fixed\n      bucket_keys: [1, 1]\n{BUCKET_LABEL}")),
            false,
            "bad.yaml: metric `h`: field `bucket_keys[1]`: bucket keys must be strictly increasing: 1 follows 1",
        ),
        (
            "fixed with a fractional key",
            histogram(&format!("      bucket_type: fixed\n      bucket_keys: [0.5, 1]\n{BUCKET_LABEL}")),
            false,
            "bad.yaml: metric `h`: field `bucket_keys[0]`: 0.5 is not a bucket index: kernel bucket keys are unsigned integers",
        ),
        (
            "histogram without labels",
            exp2("      bucket_max: 10\n"),
            false,
            "bad.yaml: metric `h`: field `labels`: a histogram needs at least one label: the last one is the bucket index",
        ),
        (
            "histogram bucket label that is not a number",
            exp2("      bucket_max: 10\n      labels: [{name: comm, size: 16, decoders: [{name: string}]}]\n"),
            false,
            "bad.yaml: metric `h`: field `labels[0].decoders`: the last label of a histogram is the bucket index and must decode to an integer, but its last decoder is `string` (use `uint`)",
        ),
        (
            "histogram label named le",
            exp2("      bucket_max: 10\n      labels:\n        - {name: le, size: 8, decoders: [{name: uint}]}\n        - {name: bucket, size: 8, decoders: [{name: uint}]}\n"),
            false,
            "bad.yaml: metric `h`: field `labels[0].name`: `le` is reserved for histogram buckets",
        ),
        (
            "labels not a list",
            counter("      labels: {name: a}\n"),
            false,
            "bad.yaml: metric `x`: field `labels`: expected a list, found a mapping",
        ),
        (
            "cgroup_id_map of unknown type",
            format!("{}cgroup_id_map:\n  name: ids\n  type: lru\n", counter("")),
            false,
            "bad.yaml: field `cgroup_id_map.type`: unknown cgroup_id_map type `lru`: expected hash or cgrp_storage",
        ),
        (
            "cgroup_id_map without name",
            format!("{}cgroup_id_map:\n  regexps: [foo]\n", counter("")),
            false,
            "bad.yaml: field `cgroup_id_map.name`: cgroup_id_map needs the name of its map",
        ),
        (
            "cgroup_id_map with invalid regexp",
            format!("{}cgroup_id_map:\n  name: ids\n  regexps: ['a[']\n", counter("")),
            false,
            "bad.yaml: field `cgroup_id_map.regexps[0]`: invalid regexp \"a[\": unclosed character class",
        ),
        (
            "kaddrs not a list",
            format!("{}kaddrs: bpf_jit_current\n", counter("")),
            false,
            "bad.yaml: field `kaddrs`: expected a list, found a string",
        ),
        (
            "empty kaddr",
            format!("{}kaddrs: ['']\n", counter("")),
            false,
            "bad.yaml: field `kaddrs[0]`: empty symbol name",
        ),
        (
            "span without ringbuf",
            "tracing:\n  spans:\n    - name: s\n      labels: [{name: trace_id, size: 16, decoders: [{name: hex}]}]\n".into(),
            false,
            "bad.yaml: field `tracing.spans[0].ringbuf`: a span needs the name of its ring buffer",
        ),
        (
            "span label with unknown decoder",
            "tracing:\n  spans:\n    - ringbuf: r\n      labels: [{name: trace_id, size: 16, decoders: [{name: hexx}]}]\n".into(),
            false,
            "bad.yaml: field `tracing.spans[0].labels[0].decoders[0].name`: label `trace_id`: unknown decoder `hexx` (did you mean `hex`?)",
        ),
    ];
    let mut names = std::collections::BTreeSet::new();
    for (what, yaml, strict, expected) in &table {
        assert!(names.insert(*what), "duplicate case {what}");
        match config::parse(Path::new("bad.yaml"), yaml, *strict) {
            Ok(_) => panic!("{what}: parsed"),
            Err(err) => {
                assert_eq!(err.to_string(), *expected, "{what}");
                assert_eq!(err.file(), Path::new("bad.yaml"), "{what}");
            }
        }
    }
    assert!(table.len() >= 30);
}

#[test]
fn error_accessors() {
    let yaml = format!(
        "{COUNTER_HEAD}      labels:\n        - {{name: a, size: 8, decoders: [{{name: nope}}]}}\n"
    );
    let err = config::parse(Path::new("bad.yaml"), &yaml, false).unwrap_err();
    assert_eq!(err.metric(), Some("x"));
    assert_eq!(err.field(), Some("labels[0].decoders[0].name"));
    match err {
        ConfigError::UnknownDecoder { label, decoder, .. } => {
            assert_eq!((label.as_str(), decoder.as_str()), ("a", "nope"));
        }
        other => panic!("{other:?}"),
    }
    let err = config::parse(Path::new("bad.yaml"), "metrics: [\n", false).unwrap_err();
    match err {
        ConfigError::Yaml { line, column, .. } => assert_eq!((line, column), (Some(2), Some(1))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn key_sizes() {
    // (file, metric, key size, per-CPU map, error or None)
    let table: &[(&str, &str, usize, bool, Option<&str>)] = &[
        ("biolatency.yaml", "bio_latency_seconds", 16, false, None),
        (
            "biolatency.yaml",
            "bio_latency_seconds",
            12,
            false,
            Some("map key is 12 bytes but the labels take 16 bytes (device 4 + operation 4 + bucket 8)"),
        ),
        ("shrinklat.yaml", "shrink_node_latency_seconds", 4, false, None),
        (
            "shrinklat.yaml",
            "shrink_node_latency_seconds",
            8,
            false,
            Some("map key is 8 bytes but the labels take 4 bytes (bucket 4)"),
        ),
        ("inet-frags.yaml", "inet_frags_total", 8, false, None),
        (
            "inet-frags.yaml",
            "inet_frags_total",
            5,
            false,
            Some("map key is 5 bytes but the labels take 8 bytes (interface 4 + ip_version 1+3)"),
        ),
        ("kstack.yaml", "mark_page_accessed_total", 160, false, None),
        ("bpf-jit.yaml", "bpf_jit_pages_currently_allocated", 4, false, None),
        (
            "bpf-jit.yaml",
            "bpf_jit_pages_currently_allocated",
            8,
            false,
            Some("map key is 8 bytes but the labels take 4 bytes (no labels: the key is a u32 0)"),
        ),
        // vec (4) + cpu (2) appended by the exporter.
        ("percpu-softirq.yaml", "softirqs_total", 4, true, None),
        (
            "percpu-softirq.yaml",
            "softirqs_total",
            6,
            true,
            Some("map key is 6 bytes but the labels take 6 bytes (vec 4 + cpu 2; per-CPU: the last 2 bytes are the cpu added by the exporter)"),
        ),
        ("llcstat.yaml", "llc_misses_total", 4, false, None),
        // perf event records: at least the labels.
        ("oomkill.yaml", "oom_kills_total", 64, false, None),
        (
            "oomkill.yaml",
            "oom_kills_total",
            4,
            false,
            Some("map key is 4 bytes but the labels take 8 bytes (cgroup_path 8; perf event records must hold at least the labels)"),
        ),
        ("timers.yaml", "nope", 8, false, Some("no metric `nope` in this config")),
    ];
    for (file, metric, key_size, percpu, expected) in table {
        let (config, _) = parse_data(file);
        let result = config.check_map_key_size(metric, *key_size, *percpu);
        let prefix = format!("{}: ", config.path.display());
        match (result, expected) {
            (Ok(()), None) => {}
            (Err(err), Some(expected)) => {
                let text = err.to_string();
                let text = text.strip_prefix(&prefix).unwrap_or(&text);
                let text = text
                    .strip_prefix(&format!("metric `{metric}`: "))
                    .unwrap_or(text);
                assert_eq!(text, *expected, "{file} {metric} {key_size}");
            }
            (got, want) => panic!("{file} {metric} {key_size}: got {got:?}, want {want:?}"),
        }
    }
    // check_key_size accepts either kind of map.
    let (config, _) = parse_data("percpu-softirq.yaml");
    assert!(config.check_key_size("softirqs_total", 4).is_ok());
    assert!(config.check_key_size("softirqs_total", 6).is_ok());
    let err = config.check_key_size("softirqs_total", 5).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: metric `softirqs_total`: map key is 5 bytes but the labels take 6 bytes (vec 4 + cpu 2)",
            config.path.display()
        )
    );
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bpfkit-exporter-config-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn load_dir() {
    let dir = TempDir::new("load");
    let d = &dir.0;
    for name in ["timers", "biolatency", "syscalls"] {
        std::fs::copy(
            data(&format!("{name}.yaml")),
            d.join(format!("{name}.yaml")),
        )
        .unwrap();
    }
    std::fs::write(d.join("timers.bpf.o"), b"").unwrap();
    std::fs::write(d.join("biolatency.bpf.o"), b"").unwrap();
    // syscalls.yaml has no object; broken.yaml has one but bad YAML.
    std::fs::write(d.join("broken.yaml"), "metrics: [\n").unwrap();
    std::fs::write(d.join("broken.bpf.o"), b"").unwrap();
    std::fs::write(
        d.join("warned.yaml"),
        "metrics:\n  counters: [{name: w_total, help: W, extra: 1}]\n",
    )
    .unwrap();
    std::fs::write(d.join("warned.bpf.o"), b"").unwrap();

    let names: Vec<String> = [
        "timers",
        "biolatency",
        "syscalls",
        "missing",
        "broken",
        "warned",
        "timers",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (configs, errors, warnings) = config::load(d, &names, false);
    let loaded: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(loaded, ["timers", "biolatency", "warned"]);
    assert_eq!(configs[0].path, d.join("timers.yaml"));
    assert_eq!(configs[0].object_path(), d.join("timers.bpf.o"));
    let p = |f: &str| d.join(f).display().to_string();
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            format!("{}: eBPF object {} not found", p("syscalls.yaml"), p("syscalls.bpf.o")),
            format!("{}: no such config file for config `missing` (from --config.names)", p("missing.yaml")),
            format!("{}: invalid YAML at line 2 column 1: did not find expected node content, while parsing a flow node", p("broken.yaml")),
            format!("{}: config `timers` is named twice in --config.names", p("timers.yaml")),
        ]
    );
    let warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [format!(
            "{}: metric `w_total`: field `extra`: unknown field",
            p("warned.yaml")
        )]
    );

    // Strict: the unknown field is an error and the config is left out.
    let (configs, errors, warnings) =
        config::load(d, &["warned".to_string(), "timers".to_string()], true);
    assert_eq!(configs.len(), 1);
    assert!(warnings.is_empty());
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        format!(
            "{}: metric `w_total`: field `extra`: unknown field",
            p("warned.yaml")
        )
    );
}

/// Every config in a checkout of ebpf_exporter's `examples/` parses, in
/// strict mode and without warnings. Runs when `EBPF_EXPORTER_EXAMPLES`
/// names that directory.
#[test]
fn upstream_examples() {
    let Some(dir) = std::env::var_os("EBPF_EXPORTER_EXAMPLES") else {
        return;
    };
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            match config::parse(&path, &text, true) {
                Ok((_, warnings)) => assert!(warnings.is_empty(), "{warnings:?}"),
                Err(err) => panic!("{err}"),
            }
            count += 1;
        }
    }
    assert!(count > 0);
}
