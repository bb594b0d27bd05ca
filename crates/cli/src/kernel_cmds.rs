//! `bpfkit prog list` and `bpfkit map list`: the programs and maps loaded in
//! the kernel, like `bpftool prog show` and `bpftool map show`.

use anyhow::Result;
use aya::maps::{loaded_maps, MapInfo};
use aya::programs::{loaded_programs, ProgramInfo};
use serde_json::{json, Value};
use std::io;
use std::time::UNIX_EPOCH;

const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const EACCES: i32 = 13;

/// `enum bpf_prog_type`, named as bpftool and libbpf name them.
const PROG_TYPES: &[&str] = &[
    "unspec",
    "socket_filter",
    "kprobe",
    "sched_cls",
    "sched_act",
    "tracepoint",
    "xdp",
    "perf_event",
    "cgroup_skb",
    "cgroup_sock",
    "lwt_in",
    "lwt_out",
    "lwt_xmit",
    "sock_ops",
    "sk_skb",
    "cgroup_device",
    "sk_msg",
    "raw_tracepoint",
    "cgroup_sock_addr",
    "lwt_seg6local",
    "lirc_mode2",
    "sk_reuseport",
    "flow_dissector",
    "cgroup_sysctl",
    "raw_tracepoint_writable",
    "cgroup_sockopt",
    "tracing",
    "struct_ops",
    "ext",
    "lsm",
    "sk_lookup",
    "syscall",
    "netfilter",
];

/// `enum bpf_map_type`, named as bpftool and libbpf name them.
const MAP_TYPES: &[&str] = &[
    "unspec",
    "hash",
    "array",
    "prog_array",
    "perf_event_array",
    "percpu_hash",
    "percpu_array",
    "stack_trace",
    "cgroup_array",
    "lru_hash",
    "lru_percpu_hash",
    "lpm_trie",
    "array_of_maps",
    "hash_of_maps",
    "devmap",
    "sockmap",
    "cpumap",
    "xskmap",
    "sockhash",
    "cgroup_storage",
    "reuseport_sockarray",
    "percpu_cgroup_storage",
    "queue",
    "stack",
    "sk_storage",
    "devmap_hash",
    "struct_ops",
    "ringbuf",
    "inode_storage",
    "task_storage",
    "bloom_filter",
    "user_ringbuf",
    "cgrp_storage",
    "arena",
];

/// A map type's bpftool name (`unknown(N)` past the table).
pub(crate) fn map_type_name(raw: u32) -> String {
    type_name(MAP_TYPES, raw)
}

fn type_name(names: &[&str], raw: u32) -> String {
    names
        .get(raw as usize)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("unknown({raw})"))
}

/// The first `io::Error` in an error's chain.
fn io_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        if let Some(sys) = err.downcast_ref::<aya::sys::SyscallError>() {
            return Some(&sys.io_error);
        }
        cur = err.source();
    }
    None
}

