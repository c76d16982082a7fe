/* Counts heap calls made by one thread between timbrel_alloc_start() and timbrel_alloc_stop().
 *
 * Loaded with LD_PRELOAD, it wraps malloc, calloc, realloc, free, posix_memalign,
 * aligned_alloc and memalign, forwarding to glibc's own (__libc_*) so that no lookup is
 * needed while the dynamic loader itself allocates. Only the thread that called start
 * counts (a thread-local flag), so other threads' work never shows up.
 * Built by tests/test_realtime_alloc.py with the system's C compiler.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

enum { MALLOC, CALLOC, REALLOC, FREE, ALIGNED, KINDS };
static __thread int counting;
static __thread long counts[KINDS];

void timbrel_alloc_start(void) { memset(counts, 0, sizeof counts); counting = 1; }
void timbrel_alloc_stop(long *out) { counting = 0; memcpy(out, counts, sizeof counts); }

void *malloc(size_t n) { if (counting) counts[MALLOC]++; return __libc_malloc(n); }
void *calloc(size_t n, size_t size) { if (counting) counts[CALLOC]++; return __libc_calloc(n, size); }
void *realloc(void *p, size_t n) { if (counting) counts[REALLOC]++; return __libc_realloc(p, n); }
void free(void *p) { if (counting && p) counts[FREE]++; __libc_free(p); }
void *memalign(size_t alignment, size_t n) { if (counting) counts[ALIGNED]++; return __libc_memalign(alignment, n); }
void *aligned_alloc(size_t alignment, size_t n) { if (counting) counts[ALIGNED]++; return __libc_memalign(alignment, n); }
int posix_memalign(void **out, size_t alignment, size_t n) {
    if (counting) counts[ALIGNED]++;
    void *p = __libc_memalign(alignment, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
