//! Atomic read-modify-write, load-acquire and store-release. Rare enough that
//! they share one out-of-line path instead of a variant each.

use crate::memory::Regions;
use crate::program::{Kind, Op};
use crate::VmError;
use bpfkit_isa::AtomicOp;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering::SeqCst};

#[cold]
#[inline(never)]
pub(crate) fn execute(
    regions: &Regions,
    op: &Op,
    pc: usize,
    regs: &mut [u64; 16],
) -> Result<(), VmError> {
    let d = (op.dst & 15) as usize;
    let s = (op.src & 15) as usize;
    let size = match op.kind {
        Kind::AtomicLoadB | Kind::AtomicStoreB => 1,
        Kind::AtomicLoadH | Kind::AtomicStoreH => 2,
        Kind::Atomic32 | Kind::AtomicLoadW | Kind::AtomicStoreW => 4,
        _ => 8,
    };
    let aop = AtomicOp::from_imm(op.imm as i32).expect("validated atomic op");
    let write = aop != AtomicOp::LoadAcquire;
    // Load-acquire reads like LDX (`dst = load_acquire(src + off)`); every
    // other form addresses memory through dst like STX.
    let base = if write { regs[d] } else { regs[s] };
    let addr = base.wrapping_add(op.aux as i64 as u64);
    if addr % size as u64 != 0 {
        return Err(VmError::MisalignedAtomic { pc, addr, size });
    }
    let p = regions
        .translate(addr, size, write)
        .ok_or(VmError::OutOfBounds {
            pc,
            addr,
            size,
            write,
        })?;
    // SAFETY (all casts below): translate checked the range lies in a live
    // region and the address is aligned to the access size; the program's
    // memory is only touched through raw pointers while it runs.
    match aop {
        AtomicOp::LoadAcquire => {
            regs[d] = unsafe {
                match size {
                    1 => AtomicU8::from_ptr(p).load(SeqCst) as u64,
                    2 => AtomicU16::from_ptr(p.cast()).load(SeqCst) as u64,
                    4 => AtomicU32::from_ptr(p.cast()).load(SeqCst) as u64,
                    _ => AtomicU64::from_ptr(p.cast()).load(SeqCst),
                }
            }
        }
        AtomicOp::StoreRelease => unsafe {
            match size {
                1 => AtomicU8::from_ptr(p).store(regs[s] as u8, SeqCst),
                2 => AtomicU16::from_ptr(p.cast()).store(regs[s] as u16, SeqCst),
                4 => AtomicU32::from_ptr(p.cast()).store(regs[s] as u32, SeqCst),
                _ => AtomicU64::from_ptr(p.cast()).store(regs[s], SeqCst),
            }
        },
        _ if size == 4 => {
            let a = unsafe { AtomicU32::from_ptr(p.cast()) };
            let v = regs[s] as u32;
            let old = match aop {
                AtomicOp::Add | AtomicOp::FetchAdd => a.fetch_add(v, SeqCst),
                AtomicOp::Or | AtomicOp::FetchOr => a.fetch_or(v, SeqCst),
                AtomicOp::And | AtomicOp::FetchAnd => a.fetch_and(v, SeqCst),
                AtomicOp::Xor | AtomicOp::FetchXor => a.fetch_xor(v, SeqCst),
                AtomicOp::Xchg => a.swap(v, SeqCst),
                _ => match a.compare_exchange(regs[0] as u32, v, SeqCst, SeqCst) {
                    Ok(o) | Err(o) => o,
                },
            };
            write_back(aop, regs, s, old as u64);
        }
        _ => {
            let a = unsafe { AtomicU64::from_ptr(p.cast()) };
            let v = regs[s];
            let old = match aop {
                AtomicOp::Add | AtomicOp::FetchAdd => a.fetch_add(v, SeqCst),
                AtomicOp::Or | AtomicOp::FetchOr => a.fetch_or(v, SeqCst),
                AtomicOp::And | AtomicOp::FetchAnd => a.fetch_and(v, SeqCst),
                AtomicOp::Xor | AtomicOp::FetchXor => a.fetch_xor(v, SeqCst),
                AtomicOp::Xchg => a.swap(v, SeqCst),
                _ => match a.compare_exchange(regs[0], v, SeqCst, SeqCst) {
                    Ok(o) | Err(o) => o,
                },
            };
            write_back(aop, regs, s, old);
        }
    }
    Ok(())
}

/// Fetching forms return the old value in the source register (zero-extended
/// for 32-bit operations); cmpxchg returns it in r0.
fn write_back(aop: AtomicOp, regs: &mut [u64; 16], s: usize, old: u64) {
    match aop {
        AtomicOp::CmpXchg => regs[0] = old,
        o if o.fetches() => regs[s] = old,
        _ => {}
    }
}
