//! The assembler: text in either dialect to instruction slots.
//!
//! Both dialects share the driver here: comments, labels (`name:` alone or in
//! front of an instruction), two passes so a jump may name a label defined
//! later, and the range checks on numbers. A dialect only turns the text of
//! one instruction into an [`Instruction`] plus, for jumps and local calls,
//! the [`Target`] it names.

mod conformance;
mod llvm;
pub(crate) mod num;

use crate::{Dialect, Instruction, RawInsn};
use std::collections::HashMap;
use thiserror::Error;

/// An assembly error, with the 1-based line it was found on.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}: {message}")]
pub struct AsmError {
    pub line: usize,
    pub message: String,
}

/// Where a jump or local call goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Relative to the next slot, as encoded.
    Rel(i64),
    Label(String),
}

/// One instruction as a dialect parsed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub insn: Instruction,
    /// For jumps and local calls: the target to write into the offset field
    /// once labels are known.
    pub target: Option<Target>,
}

impl Parsed {
    pub fn plain(insn: Instruction) -> Self {
        Parsed { insn, target: None }
    }
}

/// Assembles a whole program.
pub fn assemble(text: &str, dialect: Dialect) -> Result<Vec<RawInsn>, AsmError> {
    let mut labels: HashMap<String, usize> = HashMap::new();
    let mut insns: Vec<(usize, usize, Parsed)> = Vec::new(); // (line, slot, parsed)
    let mut slot = 0usize;
    let mut first_exit: Option<usize> = None;
    for (idx, raw_line) in text.lines().enumerate() {
        let line_no = idx + 1;
        let err = |message: String| AsmError {
            line: line_no,
            message,
        };
        let mut line = strip_comment(raw_line, dialect).trim();
        // Leading labels: `name:` (possibly followed by an instruction).
        while let Some((name, rest)) = split_label(line) {
            if labels.insert(name.to_string(), slot).is_some() {
                return Err(err(format!("duplicate label `{name}`")));
            }
            line = rest.trim();
        }
        if line.is_empty() {
            continue;
        }
        let parsed = match dialect {
            Dialect::Conformance => conformance::parse(line),
            Dialect::Llvm => llvm::parse(line),
        }
        .map_err(err)?;
        if parsed.insn == Instruction::Exit && first_exit.is_none() {
            first_exit = Some(slot);
        }
        let n = parsed.insn.slots();
        insns.push((line_no, slot, parsed));
        slot += n;
    }
    // The conformance suite treats the first `exit` as the label `exit`.
    if dialect == Dialect::Conformance {
        if let Some(at) = first_exit {
            labels.entry("exit".to_string()).or_insert(at);
        }
    }
    let mut out = Vec::with_capacity(slot);
    for (line, at, parsed) in insns {
        let mut insn = parsed.insn;
        if let Some(target) = parsed.target {
            let rel = match target {
                Target::Rel(r) => r,
                Target::Label(name) => {
                    let dest = *labels.get(&name).ok_or_else(|| AsmError {
                        line,
                        message: format!("unknown label `{name}`"),
                    })?;
                    dest as i64 - at as i64 - 1
                }
            };
            set_branch_offset(&mut insn, rel).map_err(|message| AsmError { line, message })?;
        }
        out.extend_from_slice(insn.encode().as_slice());
    }
    Ok(out)
}

fn set_branch_offset(insn: &mut Instruction, rel: i64) -> Result<(), String> {
    let off16 =
        || i16::try_from(rel).map_err(|_| format!("jump offset {rel} does not fit in 16 bits"));
    let imm32 =
        || i32::try_from(rel).map_err(|_| format!("jump offset {rel} does not fit in 32 bits"));
    match insn {
        Instruction::Ja { off } | Instruction::Jump { off, .. } => *off = off16()?,
        Instruction::JaLong { imm } | Instruction::Call { imm, .. } => *imm = imm32()?,
        _ => return Err("instruction takes no jump target".into()),
    }
    Ok(())
}

fn strip_comment(line: &str, dialect: Dialect) -> &str {
    let cut = match dialect {
        Dialect::Conformance => line.find('#'),
        // `;` starts objdump -S source lines and verifier-log register state,
        // `//` C comments, `#` LLVM comments but only after white space: the
        // verifier log prints `call bpf_map_lookup_elem#1`.
        Dialect::Llvm => [
            line.find(';'),
            line.find("//"),
            line.char_indices()
                .find(|&(i, c)| c == '#' && (i == 0 || line[..i].ends_with(char::is_whitespace)))
                .map(|(i, _)| i),
        ]
        .into_iter()
        .flatten()
        .min(),
    };
    match cut {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Splits `name: rest` when `name` is an identifier.
fn split_label(line: &str) -> Option<(&str, &str)> {
    let colon = line.find(':')?;
    let name = line[..colon].trim();
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$')
        && !name.chars().next().unwrap().is_ascii_digit();
    ok.then(|| (name, &line[colon + 1..]))
}
