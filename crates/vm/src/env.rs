//! What a run sees of the world besides its memory: the maps, the CPU it runs
//! on, the packet context, and the process facts helpers report.

use crate::context::PacketContext;
use crate::maps::{BpfMap, MapRegistry};
use std::sync::{Arc, Mutex};

/// Where an XDP or tc program asked its packet to go, or a socket program
/// its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// bpf_redirect(ifindex, flags).
    Ifindex { ifindex: u32, flags: u64 },
    /// bpf_redirect_map(map, key, flags), with the map's id.
    Map { map: u32, key: u64, flags: u64 },
    /// bpf_sk_redirect_map/hash, bpf_msg_redirect_map/hash: the SOCKMAP or
    /// SOCKHASH map's id, the key's bytes, and the flags (BPF_F_INGRESS).
    Socket { map: u32, key: Vec<u8>, flags: u64 },
}

/// Facts the host sets for helpers that report on "the current task", and
/// sinks helpers write to. Shared by every run of an instance.
#[derive(Debug)]
pub struct HostEnv {
    /// bpf_get_current_pid_tgid: tgid << 32 | pid.
    pub pid_tgid: u64,
    /// bpf_get_current_uid_gid: gid << 32 | uid.
    pub uid_gid: u64,
    /// bpf_get_current_comm.
    pub comm: [u8; 16],
    /// bpf_get_current_cgroup_id (0: no cgroup).
    pub cgroup_id: u64,
    /// Lines written by bpf_trace_printk, in order.
    pub trace: Mutex<Vec<String>>,
    /// State of bpf_get_prandom_u32 (seedable for reproducible runs).
    pub prandom: std::sync::atomic::AtomicU64,
}

impl Default for HostEnv {
    fn default() -> Self {
        let mut comm = [0u8; 16];
        comm[..6].copy_from_slice(b"bpfkit");
        HostEnv {
            pid_tgid: 0,
            uid_gid: 0,
            comm,
            cgroup_id: 0,
            trace: Mutex::new(Vec::new()),
            prandom: std::sync::atomic::AtomicU64::new(0x2545_f491_4f6c_dd1d),
        }
    }
}

/// The registry's maps as a run last saw them, so a helper resolves a map
/// handle without taking the registry's lock.
#[derive(Debug, Default)]
pub struct MapCache {
    maps: Vec<Arc<dyn BpfMap>>,
    /// The registry and generation the snapshot is of.
    of: Option<(Arc<MapRegistry>, u64)>,
}

/// The state of one run (and of the tail calls it makes).
#[derive(Debug)]
pub struct RunEnv {
    /// The per-CPU slot this run uses (bpf_get_smp_processor_id).
    pub cpu: u32,
    pub maps: Arc<MapRegistry>,
    pub host: Arc<HostEnv>,
    /// The packet context of XDP, tc and socket programs.
    pub packet: Option<PacketContext>,
    /// Set by bpf_tail_call: the program id to continue with.
    pub tail_call: Option<u32>,
    /// Tail calls taken so far in this run (the kernel allows 33).
    pub tail_calls: u32,
    /// How many programs the instance has (valid tail-call targets are below).
    pub programs: u32,
    /// Map handles resolved without locking (refreshed as runs start).
    pub map_cache: MapCache,
    /// The last bpf_redirect / bpf_redirect_map of the run.
    pub redirect: Option<Redirect>,
}

impl Default for RunEnv {
    fn default() -> Self {
        RunEnv {
            cpu: 0,
            maps: MapRegistry::new(),
            host: Arc::new(HostEnv::default()),
            packet: None,
            tail_call: None,
            tail_calls: 0,
            programs: 0,
            map_cache: MapCache::default(),
            redirect: None,
        }
    }
}

/// The kernel's limit on tail calls in one run (MAX_TAIL_CALL_CNT).
pub const MAX_TAIL_CALLS: u32 = 33;

impl RunEnv {
    /// The map a program handle designates.
    pub fn map(&self, handle: u64) -> Option<Arc<dyn BpfMap>> {
        if let Some(id) = MapRegistry::id_of(handle) {
            if let Some(m) = self.map_cache.maps.get(id as usize) {
                return Some(m.clone());
            }
        }
        // A map registered since the run started.
        self.maps.from_handle(handle)
    }

    /// Brings the map cache up to date with the registry.
    pub(crate) fn refresh_map_cache(&mut self) {
        let generation = self.maps.generation();
        let fresh = matches!(&self.map_cache.of,
            Some((r, g)) if Arc::ptr_eq(r, &self.maps) && *g == generation);
        if !fresh {
            self.map_cache.maps = self.maps.snapshot();
            self.map_cache.of = Some((self.maps.clone(), generation));
        }
    }
}
