// A program in a section name neither libbpf nor aya knows.
//
// Build: clang-19 -target bpf -O2 -g -I/usr/include/x86_64-linux-gnu -c bogus_section.c -o bogus_section.o
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("bogus/thing")
int bogus(void *ctx)
{
	return 0;
}
