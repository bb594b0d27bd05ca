//! The memory a program may touch: a small table of host address ranges.
//!
//! eBPF programs compute with real host addresses (as in the kernel), so every
//! load, store and atomic whose safety was not proved at decode time is checked
//! here against the regions the program owns: its stack, its input memory or
//! context, and buffers helpers hand out. Addresses are plain integers; the
//! provenance of each region's pointer is exposed when the region is added and
//! recovered in [`Regions::translate`].

/// One range of host memory a program may access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub writable: bool,
}

impl Region {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// The region table. Lookups scan linearly: a program owns a handful of
/// regions and the most used ones (stack, input) are kept first.
#[derive(Clone, Debug, Default)]
pub struct Regions {
    items: Vec<Region>,
    /// Moves on every change but the stack's start ([`Self::set_start`]),
    /// so a copy of the table (the JIT's) knows when to refresh.
    version: u64,
}

impl Regions {
    pub fn new() -> Self {
        Regions {
            version: 0,
            items: Vec::with_capacity(8),
        }
    }

    /// Adds a readable region backed by `ptr..ptr+len`.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be one live allocation, and the caller keeps it
    /// alive, and unaliased by Rust references, for as long as the region
    /// stays in the table (until the run ends).
    pub unsafe fn add_ro(&mut self, ptr: *const u8, len: usize) -> u64 {
        self.push(ptr.expose_provenance() as u64, len, false)
    }

    /// Adds a readable and writable region.
    ///
    /// # Safety
    /// As [`Self::add_ro`].
    pub unsafe fn add_rw(&mut self, ptr: *mut u8, len: usize) -> u64 {
        self.push(ptr.expose_provenance() as u64, len, true)
    }

    fn push(&mut self, start: u64, len: usize, writable: bool) -> u64 {
        if len > 0 {
            self.version += 1;
            self.items.push(Region {
                start,
                end: start + len as u64,
                writable,
            });
        }
        start
    }

    /// Appends a region (one a map or helper already described).
    pub(crate) fn push_region(&mut self, r: Region) {
        if !r.is_empty() {
            self.version += 1;
            self.items.push(r);
        }
    }

    /// Region `i`.
    pub fn get(&self, i: usize) -> Option<Region> {
        self.items.get(i).copied()
    }

    /// Replaces region `i` (a packet whose head or tail a helper moved).
    pub(crate) fn set(&mut self, i: usize, r: Region) {
        self.version += 1;
        self.items[i] = r;
    }

    /// Moves the start of region `i` (the stack grows and shrinks this way as
    /// frames are entered and left).
    #[inline(always)]
    pub(crate) fn set_start(&mut self, i: usize, start: u64) {
        self.items[i].start = start;
    }

    /// Drops every region after the first `n`.
    pub fn truncate(&mut self, n: usize) {
        self.version += 1;
        self.items.truncate(n);
    }

    /// Changes with every change of the table except the stack's start.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn as_slice(&self) -> &[Region] {
        &self.items
    }

    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        self.items.iter()
    }

    /// The host pointer for `len` bytes at `addr`, if one region holds all of
    /// them (and allows writing when `write`).
    #[inline(always)]
    pub fn translate(&self, addr: u64, len: usize, write: bool) -> Option<*mut u8> {
        let end = addr.checked_add(len as u64)?;
        for r in &self.items {
            if addr >= r.start && end <= r.end && (r.writable || !write) {
                return Some(std::ptr::with_exposed_provenance_mut(addr as usize));
            }
        }
        None
    }

    /// Copies `len` bytes out of program memory.
    pub fn read_bytes(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let p = self.translate(addr, len, false)?;
        // SAFETY: translate checked that [addr, addr+len) lies in a live region.
        Some(unsafe { std::slice::from_raw_parts(p, len) }.to_vec())
    }

    /// Copies bytes into writable program memory.
    pub fn write_bytes(&self, addr: u64, data: &[u8]) -> Option<()> {
        let p = self.translate(addr, data.len(), true)?;
        // SAFETY: translate checked that the range lies in a live writable region.
        unsafe { std::ptr::copy(data.as_ptr(), p, data.len()) };
        Some(())
    }
}
