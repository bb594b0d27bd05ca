//! The VM's maps, type by type: what succeeds, and the errno of what fails.

use bpfkit_vm::maps::{
    self, create_flags as cf, possible_cpus, types as t, BpfMap, MapDef, MapError, MapRegistry,
    ProgArray, RingBuf, BPF_ANY, BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST,
};
use std::sync::Arc;

const ENOENT: i32 = 2;
const EEXIST: i32 = 17;
const E2BIG: i32 = 7;
const EINVAL: i32 = 22;
const ENOTSUPP: i32 = 524;
const ENOSPC: i32 = 28;
const EAGAIN: i32 = 11;
const EBADF: i32 = 9;

fn def(map_type: u32, key_size: u32, value_size: u32, max_entries: u32, flags: u32) -> MapDef {
    MapDef {
        name: "m".into(),
        map_type,
        key_size,
        value_size,
        max_entries,
        flags,
        inner: None,
    }
}

fn mk(d: MapDef) -> Arc<dyn BpfMap> {
    maps::create(&d, &MapRegistry::new()).unwrap()
}

fn create_errno(d: MapDef) -> i32 {
    maps::create(&d, &MapRegistry::new()).unwrap_err().errno()
}

fn k(i: u32) -> [u8; 4] {
    i.to_ne_bytes()
}

fn v8(x: u64) -> [u8; 8] {
    x.to_ne_bytes()
}

fn errno<T: std::fmt::Debug>(r: Result<T, MapError>) -> i32 {
    r.unwrap_err().errno()
}

/// Reads the 8 bytes at a value address a program got.
fn read_u64(addr: u64) -> u64 {
    // SAFETY: addresses come from prog_lookup on a live map.
    unsafe { std::ptr::read_unaligned(addr as *const u64) }
}

fn keys(m: &dyn BpfMap) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut prev: Option<Vec<u8>> = None;
    while let Ok(n) = m.get_next_key(prev.as_deref()) {
        out.push(n.clone());
        prev = Some(n);
        assert!(out.len() < 10_000);
    }
    out
}

// ---- creation ---------------------------------------------------------

#[test]
fn unsupported_types_name_the_type() {
    // CPUMAP (16). The instance loading an object adds the map's name.
    let e = maps::create(&def(16, 4, 4, 4, 0), &MapRegistry::new()).unwrap_err();
    assert_eq!(e, MapError::UnsupportedType(16));
    assert_eq!(e.errno(), EINVAL);
    assert_eq!(e.to_string(), "map type 16 is not supported by the VM");
    assert_eq!(create_errno(def(9999, 4, 4, 4, 0)), EINVAL);
}

