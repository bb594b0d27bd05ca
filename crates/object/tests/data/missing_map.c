// References a map that is declared `extern` and defined nowhere.
//
// Build: clang-19 -target bpf -O2 -g -I/usr/include/x86_64-linux-gnu -c missing_map.c -o missing_map.o
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

extern int nowhere_map;

SEC("xdp")
int uses_missing_map(struct xdp_md *ctx)
{
	__u32 k = 0;

	return bpf_map_lookup_elem(&nowhere_map, &k) ? XDP_DROP : XDP_PASS;
}
