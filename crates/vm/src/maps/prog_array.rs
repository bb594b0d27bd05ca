//! PROG_ARRAY (kernel/bpf/arraymap.c, the fd-array part): slots holding
//! program ids, for bpf_tail_call.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

const EMPTY: u64 = u64::MAX;

#[derive(Debug)]
pub struct ProgArray {
    def: MapDef,
    slots: Vec<AtomicU64>,
}

/// fd_array_map_alloc_check: u32 values, no program access flags, then the
/// array checks.
pub(crate) fn fd_array_alloc_check(def: &MapDef) -> Result<(), MapError> {
    if def.value_size != 4 {
        return Err(invalid(def, "fd arrays need value_size 4"));
    }
    if def.flags & (create_flags::RDONLY_PROG | create_flags::WRONLY_PROG) != 0 {
        return Err(invalid(
            def,
            "BPF_F_RDONLY_PROG/BPF_F_WRONLY_PROG on an fd array",
        ));
    }
    array::alloc_check(def)
}

impl ProgArray {
    pub fn new(def: &MapDef) -> Result<ProgArray, MapError> {
        fd_array_alloc_check(def)?;
        let mut slots = Vec::new();
        slots
            .try_reserve_exact(def.max_entries as usize)
            .map_err(|_| MapError::NoSpace)?;
        slots.extend((0..def.max_entries).map(|_| AtomicU64::new(EMPTY)));
        Ok(ProgArray {
            def: def.clone(),
            slots,
        })
    }

    /// The program id stored at `index`, if any.
    pub fn get(&self, index: u32) -> Option<u32> {
        let v = self.slots.get(index as usize)?.load(Ordering::Acquire);
        (v != EMPTY).then_some(v as u32)
    }

    /// Stores a program id (what the host's update does).
    pub fn set(&self, index: u32, prog_id: u32) -> Result<(), MapError> {
        self.slots
            .get(index as usize)
            .ok_or(MapError::TooBig)?
            .store(prog_id as u64, Ordering::Release);
        Ok(())
    }
}

impl BpfMap for ProgArray {
    fn def(&self) -> &MapDef {
        &self.def
    }

    /// The kernel answers a prog array lookup with the program's id.
    fn lookup(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        let i = u32_key(&self.def, key)?;
        self.get(i)
            .map(|id| id.to_ne_bytes().to_vec())
            .ok_or(MapError::NotFound)
    }

    /// The value is a program id (the kernel takes a program fd).
    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        let i = u32_key(&self.def, key)?;
        check_value(&self.def, value, 4)?;
        if flags != BPF_ANY {
            return Err(invalid(&self.def, format_args!("update flags {flags:#x}")));
        }
        let id = u32::from_ne_bytes(value.try_into().map_err(|_| invalid(&self.def, "value"))?);
        self.set(i, id)
    }

    fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        let i = u32_key(&self.def, key)?;
        let slot = self.slots.get(i as usize).ok_or(MapError::TooBig)?;
        if slot.swap(EMPTY, Ordering::AcqRel) == EMPTY {
            return Err(MapError::NotFound);
        }
        Ok(())
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
