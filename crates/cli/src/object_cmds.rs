//! `bpfkit run OBJECT` (packet programs over captures, in the VM, the
//! kernel or both) and `bpfkit maps OBJECT`.

use anyhow::{anyhow, bail, Context, Result};
use bpfkit::compare;
use bpfkit::{Engine, ExecMode, Loaded, Object};
use bpfkit_cli::parse_hex;
use bpfkit_cli::pcap_io::{self, Packet};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// bpfkit's userspace VM (no privileges needed).
    Vm,
    /// The Linux kernel, through BPF_PROG_TEST_RUN (needs root).
    Kernel,
    /// Both, on the same input; any difference is reported and fails.
    Both,
}

impl EngineArg {
    fn engines(self) -> Vec<Engine> {
        match self {
            EngineArg::Vm => vec![Engine::Vm],
            EngineArg::Kernel => vec![Engine::Kernel],
            EngineArg::Both => vec![Engine::Vm, Engine::Kernel],
        }
    }
}

/// How the VM executes programs (shared by every command that runs one).
#[derive(Args, Clone, Debug, Default)]
pub struct ExecArgs {
    /// Run programs in the VM's x86-64 JIT (the default on x86-64 Linux).
    #[arg(long, conflicts_with = "interpret")]
    pub jit: bool,
    /// Run programs in the VM's interpreter (the default elsewhere).
    #[arg(long)]
    pub interpret: bool,
    /// JIT with constant blinding: no immediate of the program appears in
    /// the machine code.
    #[arg(long, conflicts_with = "interpret")]
    pub blinding: bool,
}

impl ExecArgs {
    pub fn mode(&self) -> Result<ExecMode> {
        if self.interpret {
            return Ok(ExecMode::Interpret);
        }
        if !(self.jit || self.blinding) {
            return Ok(ExecMode::host_default());
        }
        if !ExecMode::JIT_AVAILABLE {
            bail!("--jit: the JIT compiles for x86-64 Linux only; use --interpret on this host");
        }
        Ok(ExecMode::Jit {
            blinding: self.blinding,
        })
    }
}

/// An engine's name in reports: the VM's says how it executes.
pub fn engine_label(engine: Engine, mode: ExecMode) -> String {
    match engine {
        Engine::Vm => format!("Vm engine ({})", mode.name()),
        Engine::Kernel => "Kernel engine".to_string(),
    }
}

/// How an object is loaded and prepared (shared by `run` and `maps`).
#[derive(Args, Clone, Debug)]
pub struct LoadArgs {
    /// Engine to run in.
    #[arg(long, value_enum, default_value = "vm")]
    pub engine: EngineArg,
    #[command(flatten)]
    pub exec: ExecArgs,
    /// Set a global before load: NAME=HEX, the bytes in memory order.
    #[arg(long = "global", value_name = "NAME=HEX")]
    pub globals: Vec<String>,
    /// Store an entry before the run: MAP:KEYHEX=VALUEHEX.
    #[arg(long = "map-update", value_name = "MAP:KEY=VALUE")]
    pub map_updates: Vec<String>,
    /// Fill a program array before the run: MAP:INDEX=PROGRAM.
    #[arg(long = "prog-array", value_name = "MAP:INDEX=PROGRAM")]
    pub prog_arrays: Vec<String>,
}

/// Options of `bpfkit run OBJECT`.
#[derive(Args, Clone, Debug)]
pub struct RunObjectArgs {
    /// The program to run (default: the object's only packet program).
    #[arg(long)]
    pub program: Option<String>,
    /// Packets to run the program on (pcap or pcapng, Ethernet).
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// A packet as hex bytes (repeatable), instead of or besides --pcap.
    #[arg(long = "packet-hex", value_name = "HEX")]
    pub packet_hex: Vec<String>,
    /// Write the packets the program lets through, as it left them, to a pcap.
    #[arg(long, value_name = "OUT")]
    pub write: Option<PathBuf>,
    /// Run each packet this many times (the engines' timing is averaged).
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Print a line per packet.
    #[arg(long)]
    pub packets: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn split_once<'a>(s: &'a str, sep: char, what: &str, spec: &str) -> Result<(&'a str, &'a str)> {
    s.split_once(sep)
        .ok_or_else(|| anyhow!("{what} `{spec}`: expected {}", what_form(what)))
}

fn what_form(what: &str) -> &'static str {
    match what {
        "--global" => "NAME=HEX",
        "--map-update" => "MAP:KEY=VALUE (hex)",
        _ => "MAP:INDEX=PROGRAM",
    }
}

