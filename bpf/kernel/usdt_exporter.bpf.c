// SPDX-License-Identifier: GPL-2.0
// An ebpf_exporter program on USDT probes, attached by its sections as
// ebpf_exporter (libbpf) does: usdt/PATH:PROVIDER:NAME. The path is relative
// to the exporter's working directory, where the test puts the USDT test
// program (crates/kernel/tests/usdt_target). Counts hits by a key: the
// konst probe's first argument (42), or 1 for the semaphore-guarded probe.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, u64);
} usdt_hits_total SEC(".maps");

static void count(u32 key)
{
	u64 one = 1, *v = bpf_map_lookup_elem(&usdt_hits_total, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&usdt_hits_total, &key, &one, BPF_NOEXIST);
}

SEC("usdt/./usdt_target:bpfkit:konst")
int BPF_USDT(count_konst, int a, int b)
{
	count(a);
	return 0;
}

SEC("usdt/./usdt_target:bpfkit:guarded")
int BPF_USDT(count_guarded, int i)
{
	count(1);
	return 0;
}
