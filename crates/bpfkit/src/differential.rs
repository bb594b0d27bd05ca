//! The kernel as oracle: run one program in the Linux kernel and in the VM on
//! the same input, and compare r0 and the memory afterwards.
//!
//! A program body follows the conformance convention: r1 points to the input
//! memory (0 when there is none), r2 holds its length, the result is r0, and
//! bpf-to-bpf calls are allowed. The VM runs the body as it is. The kernel
//! cannot: it runs programs on its own contexts, so [`wrap_xdp`] puts the body
//! behind a small XDP program that the kernel runs with `BPF_PROG_TEST_RUN`
//! on the packet `[8 result bytes][input memory][zero padding]`:
//!
//! ```text
//!   r6 = r1                          ; ctx, callee-saved across the call
//!   r2 = *(u32 *)(r6 + 0)            ; data
//!   r3 = *(u32 *)(r6 + 4)            ; data_end
//!   r4 = r2 ; r4 += 8 + len
//!   if r4 > r3 goto fail             ; now the verifier knows the range
//!   r1 = r2 ; r1 += 8                ; (r1 = 0 when len == 0)
//!   r2 = len ; r3 = 0 ; r4 = 0 ; r5 = 0
//!   call body                        ; bpf-to-bpf: its own stack frame
//!   r2 = *(u32 *)(r6 + 0) ; r3 = *(u32 *)(r6 + 4)
//!   r4 = r2 ; r4 += 8
//!   if r4 > r3 goto fail
//!   *(u64 *)(r2 + 0) = r0            ; all 64 bits of the result
//!   r0 = XDP_PASS ; exit
//! fail:
//!   r0 = XDP_ABORTED ; exit
//! body:
//!   ...                              ; the body's exits return to the caller
//! ```
//!
//! Jumps and local calls in the body are relative, so appending the body
//! keeps them valid. The kernel refuses what its verifier cannot prove safe;
//! such a program has nothing to compare ([`Verdict::Rejected`]).
//!
//! The program is loaded with [`Privilege::BpfOnly`]: as root the verifier
//! would accept programs that read stale stack or leak a pointer, whose
//! kernel result depends on more than the input, and every such program
//! would show up as a false divergence.
//!
//! Entry points: [`check`] (both engines, the real VM), [`check_with`] (the
//! VM side supplied by the caller), [`run_kernel`], [`run_vm`], [`compare`];
//! a [`Divergence`] prints both results, the input and the program as a
//! conformance test vector, and [`minimize`] shrinks a diverging program.
//! `cargo run -p bpfkit --example diff` runs one program from the command
//! line.

use bpfkit_isa::disasm::disassemble;
use bpfkit_isa::{
    decode_all, AluOp, CallKind, Dialect, Instruction, JmpCond, RawInsn, Reg, Size, Source, Width,
};
use bpfkit_kernel::{LoadError, LoadOptions, LogMode, Privilege, ProgType, TestRun, TestRunError};
use std::fmt;
use thiserror::Error;

/// Bytes in front of the input memory in the packet, where the wrapper
/// stores r0.
pub const RESULT_BYTES: usize = 8;
/// The packet is padded with zeros to at least this many bytes (the kernel
/// wants at least an Ethernet header, 14 bytes, for an XDP test run).
pub const MIN_PACKET: usize = 64;
/// The largest input memory the wrapper takes: an XDP test-run packet must
/// fit a page with the kernel's headroom and tailroom.
pub const MAX_MEM: usize = 3072;

const XDP_ABORTED: i32 = 0;
const XDP_PASS: u32 = 2;

/// Why the wrapper could not be built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum WrapError {
    #[error("input memory of {0} bytes is larger than the {MAX_MEM} bytes an XDP test run takes")]
    MemTooLarge(usize),
    #[error("program is empty")]
    Empty,
}

