//! Nanoseconds per executed eBPF instruction, bpfkit's interpreter against
//! rbpf's, as a markdown table (the one BENCHMARKS.md shows).
//!
//! `cargo bench -p bpfkit-vm --bench report [-- WORKLOAD...]`
//!
//! After a warm-up, each workload is timed in samples of about 10 ms,
//! alternating between the engines so both see the same machine. A sample is
//! measured in the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so time the
//! thread spent descheduled by other work on the machine does not count; the
//! table shows the best sample's time per run and, in the last column, how
//! many times faster bpfkit is (rbpf time / bpfkit time). The instruction
//! count is bpfkit's `Outcome::insns` (LDDW counts once); both engines execute
//! the same instructions, since program and memory are the same.
//!
//! `BPFKIT_BENCH_SAMPLES=N` changes the number of samples per engine (40).
//! With `BPFKIT_BENCH_DUMP=DIR` it also writes each workload's program
//! (`NAME.bin`), memory (`NAME.mem`) and expected r0 and instruction count
//! (`NAME.expect`) to DIR, so other engines can be timed on the same input.

mod common;
mod timing;

use bpfkit_vm::{Helpers, Interpreter, Program};
use std::hint::black_box;

/// An engine under measurement: how many runs make a sample, and the best
/// time per run seen so far.
struct Timer<F: FnMut() -> u64> {
    run: F,
    reps: u64,
    best: f64,
}

impl<F: FnMut() -> u64> Timer<F> {
    fn new(mut run: F) -> Self {
        let reps = timing::reps_per_sample(&mut run);
        Timer {
            run,
            reps,
            best: f64::INFINITY,
        }
    }

    fn sample(&mut self) {
        self.best = self.best.min(timing::sample(&mut self.run, self.reps));
    }
}

fn main() {
    let filters = timing::filters();
    let samples = timing::samples(40);
    let dump = std::env::var_os("BPFKIT_BENCH_DUMP").map(std::path::PathBuf::from);
    if let Some(d) = &dump {
        std::fs::create_dir_all(d).expect("create dump directory");
    }

    println!("| workload | insns/run | bpfkit ns/run | rbpf ns/run | bpfkit ns/insn | rbpf ns/insn | rbpf / bpfkit |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut alu_ns_insn = None;
    let mut slower = Vec::new();
    for w in common::all() {
        if !filters.is_empty() && !filters.iter().any(|f| w.name.contains(f.as_str())) {
            continue;
        }
        let insns = common::check(&w);
        if let Some(d) = &dump {
            std::fs::write(d.join(format!("{}.bin", w.name)), &w.bytes).unwrap();
            std::fs::write(d.join(format!("{}.mem", w.name)), &w.mem).unwrap();
            std::fs::write(
                d.join(format!("{}.expect", w.name)),
                format!("{} {}\n", w.expected, insns),
            )
            .unwrap();
        }

        let prog = Program::from_bytes(&w.bytes).unwrap();
        let mut vm = Interpreter::new(&prog, &Helpers::new()).unwrap();
        let mut mem_ours = w.mem.clone();
        let rvm = rbpf::EbpfVmRaw::new(Some(&w.bytes)).unwrap();
        let mut mem_theirs = w.mem.clone();

        let mut ours = Timer::new(|| vm.run(black_box(&mut mem_ours)).unwrap().r0);
        let mut theirs = Timer::new(|| rvm.execute_program(black_box(&mut mem_theirs)).unwrap());
        for _ in 0..samples {
            ours.sample();
            theirs.sample();
        }
        let (ours, theirs) = (ours.best, theirs.best);

        let n = insns as f64;
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2}x |",
            w.name,
            insns,
            ours,
            theirs,
            ours / n,
            theirs / n,
            theirs / ours
        );
        if w.name == "alu" {
            alu_ns_insn = Some(ours / n);
        }
        if ours >= theirs {
            slower.push(w.name);
        }
    }
    println!();
    if let Some(a) = alu_ns_insn {
        println!(
            "goal <= 1.5 ns/insn on alu: {} ({a:.2} ns/insn)",
            if a <= 1.5 { "met" } else { "MISSED" }
        );
    }
    if slower.is_empty() {
        println!("goal faster than rbpf on every workload: met");
    } else {
        println!(
            "goal faster than rbpf on every workload: MISSED on {}",
            slower.join(", ")
        );
    }
}
