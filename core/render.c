/* render.c — tile evaluation of Source and Calc nodes, window reads. */
#include "pgp/render.h"

#include <stdatomic.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_multiproc.h"
#include "cpl_string.h"
#include "cpl_vsi.h"

/* Reports a failure in context, quoting the error that caused it. The cause is
 * copied first: CPLError formats into the buffer CPLGetLastErrorMsg returns. */
static void fail_because(CPLErrorNum err_no, const char *context)
{
    char *cause = CPLStrdup(CPLGetLastErrorMsg());
    CPLError(CE_Failure, err_no, "%s: %s", context, cause);
    CPLFree(cause);
}

/* Scratch memory reused from tile to tile: fresh large allocations cost a page
 * fault per 4 KiB, which dominated rendering before buffers were kept. */
typedef struct scratch {
    void *data;
    size_t bytes;
} scratch;

/* What one running job owns: a GDAL handle per source, opened on first use,
 * and scratch buffers. A Calc computing a Calc input nests one level deeper,
 * so the evaluation buffers are one per depth (at most one per node). */
typedef struct worker_context {
    GDALDatasetH *sources; /* indexed by node; NULL until opened */
    scratch *calc_scratch; /* indexed by nesting depth           */
    scratch source_block;  /* one block of a source, native type */
    struct worker_context *next;
} worker_context;

struct pgp_renderer {
    const pgp_graph *graph;
    pgp_executor *executor;
    pgp_tile_cache *cache;
    uint64_t owner;
    int tiles_x, tiles_y;
    int prefetch_tiles;
    pgp_background *prefetch;
    _Atomic uint64_t tiles_computed;
    CPLMutex *contexts_mutex;
    worker_context *idle_contexts; /* free list; every context is here between jobs */
};

typedef struct tile_rect {
    int tx, ty;
    int x, y, w, h;
} tile_rect;

static tile_rect tile_at(const pgp_renderer *r, int tx, int ty)
{
    const pgp_graph *g = r->graph;
    tile_rect t;
    t.tx = tx;
    t.ty = ty;
    t.x = tx * g->block_x;
    t.y = ty * g->block_y;
    t.w = MIN(g->block_x, g->x_size - t.x);
    t.h = MIN(g->block_y, g->y_size - t.y);
    return t;
}

pgp_renderer *pgp_renderer_new(const pgp_graph *graph, pgp_executor *executor,
                               pgp_tile_cache *cache, int prefetch_tiles)
{
    pgp_renderer *r = (pgp_renderer *)CPLCalloc(1, sizeof(pgp_renderer));
    r->graph = graph;
    r->executor = executor;
    r->cache = cache;
    r->owner = pgp_tile_cache_new_owner();
    r->tiles_x = (graph->x_size + graph->block_x - 1) / graph->block_x;
    r->tiles_y = (graph->y_size + graph->block_y - 1) / graph->block_y;
    r->contexts_mutex = CPLCreateMutex();
    CPLReleaseMutex(r->contexts_mutex);
    r->prefetch_tiles = prefetch_tiles;
    r->prefetch = pgp_background_new(executor);
    return r;
}

void pgp_renderer_free(pgp_renderer *r)
{
    if (r == NULL)
        return;
    pgp_background_free(r->prefetch); /* its jobs use contexts and the cache */
    while (r->idle_contexts != NULL) {
        worker_context *ctx = r->idle_contexts;
        int i;
        r->idle_contexts = ctx->next;
        for (i = 0; i < r->graph->n_nodes; i++) {
            if (ctx->sources[i] != NULL)
                GDALClose(ctx->sources[i]);
            VSIFree(ctx->calc_scratch[i].data);
        }
        VSIFree(ctx->source_block.data);
        CPLFree(ctx->sources);
        CPLFree(ctx->calc_scratch);
        CPLFree(ctx);
    }
    pgp_tile_cache_purge_owner(r->cache, r->owner);
    CPLDestroyMutex(r->contexts_mutex);
    CPLFree(r);
}

size_t pgp_renderer_tile_count(const pgp_renderer *r)
{
    return (size_t)r->tiles_x * (size_t)r->tiles_y;
}

const pgp_graph *pgp_renderer_graph(const pgp_renderer *r)
{
    return r->graph;
}

