//! The context of packet programs (XDP, tc, socket filters, cgroup skb),
//! laid out as BPF_PROG_TEST_RUN lays out its input (net/bpf/test_run.c).

use super::fields::{
    sk_buff as skb, xdp_md, SHADOW_SIZE, SKB_SHADOW, SK_BUFF_SIZE, XDP_MD_SIZE, XDP_SHADOW,
};
use super::ContextKind;
use crate::memory::{Region, Regions};
use crate::Entry;

/// XDP_PACKET_HEADROOM.
pub const XDP_HEADROOM: usize = 256;
/// The frame an XDP test run allocates: one page.
pub const XDP_FRAME: usize = 4096;
/// SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86-64: the tail of the
/// frame XDP programs cannot grow into.
pub const XDP_TAILROOM: usize = 320;
/// sizeof(struct xdp_frame): the start of the headroom XDP programs cannot
/// move their data (or metadata) into.
pub const XDP_FRAME_HEADER: usize = 40;
/// The largest XDP metadata area (xdp_metalen_invalid).
pub const XDP_META_MAX: usize = 255;
/// NET_SKB_PAD + NET_IP_ALIGN on x86-64: the headroom of a test-run skb.
pub const SKB_HEADROOM: usize = 64;
/// ETH_HLEN.
pub const ETH_HLEN: usize = 14;
/// The ifindex of the loopback device test runs use.
pub const LOOPBACK_IFINDEX: u32 = 1;

/// Heap memory reached only through raw pointers, so the program (through
/// its regions) and helpers (through `self`) may both access it.
pub(crate) struct RawBuf {
    ptr: *mut u64,
    words: usize,
    len: usize,
}

// SAFETY: the buffer is owned exclusively by its RawBuf.
unsafe impl Send for RawBuf {}
// SAFETY: shared access only reads; writes need &mut RawBuf.
unsafe impl Sync for RawBuf {}

impl RawBuf {
    fn new(len: usize) -> RawBuf {
        let need = len.div_ceil(8).max(1);
        // A buffer a previous run on this thread released, zeroed as far as
        // this run can reach: a packet run then costs no allocation.
        if let Some((ptr, words)) = SPARE.with(|s| s.borrow_mut().take(need)) {
            // SAFETY: a spare buffer holds `words` >= `need` u64s.
            unsafe { std::ptr::write_bytes(ptr, 0, need) };
            return RawBuf { ptr, words, len };
        }
        let b: Box<[u64]> = vec![0u64; need].into_boxed_slice();
        RawBuf {
            ptr: Box::into_raw(b).cast::<u64>(),
            words: need,
            len,
        }
    }

    pub(crate) fn base(&self) -> *mut u8 {
        self.ptr.cast::<u8>()
    }

    pub(crate) fn addr(&self) -> u64 {
        self.base().addr() as u64
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn read(&self, off: usize, len: usize) -> Vec<u8> {
        let len = len.min(self.len.saturating_sub(off));
        let mut v = vec![0u8; len];
        if len > 0 {
            // SAFETY: off + len <= self.len, inside the allocation.
            unsafe { std::ptr::copy(self.base().add(off), v.as_mut_ptr(), len) };
        }
        v
    }

    pub(crate) fn write(&mut self, off: usize, data: &[u8]) {
        let len = data.len().min(self.len.saturating_sub(off));
        if len > 0 {
            // SAFETY: off + len <= self.len, inside the allocation.
            unsafe { std::ptr::copy(data.as_ptr(), self.base().add(off), len) };
        }
    }

    pub(crate) fn copy_within(&mut self, from: usize, to: usize, len: usize) {
        if from.max(to).saturating_add(len) <= self.len && len > 0 {
            // SAFETY: both ranges lie inside the allocation; copy allows overlap.
            unsafe { std::ptr::copy(self.base().add(from), self.base().add(to), len) };
        }
    }

    pub(crate) fn fill(&mut self, off: usize, len: usize, v: u8) {
        let len = len.min(self.len.saturating_sub(off));
        if len > 0 {
            // SAFETY: off + len <= self.len.
            unsafe { std::ptr::write_bytes(self.base().add(off), v, len) };
        }
    }

    fn put_u32(&mut self, off: usize, v: u32) {
        self.write(off, &v.to_ne_bytes());
    }

    fn put_u64(&mut self, off: usize, v: u64) {
        self.write(off, &v.to_ne_bytes());
    }
}

impl Drop for RawBuf {
    fn drop(&mut self) {
        let (ptr, words) = (self.ptr, self.words);
        let kept = SPARE
            .try_with(|s| s.borrow_mut().keep(ptr, words))
            .unwrap_or(false);
        if !kept {
            free_words(ptr, words);
        }
    }
}

fn free_words(ptr: *mut u64, words: usize) {
    // SAFETY: ptr came from Box::into_raw of a boxed slice of `words`.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, words)) });
}

/// Released packet and context buffers of this thread, for reuse.
struct Spare(Vec<(*mut u64, usize)>);

impl Spare {
    const MAX: usize = 8;

