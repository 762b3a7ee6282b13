/* pgp/executor.h — the PGP_EXECUTOR worker pools (docs/architecture.md#execution).
 *
 * A pool is a set of CPL worker threads shared by every dataset that asks for
 * the same thread count (libuv's model: created lazily, process-wide, joined at
 * driver unload by pgp_executor_shutdown_all). A batch of jobs is run with
 * pgp_executor_run: the calling thread takes jobs too while it waits, so a job
 * may itself run a nested batch without deadlock.
 *
 * Errors: every job, on whatever thread, runs under an error handler that
 * captures its CPLErrors instead of printing them. If a job fails no further
 * job of the batch is started, and the failure of the lowest-index failed job
 * is re-raised on the calling thread. Workers never print, never crash the
 * client on a failed job, and never leave a failure silent.
 *
 * Resources (the contract the fault-injection tests hold, docs/hardening.md):
 * a job that cannot get memory (pgp/alloc.h: every allocation of core/ and
 * pixelfuncs/ returns NULL with a CPLError, none aborts) or whose source read
 * fails returns non-zero after CPLError; the read that ran it fails with a
 * CPLError naming the node and tile (renderer) or the rows (pgp_expr), and
 * never the process. A failed job frees what it allocated, leaves no tile
 * marked computed (a failed tile leaves the cache), and changes nothing a
 * later read depends on: the same read, once memory or I/O is back, returns
 * the same bytes as if nothing had failed. Failure messages are kept in
 * fixed buffers, so reporting running out of memory needs none. Optional
 * work (a prefetch job) that cannot get memory is skipped silently.
 *
 * Config options: each job runs with the calling thread's thread-local config
 * options (as set by rasterio.Env / CPLSetThreadLocalConfigOption) plus
 * GDAL_NUM_THREADS=1 and VRT_NUM_THREADS=1, so nested pools do not multiply.
 */
#ifndef PGP_EXECUTOR_H
#define PGP_EXECUTOR_H

#include <stddef.h>

#include "gdal.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PGP_EXECUTOR_MAX_THREADS 1024

typedef struct pgp_executor pgp_executor;

/* The process-wide executor with n_threads workers (0 = serial, no threads).
 * Never freed by the caller. Thread-safe. Returns NULL after CPLError if the
 * threads cannot be started. */
pgp_executor *pgp_executor_get(int n_threads);

int pgp_executor_threads(const pgp_executor *ex);

/* One job: returns 0 on success, non-zero on failure after calling CPLError. */
typedef int (*pgp_job_fn)(void *arg, size_t index);

/* Runs fn(arg, i) for i in [0, n_jobs) and returns when all started jobs have
 * finished. Serial executors run the jobs in index order on the caller.
 * progress (may be NULL) is called on the calling thread only, with the
 * fraction of jobs done; a FALSE return starts no further job and makes the
 * call fail with CPLE_UserInterrupt. Returns CE_None or CE_Failure (the error
 * re-raised on the calling thread). */
CPLErr pgp_executor_run(pgp_executor *ex, size_t n_jobs, pgp_job_fn fn, void *arg,
                        GDALProgressFunc progress, void *progress_arg);

/* Background (prefetch) work: low priority and fire-and-forget. Workers take a
 * background job only when no foreground batch has an unclaimed job, and at
 * most half the workers (rounded up) run background jobs at once, so a
 * request always finds free workers beside its calling thread. A group belongs to one submitter (a
 * renderer); its jobs run with the thread-local config options the creating
 * thread had, and their errors are dropped: a prefetched tile that failed is
 * simply computed again, and its error reported, when it is requested.
 * On a serial executor (no threads) submissions are ignored. */
typedef struct pgp_background pgp_background;

pgp_background *pgp_background_new(pgp_executor *ex);

/* Queues fn(arg, index). */
void pgp_background_submit(pgp_background *group, pgp_job_fn fn, void *arg, size_t index);

/* Jobs of the group queued or running. */
size_t pgp_background_pending(pgp_background *group);

/* Waits until the group has no job queued or running (tests, benchmarks). */
void pgp_background_wait(pgp_background *group);

/* Drops the group's queued jobs, waits for its running ones, frees it. */
void pgp_background_free(pgp_background *group);

/* Joins every pool's threads. Only when no batch is running (driver unload). */
void pgp_executor_shutdown_all(void);

#ifdef __cplusplus
}
#endif

#endif
