//! bpfkit's kernel engine: programs loaded into Linux through bpf(2).
//!
//! This is its first part: [`load`] a raw instruction slice as a program of a
//! given [`ProgType`] (the verifier's log comes back in a typed
//! [`LoadError`] when the kernel refuses it), run it with
//! `BPF_PROG_TEST_RUN` ([`Program::test_run`]), and [`probe`] whether this
//! process may load programs at all. ELF objects, maps and attachment come
//! next, on aya (pinned `=0.14.0`); see [`sys`] for why these calls do not go
//! through it.
//!
//! ```no_run
//! use bpfkit_isa::{asm::assemble, Dialect};
//! use bpfkit_kernel::{load, LoadOptions, ProgType, TestRun};
//!
//! let insns = assemble("mov %r0, 2\nexit", Dialect::Conformance).unwrap();
//! let prog = load(&insns, &LoadOptions::new(ProgType::Xdp)).unwrap();
//! let out = prog.test_run(&TestRun::new(&[0u8; 64])).unwrap();
//! assert_eq!(out.retval, 2); // XDP_PASS
//! ```

pub mod caps;
pub mod events;
pub mod kconfig;
mod log;
pub mod maps;

/// An error and its causes on one line (aya's errors keep the syscall's
/// reason in their sources).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

pub mod object;
pub mod pin;
mod probe;
pub mod setup;
pub mod sys;
pub mod usdt;

pub use log::VerifierLog;
pub use probe::{probe, Unavailable};

use bpfkit_isa::RawInsn;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use sys::{Bpf, ProgLoadAttr, Syscall, TestRunAttr};
use thiserror::Error;

/// Program types (`enum bpf_prog_type`) this crate knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProgType {
    SocketFilter,
    SchedCls,
    Xdp,
    /// Any other `enum bpf_prog_type` value.
    Other(u32),
}

impl ProgType {
    pub const fn raw(self) -> u32 {
        match self {
            ProgType::SocketFilter => 1,
            ProgType::SchedCls => 3,
            ProgType::Xdp => 6,
            ProgType::Other(v) => v,
        }
    }
}

/// When the verifier log is requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogMode {
    /// Never: a refused program's error carries an empty log.
    Never,
    /// Load without a log (the verifier runs fastest so); if the kernel
    /// refuses the program, load it once more at log level 1 to capture why.
    /// The verifier is deterministic, so the second verdict is the first.
    OnError,
    /// Always log at this level (1: instructions and states; 2: verbose);
    /// the log of an accepted program is kept in [`Program::verifier_log`].
    Always(u32),
}

/// How to load a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    pub prog_type: ProgType,
    /// `expected_attach_type` (0 for the program types above).
    pub expected_attach_type: u32,
    /// Program name (the kernel keeps at most 15 bytes of it).
    pub name: String,
    pub license: String,
    pub log: LogMode,
    /// First size of the log buffer; grown on ENOSPC.
    pub log_size: usize,
    /// `prog_flags` (`BPF_F_*`).
    pub flags: u32,
    /// With which capabilities the verifier checks the program.
    pub privilege: Privilege,
}

/// The capabilities the verifier sees while it checks a program. It is more
/// lenient with a loader that has CAP_PERFMON (or CAP_SYS_ADMIN): it lets such
/// a program read uninitialised stack, compare pointers and leak them into
/// memory or r0, and it leaves out its Spectre mitigations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Privilege {
    /// The process's own capabilities (root: the lenient verifier).
    #[default]
    Process,
    /// Load from a short-lived thread whose effective capabilities are
    /// reduced to CAP_BPF and CAP_NET_ADMIN (capabilities are per thread in
    /// Linux), so the verifier refuses what a CAP_BPF-only loader may not do:
    /// every accepted program's behaviour then depends on its input only,
    /// not on addresses or stale stack contents.
    BpfOnly,
}

/// Default first size of the verifier log buffer (4 MiB).
pub const DEFAULT_LOG_SIZE: usize = 4 << 20;
/// The largest log buffer the loader grows to (the kernel's own limit is
/// `u32::MAX >> 2`).
pub const MAX_LOG_SIZE: usize = 256 << 20;

impl LoadOptions {
    pub fn new(prog_type: ProgType) -> Self {
        LoadOptions {
            prog_type,
            expected_attach_type: 0,
            name: String::new(),
            license: "GPL".into(),
            log: LogMode::OnError,
            log_size: DEFAULT_LOG_SIZE,
            flags: 0,
            privilege: Privilege::Process,
        }
    }

