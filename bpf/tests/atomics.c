/* Atomics and the cpu v4 additions: sign-extending loads and moves, signed
 * division, byte swaps; plus legacy packet loads and a pseudo lddw. */
#include "bpf_min.h"

u64 counter64;
u32 counter32;
s8 bytes[8];
s16 halves[4];
s32 words[2];

SEC("socket")
int atomics(struct __sk_buff *skb)
{
	u64 v = skb->len;
	u32 w = skb->mark;
	u64 r = 0;

	__sync_fetch_and_add(&counter64, v);
	__sync_fetch_and_add(&counter32, w);
	__sync_fetch_and_or(&counter64, v);
	__sync_fetch_and_and(&counter32, w);
	__sync_fetch_and_xor(&counter64, 3);
	r += __sync_fetch_and_add(&counter64, v);
	r += __sync_fetch_and_add(&counter32, w);
	r += __sync_fetch_and_or(&counter64, v);
	r += __sync_fetch_and_and(&counter32, w);
	r += __sync_fetch_and_xor(&counter64, 5);
	r += __sync_lock_test_and_set(&counter64, v);
	r += __sync_lock_test_and_set(&counter32, w);
	r += __sync_val_compare_and_swap(&counter64, v, r);
	r += __sync_val_compare_and_swap(&counter32, w, (u32)r);

	/* cpu v4: sign extension, signed division, unconditional byte swap. */
	s64 s = bytes[skb->len & 7] + halves[skb->mark & 3] + words[skb->hash & 1];
	s += (s8)r + (s16)v + (s32)w;
	s = s / (s64)(v | 1) + s % (s64)(w | 1);
	s += (s32)w / (s32)(v | 1);
	r += __builtin_bswap16((u16)s) + __builtin_bswap32((u32)s) + __builtin_bswap64(r);

	/* Legacy packet access. */
	r += load_byte(skb, 12) + load_half(skb, 14) + load_word(skb, 26);
	r += load_byte(skb, v & 63);

	/* A pseudo lddw (BPF_PSEUDO_MAP_FD with fd 3). */
	r += bpf_pseudo_fd(1, 3);
	return r + s;
}

char LICENSE[] SEC("license") = "GPL";
