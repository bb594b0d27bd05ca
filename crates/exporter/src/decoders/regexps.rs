//! `regexp`: keeps only inputs matching one of the expressions.

use super::{Step, StepError};
use regex::bytes::Regex;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Compiled expressions past this many are dropped and compiled again.
const MAX_COMPILED: usize = 4096;

#[derive(Default)]
pub(crate) struct Regexps {
    compiled: RwLock<HashMap<String, Arc<Regex>>>,
}

impl Regexps {
    /// The compiled `expr`, compiling it on first use.
    pub(crate) fn get(&self, expr: &str) -> Result<Arc<Regex>, String> {
        if let Some(re) = self
            .compiled
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(expr)
        {
            return Ok(re.clone());
        }
        let re = Arc::new(
            Regex::new(expr).map_err(|e| format!("error compiling regexp {expr:?}: {e}"))?,
        );
        let mut compiled = self.compiled.write().unwrap_or_else(|e| e.into_inner());
        if compiled.len() >= MAX_COMPILED {
            compiled.clear();
        }
        compiled.insert(expr.to_string(), re.clone());
        Ok(re)
    }

    /// Tries each expression in order. The first that matches decides: with
    /// exactly one capture group the group's text (empty if it did not
    /// take part), with none the whole match; an expression with two or more
    /// groups never decides (as in ebpf_exporter). No decision skips the
    /// label set.
    pub(crate) fn decode(&self, input: &[u8], exprs: &[String]) -> Step {
        if exprs.is_empty() {
            return Err(StepError::Failed(
                "no regexps defined in config".to_string(),
            ));
        }
        for expr in exprs {
            let re = self.get(expr)?;
            let Some(caps) = re.captures(input) else {
                continue;
            };
            match caps.len() {
                1 => {
                    return Ok(caps
                        .get(0)
                        .map(|m| m.as_bytes().to_vec())
                        .unwrap_or_default())
                }
                2 => {
                    return Ok(caps
                        .get(1)
                        .map(|m| m.as_bytes().to_vec())
                        .unwrap_or_default())
                }
                _ => continue,
            }
        }
        Err(StepError::Skip)
    }
}
