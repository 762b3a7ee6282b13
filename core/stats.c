/* stats.c — per-tile summaries merged in tile order. */
#include "pgp/stats.h"
#include "pgp/alloc.h"

#include <math.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_string.h"
#include "cpl_vsi.h"

int pgp_stats_of_pixels(const void *pixels, GDALDataType type, size_t n, const double *nodata,
                        pgp_stats *stats)
{
    double *v = (double *)pgp_malloc_array(n, sizeof(double));
    double sum = 0.0, m2 = 0.0, min = HUGE_VAL, max = -HUGE_VAL;
    double typed_nodata = 0.0;
    size_t i, kept = 0;
    if (v == NULL)
        return -1;
    /* GDAL compares pixels with the nodata value cast to the band's type. */
    if (nodata != NULL) {
        GByte as_type[16];
        GDALCopyWords(nodata, GDT_Float64, 0, as_type, type, 0, 1);
        GDALCopyWords(as_type, type, 0, &typed_nodata, GDT_Float64, 0, 1);
    }
    GDALCopyWords64(pixels, type, GDALGetDataTypeSizeBytes(type), v, GDT_Float64,
                    sizeof(double), (GPtrDiff_t)n);
    /* Compact the valid values to the front so the second pass is branch-free. */
    for (i = 0; i < n; i++) {
        const double x = v[i];
        if (CPLIsNan(x) || (nodata != NULL && x == typed_nodata))
            continue;
        v[kept++] = x;
        sum += x;
        min = x < min ? x : min;
        max = x > max ? x : max;
    }
    stats->total = n;
    stats->valid = kept;
    stats->min = min;
    stats->max = max;
    stats->mean = kept ? sum / (double)kept : 0.0;
    for (i = 0; i < kept; i++)
        m2 += (v[i] - stats->mean) * (v[i] - stats->mean);
    stats->m2 = m2;
    pgp_free(v);
    return 0;
}

void pgp_stats_merge(pgp_stats *total, const pgp_stats *part)
{
    const GUIntBig valid = total->valid + part->valid;
    total->total += part->total;
    if (part->valid == 0)
        return;
    if (total->valid == 0) {
        const GUIntBig seen = total->total;
        *total = *part;
        total->total = seen;
        return;
    }
    {
        const double delta = part->mean - total->mean;
        const double na = (double)total->valid, nb = (double)part->valid;
        total->mean += delta * nb / (double)valid;
        total->m2 += part->m2 + delta * delta * na * nb / (double)valid;
        total->min = part->min < total->min ? part->min : total->min;
        total->max = part->max > total->max ? part->max : total->max;
        total->valid = valid;
    }
}

typedef struct stats_request {
    GDALDataType type;
    const double *nodata;
    pgp_stats *per_tile;
} stats_request;

static int summarise_tile(void *arg, size_t index, const void *pixels, int w, int h)
{
    const stats_request *q = (const stats_request *)arg;
    return pgp_stats_of_pixels(pixels, q->type, (size_t)w * h, q->nodata, &q->per_tile[index]);
}

CPLErr pgp_stats_of_node(pgp_renderer *renderer, int node, const double *nodata,
                         pgp_stats *stats, GDALProgressFunc progress, void *progress_arg)
{
    const size_t n_tiles = pgp_renderer_tile_count(renderer);
    stats_request q;
    CPLErr err;
    size_t i;
    q.type = pgp_renderer_graph(renderer)->nodes[node].data_type;
    q.nodata = nodata;
    q.per_tile = (pgp_stats *)pgp_calloc(n_tiles, sizeof(pgp_stats));
    if (q.per_tile == NULL) {
        char cause[256]; /* copied: CPLError formats into the message's buffer */
        CPLStrlcpy(cause, CPLGetLastErrorMsg(), sizeof cause);
        CPLError(CE_Failure, CPLE_OutOfMemory, "%s: statistics of %zu tiles: %s",
                 pgp_renderer_graph(renderer)->nodes[node].where, n_tiles, cause);
        return CE_Failure;
    }
    err = pgp_renderer_visit_tiles(renderer, node, summarise_tile, &q, progress, progress_arg);
    memset(stats, 0, sizeof *stats);
    for (i = 0; i < n_tiles && err == CE_None; i++)
        pgp_stats_merge(stats, &q.per_tile[i]);
    pgp_free(q.per_tile);
    return err;
}