#[test]
fn create_checks_like_the_kernel() {
    // Arrays.
    assert_eq!(create_errno(def(t::ARRAY, 8, 8, 4, 0)), EINVAL);
    assert_eq!(create_errno(def(t::ARRAY, 4, 0, 4, 0)), EINVAL);
    assert_eq!(create_errno(def(t::ARRAY, 4, 8, 0, 0)), EINVAL);
    assert_eq!(
        create_errno(def(t::ARRAY, 4, 8, 4, cf::NO_PREALLOC)),
        EINVAL
    );
    assert_eq!(
        create_errno(def(t::PERCPU_ARRAY, 4, 8, 4, cf::MMAPABLE)),
        EINVAL
    );
    assert_eq!(create_errno(def(t::PERCPU_ARRAY, 4, 40_000, 4, 0)), E2BIG);
    assert_eq!(
        create_errno(def(t::ARRAY, 4, 8, 4, cf::RDONLY_PROG | cf::WRONLY_PROG)),
        EINVAL
    );
    assert_eq!(
        create_errno(def(t::ARRAY, 4, 8, 4, cf::RDONLY | cf::WRONLY)),
        EINVAL
    );
    // Hashes.
    assert_eq!(create_errno(def(t::HASH, 0, 8, 4, 0)), EINVAL);
    assert_eq!(create_errno(def(t::HASH, 4, 0, 4, 0)), EINVAL);
    assert_eq!(create_errno(def(t::HASH, 4, 8, 0, 0)), EINVAL);
    assert_eq!(
        create_errno(def(t::HASH, 4, 8, 4, cf::NO_COMMON_LRU)),
        EINVAL
    );
    assert_eq!(create_errno(def(t::HASH, 4, 8, 4, 1 << 20)), EINVAL);
    assert_eq!(
        create_errno(def(t::LRU_HASH, 4, 8, 4, cf::NO_PREALLOC)),
        ENOTSUPP
    );
    assert_eq!(
        create_errno(def(t::PERCPU_HASH, 4, 8, 4, cf::NUMA_NODE)),
        EINVAL
    );
    assert_eq!(create_errno(def(t::HASH, 4, 5 << 20, 4, 0)), E2BIG);
    // LPM tries.
    assert_eq!(create_errno(def(t::LPM_TRIE, 8, 8, 4, 0)), EINVAL);
    assert_eq!(
        create_errno(def(t::LPM_TRIE, 4, 8, 4, cf::NO_PREALLOC)),
        EINVAL
    );
    assert_eq!(
        create_errno(def(t::LPM_TRIE, 261, 8, 4, cf::NO_PREALLOC)),
        EINVAL
    );
    assert_eq!(
        create_errno(def(t::LPM_TRIE, 8, 0, 4, cf::NO_PREALLOC)),
        EINVAL
    );
    // Queues, stacks, ring buffers, fd arrays, devmaps.
    assert_eq!(create_errno(def(t::QUEUE, 4, 4, 4, 0)), EINVAL);
    assert_eq!(create_errno(def(t::STACK, 0, 0, 4, 0)), EINVAL);
    assert_eq!(create_errno(def(t::RINGBUF, 0, 0, 3 * 4096, 0)), EINVAL);
    assert_eq!(create_errno(def(t::RINGBUF, 0, 0, 2048, 0)), EINVAL);
    assert_eq!(create_errno(def(t::RINGBUF, 4, 0, 4096, 0)), EINVAL);
    assert_eq!(create_errno(def(t::PROG_ARRAY, 4, 8, 4, 0)), EINVAL);
    assert_eq!(
        create_errno(def(t::PROG_ARRAY, 4, 4, 4, cf::RDONLY_PROG)),
        EINVAL
    );
    assert_eq!(create_errno(def(t::DEVMAP, 4, 6, 4, 0)), EINVAL);
    assert_eq!(create_errno(def(t::ARRAY_OF_MAPS, 4, 4, 4, 0)), EINVAL);
    // A map too large to allocate is ENOMEM, not an abort.
    assert_eq!(create_errno(def(t::ARRAY, 4, 1 << 30, u32::MAX, 0)), 12);
}

// ---- ARRAY ------------------------------------------------------------

#[test]
fn array_semantics() {
    let m = mk(def(t::ARRAY, 4, 8, 4, 0));
    assert_eq!(m.lookup(&k(0)).unwrap(), v8(0));
    m.update(&k(0), &v8(1), BPF_ANY).unwrap();
    m.update(&k(3), &v8(3), BPF_EXIST).unwrap();
    assert_eq!(m.lookup(&k(0)).unwrap(), v8(1));
    assert_eq!(m.lookup(&k(3)).unwrap(), v8(3));
    assert_eq!(m.get_next_key(None).unwrap(), k(0));
    assert_eq!(m.get_next_key(Some(&k(1))).unwrap(), k(2));
    assert_eq!(m.get_next_key(Some(&k(4))).unwrap(), k(0));
    assert_eq!(keys(&*m).len(), 4);
}

#[test]
fn array_errors() {
    let m = mk(def(t::ARRAY, 4, 8, 4, 0));
    assert_eq!(errno(m.update(&k(4), &v8(1), BPF_ANY)), E2BIG);
    assert_eq!(errno(m.update(&k(1), &v8(1), BPF_NOEXIST)), EEXIST);
    assert_eq!(errno(m.update(&k(1), &v8(1), 3)), EINVAL);
    assert_eq!(errno(m.update(&k(1), &v8(1), BPF_F_LOCK)), EINVAL);
    assert_eq!(errno(m.lookup(&k(4))), ENOENT);
    assert_eq!(errno(m.delete(&k(0))), EINVAL);
    assert_eq!(errno(m.get_next_key(Some(&k(3)))), ENOENT);
    assert_eq!(errno(m.lookup_and_delete(&k(0))), ENOTSUPP);
    // Wrong sizes from the host are refused, never a panic.
    assert_eq!(errno(m.lookup(&[0; 3])), EINVAL);
    assert_eq!(errno(m.update(&k(0), &[0; 7], BPF_ANY)), EINVAL);
    assert_eq!(errno(m.get_next_key(Some(&[0; 9]))), EINVAL);
    assert_eq!(m.prog_lookup(&[0; 2], 0), None);
    assert_eq!(m.prog_lookup(&k(4), 0), None);
}

