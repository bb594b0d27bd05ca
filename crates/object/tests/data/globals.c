// Global data in every section kind libbpf maps: .data, .rodata, .bss and
// custom .data.<name> / .rodata.<name> sections, plus a struct global for BTF
// formatting.
//
// Build: clang-19 -target bpf -O2 -g -I/usr/include/x86_64-linux-gnu -c globals.c -o globals.o
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct point {
	int x;
	unsigned short y;
	char tag[6];
	unsigned int flags : 3;
	unsigned int mode : 5;
};

enum color { RED = 1, GREEN = 2, BLUE = 4 };

int counter = 5;                                  /* .data */
struct point origin = { -3, 7, "abc", 5, 17 };    /* .data */
const volatile unsigned long long limit = 1000;   /* .rodata */
const volatile enum color shade = GREEN;          /* .rodata */
unsigned int hits;                                /* .bss */
unsigned long long total;                         /* .bss */
int custom_data SEC(".data.custom") = 42;
const volatile int custom_ro SEC(".rodata.custom") = 9;
static int hidden = 11;                           /* .data, local symbol */

SEC("xdp")
int use_globals(struct xdp_md *ctx)
{
	hits++;
	total += limit;
	counter += origin.x + custom_data + custom_ro + shade;
	hidden++;
	return XDP_PASS;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int say_hello(void *ctx)
{
	bpf_printk("hits %u", hits);
	return 0;
}
