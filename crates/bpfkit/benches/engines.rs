//! Packets per second through the example programs, and map operations from
//! a program, in the VM (interpreter and JIT) against the kernel
//! (BPF_PROG_TEST_RUN with repeat, timed by the kernel, its JIT), in the same
//! process on the same packets.
//!
//! `cargo bench -p bpfkit --bench engines` (as root for the kernel column).
//! Prints a Markdown table for BENCHMARKS.md.

use bpfkit::{Engine, ExecMode, Loaded, Object};
use std::path::PathBuf;

#[path = "../tests/common/packets.rs"]
#[allow(dead_code)]
mod packets;

fn object(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// How an example is prepared before its packets run.
type Setup = fn(&mut Loaded);

fn blocklist(l: &mut Loaded) {
    let m = l.map("blocked_ports").unwrap();
    for port in [22u16, 23, 9999, 53] {
        m.update(&port.to_le_bytes(), &0u64.to_le_bytes(), 0)
            .unwrap();
    }
}

fn tail_chain(l: &mut Loaded) {
    l.set_prog_array("jmp_table", 0, "xdp_stage_parse").unwrap();
    l.set_prog_array("jmp_table", 1, "xdp_stage_verdict")
        .unwrap();
}

fn routes(l: &mut Loaded) {
    let m = l.map("routes").unwrap();
    for (len, addr, action, id) in [
        (8u32, [10u8, 0, 0, 0], 2u32, 1u32),
        (24, [10, 0, 0, 0], 1, 2),
        (16, [192, 168, 0, 0], 2, 3),
    ] {
        let mut k = len.to_le_bytes().to_vec();
        k.extend_from_slice(&addr);
        let mut v = action.to_le_bytes().to_vec();
        v.extend_from_slice(&id.to_le_bytes());
        m.update(&k, &v, 0).unwrap();
    }
}

fn map_ops(l: &mut Loaded) {
    let m = l.map("hash").unwrap();
    for k in 0u32..64 {
        m.update(&k.to_le_bytes(), &1u64.to_le_bytes(), 0).unwrap();
    }
}

fn none(_: &mut Loaded) {}

struct Case {
    name: &'static str,
    object: &'static str,
    program: &'static str,
    setup: Setup,
    /// Map operations per run (0: a packet program; report packets/s).
    ops: u32,
}

const CASES: &[Case] = &[
    Case {
        name: "xdp_proto_count",
        object: "bpf/examples/xdp_proto_count.bpf.o",
        program: "count_protocols",
        setup: none,
        ops: 0,
    },
    Case {
        name: "xdp_blocklist",
        object: "bpf/examples/xdp_blocklist.bpf.o",
        program: "blocklist",
        setup: blocklist,
        ops: 0,
    },
    Case {
        name: "xdp_lpm_route",
        object: "bpf/examples/xdp_lpm_route.bpf.o",
        program: "route",
        setup: routes,
        ops: 0,
    },
    Case {
        name: "xdp_tail_chain",
        object: "bpf/examples/xdp_tail_chain.bpf.o",
        program: "xdp_entry",
        setup: tail_chain,
        ops: 0,
    },
    Case {
        name: "tc_nat",
        object: "bpf/examples/tc_nat.bpf.o",
        program: "nat",
        setup: none,
        ops: 0,
    },
    Case {
        name: "map_ops hash (lookup+update)",
        object: "bpf/bench/map_ops.bpf.o",
        program: "hash_ops",
        setup: map_ops,
        ops: 512,
    },
    Case {
        name: "map_ops array (lookup+update)",
        object: "bpf/bench/map_ops.bpf.o",
        program: "array_ops",
        setup: none,
        ops: 512,
    },
];

/// Average ns per run of `program` over `packets`, each run `repeat` times.
fn measure(l: &mut Loaded, program: &str, packets: &[Vec<u8>], repeat: u32) -> f64 {
    // Warm up (first runs build interpreters and fault pages in).
    for p in packets {
        l.run(program, p, 10).unwrap();
    }
    let mut total = 0f64;
    for p in packets {
        total += l.run(program, p, repeat).unwrap().duration_ns as f64;
    }
    total / packets.len() as f64
}

fn main() {
    // `cargo bench` passes --bench; a filter argument is not used.
    let kernel = bpfkit::kernel::probe().is_ok();
    if !kernel {
        eprintln!("not root (or no bpf(2)): measuring the VM only");
    }
    // Frames every program type accepts (skb test runs refuse truncated IP
    // headers).
    let corpus: Vec<Vec<u8>> = packets::corpus()
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| p.len() >= 54)
        .collect();
    let one = vec![packets::corpus()[0].1.clone()];
    let repeat = 20_000;
    let jit = ExecMode::JIT_AVAILABLE;
    println!(
        "| workload | VM interpreter ns/run | VM JIT ns/run | kernel (JIT) ns/run | VM JIT / kernel | VM JIT Mpps |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for c in CASES {
        let path = object(c.object);
        let mut obj = Object::open(&path).unwrap();
        let pkts = if c.ops == 0 { &corpus } else { &one };
        let name = c.name;
        let program = c.program.to_string();
        let mut in_vm = |mode| {
            obj.set_exec_mode(mode);
            let mut vm = obj.load(Engine::Vm).unwrap();
            (c.setup)(&mut vm);
            measure(&mut vm, &program, pkts, repeat)
        };
        let i = in_vm(ExecMode::Interpret);
        let v = jit.then(|| in_vm(ExecMode::Jit { blinding: false }));
        let k = if kernel {
            let mut kl = obj.load(Engine::Kernel).unwrap();
            (c.setup)(&mut kl);
            Some(measure(&mut kl, &program, pkts, repeat))
        } else {
            None
        };
        let per = |ns: f64| {
            if c.ops > 0 {
                format!("{:.1} ({:.1}/op)", ns, ns / c.ops as f64)
            } else {
                format!("{ns:.1}")
            }
        };
        // Without a JIT on this host its columns read "-".
        let dash = || "-".to_string();
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            per(i),
            v.map_or_else(dash, per),
            k.map_or_else(dash, per),
            v.zip(k).map_or_else(dash, |(v, k)| format!("{:.2}", v / k)),
            v.map_or_else(dash, |v| format!("{:.2}", 1e3 / v)),
        );
    }
}
