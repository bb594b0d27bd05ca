// bpf-to-bpf calls: a static and a global subprogram in .text, a bpf_loop
// callback (BPF_PSEUDO_FUNC), and several programs sharing the callees, in
// tc / tcx / classifier sections.
//
// Build: clang-19 -target bpf -O2 -g -I/usr/include/x86_64-linux-gnu -c linking.c -o linking.o
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} results SEC(".maps");

static __attribute__((noinline)) int triple(int x)
{
	return x * 3 + 1;
}

__attribute__((noinline)) int add_global(int a, int b)
{
	return a + b + (a & 7);
}

struct loop_ctx {
	__u64 sum;
};

static long sum_step(__u32 index, void *data)
{
	struct loop_ctx *lc = data;

	lc->sum += index;
	return 0;
}

SEC("tc")
int tc_main(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&results, &key);

	if (v)
		*v = triple(skb->len);
	return add_global(skb->len, 1) > 0 ? 0 : 2;
}

SEC("tcx/ingress")
int tcx_loop(struct __sk_buff *skb)
{
	struct loop_ctx lc = { 0 };
	__u32 key = 1;

	bpf_loop(10, sum_step, &lc, 0);
	bpf_map_update_elem(&results, &key, &lc.sum, BPF_ANY);
	return 0;
}

SEC("classifier")
int only_global(struct __sk_buff *skb)
{
	return add_global(skb->mark, 2) & 1;
}

SEC("tc/egress")
int no_calls(struct __sk_buff *skb)
{
	return 0;
}
