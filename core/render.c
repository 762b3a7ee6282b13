/* render.c — renderers (one per level), worker contexts, source reads, tile
 * evaluation of Source, Calc and Convolve nodes, window reads, prefetch and
 * the tile visits behind statistics. */
#include "pgp/render.h"
#include "pgp/alloc.h"
#include "pgp/warp.h"

#include <math.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_multiproc.h"
#include "cpl_string.h"
#include "cpl_vsi.h"

/* Reports a failure in context, quoting the error that caused it. The cause is
 * copied first: CPLError formats into the buffer CPLGetLastErrorMsg returns.
 * No allocation: this also reports running out of memory. */
static void fail_because(CPLErrorNum err_no, const char *context)
{
    char cause[2048];
    CPLStrlcpy(cause, CPLGetLastErrorMsg(), sizeof cause);
    CPLError(CE_Failure, err_no, "%s: %s", context, cause);
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
    pgp_convolve_scratch convolve; /* inside pgp_convolve_tile, which never nests */
    struct worker_context *next;
} worker_context;

struct pgp_renderer {
    const pgp_graph *graph;
    pgp_executor *executor;
    pgp_tile_cache *cache;
    pgp_tile_cache *blocks; /* decoded source blocks: pgp_block_cache_global() */
    uint64_t owner;
    /* The level's grid: the graph's at full resolution, coarser for overviews. */
    int x_size, y_size;
    double scale_x, scale_y; /* full-resolution pixels per pixel of this level */
    pgp_grid align;          /* with <Align>: the aligned grid at this level    */
    pgp_kernel **kernels;    /* per node: a Convolve's kernel at this level     */
    int is_overview;         /* owns its downsampled kernels                    */
    int tiles_x, tiles_y;
    int prefetch_tiles;
    pgp_background *prefetch;
    int last_window[4]; /* x, y, w, h of the previous read; w == 0 before any */
    _Atomic uint64_t tiles_computed;
    _Atomic uint64_t source_pixels;
    _Atomic uint64_t blocks_decoded;
    CPLMutex *contexts_mutex;
    worker_context *idle_contexts; /* free list; every context is here between jobs */
};

/* Tiles computed in this process by all renderers: [0] at full resolution,
 * [1] at overview levels (pgp_render_process_totals). */
