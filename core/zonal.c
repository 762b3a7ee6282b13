/* core/zonal.c — per-feature statistics under a polygon layer (pgp/zonal.h). */
#include "pgp/zonal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_multiproc.h"
#include "cpl_string.h"
#include "gdal_alg.h"
#include "ogr_api.h"
#include "ogr_srs_api.h"
#include "pgp/alloc.h"
#include "pgp/executor.h"
#include "pgp/nodata.h"

/* Tiles are whole blocks, at least this many pixels a side (blocks of a few rows
 * would make a job per strip and rasterise every feature once per strip). */
#define MIN_TILE_SIDE 256

typedef struct feature_geometry {
    OGRGeometryH geometry; /* in the raster's SRS; NULL: none or empty */
    int px0, py0, px1, py1; /* pixel envelope, clipped, half-open; empty when px0 >= px1 */
} feature_geometry;

typedef struct worker_context {
    GDALDatasetH raster; /* this context's own handle, opened on first use */
    double *values;      /* one tile, as doubles */
    GUInt32 *owner;      /* one tile: slot + 1 of the feature burnt there, 0 none */
    GUInt32 *level;      /* one tile: burn groups already under the pixel */
    double *samples;     /* one tile: a feature's values, for its histogram */
    struct worker_context *next;
} worker_context;

typedef struct zonal_run {
    /* inputs, read-only while jobs run */
    const char *raster_path;
    int band;
    const pgp_zonal_options *options;
    pgp_nodata nodata;
    double inverse_gt[6];
    int x_size, y_size, tile_w, tile_h, tiles_x;
    feature_geometry *geometries;
    size_t *tile_start;    /* CSR: features meeting tile t are                  */
    size_t *tile_features; /* tile_features[tile_start[t] .. tile_start[t + 1]) */
    /* the batch being computed */
    const size_t *batch_tiles;
    pgp_zonal_feature **batch_partials; /* per job: one per feature meeting the tile */
    CPLMutex *contexts_mutex;
    worker_context *idle_contexts;
} zonal_run;

/* ---- summaries ---------------------------------------------------------------- */

static void add_value(pgp_zonal_feature *s, double v)
{
    double delta;
    if (s->count == 0) {
        s->min = s->max = v;
    } else if (!isnan(s->min)) { /* numpy: a NaN minimum stays NaN */
        if (isnan(v) || v < s->min)
            s->min = v;
        if (isnan(v) || v > s->max)
            s->max = v;
    }
    s->count++;
    s->sum += v;
    delta = v - s->mean;
    s->mean += delta / (double)s->count;
    s->m2 += delta * (v - s->mean);
}

static int compare_doubles(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    if (isnan(x) || isnan(y))
        return isnan(x) - isnan(y); /* NaN last */
    return (x > y) - (x < y);
}

static int same_value(double a, double b)
{
    return a == b || (isnan(a) && isnan(b));
}

/* s's histogram from its n samples (sorted here). */
static int set_histogram(pgp_zonal_feature *s, double *samples, size_t n)
{
    size_t i, runs = 0;
    if (n == 0)
        return 0;
    qsort(samples, n, sizeof *samples, compare_doubles);
    for (i = 0; i < n; i++)
        runs += i == 0 || !same_value(samples[i], samples[i - 1]);
    s->values = (pgp_zonal_value_count *)pgp_calloc(runs, sizeof *s->values);
    if (s->values == NULL)
        return -1;
    for (i = 0; i < n; i++) {
        if (i == 0 || !same_value(samples[i], samples[i - 1]))
            s->values[s->n_values++].value = samples[i];
        s->values[s->n_values - 1].count++;
    }
    return 0;
}

static int merge_histograms(pgp_zonal_feature *a, const pgp_zonal_feature *b)
{
    pgp_zonal_value_count *merged;
    size_t i = 0, j = 0, n = 0;
    if (b->n_values == 0)
        return 0;
    merged = (pgp_zonal_value_count *)pgp_calloc(a->n_values + b->n_values,
                                                         sizeof *merged);
    if (merged == NULL)
        return -1;
    while (i < a->n_values || j < b->n_values) {
        int order;
        if (i == a->n_values)
            order = 1;
        else if (j == b->n_values)
            order = -1;
        else
            order = compare_doubles(&a->values[i].value, &b->values[j].value);
        if (order <= 0)
            merged[n] = a->values[i++];
        if (order == 0)
            merged[n].count += b->values[j++].count;
        else if (order > 0)
            merged[n] = b->values[j++];
        n++;
    }
    pgp_free(a->values);
    a->values = merged;
    a->n_values = n;
    return 0;
}

