// SPDX-License-Identifier: GPL-2.0
// ebpf_exporter's `kaddrs`: the exporter writes the kernel address of each
// listed symbol into `const volatile u64 kaddr_<symbol>` before load. On
// every exec this program counts under that address, which the config
// decodes back to the symbol name with the `ksym` decoder.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

const volatile u64 kaddr_vfs_read = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, u64);
	__type(value, u64);
} kaddr_execs_total SEC(".maps");

SEC("tp_btf/sched_process_exec")
int BPF_PROG(count_exec)
{
	u64 key = kaddr_vfs_read, one = 1, *n;

	n = bpf_map_lookup_elem(&kaddr_execs_total, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&kaddr_execs_total, &key, &one, BPF_NOEXIST);
	return 0;
}