/// Whether the object went away while we listed it (ENOENT): skip it.
fn vanished(e: &(dyn std::error::Error + 'static)) -> bool {
    io_error(e).and_then(io::Error::raw_os_error) == Some(ENOENT)
}

/// Turns a listing error into one clear line; EPERM/EACCES name the
/// capability that is missing.
fn listing_error(what: &str, e: &(dyn std::error::Error + 'static)) -> anyhow::Error {
    match io_error(e) {
        Some(io) if matches!(io.raw_os_error(), Some(EPERM) | Some(EACCES)) => {
            anyhow::anyhow!("listing loaded {what} needs CAP_SYS_ADMIN (run as root): {io}")
        }
        Some(io) => anyhow::anyhow!("listing loaded {what}: {io}"),
        None => anyhow::anyhow!("listing loaded {what}: {e}"),
    }
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Prints rows aligned in columns under a header.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn program_json(p: &ProgramInfo, stats: bool) -> Result<Value> {
    let id = p.id();
    let map_ids = match p.map_ids() {
        Ok(ids) => ids.unwrap_or_default(),
        Err(e) if vanished(&e) => Vec::new(),
        Err(e) => return Err(listing_error("programs", &e)),
    };
    let loaded_at = p
        .loaded_at()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    let stats = stats || p.run_count() > 0 || !p.run_time().is_zero();
    Ok(json!({
        "id": id,
        "type": type_name(PROG_TYPES, p.program_type() as u32),
        "name": String::from_utf8_lossy(p.name()),
        "tag": format!("{:016x}", p.tag()),
        "loaded_at": loaded_at,
        "run_cnt": stats.then(|| p.run_count()),
        "run_time_ns": stats.then(|| p.run_time().as_nanos() as u64),
        "map_ids": map_ids,
    }))
}

fn map_json(m: &MapInfo) -> Value {
    let raw = match m.map_type() {
        Ok(t) => t as u32,
        Err(_) => u32::MAX,
    };
    json!({
        "id": m.id(),
        "type": type_name(MAP_TYPES, raw),
        "name": String::from_utf8_lossy(m.name()),
        "key_size": m.key_size(),
        "value_size": m.value_size(),
        "max_entries": m.max_entries(),
        "flags": m.map_flags(),
    })
}

/// Every program loaded in the kernel, as JSON objects with the fields
/// `id type name tag loaded_at run_cnt run_time_ns map_ids`.
pub fn list_programs() -> Result<Vec<Value>> {
    let stats = bpfkit::kernel::stats_enabled();
    let mut out = Vec::new();
    for p in loaded_programs() {
        match p {
            Ok(p) => out.push(program_json(&p, stats)?),
            Err(e) if vanished(&e) => continue,
            Err(e) => return Err(listing_error("programs", &e)),
        }
    }
    Ok(out)
}

/// Every map in the kernel, as JSON objects with the fields
/// `id type name key_size value_size max_entries flags`.
pub fn list_maps() -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for m in loaded_maps() {
        match m {
            Ok(m) => out.push(map_json(&m)),
            Err(e) if vanished(&e) => continue,
            Err(e) => return Err(listing_error("maps", &e)),
        }
    }
    Ok(out)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            if a.is_empty() {
                "-".to_string()
            } else {
                a.iter().map(cell).collect::<Vec<_>>().join(",")
            }
        }
        other => other.to_string(),
    }
}

fn print_json(values: Vec<Value>) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(&Value::Array(values))?);
    Ok(())
}

/// `bpfkit prog list [--json]`.
pub fn prog_list(as_json: bool) -> Result<()> {
    let progs = list_programs()?;
    if as_json {
        return print_json(progs);
    }
    let rows: Vec<Vec<String>> = progs
        .iter()
        .map(|p| {
            let loaded = match p["loaded_at"].as_u64() {
                Some(s) => rfc3339(s),
                None => "-".to_string(),
            };
            vec![
                cell(&p["id"]),
                cell(&p["type"]),
                cell(&p["name"]),
                cell(&p["tag"]),
                loaded,
                cell(&p["run_cnt"]),
                cell(&p["run_time_ns"]),
                cell(&p["map_ids"]),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "TYPE",
            "NAME",
            "TAG",
            "LOADED_AT",
            "RUN_CNT",
            "RUN_TIME_NS",
            "MAP_IDS",
        ],
        &rows,
    );
    Ok(())
}

/// `bpfkit map list [--json]`.
pub fn map_list(as_json: bool) -> Result<()> {
    let maps = list_maps()?;
    if as_json {
        return print_json(maps);
    }
    let rows: Vec<Vec<String>> = maps
        .iter()
        .map(|m| {
            vec![
                cell(&m["id"]),
                cell(&m["type"]),
                cell(&m["name"]),
                cell(&m["key_size"]),
                cell(&m["value_size"]),
                cell(&m["max_entries"]),
                format!("{:#x}", m["flags"].as_u64().unwrap_or(0)),
            ]
        })
        .collect();
    print_table(
        &["ID", "TYPE", "NAME", "KEY", "VALUE", "MAX_ENTRIES", "FLAGS"],
        &rows,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn names() {
        assert_eq!(type_name(PROG_TYPES, 6), "xdp");
        assert_eq!(type_name(MAP_TYPES, 6), "percpu_array");
        assert_eq!(type_name(MAP_TYPES, 2), "array");
        assert_eq!(type_name(PROG_TYPES, 999), "unknown(999)");
    }

    #[test]
    fn cells() {
        assert_eq!(cell(&Value::Null), "-");
        assert_eq!(cell(&json!([1, 2])), "1,2");
        assert_eq!(cell(&json!([])), "-");
    }
}
