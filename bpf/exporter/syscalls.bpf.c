// SPDX-License-Identifier: GPL-2.0
// Counts every syscall on the machine by syscall number, for the
// `syscalls_total` counter (see syscalls.yaml).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "maps.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Key: the syscall number (u64). Value: how many calls. x86-64 has about
 * 460 syscalls; the x32 ones (bit 30 set) come on top. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u64);
	__type(value, u64);
} syscalls_total SEC(".maps");

/* sys_enter(struct pt_regs *regs, long id): the context is the arguments as
 * u64s. */
SEC("raw_tp/sys_enter")
int syscalls_enter(u64 *ctx)
{
	long id = (long)ctx[1];
	u64 key;

	/* -1 is no syscall at all (a ptracer or seccomp skipped it). */
	if (id < 0)
		return 0;
	key = id;
	counter_add(&syscalls_total, &key, 1);
	return 0;
}