    fn take(&mut self, need: usize) -> Option<(*mut u64, usize)> {
        // Not much larger than needed, so a big frame is not pinned by
        // small ones.
        let i = self
            .0
            .iter()
            .position(|&(_, w)| w >= need && w <= need.saturating_mul(2).max(64))?;
        Some(self.0.swap_remove(i))
    }

    fn keep(&mut self, ptr: *mut u64, words: usize) -> bool {
        if self.0.len() >= Self::MAX {
            return false;
        }
        self.0.push((ptr, words));
        true
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        for (ptr, words) in self.0.drain(..) {
            free_words(ptr, words);
        }
    }
}

thread_local! {
    static SPARE: std::cell::RefCell<Spare> = const { std::cell::RefCell::new(Spare(Vec::new())) };
}

/// The per-run state of a packet program's context (xdp_md or __sk_buff):
/// the packet buffer with its head and tail room, the context memory the
/// program reads, and the pointers helpers move.
pub struct PacketContext {
    pub(crate) kind: ContextKind,
    pub(crate) buf: RawBuf,
    /// Offsets in `buf`: data_meta, data, data_end.
    pub(crate) meta: usize,
    pub(crate) data: usize,
    pub(crate) end: usize,
    /// Offsets in `buf` of the MAC and network headers (skb only).
    pub(crate) mac: usize,
    pub(crate) net: usize,
    /// The uapi struct followed by the 64-bit data, data_end, data_meta.
    pub(crate) ctx: RawBuf,
    uapi_len: usize,
    /// The packet region this context added, and its bounds then.
    region: Option<(usize, Region)>,
}

impl std::fmt::Debug for PacketContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketContext")
            .field("kind", &self.kind)
            .field("frame", &self.buf.len())
            .field("data_meta", &self.meta)
            .field("data", &self.data)
            .field("data_end", &self.end)
            .finish_non_exhaustive()
    }
}

/// The regions and entry registers of a context, as plain addresses: it
/// borrows nothing, so it can set up a run while the [`crate::RunEnv`]
/// holding the context is lent to the interpreter.
#[derive(Clone, Copy, Debug)]
pub struct ContextEntry {
    ctx: *mut u8,
    uapi_len: usize,
    packet: *mut u8,
    packet_len: usize,
    data: u64,
    data_len: u64,
}

impl ContextEntry {
    /// Adds the context and packet regions; returns the entry registers.
    ///
    /// # Safety
    /// The context this entry came from must stay alive, its buffers
    /// unmoved, until the run ends.
    pub(crate) unsafe fn enter(self, regions: &mut Regions) -> Entry {
        // SAFETY: the caller keeps the context's buffers alive for the run;
        // the shadow pointers follow the uapi struct in one allocation.
        let ctx = unsafe {
            let ctx = regions.add_rw(self.ctx, self.uapi_len);
            regions.add_ro(self.ctx.add(self.uapi_len), SHADOW_SIZE);
            regions.add_rw(self.packet, self.packet_len);
            ctx
        };
        Entry {
            args: [ctx, 0, 0, 0, 0],
            packet: (self.data, self.data_len),
        }
    }
}

impl PacketContext {
    /// An XDP context as bpf_prog_test_run_xdp builds it: the packet at
    /// XDP_PACKET_HEADROOM in a one-page frame, data_meta = data, received on
    /// queue 0 of the loopback device. (Packets too long for one page are
    /// kept linear in a larger frame; the kernel would use fragments.)
    pub fn xdp(packet: &[u8]) -> PacketContext {
        let frame = XDP_FRAME.max(XDP_HEADROOM + packet.len() + XDP_TAILROOM);
        let mut buf = RawBuf::new(frame);
        buf.write(XDP_HEADROOM, packet);
        let mut ctx = RawBuf::new(XDP_MD_SIZE + SHADOW_SIZE);
        ctx.put_u32(xdp_md::INGRESS_IFINDEX, LOOPBACK_IFINDEX);
        ctx.put_u32(xdp_md::RX_QUEUE_INDEX, 0);
        ctx.put_u32(xdp_md::EGRESS_IFINDEX, 0);
        let mut c = PacketContext {
            kind: ContextKind::Xdp,
            buf,
            meta: XDP_HEADROOM,
            data: XDP_HEADROOM,
            end: XDP_HEADROOM + packet.len(),
            mac: XDP_HEADROOM,
            net: XDP_HEADROOM,
            ctx,
            uapi_len: XDP_MD_SIZE,
            region: None,
        };
        c.write_shadow();
        c
    }

