// SPDX-License-Identifier: GPL-2.0
// Counts successful execs by the new program's command name, for the
// `execs_total` counter (see execs.yaml).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "maps.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define COMM_LEN 16 /* the kernel's TASK_COMM_LEN */

/* Label `comm` (16): NUL-padded, as the `string` decoder reads it. */
struct exec_key {
	char comm[COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct exec_key);
	__type(value, u64);
} execs_total SEC(".maps");

/* sched_process_exec fires once the new program is in place: the current
 * task's comm is already the new one (the executable's file name). */
SEC("tp_btf/sched_process_exec")
int execs_exec(u64 *ctx)
{
	struct exec_key key;

	__builtin_memset(&key, 0, sizeof(key));
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	counter_add(&execs_total, &key, 1);
	return 0;
}
