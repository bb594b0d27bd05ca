// SPDX-License-Identifier: GPL-2.0
// Compiles, but the kernel's verifier must reject it: it reads the packet
// without checking data_end. Used to test that load errors carry the log.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int unchecked_read(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	return data[12] == 0x08 ? XDP_PASS : XDP_DROP;
}
