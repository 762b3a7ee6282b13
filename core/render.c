/* render.c — renderers (one per level), worker contexts, tile evaluation of
 * Source, Calc and Convolve nodes, window reads with copy-out, scan-ahead,
 * prefetch and the tile visits behind statistics. Reading sources is
 * source.c's. */
#include "pgp/render.h"
#include "pgp/alloc.h"
#include "pgp/source.h"

#include <math.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_multiproc.h"
#include "cpl_string.h"
#include "cpl_vsi.h"

/* What one running job owns: a GDAL handle per source, opened when the
 * context is created, and scratch buffers. A Calc computing a Calc input nests
 * one level deeper, so the evaluation buffers are one per depth (at most one
 * per node). */
typedef struct worker_context {
    pgp_source_handles src;
    pgp_scratch *calc_scratch; /* indexed by nesting depth */
    pgp_convolve_scratch convolve; /* inside pgp_convolve_tile, which never nests */
    struct worker_context *next;
} worker_context;

struct pgp_renderer {
    const pgp_graph *graph;
    pgp_executor *executor;
    pgp_tile_cache *cache;
    uint64_t owner;
    pgp_source_level sources; /* the level as source.c reads it */
    /* The level's grid: the graph's at full resolution, coarser for overviews. */
    int x_size, y_size;
    double scale_x, scale_y; /* full-resolution pixels per pixel of this level */
    pgp_grid align;          /* with <Align>: the aligned grid at this level    */
    pgp_kernel **kernels;    /* per node: a Convolve's kernel at this level     */
    unsigned char *read_by_several; /* per node: sources.read_by_several          */
    unsigned char *deliverable; /* per node: shown by one band, read by no node  */
    double cached_tile_bytes;   /* a tile of every node that goes through the cache */
    int is_overview;         /* owns its downsampled kernels                    */
    int tiles_x, tiles_y;
    int prefetch_tiles;
    pgp_background *prefetch;
    int last_window[4]; /* x, y, w, h of the previous read; w == 0 before any */
    /* 1 + the row-major index of the last tile of the latest read (0: none):
     * queued prefetches of tiles up to it are stale, the read has them. */
    _Atomic size_t read_up_to;
    _Atomic uint64_t tiles_computed;
    _Atomic uint64_t tiles_ahead; /* jobs reads added ahead of their windows */
    _Atomic int scan_batches;     /* batches with tiles ahead since the scan began */
    _Atomic uint64_t reads, read_microseconds; /* pgp_renderer_read calls, their wall time */
    CPLMutex *contexts_mutex;
    worker_context *idle_contexts; /* free list; every context is here between jobs */
};

/* Tiles computed in this process by all renderers: [0] at full resolution,
 * [1] at overview levels (pgp_render_process_totals). */
static _Atomic uint64_t process_tiles[2];

typedef pgp_rect tile_rect;

static tile_rect tile_at(const pgp_renderer *r, int tx, int ty)
{
    const pgp_graph *g = r->graph;
    tile_rect t;
    t.tx = tx;
    t.ty = ty;
    t.x = tx * g->block_x;
    t.y = ty * g->block_y;
    t.w = MIN(g->block_x, r->x_size - t.x);
    t.h = MIN(g->block_y, r->y_size - t.y);
    return t;
}

/* Per node, from who reads it: read_by_several[n], 1 when more than one node
 * or band reads n (source.h); deliverable[n], 1 when one band shows n and no
 * node reads it, so once that band has its pixels nothing needs the tile
 * (pgp_tile_cache_release_delivered); and *cached_tile_bytes, the bytes a tile
 * of every node that goes through the tile cache takes (every node but the
 * sources no band shows: nodes read those directly). Returns -1 when memory
 * runs out. */
static int count_readers(const pgp_graph *g, unsigned char **read_by_several,
                         unsigned char **deliverable, double *cached_tile_bytes)
{
    int *by_nodes = (int *)pgp_calloc(g->n_nodes, sizeof(int));
    int *by_bands = (int *)pgp_calloc(g->n_nodes, sizeof(int));
    int i, k, ok;
    *read_by_several = (unsigned char *)pgp_calloc(g->n_nodes, 1);
    *deliverable = (unsigned char *)pgp_calloc(g->n_nodes, 1);
    ok = by_nodes != NULL && by_bands != NULL && *read_by_several != NULL &&
         *deliverable != NULL;
    if (ok) {
        for (i = 0; i < g->n_nodes; i++)
            for (k = 0; k < g->nodes[i].n_inputs; k++)
                by_nodes[g->nodes[i].input_nodes[k]]++;
        for (i = 0; i < g->n_bands; i++)
            by_bands[g->bands[i].node]++;
        *cached_tile_bytes = 0;
        for (i = 0; i < g->n_nodes; i++) {
            (*read_by_several)[i] = by_nodes[i] + by_bands[i] > 1;
            (*deliverable)[i] = by_nodes[i] == 0 && by_bands[i] == 1;
            if (g->nodes[i].kind != PGP_NODE_SOURCE || by_bands[i] > 0)
                *cached_tile_bytes += (double)g->block_x * g->block_y *
                                      GDALGetDataTypeSizeBytes(g->nodes[i].data_type);
        }
    }
    pgp_free(by_nodes);
    pgp_free(by_bands);
    return ok ? 0 : -1;
}

