//! The benchmark workloads shared by the criterion bench (`interpreter`) and
//! the ns-per-instruction report (`report`): each is a conformance-dialect
//! program under `programs/`, the memory it runs on, and the r0 a plain Rust
//! version of the same computation gives.
//!
//! Programs read their parameters from a 16-byte header at the start of the
//! memory (`[r1+0]` is the size n) and never use r2, because rbpf passes only
//! r1.

#![allow(dead_code)]

use bpfkit_isa::{asm::assemble, slots_to_bytes, Dialect};
use bpfkit_vm::{Helpers, Interpreter, Program};

pub struct Workload {
    pub name: &'static str,
    pub asm: &'static str,
    /// The program's instruction bytes, identical for every engine.
    pub bytes: Vec<u8>,
    /// The memory r1 points at; runs may write to it, but only in ways that
    /// leave the next run's result unchanged.
    pub mem: Vec<u8>,
    /// r0 computed by the Rust reference.
    pub expected: u64,
}

const HEADER: usize = 16;

fn header(n: u64, data: usize) -> Vec<u8> {
    let mut m = vec![0u8; HEADER + data];
    m[..8].copy_from_slice(&n.to_le_bytes());
    m
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

fn build(name: &'static str, asm: &'static str, mem: Vec<u8>, expected: u64) -> Workload {
    let slots =
        assemble(asm, Dialect::Conformance).unwrap_or_else(|e| panic!("programs/{name}.asm: {e}"));
    Workload {
        name,
        asm,
        bytes: slots_to_bytes(&slots),
        mem,
        expected,
    }
}

pub fn alu() -> Workload {
    let n: u64 = 100_000;
    let (mut r0, mut r2, mut r3, mut r4) = (0u64, n, 1u64, 0x12345u64);
    loop {
        r0 = r0.wrapping_add(r3);
        r0 ^= 0x5bd1_e995;
        r0 ^= r0 >> 7;
        r3 = r3.wrapping_mul(33).wrapping_add(r2) & 0xff_ffff;
        r4 |= r3;
        r4 = r4.wrapping_sub(r0) << 1;
        r2 -= 1;
        if r2 == 0 {
            break;
        }
    }
    build(
        "alu",
        include_str!("../programs/alu.asm"),
        header(n, 0),
        r0.wrapping_add(r4),
    )
}

pub fn prime() -> Workload {
    let n: u64 = 12_000;
    let count = (2..n)
        .filter(|&c| (2..).take_while(|d| d * d <= c).all(|d| c % d != 0))
        .count() as u64;
    build(
        "prime",
        include_str!("../programs/prime.asm"),
        header(n, 0),
        count,
    )
}

pub fn memcpy() -> Workload {
    let n = 128 * 1024;
    let mut mem = header(n as u64, 2 * n);
    mem[HEADER..HEADER + n].copy_from_slice(&noise(n, 1));
    let sum = mem[HEADER..HEADER + n].iter().map(|&b| b as u64).sum();
    build("memcpy", include_str!("../programs/memcpy.asm"), mem, sum)
}

pub fn memcpy8() -> Workload {
    let n = 256 * 1024;
    let mut mem = header(n as u64, 2 * n);
    mem[HEADER..HEADER + n].copy_from_slice(&noise(n, 2));
    let x = mem[HEADER..HEADER + n]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .fold(0, |a, w| a ^ w);
    build("memcpy8", include_str!("../programs/memcpy8.asm"), mem, x)
}

pub fn switch() -> Workload {
    let n = 64 * 1024;
    let mut mem = header(n as u64, n);
    mem[HEADER..].copy_from_slice(&noise(n, 3));
    // Mirrors programs/switch.asm (generated with ops[c % 8], k = c*37+11).
    let mut r0 = 0u64;
    for &b in &mem[HEADER..] {
        let c = (b & 15) as u64;
        let k = c * 37 + 11;
        r0 = match c % 8 {
            0 => r0.wrapping_add(k),
            1 => r0 ^ k,
            2 => r0.wrapping_mul(3),
            3 => r0.wrapping_sub(k),
            4 => r0 << 1,
            5 => r0 >> 1,
            6 => r0 | k,
            _ => r0 & 0x7fff_ffff,
        }
        .wrapping_add(c);
    }
    build("switch", include_str!("../programs/switch.asm"), mem, r0)
}

pub fn strcmp() -> Workload {
    let n = 128 * 1024;
    let mut mem = header(n as u64, 2 * n);
    for i in 0..n - 1 {
        let c = b'a' + (i % 26) as u8;
        mem[HEADER + i] = c;
        mem[HEADER + n + i] = c;
    }
    // The strings differ 10 bytes before their ends.
    mem[HEADER + n - 10] = b'b';
    mem[HEADER + 2 * n - 10] = b'z';
    let expected = (b'b' as u64).wrapping_sub(b'z' as u64);
    build(
        "strcmp",
        include_str!("../programs/strcmp.asm"),
        mem,
        expected,
    )
}

pub fn log2() -> Workload {
    let n: u64 = 30_000;
    let sum = (1..=n)
        .map(|i| {
            let v = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            if v == 0 {
                0
            } else {
                63 - v.leading_zeros() as u64
            }
        })
        .sum();
    build(
        "log2",
        include_str!("../programs/log2.asm"),
        header(n, 0),
        sum,
    )
}

pub fn all() -> Vec<Workload> {
    vec![
        alu(),
        prime(),
        memcpy(),
        memcpy8(),
        switch(),
        strcmp(),
        log2(),
    ]
}

/// Runs the workload once in bpfkit's interpreter and once in rbpf's, checks
/// both against the reference, and returns bpfkit's instruction count.
pub fn check(w: &Workload) -> u64 {
    let prog = Program::from_bytes(&w.bytes).expect("bpfkit loads the program");
    let mut vm = Interpreter::new(&prog, &Helpers::new()).expect("no helpers needed");
    let mut mem = w.mem.clone();
    let out = vm.run(&mut mem).expect("bpfkit run");
    assert_eq!(out.r0, w.expected, "{}: bpfkit r0", w.name);
    let rvm = rbpf::EbpfVmRaw::new(Some(&w.bytes)).expect("rbpf loads the program");
    let mut mem = w.mem.clone();
    let r0 = rvm.execute_program(&mut mem).expect("rbpf run");
    assert_eq!(r0, w.expected, "{}: rbpf r0", w.name);
    out.insns
}
