/* Loops, switch and arithmetic in both widths: the bread-and-butter
 * instructions clang emits. */
#include "bpf_min.h"

static volatile u64 sink64;
static volatile u32 sink32;
static volatile s64 ssink;

SEC("tc")
int arith(struct __sk_buff *skb)
{
	u32 a = skb->len, b = skb->mark | 1;
	u64 x = ((u64)skb->hash << 32) | skb->priority;
	s64 y = (s32)skb->tc_index;
	u32 acc = 0;

	for (int i = 0; i < 16; i++) {
		acc += a * i;
		acc ^= acc >> 3;
		acc -= b << (i & 7);
		if (acc > 1000)
			acc /= b;
		else
			acc %= b + 2;
	}
	switch (skb->protocol & 7) {
	case 0: x += 0x123456789abcdefULL; break;
	case 1: x -= y; break;
	case 2: x *= 77; break;
	case 3: x = ~x & 0xffff0000ffffULL; break;
	case 4: x |= (u64)-8; break;
	case 5: x = (s64)x >> 7; break;
	default: x = x << 1;
	}
	sink64 = x / (u64)(y | 1);
	sink64 = x % 1000003;
	ssink = y / -3;
	ssink = y % 5;
	sink32 = (u32)(s32)acc >> 2;
	sink32 = (s32)acc >> 5;
	sink32 = -acc;
	sink64 = -x;
	if ((s32)acc < -5 || (s64)x >= 42 || acc <= a || x == 3 || (x & 0x40))
		return acc;
	if ((s32)a > (s32)b)
		return 1;
	return y < 0 ? 2 : (int)(x >> 40);
}

char LICENSE[] SEC("license") = "GPL";
