// SPDX-License-Identifier: GPL-2.0
// Map operations from a program, for the map benchmark: each run does
// OPS lookups and OPS updates on a hash map and on an array map, so the
// per-run time over 2 * OPS is the cost of one helper call plus the map
// work, in whichever engine runs it.
//
// Maps:
//   hash   HASH  __u32 -> __u64, keys 0..63 (the host fills them)
//   array  ARRAY 64 x __u64
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define OPS 256

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} array SEC(".maps");

SEC("xdp")
int hash_ops(struct xdp_md *ctx)
{
	__u64 sum = 0;

	for (__u32 i = 0; i < OPS; i++) {
		__u32 key = i & 63;
		__u64 *v = bpf_map_lookup_elem(&hash, &key);
		__u64 next;

		if (v)
			sum += *v;
		next = sum + i;
		bpf_map_update_elem(&hash, &key, &next, BPF_EXIST);
	}
	return sum ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int array_ops(struct xdp_md *ctx)
{
	__u64 sum = 0;

	for (__u32 i = 0; i < OPS; i++) {
		__u32 key = i & 63;
		__u64 *v = bpf_map_lookup_elem(&array, &key);
		__u64 next;

		if (v)
			sum += *v;
		next = sum + i;
		bpf_map_update_elem(&array, &key, &next, BPF_ANY);
	}
	return sum ? XDP_PASS : XDP_DROP;
}
