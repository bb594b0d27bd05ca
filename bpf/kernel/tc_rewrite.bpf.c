// SPDX-License-Identifier: GPL-2.0
// A tc classifier for UDP over IPv4: drops datagrams to `drop_port`, rewrites
// the destination port `from_port` to `to_port` (fixing the UDP checksum with
// bpf_l4_csum_replace), and counts what it did.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define BPF_F_PSEUDO_HDR_FLAG 0x10

const volatile u16 drop_port = 9999;
const volatile u16 from_port = 7777;
const volatile u16 to_port = 8888;

/* [0] dropped, [1] rewritten, [2] passed */
u64 counters[3] = {};

/* "classifier" rather than libbpf's newer "tc": aya 0.14 knows only the former. */
SEC("classifier")
int rewrite_udp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp;
	u16 old_port, new_port;
	u32 udp_off;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return TC_ACT_OK;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end)
		return TC_ACT_OK;
	if (udp->dest == bpf_htons(drop_port)) {
		__sync_fetch_and_add(&counters[0], 1);
		return TC_ACT_SHOT;
	}
	if (udp->dest != bpf_htons(from_port)) {
		__sync_fetch_and_add(&counters[2], 1);
		return TC_ACT_OK;
	}
	old_port = udp->dest;
	new_port = bpf_htons(to_port);
	udp_off = sizeof(struct ethhdr) + sizeof(struct iphdr);
	if (bpf_l4_csum_replace(skb, udp_off + offsetof(struct udphdr, check), old_port, new_port,
				sizeof(new_port)))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, udp_off + offsetof(struct udphdr, dest), &new_port,
				sizeof(new_port), 0))
		return TC_ACT_SHOT;
	__sync_fetch_and_add(&counters[1], 1);
	return TC_ACT_OK;
}
