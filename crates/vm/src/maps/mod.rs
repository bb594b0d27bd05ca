//! Kernel-compatible maps in user space.
//!
//! Every map keeps its values in storage allocated once, when the map is
//! created, and never moved or freed while the map lives: a program gets a
//! plain host pointer to a value (as in the kernel) and reads and writes it
//! directly, while the host reads and writes through the byte-level API
//! below (bpf(2) semantics: flags, errno, per-CPU value layout, iteration
//! order). The storage is published to the interpreter as memory regions
//! ([`BpfMap::regions`]), so program accesses through value pointers are
//! bounds-checked like any other.
//!
//! Concurrency: index structures (hash tables, tries, queues) sit behind
//! locks, so any number of host threads and program threads may call in at
//! once. Value bytes are shared memory, as in the kernel: a program writing a
//! value while the host copies it may be observed half-written, never out of
//! bounds.

use crate::memory::Region;
use std::any::Any;
use std::sync::Arc;

pub mod array;
pub mod devmap;
pub mod hash;
pub mod lpm_trie;
pub mod map_in_map;
pub mod perf_event_array;
pub mod prog_array;
pub mod queue_stack;
pub mod ringbuf;
pub mod sockmap;
mod storage;

pub use array::ArrayMap;
pub use devmap::DevMap;
pub use hash::HashMap;
pub use lpm_trie::LpmTrie;
pub use map_in_map::MapInMap;
pub use perf_event_array::PerfEventArray;
pub use prog_array::ProgArray;
pub use queue_stack::QueueStack;
pub use ringbuf::RingBuf;
pub use sockmap::SockMap;

/// BPF_MAP_TYPE_* numbers (uapi/linux/bpf.h).
pub mod types {
    pub const HASH: u32 = 1;
    pub const ARRAY: u32 = 2;
    pub const PROG_ARRAY: u32 = 3;
    pub const PERF_EVENT_ARRAY: u32 = 4;
    pub const PERCPU_HASH: u32 = 5;
    pub const PERCPU_ARRAY: u32 = 6;
    pub const LRU_HASH: u32 = 9;
    pub const LRU_PERCPU_HASH: u32 = 10;
    pub const LPM_TRIE: u32 = 11;
    pub const ARRAY_OF_MAPS: u32 = 12;
    pub const HASH_OF_MAPS: u32 = 13;
    pub const DEVMAP: u32 = 14;
    pub const SOCKMAP: u32 = 15;
    pub const SOCKHASH: u32 = 18;
    pub const QUEUE: u32 = 22;
    pub const STACK: u32 = 23;
    pub const DEVMAP_HASH: u32 = 25;
    pub const RINGBUF: u32 = 27;
}

/// bpf(2) update flags.
pub const BPF_ANY: u64 = 0;
pub const BPF_NOEXIST: u64 = 1;
pub const BPF_EXIST: u64 = 2;
pub const BPF_F_LOCK: u64 = 4;

/// BPF_MAP_CREATE `map_flags` (uapi/linux/bpf.h).
pub mod create_flags {
    pub const NO_PREALLOC: u32 = 1 << 0;
    pub const NO_COMMON_LRU: u32 = 1 << 1;
    pub const NUMA_NODE: u32 = 1 << 2;
    pub const RDONLY: u32 = 1 << 3;
    pub const WRONLY: u32 = 1 << 4;
    pub const STACK_BUILD_ID: u32 = 1 << 5;
    pub const ZERO_SEED: u32 = 1 << 6;
    pub const RDONLY_PROG: u32 = 1 << 7;
    pub const WRONLY_PROG: u32 = 1 << 8;
    pub const CLONE: u32 = 1 << 9;
    pub const MMAPABLE: u32 = 1 << 10;
    pub const PRESERVE_ELEMS: u32 = 1 << 11;
    pub const INNER_MAP: u32 = 1 << 12;
    /// BPF_F_ACCESS_MASK.
    pub const ACCESS_MASK: u32 = RDONLY | WRONLY | RDONLY_PROG | WRONLY_PROG;
}

/// bpf_ringbuf_query flags.
pub const BPF_RB_AVAIL_DATA: u64 = 0;
pub const BPF_RB_RING_SIZE: u64 = 1;
pub const BPF_RB_CONS_POS: u64 = 2;
pub const BPF_RB_PROD_POS: u64 = 3;

