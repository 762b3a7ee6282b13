/* core/alloc.c — the core's allocator and its failure countdown (pgp/alloc.h). */
#include "pgp/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <fftw3.h>

#include "cpl_error.h"
#include "cpl_vsi.h"

/* > 0: allocations left before the one that fails; <= 0: off. Two threads may
 * race past 1: exactly one of them sees the decrement from 1 and fails. */
static _Atomic long countdown;
static _Atomic long injected;

static int inject_failure(void)
{
    if (atomic_load_explicit(&countdown, memory_order_relaxed) <= 0 ||
        atomic_fetch_sub(&countdown, 1) != 1)
        return 0;
    atomic_fetch_add(&injected, 1);
    return 1;
}

static void *out_of_memory(size_t count, size_t size)
{
    CPLError(CE_Failure, CPLE_OutOfMemory, "out of memory: cannot allocate %zu x %zu bytes",
             count, size);
    return NULL;
}

/* count * size, or SIZE_MAX on overflow (never allocatable). */
static size_t product(size_t count, size_t size)
{
    return size != 0 && count > SIZE_MAX / size ? SIZE_MAX : count * size;
}

void *pgp_malloc(size_t bytes)
{
    return pgp_malloc_array(bytes, 1);
}

void *pgp_malloc_array(size_t count, size_t size)
{
    const size_t bytes = product(count, size);
    void *p = bytes == SIZE_MAX || inject_failure() ? NULL : VSIMalloc(bytes ? bytes : 1);
    return p != NULL ? p : out_of_memory(count, size);
}

void *pgp_calloc(size_t count, size_t size)
{
    const size_t bytes = product(count, size);
    void *p = bytes == SIZE_MAX || inject_failure() ? NULL : VSICalloc(bytes ? bytes : 1, 1);
    return p != NULL ? p : out_of_memory(count, size);
}

void *pgp_calloc_optional(size_t count, size_t size)
{
    const size_t bytes = product(count, size);
    return bytes == SIZE_MAX || inject_failure() ? NULL : VSICalloc(bytes ? bytes : 1, 1);
}

void *pgp_realloc(void *old, size_t bytes)
{
    void *p = inject_failure() ? NULL : VSIRealloc(old, bytes ? bytes : 1);
    return p != NULL ? p : out_of_memory(bytes, 1);
}

char *pgp_strdup(const char *s)
{
    const size_t bytes = s != NULL ? strlen(s) + 1 : 1;
    char *copy = (char *)pgp_malloc(bytes);
    if (copy != NULL)
        memcpy(copy, s != NULL ? s : "", bytes);
    return copy;
}

void pgp_free(void *p)
{
    VSIFree(p);
}

void *pgp_malloc_aligned(size_t bytes)
{
    void *p = inject_failure() ? NULL : fftw_malloc(bytes ? bytes : 1);
    return p != NULL ? p : out_of_memory(bytes, 1);
}

void pgp_free_aligned(void *p)
{
    fftw_free(p);
}

void pgp_alloc_fail_after(long n)
{
    atomic_store(&countdown, n > 0 ? n : 0);
}

long pgp_alloc_injected_failures(void)
{
    return atomic_load(&injected);
}
