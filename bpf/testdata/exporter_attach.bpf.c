// SPDX-License-Identifier: GPL-2.0
// Programs that attach by their section alone, as ebpf_exporter attaches
// them: a perf event (software CPU clock, type 1 config 0, sampled at
// 199 Hz on every CPU) and XDP on the interface `lo`.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} cpu_clock_samples_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} lo_xdp_packets_total SEC(".maps");

static __always_inline void count(void *map)
{
	u32 zero = 0;
	u64 *n = bpf_map_lookup_elem(map, &zero);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("perf_event/type=1,config=0,frequency=199")
int on_cpu_clock(void *ctx)
{
	count(&cpu_clock_samples_total);
	return 0;
}

SEC("xdp/lo")
int on_lo_packet(struct xdp_md *ctx)
{
	count(&lo_xdp_packets_total);
	return XDP_PASS;
}
