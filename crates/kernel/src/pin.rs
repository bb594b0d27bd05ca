//! Maps pinned on the BPF filesystem: a pinned map outlives the object (and
//! the process) that created it, until its pin is removed, and can be opened
//! again by path as a byte-level [`KernelMap`].
//!
//! ```no_run
//! # fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use bpfkit_kernel::{object::ObjectLoader, pin};
//! use std::path::Path;
//! let mut obj = ObjectLoader::open("counts.bpf.o".as_ref())?.load()?;
//! pin::pin_map(&mut obj, "counts", Path::new("/sys/fs/bpf/counts"))?;
//! drop(obj);
//! let counts = pin::open_pinned(Path::new("/sys/fs/bpf/counts"))?;
//! pin::unpin(Path::new("/sys/fs/bpf/counts"))?;
//! # Ok(()) }
//! ```

use crate::maps::{KernelMap, MapError};
use crate::object::KernelObject;
use aya::maps::MapData;
use std::io;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// `f_type` of a bpffs mount (`BPF_FS_MAGIC` in linux/magic.h).
pub const BPF_FS_MAGIC: i64 = 0xcafe4a11;

#[derive(Debug, Error)]
pub enum PinError {
    #[error("the object has no map `{0}`")]
    NoMap(String),
    /// The path's directory is on another filesystem.
    #[error(
        "{}: not on a BPF filesystem ({dir} is on a filesystem of type {fs_type:#x}, bpffs is \
         0xcafe4a11); pins live on bpffs: mount it with `mount -t bpf bpf /sys/fs/bpf` and pin \
         under it",
        path.display(),
        dir = dir.display()
    )]
    NotBpffs {
        path: PathBuf,
        dir: PathBuf,
        fs_type: i64,
    },
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error("{}: {action}: {message}", path.display())]
    Bpf {
        path: PathBuf,
        action: &'static str,
        message: String,
    },
    #[error(transparent)]
    Map(#[from] MapError),
}

/// Checks that `path` (a pin, or a pin to be) lies on bpffs: its directory
/// must exist on a BPF filesystem.
pub fn check_bpffs(path: &Path) -> Result<(), PinError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let t = crate::setup::fs_type(dir).map_err(|source| PinError::Io {
        path: path.to_path_buf(),
        action: if source.kind() == io::ErrorKind::NotFound {
            "its directory does not exist (create it under a bpffs mount, e.g. /sys/fs/bpf)"
        } else {
            "statfs of its directory"
        },
        source,
    })?;
    if t != BPF_FS_MAGIC {
        return Err(PinError::NotBpffs {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            fs_type: t,
        });
    }
    Ok(())
}

/// Pins map `name` of `obj` at `path` (on bpffs; its directory must exist,
/// the path itself must not).
pub fn pin_map(obj: &mut KernelObject, name: &str, path: &Path) -> Result<(), PinError> {
    check_bpffs(path)?;
    let m = obj
        .aya()
        .map(name)
        .ok_or_else(|| PinError::NoMap(name.to_string()))?;
    m.pin(path).map_err(|e| PinError::Bpf {
        path: path.to_path_buf(),
        action: "pin (BPF_OBJ_PIN)",
        message: crate::error_chain(&e),
    })
}

/// Opens the map pinned at `path` as a byte-level map, named as the kernel
/// names it (or by the pin's file name when it has no name).
pub fn open_pinned(path: &Path) -> Result<KernelMap, PinError> {
    check_bpffs(path)?;
    let bpf_err = |action: &'static str| {
        move |e: aya::maps::MapError| PinError::Bpf {
            path: path.to_path_buf(),
            action,
            message: crate::error_chain(&e),
        }
    };
    let data = MapData::from_pin(path).map_err(bpf_err("open (BPF_OBJ_GET)"))?;
    let info = data.info().map_err(bpf_err("map info"))?;
    let name = match info.name_as_str() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let map_type = info.map_type().map(|t| t as u32).unwrap_or(0);
    Ok(KernelMap::from_id(
        &name,
        info.id(),
        map_type,
        info.key_size() as usize,
        info.value_size() as usize,
        info.max_entries(),
    )?)
}

/// Removes a pin (the map is freed once nothing else holds it).
pub fn unpin(path: &Path) -> Result<(), PinError> {
    check_bpffs(path)?;
    std::fs::remove_file(path).map_err(|source| PinError::Io {
        path: path.to_path_buf(),
        action: "remove the pin",
        source,
    })
}
