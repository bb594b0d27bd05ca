// SPDX-License-Identifier: GPL-2.0
// A program whose result depends on the engine: it stores a value from
// bpf_get_prandom_u32 (the kernel's generator in one engine, the VM's in
// the other) in a map, so comparing the engines must report that map.
// Everything else (verdict, packet) agrees.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} last_random SEC(".maps");

SEC("xdp")
int differs(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&last_random, &key);

	if (v)
		*v = ((__u64)bpf_get_prandom_u32() << 32) | bpf_get_prandom_u32();
	return XDP_PASS;
}