/// Builds the XDP program that runs `body` as a subprogram on `mem_len` bytes
/// of input memory; see the module documentation.
pub fn wrap_xdp(body: &[RawInsn], mem_len: usize) -> Result<Vec<RawInsn>, WrapError> {
    if body.is_empty() {
        return Err(WrapError::Empty);
    }
    if mem_len > MAX_MEM {
        return Err(WrapError::MemTooLarge(mem_len));
    }
    let (r0, r1, r2, r3, r4, r5, r6) = (
        Reg::R0,
        Reg::R1,
        Reg::R2,
        Reg::R3,
        Reg::R4,
        Reg::R5,
        Reg::R6,
    );
    let alu = |op, dst, src| Instruction::Alu {
        width: Width::W64,
        op,
        dst,
        src,
    };
    let mov_r = |dst, src| alu(AluOp::Mov, dst, Source::Reg(src));
    let mov_k = |dst, k| alu(AluOp::Mov, dst, Source::Imm(k));
    let add_k = |dst, k| alu(AluOp::Add, dst, Source::Imm(k));
    let ctx_u32 = |dst, off| Instruction::Load {
        size: Size::W,
        signed: false,
        dst,
        src: r6,
        off,
    };
    // `if r4 > r3 goto fail`; the offset is patched below.
    let check = Instruction::Jump {
        width: Width::W64,
        cond: JmpCond::Gt,
        dst: r4,
        src: Source::Reg(r3),
        off: 0,
    };
    let len = mem_len as i32;
    let mut p = vec![
        mov_r(r6, r1),
        ctx_u32(r2, 0),
        ctx_u32(r3, 4),
        mov_r(r4, r2),
        add_k(r4, RESULT_BYTES as i32 + len),
        check,
    ];
    if mem_len > 0 {
        p.extend([mov_r(r1, r2), add_k(r1, RESULT_BYTES as i32)]);
    } else {
        p.push(mov_k(r1, 0));
    }
    p.extend([mov_k(r2, len), mov_k(r3, 0), mov_k(r4, 0), mov_k(r5, 0)]);
    let call_at = p.len();
    p.push(Instruction::Call {
        kind: CallKind::Local,
        imm: 0,
    });
    p.extend([
        ctx_u32(r2, 0),
        ctx_u32(r3, 4),
        mov_r(r4, r2),
        add_k(r4, RESULT_BYTES as i32),
        check,
        Instruction::Store {
            size: Size::DW,
            dst: r2,
            src: r0,
            off: 0,
        },
        mov_k(r0, XDP_PASS as i32),
        Instruction::Exit,
    ]);
    let fail = p.len();
    p.extend([mov_k(r0, XDP_ABORTED), Instruction::Exit]);
    let body_at = p.len();
    // Every wrapper instruction is one slot, so indices are slot numbers.
    for (i, insn) in p.iter_mut().enumerate() {
        match insn {
            Instruction::Jump { off, .. } => *off = (fail - i - 1) as i16,
            Instruction::Call { imm, .. } if i == call_at => *imm = (body_at - i - 1) as i32,
            _ => {}
        }
    }
    let mut out: Vec<RawInsn> = p
        .iter()
        .flat_map(|i| i.encode().as_slice().to_vec())
        .collect();
    out.extend_from_slice(body);
    Ok(out)
}

/// The packet the wrapper runs on: room for the result, the input memory,
/// zero padding up to [`MIN_PACKET`].
pub fn packet(mem: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; RESULT_BYTES];
    p.extend_from_slice(mem);
    if p.len() < MIN_PACKET {
        p.resize(MIN_PACKET, 0);
    }
    p
}

/// Why a program cannot be compared in the kernel at all: it calls
/// something that is not the same function there (the conformance suite's
/// helpers are not the kernel's), or the kernel has no such instruction.
pub fn kernel_incompatibility(body: &[RawInsn]) -> Option<&'static str> {
    let insns = match decode_all(body) {
        Ok(i) => i,
        Err(_) => return Some("does not decode"),
    };
    insns.iter().find_map(|l| match l.insn {
        Instruction::Call {
            kind: CallKind::Helper,
            ..
        } => Some("calls a helper"),
        Instruction::Call {
            kind: CallKind::Kfunc,
            ..
        } => Some("calls a kfunc (call runtime)"),
        Instruction::CallReg { .. } => Some("uses callx"),
        Instruction::LoadPacket { .. } => Some("uses legacy packet loads (LD_ABS/LD_IND)"),
        _ => None,
    })
}

/// What one engine left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub r0: u64,
    /// The input memory after the run.
    pub mem: Vec<u8>,
}

/// Why the kernel side produced no outcome.
#[derive(Debug, Error)]
pub enum KernelError {
    #[error(transparent)]
    Wrap(#[from] WrapError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    TestRun(#[from] TestRunError),
    #[error(
        "the wrapper's range check failed (XDP returned {retval}, packet of {len} bytes came back)"
    )]
    Wrapper { retval: u32, len: usize },
}