/* A renderer on a grid of x_size x y_size covering the graph's extent. */
static pgp_renderer *renderer_new(const pgp_graph *graph, pgp_executor *executor,
                                  pgp_tile_cache *cache, int prefetch_tiles, int x_size,
                                  int y_size)
{
    pgp_renderer *r;
    if (cache == NULL) /* the global cache could not be made, and said so */
        return NULL;
    r = (pgp_renderer *)pgp_calloc(1, sizeof(pgp_renderer));
    if (r == NULL)
        return NULL;
    r->graph = graph;
    r->executor = executor;
    r->cache = cache;
    r->owner = pgp_tile_cache_new_owner();
    r->x_size = x_size;
    r->y_size = y_size;
    r->scale_x = (double)graph->x_size / x_size;
    r->scale_y = (double)graph->y_size / y_size;
    r->sources.graph = graph;
    r->sources.align = &r->align;
    r->sources.scale_x = r->scale_x;
    r->sources.scale_y = r->scale_y;
    r->sources.blocks = pgp_block_cache_global();
    r->sources.owner = r->owner;
    if (count_readers(graph, &r->read_by_several, &r->deliverable, &r->cached_tile_bytes) == 0)
        r->sources.read_by_several = r->read_by_several;
    r->kernels = (pgp_kernel **)pgp_calloc(graph->n_nodes, sizeof(pgp_kernel *));
    r->tiles_x = (x_size + graph->block_x - 1) / graph->block_x;
    r->tiles_y = (y_size + graph->block_y - 1) / graph->block_y;
    r->contexts_mutex = CPLCreateMutex();
    if (r->contexts_mutex != NULL)
        CPLReleaseMutex(r->contexts_mutex);
    r->prefetch_tiles = prefetch_tiles;
    r->prefetch = pgp_background_new(executor);
    if (r->kernels == NULL || r->sources.read_by_several == NULL || r->contexts_mutex == NULL ||
        r->prefetch == NULL) {
        pgp_renderer_free(r);
        return NULL;
    }
    return r;
}

pgp_renderer *pgp_renderer_new(const pgp_graph *graph, pgp_executor *executor,
                               pgp_tile_cache *cache, int prefetch_tiles)
{
    pgp_renderer *r = renderer_new(graph, executor, cache, prefetch_tiles, graph->x_size,
                                   graph->y_size);
    int i;
    if (r == NULL)
        return NULL;
    r->align = graph->align;
    for (i = 0; i < graph->n_nodes; i++)
        r->kernels[i] = graph->nodes[i].kernel;
    return r;
}

pgp_renderer *pgp_renderer_new_overview(const pgp_graph *graph, pgp_executor *executor,
                                        pgp_tile_cache *cache, int prefetch_tiles, int x_size,
                                        int y_size)
{
    pgp_renderer *r;
    int i;
    if (x_size <= 0 || y_size <= 0 || x_size > graph->x_size || y_size > graph->y_size) {
        CPLError(CE_Failure, CPLE_IllegalArg, "overview of %dx%d for a %dx%d raster", x_size,
                 y_size, graph->x_size, graph->y_size);
        return NULL;
    }
    r = renderer_new(graph, executor, cache, prefetch_tiles, x_size, y_size);
    if (r == NULL)
        return NULL;
    r->is_overview = r->sources.is_overview = 1;
    /* Same extent, bigger pixels: GDAL's convention for overviews. */
    r->align = graph->align;
    r->align.x_size = x_size;
    r->align.y_size = y_size;
    r->align.gt[1] *= r->scale_x;
    r->align.gt[2] *= r->scale_y;
    r->align.gt[4] *= r->scale_x;
    r->align.gt[5] *= r->scale_y;
    for (i = 0; i < graph->n_nodes; i++) {
        const pgp_node *n = &graph->nodes[i];
        char err[512];
        if (n->kernel == NULL)
            continue;
        r->kernels[i] = pgp_kernel_downsample(n->kernel, r->scale_y, r->scale_x, err, sizeof err);
        if (r->kernels[i] == NULL) {
            CPLError(CE_Failure, CPLE_AppDefined, "%s: kernel at overview %dx%d: %s", n->where,
                     x_size, y_size, err);
            pgp_renderer_free(r);
            return NULL;
        }
    }
    return r;
}

/* Also a context whose arrays could not all be allocated. */
static void free_context(const pgp_renderer *r, worker_context *ctx)
{
    int i;
    for (i = 0; ctx->calc_scratch != NULL && i < r->graph->n_nodes; i++)
        pgp_free(ctx->calc_scratch[i].data);
    pgp_source_handles_close(&r->sources, &ctx->src);
    pgp_convolve_scratch_free(&ctx->convolve);
    pgp_free(ctx->calc_scratch);
    pgp_free(ctx);
}

void pgp_renderer_free(pgp_renderer *r)
{
    if (r == NULL)
        return;
    pgp_background_free(r->prefetch); /* its jobs use contexts and the cache */
    while (r->idle_contexts != NULL) {
        worker_context *ctx = r->idle_contexts;
        r->idle_contexts = ctx->next;
        free_context(r, ctx);
    }
    pgp_tile_cache_purge_owner(r->cache, r->owner);
    pgp_tile_cache_purge_owner(r->sources.blocks, r->owner);
    if (r->contexts_mutex != NULL)
        CPLDestroyMutex(r->contexts_mutex);
    if (r->is_overview) {
        int i;
        for (i = 0; i < r->graph->n_nodes; i++)
            pgp_kernel_free(r->kernels[i]);
    }
    pgp_free(r->kernels);
    pgp_free(r->read_by_several);
    pgp_free(r->deliverable);
    pgp_free(r);
}

