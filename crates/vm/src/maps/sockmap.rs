//! SOCKMAP and SOCKHASH (net/core/sock_map.c), and the helpers that
//! redirect through them.
//!
//! In the kernel the host stores socket fds and the map holds the sockets.
//! The VM has no sockets: a map holds the value the host stored (a socket
//! cookie, an fd, any number up to `i32::MAX` as the kernel's fd check
//! allows), and a redirect names the map and key it went through
//! ([`crate::env::Redirect::Socket`]). Every check the kernel makes before
//! it resolves the fd is kept, in the kernel's order; the fd itself is not
//! checked (the kernel gives EBADF, ENOTSOCK or EOPNOTSUPP for values that
//! are not suitable sockets, the VM accepts them).

use super::*;
use crate::env::Redirect;
use crate::helpers::{HelperContext, HelperError, Helpers};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// SOCK_CREATE_FLAG_MASK.
const CREATE_MASK: u32 = create_flags::NUMA_NODE | create_flags::RDONLY | create_flags::WRONLY;
/// MAX_BPF_STACK: the longest SOCKHASH key.
const MAX_KEY: u32 = 512;
/// sizeof(struct bpf_shtab_bucket): bounds the bucket count.
const BUCKET_SIZE: u64 = 16;

#[derive(Debug)]
pub struct SockMap {
    def: MapDef,
    hash: bool,
    /// Key bytes -> stored value. Sparse, so a large max_entries costs
    /// nothing until used; SOCKHASH iterates in key byte order (the
    /// kernel's order depends on a random hash seed).
    entries: Mutex<BTreeMap<Vec<u8>, u64>>,
}

impl SockMap {
    pub fn new(def: &MapDef) -> Result<SockMap, MapError> {
        let hash = def.map_type == types::SOCKHASH;
        let key_ok = if hash {
            def.key_size != 0
        } else {
            def.key_size == 4
        };
        if def.max_entries == 0
            || !key_ok
            || (def.value_size != 4 && def.value_size != 8)
            || def.flags & !CREATE_MASK != 0
        {
            return Err(invalid(
                def,
                "socket maps need value_size 4 or 8, max_entries > 0, key_size 4 (SOCKMAP) or > 0 (SOCKHASH)",
            ));
        }
        if hash {
            if def.key_size > MAX_KEY {
                return Err(MapError::TooBig);
            }
            // sock_hash_alloc: a power-of-two bucket count that fits a u32
            // allocation size.
            let buckets = (def.max_entries as u64).next_power_of_two();
            if buckets > u32::MAX as u64 / BUCKET_SIZE {
                return Err(invalid(def, "too many entries"));
            }
        }
        Ok(SockMap {
            def: def.clone(),
            hash,
            entries: Mutex::new(BTreeMap::new()),
        })
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, u64>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value stored under `key`, if any (keys of another size have none).
    pub fn get(&self, key: &[u8]) -> Option<u64> {
        self.entries().get(key).copied()
    }

    /// The number of stored sockets.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The deletion both sides share: SOCKMAP gives EINVAL for an index past
    /// the end or an empty slot (__sock_map_delete), SOCKHASH ENOENT.
    fn remove(&self, key: &[u8]) -> Result<(), MapError> {
        check_key(&self.def, key)?;
        let found = self.entries().remove(key).is_some();
        match (found, self.hash) {
            (true, _) => Ok(()),
            (false, true) => Err(MapError::NotFound),
            (false, false) => Err(invalid(&self.def, "no socket at that index")),
        }
    }
}

impl BpfMap for SockMap {
    fn def(&self) -> &MapDef {
        &self.def
    }

    /// sock_map_lookup_sys / sock_hash_lookup_sys: ENOSPC unless values are
    /// 8 bytes (the kernel returns the socket's cookie; the VM the value the
    /// host stored).
    fn lookup(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        check_key(&self.def, key)?;
        if self.def.value_size != 8 {
            return Err(MapError::NoSpaceLeft);
        }
        self.get(key)
            .map(|v| v.to_ne_bytes().to_vec())
            .ok_or(MapError::NotFound)
    }

    /// sock_map_update_elem_sys: the "fd" must fit an int; then
    /// sock_map_update_common / sock_hash_update_common.
    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        check_key(&self.def, key)?;
        check_value(&self.def, value, self.def.value_size as usize)?;
        let v = match *value {
            [a, b, c, d] => u32::from_ne_bytes([a, b, c, d]) as u64,
            _ => u64::from_ne_bytes(value.try_into().map_err(|_| invalid(&self.def, "value"))?),
        };
        if v > i32::MAX as u64 {
            return Err(invalid(&self.def, format_args!("socket fd {v} > S32_MAX")));
        }
        check_update_flags(&self.def, flags)?;
        if !self.hash {
            let i = u32_key(&self.def, key)?;
            if i >= self.def.max_entries {
                return Err(MapError::TooBig);
            }
        }
        let mut e = self.entries();
        let exists = e.contains_key(key);
        if exists && flags == BPF_NOEXIST {
            return Err(MapError::Exists);
        }
        if !exists && flags == BPF_EXIST {
            return Err(MapError::NotFound);
        }
        if !exists && self.hash && e.len() >= self.def.max_entries as usize {
            return Err(MapError::TooBig);
        }
        e.insert(key.to_vec(), v);
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        self.remove(key)
    }

