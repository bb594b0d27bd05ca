//! ARRAY and PERCPU_ARRAY (kernel/bpf/arraymap.c).

use super::storage::Storage;
use super::*;

/// An array map: every index exists from creation, values start zeroed.
#[derive(Debug)]
pub struct ArrayMap {
    def: MapDef,
    percpu: bool,
    ncpus: usize,
    /// value_size rounded up to 8: the stride of one value (one CPU's value).
    elem: usize,
    /// Bytes per index: `elem`, times the CPU count for per-CPU arrays.
    slot: usize,
    store: Storage,
}

/// Flags array_map_alloc_check accepts (ARRAY_CREATE_FLAG_MASK).
const CREATE_MASK: u32 = create_flags::NUMA_NODE
    | create_flags::MMAPABLE
    | create_flags::ACCESS_MASK
    | create_flags::PRESERVE_ELEMS
    | create_flags::INNER_MAP;

/// array_map_alloc_check, shared with the fd arrays.
pub(crate) fn alloc_check(def: &MapDef) -> Result<(), MapError> {
    let percpu = def.map_type == types::PERCPU_ARRAY;
    if def.max_entries == 0
        || def.key_size != 4
        || def.value_size == 0
        || def.flags & !CREATE_MASK != 0
        || !access_ok(def.flags)
        || (percpu && def.flags & create_flags::NUMA_NODE != 0)
    {
        return Err(invalid(
            def,
            "array maps need key_size 4, value_size > 0, max_entries > 0 and valid flags",
        ));
    }
    if def.map_type != types::ARRAY
        && def.flags & (create_flags::MMAPABLE | create_flags::INNER_MAP) != 0
    {
        return Err(invalid(
            def,
            "BPF_F_MMAPABLE/BPF_F_INNER_MAP on a non-ARRAY map",
        ));
    }
    if def.map_type != types::PERF_EVENT_ARRAY && def.flags & create_flags::PRESERVE_ELEMS != 0 {
        return Err(invalid(def, "BPF_F_PRESERVE_ELEMS"));
    }
    if def.value_size > i32::MAX as u32 {
        return Err(MapError::TooBig);
    }
    if percpu && round8(def.value_size as usize) > PCPU_MIN_UNIT_SIZE {
        return Err(MapError::TooBig);
    }
    Ok(())
}

/// array_map_get_next_key: index order; a missing or out-of-range key
/// restarts at 0, the last index ends the walk.
pub(crate) fn next_index(def: &MapDef, key: Option<&[u8]>) -> Result<Vec<u8>, MapError> {
    let idx = match key {
        None => None,
        Some(k) => Some(u32_key(def, k)?),
    };
    let next = match idx {
        Some(i) if i < def.max_entries => {
            if i == def.max_entries - 1 {
                return Err(MapError::NotFound);
            }
            i + 1
        }
        _ => 0,
    };
    Ok(next.to_ne_bytes().to_vec())
}

impl ArrayMap {
    pub fn new(def: &MapDef) -> Result<ArrayMap, MapError> {
        alloc_check(def)?;
        let percpu = def.map_type == types::PERCPU_ARRAY;
        let ncpus = if percpu { possible_cpus() as usize } else { 1 };
        let elem = round8(def.value_size as usize);
        let slot = elem * ncpus;
        let store = Storage::array(def.max_entries as usize, slot)?;
        Ok(ArrayMap {
            def: def.clone(),
            percpu,
            ncpus,
            elem,
            slot,
            store,
        })
    }

    fn host_value_len(&self) -> usize {
        if self.percpu {
            self.slot
        } else {
            self.def.value_size as usize
        }
    }

    fn index(&self, key: &[u8]) -> Option<usize> {
        let i = u32::from_ne_bytes(key.try_into().ok()?);
        (i < self.def.max_entries).then_some(i as usize)
    }
}

impl BpfMap for ArrayMap {
    fn def(&self) -> &MapDef {
        &self.def
    }

    fn lookup(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        u32_key(&self.def, key)?;
        let i = self.index(key).ok_or(MapError::NotFound)?;
        // Per-CPU slots are copied whole, padding included, as
        // bpf_percpu_array_copy does.
        Ok(self.store.read(i * self.slot, self.host_value_len()))
    }

    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        u32_key(&self.def, key)?;
        check_value(&self.def, value, self.host_value_len())?;
        check_update_flags(&self.def, flags)?;
        let i = self.index(key).ok_or(MapError::TooBig)?;
        if flags == BPF_NOEXIST {
            // Every element of an array exists.
            return Err(MapError::Exists);
        }
        self.store.write(i * self.slot, value);
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        u32_key(&self.def, key)?;
        Err(invalid(&self.def, "array elements cannot be deleted"))
    }

    fn get_next_key(&self, key: Option<&[u8]>) -> Result<Vec<u8>, MapError> {
        next_index(&self.def, key)
    }

    fn lookup_and_delete(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        u32_key(&self.def, key)?;
        Err(MapError::NotSupported)
    }

    fn prog_lookup(&self, key: &[u8], cpu: u32) -> Option<u64> {
        let i = self.index(key)?;
        let cpu = if self.percpu { cpu as usize } else { 0 };
        (cpu < self.ncpus).then(|| self.store.addr(i * self.slot + cpu * self.elem))
    }

    fn prog_update(&self, key: &[u8], value: &[u8], flags: u64, cpu: u32) -> Result<(), MapError> {
        u32_key(&self.def, key)?;
        check_value(&self.def, value, self.def.value_size as usize)?;
        check_update_flags(&self.def, flags)?;
        let i = self.index(key).ok_or(MapError::TooBig)?;
        if flags == BPF_NOEXIST {
            return Err(MapError::Exists);
        }
        let cpu = if self.percpu { cpu as usize } else { 0 };
        if cpu >= self.ncpus {
            return Err(invalid(&self.def, format_args!("cpu {cpu}")));
        }
        self.store.write(i * self.slot + cpu * self.elem, value);
        Ok(())
    }

    fn prog_delete(&self, key: &[u8]) -> Result<(), MapError> {
        self.delete(key)
    }

    fn regions(&self) -> Vec<Region> {
        vec![self
            .store
            .region(self.def.flags & create_flags::RDONLY_PROG == 0)]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
