/* pgp/zonal.h — per-feature statistics of one raster band under a polygon layer
 * (pygeoprocessing's zonal_statistics; docs/zonal.md).
 *
 * The band may be any raster GDAL opens, a .pgp.vrt graph included. Work is
 * partitioned by the band's block grid (tiles of at least 256 x 256 pixels made
 * of whole blocks), never by the executor: only tiles that some feature's
 * envelope meets are read (for a graph: computed), each by one job that
 * rasterises the features meeting it in the raster's own pixel frame (GDAL's
 * rasteriser, pixel centres unless all_touched) and keeps one partial summary
 * per (tile, feature). Partials are merged per feature in tile order, sums in
 * double, so every executor gives the same numbers, bit for bit.
 *
 * A feature whose polygons cover no pixel centre falls back, as in
 * pygeoprocessing, to the pixels its envelope overlaps (fallback = 1).
 *
 * Threads: each job opens its own handle of the raster (GDAL_OF_INTERNAL; a
 * graph with PGP_EXECUTOR=serial and no prefetch), so no GDAL handle is shared.
 * Errors: NULL after a CPLError naming the input and, for a failed tile, the
 * tile. Entry points are exported from the plugin for Python (ctypes).
 */
#ifndef PGP_ZONAL_H
#define PGP_ZONAL_H

#include <stddef.h>
#include <stdint.h>

#include "gdal.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PGP_API __attribute__((visibility("default")))

typedef struct pgp_zonal_options {
    int all_touched;            /* GDAL's ALL_TOUCHED=TRUE instead of pixel centres  */
    int ignore_nodata;          /* 1: nodata pixels are only counted in nodata_count  */
    int polygons_might_overlap; /* 1: each feature gets all its pixels; 0: the later
                                 * feature (layer order) wins where polygons overlap  */
    int value_counts;           /* keep each feature's value histogram (value_counts,
                                 * majority, minority, variety)                       */
    int n_threads;              /* 0: serial on the calling thread                    */
    GDALProgressFunc progress;  /* may be NULL; FALSE cancels (CPLE_UserInterrupt)    */
    void *progress_arg;
} pgp_zonal_options;

typedef struct pgp_zonal_value_count {
    double value;
    uint64_t count;
} pgp_zonal_value_count;

typedef struct pgp_zonal_feature {
    int64_t fid;
    int has_geometry; /* 0: no (or an empty) geometry: every statistic at its default */
    int fallback;     /* 1: no pixel centre inside: the envelope's pixels were used   */
    uint64_t count;   /* pixels counted (valid ones when ignore_nodata)               */
    uint64_t nodata_count;
    double sum, min, max; /* min/max meaningful when count > 0                        */
    double mean, m2;      /* mean and sum of squared deviations (population stdev)    */
    size_t n_values;      /* value histogram, ascending values (value_counts only)    */
    pgp_zonal_value_count *values;
} pgp_zonal_feature;

typedef struct pgp_zonal_result {
    size_t n_features; /* in layer order */
    pgp_zonal_feature *features;
    uint64_t tiles_read; /* tiles some feature met: the only ones read or computed */
    uint64_t tiles_total;
} pgp_zonal_result;

/* Statistics of band `band` of raster_path under the features of layer
 * layer_name (NULL: the first layer) of vector_path. The layer must hold
 * polygons or multipolygons; it is reprojected to the raster's SRS. */
PGP_API pgp_zonal_result *pgp_zonal_compute(const char *raster_path, int band,
                                            const char *vector_path, const char *layer_name,
                                            const pgp_zonal_options *options);

PGP_API void pgp_zonal_result_free(pgp_zonal_result *result);

/* Folds b into a: the statistics of a's pixels followed by b's (Chan et al. for
 * the variance). Exact for count, nodata_count, min and max; the same inputs in
 * the same order always give the same bits. Returns 0, or -1 if the histogram
 * could not grow (a keeps its values). */
PGP_API int pgp_zonal_merge(pgp_zonal_feature *a, const pgp_zonal_feature *b);

#ifdef __cplusplus
}
#endif

#endif