size_t pgp_renderer_tile_count(const pgp_renderer *r)
{
    return (size_t)r->tiles_x * (size_t)r->tiles_y;
}

int pgp_renderer_threads(const pgp_renderer *r)
{
    return pgp_executor_threads(r->executor) + 1;
}

const pgp_graph *pgp_renderer_graph(const pgp_renderer *r)
{
    return r->graph;
}

uint64_t pgp_renderer_tiles_computed(const pgp_renderer *r)
{
    return atomic_load(&r->tiles_computed);
}

uint64_t pgp_renderer_tiles_ahead(const pgp_renderer *r)
{
    return atomic_load(&r->tiles_ahead);
}

void pgp_renderer_read_time(const pgp_renderer *r, uint64_t *reads, uint64_t *microseconds)
{
    *reads = atomic_load(&r->reads);
    *microseconds = atomic_load(&r->read_microseconds);
}

void pgp_renderer_wait_prefetch(pgp_renderer *r)
{
    pgp_background_wait(r->prefetch);
}

void pgp_render_process_totals(uint64_t *full_resolution_tiles, uint64_t *overview_tiles)
{
    *full_resolution_tiles = atomic_load(&process_tiles[0]);
    *overview_tiles = atomic_load(&process_tiles[1]);
}

uint64_t pgp_renderer_source_pixels(const pgp_renderer *r)
{
    return atomic_load(&r->sources.source_pixels);
}

uint64_t pgp_renderer_blocks_decoded(const pgp_renderer *r)
{
    return atomic_load(&r->sources.blocks_decoded);
}

static worker_context *borrow_context(pgp_renderer *r)
{
    worker_context *ctx;
    CPLAcquireMutex(r->contexts_mutex, 1000.0);
    ctx = r->idle_contexts;
    if (ctx != NULL)
        r->idle_contexts = ctx->next;
    CPLReleaseMutex(r->contexts_mutex);
    if (ctx == NULL) {
        ctx = (worker_context *)pgp_calloc(1, sizeof(worker_context));
        if (ctx == NULL)
            return NULL;
        ctx->calc_scratch = (pgp_scratch *)pgp_calloc(r->graph->n_nodes, sizeof(pgp_scratch));
        if (ctx->calc_scratch == NULL || pgp_source_handles_open(&r->sources, &ctx->src) != 0) {
            free_context(r, ctx);
            return NULL;
        }
    }
    return ctx;
}

static void return_context(pgp_renderer *r, worker_context *ctx)
{
    CPLAcquireMutex(r->contexts_mutex, 1000.0);
    ctx->next = r->idle_contexts;
    r->idle_contexts = ctx;
    CPLReleaseMutex(r->contexts_mutex);
}

/* ---- evaluation -------------------------------------------------------------- */

static int acquire_tile(pgp_renderer *r, worker_context *ctx, int node, const tile_rect *t,
                        int depth, pgp_tile **tile);

/* Fills values (rows stride apart) with node's pixels of rect as doubles: a
 * source is read directly, another node is assembled from its tiles. */
static int read_as_doubles(pgp_renderer *r, worker_context *ctx, int node, const tile_rect *rect,
                           int depth, double *values, int stride)
{
    const pgp_graph *g = r->graph;
    const pgp_node *n = &g->nodes[node];
    const int type_size = GDALGetDataTypeSizeBytes(n->data_type);
    int tx, ty;
    if (n->kind == PGP_NODE_SOURCE)
        return pgp_source_read(&r->sources, &ctx->src, node, rect, values, GDT_Float64, stride);
    for (ty = rect->y / g->block_y; ty <= (rect->y + rect->h - 1) / g->block_y; ty++)
        for (tx = rect->x / g->block_x; tx <= (rect->x + rect->w - 1) / g->block_x; tx++) {
            const tile_rect t = tile_at(r, tx, ty);
            const int x0 = MAX(t.x, rect->x), x1 = MIN(t.x + t.w, rect->x + rect->w);
            const int y0 = MAX(t.y, rect->y), y1 = MIN(t.y + t.h, rect->y + rect->h);
            const GByte *pixels;
            pgp_tile *tile;
            int row;
            if (acquire_tile(r, ctx, node, &t, depth, &tile) != 0)
                return -1;
            pixels = (const GByte *)pgp_tile_data(tile);
            for (row = y0; row < y1; row++)
                pgp_copy_row(pixels + ((size_t)(row - t.y) * t.w + (x0 - t.x)) * type_size,
                         n->data_type, values + (size_t)(row - rect->y) * stride + (x0 - rect->x),
                         GDT_Float64, x1 - x0);
            pgp_tile_cache_release(r->cache, tile);
        }
    return 0;
}

/* ---- what a job offers the node kinds (pgp/node.h) ---------------------------- */

struct pgp_job {
    pgp_renderer *r;
    worker_context *ctx;
};

const pgp_graph *pgp_job_graph(const pgp_job *job)
{
    return job->r->graph;
}

