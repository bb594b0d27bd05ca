//! Byte-level access to kernel maps: lookup, update, delete and key
//! iteration by raw key and value bytes, whatever the map's declared types.
//!
//! aya's map types are typed (`HashMap<K, V>`) and the generic `MapData`
//! exposes no raw element calls in 0.14, so these four bpf(2) commands are
//! issued directly on a descriptor obtained from the map's id.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use thiserror::Error;

const BPF_MAP_LOOKUP_ELEM: u32 = 1;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_DELETE_ELEM: u32 = 3;
const BPF_MAP_GET_NEXT_KEY: u32 = 4;
const BPF_MAP_GET_FD_BY_ID: u32 = 14;

/// `flags` of an update, as the kernel defines them.
pub const BPF_ANY: u64 = 0;
pub const BPF_NOEXIST: u64 = 1;
pub const BPF_EXIST: u64 = 2;

#[repr(C, align(8))]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C, align(8))]
#[derive(Default)]
struct GetFdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
    // Explicit, so the kernel's check that unused attr bytes are zero holds.
    _pad: u32,
}

fn bpf<T>(cmd: u32, attr: &mut T) -> io::Result<i64> {
    // SAFETY: attr is a valid, initialised bpf_attr prefix of the right size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

#[derive(Debug, Error)]
pub enum MapError {
    #[error("map `{map}`: key is {got} bytes, the map's keys are {want}")]
    KeySize {
        map: String,
        got: usize,
        want: usize,
    },
    #[error("map `{map}`: value is {got} bytes, the map's values are {want}")]
    ValueSize {
        map: String,
        got: usize,
        want: usize,
    },
    #[error("map `{map}`: {op}: {source}")]
    Syscall {
        map: String,
        op: &'static str,
        source: io::Error,
    },
}

/// One kernel map, addressed by raw bytes. Per-CPU maps hold one value slot
/// per possible CPU, each rounded up to 8 bytes, as bpf(2) returns them.
#[derive(Debug)]
pub struct KernelMap {
    pub name: String,
    pub id: u32,
    pub map_type: u32,
    pub key_size: usize,
    pub value_size: usize,
    pub max_entries: u32,
    /// Bytes a lookup returns (one slot per possible CPU for per-CPU maps),
    /// worked out once when the map is opened.
    value_buffer_len: usize,
    fd: OwnedFd,
}

impl KernelMap {
    /// Opens the map with this id.
    pub fn from_id(
        name: &str,
        id: u32,
        map_type: u32,
        key_size: usize,
        value_size: usize,
        max_entries: u32,
    ) -> Result<Self, MapError> {
        let mut attr = GetFdAttr {
            id,
            ..Default::default()
        };
        let fd = bpf(BPF_MAP_GET_FD_BY_ID, &mut attr).map_err(|source| MapError::Syscall {
            map: name.to_string(),
            op: "open by id",
            source,
        })?;
        let value_buffer_len = if is_percpu(map_type) {
            value_size.div_ceil(8) * 8 * possible_cpus()
        } else {
            value_size
        };
        Ok(KernelMap {
            name: name.to_string(),
            id,
            map_type,
            key_size,
            value_size,
            max_entries,
            value_buffer_len,
            // SAFETY: the kernel returned a new descriptor we now own.
            fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
        })
    }

    /// Bytes one lookup returns: the value, or one 8-byte-aligned slot per
    /// possible CPU for per-CPU maps.
    pub fn value_buffer_len(&self) -> usize {
        self.value_buffer_len
    }

    fn check_key(&self, key: &[u8]) -> Result<(), MapError> {
        if key.len() != self.key_size {
            return Err(MapError::KeySize {
                map: self.name.clone(),
                got: key.len(),
                want: self.key_size,
            });
        }
        Ok(())
    }

    fn err(&self, op: &'static str) -> impl FnOnce(io::Error) -> MapError + '_ {
        move |source| MapError::Syscall {
            map: self.name.clone(),
            op,
            source,
        }
    }

    /// The value stored under `key`, or None when there is none (ENOENT).
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MapError> {
        self.check_key(key)?;
        let mut value = vec![0u8; self.value_buffer_len()];
        let mut attr = ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            ..Default::default()
        };
        match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(self.err("lookup")(e)),
        }
    }

    /// Stores `value` under `key` with BPF_ANY, BPF_NOEXIST or BPF_EXIST.
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        self.check_key(key)?;
        if value.len() != self.value_buffer_len() {
            return Err(MapError::ValueSize {
                map: self.name.clone(),
                got: value.len(),
                want: self.value_buffer_len(),
            });
        }
        let mut attr = ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            flags,
            ..Default::default()
        };
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
            .map(|_| ())
            .map_err(self.err("update"))
    }

    /// Deletes `key`; Ok(false) when it was not there.
    pub fn delete(&self, key: &[u8]) -> Result<bool, MapError> {
        self.check_key(key)?;
        let mut attr = ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            ..Default::default()
        };
        match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(self.err("delete")(e)),
        }
    }

    /// Every key, in the kernel's iteration order.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, MapError> {
        let mut keys = Vec::new();
        let mut prev: Option<Vec<u8>> = None;
        loop {
            let mut next = vec![0u8; self.key_size];
            let mut attr = ElemAttr {
                map_fd: self.fd.as_raw_fd() as u32,
                key: prev.as_ref().map_or(0, |k| k.as_ptr() as u64),
                value: next.as_mut_ptr() as u64,
                ..Default::default()
            };
            match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
                Ok(_) => {
                    keys.push(next.clone());
                    prev = Some(next);
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(keys),
                Err(e) => return Err(self.err("next key")(e)),
            }
            if keys.len() > self.max_entries as usize + 1 {
                // A map changing under iteration can cycle; stop at capacity.
                return Ok(keys);
            }
        }
    }
}

