/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The JIT benchmark's workloads, written once: jit_workloads.bpf.c compiles
 * them for eBPF (an XDP entry per workload for the kernel, a raw entry for the
 * userspace engines), and the benchmark (crates/vm/benches/jit_report.rs)
 * compiles them for the host, so every engine and native code run the same
 * source on the same input.
 *
 * Each workload reads at most WL_INPUT bytes at `p` (the caller guarantees
 * them) and returns a 32-bit digest, zero-extended, so every engine's r0 (the
 * kernel's retval is 32 bits) compares exactly. Only compiler built-in types
 * are used: this header is included after vmlinux.h on the eBPF side and
 * alone on the host.
 */
#ifndef JIT_WORKLOADS_H
#define JIT_WORKLOADS_H

typedef unsigned char wl_u8;
typedef unsigned short wl_u16;
typedef unsigned int wl_u32;
typedef unsigned long long wl_u64;

#define WL_INLINE static inline __attribute__((always_inline))
#define WL_NOINLINE static __attribute__((noinline))
#define WL_NO_UNROLL _Pragma("clang loop unroll(disable)")

/* Bytes of input every workload reads (the XDP packet, the raw entry's buffer). */
#define WL_INPUT 2048

WL_INLINE wl_u64 wl_ld64(const wl_u8 *p, wl_u32 off)
{
	return *(const wl_u64 *)(p + off);
}

WL_INLINE wl_u32 wl_ld32(const wl_u8 *p, wl_u32 off)
{
	return *(const wl_u32 *)(p + off);
}

WL_INLINE wl_u16 wl_ld16(const wl_u8 *p, wl_u32 off)
{
	return *(const wl_u16 *)(p + off);
}

WL_INLINE wl_u32 wl_fold(wl_u64 x)
{
	return (wl_u32)(x ^ (x >> 32));
}

WL_INLINE wl_u64 wl_rotl(wl_u64 x, int r)
{
	return (x << r) | (x >> (64 - r));
}

/* alu: a register-only loop of 64-bit adds, xors, shifts, rotates, a
 * multiply and an and; the input only seeds it. */
#define WL_ALU_ITERS 4096
WL_INLINE wl_u64 wl_alu(const wl_u8 *p)
{
	wl_u64 x = wl_ld64(p, 0), y = wl_ld64(p, 8);

	WL_NO_UNROLL
	for (wl_u32 i = 0; i < WL_ALU_ITERS; i++) {
		x += y ^ i;
		y = wl_rotl(y, 7);
		x ^= x >> 11;
		y += x * 5;
		x -= y & 0xff00;
	}
	return wl_fold(x ^ y);
}

/* prime: how many of 128 input-derived numbers in [3, 32770) are prime, by
 * trial division with 64-bit modulo by a register. */
#define WL_PRIME_N 128
WL_INLINE wl_u64 wl_prime(const wl_u8 *p)
{
	wl_u64 count = 0;

	WL_NO_UNROLL
	for (wl_u32 i = 0; i < WL_PRIME_N; i++) {
		wl_u64 v = (wl_ld16(p, 2 * i) & 0x7fff) | 3;
		wl_u64 prime = 1;

		WL_NO_UNROLL
		for (wl_u64 d = 2; d < 182; d++) {
			if (d * d > v)
				break;
			if (v % d == 0) {
				prime = 0;
				break;
			}
		}
		count += prime;
	}
	return count;
}

/* One step of the switch workloads: a 16-way switch on the byte's low bits,
 * each case a different operation on the accumulator (no lookup table can
 * replace it). */
WL_INLINE wl_u64 wl_switch_step(wl_u64 acc, wl_u64 b, wl_u64 i)
{
	switch (b & 15) {
	case 0: acc += b; break;
	case 1: acc ^= b << 3; break;
	case 2: acc -= b * 3; break;
	case 3: acc = (acc << 1) | (b & 1); break;
	case 4: acc >>= 1; break;
	case 5: acc += i; break;
	case 6: acc ^= 0x5555; break;
	case 7: acc *= 7; break;
	case 8: acc = ~acc; break;
	case 9: acc += acc >> 7; break;
	case 10: acc -= i ^ b; break;
	case 11: acc |= b << 9; break;
	case 12: acc &= ~(b << 2); break;
	case 13: acc ^= acc << 13; break;
	case 14: acc += 0x9e37; break;
	default: acc = wl_rotl(acc, 5); break;
	}
	return acc;
}

/* switch: the switch step over the first WL_SWITCH_BYTES bytes. The kernel
 * verifier walks the loop keeping about four pending branches per byte, and
 * allows 8192: hence not the whole input. */
