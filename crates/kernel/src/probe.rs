//! Whether this process can load and test-run BPF programs.

use crate::{load, LoadError, LoadOptions, LogMode, ProgType, TestRun};
use bpfkit_isa::{AluOp, Instruction, Reg, Source, Width};
use std::io;
use thiserror::Error;

/// Why BPF programs cannot be loaded or run here.
#[derive(Debug, Error)]
pub enum Unavailable {
    #[error("this process may not load BPF programs ({source}): {hint}")]
    NotPermitted { source: io::Error, hint: String },
    #[error("the kernel has no bpf(2) system call (built without CONFIG_BPF_SYSCALL, or blocked by seccomp): {source}")]
    NoSyscall { source: io::Error },
    #[error("loading a trivial XDP program failed: {0}")]
    LoadFailed(LoadError),
    #[error("BPF_PROG_TEST_RUN failed on a trivial XDP program: {0}")]
    TestRunFailed(crate::TestRunError),
    #[error("BPF_PROG_TEST_RUN of `r0 = 2; exit` returned {0}, not 2")]
    WrongResult(u32),
}

/// Loads `r0 = XDP_PASS; exit` as an XDP program and test-runs it once.
pub fn probe() -> Result<(), Unavailable> {
    let insns: Vec<_> = [
        Instruction::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst: Reg::R0,
            src: Source::Imm(2),
        },
        Instruction::Exit,
    ]
    .iter()
    .flat_map(|i| i.encode().as_slice().to_vec())
    .collect();
    let opts = LoadOptions::new(ProgType::Xdp)
        .name("bpfkit_probe")
        .log(LogMode::OnError);
    let prog = load(&insns, &opts).map_err(|e| match e {
        LoadError::PermissionDenied { source } => Unavailable::NotPermitted {
            source,
            hint: privilege_hint(),
        },
        LoadError::Syscall { source } if source.raw_os_error() == Some(libc::ENOSYS) => {
            Unavailable::NoSyscall { source }
        }
        LoadError::Syscall { source } if source.raw_os_error() == Some(libc::EPERM) => {
            Unavailable::NotPermitted {
                source,
                hint: privilege_hint(),
            }
        }
        other => Unavailable::LoadFailed(other),
    })?;
    let out = prog
        .test_run(&TestRun::new(&[0u8; 64]))
        .map_err(Unavailable::TestRunFailed)?;
    if out.retval != 2 {
        return Err(Unavailable::WrongResult(out.retval));
    }
    Ok(())
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;
const CAP_NET_ADMIN: u32 = 12;

/// A sentence on what this process lacks to load programs.
pub(crate) fn privilege_hint() -> String {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| effective_caps(&s));
    let unpriv = std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let missing = match caps {
        Some(c) => {
            let names: Vec<&str> = [
                (CAP_BPF, "CAP_BPF"),
                (CAP_PERFMON, "CAP_PERFMON"),
                (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
                (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
            ]
            .iter()
            .filter(|(bit, _)| c & (1u64 << bit) == 0)
            .map(|(_, n)| *n)
            .collect();
            if names.is_empty() {
                "has CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_SYS_ADMIN (a seccomp filter, LSM or lockdown may refuse bpf(2))".to_string()
            } else {
                format!("lacks {}", names.join(", "))
            }
        }
        None => "has unknown capabilities".into(),
    };
    format!(
        "this process (euid {euid}) {missing}; kernel.unprivileged_bpf_disabled = {unpriv}; \
         run as root, or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN"
    )
}

/// The `CapEff:` mask of a /proc/PID/status text.
pub(crate) fn effective_caps(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_effective_capability_mask() {
        let status =
            "Name:\tcat\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\nCapBnd:\t0\n";
        assert_eq!(effective_caps(status), Some(0x1ff_ffff_ffff));
        assert_eq!(effective_caps("Name: x\n"), None);
    }

    #[test]
    fn the_hint_names_the_process_and_what_to_do() {
        let h = privilege_hint();
        assert!(h.contains("euid"), "{h}");
        assert!(h.contains("CAP_BPF"), "{h}");
    }
}
