//! PERF_EVENT_ARRAY (kernel/bpf/arraymap.c, the fd-array part, and
//! kernel/trace/bpf_trace.c for bpf_perf_event_output).
//!
//! In the kernel each index holds a perf event fd and output goes to that
//! event's ring. The VM has no perf events: each index owns a bounded record
//! queue instead ([`RING_BYTES`] of records, as a 16-page perf ring), which
//! the host empties with [`PerfEventArray::drain`]; records that do not fit
//! are dropped and counted ([`PerfEventArray::lost`]), as a full ring loses
//! them. Output works on every index whether or not the host stored a value
//! there (the kernel would return -ENOENT for an index without an event).
//!
//! The host's update/delete keep the kernel's checks and bookkeeping of the
//! slot values, but a value is not an fd to the VM: any u32 is accepted
//! where the kernel would check the fd (EBADF, EOPNOTSUPP).

use super::*;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// The bytes of records one index holds before it drops new ones.
pub const RING_BYTES: usize = 64 << 10;

/// struct perf_event_header.
const HEADER: usize = 8;

#[derive(Debug, Default)]
struct Ring {
    records: VecDeque<Vec<u8>>,
    /// Ring bytes the queued records take (headers included).
    bytes: usize,
    lost: u64,
}

#[derive(Debug)]
pub struct PerfEventArray {
    def: MapDef,
    /// Values the host stored (perf event fds in the kernel), by index.
    /// Sparse: max_entries may be large and most indexes unused.
    slots: Mutex<BTreeMap<u32, u32>>,
    rings: Mutex<BTreeMap<u32, Ring>>,
}

/// A raw sample as a perf reader sees it: the data padded with zeros so the
/// u32 size and the data end on 8 bytes (perf_prepare_sample).
fn padded(data: &[u8]) -> Vec<u8> {
    let size = round8(data.len() + 4) - 4;
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(data);
    v.resize(size, 0);
    v
}

impl PerfEventArray {
    pub fn new(def: &MapDef) -> Result<PerfEventArray, MapError> {
        prog_array::fd_array_alloc_check(def)?;
        Ok(PerfEventArray {
            def: def.clone(),
            slots: Mutex::new(BTreeMap::new()),
            rings: Mutex::new(BTreeMap::new()),
        })
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, u32>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn rings(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Ring>> {
        self.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a record to `index`'s queue (what bpf_perf_event_output does
    /// once it has resolved the index): E2BIG past max_entries, ENOSPC when
    /// the queue is full (the record is lost and counted, as
    /// perf_output_begin does).
    pub fn output(&self, index: u32, data: &[u8]) -> Result<(), MapError> {
        if index >= self.def.max_entries {
            return Err(MapError::TooBig);
        }
        let sample = padded(data);
        let size = HEADER + 4 + sample.len();
        let mut rings = self.rings();
        let ring = rings.entry(index).or_default();
        if ring.bytes.saturating_add(size) > RING_BYTES {
            ring.lost += 1;
            return Err(MapError::NoSpaceLeft);
        }
        ring.bytes += size;
        ring.records.push_back(sample);
        Ok(())
    }

    /// Takes every record queued at `index`, oldest first. Each holds the
    /// bytes the program passed followed by up to 7 zero bytes of padding,
    /// as a kernel perf reader returns them.
    pub fn drain(&self, index: u32) -> Vec<Vec<u8>> {
        let mut rings = self.rings();
        match rings.get_mut(&index) {
            Some(r) => {
                r.bytes = 0;
                r.records.drain(..).collect()
            }
            None => Vec::new(),
        }
    }

    /// Records dropped at `index` because its queue was full.
    pub fn lost(&self, index: u32) -> u64 {
        self.rings().get(&index).map_or(0, |r| r.lost)
    }

    /// Records waiting at `index`.
    pub fn pending(&self, index: u32) -> usize {
        self.rings().get(&index).map_or(0, |r| r.records.len())
    }
}

impl BpfMap for PerfEventArray {
    fn def(&self) -> &MapDef {
        &self.def
    }

    /// bpf_fd_array_map_lookup_elem: perf event arrays have no
    /// map_fd_sys_lookup_elem, so the syscall's lookup is ENOTSUPP.
    fn lookup(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        u32_key(&self.def, key)?;
        Err(MapError::NotSupported)
    }

    /// bpf_fd_array_map_update_elem: BPF_ANY only, E2BIG past the end; the
    /// value would be a perf event fd, which the VM does not check.
    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        let i = u32_key(&self.def, key)?;
        check_value(&self.def, value, 4)?;
        if flags != BPF_ANY {
            return Err(invalid(&self.def, format_args!("update flags {flags:#x}")));
        }
        if i >= self.def.max_entries {
            return Err(MapError::TooBig);
        }
        let v = u32::from_ne_bytes(value.try_into().map_err(|_| invalid(&self.def, "value"))?);
        self.slots().insert(i, v);
        Ok(())
    }

    /// fd_array_map_delete_elem: E2BIG past the end, ENOENT for an empty slot.
    fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        let i = u32_key(&self.def, key)?;
        if i >= self.def.max_entries {
            return Err(MapError::TooBig);
        }
        self.slots()
            .remove(&i)
            .map(|_| ())
            .ok_or(MapError::NotFound)
    }

    fn get_next_key(&self, key: Option<&[u8]>) -> Result<Vec<u8>, MapError> {
        array::next_index(&self.def, key)
    }

    fn lookup_and_delete(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        u32_key(&self.def, key)?;
        Err(MapError::NotSupported)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
