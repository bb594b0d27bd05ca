// SPDX-License-Identifier: GPL-2.0
/*
 * Map helpers for the exporter's programs: counters and exp2 histograms kept
 * in hash maps, in the layout cloudflare/ebpf_exporter reads.
 *
 * A counter map holds a u64 per key; the key is the metric's labels packed
 * in order. A histogram map's key is its labels followed by a u64 `bucket`:
 * bucket b counts the values v with 2^(b-1) < v <= 2^b (bucket 0 holds v <= 1),
 * the largest bucket also counts everything above it, and bucket max + 1
 * holds the sum of the values (the exporter reads it as the histogram's sum).
 */
#ifndef BPFKIT_EXPORTER_MAPS_BPF_H
#define BPFKIT_EXPORTER_MAPS_BPF_H

#include <bpf/bpf_helpers.h>

/* Adds n to the counter at key, creating it at zero first if missing. */
static __always_inline void counter_add(void *map, const void *key, u64 n)
{
	u64 zero = 0, *v;

	v = bpf_map_lookup_elem(map, key);
	if (!v) {
		/* BPF_NOEXIST: another CPU may have created it meanwhile. */
		bpf_map_update_elem(map, key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(map, key);
		if (!v)
			return; /* the map is full */
	}
	__sync_fetch_and_add(v, n);
}

/* The number of significant bits of v (0 for 0). */
static __always_inline u64 bit_length(u64 v)
{
	u64 n = 0;

	if (v >> 32) {
		v >>= 32;
		n += 32;
	}
	if (v >> 16) {
		v >>= 16;
		n += 16;
	}
	if (v >> 8) {
		v >>= 8;
		n += 8;
	}
	if (v >> 4) {
		v >>= 4;
		n += 4;
	}
	if (v >> 2) {
		v >>= 2;
		n += 2;
	}
	if (v >> 1) {
		v >>= 1;
		n += 1;
	}
	/* v is now 1, or 0 when it started at 0. */
	return n + v;
}

/* The exp2 bucket of v: the smallest b with v <= 2^b. */
static __always_inline u64 exp2_bucket(u64 v)
{
	return v <= 1 ? 0 : bit_length(v - 1);
}

/*
 * Records one observation of value in the histogram map: key is a struct
 * (not a pointer) whose last field is `u64 bucket`; its other fields are the
 * labels and must be set, and its padding zeroed, by the caller.
 */
#define exp2_histogram_observe(map, key, value, max_bucket)		\
	do {								\
		u64 __v = (value);					\
		(key).bucket = exp2_bucket(__v);			\
		if ((key).bucket > (max_bucket))			\
			(key).bucket = (max_bucket);			\
		counter_add((map), &(key), 1);				\
		(key).bucket = (max_bucket) + 1;			\
		counter_add((map), &(key), __v);			\
	} while (0)

#endif
