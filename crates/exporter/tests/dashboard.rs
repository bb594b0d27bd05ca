//! The Grafana dashboard shipped for the built-in set asks only for series
//! the built-in configs and the exporter's own metrics produce.

use bpfkit_exporter::config;
use bpfkit_exporter::runtime::BUILTIN;
use std::collections::BTreeSet;
use std::path::Path;

fn dashboard() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../bpf/exporter/grafana/bpfkit-exporter.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every series name the built-in set can serve.
fn served() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [
        "enabled_configs",
        "ebpf_program_info",
        "ebpf_program_attached",
        "decoder_errors_total",
        "ebpf_program_run_time_seconds",
        "ebpf_program_run_count_total",
    ]
    .iter()
    .map(|n| format!("ebpf_exporter_{n}"))
    .collect();
    for (name, yaml, _) in BUILTIN {
        let (c, _) = config::parse(Path::new(&format!("{name}.yaml")), yaml, true).unwrap();
        for m in &c.metrics.counters {
            names.insert(format!("ebpf_exporter_{}", m.name));
        }
        for h in &c.metrics.histograms {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("ebpf_exporter_{}{suffix}", h.name));
            }
        }
    }
    names
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    ("query", serde_json::Value::Object(q)) => {
                        if let Some(serde_json::Value::String(s)) = q.get("query") {
                            out.push(s.clone());
                        }
                    }
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn every_panel_queries_a_served_series() {
    let d = dashboard();
    let mut all = Vec::new();
    exprs(&d, &mut all);
    assert!(all.len() >= 8, "{all:?}");
    let served = served();
    let re = regex::Regex::new(r"ebpf_exporter_[a-z0-9_]+").unwrap();
    let mut used = BTreeSet::new();
    for e in &all {
        for m in re.find_iter(e) {
            assert!(
                served.contains(m.as_str()),
                "`{}` in `{e}` is not served",
                m.as_str()
            );
            used.insert(m.as_str().to_string());
        }
    }
    // Every built-in metric has a panel.
    for (name, yaml, _) in BUILTIN {
        let (c, _) = config::parse(Path::new(&format!("{name}.yaml")), yaml, true).unwrap();
        for m in c
            .metrics
            .counters
            .iter()
            .map(|c| &c.name)
            .chain(c.metrics.histograms.iter().map(|h| &h.name))
        {
            assert!(
                used.iter()
                    .any(|u| u.starts_with(&format!("ebpf_exporter_{m}"))),
                "no panel shows {m}"
            );
        }
    }
    assert_eq!(d["uid"], "bpfkit-exporter-builtin");
}
