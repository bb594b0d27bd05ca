//! Maps pinned on bpffs with bpfkit_kernel::pin outlive their object and
//! open again by path. Root only: skipped with a reason otherwise, and a skip
//! fails the run under CI=true.

mod common;
use bpfkit_kernel::object::ObjectLoader;
use bpfkit_kernel::pin::{self, PinError, BPF_FS_MAGIC};
use bpfkit_kernel::probe;
use common::{available, object};
use std::path::{Path, PathBuf};

/// A pin path of this process's own, removed when dropped.
struct PinPath(PathBuf);

impl PinPath {
    fn new(tag: &str) -> Self {
        let p = PathBuf::from(format!(
            "/sys/fs/bpf/bpfkit-test-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&p);
        PinPath(p)
    }
}

impl Drop for PinPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_pinned_map_outlives_its_object_and_opens_again() {
    if !available(false) {
        return;
    }
    let path = PinPath::new("openat-calls");
    let mut obj = ObjectLoader::open(&object("tracepoint_count.bpf.o"))
        .unwrap()
        .load()
        .unwrap();
    pin::pin_map(&mut obj, "openat_calls", &path.0).unwrap();
    assert!(path.0.exists());
    let map = obj.map("openat_calls").unwrap();
    map.update(&0u32.to_ne_bytes(), &0xdead_beef_u64.to_ne_bytes(), 0)
        .unwrap();
    let id = map.id;
    drop(map);
    drop(obj);

    let again = pin::open_pinned(&path.0).unwrap();
    assert_eq!(again.id, id, "the same map, not a new one");
    assert_eq!(again.name, "openat_calls");
    assert_eq!((again.key_size, again.value_size), (4, 8));
    assert_eq!(again.max_entries, 1);
    assert_eq!(again.map_type, 2, "BPF_MAP_TYPE_ARRAY");
    let v = again.lookup(&0u32.to_ne_bytes()).unwrap().unwrap();
    assert_eq!(u64::from_ne_bytes(v.try_into().unwrap()), 0xdead_beef);
    // Written through the reopened handle, read through a second one.
    again
        .update(&0u32.to_ne_bytes(), &7u64.to_ne_bytes(), 0)
        .unwrap();
    let third = pin::open_pinned(&path.0).unwrap();
    let v = third.lookup(&0u32.to_ne_bytes()).unwrap().unwrap();
    assert_eq!(u64::from_ne_bytes(v.try_into().unwrap()), 7);

    pin::unpin(&path.0).unwrap();
    assert!(!path.0.exists());
    let e = pin::open_pinned(&path.0).unwrap_err();
    assert!(e.to_string().contains("BPF_OBJ_GET"), "{e}");
}

#[test]
fn pinning_twice_and_missing_maps_are_errors() {
    if !available(false) {
        return;
    }
    let path = PinPath::new("twice");
    let mut obj = ObjectLoader::open(&object("tracepoint_count.bpf.o"))
        .unwrap()
        .load()
        .unwrap();
    let e = pin::pin_map(&mut obj, "nope", &path.0).unwrap_err();
    assert_eq!(e.to_string(), "the object has no map `nope`");
    pin::pin_map(&mut obj, "openat_calls", &path.0).unwrap();
    let e = pin::pin_map(&mut obj, "openat_calls", &path.0).unwrap_err();
    assert!(e.to_string().contains("BPF_OBJ_PIN"), "{e}");
}

#[test]
fn paths_outside_bpffs_are_refused_with_how_to_mount_it() {
    // No kernel needed: the check is statfs on the path's directory.
    let dir = std::env::temp_dir();
    let path = dir.join(format!("bpfkit-not-a-pin-{}", std::process::id()));
    let e = pin::open_pinned(&path).unwrap_err();
    let PinError::NotBpffs { fs_type, .. } = &e else {
        panic!("{e:?}")
    };
    assert_ne!(*fs_type, BPF_FS_MAGIC);
    let text = e.to_string();
    assert!(text.contains("not on a BPF filesystem"), "{text}");
    assert!(text.contains("mount -t bpf bpf /sys/fs/bpf"), "{text}");
    assert!(pin::unpin(&path).is_err());

    let e = pin::check_bpffs(Path::new("/nonexistent-bpfkit-dir/pin")).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");

    if probe().is_ok() {
        let mut obj = ObjectLoader::open(&object("tracepoint_count.bpf.o"))
            .unwrap()
            .load()
            .unwrap();
        let e = pin::pin_map(&mut obj, "openat_calls", &path).unwrap_err();
        assert!(matches!(e, PinError::NotBpffs { .. }), "{e:?}");
        assert!(!path.exists());
    }
}
