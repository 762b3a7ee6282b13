/* source.c — reading sources: views (the file, or with <Align> a warped view
 * of it) opened per worker context, the source overview an overview level
 * reads, block-direct, block-cache and downsampled reads, type conversion
 * (docs/architecture.md#modules). */
#include "pgp/source.h"
#include "pgp/alloc.h"
#include "pgp/warp.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_string.h"

/* Reports a failure in context, quoting the error that caused it. The cause is
 * copied first: CPLError formats into the buffer CPLGetLastErrorMsg returns.
 * No allocation: this also reports running out of memory. */
void pgp_fail_because(CPLErrorNum err_no, const char *context)
{
    char cause[2048];
    CPLStrlcpy(cause, CPLGetLastErrorMsg(), sizeof cause);
    CPLError(CE_Failure, err_no, "%s: %s", context, cause);
}

GDALDatasetH pgp_open_raster(const char *where, const char *what, const char *path, int strict)
{
    GDALDatasetH ds;
    char warning[1024]; /* copied: CPLError formats into the message's buffer */
    CPLErrorReset();
    CPLPushErrorHandler(CPLQuietErrorHandler);
    ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_INTERNAL | GDAL_OF_VERBOSE_ERROR, NULL, NULL,
                    NULL);
    CPLPopErrorHandler();
    if (ds == NULL) {
        pgp_fail_because(CPLE_OpenFailed, CPLSPrintf("%s: cannot open %s%s'%s'", where,
                                                     what != NULL ? what : "",
                                                     what != NULL ? " " : "", path));
        return NULL;
    }
    if (CPLGetLastErrorType() == CE_Warning) {
        CPLStrlcpy(warning, CPLGetLastErrorMsg(), sizeof warning);
        CPLError(strict ? CE_Failure : CE_Warning, CPLGetLastErrorNo(), "%s: opening '%s': %s",
                 where, path, warning);
        if (strict) {
            GDALClose(ds);
            return NULL;
        }
    }
    return ds;
}

/* Returns s's buffer grown to at least bytes (contents not kept), or NULL. */
void *pgp_scratch_reserve(pgp_scratch *s, size_t bytes)
{
    if (s->bytes < bytes) {
        pgp_free(s->data);
        s->data = pgp_malloc(bytes);
        s->bytes = s->data ? bytes : 0;
    }
    return s->data;
}

/* The width of one source pixel in the aligned grid's units: its own with no
 * reprojection, else the source's box transformed into the grid's SRS (as
 * transform_bounding_box does) divided by its width. -1 after CPLError when
 * the box cannot be transformed (it was at open: now it is a fault). */
