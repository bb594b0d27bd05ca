// SPDX-License-Identifier: GPL-2.0
// A chain of XDP programs joined by tail calls through `jmp_table`, which
// the host fills: index 0 `xdp_stage_parse`, index 1 `xdp_stage_verdict`,
// index 2 `xdp_self_loop` (for the depth limit).
//
//   xdp_entry          counts, tail-calls index 0;
//   xdp_stage_parse    counts, parses Ethernet + IPv4 and passes what it
//                      found to the next stage in 8 bytes of XDP metadata
//                      (struct verdict_meta), tail-calls index 1;
//   xdp_stage_verdict  counts, reads and removes the metadata, and decides:
//                      XDP_DROP for IPv4 with a TTL below 5, XDP_PASS for
//                      anything else.
// A caller whose tail call fails (an empty slot) counts a miss and returns
// XDP_ABORTED. `xdp_self_loop` tail-calls index 2 until the kernel refuses:
// with itself at index 2 it runs 34 times per packet (the first run and 33
// tail calls, the kernel's limit), then returns XDP_PASS.
//
// Maps:
//   jmp_table   PROG_ARRAY 4: the programs above.
//   stage_hits  ARRAY 8 x __u64: [0] xdp_entry runs, [1] xdp_stage_parse
//               runs, [2] xdp_stage_verdict runs, [3] failed tail calls
//               (misses), [4] xdp_self_loop runs, [5] packets dropped for
//               their TTL, [6] packets passed by the verdict, [7] packets
//               that reached the verdict without the parse stage's metadata.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define MIN_TTL 5
#define META_MAGIC 0xb7f0

enum {
	HIT_ENTRY,
	HIT_PARSE,
	HIT_VERDICT,
	HIT_MISS,
	HIT_SELF,
	HIT_TTL_DROP,
	HIT_PASS,
	HIT_NO_META,
	NR_HITS
};

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} jmp_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NR_HITS);
	__type(key, __u32);
	__type(value, __u64);
} stage_hits SEC(".maps");

/* What the parse stage tells the verdict stage, in the XDP metadata. */
struct verdict_meta {
	__u16 magic;
	__u8 is_ipv4;
	__u8 ttl;
	__u32 pad;
};

static __always_inline void hit(__u32 key)
{
	__u64 *n = bpf_map_lookup_elem(&stage_hits, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("xdp")
int xdp_entry(struct xdp_md *ctx)
{
	hit(HIT_ENTRY);
	bpf_tail_call(ctx, &jmp_table, 0);
	hit(HIT_MISS);
	return XDP_ABORTED;
}

SEC("xdp")
int xdp_stage_parse(struct xdp_md *ctx)
{
	struct verdict_meta found = { .magic = META_MAGIC };
	struct verdict_meta *meta;
	struct ethhdr *eth;
	struct iphdr *ip;
	void *data, *data_end;

	hit(HIT_PARSE);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IP) &&
	    ip->version == 4) {
		found.is_ipv4 = 1;
		found.ttl = ip->ttl;
	}
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*meta)) == 0) {
		meta = (void *)(long)ctx->data_meta;
		if ((void *)(meta + 1) <= (void *)(long)ctx->data)
			*meta = found;
	}
	bpf_tail_call(ctx, &jmp_table, 1);
	hit(HIT_MISS);
	return XDP_ABORTED;
}

SEC("xdp")
int xdp_stage_verdict(struct xdp_md *ctx)
{
	struct verdict_meta *meta = (void *)(long)ctx->data_meta;
	struct verdict_meta found = {};

	hit(HIT_VERDICT);
	if ((void *)(meta + 1) <= (void *)(long)ctx->data && meta->magic == META_MAGIC) {
		found = *meta;
		bpf_xdp_adjust_meta(ctx, sizeof(*meta));
	} else {
		hit(HIT_NO_META);
	}
	if (found.is_ipv4 && found.ttl < MIN_TTL) {
		hit(HIT_TTL_DROP);
		return XDP_DROP;
	}
	hit(HIT_PASS);
	return XDP_PASS;
}

SEC("xdp")
int xdp_self_loop(struct xdp_md *ctx)
{
	hit(HIT_SELF);
	bpf_tail_call(ctx, &jmp_table, 2);
	return XDP_PASS;
}