int pgp_zonal_merge(pgp_zonal_feature *a, const pgp_zonal_feature *b)
{
    if (merge_histograms(a, b) != 0)
        return -1;
    a->nodata_count += b->nodata_count;
    if (b->count == 0)
        return 0;
    if (a->count == 0) {
        a->min = b->min;
        a->max = b->max;
        a->mean = b->mean;
        a->m2 = b->m2;
    } else {
        const double n = (double)(a->count + b->count);
        const double delta = b->mean - a->mean;
        if (!isnan(a->min)) {
            if (isnan(b->min) || b->min < a->min)
                a->min = b->min;
            if (isnan(b->max) || b->max > a->max)
                a->max = b->max;
        }
        a->mean += delta * ((double)b->count / n);
        a->m2 += b->m2 + delta * delta * ((double)a->count * (double)b->count / n);
    }
    a->count += b->count;
    a->sum += b->sum;
    return 0;
}

/* Adds one pixel; samples (NULL: no histogram) collects the counted values. */
static void add_pixel(const zonal_run *run, pgp_zonal_feature *s, double v, double *samples)
{
    if (pgp_is_nodata(&run->nodata, v)) {
        s->nodata_count++;
        if (run->options->ignore_nodata)
            return;
    }
    if (samples != NULL)
        samples[s->count] = v;
    add_value(s, v);
}

/* ---- rasterising in the raster's pixel frame ---------------------------------- */

/* Geometry (raster SRS) -> pixels of a window whose top-left is raster pixel
 * (x0, y0): the same inverse geotransform for every tile, then an integer
 * shift (exact), so neighbouring tiles agree on every pixel centre. */
typedef struct window_transform {
    const double *inverse_gt;
    int x0, y0;
} window_transform;

static int to_window_pixels(void *arg, int dst_to_src, int n, double *x, double *y, double *z,
                            int *ok)
{
    const window_transform *t = (const window_transform *)arg;
    int i;
    (void)z;
    for (i = 0; i < n; i++) {
        if (dst_to_src) {
            ok[i] = FALSE;
            continue;
        }
        {
            const double px = t->inverse_gt[0] + t->inverse_gt[1] * x[i] + t->inverse_gt[2] * y[i];
            const double py = t->inverse_gt[3] + t->inverse_gt[4] * x[i] + t->inverse_gt[5] * y[i];
            x[i] = px - t->x0;
            y[i] = py - t->y0;
            ok[i] = TRUE;
        }
    }
    return TRUE;
}

/* Burns n geometries (burn values in layer order: later ones win) into the
 * w x h window of buffer (line stride `stride` elements of type) at raster pixel
 * (x0, y0), through a MEM dataset over the caller's memory. */
static int burn(const zonal_run *run, void *buffer, GDALDataType type, int stride, int x0,
                int y0, int w, int h, int n, OGRGeometryH *geometries, const double *values)
{
    char spec[256];
    const int bytes = GDALGetDataTypeSizeBytes(type);
    window_transform t;
    GDALDatasetH mem;
    int band = 1, ok;
    const char *options[] = {run->options->all_touched ? "ALL_TOUCHED=TRUE" : NULL, NULL};
    snprintf(spec, sizeof spec,
             "MEM:::DATAPOINTER=%p,PIXELS=%d,LINES=%d,BANDS=1,DATATYPE=%s,LINEOFFSET=%d",
             buffer, w, h, GDALGetDataTypeName(type), stride * bytes);
    mem = GDALOpenEx(spec, GDAL_OF_RASTER | GDAL_OF_UPDATE | GDAL_OF_INTERNAL, NULL, NULL, NULL);
    if (mem == NULL)
        return -1;
    t.inverse_gt = run->inverse_gt;
    t.x0 = x0;
    t.y0 = y0;
    ok = GDALRasterizeGeometries(mem, 1, &band, n, geometries, to_window_pixels, &t, values,
                                 (char **)options, NULL, NULL) == CE_None;
    GDALClose(mem);
    return ok ? 0 : -1;
}

