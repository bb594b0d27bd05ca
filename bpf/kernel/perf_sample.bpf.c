// SPDX-License-Identifier: GPL-2.0
// Counts CPU-clock samples, per CPU, and those that hit a chosen process.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

const volatile u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} samples SEC(".maps");

u64 target_samples = 0;

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	u32 zero = 0;
	u64 *n = bpf_map_lookup_elem(&samples, &zero);

	if (n)
		*n += 1;
	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
		__sync_fetch_and_add(&target_samples, 1);
	return 0;
}
