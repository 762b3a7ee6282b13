/* pgp/alloc.h — the allocator of pgp's core, and its fault injection.
 *
 * Every allocation core/ and pixelfuncs/ make for a graph, a renderer, a
 * cache entry or a job goes through these functions. On failure they return
 * NULL after CPLError(CE_Failure, CPLE_OutOfMemory, "out of memory: ...");
 * they never abort, unlike CPLMalloc/CPLCalloc/CPLStrdup, which end the
 * process. The caller then fails its own operation, adding its context (the
 * executor's policy, pgp/executor.h: a failed job fails the read, with the
 * node and tile in the message). GDAL's own allocations are GDAL's.
 *
 * Memory from pgp_malloc, pgp_calloc, pgp_malloc_array, pgp_realloc and
 * pgp_strdup is VSIMalloc's: free it with pgp_free (CPLFree and VSIFree are
 * the same function). pgp_malloc_aligned's is fftw_malloc's (SIMD-aligned, for
 * FFTW plans and buffers): free it with pgp_free_aligned.
 *
 * Fault injection (tests only; SQLite's model): pgp_alloc_fail_after(n) makes
 * the n-th allocation from now, by any thread, fail once; the ones after it
 * succeed again. A test walks n = 1, 2, 3, ... over an operation until it
 * succeeds with no failure injected, and checks every step failed cleanly.
 * The countdown costs one relaxed atomic load per allocation when off.
 * Thread-safe.
 */
#ifndef PGP_ALLOC_H
#define PGP_ALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

void *pgp_malloc(size_t bytes);
/* count * size bytes, zeroed; overflow is a failure. */
void *pgp_calloc(size_t count, size_t size);
/* pgp_calloc for what may be done without (a prefetch job, a bigger hash
 * table): NULL with no CPLError, as nothing failed. */
void *pgp_calloc_optional(size_t count, size_t size);
/* count * size bytes, not zeroed; overflow is a failure. */
void *pgp_malloc_array(size_t count, size_t size);
/* Like realloc; on failure p is untouched and still owned by the caller. */
void *pgp_realloc(void *p, size_t bytes);
/* A copy of s ("" for NULL, as CPLStrdup). */
char *pgp_strdup(const char *s);
void pgp_free(void *p);

void *pgp_malloc_aligned(size_t bytes);
void pgp_free_aligned(void *p);

/* The n-th allocation from now fails once (n >= 1); n = 0 turns it off. */
void pgp_alloc_fail_after(long n);
/* Allocations failed on purpose since the process started. */
long pgp_alloc_injected_failures(void);

#ifdef __cplusplus
}
#endif

#endif