/// Whether a map type keeps one value per CPU: PERCPU_HASH, PERCPU_ARRAY,
/// LRU_PERCPU_HASH, PERCPU_CGROUP_STORAGE.
pub fn is_percpu(map_type: u32) -> bool {
    matches!(map_type, 5 | 6 | 10 | 21)
}

/// Possible CPUs, as /sys/devices/system/cpu/possible lists them (per-CPU
/// values have one slot each); read once. Without the file, the CPUs this
/// process may use, as the VM counts them, so both engines agree.
pub fn possible_cpus() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::fs::read_to_string("/sys/devices/system/cpu/possible")
            .ok()
            .and_then(|s| parse_cpu_list(s.trim()))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut max = None;
    for part in s.split(',') {
        let hi = match part.split_once('-') {
            Some((_, hi)) => hi.parse::<usize>().ok()?,
            None => part.parse::<usize>().ok()?,
        };
        max = Some(max.map_or(hi, |m: usize| m.max(hi)));
    }
    max.map(|m| m + 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists() {
        assert_eq!(super::parse_cpu_list("0-1"), Some(2));
        assert_eq!(super::parse_cpu_list("0"), Some(1));
        assert_eq!(super::parse_cpu_list("0-3,8-11"), Some(12));
        assert_eq!(super::parse_cpu_list("x"), None);
    }
}

const BPF_MAP_CREATE: u32 = 0;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_MAP_LOOKUP_AND_DELETE_ELEM: u32 = 21;

/// The BPF_MAP_CREATE prefix of `union bpf_attr` (through map_extra).
#[repr(C, align(8))]
#[derive(Default)]
struct CreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    map_ifindex: u32,
    btf_fd: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
    btf_vmlinux_value_type_id: u32,
    map_extra: u64,
}

#[repr(C, align(8))]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// A map name the kernel accepts: up to 15 of [A-Za-z0-9_.].
fn kernel_map_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, c) in out
        .iter_mut()
        .zip(
            name.bytes()
                .filter(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.'),
        )
        .take(15)
    {
        *o = c;
    }
    out
}

/// A user pointer for a buffer: NULL when it is empty, as bpf(2) wants for
/// maps without keys (queues, stacks, ring buffers).
fn uptr(b: &[u8]) -> u64 {
    if b.is_empty() {
        0
    } else {
        b.as_ptr() as u64
    }
}

