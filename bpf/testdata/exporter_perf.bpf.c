// SPDX-License-Identifier: GPL-2.0
// A `perf_event_array` counter, as ebpf_exporter counts them: every event
// sent to the perf event array `perf_syscalls_total` counts one for the
// labels decoded from it. getppid, getpgid and getsid each send
// { tgid, kind } with kind 1, 2 and 3; the config maps the kinds to names
// and drops kind 3 with a `regexp`.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct event {
	u32 tgid;
	u8 kind;
	u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(u32));
} perf_syscalls_total SEC(".maps");

static __always_inline int send(void *ctx, u8 kind)
{
	struct event e = {
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.kind = kind,
	};

	bpf_perf_event_output(ctx, &perf_syscalls_total, BPF_F_CURRENT_CPU, &e, sizeof(e));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx) { return send(ctx, 1); }

SEC("tracepoint/syscalls/sys_enter_getpgid")
int on_getpgid(void *ctx) { return send(ctx, 2); }

SEC("tracepoint/syscalls/sys_enter_getsid")
int on_getsid(void *ctx) { return send(ctx, 3); }
