/* Just enough of the BPF headers for the ISA cross-check programs, so they
 * build with clang alone (no kernel or libbpf headers needed). */
#pragma once

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed char s8;
typedef short s16;
typedef int s32;
typedef long long s64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name
#define __ksym __attribute__((section(".ksyms")))
#define __weak __attribute__((weak))
#define noinline __attribute__((noinline))

/* Helpers are called by number. */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, u64 flags) = (void *)2;
static u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static long (*bpf_trace_printk)(const char *fmt, u32 fmt_size, ...) = (void *)6;
static u32 (*bpf_get_prandom_u32)(void) = (void *)7;
static u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;

/* The LLVM intrinsics behind the legacy packet loads and pseudo lddw. */
u64 load_byte(void *skb, u64 off) asm("llvm.bpf.load.byte");
u64 load_half(void *skb, u64 off) asm("llvm.bpf.load.half");
u64 load_word(void *skb, u64 off) asm("llvm.bpf.load.word");
u64 bpf_pseudo_fd(u64 kind, u64 fd) asm("llvm.bpf.pseudo");

struct __sk_buff {
	u32 len, pkt_type, mark, queue_mapping, protocol, vlan_present, vlan_tci;
	u32 vlan_proto, priority, ingress_ifindex, ifindex, tc_index, cb[5];
	u32 hash, tc_classid, data, data_end;
};

enum { BPF_MAP_TYPE_HASH = 1, BPF_MAP_TYPE_ARRAY = 2 };
