//! Host-side map semantics, kernel against VM: one table of map definitions
//! and operation sequences, each run on a map made with BPF_MAP_CREATE and
//! on a VM map, comparing every result and errno. Root only: skipped with a
//! reason otherwise, a failure under CI=true.
//!
//! What is compared only where the kernel is deterministic:
//! - hash iteration order depends on the kernel's random hash seed, so for
//!   HASH-like maps `next` compares success/errno only and `keys` compares
//!   the sorted key set (DEVMAP_HASH buckets by key value: compared exactly);
//! - which key an LRU map evicts depends on the CPU each update ran on and
//!   the kernel's per-CPU free lists, so LRU rows compare the key count after
//!   overfilling (max_entries 4 on 2 CPUs keeps the kernel's free target at
//!   one element, so it evicts exactly one per insertion) and the presence
//!   of the newest key, never which older key went.

mod common;
use common::available;

use bpfkit::kernel::maps as kmaps;
use bpfkit::vm::maps::{self as vmaps, types as t, BpfMap, MapDef, MapRegistry};
use std::fmt::Write as _;
use std::sync::Arc;

const ANY: u64 = 0;
const NOEXIST: u64 = 1;
const EXIST: u64 = 2;
const F_LOCK: u64 = 4;
const NO_PREALLOC: u32 = 1;
const NO_COMMON_LRU: u32 = 2;
const RDONLY_PROG: u32 = 1 << 7;
const WRONLY_PROG: u32 = 1 << 8;
const MMAPABLE: u32 = 1 << 10;

#[derive(Clone, Debug)]
enum Val {
    Bytes(Vec<u8>),
    /// The n-th inner map of the row (an fd for the kernel, an id for the VM).
    Inner(usize),
}

#[derive(Clone, Debug)]
enum Op {
    Update(Vec<u8>, Val, u64),
    Lookup(Vec<u8>),
    Delete(Vec<u8>),
    Next(Option<Vec<u8>>),
    LookupDelete(Vec<u8>),
    /// The number of keys get_next_key walks through.
    Count,
    /// The sorted key set.
    Keys,
}
use Op::*;

#[derive(Clone, Copy, Debug)]
struct Def {
    ty: u32,
    key: u32,
    value: u32,
    max: u32,
    flags: u32,
}

struct Row {
    name: &'static str,
    def: Def,
    /// Inner maps: [0] is the template of a map-in-map.
    inner: Vec<Def>,
    ops: Vec<Op>,
}

fn d(ty: u32, key: u32, value: u32, max: u32, flags: u32) -> Def {
    Def {
        ty,
        key,
        value,
        max,
        flags,
    }
}

fn row(name: &'static str, def: Def, ops: Vec<Op>) -> Row {
    Row {
        name,
        def,
        inner: Vec::new(),
        ops,
    }
}

fn k(i: u32) -> Vec<u8> {
    i.to_ne_bytes().to_vec()
}
fn v(x: u64) -> Val {
    Val::Bytes(x.to_ne_bytes().to_vec())
}
fn v4(x: u32) -> Val {
    Val::Bytes(x.to_ne_bytes().to_vec())
}
fn raw(b: &[u8]) -> Val {
    Val::Bytes(b.to_vec())
}
/// A per-CPU value: one 8-byte slot per possible CPU, all different.
fn pc(x: u64) -> Val {
    let n = vmaps::possible_cpus() as u64;
    Val::Bytes((0..n).flat_map(|c| (x * 100 + c).to_ne_bytes()).collect())
}
/// An LPM key with 4 data bytes.
fn lpm(len: u32, a: [u8; 4]) -> Vec<u8> {
    let mut key = len.to_ne_bytes().to_vec();
    key.extend_from_slice(&a);
    key
}
fn e() -> Vec<u8> {
    Vec::new()
}

