/* target.c — rendered tiles written into a raster in tile order, with their
 * statistics (see pgp/target.h). */
#include "pgp/target.h"
#include "pgp/alloc.h"
#include "pgp/source.h"

#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_multiproc.h"
#include "cpl_string.h"

/* One tile converted to the target's type, every band's block in a row. */
typedef struct slot {
    GByte *blocks; /* pgp_target_render: a spare of the tile cache while the tile waits */
    pgp_stats *stats; /* per band */
    int ready;
} slot;

struct pgp_target {
    GDALDatasetH dataset;
    int n_bands, x_size, y_size, tile_x, tile_y, tiles_x;
    GDALDataType type;
    int type_size;
    size_t block_bytes;  /* one band of one tile, padded to tile_x x tile_y */
    int whole_blocks;    /* GDALWriteBlock: the blocks are the tiles, bands separate */
    int block_y;         /* the target's block height, for the RasterIO flushes */
    int statistics;
    double *nodata;      /* per band, for the statistics */
    unsigned char *has_nodata;
    pgp_stats *totals;   /* per band, merged in tile order */
    slot scratch;        /* pgp_target_write's one tile */
    /* pgp_target_render's batch: tiles first .. first + n_slots - 1 */
    slot *slots;
    size_t n_slots, first, next; /* next: the first tile not yet written */
    int writing, failed;
    CPLMutex *mutex;
};

static const char *target_name(const pgp_target *t)
{
    return GDALGetDescription(t->dataset);
}

pgp_target *pgp_target_new(GDALDatasetH dataset, int tile_x, int tile_y, int statistics)
{
    pgp_target *t = (pgp_target *)pgp_calloc(1, sizeof(pgp_target));
    GDALRasterBandH first;
    const char *interleave;
    int block_x, block_y, i;
    if (t == NULL)
        return NULL;
    t->dataset = dataset;
    t->n_bands = GDALGetRasterCount(dataset);
    t->x_size = GDALGetRasterXSize(dataset);
    t->y_size = GDALGetRasterYSize(dataset);
    t->tile_x = tile_x;
    t->tile_y = tile_y;
    t->tiles_x = (t->x_size + tile_x - 1) / tile_x;
    t->statistics = statistics;
    if (t->n_bands < 1 || tile_x < 1 || tile_y < 1 ||
        (size_t)tile_x * tile_y > PGP_MAX_BLOCK_PIXELS) {
        CPLError(CE_Failure, CPLE_IllegalArg, "%s: %d bands, tiles of %dx%d: nothing to write",
                 target_name(t), t->n_bands, tile_x, tile_y);
        pgp_free(t);
        return NULL;
    }
    first = GDALGetRasterBand(dataset, 1);
    t->type = GDALGetRasterDataType(first);
    t->type_size = GDALGetDataTypeSizeBytes(t->type);
    t->block_bytes = (size_t)tile_x * tile_y * t->type_size;
    GDALGetBlockSize(first, &block_x, &block_y);
    t->block_y = block_y;
    interleave = GDALGetMetadataItem(dataset, "INTERLEAVE", "IMAGE_STRUCTURE");
    t->whole_blocks = block_x == tile_x && block_y == tile_y &&
                      (t->n_bands == 1 || (interleave != NULL && EQUAL(interleave, "BAND")));
    t->nodata = (double *)pgp_calloc(t->n_bands, sizeof(double));
    t->has_nodata = (unsigned char *)pgp_calloc(t->n_bands, 1);
    t->totals = (pgp_stats *)pgp_calloc(t->n_bands, sizeof(pgp_stats));
    t->scratch.blocks = (GByte *)pgp_malloc_array(t->n_bands, t->block_bytes);
    t->scratch.stats = (pgp_stats *)pgp_calloc(t->n_bands, sizeof(pgp_stats));
    t->mutex = CPLCreateMutex();
    if (t->mutex != NULL)
        CPLReleaseMutex(t->mutex);
    if (t->nodata == NULL || t->has_nodata == NULL || t->totals == NULL ||
        t->scratch.blocks == NULL || t->scratch.stats == NULL || t->mutex == NULL) {
        pgp_target_free(t);
        return NULL;
    }
    for (i = 0; i < t->n_bands; i++) {
        int has_nodata = FALSE;
        GDALRasterBandH band = GDALGetRasterBand(dataset, i + 1);
        const double nodata = GDALGetRasterNoDataValue(band, &has_nodata);
        if (GDALGetRasterDataType(band) != t->type) {
            CPLError(CE_Failure, CPLE_NotSupported, "%s: band %d is %s, band 1 %s",
                     target_name(t), i + 1, GDALGetDataTypeName(GDALGetRasterDataType(band)),
                     GDALGetDataTypeName(t->type));
            pgp_target_free(t);
            return NULL;
        }
        t->nodata[i] = has_nodata ? nodata : 0.0;
        t->has_nodata[i] = (unsigned char)has_nodata;
    }
    return t;
}

