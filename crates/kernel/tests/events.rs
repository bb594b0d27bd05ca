//! The async readers of bpfkit_kernel::events on tokio, reading the events
//! tracepoint_count.bpf.o emits for each getppid(2) of this process. Root
//! only: skipped with a reason otherwise, and a skip fails the run under
//! CI=true.

mod common;
use bpfkit_kernel::events::{EventError, PerfBufReader, RingBufReader};
use bpfkit_kernel::object::{Attach, KernelObject, ObjectLoader};
use common::{available, object, u64_at};
use std::time::Duration;

/// Both event tests trigger on getppid of this whole process: they take
/// turns.
static GETPPID: std::sync::Mutex<()> = std::sync::Mutex::new(());

const N: u64 = 100;
/// How long a reader may wait for all N events before the test fails.
const TIMEOUT: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn loaded() -> KernelObject {
    let mut loader = ObjectLoader::open(&object("tracepoint_count.bpf.o")).unwrap();
    loader.set_global("target_tgid", &std::process::id().to_ne_bytes());
    loader.load().unwrap()
}

fn attach(obj: &mut KernelObject) {
    obj.attach(
        "emit_getppid",
        Attach::Tracepoint {
            category: "syscalls",
            name: "sys_enter_getppid",
        },
    )
    .unwrap();
}

/// Calls getppid N times from this (the test) thread, in groups of 10 with a
/// short sleep between, so the reader task runs while events still come.
async fn trigger() {
    for i in 0..N {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() };
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[test]
fn ring_buf_reader_delivers_every_event_in_order() {
    if !available(true) {
        return;
    }
    let _turn = GETPPID.lock().unwrap_or_else(|e| e.into_inner());
    runtime().block_on(async {
        let mut obj = loaded();
        let mut ring = RingBufReader::new(&mut obj, "events_ring").unwrap();
        assert_eq!(ring.name(), "events_ring");
        attach(&mut obj);
        let reader = tokio::spawn(async move {
            let mut events = Vec::new();
            while events.len() < N as usize {
                events.push(ring.next().await.unwrap());
            }
            (events, ring)
        });
        trigger().await;
        let (events, mut ring) = tokio::time::timeout(TIMEOUT, reader)
            .await
            .expect("timed out waiting for ring buffer events")
            .unwrap();
        let mut seqs = Vec::new();
        for e in &events {
            assert_eq!(e.len(), 16);
            seqs.push(u64_at(e, 0));
            assert_eq!((u64_at(e, 1) >> 32) as u32, std::process::id());
        }
        assert_eq!(seqs, (0..N).collect::<Vec<_>>());
        // Nothing more than N.
        assert_eq!(ring.try_next(), None);
        drop(obj);
    });
}

#[test]
fn perf_buf_reader_delivers_every_event() {
    if !available(true) {
        return;
    }
    let _turn = GETPPID.lock().unwrap_or_else(|e| e.into_inner());
    runtime().block_on(async {
        let mut obj = loaded();
        let mut perf = PerfBufReader::new(&mut obj, "events_perf", None).unwrap();
        assert_eq!(perf.cpus(), aya::util::online_cpus().unwrap());
        attach(&mut obj);
        let reader = tokio::spawn(async move {
            let mut per_cpu: std::collections::BTreeMap<u32, Vec<u64>> = Default::default();
            let mut lost = 0;
            let mut got = 0;
            while got < N as usize && lost == 0 {
                let batch = perf.next_batch().await.unwrap();
                lost += batch.lost;
                for s in &batch.samples {
                    // 16 bytes of event, plus the kernel's padding.
                    assert!(s.len() >= 16, "{s:?}");
                    assert_eq!((u64_at(s, 1) >> 32) as u32, std::process::id());
                    per_cpu.entry(batch.cpu).or_default().push(u64_at(s, 0));
                }
                got += batch.samples.len();
            }
            (per_cpu, lost)
        });
        trigger().await;
        let (per_cpu, lost) = tokio::time::timeout(TIMEOUT, reader)
            .await
            .expect("timed out waiting for perf buffer events")
            .unwrap();
        assert_eq!(lost, 0, "events lost");
        let mut all = Vec::new();
        for (cpu, seqs) in per_cpu {
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "CPU {cpu}: {seqs:?}");
            all.extend(seqs);
        }
        all.sort();
        assert_eq!(all, (0..N).collect::<Vec<_>>());
    });
}

#[test]
fn readers_name_missing_maps_and_maps_of_the_wrong_type() {
    if !available(false) {
        return;
    }
    runtime().block_on(async {
        let mut obj = loaded();
        let e = RingBufReader::new(&mut obj, "nope").err().unwrap();
        assert!(matches!(e, EventError::NoMap(_)), "{e:?}");
        assert_eq!(e.to_string(), "the object has no map `nope`");
        let e = RingBufReader::new(&mut obj, "events_perf").err().unwrap();
        assert!(matches!(e, EventError::WrongType { .. }), "{e:?}");
        assert!(e.to_string().contains("`events_perf`"), "{e}");
        assert!(e.to_string().contains("not a ring buffer"), "{e}");
        let e = PerfBufReader::new(&mut obj, "openat_calls", None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("`openat_calls`"), "{e}");
        assert!(e.to_string().contains("not a perf event array"), "{e}");
        // A map of the wrong type stays in the object.
        assert!(obj.map("events_perf").is_ok());
        assert!(obj.map("openat_calls").is_ok());
    });
    // Outside a runtime: an error, not a panic.
    let mut obj = loaded();
    let e = RingBufReader::new(&mut obj, "events_ring").err().unwrap();
    assert!(e.to_string().contains("tokio runtime"), "{e}");
}