/* ---- jobs ----------------------------------------------------------------------- */

static void free_context(worker_context *ctx)
{
    if (ctx->raster != NULL)
        GDALClose(ctx->raster);
    pgp_free(ctx->values);
    pgp_free(ctx->level);
    pgp_free(ctx->owner);
    pgp_free(ctx->samples);
    pgp_free(ctx);
}

static worker_context *borrow_context(zonal_run *run)
{
    const size_t pixels = (size_t)run->tile_w * run->tile_h;
    worker_context *ctx;
    CPLAcquireMutex(run->contexts_mutex, 1000.0);
    ctx = run->idle_contexts;
    if (ctx != NULL)
        run->idle_contexts = ctx->next;
    CPLReleaseMutex(run->contexts_mutex);
    if (ctx != NULL)
        return ctx;
    ctx = (worker_context *)pgp_calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return NULL;
    ctx->values = (double *)pgp_malloc_array(pixels, sizeof(double));
    ctx->level = (GUInt32 *)pgp_malloc_array(pixels, sizeof(GUInt32));
    ctx->owner = (GUInt32 *)pgp_malloc_array(pixels, sizeof(GUInt32));
    ctx->samples = run->options->value_counts
                       ? (double *)pgp_malloc_array(pixels, sizeof(double))
                       : NULL;
    if (ctx->values == NULL || ctx->level == NULL || ctx->owner == NULL ||
        (run->options->value_counts && ctx->samples == NULL)) {
        free_context(ctx);
        return NULL;
    }
    return ctx;
}

static void return_context(zonal_run *run, worker_context *ctx)
{
    CPLAcquireMutex(run->contexts_mutex, 1000.0);
    ctx->next = run->idle_contexts;
    run->idle_contexts = ctx;
    CPLReleaseMutex(run->contexts_mutex);
}

/* The raster, opened for this context. A graph computes its tiles on this thread
 * (serial, no prefetch): the job is already one of the executor's. */
static GDALDatasetH context_raster(const zonal_run *run, worker_context *ctx)
{
    char **saved;
    if (ctx->raster != NULL)
        return ctx->raster;
    saved = CPLGetThreadLocalConfigOptions();
    CPLSetThreadLocalConfigOption("PGP_EXECUTOR", "serial");
    CPLSetThreadLocalConfigOption("PGP_PREFETCH", "0");
    ctx->raster = GDALOpenEx(run->raster_path,
                             GDAL_OF_RASTER | GDAL_OF_INTERNAL | GDAL_OF_VERBOSE_ERROR, NULL,
                             NULL, NULL);
    CPLSetThreadLocalConfigOptions((const char *const *)saved);
    CSLDestroy(saved);
    return ctx->raster;
}

/* The part of feature f's pixel envelope inside the tile at (tx0, ty0), in tile
 * coordinates; 0 when empty. */
static int tile_window(const feature_geometry *f, int tx0, int ty0, int tw, int th, int *w)
{
    w[0] = MAX(f->px0, tx0) - tx0;
    w[1] = MAX(f->py0, ty0) - ty0;
    w[2] = MIN(f->px1, tx0 + tw) - tx0;
    w[3] = MIN(f->py1, ty0 + th) - ty0;
    return w[0] < w[2] && w[1] < w[3];
}

/* Puts each feature in a burn group: all in group 0 when the later feature wins,
 * else the lowest group above every group already burnt under its window, so the
 * members of a group never share a window pixel and one rasterisation burns them
 * all (overlapping polygons land in different groups). Returns the group count;
 * group[k] = -1 for a feature with no pixel in the tile. */
static int assign_groups(const zonal_run *run, worker_context *ctx, int tx0, int ty0, int tw,
                         int th, const size_t *features, size_t n, int *group)
{
    int groups = 0, w[4], x, y;
    size_t k;
    if (run->options->polygons_might_overlap)
        memset(ctx->level, 0, (size_t)tw * th * sizeof *ctx->level);
    for (k = 0; k < n; k++) {
        int g = 0;
        if (!tile_window(&run->geometries[features[k]], tx0, ty0, tw, th, w)) {
            group[k] = -1;
            continue;
        }
        if (run->options->polygons_might_overlap) {
            for (y = w[1]; y < w[3]; y++)
                for (x = w[0]; x < w[2]; x++)
                    g = MAX(g, (int)ctx->level[(size_t)y * tw + x]);
            for (y = w[1]; y < w[3]; y++)
                for (x = w[0]; x < w[2]; x++)
                    ctx->level[(size_t)y * tw + x] = (GUInt32)g + 1;
        }
        group[k] = g;
        groups = MAX(groups, g + 1);
    }
    return groups;
}

