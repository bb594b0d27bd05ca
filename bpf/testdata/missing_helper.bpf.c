// SPDX-License-Identifier: GPL-2.0
// A tc program calling a helper the VM does not provide
// (bpf_skb_change_tail): loading it into the VM must fail with an error
// naming the helper, its id and the program.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("classifier")
int grow(struct __sk_buff *skb)
{
	return bpf_skb_change_tail(skb, skb->len + 4, 0) ? 2 : 0;
}