fn table() -> Vec<Row> {
    let mut rows = vec![
        // ---- ARRAY -----------------------------------------------------
        row(
            "array",
            d(t::ARRAY, 4, 8, 4, 0),
            vec![
                Lookup(k(0)),
                Update(k(0), v(1), ANY),
                Lookup(k(0)),
                Update(k(3), v(3), EXIST),
                Lookup(k(3)),
                Update(k(4), v(4), ANY),
                Update(k(u32::MAX), v(4), ANY),
                Update(k(1), v(5), NOEXIST),
                Update(k(1), v(5), 3),
                Update(k(1), v(5), F_LOCK),
                Update(k(4), v(5), 3),
                Lookup(k(4)),
                Lookup(k(u32::MAX)),
                Delete(k(0)),
                Delete(k(9)),
                Next(None),
                Next(Some(k(0))),
                Next(Some(k(2))),
                Next(Some(k(3))),
                Next(Some(k(4))),
                Next(Some(k(100))),
                LookupDelete(k(0)),
                LookupDelete(k(7)),
                Keys,
                Count,
            ],
        ),
        row(
            "array mmapable",
            d(t::ARRAY, 4, 4, 1, MMAPABLE),
            vec![Update(k(0), v4(7), ANY), Lookup(k(0)), Next(Some(k(0)))],
        ),
        row("array key 8", d(t::ARRAY, 8, 8, 4, 0), vec![]),
        row("array value 0", d(t::ARRAY, 4, 0, 4, 0), vec![]),
        row("array max 0", d(t::ARRAY, 4, 8, 0, 0), vec![]),
        row(
            "array no_prealloc",
            d(t::ARRAY, 4, 8, 4, NO_PREALLOC),
            vec![],
        ),
        row(
            "array rdonly+wronly prog",
            d(t::ARRAY, 4, 8, 4, RDONLY_PROG | WRONLY_PROG),
            vec![],
        ),
        // ---- PERCPU_ARRAY ----------------------------------------------
        row(
            "percpu array",
            d(t::PERCPU_ARRAY, 4, 4, 2, 0),
            vec![
                Lookup(k(0)),
                Update(k(0), pc(7), ANY),
                Lookup(k(0)),
                Update(k(1), pc(8), EXIST),
                Lookup(k(1)),
                Update(k(1), pc(9), NOEXIST),
                Update(k(2), pc(9), ANY),
                Update(k(0), pc(9), 3),
                Lookup(k(2)),
                Delete(k(0)),
                Next(None),
                Next(Some(k(1))),
                LookupDelete(k(0)),
            ],
        ),
        row(
            "percpu array mmapable",
            d(t::PERCPU_ARRAY, 4, 8, 2, MMAPABLE),
            vec![],
        ),
        // ---- HASH ------------------------------------------------------
        row(
            "hash",
            d(t::HASH, 4, 8, 3, 0),
            vec![
                Lookup(k(1)),
                Delete(k(1)),
                Next(None),
                Next(Some(k(1))),
                LookupDelete(k(1)),
                Update(k(1), v(10), ANY),
                Next(None),
                Next(Some(k(1))),
                Next(Some(k(42))),
                Update(k(1), v(11), NOEXIST),
                Lookup(k(1)),
                Update(k(2), v(20), EXIST),
                Update(k(2), v(20), NOEXIST),
                Update(k(3), v(30), ANY),
                Update(k(4), v(40), ANY),
                Update(k(4), v(40), NOEXIST),
                Update(k(4), v(40), EXIST),
                Update(k(1), v(12), EXIST),
                Update(k(2), v(21), ANY),
                Update(k(5), v(50), 3),
                Update(k(5), v(50), F_LOCK),
                Lookup(k(1)),
                Lookup(k(2)),
                Lookup(k(4)),
                Count,
                Keys,
                Next(Some(k(99))),
                Delete(k(2)),
                Delete(k(2)),
                Update(k(4), v(40), NOEXIST),
                Keys,
                LookupDelete(k(1)),
                LookupDelete(k(1)),
                Lookup(k(1)),
                Count,
            ],
        ),
        row(
            "hash no_prealloc",
            d(t::HASH, 8, 4, 2, NO_PREALLOC),
            vec![
                Update(7u64.to_ne_bytes().to_vec(), v4(1), ANY),
                Update(8u64.to_ne_bytes().to_vec(), v4(2), ANY),
                Update(9u64.to_ne_bytes().to_vec(), v4(3), ANY),
                Update(8u64.to_ne_bytes().to_vec(), v4(4), ANY),
                Lookup(8u64.to_ne_bytes().to_vec()),
                Delete(7u64.to_ne_bytes().to_vec()),
                Update(9u64.to_ne_bytes().to_vec(), v4(3), ANY),
                Keys,
            ],
        ),
        row("hash key 0", d(t::HASH, 0, 8, 4, 0), vec![]),
        row("hash value 0", d(t::HASH, 4, 0, 4, 0), vec![]),
        row("hash max 0", d(t::HASH, 4, 8, 0, 0), vec![]),
        row(
            "hash no_common_lru",
            d(t::HASH, 4, 8, 4, NO_COMMON_LRU),
            vec![],
        ),
        row("hash unknown flag", d(t::HASH, 4, 8, 4, 1 << 20), vec![]),
        row("hash mmapable", d(t::HASH, 4, 8, 4, MMAPABLE), vec![]),
        // ---- PERCPU_HASH -----------------------------------------------
        row(
            "percpu hash",
            d(t::PERCPU_HASH, 4, 8, 2, 0),
            vec![
                Lookup(k(1)),
                Update(k(1), pc(1), ANY),
                Lookup(k(1)),
                Update(k(1), pc(2), NOEXIST),
                Update(k(1), pc(3), EXIST),
                Lookup(k(1)),
                Update(k(2), pc(4), ANY),
                Update(k(3), pc(5), ANY),
                Update(k(3), pc(5), EXIST),
                Count,
                Keys,
                LookupDelete(k(1)),
                LookupDelete(k(1)),
                Delete(k(2)),
                Delete(k(2)),
                Next(None),
            ],
        ),
        // ---- LRU_HASH --------------------------------------------------
        row(
            "lru hash",
            d(t::LRU_HASH, 4, 8, 4, 0),
            vec![
                Update(k(1), v(1), ANY),
                Update(k(2), v(2), ANY),
                Update(k(3), v(3), NOEXIST),
                Update(k(3), v(3), NOEXIST),
                Update(k(9), v(9), EXIST),
                Update(k(4), v(4), ANY),
                Lookup(k(1)),
                Lookup(k(4)),
                Count,
                Keys,
                Update(k(5), v(5), ANY),
                Count,
                Lookup(k(5)),
                Update(k(6), v(6), ANY),
                Count,
                Lookup(k(6)),
                Update(k(6), v(7), EXIST),
                Lookup(k(6)),
                Update(k(7), v(7), 3),
                Delete(k(6)),
                Delete(k(6)),
                LookupDelete(k(6)),
                Count,
                // On a full LRU map even refused updates take (evict) an
                // element first.
                Update(k(10), v(10), ANY),
                Update(k(11), v(11), ANY),
                Count,
                Update(k(11), v(12), NOEXIST),
                Count,
                Update(k(12), v(12), ANY),
                Count,
                Update(k(13), v(13), EXIST),
                Count,
                Lookup(k(12)),
            ],
        ),
        row(
            "lru hash no_prealloc",
            d(t::LRU_HASH, 4, 8, 4, NO_PREALLOC),
            vec![],
        ),
        row(
            "lru percpu lru",
            d(t::LRU_HASH, 4, 8, 4, NO_COMMON_LRU),
            vec![
                Update(k(1), v(1), ANY),
                Lookup(k(1)),
                Delete(k(1)),
                Lookup(k(1)),
            ],
        ),
        // ---- LRU_PERCPU_HASH -------------------------------------------
        row(
            "lru percpu hash",
            d(t::LRU_PERCPU_HASH, 4, 8, 4, 0),
            vec![
                Update(k(1), pc(1), ANY),
                Lookup(k(1)),
                Update(k(1), pc(2), NOEXIST),
                Update(k(2), pc(2), EXIST),
                Update(k(2), pc(2), ANY),
                Update(k(3), pc(3), ANY),
                Update(k(4), pc(4), ANY),
                Update(k(5), pc(5), ANY),
                Count,
                Lookup(k(5)),
                // BPF_EXIST updates of the per-CPU LRU map take no element.
                Update(k(5), pc(6), EXIST),
                Count,
                Update(k(5), pc(7), ANY),
                Count,
                Update(k(6), pc(6), ANY),
                Update(k(6), pc(8), EXIST),
                Count,
                Lookup(k(6)),
                LookupDelete(k(6)),
                LookupDelete(k(6)),
                Count,
            ],
        ),
        // ---- LPM_TRIE --------------------------------------------------
        row(
            "lpm trie",
            d(t::LPM_TRIE, 8, 8, 4, NO_PREALLOC),
            vec![
                Next(None),
                Lookup(lpm(32, [10, 0, 0, 1])),
                Delete(lpm(8, [10, 0, 0, 0])),
                Update(lpm(8, [10, 0, 0, 0]), v(8), ANY),
                Update(lpm(16, [10, 1, 0, 0]), v(16), NOEXIST),
                Update(lpm(24, [10, 1, 2, 0]), v(24), ANY),
                Update(lpm(24, [10, 1, 3, 0]), v(243), EXIST),
                Update(lpm(24, [10, 1, 3, 0]), v(243), ANY),
                Update(lpm(24, [10, 1, 4, 0]), v(244), ANY),
                Update(lpm(24, [10, 1, 3, 0]), v(2433), EXIST),
                Update(lpm(24, [10, 1, 3, 0]), v(2433), NOEXIST),
                Update(lpm(24, [10, 1, 4, 0]), v(244), EXIST),
                Update(lpm(33, [10, 1, 4, 0]), v(244), ANY),
                Update(lpm(8, [10, 0, 0, 0]), v(8), 3),
                Lookup(lpm(32, [10, 1, 2, 5])),
                Lookup(lpm(32, [10, 1, 3, 5])),
                Lookup(lpm(32, [10, 1, 9, 9])),
                Lookup(lpm(32, [10, 9, 9, 9])),
                Lookup(lpm(32, [11, 0, 0, 0])),
                Lookup(lpm(12, [10, 1, 2, 3])),
                Lookup(lpm(0, [10, 1, 2, 3])),
                Lookup(lpm(33, [10, 1, 2, 3])),
                Next(None),
                Next(Some(lpm(24, [10, 1, 2, 0]))),
                Next(Some(lpm(24, [10, 1, 3, 0]))),
                Next(Some(lpm(16, [10, 1, 0, 0]))),
                Next(Some(lpm(8, [10, 0, 0, 0]))),
                Next(Some(lpm(24, [10, 1, 2, 77]))),
                Next(Some(lpm(20, [10, 1, 0, 0]))),
                Next(Some(lpm(40, [10, 1, 0, 0]))),
                Keys,
                // Bits past the prefix are kept as the last update gave them.
                Update(lpm(8, [10, 7, 7, 7]), v(88), EXIST),
                Lookup(lpm(32, [10, 200, 0, 0])),
                Next(Some(lpm(16, [10, 1, 0, 0]))),
                Delete(lpm(16, [10, 1, 0, 0])),
                Delete(lpm(16, [10, 1, 0, 0])),
                Delete(lpm(33, [10, 1, 0, 0])),
                Lookup(lpm(32, [10, 1, 9, 9])),
                LookupDelete(lpm(8, [10, 0, 0, 0])),
                Update(lpm(0, [0, 0, 0, 0]), v(0), ANY),
                Lookup(lpm(32, [1, 2, 3, 4])),
                Keys,
                Count,
            ],
        ),
        row("lpm trie prealloc", d(t::LPM_TRIE, 8, 8, 4, 0), vec![]),
        row(
            "lpm trie key 4",
            d(t::LPM_TRIE, 4, 8, 4, NO_PREALLOC),
            vec![],
        ),
        row(
            "lpm trie key 261",
            d(t::LPM_TRIE, 261, 8, 4, NO_PREALLOC),
            vec![],
        ),
        row(
            "lpm trie value 0",
            d(t::LPM_TRIE, 8, 0, 4, NO_PREALLOC),
            vec![],
        ),
        // ---- QUEUE / STACK ---------------------------------------------
        row(
            "queue",
            d(t::QUEUE, 0, 4, 3, 0),
            vec![
                LookupDelete(e()),
                Lookup(e()),
                Update(e(), v4(1), ANY),
                Lookup(e()),
                Update(e(), v4(2), ANY),
                Update(e(), v4(3), ANY),
                Update(e(), v4(4), ANY),
                Update(e(), v4(5), EXIST),
                Update(e(), v4(6), NOEXIST),
                Update(e(), v4(6), F_LOCK),
                Update(e(), v4(6), 3),
                Lookup(e()),
                LookupDelete(e()),
                LookupDelete(e()),
                LookupDelete(e()),
                LookupDelete(e()),
                Delete(e()),
                Next(None),
            ],
        ),
        row(
            "stack",
            d(t::STACK, 0, 4, 3, 0),
            vec![
                LookupDelete(e()),
                Update(e(), v4(1), ANY),
                Update(e(), v4(2), ANY),
                Lookup(e()),
                Update(e(), v4(3), ANY),
                Update(e(), v4(4), ANY),
                Update(e(), v4(5), EXIST),
                Update(e(), v4(6), NOEXIST),
                LookupDelete(e()),
                LookupDelete(e()),
                LookupDelete(e()),
                LookupDelete(e()),
                Delete(e()),
                Next(None),
            ],
        ),
        row("queue key 4", d(t::QUEUE, 4, 4, 3, 0), vec![]),
        row("stack value 0", d(t::STACK, 0, 0, 3, 0), vec![]),
        row(
            "queue no_prealloc",
            d(t::QUEUE, 0, 4, 3, NO_PREALLOC),
            vec![],
        ),
        // ---- RINGBUF ---------------------------------------------------
        row(
            "ringbuf",
            d(t::RINGBUF, 0, 0, 4096, 0),
            vec![
                Lookup(e()),
                Update(e(), raw(&[]), ANY),
                Delete(e()),
                Next(None),
                LookupDelete(e()),
            ],
        ),
        row("ringbuf not pow2", d(t::RINGBUF, 0, 0, 3 * 4096, 0), vec![]),
        row("ringbuf not page", d(t::RINGBUF, 0, 0, 2048, 0), vec![]),
        row("ringbuf key", d(t::RINGBUF, 4, 0, 4096, 0), vec![]),
        // ---- PROG_ARRAY (no program: empty-slot semantics) --------------
        row(
            "prog array",
            d(t::PROG_ARRAY, 4, 4, 4, 0),
            vec![
                Lookup(k(0)),
                Lookup(k(9)),
                Update(k(0), v4(0), NOEXIST),
                Update(k(0), v4(0), EXIST),
                Update(k(5), v4(0), ANY),
                Delete(k(0)),
                Delete(k(5)),
                Next(None),
                Next(Some(k(3))),
                Next(Some(k(8))),
                LookupDelete(k(0)),
            ],
        ),
        row("prog array value 8", d(t::PROG_ARRAY, 4, 8, 4, 0), vec![]),
        row(
            "prog array rdonly_prog",
            d(t::PROG_ARRAY, 4, 4, 4, RDONLY_PROG),
            vec![],
        ),
        // ---- DEVMAP / DEVMAP_HASH (ifindex 1 is lo) ---------------------
        row(
            "devmap",
            d(t::DEVMAP, 4, 4, 2, 0),
            vec![
                Lookup(k(0)),
                Update(k(0), v4(1), ANY),
                Lookup(k(0)),
                Update(k(0), v4(1), NOEXIST),
                Update(k(0), v4(1), EXIST),
                Update(k(2), v4(1), ANY),
                Update(k(1), v4(999_999), ANY),
                Update(k(1), v4(1), 3),
                Update(k(1), v4(0), ANY),
                Lookup(k(1)),
                Delete(k(1)),
                Delete(k(0)),
                Lookup(k(0)),
                Delete(k(2)),
                Next(None),
                Next(Some(k(1))),
                LookupDelete(k(0)),
            ],
        ),
        row(
            "devmap val",
            d(t::DEVMAP, 4, 8, 2, 0),
            vec![
                Update(k(0), raw(&[1, 0, 0, 0, 0, 0, 0, 0]), ANY),
                Lookup(k(0)),
                Update(k(1), raw(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]), ANY),
                Lookup(k(1)),
                Update(k(1), raw(&[0, 0, 0, 0, 5, 0, 0, 0]), ANY),
            ],
        ),
        row("devmap value 6", d(t::DEVMAP, 4, 6, 2, 0), vec![]),
        row(
            "devmap hash",
            d(t::DEVMAP_HASH, 4, 4, 3, 0),
            vec![
                Next(None),
                Update(k(5), v4(1), ANY),
                Update(k(9), v4(1), ANY),
                Update(k(1), v4(1), NOEXIST),
                Update(k(13), v4(1), ANY),
                Update(k(5), v4(1), NOEXIST),
                Update(k(0), v4(0), ANY),
                Update(k(0), v4(999_999), ANY),
                Update(k(0), v4(1), 3),
                Lookup(k(5)),
                Lookup(k(6)),
                Next(None),
                Next(Some(k(1))),
                Next(Some(k(5))),
                Next(Some(k(9))),
                Next(Some(k(6))),
                Update(k(5), v4(1), ANY),
                Next(Some(k(1))),
                Next(Some(k(5))),
                Delete(k(9)),
                Delete(k(9)),
                Update(k(7), v4(1), EXIST),
                Keys,
                LookupDelete(k(5)),
            ],
        ),
    ];
    rows.push(Row {
        name: "array of maps",
        def: d(t::ARRAY_OF_MAPS, 4, 4, 2, 0),
        inner: vec![
            d(t::ARRAY, 4, 8, 1, 0),
            d(t::ARRAY, 4, 4, 1, 0),
            d(t::ARRAY, 4, 8, 2, 0),
        ],
        ops: vec![
            Lookup(k(0)),
            Update(k(0), Val::Inner(0), ANY),
            Lookup(k(0)),
            Update(k(1), Val::Inner(1), ANY),
            Update(k(1), Val::Inner(2), ANY),
            Update(k(1), Val::Inner(0), NOEXIST),
            Update(k(2), Val::Inner(0), ANY),
            Update(k(1), Val::Inner(99), ANY),
            Next(None),
            Next(Some(k(1))),
            Delete(k(0)),
            Delete(k(0)),
            Delete(k(2)),
            Lookup(k(0)),
            LookupDelete(k(0)),
        ],
    });
    rows.push(Row {
        name: "hash of maps",
        def: d(t::HASH_OF_MAPS, 4, 4, 2, 0),
        inner: vec![
            d(t::HASH, 4, 4, 8, 0),
            d(t::HASH, 4, 4, 16, 0),
            d(t::HASH, 4, 8, 8, 0),
        ],
        ops: vec![
            Lookup(k(0)),
            Update(k(0), Val::Inner(0), ANY),
            Lookup(k(0)),
            Update(k(0), Val::Inner(1), NOEXIST),
            Update(k(0), Val::Inner(1), EXIST),
            Lookup(k(0)),
            Update(k(1), Val::Inner(2), ANY),
            Update(k(1), Val::Inner(99), ANY),
            Update(k(1), Val::Inner(0), EXIST),
            Update(k(1), Val::Inner(0), ANY),
            Update(k(2), Val::Inner(0), ANY),
            Count,
            Keys,
            Delete(k(0)),
            Delete(k(0)),
            LookupDelete(k(1)),
        ],
    });
    rows.push(Row {
        name: "array of maps inner_map",
        def: d(t::ARRAY_OF_MAPS, 4, 4, 1, 0),
        inner: vec![d(t::ARRAY, 4, 8, 1, 1 << 12), d(t::ARRAY, 4, 8, 5, 1 << 12)],
        ops: vec![Update(k(0), Val::Inner(1), ANY), Lookup(k(0))],
    });
    rows
}

