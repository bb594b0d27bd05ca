//! `bpfkit prog list` and `bpfkit map list` against the running kernel: load
//! a known program with aya, then find it and its maps in the listings.
//! Needs root (CAP_SYS_ADMIN); skipped otherwise, except under CI=true.

mod common;
use common::is_root;

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

const BPFKIT: &str = env!("CARGO_BIN_EXE_bpfkit");

fn privileged(test: &str) -> bool {
    common::privileged(test, "load and list BPF objects (CAP_SYS_ADMIN)")
}

fn object(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../bpf/kernel")
        .join(name)
}

fn bpfkit(args: &[&str]) -> Output {
    let out = Command::new(BPFKIT).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "bpfkit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(args: &[&str]) -> Vec<Value> {
    let out = bpfkit(args);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bpfkit {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    v.as_array().expect("a JSON array").clone()
}

fn by_id(items: &[Value], id: u32) -> Option<&Value> {
    items.iter().find(|v| v["id"].as_u64() == Some(id.into()))
}

#[test]
fn lists_a_loaded_xdp_program_and_its_maps() {
    if !privileged("lists_a_loaded_xdp_program_and_its_maps") {
        return;
    }
    let mut ebpf = aya::Ebpf::load_file(object("xdp_count.bpf.o")).unwrap();
    let p: &mut aya::programs::Xdp = ebpf
        .program_mut("count_packets")
        .unwrap()
        .try_into()
        .unwrap();
    p.load().unwrap();
    let info = p.info().unwrap();
    let id = info.id();
    let tag = format!("{:016x}", info.tag());

    let progs = json(&["prog", "list", "--json"]);
    let prog = by_id(&progs, id).unwrap_or_else(|| panic!("program {id} not listed: {progs:?}"));
    assert_eq!(prog["name"], "count_packets", "{prog}");
    assert_eq!(prog["type"], "xdp", "{prog}");
    assert_eq!(prog["tag"], tag.as_str(), "{prog}");
    assert!(
        prog["loaded_at"].as_u64().unwrap() > 1_600_000_000,
        "{prog}"
    );
    for field in ["run_cnt", "run_time_ns"] {
        let v = &prog[field];
        assert!(v.is_null() || v.is_u64(), "{field}: {prog}");
    }
    let map_ids: Vec<u32> = prog["map_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert!(map_ids.len() >= 2, "{prog}");

    let maps = json(&["map", "list", "--json"]);
    let ours: Vec<&Value> = map_ids
        .iter()
        .map(|&m| by_id(&maps, m).unwrap_or_else(|| panic!("map {m} not listed")))
        .collect();
    let named = |n: &str| {
        *ours
            .iter()
            .find(|m| m["name"] == n)
            .unwrap_or_else(|| panic!("no map {n} among {ours:?}"))
    };
    let proto = named("proto_packets");
    assert_eq!(proto["type"], "percpu_array", "{proto}");
    assert_eq!(proto["key_size"], 4, "{proto}");
    assert_eq!(proto["value_size"], 8, "{proto}");
    assert_eq!(proto["max_entries"], 256, "{proto}");
    assert!(proto["flags"].is_u64(), "{proto}");
    let echo = named("echo_requests");
    assert_eq!(echo["type"], "array", "{echo}");
    assert_eq!(echo["key_size"], 4, "{echo}");
    assert_eq!(echo["value_size"], 8, "{echo}");
    assert_eq!(echo["max_entries"], 1, "{echo}");

    // The table: a header, then our program's row with its id and name.
    let out = bpfkit(&["prog", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(text.starts_with("ID "), "{text}");
    let row = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&id.to_string()))
        .unwrap_or_else(|| panic!("no row for {id}: {text}"));
    assert!(
        row.contains("count_packets") && row.contains("xdp"),
        "{row}"
    );
    assert!(row.contains(&tag), "{row}");

    let out = bpfkit(&["map", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    let proto_id = proto["id"].as_u64().unwrap().to_string();
    let row = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(proto_id.as_str()))
        .unwrap_or_else(|| panic!("no row for map {proto_id}: {text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols[1..6],
        ["percpu_array", "proto_packets", "4", "8", "256"],
        "{row}"
    );

    drop(ebpf);
    // Unloaded: the program is gone from the listing.
    let progs = json(&["prog", "list", "--json"]);
    assert!(
        by_id(&progs, id).is_none(),
        "{id} still listed after unload"
    );
}

#[test]
fn not_root_is_one_clear_line() {
    // Run as nobody: EPERM must name the missing capability.
    if !is_root() {
        let out = Command::new(BPFKIT)
            .args(["prog", "list"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("CAP_SYS_ADMIN"), "{err}");
        return;
    }
    use std::os::unix::process::CommandExt;
    for what in ["prog", "map"] {
        let out = Command::new(BPFKIT)
            .args([what, "list"])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{what} list succeeded as nobody");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("CAP_SYS_ADMIN"), "{err}");
        assert!(err.contains("not permitted"), "{err}");
    }
}