void pgp_job_level_size(const pgp_job *job, int *x_size, int *y_size)
{
    *x_size = job->r->x_size;
    *y_size = job->r->y_size;
}

void pgp_job_level_scale(const pgp_job *job, double *scale_x, double *scale_y)
{
    *scale_x = job->r->scale_x;
    *scale_y = job->r->scale_y;
}

int pgp_job_read(pgp_job *job, int node, const pgp_rect *rect, int depth, double *values,
                 int stride)
{
    return read_as_doubles(job->r, job->ctx, node, rect, depth, values, stride);
}

void *pgp_job_scratch(pgp_job *job, int depth, size_t bytes)
{
    return pgp_scratch_reserve(&job->ctx->calc_scratch[depth], bytes);
}

/* An evicted tile's buffer when the cache has one spare (count is at most a
 * block: PGP_MAX_BLOCK_PIXELS fits an int). */
void *pgp_job_tile_buffer(pgp_job *job, int node, size_t count)
{
    return pgp_tile_cache_buffer(
        job->r->cache, count * GDALGetDataTypeSizeBytes(job->r->graph->nodes[node].data_type));
}

void *pgp_job_tile(pgp_job *job, int node, const double *values, size_t count)
{
    void *pixels = pgp_job_tile_buffer(job, node, count);
    if (pixels != NULL)
        pgp_copy_row(values, GDT_Float64, pixels, job->r->graph->nodes[node].data_type, (int)count);
    return pixels;
}

const pgp_kernel *pgp_job_kernel(const pgp_job *job, int node)
{
    return job->r->kernels[node];
}

pgp_convolve_scratch *pgp_job_convolve_scratch(pgp_job *job)
{
    return &job->ctx->convolve;
}

int pgp_job_read_source(pgp_job *job, int node, const pgp_rect *r, void *pixels, GDALDataType type,
                        int stride)
{
    return pgp_source_read(&job->r->sources, &job->ctx->src, node, r, pixels, type, stride);
}

static pgp_tile_key tile_key(const pgp_renderer *r, int node, int tx, int ty)
{
    pgp_tile_key key;
    memset(&key, 0, sizeof key);
    key.owner = r->owner;
    key.node = node;
    key.tx = tx;
    key.ty = ty;
    return key;
}

/* Pins node's tile t in the cache, computing it here if no thread has. depth
 * is how many nodes up the stack are waiting for it (their scratch is in use). */
static int acquire_tile(pgp_renderer *r, worker_context *ctx, int node, const tile_rect *t,
                        int depth, pgp_tile **tile)
{
    const pgp_node *n = &r->graph->nodes[node];
    const pgp_tile_key key = tile_key(r, node, t->tx, t->ty);
    void *pixels;
    pgp_tile_status status;
    status = pgp_tile_cache_acquire(r->cache, &key, tile);
    /* Computed by another job, maybe a prefetch whose errors nobody sees (or
     * one that ran out of memory): the failed entry left the cache, so it is
     * computed here once more, with an error of our own if it fails again. */
    if (status == PGP_TILE_FAILED) {
        pgp_tile_cache_release(r->cache, *tile);
        status = pgp_tile_cache_acquire(r->cache, &key, tile);
    }
    switch (status) {
    case PGP_TILE_READY:
        return 0;
    case PGP_TILE_NO_MEMORY:
        return -1;
    case PGP_TILE_FAILED:
        CPLError(CE_Failure, CPLE_AppDefined,
                 "%s tile (%d,%d) failed in a concurrent request; see its error", n->where,
                 t->tx, t->ty);
        break;
    case PGP_TILE_MUST_COMPUTE:
        atomic_fetch_add(&r->tiles_computed, 1);
        atomic_fetch_add(&process_tiles[r->is_overview], 1);
        {
            pgp_job job;
            job.r = r;
            job.ctx = ctx;
            pixels = n->def->compute(&job, node, t, depth);
        }
        if (pixels != NULL) {
            pgp_tile_cache_publish(r->cache, *tile, pixels,
                                   (size_t)t->w * t->h * GDALGetDataTypeSizeBytes(n->data_type));
            return 0;
        }
        pgp_tile_cache_fail(r->cache, *tile);
        break;
    }
    pgp_tile_cache_release(r->cache, *tile);
    *tile = NULL;
    return -1;
}

/* One job: a node's tile. Window reads, prefetch and visits each decode their
 * job index into one and compute it the same way. */
typedef struct tile_job {
    int node;
    tile_rect tile;
} tile_job;

static tile_job job_at(const pgp_renderer *r, int node, int tx, int ty)
{
    tile_job job;
    job.node = node;
    job.tile = tile_at(r, tx, ty);
    return job;
}

/* Pins the job's tile in the cache with a borrowed context. */
static int acquire_job(pgp_renderer *r, const tile_job *job, pgp_tile **tile)
{
    worker_context *ctx = borrow_context(r);
    int status;
    if (ctx == NULL)
        return -1;
    status = acquire_tile(r, ctx, job->node, &job->tile, 0, tile);
    return_context(r, ctx);
    return status;
}

/* What a job does with its pinned tile: copy_out, keep_cached, hand_to_visitor. */
typedef int (*tile_job_fn)(void *arg, pgp_renderer *r, int node, const tile_rect *t,
                           const pgp_tile *tile, size_t index);

