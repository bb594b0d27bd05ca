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

/// Facts helpers report about "the current task", and sinks helpers write
/// to. Shared by every run of an instance. A fact left `None` is the calling
/// thread's own, as in the kernel, whose test runs execute in the task that
/// asked for them; set one to make runs reproducible.
#[derive(Debug)]
pub struct HostEnv {
    /// bpf_get_current_pid_tgid: tgid << 32 | pid.
    pub pid_tgid: Option<u64>,
    /// bpf_get_current_uid_gid: gid << 32 | uid.
    pub uid_gid: Option<u64>,
    /// bpf_get_current_comm.
    pub comm: Option<[u8; 16]>,
    /// bpf_get_current_cgroup_id (the cgroup v2 directory's inode number).
    pub cgroup_id: Option<u64>,
    /// Lines written by bpf_trace_printk, in order.
    pub trace: Mutex<Vec<String>>,
    /// State of bpf_get_prandom_u32 (seedable for reproducible runs).
    pub prandom: std::sync::atomic::AtomicU64,
}

impl Default for HostEnv {
    fn default() -> Self {
        HostEnv {
            pid_tgid: None,
            uid_gid: None,
            comm: None,
            cgroup_id: None,
            trace: Mutex::new(Vec::new()),
            prandom: std::sync::atomic::AtomicU64::new(0x2545_f491_4f6c_dd1d),
        }
    }
}

impl HostEnv {
    pub fn pid_tgid(&self) -> u64 {
        self.pid_tgid.unwrap_or_else(|| {
            // SAFETY: getpid and gettid take no arguments and cannot fail.
            let (tgid, pid) = unsafe { (libc::getpid() as u32, libc::gettid() as u32) };
            (tgid as u64) << 32 | pid as u64
        })
    }

    pub fn uid_gid(&self) -> u64 {
        self.uid_gid.unwrap_or_else(|| {
            // SAFETY: getuid and getgid take no arguments and cannot fail.
            let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
            (gid as u64) << 32 | uid as u64
        })
    }

    pub fn comm(&self) -> [u8; 16] {
        self.comm.unwrap_or_else(|| {
            let mut comm = [0u8; 16];
            if let Ok(name) = std::fs::read("/proc/thread-self/comm") {
                let name = name.strip_suffix(b"\n").unwrap_or(&name);
                let n = name.len().min(15);
                comm[..n].copy_from_slice(&name[..n]);
            }
            comm
        })
    }

    pub fn cgroup_id(&self) -> u64 {
        self.cgroup_id.unwrap_or_else(current_cgroup_id)
    }
}

/// The calling thread's cgroup v2 id: the inode number of its cgroup's
/// directory (what the kernel reports); 0 without cgroup v2.
pub fn current_cgroup_id() -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(text) = std::fs::read_to_string("/proc/thread-self/cgroup") else {
        return 0;
    };
    let Some(path) = text.lines().find_map(|l| l.strip_prefix("0::")) else {
        return 0;
    };
    let Some(root) = cgroup2_mount() else {
        return 0;
    };
    std::fs::metadata(format!("{root}{path}")).map_or(0, |m| m.ino())
}

/// Where cgroup v2 is mounted: /sys/fs/cgroup on unified systems,
/// /sys/fs/cgroup/unified on hybrid ones (from /proc/self/mountinfo).
fn cgroup2_mount() -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (mount, fs) = l.split_once(" - ")?;
        fs.starts_with("cgroup2 ")
            .then(|| mount.split(' ').nth(4).map(String::from))?
    })
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
