// SPDX-License-Identifier: GPL-2.0
// Block I/O latency: from a request's issue to the device to its completion,
// by disk and operation, as an exp2 histogram in microseconds
// (`bio_latency_seconds`, see biolatency.yaml).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "maps.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Bucket 27 holds everything from 2^26 us (67 s) up; 28 holds the sum. */
#define MAX_LATENCY_BUCKET 27
#define MAX_DISKS 255
/* REQ_OP_* values in use, from include/linux/blk_types.h. */
#define MAX_REQ_OPS 16

/* The operation is the low 8 bits of cmd_flags (REQ_OP_BITS). */
#define REQ_OP_MASK 0xff

/* dev_t as user space sees it (the kernel's new_encode_dev), which is what
 * ebpf_exporter's `majorminor` decoder reads. */
#define ENCODE_DEV(major, minor) \
	(((minor) & 0xff) | ((major) << 8) | (((minor) & ~0xff) << 12))

/* When each request in flight was issued, by its address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct request *);
	__type(value, u64);
} issued_at SEC(".maps");

/* Labels `device` (4), `operation` (4), `bucket` (8): no padding. */
struct disk_latency_key {
	u32 dev;
	u32 op;
	u64 bucket;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, (MAX_LATENCY_BUCKET + 2) * MAX_DISKS * MAX_REQ_OPS);
	__type(key, struct disk_latency_key);
	__type(value, u64);
} bio_latency_seconds SEC(".maps");

/* block_rq_issue(struct request *rq): raw tracepoint arguments as u64s. */
SEC("raw_tp/block_rq_issue")
int biolatency_issue(u64 *ctx)
{
	struct request *rq = (struct request *)ctx[0];
	u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&issued_at, &rq, &now, BPF_ANY);
	return 0;
}

/* block_rq_complete(struct request *rq, blk_status_t error,
 * unsigned int nr_bytes). */
SEC("raw_tp/block_rq_complete")
int biolatency_complete(u64 *ctx)
{
	struct request *rq = (struct request *)ctx[0];
	struct disk_latency_key key = {};
	struct gendisk *disk;
	u64 now = bpf_ktime_get_ns(), *issued, delta_us;

	issued = bpf_map_lookup_elem(&issued_at, &rq);
	if (!issued)
		return 0;
	delta_us = now > *issued ? (now - *issued) / 1000 : 0;
	bpf_map_delete_elem(&issued_at, &rq);

	/* request->q->disk: Linux 5.17 and later. */
	disk = BPF_CORE_READ(rq, q, disk);
	if (disk) {
		u32 major = BPF_CORE_READ(disk, major);
		u32 minor = BPF_CORE_READ(disk, first_minor);

		key.dev = ENCODE_DEV(major, minor);
	}
	key.op = BPF_CORE_READ(rq, cmd_flags) & REQ_OP_MASK;

	exp2_histogram_observe(&bio_latency_seconds, key, delta_us,
			       MAX_LATENCY_BUCKET);
	return 0;
}