    /// An __sk_buff context as bpf_prog_test_run_skb builds it from an
    /// Ethernet frame: eth_type_trans on the loopback device sets protocol,
    /// pkt_type and ifindex; tc programs see the frame from its Ethernet
    /// header, socket filters and cgroup skb programs from the network
    /// header. Every other field is zero.
    pub fn skb(kind: ContextKind, packet: &[u8]) -> PacketContext {
        let kind = match kind {
            ContextKind::SocketFilter | ContextKind::CgroupSkb | ContextKind::SkSkb => kind,
            _ => ContextKind::SchedCls,
        };
        let mut buf = RawBuf::new(SKB_HEADROOM + packet.len());
        buf.write(SKB_HEADROOM, packet);
        let mac = SKB_HEADROOM;
        let net = mac + ETH_HLEN.min(packet.len());
        let end = SKB_HEADROOM + packet.len();
        let data = if kind == ContextKind::SchedCls {
            mac
        } else {
            net
        };
        let mut eth = [0u8; 16];
        let n = packet.len().min(16);
        eth[..n].copy_from_slice(&packet[..n]);
        // eth_type_trans: the EtherType, or 802.3 / 802.2 for length fields.
        let proto = u16::from_be_bytes([eth[12], eth[13]]);
        let proto = if proto >= 0x600 {
            proto
        } else if packet.len() >= 16 && eth[14] == 0xff && eth[15] == 0xff {
            0x0001
        } else {
            0x0004
        };
        // The loopback device's address and broadcast address are all zero.
        let dest = &eth[..6];
        let pkt_type = if dest.iter().all(|&b| b == 0) {
            0 // PACKET_HOST
        } else if dest[0] & 1 != 0 {
            2 // PACKET_MULTICAST
        } else {
            3 // PACKET_OTHERHOST
        };
        let mut ctx = RawBuf::new(SK_BUFF_SIZE + SHADOW_SIZE);
        ctx.put_u32(skb::LEN, (end - data) as u32);
        ctx.put_u32(skb::PKT_TYPE, pkt_type);
        ctx.put_u32(
            skb::PROTOCOL,
            u16::from_ne_bytes(proto.to_be_bytes()) as u32,
        );
        ctx.put_u32(skb::IFINDEX, LOOPBACK_IFINDEX);
        if kind == ContextKind::CgroupSkb {
            // The test run's socket takes its family and addresses from the
            // IP header.
            let ip = &packet[packet.len().min(ETH_HLEN)..];
            match proto {
                0x0800 => {
                    ctx.put_u32(skb::FAMILY, 2);
                    if ip.len() >= 20 {
                        ctx.write(skb::LOCAL_IP4, &ip[12..16]);
                        ctx.write(skb::REMOTE_IP4, &ip[16..20]);
                    }
                }
                0x86dd => {
                    ctx.put_u32(skb::FAMILY, 10);
                    if ip.len() >= 40 {
                        ctx.write(skb::LOCAL_IP6, &ip[8..24]);
                        ctx.write(skb::REMOTE_IP6, &ip[24..40]);
                    }
                }
                _ => {}
            }
        }
        let mut c = PacketContext {
            kind,
            buf,
            meta: data,
            data,
            end,
            mac,
            net,
            ctx,
            uapi_len: SK_BUFF_SIZE,
            region: None,
        };
        c.write_shadow();
        c
    }

    pub fn kind(&self) -> ContextKind {
        self.kind
    }

    /// Adds the context memory (the uapi struct writable, the 64-bit packet
    /// pointers after it read-only) and the packet [data_meta, data_end)
    /// to `regions`; returns r1 = the context, and the packet LD_ABS reads.
    ///
    /// # Safety
    /// The context must stay alive, where the regions can reach it (in the
    /// run's environment), until the run ends.
    pub(crate) unsafe fn enter(&mut self, regions: &mut Regions) -> Entry {
        // SAFETY: forwarded to the caller.
        let e = unsafe { self.entry().enter(regions) };
        let r = self.packet_region();
        let i = regions.len().wrapping_sub(1);
        self.region = (!r.is_empty() && regions.get(i) == Some(r)).then_some((i, r));
        e
    }