/* Summaries of the features in slots [0, n) over their pixels in the tile: each
 * group burnt in one rasterisation (burn value = slot + 1, layer order, so the
 * later feature wins a pixel only within one group), then each member's window
 * scanned for its own pixels. */
static int summarise_tile(const zonal_run *run, worker_context *ctx, int tx0, int ty0, int tw,
                          int th, const size_t *features, size_t n, pgp_zonal_feature *out)
{
    OGRGeometryH *geometries = (OGRGeometryH *)pgp_malloc_array(n, sizeof *geometries);
    double *burn_values = (double *)pgp_malloc_array(n, sizeof *burn_values);
    int *group = (int *)pgp_malloc_array(n, sizeof *group);
    int groups, g, w[4], x, y, rc = -1;
    size_t k;
    if (geometries == NULL || burn_values == NULL || group == NULL)
        goto done;
    groups = assign_groups(run, ctx, tx0, ty0, tw, th, features, n, group);
    for (g = 0; g < groups; g++) {
        int members = 0;
        for (k = 0; k < n; k++) {
            if (group[k] != g)
                continue;
            geometries[members] = run->geometries[features[k]].geometry;
            burn_values[members++] = (double)(k + 1);
        }
        memset(ctx->owner, 0, (size_t)tw * th * sizeof *ctx->owner);
        if (burn(run, ctx->owner, GDT_UInt32, tw, tx0, ty0, tw, th, members, geometries,
                 burn_values) != 0)
            goto done;
        for (k = 0; k < n; k++) {
            if (group[k] != g)
                continue;
            tile_window(&run->geometries[features[k]], tx0, ty0, tw, th, w);
            for (y = w[1]; y < w[3]; y++)
                for (x = w[0]; x < w[2]; x++)
                    if (ctx->owner[(size_t)y * tw + x] == k + 1)
                        add_pixel(run, &out[k], ctx->values[(size_t)y * tw + x], ctx->samples);
            if (ctx->samples != NULL && set_histogram(&out[k], ctx->samples, out[k].count) != 0)
                goto done;
        }
    }
    rc = 0;
done:
    pgp_free(geometries);
    pgp_free(burn_values);
    pgp_free(group);
    return rc;
}

static int tile_job(void *arg, size_t index)
{
    zonal_run *run = (zonal_run *)arg;
    const size_t tile = run->batch_tiles[index];
    const size_t *features = run->tile_features + run->tile_start[tile];
    const size_t n = run->tile_start[tile + 1] - run->tile_start[tile];
    const int tx = (int)(tile % (size_t)run->tiles_x), ty = (int)(tile / (size_t)run->tiles_x);
    const int x0 = tx * run->tile_w, y0 = ty * run->tile_h;
    const int tw = MIN(run->tile_w, run->x_size - x0), th = MIN(run->tile_h, run->y_size - y0);
    worker_context *ctx = borrow_context(run);
    pgp_zonal_feature *out = (pgp_zonal_feature *)pgp_calloc(n, sizeof *out);
    GDALDatasetH raster;
    int rc = -1;
    run->batch_partials[index] = out;
    if (ctx == NULL || out == NULL)
        goto done;
    raster = context_raster(run, ctx);
    if (raster == NULL ||
        GDALRasterIO(GDALGetRasterBand(raster, run->band), GF_Read, x0, y0, tw, th, ctx->values,
                     tw, th, GDT_Float64, 0, 0) != CE_None)
        goto done;
    rc = summarise_tile(run, ctx, x0, y0, tw, th, features, n, out);
done:
    if (rc != 0) {
        char cause[2048]; /* a copy: CPLError formats into the buffer it lives in */
        CPLStrlcpy(cause, CPLGetLastErrorMsg(), sizeof cause);
        CPLError(CE_Failure, CPLE_AppDefined,
                 "zonal statistics of '%s' band %d, tile (%d, %d): %s", run->raster_path,
                 run->band, tx, ty, cause);
    }
    if (ctx != NULL)
        return_context(run, ctx);
    return rc;
}