/// Runs `body` in the kernel on a copy of `mem`.
pub fn run_kernel(body: &[RawInsn], mem: &[u8]) -> Result<Outcome, KernelError> {
    let prog = wrap_xdp(body, mem.len())?;
    // As root the verifier would let a program read stale stack or leak a
    // pointer, and the kernel's result would then depend on more than the
    // input; a CAP_BPF-only verifier refuses such programs.
    let opts = LoadOptions::new(ProgType::Xdp)
        .name("bpfkit_diff")
        .log(LogMode::OnError)
        .privilege(Privilege::BpfOnly);
    let loaded = bpfkit_kernel::load(&prog, &opts)?;
    let pkt = packet(mem);
    let out = loaded.test_run(&TestRun::new(&pkt))?;
    let end = RESULT_BYTES + mem.len();
    if out.retval != XDP_PASS || out.data_out.len() < end {
        return Err(KernelError::Wrapper {
            retval: out.retval,
            len: out.data_out.len(),
        });
    }
    Ok(Outcome {
        r0: u64::from_le_bytes(out.data_out[..RESULT_BYTES].try_into().expect("8 bytes")),
        mem: out.data_out[RESULT_BYTES..end].to_vec(),
    })
}

/// Runs `body` in the VM (no helpers registered) on a copy of `mem`.
/// Errors are returned as text: any VM error where the kernel succeeded is
/// itself a divergence.
pub fn run_vm(body: &[RawInsn], mem: &[u8]) -> Result<Outcome, String> {
    let prog = bpfkit_vm::Program::new(body).map_err(|e| format!("VM refused the program: {e}"))?;
    let helpers = bpfkit_vm::Helpers::new();
    let mut vm = bpfkit_vm::Interpreter::new(&prog, &helpers)
        .map_err(|e| format!("VM refused the program: {e}"))?;
    let mut m = mem.to_vec();
    let out = vm.run(&mut m).map_err(|e| format!("VM run failed: {e}"))?;
    Ok(Outcome { r0: out.r0, mem: m })
}

/// The result of running one program in both engines.
#[derive(Debug)]
pub enum Verdict {
    /// Both engines gave this outcome.
    Agree(Outcome),
    /// The kernel's verifier refused the program ([`LoadError::Rejected`]
    /// or [`LoadError::TooLarge`]); nothing was compared.
    Rejected(LoadError),
    Diverged(Box<Divergence>),
}

/// A difference between the kernel and the VM, with everything needed to
/// reproduce it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    pub program: Vec<RawInsn>,
    pub mem_in: Vec<u8>,
    pub kernel: Outcome,
    pub vm: Result<Outcome, String>,
}

/// Runs `body` in the kernel and in the real VM and compares them.
pub fn check(body: &[RawInsn], mem: &[u8]) -> Result<Verdict, KernelError> {
    check_with(body, mem, run_vm)
}

/// [`check`] with the VM side supplied by the caller (a stand-in, or a VM
/// with helpers or a budget configured).
pub fn check_with(
    body: &[RawInsn],
    mem: &[u8],
    vm: impl FnOnce(&[RawInsn], &[u8]) -> Result<Outcome, String>,
) -> Result<Verdict, KernelError> {
    let kernel = match run_kernel(body, mem) {
        Ok(k) => k,
        Err(KernelError::Load(e @ (LoadError::Rejected { .. } | LoadError::TooLarge { .. }))) => {
            return Ok(Verdict::Rejected(e))
        }
        Err(e) => return Err(e),
    };
    let vm = vm(body, mem);
    Ok(match compare(body, mem, kernel, vm) {
        Ok(agreed) => Verdict::Agree(agreed),
        Err(d) => Verdict::Diverged(d),
    })
}

/// Compares the two outcomes; on a difference returns the [`Divergence`].
pub fn compare(
    body: &[RawInsn],
    mem: &[u8],
    kernel: Outcome,
    vm: Result<Outcome, String>,
) -> Result<Outcome, Box<Divergence>> {
    if vm.as_ref() == Ok(&kernel) {
        return Ok(kernel);
    }
    Err(Box::new(Divergence {
        program: body.to_vec(),
        mem_in: mem.to_vec(),
        kernel,
        vm,
    }))
}

