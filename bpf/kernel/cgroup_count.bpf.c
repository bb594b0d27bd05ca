// SPDX-License-Identifier: GPL-2.0
// Counts the packets and bytes a cgroup sends and receives; lets all through.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* [0] egress packets, [1] egress bytes, [2] ingress packets, [3] ingress bytes */
u64 totals[4] = {};

SEC("cgroup_skb/egress")
int count_egress(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&totals[0], 1);
	__sync_fetch_and_add(&totals[1], skb->len);
	return 1;
}

SEC("cgroup_skb/ingress")
int count_ingress(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&totals[2], 1);
	__sync_fetch_and_add(&totals[3], skb->len);
	return 1;
}