/* ---- set-up --------------------------------------------------------------------- */

static int is_polygon_layer(OGRLayerH layer)
{
    const OGRwkbGeometryType flat = wkbFlatten(OGR_L_GetGeomType(layer));
    return flat == wkbPolygon || flat == wkbMultiPolygon;
}

/* The pixel envelope of geometry g (raster SRS), one pixel wider on each side so
 * ALL_TOUCHED edges are inside, clipped to the raster. */
static void pixel_envelope(const zonal_run *run, OGRGeometryH g, feature_geometry *f)
{
    OGREnvelope e;
    double xs[2], ys[2];
    OGR_G_GetEnvelope(g, &e);
    xs[0] = run->inverse_gt[0] + run->inverse_gt[1] * e.MinX;
    xs[1] = run->inverse_gt[0] + run->inverse_gt[1] * e.MaxX;
    ys[0] = run->inverse_gt[3] + run->inverse_gt[5] * e.MinY;
    ys[1] = run->inverse_gt[3] + run->inverse_gt[5] * e.MaxY;
    f->px0 = (int)MAX(-1.0, MIN(run->x_size, floor(MIN(xs[0], xs[1])) - 1));
    f->px1 = (int)MAX(-1.0, MIN(run->x_size, ceil(MAX(xs[0], xs[1])) + 1));
    f->py0 = (int)MAX(-1.0, MIN(run->y_size, floor(MIN(ys[0], ys[1])) - 1));
    f->py1 = (int)MAX(-1.0, MIN(run->y_size, ceil(MAX(ys[0], ys[1])) + 1));
    f->px0 = MAX(f->px0, 0);
    f->py0 = MAX(f->py0, 0);
}

/* Reads every feature: FID, geometry in the raster's SRS, pixel envelope. */
static int read_features(zonal_run *run, OGRLayerH layer, OGRSpatialReferenceH raster_srs,
                         pgp_zonal_result *result)
{
    OGRSpatialReferenceH layer_srs = OGR_L_GetSpatialRef(layer);
    OGRCoordinateTransformationH to_raster = NULL;
    OGRFeatureH feature;
    size_t capacity = 0;
    if (layer_srs != NULL && raster_srs != NULL && !OSRIsSame(layer_srs, raster_srs)) {
        OGRSpatialReferenceH source = OSRClone(layer_srs);
        OSRSetAxisMappingStrategy(source, OAMS_TRADITIONAL_GIS_ORDER);
        to_raster = OCTNewCoordinateTransformation(source, raster_srs);
        OSRDestroySpatialReference(source);
        if (to_raster == NULL)
            return -1;
    }
    OGR_L_ResetReading(layer);
    while ((feature = OGR_L_GetNextFeature(layer)) != NULL) {
        OGRGeometryH g = OGR_F_StealGeometry(feature);
        const size_t i = result->n_features;
        if (i == capacity) {
            const size_t grown = capacity ? 2 * capacity : 64;
            void *features = pgp_realloc(result->features, grown * sizeof *result->features);
            void *geometries = features ? pgp_realloc(run->geometries,
                                                              grown * sizeof *run->geometries)
                                        : NULL;
            if (features != NULL)
                result->features = (pgp_zonal_feature *)features;
            if (geometries == NULL) {
                OGR_G_DestroyGeometry(g);
                OGR_F_Destroy(feature);
                break;
            }
            run->geometries = (feature_geometry *)geometries;
            capacity = grown;
        }
        memset(&result->features[i], 0, sizeof result->features[i]);
        memset(&run->geometries[i], 0, sizeof run->geometries[i]);
        result->features[i].fid = OGR_F_GetFID(feature);
        result->n_features++;
        OGR_F_Destroy(feature);
        if (g != NULL && OGR_G_IsEmpty(g)) {
            OGR_G_DestroyGeometry(g);
            g = NULL;
        }
        if (g != NULL && to_raster != NULL && OGR_G_Transform(g, to_raster) != OGRERR_NONE) {
            CPLError(CE_Failure, CPLE_AppDefined,
                     "feature %lld cannot be transformed into the raster's SRS",
                     (long long)result->features[i].fid);
            OGR_G_DestroyGeometry(g);
            break;
        }
        result->features[i].has_geometry = g != NULL;
        run->geometries[i].geometry = g;
        if (g != NULL)
            pixel_envelope(run, g, &run->geometries[i]);
    }
    if (to_raster != NULL)
        OCTDestroyCoordinateTransformation(to_raster);
    return CPLGetLastErrorType() == CE_Failure ? -1 : 0;
}