/// What a map is: the fields of BPF_MAP_CREATE the VM honours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDef {
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// The inner map template of ARRAY_OF_MAPS / HASH_OF_MAPS.
    pub inner: Option<Box<MapDef>>,
}

/// Why a map operation failed, with the errno the kernel gives for it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// ENOENT: no such key (or an empty queue/stack).
    #[error("no such key")]
    NotFound,
    /// EEXIST: BPF_NOEXIST on a key that exists.
    #[error("the key exists (BPF_NOEXIST)")]
    Exists,
    /// E2BIG: the map is full, or an array index is past max_entries.
    #[error("the map is full or the index is past max_entries")]
    TooBig,
    /// EINVAL: a bad argument (flags, sizes, definition).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// EINVAL at creation: the VM does not implement this map type.
    #[error("map type {0} is not supported by the VM")]
    UnsupportedType(u32),
    /// ENOTSUPP (524) / EOPNOTSUPP: the operation does not apply to the map type.
    #[error("operation not supported on this map type")]
    NotSupported,
    /// ENOMEM: no room (a ring buffer reservation).
    #[error("out of space")]
    NoSpace,
    /// EBUSY.
    #[error("busy")]
    Busy,
    /// ENOSPC: an LPM trie holds max_entries prefixes.
    #[error("no space left in the map")]
    NoSpaceLeft,
    /// EAGAIN: bpf_ringbuf_output found no room.
    #[error("try again (ring buffer full)")]
    Again,
    /// EBADF: a map-in-map update names no map.
    #[error("no map with that id")]
    BadFd,
}

impl MapError {
    /// The positive errno the kernel returns for this failure.
    pub fn errno(&self) -> i32 {
        match self {
            MapError::NotFound => 2,
            MapError::Exists => 17,
            MapError::TooBig => 7,
            MapError::Invalid(_) | MapError::UnsupportedType(_) => 22,
            MapError::NotSupported => 524,
            MapError::NoSpace => 12,
            MapError::Busy => 16,
            MapError::NoSpaceLeft => 28,
            MapError::Again => 11,
            MapError::BadFd => 9,
        }
    }
}

/// The map interface: host side with bpf(2) semantics, program side with
/// helper semantics.
pub trait BpfMap: Send + Sync + std::fmt::Debug {
    fn def(&self) -> &MapDef;

    // ---- host side (the bpf(2) commands) -----------------------------
    /// BPF_MAP_LOOKUP_ELEM. Per-CPU maps return one slot per possible CPU,
    /// each `value_size` rounded up to 8 bytes, as the syscall does.
    /// Map-in-map values are the inner map's id.
    fn lookup(&self, key: &[u8]) -> Result<Vec<u8>, MapError>;
    /// BPF_MAP_UPDATE_ELEM with BPF_ANY / BPF_NOEXIST / BPF_EXIST. Per-CPU
    /// maps take one 8-byte-aligned slot per possible CPU.
    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError>;
    /// BPF_MAP_DELETE_ELEM.
    fn delete(&self, key: &[u8]) -> Result<(), MapError>;
    /// BPF_MAP_GET_NEXT_KEY: `None` asks for the first key.
    fn get_next_key(&self, key: Option<&[u8]>) -> Result<Vec<u8>, MapError>;
    /// BPF_MAP_LOOKUP_AND_DELETE_ELEM (queue/stack: `key` is empty).
    fn lookup_and_delete(&self, key: &[u8]) -> Result<Vec<u8>, MapError>;