/// Opens, configures and loads the object in each engine asked for.
pub fn load(path: &PathBuf, args: &LoadArgs) -> Result<Vec<Loaded>> {
    let mut obj = Object::open(path)?;
    obj.set_exec_mode(args.exec.mode()?);
    for g in &args.globals {
        let (name, hex) = split_once(g, '=', "--global", g)?;
        let bytes = parse_hex(hex).with_context(|| format!("--global {name}"))?;
        obj.set_global_bytes(name, &bytes);
    }
    let mut out = Vec::new();
    for engine in args.engine.engines() {
        let mut loaded = obj
            .load(engine)
            .with_context(|| format!("loading into the {engine:?} engine"))?;
        for u in &args.map_updates {
            let (map, kv) = split_once(u, ':', "--map-update", u)?;
            let (k, v) = split_once(kv, '=', "--map-update", u)?;
            let key = parse_hex(k).with_context(|| format!("--map-update {u}: key"))?;
            let value = parse_hex(v).with_context(|| format!("--map-update {u}: value"))?;
            loaded
                .map(map)?
                .update(&key, &value, bpfkit::BPF_ANY)
                .with_context(|| format!("--map-update {u}"))?;
        }
        for p in &args.prog_arrays {
            let (map, rest) = split_once(p, ':', "--prog-array", p)?;
            let (index, program) = split_once(rest, '=', "--prog-array", p)?;
            let index: u32 = index
                .parse()
                .with_context(|| format!("--prog-array {p}: index `{index}`"))?;
            loaded
                .set_prog_array(map, index, program)
                .with_context(|| format!("--prog-array {p}"))?;
        }
        out.push(loaded);
    }
    Ok(out)
}

/// The name of a verdict, by program kind.
fn verdict_name(kind: Option<bpfkit_object::ProgramKind>, r: u64) -> String {
    use bpfkit_object::ProgramKind as K;
    match kind {
        Some(K::Xdp) => match r {
            0 => "XDP_ABORTED".into(),
            1 => "XDP_DROP".into(),
            2 => "XDP_PASS".into(),
            3 => "XDP_TX".into(),
            4 => "XDP_REDIRECT".into(),
            _ => format!("XDP verdict {r}"),
        },
        Some(K::SchedCls) => match r as i32 {
            -1 => "TC_ACT_UNSPEC".into(),
            0 => "TC_ACT_OK".into(),
            1 => "TC_ACT_RECLASSIFY".into(),
            2 => "TC_ACT_SHOT".into(),
            3 => "TC_ACT_PIPE".into(),
            4 => "TC_ACT_STOLEN".into(),
            7 => "TC_ACT_REDIRECT".into(),
            _ => format!("tc verdict {r}"),
        },
        Some(K::SocketFilter) | Some(K::CgroupSkb) if r == 0 => "drop".into(),
        Some(K::SocketFilter) => format!("keep {r} bytes"),
        Some(K::CgroupSkb) => "allow".into(),
        _ => format!("{r}"),
    }
}

/// Whether a verdict lets the packet through (for --write).
fn passes(kind: Option<bpfkit_object::ProgramKind>, r: u64) -> bool {
    use bpfkit_object::ProgramKind as K;
    match kind {
        Some(K::Xdp) => matches!(r, 2..=4),
        Some(K::SchedCls) => matches!(r as i32, -1 | 0 | 3 | 7),
        _ => r != 0,
    }
}

