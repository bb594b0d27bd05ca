// SPDX-License-Identifier: GPL-2.0
// A counter map for the exporter's scrape benchmark
// (crates/exporter/benches/exporter.rs, exporter_series.yaml): the host
// fills `bench_series_total` with 1,000 or 10,000 keys and times the
// scrapes. The program only gives the object something to attach; it
// fires on exec, which the benchmark does not do, and touches nothing.
//
// Maps:
//   bench_series_total  HASH  {u32 id; u32 op} -> u64, 16384 entries
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* Labels `id` (4, uint) and `op` (4, uint + static_map): no padding. */
struct series_key {
	u32 id;
	u32 op;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct series_key);
	__type(value, u64);
} bench_series_total SEC(".maps");

SEC("tp_btf/sched_process_exec")
int bench_series_idle(void *ctx)
{
	return 0;
}
