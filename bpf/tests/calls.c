/* bpf-to-bpf calls, a map, helpers, a kfunc and global data: lddw with
 * relocations and call instructions with src=1. */
#include "bpf_min.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, u64);
} counts SEC(".maps");

extern u64 bpf_kfunc_example(u64 x) __ksym __weak;

static u64 total = 5;
static const char fmt[] = "n=%d\n";

static noinline u64 mix(u64 a, u64 b)
{
	return (a * 31) ^ (b >> 3);
}

noinline u64 global_step(u64 a)
{
	return mix(a, a + 1) + 7;
}

SEC("xdp")
int calls(void *ctx)
{
	u32 key = bpf_get_prandom_u32() & 63;
	u64 one = 1, *v = bpf_map_lookup_elem(&counts, &key);

	if (!v) {
		bpf_map_update_elem(&counts, &key, &one, 0);
		return 2;
	}
	*v += global_step(*v) + mix(key, bpf_ktime_get_ns());
	total += *v;
	if (bpf_kfunc_example)
		total += bpf_kfunc_example(total);
	bpf_trace_printk(fmt, sizeof(fmt), key);
	return bpf_get_current_pid_tgid() & 1 ? 2 : 1;
}

char LICENSE[] SEC("license") = "GPL";
