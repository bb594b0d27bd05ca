// SPDX-License-Identifier: GPL-2.0
// XDP metadata (bpf_xdp_adjust_meta), in an object of its own: some kernel
// builds leave the helper out of XDP's set, and the kernel refuses a whole
// object when one of its programs calls a helper it does not offer.
//
//   xdp_meta   writes the frame length xor 0xc0ffee00 into 4 bytes of XDP
//              metadata (bpf_xdp_adjust_meta -4), reads it back through a
//              fresh pointer and leaves it there: XDP_PASS. A test run
//              returns the metadata in front of the frame.
//
// Maps:
//   meta_stats  ARRAY 2 x __u64: [0] readbacks that matched, [1] failures.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

enum {
	META_OK,
	META_FAILED,
	NR_META_STATS
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NR_META_STATS);
	__type(key, __u32);
	__type(value, __u64);
} meta_stats SEC(".maps");

static __always_inline void bump(__u32 key)
{
	__u64 *n = bpf_map_lookup_elem(&meta_stats, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("xdp")
int xdp_meta(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;
	__u32 *meta;
	void *data;

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*meta)))
		goto fail;
	meta = (void *)(long)ctx->data_meta;
	data = (void *)(long)ctx->data;
	if ((void *)(meta + 1) > data)
		goto fail;
	*meta = len ^ 0xc0ffee00;
	/* Read back through a fresh pointer. */
	meta = (void *)(long)ctx->data_meta;
	data = (void *)(long)ctx->data;
	if ((void *)(meta + 1) > data || *meta != (len ^ 0xc0ffee00))
		goto fail;
	bump(META_OK);
	return XDP_PASS;
fail:
	bump(META_FAILED);
	return XDP_PASS;
}
