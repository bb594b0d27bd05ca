//! RINGBUF (kernel/bpf/ringbuf.c).
//!
//! Records take an 8-byte header slot and the data, rounded up to 8 bytes,
//! at positions that grow forever and map to `pos & (size - 1)`, as in the
//! kernel; the header words themselves (length, busy and discard bits) are
//! kept beside the data rather than in it, out of programs' reach. The data area is twice the ring
//! size, so a record that starts near the end continues past it instead of
//! wrapping (the kernel maps the data pages twice for the same effect):
//! programs write their reservations as one contiguous block, and the
//! reader finds each record where it was written.

use super::storage::Storage;
use super::*;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HDR_SZ: u64 = 8;
/// RINGBUF_MAX_RECORD_SZ.
const MAX_RECORD_SZ: u64 = (u32::MAX / 4) as u64;
/// bpf_ringbuf_output's wakeup flags.
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;

#[derive(Debug)]
pub struct RingBuf {
    def: MapDef,
    size: u64,
    mask: u64,
    data: Storage,
    /// Record headers (length with the busy and discard bits), one slot per
    /// 8-byte unit of the ring, indexed by a record's position. They are
    /// kept out of the data the program can write (where the kernel keeps
    /// them inline, behind the verifier): a program scribbling over its
    /// neighbours' bytes cannot corrupt the ring's bookkeeping.
    hdrs: Box<[AtomicU32]>,
    producer: AtomicU64,
    consumer: AtomicU64,
    /// The reservation lock; holds pending_pos, the oldest record not yet
    /// committed, as the kernel tracks it.
    pending: Mutex<u64>,
    /// One host reader at a time.
    reader: Mutex<()>,
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

impl RingBuf {
    pub fn new(def: &MapDef) -> Result<RingBuf, MapError> {
        if def.flags & !create_flags::NUMA_NODE != 0 {
            return Err(invalid(def, format_args!("map flags {:#x}", def.flags)));
        }
        let size = def.max_entries as u64;
        if def.key_size != 0
            || def.value_size != 0
            || !size.is_power_of_two()
            || !size.is_multiple_of(page_size())
        {
            return Err(invalid(
                def,
                "ring buffers need key_size 0, value_size 0 and max_entries a power-of-2 multiple of the page size",
            ));
        }
        Ok(RingBuf {
            def: def.clone(),
            size,
            mask: size - 1,
            data: Storage::new(2 * size as usize)?,
            hdrs: (0..size / HDR_SZ).map(|_| AtomicU32::new(0)).collect(),
            producer: AtomicU64::new(0),
            consumer: AtomicU64::new(0),
            pending: Mutex::new(0),
            reader: Mutex::new(()),
        })
    }

    fn hdr_len(&self, pos: u64) -> &AtomicU32 {
        &self.hdrs[((pos & self.mask) / HDR_SZ) as usize]
    }

    /// __bpf_ringbuf_reserve.
    fn reserve_inner(&self, size: u64) -> Option<u64> {
        if size > MAX_RECORD_SZ {
            return None;
        }
        let len = round8((size + HDR_SZ) as usize) as u64;
        if len > self.size {
            return None;
        }
        let cons = self.consumer.load(Ordering::Acquire);
        let mut pend = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let prod = self.producer.load(Ordering::Relaxed);
        let new_prod = prod + len;
        let mut pend_pos = *pend;
        while pend_pos < prod {
            let l = self.hdr_len(pend_pos).load(Ordering::Acquire);
            if l & BUSY_BIT != 0 {
                break;
            }
            pend_pos += round8(((l & !DISCARD_BIT) as u64 + HDR_SZ) as usize) as u64;
        }
        *pend = pend_pos;
        // Neither the unconsumed data nor the span from the oldest
        // uncommitted record may exceed size - 1 bytes.
        if new_prod - cons > self.mask || new_prod - pend_pos > self.mask {
            return None;
        }
        let off = (prod & self.mask) as usize;
        self.hdr_len(prod)
            .store(size as u32 | BUSY_BIT, Ordering::Release);
        self.producer.store(new_prod, Ordering::Release);
        Some(self.data.addr(off + HDR_SZ as usize))
    }

