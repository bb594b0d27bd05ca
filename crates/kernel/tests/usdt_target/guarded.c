/* The semaphore-guarded probe: it fires only while a tracer holds its
 * semaphore. */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

unsigned short bpfkit_guarded_semaphore __attribute__((section(".probes")));

__attribute__((noinline)) void fire_guarded(int i)
{
	if (__builtin_expect(bpfkit_guarded_semaphore, 0))
		STAP_PROBE1(bpfkit, guarded, i);
}
