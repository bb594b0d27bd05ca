// SPDX-License-Identifier: GPL-2.0
// USDT probes through libbpf's usdt.bpf.h, attached by bpfkit: counts the
// hits of each probe of the test program (crates/kernel/tests/usdt.rs) and
// records the arguments BPF_USDT hands over.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

char LICENSE[] SEC("license") = "GPL";

struct usdt_stats {
	u64 hits[4]; /* args, mem, konst, guarded */
	s64 args_sum[8];
	s64 args_last[8];
	s64 mem_sum[3];
	s64 konst[2];
	s64 guarded_sum;
	u64 cookie;
	s64 arg_cnt[4];
};

struct usdt_stats stats = {};

SEC("usdt")
int BPF_USDT(on_args, long a0, long a1, long a2, long a3, long a4, long a5, long a6, long a7)
{
	long v[8] = { a0, a1, a2, a3, a4, a5, a6, a7 };

	__sync_fetch_and_add(&stats.hits[0], 1);
	for (int i = 0; i < 8; i++) {
		__sync_fetch_and_add(&stats.args_sum[i], v[i]);
		stats.args_last[i] = v[i];
	}
	stats.arg_cnt[0] = bpf_usdt_arg_cnt(ctx);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_mem, long m64, long m16, long i)
{
	__sync_fetch_and_add(&stats.hits[1], 1);
	__sync_fetch_and_add(&stats.mem_sum[0], m64);
	__sync_fetch_and_add(&stats.mem_sum[1], m16);
	__sync_fetch_and_add(&stats.mem_sum[2], i);
	stats.arg_cnt[1] = bpf_usdt_arg_cnt(ctx);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_konst, long a, long b)
{
	__sync_fetch_and_add(&stats.hits[2], 1);
	stats.konst[0] = a;
	stats.konst[1] = b;
	stats.cookie = bpf_usdt_cookie(ctx);
	stats.arg_cnt[2] = bpf_usdt_arg_cnt(ctx);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_guarded, int i)
{
	__sync_fetch_and_add(&stats.hits[3], 1);
	__sync_fetch_and_add(&stats.guarded_sum, i);
	stats.arg_cnt[3] = bpf_usdt_arg_cnt(ctx);
	return 0;
}