    pub fn privilege(mut self, privilege: Privilege) -> Self {
        self.privilege = privilege;
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    pub fn log(mut self, log: LogMode) -> Self {
        self.log = log;
        self
    }
}

/// Why a program could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The verifier refused the program; the log says why.
    #[error("the verifier rejected the program ({source}): {}", log.error_line())]
    Rejected { source: io::Error, log: VerifierLog },
    /// The program has more instructions than the kernel takes, or the
    /// verifier gave up on it (it walked its limit of 1M instructions or
    /// 8192 jumps on one path). The log is not captured: logging that walk
    /// takes many times longer than the walk.
    #[error("the program is too large or too complex for the verifier ({source})")]
    TooLarge { source: io::Error },
    /// The process may not load programs of this type.
    #[error(
        "permission denied loading a BPF program ({source}); {}",
        probe::privilege_hint()
    )]
    PermissionDenied { source: io::Error },
    /// bpf(2) failed without a verifier log (bad attribute, out of memory,
    /// kernel without the feature).
    #[error("bpf(BPF_PROG_LOAD) failed: {source}")]
    Syscall { source: io::Error },
    #[error("program is empty")]
    Empty,
    #[error("{what} contains a NUL byte")]
    Nul { what: &'static str },
    /// Dropping capabilities for [`Privilege::BpfOnly`] failed.
    #[error("could not reduce the loading thread's capabilities: {source}")]
    Capabilities { source: io::Error },
}

impl LoadError {
    /// The verifier log, when the kernel gave one.
    pub fn verifier_log(&self) -> Option<&VerifierLog> {
        match self {
            LoadError::Rejected { log, .. } => Some(log),
            _ => None,
        }
    }
}

/// A program loaded into the kernel; dropping it closes its file descriptor
/// (the kernel frees the program once nothing else holds it).
#[derive(Debug)]
pub struct Program {
    fd: OwnedFd,
    prog_type: ProgType,
    log: Option<VerifierLog>,
}

