// SPDX-License-Identifier: GPL-2.0
// Per-protocol packet counter. Parses Ethernet (with at most one 802.1Q VLAN
// tag), then IPv4 or IPv6, and counts packets and bytes (the whole frame) per
// IP protocol number: the IPv4 `protocol` field, or the IPv6 `nexthdr` field
// (extension headers are not followed). Every packet returns XDP_PASS except
// malformed ones, which return XDP_DROP.
//
// Maps:
//   proto_stats  HASH   __u32 key -> struct counter { packets, bytes }:
//                the IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6,
//                any other number as is), 0xffff for frames that are not IP
//                (another EtherType), 0xfffe for malformed frames (truncated
//                Ethernet, VLAN, IPv4 or IPv6 header; IPv4 with a version
//                other than 4 or an IHL below 5 or past the frame; IPv6 with
//                a version other than 6).
//   totals       PERCPU_ARRAY, 1 entry: struct counter over every frame seen.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define KEY_NOT_IP 0xffff
#define KEY_MALFORMED 0xfffe

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 260);
	__type(key, __u32);
	__type(value, struct counter);
} proto_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counter);
} totals SEC(".maps");

static __always_inline void count(__u32 key, __u64 bytes)
{
	struct counter *c = bpf_map_lookup_elem(&proto_stats, &key);

	if (!c) {
		struct counter first = { .packets = 1, .bytes = bytes };

		if (bpf_map_update_elem(&proto_stats, &key, &first, BPF_NOEXIST) == 0)
			return;
		/* Another CPU inserted it first. */
		c = bpf_map_lookup_elem(&proto_stats, &key);
		if (!c)
			return;
	}
	__sync_fetch_and_add(&c->packets, 1);
	__sync_fetch_and_add(&c->bytes, bytes);
}

SEC("xdp")
int count_protocols(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
	struct ethhdr *eth = data;
	struct counter *total;
	__u32 zero = 0;
	void *l3;
	__u16 proto;

	total = bpf_map_lookup_elem(&totals, &zero);
	if (total) {
		total->packets += 1;
		total->bytes += bytes;
	}

	if ((void *)(eth + 1) > data_end)
		goto malformed;
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *vlan = l3;

		if ((void *)(vlan + 1) > data_end)
			goto malformed;
		proto = vlan->h_vlan_encapsulated_proto;
		l3 = vlan + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5 ||
		    l3 + ip->ihl * 4 > data_end)
			goto malformed;
		count(ip->protocol, bytes);
		return XDP_PASS;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			goto malformed;
		count(ip6->nexthdr, bytes);
		return XDP_PASS;
	}
	count(KEY_NOT_IP, bytes);
	return XDP_PASS;

malformed:
	count(KEY_MALFORMED, bytes);
	return XDP_DROP;
}
