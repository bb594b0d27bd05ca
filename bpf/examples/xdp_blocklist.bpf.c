// SPDX-License-Identifier: GPL-2.0
// Port blocklist. TCP and UDP over IPv4 or IPv6 (Ethernet, no VLAN tag; the
// IP version field must match the EtherType; the IPv6 `nexthdr` must be TCP
// or UDP itself) whose destination port is in `blocked_ports` are dropped
// with XDP_DROP and counted there; everything else, including frames too
// short to hold the ports, returns XDP_PASS.
//
// Maps:
//   blocked_ports  HASH  __u16 destination port (host byte order) -> __u64
//                  packets dropped for it; the host inserts the ports with
//                  a count of 0.
//   stats          ARRAY 2 x __u64: [0] packets passed, [1] packets dropped.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u64);
} blocked_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline int verdict(int action)
{
	__u32 key = action == XDP_DROP ? 1 : 0;
	__u64 *n = bpf_map_lookup_elem(&stats, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
	return action;
}

SEC("xdp")
int blocklist(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 l4_proto;
	void *l4;
	__u16 port;
	__u64 *hits;

	if ((void *)(eth + 1) > data_end)
		return verdict(XDP_PASS);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5)
			return verdict(XDP_PASS);
		l4_proto = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return verdict(XDP_PASS);
		l4_proto = ip6->nexthdr;
		l4 = ip6 + 1;
	} else {
		return verdict(XDP_PASS);
	}
	if (l4_proto != IPPROTO_TCP && l4_proto != IPPROTO_UDP)
		return verdict(XDP_PASS);
	/* Source and destination ports lead both TCP and UDP headers. */
	if (l4 + 4 > data_end)
		return verdict(XDP_PASS);
	port = bpf_ntohs(((__be16 *)l4)[1]);
	hits = bpf_map_lookup_elem(&blocked_ports, &port);
	if (!hits)
		return verdict(XDP_PASS);
	__sync_fetch_and_add(hits, 1);
	return verdict(XDP_DROP);
}
