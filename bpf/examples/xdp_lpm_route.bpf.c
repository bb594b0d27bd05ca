// SPDX-License-Identifier: GPL-2.0
// Routes IPv4 frames (Ethernet, no VLAN tag) by longest-prefix match of the
// destination address in `routes`, which the host fills. The route's action
// decides: 1 XDP_DROP, 2 XDP_PASS, 3 XDP_TX after swapping the Ethernet
// source and destination addresses; any other action XDP_ABORTED. A frame
// with no route returns XDP_PASS; one that is not IPv4 (or too short for an
// IPv4 header) returns XDP_PASS too.
//
// Maps:
//   routes      LPM_TRIE (BPF_F_NO_PREALLOC) struct route_key { prefixlen;
//               addr (network byte order) } -> struct route { action;
//               route_id }.
//   route_hits  HASH __u32 route_id -> __u64 packets: 0xffffffff counts
//               IPv4 frames without a route, 0xfffffffe frames that are
//               not IPv4.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define ETH_ALEN 6
#define ID_NO_ROUTE 0xffffffff
#define ID_NOT_IPV4 0xfffffffe

enum { ACTION_DROP = 1, ACTION_PASS = 2, ACTION_TX = 3 };

struct route_key {
	__u32 prefixlen;
	__u32 addr;
};

struct route {
	__u32 action;
	__u32 route_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct route_key);
	__type(value, struct route);
} routes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 257);
	__type(key, __u32);
	__type(value, __u64);
} route_hits SEC(".maps");

static __always_inline void hit(__u32 id)
{
	__u64 *n = bpf_map_lookup_elem(&route_hits, &id), one = 1;

	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	if (bpf_map_update_elem(&route_hits, &id, &one, BPF_NOEXIST) == 0)
		return;
	n = bpf_map_lookup_elem(&route_hits, &id);
	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("xdp")
int route(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct route_key key = { .prefixlen = 32 };
	struct route *r;
	__u8 mac[ETH_ALEN];

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP)) {
		hit(ID_NOT_IPV4);
		return XDP_PASS;
	}
	key.addr = ip->daddr;
	r = bpf_map_lookup_elem(&routes, &key);
	if (!r) {
		hit(ID_NO_ROUTE);
		return XDP_PASS;
	}
	hit(r->route_id);
	switch (r->action) {
	case ACTION_DROP:
		return XDP_DROP;
	case ACTION_PASS:
		return XDP_PASS;
	case ACTION_TX:
		__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
		__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
		return XDP_TX;
	default:
		return XDP_ABORTED;
	}
}