    /// bpf_ringbuf_reserve: the host address of the record's data, or None
    /// (non-zero flags, too large, no room).
    pub fn reserve(&self, size: u64, flags: u64) -> Option<u64> {
        if flags != 0 {
            return None;
        }
        self.reserve_inner(size)
    }

    /// The header word of the reserved, uncommitted record at `addr`.
    fn reserved_hdr(&self, addr: u64) -> Option<&AtomicU32> {
        let off = addr.checked_sub(self.data.addr(0))?.checked_sub(HDR_SZ)?;
        if off >= self.size || off % 8 != 0 {
            return None;
        }
        let h = self.hdr_len(off);
        (h.load(Ordering::Acquire) & BUSY_BIT != 0).then_some(h)
    }

    fn commit(&self, addr: u64, discard: bool) {
        // Anything but a live reservation of this ring is ignored (the
        // verifier makes that impossible in the kernel).
        if let Some(h) = self.reserved_hdr(addr) {
            let l = h.load(Ordering::Acquire);
            let new = (l & !BUSY_BIT) | if discard { DISCARD_BIT } else { 0 };
            h.store(new, Ordering::Release);
        }
    }

    /// bpf_ringbuf_submit.
    pub fn submit(&self, addr: u64, _flags: u64) {
        self.commit(addr, false)
    }

    /// bpf_ringbuf_discard.
    pub fn discard(&self, addr: u64, _flags: u64) {
        self.commit(addr, true)
    }

    /// bpf_ringbuf_output: EINVAL for unknown flags, EAGAIN without room.
    pub fn output(&self, data: &[u8], flags: u64) -> Result<(), MapError> {
        if flags & !(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP) != 0 {
            return Err(invalid(&self.def, format_args!("output flags {flags:#x}")));
        }
        let addr = self
            .reserve_inner(data.len() as u64)
            .ok_or(MapError::Again)?;
        let off = (addr - self.data.addr(0)) as usize;
        self.data.write(off, data);
        self.commit(addr, false);
        Ok(())
    }

    /// bpf_ringbuf_query.
    pub fn query(&self, flag: u64) -> u64 {
        let cons = self.consumer.load(Ordering::Acquire);
        let prod = self.producer.load(Ordering::Acquire);
        match flag {
            BPF_RB_AVAIL_DATA => prod - cons,
            BPF_RB_RING_SIZE => self.size,
            BPF_RB_CONS_POS => cons,
            BPF_RB_PROD_POS => prod,
            _ => 0,
        }
    }

    /// The next committed record, skipping discarded ones; None when the
    /// ring is empty or the next record is still reserved.
    pub fn read(&self) -> Option<Vec<u8>> {
        let _g = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        let mut cons = self.consumer.load(Ordering::Acquire);
        loop {
            let prod = self.producer.load(Ordering::Acquire);
            if cons >= prod {
                return None;
            }
            let l = self.hdr_len(cons).load(Ordering::Acquire);
            if l & BUSY_BIT != 0 {
                return None;
            }
            let len = (l & !DISCARD_BIT) as u64;
            let off = (cons & self.mask) as usize + HDR_SZ as usize;
            let rec = (l & DISCARD_BIT == 0).then(|| self.data.read(off, len as usize));
            cons += round8((len + HDR_SZ) as usize) as u64;
            self.consumer.store(cons, Ordering::Release);
            if rec.is_some() {
                return rec;
            }
        }
    }

    /// Every committed record available now.
    pub fn drain(&self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.read()).collect()
    }
}

impl BpfMap for RingBuf {
    fn def(&self) -> &MapDef {
        &self.def
    }

    fn lookup(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        check_key(&self.def, key)?;
        Err(MapError::NotSupported)
    }

    fn update(&self, key: &[u8], _value: &[u8], _flags: u64) -> Result<(), MapError> {
        check_key(&self.def, key)?;
        Err(MapError::NotSupported)
    }

    fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        check_key(&self.def, key)?;
        Err(MapError::NotSupported)
    }

    fn get_next_key(&self, key: Option<&[u8]>) -> Result<Vec<u8>, MapError> {
        if let Some(k) = key {
            check_key(&self.def, k)?;
        }
        Err(MapError::NotSupported)
    }

    fn lookup_and_delete(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        check_key(&self.def, key)?;
        Err(MapError::NotSupported)
    }

    fn regions(&self) -> Vec<Region> {
        vec![self.data.region(true)]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