#[test]
fn array_program_side_shares_the_host_values() {
    let m = mk(def(t::ARRAY, 4, 8, 4, 0));
    let a = m.prog_lookup(&k(2), 0).unwrap();
    assert_eq!(a % 8, 0);
    let r = m.regions();
    assert!(r
        .iter()
        .any(|r| a >= r.start && a + 8 <= r.end && r.writable));
    m.update(&k(2), &v8(77), BPF_ANY).unwrap();
    assert_eq!(read_u64(a), 77);
    m.prog_update(&k(2), &v8(78), BPF_ANY, 0).unwrap();
    assert_eq!(m.lookup(&k(2)).unwrap(), v8(78));
    assert_eq!(errno(m.prog_update(&k(9), &v8(1), BPF_ANY, 0)), E2BIG);
    assert_eq!(errno(m.prog_delete(&k(0))), EINVAL);
}

// ---- PERCPU_ARRAY -----------------------------------------------------

#[test]
fn percpu_array_layout() {
    let n = possible_cpus() as usize;
    let m = mk(def(t::PERCPU_ARRAY, 4, 4, 2, 0));
    assert_eq!(m.lookup(&k(0)).unwrap(), vec![0; 8 * n]);
    let all: Vec<u8> = (0..n as u64).flat_map(|c| (c + 1).to_ne_bytes()).collect();
    m.update(&k(1), &all, BPF_ANY).unwrap();
    assert_eq!(m.lookup(&k(1)).unwrap(), all);
    // The program on CPU c sees its own slot.
    for c in 0..n as u32 {
        let a = m.prog_lookup(&k(1), c).unwrap();
        // SAFETY: a live value address.
        assert_eq!(unsafe { std::ptr::read_unaligned(a as *const u32) }, c + 1);
    }
    assert_eq!(m.prog_lookup(&k(1), n as u32), None);
    assert_eq!(errno(m.update(&k(1), &[0; 4], BPF_ANY)), EINVAL);
    assert_eq!(errno(m.update(&k(2), &all, BPF_ANY)), E2BIG);
    assert_eq!(errno(m.update(&k(0), &all, BPF_NOEXIST)), EEXIST);
    assert_eq!(
        errno(m.prog_update(&k(0), &[1; 4], BPF_ANY, n as u32)),
        EINVAL
    );
}

