// SPDX-License-Identifier: GPL-2.0
// `cgroup_id_map` with a hash map: the exporter fills `cgroup_filter` with
// the ids of the cgroups whose path matches its regexps; getppid calls are
// counted by cgroup only for those.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u64);
	__type(value, u64);
} cgroup_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u64);
	__type(value, u64);
} filtered_getppid_total SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int count_getppid(void *ctx)
{
	u64 cgroup = bpf_get_current_cgroup_id(), one = 1, *n;

	if (!bpf_map_lookup_elem(&cgroup_filter, &cgroup))
		return 0;
	n = bpf_map_lookup_elem(&filtered_getppid_total, &cgroup);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&filtered_getppid_total, &cgroup, &one, BPF_NOEXIST);
	return 0;
}
