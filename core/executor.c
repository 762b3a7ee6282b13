/* core/executor.c — PGP_EXECUTOR worker pools (see pgp/executor.h).
 *
 * A pool owns its worker threads and a FIFO of batches that still have
 * unclaimed jobs. A batch lives on its caller's stack for the duration of
 * pgp_executor_run; workers claim the next job index of the oldest queued
 * batch, the caller claims jobs of its own batch only, then waits on the
 * batch's condition until every claimed job has finished. Background
 * (prefetch) jobs wait in a second FIFO that a worker serves only when no
 * batch has an unclaimed job, with at most half the workers on it at once.
 * One pool mutex guards both queues and all batches: claims are cheap next to
 * a tile.
 *
 * The serial executor is a pool without threads: its batches are never
 * queued, so the caller claims every job itself, in index order.
 */
#include "pgp/executor.h"
#include "pgp/alloc.h"

#include <stdio.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_multiproc.h"
#include "cpl_string.h"

/* Warnings re-emitted per batch; more are counted, not kept. */
#define PGP_MAX_BATCH_WARNINGS 16
/* Messages are kept in fixed buffers (longer ones cut): reporting a failure
 * must not need memory, since running out of it is one of the failures. */
#define MESSAGE_BYTES 2048
#define WARNING_BYTES 512

typedef struct pgp_warning {
    CPLErrorNum err_no;
    char msg[WARNING_BYTES];
} pgp_warning;

typedef struct pgp_batch {
    pgp_job_fn fn;
    void *arg;
    size_t n_jobs;
    size_t next_job; /* next index to claim */
    size_t n_running;
    size_t n_done;
    int stopped; /* no further claims: a job failed or progress said stop */
    int interrupted;
    int queued;
    int failed;
    size_t failed_index; /* lowest failed index, when failed */
    CPLErrorNum failure_err_no;
    char failure_msg[MESSAGE_BYTES]; /* "": the job failed without CPLError */
    pgp_warning warnings[PGP_MAX_BATCH_WARNINGS];
    size_t n_warnings;
    size_t n_warnings_dropped;
    char **job_options; /* caller's thread-local options + *_NUM_THREADS=1 */
    int reports_progress;
    CPLCond *done_cond; /* caller waits here for running jobs */
    struct pgp_batch *next_queued;
} pgp_batch;

/* Batches with unclaimed jobs, oldest first. A low-priority (prefetch) queue
 * would be a second instance consulted only when this one is empty. */
typedef struct pgp_batch_queue {
    pgp_batch *head;
    pgp_batch *tail;
} pgp_batch_queue;

typedef struct background_job {
    pgp_job_fn fn;
    void *arg;
    size_t index;
    pgp_background *group;
    struct background_job *next;
} background_job;

struct pgp_background {
    pgp_executor *ex;
    char **job_options;
    size_t n_queued, n_running;
    CPLCond *idle_cond; /* pgp_background_free waits here for running jobs */
};

struct pgp_executor {
    int n_threads;
    CPLMutex *mutex;
    CPLCond *work_cond; /* idle workers wait here */
    pgp_batch_queue queue;
    background_job *background_head, *background_tail; /* FIFO, after queue */
    int background_running;
    int stopping;
    int n_started;
    CPLJoinableThread **threads;
    pgp_executor *next_in_registry;
};

/* ---------------------------------------------------------------- queue */

static void queue_push(pgp_batch_queue *q, pgp_batch *b)
{
    b->next_queued = NULL;
    if (q->tail)
        q->tail->next_queued = b;
    else
        q->head = b;
    q->tail = b;
    b->queued = 1;
}

static void queue_remove(pgp_batch_queue *q, pgp_batch *b)
{
    pgp_batch *prev = NULL;
    pgp_batch *it = q->head;
    while (it != b) {
        prev = it;
        it = it->next_queued;
    }
    if (prev)
        prev->next_queued = b->next_queued;
    else
        q->head = b->next_queued;
    if (q->tail == b)
        q->tail = prev;
    b->queued = 0;
}

/* ---------------------------------------------------------- batch state
 * Everything below that takes ex runs with ex->mutex held. */

