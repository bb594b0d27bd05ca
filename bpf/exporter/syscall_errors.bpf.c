// SPDX-License-Identifier: GPL-2.0
// Counts the syscalls that fail, by syscall number and errno, for the
// `syscall_errors_total` counter (see syscall_errors.yaml).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "maps.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* The largest errno a syscall returns (the kernel's MAX_ERRNO): a negative
 * return below -MAX_ERRNO is a value, not an error. */
#define MAX_ERRNO 4095

/* Two u64s, so the key has no padding: labels `syscall` (8) and `errno` (8). */
struct syscall_error_key {
	u64 syscall;
	u64 errno;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct syscall_error_key);
	__type(value, u64);
} syscall_errors_total SEC(".maps");

/* The tracepoint's record carries the syscall number next to the return
 * value (the raw tracepoint has only pt_regs and the return value). */
SEC("tracepoint/raw_syscalls/sys_exit")
int syscall_errors_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct syscall_error_key key;
	long id = ctx->id, ret = ctx->ret;

	if (id < 0 || ret >= 0 || ret < -MAX_ERRNO)
		return 0;
	key.syscall = id;
	/* ebpf_exporter's errno decoder takes the positive errno. */
	key.errno = -ret;
	counter_add(&syscall_errors_total, &key, 1);
	return 0;
}
