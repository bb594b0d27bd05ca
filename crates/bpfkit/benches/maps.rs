//! Host-side map access, VM maps against kernel maps through bpf(2), on the
//! same keys, plus the VM's program-side lookup and update.
//!
//! `cargo bench -p bpfkit --bench maps`: criterion's measurements, then a
//! table of ns/op and kernel/VM ratios (best of several timed batches).
//! Kernel rows need root; without it only the VM rows run.

use bpfkit::kernel::maps::{self as kmaps, KernelMap};
use bpfkit::vm::maps::{self as vmaps, types, BpfMap, MapDef, MapRegistry};
use criterion::{criterion_group, Criterion};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const KEYS: u32 = 1024;

fn def(map_type: u32) -> MapDef {
    MapDef {
        name: "bench".into(),
        map_type,
        key_size: 4,
        value_size: 8,
        max_entries: if map_type == types::HASH {
            4 * KEYS
        } else {
            KEYS
        },
        flags: 0,
        inner: None,
    }
}

fn vm_map(map_type: u32) -> Arc<dyn BpfMap> {
    let m = vmaps::create(&def(map_type), &MapRegistry::new()).unwrap();
    for i in 0..KEYS {
        m.update(&i.to_ne_bytes(), &(i as u64).to_ne_bytes(), 0)
            .unwrap();
    }
    m
}

fn kernel_map(map_type: u32) -> Option<KernelMap> {
    bpfkit::kernel::probe().ok()?;
    let d = def(map_type);
    let m = kmaps::create("bench", map_type, 4, 8, d.max_entries, 0).ok()?;
    for i in 0..KEYS {
        m.update(&i.to_ne_bytes(), &(i as u64).to_ne_bytes(), 0)
            .ok()?;
    }
    Some(m)
}

/// The operations measured, by name.
type Op = Box<dyn FnMut(u32)>;

fn ops() -> Vec<(String, Op)> {
    let mut out: Vec<(String, Op)> = Vec::new();
    for (tname, ty) in [("hash", types::HASH), ("array", types::ARRAY)] {
        let vm = vm_map(ty);
        let v = vm.clone();
        out.push((
            format!("{tname} lookup vm"),
            Box::new(move |i| {
                black_box(v.lookup(&i.to_ne_bytes()).unwrap());
            }),
        ));
        let v = vm.clone();
        out.push((
            format!("{tname} update vm"),
            Box::new(move |i| {
                v.update(&i.to_ne_bytes(), &(i as u64).to_ne_bytes(), 0)
                    .unwrap();
            }),
        ));
        if let Some(k) = kernel_map(ty) {
            let k = Arc::new(k);
            let k2 = k.clone();
            out.push((
                format!("{tname} lookup kernel"),
                Box::new(move |i| {
                    black_box(k.lookup(&i.to_ne_bytes()).unwrap());
                }),
            ));
            out.push((
                format!("{tname} update kernel"),
                Box::new(move |i| {
                    k2.update(&i.to_ne_bytes(), &(i as u64).to_ne_bytes(), 0)
                        .unwrap();
                }),
            ));
        }
        let v = vm.clone();
        out.push((
            format!("{tname} prog_lookup vm"),
            Box::new(move |i| {
                black_box(v.prog_lookup(&i.to_ne_bytes(), 0).unwrap());
            }),
        ));
        let v = vm;
        out.push((
            format!("{tname} prog_update vm"),
            Box::new(move |i| {
                v.prog_update(&i.to_ne_bytes(), &(i as u64).to_ne_bytes(), 0, 0)
                    .unwrap();
            }),
        ));
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("maps");
    for (name, mut op) in ops() {
        let mut i = 0u32;
        g.bench_function(&name, |b| {
            b.iter(|| {
                op(i % KEYS);
                i = i.wrapping_add(7);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

/// Best-of-batches ns/op.
fn time(op: &mut Op) -> f64 {
    const N: u32 = 20_000;
    let mut best = f64::MAX;
    for _ in 0..15 {
        let t = Instant::now();
        for j in 0..N {
            op(j.wrapping_mul(7) % KEYS);
        }
        best = best.min(t.elapsed().as_nanos() as f64 / N as f64);
    }
    best
}

fn summary() {
    let results: Vec<(String, f64)> = ops()
        .into_iter()
        .map(|(name, mut op)| {
            let ns = time(&mut op);
            (name, ns)
        })
        .collect();
    let get = |n: &str| results.iter().find(|(m, _)| m == n).map(|r| r.1);
    println!("\n| operation | ns/op | kernel / VM |");
    println!("|---|---:|---:|");
    for (name, ns) in &results {
        let ratio = name
            .strip_suffix(" vm")
            .and_then(|base| get(&format!("{base} kernel")))
            .map_or(String::new(), |k| format!("{:.1}x", k / ns));
        println!("| {name} | {ns:.1} | {ratio} |");
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