    /// SOCKMAP: array order; SOCKHASH: the key after `key`, or the first
    /// when `key` is absent.
    fn get_next_key(&self, key: Option<&[u8]>) -> Result<Vec<u8>, MapError> {
        if let Some(k) = key {
            check_key(&self.def, k)?;
        }
        if !self.hash {
            return array::next_index(&self.def, key);
        }
        let e = self.entries();
        let next = match key {
            Some(k) if e.contains_key(k) => e
                .range::<[u8], _>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded))
                .next(),
            _ => e.iter().next(),
        };
        next.map(|(k, _)| k.clone()).ok_or(MapError::NotFound)
    }

    fn lookup_and_delete(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        check_key(&self.def, key)?;
        Err(MapError::NotSupported)
    }

    fn prog_delete(&self, key: &[u8]) -> Result<(), MapError> {
        self.remove(key)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---- helpers ----------------------------------------------------------------

/// SK_DROP / SK_PASS.
const SK_DROP: u64 = 0;
const SK_PASS: u64 = 1;
const BPF_F_INGRESS: u64 = 1;
const EOPNOTSUPP: i64 = libc::EOPNOTSUPP as i64;

/// The socket map a helper's map argument designates; the verifier only
/// lets each helper name its own map type.
fn sock_map(
    ctx: &HelperContext<'_>,
    handle: u64,
    hash: bool,
    name: &str,
) -> Result<std::sync::Arc<dyn BpfMap>, HelperError> {
    let map = ctx
        .env
        .map(handle)
        .ok_or_else(|| HelperError::Failed(format!("{name}: r2 is not a map ({handle:#x})")))?;
    let want = if hash {
        types::SOCKHASH
    } else {
        types::SOCKMAP
    };
    if map.def().map_type != want || map.as_any().downcast_ref::<SockMap>().is_none() {
        return Err(HelperError::Failed(format!(
            "{name}: r2 is a map of type {}, the helper takes type {want}",
            map.def().map_type
        )));
    }
    Ok(map)
}

/// The four redirect helpers: bad flags or a missing socket drop the data
/// (and leave an earlier redirect as it was, as the kernel does); a found
/// socket records the redirect and passes.
fn redirect(
    ctx: &mut HelperContext<'_>,
    a: [u64; 5],
    hash: bool,
    name: &str,
) -> Result<u64, HelperError> {
    let (handle, flags) = (a[1], a[3]);
    let map = sock_map(ctx, handle, hash, name)?;
    // SOCKHASH helpers take a key pointer (checked by the verifier before
    // the call), SOCKMAP ones a u32 index.
    let key = if hash {
        ctx.read(a[2], map.def().key_size as usize)?
    } else {
        (a[2] as u32).to_ne_bytes().to_vec()
    };
    if flags & !BPF_F_INGRESS != 0 {
        return Ok(SK_DROP);
    }
    let found = map
        .as_any()
        .downcast_ref::<SockMap>()
        .and_then(|m| m.get(&key))
        .is_some();
    if !found {
        return Ok(SK_DROP);
    }
    ctx.env.redirect = Some(Redirect::Socket {
        map: handle as u32,
        key,
        flags,
    });
    Ok(SK_PASS)
}

/// Registers bpf_sk_redirect_map (52), bpf_sock_map_update (53),
/// bpf_msg_redirect_map (60), bpf_sock_hash_update (70),
/// bpf_msg_redirect_hash (71) and bpf_sk_redirect_hash (72).
pub fn register_sockmap_helpers(h: &mut Helpers) {
    h.register(52, "bpf_sk_redirect_map", |ctx, a| {
        redirect(ctx, a, false, "bpf_sk_redirect_map")
    });
    h.register(60, "bpf_msg_redirect_map", |ctx, a| {
        redirect(ctx, a, false, "bpf_msg_redirect_map")
    });
    h.register(71, "bpf_msg_redirect_hash", |ctx, a| {
        redirect(ctx, a, true, "bpf_msg_redirect_hash")
    });
    h.register(72, "bpf_sk_redirect_hash", |ctx, a| {
        redirect(ctx, a, true, "bpf_sk_redirect_hash")
    });
    // sock_ops programs add their own socket; a VM run has none to add.
    h.register(53, "bpf_sock_map_update", |_, _| Ok((-EOPNOTSUPP) as u64));
    h.register(70, "bpf_sock_hash_update", |_, _| Ok((-EOPNOTSUPP) as u64));
}