/* Feature i's share of the bucket index: counts one more feature for each tile
 * its envelope meets, or (fill != NULL) appends i to those tiles' slices. */
static void place_feature(zonal_run *run, size_t i, size_t *fill)
{
    const feature_geometry *f = &run->geometries[i];
    int tx, ty;
    if (f->geometry == NULL || f->px0 >= f->px1 || f->py0 >= f->py1)
        return;
    for (ty = f->py0 / run->tile_h; ty <= (f->py1 - 1) / run->tile_h; ty++)
        for (tx = f->px0 / run->tile_w; tx <= (f->px1 - 1) / run->tile_w; tx++) {
            const size_t t = (size_t)ty * run->tiles_x + tx;
            if (fill == NULL)
                run->tile_start[t + 1]++;
            else
                run->tile_features[fill[t]++] = i;
        }
}

/* The bucket index (CSR): for each tile, the features whose pixel envelope
 * meets it, in layer order. */
static int index_tiles(zonal_run *run, size_t n_features, size_t n_tiles)
{
    size_t i, *fill;
    run->tile_start = (size_t *)pgp_calloc(n_tiles + 1, sizeof(size_t));
    if (run->tile_start == NULL)
        return -1;
    for (i = 0; i < n_features; i++)
        place_feature(run, i, NULL);
    for (i = 0; i < n_tiles; i++)
        run->tile_start[i + 1] += run->tile_start[i];
    run->tile_features = (size_t *)pgp_malloc_array(MAX(run->tile_start[n_tiles], 1),
                                                    sizeof(size_t));
    fill = (size_t *)pgp_malloc_array(n_tiles, sizeof(size_t));
    if (run->tile_features == NULL || fill == NULL) {
        pgp_free(fill);
        return -1;
    }
    memcpy(fill, run->tile_start, n_tiles * sizeof(size_t));
    for (i = 0; i < n_features; i++)
        place_feature(run, i, fill);
    pgp_free(fill);
    return 0;
}

/* pygeoprocessing's fallback for a feature that met no pixel centre: the pixels
 * its envelope overlaps (offset truncated, far edge rounded up, clamped). */
static int envelope_fallback(const zonal_run *run, GDALRasterBandH band, const double *gt,
                             OGRGeometryH g, pgp_zonal_feature *s)
{
    OGREnvelope e;
    double x_min, x_max, y_min, y_max, *values, *samples = NULL;
    int xoff, yoff, w, h;
    size_t i, n;
    int rc = -1;
    OGR_G_GetEnvelope(g, &e);
    x_min = gt[1] < 0 ? e.MaxX : e.MinX;
    x_max = gt[1] < 0 ? e.MinX : e.MaxX;
    y_min = gt[5] < 0 ? e.MaxY : e.MinY;
    y_max = gt[5] < 0 ? e.MinY : e.MaxY;
    xoff = (int)((x_min - gt[0]) / gt[1]);
    yoff = (int)((y_min - gt[3]) / gt[5]);
    w = (int)ceil((x_max - gt[0]) / gt[1]) - xoff;
    h = (int)ceil((y_max - gt[3]) / gt[5]) - yoff;
    if (xoff < 0) {
        w += xoff;
        xoff = 0;
    }
    if (yoff < 0) {
        h += yoff;
        yoff = 0;
    }
    w = MIN(w, run->x_size - xoff);
    h = MIN(h, run->y_size - yoff);
    if (w <= 0 || h <= 0)
        return 0;
    n = (size_t)w * h;
    values = (double *)pgp_malloc_array(n, sizeof(double));
    if (run->options->value_counts)
        samples = (double *)pgp_malloc_array(n, sizeof(double));
    if (values == NULL || (run->options->value_counts && samples == NULL) ||
        GDALRasterIO(band, GF_Read, xoff, yoff, w, h, values, w, h, GDT_Float64, 0, 0) !=
            CE_None)
        goto done;
    s->fallback = 1;
    for (i = 0; i < n; i++)
        add_pixel(run, s, values[i], samples);
    rc = samples != NULL ? set_histogram(s, samples, s->count) : 0;
done:
    pgp_free(values);
    pgp_free(samples);
    return rc;
}

