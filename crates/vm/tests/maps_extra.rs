//! PERF_EVENT_ARRAY, SOCKMAP and SOCKHASH: host-side semantics, compared
//! errno for errno with maps the running kernel creates (when bpf(2) is
//! allowed), and the socket-redirect object running in the VM.
//!
//! The kernel's maps hold perf event and socket fds, so the comparisons use
//! real ones: a BPF_OUTPUT software perf event, bound UDP sockets. The VM
//! stores the same numbers. Where the kernel resolves the fd (EBADF for a
//! number that is no fd, ENOTSOCK for a non-socket), the VM accepts the
//! value: that difference is asserted below as intended.

use bpfkit_vm::maps::{
    self, create_flags as cf, types as t, BpfMap, MapDef, MapError, MapRegistry, PerfEventArray,
    SockMap, BPF_ANY, BPF_EXIST, BPF_NOEXIST,
};
use bpfkit_vm::{Instance, Redirect};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

const ENOENT: i32 = 2;
const EBADF: i32 = 9;
const E2BIG: i32 = 7;
const EEXIST: i32 = 17;
const EINVAL: i32 = 22;
const ENOSPC: i32 = 28;
const ENOTSUPP: i32 = 524;

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

fn vm_map(d: &MapDef) -> Result<Arc<dyn BpfMap>, i32> {
    maps::create(d, &MapRegistry::new()).map_err(|e| e.errno())
}

fn k(i: u32) -> [u8; 4] {
    i.to_ne_bytes()
}

fn errno<T>(r: Result<T, MapError>) -> Result<(), i32> {
    r.map(|_| ()).map_err(|e| e.errno())
}

// ---- the kernel's maps, through bpf(2) ----------------------------------------

#[repr(C)]
#[derive(Default)]
struct CreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    pad: [u32; 27],
}

#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
    rest: [u64; 12],
}

fn bpf<T>(cmd: u32, attr: &mut T) -> Result<i64, i32> {
    // SAFETY: attr is a live, writable bpf_attr prefix of its own size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

struct KMap {
    fd: OwnedFd,
    key_size: usize,
    value_size: usize,
}

fn ptr(b: &[u8]) -> u64 {
    if b.is_empty() {
        0
    } else {
        b.as_ptr() as u64
    }
}

impl KMap {
    fn create(d: &MapDef) -> Result<KMap, i32> {
        let mut a = CreateAttr {
            map_type: d.map_type,
            key_size: d.key_size,
            value_size: d.value_size,
            max_entries: d.max_entries,
            map_flags: d.flags,
            ..Default::default()
        };
        let fd = bpf(0, &mut a)?;
        Ok(KMap {
            // SAFETY: the kernel returned a new descriptor we now own.
            fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
            key_size: d.key_size as usize,
            value_size: d.value_size as usize,
        })
    }

    fn elem(&self, cmd: u32, key: &[u8], value: u64, flags: u64) -> Result<(), i32> {
        let mut a = ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: ptr(key),
            value,
            flags,
            ..Default::default()
        };
        bpf(cmd, &mut a).map(|_| ())
    }

    fn lookup(&self, key: &[u8]) -> Result<(), i32> {
        let out = vec![0u8; self.value_size.max(8)];
        self.elem(1, key, out.as_ptr() as u64, 0)
    }

    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), i32> {
        self.elem(2, key, ptr(value), flags)
    }

    fn delete(&self, key: &[u8]) -> Result<(), i32> {
        self.elem(3, key, 0, 0)
    }

    fn next_key(&self, key: Option<&[u8]>) -> Result<Vec<u8>, i32> {
        let out = vec![0u8; self.key_size];
        self.elem(4, key.unwrap_or(&[]), out.as_ptr() as u64, 0)
            .map(|_| out)
    }

    fn lookup_and_delete(&self, key: &[u8]) -> Result<(), i32> {
        let out = vec![0u8; self.value_size.max(8)];
        self.elem(21, key, out.as_ptr() as u64, 0)
    }
}