static _Atomic uint64_t process_tiles[2];

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
    t.w = MIN(g->block_x, r->x_size - t.x);
    t.h = MIN(g->block_y, r->y_size - t.y);
    return t;
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
    r->blocks = pgp_block_cache_global();
    r->owner = pgp_tile_cache_new_owner();
    r->x_size = x_size;
    r->y_size = y_size;
    r->scale_x = (double)graph->x_size / x_size;
    r->scale_y = (double)graph->y_size / y_size;
    r->kernels = (pgp_kernel **)pgp_calloc(graph->n_nodes, sizeof(pgp_kernel *));
    r->tiles_x = (x_size + graph->block_x - 1) / graph->block_x;
    r->tiles_y = (y_size + graph->block_y - 1) / graph->block_y;
    r->contexts_mutex = CPLCreateMutex();
    if (r->contexts_mutex != NULL)
        CPLReleaseMutex(r->contexts_mutex);
    r->prefetch_tiles = prefetch_tiles;
    r->prefetch = pgp_background_new(executor);
    if (r->kernels == NULL || r->contexts_mutex == NULL || r->prefetch == NULL) {
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
    r->is_overview = 1;
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
    for (i = 0; i < r->graph->n_nodes; i++) {
        if (ctx->sources != NULL && ctx->sources[i] != NULL)
            GDALClose(ctx->sources[i]);
        if (ctx->calc_scratch != NULL)
            pgp_free(ctx->calc_scratch[i].data);
    }
    pgp_free(ctx->source_block.data);
    pgp_convolve_scratch_free(&ctx->convolve);
    pgp_free(ctx->sources);
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
    pgp_tile_cache_purge_owner(r->blocks, r->owner);
    if (r->contexts_mutex != NULL)
        CPLDestroyMutex(r->contexts_mutex);
    if (r->is_overview) {
        int i;
        for (i = 0; i < r->graph->n_nodes; i++)
            pgp_kernel_free(r->kernels[i]);
    }
    pgp_free(r->kernels);
    pgp_free(r);
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

void pgp_render_process_totals(uint64_t *full_resolution_tiles, uint64_t *overview_tiles)
{
    *full_resolution_tiles = atomic_load(&process_tiles[0]);
    *overview_tiles = atomic_load(&process_tiles[1]);
}

uint64_t pgp_renderer_source_pixels(const pgp_renderer *r)
{
    return atomic_load(&r->source_pixels);
}

uint64_t pgp_renderer_blocks_decoded(const pgp_renderer *r)
{
    return atomic_load(&r->blocks_decoded);
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
        ctx->sources = (GDALDatasetH *)pgp_calloc(r->graph->n_nodes, sizeof(GDALDatasetH));
        ctx->calc_scratch = (scratch *)pgp_calloc(r->graph->n_nodes, sizeof(scratch));
        if (ctx->sources == NULL || ctx->calc_scratch == NULL) {
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

/* Returns s's buffer grown to at least bytes (contents not kept), or NULL. */
static void *scratch_reserve(scratch *s, size_t bytes)
{
    if (s->bytes < bytes) {
        pgp_free(s->data);
        s->data = pgp_malloc(bytes);
        s->bytes = s->data ? bytes : 0;
    }
    return s->data;
}

/* ---- evaluation -------------------------------------------------------------- */

/* The width of one source pixel in the aligned grid's units: its own with no
 * reprojection, else the source's box transformed into the grid's SRS (as
 * transform_bounding_box does) divided by its width. -1 after CPLError when
 * the box cannot be transformed (it was at open: now it is a fault). */
static double source_pixel_on_grid(const pgp_renderer *r, const pgp_node *n)
{
    pgp_bbox box, on_grid;
    char err[256];
    if (!r->align.reproject)
        return fabs(n->geotransform[1]);
    box = pgp_grid_raster_bbox(n->geotransform, n->x_size, n->y_size);
    if (pgp_grid_transform_bbox(box, n->srs_wkt, r->align.srs_wkt, &on_grid, err, sizeof err) != 0) {
        CPLError(CE_Failure, CPLE_AppDefined, "%s: choosing a source overview: %s", n->where,
                 err);
        return -1;
    }
    return (on_grid.maxx - on_grid.minx) / n->x_size;
}

/* For an overview level with <Align>: the source's coarsest overview whose
 * pixels are still no bigger than the level's, so the warp reads a fraction of
 * the source, as GDAL's downsampled RasterIO does for unaligned sources.
 * -1: full resolution; -2 after CPLError. */
static int aligned_source_overview(const pgp_renderer *r, GDALDatasetH file, const pgp_node *n)
{
    GDALRasterBandH band = GDALGetRasterBand(file, n->band);
    const double level_pixel = fabs(r->align.gt[1]) * (1 + 1e-9);
    double source_pixel, best_pixel = 0;
    int i, best = -1;
    if (!r->is_overview || band == NULL || GDALGetOverviewCount(band) == 0)
        return -1;
    source_pixel = source_pixel_on_grid(r, n);
    if (source_pixel < 0)
        return -2;
    for (i = 0; source_pixel > 0 && i < GDALGetOverviewCount(band); i++) {
        GDALRasterBandH overview = GDALGetOverview(band, i);
        const double pixel =
            overview == NULL ? 0 : source_pixel * n->x_size / GDALGetRasterBandXSize(overview);
        if (overview != NULL && pixel <= level_pixel && pixel > best_pixel) {
            best = i;
            best_pixel = pixel;
        }
    }
    return best;
}

/* Opens node's source for this context: the file itself, or with <Align> a
 * warped view of it on the aligned grid, which then owns the file's handle. */
static GDALDatasetH open_source_view(const pgp_renderer *r, const pgp_node *n)
{
    GDALDatasetH file, view;
    char err[1024];
    int overview;
    file = GDALOpenEx(n->path, GDAL_OF_RASTER | GDAL_OF_INTERNAL | GDAL_OF_VERBOSE_ERROR,
                      NULL, NULL, NULL);
    if (file == NULL || !r->graph->aligned)
        return file;
    overview = aligned_source_overview(r, file, n);
    if (overview == -2) {
        GDALClose(file);
        return NULL;
    }
    if (overview >= 0) {
        char level[32];
        const char *options[] = {level, NULL};
        snprintf(level, sizeof level, "OVERVIEW_LEVEL=%d", overview);
        GDALClose(file);
        file = GDALOpenEx(n->path, GDAL_OF_RASTER | GDAL_OF_INTERNAL | GDAL_OF_VERBOSE_ERROR,
                          NULL, options, NULL);
        if (file == NULL)
            return NULL;
    }
    view = pgp_warp_open_view(file, n->band, &r->align, n->resampling, r->graph->block_x,
                                r->graph->block_y, err, sizeof err);
    if (view == NULL) {
        GDALClose(file);
        CPLError(CE_Failure, CPLE_AppDefined, "%s", err);
        return NULL;
    }
    GDALReleaseDataset(file);
    return view;
}

static GDALRasterBandH source_band(const pgp_renderer *r, worker_context *ctx, int node)
{
    const pgp_node *n = &r->graph->nodes[node];
    if (ctx->sources[node] == NULL) {
        ctx->sources[node] = open_source_view(r, n);
        if (ctx->sources[node] == NULL) {
            fail_because(CPLE_OpenFailed, CPLSPrintf("%s: cannot open '%s'", n->where, n->path));
            return NULL;
        }
    }
    return GDALGetRasterBand(ctx->sources[node], r->graph->aligned ? 1 : n->band);
}

/* Copies n values of type to dst_type. Widening the common source types to
 * double is exact, and double to float is a plain C cast in GDAL 3.6 too, but
 * GDALCopyWords converts one value at a time (17% of a light Calc's profile):
 * these loops vectorise. Everything else (rounding and saturation into
 * integers) is GDALCopyWords'. */
static void copy_row(const void *src, GDALDataType type, void *dst, GDALDataType dst_type, int n)
{
    double *out = (double *)dst;
    int i;
    if (type == GDT_Float64 && dst_type == GDT_Float32) {
        for (i = 0; i < n; i++)
            ((float *)dst)[i] = (float)((const double *)src)[i];
        return;
    }
    if (dst_type == GDT_Float64) {
        switch (type) {
        case GDT_Float32:
            for (i = 0; i < n; i++)
                out[i] = ((const float *)src)[i];
            return;
        case GDT_Byte:
            for (i = 0; i < n; i++)
                out[i] = ((const GByte *)src)[i];
            return;
        case GDT_Int16:
            for (i = 0; i < n; i++)
                out[i] = ((const GInt16 *)src)[i];
            return;
        case GDT_UInt16:
            for (i = 0; i < n; i++)
                out[i] = ((const GUInt16 *)src)[i];
            return;
        case GDT_Int32:
            for (i = 0; i < n; i++)
                out[i] = ((const GInt32 *)src)[i];
            return;
        default:
            break;
        }
    }
    GDALCopyWords(src, type, GDALGetDataTypeSizeBytes(type), dst, dst_type,
                  GDALGetDataTypeSizeBytes(dst_type), n);
}

/* When rect r is exactly one block of band (clipped at the raster's edge), it
 * is read with GDALReadBlock into reused scratch: no trip through GDAL's block
 * cache, whose fresh allocation per block costs more than the decoding.
 * Returns 1 when r is not one block. */
static int read_whole_block(GDALRasterBandH band, worker_context *ctx, const tile_rect *r,
                            void *pixels, GDALDataType type, int stride)
{
    const GDALDataType native = GDALGetRasterDataType(band);
    const int native_size = GDALGetDataTypeSizeBytes(native);
    const int type_size = GDALGetDataTypeSizeBytes(type);
    const GByte *block;
    int bx, by, row;
    GDALGetBlockSize(band, &bx, &by);
    if (r->x % bx != 0 || r->y % by != 0 ||
        (r->w != bx && r->x + r->w != GDALGetRasterBandXSize(band)) ||
        (r->h != by && r->y + r->h != GDALGetRasterBandYSize(band)) || r->w > bx || r->h > by)
        return 1;
    block = (const GByte *)scratch_reserve(&ctx->source_block, (size_t)bx * by * native_size);
    if (block == NULL)
        return -1;
    if (GDALReadBlock(band, r->x / bx, r->y / by, (void *)block) != CE_None)
        return -1;
    for (row = 0; row < r->h; row++)
        copy_row(block + (size_t)row * bx * native_size, native,
                 (GByte *)pixels + (size_t)row * stride * type_size, type, r->w);
    return 0;
}

typedef struct read_errors {
    int failed, warned;
    CPLErrorNum failure_no, warning_no;
    char failure[1024], warning[512];
} read_errors;

static void CPL_STDCALL note_read_error(CPLErr cls, CPLErrorNum err_no, const char *msg)
{
    read_errors *e = (read_errors *)CPLGetErrorHandlerUserData();
    if ((cls == CE_Failure || cls == CE_Fatal) && !e->failed) {
        e->failed = 1;
        e->failure_no = err_no;
        CPLStrlcpy(e->failure, msg, sizeof e->failure);
    } else if (cls == CE_Warning) {
        e->warned = 1;
        e->warning_no = err_no;
        CPLStrlcpy(e->warning, msg, sizeof e->warning);
    }
}

/* Pins node's source block (bx, by) in the block cache, decoding it with
 * band (this context's handle) if no worker has. A block whose decoding raised
 * an error (errors: read_source's notes) is never published, even when GDAL
 * returned success with an empty tile: the next read decodes it again. */
static int acquire_block(pgp_renderer *rr, int node, GDALRasterBandH band, int bx, int by,
                         size_t bytes, const read_errors *errors, pgp_tile **block)
{
    pgp_tile_key key;
    void *data;
    memset(&key, 0, sizeof key);
    key.owner = rr->owner;
    key.node = node;
    key.tx = bx;
    key.ty = by;
    switch (pgp_tile_cache_acquire(rr->blocks, &key, block)) {
    case PGP_TILE_READY:
        return 0;
    case PGP_TILE_NO_MEMORY: /* *block is NULL, nothing to release */
        return -1;
    case PGP_TILE_FAILED:
        CPLError(CE_Failure, CPLE_FileIO, "block (%d,%d) failed in a concurrent read", bx, by);
        break;
    case PGP_TILE_MUST_COMPUTE:
        atomic_fetch_add(&rr->blocks_decoded, 1);
        data = pgp_tile_cache_buffer(rr->blocks, bytes);
        if (data != NULL && GDALReadBlock(band, bx, by, data) == CE_None && !errors->failed) {
            pgp_tile_cache_publish(rr->blocks, *block, data, bytes);
            return 0;
        }
        pgp_free(data);
        pgp_tile_cache_fail(rr->blocks, *block);
        break;
    }
    pgp_tile_cache_release(rr->blocks, *block);
    return -1;
}

/* Reads rect r, which is not one block of band (a Convolve's window, or a tile
 * across source blocks), from those blocks, each decoded once into the shared
 * block cache. Through GDAL's RasterIO each worker's handle kept its own copy
 * of every block it touched in GDAL's block cache, each in fresh memory: with
 * two threads, twice the decoding and page faults that serialised them.
 * Returns 1, for GDAL's RasterIO, when r's blocks would take more than half
 * the block cache (strips of a wide raster), so would be evicted before the
 * next tile reuses them. */
static int read_through_blocks(pgp_renderer *rr, int node, GDALRasterBandH band,
                               const tile_rect *r, void *pixels, GDALDataType type, int stride,
                               const read_errors *errors)
{
    const GDALDataType native = GDALGetRasterDataType(band);
    const int native_size = GDALGetDataTypeSizeBytes(native);
    const int type_size = GDALGetDataTypeSizeBytes(type);
    pgp_tile_cache_stats stats;
    size_t bytes;
    int bx, by, x_block, y_block, row;
    GDALGetBlockSize(band, &bx, &by);
    bytes = (size_t)bx * by * native_size;
    pgp_tile_cache_get_stats(rr->blocks, &stats);
    if ((size_t)((r->x + r->w - 1) / bx - r->x / bx + 1) *
            ((r->y + r->h - 1) / by - r->y / by + 1) * bytes >
        stats.budget_bytes / 2)
        return 1;
    for (y_block = r->y / by; y_block <= (r->y + r->h - 1) / by; y_block++)
        for (x_block = r->x / bx; x_block <= (r->x + r->w - 1) / bx; x_block++) {
            const int x0 = MAX(x_block * bx, r->x), x1 = MIN((x_block + 1) * bx, r->x + r->w);
            const int y0 = MAX(y_block * by, r->y), y1 = MIN((y_block + 1) * by, r->y + r->h);
            pgp_tile *block;
            const GByte *src;
            GByte *dst = (GByte *)pixels + ((size_t)(y0 - r->y) * stride + x0 - r->x) * type_size;
            if (acquire_block(rr, node, band, x_block, y_block, bytes, errors, &block) != 0)
                return -1;
            src = (const GByte *)pgp_tile_data(block) +
                  ((size_t)(y0 - y_block * by) * bx + x0 - x_block * bx) * native_size;
            for (row = y0; row < y1; row++)
                copy_row(src + (size_t)(row - y0) * bx * native_size, native,
                         dst + (size_t)(row - y0) * stride * type_size, type, x1 - x0);
            pgp_tile_cache_release(rr->blocks, block);
        }
    return 0;
}

/* An overview level's rect r of an unaligned source: GDAL's nearest-neighbour
 * downsampling of the exact full-resolution extent (a floating-point window,
 * so every level pixel samples the same source pixel whatever the tile), which
 * reads the source's own overviews when it has them. */
static int read_downsampled(const pgp_renderer *rr, GDALRasterBandH band, const tile_rect *r,
                            void *pixels, GDALDataType type, int stride)
{
    const int type_size = GDALGetDataTypeSizeBytes(type);
    const int x_size = GDALGetRasterBandXSize(band), y_size = GDALGetRasterBandYSize(band);
    GDALRasterIOExtraArg extra;
    int x0, y0, x1, y1;
    INIT_RASTERIO_EXTRA_ARG(extra);
    extra.eResampleAlg = GRIORA_NearestNeighbour;
    extra.bFloatingPointWindowValidity = TRUE;
    extra.dfXOff = r->x * rr->scale_x;
    extra.dfYOff = r->y * rr->scale_y;
    extra.dfXSize = MIN(r->w * rr->scale_x, x_size - extra.dfXOff);
    extra.dfYSize = MIN(r->h * rr->scale_y, y_size - extra.dfYOff);
    x0 = (int)floor(extra.dfXOff);
    y0 = (int)floor(extra.dfYOff);
    x1 = MIN((int)ceil(extra.dfXOff + extra.dfXSize), x_size);
    y1 = MIN((int)ceil(extra.dfYOff + extra.dfYSize), y_size);
    return GDALRasterIOEx(band, GF_Read, x0, y0, x1 - x0, y1 - y0, pixels, r->w, r->h, type,
                          type_size, (GSpacing)stride * type_size, &extra) == CE_None
               ? 0
               : -1;
}

/* The errors raised while a source is read. GDAL 3.6 may report a failure
 * and still return success: GTiff returns a tile whose offset libtiff could
 * not read as empty, and errors inside a warp can be reset before it returns.
 * A handler sees them all; the first failure is the cause worth quoting. */
/* Reads a source's pixels of rect r as type (its own type or Float64) into
 * pixels, whose rows are stride pixels apart. */
static int read_source(pgp_renderer *rr, worker_context *ctx, int node, const tile_rect *r,
                       void *pixels, GDALDataType type, int stride)
{
    const pgp_node *n = &rr->graph->nodes[node];
    GDALRasterBandH band = source_band(rr, ctx, node);
    const int type_size = GDALGetDataTypeSizeBytes(type);
    read_errors errors;
    int status, row;
    if (band == NULL)
        return -1;
    atomic_fetch_add(&rr->source_pixels, (uint64_t)r->w * r->h);
    memset(&errors, 0, sizeof errors);
    CPLPushErrorHandlerEx(note_read_error, &errors);
    CPLSetCurrentErrorHandlerCatchDebug(FALSE);
    if (rr->graph->aligned || (rr->scale_x == 1 && rr->scale_y == 1)) {
        status = read_whole_block(band, ctx, r, pixels, type, stride);
        if (status == 1)
            status = read_through_blocks(rr, node, band, r, pixels, type, stride, &errors);
        if (status == 1)
            status = GDALRasterIOEx(band, GF_Read, r->x, r->y, r->w, r->h, pixels, r->w, r->h,
                                    type, type_size, (GSpacing)stride * type_size,
                                    NULL) == CE_None
                         ? 0
                         : -1;
    } else {
        status = read_downsampled(rr, band, r, pixels, type, stride);
    }
    CPLPopErrorHandler();
    if (errors.warned)
        CPLError(CE_Warning, errors.warning_no, "%s", errors.warning);
    if (errors.failed) {
        status = -1;
        CPLError(CE_Failure, errors.failure_no, "%s", errors.failure);
    }
    if (status != 0) {
        fail_because(CPLE_FileIO, CPLSPrintf("%s: reading window (%d,%d,%d,%d) of '%s' failed",
                                             n->where, r->x, r->y, r->w, r->h, n->path));
        /* A handle that failed may go on failing (a warped view whose
         * transformer could not be cloned): the next read opens a fresh one. */
        GDALClose(ctx->sources[node]);
        ctx->sources[node] = NULL;
        return -1;
    }
    if (n->signed_byte && type == GDT_Float64)
        for (row = 0; row < r->h; row++) {
            double *v = (double *)pixels + (size_t)row * stride;
            int i;
            for (i = 0; i < r->w; i++)
                if (v[i] > 127)
                    v[i] -= 256;
        }
    return 0;
}

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
        return read_source(r, ctx, node, rect, values, GDT_Float64, stride);
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
                copy_row(pixels + ((size_t)(row - t.y) * t.w + (x0 - t.x)) * type_size,
                         n->data_type, values + (size_t)(row - rect->y) * stride + (x0 - rect->x),
                         GDT_Float64, x1 - x0);
            pgp_tile_cache_release(r->cache, tile);
        }
    return 0;
}

/* A buffer for a tile of node's data type: an evicted tile's when the cache
 * has one spare (count is at most a block: PGP_MAX_BLOCK_PIXELS fits an int). */
static void *tile_buffer(pgp_renderer *r, const pgp_node *n, size_t count)
{
    return pgp_tile_cache_buffer(r->cache, count * GDALGetDataTypeSizeBytes(n->data_type));
}

/* The node's doubles converted to its data type in a tile buffer. */
static void *to_tile_pixels(pgp_renderer *r, const pgp_node *n, const double *values,
                            size_t count)
{
    void *pixels = tile_buffer(r, n, count);
    if (pixels != NULL)
        copy_row(values, GDT_Float64, pixels, n->data_type, (int)count);
    return pixels;
}

/* A tile of a Convolve: the input over the tile grown by the kernel's reach
 * (clipped to the raster, zero and invalid beyond it), then convolve_2d. */
static void *compute_convolve(pgp_renderer *r, worker_context *ctx, int node,
                              const tile_rect *t, int depth)
{
    const pgp_graph *g = r->graph;
    const pgp_node *n = &g->nodes[node];
    const pgp_nodata *input_nodata = &g->nodes[n->input_nodes[0]].nodata;
    int up, down, left, right, row, col;
    size_t window_count, count = (size_t)t->w * t->h;
    double *window, *out;
    unsigned char *valid;
    tile_rect region;
    void *pixels = NULL;

    pgp_kernel_reach(r->kernels[node], &up, &down, &left, &right);
    const int ww = t->w + left + right, wh = t->h + up + down;
    window_count = (size_t)ww * wh;
    window = (double *)scratch_reserve(&ctx->calc_scratch[depth],
                                       (window_count + count) * sizeof(double) + window_count);
    if (window == NULL)
        return NULL;
    out = window + window_count;
    valid = (unsigned char *)(out + count);
    region.tx = region.ty = -1;
    region.x = MAX(t->x - left, 0);
    region.y = MAX(t->y - up, 0);
    region.w = MIN(t->x + t->w + right, r->x_size) - region.x;
    region.h = MIN(t->y + t->h + down, r->y_size) - region.y;
    if (region.w < ww || region.h < wh) { /* beyond the raster: zero and invalid */
        memset(window, 0, window_count * sizeof(double));
        memset(valid, 0, window_count);
    }
    {
        const size_t origin = (size_t)(region.y - (t->y - up)) * ww + (region.x - (t->x - left));
        if (read_as_doubles(r, ctx, n->input_nodes[0], &region, depth + 1, window + origin,
                            ww) != 0)
            return NULL;
        for (row = 0; row < region.h; row++)
            for (col = 0; col < region.w; col++) {
                const size_t i = origin + (size_t)row * ww + col;
                valid[i] = !pgp_is_nodata(input_nodata, window[i]);
                if (!valid[i])
                    window[i] = 0;
            }
    }
    if (pgp_convolve_tile(r->kernels[node], &n->convolve, window, valid, t->w, t->h, g->block_x,
                          g->block_y, n->nodata.value, out, &ctx->convolve) == 0)
        pixels = to_tile_pixels(r, n, out, count);
    return pixels;
}

static void *compute_calc(pgp_renderer *r, worker_context *ctx, int node, const tile_rect *t,
                          int depth)
{
    const pgp_graph *g = r->graph;
    const pgp_node *n = &g->nodes[node];
    const size_t count = (size_t)t->w * t->h;
    /* Input rows, the output, then the inputs by node (as pgp_calc_eval wants). */
    double *buffers = (double *)scratch_reserve(
        &ctx->calc_scratch[depth],
        (n->n_inputs + 1) * count * sizeof(double) + g->n_nodes * sizeof(double *));
    double **inputs;
    double *out;
    void *pixels = NULL;
    int i, ok = buffers != NULL;
    if (!ok)
        return NULL;
    out = buffers + n->n_inputs * count;
    inputs = (double **)(out + count);
    memset(inputs, 0, g->n_nodes * sizeof(double *));
    for (i = 0; i < n->n_inputs && ok; i++) {
        const int input = n->input_nodes[i];
        inputs[input] = buffers + i * count;
        ok = read_as_doubles(r, ctx, input, t, depth + 1, inputs[input], t->w) == 0;
    }
    if (ok && pgp_calc_eval(&n->rules, (const double *const *)inputs, count, out) == 0)
        pixels = to_tile_pixels(r, n, out, count);
    return pixels;
}

static void *compute_tile(pgp_renderer *r, worker_context *ctx, int node, const tile_rect *t,
                          int depth)
{
    const pgp_node *n = &r->graph->nodes[node];
    void *pixels;
    if (n->kind == PGP_NODE_CALC)
        return compute_calc(r, ctx, node, t, depth);
    if (n->kind == PGP_NODE_CONVOLVE)
        return compute_convolve(r, ctx, node, t, depth);
    pixels = tile_buffer(r, n, (size_t)t->w * t->h);
    if (pixels != NULL && read_source(r, ctx, node, t, pixels, n->data_type, t->w) != 0) {
        pgp_free(pixels);
        pixels = NULL;
    }
    return pixels;
}

/* Pins node's tile t in the cache, computing it here if no thread has. depth
 * is how many nodes up the stack are waiting for it (their scratch is in use). */
static int acquire_tile(pgp_renderer *r, worker_context *ctx, int node, const tile_rect *t,
                        int depth, pgp_tile **tile)
{
    const pgp_node *n = &r->graph->nodes[node];
    pgp_tile_key key;
    void *pixels;
    pgp_tile_status status;
    memset(&key, 0, sizeof key);
    key.owner = r->owner;
    key.node = node;
    key.tx = t->tx;
    key.ty = t->ty;
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
    int status = ctx != NULL ? acquire_tile(r, ctx, node, t, 0, &tile) : -1;
    if (ctx != NULL)
        return_context(r, ctx);
    if (status == 0) {
        status = use(arg, r, node, t, tile, index);
        pgp_tile_cache_release(r->cache, tile);
    }
    if (status != 0)
        fail_because(CPLGetLastErrorNo(),
                     CPLSPrintf("%s tile (%d,%d)", r->graph->nodes[node].where, t->tx, t->ty));
    return status;
}

/* ---- window reads ------------------------------------------------------------ */

typedef struct read_request {
    pgp_renderer *r;
    tile_job_fn use; /* with each tile of the window: copy_out, or nothing */
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
    return run_tile_job(q->r, q->nodes[index % q->n_nodes], &t, q->use, (void *)q, index);
}

static int keep_cached(void *arg, pgp_renderer *r, int node, const tile_rect *t,
                       const pgp_tile *tile, size_t index)
{
    (void)arg, (void)r, (void)node, (void)t, (void)tile, (void)index;
    return 0;
}

/* Background job index = tile index * n_nodes + node. */
static int prefetch_job(void *arg, size_t index)
{
    pgp_renderer *r = (pgp_renderer *)arg;
    const size_t tile_index = index / r->graph->n_nodes;
    const tile_rect t = tile_at(r, (int)(tile_index % r->tiles_x), (int)(tile_index / r->tiles_x));
    worker_context *ctx = borrow_context(r);
    pgp_tile *tile;
    int status;
    if (ctx == NULL)
        return -1;
    status = acquire_tile(r, ctx, (int)(index % r->graph->n_nodes), &t, 0, &tile);
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

/* Whether a read continues the previous one in scan direction (the next strip
 * down, or the next window to the right) or is the first: only then is
 * prefetch worth it; random access would compute tiles nobody asks for. */
static int continues_scan(pgp_renderer *r, int x, int y, int w, int h)
{
    int *last = r->last_window, scanning;
    CPLAcquireMutex(r->contexts_mutex, 1000.0);
    scanning = last[2] == 0 || (x == last[0] && w == last[2] && y == last[1] + last[3]) ||
               (y == last[1] && h == last[3] && x == last[0] + last[2]);
    last[0] = x;
    last[1] = y;
    last[2] = w;
    last[3] = h;
    CPLReleaseMutex(r->contexts_mutex);
    return scanning;
}

/* Runs use on every tile of nodes covering window (x, y, w, h), on the executor. */
static CPLErr run_window(read_request *q, GDALProgressFunc progress, void *progress_arg)
{
    pgp_renderer *r = q->r;
    const pgp_graph *g = r->graph;
    if (q->x < 0 || q->y < 0 || q->w <= 0 || q->h <= 0 || q->x > r->x_size - q->w ||
        q->y > r->y_size - q->h) {
        CPLError(CE_Failure, CPLE_IllegalArg,
                 "window (%d,%d,%d,%d) is outside the %dx%d raster", q->x, q->y, q->w, q->h,
                 r->x_size, r->y_size);
        return CE_Failure;
    }
    q->tx0 = q->x / g->block_x;
    q->ty0 = q->y / g->block_y;
    q->tiles_x = (q->x + q->w - 1) / g->block_x - q->tx0 + 1;
    return pgp_executor_run(
        r->executor, (size_t)q->tiles_x * ((q->y + q->h - 1) / g->block_y - q->ty0 + 1) * q->n_nodes,
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

CPLErr pgp_renderer_read(pgp_renderer *r, int n_nodes, const int *nodes, int x, int y, int w,
                         int h, void *buffer, GDALDataType buffer_type, GSpacing pixel_space,
                         GSpacing line_space, GSpacing band_space, GDALProgressFunc progress,
                         void *progress_arg)
{
    const pgp_graph *g = r->graph;
    read_request q;
    CPLErr err;
    init_request(&q, r, copy_out, n_nodes, nodes, x, y, w, h);
    q.buffer = (GByte *)buffer;
    q.buffer_type = buffer_type;
    q.pixel_space = pixel_space;
    q.line_space = line_space;
    q.band_space = band_space;
    err = run_window(&q, progress, progress_arg);
    if (err == CE_None && r->prefetch_tiles > 0 && continues_scan(r, x, y, w, h))
        prefetch_after(r, n_nodes, nodes,
                       (size_t)((y + h - 1) / g->block_y) * r->tiles_x + (x + w - 1) / g->block_x);
    return err;
}

CPLErr pgp_renderer_compute(pgp_renderer *r, int n_nodes, const int *nodes, int x, int y, int w,
                            int h, GDALProgressFunc progress, void *progress_arg)
{
    const pgp_graph *g = r->graph;
    pgp_tile_cache_stats stats;
    size_t tile_bytes = 0;
    read_request q;
    int i;
    for (i = 0; i < n_nodes; i++)
        tile_bytes += (size_t)g->block_x * g->block_y *
                      GDALGetDataTypeSizeBytes(g->nodes[nodes[i]].data_type);
    pgp_tile_cache_get_stats(r->cache, &stats);
    /* Tiles evicted before the caller reads them would be computed twice. */
    if ((double)((w + g->block_x - 1) / g->block_x + 1) * ((h + g->block_y - 1) / g->block_y + 1) *
            tile_bytes > stats.budget_bytes / 2.0)
        return CE_None;
    init_request(&q, r, keep_cached, n_nodes, nodes, x, y, w, h);
    return run_window(&q, progress, progress_arg);
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