static void free_contexts(zonal_run *run)
{
    while (run->idle_contexts != NULL) {
        worker_context *ctx = run->idle_contexts;
        run->idle_contexts = ctx->next;
        free_context(ctx);
    }
}

/* Computes the tiles some feature meets, in batches, merging each batch's
 * partials per feature in tile order. */
static int compute_tiles(zonal_run *run, pgp_executor *executor, size_t n_tiles,
                         pgp_zonal_result *result)
{
    size_t *jobs, n_jobs = 0, done, t;
    const size_t batch = 64 + 16 * (size_t)pgp_executor_threads(executor);
    int rc = 0;
    jobs = (size_t *)pgp_malloc_array(n_tiles ? n_tiles : 1, sizeof(size_t));
    run->batch_partials = (pgp_zonal_feature **)pgp_calloc(batch, sizeof(void *));
    if (jobs == NULL || run->batch_partials == NULL) {
        pgp_free(jobs);
        return -1;
    }
    for (t = 0; t < n_tiles; t++)
        if (run->tile_start[t + 1] > run->tile_start[t])
            jobs[n_jobs++] = t;
    result->tiles_read = n_jobs;
    for (done = 0; done < n_jobs && rc == 0; done += batch) {
        const size_t n = MIN(batch, n_jobs - done);
        void *scaled = run->options->progress
                           ? GDALCreateScaledProgress((double)done / n_jobs,
                                                      (double)(done + n) / n_jobs,
                                                      run->options->progress,
                                                      run->options->progress_arg)
                           : NULL;
        size_t j;
        run->batch_tiles = jobs + done;
        if (pgp_executor_run(executor, n, tile_job, run,
                             scaled ? GDALScaledProgress : NULL, scaled) != CE_None)
            rc = -1;
        GDALDestroyScaledProgress(scaled);
        for (j = 0; j < n; j++) {
            const size_t tile = run->batch_tiles[j];
            pgp_zonal_feature *partials = run->batch_partials[j];
            size_t k;
            for (k = 0; partials != NULL && k < run->tile_start[tile + 1] - run->tile_start[tile];
                 k++) {
                const size_t f = run->tile_features[run->tile_start[tile] + k];
                if (rc == 0 && pgp_zonal_merge(&result->features[f], &partials[k]) != 0)
                    rc = -1;
                pgp_free(partials[k].values);
            }
            pgp_free(partials);
            run->batch_partials[j] = NULL;
        }
    }
    pgp_free(jobs);
    return rc;
}

