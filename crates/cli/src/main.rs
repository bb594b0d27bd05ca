use anyhow::{bail, Context, Result};
use bpfkit_cli::{parse_hex, read_program};
use bpfkit_isa::{disasm, slots_to_bytes, Dialect};
use bpfkit_vm::{Executor, Program};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

mod exporter_cmd;
mod kernel_cmds;
mod load_cmd;
mod object_cmds;

/// bpfkit: an eBPF toolkit with two engines, the Linux kernel and a userspace VM.
#[derive(Parser)]
#[command(name = "bpfkit", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DialectArg {
    /// `mov %r0, 1`, `ldxw %r0, [%r1+4]` (bpf_conformance, ubpf)
    Conformance,
    /// `r0 = 1`, `r0 = *(u32 *)(r1 + 4)` (llvm-objdump, the kernel verifier log)
    Llvm,
}

impl From<DialectArg> for Dialect {
    fn from(d: DialectArg) -> Dialect {
        match d {
            DialectArg::Conformance => Dialect::Conformance,
            DialectArg::Llvm => Dialect::Llvm,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Assemble a text program into bytecode.
    Asm {
        file: PathBuf,
        /// Output file (`-` for stdout); defaults to FILE with extension .bin.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Input dialect; guessed from the text when not given.
        #[arg(long, value_enum)]
        dialect: Option<DialectArg>,
    },
    /// Disassemble bytecode (or assembly) into text.
    Disasm {
        file: PathBuf,
        /// Output dialect.
        #[arg(long, value_enum, default_value = "llvm")]
        dialect: DialectArg,
        /// Show slot numbers and raw bytes.
        #[arg(long)]
        raw: bool,
    },
    /// Run a program (bytecode or assembly) in the VM: r1 points to the
    /// memory, r2 holds its length. Given a clang-built object (ELF), run
    /// one of its packet programs (XDP, tc, socket filter) over packets in
    /// the VM, the kernel or both, and print verdicts and maps; or, with
    /// --mem/--mem-hex, one run of a program whose context is memory (raw
    /// tracepoint arguments; in the VM any tracing context).
    Run {
        /// Bytecode, assembly, or an eBPF object.
        file: PathBuf,
        #[command(flatten)]
        load: object_cmds::LoadArgs,
        #[command(flatten)]
        object: object_cmds::RunObjectArgs,
        /// File of hex bytes to pass as memory.
        #[arg(long, conflicts_with = "mem_hex")]
        mem: Option<PathBuf>,
        /// Hex bytes to pass as memory, e.g. "aa bb 01 02".
        #[arg(long)]
        mem_hex: Option<String>,
        /// Dialect of an assembly file; guessed when not given.
        #[arg(long, value_enum)]
        dialect: Option<DialectArg>,
        /// Stop after this many instructions.
        #[arg(long, default_value_t = bpfkit_vm::DEFAULT_BUDGET)]
        budget: u64,
        /// Print the memory after the run.
        #[arg(long)]
        dump_mem: bool,
    },
    /// Dump an object's maps after load (in the VM unless --engine kernel),
    /// keys and values formatted through the object's BTF.
    Maps {
        /// The clang-built eBPF object (ELF).
        object: PathBuf,
        #[command(flatten)]
        load: object_cmds::LoadArgs,
        /// Only these maps.
        #[arg(long = "map", value_name = "NAME")]
        only: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Serve Prometheus metrics from eBPF maps, with cloudflare/ebpf_exporter's
    /// configs, objects and flags (needs root).
    Exporter(exporter_cmd::ExporterArgs),
    /// Programs loaded in the kernel (needs CAP_SYS_ADMIN).
    Prog {
        #[command(subcommand)]
        command: ListCommand,
    },
    /// Maps in the kernel (needs CAP_SYS_ADMIN).
    Map {
        #[command(subcommand)]
        command: ListCommand,
    },
    /// Load an object into the kernel, attach programs and print maps every
    /// interval until Ctrl-C, SIGTERM or --duration; then detach (needs root).
    Load {
        /// The clang-built eBPF object (ELF).
        object: PathBuf,
        /// Set a global before load: NAME=HEX, the bytes in memory order
        /// (a u32 1 on x86-64 is 01000000).
        #[arg(long = "global", value_name = "NAME=HEX")]
        globals: Vec<String>,
        /// Attach a program: tracepoint:CATEGORY:NAME=PROGRAM,
        /// raw_tracepoint:NAME=PROGRAM, tp_btf:NAME=PROGRAM,
        /// uprobe:PATH[@PID]:SYMBOL=PROGRAM, xdp:IFACE[:generic|:driver]=PROGRAM
        /// (generic by default), tc:IFACE:ingress|egress=PROGRAM,
        /// perf_event:FREQ=PROGRAM.
        #[arg(long, value_name = "SPEC")]
        attach: Vec<String>,
        /// Print this map's entries (hex key = hex value, 8-byte values also
        /// in decimal, per-CPU 8-byte values summed) every interval.
        #[arg(long, value_name = "MAP")]
        watch: Vec<String>,
        /// Seconds between map prints.
        #[arg(long, default_value_t = 1.0, value_name = "SECS")]
        interval: f64,
        /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
        #[arg(long, value_name = "SECS")]
        duration: Option<f64>,
    },
}

#[derive(Subcommand)]
enum ListCommand {
    /// List them all, like `bpftool prog show` / `bpftool map show`.
    #[command(alias = "show")]
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    // Output piped into `head` and the like ends quietly, as for any Unix
    // tool, rather than failing on the closed pipe.
    // SAFETY: called before any other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    if let Err(e) = run(Cli::parse()) {
        eprintln!("bpfkit: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Asm {
            file,
            output,
            dialect,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("{}: cannot read", file.display()))?;
            let slots = bpfkit_cli::assemble_file(&file, &text, dialect.map(Dialect::from))?;
            let bytes = slots_to_bytes(&slots);
            let out = output.unwrap_or_else(|| file.with_extension("bin"));
            if out == Path::new("-") {
                std::io::stdout().write_all(&bytes)?;
            } else {
                std::fs::write(&out, &bytes)
                    .with_context(|| format!("{}: cannot write", out.display()))?;
                eprintln!("{}: {} instruction slots", out.display(), slots.len());
            }
        }
        Command::Disasm { file, dialect, raw } => {
            let slots = read_program(&file, None)?;
            if raw {
                print!("{}", disasm::listing(&slots, dialect.into()));
            } else {
                let text = disasm::disassemble(&slots, dialect.into())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                print!("{text}");
            }
        }
        Command::Maps {
            object,
            load,
            only,
            json,
        } => {
            if load.engine == object_cmds::EngineArg::Both {
                bail!("--engine both: `bpfkit maps` dumps one engine's maps; use `bpfkit run --engine both` to compare");
            }
            object_cmds::maps(&object, &load, &only, json)?;
        }
        Command::Run {
            file,
            load,
            object,
            mem,
            mem_hex,
            dialect,
            budget,
            dump_mem,
        } => {
            if bpfkit_cli::is_elf(&file) {
                let context = match (&mem, &mem_hex) {
                    (Some(p), _) => {
                        let t = std::fs::read_to_string(p)
                            .with_context(|| format!("{}: cannot read", p.display()))?;
                        Some(parse_hex(&t).with_context(|| format!("{}", p.display()))?)
                    }
                    (None, Some(h)) => Some(parse_hex(h).context("--mem-hex")?),
                    (None, None) => None,
                };
                let code = object_cmds::run(&file, &load, &object, context)?;
                if code != 0 {
                    std::process::exit(code);
                }
                return Ok(());
            }
            let slots = read_program(&file, dialect.map(Dialect::from))?;
            let mut memory = match (mem, mem_hex) {
                (Some(p), _) => {
                    let t = std::fs::read_to_string(&p)
                        .with_context(|| format!("{}: cannot read", p.display()))?;
                    parse_hex(&t).with_context(|| format!("{}", p.display()))?
                }
                (None, Some(h)) => parse_hex(&h).context("--mem-hex")?,
                (None, None) => Vec::new(),
            };
            let prog =
                Program::new(&slots).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let helpers = bpfkit_vm::helpers::conformance();
            let mode = load.exec.mode()?;
            let mut vm = Executor::new(&prog, &helpers, mode)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            vm.set_budget(budget);
            let start = Instant::now();
            let out = vm.run(&mut memory);
            let elapsed = start.elapsed();
            match out {
                Ok(o) => {
                    println!("r0 = {:#x} ({})", o.r0, o.r0 as i64);
                    println!("instructions executed: {}", o.insns);
                    println!("time: {elapsed:?} ({})", mode.name());
                    if dump_mem && !memory.is_empty() {
                        let hex: Vec<String> = memory.iter().map(|b| format!("{b:02x}")).collect();
                        println!("memory: {}", hex.join(" "));
                    }
                }
                Err(e) => bail!("{}: {e}", file.display()),
            }
        }
        Command::Exporter(args) => exporter_cmd::run(args)?,
        Command::Prog {
            command: ListCommand::List { json },
        } => kernel_cmds::prog_list(json)?,
        Command::Map {
            command: ListCommand::List { json },
        } => kernel_cmds::map_list(json)?,
        Command::Load {
            object,
            globals,
            attach,
            watch,
            interval,
            duration,
        } => load_cmd::load(load_cmd::LoadArgs {
            object,
            globals,
            attach,
            watch,
            interval,
            duration,
        })?,
    }
    Ok(())
}