static void stop_claims(pgp_executor *ex, pgp_batch *b)
{
    b->stopped = 1;
    if (b->queued)
        queue_remove(&ex->queue, b);
}

static int claim_job(pgp_executor *ex, pgp_batch *b, size_t *index)
{
    if (b->stopped || b->next_job == b->n_jobs)
        return 0;
    *index = b->next_job++;
    b->n_running++;
    if (b->next_job == b->n_jobs && b->queued)
        queue_remove(&ex->queue, b);
    return 1;
}

typedef struct job_capture {
    pgp_executor *ex;
    pgp_batch *batch;
    char failure_msg[MESSAGE_BYTES];
    CPLErrorNum failure_err_no;
} job_capture;

static void finish_job(pgp_executor *ex, pgp_batch *b, size_t index, int rc,
                       const job_capture *cap)
{
    b->n_running--;
    b->n_done++;
    if (rc != 0 && (!b->failed || index < b->failed_index)) {
        b->failed = 1;
        b->failed_index = index;
        memcpy(b->failure_msg, cap->failure_msg, MESSAGE_BYTES);
        b->failure_err_no = cap->failure_err_no;
        stop_claims(ex, b);
    }
    if (b->n_running == 0 || b->reports_progress)
        CPLCondSignal(b->done_cond);
}

/* ------------------------------------------------------------ one job */

/* Keeps the job's last failure (later errors add context to earlier ones)
 * and hands warnings to the batch. Debug messages skip this handler (see
 * work_on) and reach the handlers below it as usual. */
static void CPL_STDCALL capture_error(CPLErr cls, CPLErrorNum err_no, const char *msg)
{
    job_capture *cap = (job_capture *)CPLGetErrorHandlerUserData();
    if (cls == CE_Failure || cls == CE_Fatal) {
        CPLStrlcpy(cap->failure_msg, msg, MESSAGE_BYTES);
        cap->failure_err_no = err_no;
    } else if (cls == CE_Warning) {
        pgp_batch *b = cap->batch;
        CPLAcquireMutex(cap->ex->mutex, 1000.0);
        if (b->n_warnings < PGP_MAX_BATCH_WARNINGS) {
            b->warnings[b->n_warnings].err_no = err_no;
            CPLStrlcpy(b->warnings[b->n_warnings].msg, msg, WARNING_BYTES);
            b->n_warnings++;
        } else {
            b->n_warnings_dropped++;
        }
        CPLReleaseMutex(cap->ex->mutex);
    }
}

/* Runs one claimed job on the current thread with the batch's options and
 * error capture: called and returns with ex->mutex held. */
static void work_on(pgp_executor *ex, pgp_batch *b, size_t index)
{
    job_capture cap = {ex, b, "", CPLE_AppDefined};
    char **own_options;
    int rc;

    CPLReleaseMutex(ex->mutex);
    own_options = CPLGetThreadLocalConfigOptions();
    CPLSetThreadLocalConfigOptions((const char *const *)b->job_options);
    CPLPushErrorHandlerEx(capture_error, &cap);
    CPLSetCurrentErrorHandlerCatchDebug(FALSE);
    rc = b->fn(b->arg, index);
    CPLPopErrorHandler();
    CPLSetThreadLocalConfigOptions((const char *const *)own_options);
    CSLDestroy(own_options);
    CPLAcquireMutex(ex->mutex, 1000.0);
    finish_job(ex, b, index, rc, &cap);
}

/* Runs the oldest background job: called and returns with ex->mutex held. */
static void work_on_background(pgp_executor *ex)
{
    background_job *job = ex->background_head;
    pgp_background *group = job->group;
    char **own_options;

    ex->background_head = job->next;
    if (ex->background_head == NULL)
        ex->background_tail = NULL;
    group->n_queued--;
    group->n_running++;
    ex->background_running++;
    CPLReleaseMutex(ex->mutex);
    own_options = CPLGetThreadLocalConfigOptions();
    CPLSetThreadLocalConfigOptions((const char *const *)group->job_options);
    CPLPushErrorHandler(CPLQuietErrorHandler);
    job->fn(job->arg, job->index);
    CPLPopErrorHandler();
    CPLErrorReset();
    CPLSetThreadLocalConfigOptions((const char *const *)own_options);
    CSLDestroy(own_options);
    pgp_free(job);
    CPLAcquireMutex(ex->mutex, 1000.0);
    ex->background_running--;
    if (--group->n_running == 0)
        CPLCondBroadcast(group->idle_cond);
}