/* The use of a job that only makes sure its tile is cached. */
static int keep_cached(void *arg, pgp_renderer *r, int node, const tile_rect *t,
                       const pgp_tile *tile, size_t index)
{
    (void)arg, (void)r, (void)node, (void)t, (void)tile, (void)index;
    return 0;
}

/* Runs one job in the foreground: use on its tile, released as delivered
 * when its pixels went to the client and nothing else reads its node;
 * failures name the node and tile. */
static int run_tile_job(pgp_renderer *r, const tile_job *job, tile_job_fn use, void *arg,
                        size_t index)
{
    pgp_tile *tile;
    int status = acquire_job(r, job, &tile);
    if (status == 0) {
        status = use(arg, r, job->node, &job->tile, tile, index);
        if (use != keep_cached && r->deliverable[job->node])
            pgp_tile_cache_release_delivered(r->cache, tile);
        else
            pgp_tile_cache_release(r->cache, tile);
    }
    if (status != 0)
        pgp_fail_because(CPLGetLastErrorNo(),
                         CPLSPrintf("%s tile (%d,%d)", r->graph->nodes[job->node].where,
                                    job->tile.tx, job->tile.ty));
    return status;
}

/* ---- window reads ------------------------------------------------------------ */

/* A scan read block by block gives batches of one job; it is given at most this
 * many tiles ahead (pgp_renderer_read). */
#define MAX_SCAN_AHEAD 64
/* Tiles ahead per worker: the first batch of a scan, doubling with each batch
 * after it up to the last. */
#define FIRST_AHEAD_PER_WORKER 2
#define MAX_AHEAD_PER_WORKER 8

typedef struct read_request {
    pgp_renderer *r;
    tile_job_fn use; /* with each tile of the window: copy_out, or nothing */
    int n_nodes;
    const int *nodes;
    int x, y, w, h;
    int tx0, ty0, tiles_x, tiles_y;
    GByte *buffer;
    GDALDataType buffer_type;
    GSpacing pixel_space, line_space, band_space;
    size_t n_ahead;               /* tiles computed after the window's, same batch */
    size_t ahead[MAX_SCAN_AHEAD]; /* their row-major tile indices */
} read_request;

static int copy_out(void *arg, pgp_renderer *r, int node, const tile_rect *t,
                    const pgp_tile *tile, size_t index)
{
    const read_request *q = (const read_request *)arg;
    const GDALDataType type = r->graph->nodes[node].data_type;
    const int type_size = GDALGetDataTypeSizeBytes(type);
    const int x0 = MAX(t->x, q->x), x1 = MIN(t->x + t->w, q->x + q->w);
    const int y0 = MAX(t->y, q->y), y1 = MIN(t->y + t->h, q->y + q->h);
    const GByte *pixels = (const GByte *)pgp_tile_data(tile);
    GByte *band = q->buffer + (GPtrDiff_t)(index % q->n_nodes) * q->band_space;
    int row;
    for (row = y0; row < y1; row++)
        GDALCopyWords(pixels + ((size_t)(row - t->y) * t->w + (x0 - t->x)) * type_size, type,
                      type_size,
                      band + (GPtrDiff_t)(row - q->y) * q->line_space +
                          (GPtrDiff_t)(x0 - q->x) * q->pixel_space,
                      q->buffer_type, (int)q->pixel_space, x1 - x0);
    return 0;
}

/* Computes node's tile tile_index (row-major) unless cached, and leaves it there. */
static int compute_into_cache(pgp_renderer *r, int node, size_t tile_index)
{
    const tile_job job =
        job_at(r, node, (int)(tile_index % r->tiles_x), (int)(tile_index / r->tiles_x));
    pgp_tile *tile;
    const int status = acquire_job(r, &job, &tile);
    if (status == 0)
        pgp_tile_cache_unpin(r->cache, tile);
    return status;
}

/* Job index -> (tile, band), bands innermost so a tile's shared inputs are hot;
 * the window's jobs first, then those ahead of it. A tile ahead that fails
 * leaves the cache and fails the read that needs it, naming its node and tile
 * (acquire_tile computes it again there); this read does not need it. */
static int read_job(void *arg, size_t index)
{
    const read_request *q = (const read_request *)arg;
    const size_t window_jobs = (size_t)q->tiles_x * q->tiles_y * q->n_nodes;
    size_t tile_index;
    tile_job job;
    if (index >= window_jobs) {
        index -= window_jobs;
        if (compute_into_cache(q->r, q->nodes[index % q->n_nodes], q->ahead[index / q->n_nodes]))
            CPLErrorReset();
        return 0;
    }
    tile_index = index / q->n_nodes;
    job = job_at(q->r, q->nodes[index % q->n_nodes], q->tx0 + (int)(tile_index % q->tiles_x),
                 q->ty0 + (int)(tile_index / q->tiles_x));
    return run_tile_job(q->r, &job, q->use, (void *)q, index);
}

/* Background job index = tile index * n_nodes + node. A tile a later read
 * reached first is skipped: that read computed it, or is computing it, and
 * may have delivered it already (computing it again would only take a slot
 * in the cache nobody reads). */
static int prefetch_job(void *arg, size_t index)
{
    pgp_renderer *r = (pgp_renderer *)arg;
    const size_t tile = index / r->graph->n_nodes;
    if (tile < atomic_load_explicit(&r->read_up_to, memory_order_relaxed))
        return 0;
    return compute_into_cache(r, (int)(index % r->graph->n_nodes), tile);
}

