// SPDX-License-Identifier: GPL-2.0
// XDP programs that exercise helpers with deterministic results, one
// concern per program (Ethernet, no VLAN tag, anywhere a header is parsed):
//
//   xdp_adjust        frames of at least 28 bytes: pops the Ethernet header
//                     (bpf_xdp_adjust_head +14), pushes it back with an
//                     8-byte prefix in front (-22), writes the pattern
//                     "bpfkit" 0x00 0x01 into the prefix and the saved
//                     Ethernet header after it, then trims the last 4 bytes
//                     (bpf_xdp_adjust_tail -4): XDP_TX. Shorter frames, and
//                     any helper failure, return XDP_PASS unchanged.
//   xdp_payload       IPv4 UDP (IHL 5) with 16 payload bytes or more: copies
//                     the first 16 payload bytes (bpf_xdp_load_bytes), sums
//                     them with bpf_loop, compares them with "GET "
//                     (bpf_strncmp), takes their checksum (bpf_csum_diff),
//                     and formats the three with bpf_snprintf: XDP_PASS.
//   xdp_queue_stack   pushes the frame length onto `fifo` and `lifo`
//                     (BPF_EXIST: the oldest element makes room when full),
//                     peeks both, and when the frame length is even pops
//                     both: XDP_PASS.
//   xdp_inner_map     looks up the ARRAY at index 0 of `outer` (the host puts
//                     `inner` there): inner[0] != 0 means XDP_DROP, otherwise
//                     XDP_PASS; counts the frame in inner[1 + len % 3]. An
//                     empty slot returns XDP_PASS.
//   xdp_redirect      bpf_redirect_map(&tx_ports, 0, XDP_PASS): XDP_REDIRECT
//                     when the host put a device at index 0, else XDP_PASS.
//
// Maps:
//   helper_stats  ARRAY 6 x __u64: [0] xdp_adjust rewrites, [1] xdp_adjust
//                 frames left alone, [2] xdp_payload frames handled,
//                 [3] xdp_payload frames skipped, [4] xdp_inner_map misses
//                 (empty slot), [5] xdp_redirect runs.
//   payload_result ARRAY 1 x struct payload_result: of the last frame
//                 xdp_payload handled: sum of the 16 bytes, bpf_strncmp's
//                 sign (-1, 0, 1), the folded checksum, bpf_snprintf's
//                 return value, and the formatted text (NUL-terminated).
//   queue_result  ARRAY 4 x __u64: of the last frame xdp_queue_stack saw:
//                 [0] fifo peek, [1] lifo peek, [2] fifo pop, [3] lifo pop
//                 (pops only for frames of even length; a failed peek or
//                 pop stores 0xffffffff).
//   fifo, lifo    QUEUE and STACK of 8 x __u32.
//   outer         ARRAY_OF_MAPS 2 of ARRAY 4 x __u64.
//   inner         ARRAY 4 x __u64, for the host to put into `outer`.
//   tx_ports      DEVMAP 4: ifindexes.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define ETH_HLEN 14
#define PREFIX_LEN 8
#define PAYLOAD_LEN 16
#define TEXT_LEN 64

enum {
	ADJUSTED,
	ADJUST_SKIPPED,
	PAYLOAD_DONE,
	PAYLOAD_SKIPPED,
	INNER_MISS,
	REDIRECTS,
	NR_HELPER_STATS
};

struct payload_result {
	__u32 sum;
	__s32 cmp;
	__u32 csum;
	__s32 text_len;
	char text[TEXT_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NR_HELPER_STATS);
	__type(key, __u32);
	__type(value, __u64);
} helper_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct payload_result);
} payload_result SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} queue_result SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 8);
	__type(value, __u32);
} fifo SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 8);
	__type(value, __u32);
} lifo SEC(".maps");

struct inner_array {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
};

struct inner_array inner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_array);
} outer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} tx_ports SEC(".maps");