type Res = Result<Vec<u8>, i32>;

/// One engine's map for a row.
trait Engine {
    fn update(&self, key: &[u8], value: &Val, flags: u64) -> Res;
    fn lookup(&self, key: &[u8]) -> Res;
    fn delete(&self, key: &[u8]) -> Res;
    fn next(&self, key: Option<&[u8]>) -> Res;
    fn lookup_delete(&self, key: &[u8]) -> Res;
    /// The row's inner-map index of a map id, for printing lookups.
    fn inner_index(&self, id: u32) -> Option<usize>;
}

struct Kernel {
    map: kmaps::KernelMap,
    inner: Vec<kmaps::KernelMap>,
}

impl Engine for Kernel {
    fn update(&self, key: &[u8], value: &Val, flags: u64) -> Res {
        let bytes = match value {
            Val::Bytes(b) => b.clone(),
            Val::Inner(i) => (self.inner.get(*i).map_or(9999, |m| m.raw_fd()) as u32)
                .to_ne_bytes()
                .to_vec(),
        };
        self.map
            .update_errno(key, &bytes, flags)
            .map(|_| Vec::new())
    }
    fn lookup(&self, key: &[u8]) -> Res {
        self.map.lookup_errno(key)
    }
    fn delete(&self, key: &[u8]) -> Res {
        self.map.delete_errno(key).map(|_| Vec::new())
    }
    fn next(&self, key: Option<&[u8]>) -> Res {
        self.map.get_next_key(key)
    }
    fn lookup_delete(&self, key: &[u8]) -> Res {
        self.map.lookup_and_delete(key)
    }
    fn inner_index(&self, id: u32) -> Option<usize> {
        self.inner.iter().position(|m| m.id == id)
    }
}

