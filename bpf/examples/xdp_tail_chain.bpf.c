// SPDX-License-Identifier: GPL-2.0
// A chain of XDP programs joined by tail calls through `jmp_table`, which
// the host fills: index 0 `xdp_stage_parse`, index 1 `xdp_stage_verdict`,
// index 2 `xdp_self_loop` (for the depth limit).
//
//   xdp_entry          counts, clears this CPU's `chain_state` (so what an
//                      earlier packet's broken chain left there never
//                      reaches this one), tail-calls index 0;
//   xdp_stage_parse    counts, parses Ethernet + IPv4 and hands what it
//                      found to the next stage in this CPU's `chain_state`
//                      (struct chain_state), tail-calls index 1;
//   xdp_stage_verdict  counts, takes the state (clearing it), and decides:
//                      XDP_DROP for IPv4 with a TTL below 5, XDP_PASS for
//                      anything else.
// Tail calls run on the CPU the chain started on, so a per-CPU slot is
// private to the packet in flight: the usual way to carry state along a
// chain, which works on every kernel (XDP metadata would need
// bpf_xdp_adjust_meta, which some kernel builds do not offer to XDP).
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
//               that reached the verdict without the parse stage's state.
//   chain_state PERCPU_ARRAY 1 x struct chain_state: the state in flight.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define MIN_TTL 5
#define STATE_MAGIC 0xb7f0

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

/* What the parse stage tells the verdict stage. */
struct chain_state {
	__u16 magic;
	__u8 is_ipv4;
	__u8 ttl;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct chain_state);
} chain_state SEC(".maps");

static __always_inline struct chain_state *state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&chain_state, &zero);
}

static __always_inline void hit(__u32 key)
{
	__u64 *n = bpf_map_lookup_elem(&stage_hits, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("xdp")
int xdp_entry(struct xdp_md *ctx)
{
	struct chain_state *st = state();

	hit(HIT_ENTRY);
	if (st)
		__builtin_memset(st, 0, sizeof(*st));
	bpf_tail_call(ctx, &jmp_table, 0);
	hit(HIT_MISS);
	return XDP_ABORTED;
}

SEC("xdp")
int xdp_stage_parse(struct xdp_md *ctx)
{
	struct chain_state found = { .magic = STATE_MAGIC };
	struct chain_state *st = state();
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
	if (st)
		*st = found;
	bpf_tail_call(ctx, &jmp_table, 1);
	hit(HIT_MISS);
	return XDP_ABORTED;
}

SEC("xdp")
int xdp_stage_verdict(struct xdp_md *ctx)
{
	struct chain_state *st = state();
	struct chain_state found = {};

	hit(HIT_VERDICT);
	if (st && st->magic == STATE_MAGIC) {
		found = *st;
		__builtin_memset(st, 0, sizeof(*st));
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