/// Loads `insns` into the kernel.
pub fn load(insns: &[RawInsn], opts: &LoadOptions) -> Result<Program, LoadError> {
    match opts.privilege {
        Privilege::Process => load_with(&Syscall, insns, opts),
        Privilege::BpfOnly => std::thread::scope(|s| {
            s.spawn(|| {
                caps::keep_only_bpf().map_err(|source| LoadError::Capabilities { source })?;
                load_with(&Syscall, insns, opts)
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        }),
    }
}

/// [`load`] through a given [`Bpf`] implementation.
pub fn load_with(
    bpf: &impl Bpf,
    insns: &[RawInsn],
    opts: &LoadOptions,
) -> Result<Program, LoadError> {
    if insns.is_empty() {
        return Err(LoadError::Empty);
    }
    let bytes: Vec<u8> = bpfkit_isa::slots_to_bytes(insns);
    let license =
        CString::new(opts.license.as_str()).map_err(|_| LoadError::Nul { what: "license" })?;
    let mut name = [0u8; sys::OBJ_NAME_LEN];
    for (d, s) in name
        .iter_mut()
        .zip(opts.name.bytes().take(sys::OBJ_NAME_LEN - 1))
    {
        if s == 0 {
            return Err(LoadError::Nul { what: "name" });
        }
        // The kernel accepts only alphanumerics, '_' and '.' in names.
        *d = if s.is_ascii_alphanumeric() || s == b'.' {
            s
        } else {
            b'_'
        };
    }
    let attempt = |level: u32, log: &mut [u8]| {
        let mut attr = ProgLoadAttr {
            prog_type: opts.prog_type.raw(),
            insn_cnt: insns.len() as u32,
            insns: bytes.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_flags: opts.flags,
            prog_name: name,
            expected_attach_type: opts.expected_attach_type,
            ..Default::default()
        };
        if level > 0 && !log.is_empty() {
            log[0] = 0;
            attr.log_level = level;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
        }
        let r = bpf.prog_load(&mut attr);
        (r, attr.log_true_size as usize)
    };
    let wrap = |fd: i32, log: Option<VerifierLog>| Program {
        // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor that
        // nothing else owns.
        fd: unsafe { OwnedFd::from_raw_fd(fd) },
        prog_type: opts.prog_type,
        log,
    };
    let first_level = match opts.log {
        LogMode::Always(level) => level,
        LogMode::Never | LogMode::OnError => 0,
    };
    if first_level == 0 {
        let (r, _) = attempt(0, &mut []);
        match r {
            Ok(fd) => return Ok(wrap(fd, None)),
            Err(e) if opts.log == LogMode::Never => {
                return Err(classify(e, VerifierLog::default()))
            }
            Err(e) if e.raw_os_error() == Some(libc::E2BIG) => {
                return Err(LoadError::TooLarge { source: e })
            }
            Err(_) => {}
        }
    }
    // With a log: grow the buffer while the kernel says it was too small.
    let level = first_level.max(1);
    let mut size = opts.log_size.clamp(4096, MAX_LOG_SIZE);
    loop {
        let mut buf = vec![0u8; size];
        let (r, true_size) = attempt(level, &mut buf);
        let log = VerifierLog::from_buffer(&buf);
        match r {
            Ok(fd) => return Ok(wrap(fd, Some(log))),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && size < MAX_LOG_SIZE => {
                size = true_size.max(size * 4).min(MAX_LOG_SIZE);
            }
            Err(e) => return Err(classify(e, log)),
        }
    }
}

fn classify(source: io::Error, log: VerifierLog) -> LoadError {
    if !log.is_empty() {
        LoadError::Rejected { source, log }
    } else if source.raw_os_error() == Some(libc::E2BIG) {
        LoadError::TooLarge { source }
    } else if source.raw_os_error() == Some(libc::EPERM) {
        LoadError::PermissionDenied { source }
    } else {
        LoadError::Syscall { source }
    }
}

/// Inputs of one `BPF_PROG_TEST_RUN`.
#[derive(Clone, Debug)]
pub struct TestRun<'a> {
    /// The packet (XDP, SCHED_CLS, socket filter: at least 14 bytes, an
    /// Ethernet header).
    pub data_in: &'a [u8],
    /// Capacity of the output packet buffer; `None`: the input length plus
    /// a page, enough for any packet a program can grow.
    pub data_out_len: Option<usize>,
    /// Context passed in (`struct xdp_md`, `struct __sk_buff`), if any.
    pub ctx_in: Option<&'a [u8]>,
    /// Capacity of the output context buffer (0: no context out).
    pub ctx_out_len: usize,
    /// How many times to run (the reported duration is the mean).
    pub repeat: u32,
    /// `BPF_F_TEST_*` flags.
    pub flags: u32,
}

impl<'a> TestRun<'a> {
    pub fn new(data_in: &'a [u8]) -> Self {
        TestRun {
            data_in,
            data_out_len: None,
            ctx_in: None,
            ctx_out_len: 0,
            repeat: 1,
            flags: 0,
        }
    }

    pub fn repeat(mut self, repeat: u32) -> Self {
        self.repeat = repeat;
        self
    }
}

/// What one `BPF_PROG_TEST_RUN` returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRunOutput {
    /// The program's return value (the kernel reports 32 bits).
    pub retval: u32,
    /// Mean duration of one run in nanoseconds.
    pub duration_ns: u32,
    /// The packet after the run.
    pub data_out: Vec<u8>,
    /// The context after the run, when `ctx_out_len` was set.
    pub ctx_out: Vec<u8>,
}

#[derive(Debug, Error)]
pub enum TestRunError {
    /// The output buffer was too small: the kernel needed `needed` bytes.
    #[error("test run output needs {needed} bytes, the buffer has {capacity}")]
    DataOutTooSmall { needed: usize, capacity: usize },
    #[error("input of {len} bytes is larger than bpf(2) takes")]
    TooLarge { len: usize },
    #[error("bpf(BPF_PROG_TEST_RUN) failed: {source}")]
    Syscall { source: io::Error },
}

impl Program {
    pub fn prog_type(&self) -> ProgType {
        self.prog_type
    }

    /// The verifier log of the load, with [`LogMode::Always`].
    pub fn verifier_log(&self) -> Option<&VerifierLog> {
        self.log.as_ref()
    }

    /// Runs the program once (or `repeat` times) on the given input.
    pub fn test_run(&self, run: &TestRun<'_>) -> Result<TestRunOutput, TestRunError> {
        self.test_run_with(&Syscall, run)
    }

    /// [`Program::test_run`] through a given [`Bpf`] implementation.
    pub fn test_run_with(
        &self,
        bpf: &impl Bpf,
        run: &TestRun<'_>,
    ) -> Result<TestRunOutput, TestRunError> {
        test_run_raw(bpf, self.fd.as_raw_fd(), run)
    }
}