struct Vm {
    map: Arc<dyn BpfMap>,
    inner: Vec<u32>,
}

fn vm_err(e: vmaps::MapError) -> i32 {
    e.errno()
}

impl Engine for Vm {
    fn update(&self, key: &[u8], value: &Val, flags: u64) -> Res {
        let bytes = match value {
            Val::Bytes(b) => b.clone(),
            Val::Inner(i) => self
                .inner
                .get(*i)
                .copied()
                .unwrap_or(9999)
                .to_ne_bytes()
                .to_vec(),
        };
        self.map
            .update(key, &bytes, flags)
            .map(|_| Vec::new())
            .map_err(vm_err)
    }
    fn lookup(&self, key: &[u8]) -> Res {
        self.map.lookup(key).map_err(vm_err)
    }
    fn delete(&self, key: &[u8]) -> Res {
        self.map.delete(key).map(|_| Vec::new()).map_err(vm_err)
    }
    fn next(&self, key: Option<&[u8]>) -> Res {
        self.map.get_next_key(key).map_err(vm_err)
    }
    fn lookup_delete(&self, key: &[u8]) -> Res {
        self.map.lookup_and_delete(key).map_err(vm_err)
    }
    fn inner_index(&self, id: u32) -> Option<usize> {
        self.inner.iter().position(|&m| m == id)
    }
}

