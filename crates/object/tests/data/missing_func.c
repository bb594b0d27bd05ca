// Calls a function that is declared `extern` and defined nowhere.
//
// Build: clang-19 -target bpf -O2 -g -I/usr/include/x86_64-linux-gnu -c missing_func.c -o missing_func.o
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

extern int nowhere_func(int x);

SEC("xdp")
int calls_missing_func(struct xdp_md *ctx)
{
	return nowhere_func(ctx->ingress_ifindex);
}