/// BPF_PROG_TEST_RUN on any loaded program's descriptor (an object's
/// program loaded through aya, say).
pub fn test_run_fd(fd: BorrowedFd<'_>, run: &TestRun<'_>) -> Result<TestRunOutput, TestRunError> {
    test_run_raw(&Syscall, fd.as_raw_fd(), run)
}

fn test_run_raw(
    bpf: &impl Bpf,
    prog_fd: std::os::fd::RawFd,
    run: &TestRun<'_>,
) -> Result<TestRunOutput, TestRunError> {
    let len32 = |len: usize| u32::try_from(len).map_err(|_| TestRunError::TooLarge { len });
    let out_cap = run.data_out_len.unwrap_or(run.data_in.len() + 4096);
    let mut data_out = vec![0u8; out_cap];
    let mut ctx_out = vec![0u8; run.ctx_out_len];
    let ctx_in = run.ctx_in.unwrap_or(&[]);
    let mut attr = TestRunAttr {
        prog_fd: prog_fd as u32,
        data_size_in: len32(run.data_in.len())?,
        data_in: ptr_or_null(run.data_in),
        data_size_out: len32(out_cap)?,
        data_out: if out_cap > 0 {
            data_out.as_mut_ptr() as u64
        } else {
            0
        },
        repeat: run.repeat,
        ctx_size_in: len32(ctx_in.len())?,
        ctx_in: ptr_or_null(ctx_in),
        ctx_size_out: len32(ctx_out.len())?,
        ctx_out: if ctx_out.is_empty() {
            0
        } else {
            ctx_out.as_mut_ptr() as u64
        },
        flags: run.flags,
        ..Default::default()
    };
    match bpf.prog_test_run(&mut attr) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
            return Err(TestRunError::DataOutTooSmall {
                needed: attr.data_size_out as usize,
                capacity: out_cap,
            })
        }
        Err(source) => return Err(TestRunError::Syscall { source }),
    }
    data_out.truncate(attr.data_size_out as usize);
    ctx_out.truncate(attr.ctx_size_out as usize);
    Ok(TestRunOutput {
        retval: attr.retval,
        duration_ns: attr.duration,
        data_out,
        ctx_out,
    })
}

fn ptr_or_null(s: &[u8]) -> u64 {
    if s.is_empty() {
        0
    } else {
        s.as_ptr() as u64
    }
}

impl AsFd for Program {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `kernel.bpf_stats_enabled`: run counts and times are only kept while on.
pub fn stats_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::os::fd::IntoRawFd;

    /// A kernel that refuses every load at a log level below `accept_level`,
    /// writes `log` into the buffer (rotating, like Linux: the tail survives
    /// a short buffer and the call fails with ENOSPC), and records calls.
    struct Fake {
        log: &'static str,
        accept_level: u32,
        calls: RefCell<Vec<(u32, u32)>>,
    }

    impl Bpf for Fake {
        fn prog_load(&self, attr: &mut ProgLoadAttr) -> io::Result<i32> {
            self.calls
                .borrow_mut()
                .push((attr.log_level, attr.log_size));
            let need = self.log.len() + 1;
            attr.log_true_size = need as u32;
            if attr.log_level > 0 {
                let size = attr.log_size as usize;
                // SAFETY: the loader passed a buffer of log_size bytes.
                let buf = unsafe { std::slice::from_raw_parts_mut(attr.log_buf as *mut u8, size) };
                let tail = &self.log.as_bytes()[self.log.len().saturating_sub(size - 1)..];
                buf[..tail.len()].copy_from_slice(tail);
                buf[tail.len()] = 0;
                if need > size {
                    return Err(io::Error::from_raw_os_error(libc::ENOSPC));
                }
            }
            if attr.log_level >= self.accept_level {
                Ok(std::fs::File::open("/dev/null")?.into_raw_fd())
            } else {
                Err(io::Error::from_raw_os_error(libc::EACCES))
            }
        }
        fn prog_test_run(&self, attr: &mut TestRunAttr) -> io::Result<()> {
            attr.retval = 2;
            attr.data_size_out = attr.data_size_in + 1;
            Ok(())
        }
    }

    fn insns() -> Vec<RawInsn> {
        bpfkit_isa::asm::assemble("mov %r0, 0\nexit", bpfkit_isa::Dialect::Conformance).unwrap()
    }