/* Background work may occupy at most half the workers (libuv's rule for slow
 * work), rounded up: the others are always free for a foreground batch. */
static int may_start_background(const pgp_executor *ex)
{
    return ex->background_head != NULL && ex->background_running < (ex->n_threads + 1) / 2;
}

/* -------------------------------------------------------------- workers */

static void worker_main(void *arg)
{
    pgp_executor *ex = (pgp_executor *)arg;
    CPLAcquireMutex(ex->mutex, 1000.0);
    while (!ex->stopping) {
        pgp_batch *b = ex->queue.head;
        size_t index;
        if (b != NULL) {
            if (claim_job(ex, b, &index))
                work_on(ex, b, index);
        } else if (may_start_background(ex)) {
            work_on_background(ex);
        } else {
            CPLCondWait(ex->work_cond, ex->mutex);
        }
    }
    CPLReleaseMutex(ex->mutex);
}

static void stop_workers(pgp_executor *ex)
{
    CPLAcquireMutex(ex->mutex, 1000.0);
    ex->stopping = 1;
    CPLCondBroadcast(ex->work_cond);
    CPLReleaseMutex(ex->mutex);
    for (int i = 0; i < ex->n_started; i++)
        CPLJoinThread(ex->threads[i]);
    ex->n_started = 0;
}

static void executor_free(pgp_executor *ex)
{
    if (ex->threads != NULL)
        stop_workers(ex);
    /* Every group was freed before unload, which dropped its jobs. */
    CPLAssert(ex->background_head == NULL);
    pgp_free(ex->threads);
    if (ex->work_cond != NULL)
        CPLDestroyCond(ex->work_cond);
    if (ex->mutex != NULL)
        CPLDestroyMutex(ex->mutex);
    pgp_free(ex);
}

/* Returns NULL if memory or a thread could not be had (the caller reports it). */
static pgp_executor *executor_new(int n_threads)
{
    pgp_executor *ex = (pgp_executor *)pgp_calloc(1, sizeof(*ex));
    if (ex == NULL)
        return NULL;
    ex->n_threads = n_threads;
    ex->mutex = CPLCreateMutex();
    if (ex->mutex != NULL)
        CPLReleaseMutex(ex->mutex);
    ex->work_cond = CPLCreateCond();
    if (ex->mutex == NULL || ex->work_cond == NULL) {
        executor_free(ex);
        return NULL;
    }
    ex->threads = (CPLJoinableThread **)pgp_calloc((size_t)n_threads + 1, sizeof(*ex->threads));
    for (; ex->threads != NULL && ex->n_started < n_threads; ex->n_started++) {
        ex->threads[ex->n_started] = CPLCreateJoinableThread(worker_main, ex);
        if (ex->threads[ex->n_started] == NULL)
            break;
    }
    if (ex->threads == NULL || ex->n_started < n_threads) {
        executor_free(ex);
        return NULL;
    }
    return ex;
}

/* ------------------------------------------------------------- registry */

static CPLMutex *registry_mutex;
static pgp_executor *registry;

static pgp_executor *registry_find(int n_threads)
{
    pgp_executor *ex;
    for (ex = registry; ex != NULL; ex = ex->next_in_registry)
        if (ex->n_threads == n_threads)
            break;
    return ex;
}

/* Pools are created outside the registry lock: CPL registers every new mutex
 * under its global mutex, which must not nest inside ours. */