    // ---- program side (helpers) ---------------------------------------
    /// bpf_map_lookup_elem for the program running on `cpu`: the host
    /// address of the value (of that CPU's slot for per-CPU maps), stable
    /// while the map lives, or `None`. Map-in-map maps return the inner map's
    /// handle ([`MapRegistry::handle`]).
    ///
    /// Maps programs reach only through their own helpers (program arrays,
    /// ring buffers, perf event arrays, ...) keep the defaults: nothing to
    /// look up, update or delete, no memory to address.
    fn prog_lookup(&self, _key: &[u8], _cpu: u32) -> Option<u64> {
        None
    }
    /// bpf_map_update_elem from a program (per-CPU maps: writes `cpu`'s slot).
    fn prog_update(
        &self,
        _key: &[u8],
        _value: &[u8],
        _flags: u64,
        _cpu: u32,
    ) -> Result<(), MapError> {
        Err(MapError::NotSupported)
    }
    /// bpf_map_delete_elem from a program.
    fn prog_delete(&self, _key: &[u8]) -> Result<(), MapError> {
        Err(MapError::NotSupported)
    }
    /// bpf_map_push_elem (queue, stack).
    fn push(&self, _value: &[u8], _flags: u64) -> Result<(), MapError> {
        Err(MapError::NotSupported)
    }
    /// bpf_map_pop_elem (queue, stack).
    fn pop(&self) -> Result<Vec<u8>, MapError> {
        Err(MapError::NotSupported)
    }
    /// bpf_map_peek_elem (queue, stack).
    fn peek(&self) -> Result<Vec<u8>, MapError> {
        Err(MapError::NotSupported)
    }

    /// Memory programs may address directly (value storage), as regions for
    /// the interpreter.
    fn regions(&self) -> Vec<Region> {
        Vec::new()
    }

    /// For the type-specific APIs (ring buffer reader, program array).
    fn as_any(&self) -> &dyn Any;
}

/// The number of possible CPUs, as the kernel counts them for per-CPU maps
/// (/sys/devices/system/cpu/possible), so per-CPU values have the same
/// layout in both engines.
pub fn possible_cpus() -> u32 {
    static N: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::fs::read_to_string("/sys/devices/system/cpu/possible")
            .ok()
            .and_then(|s| {
                s.trim()
                    .split(',')
                    .map(|p| p.rsplit('-').next()?.parse::<u32>().ok())
                    .try_fold(0u32, |m, v| Some(m.max(v? + 1)))
            })
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32))
    })
}

/// The per-CPU slot of the calling thread: threads take slots round-robin
/// the first time they run a program, so concurrent threads use distinct
/// slots (up to [`possible_cpus`] threads).
pub fn current_cpu() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    thread_local! {
        static CPU: u32 = NEXT.fetch_add(1, Ordering::Relaxed) % possible_cpus();
    }
    CPU.with(|c| *c)
}

/// Handles programs pass to map helpers are tokens, not addresses: the
/// top bits mark them so a program cannot turn an arbitrary integer into a
/// map, and the low bits are the map's id in its registry.
const HANDLE_TAG: u64 = 0xffff_b9f0_0000_0000;

/// All maps of one VM instance (an object and the inner maps the host adds),
/// by id. Ids are what the host passes as a map "fd" to map-in-map updates.
#[derive(Debug, Default)]
pub struct MapRegistry {
    maps: std::sync::RwLock<Vec<Arc<dyn BpfMap>>>,
    /// Bumped whenever a map is added, so interpreters refresh the regions
    /// they cache.
    generation: std::sync::atomic::AtomicU64,
}

impl MapRegistry {
    pub fn new() -> Arc<MapRegistry> {
        Arc::new(MapRegistry::default())
    }

    /// Creates a map of `def`'s type and registers it; returns its id.
    pub fn create(self: &Arc<Self>, def: &MapDef) -> Result<u32, MapError> {
        let map = create(def, self)?;
        Ok(self.insert(map))
    }

    /// Registers an existing map; returns its id.
    pub fn insert(&self, map: Arc<dyn BpfMap>) -> u32 {
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        maps.push(map);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        (maps.len() - 1) as u32
    }

    pub fn get(&self, id: u32) -> Option<Arc<dyn BpfMap>> {
        let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
        maps.get(id as usize).cloned()
    }

    /// The map a program handle designates.
    pub fn from_handle(&self, handle: u64) -> Option<Arc<dyn BpfMap>> {
        self.get(Self::id_of(handle)?)
    }

    /// The map id a program handle carries, if it is a handle.
    pub fn id_of(handle: u64) -> Option<u32> {
        (handle & !0xffff_ffff == HANDLE_TAG).then_some(handle as u32)
    }

