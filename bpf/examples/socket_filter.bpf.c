// SPDX-License-Identifier: GPL-2.0
// A socket filter keeping UDP datagrams to one port. A socket filter sees
// the packet from its network header: offset 0 is the IPv4 or IPv6 header,
// and skb->protocol says which. UDP over IPv4 (any IHL) or IPv6 (`nexthdr`
// UDP, no extension headers) to `port` (set before load; default 5353,
// mDNS) is kept and truncated to 64 bytes (the return value); everything
// else is dropped (0). The packet is read with bpf_skb_load_bytes only.
//
// Maps:
//   filter_stats  ARRAY 4 x __u64: [0] packets seen, [1] kept, [2] dropped,
//                 [3] sum of skb->len over the packets seen.
//   pkt_types     ARRAY 8 x __u64: packets seen per skb->pkt_type
//                 (0 host, 1 broadcast, 2 multicast, 3 other host, ...).
//   protocols     HASH  __u32 skb->protocol (host byte order) -> __u64
//                 packets seen with it.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define KEEP_BYTES 64

const volatile __u16 port = 5353;

enum { SEEN, KEPT, DROPPED, BYTES, NR_FILTER_STATS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NR_FILTER_STATS);
	__type(key, __u32);
	__type(value, __u64);
} filter_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} pkt_types SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} protocols SEC(".maps");

static __always_inline void add(void *map, __u32 key, __u64 v)
{
	__u64 *n = bpf_map_lookup_elem(map, &key);

	if (n)
		__sync_fetch_and_add(n, v);
}

static __always_inline int verdict(int keep)
{
	add(&filter_stats, keep ? KEPT : DROPPED, 1);
	return keep ? KEEP_BYTES : 0;
}

SEC("socket")
int keep_port(struct __sk_buff *skb)
{
	__u32 proto = bpf_ntohs(skb->protocol);
	__u64 one = 1, *n;
	struct udphdr udp;
	__u32 l4_off;

	add(&filter_stats, SEEN, 1);
	add(&filter_stats, BYTES, skb->len);
	if (skb->pkt_type < 8)
		add(&pkt_types, skb->pkt_type, 1);
	n = bpf_map_lookup_elem(&protocols, &proto);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&protocols, &proto, &one, BPF_NOEXIST);

	if (proto == ETH_P_IP) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0 || ip.version != 4 ||
		    ip.ihl < 5 || ip.protocol != IPPROTO_UDP)
			return verdict(0);
		l4_off = ip.ihl * 4;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0 ||
		    ip6.nexthdr != IPPROTO_UDP)
			return verdict(0);
		l4_off = sizeof(ip6);
	} else {
		return verdict(0);
	}
	if (bpf_skb_load_bytes(skb, l4_off, &udp, sizeof(udp)) < 0)
		return verdict(0);
	return verdict(udp.dest == bpf_htons(port));
}