/* Queues count tiles after last_tile in row-major order: the next strip for
 * full-width strips, the next tiles to the right otherwise. */
static void prefetch_after(pgp_renderer *r, int n_nodes, const int *nodes, size_t last_tile,
                           size_t count)
{
    const size_t n_tiles = pgp_renderer_tile_count(r);
    size_t tile;
    int i;
    if (pgp_background_pending(r->prefetch) >= count * n_nodes)
        return; /* the client is ahead of the workers: don't pile up */
    for (tile = last_tile + 1; tile <= last_tile + count && tile < n_tiles; tile++)
        for (i = 0; i < n_nodes; i++)
            pgp_background_submit(r->prefetch, prefetch_job, r,
                                  tile * r->graph->n_nodes + nodes[i]);
}

/* Whether a read continues the previous one in scan direction (the next row
 * of windows down, or the next window to the right) or is the first: only
 * then is computing ahead worth it; random access would compute tiles nobody
 * asks for. */
static int continues_scan(pgp_renderer *r, int x, int y, int w, int h)
{
    int *last = r->last_window, scanning;
    CPLAcquireMutex(r->contexts_mutex, 1000.0);
    scanning = last[2] == 0 || y == last[1] + last[3] ||
               (y == last[1] && h == last[3] && x == last[0] + last[2]);
    last[0] = x;
    last[1] = y;
    last[2] = w;
    last[3] = h;
    CPLReleaseMutex(r->contexts_mutex);
    return scanning;
}

/* How many tiles fit in half the cache budget, each with every node that goes
 * through the cache (a band's inputs land there too): a batch or a prefetch
 * computing more would evict its first tiles before the caller reads them. */
static double tiles_in_half_cache(pgp_renderer *r)
{
    pgp_tile_cache_stats stats;
    pgp_tile_cache_get_stats(r->cache, &stats);
    return stats.budget_bytes / 2.0 / r->cached_tile_bytes;
}

/* Whether tile (of nodes) lacks a READY entry; absent_only: whether it has no
 * entry at all (one being computed elsewhere is not worth a job). */
static int tile_missing(pgp_renderer *r, const read_request *q, size_t tile, int absent_only)
{
    int i;
    for (i = 0; i < q->n_nodes; i++) {
        const pgp_tile_key key =
            tile_key(r, q->nodes[i], (int)(tile % r->tiles_x), (int)(tile / r->tiles_x));
        const pgp_tile_presence presence = pgp_tile_cache_peek(r->cache, &key);
        if (presence == PGP_TILE_ABSENT || (!absent_only && presence == PGP_TILE_IN_PROGRESS))
            return 1;
    }
    return 0;
}

/* Scan-ahead: a read whose window is too small to occupy the executor (one
 * block: GDAL's ReadBlock, QGIS's identify, most clients' loops), which
 * continues a scan and misses a tile, computes in the same foreground batch
 * the next tiles in row-major order that no thread has, as far as half the
 * cache holds them: 2 x workers for the first batch of a scan (the first
 * block waits little), twice as many with each batch after it up to 8 x
 * workers (fewer batch ends, where runners wait for the last tile). The next
 * reads of the scan find them cached, so a block-by-block scan runs on every
 * worker. Tiles stay the unit of work, so the bytes are those of any other
 * read. */
static void plan_ahead(read_request *q, int scanning)
{
    pgp_renderer *r = q->r;
    const size_t threads = (size_t)pgp_executor_threads(r->executor);
    const size_t window_tiles = (size_t)q->tiles_x * q->tiles_y;
    const size_t last = (size_t)(q->ty0 + q->tiles_y - 1) * r->tiles_x + q->tx0 + q->tiles_x - 1;
    const size_t n_tiles = pgp_renderer_tile_count(r);
    double room;
    size_t wanted, tile, i;
    int missing = 0, batches;
    if (!scanning)
        atomic_store(&r->scan_batches, 0);
    if (!scanning || window_tiles * q->n_nodes > threads)
        return;
    for (i = 0; i < window_tiles && !missing; i++)
        missing = tile_missing(
            r, q, (size_t)(q->ty0 + i / q->tiles_x) * r->tiles_x + q->tx0 + i % q->tiles_x, 0);
    room = tiles_in_half_cache(r) - (double)window_tiles;
    if (!missing || room < 1)
        return;
    batches = atomic_fetch_add(&r->scan_batches, 1);
    wanted = threads * MIN(FIRST_AHEAD_PER_WORKER << MIN(batches, 2), MAX_AHEAD_PER_WORKER);
    wanted = MIN(MIN(wanted, (size_t)MAX_SCAN_AHEAD), (size_t)room);
    for (tile = last + 1; tile <= last + wanted && tile < n_tiles; tile++)
        if (tile_missing(r, q, tile, 1))
            q->ahead[q->n_ahead++] = tile;
    atomic_fetch_add(&r->tiles_ahead, q->n_ahead * q->n_nodes);
}

