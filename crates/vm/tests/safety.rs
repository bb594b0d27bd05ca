//! Safety of the interpreter on any input (DESIGN.md, principle 3): no byte
//! sequence or program may panic the host, touch memory outside the regions
//! the program owns, or run unbounded; every failure is a typed error that
//! names the instruction.
//!
//! Two property tests feed it random bytes and random structurally valid
//! programs; the targeted tests below pin the exact error (pc, address, size,
//! access kind) and the arithmetic corner cases RFC 9669 defines.

use bpfkit_isa::{
    asm::assemble, AluOp, AtomicOp, ByteOrder, CallKind, Dialect, Instruction, JmpCond, PacketMode,
    Pseudo, RawInsn, Reg, Size, Source, Width,
};
use bpfkit_vm::memory::Regions;
use bpfkit_vm::{
    HelperError, Helpers, Interpreter, LoadError, Outcome, Program, VmError, FRAME_SIZE, MAX_FRAMES,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Helpers of the tests.

fn asm(text: &str) -> Vec<RawInsn> {
    assemble(text, Dialect::Conformance).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn run_asm(text: &str, mem: &mut [u8]) -> Result<Outcome, VmError> {
    run_asm_with(text, mem, &Helpers::new(), bpfkit_vm::DEFAULT_BUDGET)
}

fn run_asm_with(
    text: &str,
    mem: &mut [u8],
    helpers: &Helpers,
    budget: u64,
) -> Result<Outcome, VmError> {
    let prog = Program::new(&asm(text)).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut vm = Interpreter::new(&prog, helpers).unwrap();
    vm.set_budget(budget);
    vm.run(mem)
}

/// r0 of a program run on no memory.
fn r0(text: &str) -> u64 {
    run_asm(text, &mut [])
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .r0
}

/// The helpers the property tests register: 1 adds its first two arguments,
/// 2 reads 8 bytes through its first argument, 3 writes its second argument
/// (8 bytes) through its first.
fn test_helpers() -> Helpers {
    let mut h = Helpers::new();
    h.register(1, "add", |_, a| Ok(a[0].wrapping_add(a[1])));
    h.register(2, "read8", |ctx, a| {
        let b = ctx.read(a[0], 8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap()))
    });
    h.register(3, "write8", |ctx, a| {
        ctx.write(a[0], &a[1].to_le_bytes())?;
        Ok(0)
    });
    h
}

const GUARD: usize = 64;
const GUARD_BYTE: u8 = 0xa5;

/// Runs `prog` on `input` placed between two guard areas of a larger buffer
/// (only the middle is passed to the VM), and checks that the guards are
/// untouched, that the run stopped within the budget, and that an error
/// names an instruction of the program.
fn run_guarded(prog: &Program, helpers: &Helpers, input: &[u8], budget: u64) {
    let mut vm = match Interpreter::new(prog, helpers) {
        Ok(vm) => vm,
        Err(LoadError::UnknownHelper { .. }) => return,
        Err(e) => panic!("unexpected load error {e:?}"),
    };
    vm.set_budget(budget);
    let mut buf = vec![GUARD_BYTE; GUARD + input.len() + GUARD];
    buf[GUARD..GUARD + input.len()].copy_from_slice(input);
    let base = buf[GUARD..].as_ptr() as u64;
    let result = vm.run(&mut buf[GUARD..GUARD + input.len()]);
    assert!(
        buf[..GUARD].iter().all(|&b| b == GUARD_BYTE),
        "guard bytes before the input were written: {result:?}"
    );
    assert!(
        buf[GUARD + input.len()..].iter().all(|&b| b == GUARD_BYTE),
        "guard bytes after the input were written: {result:?}"
    );
    let slots = prog.slots().len() as u64;
    match result {
        // After the budget runs out only forward jumps and returns are left:
        // at most one pass over the program per frame.
        Ok(o) => assert!(
            o.insns <= budget + slots * MAX_FRAMES as u64,
            "{} instructions with a budget of {budget}",
            o.insns
        ),
        Err(e) => {
            assert!(e.pc() < prog.slots().len(), "{e:?} names no instruction");
            assert!(
                Instruction::decode(prog.slots(), e.pc()).is_ok(),
                "{e:?} names the middle of an instruction"
            );
            match e {
                VmError::BudgetExhausted { budget: b, .. } => assert_eq!(b, budget),
                VmError::CallDepth { max, .. } => assert_eq!(max, MAX_FRAMES),
                VmError::OutOfBounds {
                    addr, size, write, ..
                } => {
                    // An access that lies inside the input is never refused.
                    let inside = addr >= base
                        && addr
                            .checked_add(size as u64)
                            .is_some_and(|end| end <= base + input.len() as u64);
                    assert!(
                        !inside,
                        "in-bounds access refused: {e:?} (input at {base:#x})"
                    );
                    assert!(matches!(size, 1 | 2 | 4 | 8), "{e:?}");
                    let _ = write;
                }
                VmError::MisalignedAtomic { addr, size, .. } => {
                    assert_ne!(addr % size as u64, 0, "{e:?} is aligned")
                }
                VmError::UnknownHelper { id, .. } => assert!(!(1..=3).contains(&id), "{e:?}"),
                VmError::Helper { id, .. } => assert!(matches!(id, 2 | 3), "{e:?}"),
                // These programs call no bpf_loop, and the system has
                // executable memory to spare.
                VmError::BadCallback { .. } | VmError::ExecMemory { .. } => panic!("{e:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Property: random bytes.

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cfg(5000))]

    /// Any byte string: loading returns Ok or Err; a program that loads runs
    /// to Ok or a typed error.
    #[test]
    fn random_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        input in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        if let Ok(prog) = Program::from_bytes(&bytes) {
            run_guarded(&prog, &test_helpers(), &input, 1000);
        }
    }

    /// Random slots that end in `exit`, so many more of them load.
    #[test]
    fn random_slots_ending_in_exit_never_panic(
        slots in prop::collection::vec(any::<u64>(), 0..32),
        input in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut slots: Vec<RawInsn> = slots.into_iter().map(RawInsn::from_u64).collect();
        slots.push(RawInsn::new(0x95, 0, 0, 0, 0));
        if let Ok(prog) = Program::new(&slots) {
            run_guarded(&prog, &test_helpers(), &input, 1000);
        }
    }
}

// ---------------------------------------------------------------------------
// Property: random structurally valid programs.

/// One generated instruction; jumps and local calls name the index of the
/// instruction they go to, resolved to a slot offset once the program is laid
/// out.
#[derive(Clone, Debug)]
struct Gen {
    insn: Instruction,
    target: Option<usize>,
}

fn reg() -> impl Strategy<Value = Reg> {
    (0u8..=10).prop_map(|n| Reg::new(n).unwrap())
}

/// Registers an instruction may write (r10 is read-only).
fn wreg() -> impl Strategy<Value = Reg> {
    (0u8..=9).prop_map(|n| Reg::new(n).unwrap())
}

fn width() -> impl Strategy<Value = Width> {
    prop_oneof![Just(Width::W64), Just(Width::W32)]
}

fn size() -> impl Strategy<Value = Size> {
    prop::sample::select(Size::ALL)
}

/// Immediates: mostly small (helper ids, shift amounts, offsets), also the
/// edges and anything.
fn imm() -> impl Strategy<Value = i32> {
    prop_oneof![
        4 => -4i32..=70,
        1 => prop::sample::select(vec![i32::MIN, i32::MAX, -1, 0, 1, 512, -512, 63, 64]),
        2 => any::<i32>(),
    ]
}

/// Memory offsets: near the input, inside a frame, near the edges, anything.
fn off() -> impl Strategy<Value = i16> {
    prop_oneof![
        3 => -8i16..72,
        2 => -520i16..8,
        1 => prop::sample::select(vec![i16::MIN, i16::MAX, -4096, -4097, 4096]),
        1 => any::<i16>(),
    ]
}

/// A base register and offset for a memory access: mostly in or near the
/// current frame or the input, sometimes anything.
fn addr() -> impl Strategy<Value = (Reg, i16)> {
    prop_oneof![
        4 => (Just(Reg::R10), prop_oneof![8 => -520i16..8, 1 => off()]),
        4 => (Just(Reg::R1), prop_oneof![8 => -8i16..72, 1 => off()]),
        1 => (reg(), off()),
    ]
}

fn source() -> impl Strategy<Value = Source> {
    prop_oneof![reg().prop_map(Source::Reg), imm().prop_map(Source::Imm)]
}

fn plain(insn: Instruction) -> Gen {
    Gen { insn, target: None }
}

/// One instruction of any kind; `n` is the number of instructions, so jump
/// and call targets are in range.
fn gen_insn(n: usize) -> impl Strategy<Value = Gen> {
    let alu = (width(), prop::sample::select(AluOp::ALL), wreg(), source()).prop_map(
        |(width, op, dst, src)| {
            let op = if width == Width::W32 && !op.valid_in_alu32() {
                AluOp::Mov
            } else {
                op
            };
            let src = match src {
                Source::Imm(i) if !op.takes_imm() => Source::Reg(Reg::new(i as u8 % 11).unwrap()),
                s => s,
            };
            plain(Instruction::Alu {
                width,
                op,
                dst,
                src,
            })
        },
    );
    let neg = (width(), wreg()).prop_map(|(width, dst)| plain(Instruction::Neg { width, dst }));
    let endian = (
        prop::sample::select(vec![ByteOrder::ToLe, ByteOrder::ToBe, ByteOrder::Swap]),
        prop::sample::select(vec![16u8, 32, 64]),
        wreg(),
    )
        .prop_map(|(order, bits, dst)| plain(Instruction::Endian { order, bits, dst }));
    // Every pseudo form but BPF_PSEUDO_FUNC, whose immediate must name a
    // subprogram (tested in semantics.rs).
    let pseudos: Vec<Pseudo> = Pseudo::ALL
        .iter()
        .copied()
        .filter(|p| *p != Pseudo::Func)
        .collect();
    let lddw = (wreg(), prop::sample::select(pseudos), any::<i64>())
        .prop_map(|(dst, pseudo, imm)| plain(Instruction::LoadImm64 { dst, pseudo, imm }));
    let packet = (
        prop_oneof![Just(PacketMode::Abs), reg().prop_map(PacketMode::Ind)],
        prop::sample::select(vec![Size::B, Size::H, Size::W]),
        imm(),
    )
        .prop_map(|(mode, size, imm)| plain(Instruction::LoadPacket { mode, size, imm }));
    let load =
        (size(), any::<bool>(), wreg(), addr()).prop_map(|(size, signed, dst, (src, off))| {
            plain(Instruction::Load {
                size,
                signed: signed && size != Size::DW,
                dst,
                src,
                off,
            })
        });
    let store_imm = (size(), addr(), imm()).prop_map(|(size, (dst, off), imm)| {
        plain(Instruction::StoreImm {
            size,
            dst,
            off,
            imm,
        })
    });
    let store = (size(), addr(), reg()).prop_map(|(size, (dst, off), src)| {
        plain(Instruction::Store {
            size,
            dst,
            src,
            off,
        })
    });
    let atomic = (prop::sample::select(AtomicOp::ALL), size(), addr(), wreg()).prop_map(
        |(op, size, (base, off), operand)| {
            let size = if op.valid_size(size) { size } else { Size::DW };
            // Load-acquire is `dst = *(src + off)`; every other atomic
            // addresses `dst + off` and may write `src` back.
            let (dst, src) = if op == AtomicOp::LoadAcquire {
                (operand, base)
            } else {
                (base, operand)
            };
            plain(Instruction::Atomic {
                size,
                op,
                dst,
                src,
                off,
            })
        },
    );
    let ja = (0..n, any::<bool>()).prop_map(|(t, long)| Gen {
        insn: if long {
            Instruction::JaLong { imm: 0 }
        } else {
            Instruction::Ja { off: 0 }
        },
        target: Some(t),
    });
    let jump = (
        width(),
        prop::sample::select(JmpCond::ALL),
        reg(),
        source(),
        0..n,
    )
        .prop_map(|(width, cond, dst, src, t)| Gen {
            insn: Instruction::Jump {
                width,
                cond,
                dst,
                src,
                off: 0,
            },
            target: Some(t),
        });
    let helper = (1i32..=3).prop_map(|imm| {
        plain(Instruction::Call {
            kind: CallKind::Helper,
            imm,
        })
    });
    let local = (0..n).prop_map(|t| Gen {
        insn: Instruction::Call {
            kind: CallKind::Local,
            imm: 0,
        },
        target: Some(t),
    });
    let callx = reg().prop_map(|reg| plain(Instruction::CallReg { reg }));
    prop_oneof![
        8 => alu,
        1 => neg,
        1 => endian,
        1 => lddw,
        1 => packet,
        4 => load,
        2 => store_imm,
        3 => store,
        2 => atomic,
        1 => ja,
        4 => jump,
        1 => helper,
        1 => local,
        1 => callx,
        1 => Just(plain(Instruction::Exit)),
    ]
}

/// Lays generated instructions out into slots, resolving targets.
fn layout(gens: &[Gen]) -> Vec<RawInsn> {
    let mut starts = Vec::with_capacity(gens.len());
    let mut slot = 0usize;
    for g in gens {
        starts.push(slot);
        slot += g.insn.slots();
    }
    let mut out = Vec::with_capacity(slot);
    for (i, g) in gens.iter().enumerate() {
        let mut insn = g.insn;
        if let Some(t) = g.target {
            let rel = starts[t] as i64 - starts[i] as i64 - 1;
            match &mut insn {
                Instruction::Ja { off } | Instruction::Jump { off, .. } => *off = rel as i16,
                Instruction::JaLong { imm } | Instruction::Call { imm, .. } => *imm = rel as i32,
                _ => unreachable!(),
            }
        }
        out.extend_from_slice(insn.encode().as_slice());
    }
    out
}

fn valid_program() -> impl Strategy<Value = Vec<RawInsn>> {
    (1usize..48)
        .prop_flat_map(|n| prop::collection::vec(gen_insn(n + 1), n))
        .prop_map(|mut gens| {
            gens.push(plain(Instruction::Exit));
            layout(&gens)
        })
}

proptest! {
    #![proptest_config(cfg(1500))]

    /// Random valid programs load, and run to Ok or a typed error without
    /// touching memory outside the input.
    #[test]
    fn valid_programs_run_safely(
        slots in valid_program(),
        input in prop_oneof![
            1 => prop::collection::vec(any::<u8>(), 0..64),
            3 => prop::collection::vec(any::<u8>(), 64..=96),
        ],
    ) {
        let prog = Program::new(&slots).unwrap_or_else(|e| {
            panic!("generated program does not load: {e}\n{}",
                bpfkit_isa::disasm::listing(&slots, Dialect::Conformance))
        });
        run_guarded(&prog, &test_helpers(), &input, 10_000);
    }
}

// ---------------------------------------------------------------------------
// Memory errors.

#[test]
fn read_past_end_of_memory() {
    let mut mem = vec![0u8; 16];
    let base = mem.as_ptr() as u64;
    // lddw takes two slots: the faulting load is slot 3.
    let e = run_asm(
        "lddw %r2, 0x1122334455667788\nldxdw %r0, [%r1+8]\nldxdw %r0, [%r1+9]\nexit",
        &mut mem,
    )
    .unwrap_err();
    assert_eq!(
        e,
        VmError::OutOfBounds {
            pc: 3,
            addr: base + 9,
            size: 8,
            write: false
        }
    );
    assert_eq!(e.pc(), 3);
    // The last byte is readable, the one after it is not.
    assert_eq!(run_asm("ldxb %r0, [%r1+15]\nexit", &mut mem).unwrap().r0, 0);
    assert_eq!(
        run_asm("ldxb %r0, [%r1+16]\nexit", &mut mem).unwrap_err(),
        VmError::OutOfBounds {
            pc: 0,
            addr: base + 16,
            size: 1,
            write: false
        }
    );
}

#[test]
fn write_past_end_of_memory() {
    let mut mem = vec![7u8; 16];
    let base = mem.as_ptr() as u64;
    let e = run_asm("mov %r2, 1\nstxw [%r1+13], %r2\nexit", &mut mem).unwrap_err();
    assert_eq!(
        e,
        VmError::OutOfBounds {
            pc: 1,
            addr: base + 13,
            size: 4,
            write: true
        }
    );
    let e = run_asm("sth [%r1-1], 1\nexit", &mut mem).unwrap_err();
    assert_eq!(
        e,
        VmError::OutOfBounds {
            pc: 0,
            addr: base - 1,
            size: 2,
            write: true
        }
    );
    assert!(mem.iter().all(|&b| b == 7), "a refused store wrote memory");
}

#[test]
fn null_and_wrapping_addresses() {
    // With no memory r1 is 0.
    assert_eq!(
        run_asm("ldxb %r0, [%r1+0]\nexit", &mut []).unwrap_err(),
        VmError::OutOfBounds {
            pc: 0,
            addr: 0,
            size: 1,
            write: false
        }
    );
    // addr + size overflows u64.
    assert_eq!(
        run_asm("mov %r1, -1\nldxdw %r0, [%r1-2]\nexit", &mut []).unwrap_err(),
        VmError::OutOfBounds {
            pc: 1,
            addr: u64::MAX - 2,
            size: 8,
            write: false
        }
    );
}

#[test]
fn read_just_outside_the_stack() {
    // With no memory r1 is 0 and the program returns its frame pointer; with
    // memory it reads the lowest byte of its frame, then one byte below it:
    // frames not yet entered by a call are not addressable. The same
    // interpreter (and stack) serves both runs.
    let stack = FRAME_SIZE;
    let text = format!(
        "jne %r1, 0, +2\nmov %r0, %r10\nexit\n\
         ldxb %r0, [%r10-{stack}]\nldxb %r0, [%r10-{}]\nexit",
        stack + 1
    );
    let prog = Program::new(&asm(&text)).unwrap();
    let mut vm = Interpreter::new(&prog, &Helpers::new()).unwrap();
    let top = vm.run(&mut []).unwrap().r0;
    let mut mem = vec![0u8; 8];
    assert_eq!(
        vm.run(&mut mem).unwrap_err(),
        VmError::OutOfBounds {
            pc: 4,
            addr: top - stack as u64 - 1,
            size: 1,
            write: false
        }
    );
    let above = "jne %r1, 0, +2\nmov %r0, %r10\nexit\nldxdw %r0, [%r10-4]\nexit";
    let prog = Program::new(&asm(above)).unwrap();
    let mut vm = Interpreter::new(&prog, &Helpers::new()).unwrap();
    let top = vm.run(&mut []).unwrap().r0;
    assert_eq!(
        vm.run(&mut mem).unwrap_err(),
        VmError::OutOfBounds {
            pc: 3,
            addr: top - 4,
            size: 8,
            write: false
        }
    );
}

static READ_ONLY: [u8; 16] = [9; 16];

#[test]
fn write_to_read_only_memory() {
    // The region table itself.
    let mut regions = Regions::new();
    // SAFETY: a static lives forever.
    let start = unsafe { regions.add_ro(READ_ONLY.as_ptr(), READ_ONLY.len()) };
    assert!(regions.translate(start, 16, false).is_some());
    assert!(regions.translate(start + 15, 1, true).is_none());
    assert!(regions.translate(start + 15, 2, false).is_none());
    assert_eq!(regions.read_bytes(start, 2), Some(vec![9, 9]));
    assert_eq!(regions.write_bytes(start, &[1]), None);

    // A helper hands the program a read-only region; reading works, writing
    // is refused with the address of the store.
    let mut helpers = Helpers::new();
    helpers.register(1, "ro_buffer", |ctx, _| {
        // SAFETY: a static lives forever.
        Ok(unsafe {
            ctx.regions_mut()
                .add_ro(READ_ONLY.as_ptr(), READ_ONLY.len())
        })
    });
    let text = "call 1\nldxb %r2, [%r0+15]\nstxb [%r0+3], %r2\nexit";
    let e = run_asm_with(text, &mut [], &helpers, 1000).unwrap_err();
    assert_eq!(
        e,
        VmError::OutOfBounds {
            pc: 2,
            addr: READ_ONLY.as_ptr() as u64 + 3,
            size: 1,
            write: true
        }
    );
    // Helpers cannot write there either.
    helpers.register(2, "write", |ctx, a| ctx.write(a[0], &[0]).map(|_| 0));
    let e = run_asm_with(
        "call 1\nmov %r1, %r0\ncall 2\nexit",
        &mut [],
        &helpers,
        1000,
    )
    .unwrap_err();
    assert!(matches!(e, VmError::Helper { pc: 2, id: 2, .. }), "{e:?}");
    assert!(READ_ONLY.iter().all(|&b| b == 9));
}

#[test]
fn misaligned_atomics() {
    let mut mem = vec![0u8; 32];
    let base = mem.as_ptr() as u64;
    // An offset that is misaligned whatever the allocation's alignment.
    let o = (0..8).find(|o| (base + o) % 8 == 1).unwrap();
    let e = run_asm(
        &format!("mov %r2, 1\nlock add [%r1+{o}], %r2\nexit"),
        &mut mem,
    )
    .unwrap_err();
    assert_eq!(
        e,
        VmError::MisalignedAtomic {
            pc: 1,
            addr: base + o,
            size: 8
        }
    );
    let o4 = (0..8).find(|o| (base + o) % 4 == 2).unwrap();
    let e = run_asm(
        &format!("mov %r2, 1\nlock fetch add32 [%r1+{o4}], %r2\nexit"),
        &mut mem,
    )
    .unwrap_err();
    assert_eq!(
        e,
        VmError::MisalignedAtomic {
            pc: 1,
            addr: base + o4,
            size: 4
        }
    );
    // On the stack (8-byte aligned): r10-15 is misaligned for 8 bytes.
    let e = run_asm("mov %r2, 1\nlock xor [%r10-15], %r2\nexit", &mut []).unwrap_err();
    assert!(
        matches!(e, VmError::MisalignedAtomic { pc: 1, size: 8, addr } if addr % 8 == 1),
        "{e:?}"
    );
    // Aligned atomics work.
    assert_eq!(
        r0("stdw [%r10-8], 40\nmov %r2, 2\nlock fetch add [%r10-8], %r2\nldxdw %r0, [%r10-8]\nadd %r0, %r2\nexit"),
        82
    );
    assert!(mem.iter().all(|&b| b == 0));
}

/// Load-acquire is encoded as the kernel does, `dst = *(src + off)`
/// (kernel/bpf/core.c, BPF_LOAD_ACQ), which is how bpfkit-isa decodes it.
#[test]
fn load_acquire_reads_src_plus_off_into_dst() {
    let mut mem = 42u64.to_le_bytes().to_vec();
    mem.extend_from_slice(&7u64.to_le_bytes());
    assert_eq!(
        run_asm("mov %r2, %r1\nldacqdw %r0, [%r2+8]\nexit", &mut mem)
            .unwrap()
            .r0,
        7
    );
    assert_eq!(
        run_asm("ldacqw %r3, [%r1+0]\nmov %r0, %r3\nexit", &mut mem)
            .unwrap()
            .r0,
        42
    );
    assert_eq!(r0("stdw [%r10-8], 5\nldacqb %r0, [%r10-8]\nexit"), 5);
}

/// The same instruction must never let a program write r10: the frame
/// pointer is trusted by the unchecked constant-offset stack accesses.
/// `ldacqdw %r1, [%r10+0]` reads 8 bytes at the top of the stack (out of
/// bounds); executed the other way round it would load the input's first 8
/// bytes into r10 and the next store would write wherever they point.
#[test]
fn load_acquire_never_writes_the_frame_pointer() {
    let mut buf = [GUARD_BYTE; GUARD + 8 + GUARD];
    let target = buf.as_ptr() as u64 + 8; // inside the leading guard
    buf[GUARD..GUARD + 8].copy_from_slice(&(target + 1).to_le_bytes());
    let result = run_asm(
        "ldacqdw %r1, [%r10+0]\nstb [%r10-1], 0x41\nexit",
        &mut buf[GUARD..GUARD + 8],
    );
    assert!(
        buf[..GUARD].iter().all(|&b| b == GUARD_BYTE),
        "the program wrote outside its memory: {result:?}"
    );
    assert!(
        matches!(
            result,
            Err(VmError::OutOfBounds {
                pc: 0,
                size: 8,
                write: false,
                ..
            })
        ),
        "{result:?}"
    );
}

/// A run must not see what an earlier run left on the stack: the output of
/// a program would otherwise depend on the inputs it saw before (and leak
/// them). The kernel's verifier rejects reads of stack slots never written;
/// without a verifier the interpreter has to start each run on a clean
/// stack. Found by the interp_bytes fuzz target.
#[test]
fn each_run_starts_with_a_clean_stack() {
    let text = "ldxdw %r0, [%r10-8]\nstdw [%r10-8], 99\nexit";
    let prog = Program::new(&asm(text)).unwrap();
    let mut vm = Interpreter::new(&prog, &Helpers::new()).unwrap();
    assert_eq!(vm.run(&mut []).unwrap().r0, 0);
    assert_eq!(
        vm.run(&mut []).unwrap().r0,
        0,
        "second run read the first run's stack"
    );
}

// ---------------------------------------------------------------------------
// Control-flow limits.

#[test]
fn infinite_loop_exhausts_budget() {
    assert_eq!(
        run_asm_with("ja -1\nexit", &mut [], &Helpers::new(), 1000).unwrap_err(),
        VmError::BudgetExhausted {
            pc: 0,
            budget: 1000
        }
    );
    let e = run_asm_with(
        "mov %r0, 0\nloop:\nadd %r0, 1\njne %r0, 0, loop\nexit",
        &mut [],
        &Helpers::new(),
        5000,
    )
    .unwrap_err();
    assert_eq!(
        e,
        VmError::BudgetExhausted {
            pc: 2,
            budget: 5000
        }
    );
    // The default budget stops it too.
    let e = run_asm("ja -1\nexit", &mut []).unwrap_err();
    assert_eq!(
        e,
        VmError::BudgetExhausted {
            pc: 0,
            budget: bpfkit_vm::DEFAULT_BUDGET
        }
    );
    // A loop that fits in the budget completes and reports its count.
    let o = run_asm_with(
        "mov %r0, 10\nloop:\nsub %r0, 1\njne %r0, 0, loop\nexit",
        &mut [],
        &Helpers::new(),
        1000,
    )
    .unwrap();
    assert_eq!(o, Outcome { r0: 0, insns: 22 });
}

/// `depth` nested bpf-to-bpf calls below the main program.
fn nested_calls(depth: u32) -> Result<Outcome, VmError> {
    let text = format!(
        "mov %r7, {depth}\nmov %r0, 0\ncall local f\nexit\n\
         f:\njeq %r7, 0, out\nsub %r7, 1\ncall local f\nadd %r0, 1\nout:\nexit"
    );
    run_asm(&text, &mut [])
}

#[test]
fn call_depth_is_limited_to_eight_frames() {
    // Main plus 7 nested calls: 8 frames.
    assert_eq!(nested_calls(6).unwrap().r0, 6);
    // One more call than that fails at the call instruction (slot 6).
    assert_eq!(
        nested_calls(7).unwrap_err(),
        VmError::CallDepth {
            pc: 6,
            max: MAX_FRAMES
        }
    );
    // Unbounded recursion.
    assert_eq!(
        run_asm("call local f\nexit\nf:\ncall local f\nexit", &mut []).unwrap_err(),
        VmError::CallDepth {
            pc: 2,
            max: MAX_FRAMES
        }
    );
}

#[test]
fn callee_saved_registers_and_own_frames() {
    // main: sets r6-r9 and a stack slot, calls f; f clobbers r6-r9 and its
    // own [r10-8], and returns its r10. main checks everything survived.
    let text = "
        mov %r6, 6
        mov %r7, 7
        mov %r8, 8
        mov %r9, 9
        stdw [%r10-8], 100
        stdw [%r10-512], 200
        call local f
        mov %r1, %r10
        sub %r1, %r0
        jne %r1, 512, bad
        jne %r6, 6, bad
        jne %r7, 7, bad
        jne %r8, 8, bad
        jne %r9, 9, bad
        ldxdw %r2, [%r10-8]
        jne %r2, 100, bad
        ldxdw %r2, [%r10-512]
        jne %r2, 200, bad
        mov %r0, 1
        exit
        bad:
        mov %r0, 0
        exit
        f:
        mov %r6, 60
        mov %r7, 70
        mov %r8, 80
        mov %r9, 90
        stdw [%r10-8], 1
        stdw [%r10-512], 2
        ldxdw %r2, [%r10-8]
        jne %r2, 1, fbad
        mov %r0, %r10
        exit
        fbad:
        mov %r0, 0
        exit";
    assert_eq!(r0(text), 1);
    // The callee sees the caller's r6-r9 until it changes them.
    assert_eq!(
        r0("mov %r6, 5\ncall local f\nexit\nf:\nmov %r0, %r6\nexit"),
        5
    );
}

// ---------------------------------------------------------------------------
// Helpers.

#[test]
fn unknown_helper_at_load() {
    let prog = Program::new(&asm("mov %r1, 0\ncall 99\nexit")).unwrap();
    assert_eq!(prog.helper_calls(), &[(1, 99)]);
    assert_eq!(
        Interpreter::new(&prog, &test_helpers()).err(),
        Some(LoadError::UnknownHelper { pc: 1, id: 99 })
    );
    let prog = Program::new(&asm("lddw %r1, 5\ncall -1\nexit")).unwrap();
    assert_eq!(
        Interpreter::new(&prog, &Helpers::new()).err(),
        Some(LoadError::UnknownHelper {
            pc: 2,
            id: u32::MAX
        })
    );
}

#[test]
fn callx_to_unregistered_helper() {
    let h = test_helpers();
    assert_eq!(
        run_asm_with("mov %r3, 77\ncall %r3\nexit", &mut [], &h, 1000).unwrap_err(),
        VmError::UnknownHelper { pc: 1, id: 77 }
    );
    // Ids past the dense table and past u32.
    assert_eq!(
        run_asm_with("lddw %r3, 0x100000001\ncall %r3\nexit", &mut [], &h, 1000).unwrap_err(),
        VmError::UnknownHelper {
            pc: 2,
            id: 0x1_0000_0001
        }
    );
    // A registered id works through a register.
    assert_eq!(
        run_asm_with(
            "mov %r1, 40\nmov %r2, 2\nmov %r3, 1\ncall %r3\nexit",
            &mut [],
            &h,
            1000
        )
        .unwrap()
        .r0,
        42
    );
}

#[test]
fn helper_results_and_failures() {
    let mut h = Helpers::new();
    h.register(1, "fail", |_, _| Err(HelperError::Failed("nope".into())));
    h.register(2, "stop", |_, a| Err(HelperError::Exit(a[0] + 1)));
    h.register(5000, "sparse", |_, a| Ok(a[0] * 2));
    assert_eq!(
        run_asm_with("mov %r0, 3\ncall 1\nexit", &mut [], &h, 1000).unwrap_err(),
        VmError::Helper {
            pc: 1,
            id: 1,
            message: "nope".into()
        }
    );
    let o = run_asm_with("mov %r1, 41\ncall 2\nmov %r0, 0\nexit", &mut [], &h, 1000).unwrap();
    assert_eq!(o.r0, 42);
    assert_eq!(
        run_asm_with("mov %r1, 21\ncall 5000\nexit", &mut [], &h, 1000)
            .unwrap()
            .r0,
        42
    );
    // A helper's read of memory outside every region is a typed failure.
    let e = run_asm_with("mov %r1, 8\ncall 2\nexit", &mut [], &test_helpers(), 1000).unwrap_err();
    assert!(matches!(e, VmError::Helper { pc: 1, id: 2, .. }), "{e:?}");
}

// ---------------------------------------------------------------------------
// Arithmetic corner cases (RFC 9669 section 4.1).

#[test]
fn division_by_zero() {
    assert_eq!(r0("mov %r0, 7\nmov %r1, 0\ndiv %r0, %r1\nexit"), 0);
    assert_eq!(r0("mov %r0, 7\ndiv %r0, 0\nexit"), 0);
    assert_eq!(r0("mov %r0, -7\nmov %r1, 0\ndiv32 %r0, %r1\nexit"), 0);
    assert_eq!(r0("mov %r0, -7\nmov %r1, 0\nsdiv %r0, %r1\nexit"), 0);
    assert_eq!(r0("mov %r0, -7\nmov %r1, 0\nsdiv32 %r0, %r1\nexit"), 0);
    // Modulo by zero leaves dst (64-bit) ...
    assert_eq!(
        r0("lddw %r0, 0x1234567887654321\nmov %r1, 0\nmod %r0, %r1\nexit"),
        0x1234_5678_8765_4321
    );
    assert_eq!(r0("mov %r0, -5\nmod %r0, 0\nexit"), -5i64 as u64);
    assert_eq!(
        r0("lddw %r0, 0x1234567887654321\nmov %r1, 0\nsmod %r0, %r1\nexit"),
        0x1234_5678_8765_4321
    );
    // ... and zero-extends its low half (32-bit).
    assert_eq!(
        r0("lddw %r0, 0x1234567887654321\nmov %r1, 0\nmod32 %r0, %r1\nexit"),
        0x8765_4321
    );
    assert_eq!(
        r0("lddw %r0, 0x1234567887654321\nmov %r1, 0\nsmod32 %r0, %r1\nexit"),
        0x8765_4321
    );
    assert_eq!(
        r0("lddw %r0, 0x1234567887654321\nmod32 %r0, 0\nexit"),
        0x8765_4321
    );
}

#[test]
fn signed_division_overflow() {
    assert_eq!(
        r0("lddw %r0, 0x8000000000000000\nmov %r1, -1\nsdiv %r0, %r1\nexit"),
        i64::MIN as u64
    );
    assert_eq!(
        r0("lddw %r0, 0x8000000000000000\nsdiv %r0, -1\nexit"),
        i64::MIN as u64
    );
    assert_eq!(
        r0("lddw %r0, 0x8000000000000000\nmov %r1, -1\nsmod %r0, %r1\nexit"),
        0
    );
    assert_eq!(
        r0("lddw %r0, 0xffffffff80000000\nmov %r1, -1\nsdiv32 %r0, %r1\nexit"),
        0x8000_0000
    );
    assert_eq!(
        r0("mov32 %r0, 0x80000000\nsdiv32 %r0, -1\nexit"),
        0x8000_0000
    );
    assert_eq!(
        r0("mov32 %r0, 0x80000000\nmov %r1, -1\nsmod32 %r0, %r1\nexit"),
        0
    );
    // Signed results truncate toward zero; the remainder takes the
    // dividend's sign.
    assert_eq!(r0("mov %r0, -7\nsdiv %r0, 2\nexit"), -3i64 as u64);
    assert_eq!(r0("mov %r0, -7\nsmod %r0, 2\nexit"), -1i64 as u64);
    assert_eq!(r0("mov %r0, 7\nsmod %r0, -2\nexit"), 1);
    assert_eq!(r0("mov %r0, -7\nsmod32 %r0, 2\nexit"), 0xffff_ffff);
}

#[test]
fn shift_amounts_are_masked() {
    assert_eq!(r0("mov %r0, 1\nmov %r1, 65\nlsh %r0, %r1\nexit"), 2);
    assert_eq!(r0("mov %r0, 1\nlsh %r0, 64\nexit"), 1);
    assert_eq!(r0("mov %r0, 1\nmov %r1, 33\nlsh32 %r0, %r1\nexit"), 2);
    assert_eq!(r0("mov %r0, 1\nlsh32 %r0, 32\nexit"), 1);
    assert_eq!(r0("mov %r0, 8\nmov %r1, 0x102\nrsh %r0, %r1\nexit"), 2);
    assert_eq!(r0("mov %r0, 8\nrsh32 %r0, 34\nexit"), 2);
    assert_eq!(
        r0("mov %r0, -8\nmov %r1, 65\narsh %r0, %r1\nexit"),
        -4i64 as u64
    );
    assert_eq!(r0("mov32 %r0, -8\narsh32 %r0, 33\nexit"), 0xffff_fffc);
    // A shift count register with high bits set.
    assert_eq!(
        r0("mov %r0, 1\nlddw %r1, 0xffffffff00000003\nlsh %r0, %r1\nexit"),
        8
    );
}

#[test]
fn alu32_zeroes_the_upper_half() {
    let hi = "lddw %r0, 0xdeadbeef00000005\n";
    let cases: &[(&str, u64)] = &[
        ("add32 %r0, 1", 6),
        ("sub32 %r0, 6", 0xffff_ffff),
        ("mul32 %r0, 3", 15),
        ("div32 %r0, 2", 2),
        ("or32 %r0, 8", 13),
        ("and32 %r0, -1", 5),
        ("xor32 %r0, 1", 4),
        ("lsh32 %r0, 1", 10),
        ("rsh32 %r0, 1", 2),
        ("arsh32 %r0, 1", 2),
        ("mod32 %r0, 3", 2),
        ("mov32 %r0, %r0", 5),
        ("neg32 %r0", 0xffff_fffb),
        ("le32 %r0", 5),
        ("le16 %r0", 5),
        ("be32 %r0", 0x0500_0000),
        ("be16 %r0", 0x0500),
        ("movsx832 %r0, %r0", 5),
    ];
    for (op, want) in cases {
        assert_eq!(r0(&format!("{hi}{op}\nexit")), *want, "{op}");
    }
    // 64-bit operations keep it.
    assert_eq!(r0(&format!("{hi}add %r0, 1\nexit")), 0xdead_beef_0000_0006);
    // Sign-extending 32-bit moves extend to 32 bits, then zero-extend.
    assert_eq!(r0("mov %r1, 0x80\nmovsx832 %r0, %r1\nexit"), 0xffff_ff80);
    assert_eq!(
        r0("mov %r1, 0x80\nmovsx8 %r0, %r1\nexit"),
        0xffff_ffff_ffff_ff80
    );
    // A 32-bit immediate move zero-extends; a 64-bit one sign-extends.
    assert_eq!(r0("mov32 %r0, -1\nexit"), 0xffff_ffff);
    assert_eq!(r0("mov %r0, -1\nexit"), u64::MAX);
}
