// SPDX-License-Identifier: GPL-2.0
// The JIT benchmark's workloads (jit_workloads.h), two entries each:
//   xdp_NAME  (SEC "xdp"): for the kernel; reads the first WL_INPUT bytes of
//             the packet after one bounds check.
//   raw_NAME  (SEC "socket"): for the userspace engines (bpfkit, rbpf, ubpf);
//             r1 points to a WL_INPUT-byte buffer, no context field is read,
//             and no helper or map is used.
// Both return the workload's 32-bit digest.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "jit_workloads.h"

char LICENSE[] SEC("license") = "GPL";

#define ENTRIES(name, fn)                                         \
	SEC("xdp")                                                \
	int xdp_##name(struct xdp_md *ctx)                        \
	{                                                         \
		const wl_u8 *data = (const wl_u8 *)(long)ctx->data; \
		const wl_u8 *end = (const wl_u8 *)(long)ctx->data_end; \
		if (data + WL_INPUT > end)                        \
			return 0;                                 \
		return fn(data);                                  \
	}                                                         \
	SEC("socket")                                             \
	__u64 raw_##name(const wl_u8 *mem)                        \
	{                                                         \
		return fn(mem);                                   \
	}

WL_FOR_EACH(ENTRIES)