static double source_pixel_on_grid(const pgp_source_level *r, const pgp_node *n)
{
    pgp_bbox box, on_grid;
    char err[256];
    if (!r->align->reproject)
        return fabs(n->geotransform[1]);
    box = pgp_grid_raster_bbox(n->geotransform, n->x_size, n->y_size);
    if (pgp_grid_transform_bbox(box, n->srs_wkt, r->align->srs_wkt, &on_grid, err, sizeof err) !=
        0) {
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
static int aligned_source_overview(const pgp_source_level *r, GDALDatasetH file, const pgp_node *n)
{
    GDALRasterBandH band = GDALGetRasterBand(file, n->band);
    const double level_pixel = fabs(r->align->gt[1]) * (1 + 1e-9);
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
 * warped view of it on the aligned grid, which then owns the file's handle
 * (*warped: that file, NULL without <Align>). */
static GDALDatasetH open_source_view(const pgp_source_level *r, const pgp_node *n,
                                     GDALDatasetH *warped)
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
    view = pgp_warp_open_view(file, n->band, r->align, n->resampling, r->graph->block_x,
                                r->graph->block_y, err, sizeof err);
    if (view == NULL) {
        GDALClose(file);
        CPLError(CE_Failure, CPLE_AppDefined, "%s", err);
        return NULL;
    }
    GDALReleaseDataset(file);
    *warped = file;
    return view;
}

static GDALRasterBandH source_band(const pgp_source_level *r, pgp_source_handles *ctx, int node)
{
    const pgp_node *n = &r->graph->nodes[node];
    if (ctx->sources[node] == NULL) {
        ctx->sources[node] = open_source_view(r, n, &ctx->warped_files[node]);
        if (ctx->sources[node] == NULL) {
            pgp_fail_because(CPLE_OpenFailed,
                             CPLSPrintf("%s: cannot open '%s'", n->where, n->path));
            return NULL;
        }
    }
    return GDALGetRasterBand(ctx->sources[node], r->graph->aligned ? 1 : n->band);
}

int pgp_source_handles_open(const pgp_source_level *level, pgp_source_handles *h)
{
    int i;
    h->sources = (GDALDatasetH *)pgp_calloc(level->graph->n_nodes, sizeof(GDALDatasetH));
    h->warped_files = (GDALDatasetH *)pgp_calloc(level->graph->n_nodes, sizeof(GDALDatasetH));
    if (h->sources == NULL || h->warped_files == NULL)
        return -1;
    for (i = 0; i < level->graph->n_nodes; i++)
        if (level->graph->nodes[i].kind == PGP_NODE_SOURCE && source_band(level, h, i) == NULL)
            return -1;
    return 0;
}

void pgp_source_handles_close(const pgp_source_level *level, pgp_source_handles *h)
{
    int i;
    for (i = 0; h->sources != NULL && i < level->graph->n_nodes; i++)
        if (h->sources[i] != NULL)
            GDALClose(h->sources[i]);
    pgp_free(h->sources);
    pgp_free(h->warped_files);
    pgp_free(h->source_block.data);
    h->sources = NULL;
    h->warped_files = NULL;
    h->source_block.data = NULL;
    h->source_block.bytes = 0;
}

/* Copies n values of type to dst_type. Widening the common source types to
 * double is exact, and double to float is a plain C cast in GDAL 3.6 too, but
 * GDALCopyWords converts one value at a time (17% of a light Calc's profile):
 * these loops vectorise. Everything else (rounding and saturation into
 * integers) is GDALCopyWords'. */
void pgp_copy_row(const void *src, GDALDataType type, void *dst, GDALDataType dst_type, int n)
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
static int read_whole_block(GDALRasterBandH band, pgp_source_handles *ctx, const pgp_rect *r,
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
    /* A whole block in its own type is decoded in place: no copy. */
    if (type == native && r->w == bx && r->h == by && stride == bx)
        return GDALReadBlock(band, r->x / bx, r->y / by, pixels) == CE_None ? 0 : -1;
    block = (const GByte *)pgp_scratch_reserve(&ctx->source_block, (size_t)bx * by * native_size);
    if (block == NULL)
        return -1;
    if (GDALReadBlock(band, r->x / bx, r->y / by, (void *)block) != CE_None)
        return -1;
    for (row = 0; row < r->h; row++)
        pgp_copy_row(block + (size_t)row * bx * native_size, native,
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
 * an error (errors: pgp_source_read's notes) is never published, even when GDAL
 * returned success with an empty tile: the next read decodes it again. */
static int acquire_block(const pgp_shared_blocks *shared, GDALRasterBandH band, int bx, int by,
                         size_t bytes, const read_errors *errors, pgp_tile **block)
{
    pgp_tile_key key;
    void *data;
    memset(&key, 0, sizeof key);
    key.owner = shared->owner;
    key.node = shared->node;
    key.tx = bx;
    key.ty = by;
    switch (pgp_tile_cache_acquire(shared->cache, &key, block)) {
    case PGP_TILE_READY:
        return 0;
    case PGP_TILE_NO_MEMORY: /* *block is NULL, nothing to release */
        return -1;
    case PGP_TILE_FAILED:
        CPLError(CE_Failure, CPLE_FileIO, "block (%d,%d) failed in a concurrent read", bx, by);
        break;
    case PGP_TILE_MUST_COMPUTE:
        if (shared->decoded != NULL)
            atomic_fetch_add(shared->decoded, 1);
        data = pgp_tile_cache_buffer(shared->cache, bytes);
        if (data != NULL && GDALReadBlock(band, bx, by, data) == CE_None && !errors->failed) {
            pgp_tile_cache_publish(shared->cache, *block, data, bytes);
            return 0;
        }
        pgp_free(data);
        pgp_tile_cache_fail(shared->cache, *block);
        break;
    }
    pgp_tile_cache_release(shared->cache, *block);
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
static int read_through_blocks(const pgp_shared_blocks *shared, GDALRasterBandH band,
                               const pgp_rect *r, void *pixels, GDALDataType type, int stride,
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
    pgp_tile_cache_get_stats(shared->cache, &stats);
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
            if (acquire_block(shared, band, x_block, y_block, bytes, errors, &block) != 0)
                return -1;
            src = (const GByte *)pgp_tile_data(block) +
                  ((size_t)(y0 - y_block * by) * bx + x0 - x_block * bx) * native_size;
            for (row = y0; row < y1; row++)
                pgp_copy_row(src + (size_t)(row - y0) * bx * native_size, native,
                         dst + (size_t)(row - y0) * stride * type_size, type, x1 - x0);
            pgp_tile_cache_release(shared->cache, block);
        }
    return 0;
}

/* An overview level's rect r of an unaligned source: GDAL's nearest-neighbour
 * downsampling of the exact full-resolution extent (a floating-point window,
 * so every level pixel samples the same source pixel whatever the tile), which
 * reads the source's own overviews when it has them. */
static int read_downsampled(const pgp_source_level *rr, GDALRasterBandH band, const pgp_rect *r,
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

/* A warped view's read leaves in GDAL's block cache, per worker handle, the
 * view's warped blocks and the file's blocks the warper read. Nothing reads
 * them again (the tile is kept in pgp's cache, and a Convolve's window is
 * assembled in pgp's block cache), and under GDAL's default budget (5% of
 * RAM) they are never recycled: every aligned tile would leave twice its size
 * behind. They are dropped after each read (issue 19: a 512x512 window of a
 * 100 000^2 Align graph on two threads peaked 10 MB lower; a whole 4096^2
 * render 377 -> 210 MB, and no slower). */
static void drop_warp_blocks(pgp_source_handles *ctx, int node, GDALRasterBandH view_band,
                             int band)
{
    GDALFlushRasterCache(view_band); /* a VRT band flushes its sources: the strips */
    GDALFlushRasterCache(GDALGetRasterBand(ctx->warped_files[node], band));
}

/* The errors raised while a source is read. GDAL 3.6 may report a failure
 * and still return success: GTiff returns a tile whose offset libtiff could
 * not read as empty, and errors inside a warp can be reset before it returns.
 * A handler sees them all; the first failure is the cause worth quoting. */
int pgp_band_read_checked(GDALRasterBandH band, const pgp_shared_blocks *shared, int x, int y,
                          int w, int h, void *pixels, GDALDataType type, int stride)
{
    const pgp_rect r = {-1, -1, x, y, w, h};
    read_errors errors;
    int status = 1;
    memset(&errors, 0, sizeof errors);
    CPLPushErrorHandlerEx(note_read_error, &errors);
    CPLSetCurrentErrorHandlerCatchDebug(FALSE);
    if (shared != NULL)
        status = read_through_blocks(shared, band, &r, pixels, type, stride, &errors);
    if (status == 1)
        status = GDALRasterIO(band, GF_Read, x, y, w, h, pixels, w, h, type, 0,
                              stride * GDALGetDataTypeSizeBytes(type)) == CE_None
                     ? 0
                     : -1;
    CPLPopErrorHandler();
    if (errors.warned)
        CPLError(CE_Warning, errors.warning_no, "%s", errors.warning);
    if (errors.failed) {
        CPLError(CE_Failure, errors.failure_no, "%s", errors.failure);
        status = -1;
    }
    return status;
}

/* Reads a source's pixels of rect r as type (its own type or Float64) into
 * pixels, whose rows are stride pixels apart. */
int pgp_source_read(pgp_source_level *rr, pgp_source_handles *ctx, int node, const pgp_rect *r,
                       void *pixels, GDALDataType type, int stride)
{
    const pgp_node *n = &rr->graph->nodes[node];
    const pgp_shared_blocks shared = {rr->blocks, rr->owner, node, &rr->blocks_decoded};
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
        const int several = rr->read_by_several != NULL && rr->read_by_several[node];
        status = several ? read_through_blocks(&shared, band, r, pixels, type, stride, &errors)
                         : read_whole_block(band, ctx, r, pixels, type, stride);
        if (status == 1)
            status = several ? read_whole_block(band, ctx, r, pixels, type, stride)
                             : read_through_blocks(&shared, band, r, pixels, type, stride,
                                                   &errors);
        if (status == 1)
            status = GDALRasterIOEx(band, GF_Read, r->x, r->y, r->w, r->h, pixels, r->w, r->h,
                                    type, type_size, (GSpacing)stride * type_size,
                                    NULL) == CE_None
                         ? 0
                         : -1;
    } else {
        status = read_downsampled(rr, band, r, pixels, type, stride);
    }
    if (rr->graph->aligned)
        drop_warp_blocks(ctx, node, band, n->band);
    CPLPopErrorHandler();
    if (errors.warned)
        CPLError(CE_Warning, errors.warning_no, "%s", errors.warning);
    if (errors.failed) {
        status = -1;
        CPLError(CE_Failure, errors.failure_no, "%s", errors.failure);
    }
    if (status != 0) {
        pgp_fail_because(CPLE_FileIO, CPLSPrintf("%s: reading window (%d,%d,%d,%d) of '%s' failed",
                                             n->where, r->x, r->y, r->w, r->h, n->path));
        /* A handle that failed may go on failing (a warped view whose
         * transformer could not be cloned): the next read opens a fresh one. */
        GDALClose(ctx->sources[node]);
        ctx->sources[node] = NULL;
        ctx->warped_files[node] = NULL;
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

