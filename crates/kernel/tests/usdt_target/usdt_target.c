/* A program with USDT probes for bpfkit's tests: after a line on stdin, it
 * fires every probe N times (argv[1], 5 by default) with known arguments. */
#include <sys/sdt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

void fire_guarded(int i);
extern unsigned short bpfkit_guarded_semaphore;

__attribute__((noinline)) static void fire(int i)
{
	int8_t s8 = -(int8_t)(i + 1);
	uint8_t u8 = (uint8_t)(250 + i);
	int16_t s16 = (int16_t)(-1000 * (i + 1));
	uint16_t u16 = (uint16_t)(60000 + i);
	int32_t s32 = -100000 * (i + 1);
	uint32_t u32 = 4000000000u + (uint32_t)i;
	int64_t s64 = -5000000000LL * (i + 1);
	uint64_t u64 = 0xfedcba9876543210ULL + (uint64_t)i;
	STAP_PROBE8(bpfkit, args, s8, u8, s16, u16, s32, u32, s64, u64);
	volatile int64_t mem = -77 * (int64_t)(i + 1);
	volatile uint16_t mem16 = (uint16_t)(65000 + i);
	STAP_PROBE3(bpfkit, mem, mem, mem16, i);
	STAP_PROBE2(bpfkit, konst, 42, -7);
	fire_guarded(i);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 5;
	char line[16];
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	for (int i = 0; i < n; i++)
		fire(i);
	printf("done %u\n", (unsigned)bpfkit_guarded_semaphore);
	return 0;
}
