//! `cgroup_id_map`, as ebpf_exporter's `exporter/cgroup_id_map.go`: the
//! exporter keeps a map of the cgroups whose path matches one of the
//! config's regexps, for the program to filter on. A `hash` map holds the
//! cgroup id (u64) → 1 for each; a `cgrp_storage` map holds 1 in each
//! matching cgroup's storage (written through an fd of its directory).
//!
//! The map is filled from a walk of the cgroup v2 tree at start, then kept
//! in step with it: fanotify reports directories created and removed
//! anywhere in the tree (as ebpf_exporter watches it), and each burst of
//! events is followed by one walk whose difference with the map is applied.
//! Walking, rather than resolving each event's file handle, also sees
//! renames and needs no CAP_DAC_READ_SEARCH once started. Where fanotify is
//! not available (ebpf_exporter then refuses `cgroup_id_map`) the tree is
//! walked every [`POLL_INTERVAL`].

use crate::config::{CgroupIdMap, CgroupIdMapType};
use crate::decoders::cgroup::walk;
use bpfkit::Map;
use regex::Regex;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the tree is walked when fanotify cannot watch it.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps one config's `cgroup_id_map` in step with the cgroup tree.
pub struct CgroupIdSync {
    config: String,
    map: Map,
    map_type: CgroupIdMapType,
    regexps: Vec<Regex>,
    root: PathBuf,
    /// Cgroup id → path of the cgroups written into the map.
    present: HashMap<u64, String>,
}

/// What one [`CgroupIdSync::sync`] changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    pub added: usize,
    pub removed: usize,
}

impl CgroupIdSync {
    /// Checks the map against the config as ebpf_exporter does (key 8 bytes
    /// for `hash`, 4 for `cgrp_storage`; values u64) and compiles the
    /// regexps; the map is not written yet.
    pub fn new(
        config: &str,
        spec: &CgroupIdMap,
        map: Map,
        root: &Path,
    ) -> Result<CgroupIdSync, String> {
        let want = spec.map_type.key_size();
        if map.key_size() != want {
            return Err(format!(
                "key size for map `{}` is not expected {want} bytes for map type {}, it is {} bytes",
                spec.name,
                spec.map_type.as_str(),
                map.key_size()
            ));
        }
        if map.value_size() != 8 {
            return Err(format!(
                "value size for map `{}` is not expected 8 bytes (u64), it is {} bytes",
                spec.name,
                map.value_size()
            ));
        }
        let regexps = spec
            .regexps
            .iter()
            .map(|r| Regex::new(r).map_err(|e| format!("error compiling regexp {r:?}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(CgroupIdSync {
            config: config.to_string(),
            map,
            map_type: spec.map_type,
            regexps,
            root: root.to_path_buf(),
            present: HashMap::new(),
        })
    }

    fn matches(&self, path: &str) -> bool {
        self.regexps.iter().any(|r| r.is_match(path))
    }

    /// Walks the tree and writes the difference into the map: matching
    /// cgroups not there yet are added, cgroups gone (or renamed so that
    /// they no longer match) are removed.
    pub fn sync(&mut self) -> Result<SyncStats, String> {
        let tree = walk(&self.root)?;
        let mut stats = SyncStats::default();
        let gone: Vec<u64> = self
            .present
            .iter()
            .filter(|(id, _)| tree.get(id).is_none_or(|p| !self.matches(p)))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(path) = self.present.remove(&id) {
                self.remove(id, &path)?;
                stats.removed += 1;
            }
        }
        for (id, path) in tree {
            if !self.matches(&path) {
                continue;
            }
            if let Some(known) = self.present.get_mut(&id) {
                // Renamed, still matching: in the map already.
                *known = path;
                continue;
            }
            match self.add(id, &path) {
                Ok(()) => {
                    self.present.insert(id, path);
                    stats.added += 1;
                }
                // Removed between the walk and the write: the next walk
                // sees it gone.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("map `{}`: adding {path}: {e}", self.map.name())),
            }
        }
        Ok(stats)
    }

