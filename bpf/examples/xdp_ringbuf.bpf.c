// SPDX-License-Identifier: GPL-2.0
// Emits one event per frame into a ring buffer, three ways:
//   - frames shorter than 60 bytes: space is reserved and then discarded
//     (bpf_ringbuf_reserve + bpf_ringbuf_discard), so nothing is emitted;
//   - IPv4 frames (Ethernet, no VLAN tag, a whole IPv4 header): the event is
//     built in reserved space and submitted (bpf_ringbuf_reserve +
//     bpf_ringbuf_submit), with the ports of TCP and UDP;
//   - anything else: the event is built on the stack and copied in with
//     bpf_ringbuf_output (ip_proto is IPv6's `nexthdr` for IPv6, else 0).
// Every frame returns XDP_PASS.
//
// Maps:
//   events    RINGBUF of 16 KiB: struct event records (20 bytes). len is the
//             frame length, eth_proto the EtherType in host byte order
//             (0 when the frame is shorter than an Ethernet header);
//             saddr, daddr, sport and dport are in network byte order, as
//             in the packet, and 0 where there are none.
//   rb_stats  ARRAY 4 x __u64: [0] submitted, [1] output, [2] discarded,
//             [3] reservations or outputs that failed (ring full).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define MIN_FRAME 60

struct event {
	__u32 len;
	__u16 eth_proto;
	__u8 ip_proto;
	__u8 pad;
	__u32 saddr, daddr;
	__u16 sport, dport;
};

enum { SUBMITTED, OUTPUT, DISCARDED, FAILED, NR_RB_STATS };

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096 * 4);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NR_RB_STATS);
	__type(key, __u32);
	__type(value, __u64);
} rb_stats SEC(".maps");

static __always_inline void bump(__u32 key)
{
	__u64 *n = bpf_map_lookup_elem(&rb_stats, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("xdp")
int emit_events(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct event *e, ev = {};

	if (len < MIN_FRAME) {
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e) {
			bump(FAILED);
			return XDP_PASS;
		}
		bpf_ringbuf_discard(e, 0);
		bump(DISCARDED);
		return XDP_PASS;
	}
	if ((void *)(ip + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IP)) {
		__be16 *ports = (void *)ip + ip->ihl * 4;

		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e) {
			bump(FAILED);
			return XDP_PASS;
		}
		e->len = len;
		e->eth_proto = ETH_P_IP;
		e->ip_proto = ip->protocol;
		e->pad = 0;
		e->saddr = ip->saddr;
		e->daddr = ip->daddr;
		e->sport = 0;
		e->dport = 0;
		if ((ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) &&
		    ip->ihl >= 5 && (void *)(ports + 2) <= data_end) {
			e->sport = ports[0];
			e->dport = ports[1];
		}
		bpf_ringbuf_submit(e, 0);
		bump(SUBMITTED);
		return XDP_PASS;
	}
	ev.len = len;
	if ((void *)(eth + 1) <= data_end) {
		ev.eth_proto = bpf_ntohs(eth->h_proto);
		if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
			struct ipv6hdr *ip6 = (void *)(eth + 1);

			if ((void *)(ip6 + 1) <= data_end)
				ev.ip_proto = ip6->nexthdr;
		}
	}
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), 0) < 0) {
		bump(FAILED);
		return XDP_PASS;
	}
	bump(OUTPUT);
	return XDP_PASS;
}