#define WL_SWITCH_BYTES 1024
WL_INLINE wl_u64 wl_switch(const wl_u8 *p)
{
	wl_u64 acc = 0x12345;

	WL_NO_UNROLL
	for (wl_u32 i = 0; i < WL_SWITCH_BYTES; i++)
		acc = wl_switch_step(acc, p[i], i);
	return wl_fold(acc);
}

/* unrolled: the switch step over the first WL_UNROLLED_BYTES bytes, fully
 * unrolled: a large program (thousands of instructions) with no loop, for
 * compile time and straight-line code. */
#define WL_UNROLLED_BYTES 128
WL_INLINE wl_u64 wl_unrolled(const wl_u8 *p)
{
	wl_u64 acc = 0x12345;

	_Pragma("clang loop unroll(full)")
	for (wl_u32 i = 0; i < WL_UNROLLED_BYTES; i++)
		acc = wl_switch_step(acc, p[i], i);
	return wl_fold(acc);
}

/* stack: a histogram of the input bytes' low six bits in a stack array of
 * 64 counters (a load and a store at a data-dependent stack offset per byte),
 * then its prefix sums, weighted into a checksum. */
#define WL_HIST 64
WL_INLINE wl_u64 wl_stack(const wl_u8 *p)
{
	wl_u32 hist[WL_HIST];
	wl_u64 sum = 0, run = 0;

	WL_NO_UNROLL
	for (wl_u32 i = 0; i < WL_HIST; i++)
		hist[i] = i;
	WL_NO_UNROLL
	for (wl_u32 i = 0; i < WL_INPUT; i++)
		hist[p[i] & (WL_HIST - 1)] += i;
	WL_NO_UNROLL
	for (wl_u32 i = 0; i < WL_HIST; i++) {
		run += hist[i];
		sum += run * (i + 1);
	}
	return wl_fold(sum);
}

/* memread: the whole input read four times, as 8-, 4-, 2- and 1-byte
 * loads, into Fletcher-style running sums. */
WL_INLINE wl_u64 wl_memread(const wl_u8 *p)
{
	wl_u64 a = 1, b = 0;

	WL_NO_UNROLL
	for (wl_u32 i = 0; i < WL_INPUT; i += 8) {
		a += wl_ld64(p, i);
		b += a;
	}
	WL_NO_UNROLL
	for (wl_u32 i = 0; i < WL_INPUT; i += 4) {
		a += wl_ld32(p, i);
		b += a;
	}
	WL_NO_UNROLL
	for (wl_u32 i = 0; i < WL_INPUT; i += 2) {
		a += wl_ld16(p, i);
		b += a;
	}
	WL_NO_UNROLL
	for (wl_u32 i = 0; i < WL_INPUT; i++) {
		a += p[i];
		b += a;
	}
	return wl_fold(a ^ (b << 1));
}

/* fnv: 64-bit FNV-1a over every input byte (a load, a xor and a 64-bit
 * multiply by a 64-bit constant per byte). */
WL_INLINE wl_u64 wl_fnv(const wl_u8 *p)
{
	wl_u64 h = 0xcbf29ce484222325ULL;

	WL_NO_UNROLL
	for (wl_u32 i = 0; i < WL_INPUT; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return wl_fold(h);
}

/* call: a murmur-style mix of every input word through a function call
 * (a bpf-to-bpf call in eBPF; the callee uses no stack), four passes. */
WL_NOINLINE wl_u64 wl_mix(wl_u64 h, wl_u64 k)
{
	k *= 0x87c37b91114253d5ULL;
	k = wl_rotl(k, 31);
	k *= 0x4cf5ad432745937fULL;
	h ^= k;
	h = wl_rotl(h, 27);
	return h * 5 + 0x52dce729;
}

#define WL_CALL_PASSES 4
WL_INLINE wl_u64 wl_call(const wl_u8 *p)
{
	wl_u64 h = 0;

	WL_NO_UNROLL
	for (wl_u32 pass = 0; pass < WL_CALL_PASSES; pass++) {
		WL_NO_UNROLL
		for (wl_u32 i = 0; i < WL_INPUT; i += 8)
			h = wl_mix(h, wl_ld64(p, i) + pass);
	}
	return wl_fold(h);
}

/* name, function: every workload, in the order the benchmark reports them. */
#define WL_FOR_EACH(X) \
	X(alu, wl_alu) \
	X(prime, wl_prime) \
	X(switch, wl_switch) \
	X(unrolled, wl_unrolled) \
	X(stack, wl_stack) \
	X(memread, wl_memread) \
	X(fnv, wl_fnv) \
	X(call, wl_call)

#endif
