//! DEVMAP and DEVMAP_HASH (kernel/bpf/devmap.c): interface indexes for
//! bpf_redirect_map. Values are `u32 ifindex` or `struct bpf_devmap_val`
//! (`ifindex`, then a program fd on update / program id on lookup); the VM
//! runs no devmap programs, so that id is always 0.

use super::hash::HashIndex;
use super::storage::Storage;
use super::*;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug)]
pub struct DevMap {
    def: MapDef,
    /// DEVMAP_HASH: key -> slot; DEVMAP: slot = key.
    index: Option<HashIndex>,
    /// Per slot: ifindex (0 = empty) and program id, 8 bytes.
    store: Storage,
}

const ELEM: usize = 8;

/// Whether an interface with this index exists (dev_get_by_index).
fn ifindex_exists(ifindex: u32) -> bool {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer holds IF_NAMESIZE bytes, as if_indextoname needs.
    !unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) }.is_null()
}

impl DevMap {
    pub fn new(def: &MapDef) -> Result<DevMap, MapError> {
        let mask = create_flags::NUMA_NODE | create_flags::ACCESS_MASK;
        if def.max_entries == 0
            || def.key_size != 4
            || (def.value_size != 4 && def.value_size != 8)
            || def.flags & !mask != 0
        {
            return Err(invalid(
                def,
                "devmaps need key_size 4, value_size 4 or 8, max_entries > 0",
            ));
        }
        let hash = def.map_type == types::DEVMAP_HASH;
        Ok(DevMap {
            index: if hash {
                Some(HashIndex::new(4, def.max_entries, false, true)?)
            } else {
                None
            },
            store: Storage::array(def.max_entries as usize, ELEM)?,
            def: def.clone(),
        })
    }

    fn word(&self, slot: usize, i: usize) -> &AtomicU32 {
        // SAFETY: slot < max_entries, so the 4-aligned word lies in the block.
        unsafe { AtomicU32::from_ptr(self.store.ptr(slot * ELEM + 4 * i) as *mut u32) }
    }

    fn slot(&self, key: &[u8]) -> Option<usize> {
        match &self.index {
            Some(ix) => ix.find(&ix.read(), key).map(|s| s as usize),
            None => {
                let i = u32::from_ne_bytes(key.try_into().ok()?) as usize;
                (i < self.def.max_entries as usize).then_some(i)
            }
        }
    }

    /// The interface stored under `key` (bpf_redirect_map's target).
    pub fn get(&self, key: u32) -> Option<u32> {
        let s = self.slot(&key.to_ne_bytes())?;
        let ifindex = self.word(s, 0).load(Ordering::Acquire);
        (ifindex != 0).then_some(ifindex)
    }

    /// The ifindex of a valid value, or 0 for "clear" (DEVMAP only).
    fn parse(&self, value: &[u8]) -> Result<u32, MapError> {
        check_value(&self.def, value, self.def.value_size as usize)?;
        let word = |i: usize| {
            value
                .get(4 * i..4 * i + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
                .unwrap_or(0)
        };
        let (ifindex, fd) = (word(0), word(1) as i32);
        if ifindex == 0 {
            if fd > 0 {
                return Err(invalid(&self.def, "a program fd without an ifindex"));
            }
            return Ok(0);
        }
        if !ifindex_exists(ifindex) {
            return Err(invalid(&self.def, format_args!("no interface {ifindex}")));
        }
        if fd > 0 {
            return Err(invalid(
                &self.def,
                "devmap programs are not supported by the VM",
            ));
        }
        Ok(ifindex)
    }

    fn do_update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        let k = u32_key(&self.def, key)?;
        check_value(&self.def, value, self.def.value_size as usize)?;
        check_update_flags(&self.def, flags)?;
        match &self.index {
            None => {
                if k >= self.def.max_entries {
                    return Err(MapError::TooBig);
                }
                if flags == BPF_NOEXIST {
                    return Err(MapError::Exists);
                }
                let ifindex = self.parse(value)?;
                self.word(k as usize, 1).store(0, Ordering::Release);
                self.word(k as usize, 0).store(ifindex, Ordering::Release);
            }
            Some(ix) => {
                let ifindex = self.parse(value)?;
                if ifindex == 0 {
                    return Err(invalid(&self.def, "ifindex 0"));
                }
                let mut g = ix.write();
                if ix.find(&g, key).is_some() {
                    if flags == BPF_NOEXIST {
                        return Err(MapError::Exists);
                    }
                    // A replaced entry moves to the head of its bucket.
                    ix.remove(&mut g, key);
                }
                // BPF_EXIST does not require the key here.
                let ins = ix.insert(&mut g, key, BPF_ANY)?;
                self.word(ins.slot as usize, 1).store(0, Ordering::Release);
                self.word(ins.slot as usize, 0)
                    .store(ifindex, Ordering::Release);
            }
        }
        Ok(())
    }
}

impl BpfMap for DevMap {
    fn def(&self) -> &MapDef {
        &self.def
    }

    fn lookup(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        let k = u32_key(&self.def, key)?;
        let s = self.slot(key).ok_or(MapError::NotFound)?;
        let ifindex = self.get(k).ok_or(MapError::NotFound)?;
        let mut v = ifindex.to_ne_bytes().to_vec();
        if self.def.value_size == 8 {
            v.extend_from_slice(&self.word(s, 1).load(Ordering::Acquire).to_ne_bytes());
        }
        Ok(v)
    }

    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        self.do_update(key, value, flags)
    }

    fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        let k = u32_key(&self.def, key)?;
        match &self.index {
            None => {
                // dev_map_delete_elem: EINVAL past the end, else success
                // whether or not the slot held an interface.
                if k >= self.def.max_entries {
                    return Err(invalid(&self.def, format_args!("index {k}")));
                }
                self.word(k as usize, 0).store(0, Ordering::Release);
                Ok(())
            }
            Some(ix) => {
                let mut g = ix.write();
                let s = ix.remove(&mut g, key).ok_or(MapError::NotFound)?;
                self.word(s as usize, 0).store(0, Ordering::Release);
                Ok(())
            }
        }
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

    /// A read-only `struct bpf_devmap_val`.
    fn prog_lookup(&self, key: &[u8], _cpu: u32) -> Option<u64> {
        let s = self.slot(key)?;
        (self.word(s, 0).load(Ordering::Acquire) != 0).then(|| self.store.addr(s * ELEM))
    }

    fn regions(&self) -> Vec<Region> {
        vec![self.store.region(false)]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
