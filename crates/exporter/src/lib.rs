//! bpfkit's Prometheus exporter: ebpf_exporter's YAML configs and objects,
//! map keys decoded into labels, served over HTTP.

pub mod cgroup_id_map;
pub mod config;
pub mod decoders;
pub mod http;
pub mod metrics;
pub mod perf_events;
pub mod runtime;
