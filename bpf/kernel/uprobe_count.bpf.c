// SPDX-License-Identifier: GPL-2.0
// Counts calls of a user-space function (uprobe) and its returns (uretprobe),
// and sums its first argument.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct stats {
	u64 calls;
	u64 returns;
	u64 arg_sum;
};

struct stats stats = {};

SEC("uprobe")
int BPF_KPROBE(on_call, u64 arg)
{
	__sync_fetch_and_add(&stats.calls, 1);
	__sync_fetch_and_add(&stats.arg_sum, arg);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_return, u64 ret)
{
	__sync_fetch_and_add(&stats.returns, 1);
	return 0;
}