    /// Every registered map, by id.
    pub fn snapshot(&self) -> Vec<Arc<dyn BpfMap>> {
        self.maps.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The value a program holds for map `id` (what LDDW map-fd loads).
    pub fn handle(id: u32) -> u64 {
        HANDLE_TAG | id as u64
    }

    pub fn len(&self) -> usize {
        self.maps.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Every region of every registered map.
    pub fn regions(&self) -> Vec<Region> {
        let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
        maps.iter().flat_map(|m| m.regions()).collect()
    }
}

/// Creates a map. Map-in-map types resolve inner map ids in `registry`.
pub fn create(def: &MapDef, registry: &Arc<MapRegistry>) -> Result<Arc<dyn BpfMap>, MapError> {
    check_common(def)?;
    Ok(match def.map_type {
        types::ARRAY | types::PERCPU_ARRAY => Arc::new(ArrayMap::new(def)?),
        types::HASH | types::PERCPU_HASH | types::LRU_HASH | types::LRU_PERCPU_HASH => {
            Arc::new(HashMap::new(def)?)
        }
        types::LPM_TRIE => Arc::new(LpmTrie::new(def)?),
        types::QUEUE | types::STACK => Arc::new(QueueStack::new(def)?),
        types::RINGBUF => Arc::new(RingBuf::new(def)?),
        types::PROG_ARRAY => Arc::new(ProgArray::new(def)?),
        types::ARRAY_OF_MAPS | types::HASH_OF_MAPS => Arc::new(MapInMap::new(def, registry)?),
        types::DEVMAP | types::DEVMAP_HASH => Arc::new(DevMap::new(def)?),
        types::PERF_EVENT_ARRAY => Arc::new(PerfEventArray::new(def)?),
        types::SOCKMAP | types::SOCKHASH => Arc::new(SockMap::new(def)?),
        t => return Err(MapError::UnsupportedType(t)),
    })
}

/// The checks map_create makes before the type's own (kernel/bpf/syscall.c).
fn check_common(def: &MapDef) -> Result<(), MapError> {
    use create_flags::*;
    if def.flags & RDONLY != 0 && def.flags & WRONLY != 0 {
        return Err(invalid(def, "BPF_F_RDONLY and BPF_F_WRONLY together"));
    }
    Ok(())
}

/// bpf_map_flags_access_ok: a map cannot be both read-only and write-only
/// for programs.
pub(crate) fn access_ok(flags: u32) -> bool {
    use create_flags::*;
    flags & (RDONLY_PROG | WRONLY_PROG) != (RDONLY_PROG | WRONLY_PROG)
}

/// An EINVAL naming the map.
pub(crate) fn invalid(def: &MapDef, why: impl std::fmt::Display) -> MapError {
    MapError::Invalid(format!("map `{}` (type {}): {why}", def.name, def.map_type))
}

/// Checks a host key's length.
pub(crate) fn check_key(def: &MapDef, key: &[u8]) -> Result<(), MapError> {
    if key.len() != def.key_size as usize {
        return Err(invalid(
            def,
            format_args!(
                "key is {} bytes, the map's keys are {}",
                key.len(),
                def.key_size
            ),
        ));
    }
    Ok(())
}

/// Checks a value's length.
pub(crate) fn check_value(def: &MapDef, value: &[u8], want: usize) -> Result<(), MapError> {
    if value.len() != want {
        return Err(invalid(
            def,
            format_args!("value is {} bytes, the map takes {want}", value.len()),
        ));
    }
    Ok(())
}

/// Update flags every element update accepts: BPF_ANY, BPF_NOEXIST,
/// BPF_EXIST (BPF_F_LOCK needs a spin lock in the value, which the VM's
/// maps never have, so the kernel refuses it as well).
pub(crate) fn check_update_flags(def: &MapDef, flags: u64) -> Result<(), MapError> {
    if flags > BPF_EXIST {
        return Err(invalid(def, format_args!("update flags {flags:#x}")));
    }
    Ok(())
}

/// A u32 key (array index), or an error for a key of another size.
pub(crate) fn u32_key(def: &MapDef, key: &[u8]) -> Result<u32, MapError> {
    check_key(def, key)?;
    key.try_into()
        .map(u32::from_ne_bytes)
        .map_err(|_| invalid(def, "key is not 4 bytes"))
}

pub(crate) fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// The largest per-CPU value (PCPU_MIN_UNIT_SIZE).
pub(crate) const PCPU_MIN_UNIT_SIZE: usize = 32 << 10;