pgp_executor *pgp_executor_get(int n_threads)
{
    pgp_executor *ex;
    pgp_executor *created;
    if (n_threads < 0 || n_threads > PGP_EXECUTOR_MAX_THREADS) {
        CPLError(CE_Failure, CPLE_IllegalArg, "executor thread count %d is not in 0..%d",
                 n_threads, PGP_EXECUTOR_MAX_THREADS);
        return NULL;
    }
    CPLCreateOrAcquireMutex(&registry_mutex, 1000.0);
    ex = registry_find(n_threads);
    CPLReleaseMutex(registry_mutex);
    if (ex != NULL)
        return ex;

    CPLErrorReset();
    created = executor_new(n_threads);
    if (created == NULL) {
        char cause[512]; /* out of memory, or empty: a thread did not start */
        CPLStrlcpy(cause, CPLGetLastErrorMsg(), sizeof cause);
        CPLError(CE_Failure, cause[0] ? CPLE_OutOfMemory : CPLE_AppDefined,
                 "could not start %d executor threads%s%s", n_threads, cause[0] ? ": " : "",
                 cause);
        return NULL;
    }
    CPLCreateOrAcquireMutex(&registry_mutex, 1000.0);
    ex = registry_find(n_threads);
    if (ex == NULL) {
        created->next_in_registry = registry;
        registry = ex = created;
        created = NULL;
    }
    CPLReleaseMutex(registry_mutex);
    if (created != NULL) /* another thread registered one first */
        executor_free(created);
    return ex;
}

int pgp_executor_threads(const pgp_executor *ex)
{
    return ex->n_threads;
}

void pgp_executor_shutdown_all(void)
{
    pgp_executor *pools;
    CPLCreateOrAcquireMutex(&registry_mutex, 1000.0);
    pools = registry;
    registry = NULL;
    CPLReleaseMutex(registry_mutex);
    while (pools != NULL) {
        pgp_executor *next = pools->next_in_registry;
        executor_free(pools);
        pools = next;
    }
}

/* ------------------------------------------------------------------ run */

static CPLErr report_interrupt(void)
{
    CPLError(CE_Failure, CPLE_UserInterrupt, "Interrupted by user");
    return CE_Failure;
}

/* Restores the caller's error state, which jobs run on this thread changed,
 * then re-raises the batch's warnings and failure there. */
static CPLErr conclude_batch(pgp_batch *b, CPLErr saved_class, CPLErrorNum saved_no,
                             const char *saved_msg)
{
    CPLErr result = CE_None;
    CPLErrorSetState(saved_class, saved_no, saved_msg);
    for (size_t i = 0; i < b->n_warnings; i++)
        CPLError(CE_Warning, b->warnings[i].err_no, "%s", b->warnings[i].msg);
    if (b->n_warnings_dropped > 0)
        CPLError(CE_Warning, CPLE_AppDefined, "%zu more warnings of the same batch not shown",
                 b->n_warnings_dropped);
    if (b->failed) {
        if (b->failure_msg[0] != '\0')
            CPLError(CE_Failure, b->failure_err_no, "%s", b->failure_msg);
        else
            CPLError(CE_Failure, CPLE_AppDefined, "job %zu failed without an error message",
                     b->failed_index);
        result = CE_Failure;
    } else if (b->interrupted) {
        result = report_interrupt();
    }
    return result;
}

CPLErr pgp_executor_run(pgp_executor *ex, size_t n_jobs, pgp_job_fn fn, void *arg,
                        GDALProgressFunc progress, void *progress_arg)
{
    pgp_batch b;
    size_t reported = 0;
    size_t index;
    CPLErr saved_class = CPLGetLastErrorType();
    CPLErrorNum saved_no = CPLGetLastErrorNo();
    char saved_msg[MESSAGE_BYTES];
    CPLErr result;

    if (n_jobs == 0)
        return progress && !progress(1.0, NULL, progress_arg) ? report_interrupt() : CE_None;

    memset(&b, 0, sizeof(b));
    b.fn = fn;
    b.arg = arg;
    b.n_jobs = n_jobs;
    b.reports_progress = progress != NULL;
    b.done_cond = CPLCreateCond();
    if (b.done_cond == NULL) {
        CPLError(CE_Failure, CPLE_OutOfMemory, "could not create a condition variable");
        return CE_Failure;
    }
    b.job_options = CPLGetThreadLocalConfigOptions();
    b.job_options = CSLSetNameValue(b.job_options, "GDAL_NUM_THREADS", "1");
    b.job_options = CSLSetNameValue(b.job_options, "VRT_NUM_THREADS", "1");
    CPLStrlcpy(saved_msg, CPLGetLastErrorMsg(), sizeof saved_msg);

    CPLAcquireMutex(ex->mutex, 1000.0);
    if (ex->n_threads > 0 && n_jobs > 1) { /* a single job is the caller's */
        queue_push(&ex->queue, &b);
        for (size_t i = 1; i < n_jobs && i <= (size_t)ex->n_threads; i++)
            CPLCondSignal(ex->work_cond);
    }
    for (;;) {
        if (progress && b.n_done != reported && !b.stopped) {
            int keep_going;
            reported = b.n_done;
            CPLReleaseMutex(ex->mutex);
            keep_going = progress((double)reported / (double)n_jobs, NULL, progress_arg);
            CPLAcquireMutex(ex->mutex, 1000.0);
            if (!keep_going) {
                b.interrupted = 1;
                stop_claims(ex, &b);
            }
        } else if (claim_job(ex, &b, &index)) {
            work_on(ex, &b, index);
        } else if (b.n_running == 0) {
            break;
        } else {
            CPLCondWait(b.done_cond, ex->mutex);
        }
    }
    CPLReleaseMutex(ex->mutex);

    CPLDestroyCond(b.done_cond);
    CSLDestroy(b.job_options);
    result = conclude_batch(&b, saved_class, saved_no, saved_msg);
    return result;
}

