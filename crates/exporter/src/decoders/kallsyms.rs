//! `ksym` and `kstack`: kernel addresses to symbols from /proc/kallsyms.

use super::{first_bytes, simple::go_bytes, Step, StepError};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// kallsyms as a table sorted by address (stable: among symbols at one
/// address, the one listed last in the file wins lookups).
#[derive(Default)]
struct Table {
    addrs: Vec<u64>,
    syms: Vec<String>,
}

impl Table {
    /// ebpf_exporter's parse: each line split at single spaces; lines with
    /// fewer than three fields are ignored; the address is hex; the symbol is
    /// the third field (for module symbols that is `name\t[module]`).
    fn parse(text: &str) -> Result<Table, String> {
        let mut entries = Vec::new();
        for line in text.lines() {
            let mut parts = line.split(' ');
            let (Some(addr), Some(_), Some(sym)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let addr = u64::from_str_radix(addr, 16)
                .map_err(|e| format!("error parsing kallsyms addr {addr:?}: {e}"))?;
            entries.push((addr, sym.to_string()));
        }
        entries.sort_by_key(|&(addr, _)| addr);
        let (addrs, syms) = entries.into_iter().unzip();
        Ok(Table { addrs, syms })
    }

    /// The last symbol at or before `addr`.
    fn preceding(&self, addr: u64) -> Option<(u64, &str)> {
        let i = self.addrs.partition_point(|&a| a <= addr).checked_sub(1)?;
        Some((self.addrs[i], self.syms[i].as_str()))
    }

    /// The lowest address of the symbol `name` (a module symbol by its name
    /// without the `\t[module]` part).
    fn address_of(&self, name: &str) -> Option<u64> {
        let i = self
            .syms
            .iter()
            .position(|s| s.split('\t').next() == Some(name))?;
        Some(self.addrs[i])
    }

    /// The symbol at exactly `addr`.
    fn exact(&self, addr: u64) -> Option<&str> {
        self.preceding(addr)
            .and_then(|(at, sym)| (at == addr).then_some(sym))
    }
}

pub(crate) struct Kallsyms {
    path: PathBuf,
    refresh_interval: Duration,
    table: RwLock<Option<Arc<Table>>>,
    /// When kallsyms was last read.
    loaded_at: Mutex<Option<Instant>>,
}

impl Kallsyms {
    pub(crate) fn new(path: PathBuf, refresh_interval: Duration) -> Kallsyms {
        Kallsyms {
            path,
            refresh_interval,
            table: RwLock::new(None),
            loaded_at: Mutex::new(None),
        }
    }

    fn current(&self) -> Option<Arc<Table>> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads kallsyms if never read, or (when `refresh`) if the last read is
    /// at least the refresh interval ago. Returns the table to use.
    fn load(&self, refresh: bool) -> Result<Arc<Table>, String> {
        let mut loaded_at = self.loaded_at.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(table) = self.current() {
            let fresh = loaded_at.is_some_and(|at| at.elapsed() < self.refresh_interval);
            if !refresh || fresh {
                return Ok(table);
            }
        }
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("error opening kallsyms at {:?}: {e}", self.path))?;
        let table = Arc::new(Table::parse(&text)?);
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Some(table.clone());
        *loaded_at = Some(Instant::now());
        Ok(table)
    }

    fn table(&self) -> Result<Arc<Table>, String> {
        match self.current() {
            Some(table) => Ok(table),
            None => self.load(false),
        }
    }

    /// The kernel address of `symbol`, for `kaddrs`.
    pub(crate) fn address_of(&self, symbol: &str) -> Result<Option<u64>, String> {
        Ok(self.table()?.address_of(symbol))
    }

    /// `ksym`: the first 8 bytes as a host-order address; the symbol at
    /// exactly that address, else `unknown_addr:0x<hex>`. A miss re-reads
    /// kallsyms (at most once per refresh interval).
    pub(crate) fn ksym(&self, input: &[u8]) -> Step {
        let Some(bytes) = first_bytes::<8>(input) else {
            return Err(StepError::Failed(format!(
                "ksym needs 8 bytes, got {}",
                go_bytes(input)
            )));
        };
        let addr = u64::from_ne_bytes(bytes);
        let mut table = self.table()?;
        if table.exact(addr).is_none() {
            // A failed re-read keeps the table already loaded.
            table = self.load(true).unwrap_or(table);
        }
        Ok(match table.exact(addr) {
            Some(sym) => sym.as_bytes().to_vec(),
            None => format!("unknown_addr:0x{addr:x}").into_bytes(),
        })
    }

    /// `kstack`: 8-byte host-order addresses up to the first zero, each as the
    /// nearest symbol at or before it (`??` if none), joined by `\n`. Any
    /// `??` re-reads kallsyms (at most once per refresh interval).
    pub(crate) fn kstack(&self, input: &[u8]) -> Step {
        let mut addrs = Vec::new();
        for chunk in input.chunks(8) {
            let Some(bytes) = first_bytes::<8>(chunk) else {
                return Err(StepError::Failed(format!(
                    "kstack input of {} bytes is not a multiple of 8",
                    input.len()
                )));
            };
            let addr = u64::from_ne_bytes(bytes);
            if addr == 0 {
                break;
            }
            addrs.push(addr);
        }
        if addrs.is_empty() {
            return Ok(Vec::new());
        }
        let mut table = self.table()?;
        if addrs.iter().any(|&a| table.preceding(a).is_none()) {
            // A failed re-read keeps the table already loaded.
            table = self.load(true).unwrap_or(table);
        }
        let frames: Vec<&str> = addrs
            .iter()
            .map(|&a| table.preceding(a).map_or("??", |(_, sym)| sym))
            .collect();
        Ok(frames.join("\n").into_bytes())
    }
}