/* Checks the window and finds the tiles it covers. */
static int cover_window(read_request *q)
{
    pgp_renderer *r = q->r;
    const pgp_graph *g = r->graph;
    if (q->x < 0 || q->y < 0 || q->w <= 0 || q->h <= 0 || q->x > r->x_size - q->w ||
        q->y > r->y_size - q->h) {
        CPLError(CE_Failure, CPLE_IllegalArg,
                 "window (%d,%d,%d,%d) is outside the %dx%d raster", q->x, q->y, q->w, q->h,
                 r->x_size, r->y_size);
        return -1;
    }
    q->tx0 = q->x / g->block_x;
    q->ty0 = q->y / g->block_y;
    q->tiles_x = (q->x + q->w - 1) / g->block_x - q->tx0 + 1;
    q->tiles_y = (q->y + q->h - 1) / g->block_y - q->ty0 + 1;
    return 0;
}

/* Runs use on every tile of nodes covering the window, and computes the tiles
 * ahead, on the executor. */
static CPLErr run_window(read_request *q, GDALProgressFunc progress, void *progress_arg)
{
    return pgp_executor_run(q->r->executor,
                            ((size_t)q->tiles_x * q->tiles_y + q->n_ahead) * q->n_nodes,
                            read_job, q, progress, progress_arg);
}

static void init_request(read_request *q, pgp_renderer *r, tile_job_fn use, int n_nodes,
                         const int *nodes, int x, int y, int w, int h)
{
    memset(q, 0, sizeof *q);
    q->r = r;
    q->use = use;
    q->n_nodes = n_nodes;
    q->nodes = nodes;
    q->x = x;
    q->y = y;
    q->w = w;
    q->h = h;
}

static uint64_t monotonic_microseconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

/* Tiles to prefetch after a read: PREFETCH, or for a full-width strip the next
 * strip of the same height (gdal_translate's swaths), so that the workers
 * compute it while the client writes this one; within half the cache with the
 * window's own tiles. */
static size_t prefetch_count(pgp_renderer *r, const read_request *q)
{
    const size_t window_tiles = (size_t)q->tiles_x * q->tiles_y;
    size_t count = (size_t)r->prefetch_tiles;
    double room;
    if (q->x != 0 || q->w != r->x_size || window_tiles <= count)
        return count;
    room = tiles_in_half_cache(r) - (double)window_tiles;
    return room >= (double)window_tiles ? window_tiles : MAX(count, (size_t)MAX(room, 0));
}

CPLErr pgp_renderer_read(pgp_renderer *r, int n_nodes, const int *nodes, int x, int y, int w,
                         int h, void *buffer, GDALDataType buffer_type, GSpacing pixel_space,
                         GSpacing line_space, GSpacing band_space, GDALProgressFunc progress,
                         void *progress_arg)
{
    const uint64_t start = monotonic_microseconds();
    read_request q;
    int scanning;
    CPLErr err;
    init_request(&q, r, copy_out, n_nodes, nodes, x, y, w, h);
    q.buffer = (GByte *)buffer;
    q.buffer_type = buffer_type;
    q.pixel_space = pixel_space;
    q.line_space = line_space;
    q.band_space = band_space;
    if (cover_window(&q) != 0)
        return CE_Failure;
    atomic_store_explicit(&r->read_up_to,
                          (size_t)(q.ty0 + q.tiles_y - 1) * r->tiles_x + q.tx0 + q.tiles_x,
                          memory_order_relaxed);
    scanning = continues_scan(r, x, y, w, h);
    if (progress == NULL) /* progress counts the window's tiles */
        plan_ahead(&q, scanning);
    err = run_window(&q, progress, progress_arg);
    if (err == CE_None && r->prefetch_tiles > 0 && scanning)
        prefetch_after(r, n_nodes, nodes,
                       q.n_ahead > 0 ? q.ahead[q.n_ahead - 1]
                                     : (size_t)(q.ty0 + q.tiles_y - 1) * r->tiles_x + q.tx0 +
                                           q.tiles_x - 1,
                       prefetch_count(r, &q));
    atomic_fetch_add(&r->reads, 1);
    atomic_fetch_add(&r->read_microseconds, monotonic_microseconds() - start);
    return err;
}

CPLErr pgp_renderer_compute(pgp_renderer *r, int n_nodes, const int *nodes, int x, int y, int w,
                            int h, GDALProgressFunc progress, void *progress_arg)
{
    const pgp_graph *g = r->graph;
    const uint64_t start = monotonic_microseconds();
    read_request q;
    CPLErr err;
    /* Tiles evicted before the caller reads them would be computed twice. */
    if ((double)((w + g->block_x - 1) / g->block_x + 1) * ((h + g->block_y - 1) / g->block_y + 1) >
        tiles_in_half_cache(r))
        return CE_None;
    init_request(&q, r, keep_cached, n_nodes, nodes, x, y, w, h);
    if (cover_window(&q) != 0)
        return CE_Failure;
    err = run_window(&q, progress, progress_arg);
    /* Part of the resampled read that follows: its time, not another read. */
    atomic_fetch_add(&r->read_microseconds, monotonic_microseconds() - start);
    return err;
}

/* ---- whole-node visits ------------------------------------------------------- */

typedef struct visit_request {
    pgp_renderer *r;
    int node;
    pgp_tile_visitor visit;
    void *arg;
} visit_request;

static int hand_to_visitor(void *arg, pgp_renderer *r, int node, const tile_rect *t,
                           const pgp_tile *tile, size_t index)
{
    const visit_request *q = (const visit_request *)arg;
    (void)r;
    (void)node;
    return q->visit(q->arg, index, pgp_tile_data(tile), t->w, t->h);
}

