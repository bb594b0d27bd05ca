//! HASH, PERCPU_HASH, LRU_HASH and LRU_PERCPU_HASH (kernel/bpf/hashtab.c).
//!
//! The index mirrors the kernel's preallocated table: `max_entries` element
//! slots allocated at creation, a power-of-two array of bucket heads, chains
//! linked through the slots (new elements at the head of their bucket) and
//! a free-slot stack, so no update allocates. Iteration walks buckets in
//! order, as htab_map_get_next_key does; keys are hashed with a fixed
//! foldhash seed, so the order is deterministic (but not the kernel's, whose
//! hash seed is random).

use super::storage::Storage;
use super::*;
use std::hash::BuildHasher;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(crate) const NIL: u32 = u32::MAX;

/// Least-recently-used order of the occupied slots (LRU maps).
#[derive(Debug)]
struct Lru {
    prev: Vec<u32>,
    next: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used: evicted first.
    tail: u32,
}

impl Lru {
    fn unlink(&mut self, s: u32) {
        let (p, n) = (self.prev[s as usize], self.next[s as usize]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
    }

    fn push_front(&mut self, s: u32) {
        self.prev[s as usize] = NIL;
        self.next[s as usize] = self.head;
        if self.head != NIL {
            self.prev[self.head as usize] = s;
        }
        self.head = s;
        if self.tail == NIL {
            self.tail = s;
        }
    }

    fn touch(&mut self, s: u32) {
        if self.head != s {
            self.unlink(s);
            self.push_front(s);
        }
    }
}

#[derive(Debug)]
pub(crate) struct Index {
    heads: Vec<u32>,
    next: Vec<u32>,
    hashes: Vec<u64>,
    keys: Vec<u8>,
    free: Vec<u32>,
    count: u32,
    lru: Option<Lru>,
}

/// The key index of a hash map: key -> slot number.
#[derive(Debug)]
pub(crate) struct HashIndex {
    key_size: usize,
    mask: u64,
    /// Hash u32 keys by value (DEVMAP_HASH buckets are `key & mask`).
    identity: bool,
    index: RwLock<Index>,
}

fn try_vec<T: Clone>(n: usize, v: T) -> Result<Vec<T>, MapError> {
    let mut out = Vec::new();
    out.try_reserve_exact(n).map_err(|_| MapError::NoSpace)?;
    out.resize(n, v);
    Ok(out)
}

/// What an insertion did.
pub(crate) struct Inserted {
    pub slot: u32,
    /// The key was not there before.
    pub new: bool,
}

impl HashIndex {
    pub(crate) fn new(
        key_size: usize,
        max_entries: u32,
        lru: bool,
        identity: bool,
    ) -> Result<HashIndex, MapError> {
        let n = max_entries as usize;
        let buckets = (max_entries as u64).next_power_of_two();
        let lru = if lru {
            Some(Lru {
                prev: try_vec(n, NIL)?,
                next: try_vec(n, NIL)?,
                head: NIL,
                tail: NIL,
            })
        } else {
            None
        };
        let mut free = try_vec(n, 0u32)?;
        // Slot 0 is handed out first.
        for (i, f) in free.iter_mut().enumerate() {
            *f = (n - 1 - i) as u32;
        }
        Ok(HashIndex {
            key_size,
            mask: buckets - 1,
            identity,
            index: RwLock::new(Index {
                heads: try_vec(
                    usize::try_from(buckets).map_err(|_| MapError::NoSpace)?,
                    NIL,
                )?,
                next: try_vec(n, NIL)?,
                hashes: try_vec(n, 0u64)?,
                keys: try_vec(n.checked_mul(key_size).ok_or(MapError::NoSpace)?, 0u8)?,
                free,
                count: 0,
                lru,
            }),
        })
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    fn hash(&self, key: &[u8]) -> u64 {
        if self.identity {
            if let Ok(k) = <[u8; 4]>::try_from(key) {
                return u32::from_ne_bytes(k) as u64;
            }
        }
        foldhash::fast::FixedState::with_seed(0x6270_666b).hash_one(key)
    }

    fn key_of<'a>(&self, ix: &'a Index, s: u32) -> &'a [u8] {
        let o = s as usize * self.key_size;
        &ix.keys[o..o + self.key_size]
    }

