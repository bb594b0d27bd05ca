// SPDX-License-Identifier: GPL-2.0
// A socket filter that keeps only UDP datagrams whose first payload byte is
// 'K' (truncating nothing) and counts what it saw.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* [0] seen, [1] kept */
u64 filter_counts[2] = {};

SEC("socket")
int keep_k(struct __sk_buff *skb)
{
	u8 first = 0;

	__sync_fetch_and_add(&filter_counts[0], 1);
	/* For a UDP socket, offset 0 is the UDP header; payload starts at 8. */
	if (bpf_skb_load_bytes(skb, 8, &first, 1) < 0 || first != 'K')
		return 0;
	__sync_fetch_and_add(&filter_counts[1], 1);
	return skb->len;
}
