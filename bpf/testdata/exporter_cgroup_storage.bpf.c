// SPDX-License-Identifier: GPL-2.0
// `cgroup_id_map` with a cgroup storage map: the exporter sets 1 in the
// storage of each cgroup whose path matches its regexps; getppid calls are
// counted by cgroup only for those.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_CGRP_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, u64);
} cgroup_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u64);
	__type(value, u64);
} filtered_getppid_total SEC(".maps");

SEC("tp_btf/sys_enter")
int BPF_PROG(count_getppid, struct pt_regs *regs, long id)
{
	struct task_struct *task = bpf_get_current_task_btf();
	u64 cgroup, one = 1, *n, *wanted;

	if (id != 110) /* getppid on x86-64 */
		return 0;
	wanted = bpf_cgrp_storage_get(&cgroup_filter, task->cgroups->dfl_cgrp, 0, 0);
	if (!wanted || !*wanted)
		return 0;
	cgroup = bpf_get_current_cgroup_id();
	n = bpf_map_lookup_elem(&filtered_getppid_total, &cgroup);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&filtered_getppid_total, &cgroup, &one, BPF_NOEXIST);
	return 0;
}