    /// The addresses [`Self::enter`] adds, without borrowing `self`: for
    /// `Interpreter::run_with` while the context sits in the run's
    /// environment (see [`super::run`]).
    pub(crate) fn entry(&mut self) -> ContextEntry {
        self.region = None;
        self.write_shadow();
        ContextEntry {
            ctx: self.ctx.base(),
            uapi_len: self.uapi_len,
            // SAFETY: meta <= end <= buf.len().
            packet: unsafe { self.buf.base().add(self.meta) },
            packet_len: self.end - self.meta,
            data: self.buf.addr() + self.data as u64,
            data_len: (self.end - self.data) as u64,
        }
    }

    /// The packet after the run, as the test run's data_out: XDP from
    /// data_meta (metadata included) to data_end; tc from data; socket
    /// filters and cgroup skb programs with the Ethernet header the test run
    /// pushes back as zeros.
    pub fn output(&self) -> Vec<u8> {
        match self.kind {
            ContextKind::Xdp => self.buf.read(self.meta, self.end - self.meta),
            ContextKind::SchedCls => self.buf.read(self.data, self.end - self.data),
            _ => {
                let mut v = vec![0u8; ETH_HLEN];
                v.extend(self.buf.read(self.data, self.end - self.data));
                v
            }
        }
    }

    /// The packet from data to data_end.
    pub fn data(&self) -> Vec<u8> {
        self.buf.read(self.data, self.end - self.data)
    }

    /// The metadata area, data_meta to data.
    pub fn metadata(&self) -> Vec<u8> {
        self.buf.read(self.meta, self.data - self.meta)
    }

    /// The context struct (xdp_md or __sk_buff) as the program left it; the
    /// packet pointer fields hold zero.
    pub fn ctx_bytes(&self) -> Vec<u8> {
        self.ctx.read(0, self.uapi_len)
    }

    /// Reads a u32 field of the context.
    pub fn field_u32(&self, off: usize) -> u32 {
        let b = self.ctx.read(off, 4);
        let mut w = [0u8; 4];
        w[..b.len()].copy_from_slice(&b);
        u32::from_ne_bytes(w)
    }

    /// Sets a field of the context before a run (a mark, a cb word).
    pub fn set_field(&mut self, off: usize, bytes: &[u8]) {
        if off < self.uapi_len {
            let n = bytes.len().min(self.uapi_len - off);
            self.ctx.write(off, &bytes[..n]);
        }
    }

    /// Headroom left before data_meta, tailroom after data_end.
    pub fn room(&self) -> (usize, usize) {
        (self.meta, self.buf.len() - self.end)
    }

    fn shadow(&self) -> usize {
        if self.kind == ContextKind::Xdp {
            XDP_SHADOW
        } else {
            SKB_SHADOW
        }
    }

    fn write_shadow(&mut self) {
        let base = self.buf.addr();
        let s = self.shadow();
        self.ctx.put_u64(s, base + self.data as u64);
        self.ctx.put_u64(s + 8, base + self.end as u64);
        self.ctx.put_u64(s + 16, base + self.meta as u64);
    }

    fn packet_region(&self) -> Region {
        let base = self.buf.addr();
        Region {
            start: base + self.meta as u64,
            end: base + self.end as u64,
            writable: true,
        }
    }

    /// After a helper moved data_meta, data or data_end: updates the shadow
    /// pointers and the packet region the program may access.
    pub(crate) fn moved(&mut self, regions: &mut Regions, old: Region) {
        self.write_shadow();
        let new = self.packet_region();
        let idx = match self.region {
            Some((i, r)) if r == old && regions.get(i) == Some(old) => Some(i),
            _ => (0..regions.len())
                .find(|&i| regions.get(i).is_some_and(|r| !old.is_empty() && r == old)),
        };
        match idx {
            Some(i) => {
                regions.set(i, new);
                self.region = Some((i, new));
            }
            None if !new.is_empty() => {
                regions.push_region(new);
                self.region = Some((regions.len() - 1, new));
            }
            None => {}
        }
    }

    /// The current packet region (before a helper moves it).
    pub(crate) fn current_region(&self) -> Region {
        self.packet_region()
    }
}