    fn find_hashed(&self, ix: &Index, key: &[u8], h: u64) -> Option<u32> {
        let mut s = ix.heads[(h & self.mask) as usize];
        while s != NIL {
            if ix.hashes[s as usize] == h && self.key_of(ix, s) == key {
                return Some(s);
            }
            s = ix.next[s as usize];
        }
        None
    }

    /// The slot holding `key` (which has the index's key size).
    pub(crate) fn find(&self, ix: &Index, key: &[u8]) -> Option<u32> {
        if key.len() != self.key_size {
            return None;
        }
        self.find_hashed(ix, key, self.hash(key))
    }

    /// Marks a slot used (LRU maps).
    pub(crate) fn touch(&self, ix: &mut Index, s: u32) {
        if let Some(l) = ix.lru.as_mut() {
            l.touch(s);
        }
    }

    pub(crate) fn count(&self, ix: &Index) -> u32 {
        ix.count
    }

    fn unlink(&self, ix: &mut Index, s: u32) {
        let b = (ix.hashes[s as usize] & self.mask) as usize;
        let mut cur = ix.heads[b];
        let mut prev = NIL;
        while cur != NIL && cur != s {
            prev = cur;
            cur = ix.next[cur as usize];
        }
        if cur == NIL {
            return;
        }
        let n = ix.next[s as usize];
        if prev == NIL {
            ix.heads[b] = n;
        } else {
            ix.next[prev as usize] = n;
        }
        ix.next[s as usize] = NIL;
        if let Some(l) = ix.lru.as_mut() {
            l.unlink(s);
        }
        ix.free.push(s);
        ix.count -= 1;
    }

    /// Finds or adds `key` under BPF_ANY/NOEXIST/EXIST (already validated).
    /// A full table refuses a new key with E2BIG, or evicts its least
    /// recently used key when it is an LRU table.
    pub(crate) fn insert(
        &self,
        ix: &mut Index,
        key: &[u8],
        flags: u64,
    ) -> Result<Inserted, MapError> {
        self.insert_reserving(ix, key, flags, false)
    }

    /// [`Self::insert`] for LRU maps. The kernel takes a free element
    /// before it looks the key up (evicting when there is none) and gives
    /// it back when the key existed or the flags refused the update, so on
    /// a full LRU map even those updates evict a key: `reserve` does the
    /// same (LRU_PERCPU_HASH skips it for BPF_EXIST).
    pub(crate) fn insert_reserving(
        &self,
        ix: &mut Index,
        key: &[u8],
        flags: u64,
        reserve: bool,
    ) -> Result<Inserted, MapError> {
        if reserve && ix.free.is_empty() {
            let victim = ix.lru.as_ref().map_or(NIL, |l| l.tail);
            if victim != NIL {
                self.unlink(ix, victim);
            }
        }
        let h = self.hash(key);
        if let Some(s) = self.find_hashed(ix, key, h) {
            if flags == BPF_NOEXIST {
                return Err(MapError::Exists);
            }
            self.touch(ix, s);
            return Ok(Inserted {
                slot: s,
                new: false,
            });
        }
        if flags == BPF_EXIST {
            return Err(MapError::NotFound);
        }
        if ix.free.is_empty() {
            let victim = ix.lru.as_ref().map(|l| l.tail).unwrap_or(NIL);
            if victim == NIL {
                return Err(MapError::TooBig);
            }
            self.unlink(ix, victim);
        }
        let s = ix.free.pop().ok_or(MapError::TooBig)?;
        let o = s as usize * self.key_size;
        ix.keys[o..o + self.key_size].copy_from_slice(key);
        ix.hashes[s as usize] = h;
        let b = (h & self.mask) as usize;
        ix.next[s as usize] = ix.heads[b];
        ix.heads[b] = s;
        if let Some(l) = ix.lru.as_mut() {
            l.push_front(s);
        }
        ix.count += 1;
        Ok(Inserted { slot: s, new: true })
    }

