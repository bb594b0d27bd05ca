//! Comparing the state two engines end a run with: map contents and ring
//! buffer records, byte for byte.

use crate::object::{Entry, Error, Loaded, Map};

/// BPF_MAP_TYPE_* numbers this module treats specially.
const PROG_ARRAY: u32 = 3;
const PERF_EVENT_ARRAY: u32 = 4;
const ARRAY_OF_MAPS: u32 = 12;
const HASH_OF_MAPS: u32 = 13;
const SOCKMAP: u32 = 15;
const SOCKHASH: u32 = 18;
const QUEUE: u32 = 22;
const STACK: u32 = 23;
const RINGBUF: u32 = 27;

/// Whether a map type keeps one value per CPU.
pub use bpfkit_kernel::maps::is_percpu as is_per_cpu;

/// One way two engines' maps differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDifference {
    pub map: String,
    pub what: String,
}

impl std::fmt::Display for MapDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "map `{}`: {}", self.map, self.what)
    }
}

/// A map's contents in a form both engines agree on: entries sorted by key;
/// per-CPU values folded across CPUs (the two engines ran on different
/// CPUs): summed per 8-byte word when the value is made of words, else the
/// sorted list of non-zero slots.
pub fn contents(map: &Map) -> Result<Vec<Entry>, Error> {
    let mut entries = map.entries()?;
    if is_per_cpu(map.map_type()) {
        let size = map.value_size();
        let slot = size.div_ceil(8) * 8;
        for (_, v) in entries.iter_mut() {
            *v = fold_per_cpu(v, size, slot);
        }
    }
    Ok(entries)
}

fn fold_per_cpu(v: &[u8], size: usize, slot: usize) -> Vec<u8> {
    let slots = v.chunks(slot.max(1)).map(|s| &s[..size.min(s.len())]);
    if size.is_multiple_of(8) {
        let mut sum = vec![0u64; size / 8];
        for s in slots {
            for (acc, w) in sum.iter_mut().zip(s.chunks_exact(8)) {
                *acc = acc.wrapping_add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
            }
        }
        sum.iter().flat_map(|w| w.to_le_bytes()).collect()
    } else {
        let mut nonzero: Vec<&[u8]> = slots.filter(|s| s.iter().any(|b| *b != 0)).collect();
        nonzero.sort();
        nonzero.concat()
    }
}

/// Whether a map's contents can be listed by key and compared from user
/// space (program arrays, map-in-maps and socket maps hold engine-local ids
/// or sockets; ring buffers, queues and stacks are compared by draining them).
pub fn comparable(map_type: u32) -> bool {
    !matches!(
        map_type,
        PROG_ARRAY
            | PERF_EVENT_ARRAY
            | SOCKMAP
            | SOCKHASH
            | ARRAY_OF_MAPS
            | HASH_OF_MAPS
            | RINGBUF
            | QUEUE
            | STACK
    )
}

/// Pops every element of a queue or stack, in order.
fn drain(map: &Map) -> Result<Vec<Vec<u8>>, Error> {
    let mut out = Vec::new();
    while let Some(v) = map.pop()? {
        out.push(v);
        if out.len() > map.max_entries() as usize {
            break;
        }
    }
    Ok(out)
}

/// Every difference between the maps of `a` and `b` (the same object loaded
/// into two engines). Ring buffers, queues and stacks are drained and their
/// elements compared in order, so this consumes them.
pub fn maps(a: &mut Loaded, b: &mut Loaded) -> Result<Vec<MapDifference>, Error> {
    let mut diffs = Vec::new();
    let names = a.map_names();
    let other = b.map_names();
    if names != other {
        diffs.push(MapDifference {
            map: "*".into(),
            what: format!("the engines hold different maps: {names:?} and {other:?}"),
        });
    }
    for name in names.iter().filter(|n| other.contains(n)) {
        let (ma, mb) = (a.map(name)?, b.map(name)?);
        let t = ma.map_type();
        if t == RINGBUF {
            let (ra, rb) = (a.drain_ringbuf(name)?, b.drain_ringbuf(name)?);
            if ra != rb {
                diffs.push(MapDifference {
                    map: name.clone(),
                    what: describe_records(&ra, &rb, a.engine(), b.engine()),
                });
            }
            continue;
        }
        if matches!(t, QUEUE | STACK) {
            let (ra, rb) = (drain(&ma)?, drain(&mb)?);
            if ra != rb {
                diffs.push(MapDifference {
                    map: name.clone(),
                    what: describe_records(&ra, &rb, a.engine(), b.engine()),
                });
            }
            continue;
        }
        if !comparable(t) {
            continue;
        }
        let (ca, cb) = (contents(&ma)?, contents(&mb)?);
        if ca != cb {
            diffs.push(MapDifference {
                map: name.clone(),
                what: describe_entries(&ca, &cb, a.engine(), b.engine()),
            });
        }
    }
    Ok(diffs)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn describe_entries(a: &[Entry], b: &[Entry], ea: crate::Engine, eb: crate::Engine) -> String {
    let mut parts = Vec::new();
    for (k, v) in a {
        match b.iter().find(|(kb, _)| kb == k) {
            None => parts.push(format!("key {} only in {ea:?} (= {})", hex(k), hex(v))),
            Some((_, vb)) if vb != v => parts.push(format!(
                "key {}: {ea:?} {} vs {eb:?} {}",
                hex(k),
                hex(v),
                hex(vb)
            )),
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.iter().any(|(ka, _)| ka == k) {
            parts.push(format!("key {} only in {eb:?} (= {})", hex(k), hex(v)));
        }
    }
    parts.join("; ")
}

fn describe_records(a: &[Vec<u8>], b: &[Vec<u8>], ea: crate::Engine, eb: crate::Engine) -> String {
    if a.len() != b.len() {
        return format!("{ea:?} has {} records, {eb:?} {}", a.len(), b.len());
    }
    let i = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(0);
    format!("record {i}: {ea:?} {} vs {eb:?} {}", hex(&a[i]), hex(&b[i]))
}