/// A kernel map of `d`, or None where bpf(2) is not allowed (then only the
/// VM's side is checked).
fn kernel_map(d: &MapDef) -> Option<KMap> {
    match KMap::create(d) {
        Ok(m) => Some(m),
        Err(e) if e == libc::EPERM || e == libc::ENOSYS => {
            eprintln!("bpf(2) unavailable (errno {e}): kernel comparison skipped");
            None
        }
        Err(e) => panic!("the kernel refused {d:?}: errno {e}"),
    }
}

/// Whether both engines accept or refuse `d` with the same errno.
fn same_create(d: MapDef) {
    let vm = vm_map(&d).map(|_| ());
    if let Ok(probe) = KMap::create(&def(t::ARRAY, 4, 4, 1, 0)) {
        drop(probe);
        let kernel = KMap::create(&d).map(|_| ());
        assert_eq!(vm, kernel, "create {d:?}");
    }
}

/// One host operation applied to both engines.
#[derive(Debug)]
enum Op<'a> {
    Lookup(&'a [u8]),
    Update(&'a [u8], Vec<u8>, u64),
    Delete(&'a [u8]),
    NextKey(Option<&'a [u8]>),
    LookupAndDelete(&'a [u8]),
}

fn vm_op(m: &dyn BpfMap, op: &Op<'_>) -> Result<Option<Vec<u8>>, i32> {
    match op {
        Op::Lookup(key) => errno(m.lookup(key)).map(|_| None),
        Op::Update(key, v, f) => errno(m.update(key, v, *f)).map(|_| None),
        Op::Delete(key) => errno(m.delete(key)).map(|_| None),
        Op::NextKey(key) => m.get_next_key(*key).map(Some).map_err(|e| e.errno()),
        Op::LookupAndDelete(key) => errno(m.lookup_and_delete(key)).map(|_| None),
    }
}

fn kernel_op(m: &KMap, op: &Op<'_>) -> Result<Option<Vec<u8>>, i32> {
    match op {
        Op::Lookup(key) => m.lookup(key).map(|_| None),
        Op::Update(key, v, f) => m.update(key, v, *f).map(|_| None),
        Op::Delete(key) => m.delete(key).map(|_| None),
        Op::NextKey(key) => m.next_key(*key).map(Some),
        Op::LookupAndDelete(key) => m.lookup_and_delete(key).map(|_| None),
    }
}

/// Runs `ops` on a VM map and (when allowed) a kernel map of `d`: same
/// success or errno, and the same next keys.
fn same_ops(d: &MapDef, ops: &[Op<'_>]) {
    let vm = vm_map(d).unwrap();
    let kernel = kernel_map(d);
    for op in ops {
        let v = vm_op(&*vm, op);
        if let Some(km) = &kernel {
            assert_eq!(v, kernel_op(km, op), "{op:?} on {d:?}");
        }
    }
}

/// The value bytes of `fd` for a map with `value_size`-byte values.
fn fd_value(fd: i32, value_size: u32) -> Vec<u8> {
    if value_size == 8 {
        (fd as u64).to_ne_bytes().to_vec()
    } else {
        (fd as u32).to_ne_bytes().to_vec()
    }
}

// ---- PERF_EVENT_ARRAY -----------------------------------------------------------

/// A BPF_OUTPUT software perf event on CPU 0, as perf readers open them.
fn bpf_output_event() -> Option<OwnedFd> {
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes()); // size
    attr[8..16].copy_from_slice(&10u64.to_ne_bytes()); // PERF_COUNT_SW_BPF_OUTPUT
    attr[16..24].copy_from_slice(&1u64.to_ne_bytes()); // sample_period
    attr[24..32].copy_from_slice(&(1u64 << 10).to_ne_bytes()); // PERF_SAMPLE_RAW
                                                               // SAFETY: attr is a perf_event_attr of the size it declares.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1 as libc::c_int,
            0 as libc::c_int,
            -1 as libc::c_int,
            0 as libc::c_ulong,
        )
    };
    // SAFETY: a new descriptor we now own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[test]
fn perf_event_array_create_checks_match_the_kernel() {
    let p = |ks, vs, me, fl| def(t::PERF_EVENT_ARRAY, ks, vs, me, fl);
    for d in [
        p(4, 4, 4, 0),
        p(4, 8, 4, 0),
        p(8, 4, 4, 0),
        p(4, 4, 0, 0),
        p(4, 4, 4, cf::PRESERVE_ELEMS),
        p(4, 4, 4, cf::NUMA_NODE),
        p(4, 4, 4, cf::RDONLY),
        p(4, 4, 4, cf::RDONLY_PROG),
        p(4, 4, 4, cf::MMAPABLE),
        p(4, 4, 4, cf::INNER_MAP),
        p(4, 4, 4, cf::NO_PREALLOC),
    ] {
        same_create(d);
    }
}

#[test]
fn perf_event_array_host_ops_match_the_kernel() {
    let d = def(t::PERF_EVENT_ARRAY, 4, 4, 4, 0);
    let ev = bpf_output_event();
    let fd = ev.as_ref().map_or(0, |f| f.as_raw_fd());
    let v = fd_value(fd, 4);
    let mut ops = vec![
        Op::Lookup(&[0, 0, 0, 0]),
        Op::Lookup(&[9, 0, 0, 0]),
        Op::Update(&[0, 0, 0, 0], v.clone(), BPF_NOEXIST),
        Op::Update(&[0, 0, 0, 0], v.clone(), BPF_EXIST),
        Op::Update(&[0, 0, 0, 0], v.clone(), 4),
        Op::Update(&[9, 0, 0, 0], v.clone(), BPF_ANY),
        Op::Delete(&[0, 0, 0, 0]),
        Op::Delete(&[9, 0, 0, 0]),
        Op::NextKey(None),
        Op::NextKey(Some(&[0, 0, 0, 0])),
        Op::NextKey(Some(&[3, 0, 0, 0])),
        Op::NextKey(Some(&[9, 0, 0, 0])),
        Op::LookupAndDelete(&[0, 0, 0, 0]),
    ];
    if ev.is_some() {
        // With a real event the kernel accepts the fd: both succeed, the
        // slot is then deletable once.
        ops.extend([
            Op::Update(&[1, 0, 0, 0], v.clone(), BPF_ANY),
            Op::Lookup(&[1, 0, 0, 0]),
            Op::Delete(&[1, 0, 0, 0]),
            Op::Delete(&[1, 0, 0, 0]),
        ]);
    }
    same_ops(&d, &ops);
}

#[test]
fn perf_event_array_accepts_any_value_where_the_kernel_checks_the_fd() {
    let d = def(t::PERF_EVENT_ARRAY, 4, 4, 4, 0);
    let vm = vm_map(&d).unwrap();
    // 100000 is no fd of this process.
    let bogus = 100_000u32.to_ne_bytes();
    assert_eq!(errno(vm.update(&k(2), &bogus, BPF_ANY)), Ok(()));
    assert_eq!(errno(vm.delete(&k(2))), Ok(()));
    if let Some(km) = kernel_map(&d) {
        assert_eq!(km.update(&k(2), &bogus, BPF_ANY), Err(EBADF));
        assert_eq!(km.delete(&k(2)), Err(ENOENT));
    }
}

#[test]
fn perf_event_array_queues_records_per_index() {
    let m = vm_map(&def(t::PERF_EVENT_ARRAY, 4, 4, 2, 0)).unwrap();
    let pa = m.as_any().downcast_ref::<PerfEventArray>().unwrap();
    pa.output(1, b"abcd").unwrap();
    pa.output(1, &[7; 16]).unwrap();
    pa.output(0, &[]).unwrap();
    assert_eq!(pa.output(2, b"x").unwrap_err().errno(), E2BIG);
    assert_eq!(pa.pending(1), 2);
    // Padded so the u32 size and the data end on 8 bytes, as the kernel's.
    assert_eq!(
        pa.drain(1),
        vec![b"abcd".to_vec(), [&[7u8; 16][..], &[0; 4]].concat()]
    );
    assert_eq!(pa.drain(0), vec![vec![0u8; 4]]);
    assert!(pa.drain(1).is_empty());
    assert!(pa.drain(99).is_empty());
    assert_eq!(pa.lost(1), 0);
    assert_eq!(pa.lost(99), 0);
}

#[test]
fn a_full_perf_queue_loses_records_and_counts_them() {
    let m = vm_map(&def(t::PERF_EVENT_ARRAY, 4, 4, 1, 0)).unwrap();
    let pa = m.as_any().downcast_ref::<PerfEventArray>().unwrap();
    // 1020 data bytes + 4-byte size + 8-byte header = 1 KiB a record.
    let rec = vec![1u8; 1020];
    let fit = maps::perf_event_array::RING_BYTES / 1032;
    for _ in 0..fit {
        pa.output(0, &rec).unwrap();
    }
    assert_eq!(pa.output(0, &rec).unwrap_err().errno(), ENOSPC);
    assert_eq!(pa.output(0, &rec).unwrap_err().errno(), ENOSPC);
    assert_eq!(pa.lost(0), 2);
    assert_eq!(pa.drain(0).len(), fit);
    // Draining makes room again; the lost count stays.
    pa.output(0, &rec).unwrap();
    assert_eq!(pa.lost(0), 2);
    // A record larger than the queue never fits.
    assert_eq!(
        pa.output(0, &vec![0; maps::perf_event_array::RING_BYTES])
            .unwrap_err()
            .errno(),
        ENOSPC
    );
}

#[test]
fn perf_event_arrays_are_not_program_storage() {
    let m = vm_map(&def(t::PERF_EVENT_ARRAY, 4, 4, 2, 0)).unwrap();
    assert_eq!(m.prog_lookup(&k(0), 0), None);
    assert_eq!(errno(m.prog_update(&k(0), &k(1), 0, 0)), Err(ENOTSUPP));
    assert_eq!(errno(m.prog_delete(&k(0))), Err(ENOTSUPP));
    assert!(m.regions().is_empty());
    // Wrong key sizes are EINVAL, never a panic.
    assert_eq!(errno(m.lookup(&[0; 3])), Err(EINVAL));
    assert_eq!(errno(m.update(&[0; 8], &k(1), 0)), Err(EINVAL));
    assert_eq!(errno(m.update(&k(0), &[0; 8], 0)), Err(EINVAL));
    assert_eq!(errno(m.delete(&[])), Err(EINVAL));
    assert_eq!(errno(m.get_next_key(Some(&[1]))), Err(EINVAL));
}

// ---- SOCKMAP / SOCKHASH ------------------------------------------------------------

#[test]
fn socket_map_create_checks_match_the_kernel() {
    for ty in [t::SOCKMAP, t::SOCKHASH] {
        let s = |ks, vs, me, fl| def(ty, ks, vs, me, fl);
        for d in [
            s(4, 4, 4, 0),
            s(4, 8, 4, 0),
            s(4, 2, 4, 0),
            s(8, 4, 4, 0),
            s(0, 4, 4, 0),
            s(4, 4, 0, 0),
            s(512, 4, 4, 0),
            s(513, 4, 4, 0),
            s(4, 4, 4, cf::NO_PREALLOC),
            s(4, 4, 4, cf::RDONLY),
            s(4, 4, 4, cf::WRONLY),
            s(4, 4, 4, cf::RDONLY | cf::WRONLY),
            s(4, 4, 4, cf::RDONLY_PROG),
            s(4, 4, 4, cf::NUMA_NODE),
            s(4, 4, 4, cf::ZERO_SEED),
            s(4, 8, (1 << 28) + 1, 0),
        ] {
            // A SOCKMAP of 2^28 slots takes 2 GiB in the kernel: the
            // VM's is sparse, so only SOCKHASH's refusal is compared.
            if ty == t::SOCKMAP && d.max_entries > 1 << 20 {
                assert!(vm_map(&d).is_ok());
                continue;
            }
            same_create(d);
        }
    }
}

fn udp_sockets(n: usize) -> Vec<std::net::UdpSocket> {
    (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect()
}

#[test]
fn socket_map_host_ops_match_the_kernel() {
    let socks = udp_sockets(4);
    let fds: Vec<i32> = socks.iter().map(|s| s.as_raw_fd()).collect();
    for ty in [t::SOCKMAP, t::SOCKHASH] {
        for vs in [4, 8] {
            let d = def(ty, 4, vs, 2, 0);
            let v = |i: usize| fd_value(fds[i], vs);
            let (k0, k1, k5, k7) = (k(0), k(1), k(5), k(7));
            same_ops(
                &d,
                &[
                    Op::Lookup(&k0),
                    Op::Delete(&k0),
                    Op::Delete(&k5),
                    Op::NextKey(None),
                    Op::Update(&k0, v(0), BPF_NOEXIST),
                    Op::Update(&k0, v(1), BPF_NOEXIST),
                    Op::Update(&k0, v(0), BPF_ANY),
                    Op::Update(&k1, v(1), BPF_EXIST),
                    Op::Update(&k1, v(1), BPF_ANY),
                    Op::Update(&k0, v(2), BPF_EXIST),
                    // SOCKMAP: past the end; SOCKHASH: full.
                    Op::Update(&k5, v(3), BPF_ANY),
                    Op::Update(&k5, v(3), 3),
                    Op::Update(&k1, v(3), 3),
                    Op::Update(&k1, v(3), 4),
                    Op::Update(&k0, fd_value(-1, vs), BPF_ANY),
                    Op::Lookup(&k0),
                    Op::Lookup(&k5),
                    Op::NextKey(None),
                    Op::NextKey(Some(&k0)),
                    Op::NextKey(Some(&k1)),
                    Op::NextKey(Some(&k7)),
                    Op::LookupAndDelete(&k0),
                    Op::Delete(&k0),
                    Op::Delete(&k0),
                    Op::Update(&k0, v(1), BPF_ANY),
                    Op::Delete(&k1),
                    Op::Delete(&k0),
                    Op::NextKey(None),
                ],
            );
        }
    }
}

#[test]
fn socket_maps_accept_any_int_where_the_kernel_resolves_the_fd() {
    let devnull = std::fs::File::open("/dev/null").unwrap();
    for ty in [t::SOCKMAP, t::SOCKHASH] {
        let d = def(ty, 4, 8, 4, 0);
        let vm = vm_map(&d).unwrap();
        let bogus = fd_value(100_000, 8);
        let file = fd_value(devnull.as_raw_fd(), 8);
        assert_eq!(errno(vm.update(&k(0), &bogus, BPF_ANY)), Ok(()));
        assert_eq!(errno(vm.update(&k(1), &file, BPF_ANY)), Ok(()));
        // Past S32_MAX both refuse it before looking for an fd.
        let big = (1u64 << 31).to_ne_bytes();
        assert_eq!(errno(vm.update(&k(2), &big, BPF_ANY)), Err(EINVAL));
        // The VM's lookup gives the stored value (the kernel: a cookie).
        assert_eq!(vm.lookup(&k(0)).unwrap(), bogus);
        if let Some(km) = kernel_map(&d) {
            assert_eq!(km.update(&k(0), &bogus, BPF_ANY), Err(EBADF));
            assert_eq!(km.update(&k(1), &file, BPF_ANY), Err(libc::ENOTSOCK));
            assert_eq!(km.update(&k(2), &big, BPF_ANY), Err(EINVAL));
        }
    }
}

#[test]
fn socket_map_values_and_iteration() {
    let m = vm_map(&def(t::SOCKHASH, 8, 4, 8, 0)).unwrap();
    let sm = m.as_any().downcast_ref::<SockMap>().unwrap();
    assert!(sm.is_empty());
    for i in [5u64, 1, 3] {
        m.update(&i.to_be_bytes(), &(i as u32 * 10).to_ne_bytes(), BPF_ANY)
            .unwrap();
    }
    assert_eq!(sm.len(), 3);
    assert_eq!(sm.get(&3u64.to_be_bytes()), Some(30));
    assert_eq!(sm.get(&[1, 2]), None);
    // 4-byte values: the syscall's lookup is ENOSPC, as the kernel's.
    assert_eq!(errno(m.lookup(&1u64.to_be_bytes())), Err(ENOSPC));
    let mut seen = Vec::new();
    let mut prev: Option<Vec<u8>> = None;
    while let Ok(n) = m.get_next_key(prev.as_deref()) {
        seen.push(u64::from_be_bytes(n.clone().try_into().unwrap()));
        prev = Some(n);
    }
    seen.sort();
    assert_eq!(seen, vec![1, 3, 5]);
    // Programs see no socket; they may delete.
    assert_eq!(m.prog_lookup(&1u64.to_be_bytes(), 0), None);
    assert_eq!(
        errno(m.prog_update(&1u64.to_be_bytes(), &[0; 4], 0, 0)),
        Err(ENOTSUPP)
    );
    assert_eq!(errno(m.prog_delete(&1u64.to_be_bytes())), Ok(()));
    assert_eq!(errno(m.prog_delete(&1u64.to_be_bytes())), Err(ENOENT));
    assert_eq!(errno(m.update(&[0; 4], &[0; 4], 0)), Err(EINVAL));
    assert_eq!(errno(m.update(&[0; 8], &[0; 4], 0)), Ok(()));
    assert_eq!(errno(m.update(&[0; 8], &[0; 4], BPF_NOEXIST)), Err(EEXIST));
}

// ---- the socket-redirect object in the VM ------------------------------------------

fn kernel_object(name: &str) -> Instance {
    let path = format!(
        "{}/../../bpf/kernel/{name}.bpf.o",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap();
    Instance::load(&bpfkit_object::parse(&bytes).unwrap()).unwrap()
}

/// The registry id of the object's map `name`.
fn map_id(inst: &Instance, name: &str) -> u32 {
    let m = inst.map(name).unwrap();
    (0..inst.registry().len() as u32)
        .find(|&id| Arc::ptr_eq(&inst.registry().get(id).unwrap(), &m))
        .unwrap()
}

/// The object's .bss as u64s.
fn bss(inst: &Instance) -> Vec<u64> {
    let v = inst.map(".bss").unwrap().lookup(&k(0)).unwrap();
    v.chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn the_sockmap_object_loads_and_redirects_streams() {
    let inst = kernel_object("sockmap_redirect");
    assert!(inst.map("sock_pair").is_some());
    assert!(inst.map("sock_by_port").is_some());
    let frame = {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f
    };
    // No port route: the data passes without a redirect.
    let run = inst.run_packet("redirect_to_peer", &frame).unwrap();
    assert_eq!((run.retval, run.redirect), (1, None));

    // The run's skb has local_port 0: route it from index 0 to the socket
    // at index 1.
    let port_index = inst.map("port_index").unwrap();
    port_index.update(&k(0), &k(0), BPF_ANY).unwrap();
    // Index 1 is empty: SK_DROP.
    let run = inst.run_packet("redirect_to_peer", &frame).unwrap();
    assert_eq!((run.retval, run.redirect), (0, None));
    let sock_pair = inst.map("sock_pair").unwrap();
    sock_pair.update(&k(1), &k(42), BPF_ANY).unwrap();
    let run = inst.run_packet("redirect_to_peer", &frame).unwrap();
    assert_eq!(run.retval, 1);
    assert_eq!(
        run.redirect,
        Some(Redirect::Socket {
            map: map_id(&inst, "sock_pair"),
            key: k(1).to_vec(),
            flags: 0,
        })
    );
    // redirected_bytes (.bss offset 0): skb->len (the frame from its
    // network header) of the two runs that found a route.
    assert_eq!(bss(&inst)[0], 2 * 46);
}

#[test]
fn the_sockmap_object_redirects_messages_by_port() {
    let inst = kernel_object("sockmap_redirect");
    // struct sk_msg_md: local_port (host order) at offset 64.
    let mut md = vec![0u8; 80];
    md[64..68].copy_from_slice(&k(5000));
    let out = inst.run_memory("redirect_msg", &mut md).unwrap();
    assert_eq!(out.r0, 1, "no route: SK_PASS");
    inst.map("msg_route")
        .unwrap()
        .update(&k(5000), &k(6000), BPF_ANY)
        .unwrap();
    let out = inst.run_memory("redirect_msg", &mut md).unwrap();
    assert_eq!(out.r0, 0, "no socket for port 6000: SK_DROP");
    inst.map("sock_by_port")
        .unwrap()
        .update(&k(6000), &k(7), BPF_ANY)
        .unwrap();
    let out = inst.run_memory("redirect_msg", &mut md).unwrap();
    assert_eq!(out.r0, 1, "redirected: SK_PASS");
    // redirected_msgs (.bss offset 8): the two runs that found a route.
    assert_eq!(bss(&inst)[1], 2);
}