fn all_keys(en: &dyn Engine, max: u32) -> Result<Vec<Vec<u8>>, i32> {
    let mut keys = Vec::new();
    let mut prev: Option<Vec<u8>> = None;
    loop {
        match en.next(prev.as_deref()) {
            Ok(k) => {
                keys.push(k.clone());
                prev = Some(k);
            }
            Err(2) => return Ok(keys),
            Err(e) => return Err(e),
        }
        if keys.len() > max as usize + 4 {
            return Ok(keys);
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn show(r: &Res) -> String {
    match r {
        Ok(b) if b.is_empty() => "ok".into(),
        Ok(b) => format!("ok {}", hex(b)),
        Err(e) => format!("errno {e}"),
    }
}

/// The comparable form of an op's result in one engine.
fn run_op(en: &dyn Engine, def: &Def, op: &Op) -> String {
    let hashed = matches!(
        def.ty,
        t::HASH | t::PERCPU_HASH | t::LRU_HASH | t::LRU_PERCPU_HASH | t::HASH_OF_MAPS
    );
    let mim = matches!(def.ty, t::ARRAY_OF_MAPS | t::HASH_OF_MAPS);
    match op {
        Update(k, val, f) => show(&en.update(k, val, *f)),
        Lookup(k) => {
            let r = en.lookup(k);
            match (&r, mim) {
                (Ok(b), true) if b.len() == 4 => {
                    let id = u32::from_ne_bytes(b[..4].try_into().unwrap());
                    format!("ok inner#{:?}", en.inner_index(id))
                }
                _ => show(&r),
            }
        }
        Delete(k) => show(&en.delete(k)),
        Next(k) => {
            let r = en.next(k.as_deref());
            match (&r, hashed) {
                (Ok(_), true) => "ok (some key)".into(),
                _ => show(&r),
            }
        }
        LookupDelete(k) => show(&en.lookup_delete(k)),
        Count => match all_keys(en, def.max) {
            Ok(k) => format!("{} keys", k.len()),
            Err(e) => format!("errno {e}"),
        },
        Keys => match all_keys(en, def.max) {
            Ok(mut k) => {
                if hashed {
                    k.sort();
                }
                k.iter().map(|k| hex(k)).collect::<Vec<_>>().join(",")
            }
            Err(e) => format!("errno {e}"),
        },
    }
}

fn vm_def(name: &str, d: &Def, inner: Option<&Def>) -> MapDef {
    MapDef {
        name: name.to_string(),
        map_type: d.ty,
        key_size: d.key,
        value_size: d.value,
        max_entries: d.max,
        flags: d.flags,
        inner: inner.map(|i| Box::new(vm_def("inner", i, None))),
    }
}

fn kernel_errno(e: &kmaps::MapError) -> i32 {
    match e {
        kmaps::MapError::Syscall { source, .. } => source.raw_os_error().unwrap_or(-1),
        _ => -1,
    }
}

#[test]
fn kernel_and_vm_maps_agree() {
    if !available() {
        return;
    }
    let mut report = String::new();
    let (mut ops, mut rows_n, mut mismatches) = (0, 0, 0);
    for row in table() {
        rows_n += 1;
        // Creation.
        let kinner: Vec<_> = row
            .inner
            .iter()
            .map(|i| kmaps::create("inner", i.ty, i.key, i.value, i.max, i.flags).unwrap())
            .collect();
        let kmap = kmaps::create_with_inner(
            "semantics",
            row.def.ty,
            row.def.key,
            row.def.value,
            row.def.max,
            row.def.flags,
            kinner.first(),
        );
        let reg = MapRegistry::new();
        let vinner: Vec<u32> = row
            .inner
            .iter()
            .map(|i| reg.create(&vm_def("inner", i, None)).unwrap())
            .collect();
        let vmap = vmaps::create(&vm_def("semantics", &row.def, row.inner.first()), &reg);
        let (kmap, vmap) = match (kmap, vmap) {
            (Ok(k), Ok(v)) => (k, v),
            (k, v) => {
                ops += 1;
                let ks = k.map_or_else(|e| format!("errno {}", kernel_errno(&e)), |_| "ok".into());
                let vs = v.map_or_else(|e| format!("errno {}", e.errno()), |_| "ok".into());
                if ks != vs {
                    mismatches += 1;
                    writeln!(
                        report,
                        "{:<24} | create {:?} | kernel: {ks} | vm: {vs}",
                        row.name, row.def
                    )
                    .unwrap();
                }
                continue;
            }
        };
        let kernel = Kernel {
            map: kmap,
            inner: kinner,
        };
        let vm = Vm {
            map: vmap,
            inner: vinner,
        };
        let mut lines = Vec::new();
        let mut bad = false;
        for op in &row.ops {
            ops += 1;
            let kr = run_op(&kernel, &row.def, op);
            let vr = run_op(&vm, &row.def, op);
            let ok = kr == vr;
            bad |= !ok;
            mismatches += usize::from(!ok);
            lines.push(format!(
                "{:<24} | {:<44} | kernel: {:<28} | vm: {:<28} {}",
                row.name,
                format!("{op:?}"),
                kr,
                vr,
                if ok { "" } else { "<-- MISMATCH" }
            ));
        }
        if bad {
            for l in lines {
                writeln!(report, "{l}").unwrap();
            }
        }
    }
    eprintln!("map semantics: {rows_n} rows, {ops} ops compared, {mismatches} mismatches");
    assert!(ops >= 150, "only {ops} ops");
    assert!(mismatches == 0, "kernel and VM maps differ:\n{report}");
}