pgp_zonal_result *pgp_zonal_compute(const char *raster_path, int band_index,
                                    const char *vector_path, const char *layer_name,
                                    const pgp_zonal_options *options)
{
    zonal_run run;
    pgp_zonal_result *result = NULL;
    GDALDatasetH raster = NULL, vector = NULL;
    GDALRasterBandH band;
    OGRLayerH layer;
    OGRSpatialReferenceH raster_srs = NULL;
    pgp_executor *executor;
    double gt[6];
    int has_nodata = 0, block_x, block_y, ok = 0;
    size_t i, n_tiles;

    memset(&run, 0, sizeof run);
    run.raster_path = raster_path;
    run.band = band_index;
    run.options = options;
    CPLErrorReset();
    raster = GDALOpenEx(raster_path, GDAL_OF_RASTER | GDAL_OF_INTERNAL | GDAL_OF_VERBOSE_ERROR,
                        NULL, NULL, NULL);
    if (raster == NULL)
        goto done;
    band = GDALGetRasterBand(raster, band_index);
    if (band == NULL) {
        CPLError(CE_Failure, CPLE_IllegalArg, "'%s' has no band %d", raster_path, band_index);
        goto done;
    }
    if (GDALGetGeoTransform(raster, gt) != CE_None || gt[2] != 0 || gt[4] != 0 ||
        !GDALInvGeoTransform(gt, run.inverse_gt)) {
        CPLError(CE_Failure, CPLE_NotSupported,
                 "'%s' has no north-up geotransform: zonal statistics need one", raster_path);
        goto done;
    }
    vector = GDALOpenEx(vector_path, GDAL_OF_VECTOR | GDAL_OF_INTERNAL | GDAL_OF_VERBOSE_ERROR,
                        NULL, NULL, NULL);
    if (vector == NULL)
        goto done;
    layer = layer_name ? GDALDatasetGetLayerByName(vector, layer_name)
                       : GDALDatasetGetLayer(vector, 0);
    if (layer == NULL) {
        CPLError(CE_Failure, CPLE_IllegalArg, "'%s' has no layer %s%s%s", vector_path,
                 layer_name ? "'" : "", layer_name ? layer_name : "at all",
                 layer_name ? "'" : "");
        goto done;
    }
    if (!is_polygon_layer(layer)) {
        CPLError(CE_Failure, CPLE_IllegalArg,
                 "layer '%s' of '%s' holds %s geometries: zonal statistics need polygons or "
                 "multipolygons",
                 OGR_L_GetName(layer), vector_path,
                 OGRGeometryTypeToName(OGR_L_GetGeomType(layer)));
        goto done;
    }
    run.x_size = GDALGetRasterXSize(raster);
    run.y_size = GDALGetRasterYSize(raster);
    run.nodata.value = GDALGetRasterNoDataValue(band, &has_nodata);
    run.nodata.present = has_nodata;
    run.nodata.exact = !GDALDataTypeIsFloating(GDALGetRasterDataType(band));
    GDALGetBlockSize(band, &block_x, &block_y);
    run.tile_w = MIN(run.x_size, block_x * ((MIN_TILE_SIDE + block_x - 1) / block_x));
    run.tile_h = MIN(run.y_size, block_y * ((MIN_TILE_SIDE + block_y - 1) / block_y));
    run.tiles_x = (run.x_size + run.tile_w - 1) / run.tile_w;
    n_tiles = (size_t)run.tiles_x * ((run.y_size + run.tile_h - 1) / run.tile_h);

    result = (pgp_zonal_result *)pgp_calloc(1, sizeof *result);
    if (result == NULL)
        goto done;
    result->tiles_total = n_tiles;
    if (GDALGetSpatialRef(raster) != NULL) {
        raster_srs = OSRClone(GDALGetSpatialRef(raster));
        OSRSetAxisMappingStrategy(raster_srs, OAMS_TRADITIONAL_GIS_ORDER);
    }
    if (read_features(&run, layer, raster_srs, result) != 0 ||
        index_tiles(&run, result->n_features, n_tiles) != 0)
        goto done;
    executor = pgp_executor_get(options->n_threads);
    run.contexts_mutex = CPLCreateMutex();
    if (executor == NULL || run.contexts_mutex == NULL)
        goto done;
    CPLReleaseMutex(run.contexts_mutex);
    if (compute_tiles(&run, executor, n_tiles, result) != 0)
        goto done;
    for (i = 0; i < result->n_features; i++) {
        pgp_zonal_feature *s = &result->features[i];
        if (s->has_geometry && s->count == 0 && s->nodata_count == 0 &&
            envelope_fallback(&run, band, gt, run.geometries[i].geometry, s) != 0)
            goto done;
    }
    ok = 1;
done:
    free_contexts(&run);
    if (run.contexts_mutex != NULL)
        CPLDestroyMutex(run.contexts_mutex);
    for (i = 0; run.geometries != NULL && result != NULL && i < result->n_features; i++)
        OGR_G_DestroyGeometry(run.geometries[i].geometry);
    pgp_free(run.geometries);
    pgp_free(run.tile_start);
    pgp_free(run.tile_features);
    pgp_free(run.batch_partials);
    if (raster_srs != NULL)
        OSRDestroySpatialReference(raster_srs);
    if (vector != NULL)
        GDALClose(vector);
    if (raster != NULL)
        GDALClose(raster);
    if (!ok) {
        pgp_zonal_result_free(result);
        return NULL;
    }
    return result;
}

void pgp_zonal_result_free(pgp_zonal_result *result)
{
    size_t i;
    if (result == NULL)
        return;
    for (i = 0; i < result->n_features; i++)
        pgp_free(result->features[i].values);
    pgp_free(result->features);
    pgp_free(result);
}
