// SPDX-License-Identifier: GPL-2.0
// Run queue latency: how long runnable tasks wait for a CPU, from the moment
// they are woken up (or preempted) to the moment they are switched in, as an
// exp2 histogram in microseconds (`run_queue_latency_seconds`, see
// schedlat.yaml).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "maps.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Bucket 27 holds everything from 2^26 us (67 s) up; 28 holds the sum. */
#define MAX_LATENCY_BUCKET 27

#define TASK_RUNNING 0

/* When each waiting task (by pid) became runnable. LRU: a task that exits
 * before it runs again leaves an entry that is recycled. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, u64);
} runnable_since SEC(".maps");

/* Label `bucket` (8) only: one histogram for the machine. */
struct run_queue_latency_key {
	u64 bucket;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LATENCY_BUCKET + 2);
	__type(key, struct run_queue_latency_key);
	__type(value, u64);
} run_queue_latency_seconds SEC(".maps");

static __always_inline void runnable(u32 pid)
{
	u64 now;

	/* pid 0 is every CPU's idle task: it never waits in a queue. */
	if (!pid)
		return;
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&runnable_since, &pid, &now, BPF_ANY);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(schedlat_wakeup, struct task_struct *p)
{
	runnable(p->pid);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(schedlat_wakeup_new, struct task_struct *p)
{
	runnable(p->pid);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(schedlat_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next, unsigned int prev_state)
{
	struct run_queue_latency_key key = {};
	u32 pid = next->pid;
	u64 now, *since, delta_us;

	/* A task switched out while still runnable goes back in the queue. */
	if (preempt || prev_state == TASK_RUNNING)
		runnable(prev->pid);

	if (!pid)
		return 0;
	since = bpf_map_lookup_elem(&runnable_since, &pid);
	if (!since)
		return 0;
	now = bpf_ktime_get_ns();
	/* Another CPU may have just woken it again, after our clock read. */
	if (*since > now) {
		bpf_map_delete_elem(&runnable_since, &pid);
		return 0;
	}
	delta_us = (now - *since) / 1000;
	bpf_map_delete_elem(&runnable_since, &pid);

	exp2_histogram_observe(&run_queue_latency_seconds, key, delta_us,
			       MAX_LATENCY_BUCKET);
	return 0;
}
