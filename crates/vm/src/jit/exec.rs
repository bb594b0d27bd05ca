//! Executable memory: mapped writable, filled, then switched to read+execute,
//! so no page is ever writable and executable at once (W^X).

use std::io;

/// An anonymous mapping holding machine code, unmapped on drop.
pub(super) struct ExecMem {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned and immutable once built; running it from any
// thread is as safe as running it from the one that built it.
unsafe impl Send for ExecMem {}
// SAFETY: as above; the code only reads the mapping.
unsafe impl Sync for ExecMem {}

impl ExecMem {
    pub(super) fn new(code: &[u8]) -> io::Result<ExecMem> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page = if page > 0 { page as usize } else { 4096 };
        let len = code.len().max(1).div_ceil(page) * page;
        // SAFETY: a fresh private anonymous mapping aliases nothing.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mem = ExecMem {
            ptr: ptr.cast(),
            len,
        };
        // SAFETY: the mapping is `len >= code.len()` bytes, writable, and
        // does not overlap `code`.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), mem.ptr, code.len()) };
        // SAFETY: `ptr..ptr+len` is the mapping made above.
        if unsafe { libc::mprotect(ptr, len, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(mem)
    }

    /// The first `len` bytes of the mapping.
    pub(super) fn bytes(&self, len: usize) -> &[u8] {
        // SAFETY: the mapping is readable, at least `len` bytes when `len`
        // is the code's length, and immutable while `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr, len.min(self.len)) }
    }

    pub(super) fn addr(&self) -> usize {
        self.ptr as usize
    }
}

impl Drop for ExecMem {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` and nothing refers to it once
        // its owner is dropped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}