uint64_t pgp_renderer_tiles_computed(const pgp_renderer *r)
{
    return atomic_load(&r->tiles_computed);
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
        ctx = (worker_context *)CPLCalloc(1, sizeof(worker_context));
        ctx->sources = (GDALDatasetH *)CPLCalloc(r->graph->n_nodes, sizeof(GDALDatasetH));
        ctx->calc_scratch = (scratch *)CPLCalloc(r->graph->n_nodes, sizeof(scratch));
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

/* Returns s's buffer grown to at least bytes (contents not kept), or NULL. */
static void *scratch_reserve(scratch *s, size_t bytes)
{
    if (s->bytes < bytes) {
        VSIFree(s->data);
        s->data = VSI_MALLOC_VERBOSE(bytes);
        s->bytes = s->data ? bytes : 0;
    }
    return s->data;
}

/* ---- evaluation -------------------------------------------------------------- */

static GDALRasterBandH source_band(const pgp_renderer *r, worker_context *ctx, int node)
{
    const pgp_node *n = &r->graph->nodes[node];
    if (ctx->sources[node] == NULL) {
        ctx->sources[node] = GDALOpenEx(n->path, GDAL_OF_RASTER | GDAL_OF_VERBOSE_ERROR, NULL,
                                        NULL, NULL);
        if (ctx->sources[node] == NULL) {
            fail_because(CPLE_OpenFailed, CPLSPrintf("%s: cannot open '%s'", n->where, n->path));
            return NULL;
        }
    }
    return GDALGetRasterBand(ctx->sources[node], n->band);
}

/* When tile t is exactly one block of band (clipped at the raster's edge), it
 * is read with GDALReadBlock into reused scratch: no trip through GDAL's block
 * cache, whose fresh allocation per block costs more than the decoding. */
static int read_whole_block(GDALRasterBandH band, worker_context *ctx, const tile_rect *t,
                            void *pixels, GDALDataType type)
{
    const GDALDataType native = GDALGetRasterDataType(band);
    const int native_size = GDALGetDataTypeSizeBytes(native);
    const int type_size = GDALGetDataTypeSizeBytes(type);
    const GByte *block;
    int bx, by, row;
    GDALGetBlockSize(band, &bx, &by);
    if (t->x % bx != 0 || t->y % by != 0 ||
        (t->w != bx && t->x + t->w != GDALGetRasterBandXSize(band)) ||
        (t->h != by && t->y + t->h != GDALGetRasterBandYSize(band)) || t->w > bx || t->h > by)
        return 1;
    block = (const GByte *)scratch_reserve(&ctx->source_block, (size_t)bx * by * native_size);
    if (block == NULL)
        return -1;
    if (GDALReadBlock(band, t->x / bx, t->y / by, (void *)block) != CE_None)
        return -1;
    for (row = 0; row < t->h; row++)
        GDALCopyWords(block + (size_t)row * bx * native_size, native, native_size,
                      (GByte *)pixels + (size_t)row * t->w * type_size, type, type_size, t->w);
    return 0;
}

/* Reads a source's pixels of tile t as type (its own type or Float64). */
static int read_source(const pgp_renderer *r, worker_context *ctx, int node, const tile_rect *t,
                       void *pixels, GDALDataType type)
{
    const pgp_node *n = &r->graph->nodes[node];
    GDALRasterBandH band = source_band(r, ctx, node);
    int status;
    if (band == NULL)
        return -1;
    status = read_whole_block(band, ctx, t, pixels, type);
    if (status == 1)
        status = GDALRasterIO(band, GF_Read, t->x, t->y, t->w, t->h, pixels, t->w, t->h, type,
                              0, 0) == CE_None
                     ? 0
                     : -1;
    if (status != 0) {
        fail_because(CPLE_FileIO, CPLSPrintf("%s: reading window (%d,%d,%d,%d) of '%s' failed",
                                             n->where, t->x, t->y, t->w, t->h, n->path));
        return -1;
    }
    if (n->signed_byte && type == GDT_Float64) {
        double *v = (double *)pixels;
        size_t i, count = (size_t)t->w * t->h;
        for (i = 0; i < count; i++)
            if (v[i] > 127)
                v[i] -= 256;
    }
    return 0;
}

static int acquire_tile(pgp_renderer *r, worker_context *ctx, int node, const tile_rect *t,
                        int depth, pgp_tile **tile);

/* Fills values with node's pixels of tile t as doubles. */
static int read_as_doubles(pgp_renderer *r, worker_context *ctx, int node, const tile_rect *t,
                           int depth, double *values)
{
    const pgp_node *n = &r->graph->nodes[node];
    pgp_tile *tile;
    if (n->kind == PGP_NODE_SOURCE)
        return read_source(r, ctx, node, t, values, GDT_Float64);
    if (acquire_tile(r, ctx, node, t, depth, &tile) != 0)
        return -1;
    GDALCopyWords64(pgp_tile_data(tile), n->data_type, GDALGetDataTypeSizeBytes(n->data_type),
                    values, GDT_Float64, sizeof(double), (GPtrDiff_t)t->w * t->h);
    pgp_tile_cache_release(r->cache, tile);
    return 0;
}

static void *compute_calc(pgp_renderer *r, worker_context *ctx, int node, const tile_rect *t,
                          int depth)
{
    const pgp_graph *g = r->graph;
    const pgp_node *n = &g->nodes[node];
    const size_t count = (size_t)t->w * t->h;
    const int type_size = GDALGetDataTypeSizeBytes(n->data_type);
    double *buffers = (double *)scratch_reserve(&ctx->calc_scratch[depth],
                                                (n->n_inputs + 1) * count * sizeof(double));
    double **inputs;
    double *out;
    void *pixels = NULL;
    int i, ok = buffers != NULL;
    if (!ok)
        return NULL;
    inputs = (double **)CPLCalloc(g->n_nodes, sizeof(double *));
    out = buffers + n->n_inputs * count;
    for (i = 0; i < n->n_inputs && ok; i++) {
        const int input = n->input_nodes[i];
        inputs[input] = buffers + i * count;
        ok = read_as_doubles(r, ctx, input, t, depth + 1, inputs[input]) == 0;
    }
    if (ok && pgp_calc_eval(&n->rules, (const double *const *)inputs, count, out) == 0) {
        pixels = VSI_MALLOC2_VERBOSE(count, type_size);
        if (pixels != NULL)
            GDALCopyWords64(out, GDT_Float64, sizeof(double), pixels, n->data_type, type_size,
                            (GPtrDiff_t)count);
    }
    CPLFree(inputs);
    return pixels;
}

static void *compute_tile(pgp_renderer *r, worker_context *ctx, int node, const tile_rect *t,
                          int depth)
{
    const pgp_node *n = &r->graph->nodes[node];
    void *pixels;
    if (n->kind == PGP_NODE_CALC)
        return compute_calc(r, ctx, node, t, depth);
    pixels = VSI_MALLOC2_VERBOSE((size_t)t->w * t->h, GDALGetDataTypeSizeBytes(n->data_type));
    if (pixels != NULL && read_source(r, ctx, node, t, pixels, n->data_type) != 0) {
        VSIFree(pixels);
        pixels = NULL;
    }
    return pixels;
}

/* Pins node's tile t in the cache, computing it here if no thread has. depth
 * is how many Calcs up the stack are waiting for it (their scratch is in use). */
static int acquire_tile(pgp_renderer *r, worker_context *ctx, int node, const tile_rect *t,
                        int depth, pgp_tile **tile)
{
    const pgp_node *n = &r->graph->nodes[node];
    pgp_tile_key key;
    void *pixels;
    memset(&key, 0, sizeof key);
    key.owner = r->owner;
    key.node = node;
    key.tx = t->tx;
    key.ty = t->ty;
    switch (pgp_tile_cache_acquire(r->cache, &key, tile)) {
    case PGP_TILE_READY:
        return 0;
    case PGP_TILE_FAILED:
        CPLError(CE_Failure, CPLE_AppDefined,
                 "%s tile (%d,%d) failed in a concurrent request; see its error", n->where,
                 t->tx, t->ty);
        break;
    case PGP_TILE_MUST_COMPUTE:
        atomic_fetch_add(&r->tiles_computed, 1);
        pixels = compute_tile(r, ctx, node, t, depth);
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

/* Runs one tile job with a borrowed context; failures name the node and tile. */
typedef int (*tile_job_fn)(void *arg, pgp_renderer *r, int node, const tile_rect *t,
                           const pgp_tile *tile, size_t index);

static int run_tile_job(pgp_renderer *r, int node, const tile_rect *t, tile_job_fn use,
                        void *arg, size_t index)
{
    worker_context *ctx = borrow_context(r);
    pgp_tile *tile;
    int status = acquire_tile(r, ctx, node, t, 0, &tile);
    return_context(r, ctx);
    if (status != 0) {
        fail_because(CPLGetLastErrorNo(),
                     CPLSPrintf("%s tile (%d,%d)", r->graph->nodes[node].where, t->tx, t->ty));
        return -1;
    }
    status = use(arg, r, node, t, tile, index);
    pgp_tile_cache_release(r->cache, tile);
    return status;
}

/* ---- window reads ------------------------------------------------------------ */

typedef struct read_request {
    pgp_renderer *r;
    int n_nodes;
    const int *nodes;
    int x, y, w, h;
    int tx0, ty0, tiles_x;
    GByte *buffer;
    GDALDataType buffer_type;
    GSpacing pixel_space, line_space, band_space;
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

/* Job index -> (tile, band), bands innermost so a tile's shared inputs are hot. */
static int read_job(void *arg, size_t index)
{
    const read_request *q = (const read_request *)arg;
    const size_t tile_index = index / q->n_nodes;
    const tile_rect t = tile_at(q->r, q->tx0 + (int)(tile_index % q->tiles_x),
                                q->ty0 + (int)(tile_index / q->tiles_x));
    return run_tile_job(q->r, q->nodes[index % q->n_nodes], &t, copy_out, (void *)q, index);
}

/* Background job index = tile index * n_nodes + node. */
static int prefetch_job(void *arg, size_t index)
{
    pgp_renderer *r = (pgp_renderer *)arg;
    const size_t tile_index = index / r->graph->n_nodes;
    const tile_rect t = tile_at(r, (int)(tile_index % r->tiles_x), (int)(tile_index / r->tiles_x));
    worker_context *ctx = borrow_context(r);
    pgp_tile *tile;
    const int status = acquire_tile(r, ctx, (int)(index % r->graph->n_nodes), &t, 0, &tile);
    return_context(r, ctx);
    if (status == 0)
        pgp_tile_cache_release(r->cache, tile);
    return status;
}

/* Queues the tiles after the window's last one in row-major order: the next
 * strip for full-width strips, the next tiles to the right otherwise. */
static void prefetch_after(pgp_renderer *r, int n_nodes, const int *nodes, size_t last_tile)
{
    const size_t n_tiles = pgp_renderer_tile_count(r);
    size_t tile;
    int i;
    if (pgp_background_pending(r->prefetch) >= (size_t)r->prefetch_tiles * n_nodes)
        return; /* the client is ahead of the workers: don't pile up */
    for (tile = last_tile + 1; tile <= last_tile + r->prefetch_tiles && tile < n_tiles; tile++)
        for (i = 0; i < n_nodes; i++)
            pgp_background_submit(r->prefetch, prefetch_job, r,
                                  tile * r->graph->n_nodes + nodes[i]);
}

CPLErr pgp_renderer_read(pgp_renderer *r, int n_nodes, const int *nodes, int x, int y, int w,
                         int h, void *buffer, GDALDataType buffer_type, GSpacing pixel_space,
                         GSpacing line_space, GSpacing band_space, GDALProgressFunc progress,
                         void *progress_arg)
{
    const pgp_graph *g = r->graph;
    read_request q;
    CPLErr err;
    if (x < 0 || y < 0 || w <= 0 || h <= 0 || x > g->x_size - w || y > g->y_size - h) {
        CPLError(CE_Failure, CPLE_IllegalArg,
                 "window (%d,%d,%d,%d) is outside the %dx%d raster", x, y, w, h, g->x_size,
                 g->y_size);
        return CE_Failure;
    }
    memset(&q, 0, sizeof q);
    q.r = r;
    q.n_nodes = n_nodes;
    q.nodes = nodes;
    q.x = x;
    q.y = y;
    q.w = w;
    q.h = h;
    q.tx0 = x / g->block_x;
    q.ty0 = y / g->block_y;
    q.tiles_x = (x + w - 1) / g->block_x - q.tx0 + 1;
    q.buffer = (GByte *)buffer;
    q.buffer_type = buffer_type;
    q.pixel_space = pixel_space;
    q.line_space = line_space;
    q.band_space = band_space;
    err = pgp_executor_run(r->executor,
                           (size_t)q.tiles_x * ((y + h - 1) / g->block_y - q.ty0 + 1) * n_nodes,
                           read_job, &q, progress, progress_arg);
    if (err == CE_None && r->prefetch_tiles > 0)
        prefetch_after(r, n_nodes, nodes,
                       (size_t)((y + h - 1) / g->block_y) * r->tiles_x + (x + w - 1) / g->block_x);
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
    const tile_rect t = tile_at(q->r, (int)(index % q->r->tiles_x), (int)(index / q->r->tiles_x));
    return run_tile_job(q->r, q->node, &t, hand_to_visitor, (void *)q, index);
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
