//! A plugin for the public bpf_conformance runner (`--plugin_path`):
//! `bpfkit-conformance-plugin [MEM] [--interpret|--jit] [--blinding]`, the
//! program as hex bytes on stdin, r0 printed in hex on success, an error
//! message and a non-zero exit otherwise. The JIT is the default on x86-64
//! Linux, the interpreter elsewhere.

use bpfkit_cli::parse_hex;
use bpfkit_vm::{ExecMode, Executor, Program};
use std::io::Read;

fn main() {
    match run() {
        Ok(r0) => println!("{r0:x}"),
        Err(msg) => {
            println!("{msg}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<u64, String> {
    let mut mem = Vec::new();
    let mut mode = ExecMode::host_default();
    let mut blinding = false;
    for (i, arg) in std::env::args().skip(1).enumerate() {
        match arg.as_str() {
            "--interpret" => mode = ExecMode::Interpret,
            "--jit" => mode = ExecMode::Jit { blinding: false },
            "--blinding" => blinding = true,
            a if i == 0 && !a.starts_with("--") => {
                mem = parse_hex(a).map_err(|e| format!("memory argument: {e:#}"))?
            }
            a => {
                return Err(format!(
                    "unknown argument `{a}` (usage: [MEM] [--interpret|--jit] [--blinding])"
                ))
            }
        }
    }
    if blinding {
        if mode == ExecMode::Interpret {
            return Err("--blinding is a JIT option; it cannot go with --interpret".into());
        }
        mode = ExecMode::Jit { blinding: true };
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("reading the program from stdin: {e}"))?;
    let bytes = parse_hex(&input).map_err(|e| format!("program on stdin: {e:#}"))?;
    let prog = Program::from_bytes(&bytes).map_err(|e| e.to_string())?;
    let helpers = bpfkit_vm::helpers::conformance();
    let mut vm = Executor::new(&prog, &helpers, mode).map_err(|e| e.to_string())?;
    vm.run(&mut mem).map(|o| o.r0).map_err(|e| e.to_string())
}
