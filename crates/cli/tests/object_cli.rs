//! `bpfkit run OBJECT` and `bpfkit maps OBJECT` end to end: the example
//! programs over the committed packet corpus, in the VM (no privileges) and
//! against the kernel (`--engine both`, as root), the pcap written back, and
//! every kind of bad input named in the error.

mod common;

use bpfkit_cli::pcap_io;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

const BPFKIT: &str = env!("CARGO_BIN_EXE_bpfkit");

fn repo(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
        .display()
        .to_string()
}

fn example(name: &str) -> String {
    repo(&format!("bpf/examples/{name}.bpf.o"))
}

fn corpus() -> String {
    repo("bpf/examples/corpus.pcap")
}

fn bpfkit(args: &[&str]) -> Output {
    Command::new(BPFKIT).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = bpfkit(args);
    assert!(
        out.status.success(),
        "bpfkit {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command expected to fail; returns its stderr.
fn fails(args: &[&str]) -> String {
    let out = bpfkit(args);
    assert!(!out.status.success(), "bpfkit {args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "bpfkit {args:?} panicked: {err}");
    err
}

fn json(args: &[&str]) -> Value {
    let text = ok(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn privileged(test: &str) -> bool {
    common::privileged(test, "run programs in the kernel")
}

/// The destination port of a TCP or UDP packet over IPv4 or IPv6 (no VLAN
/// tag, no IPv6 extension headers), read independently of any engine.
fn dst_port(p: &[u8]) -> Option<u16> {
    let be16 = |o: usize| Some(u16::from_be_bytes([*p.get(o)?, *p.get(o + 1)?]));
    let l4 = match be16(12)? {
        0x0800 if p.get(14)? >> 4 == 4 => {
            if !matches!(p.get(23)?, 6 | 17) {
                return None;
            }
            14 + (p[14] as usize & 0xf) * 4
        }
        0x86dd if p.get(14)? >> 4 == 6 => {
            if !matches!(p.get(20)?, 6 | 17) {
                return None;
            }
            54
        }
        _ => return None,
    };
    be16(l4 + 2)
}

#[test]
fn blocklist_over_the_corpus_in_the_vm() {
    let packets = pcap_io::read(&PathBuf::from(corpus())).unwrap();
    let dropped = packets
        .iter()
        .filter(|p| dst_port(&p.data) == Some(22))
        .count() as u64;
    assert!(dropped > 0, "the corpus has packets to port 22");
    let out = std::env::temp_dir().join(format!("bpfkit-pass-{}.pcap", std::process::id()));
    let doc = json(&[
        "run",
        &example("xdp_blocklist"),
        "--pcap",
        &corpus(),
        "--map-update",
        "blocked_ports:1600=0000000000000000",
        "--write",
        out.to_str().unwrap(),
        "--json",
        "--packets",
    ]);
    assert_eq!(doc["program"], "blocklist");
    assert_eq!(doc["packets"], packets.len());
    let vm = &doc["engines"][0];
    assert_eq!(vm["engine"], "vm");
    assert_eq!(vm["verdicts"]["XDP_DROP"], dropped);
    assert_eq!(vm["verdicts"]["XDP_PASS"], packets.len() as u64 - dropped);
    assert_eq!(vm["packets"].as_array().unwrap().len(), packets.len());
    // The map after the run holds the drops, formatted through BTF.
    let entries = doc["maps"]["blocked_ports"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["key"], 22);
    assert_eq!(entries[0]["value"], dropped);
    let stats = &doc["maps"]["stats"]["entries"];
    assert_eq!(stats[1]["value"], dropped);
    // --write keeps the packets the program passed, unchanged.
    let kept = pcap_io::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    let expected: Vec<&Vec<u8>> = packets
        .iter()
        .filter(|p| dst_port(&p.data) != Some(22))
        .map(|p| &p.data)
        .collect();
    assert_eq!(kept.iter().map(|p| &p.data).collect::<Vec<_>>(), expected);
}

/// The interpreter and the JIT (with and without blinding) give the same
/// verdicts and maps over the corpus, and the report says which ran.
#[test]
fn objects_run_the_same_interpreted_and_compiled() {
    let mut modes: Vec<(&str, &str)> = vec![("--interpret", "interpreter")];
    if bpfkit_vm::ExecMode::JIT_AVAILABLE {
        modes.push(("--jit", "jit"));
        modes.push(("--blinding", "jit+blinding"));
    }
    let mut docs = Vec::new();
    for (flag, name) in modes {
        let mut doc = json(&[
            "run",
            &example("xdp_proto_count"),
            "--pcap",
            &corpus(),
            flag,
            "--json",
        ]);
        assert_eq!(doc["engines"][0]["exec"], name, "{flag}");
        doc["engines"][0]["exec"] = Value::Null;
        docs.push(doc);
    }
    assert!(
        docs[0]["engines"][0]["verdicts"]["XDP_PASS"]
            .as_u64()
            .unwrap()
            > 0
    );
    for d in &docs[1..] {
        assert_eq!(d, &docs[0]);
    }
}

#[test]
fn tc_rewrite_is_written_out_rewritten() {
    let out = std::env::temp_dir().join(format!("bpfkit-nat-{}.pcap", std::process::id()));
    let text = ok(&[
        "run",
        &example("tc_nat"),
        "--pcap",
        &corpus(),
        "--write",
        out.to_str().unwrap(),
    ]);
    assert!(text.contains("TC_ACT_SHOT"), "{text}");
    let kept = pcap_io::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    // No packet to port 7777 survives: each was rewritten to 8888.
    assert!(kept.iter().all(|p| dst_port(&p.data) != Some(7777)));
    assert!(kept.iter().any(|p| dst_port(&p.data) == Some(8888)));
    // No IPv4 UDP datagram to port 9999 was passed (TCP to 9999 is).
    let udp_9999 =
        |p: &[u8]| p.len() > 23 && p[12..14] == [8, 0] && p[23] == 17 && dst_port(p) == Some(9999);
    let input = pcap_io::read(&PathBuf::from(corpus())).unwrap();
    assert!(input.iter().any(|p| udp_9999(&p.data)));
    assert!(kept.iter().all(|p| !udp_9999(&p.data)));
}

#[test]
fn maps_are_dumped_through_btf_with_globals_set() {
    // blocked_port = 80 (little-endian u16), drop_icmp = 1.
    let doc = json(&[
        "maps",
        &example("xdp_config"),
        "--global",
        "blocked_port=5000",
        "--global",
        "drop_icmp=01",
        "--json",
    ]);
    let rodata = &doc[".rodata"]["entries"][0]["value"];
    assert_eq!(rodata["blocked_port"], 80, "{doc}");
    assert_eq!(rodata["drop_icmp"], 1, "{doc}");
    assert_eq!(rodata["min_len"], 0, "{doc}");
    let text = ok(&["maps", &example("xdp_config"), "--map", ".bss"]);
    assert!(text.contains(".bss (array"), "{text}");
    assert!(text.contains("\"seen\":0"), "{text}");
    assert!(!text.contains(".rodata"), "{text}");
}

/// `--engine both` on every example program agrees; the exit status is 0.
#[test]
fn every_example_agrees_in_both_engines() {
    if !privileged("every_example_agrees_in_both_engines") {
        return;
    }
    let cases: &[(&str, &str, &[&str])] = &[
        ("xdp_proto_count", "count_protocols", &[]),
        (
            "xdp_blocklist",
            "blocklist",
            &["--map-update", "blocked_ports:1600=0000000000000000"],
        ),
        ("tc_nat", "nat", &[]),
        ("socket_filter", "keep_port", &[]),
        (
            "xdp_tail_chain",
            "xdp_entry",
            &[
                "--prog-array",
                "jmp_table:0=xdp_stage_parse",
                "--prog-array",
                "jmp_table:1=xdp_stage_verdict",
            ],
        ),
        ("xdp_ringbuf", "emit_events", &[]),
        (
            "xdp_lpm_route",
            "route",
            // 10.0.0.0/8 -> pass (route 1), 10.0.0.0/24 -> drop (route 2).
            &[
                "--map-update",
                "routes:080000000a000000=0200000001000000",
                "--map-update",
                "routes:180000000a000000=0100000002000000",
            ],
        ),
        (
            "xdp_config",
            "configured_filter",
            &["--global", "min_len=3c000000"],
        ),
        ("xdp_helpers", "xdp_adjust", &[]),
        ("xdp_helpers", "xdp_payload", &[]),
        ("xdp_helpers", "xdp_queue_stack", &[]),
    ];
    for (obj, program, extra) in cases {
        let o = example(obj);
        let c = corpus();
        let mut args = vec![
            "run",
            &o,
            "--program",
            program,
            "--pcap",
            &c,
            "--engine",
            "both",
            "--repeat",
            "3",
        ];
        args.extend_from_slice(extra);
        let text = ok(&args);
        assert!(
            text.contains("the VM and the kernel agree"),
            "{obj}/{program}: {text}"
        );
    }
}

/// A program whose result depends on the engine: the difference is named
/// and the exit status is 1.
#[test]
fn a_planted_difference_is_reported() {
    if !privileged("a_planted_difference_is_reported") {
        return;
    }
    let out = bpfkit(&[
        "run",
        &repo("bpf/testdata/engine_differs.bpf.o"),
        "--pcap",
        &corpus(),
        "--engine",
        "both",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 difference(s)"), "{text}");
    assert!(text.contains("map `last_random`: key 00000000"), "{text}");
    // Verdicts agree: only the map differs.
    assert!(!text.contains("packet 1:"), "{text}");
}

#[test]
fn bad_captures_are_named() {
    let dir = std::env::temp_dir().join(format!("bpfkit-bad-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read(corpus()).unwrap();
    let prog = example("xdp_proto_count");
    // Cut in the middle of the third packet's data.
    let first = 24 + 16 + u32::from_le_bytes(good[32..36].try_into().unwrap()) as usize;
    let second =
        first + 16 + u32::from_le_bytes(good[first + 8..first + 12].try_into().unwrap()) as usize;
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &good[..second + 16 + 5]).unwrap();
    let e = fails(&["run", &prog, "--pcap", cut.to_str().unwrap()]);
    assert!(
        e.contains(&format!(
            "packet 3 at byte {second}: the file ends in the middle of it"
        )),
        "{e}"
    );
    // Cut inside a record header.
    std::fs::write(&cut, &good[..first + 7]).unwrap();
    let e = fails(&["run", &prog, "--pcap", cut.to_str().unwrap()]);
    assert!(e.contains(&format!("packet 2 at byte {first}")), "{e}");
    // Cut inside the file header.
    std::fs::write(&cut, &good[..10]).unwrap();
    let e = fails(&["run", &prog, "--pcap", cut.to_str().unwrap()]);
    assert!(e.contains("pcap file header"), "{e}");
    // Not a capture at all.
    let text = dir.join("text.pcap");
    std::fs::write(&text, b"hello, world\n").unwrap();
    let e = fails(&["run", &prog, "--pcap", text.to_str().unwrap()]);
    assert!(e.contains("not a pcap or pcapng file"), "{e}");
    // Missing file.
    let e = fails(&["run", &prog, "--pcap", "/nonexistent.pcap"]);
    assert!(e.contains("/nonexistent.pcap: cannot read"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pcapng_is_read() {
    // A minimal pcapng: section header, one Ethernet interface, one
    // enhanced packet block holding the corpus's first frame.
    let packets = pcap_io::read(&PathBuf::from(corpus())).unwrap();
    let frame = &packets[0].data;
    let mut f = Vec::new();
    let block = |f: &mut Vec<u8>, kind: u32, body: &[u8]| {
        let len = 12 + body.len().div_ceil(4) * 4;
        f.extend_from_slice(&kind.to_le_bytes());
        f.extend_from_slice(&(len as u32).to_le_bytes());
        f.extend_from_slice(body);
        f.resize(f.len() + (4 - body.len() % 4) % 4, 0);
        f.extend_from_slice(&(len as u32).to_le_bytes());
    };
    let mut shb = 0x1a2b3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut f, 0x0a0d0d0a, &shb);
    let mut idb = 1u16.to_le_bytes().to_vec();
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&65535u32.to_le_bytes());
    block(&mut f, 1, &idb);
    let mut epb = 0u32.to_le_bytes().to_vec();
    epb.extend_from_slice(&[0; 8]);
    epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    epb.extend_from_slice(frame);
    block(&mut f, 6, &epb);
    let read = pcap_io::parse(&f).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(&read[0].data, frame);
    // What bpfkit writes as pcapng reads back the same.
    let out = std::env::temp_dir().join(format!("bpfkit-ng-{}.pcapng", std::process::id()));
    pcap_io::write(&out, &packets).unwrap();
    let back = pcap_io::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    assert_eq!(back, packets);
    // Cut mid-block: named, not a panic.
    let e = pcap_io::parse(&f[..f.len() - 6]).unwrap_err();
    assert!(
        format!("{e:#}").contains("the file ends in the middle of it"),
        "{e:#}"
    );
}

#[test]
fn bad_objects_and_arguments_are_named() {
    let c = corpus();
    // A helper the VM lacks: the helper, its id and the program are named.
    let e = fails(&[
        "run",
        &repo("bpf/testdata/missing_helper.bpf.o"),
        "--pcap",
        &c,
    ]);
    assert!(
        e.contains("program `grow` calls helper 38 (bpf_skb_change_tail) at instruction"),
        "{e}"
    );
    // A map type the VM lacks.
    let e = fails(&["maps", &repo("bpf/testdata/unsupported_map.bpf.o")]);
    assert!(
        e.contains("map `sk_data`") && e.contains("map type 24"),
        "{e}"
    );
    // A corrupt object.
    let dir = std::env::temp_dir().join(format!("bpfkit-bad-obj-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(example("xdp_blocklist")).unwrap();
    let cut = dir.join("cut.bpf.o");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = fails(&["run", cut.to_str().unwrap(), "--pcap", &c]);
    assert!(e.contains("cut.bpf.o"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    let o = example("xdp_blocklist");
    // No such program.
    let e = fails(&["run", &o, "--pcap", &c, "--program", "nope"]);
    assert!(
        e.contains("no program `nope`") && e.contains("blocklist"),
        "{e}"
    );
    // Several packet programs and none chosen.
    let e = fails(&["run", &example("xdp_helpers"), "--pcap", &c]);
    assert!(e.contains("several packet programs"), "{e}");
    // No packets.
    let e = fails(&["run", &o]);
    assert!(e.contains("no packets"), "{e}");
    // Malformed updates name the flag and what was expected.
    let e = fails(&["run", &o, "--pcap", &c, "--map-update", "blocked_ports=00"]);
    assert!(
        e.contains("--map-update `blocked_ports=00`: expected MAP:KEY=VALUE"),
        "{e}"
    );
    let e = fails(&["run", &o, "--pcap", &c, "--map-update", "nosuch:00=00"]);
    assert!(e.contains("nosuch"), "{e}");
    let e = fails(&[
        "run",
        &o,
        "--pcap",
        &c,
        "--map-update",
        "blocked_ports:1600=zz",
    ]);
    assert!(e.contains("value"), "{e}");
    let e = fails(&[
        "run",
        &o,
        "--pcap",
        &c,
        "--map-update",
        "blocked_ports:16=0000000000000000",
    ]);
    assert!(e.contains("blocked_ports"), "{e}");
    let e = fails(&["run", &o, "--pcap", &c, "--prog-array", "jmp_table:x=p"]);
    assert!(e.contains("index `x`"), "{e}");
    let e = fails(&["run", &o, "--pcap", &c, "--global", "nope=00"]);
    assert!(e.contains("nope"), "{e}");
    let e = fails(&["maps", &o, "--map", "nope"]);
    assert!(e.contains("no map `nope`"), "{e}");
}

/// A program whose context is memory: a raw tracepoint's arguments, run
/// once in each engine.
#[test]
fn a_raw_tracepoint_runs_on_its_arguments() {
    let o = repo("bpf/kernel/tracepoint_count.bpf.o");
    // sys_enter(regs, 257): openat, but from a process that is not the
    // target (tgid 1 is init), so nothing is counted, in either engine.
    let args = [
        "run",
        &o,
        "--program",
        "raw_sys_enter",
        "--mem-hex",
        "0000000000000000 0101000000000000",
        "--global",
        "target_tgid=01000000",
        "--json",
    ];
    let doc = json(&args);
    assert_eq!(doc["engines"][0]["engine"], "vm");
    assert_eq!(doc["engines"][0]["r0"], 0);
    assert_eq!(doc["maps"]["raw_counts"]["entries"][0]["value"], 0);
    if privileged("a_raw_tracepoint_runs_on_its_arguments") {
        let mut both = args.to_vec();
        both.extend_from_slice(&["--engine", "both"]);
        let doc = json(&both);
        assert_eq!(doc["engines"][1]["engine"], "kernel");
        assert_eq!(doc["differences"].as_array().unwrap().len(), 0, "{doc}");
    }
    // Packets and a context together, or neither, are refused.
    let e = fails(&[
        "run",
        &o,
        "--program",
        "raw_sys_enter",
        "--mem-hex",
        "00",
        "--pcap",
        &corpus(),
    ]);
    assert!(e.contains("not both"), "{e}");
    let e = fails(&["run", &o, "--mem-hex", "00"]);
    assert!(
        e.contains("several programs; pick one with --program"),
        "{e}"
    );
}
