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
    /* pgp_target_render: tiles next .. next + n_slots - 1 wait in slots
     * [tile % n_slots] (next: the first tile not yet written); failed: a tile
     * failed, no tile waits for room any longer */
    slot *slots;
    size_t n_slots, next;
    int writing, failed;
    CPLMutex *mutex;
    CPLCond *moved; /* signalled whenever next or failed changes */
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
    t->moved = CPLCreateCond();
    if (t->nodata == NULL || t->has_nodata == NULL || t->totals == NULL ||
        t->scratch.blocks == NULL || t->scratch.stats == NULL || t->mutex == NULL ||
        t->moved == NULL) {
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

/* A slot's blocks while its tile waits for its turn: recycled memory (the
 * tile cache's spares), so that converted tiles do not take a fresh page per
 * 4 KiB each. */
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
    if (t->mutex != NULL)
        CPLDestroyMutex(t->mutex);
    if (t->moved != NULL)
        CPLDestroyCond(t->moved);
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
} render_request;

/* Stops the render: no tile waits for room any longer. */
static void stop_waiting(pgp_target *t)
{
    CPLAcquireMutex(t->mutex, 1000.0);
    t->failed = 1;
    CPLCondBroadcast(t->moved);
    CPLReleaseMutex(t->mutex);
}

/* Ends the turn of the writer (t->writing set by the caller, status its own so
 * far): writes the ready slots from t->next on, at most limit of them. A turn
 * is bounded so that no thread (the calling one, which reports progress
 * between its tiles, among them) writes for the whole raster: a worker that
 * arrives, or waits for room, takes over, and pgp_target_render writes what
 * is left at the end. Called and returns with t->mutex held. */
static int write_ready(pgp_target *t, const void **blocks, int status, size_t limit)
{
    while (status == 0 && limit-- > 0 && t->slots[t->next % t->n_slots].ready) {
        slot *s = &t->slots[t->next % t->n_slots];
        const pgp_rect r = tile_rect_of(t, t->next);
        CPLReleaseMutex(t->mutex);
        slot_blocks(t, s, blocks);
        status = commit(t, &r, blocks, s->stats);
        slot_release(t, s);
        CPLAcquireMutex(t->mutex, 1000.0);
        s->ready = 0;
        t->next++;
        CPLCondBroadcast(t->moved);
    }
    t->writing = 0;
    t->failed |= status != 0;
    CPLCondBroadcast(t->moved); /* a waiting worker takes over what is left */
    return status;
}

/* The worker that computed a tile writes it when every tile before it is
 * written, from the node's own buffers when no conversion or padding is
 * needed (a whole tile of the target's type), and then the tiles that waited
 * for it. Otherwise the tile waits, converted and summarised, in its slot; a
 * worker whose tile is n_slots or more ahead waits for room first, taking over
 * the writing when no one writes (tiles are claimed in order, so the tile the
 * writer waits for is being computed). A failed tile (pixels NULL) releases
 * every waiting worker. */
static int render_sink(void *arg, size_t tile_index, const pgp_rect *r, const void *const *pixels)
{
    const render_request *q = (const render_request *)arg;
    pgp_target *t = q->t;
    slot *s = &t->slots[tile_index % t->n_slots];
    const void **blocks;
    int i, status, in_place, writer;
    blocks = pixels != NULL ? (const void **)pgp_calloc(t->n_bands, sizeof(void *)) : NULL;
    if (blocks == NULL) {
        stop_waiting(t);
        return -1;
    }
    status = 0;
    CPLAcquireMutex(t->mutex, 1000.0);
    while (status == 0 && tile_index >= t->next + t->n_slots && !t->failed) {
        if (!t->writing && t->slots[t->next % t->n_slots].ready) {
            t->writing = 1;
            status = write_ready(t, blocks, 0, t->n_slots);
        } else {
            CPLCondWait(t->moved, t->mutex);
        }
    }
    if (t->failed) {
        CPLReleaseMutex(t->mutex);
        pgp_free(blocks);
        return status; /* the failed tile (or this worker's write) reports the failure */
    }
    in_place = q->same_type && r->w == t->tile_x && r->h == t->tile_y &&
               !t->writing && t->next == tile_index;
    t->writing |= in_place;
    CPLReleaseMutex(t->mutex);
    if (in_place) {
        for (i = 0; i < t->n_bands && status == 0; i++) {
            blocks[i] = pixels[i];
            status = summarise(t, i, r, pixels[i], &s->stats[i]);
        }
        if (status == 0)
            status = commit(t, r, blocks, s->stats);
        CPLAcquireMutex(t->mutex, 1000.0);
        t->next++;
        CPLCondBroadcast(t->moved);
        writer = 1;
    } else {
        status = slot_hold(t, s);
        if (status == 0)
            status = prepare(t, r, pixels, q->types, NULL, s);
        CPLAcquireMutex(t->mutex, 1000.0);
        s->ready = status == 0;
        writer = status == 0 && !t->writing; /* then this worker writes what is ready */
        t->writing |= writer;
    }
    if (writer)
        status = write_ready(t, blocks, status, t->n_slots);
    if (status != 0 && !t->failed) {
        t->failed = 1;
        CPLCondBroadcast(t->moved);
    }
    CPLReleaseMutex(t->mutex);
    pgp_free(blocks);
    return status;
}

CPLErr pgp_target_render(pgp_target *t, pgp_renderer *renderer, const int *nodes,
                         GDALProgressFunc progress, void *progress_arg)
{
    const pgp_graph *g = pgp_renderer_graph(renderer);
    int *types = (int *)pgp_calloc(t->n_bands, sizeof(int));
    render_request q;
    CPLErr err;
    int i;
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
    q.t = t;
    q.types = types;
    q.same_type = 1;
    for (i = 0; i < t->n_bands; i++) {
        types[i] = g->nodes[nodes[i]].data_type;
        q.same_type &= types[i] == (int)t->type;
    }
    /* Two tiles per computing thread: room for one to wait while its worker
     * computes the next. */
    t->n_slots = 2 * (size_t)pgp_renderer_threads(renderer);
    t->slots = (slot *)pgp_calloc(t->n_slots, sizeof(slot));
    for (i = 0; t->slots != NULL && i < (int)t->n_slots; i++) {
        t->slots[i].stats = (pgp_stats *)pgp_calloc(t->n_bands, sizeof(pgp_stats));
        if (t->slots[i].stats == NULL)
            break;
    }
    t->next = 0;
    t->writing = t->failed = 0;
    err = t->slots != NULL && i == (int)t->n_slots
              ? pgp_renderer_stream_tiles(renderer, t->n_bands, nodes, 0,
                                          pgp_renderer_tile_count(renderer), render_sink, &q,
                                          progress, progress_arg)
              : CE_Failure;
    if (t->slots != NULL && !t->failed) { /* the tiles that the last turns left ready */
        const void **blocks = (const void **)pgp_calloc(t->n_bands, sizeof(void *));
        CPLAcquireMutex(t->mutex, 1000.0);
        t->writing = 1;
        if (blocks == NULL || write_ready(t, blocks, 0, t->n_slots) != 0)
            err = CE_Failure;
        CPLReleaseMutex(t->mutex);
        pgp_free(blocks);
    }
    if (err == CE_None && t->next != pgp_renderer_tile_count(renderer)) { /* never a short file */
        CPLError(CE_Failure, CPLE_AppDefined, "%s: %zu of %zu tiles written", target_name(t),
                 t->next, pgp_renderer_tile_count(renderer));
        err = CE_Failure;
    }
    free_slots(t);
    pgp_free(types);
    return err;
}
