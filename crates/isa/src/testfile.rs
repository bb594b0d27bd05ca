//! The bpf_conformance test-vector format (`.data` files): an `-- asm` or
//! `-- raw` program, optional `-- mem` input, and the `-- result` expected in
//! r0 or the `-- error` expected instead.

use crate::asm::{assemble, AsmError};
use crate::{Dialect, RawInsn};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// One parsed test vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestVector {
    pub name: String,
    pub program: Vec<RawInsn>,
    pub mem: Vec<u8>,
    pub result: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Error)]
pub enum TestFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: assembly {source}")]
    Asm { path: PathBuf, source: AsmError },
    #[error("{path}:{line}: {message}")]
    Format {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Why a vector was skipped rather than parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Test(TestVector),
    /// The file holds a directive this runner does not know (as the public
    /// runner does, such files are skipped).
    Skipped(String),
}

#[derive(PartialEq)]
enum Section {
    None,
    Asm,
    Raw,
    Mem,
    Result,
    Error,
    Ignored,
}

/// Parses one test vector from text; `path` only names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Parsed, TestFileError> {
    let fmt = |line: usize, message: String| TestFileError::Format {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut section = Section::None;
    let mut asm = String::new();
    let mut asm_first_line = 0;
    let mut raw: Vec<RawInsn> = Vec::new();
    let mut have_raw = false;
    let mut mem = Vec::new();
    let mut result_text = String::new();
    let mut error = None::<String>;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.contains("--") && line.trim_start().starts_with("--") {
            let directive = line.trim_start().trim_start_matches('-').trim();
            section = match directive {
                "asm" => {
                    asm_first_line = n;
                    Section::Asm
                }
                "raw" => {
                    have_raw = true;
                    Section::Raw
                }
                "mem" => Section::Mem,
                "result" => Section::Result,
                "error" => Section::Error,
                "no register offset" | "c" => Section::Ignored,
                other => return Ok(Parsed::Skipped(format!("directive `-- {other}`"))),
            };
            continue;
        }
        match section {
            Section::Asm => {
                asm.push_str(line);
                asm.push('\n');
            }
            Section::None | Section::Ignored => {}
            _ => {
                let body = line.split('#').next().unwrap_or("").trim();
                if body.is_empty() {
                    continue;
                }
                match section {
                    Section::Raw => {
                        for tok in body.split_whitespace() {
                            let v = parse_u64(tok)
                                .ok_or_else(|| fmt(n, format!("bad raw slot `{tok}`")))?;
                            raw.push(RawInsn::from_u64(v));
                        }
                    }
                    Section::Mem => {
                        for tok in body.split_whitespace() {
                            mem.push(
                                u8::from_str_radix(tok, 16)
                                    .map_err(|_| fmt(n, format!("bad memory byte `{tok}`")))?,
                            );
                        }
                    }
                    Section::Result => result_text.push_str(body),
                    Section::Error => {
                        error = Some(match error {
                            Some(e) => format!("{e}\n{body}"),
                            None => body.to_string(),
                        })
                    }
                    _ => {}
                }
            }
        }
    }
    let program = if have_raw {
        raw
    } else {
        // Report assembly errors at their line in the file.
        assemble(&asm, Dialect::Conformance).map_err(|mut e| {
            e.line += asm_first_line;
            TestFileError::Asm {
                path: path.to_path_buf(),
                source: e,
            }
        })?
    };
    let result = if result_text.is_empty() {
        None
    } else {
        Some(parse_u64(&result_text).ok_or_else(|| fmt(0, format!("bad result `{result_text}`")))?)
    };
    Ok(Parsed::Test(TestVector {
        name: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        program,
        mem,
        result,
        error,
    }))
}

/// Reads and parses one `.data` file.
pub fn load(path: &Path) -> Result<Parsed, TestFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TestFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Where the bpf_conformance `tests` directory is: `BPFKIT_CONFORMANCE_DIR`,
/// else `shared/conformance/bpf_conformance/tests` beside the repository.
pub fn suite_dir() -> PathBuf {
    match std::env::var_os("BPFKIT_CONFORMANCE_DIR") {
        Some(d) => d.into(),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/conformance/bpf_conformance/tests"),
    }
}

/// Every `.data` file in a directory, sorted by name.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, TestFileError> {
    let rd = std::fs::read_dir(dir).map_err(|source| TestFileError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    v.sort();
    Ok(v)
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(neg) = s.strip_prefix('-') {
        neg.parse::<i64>().ok().map(|v| v.wrapping_neg() as u64)
    } else {
        s.parse::<u64>().ok()
    }
}
