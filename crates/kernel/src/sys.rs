//! The few bpf(2) commands this crate issues, with their attribute layouts.
//!
//! Why not aya: aya 0.14 (the version this workspace pins) loads programs only
//! from ELF objects (`Ebpf::load`); its `bpf_load_program` and the attribute
//! structs are `pub(crate)`, so it cannot load a raw instruction slice, which
//! is what the differential runner and the VM's oracle need. Its test-run
//! support is likewise reachable only through programs it loaded. These three
//! calls are small enough to issue directly; the rest of the kernel engine
//! (ELF objects, maps, attach) is to be built on aya.
//!
//! The layouts follow `union bpf_attr` in include/uapi/linux/bpf.h of Linux
//! 6.18. The kernel accepts a shorter attribute than its own (it zero-fills
//! the tail), so each struct stops at the last field used here.

use std::io;

/// `enum bpf_cmd` values.
pub const BPF_PROG_LOAD: u32 = 5;
pub const BPF_PROG_TEST_RUN: u32 = 10;

/// Length of `prog_name` (`BPF_OBJ_NAME_LEN`).
pub const OBJ_NAME_LEN: usize = 16;

/// The `BPF_PROG_LOAD` part of `union bpf_attr`, up to `log_true_size`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; OBJ_NAME_LEN],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
    pub prog_btf_fd: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub func_info_cnt: u32,
    pub line_info_rec_size: u32,
    pub line_info: u64,
    pub line_info_cnt: u32,
    pub attach_btf_id: u32,
    pub attach_prog_fd: u32,
    pub core_relo_cnt: u32,
    pub fd_array: u64,
    pub core_relos: u64,
    pub core_relo_rec_size: u32,
    /// Output (Linux 6.4+): the log size the whole log needs, including its
    /// terminating NUL.
    pub log_true_size: u32,
}

/// The `BPF_PROG_TEST_RUN` part of `union bpf_attr` (`attr.test`).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default)]
pub struct TestRunAttr {
    pub prog_fd: u32,
    pub retval: u32,
    pub data_size_in: u32,
    pub data_size_out: u32,
    pub data_in: u64,
    pub data_out: u64,
    pub repeat: u32,
    pub duration: u32,
    pub ctx_size_in: u32,
    pub ctx_size_out: u32,
    pub ctx_in: u64,
    pub ctx_out: u64,
    pub flags: u32,
    pub cpu: u32,
    pub batch_size: u32,
    /// Padding to the struct's 8-byte alignment; the kernel requires every
    /// byte past the fields it knows to be zero.
    pub _pad: u32,
}

/// The bpf(2) commands the loader needs, behind a trait so unit tests can
/// replace the kernel (the way aya swaps in fake syscalls).
pub trait Bpf {
    /// `BPF_PROG_LOAD`; returns the new program's file descriptor.
    fn prog_load(&self, attr: &mut ProgLoadAttr) -> io::Result<i32>;
    /// `BPF_PROG_TEST_RUN`.
    fn prog_test_run(&self, attr: &mut TestRunAttr) -> io::Result<()>;
}

/// The real system call.
#[derive(Clone, Copy, Debug, Default)]
pub struct Syscall;

impl Syscall {
    /// # Safety
    /// `attr` must point to a valid attribute of `size` bytes for `cmd`, and
    /// every pointer inside it must be valid for what the kernel does with it
    /// (read `insns` and `license`, write `log_buf`, read `data_in`, write
    /// `data_out`) for the stated sizes.
    unsafe fn call<T>(cmd: u32, attr: &mut T) -> io::Result<i64> {
        // SAFETY: forwarded to the caller; bpf(2) reads and writes at most
        // `size_of::<T>()` bytes of `attr`.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd as libc::c_long,
                attr as *mut T as *mut libc::c_void,
                std::mem::size_of::<T>() as libc::c_long,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }
}

impl Bpf for Syscall {
    fn prog_load(&self, attr: &mut ProgLoadAttr) -> io::Result<i32> {
        // libbpf retries BPF_PROG_LOAD on EAGAIN as well: the verifier gives
        // it when interrupted by a signal.
        let mut tries = 0;
        loop {
            // SAFETY: `load` builds `attr` from slices that outlive this call
            // (instructions, licence, log buffer) with their true lengths.
            match unsafe { Syscall::call(BPF_PROG_LOAD, attr) } {
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < 5 => tries += 1,
                Err(e) => return Err(e),
                Ok(fd) => return Ok(fd as i32),
            }
        }
    }

    fn prog_test_run(&self, attr: &mut TestRunAttr) -> io::Result<()> {
        // SAFETY: `test_run` builds `attr` from live buffers with their true
        // lengths.
        unsafe { Syscall::call(BPF_PROG_TEST_RUN, attr) }.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn prog_load_attr_matches_the_uapi_layout() {
        assert_eq!(offset_of!(ProgLoadAttr, insns), 8);
        assert_eq!(offset_of!(ProgLoadAttr, license), 16);
        assert_eq!(offset_of!(ProgLoadAttr, log_level), 24);
        assert_eq!(offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(offset_of!(ProgLoadAttr, func_info), 80);
        assert_eq!(offset_of!(ProgLoadAttr, line_info), 96);
        assert_eq!(offset_of!(ProgLoadAttr, attach_prog_fd), 112);
        assert_eq!(offset_of!(ProgLoadAttr, fd_array), 120);
        assert_eq!(offset_of!(ProgLoadAttr, core_relo_rec_size), 136);
        assert_eq!(offset_of!(ProgLoadAttr, log_true_size), 140);
        assert_eq!(size_of::<ProgLoadAttr>(), 144);
    }

    #[test]
    fn test_run_attr_matches_the_uapi_layout() {
        assert_eq!(offset_of!(TestRunAttr, data_in), 16);
        assert_eq!(offset_of!(TestRunAttr, data_out), 24);
        assert_eq!(offset_of!(TestRunAttr, repeat), 32);
        assert_eq!(offset_of!(TestRunAttr, duration), 36);
        assert_eq!(offset_of!(TestRunAttr, ctx_in), 48);
        assert_eq!(offset_of!(TestRunAttr, ctx_out), 56);
        assert_eq!(offset_of!(TestRunAttr, flags), 64);
        assert_eq!(offset_of!(TestRunAttr, batch_size), 72);
        assert_eq!(size_of::<TestRunAttr>(), 80);
    }
}
