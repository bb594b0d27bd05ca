//! Async readers of the events eBPF programs send to user space, on tokio:
//! a BPF ring buffer ([`RingBufReader`]) and a perf event array with one
//! buffer per online CPU ([`PerfBufReader`]). Each descriptor is registered
//! with tokio's reactor through [`AsyncFd`], so a reader waits without
//! spinning and without a thread of its own.
//!
//! Both take their map out of a [`KernelObject`] by name: afterwards the
//! object no longer has that map (its programs still write to it).
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use bpfkit_kernel::events::RingBufReader;
//! use bpfkit_kernel::object::ObjectLoader;
//! let mut obj = ObjectLoader::open("events.bpf.o".as_ref())?.load()?;
//! let mut ring = RingBufReader::new(&mut obj, "events_ring")?;
//! let event: Vec<u8> = ring.next().await?;
//! # Ok(()) }
//! ```

use crate::object::KernelObject;
use aya::maps::perf::{PerfEvent, PerfEventArrayBuffer};
use aya::maps::{Map, MapData, PerfEventArray, RingBuf};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::os::fd::AsRawFd;
use std::task::Poll;
use thiserror::Error;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

#[derive(Debug, Error)]
pub enum EventError {
    #[error("the object has no map `{0}`")]
    NoMap(String),
    #[error("map `{map}` is a {actual} map, not a {wanted}")]
    WrongType {
        map: String,
        actual: String,
        wanted: &'static str,
    },
    #[error("map `{map}`: {action}: {message}")]
    Open {
        map: String,
        action: &'static str,
        message: String,
    },
    /// Registering with, or waiting on, tokio's reactor failed (outside a
    /// runtime with IO enabled, for one).
    #[error("map `{map}`: waiting for events: {source}")]
    Io { map: String, source: io::Error },
}

fn map_kind(m: &Map) -> String {
    let s = format!("{m:?}");
    s.split('(').next().unwrap_or("unknown").to_string()
}

fn take_map(
    obj: &mut KernelObject,
    name: &str,
    wanted: &'static str,
    fits: fn(&Map) -> bool,
) -> Result<Map, EventError> {
    let ebpf = obj.aya();
    let m = ebpf
        .map(name)
        .ok_or_else(|| EventError::NoMap(name.to_string()))?;
    if !fits(m) {
        return Err(EventError::WrongType {
            map: name.to_string(),
            actual: map_kind(m),
            wanted,
        });
    }
    ebpf.take_map(name)
        .ok_or_else(|| EventError::NoMap(name.to_string()))
}

/// AsyncFd panics outside a runtime: check first, before the map is taken.
fn need_runtime(map: &str) -> Result<(), EventError> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Ok(()),
        Err(_) => Err(EventError::Io {
            map: map.to_string(),
            source: io::Error::other("not inside a tokio runtime (with IO enabled)"),
        }),
    }
}

/// Registers a reader's descriptor with the current runtime's reactor.
fn register<T: AsRawFd>(inner: T, map: &str) -> Result<AsyncFd<T>, EventError> {
    let io_err = |source| EventError::Io {
        map: map.to_string(),
        source,
    };
    // SAFETY: `inner` (a ring buffer map or a perf buffer) owns its
    // descriptor, keeps it open while it lives and returns the same one
    // from every as_raw_fd call; the AsyncFd owns `inner`.
    unsafe { AsyncFd::register_with_interest(inner, Interest::READABLE) }
        .map_err(|e| io_err(e.into()))
}

/// Reads a `BPF_MAP_TYPE_RINGBUF` map, one record at a time, in the order
/// the programs committed them.
pub struct RingBufReader {
    name: String,
    ring: AsyncFd<RingBuf<MapData>>,
    pending: VecDeque<Vec<u8>>,
}

impl RingBufReader {
    /// Takes the ring buffer map `name` out of `obj`. Must be called inside
    /// a tokio runtime with IO enabled.
    pub fn new(obj: &mut KernelObject, name: &str) -> Result<Self, EventError> {
        need_runtime(name)?;
        let m = take_map(obj, name, "ring buffer", |m| matches!(m, Map::RingBuf(_)))?;
        let ring = RingBuf::try_from(m).map_err(|e| EventError::Open {
            map: name.to_string(),
            action: "map the ring buffer",
            message: crate::error_chain(&e),
        })?;
        let ring = register(ring, name)?;
        Ok(RingBufReader {
            name: name.to_string(),
            ring,
            pending: VecDeque::new(),
        })
    }

    /// The map's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Records already available, without waiting (drains the ring).
    pub fn try_next(&mut self) -> Option<Vec<u8>> {
        if self.pending.is_empty() {
            let ring = self.ring.get_mut();
            while let Some(item) = ring.next() {
                self.pending.push_back(item.to_vec());
            }
        }
        self.pending.pop_front()
    }

