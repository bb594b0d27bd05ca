// SPDX-License-Identifier: GPL-2.0
// Programs of kinds that need kernel features some kernels lack (kprobes,
// BPF trampolines, the BPF LSM): loading them tells which one is missing.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

u64 hits = 0;

SEC("kprobe/do_sys_openat2")
int on_kprobe(struct pt_regs *ctx)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

SEC("fentry/do_sys_openat2")
int BPF_PROG(on_fentry)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(on_file_open, struct file *file)
{
	return 0;
}