static __always_inline void bump(__u32 key)
{
	__u64 *n = bpf_map_lookup_elem(&helper_stats, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("xdp")
int xdp_adjust(struct xdp_md *ctx)
{
	static const char pattern[PREFIX_LEN] = { 'b', 'p', 'f', 'k', 'i', 't', 0, 1 };
	struct ethhdr saved;
	void *data, *data_end;

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	/* Popping the header must leave a whole Ethernet header behind. */
	if (data + 2 * ETH_HLEN > data_end)
		goto skip;
	__builtin_memcpy(&saved, data, sizeof(saved));
	if (bpf_xdp_adjust_head(ctx, ETH_HLEN))
		goto skip;
	if (bpf_xdp_adjust_head(ctx, -(ETH_HLEN + PREFIX_LEN)))
		goto skip;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + PREFIX_LEN + ETH_HLEN > data_end)
		goto skip;
	__builtin_memcpy(data, pattern, PREFIX_LEN);
	__builtin_memcpy(data + PREFIX_LEN, &saved, sizeof(saved));
	if (bpf_xdp_adjust_tail(ctx, -4))
		goto skip;
	bump(ADJUSTED);
	return XDP_TX;
skip:
	bump(ADJUST_SKIPPED);
	return XDP_PASS;
}

struct sum_ctx {
	__u8 bytes[PAYLOAD_LEN];
	__u32 sum;
};

static long sum_byte(__u64 i, void *arg)
{
	struct sum_ctx *c = arg;

	if (i >= PAYLOAD_LEN)
		return 1;
	c->sum += c->bytes[i];
	return 0;
}

static __always_inline __u32 fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return ~csum & 0xffff;
}

SEC("xdp")
int xdp_payload(struct xdp_md *ctx)
{
	static const char fmt[] = "sum=%u cmp=%d csum=%04x first=%c";
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	struct payload_result *r;
	struct sum_ctx c = {};
	__u32 zero = 0;
	__u64 args[4];
	long cmp, csum;
	__u32 off;

	if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		goto skip;
	off = (void *)(udp + 1) - data;
	if (bpf_xdp_load_bytes(ctx, off, c.bytes, PAYLOAD_LEN))
		goto skip;
	r = bpf_map_lookup_elem(&payload_result, &zero);
	if (!r)
		goto skip;
	if (bpf_loop(PAYLOAD_LEN, sum_byte, &c, 0) != PAYLOAD_LEN)
		goto skip;
	cmp = bpf_strncmp((const char *)c.bytes, 4, "GET ");
	csum = bpf_csum_diff(0, 0, (__be32 *)c.bytes, PAYLOAD_LEN, 0);
	r->sum = c.sum;
	r->cmp = cmp < 0 ? -1 : cmp > 0;
	r->csum = fold(csum);
	args[0] = r->sum;
	args[1] = r->cmp;
	args[2] = r->csum;
	args[3] = c.bytes[0];
	r->text_len = bpf_snprintf(r->text, TEXT_LEN, fmt, args, sizeof(args));
	bump(PAYLOAD_DONE);
	return XDP_PASS;
skip:
	bump(PAYLOAD_SKIPPED);
	return XDP_PASS;
}

static __always_inline void store(__u32 key, __u64 value)
{
	__u64 *slot = bpf_map_lookup_elem(&queue_result, &key);

	if (slot)
		*slot = value;
}

SEC("xdp")
int xdp_queue_stack(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;
	__u32 v;

	bpf_map_push_elem(&fifo, &len, BPF_EXIST);
	bpf_map_push_elem(&lifo, &len, BPF_EXIST);
	store(0, bpf_map_peek_elem(&fifo, &v) ? 0xffffffff : v);
	store(1, bpf_map_peek_elem(&lifo, &v) ? 0xffffffff : v);
	if ((len & 1) == 0) {
		store(2, bpf_map_pop_elem(&fifo, &v) ? 0xffffffff : v);
		store(3, bpf_map_pop_elem(&lifo, &v) ? 0xffffffff : v);
	}
	return XDP_PASS;
}

SEC("xdp")
int xdp_inner_map(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;
	__u32 zero = 0, slot = 1 + len % 3;
	__u64 *mode, *n;
	void *map;

	map = bpf_map_lookup_elem(&outer, &zero);
	if (!map) {
		bump(INNER_MISS);
		return XDP_PASS;
	}
	n = bpf_map_lookup_elem(map, &slot);
	if (n)
		__sync_fetch_and_add(n, 1);
	mode = bpf_map_lookup_elem(map, &zero);
	if (mode && *mode)
		return XDP_DROP;
	return XDP_PASS;
}

SEC("xdp")
int xdp_redirect(struct xdp_md *ctx)
{
	bump(REDIRECTS);
	return bpf_redirect_map(&tx_ports, 0, XDP_PASS);
}
