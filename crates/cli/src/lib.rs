//! Shared pieces of the `bpfkit` binaries: reading programs and memory from
//! files and the command line.

pub mod pcap_io;

use anyhow::{bail, Context, Result};
use bpfkit_isa::{asm::assemble, slots_from_bytes, Dialect, RawInsn};
use std::path::Path;

/// Parses hex bytes: `aa bb 11`, `aabb11`, `0xaa, 0xbb`, on one or many
/// lines; `#` starts a comment.
pub fn parse_hex(text: &str) -> Result<Vec<u8>> {
    let mut digits = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        for tok in line.split(|c: char| c.is_whitespace() || c == ',') {
            let tok = tok.trim_start_matches("0x").trim_start_matches("0X");
            if let Some(bad) = tok.chars().find(|c| !c.is_ascii_hexdigit()) {
                bail!("line {}: `{bad}` is not a hex digit", n + 1);
            }
            if tok.len() % 2 == 1 {
                bail!("line {}: `{tok}` has an odd number of hex digits", n + 1);
            }
            digits.push_str(tok);
        }
    }
    Ok((0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digits checked"))
        .collect())
}

/// Guesses the dialect of assembly text: `%r` registers mean the conformance
/// dialect; assignments and `goto` the LLVM one.
pub fn guess_dialect(text: &str) -> Dialect {
    if text.contains("%r") {
        Dialect::Conformance
    } else if text.contains('=') || text.contains("goto") {
        Dialect::Llvm
    } else {
        Dialect::Conformance
    }
}

/// Assembles text from `path` in the given dialect, or else in the guessed
/// one, falling back to the other dialect when only that one accepts it.
/// Errors name the file and line.
pub fn assemble_file(path: &Path, text: &str, dialect: Option<Dialect>) -> Result<Vec<RawInsn>> {
    let located = |e: bpfkit_isa::asm::AsmError| {
        anyhow::anyhow!("{}:{}: {}", path.display(), e.line, e.message)
    };
    if let Some(d) = dialect {
        return assemble(text, d).map_err(located);
    }
    let guess = guess_dialect(text);
    let other = match guess {
        Dialect::Llvm => Dialect::Conformance,
        Dialect::Conformance => Dialect::Llvm,
    };
    // When neither dialect accepts the text, report the one that got further.
    assemble(text, guess)
        .or_else(|e| assemble(text, other).map_err(|o| if o.line > e.line { o } else { e }))
        .map_err(located)
}

/// Whether a file holds assembly text rather than bytecode: by extension,
/// else by content (bytecode is rarely valid printable UTF-8).
pub fn looks_like_assembly(path: &Path, bytes: &[u8]) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("asm" | "s" | "S" | "bpf_asm") => return true,
        Some("bin" | "o" | "raw") => return false,
        _ => {}
    }
    match std::str::from_utf8(bytes) {
        Ok(t) => t
            .chars()
            .all(|c| !c.is_control() || c == '\n' || c == '\r' || c == '\t'),
        Err(_) => false,
    }
}

/// Reads a program file: assembly in either dialect (given or guessed) or
/// raw bytecode.
pub fn read_program(path: &Path, dialect: Option<Dialect>) -> Result<Vec<RawInsn>> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if looks_like_assembly(path, &bytes) {
        let text = String::from_utf8(bytes).expect("checked UTF-8");
        assemble_file(path, &text, dialect)
    } else {
        slots_from_bytes(&bytes).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.kind))
    }
}

/// Whether a file starts with the ELF magic (an eBPF object, not bytecode
/// or assembly).
pub fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}
