//! What a run needs besides the code, the same for the interpreter and the
//! JIT: the stack of frames, the region table, and the map regions cached
//! from the run environment.

use crate::env::RunEnv;
use crate::maps::MapRegistry;
use crate::memory::{Region, Regions};
use crate::program::{FRAME_SIZE, MAX_FRAMES};
use crate::Entry;
use std::sync::Arc;

/// Bytes of stack an engine owns: MAX_FRAMES frames.
pub(crate) const STACK_SIZE: usize = FRAME_SIZE * MAX_FRAMES;

pub(crate) struct RunMemory {
    // u64 words so the stack is 8-byte aligned, as atomics on it require.
    pub stack: Box<[u64]>,
    pub regions: Regions,
    /// Frames the last run entered: cleared before the next run, so no run
    /// sees what an earlier one left on the stack.
    pub dirty_frames: usize,
    /// Map regions cached from the run environment's registry, with the
    /// registry and generation they were read at. Holding the registry keeps
    /// the cached maps alive (and its address from being reused).
    map_regions: Vec<Region>,
    map_regions_of: Option<(Arc<MapRegistry>, u64)>,
}

impl RunMemory {
    pub fn new() -> RunMemory {
        RunMemory {
            stack: vec![0u64; STACK_SIZE / 8].into_boxed_slice(),
            regions: Regions::new(),
            dirty_frames: 0,
            map_regions: Vec::new(),
            map_regions_of: None,
        }
    }

    /// Prepares a run in `env`: the stack (region 0), then what `setup`
    /// adds (the run's context and packet), then `env`'s maps. Returns the
    /// entry registers `setup` gave.
    pub fn enter(
        &mut self,
        env: &mut RunEnv,
        setup: impl FnOnce(&mut RunEnv, &mut Regions) -> Entry,
    ) -> Entry {
        self.prepare_stack();
        let entry = setup(env, &mut self.regions);
        let generation = env.maps.generation();
        let fresh = matches!(&self.map_regions_of,
            Some((r, g)) if Arc::ptr_eq(r, &env.maps) && *g == generation);
        if !fresh {
            self.map_regions = env.maps.regions();
            self.map_regions_of = Some((env.maps.clone(), generation));
        }
        env.refresh_map_cache();
        for r in &self.map_regions {
            self.regions.push_region(*r);
        }
        entry
    }

    /// Makes the stack ready for a run on the region table the last run
    /// set up and left unchanged: what [`Self::enter`] does to the stack,
    /// the table kept (a call moves only region 0's start).
    pub fn reenter(&mut self) {
        self.clear_dirty_frames();
        let frame0 = self.stack.as_mut_ptr().cast::<u8>().addr() + STACK_SIZE - FRAME_SIZE;
        self.regions.set_start(0, frame0 as u64);
    }

    fn clear_dirty_frames(&mut self) {
        let words = self.stack.len();
        let dirty = (self.dirty_frames * FRAME_SIZE / 8).min(words);
        if dirty > 0 {
            self.stack[words - dirty..].fill(0);
        }
        self.dirty_frames = 1;
    }

    /// Clears the frames the last run used and makes the stack region (always
    /// region 0) cover frame 0 only: a frame becomes addressable when a call
    /// enters it, so the cleared frames are all a run can reach.
    fn prepare_stack(&mut self) {
        self.clear_dirty_frames();
        self.regions.truncate(0);
        let top = self.stack.as_mut_ptr().cast::<u8>();
        // SAFETY: the stack holds MAX_FRAMES frames; frame 0 is the last one.
        let frame0 = unsafe { top.add(STACK_SIZE - FRAME_SIZE) };
        // SAFETY: the stack lives as long as `self`, which outlives the run.
        unsafe { self.regions.add_rw(frame0, FRAME_SIZE) };
    }
}

/// The entry of a run on plain memory: `r1` points at `mem` (0 when it is
/// empty), `r2` holds its length, and `mem` is the packet LD_ABS/LD_IND read.
pub(crate) fn memory_entry(regions: &mut Regions, mem: &mut [u8]) -> Entry {
    let len = mem.len();
    let addr = if len == 0 {
        0
    } else {
        // SAFETY: the caller borrows `mem` for the whole run.
        unsafe { regions.add_rw(mem.as_mut_ptr(), len) }
    };
    Entry {
        args: [addr, len as u64, 0, 0, 0],
        packet: (addr, len as u64),
    }
}
