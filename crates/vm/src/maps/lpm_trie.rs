//! LPM_TRIE (kernel/bpf/lpm_trie.c).
//!
//! Keys are `u32 prefixlen` (host order) followed by `key_size - 4` data
//! bytes. An element is identified by its prefix length and the first
//! `prefixlen` bits of its data; the data bytes past the prefix are kept as
//! the last update gave them, since the kernel returns them from
//! get_next_key. Lookup is longest-prefix match. Iteration is the kernel
//! trie's postorder: more specific prefixes before less specific ones, a 0
//! bit before a 1 bit, which depends only on the set of prefixes, so an
//! ordered set with that comparison yields the same sequence without
//! rebuilding the kernel's path-compressed trie.

use super::storage::Storage;
use super::*;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap as StdHashMap};
use std::sync::RwLock;

/// A prefix: its length and its data with the bits past the prefix cleared.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Prefix {
    len: u32,
    bits: Box<[u8]>,
}

impl Ord for Prefix {
    fn cmp(&self, other: &Self) -> Ordering {
        // Compare the common prefix bit by bit (bytes at a time), then the
        // longer (more specific) prefix comes first.
        let common = self.len.min(other.len) as usize;
        let full = common / 8;
        if let Some(i) = (0..full).find(|&i| self.bits[i] != other.bits[i]) {
            return first_diff(self.bits[i], other.bits[i]);
        }
        let rest = common % 8;
        if rest > 0 {
            let m = 0xffu8 << (8 - rest);
            let (a, b) = (self.bits[full] & m, other.bits[full] & m);
            if a != b {
                return first_diff(a, b);
            }
        }
        other.len.cmp(&self.len)
    }
}