    /// Removes `key`; its slot, or None.
    pub(crate) fn remove(&self, ix: &mut Index, key: &[u8]) -> Option<u32> {
        let s = self.find(ix, key)?;
        self.unlink(ix, s);
        Some(s)
    }

    /// htab_map_get_next_key: the next key in the same bucket, else the
    /// first of the following buckets; a missing key restarts the walk.
    pub(crate) fn next_key(&self, key: Option<&[u8]>) -> Result<Vec<u8>, MapError> {
        let ix = self.read();
        let mut b = 0usize;
        if let Some(k) = key {
            let h = self.hash(k);
            if let Some(s) = self.find_hashed(&ix, k, h) {
                let n = ix.next[s as usize];
                if n != NIL {
                    return Ok(self.key_of(&ix, n).to_vec());
                }
                b = (h & self.mask) as usize + 1;
            }
        }
        ix.heads
            .get(b..)
            .unwrap_or(&[])
            .iter()
            .find(|&&s| s != NIL)
            .map(|&s| self.key_of(&ix, s).to_vec())
            .ok_or(MapError::NotFound)
    }
}

/// The largest key + value of a hash element (KMALLOC_MAX_SIZE less the
/// element header).
const KMALLOC_MAX_SIZE: u64 = 4 << 20;
const HTAB_ELEM_SIZE: u64 = 48;

const CREATE_MASK: u32 = create_flags::NO_PREALLOC
    | create_flags::NO_COMMON_LRU
    | create_flags::NUMA_NODE
    | create_flags::ACCESS_MASK
    | create_flags::ZERO_SEED;

/// htab_map_alloc_check (and the max_entries checks of htab_map_alloc);
/// returns the effective max_entries.
pub(crate) fn alloc_check(def: &MapDef) -> Result<u32, MapError> {
    use create_flags::*;
    let percpu = matches!(def.map_type, types::PERCPU_HASH | types::LRU_PERCPU_HASH);
    let lru = matches!(def.map_type, types::LRU_HASH | types::LRU_PERCPU_HASH);
    let prealloc = def.flags & NO_PREALLOC == 0;
    let percpu_lru = def.flags & NO_COMMON_LRU != 0;
    let numa = def.flags & NUMA_NODE != 0;
    if def.flags & !CREATE_MASK != 0 || !access_ok(def.flags) {
        return Err(invalid(def, format_args!("map flags {:#x}", def.flags)));
    }
    if !lru && percpu_lru {
        return Err(invalid(def, "BPF_F_NO_COMMON_LRU on a non-LRU map"));
    }
    if lru && !prealloc {
        return Err(MapError::NotSupported);
    }
    if numa && (percpu || percpu_lru) {
        return Err(invalid(def, "BPF_F_NUMA_NODE on a per-CPU map"));
    }
    if def.max_entries == 0 || def.key_size == 0 || def.value_size == 0 {
        return Err(invalid(
            def,
            "key_size, value_size and max_entries must be > 0",
        ));
    }
    if def.key_size as u64 + def.value_size as u64 >= KMALLOC_MAX_SIZE - HTAB_ELEM_SIZE {
        return Err(MapError::TooBig);
    }
    if percpu && round8(def.value_size as usize) > PCPU_MIN_UNIT_SIZE {
        return Err(MapError::TooBig);
    }
    let mut max = def.max_entries;
    if percpu_lru {
        // Every CPU's LRU list gets the same number of elements.
        let n = possible_cpus();
        max = max.checked_next_multiple_of(n).unwrap_or(max / n * n);
    }
    if max > 1 << 31 {
        return Err(MapError::TooBig);
    }
    Ok(max)
}

/// A hash map of any of the four hash types.
#[derive(Debug)]
pub struct HashMap {
    def: MapDef,
    percpu: bool,
    lru: bool,
    ncpus: usize,
    elem: usize,
    slot: usize,
    index: HashIndex,
    store: Storage,
}

