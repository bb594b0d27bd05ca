// SPDX-License-Identifier: GPL-2.0
// A filter configured before load through read-only globals (.rodata):
//   min_len       frames shorter than this are dropped (0: none);
//   drop_icmp     when non-zero, ICMP over IPv4 and ICMPv6 over IPv6 are
//                 dropped;
//   blocked_port  when non-zero, TCP and UDP to this destination port are
//                 dropped (IPv4 or IPv6 directly followed by TCP/UDP).
// Ethernet, no VLAN tag. Everything else returns XDP_PASS. The checks run in
// that order; the first that matches decides.
//
// Globals the program writes:
//   seen          (.bss)  __u64, frames seen.
//   last_verdict  (.data) __u32, the verdict of the last frame; 0xffffffff
//                 until the first one.
// Maps:
//   drop_reasons  ARRAY 4 x __u64: [0] too short, [1] ICMP, [2] blocked
//                 port, [3] passed.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_ICMPV6 58

const volatile __u16 blocked_port = 0;
const volatile __u8 drop_icmp = 0;
const volatile __u32 min_len = 0;

__u32 last_verdict = 0xffffffff;
__u64 seen = 0;

enum { TOO_SHORT, ICMP, BLOCKED_PORT, PASSED, NR_REASONS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NR_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} drop_reasons SEC(".maps");

static __always_inline int decide(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&drop_reasons, &reason);
	int verdict = reason == PASSED ? XDP_PASS : XDP_DROP;

	if (n)
		__sync_fetch_and_add(n, 1);
	last_verdict = verdict;
	return verdict;
}

SEC("xdp")
int configured_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 l4_proto;
	void *l4;

	__sync_fetch_and_add(&seen, 1);
	if (data_end - data < min_len)
		return decide(TOO_SHORT);
	if ((void *)(eth + 1) > data_end)
		return decide(PASSED);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5)
			return decide(PASSED);
		l4_proto = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
		if (drop_icmp && l4_proto == IPPROTO_ICMP)
			return decide(ICMP);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return decide(PASSED);
		l4_proto = ip6->nexthdr;
		l4 = ip6 + 1;
		if (drop_icmp && l4_proto == IPPROTO_ICMPV6)
			return decide(ICMP);
	} else {
		return decide(PASSED);
	}
	if (blocked_port && (l4_proto == IPPROTO_TCP || l4_proto == IPPROTO_UDP) &&
	    l4 + 4 <= data_end && ((__be16 *)l4)[1] == bpf_htons(blocked_port))
		return decide(BLOCKED_PORT);
	return decide(PASSED);
}