/* A slot's blocks while its tile waits for the writer: recycled memory (the
 * tile cache's spares), so that the few tiles finishing out of order do not
 * take a fresh page per 4 KiB each. */
static int slot_hold(const pgp_target *t, slot *s)
{
    pgp_tile_cache *spares = pgp_tile_cache_global();
    const size_t bytes = t->n_bands * t->block_bytes;
    s->blocks = (GByte *)(spares ? pgp_tile_cache_buffer(spares, bytes) : pgp_malloc(bytes));
    return s->blocks != NULL ? 0 : -1;
}

static void slot_release(const pgp_target *t, slot *s)
{
    pgp_tile_cache *spares = pgp_tile_cache_global();
    if (s->blocks != NULL && spares != NULL)
        pgp_tile_cache_recycle(spares, s->blocks, t->n_bands * t->block_bytes);
    else
        pgp_free(s->blocks);
    s->blocks = NULL;
}

static void free_slots(pgp_target *t)
{
    size_t i;
    for (i = 0; t->slots != NULL && i < t->n_slots; i++) {
        slot_release(t, &t->slots[i]);
        pgp_free(t->slots[i].stats);
    }
    pgp_free(t->slots);
    t->slots = NULL;
    t->n_slots = 0;
}

void pgp_target_free(pgp_target *t)
{
    if (t == NULL)
        return;
    free_slots(t);
    if (t->mutex != NULL)
        CPLDestroyMutex(t->mutex);
    pgp_free(t->nodata);
    pgp_free(t->has_nodata);
    pgp_free(t->totals);
    pgp_free(t->scratch.blocks);
    pgp_free(t->scratch.stats);
    pgp_free(t);
}

void pgp_target_statistics(const pgp_target *t, int band, pgp_stats *stats)
{
    *stats = t->totals[band];
}

/* The tile's rectangle (clipped at the raster's edge). */
static pgp_rect tile_rect_of(const pgp_target *t, size_t tile_index)
{
    pgp_rect r;
    r.tx = (int)(tile_index % t->tiles_x);
    r.ty = (int)(tile_index / t->tiles_x);
    r.x = r.tx * t->tile_x;
    r.y = r.ty * t->tile_y;
    r.w = MIN(t->tile_x, t->x_size - r.x);
    r.h = MIN(t->tile_y, t->y_size - r.y);
    return r;
}

/* Band i's statistics of tile r, its pixels in the target's type, in a row. */
static int summarise(const pgp_target *t, int i, const pgp_rect *r, const void *pixels,
                     pgp_stats *stats)
{
    return t->statistics ? pgp_stats_of_pixels(pixels, t->type, (size_t)r->w * r->h,
                                               t->has_nodata[i] ? &t->nodata[i] : NULL, stats)
                         : 0;
}

/* Converts every band's pixels of tile r (bands[i]: types[i], rows
 * line_pixels[i] apart, or r->w when line_pixels is NULL) into s's blocks,
 * summarises them, and zeroes the blocks' outside-the-raster part. The
 * statistics see the tile's pixels in a row (as the driver's ComputeStatistics
 * does), so a narrow edge tile is converted packed, summarised, then spread to
 * the block's row stride. */
static int prepare(const pgp_target *t, const pgp_rect *r, const void *const *bands,
                   const int *types, const int *line_pixels, slot *s)
{
    int i, row;
    for (i = 0; i < t->n_bands; i++) {
        GByte *block = s->blocks + i * t->block_bytes;
        const int src_size = GDALGetDataTypeSizeBytes((GDALDataType)types[i]);
        const size_t line = (size_t)r->w * t->type_size;
        for (row = 0; row < r->h; row++)
            pgp_copy_row((const GByte *)bands[i] +
                             (size_t)row * (line_pixels ? line_pixels[i] : r->w) * src_size,
                         (GDALDataType)types[i], block + row * line, t->type, r->w);
        if (summarise(t, i, r, block, &s->stats[i]) != 0)
            return -1;
        if (r->w < t->tile_x) {
            for (row = r->h - 1; row > 0; row--)
                memmove(block + (size_t)row * t->tile_x * t->type_size, block + row * line, line);
            for (row = 0; row < r->h; row++)
                memset(block + ((size_t)row * t->tile_x + r->w) * t->type_size, 0,
                       (size_t)(t->tile_x - r->w) * t->type_size);
        }
        if (r->h < t->tile_y)
            memset(block + (size_t)r->h * t->tile_x * t->type_size, 0,
                   (size_t)(t->tile_y - r->h) * t->tile_x * t->type_size);
    }
    return 0;
}