static int visit_job(void *arg, size_t index)
{
    const visit_request *q = (const visit_request *)arg;
    const tile_job job =
        job_at(q->r, q->node, (int)(index % q->r->tiles_x), (int)(index / q->r->tiles_x));
    return run_tile_job(q->r, &job, hand_to_visitor, (void *)q, index);
}

CPLErr pgp_renderer_visit_tiles(pgp_renderer *r, int node, pgp_tile_visitor visit, void *arg,
                                GDALProgressFunc progress, void *progress_arg)
{
    visit_request q;
    q.r = r;
    q.node = node;
    q.visit = visit;
    q.arg = arg;
    return pgp_executor_run(r->executor, pgp_renderer_tile_count(r), visit_job, &q, progress,
                            progress_arg);
}

/* ---- streamed tiles (a render writing its target) ----------------------------- */

typedef struct stream_request {
    pgp_renderer *r;
    int n_nodes;
    const int *nodes;
    const unsigned char *uncached; /* per nodes[i]: computed outside the tile cache */
    size_t first_tile;
    pgp_tile_sink sink;
    void *arg;
} stream_request;

/* Whether the tiles of nodes[i] can skip the tile cache: no node reads it and
 * no other band shows it, so each tile is used once, by the sink. */
static int used_once(const pgp_graph *g, int n_nodes, const int *nodes, int i)
{
    int j, k;
    for (j = 0; j < n_nodes; j++)
        if (j != i && nodes[j] == nodes[i])
            return 0;
    for (j = 0; j < g->n_nodes; j++)
        for (k = 0; k < g->nodes[j].n_inputs; k++)
            if (g->nodes[j].input_nodes[k] == nodes[i])
                return 0;
    return 1;
}

/* One tile of every node, handed to the sink; uncached nodes are computed
 * into a buffer that goes back to the cache's spares afterwards, so a render
 * neither fills the cache with tiles nobody reads again nor maps fresh memory
 * per tile. */
static int stream_job(void *arg, size_t index)
{
    const stream_request *q = (const stream_request *)arg;
    pgp_renderer *r = q->r;
    const size_t tile_index = q->first_tile + index;
    const tile_rect t = tile_at(r, (int)(tile_index % r->tiles_x), (int)(tile_index / r->tiles_x));
    const void **pixels =
        (const void **)pgp_calloc(q->n_nodes, sizeof(void *) + sizeof(pgp_tile *));
    pgp_tile **tiles = (pgp_tile **)(pixels + q->n_nodes);
    worker_context *ctx = pixels != NULL ? borrow_context(r) : NULL;
    int i, failed_node = -1, status = ctx == NULL ? -1 : 0;
    for (i = 0; i < q->n_nodes && status == 0; i++) {
        const int node = q->nodes[i];
        if (q->uncached[i]) {
            pgp_job job;
            job.r = r;
            job.ctx = ctx;
            atomic_fetch_add(&r->tiles_computed, 1);
            atomic_fetch_add(&process_tiles[r->is_overview], 1);
            pixels[i] = r->graph->nodes[node].def->compute(&job, node, &t, 0);
            status = pixels[i] != NULL ? 0 : -1;
        } else {
            status = acquire_tile(r, ctx, node, &t, 0, &tiles[i]);
            pixels[i] = status == 0 ? pgp_tile_data(tiles[i]) : NULL;
        }
        failed_node = node;
    }
    if (ctx != NULL)
        return_context(r, ctx);
    if (status == 0) {
        failed_node = -1;
        status = q->sink(q->arg, tile_index, &t, pixels);
    } else {
        q->sink(q->arg, tile_index, &t, NULL);
    }
    for (i = 0; pixels != NULL && i < q->n_nodes; i++) {
        if (tiles[i] != NULL)
            pgp_tile_cache_release(r->cache, tiles[i]);
        else if (pixels[i] != NULL)
            pgp_tile_cache_recycle(r->cache, (void *)pixels[i],
                                   (size_t)t.w * t.h *
                                       GDALGetDataTypeSizeBytes(
                                           r->graph->nodes[q->nodes[i]].data_type));
    }
    pgp_free(pixels);
    if (status != 0 && failed_node >= 0)
        pgp_fail_because(CPLGetLastErrorNo(), CPLSPrintf("%s tile (%d,%d)",
                                                         r->graph->nodes[failed_node].where,
                                                         t.tx, t.ty));
    return status;
}

CPLErr pgp_renderer_stream_tiles(pgp_renderer *r, int n_nodes, const int *nodes,
                                 size_t first_tile, size_t n_tiles, pgp_tile_sink sink, void *arg,
                                 GDALProgressFunc progress, void *progress_arg)
{
    stream_request q;
    unsigned char *uncached = (unsigned char *)pgp_malloc(n_nodes);
    CPLErr err;
    int i;
    if (uncached == NULL)
        return CE_Failure;
    for (i = 0; i < n_nodes; i++)
        uncached[i] = (unsigned char)used_once(r->graph, n_nodes, nodes, i);
    q.r = r;
    q.n_nodes = n_nodes;
    q.nodes = nodes;
    q.uncached = uncached;
    q.first_tile = first_tile;
    q.sink = sink;
    q.arg = arg;
    err = pgp_executor_run(r->executor, n_tiles, stream_job, &q, progress, progress_arg);
    pgp_free(uncached);
    return err;
}
