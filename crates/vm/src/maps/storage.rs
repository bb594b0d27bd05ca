//! Value storage: one zeroed, 8-byte-aligned block allocated when the map is
//! created and freed only when the map is dropped, so the addresses programs
//! hold stay valid for the map's life.

use super::MapError;
use crate::memory::Region;
use std::alloc::Layout;
use std::ptr::NonNull;

pub(crate) struct Storage {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the block is plain bytes shared like kernel map memory; every
// access goes through raw pointers within bounds (see the module docs of
// `maps` for the data-race contract, which mirrors the kernel's).
unsafe impl Send for Storage {}
unsafe impl Sync for Storage {}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({:#x}, {} bytes)", self.addr(0), self.len())
    }
}

impl Storage {
    /// `len` zeroed bytes; ENOMEM when the allocation fails, as the kernel
    /// gives for a map too large to allocate.
    pub(crate) fn new(len: usize) -> Result<Storage, MapError> {
        let layout = Layout::from_size_align(len.max(8), 8).map_err(|_| MapError::NoSpace)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or(MapError::NoSpace)?;
        Ok(Storage { ptr, layout })
    }

    /// A block of `count * size` bytes, ENOMEM on overflow.
    pub(crate) fn array(count: usize, size: usize) -> Result<Storage, MapError> {
        Storage::new(count.checked_mul(size).ok_or(MapError::NoSpace)?)
    }

    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }

    pub(crate) fn addr(&self, off: usize) -> u64 {
        self.ptr.as_ptr().expose_provenance() as u64 + off as u64
    }

    pub(crate) fn ptr(&self, off: usize) -> *mut u8 {
        debug_assert!(off <= self.len());
        // SAFETY: callers pass offsets within the block.
        unsafe { self.ptr.as_ptr().add(off) }
    }

    /// Copies `len` bytes at `off` out (clamped to the block).
    pub(crate) fn read(&self, off: usize, len: usize) -> Vec<u8> {
        let len = len.min(self.len().saturating_sub(off));
        let mut v = vec![0u8; len];
        // SAFETY: [off, off+len) lies in the block.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr(off), v.as_mut_ptr(), len) };
        v
    }

    /// Copies `data` in at `off` (clamped to the block).
    pub(crate) fn write(&self, off: usize, data: &[u8]) {
        let len = data.len().min(self.len().saturating_sub(off));
        // SAFETY: [off, off+len) lies in the block.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr(off), len) };
    }

    pub(crate) fn zero(&self, off: usize, len: usize) {
        let len = len.min(self.len().saturating_sub(off));
        // SAFETY: [off, off+len) lies in the block.
        unsafe { std::ptr::write_bytes(self.ptr(off), 0, len) };
    }

    pub(crate) fn region(&self, writable: bool) -> Region {
        Region {
            start: self.addr(0),
            end: self.addr(self.len()),
            writable,
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}