/* Writes tile r from blocks (one per band, rows t->tile_x apart) into the
 * dataset and merges its statistics. */
static int commit(pgp_target *t, const pgp_rect *r, const void *const *blocks,
                  const pgp_stats *stats)
{
    CPLErr err = CE_None;
    int i;
    for (i = 0; i < t->n_bands && err == CE_None; i++) {
        GDALRasterBandH band = GDALGetRasterBand(t->dataset, i + 1);
        err = t->whole_blocks
                  ? GDALWriteBlock(band, r->tx, r->ty, (void *)blocks[i])
                  : GDALRasterIO(band, GF_Write, r->x, r->y, r->w, r->h, (void *)blocks[i], r->w,
                                 r->h, t->type, 0, (GSpacing)t->tile_x * t->type_size);
    }
    /* Through RasterIO, a finished row of target blocks leaves GDAL's cache
     * (GDAL 3.6's GDALFlushCache returns nothing: a failed write is an error). */
    if (err == CE_None && !t->whole_blocks && r->tx == t->tiles_x - 1 &&
        ((r->y + r->h) % t->block_y == 0 || r->y + r->h == t->y_size)) {
        CPLErrorReset();
        GDALFlushCache(t->dataset);
        err = CPLGetLastErrorType() == CE_Failure ? CE_Failure : CE_None;
    }
    if (err != CE_None) {
        pgp_fail_because(CPLE_FileIO,
                         CPLSPrintf("%s: writing tile (%d,%d)", target_name(t), r->tx, r->ty));
        return -1;
    }
    for (i = 0; t->statistics && i < t->n_bands; i++)
        pgp_stats_merge(&t->totals[i], &stats[i]);
    return 0;
}

/* s's blocks, one per band. */
static void slot_blocks(const pgp_target *t, const slot *s, const void **blocks)
{
    int i;
    for (i = 0; i < t->n_bands; i++)
        blocks[i] = s->blocks + i * t->block_bytes;
}

int pgp_target_write(pgp_target *t, int x, int y, int w, int h, const void *const *bands,
                     const int *types, const int *line_pixels)
{
    const void **at = (const void **)pgp_calloc(t->n_bands, sizeof(void *));
    int tx, ty, i, status = at == NULL ? -1 : 0;
    if (x % t->tile_x != 0 || y % t->tile_y != 0 || w <= 0 || h <= 0 || x + w > t->x_size ||
        y + h > t->y_size) {
        CPLError(CE_Failure, CPLE_IllegalArg, "%s: window (%d,%d,%d,%d) is not whole tiles",
                 target_name(t), x, y, w, h);
        status = -1;
    }
    for (ty = y / t->tile_y; status == 0 && ty * t->tile_y < y + h; ty++)
        for (tx = x / t->tile_x; status == 0 && tx * t->tile_x < x + w; tx++) {
            const pgp_rect r = tile_rect_of(t, (size_t)ty * t->tiles_x + tx);
            for (i = 0; i < t->n_bands; i++)
                at[i] = (const GByte *)bands[i] +
                        ((size_t)(r.y - y) * line_pixels[i] + (r.x - x)) *
                            GDALGetDataTypeSizeBytes((GDALDataType)types[i]);
            status = prepare(t, &r, at, types, line_pixels, &t->scratch);
            slot_blocks(t, &t->scratch, at);
            if (status == 0)
                status = commit(t, &r, at, t->scratch.stats);
        }
    pgp_free(at);
    return status;
}

/* ---- rendering: tiles computed on the executor, written in order ---------- */

typedef struct render_request {
    pgp_target *t;
    const int *types; /* the nodes' data types */
    int same_type;    /* all of them the target's */
    GDALProgressFunc progress;
    void *progress_arg;
    double done, total; /* tiles before this batch, all tiles */
} render_request;

/* Writes the ready slots from t->next on, one worker at a time: whoever
 * finishes the tile the writer waits for writes it and any ready after it. */
static int drain(pgp_target *t, const void **blocks)
{
    int status = 0;
    CPLAcquireMutex(t->mutex, 1000.0);
    if (t->writing || t->failed) {
        CPLReleaseMutex(t->mutex);
        return 0;
    }
    t->writing = 1;
    while (status == 0 && t->next < t->first + t->n_slots && t->slots[t->next - t->first].ready) {
        const size_t tile = t->next;
        const pgp_rect r = tile_rect_of(t, tile);
        CPLReleaseMutex(t->mutex);
        slot_blocks(t, &t->slots[tile - t->first], blocks);
        status = commit(t, &r, blocks, t->slots[tile - t->first].stats);
        slot_release(t, &t->slots[tile - t->first]);
        CPLAcquireMutex(t->mutex, 1000.0);
        t->slots[tile - t->first].ready = 0;
        t->next++;
    }
    t->writing = 0;
    t->failed = status != 0;
    CPLReleaseMutex(t->mutex);
    return status;
}