fn errno_of(e: io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Creates a map with BPF_MAP_CREATE.
pub fn create(
    name: &str,
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
) -> Result<KernelMap, MapError> {
    create_with_inner(
        name,
        map_type,
        key_size,
        value_size,
        max_entries,
        flags,
        None,
    )
}

/// Creates a map with BPF_MAP_CREATE; `inner` is the inner map template of
/// an ARRAY_OF_MAPS / HASH_OF_MAPS.
pub fn create_with_inner(
    name: &str,
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
    inner: Option<&KernelMap>,
) -> Result<KernelMap, MapError> {
    let mut attr = CreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags: flags,
        inner_map_fd: inner.map_or(0, |m| m.fd.as_raw_fd() as u32),
        map_name: kernel_map_name(name),
        ..Default::default()
    };
    let syscall = |source| MapError::Syscall {
        map: name.to_string(),
        op: "create",
        source,
    };
    let fd = bpf(BPF_MAP_CREATE, &mut attr).map_err(syscall)?;
    // SAFETY: the kernel returned a new descriptor we now own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // struct bpf_map_info starts with type and id.
    let mut info = [0u32; 32];
    let mut iattr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut iattr).map_err(syscall)?;
    let value_buffer_len = if is_percpu(map_type) {
        (value_size as usize).div_ceil(8) * 8 * possible_cpus()
    } else {
        value_size as usize
    };
    Ok(KernelMap {
        name: name.to_string(),
        id: info[1],
        map_type,
        key_size: key_size as usize,
        value_size: value_size as usize,
        max_entries,
        value_buffer_len,
        fd,
    })
}

impl KernelMap {
    /// The map's descriptor (the value a map-in-map update takes).
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    fn elem(&self, cmd: u32, key: &[u8], value: u64, flags: u64) -> Result<(), i32> {
        let mut attr = ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: uptr(key),
            value,
            flags,
            ..Default::default()
        };
        bpf(cmd, &mut attr).map(|_| ()).map_err(errno_of)
    }

    /// BPF_MAP_LOOKUP_ELEM with the raw errno; `key` is passed as given (a
    /// NULL pointer when empty), so the kernel does every check.
    pub fn lookup_errno(&self, key: &[u8]) -> Result<Vec<u8>, i32> {
        let mut value = vec![0u8; self.value_buffer_len];
        self.elem(BPF_MAP_LOOKUP_ELEM, key, uptr_mut(&mut value), 0)?;
        Ok(value)
    }

    /// BPF_MAP_UPDATE_ELEM with the raw errno (`value` as given).
    pub fn update_errno(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), i32> {
        if !value.is_empty() && value.len() < self.value_buffer_len {
            // The kernel would read past the buffer.
            return Err(libc::EINVAL);
        }
        self.elem(BPF_MAP_UPDATE_ELEM, key, uptr(value), flags)
    }

    /// BPF_MAP_DELETE_ELEM with the raw errno.
    pub fn delete_errno(&self, key: &[u8]) -> Result<(), i32> {
        self.elem(BPF_MAP_DELETE_ELEM, key, 0, 0)
    }

    /// BPF_MAP_GET_NEXT_KEY: `None` asks for the first key.
    pub fn get_next_key(&self, key: Option<&[u8]>) -> Result<Vec<u8>, i32> {
        let mut next = vec![0u8; self.key_size];
        let mut attr = ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.map_or(0, uptr),
            value: uptr_mut(&mut next),
            ..Default::default()
        };
        bpf(BPF_MAP_GET_NEXT_KEY, &mut attr)
            .map(|_| next)
            .map_err(errno_of)
    }

    /// BPF_MAP_LOOKUP_AND_DELETE_ELEM (a pop for queues and stacks, whose
    /// `key` is empty).
    pub fn lookup_and_delete(&self, key: &[u8]) -> Result<Vec<u8>, i32> {
        let mut value = vec![0u8; self.value_buffer_len];
        self.elem(BPF_MAP_LOOKUP_AND_DELETE_ELEM, key, uptr_mut(&mut value), 0)?;
        Ok(value)
    }
}

fn uptr_mut(b: &mut [u8]) -> u64 {
    if b.is_empty() {
        0
    } else {
        b.as_mut_ptr() as u64
    }
}
