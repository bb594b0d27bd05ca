//! Runs one program in the kernel and in the VM and shows the verdict.
//!
//! ```text
//! cargo run -p bpfkit --example diff -- FILE.data          # a conformance test vector
//! cargo run -p bpfkit --example diff -- --asm FILE [HEX..] # conformance-dialect asm, memory bytes
//! cargo run -p bpfkit --example diff -- --gen SEED         # a case of the random differential test
//! ```
//! Add `--minimize` to shrink a diverging program, `--log` to print the
//! verifier's log (level 2) of the wrapped program.

use bpfkit::differential::{check, minimize, wrap_xdp, Verdict};
use bpfkit_isa::gen::{self, GenConfig, Rng};
use bpfkit_isa::testfile::{self, Parsed};
use bpfkit_isa::{asm::assemble, disasm::listing, Dialect, RawInsn};
use bpfkit_kernel::{LoadOptions, LogMode, Privilege, ProgType};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let rest: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let usage = "usage: diff FILE.data | --asm FILE [HEX..] | --gen SEED  [--minimize] [--log]";
    let (prog, mem): (Vec<RawInsn>, Vec<u8>) = if flag("--gen") {
        let Some(seed) = rest.first().and_then(|s| parse_u64(s)) else {
            eprintln!("{usage}");
            return ExitCode::FAILURE;
        };
        let cfg = GenConfig::random(seed);
        println!("{cfg:?}");
        let mut mem = vec![0u8; cfg.mem_len];
        Rng::new(!seed).fill(&mut mem);
        (gen::program(seed, &cfg), mem)
    } else if flag("--asm") {
        let Some(file) = rest.first() else {
            eprintln!("{usage}");
            return ExitCode::FAILURE;
        };
        let text = std::fs::read_to_string(file).expect("read the file");
        let mem = rest[1..]
            .iter()
            .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
            .collect();
        (
            assemble(&text, Dialect::Conformance).expect("assemble"),
            mem,
        )
    } else {
        let Some(file) = rest.first() else {
            eprintln!("{usage}");
            return ExitCode::FAILURE;
        };
        match testfile::load(Path::new(file.as_str())).expect("read the test vector") {
            Parsed::Test(v) => (v.program, v.mem),
            Parsed::Skipped(why) => {
                eprintln!("skipped: {why}");
                return ExitCode::FAILURE;
            }
        }
    };
    print!("{}", listing(&prog, Dialect::Conformance));
    if flag("--log") {
        let wrapped = wrap_xdp(&prog, mem.len()).expect("wrap");
        let opts = LoadOptions::new(ProgType::Xdp)
            .log(LogMode::Always(2))
            .privilege(Privilege::BpfOnly);
        match bpfkit_kernel::load(&wrapped, &opts) {
            Ok(p) => print!("{}", p.verifier_log().expect("log")),
            Err(e) => print!(
                "{}",
                e.verifier_log()
                    .map(|l| l.to_string())
                    .unwrap_or(e.to_string())
            ),
        }
    }
    match check(&prog, &mem) {
        Ok(Verdict::Agree(out)) => {
            println!("agree: r0 = {:#x}", out.r0);
            ExitCode::SUCCESS
        }
        Ok(Verdict::Rejected(e)) => {
            println!("{e}");
            ExitCode::SUCCESS
        }
        Ok(Verdict::Diverged(d)) => {
            println!("{d}");
            if flag("--minimize") {
                let small = minimize(&prog, |p| {
                    matches!(check(p, &mem), Ok(Verdict::Diverged(_)))
                });
                if let Ok(Verdict::Diverged(d)) = check(&small, &mem) {
                    println!("minimized:\n{d}");
                }
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("kernel side failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}
