//! Criterion benchmarks of bpfkit's interpreter against rbpf's on the same
//! program bytes and the same memory. Throughput is in executed eBPF
//! instructions, so criterion's "elem/s" is instructions per second.
//!
//! `cargo bench -p bpfkit-vm --bench interpreter` (add `-- alu` to pick one).

mod common;

use bpfkit_vm::{Helpers, Interpreter, Program};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::hint::black_box;
use std::time::Duration;

fn interpreters(c: &mut Criterion) {
    for w in common::all() {
        let insns = common::check(&w);
        let mut g = c.benchmark_group(w.name);
        g.throughput(Throughput::Elements(insns))
            .sampling_mode(SamplingMode::Flat)
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));

        let prog = Program::from_bytes(&w.bytes).unwrap();
        let mut vm = Interpreter::new(&prog, &Helpers::new()).unwrap();
        let mut mem = w.mem.clone();
        g.bench_function("bpfkit", |b| {
            b.iter(|| vm.run(black_box(&mut mem)).unwrap().r0)
        });

        let rvm = rbpf::EbpfVmRaw::new(Some(&w.bytes)).unwrap();
        let mut mem = w.mem.clone();
        g.bench_function("rbpf", |b| {
            b.iter(|| rvm.execute_program(black_box(&mut mem)).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, interpreters);
criterion_main!(benches);