/// Shrinks a program while `keep` holds for it (typically: the kernel still
/// accepts it and the engines still diverge), by deleting runs of
/// instructions; jumps and local calls into a deleted run are retargeted to
/// the instruction after it. Returns the smallest program found.
pub fn minimize(body: &[RawInsn], mut keep: impl FnMut(&[RawInsn]) -> bool) -> Vec<RawInsn> {
    let Ok(located) = decode_all(body) else {
        return body.to_vec();
    };
    // Instructions with their branch targets as instruction indices.
    let index_of = |pc: usize| located.iter().position(|l| l.pc == pc);
    let mut insns: Vec<(Instruction, Option<usize>)> = Vec::with_capacity(located.len());
    for l in &located {
        let target = l
            .insn
            .branch_offset()
            .map(|off| (l.pc as i64 + 1 + off) as usize)
            .and_then(index_of);
        if l.insn.branch_offset().is_some() && target.is_none() {
            return body.to_vec();
        }
        insns.push((l.insn, target));
    }
    let mut best = body.to_vec();
    let mut chunk = insns.len().div_ceil(2).max(1);
    loop {
        let mut progress = false;
        let mut start = 0;
        while start < insns.len() {
            let end = (start + chunk).min(insns.len());
            let candidate: Vec<(Instruction, Option<usize>)> = insns[..start]
                .iter()
                .chain(&insns[end..])
                .map(|&(i, t)| {
                    let t = t.map(|t| {
                        if t >= end {
                            t - (end - start)
                        } else if t >= start {
                            start
                        } else {
                            t
                        }
                    });
                    (i, t)
                })
                .collect();
            match relink(&candidate) {
                Some(slots) if !candidate.is_empty() && keep(&slots) => {
                    insns = candidate;
                    best = slots;
                    progress = true;
                }
                _ => start += chunk,
            }
        }
        if chunk == 1 && !progress {
            return best;
        }
        if !progress {
            chunk = chunk.div_ceil(2);
        }
    }
}

