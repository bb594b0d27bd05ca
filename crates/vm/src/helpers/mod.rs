//! Helper functions, registered by id as typed Rust closures.

pub mod ids;
pub mod kernel;
pub mod tracing;

use crate::env::RunEnv;
use crate::memory::Regions;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a helper sees of the running program: the memory it owns (to read
/// pointer arguments and write results through them) and the power to hand
/// the program new regions.
pub struct HelperContext<'a> {
    pub(crate) regions: &'a mut Regions,
    /// The run's maps, CPU, packet context and host facts. Helpers outside
    /// this crate see it read-only: replacing the packet context under a
    /// running program would leave its regions pointing at freed memory.
    pub(crate) env: &'a mut RunEnv,
}

impl HelperContext<'_> {
    /// The run's environment (maps, CPU, packet context, host facts).
    pub fn env(&self) -> &RunEnv {
        self.env
    }

    /// The regions the running program owns, to hand it new memory.
    ///
    /// # Safety
    /// Regions added must satisfy [`Regions::add_ro`]'s contract.
    pub unsafe fn regions_mut(&mut self) -> &mut Regions {
        self.regions
    }

    /// Borrows `len` bytes the program passed by pointer, without copying.
    pub fn slice(&self, addr: u64, len: usize) -> Result<&[u8], HelperError> {
        let p = self
            .regions
            .translate(addr, len, false)
            .ok_or_else(|| HelperError::fault(addr, len))?;
        // SAFETY: translate checked that [addr, addr+len) lies in a live
        // region; the program is paused while its helper runs.
        Ok(unsafe { std::slice::from_raw_parts(p, len) })
    }

    /// Reads `len` bytes the program passed by pointer.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, HelperError> {
        self.regions
            .read_bytes(addr, len)
            .ok_or_else(|| HelperError::fault(addr, len))
    }

    /// Writes through a pointer the program passed.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), HelperError> {
        self.regions
            .write_bytes(addr, data)
            .ok_or_else(|| HelperError::fault(addr, data.len()))
    }
}

/// How a helper call ends when it does not return a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HelperError {
    /// Stop the program at once, as if it had exited with this r0 (the
    /// conformance suite's `unwind` helper; the kernel's LD_ABS failure path).
    Exit(u64),
    /// The call failed; the run ends with [`crate::VmError::Helper`].
    Failed(String),
    /// bpf_loop: the interpreter calls the subprogram at instruction
    /// `callback` with (index, ctx) up to `iterations` times, until it returns
    /// non-zero; the helper's result is the number of calls made.
    Loop {
        callback: u64,
        iterations: u32,
        ctx: u64,
    },
}

impl HelperError {
    pub fn fault(addr: u64, len: usize) -> Self {
        HelperError::Failed(format!(
            "pointer argument {addr:#x} ({len} bytes) is outside the program's memory"
        ))
    }
}

pub type HelperFn =
    dyn Fn(&mut HelperContext<'_>, [u64; 5]) -> Result<u64, HelperError> + Send + Sync;

/// A registered helper: its kernel name (for messages) and its code.
#[derive(Clone)]
pub struct Helper {
    pub name: &'static str,
    pub func: Arc<HelperFn>,
}

/// The helpers a program may call, by id.
#[derive(Clone, Default)]
pub struct Helpers {
    by_id: BTreeMap<u32, Helper>,
}

impl Helpers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) helper `id`.
    pub fn register<F>(&mut self, id: u32, name: &'static str, f: F) -> &mut Self
    where
        F: Fn(&mut HelperContext<'_>, [u64; 5]) -> Result<u64, HelperError> + Send + Sync + 'static,
    {
        self.by_id.insert(
            id,
            Helper {
                name,
                func: Arc::new(f),
            },
        );
        self
    }

    pub fn get(&self, id: u32) -> Option<&Helper> {
        self.by_id.get(&id)
    }

    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.by_id.keys().copied()
    }

    /// A dense table indexed by id for the interpreter's call path. Ids past
    /// [`Self::DENSE_IDS`] are left to the sparse map.
    pub(crate) fn dense(&self) -> Vec<Option<Arc<HelperFn>>> {
        let len = self
            .by_id
            .range(..Self::DENSE_IDS)
            .next_back()
            .map_or(0, |(m, _)| *m as usize + 1);
        let mut t = vec![None; len];
        for (id, h) in self.by_id.range(..Self::DENSE_IDS) {
            t[*id as usize] = Some(h.func.clone());
        }
        t
    }

    const DENSE_IDS: u32 = 4096;
}

/// The environment the bpf_conformance suite assumes: helper 5 ("unwind")
/// returns its argument, and ends the program with r0 = 0 when the argument
/// is 0, as ubpf's test harness does.
pub fn conformance() -> Helpers {
    let mut h = Helpers::new();
    h.register(5, "unwind", |_, a| {
        if a[0] == 0 {
            Err(HelperError::Exit(0))
        } else {
            Ok(a[0])
        }
    });
    h
}