    fn add(&self, id: u64, path: &str) -> io::Result<()> {
        let one = 1u64.to_ne_bytes();
        let result = match self.map_type {
            CgroupIdMapType::Hash => self.map.update(&id.to_ne_bytes(), &one, 0),
            CgroupIdMapType::CgrpStorage => {
                // The key of a cgroup storage map is an fd of the cgroup's
                // directory (docs.kernel.org/bpf/map_cgrp_storage.html).
                let dir = std::fs::File::open(path)?;
                self.map
                    .update(&(dir.as_raw_fd() as u32).to_ne_bytes(), &one, 0)
            }
        };
        result.map_err(|e| io::Error::other(e.to_string()))
    }

    fn remove(&self, id: u64, path: &str) -> Result<(), String> {
        let result = match self.map_type {
            CgroupIdMapType::Hash => self.map.delete(&id.to_ne_bytes()),
            // The kernel frees a removed cgroup's storage; one that was
            // renamed out of the regexps still exists and is cleared.
            CgroupIdMapType::CgrpStorage => match std::fs::File::open(path) {
                Ok(dir) => self.map.delete(&(dir.as_raw_fd() as u32).to_ne_bytes()),
                Err(_) => return Ok(()),
            },
        };
        result
            .map(|_| ())
            .map_err(|e| format!("map `{}`: removing {path}: {e}", self.map.name()))
    }

    /// The config this map belongs to.
    pub fn config(&self) -> &str {
        &self.config
    }
}