/// Encodes instructions whose branch targets are instruction indices.
fn relink(insns: &[(Instruction, Option<usize>)]) -> Option<Vec<RawInsn>> {
    let mut pcs = Vec::with_capacity(insns.len() + 1);
    let mut pc = 0usize;
    for (i, _) in insns {
        pcs.push(pc);
        pc += i.slots();
    }
    pcs.push(pc);
    let mut out = Vec::with_capacity(pc);
    for (n, &(insn, target)) in insns.iter().enumerate() {
        let mut insn = insn;
        if let Some(t) = target {
            let rel = pcs[t] as i64 - pcs[n] as i64 - 1;
            match &mut insn {
                Instruction::Ja { off } | Instruction::Jump { off, .. } => {
                    *off = i16::try_from(rel).ok()?
                }
                Instruction::JaLong { imm } | Instruction::Call { imm, .. } => {
                    *imm = i32::try_from(rel).ok()?
                }
                _ => return None,
            }
        }
        out.extend_from_slice(insn.encode().as_slice());
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Divergence {
    /// The byte offsets where the memory after the runs differs.
    pub fn mem_diff(&self) -> Vec<usize> {
        match &self.vm {
            Ok(vm) => (0..self.kernel.mem.len().max(vm.mem.len()))
                .filter(|&i| self.kernel.mem.get(i) != vm.mem.get(i))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The case as a bpf_conformance test vector, the kernel's r0 as the
    /// expected result: paste it into a `.data` file to reproduce.
    pub fn as_test_vector(&self) -> String {
        let asm = disassemble(&self.program, Dialect::Conformance)
            .unwrap_or_else(|e| format!("# does not disassemble: {e}\n"));
        let mut s = format!("-- asm\n{asm}");
        if !self.mem_in.is_empty() {
            s.push_str(&format!("-- mem\n{}\n", hex(&self.mem_in)));
        }
        s.push_str(&format!("-- result\n{:#x}\n", self.kernel.r0));
        s
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the kernel and the VM diverge")?;
        match &self.vm {
            Err(e) => {
                writeln!(f, "  kernel: r0 = {:#x}", self.kernel.r0)?;
                writeln!(f, "  vm:     {e}")?;
            }
            Ok(vm) => {
                let mark = if vm.r0 != self.kernel.r0 {
                    "  <-- differs"
                } else {
                    ""
                };
                writeln!(
                    f,
                    "  r0:     kernel {:#018x}  vm {:#018x}{mark}",
                    self.kernel.r0, vm.r0
                )?;
                let diff = self.mem_diff();
                if diff.is_empty() {
                    writeln!(f, "  memory: same ({} bytes)", self.kernel.mem.len())?;
                } else {
                    writeln!(f, "  memory: differs at byte offsets {diff:?}")?;
                    writeln!(f, "    kernel: {}", hex(&self.kernel.mem))?;
                    writeln!(f, "    vm:     {}", hex(&vm.mem))?;
                }
            }
        }
        writeln!(
            f,
            "  input memory ({} bytes): {}",
            self.mem_in.len(),
            hex(&self.mem_in)
        )?;
        writeln!(
            f,
            "  program ({} slots) as a conformance test vector:",
            self.program.len()
        )?;
        for line in self.as_test_vector().lines() {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfkit_isa::asm::assemble;

    fn asm(text: &str) -> Vec<RawInsn> {
        assemble(text, Dialect::Conformance).unwrap()
    }

    #[test]
    fn the_wrapper_calls_the_body_appended_after_it() {
        let body = asm("mov %r0, 1\nexit");
        let w = wrap_xdp(&body, 4).unwrap();
        assert_eq!(&w[w.len() - 2..], &body[..]);
        let insns = bpfkit_isa::decode_program(&w).unwrap();
        let body_at = w.len() - 2;
        let calls: Vec<_> = insns
            .iter()
            .filter_map(|l| match l.insn {
                Instruction::Call {
                    kind: CallKind::Local,
                    imm,
                } => Some(l.pc as i64 + 1 + imm as i64),
                _ => None,
            })
            .collect();
        assert_eq!(calls, vec![body_at as i64]);
        // Every jump of the wrapper goes to the failure exit, before the body.
        for l in &insns {
            if let (Instruction::Jump { .. }, Some(off)) = (l.insn, l.insn.branch_offset()) {
                let t = (l.pc as i64 + 1 + off) as usize;
                assert_eq!(insns.iter().find(|x| x.pc == t).unwrap().insn, mov_k0());
            }
        }
    }

    fn mov_k0() -> Instruction {
        Instruction::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst: Reg::R0,
            src: Source::Imm(XDP_ABORTED),
        }
    }

    #[test]
    fn without_memory_r1_is_zero() {
        let w = wrap_xdp(&asm("exit"), 0).unwrap();
        let text = disassemble(&w, Dialect::Conformance).unwrap();
        assert!(text.contains("mov %r1, 0"), "{text}");
        assert!(!text.contains("add %r1, 8"), "{text}");
    }

    #[test]
    fn limits() {
        assert_eq!(wrap_xdp(&[], 0), Err(WrapError::Empty));
        assert_eq!(
            wrap_xdp(&asm("exit"), MAX_MEM + 1),
            Err(WrapError::MemTooLarge(MAX_MEM + 1))
        );
        assert_eq!(packet(&[1, 2]).len(), MIN_PACKET);
        assert_eq!(&packet(&[1, 2])[8..10], &[1, 2]);
        assert_eq!(packet(&[7; 100]).len(), 108);
    }

    #[test]
    fn incompatible_programs_are_named() {
        assert_eq!(
            kernel_incompatibility(&asm("call 5\nexit")),
            Some("calls a helper")
        );
        assert_eq!(
            kernel_incompatibility(&asm("call %r1\nexit")),
            Some("uses callx")
        );
        assert_eq!(kernel_incompatibility(&asm("mov %r0, 0\nexit")), None);
    }

    #[test]
    fn minimize_deletes_instructions_and_retargets_jumps() {
        let body = asm(
            "mov %r0, 1\nmov %r1, 2\njeq %r1, 2, +4\nmov %r2, 3\nmov %r3, 4\n\
             lddw %r5, 0x1\nadd %r0, %r5\nexit",
        );
        let mut tries = 0;
        let small = minimize(&body, |p| {
            tries += 1;
            let text = disassemble(p, Dialect::Conformance).unwrap_or_default();
            bpfkit_isa::decode_program(p).is_ok()
                && text.contains("jeq %r1, 2")
                && text.contains("add %r0, %r5")
        });
        assert_eq!(
            disassemble(&small, Dialect::Conformance).unwrap(),
            "jeq %r1, 2, +0\nadd %r0, %r5\nexit\n"
        );
        assert!(tries > 3);
        // Nothing can go: the program comes back unchanged.
        assert_eq!(minimize(&body, |_| false), body);
    }

    #[test]
    fn compare_reports_r0_and_memory_differences() {
        let body = asm("stb [%r1+1], 9\nmov %r0, 1\nexit");
        let mem = [0u8, 0, 0];
        let kernel = Outcome {
            r0: 1,
            mem: vec![0, 9, 0],
        };
        assert!(compare(&body, &mem, kernel.clone(), Ok(kernel.clone())).is_ok());
        let d = compare(
            &body,
            &mem,
            kernel.clone(),
            Ok(Outcome {
                r0: 2,
                mem: vec![0, 9, 1],
            }),
        )
        .unwrap_err();
        assert_eq!(d.mem_diff(), vec![2]);
        let text = d.to_string();
        assert!(text.contains("differs"), "{text}");
        assert!(text.contains("stb [%r1+1], 9"), "{text}");
        assert!(text.contains("-- mem\n    00 00 00"), "{text}");
        let d = compare(&body, &mem, kernel, Err("VM run failed: x".into())).unwrap_err();
        assert!(d.to_string().contains("VM run failed: x"));
    }
}
