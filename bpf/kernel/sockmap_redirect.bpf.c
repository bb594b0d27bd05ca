// SPDX-License-Identifier: GPL-2.0
// Splices TCP connections: bytes arriving on the socket at sockmap index i
// are redirected to the send side of the socket at index i ^ 1 (SK_SKB stream
// parser + verdict); messages sent on a socket in the sockhash are redirected
// to the ingress side of its peer, keyed by the peer's port (SK_MSG).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, u32);
	__type(value, u32);
} sock_pair SEC(".maps");

/* local port -> which index the socket has (so verdict can find its peer) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, u32);
} port_index SEC(".maps");

u64 redirected_bytes = 0;

SEC("sk_skb/stream_parser")
int parse_all(struct __sk_buff *skb)
{
	return skb->len;
}

SEC("sk_skb/stream_verdict")
int redirect_to_peer(struct __sk_buff *skb)
{
	u32 port = skb->local_port;
	u32 *idx = bpf_map_lookup_elem(&port_index, &port);

	if (!idx)
		return SK_PASS;
	__sync_fetch_and_add(&redirected_bytes, skb->len);
	return bpf_sk_redirect_map(skb, &sock_pair, *idx ^ 1, 0);
}

/* SK_MSG: key is the peer's local port (host order). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, u32);
} sock_by_port SEC(".maps");

/* sender's local port -> port of the socket its messages go to */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, u32);
} msg_route SEC(".maps");

u64 redirected_msgs = 0;

SEC("sk_msg")
int redirect_msg(struct sk_msg_md *msg)
{
	u32 port = msg->local_port;
	u32 *to = bpf_map_lookup_elem(&msg_route, &port);

	if (!to)
		return SK_PASS;
	__sync_fetch_and_add(&redirected_msgs, 1);
	return bpf_msg_redirect_hash(msg, &sock_by_port, to, BPF_F_INGRESS);
}
