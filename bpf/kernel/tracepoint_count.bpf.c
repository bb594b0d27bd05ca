// SPDX-License-Identifier: GPL-2.0
// Counts the openat(2) calls a chosen process makes, and emits an event for
// each getppid(2) it makes to a ring buffer and to a perf event array, with a
// sequence number so readers can check order and completeness.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* Set by the host before load. */
const volatile u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} openat_calls SEC(".maps");

struct event {
	u64 seq;
	u64 tgid_pid;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(u32));
} events_perf SEC(".maps");

/* Sequence numbers, in .bss. */
u64 next_seq = 0;

static __always_inline int is_target(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int count_openat(struct trace_event_raw_sys_enter *ctx)
{
	u32 zero = 0;
	u64 *n;

	if (!is_target())
		return 0;
	n = bpf_map_lookup_elem(&openat_calls, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int emit_getppid(struct trace_event_raw_sys_enter *ctx)
{
	struct event e, *r;

	if (!is_target())
		return 0;
	e.seq = __sync_fetch_and_add(&next_seq, 1);
	e.tgid_pid = bpf_get_current_pid_tgid();
	r = bpf_ringbuf_reserve(&events_ring, sizeof(*r), 0);
	if (r) {
		*r = e;
		bpf_ringbuf_submit(r, 0);
	}
	bpf_perf_event_output(ctx, &events_perf, BPF_F_CURRENT_CPU, &e, sizeof(e));
	return 0;
}

/* The same counter through a raw tracepoint and a BTF-typed one: both see
 * sys_enter with the syscall number as the second argument. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, u32);
	__type(value, u64);
} raw_counts SEC(".maps");

static __always_inline void count_raw(u32 slot, long id)
{
	u64 *n;

	if (id != 257 /* __NR_openat on x86-64 */ || !is_target())
		return;
	n = bpf_map_lookup_elem(&raw_counts, &slot);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* The context is `struct bpf_raw_tracepoint_args`, a flexible array of u64;
 * read it as plain u64s (no CO-RE relocation on a flexible array). */
SEC("raw_tracepoint/sys_enter")
int raw_sys_enter(u64 *ctx)
{
	count_raw(0, (long)ctx[1]);
	return 0;
}

SEC("tp_btf/sys_enter")
int btf_sys_enter(u64 *ctx)
{
	count_raw(1, (long)ctx[1]);
	return 0;
}
