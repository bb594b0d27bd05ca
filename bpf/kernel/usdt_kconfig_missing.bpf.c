// SPDX-License-Identifier: GPL-2.0
// A strong __kconfig extern no kernel has: loading must fail naming it.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

extern bool CONFIG_BPFKIT_NO_SUCH_OPTION __kconfig;

u64 seen = 0;

SEC("raw_tp/sys_enter")
int read_missing(void *ctx)
{
	seen = CONFIG_BPFKIT_NO_SUCH_OPTION;
	return 0;
}
