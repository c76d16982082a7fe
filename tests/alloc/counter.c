/* Counts heap calls made by one thread between timbrel_alloc_start() and timbrel_alloc_stop(),
 * in two buckets: timbrel_alloc_bucket(1) charges what follows to the second (a library
 * call being measured apart, onnxruntime's run), timbrel_alloc_bucket(0) back to the first.
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
static __thread int counting, bucket;
static __thread long counts[2][KINDS];

void timbrel_alloc_start(void) { memset(counts, 0, sizeof counts); bucket = 0; counting = 1; }
void timbrel_alloc_bucket(int which) { bucket = which ? 1 : 0; }
void timbrel_alloc_stop(long *out) { counting = 0; memcpy(out, counts, sizeof counts); }

#define COUNT(kind) do { if (counting) counts[bucket][kind]++; } while (0)

void *malloc(size_t n) { COUNT(MALLOC); return __libc_malloc(n); }
void *calloc(size_t n, size_t size) { COUNT(CALLOC); return __libc_calloc(n, size); }
void *realloc(void *p, size_t n) { COUNT(REALLOC); return __libc_realloc(p, n); }
void free(void *p) { if (p) COUNT(FREE); __libc_free(p); }
void *memalign(size_t alignment, size_t n) { COUNT(ALIGNED); return __libc_memalign(alignment, n); }
void *aligned_alloc(size_t alignment, size_t n) { COUNT(ALIGNED); return __libc_memalign(alignment, n); }
int posix_memalign(void **out, size_t alignment, size_t n) {
    COUNT(ALIGNED);
    void *p = __libc_memalign(alignment, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