#[test]
fn percpu_threads_do_not_see_each_other() {
    let n = possible_cpus();
    if n < 2 {
        eprintln!("one possible CPU: nothing to separate");
        return;
    }
    for ty in [t::PERCPU_ARRAY, t::PERCPU_HASH, t::LRU_PERCPU_HASH] {
        let m = mk(def(ty, 4, 8, 4, 0));
        let hs: Vec<_> = (0..2u32)
            .map(|cpu| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        m.prog_update(&k(1), &v8(cpu as u64 * 1_000_000 + i), BPF_ANY, cpu)
                            .unwrap();
                        let a = m.prog_lookup(&k(1), cpu).unwrap();
                        let got = read_u64(a);
                        assert_eq!(got / 1_000_000, cpu as u64, "cpu {cpu} saw {got}");
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let v = m.lookup(&k(1)).unwrap();
        assert_eq!(&v[0..8], &v8(999));
        assert_eq!(&v[8..16], &v8(1_000_999));
    }
}

// ---- HASH -------------------------------------------------------------

#[test]
fn hash_semantics() {
    let m = mk(def(t::HASH, 4, 8, 3, 0));
    assert_eq!(errno(m.get_next_key(None)), ENOENT);
    m.update(&k(1), &v8(10), BPF_ANY).unwrap();
    m.update(&k(2), &v8(20), BPF_NOEXIST).unwrap();
    m.update(&k(1), &v8(11), BPF_EXIST).unwrap();
    m.update(&k(3), &v8(30), BPF_ANY).unwrap();
    assert_eq!(m.lookup(&k(1)).unwrap(), v8(11));
    // Full: existing keys can still be replaced.
    m.update(&k(2), &v8(21), BPF_ANY).unwrap();
    let mut ks = keys(&*m);
    ks.sort();
    assert_eq!(ks, vec![k(1).to_vec(), k(2).to_vec(), k(3).to_vec()]);
    // A missing key restarts the walk at the first key.
    assert_eq!(
        m.get_next_key(Some(&k(99))).unwrap(),
        m.get_next_key(None).unwrap()
    );
    assert_eq!(m.lookup_and_delete(&k(2)).unwrap(), v8(21));
    m.delete(&k(1)).unwrap();
    assert_eq!(keys(&*m), vec![k(3).to_vec()]);
}

#[test]
fn hash_order_is_deterministic() {
    let a = mk(def(t::HASH, 4, 8, 64, 0));
    let b = mk(def(t::HASH, 4, 8, 64, 0));
    for i in 0..50 {
        a.update(&k(i * 7), &v8(i as u64), BPF_ANY).unwrap();
        b.update(&k(i * 7), &v8(i as u64), BPF_ANY).unwrap();
    }
    assert_eq!(keys(&*a), keys(&*b));
    assert_eq!(keys(&*a).len(), 50);
}

#[test]
fn hash_errors() {
    let m = mk(def(t::HASH, 4, 8, 2, 0));
    assert_eq!(errno(m.lookup(&k(1))), ENOENT);
    assert_eq!(errno(m.delete(&k(1))), ENOENT);
    assert_eq!(errno(m.lookup_and_delete(&k(1))), ENOENT);
    assert_eq!(errno(m.update(&k(1), &v8(1), BPF_EXIST)), ENOENT);
    m.update(&k(1), &v8(1), BPF_ANY).unwrap();
    assert_eq!(errno(m.update(&k(1), &v8(1), BPF_NOEXIST)), EEXIST);
    assert_eq!(errno(m.update(&k(1), &v8(1), 3)), EINVAL);
    assert_eq!(errno(m.update(&k(1), &v8(1), BPF_F_LOCK)), EINVAL);
    m.update(&k(2), &v8(2), BPF_ANY).unwrap();
    assert_eq!(errno(m.update(&k(3), &v8(3), BPF_ANY)), E2BIG);
    assert_eq!(errno(m.prog_update(&k(3), &v8(3), BPF_ANY, 0)), E2BIG);
    assert_eq!(errno(m.get_next_key(Some(&[1, 2]))), EINVAL);
    assert_eq!(errno(m.lookup(&[0; 5])), EINVAL);
    assert_eq!(errno(m.update(&k(1), &[0; 9], BPF_ANY)), EINVAL);
    assert_eq!(m.prog_lookup(&[0; 5], 0), None);
    assert_eq!(errno(m.prog_update(&k(1), &[0; 3], BPF_ANY, 0)), EINVAL);
}

#[test]
fn hash_program_side() {
    let m = mk(def(t::HASH, 4, 12, 4, 0));
    assert_eq!(m.prog_lookup(&k(5), 0), None);
    m.prog_update(&k(5), &[7; 12], BPF_ANY, 0).unwrap();
    let a = m.prog_lookup(&k(5), 0).unwrap();
    assert_eq!(a % 8, 0);
    assert!(m
        .regions()
        .iter()
        .any(|r| a >= r.start && a + 12 <= r.end && r.writable));
    assert_eq!(m.lookup(&k(5)).unwrap(), vec![7; 12]);
    m.prog_delete(&k(5)).unwrap();
    assert_eq!(errno(m.prog_delete(&k(5))), ENOENT);
}

#[test]
fn percpu_hash_program_insert_zeroes_other_cpus() {
    let n = possible_cpus() as usize;
    let m = mk(def(t::PERCPU_HASH, 4, 8, 4, 0));
    let all: Vec<u8> = (0..n as u64).flat_map(|c| (c + 5).to_ne_bytes()).collect();
    m.update(&k(1), &all, BPF_ANY).unwrap();
    m.delete(&k(1)).unwrap();
    m.prog_update(&k(1), &v8(9), BPF_ANY, 0).unwrap();
    let v = m.lookup(&k(1)).unwrap();
    assert_eq!(&v[..8], &v8(9));
    assert!(v[8..].iter().all(|&b| b == 0));
    if n > 1 {
        assert_eq!(errno(m.update(&k(2), &v8(1), BPF_ANY)), EINVAL);
    }
}

#[test]
fn lru_evicts_the_least_recently_used() {
    let m = mk(def(t::LRU_HASH, 4, 8, 3, 0));
    for i in 1..=3 {
        m.update(&k(i), &v8(i as u64), BPF_ANY).unwrap();
    }
    // A program's lookup makes 1 recent; 2 is now the oldest.
    m.prog_lookup(&k(1), 0).unwrap();
    m.update(&k(4), &v8(4), BPF_ANY).unwrap();
    assert_eq!(errno(m.lookup(&k(2))), ENOENT);
    assert!(m.lookup(&k(1)).is_ok() && m.lookup(&k(4)).is_ok());
    assert_eq!(keys(&*m).len(), 3);
    // Flags still apply.
    assert_eq!(errno(m.update(&k(4), &v8(0), BPF_NOEXIST)), EEXIST);
    assert_eq!(errno(m.update(&k(9), &v8(0), BPF_EXIST)), ENOENT);
    assert_eq!(errno(m.update(&k(9), &v8(0), 3)), EINVAL);
}

#[test]
fn hash_concurrent_with_iteration() {
    let m = mk(def(t::HASH, 4, 8, 256, 0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4u32)
        .map(|w| {
            let m = m.clone();
            std::thread::spawn(move || {
                for round in 0..2000u32 {
                    let key = k(w * 64 + round % 64);
                    match round % 3 {
                        0 => {
                            let _ = m.update(&key, &v8(round as u64), BPF_ANY);
                        }
                        1 => {
                            if let Some(a) = m.prog_lookup(&key, w) {
                                let _ = read_u64(a);
                            }
                            let _ = m.lookup(&key);
                        }
                        _ => {
                            let _ = m.delete(&key);
                        }
                    }
                }
            })
        })
        .collect();
    let iter = {
        let (m, stop) = (m.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut walks = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || walks == 0 {
                let ks = keys(&*m);
                assert!(ks.len() <= 10_000);
                assert!(ks.iter().all(|k| k.len() == 4));
                walks += 1;
            }
            walks
        })
    };
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(iter.join().unwrap() > 0);
    let n = keys(&*m).len();
    assert!(n <= 256);
    for key in keys(&*m) {
        assert!(m.lookup(&key).is_ok());
    }
}

// ---- LPM_TRIE ---------------------------------------------------------

fn lpm(len: u32, a: [u8; 4]) -> Vec<u8> {
    let mut key = len.to_ne_bytes().to_vec();
    key.extend_from_slice(&a);
    key
}

#[test]
fn lpm_trie_longest_match_and_postorder() {
    let m = mk(def(t::LPM_TRIE, 8, 8, 8, cf::NO_PREALLOC));
    m.update(&lpm(16, [192, 168, 0, 0]), &v8(16), BPF_ANY)
        .unwrap();
    m.update(&lpm(24, [192, 168, 0, 0]), &v8(240), BPF_ANY)
        .unwrap();
    m.update(&lpm(24, [192, 168, 1, 0]), &v8(241), BPF_ANY)
        .unwrap();
    m.update(&lpm(24, [192, 168, 128, 0]), &v8(242), BPF_ANY)
        .unwrap();
    assert_eq!(m.lookup(&lpm(32, [192, 168, 1, 9])).unwrap(), v8(241));
    assert_eq!(m.lookup(&lpm(32, [192, 168, 7, 9])).unwrap(), v8(16));
    assert_eq!(m.lookup(&lpm(20, [192, 168, 1, 9])).unwrap(), v8(16));
    let a = m.prog_lookup(&lpm(32, [192, 168, 128, 1]), 0).unwrap();
    assert_eq!(read_u64(a), 242);
    assert_eq!(
        keys(&*m),
        vec![
            lpm(24, [192, 168, 0, 0]),
            lpm(24, [192, 168, 1, 0]),
            lpm(24, [192, 168, 128, 0]),
            lpm(16, [192, 168, 0, 0]),
        ]
    );
    // A missing key or an over-long prefix restarts at the first element.
    assert_eq!(
        m.get_next_key(Some(&lpm(8, [1, 0, 0, 0]))).unwrap(),
        lpm(24, [192, 168, 0, 0])
    );
    assert_eq!(
        m.get_next_key(Some(&lpm(33, [0; 4]))).unwrap(),
        lpm(24, [192, 168, 0, 0])
    );
    m.delete(&lpm(24, [192, 168, 1, 0])).unwrap();
    assert_eq!(m.lookup(&lpm(32, [192, 168, 1, 9])).unwrap(), v8(16));
}

#[test]
fn lpm_trie_errors() {
    let m = mk(def(t::LPM_TRIE, 8, 8, 2, cf::NO_PREALLOC));
    assert_eq!(errno(m.get_next_key(None)), ENOENT);
    assert_eq!(errno(m.lookup(&lpm(32, [1, 2, 3, 4]))), ENOENT);
    assert_eq!(errno(m.update(&lpm(33, [0; 4]), &v8(0), BPF_ANY)), EINVAL);
    assert_eq!(errno(m.update(&lpm(8, [0; 4]), &v8(0), 3)), EINVAL);
    assert_eq!(errno(m.update(&lpm(8, [0; 4]), &v8(0), BPF_EXIST)), ENOENT);
    m.update(&lpm(8, [10, 0, 0, 0]), &v8(1), BPF_ANY).unwrap();
    assert_eq!(
        errno(m.update(&lpm(8, [10, 9, 9, 9]), &v8(1), BPF_NOEXIST)),
        EEXIST
    );
    m.update(&lpm(9, [10, 0, 0, 0]), &v8(2), BPF_ANY).unwrap();
    assert_eq!(
        errno(m.update(&lpm(10, [10, 0, 0, 0]), &v8(3), BPF_ANY)),
        ENOSPC
    );
    // Replacing in a full trie works.
    m.update(&lpm(9, [10, 0, 0, 0]), &v8(4), BPF_EXIST).unwrap();
    assert_eq!(errno(m.delete(&lpm(33, [0; 4]))), EINVAL);
    assert_eq!(errno(m.delete(&lpm(7, [10, 0, 0, 0]))), ENOENT);
    assert_eq!(errno(m.lookup_and_delete(&lpm(8, [10, 0, 0, 0]))), ENOTSUPP);
    assert_eq!(errno(m.lookup(&[0; 7])), EINVAL);
    assert_eq!(m.prog_lookup(&[0; 3], 0), None);
}

// ---- QUEUE / STACK ----------------------------------------------------

#[test]
fn queue_and_stack_order() {
    for (ty, want) in [(t::QUEUE, [2u32, 3, 4]), (t::STACK, [4, 3, 2])] {
        let m = mk(def(ty, 0, 4, 3, 0));
        for i in 1..=3u32 {
            m.push(&i.to_ne_bytes(), BPF_ANY).unwrap();
        }
        assert_eq!(errno(m.push(&9u32.to_ne_bytes(), BPF_ANY)), E2BIG);
        // BPF_EXIST drops the oldest element, for both kinds.
        m.update(&[], &4u32.to_ne_bytes(), BPF_EXIST).unwrap();
        assert_eq!(m.peek().unwrap(), want[0].to_ne_bytes());
        assert_eq!(m.lookup(&[]).unwrap(), want[0].to_ne_bytes());
        assert_eq!(m.pop().unwrap(), want[0].to_ne_bytes());
        assert_eq!(m.lookup_and_delete(&[]).unwrap(), want[1].to_ne_bytes());
        assert_eq!(m.pop().unwrap(), want[2].to_ne_bytes());
        assert_eq!(errno(m.pop()), ENOENT);
        assert_eq!(errno(m.peek()), ENOENT);
    }
}

#[test]
fn queue_errors() {
    let m = mk(def(t::QUEUE, 0, 4, 3, 0));
    assert_eq!(errno(m.lookup_and_delete(&[])), ENOENT);
    assert_eq!(errno(m.push(&[0; 4], BPF_NOEXIST)), EINVAL);
    assert_eq!(errno(m.push(&[0; 4], 4)), EINVAL);
    assert_eq!(errno(m.push(&[0; 3], BPF_ANY)), EINVAL);
    assert_eq!(errno(m.delete(&[])), EINVAL);
    assert_eq!(errno(m.get_next_key(None)), EINVAL);
    assert_eq!(errno(m.lookup(&[0; 4])), EINVAL);
    assert_eq!(m.prog_lookup(&[], 0), None);
}

// ---- RINGBUF ----------------------------------------------------------

fn ring(size: u32) -> Arc<dyn BpfMap> {
    mk(def(t::RINGBUF, 0, 0, size, 0))
}

#[test]
fn ringbuf_records_in_order() {
    let m = ring(4096);
    let rb = m.as_any().downcast_ref::<RingBuf>().unwrap();
    assert_eq!(rb.query(maps::BPF_RB_RING_SIZE), 4096);
    rb.output(b"hello", 0).unwrap();
    let a = rb.reserve(3, 0).unwrap();
    assert!(m
        .regions()
        .iter()
        .any(|r| a >= r.start && a + 3 <= r.end && r.writable));
    // SAFETY: a reservation of 3 writable bytes.
    unsafe { std::ptr::copy_nonoverlapping(b"abc".as_ptr(), a as *mut u8, 3) };
    let d = rb.reserve(10, 0).unwrap();
    let b = rb.reserve(1, 0).unwrap();
    // 8-byte headers, lengths rounded to 8: 16 + 16 + 24 + 16.
    assert_eq!(rb.query(maps::BPF_RB_PROD_POS), 72);
    assert_eq!(rb.query(maps::BPF_RB_AVAIL_DATA), 72);
    assert_eq!(rb.read().unwrap(), b"hello");
    // The next record is still reserved: the reader stops there.
    assert_eq!(rb.read(), None);
    rb.discard(d, 0);
    rb.submit(b, 0);
    assert_eq!(rb.read(), None);
    rb.submit(a, 0);
    assert_eq!(rb.drain(), vec![b"abc".to_vec(), vec![0u8]]);
    assert_eq!(rb.query(maps::BPF_RB_CONS_POS), 72);
    assert_eq!(rb.query(maps::BPF_RB_AVAIL_DATA), 0);
    assert_eq!(rb.query(99), 0);
}

#[test]
fn ringbuf_space_and_wrap() {
    let m = ring(4096);
    let rb = m.as_any().downcast_ref::<RingBuf>().unwrap();
    assert_eq!(rb.reserve(4096, 0), None);
    assert_eq!(rb.reserve(8, 1), None);
    assert_eq!(errno(rb.output(b"x", 4)), EINVAL);
    // 1000-byte records take 1008 bytes: four fit in 4095.
    for i in 0..4u8 {
        rb.output(&[i; 1000], 0).unwrap();
    }
    assert_eq!(errno(rb.output(&[9; 1000], 0)), EAGAIN);
    assert_eq!(rb.read().unwrap(), vec![0u8; 1000]);
    // Room again; this record crosses the end of the ring and comes back
    // whole.
    rb.output(&[7; 1000], 0).unwrap();
    for i in 1..4u8 {
        assert_eq!(rb.read().unwrap(), vec![i; 1000]);
    }
    assert_eq!(rb.read().unwrap(), vec![7u8; 1000]);
    assert_eq!(rb.read(), None);
    // Many wraps.
    for i in 0..100u32 {
        let a = rb.reserve(600, 0).unwrap();
        // SAFETY: a 600-byte reservation.
        unsafe { std::ptr::write_bytes(a as *mut u8, i as u8, 600) };
        rb.submit(a, 0);
        assert_eq!(rb.read().unwrap(), vec![i as u8; 600]);
    }
    // Submitting twice or a foreign address is ignored.
    rb.submit(12345, 0);
    let a = rb.reserve(8, 0).unwrap();
    rb.submit(a, 0);
    rb.discard(a, 0);
    assert_eq!(rb.read().unwrap().len(), 8);
}

#[test]
fn ringbuf_host_element_ops_are_refused() {
    let m = ring(4096);
    assert_eq!(errno(m.lookup(&[])), ENOTSUPP);
    assert_eq!(errno(m.update(&[], &[], 0)), ENOTSUPP);
    assert_eq!(errno(m.delete(&[])), ENOTSUPP);
    assert_eq!(errno(m.get_next_key(None)), ENOTSUPP);
    assert_eq!(errno(m.lookup_and_delete(&[])), ENOTSUPP);
    assert_eq!(errno(m.lookup(&[1])), EINVAL);
}

// ---- PROG_ARRAY -------------------------------------------------------

#[test]
fn prog_array_slots() {
    let m = mk(def(t::PROG_ARRAY, 4, 4, 4, 0));
    let pa = m.as_any().downcast_ref::<ProgArray>().unwrap();
    assert_eq!(pa.get(0), None);
    m.update(&k(1), &k(42), BPF_ANY).unwrap();
    assert_eq!(pa.get(1), Some(42));
    assert_eq!(m.lookup(&k(1)).unwrap(), k(42));
    assert_eq!(m.get_next_key(Some(&k(1))).unwrap(), k(2));
    m.delete(&k(1)).unwrap();
    assert_eq!(pa.get(1), None);
    assert_eq!(pa.get(99), None);
}

#[test]
fn prog_array_errors() {
    let m = mk(def(t::PROG_ARRAY, 4, 4, 4, 0));
    assert_eq!(errno(m.lookup(&k(0))), ENOENT);
    assert_eq!(errno(m.update(&k(0), &k(1), BPF_NOEXIST)), EINVAL);
    assert_eq!(errno(m.update(&k(0), &k(1), BPF_EXIST)), EINVAL);
    assert_eq!(errno(m.update(&k(4), &k(1), BPF_ANY)), E2BIG);
    assert_eq!(errno(m.delete(&k(0))), ENOENT);
    assert_eq!(errno(m.delete(&k(4))), E2BIG);
    assert_eq!(errno(m.lookup_and_delete(&k(0))), ENOTSUPP);
    assert_eq!(errno(m.prog_update(&k(0), &k(1), BPF_ANY, 0)), ENOTSUPP);
}

// ---- map-in-map -------------------------------------------------------

#[test]
fn array_of_maps() {
    let reg = MapRegistry::new();
    let inner = def(t::ARRAY, 4, 8, 1, 0);
    let good = reg.create(&inner).unwrap();
    let bad = reg.create(&def(t::ARRAY, 4, 8, 2, 0)).unwrap();
    let mut outer = def(t::ARRAY_OF_MAPS, 4, 4, 2, 0);
    outer.inner = Some(Box::new(inner));
    let id = reg.create(&outer).unwrap();
    let m = reg.get(id).unwrap();
    assert_eq!(errno(m.lookup(&k(0))), ENOENT);
    m.update(&k(0), &k(good), BPF_ANY).unwrap();
    assert_eq!(m.lookup(&k(0)).unwrap(), k(good));
    let h = m.prog_lookup(&k(0), 0).unwrap();
    assert_eq!(h, MapRegistry::handle(good));
    assert_eq!(reg.from_handle(h).unwrap().def().max_entries, 1);
    assert_eq!(errno(m.update(&k(1), &k(bad), BPF_ANY)), EINVAL);
    assert_eq!(errno(m.update(&k(1), &k(999), BPF_ANY)), EBADF);
    assert_eq!(errno(m.update(&k(1), &k(good), BPF_NOEXIST)), EINVAL);
    assert_eq!(errno(m.update(&k(2), &k(good), BPF_ANY)), E2BIG);
    m.delete(&k(0)).unwrap();
    assert_eq!(errno(m.delete(&k(0))), ENOENT);
    assert_eq!(m.prog_lookup(&k(0), 0), None);
}

#[test]
fn hash_of_maps() {
    let reg = MapRegistry::new();
    let inner = def(t::HASH, 4, 4, 8, 0);
    // Hash inner maps may differ in max_entries, as in the kernel.
    let a = reg.create(&def(t::HASH, 4, 4, 16, 0)).unwrap();
    let bad = reg.create(&def(t::HASH, 4, 8, 8, 0)).unwrap();
    let mut outer = def(t::HASH_OF_MAPS, 4, 4, 1, 0);
    outer.inner = Some(Box::new(inner));
    let m = reg.get(reg.create(&outer).unwrap()).unwrap();
    m.update(&k(7), &k(a), BPF_NOEXIST).unwrap();
    assert_eq!(m.lookup(&k(7)).unwrap(), k(a));
    assert_eq!(m.prog_lookup(&k(7), 0), Some(MapRegistry::handle(a)));
    assert_eq!(errno(m.update(&k(7), &k(a), BPF_NOEXIST)), EEXIST);
    assert_eq!(errno(m.update(&k(8), &k(a), BPF_ANY)), E2BIG);
    assert_eq!(errno(m.update(&k(8), &k(bad), BPF_ANY)), EINVAL);
    assert_eq!(errno(m.lookup_and_delete(&k(7))), ENOTSUPP);
    m.delete(&k(7)).unwrap();
    assert_eq!(errno(m.lookup(&k(7))), ENOENT);
    // The outer map does not keep the registry alive.
    let weak = Arc::downgrade(&reg);
    drop(m);
    drop(reg);
    assert!(weak.upgrade().is_none());
}

// ---- DEVMAP -----------------------------------------------------------

#[test]
fn devmaps() {
    use bpfkit_vm::maps::DevMap;
    let m = mk(def(t::DEVMAP, 4, 4, 2, 0));
    assert_eq!(errno(m.lookup(&k(0))), ENOENT);
    m.update(&k(0), &k(1), BPF_ANY).unwrap(); // lo
    assert_eq!(m.as_any().downcast_ref::<DevMap>().unwrap().get(0), Some(1));
    assert_eq!(m.lookup(&k(0)).unwrap(), k(1));
    assert!(m.prog_lookup(&k(0), 0).is_some());
    assert_eq!(errno(m.update(&k(0), &k(1), BPF_NOEXIST)), EEXIST);
    assert_eq!(errno(m.update(&k(2), &k(1), BPF_ANY)), E2BIG);
    assert_eq!(errno(m.update(&k(1), &k(999_999), BPF_ANY)), EINVAL);
    assert_eq!(errno(m.delete(&k(2))), EINVAL);
    m.delete(&k(0)).unwrap();
    assert_eq!(errno(m.lookup(&k(0))), ENOENT);

    let h = mk(def(t::DEVMAP_HASH, 4, 8, 2, 0));
    let val = [1, 0, 0, 0, 0, 0, 0, 0];
    h.update(&k(9), &val, BPF_ANY).unwrap();
    assert_eq!(h.lookup(&k(9)).unwrap(), val);
    assert_eq!(errno(h.update(&k(9), &val, BPF_NOEXIST)), EEXIST);
    assert_eq!(errno(h.update(&k(3), &[0; 8], BPF_ANY)), EINVAL);
    h.update(&k(3), &val, BPF_EXIST).unwrap();
    assert_eq!(errno(h.update(&k(4), &val, BPF_ANY)), E2BIG);
    // Buckets are `key & (n_buckets - 1)`, newest first within one.
    assert_eq!(h.get_next_key(None).unwrap(), k(3));
    assert_eq!(h.get_next_key(Some(&k(3))).unwrap(), k(9));
    assert_eq!(errno(h.get_next_key(Some(&k(9)))), ENOENT);
    h.delete(&k(9)).unwrap();
    assert_eq!(errno(h.delete(&k(9))), ENOENT);
}
