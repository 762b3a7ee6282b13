/* pgp/stats.h — deterministic parallel band statistics (docs/architecture.md#execution).
 *
 * Each tile is summarised on its own (two passes in pixel order: exact mean,
 * then the sum of squared deviations), and the summaries are merged in tile
 * order with Chan's formula, so the result is the same for every executor.
 * Pixels are skipped as GDAL's ComputeStatistics skips them: NaN, and values
 * equal to the band's nodata after it is cast to the band's type.
 */
#ifndef PGP_STATS_H
#define PGP_STATS_H

#include <stddef.h>

#include "gdal.h"
#include "pgp/render.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pgp_stats {
    GUIntBig valid;   /* pixels that counted             */
    GUIntBig total;   /* pixels seen                     */
    double min, max;
    double mean;
    double m2;        /* sum of squared deviations from the mean */
} pgp_stats;

/* Summarises n pixels of type. nodata may be NULL (no nodata). Returns 0, or
 * -1 after CPLError when scratch memory is short. */
int pgp_stats_of_pixels(const void *pixels, GDALDataType type, size_t n, const double *nodata,
                        pgp_stats *stats);

/* Folds part into total (total may be empty: valid == 0). */
void pgp_stats_merge(pgp_stats *total, const pgp_stats *part);

/* Statistics of a whole node, tiles fanned out on the renderer's executor. */
CPLErr pgp_stats_of_node(pgp_renderer *renderer, int node, const double *nodata,
                         pgp_stats *stats, GDALProgressFunc progress, void *progress_arg);

#ifdef __cplusplus
}
#endif

#endif