fn pick_program(l: &Loaded, asked: &Option<String>) -> Result<String> {
    let names = l.program_names();
    if let Some(p) = asked {
        if names.contains(p) {
            return Ok(p.clone());
        }
        bail!(
            "no program `{p}` in the object (it has: {})",
            names.join(", ")
        );
    }
    let packet: Vec<&String> = names
        .iter()
        .filter(|n| l.program_kind(n).is_some_and(|k| k.is_packet()))
        .collect();
    match packet.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!(
            "the object has no packet program (it has: {})",
            names.join(", ")
        ),
        many => bail!(
            "the object has several packet programs; pick one with --program ({})",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

struct PacketResult {
    retval: u64,
    output: Vec<u8>,
    duration_ns: u64,
    /// Why the engine refused to run the packet (the kernel's test run
    /// refuses some frames, e.g. a truncated IP header for skb programs; the
    /// VM refuses the same ones).
    refused: Option<String>,
}

impl PacketResult {
    fn verdict(&self, kind: Option<bpfkit_object::ProgramKind>) -> String {
        match self.refused {
            Some(_) => "refused".into(),
            None => verdict_name(kind, self.retval),
        }
    }
}

/// `bpfkit run OBJECT ...`. Returns the process exit code.
pub fn run(
    path: &PathBuf,
    load_args: &LoadArgs,
    args: &RunObjectArgs,
    context: Option<Vec<u8>>,
) -> Result<i32> {
    if let Some(ctx) = context {
        return run_on_context(path, load_args, args, &ctx);
    }
    let exec = load_args.exec.mode()?;
    let mut packets: Vec<Packet> = Vec::new();
    if let Some(p) = &args.pcap {
        packets = pcap_io::read(p)?;
    }
    for (i, h) in args.packet_hex.iter().enumerate() {
        let data = parse_hex(h).with_context(|| format!("--packet-hex #{}", i + 1))?;
        packets.push(Packet {
            timestamp: std::time::Duration::ZERO,
            orig_len: data.len() as u32,
            data,
        });
    }
    if packets.is_empty() {
        bail!("no packets: give --pcap FILE or --packet-hex HEX");
    }
    let mut loaded = load(path, load_args)?;
    let program = pick_program(&loaded[0], &args.program)?;
    let kind = loaded[0].program_kind(&program);
    let engines: Vec<Engine> = loaded.iter().map(|l| l.engine()).collect();

    // results[engine][packet]
    let mut results: Vec<Vec<PacketResult>> = Vec::new();
    for l in loaded.iter_mut() {
        let mut per = Vec::with_capacity(packets.len());
        for p in &packets {
            per.push(match l.run(&program, &p.data, args.repeat.max(1)) {
                Ok(out) => PacketResult {
                    retval: out.retval,
                    output: out.output,
                    duration_ns: out.duration_ns,
                    refused: None,
                },
                Err(e) => PacketResult {
                    retval: 0,
                    output: Vec::new(),
                    duration_ns: 0,
                    refused: Some(e.to_string()),
                },
            });
        }
        if per.iter().all(|r| r.refused.is_some()) {
            bail!(
                "the {:?} engine refused every packet: {}",
                l.engine(),
                per[0].refused.as_deref().unwrap_or("")
            );
        }
        results.push(per);
    }

    // Differences between engines: verdicts and output packets first.
    let mut differences: Vec<String> = Vec::new();
    if results.len() == 2 {
        for (i, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
            if a.refused.is_some() != b.refused.is_some() || a.retval != b.retval {
                differences.push(format!(
                    "packet {}: verdict {} in {:?}, {} in {:?}",
                    i + 1,
                    a.verdict(kind),
                    engines[0],
                    b.verdict(kind),
                    engines[1]
                ));
            } else if a.output != b.output {
                let at = a
                    .output
                    .iter()
                    .zip(&b.output)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.output.len().min(b.output.len()));
                differences.push(format!(
                    "packet {}: output packets differ at byte {at} ({} bytes in {:?}, {} in {:?})",
                    i + 1,
                    a.output.len(),
                    engines[0],
                    b.output.len(),
                    engines[1]
                ));
            }
        }
    }

    // Maps after the run (from the first engine), then the map comparison.
    let maps_json = dump_maps(&loaded[0])?;
    if loaded.len() == 2 {
        let (a, b) = loaded.split_at_mut(1);
        for d in compare::maps(&mut a[0], &mut b[0])? {
            differences.push(d.to_string());
        }
    }

    if let Some(out) = &args.write {
        let kept: Vec<Packet> = packets
            .iter()
            .zip(&results[0])
            .filter(|(_, r)| r.refused.is_none() && passes(kind, r.retval))
            .map(|(p, r)| Packet {
                timestamp: p.timestamp,
                orig_len: r.output.len() as u32,
                data: r.output.clone(),
            })
            .collect();
        pcap_io::write(out, &kept)?;
    }

    let mut verdicts: Vec<BTreeMap<String, u64>> = Vec::new();
    for per in &results {
        let mut counts = BTreeMap::new();
        for r in per {
            *counts.entry(r.verdict(kind)).or_insert(0) += 1;
        }
        verdicts.push(counts);
    }

    if args.json {
        let per_engine: Vec<Value> = engines
            .iter()
            .zip(&verdicts)
            .zip(&results)
            .map(|((e, v), per)| {
                let mut o = json!({ "engine": format!("{e:?}").to_lowercase(), "verdicts": v });
                if *e == Engine::Vm {
                    o["exec"] = json!(exec.name());
                }
                if args.packets {
                    o["packets"] = per
                        .iter()
                        .map(|r| {
                            json!({
                                "verdict": r.verdict(kind),
                                "retval": r.retval,
                                "output_len": r.output.len(),
                                "ns": r.duration_ns,
                                "refused": r.refused,
                            })
                        })
                        .collect();
                }
                o
            })
            .collect();
        let doc = json!({
            "object": path.display().to_string(),
            "program": program,
            "packets": packets.len(),
            "engines": per_engine,
            "maps": maps_json,
            "differences": differences,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let kind_name = kind.map(|k| format!("{k:?}")).unwrap_or_default();
        println!(
            "program `{program}` ({kind_name}) on {} packets, {} run(s) each",
            packets.len(),
            args.repeat.max(1)
        );
        for (e, (v, per)) in engines.iter().zip(verdicts.iter().zip(&results)) {
            let ran: Vec<u64> = per
                .iter()
                .filter(|r| r.refused.is_none())
                .map(|r| r.duration_ns)
                .collect();
            let avg = ran.iter().sum::<u64>() / ran.len().max(1) as u64;
            println!("{}: {avg} ns per run on average", engine_label(*e, exec));
            for (name, n) in v {
                println!("  {name:<16} {n}");
            }
        }
        if args.packets {
            println!("packets:");
            for (i, p) in packets.iter().enumerate() {
                let line: Vec<String> = results
                    .iter()
                    .zip(&engines)
                    .map(|(per, e)| {
                        let r = &per[i];
                        let changed = if r.output == p.data {
                            ""
                        } else {
                            ", rewritten"
                        };
                        format!("{e:?}: {}{changed}", verdict_name(kind, r.retval))
                    })
                    .collect();
                println!(
                    "  #{:<4} {:>5} bytes  {}",
                    i + 1,
                    p.data.len(),
                    line.join("  ")
                );
            }
        }
        print_maps_text(&maps_json);
        if engines.len() == 2 {
            if differences.is_empty() {
                println!("the VM and the kernel agree: same verdicts, output packets and maps");
            } else {
                println!(
                    "{} difference(s) between the VM and the kernel:",
                    differences.len()
                );
                for d in &differences {
                    println!("  {d}");
                }
            }
        }
    }
    Ok(if differences.is_empty() { 0 } else { 1 })
}

/// `bpfkit run OBJECT --program P --mem-hex HEX`: one run of a program whose
/// context is memory (a raw tracepoint's u64 arguments in both engines; in
/// the VM also a tracepoint record, pt_regs, or plain memory).
fn run_on_context(
    path: &PathBuf,
    load_args: &LoadArgs,
    args: &RunObjectArgs,
    ctx: &[u8],
) -> Result<i32> {
    if args.pcap.is_some() || !args.packet_hex.is_empty() {
        bail!("give packets (--pcap, --packet-hex) or a context (--mem, --mem-hex), not both");
    }
    let exec = load_args.exec.mode()?;
    let mut loaded = load(path, load_args)?;
    let names = loaded[0].program_names();
    let program = match (&args.program, names.as_slice()) {
        (Some(p), _) if names.contains(p) => p.clone(),
        (Some(p), _) => bail!(
            "no program `{p}` in the object (it has: {})",
            names.join(", ")
        ),
        (None, [one]) => one.clone(),
        (None, _) => bail!(
            "the object has several programs; pick one with --program ({})",
            names.join(", ")
        ),
    };
    let mut retvals = Vec::new();
    for l in loaded.iter_mut() {
        let out = l
            .run_context(&program, ctx)
            .with_context(|| format!("{:?} engine", l.engine()))?;
        retvals.push((l.engine(), out.retval, out.output));
    }
    let mut differences = Vec::new();
    if loaded.len() == 2 {
        if retvals[0].1 != retvals[1].1 {
            differences.push(format!(
                "r0 is {:#x} in {:?}, {:#x} in {:?}",
                retvals[0].1, retvals[0].0, retvals[1].1, retvals[1].0
            ));
        }
        let (a, b) = loaded.split_at_mut(1);
        for d in compare::maps(&mut a[0], &mut b[0])? {
            differences.push(d.to_string());
        }
    }
    let maps_json = dump_maps(&loaded[0])?;
    if args.json {
        let doc = json!({
            "object": path.display().to_string(),
            "program": program,
            "engines": retvals.iter().map(|(e, r0, _)| json!({
                "engine": format!("{e:?}").to_lowercase(), "r0": r0,
                "exec": (*e == Engine::Vm).then(|| exec.name()),
            })).collect::<Vec<_>>(),
            "maps": maps_json,
            "differences": differences,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for (e, r0, after) in &retvals {
            println!("{}: r0 = {r0:#x} ({})", engine_label(*e, exec), *r0 as i64);
            if after.as_slice() != ctx {
                println!("  context after the run: {}", hex(after));
            }
        }
        print_maps_text(&maps_json);
        if loaded.len() == 2 {
            if differences.is_empty() {
                println!("the VM and the kernel agree: same r0 and maps");
            } else {
                println!(
                    "{} difference(s) between the VM and the kernel:",
                    differences.len()
                );
                for d in &differences {
                    println!("  {d}");
                }
            }
        }
    }
    Ok(if differences.is_empty() { 0 } else { 1 })
}

/// `bpfkit maps OBJECT`: the object's maps after load (and the updates asked
/// for), keys and values formatted through BTF when the object has it.
pub fn maps(path: &PathBuf, load_args: &LoadArgs, only: &[String], json_out: bool) -> Result<()> {
    let loaded = load(path, load_args)?;
    let l = loaded.first().ok_or_else(|| anyhow!("no engine"))?;
    let mut doc = dump_maps(l)?;
    if !only.is_empty() {
        let obj = doc.as_object_mut().expect("an object");
        for m in only {
            if !obj.contains_key(m) {
                bail!("no map `{m}` in the object");
            }
        }
        obj.retain(|k, _| only.contains(k));
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_maps_text(&doc);
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every readable map as JSON: {name: {type, key_size, value_size,
/// max_entries, entries: [{key, value}]}}; per-CPU values as one entry per
/// CPU under "values".
fn dump_maps(l: &Loaded) -> Result<Value> {
    let mut out = serde_json::Map::new();
    for name in l.map_names() {
        let m = l.map(&name)?;
        let t = m.map_type();
        let spec = l.map_spec(&name);
        let btf = l.btf();
        let fmt = |type_id: Option<u32>, bytes: &[u8]| -> Value {
            match (btf, type_id) {
                (Some(b), Some(id)) if id != 0 => b.format_value(id, bytes),
                // No type: 4- and 8-byte values are most often integers.
                _ => match bytes.len() {
                    4 => json!(u32::from_ne_bytes(bytes.try_into().expect("4 bytes"))),
                    8 => json!(u64::from_ne_bytes(bytes.try_into().expect("8 bytes"))),
                    _ => Value::String(hex(bytes)),
                },
            }
        };
        let (kid, vid) = spec
            .map(|s| (s.btf_key_type_id, s.btf_value_type_id))
            .unwrap_or((None, None));
        let mut entries = Vec::new();
        let mut note = None;
        if compare::comparable(t) && !matches!(t, 22 | 23) {
            for (k, v) in m.entries()? {
                let mut e = json!({ "key": fmt(kid, &k) });
                if compare::is_per_cpu(t) {
                    let slot = m.value_size().div_ceil(8) * 8;
                    let per: Vec<Value> = v
                        .chunks(slot.max(1))
                        .map(|s| fmt(vid, &s[..m.value_size().min(s.len())]))
                        .collect();
                    e["values"] = Value::Array(per);
                } else {
                    e["value"] = fmt(vid, &v);
                }
                entries.push(e);
            }
        } else {
            note = Some(match t {
                27 => "ring buffer: records are consumed by readers, not listed",
                22 | 23 => "queue/stack: reading would consume elements",
                _ => "holds engine-local program or map ids",
            });
        }
        let mut o = json!({
            "type": crate::kernel_cmds::map_type_name(t),
            "key_size": m.key_size(),
            "value_size": m.value_size(),
            "max_entries": m.max_entries(),
            "entries": entries,
        });
        if let Some(n) = note {
            o["note"] = json!(n);
        }
        out.insert(name, o);
    }
    Ok(Value::Object(out))
}

fn print_maps_text(doc: &Value) {
    let Some(maps) = doc.as_object() else { return };
    println!("maps:");
    for (name, m) in maps {
        let entries = m["entries"].as_array().map_or(0, |e| e.len());
        println!(
            "  {name} ({}, key {} B, value {} B, max {}): {entries} entries",
            m["type"].as_str().unwrap_or("?"),
            m["key_size"],
            m["value_size"],
            m["max_entries"]
        );
        if let Some(n) = m.get("note").and_then(|n| n.as_str()) {
            println!("    ({n})");
        }
        for e in m["entries"].as_array().into_iter().flatten() {
            let v = e
                .get("value")
                .or_else(|| e.get("values"))
                .unwrap_or(&Value::Null);
            println!("    {} = {}", compact(&e["key"]), compact(v));
        }
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