impl HashMap {
    pub fn new(def: &MapDef) -> Result<HashMap, MapError> {
        let max = alloc_check(def)?;
        let percpu = matches!(def.map_type, types::PERCPU_HASH | types::LRU_PERCPU_HASH);
        let lru = matches!(def.map_type, types::LRU_HASH | types::LRU_PERCPU_HASH);
        let ncpus = if percpu { possible_cpus() as usize } else { 1 };
        let elem = round8(def.value_size as usize);
        let slot = elem * ncpus;
        let mut d = def.clone();
        d.max_entries = max;
        Ok(HashMap {
            index: HashIndex::new(def.key_size as usize, max, lru, false)?,
            store: Storage::array(max as usize, slot)?,
            def: d,
            percpu,
            lru,
            ncpus,
            elem,
            slot,
        })
    }

    fn host_value_len(&self) -> usize {
        if self.percpu {
            self.slot
        } else {
            self.def.value_size as usize
        }
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.index.count(&self.index.read()) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether an update takes a free element up front (LRU maps; the
    /// per-CPU LRU map not for BPF_EXIST), as htab_lru_*_update_elem do.
    fn reserve(&self, flags: u64) -> bool {
        self.lru && !(self.percpu && flags == BPF_EXIST)
    }

    fn off(&self, slot: u32) -> usize {
        slot as usize * self.slot
    }
}

impl BpfMap for HashMap {
    fn def(&self) -> &MapDef {
        &self.def
    }

    fn lookup(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        check_key(&self.def, key)?;
        // The host's lookup does not count as a use for LRU order, as the
        // kernel's syscall lookup leaves the reference bit alone.
        let ix = self.index.read();
        let s = self.index.find(&ix, key).ok_or(MapError::NotFound)?;
        Ok(self.store.read(self.off(s), self.host_value_len()))
    }

    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        check_key(&self.def, key)?;
        check_value(&self.def, value, self.host_value_len())?;
        check_update_flags(&self.def, flags)?;
        let mut ix = self.index.write();
        let ins = self
            .index
            .insert_reserving(&mut ix, key, flags, self.reserve(flags))?;
        self.store.write(self.off(ins.slot), value);
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        check_key(&self.def, key)?;
        let mut ix = self.index.write();
        self.index
            .remove(&mut ix, key)
            .map(|_| ())
            .ok_or(MapError::NotFound)
    }

    fn get_next_key(&self, key: Option<&[u8]>) -> Result<Vec<u8>, MapError> {
        if let Some(k) = key {
            check_key(&self.def, k)?;
        }
        self.index.next_key(key)
    }

    fn lookup_and_delete(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        check_key(&self.def, key)?;
        let mut ix = self.index.write();
        let s = self.index.remove(&mut ix, key).ok_or(MapError::NotFound)?;
        // The slot stays ours until the lock is released.
        Ok(self.store.read(self.off(s), self.host_value_len()))
    }

    fn prog_lookup(&self, key: &[u8], cpu: u32) -> Option<u64> {
        let cpu = if self.percpu { cpu as usize } else { 0 };
        if cpu >= self.ncpus {
            return None;
        }
        let s = if self.lru {
            // A program's lookup marks the element used.
            let mut ix = self.index.write();
            let s = self.index.find(&ix, key)?;
            self.index.touch(&mut ix, s);
            s
        } else {
            self.index.find(&self.index.read(), key)?
        };
        Some(self.store.addr(self.off(s) + cpu * self.elem))
    }

    fn prog_update(&self, key: &[u8], value: &[u8], flags: u64, cpu: u32) -> Result<(), MapError> {
        check_key(&self.def, key)?;
        check_value(&self.def, value, self.def.value_size as usize)?;
        check_update_flags(&self.def, flags)?;
        let cpu = if self.percpu { cpu as usize } else { 0 };
        if cpu >= self.ncpus {
            return Err(invalid(&self.def, format_args!("cpu {cpu}")));
        }
        let mut ix = self.index.write();
        let ins = self
            .index
            .insert_reserving(&mut ix, key, flags, self.reserve(flags))?;
        let off = self.off(ins.slot);
        if self.percpu && ins.new {
            // A new per-CPU element holds the value on this CPU and zeroes
            // elsewhere (pcpu_init_value).
            self.store.zero(off, self.slot);
        }
        self.store.write(off + cpu * self.elem, value);
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