/// A fanotify group watching the cgroup tree for directories created and
/// removed, non-blocking.
pub fn watch(root: &Path) -> io::Result<OwnedFd> {
    let flags = libc::FAN_CLASS_NOTIF | libc::FAN_REPORT_DFID_NAME | libc::FAN_NONBLOCK;
    // SAFETY: fanotify_init with flag arguments; a new fd or -1.
    let fd = unsafe { libc::fanotify_init(flags, (libc::O_RDONLY | libc::O_CLOEXEC) as u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor owned from here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let path = std::ffi::CString::new(root.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid fanotify fd and a NUL-terminated path.
    let r = unsafe {
        libc::fanotify_mark(
            fd.as_raw_fd(),
            libc::FAN_MARK_ADD | libc::FAN_MARK_ONLYDIR | libc::FAN_MARK_FILESYSTEM,
            libc::FAN_CREATE | libc::FAN_DELETE | libc::FAN_ONDIR,
            libc::AT_FDCWD,
            path.as_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Reads every pending event; true when there was at least one.
fn drain(fd: &OwnedFd) -> io::Result<bool> {
    let mut buf = [0u8; 4096];
    let mut any = false;
    loop {
        // SAFETY: reading into a buffer of its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            any = true;
            continue;
        }
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock => Ok(any),
            io::ErrorKind::Interrupted => continue,
            _ if n == 0 => Ok(any),
            _ => Err(e),
        };
    }
}

fn sync_all(maps: &mut [CgroupIdSync]) {
    for m in maps {
        if let Err(e) = m.sync() {
            eprintln!("ebpf_exporter: config `{}`: cgroup_id_map: {e}", m.config());
        }
    }
}

/// Keeps `maps` in step with the tree at `root` until dropped: after each
/// burst of fanotify events, or every [`POLL_INTERVAL`] without fanotify.
/// Must run inside a tokio runtime with IO and time enabled.
pub async fn keep_in_step(root: PathBuf, mut maps: Vec<CgroupIdSync>) {
    let watcher = watch(&root).and_then(|fd| {
        // SAFETY: the AsyncFd owns the OwnedFd, which keeps the descriptor
        // open, and always the same one, while it lives.
        unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        }
        .map_err(io::Error::from)
    });
    let watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!(
                "ebpf_exporter: cgroup_id_map: cannot watch {} with fanotify ({e}); walking it every {}s",
                root.display(),
                POLL_INTERVAL.as_secs()
            );
            None
        }
    };
    let Some(watcher) = watcher else {
        let mut every = tokio::time::interval(POLL_INTERVAL);
        loop {
            every.tick().await;
            sync_all(&mut maps);
        }
    };
    // Anything created between the first walk and the watch.
    sync_all(&mut maps);
    loop {
        let mut ready = match watcher.readable().await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ebpf_exporter: cgroup_id_map: fanotify: {e}; no more updates");
                return;
            }
        };
        // Read until the queue is empty, so readiness is cleared rightly.
        let drained = drain(watcher.get_ref());
        ready.clear_ready();
        match drained {
            Ok(true) => sync_all(&mut maps),
            Ok(false) => {}
            Err(e) => {
                eprintln!("ebpf_exporter: cgroup_id_map: fanotify: {e}; no more updates");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// The hash-map test object in the VM: its `cgroup_filter` is a map
    /// like the kernel's, so the sync logic runs without root.
    fn vm_object() -> bpfkit::Loaded {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../bpf/testdata/exporter_cgroup_hash.bpf.o"
        );
        bpfkit::Object::open(path)
            .unwrap()
            .load(bpfkit::Engine::Vm)
            .unwrap()
    }

    fn spec(regexps: &[&str]) -> CgroupIdMap {
        CgroupIdMap {
            name: "cgroup_filter".to_string(),
            map_type: CgroupIdMapType::Hash,
            regexps: regexps.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn sync_adds_matching_directories_and_removes_gone_or_renamed_ones() {
        let root = std::env::temp_dir().join(format!("bpfkit-cgsync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["a/web-1", "a/web-2", "b/db"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let object = vm_object();
        let map = object.map("cgroup_filter").unwrap();
        let filter = object.map("cgroup_filter").unwrap();
        let mut sync = CgroupIdSync::new("t", &spec(&["/web-"]), filter, &root).unwrap();
        let ino = |d: &str| std::fs::metadata(root.join(d)).unwrap().ino();
        let has = |id: u64| map.lookup(&id.to_ne_bytes()).unwrap().is_some();

        assert_eq!(
            sync.sync().unwrap(),
            SyncStats {
                added: 2,
                removed: 0
            }
        );
        let (w1, w2, db) = (ino("a/web-1"), ino("a/web-2"), ino("b/db"));
        assert!(has(w1) && has(w2) && !has(db));
        assert_eq!(
            map.lookup(&w1.to_ne_bytes()).unwrap(),
            Some(1u64.to_ne_bytes().to_vec())
        );
        // Nothing changed: nothing written.
        assert_eq!(sync.sync().unwrap(), SyncStats::default());

        // web-3 first: a removed directory's inode may be reused at once.
        std::fs::create_dir(root.join("b/web-3")).unwrap();
        std::fs::remove_dir(root.join("a/web-1")).unwrap();
        std::fs::rename(root.join("a/web-2"), root.join("a/api")).unwrap();
        assert_eq!(
            sync.sync().unwrap(),
            SyncStats {
                added: 1,
                removed: 2
            }
        );
        assert!(!has(w1) && !has(w2) && has(ino("b/web-3")));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_map_of_the_wrong_shape_or_a_bad_regexp_is_refused() {
        let object = vm_object();
        let map = || object.map("cgroup_filter").unwrap();
        let root = Path::new("/nonexistent");
        let mut storage = spec(&["x"]);
        storage.map_type = CgroupIdMapType::CgrpStorage;
        let e = CgroupIdSync::new("t", &storage, map(), root).err().unwrap();
        assert!(
            e.contains("not expected 4 bytes for map type cgrp_storage, it is 8 bytes"),
            "{e}"
        );
        let e = CgroupIdSync::new("t", &spec(&["("]), map(), root)
            .err()
            .unwrap();
        assert!(e.contains("error compiling regexp \"(\""), "{e}");
        // A tree that cannot be walked is an error, not an empty map.
        let mut sync = CgroupIdSync::new("t", &spec(&["x"]), map(), root).unwrap();
        assert!(sync.sync().unwrap_err().contains("/nonexistent"));
    }
}