/* The worker that computed a tile the writer waits for writes it from the
 * node's own buffers when no conversion or padding is needed (a whole tile of
 * the target's type): no copy. Any other tile goes to its slot. */
static int render_sink(void *arg, size_t tile_index, const pgp_rect *r, const void *const *pixels)
{
    const render_request *q = (const render_request *)arg;
    pgp_target *t = q->t;
    slot *s = &t->slots[tile_index - t->first];
    const void **blocks = (const void **)pgp_calloc(t->n_bands, sizeof(void *));
    int i, status = blocks == NULL ? -1 : 0, in_place = 0;
    if (status == 0 && q->same_type && r->w == t->tile_x && r->h == t->tile_y) {
        CPLAcquireMutex(t->mutex, 1000.0);
        in_place = !t->writing && !t->failed && t->next == tile_index;
        t->writing |= in_place;
        CPLReleaseMutex(t->mutex);
    }
    if (in_place) {
        for (i = 0; i < t->n_bands && status == 0; i++)
            status = summarise(t, i, r, pixels[i], &s->stats[i]);
        if (status == 0)
            status = commit(t, r, pixels, s->stats);
        CPLAcquireMutex(t->mutex, 1000.0);
        t->next++;
        t->writing = 0;
        t->failed = status != 0;
        CPLReleaseMutex(t->mutex);
    } else if (status == 0) {
        status = slot_hold(t, s);
        if (status == 0)
            status = prepare(t, r, pixels, q->types, NULL, s);
        CPLAcquireMutex(t->mutex, 1000.0);
        s->ready = status == 0;
        CPLReleaseMutex(t->mutex);
    }
    if (status == 0)
        status = drain(t, blocks);
    pgp_free(blocks);
    return status;
}

static int CPL_STDCALL batch_progress(double fraction, const char *message, void *arg)
{
    const render_request *q = (const render_request *)arg;
    return q->progress((q->done + fraction * q->t->n_slots) / q->total, message, q->progress_arg);
}

CPLErr pgp_target_render(pgp_target *t, pgp_renderer *renderer, const int *nodes,
                         GDALProgressFunc progress, void *progress_arg)
{
    const pgp_graph *g = pgp_renderer_graph(renderer);
    const size_t n_tiles = pgp_renderer_tile_count(renderer);
    size_t batch = MAX(PGP_TARGET_BATCH_BYTES / (t->block_bytes * t->n_bands), 1), i;
    int *types = (int *)pgp_calloc(t->n_bands, sizeof(int));
    render_request q;
    CPLErr err = CE_None;
    if (types == NULL)
        return CE_Failure;
    if (g->block_x != t->tile_x || g->block_y != t->tile_y || g->x_size != t->x_size ||
        g->y_size != t->y_size) {
        CPLError(CE_Failure, CPLE_IllegalArg,
                 "%s: %dx%d in tiles of %dx%d, the graph %dx%d in tiles of %dx%d",
                 target_name(t), t->x_size, t->y_size, t->tile_x, t->tile_y, g->x_size,
                 g->y_size, g->block_x, g->block_y);
        pgp_free(types);
        return CE_Failure;
    }
    memset(&q, 0, sizeof q);
    q.same_type = 1;
    for (i = 0; i < (size_t)t->n_bands; i++) {
        types[i] = g->nodes[nodes[i]].data_type;
        q.same_type &= types[i] == (int)t->type;
    }
    batch = MIN(batch, n_tiles);
    q.t = t;
    q.types = types;
    q.progress = progress;
    q.progress_arg = progress_arg;
    q.total = (double)n_tiles;
    t->slots = (slot *)pgp_calloc(batch, sizeof(slot));
    t->n_slots = batch;
    for (i = 0; t->slots != NULL && i < batch; i++) {
        t->slots[i].stats = (pgp_stats *)pgp_calloc(t->n_bands, sizeof(pgp_stats));
        if (t->slots[i].stats == NULL)
            break;
    }
    if (i < batch)
        err = CE_Failure;
    t->writing = t->failed = 0;
    for (t->next = 0; err == CE_None && t->next < n_tiles; q.done += (double)t->n_slots) {
        t->first = t->next;
        t->n_slots = MIN(batch, n_tiles - t->first);
        err = pgp_renderer_stream_tiles(renderer, t->n_bands, nodes, t->first, t->n_slots,
                                        render_sink, &q, progress ? batch_progress : NULL, &q);
    }
    t->n_slots = batch;
    free_slots(t);
    pgp_free(types);
    return err;
}
