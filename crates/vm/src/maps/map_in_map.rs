//! ARRAY_OF_MAPS and HASH_OF_MAPS (kernel/bpf/map_in_map.c, arraymap.c,
//! hashtab.c). Values are inner map ids in the registry the map was created
//! with; programs get the inner map's handle from a lookup.

use super::hash::HashIndex;
use super::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Weak;

const EMPTY: u64 = u64::MAX;

#[derive(Debug)]
pub struct MapInMap {
    def: MapDef,
    inner: MapDef,
    registry: Weak<MapRegistry>,
    /// Hash of maps: the key index (slots parallel `ids`).
    index: Option<HashIndex>,
    ids: Vec<AtomicU64>,
}

/// bpf_map_meta_equal, plus max_entries for arrays unless the template has
/// BPF_F_INNER_MAP (array_map_meta_equal).
fn meta_equal(template: &MapDef, inner: &MapDef) -> bool {
    let same = template.map_type == inner.map_type
        && template.key_size == inner.key_size
        && template.value_size == inner.value_size
        && template.flags == inner.flags;
    let arrays = matches!(template.map_type, types::ARRAY | types::PERCPU_ARRAY);
    same && (!arrays
        || template.flags & create_flags::INNER_MAP != 0
        || template.max_entries == inner.max_entries)
}

impl MapInMap {
    pub fn new(def: &MapDef, registry: &Arc<MapRegistry>) -> Result<MapInMap, MapError> {
        let hash = def.map_type == types::HASH_OF_MAPS;
        if hash {
            hash::alloc_check(def)?;
            if def.value_size != 4 {
                return Err(invalid(def, "map-in-map values are 4 bytes"));
            }
        } else {
            prog_array::fd_array_alloc_check(def)?;
        }
        let inner = def
            .inner
            .as_deref()
            .ok_or_else(|| invalid(def, "a map-in-map needs an inner map template"))?;
        if matches!(
            inner.map_type,
            types::ARRAY_OF_MAPS | types::HASH_OF_MAPS | types::PROG_ARRAY
        ) {
            return Err(invalid(
                def,
                format_args!("inner map type {} cannot be nested", inner.map_type),
            ));
        }
        let mut ids = Vec::new();
        ids.try_reserve_exact(def.max_entries as usize)
            .map_err(|_| MapError::NoSpace)?;
        ids.extend((0..def.max_entries).map(|_| AtomicU64::new(EMPTY)));
        Ok(MapInMap {
            index: if hash {
                Some(HashIndex::new(4, def.max_entries, false, false)?)
            } else {
                None
            },
            def: def.clone(),
            inner: inner.clone(),
            registry: Arc::downgrade(registry),
            ids,
        })
    }

    /// The inner map id stored under `key`.
    pub fn inner_id(&self, key: &[u8]) -> Option<u32> {
        let slot = match &self.index {
            Some(ix) => ix.find(&ix.read(), key)? as usize,
            None => {
                let i = u32::from_ne_bytes(key.try_into().ok()?) as usize;
                if i >= self.ids.len() {
                    return None;
                }
                i
            }
        };
        let v = self.ids.get(slot)?.load(Ordering::Acquire);
        (v != EMPTY).then_some(v as u32)
    }

    /// The inner map template.
    pub fn inner_def(&self) -> &MapDef {
        &self.inner
    }

    /// bpf_map_fd_get_ptr: the id must name a map matching the template.
    fn resolve(&self, value: &[u8]) -> Result<u32, MapError> {
        check_value(&self.def, value, 4)?;
        let id = u32::from_ne_bytes(value.try_into().map_err(|_| invalid(&self.def, "value"))?);
        let reg = self.registry.upgrade().ok_or(MapError::BadFd)?;
        let map = reg.get(id).ok_or(MapError::BadFd)?;
        if !meta_equal(&self.inner, map.def()) {
            return Err(invalid(
                &self.def,
                format_args!("map {id} does not match the inner map template"),
            ));
        }
        Ok(id)
    }

    fn do_update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        check_key(&self.def, key)?;
        match &self.index {
            None => {
                // bpf_fd_array_map_update_elem: flags, index, then the fd.
                if flags != BPF_ANY {
                    return Err(invalid(&self.def, format_args!("update flags {flags:#x}")));
                }
                let i = u32_key(&self.def, key)? as usize;
                if i >= self.ids.len() {
                    return Err(MapError::TooBig);
                }
                let id = self.resolve(value)?;
                self.ids[i].store(id as u64, Ordering::Release);
            }
            Some(ix) => {
                // bpf_fd_htab_map_update_elem: the fd first, then the hash
                // update's flag checks.
                let id = self.resolve(value)?;
                check_update_flags(&self.def, flags)?;
                let mut g = ix.write();
                let ins = ix.insert(&mut g, key, flags)?;
                self.ids[ins.slot as usize].store(id as u64, Ordering::Release);
            }
        }
        Ok(())
    }

    fn do_delete(&self, key: &[u8]) -> Result<(), MapError> {
        check_key(&self.def, key)?;
        match &self.index {
            None => {
                let i = u32_key(&self.def, key)? as usize;
                let slot = self.ids.get(i).ok_or(MapError::TooBig)?;
                if slot.swap(EMPTY, Ordering::AcqRel) == EMPTY {
                    return Err(MapError::NotFound);
                }
            }
            Some(ix) => {
                let mut g = ix.write();
                let s = ix.remove(&mut g, key).ok_or(MapError::NotFound)?;
                self.ids[s as usize].store(EMPTY, Ordering::Release);
            }
        }
        Ok(())
    }
}

impl BpfMap for MapInMap {
    fn def(&self) -> &MapDef {
        &self.def
    }

    /// The inner map's id, as the kernel answers.
    fn lookup(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        check_key(&self.def, key)?;
        self.inner_id(key)
            .map(|id| id.to_ne_bytes().to_vec())
            .ok_or(MapError::NotFound)
    }

    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        self.do_update(key, value, flags)
    }

    fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        self.do_delete(key)
    }

    fn get_next_key(&self, key: Option<&[u8]>) -> Result<Vec<u8>, MapError> {
        if let Some(k) = key {
            check_key(&self.def, k)?;
        }
        match &self.index {
            None => array::next_index(&self.def, key),
            Some(ix) => ix.next_key(key),
        }
    }

    fn lookup_and_delete(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        check_key(&self.def, key)?;
        Err(MapError::NotSupported)
    }

    fn prog_lookup(&self, key: &[u8], _cpu: u32) -> Option<u64> {
        self.inner_id(key).map(MapRegistry::handle)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