/* ----------------------------------------------------------- background */

pgp_background *pgp_background_new(pgp_executor *ex)
{
    pgp_background *group = (pgp_background *)pgp_calloc(1, sizeof(*group));
    if (group == NULL)
        return NULL;
    group->ex = ex;
    group->job_options = CPLGetThreadLocalConfigOptions();
    group->job_options = CSLSetNameValue(group->job_options, "GDAL_NUM_THREADS", "1");
    group->job_options = CSLSetNameValue(group->job_options, "VRT_NUM_THREADS", "1");
    group->idle_cond = CPLCreateCond();
    if (group->idle_cond == NULL) {
        CPLError(CE_Failure, CPLE_OutOfMemory, "could not create a condition variable");
        CSLDestroy(group->job_options);
        pgp_free(group);
        return NULL;
    }
    return group;
}

void pgp_background_submit(pgp_background *group, pgp_job_fn fn, void *arg, size_t index)
{
    pgp_executor *ex = group->ex;
    background_job *job;
    if (ex->n_threads == 0)
        return;
    job = (background_job *)pgp_calloc_optional(1, sizeof(*job));
    if (job == NULL) /* prefetch is an optimisation: the tile is computed when read */
        return;
    job->fn = fn;
    job->arg = arg;
    job->index = index;
    job->group = group;
    CPLAcquireMutex(ex->mutex, 1000.0);
    if (ex->background_tail)
        ex->background_tail->next = job;
    else
        ex->background_head = job;
    ex->background_tail = job;
    group->n_queued++;
    CPLCondSignal(ex->work_cond);
    CPLReleaseMutex(ex->mutex);
}

size_t pgp_background_pending(pgp_background *group)
{
    size_t pending;
    CPLAcquireMutex(group->ex->mutex, 1000.0);
    pending = group->n_queued + group->n_running;
    CPLReleaseMutex(group->ex->mutex);
    return pending;
}

void pgp_background_wait(pgp_background *group)
{
    pgp_executor *ex = group->ex;
    CPLAcquireMutex(ex->mutex, 1000.0);
    while (group->n_queued + group->n_running > 0)
        CPLCondWait(group->idle_cond, ex->mutex);
    CPLReleaseMutex(ex->mutex);
}

void pgp_background_free(pgp_background *group)
{
    pgp_executor *ex;
    background_job **link;
    if (group == NULL)
        return;
    ex = group->ex;
    CPLAcquireMutex(ex->mutex, 1000.0);
    ex->background_tail = NULL;
    for (link = &ex->background_head; *link != NULL;) {
        background_job *job = *link;
        if (job->group == group) {
            *link = job->next;
            pgp_free(job);
        } else {
            ex->background_tail = job;
            link = &job->next;
        }
    }
    group->n_queued = 0;
    while (group->n_running > 0)
        CPLCondWait(group->idle_cond, ex->mutex);
    CPLReleaseMutex(ex->mutex);
    CPLDestroyCond(group->idle_cond);
    CSLDestroy(group->job_options);
    pgp_free(group);
}
