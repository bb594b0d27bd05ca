/* <linux/errno.h> (included by libbpf's usdt.bpf.h) wants <asm/errno.h>,
 * which Debian keeps in the multiarch directory clang -target bpf does not
 * search; the BPF target takes the generic numbers. */
#include <asm-generic/errno.h>