    /// The next record: waits until the ring is readable, drains every
    /// record there (returning them one by one from later calls), and clears
    /// the readiness only once the ring was seen empty.
    pub async fn next(&mut self) -> Result<Vec<u8>, EventError> {
        if let Some(item) = self.pending.pop_front() {
            return Ok(item);
        }
        loop {
            let mut guard = self
                .ring
                .readable_mut()
                .await
                .map_err(|source| EventError::Io {
                    map: self.name.clone(),
                    source,
                })?;
            let ring = guard.get_inner_mut();
            while let Some(item) = ring.next() {
                self.pending.push_back(item.to_vec());
            }
            // Edge-triggered: a record committed after the drain above wakes
            // the reactor again, and tokio keeps that readiness.
            guard.clear_ready();
            if let Some(item) = self.pending.pop_front() {
                return Ok(item);
            }
        }
    }
}

/// What one CPU's perf buffer held when it was read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerfBatch {
    /// The CPU whose buffer this is.
    pub cpu: u32,
    /// The samples, in the order that CPU wrote them. Each holds the bytes
    /// the program passed to `bpf_perf_event_output`, followed by up to 7
    /// bytes of the kernel's alignment padding.
    pub samples: Vec<Vec<u8>>,
    /// Samples the kernel dropped because this buffer was full.
    pub lost: u64,
}

/// Reads a `BPF_MAP_TYPE_PERF_EVENT_ARRAY` map through one buffer per
/// online CPU.
pub struct PerfBufReader {
    name: String,
    buffers: Vec<(u32, AsyncFd<PerfEventArrayBuffer<MapData>>)>,
    /// Where the next poll starts, so that a busy CPU does not starve the
    /// others.
    start: usize,
}

impl PerfBufReader {
    /// Takes the perf event array `name` out of `obj` and opens a buffer of
    /// `page_count` pages (a power of two; `None`: 2) for each online CPU.
    /// Must be called inside a tokio runtime with IO enabled.
    pub fn new(
        obj: &mut KernelObject,
        name: &str,
        page_count: Option<usize>,
    ) -> Result<Self, EventError> {
        need_runtime(name)?;
        let m = take_map(obj, name, "perf event array", |m| {
            matches!(m, Map::PerfEventArray(_))
        })?;
        let open_err = |action: &'static str, message: String| EventError::Open {
            map: name.to_string(),
            action,
            message,
        };
        let mut array = PerfEventArray::try_from(m)
            .map_err(|e| open_err("open the array", crate::error_chain(&e)))?;
        let cpus = aya::util::online_cpus()
            .map_err(|(what, e)| open_err("list online CPUs", format!("{what}: {e}")))?;
        let mut buffers = Vec::with_capacity(cpus.len());
        for cpu in cpus {
            let buf = array.open(cpu, page_count).map_err(|e| {
                open_err(
                    "open a CPU's perf buffer",
                    format!("CPU {cpu}: {}", crate::error_chain(&e)),
                )
            })?;
            let buf = register(buf, name)?;
            buffers.push((cpu, buf));
        }
        Ok(PerfBufReader {
            name: name.to_string(),
            buffers,
            start: 0,
        })
    }

    /// The map's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The CPUs read, one buffer each.
    pub fn cpus(&self) -> Vec<u32> {
        self.buffers.iter().map(|(cpu, _)| *cpu).collect()
    }

    /// The next non-empty batch (samples or a lost count) from whichever
    /// CPU's buffer is ready; waits while all are empty.
    pub async fn next_batch(&mut self) -> Result<PerfBatch, EventError> {
        poll_fn(|cx| {
            let n = self.buffers.len();
            for k in 0..n {
                let i = (self.start + k) % n;
                let (cpu, fd) = &mut self.buffers[i];
                // Poll until Pending, so the waker is registered for this
                // buffer before another is tried.
                loop {
                    match fd.poll_read_ready_mut(cx) {
                        Poll::Pending => break,
                        Poll::Ready(Err(source)) => {
                            return Poll::Ready(Err(EventError::Io {
                                map: self.name.clone(),
                                source,
                            }))
                        }
                        Poll::Ready(Ok(mut guard)) => {
                            let mut batch = PerfBatch {
                                cpu: *cpu,
                                ..PerfBatch::default()
                            };
                            guard.get_inner_mut().for_each(|ev| match ev {
                                PerfEvent::Sample { head, tail } => {
                                    let mut s = Vec::with_capacity(head.len() + tail.len());
                                    s.extend_from_slice(head);
                                    s.extend_from_slice(tail);
                                    batch.samples.push(s);
                                }
                                PerfEvent::Lost { count } => batch.lost += count,
                            });
                            guard.clear_ready();
                            if !batch.samples.is_empty() || batch.lost > 0 {
                                self.start = (i + 1) % n;
                                return Poll::Ready(Ok(batch));
                            }
                        }
                    }
                }
            }
            Poll::Pending
        })
        .await
    }
}