    #[test]
    fn a_refused_load_is_retried_with_a_log_and_the_log_is_kept() {
        let fake = Fake {
            log: "0: (b7) r0 = 0\nR1 !read_ok\nprocessed 1 insns (limit 1000000)\n",
            accept_level: u32::MAX,
            calls: RefCell::new(vec![]),
        };
        let err = load_with(&fake, &insns(), &LoadOptions::new(ProgType::Xdp)).unwrap_err();
        let LoadError::Rejected { log, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(log.error_line(), "R1 !read_ok");
        assert!(err.to_string().contains("R1 !read_ok"), "{err}");
        let calls = fake.calls.borrow();
        assert_eq!(calls[0], (0, 0));
        assert_eq!(calls[1], (1, DEFAULT_LOG_SIZE as u32));
    }

    #[test]
    fn a_short_log_buffer_is_grown_to_the_true_size() {
        let long: &'static str = Box::leak(
            (0..2000)
                .map(|i| format!("{i}: (b7) r0 = 0\n"))
                .chain(["invalid access\n".to_string()])
                .collect::<String>()
                .into_boxed_str(),
        );
        let fake = Fake {
            log: long,
            accept_level: u32::MAX,
            calls: RefCell::new(vec![]),
        };
        let opts = LoadOptions {
            log_size: 4096,
            ..LoadOptions::new(ProgType::SocketFilter)
        };
        let err = load_with(&fake, &insns(), &opts).unwrap_err();
        let log = err.verifier_log().unwrap();
        assert_eq!(log.as_str(), long);
        assert_eq!(log.error_line(), "invalid access");
        assert_eq!(fake.calls.borrow().len(), 3);
    }

    #[test]
    fn always_logging_keeps_the_log_of_an_accepted_program() {
        let fake = Fake {
            log: "processed 2 insns\n",
            accept_level: 1,
            calls: RefCell::new(vec![]),
        };
        let prog = load_with(
            &fake,
            &insns(),
            &LoadOptions::new(ProgType::Xdp).log(LogMode::Always(1)),
        )
        .unwrap();
        assert_eq!(prog.verifier_log().unwrap().as_str(), "processed 2 insns\n");
        let out = prog.test_run_with(&fake, &TestRun::new(&[0; 20])).unwrap();
        assert_eq!(out.retval, 2);
        assert_eq!(out.data_out.len(), 21);
    }

    #[test]
    fn a_program_too_complex_is_not_loaded_again_for_its_log() {
        struct TooBig(RefCell<u32>);
        impl Bpf for TooBig {
            fn prog_load(&self, _: &mut ProgLoadAttr) -> io::Result<i32> {
                *self.0.borrow_mut() += 1;
                Err(io::Error::from_raw_os_error(libc::E2BIG))
            }
            fn prog_test_run(&self, _: &mut TestRunAttr) -> io::Result<()> {
                unreachable!()
            }
        }
        let fake = TooBig(RefCell::new(0));
        let err = load_with(&fake, &insns(), &LoadOptions::new(ProgType::Xdp)).unwrap_err();
        assert!(matches!(err, LoadError::TooLarge { .. }), "{err:?}");
        assert_eq!(*fake.0.borrow(), 1);
    }

    #[test]
    fn never_logging_makes_one_call() {
        let fake = Fake {
            log: "x\n",
            accept_level: u32::MAX,
            calls: RefCell::new(vec![]),
        };
        let err = load_with(
            &fake,
            &insns(),
            &LoadOptions::new(ProgType::Xdp).log(LogMode::Never),
        )
        .unwrap_err();
        assert!(matches!(err, LoadError::Syscall { .. }), "{err:?}");
        assert_eq!(fake.calls.borrow().len(), 1);
    }

    #[test]
    fn empty_programs_and_nul_bytes_are_refused_before_the_kernel() {
        let fake = Fake {
            log: "",
            accept_level: 0,
            calls: RefCell::new(vec![]),
        };
        assert!(matches!(
            load_with(&fake, &[], &LoadOptions::new(ProgType::Xdp)),
            Err(LoadError::Empty)
        ));
        let mut opts = LoadOptions::new(ProgType::Xdp);
        opts.license = "G\0PL".into();
        assert!(matches!(
            load_with(&fake, &insns(), &opts),
            Err(LoadError::Nul { what: "license" })
        ));
        assert!(fake.calls.borrow().is_empty());
    }
}