impl PartialOrd for Prefix {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Orders two differing bytes by their first differing bit (0 first).
fn first_diff(a: u8, b: u8) -> Ordering {
    let bit = (a ^ b).leading_zeros();
    if (a << bit) & 0x80 == 0 {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

fn masked(data: &[u8], len: u32) -> Box<[u8]> {
    let mut b: Box<[u8]> = data.into();
    mask_in_place(&mut b, len);
    b
}

fn mask_in_place(b: &mut [u8], len: u32) {
    let full = (len / 8) as usize;
    let rest = len % 8;
    for (i, x) in b.iter_mut().enumerate() {
        if i > full || (i == full && rest == 0) {
            *x = 0;
        } else if i == full {
            *x &= 0xffu8 << (8 - rest);
        }
    }
}

#[derive(Debug, Default)]
struct Trie {
    /// Prefix -> (value slot, the key's data as last stored).
    entries: StdHashMap<Prefix, (u32, Box<[u8]>)>,
    order: BTreeSet<Prefix>,
    /// How many elements have each prefix length (longest-prefix match
    /// tries only the lengths present).
    lens: BTreeMap<u32, u32>,
    free: Vec<u32>,
}

#[derive(Debug)]
pub struct LpmTrie {
    def: MapDef,
    max_prefixlen: u32,
    elem: usize,
    trie: RwLock<Trie>,
    store: Storage,
}

const LPM_DATA_SIZE_MAX: u32 = 256;
const LPM_VAL_SIZE_MAX: u32 = (4 << 20) - LPM_DATA_SIZE_MAX - 40;

impl LpmTrie {
    pub fn new(def: &MapDef) -> Result<LpmTrie, MapError> {
        use create_flags::*;
        let mask = NO_PREALLOC | NUMA_NODE | ACCESS_MASK;
        if def.max_entries == 0
            || def.flags & NO_PREALLOC == 0
            || def.flags & !mask != 0
            || !access_ok(def.flags)
            || def.key_size < 4 + 1
            || def.key_size > 4 + LPM_DATA_SIZE_MAX
            || def.value_size < 1
            || def.value_size > LPM_VAL_SIZE_MAX
        {
            return Err(invalid(
                def,
                "LPM tries need BPF_F_NO_PREALLOC, key_size 5..=260, value_size > 0, max_entries > 0",
            ));
        }
        let data_size = def.key_size as usize - 4;
        let elem = round8(def.value_size as usize);
        let mut free = Vec::new();
        free.try_reserve_exact(def.max_entries as usize)
            .map_err(|_| MapError::NoSpace)?;
        free.extend((0..def.max_entries).rev());
        Ok(LpmTrie {
            def: def.clone(),
            max_prefixlen: 8 * data_size as u32,
            elem,
            store: Storage::array(def.max_entries as usize, elem)?,
            trie: RwLock::new(Trie {
                free,
                ..Default::default()
            }),
        })
    }

    fn split<'a>(&self, key: &'a [u8]) -> Option<(u32, &'a [u8])> {
        if key.len() != self.def.key_size as usize {
            return None;
        }
        let (len, data) = key.split_at(4);
        Some((u32::from_ne_bytes(len.try_into().ok()?), data))
    }

    /// trie_lookup_elem: the slot of the longest stored prefix matching
    /// the key's first `prefixlen` bits.
    fn longest_match(&self, t: &Trie, key: &[u8]) -> Option<u32> {
        let (len, data) = self.split(key)?;
        if len > self.max_prefixlen {
            return None;
        }
        let mut probe = Prefix {
            len: 0,
            bits: data.into(),
        };
        for (&l, _) in t.lens.range(..=len).rev() {
            probe.len = l;
            probe.bits.copy_from_slice(data);
            mask_in_place(&mut probe.bits, l);
            if let Some(&(s, _)) = t.entries.get(&probe) {
                return Some(s);
            }
        }
        None
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Trie> {
        self.trie.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Trie> {
        self.trie.write().unwrap_or_else(|e| e.into_inner())
    }

    fn do_update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        check_key(&self.def, key)?;
        check_value(&self.def, value, self.def.value_size as usize)?;
        check_update_flags(&self.def, flags)?;
        let (len, data) = self.split(key).ok_or_else(|| invalid(&self.def, "key"))?;
        if len > self.max_prefixlen {
            return Err(invalid(
                &self.def,
                format_args!("prefix length {len} > {}", self.max_prefixlen),
            ));
        }
        let p = Prefix {
            len,
            bits: masked(data, len),
        };
        let mut t = self.write();
        if let Some((slot, stored)) = t.entries.get_mut(&p) {
            if flags == BPF_NOEXIST {
                return Err(MapError::Exists);
            }
            stored.copy_from_slice(data);
            self.store.write(*slot as usize * self.elem, value);
            return Ok(());
        }
        // trie_check_add_elem: BPF_EXIST first, then the size limit.
        if flags == BPF_EXIST {
            return Err(MapError::NotFound);
        }
        let slot = t.free.pop().ok_or(MapError::NoSpaceLeft)?;
        self.store.write(slot as usize * self.elem, value);
        *t.lens.entry(len).or_insert(0) += 1;
        t.order.insert(p.clone());
        t.entries.insert(p, (slot, data.into()));
        Ok(())
    }

    fn do_delete(&self, key: &[u8]) -> Result<(), MapError> {
        check_key(&self.def, key)?;
        let (len, data) = self.split(key).ok_or_else(|| invalid(&self.def, "key"))?;
        if len > self.max_prefixlen {
            return Err(invalid(
                &self.def,
                format_args!("prefix length {len} > {}", self.max_prefixlen),
            ));
        }
        let p = Prefix {
            len,
            bits: masked(data, len),
        };
        let mut t = self.write();
        let (slot, _) = t.entries.remove(&p).ok_or(MapError::NotFound)?;
        t.order.remove(&p);
        if let Some(n) = t.lens.get_mut(&len) {
            *n -= 1;
            if *n == 0 {
                t.lens.remove(&len);
            }
        }
        t.free.push(slot);
        Ok(())
    }

    fn key_bytes(&self, t: &Trie, p: &Prefix) -> Vec<u8> {
        let mut k = p.len.to_ne_bytes().to_vec();
        match t.entries.get(p) {
            Some((_, data)) => k.extend_from_slice(data),
            None => k.extend_from_slice(&p.bits),
        }
        k
    }
}

impl BpfMap for LpmTrie {
    fn def(&self) -> &MapDef {
        &self.def
    }

    fn lookup(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        check_key(&self.def, key)?;
        let t = self.read();
        let s = self.longest_match(&t, key).ok_or(MapError::NotFound)?;
        Ok(self
            .store
            .read(s as usize * self.elem, self.def.value_size as usize))
    }

    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        self.do_update(key, value, flags)
    }

    fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        self.do_delete(key)
    }

    /// trie_get_next_key: a missing key, or one whose prefix length is past
    /// the maximum, restarts at the first element in postorder.
    fn get_next_key(&self, key: Option<&[u8]>) -> Result<Vec<u8>, MapError> {
        if let Some(k) = key {
            check_key(&self.def, k)?;
        }
        let t = self.read();
        let first = || {
            t.order
                .first()
                .map(|p| self.key_bytes(&t, p))
                .ok_or(MapError::NotFound)
        };
        let Some((len, data)) = key.and_then(|k| self.split(k)) else {
            return first();
        };
        if len > self.max_prefixlen {
            return first();
        }
        let p = Prefix {
            len,
            bits: masked(data, len),
        };
        if !t.entries.contains_key(&p) {
            return first();
        }
        t.order
            .range((std::ops::Bound::Excluded(&p), std::ops::Bound::Unbounded))
            .next()
            .map(|n| self.key_bytes(&t, n))
            .ok_or(MapError::NotFound)
    }

    fn lookup_and_delete(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        check_key(&self.def, key)?;
        Err(MapError::NotSupported)
    }

    fn prog_lookup(&self, key: &[u8], _cpu: u32) -> Option<u64> {
        let t = self.read();
        let s = self.longest_match(&t, key)?;
        Some(self.store.addr(s as usize * self.elem))
    }

    fn prog_update(&self, key: &[u8], value: &[u8], flags: u64, _cpu: u32) -> Result<(), MapError> {
        self.do_update(key, value, flags)
    }

    fn prog_delete(&self, key: &[u8]) -> Result<(), MapError> {
        self.do_delete(key)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(len: u32, b: &[u8]) -> Prefix {
        Prefix {
            len,
            bits: masked(b, len),
        }
    }

    #[test]
    fn postorder() {
        // The kernel's example: 192.168.0.0/24, 192.168.1.0/24,
        // 192.168.128.0/24, 192.168.0.0/16.
        let mut v = vec![
            p(16, &[192, 168, 0, 0]),
            p(24, &[192, 168, 128, 0]),
            p(24, &[192, 168, 1, 0]),
            p(24, &[192, 168, 0, 0]),
        ];
        v.sort();
        assert_eq!(
            v,
            vec![
                p(24, &[192, 168, 0, 0]),
                p(24, &[192, 168, 1, 0]),
                p(24, &[192, 168, 128, 0]),
                p(16, &[192, 168, 0, 0]),
            ]
        );
    }
}
