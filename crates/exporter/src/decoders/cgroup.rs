//! `cgroup`: cgroup id (the cgroup directory's inode number) to its path.

use super::{parse_go_int, Step};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many remembered ids a walk replaces the mapping instead of
/// adding to it, so ids of long-gone cgroups do not pile up forever.
const MAX_IDS: usize = 1 << 20;

#[derive(Default)]
struct State {
    ids: HashMap<u64, String>,
    walked_at: Option<Instant>,
}

pub(crate) struct Cgroups {
    root: PathBuf,
    refresh_interval: Duration,
    state: Mutex<State>,
}

impl Cgroups {
    pub(crate) fn new(root: PathBuf, refresh_interval: Duration) -> Cgroups {
        Cgroups {
            root,
            refresh_interval,
            state: Mutex::new(State::default()),
        }
    }

    /// `cgroup`: a decimal cgroup id as the path of its directory under the
    /// cgroup root (`/sys/fs/cgroup/system.slice/foo.service`), else
    /// `unknown_cgroup_id:N`. Ids are directory inode numbers, found by
    /// walking the tree; a miss walks again, at most once per refresh
    /// interval. Paths of removed cgroups are kept (like ebpf_exporter's
    /// walker), so late map entries still resolve.
    pub(crate) fn decode(&self, input: &[u8]) -> Step {
        let id = parse_go_int(input)?;
        Ok(self
            .resolve(id)?
            .unwrap_or_else(|| format!("unknown_cgroup_id:{id}"))
            .into_bytes())
    }

    fn resolve(&self, id: i64) -> Result<Option<String>, String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(id) = u64::try_from(id) else {
            return Ok(None);
        };
        if let Some(path) = state.ids.get(&id) {
            return Ok(Some(path.clone()));
        }
        let due = state
            .walked_at
            .is_none_or(|at| at.elapsed() >= self.refresh_interval);
        if !due {
            return Ok(None);
        }
        let found = match walk(&self.root) {
            Ok(found) => found,
            // Once a walk has worked, a failed one is a miss, retried later.
            Err(_) if state.walked_at.is_some() => {
                state.walked_at = Some(Instant::now());
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if state.ids.len() + found.len() > MAX_IDS {
            state.ids = found;
        } else {
            state.ids.extend(found);
        }
        state.walked_at = Some(Instant::now());
        Ok(state.ids.get(&id).cloned())
    }
}

/// `CGROUP2_SUPER_MAGIC`, from linux/magic.h.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

fn is_cgroup2(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: a NUL-terminated path and a statfs buffer to fill.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statfs(c.as_ptr(), &mut fs) }) == 0 && fs.f_type as i64 == CGROUP2_SUPER_MAGIC
}

/// Where the cgroup v2 hierarchy is mounted: `/sys/fs/cgroup`, or on a
/// hybrid host (v1 controllers at `/sys/fs/cgroup/*`) its `unified`
/// directory. Cgroup ids from eBPF (`bpf_get_current_cgroup_id`) are inode
/// numbers of this hierarchy; v1 directories' inodes would collide with them.
pub fn cgroup2_root() -> PathBuf {
    let root = Path::new("/sys/fs/cgroup");
    let unified = root.join("unified");
    if !is_cgroup2(root) && is_cgroup2(&unified) {
        unified
    } else {
        root.to_path_buf()
    }
}

/// Inode → path of every directory under `root` (root included), visited
/// depth first in name order like Go's `filepath.WalkDir`; a later directory
/// with the same inode replaces an earlier one. Symlinks are not followed;
/// entries vanishing mid-walk are skipped.
pub(crate) fn walk(root: &Path) -> Result<HashMap<u64, String>, String> {
    let mut ids = HashMap::new();
    let meta =
        std::fs::metadata(root).map_err(|e| format!("error walking {}: {e}", root.display()))?;
    if !meta.is_dir() {
        return Err(format!("error walking {}: not a directory", root.display()));
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        ids.insert(meta.ino(), dir.to_string_lossy().into_owned());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut children: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        // Popped in name order.
        children.sort_by(|a, b| b.file_name().cmp(&a.file_name()));
        stack.extend(children);
    }
    Ok(ids)
}
