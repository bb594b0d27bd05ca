// SPDX-License-Identifier: GPL-2.0
// A tc classifier doing destination NAT on IPv4 (Ethernet, no VLAN tag):
//   - UDP to port 9999 is dropped (TC_ACT_SHOT);
//   - TCP or UDP to port 7777 is rewritten to port 8888 and, when the
//     destination address is 10.0.0.1, to 10.0.0.2 as well. The IPv4 header
//     checksum is fixed with bpf_csum_diff + bpf_l3_csum_replace, the TCP or
//     UDP checksum with bpf_l4_csum_replace (BPF_F_PSEUDO_HDR for the
//     address, which the checksum covers through the pseudo-header; for UDP
//     BPF_F_MARK_MANGLED_0, so that a zero "no checksum" stays zero). The
//     rewritten packet gets skb->mark 0x42 and skb->priority 7;
//   - everything else passes untouched.
// The program reads the packet only through bpf_skb_load_bytes and writes it
// only through bpf_skb_store_bytes and the checksum helpers. It returns
// TC_ACT_OK (0) or TC_ACT_SHOT (2).
//
// Maps:
//   nat_stats  ARRAY 5 x __u64: [0] packets rewritten (port), [1] of which
//              the address was rewritten too, [2] UDP/9999 dropped,
//              [3] passed untouched, [4] skb->mark read back after the last
//              rewrite (0x42) with skb->priority in bits 32..63.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define ETH_HLEN 14
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

#define FROM_PORT 7777
#define TO_PORT 8888
#define DROP_PORT 9999
/* 10.0.0.1 and 10.0.0.2 */
#define FROM_ADDR 0x0a000001
#define TO_ADDR 0x0a000002

enum { REWRITTEN, ADDR_REWRITTEN, SHOT, PASSED, LAST_MARK, NR_NAT_STATS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NR_NAT_STATS);
	__type(key, __u32);
	__type(value, __u64);
} nat_stats SEC(".maps");

static __always_inline void bump(__u32 key)
{
	__u64 *n = bpf_map_lookup_elem(&nat_stats, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("classifier")
int nat(struct __sk_buff *skb)
{
	struct ethhdr eth;
	struct iphdr ip;
	__be16 ports[2];
	__u32 l4_off, csum_off, key;
	__sum16 check;
	__u64 csum_flags, *last;
	__be16 new_port = bpf_htons(TO_PORT);
	__be32 new_addr = bpf_htonl(TO_ADDR);
	__s64 diff;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0 ||
	    eth.h_proto != bpf_htons(ETH_P_IP))
		goto pass;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0 || ip.version != 4 ||
	    ip.ihl < 5)
		goto pass;
	if (ip.protocol != IPPROTO_UDP && ip.protocol != IPPROTO_TCP)
		goto pass;
	l4_off = ETH_HLEN + ip.ihl * 4;
	if (bpf_skb_load_bytes(skb, l4_off, ports, sizeof(ports)) < 0)
		goto pass;
	if (ip.protocol == IPPROTO_UDP && ports[1] == bpf_htons(DROP_PORT)) {
		bump(SHOT);
		return TC_ACT_SHOT;
	}
	if (ports[1] != bpf_htons(FROM_PORT))
		goto pass;

	if (ip.protocol == IPPROTO_UDP) {
		csum_off = l4_off + offsetof(struct udphdr, check);
		csum_flags = BPF_F_MARK_MANGLED_0;
	} else {
		csum_off = l4_off + offsetof(struct tcphdr, check);
		csum_flags = 0;
	}
	/* The whole checksum field must be in the packet. */
	if (bpf_skb_load_bytes(skb, csum_off, &check, sizeof(check)) < 0)
		goto pass;

	if (bpf_l4_csum_replace(skb, csum_off, ports[1], new_port,
				csum_flags | sizeof(new_port)) < 0)
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, l4_off + 2, &new_port, sizeof(new_port), 0) < 0)
		return TC_ACT_SHOT;

	if (ip.daddr == bpf_htonl(FROM_ADDR)) {
		/* IPv4 header: through a checksum difference. */
		diff = bpf_csum_diff(&ip.daddr, sizeof(ip.daddr), &new_addr, sizeof(new_addr), 0);
		if (diff < 0)
			return TC_ACT_SHOT;
		if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), 0, diff, 0) < 0)
			return TC_ACT_SHOT;
		/* TCP/UDP: the pseudo-header holds the address. */
		if (bpf_l4_csum_replace(skb, csum_off, ip.daddr, new_addr,
					csum_flags | BPF_F_PSEUDO_HDR | sizeof(new_addr)) < 0)
			return TC_ACT_SHOT;
		if (bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct iphdr, daddr), &new_addr,
					sizeof(new_addr), 0) < 0)
			return TC_ACT_SHOT;
		bump(ADDR_REWRITTEN);
	}

	skb->mark = 0x42;
	skb->priority = 7;
	bump(REWRITTEN);
	key = LAST_MARK;
	last = bpf_map_lookup_elem(&nat_stats, &key);
	if (last)
		*last = skb->mark | (__u64)skb->priority << 32;
	return TC_ACT_OK;

pass:
	bump(PASSED);
	return TC_ACT_OK;
}
