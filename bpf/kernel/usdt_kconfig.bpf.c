// SPDX-License-Identifier: GPL-2.0
// libbpf's __kconfig externs, as usdt.bpf.h and many tools use them: the
// loader fills them from the running kernel. A raw tracepoint program copies
// them out where a test run can read them.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

extern u32 LINUX_KERNEL_VERSION __kconfig;
extern bool LINUX_HAS_BPF_COOKIE __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig;
extern int CONFIG_HZ __kconfig __weak;
extern enum libbpf_tristate CONFIG_IPV6 __kconfig __weak;
extern u64 CONFIG_BPFKIT_NO_SUCH_OPTION __kconfig __weak;
extern char CONFIG_DEFAULT_HOSTNAME[16] __kconfig __weak;

struct seen {
	u64 version;
	u64 has_cookie;
	u64 bpf_syscall;
	s64 hz;
	u64 ipv6;
	u64 missing;
	char hostname[16];
};

struct seen seen = {};

SEC("raw_tp/sys_enter")
int read_kconfig(void *ctx)
{
	seen.version = LINUX_KERNEL_VERSION;
	seen.has_cookie = LINUX_HAS_BPF_COOKIE;
	seen.bpf_syscall = CONFIG_BPF_SYSCALL;
	seen.hz = CONFIG_HZ;
	seen.ipv6 = CONFIG_IPV6;
	seen.missing = CONFIG_BPFKIT_NO_SUCH_OPTION;
	__builtin_memcpy(seen.hostname, CONFIG_DEFAULT_HOSTNAME, sizeof(seen.hostname));
	return 0;
}
