/* node_stitch.c — the <Stitch> node kind: pygeoprocessing's stitch_rasters as
 * a node (docs/driver.md#stitch, docs/semantics.md#stitch). Each tile is its
 * target's values with the bases that meet it folded in, in list order.
 *
 * Opening reads every base's grid once and places it on the target's grid
 * (warped onto warp_raster's grid first when its projection or pixel size
 * differ); an index of the placed extents gives a tile its bases; workers
 * share a small pool of open bases, so neighbouring tiles do not reopen them. */
#include "pgp/node.h"
#include "pgp/alloc.h"
#include "pgp/cache.h"
#include "pgp/simd.h"
#include "pgp/source.h"
#include "pgp/warp.h"

#include <float.h>
#include <limits.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_multiproc.h"
#include "cpl_string.h"

/* Buckets of the extent index, at most: each a whole number of tiles. */
#define MAX_BUCKETS 4096
/* Open bases kept for the next tile, per Stitch. */
#define POOL_SIZE 64

typedef enum overlap_mode { OVERLAP_ETCH, OVERLAP_REPLACE, OVERLAP_ADD } overlap_mode;

static const char *const overlap_names[] = {"etch", "replace", "add"};

typedef struct stitch_base {
    char *path;
    int band;
    GDALResampleAlg resampling;
    int warped;           /* read through a warped view onto grid */
    pgp_grid grid;        /* warped: warp_raster's grid for it */
    int x, y, w, h;       /* placement on the target's grid (x, y may be < 0) */
    pgp_nodata nodata;
    double *row_scale;    /* area weighting: a factor per row, else NULL */
} stitch_base;

typedef struct pooled_base {
    int base;
    GDALDatasetH dataset;
} pooled_base;

typedef struct stitch_state {
    char *target;
    overlap_mode overlap;
    int area_weight;
    int n_bases;
    stitch_base *bases;
    /* The index: bucket b holds bucket_bases[bucket_start[b] .. bucket_start[b+1]),
     * the bases meeting it in list order. */
    int bucket_w, bucket_h, buckets_x, buckets_y;
    int *bucket_start, *bucket_bases;
    uint64_t owner; /* of the bases' blocks in the shared block cache (node: base) */
    CPLMutex *pool_mutex;
    pooled_base pool[POOL_SIZE]; /* idle open bases, oldest first */
    int pool_count;
} stitch_state;

/* ---- parsing ------------------------------------------------------------------ */

static int parse_base(const CPLXMLNode *element, const char *base_dir, const char *where,
                      int index, stitch_base *base)
{
    static const char *const attributes[] = {"file", "band", "resampling", NULL};
    const char *file = CPLGetXMLValue(element, "file", NULL);
    const char *band = CPLGetXMLValue(element, "band", "1");
    char base_where[512], err[512];
    snprintf(base_where, sizeof base_where, "%s <Base> #%d", where, index + 1);
    if (pgp_graph_check_leaf(element, base_where, attributes) != 0)
        return -1;
    if (file == NULL || *file == '\0') {
        pgp_graph_report(base_where, "missing attribute 'file'");
        return -1;
    }
    if (pgp_graph_parse_int(band, 1, INT_MAX, &base->band) != 0) {
        pgp_graph_report(base_where, "band '%s' is not a band number (1, 2, ...)", band);
        return -1;
    }
    if (pgp_grid_parse_resampling(CPLGetXMLValue(element, "resampling", "near"),
                                  &base->resampling, err, sizeof err) != 0) {
        pgp_graph_report(base_where, "%s", err);
        return -1;
    }
    base->path = pgp_strdup(pgp_graph_resolve_path(base_dir, file));
    return base->path != NULL ? 0 : -1;
}

static int parse_stitch(pgp_graph *graph, const CPLXMLNode *element, const char *base_dir,
                        pgp_node *node)
{
    static const char *const attributes[] = {"name", "target", "overlap", "areaWeightM2ToWGS84",
                                             NULL};
    const char *target = CPLGetXMLValue(element, "target", NULL);
    const char *overlap = CPLGetXMLValue(element, "overlap", "etch");
    const CPLXMLNode *child;
    stitch_state *s;
    int n = 0, i;

    if (pgp_graph_check_attributes(element, node->where, attributes) != 0)
        return -1;
    if ((s = (stitch_state *)pgp_calloc(1, sizeof *s)) == NULL)
        return -1;
    node->state = s;
    if (target == NULL || *target == '\0') {
        pgp_graph_report(node->where, "missing attribute 'target' (the <Source> stitched into)");
        return -1;
    }
    for (i = 0; i < 3 && !EQUAL(overlap, overlap_names[i]); i++)
        ;
    if (i == 3) {
        pgp_graph_report(node->where, "overlap '%s' is not one of etch, replace, add", overlap);
        return -1;
    }
    s->overlap = (overlap_mode)i;
    if (pgp_graph_parse_flag(element, node->where, "areaWeightM2ToWGS84", 0,
                             &s->area_weight) != 0)
        return -1;
    for (child = element->psChild; child != NULL; child = child->psNext)
        if (child->eType == CXT_Element)
            n++;
    if (n == 0) {
        pgp_graph_report(node->where, "no <Base file=\"...\"/>: nothing to stitch");
        return -1;
    }
    s->bases = (stitch_base *)pgp_calloc(n, sizeof *s->bases);
    if ((s->target = pgp_strdup(target)) == NULL || s->bases == NULL)
        return -1;
    for (child = element->psChild; child != NULL; child = child->psNext) {
        if (child->eType != CXT_Element)
            continue;
        if (strcmp(child->pszValue, "Base") != 0) {
            pgp_graph_report(node->where,
                             "unexpected element <%s>: a <Stitch> holds <Base> elements",
                             child->pszValue);
            return -1;
        }
        if (parse_base(child, base_dir, node->where, s->n_bases, &s->bases[s->n_bases]) != 0)
            return -1;
        s->n_bases++;
        pgp_graph_add_file(graph, s->bases[s->n_bases - 1].path);
    }
    node->kind = PGP_NODE_OTHER;
    return 0;
}

/* The target's type and nodata are the Stitch's. */
static int inherit_stitch(pgp_graph *graph, pgp_node *node)
{
    const stitch_state *s = (const stitch_state *)node->state;
    const int target = pgp_graph_find(graph, s->target);
    const pgp_node *t = target >= 0 ? &graph->nodes[target] : NULL;
    if (t == NULL || t->kind != PGP_NODE_SOURCE) {
        pgp_graph_report(node->where, "target '%s' names no <Source>", s->target);
        return -1;
    }
    if (graph->aligned) {
        pgp_graph_report(node->where, "a <Stitch> is on its target's grid: it cannot be in a "
                                      "graph with <Align>");
        return -1;
    }
    if (!t->nodata.present) {
        pgp_graph_report(node->where,
                         "target '%s' ('%s' band %d) has no nodata value: stitching needs one "
                         "(set it, or give the <Source> a noData)",
                         s->target, t->path, t->band);
        return -1;
    }
    node->data_type = t->data_type;
    node->nodata = t->nodata;
    return 0;
}

/* ---- placing the bases ---------------------------------------------------------- */

/* The target's projection and pixel size, as pygeoprocessing compares them. */
typedef struct target_grid {
    const char *wkt; /* GDALGetProjectionRef's, the target <Source>'s */
    double gt[6], inverse[6];
    int x_size, y_size;
    GDALDataType type;
} target_grid;

/* A value stored into the target's type as numpy's assignment stores it:
 * rounded for floats, truncated for integers (saturated, NaN 0). */
static inline __attribute__((always_inline)) double store_as(double v, GDALDataType type)
{
    double lo, hi;
    switch (type) {
    case GDT_Float32:
        return (double)(float)v;
    case GDT_Float64:
        return v;
    case GDT_Byte: lo = 0, hi = 255; break;
    case GDT_Int16: lo = -32768, hi = 32767; break;
    case GDT_UInt16: lo = 0, hi = 65535; break;
    case GDT_Int32: lo = INT_MIN, hi = INT_MAX; break;
    case GDT_UInt32: lo = 0, hi = 4294967295.0; break;
    default: lo = -DBL_MAX, hi = DBL_MAX; break;
    }
    if (CPLIsNan(v))
        return 0;
    v = trunc(v);
    return v < lo ? lo : v > hi ? hi : v;
}

/* pygeoprocessing's m^2 area of a square WGS84 pixel of side size degrees
 * centred on latitude lat (on the ellipsoid). */
static double wgs84_pixel_area(double size, double lat)
{
    const double b = 6356752.3142, e = sqrt(1 - (b / 6378137) * (b / 6378137));
    double area[2];
    int i;
    for (i = 0; i < 2; i++) {
        const double s = sin((lat + (i == 0 ? size : -size) / 2) * (M_PI / 180.0));
        const double zm = 1 - e * s, zp = 1 + e * s;
        area[i] = M_PI * (b * b) * (log(zp / zm) / (2 * e) + s / (zp * zm));
    }
    return fabs(size / 360. * (area[0] - area[1]));
}

/* Area weighting of a warped base: per row (northernmost first), the WGS84
 * area of a pixel at the row's centre latitude (numpy.linspace's centres)
 * over the base's own pixel area. */
static int area_scales(stitch_base *base, double base_pixel_area)
{
    const int n = base->grid.y_size;
    const pgp_bbox box = pgp_grid_raster_bbox(base->grid.gt, base->grid.x_size, n);
    const double size = (box.maxy - box.miny) / n;
    const double start = box.miny + size / 2, stop = box.maxy - size / 2;
    int i;
    base->row_scale = (double *)pgp_malloc_array(n, sizeof(double));
    if (base->row_scale == NULL)
        return -1;
    for (i = 0; i < n; i++) {
        const int k = n - 1 - i;
        const double centre =
            n > 1 && k == n - 1 ? stop : k * ((stop - start) / (n > 1 ? n - 1 : 1)) + start;
        base->row_scale[i] = wgs84_pixel_area(size, centre) / base_pixel_area;
    }
    return 0;
}

/* Reads base's grid, decides whether it is warped, and places it. 0; 1 when
 * its box misses the target's (skipped); -1 after CPLError. */
static int place_base(const pgp_node *node, const target_grid *target, int area_weight,
                      stitch_base *base)
{
    GDALDatasetH ds;
    GDALRasterBandH band;
    double gt[6], x, y;
    const char *wkt;
    pgp_bbox box, target_box, both;
    int has_nodata = 0, status = 0;
    char err[1024];

    if ((ds = pgp_open_raster(node->where, "base", base->path, 0)) == NULL)
        return -1;
    if (base->band > GDALGetRasterCount(ds)) {
        pgp_graph_report(node->where, "base '%s' has no band %d (it has %d)", base->path,
                         base->band, GDALGetRasterCount(ds));
        GDALClose(ds);
        return -1;
    }
    band = GDALGetRasterBand(ds, base->band);
    if (GDALDataTypeIsComplex(GDALGetRasterDataType(band))) {
        pgp_graph_report(node->where, "base '%s' band %d is complex, which pgp does not stitch",
                         base->path, base->band);
        GDALClose(ds);
        return -1;
    }
    base->nodata.value = GDALGetRasterNoDataValue(band, &has_nodata);
    base->nodata.present = has_nodata;
    if (GDALGetGeoTransform(ds, gt) != CE_None) {
        pgp_graph_report(node->where, "base '%s' has no geotransform", base->path);
        GDALClose(ds);
        return -1;
    }
    wkt = GDALGetProjectionRef(ds);
    box = pgp_grid_raster_bbox(gt, GDALGetRasterXSize(ds), GDALGetRasterYSize(ds));
    base->warped = strcmp(wkt, target->wkt) != 0 || gt[1] != target->gt[1] ||
                   gt[5] != target->gt[5];
    /* Warped bases keep their own type, area-weighted ones take the target's. */
    base->nodata.exact = GDALDataTypeIsInteger(
        base->warped && area_weight ? target->type : GDALGetRasterDataType(band));
    if (strcmp(wkt, target->wkt) != 0 &&
        pgp_grid_transform_bbox(box, wkt, target->wkt, &box, err, sizeof err) != 0) {
        pgp_graph_report(node->where, "base '%s': %s", base->path, err);
        GDALClose(ds);
        return -1;
    }
    target_box = pgp_grid_raster_bbox(target->gt, target->x_size, target->y_size);
    {
        const pgp_bbox boxes[2] = {box, target_box};
        CPLPushErrorHandler(CPLQuietErrorHandler);
        if (pgp_grid_merge_bboxes(boxes, 2, PGP_BBOX_INTERSECTION, &both, err, sizeof err) != 0)
            status = 1;
        CPLPopErrorHandler();
    }
    if (status == 0 && base->warped) {
        const double pixel[2] = {target->gt[1], target->gt[5]};
        if (pgp_grid_from_bbox(box, pixel, &base->grid.x_size, &base->grid.y_size, base->grid.gt,
                               err, sizeof err) != 0) {
            pgp_graph_report(node->where, "base '%s': %s", base->path, err);
            status = -1;
        } else if (*target->wkt != '\0') {
            base->grid.reproject = 1;
            if ((base->grid.srs_wkt = pgp_strdup(target->wkt)) == NULL)
                status = -1;
        }
        if (status == 0 && area_weight)
            status = area_scales(base, fabs(gt[1] * gt[5]));
        memcpy(gt, base->grid.gt, sizeof gt);
        base->w = base->grid.x_size;
        base->h = base->grid.y_size;
    } else {
        base->w = GDALGetRasterXSize(ds);
        base->h = GDALGetRasterYSize(ds);
    }
    GDALClose(ds);
    if (status != 0)
        return status;
    /* pygeoprocessing: int() of the corner in target pixels, toward zero. */
    GDALApplyGeoTransform((double *)target->inverse, gt[0], gt[3], &x, &y);
    if (!(fabs(x) < INT_MAX / 2 && fabs(y) < INT_MAX / 2)) {
        pgp_graph_report(node->where, "base '%s' lies too far from the target", base->path);
        return -1;
    }
    base->x = (int)x;
    base->y = (int)y;
    return 0;
}

/* Does base meet the rectangle [x0, x1) x [y0, y1) of the target grid? */
static int base_meets(const stitch_base *b, long x0, long y0, long x1, long y1)
{
    return b->w > 0 && b->x < x1 && b->x + (long)b->w > x0 && b->y < y1 &&
           b->y + (long)b->h > y0;
}

/* The index: buckets of whole tiles, as few tiles a bucket as MAX_BUCKETS allows;
 * each bucket lists the bases meeting it, in list order. */
static int build_index(const pgp_graph *graph, stitch_state *s)
{
    const int tiles_x = (graph->x_size + graph->block_x - 1) / graph->block_x;
    const int tiles_y = (graph->y_size + graph->block_y - 1) / graph->block_y;
    int k = 1, pass, i, bx, by, n_buckets;
    int *fill = NULL;
    while (((tiles_x + k - 1) / k) * (long)((tiles_y + k - 1) / k) > MAX_BUCKETS)
        k *= 2;
    s->bucket_w = k * graph->block_x;
    s->bucket_h = k * graph->block_y;
    s->buckets_x = (tiles_x + k - 1) / k;
    s->buckets_y = (tiles_y + k - 1) / k;
    n_buckets = s->buckets_x * s->buckets_y;
    s->bucket_start = (int *)pgp_calloc(n_buckets + 1, sizeof(int));
    fill = (int *)pgp_calloc(n_buckets + 1, sizeof(int));
    if (s->bucket_start == NULL || fill == NULL) {
        pgp_free(fill);
        return -1;
    }
    /* Pass 0 counts into bucket_start[b + 1], pass 1 fills. */
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < s->n_bases; i++) {
            const stitch_base *b = &s->bases[i];
            if (b->w == 0)
                continue;
            for (by = MAX(b->y, 0) / s->bucket_h;
                 by < s->buckets_y && (long)by * s->bucket_h < b->y + (long)b->h; by++)
                for (bx = MAX(b->x, 0) / s->bucket_w;
                     bx < s->buckets_x && (long)bx * s->bucket_w < b->x + (long)b->w; bx++) {
                    const int bucket = by * s->buckets_x + bx;
                    if (pass == 0)
                        s->bucket_start[bucket + 1]++;
                    else
                        s->bucket_bases[s->bucket_start[bucket] + fill[bucket]++] = i;
                }
        }
        if (pass == 0) {
            for (i = 0; i < n_buckets; i++)
                s->bucket_start[i + 1] += s->bucket_start[i];
            s->bucket_bases = (int *)pgp_malloc_array(MAX(s->bucket_start[n_buckets], 1),
                                                      sizeof(int));
            if (s->bucket_bases == NULL)
                break;
        }
    }
    pgp_free(fill);
    return s->bucket_bases != NULL ? 0 : -1;
}

/* Reads the target's grid and places every base; bases missing the target
 * are left with w = 0 and named in one warning. */
static int link_stitch(pgp_graph *graph, pgp_node *node, const pgp_expr_var *vars)
{
    stitch_state *s = (stitch_state *)node->state;
    const int target_node = pgp_graph_find(graph, s->target);
    target_grid target;
    char *skipped = NULL;
    int i, n_skipped = 0, status = 0;

    (void)vars;
    if (pgp_graph_link_one(graph, node, s->target) != 0)
        return -1;
    memset(&target, 0, sizeof target);
    /* The grid and projection as the <Source> read them (WKT1, as GDAL
     * reports it to pygeoprocessing, to compare with the bases'). */
    target.wkt = graph->nodes[target_node].projection_ref;
    memcpy(target.gt, graph->geotransform, sizeof target.gt);
    target.x_size = graph->x_size;
    target.y_size = graph->y_size;
    target.type = node->data_type;
    if (!graph->has_geotransform || !GDALInvGeoTransform(target.gt, target.inverse)) {
        pgp_graph_report(node->where, "target '%s' has no invertible geotransform", s->target);
        status = -1;
    }
    for (i = 0; i < s->n_bases && status == 0; i++) {
        status = place_base(node, &target, s->area_weight, &s->bases[i]);
        if (status == 1) {
            s->bases[i].w = s->bases[i].h = 0;
            if (n_skipped++ < 10) {
                char *longer = CPLStrdup(CPLSPrintf("%s%s'%s'", skipped ? skipped : "",
                                                    skipped ? ", " : "", s->bases[i].path));
                CPLFree(skipped);
                skipped = longer;
            }
            status = 0;
        }
    }
    if (status == 0 && n_skipped > 0)
        CPLError(CE_Warning, CPLE_AppDefined,
                 "%s: %d base%s do%s not meet the target and %s skipped: %s%s", node->where,
                 n_skipped, n_skipped == 1 ? "" : "s", n_skipped == 1 ? "es" : "",
                 n_skipped == 1 ? "is" : "are", skipped, n_skipped > 10 ? ", ..." : "");
    CPLFree(skipped);
    if (status != 0 || build_index(graph, s) != 0)
        return -1;
    s->owner = pgp_tile_cache_new_owner();
    s->pool_mutex = CPLCreateMutex();
    if (s->pool_mutex == NULL)
        return -1;
    CPLReleaseMutex(s->pool_mutex);
    return 0;
}

/* ---- reading the bases ---------------------------------------------------------- */

/* An open base for this thread: an idle one from the pool, or a fresh one
 * (the file, or a warped view of it). NULL after CPLError. */
static GDALDatasetH checkout_base(stitch_state *s, const pgp_node *node, int index,
                                 const pgp_graph *graph)
{
    const stitch_base *b = &s->bases[index];
    GDALDatasetH ds = NULL, view;
    char err[1024];
    int i;
    CPLAcquireMutex(s->pool_mutex, 1000.0);
    for (i = s->pool_count - 1; i >= 0 && ds == NULL; i--)
        if (s->pool[i].base == index) {
            ds = s->pool[i].dataset;
            memmove(&s->pool[i], &s->pool[i + 1], (s->pool_count - i - 1) * sizeof *s->pool);
            s->pool_count--;
        }
    CPLReleaseMutex(s->pool_mutex);
    if (ds != NULL)
        return ds;
    /* strict: the handle must be the one placed. */
    if ((ds = pgp_open_raster(node->where, "base", b->path, 1)) == NULL)
        return NULL;
    if (!b->warped)
        return ds;
    view = pgp_warp_open_view(ds, b->band, &b->grid, b->resampling, graph->block_x,
                              graph->block_y, err, sizeof err);
    if (view == NULL) {
        CPLError(CE_Failure, CPLE_AppDefined, "%s: warping base '%s': %s", node->where, b->path,
                 err);
        GDALClose(ds);
        return NULL;
    }
    GDALReleaseDataset(ds); /* the view owns it now */
    return view;
}

/* Puts an open base back for the next tile, closing the oldest when full. */
static void checkin_base(stitch_state *s, int index, GDALDatasetH ds)
{
    GDALDatasetH oldest = NULL;
    CPLAcquireMutex(s->pool_mutex, 1000.0);
    if (s->pool_count == POOL_SIZE) {
        oldest = s->pool[0].dataset;
        memmove(&s->pool[0], &s->pool[1], (POOL_SIZE - 1) * sizeof *s->pool);
        s->pool_count--;
    }
    s->pool[s->pool_count].base = index;
    s->pool[s->pool_count++].dataset = ds;
    CPLReleaseMutex(s->pool_mutex);
    if (oldest != NULL)
        GDALClose(oldest);
}

/* Working memory of the fold, for a row of up to a tile's width. */
typedef struct fold_work {
    double *v;                     /* the base's values as stored into the target */
    double *gathered;              /* an overview row's sampled base pixels */
    uint64_t *base_nd, *target_nd; /* nodata masks, one 64-bit lane a pixel */
} fold_work;

/* One row of the fold, as the per-level kernels take it. */
typedef struct fold_call {
    const double *base;
    double *values;
    const fold_work *work;
    const pgp_nodata *base_nodata, *target_nodata;
    GDALDataType type;
    overlap_mode overlap;
    const double *scale; /* area weighting: the row's factor, else NULL */
} fold_call;

#define KERNEL static inline __attribute__((always_inline))

/* mask[i] = pgp_is_nodata(nd, v[i]), one loop per kind of test so that each
 * vectorises (the same arithmetic as pgp_is_nodata; lanes as wide as the
 * values, so the selects vectorise too). */
KERNEL void nodata_mask(const pgp_nodata *nd, const double *restrict v, int n,
                        uint64_t *restrict mask)
{
    const double value = nd->value, tolerance = 1e-8 + 1e-5 * fabs(nd->value);
    int i;
    if (!nd->present)
        memset(mask, 0, n * sizeof *mask);
    else if (nd->exact || isinf(value))
        for (i = 0; i < n; i++)
            mask[i] = v[i] == value ? ~(uint64_t)0 : 0;
    else if (isnan(value))
        for (i = 0; i < n; i++)
            mask[i] = v[i] != v[i] ? ~(uint64_t)0 : 0;
    else
        for (i = 0; i < n; i++)
            mask[i] = fabs(v[i] - value) <= tolerance ? ~(uint64_t)0 : 0;
}

/* store_as over a row, in place. */
KERNEL void store_row(double *restrict v, int n, GDALDataType type)
{
    int i;
    if (type == GDT_Float64)
        return;
    if (type == GDT_Float32) {
        for (i = 0; i < n; i++)
            v[i] = (double)(float)v[i];
        return;
    }
    for (i = 0; i < n; i++)
        v[i] = store_as(v[i], type);
}

/* The fold of one row: masks and conversions a row at a time, then one
 * select (restrict: the rows never overlap, which lets the selects vectorise). */
KERNEL void fold_row_on(const fold_call *c, int n)
{
    const fold_work *w = c->work;
    double *restrict values = c->values, *restrict v = w->v;
    const uint64_t *restrict base_nd = w->base_nd, *restrict target_nd = w->target_nd;
    int i;
    nodata_mask(c->base_nodata, c->base, n, w->base_nd);
    memcpy(v, c->base, n * sizeof *v);
    if (c->scale != NULL) { /* stored, scaled, stored again: pygeoprocessing's steps */
        store_row(v, n, c->type);
        for (i = 0; i < n; i++)
            v[i] *= *c->scale;
    }
    if (c->overlap != OVERLAP_REPLACE)
        nodata_mask(c->target_nodata, values, n, w->target_nd);
    if (c->overlap == OVERLAP_ADD)
        for (i = 0; i < n; i++)
            v[i] += target_nd[i] ? 0 : values[i];
    store_row(v, n, c->type);
    if (c->overlap == OVERLAP_ETCH)
        for (i = 0; i < n; i++)
            values[i] = !base_nd[i] && target_nd[i] ? v[i] : values[i];
    else
        for (i = 0; i < n; i++)
            values[i] = base_nd[i] ? values[i] : v[i];
}

typedef void (*fold_fn)(const fold_call *c, int n);
PGP_ISA_VARIANTS(fold_fn, fold_row, (const fold_call *c, int n), (c, n))

/* Folds n base values (a row of base b, its row base_row) into the target's
 * values, with the active instruction-set level's kernel. */
static void fold_row(const stitch_state *s, const pgp_node *node, const stitch_base *b,
                     int base_row, const double *base, double *values, int n, fold_work *w)
{
    const fold_call c = {base,        values,          w,
                         &b->nodata,  &node->nodata,   node->data_type,
                         s->overlap,  b->row_scale != NULL ? &b->row_scale[base_row] : NULL};
    fold_row_levels[pgp_isa_active()](&c, n);
}

/* Full-resolution pixel of level pixel i: the one under its centre. */
static long sample(int i, double scale)
{
    return scale == 1 ? i : (long)floor((i + 0.5) * scale);
}

/* Folds base b into the tile's values (t->w wide). At full resolution the
 * overlap is one window; on an overview level each level pixel takes the
 * base pixel under its centre, read a row at a time. */
static int fold_base(stitch_state *s, const pgp_node *node, int index, GDALRasterBandH band,
                     const pgp_rect *t, double sx, double sy, double *values, double *row,
                     fold_work *w)
{
    const stitch_base *b = &s->bases[index];
    int i0 = t->w, i1 = 0, i, j;
    long c0 = 0, c1 = 0;
    if (sx == 1 && sy == 1) {
        /* Each base block meets up to four tiles: decoded once for all. */
        const pgp_shared_blocks shared = {pgp_block_cache_global(), s->owner, index, NULL};
        const int x0 = MAX(t->x, b->x), x1 = (int)MIN(t->x + t->w, b->x + (long)b->w);
        const int y0 = MAX(t->y, b->y), y1 = (int)MIN(t->y + t->h, b->y + (long)b->h);
        if (pgp_band_read_checked(band, &shared, x0 - b->x, y0 - b->y, x1 - x0, y1 - y0, row,
                                  GDT_Float64, x1 - x0) != 0)
            return -1;
        /* The warped strips' blocks are in the shared cache now: GDAL's copies
         * would only grow its cache (as for <Align>'s views, source.c). */
        if (b->warped)
            GDALFlushRasterCache(band);
        for (j = y0; j < y1; j++)
            fold_row(s, node, b, j - b->y, row + (size_t)(j - y0) * (x1 - x0),
                     values + (size_t)(j - t->y) * t->w + (x0 - t->x), x1 - x0, w);
        return 0;
    }
    /* Level columns whose centres fall on the base: i0 .. i1 - 1. */
    for (i = 0; i < t->w; i++) {
        const long x = sample(t->x + i, sx) - b->x;
        if (x >= 0 && x < b->w) {
            if (i0 == t->w)
                i0 = i, c0 = x;
            i1 = i + 1, c1 = x + 1;
        }
    }
    for (j = 0; j < t->h && i0 < i1; j++) {
        const long y = sample(t->y + j, sy) - b->y;
        double *out = values + (size_t)j * t->w;
        if (y < 0 || y >= b->h)
            continue;
        if (pgp_band_read_checked(band, NULL, (int)c0, (int)y, (int)(c1 - c0), 1, row,
                                  GDT_Float64, (int)(c1 - c0)) != 0)
            return -1;
        for (i = i0; i < i1; i++)
            w->gathered[i - i0] = row[sample(t->x + i, sx) - b->x - c0];
        fold_row(s, node, b, (int)y, w->gathered, out + i0, i1 - i0, w);
    }
    return 0;
}

static int compare_ints(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* The bases meeting the tile's full-resolution extent, in list order, into
 * list (room for n_bases); their count. */
static int tile_bases(const stitch_state *s, const pgp_rect *t, double sx, double sy, int *list)
{
    const long x0 = sample(t->x, sx), y0 = sample(t->y, sy);
    const long x1 = sample(t->x + t->w - 1, sx) + 1, y1 = sample(t->y + t->h - 1, sy) + 1;
    int n = 0, bx, by, k, buckets = 0;
    for (by = (int)(y0 / s->bucket_h); by < s->buckets_y && (long)by * s->bucket_h < y1; by++)
        for (bx = (int)(x0 / s->bucket_w); bx < s->buckets_x && (long)bx * s->bucket_w < x1;
             bx++) {
            const int bucket = by * s->buckets_x + bx;
            buckets++;
            for (k = s->bucket_start[bucket]; k < s->bucket_start[bucket + 1]; k++) {
                const stitch_base *b = &s->bases[s->bucket_bases[k]];
                /* Listed from the first bucket where it meets the extent only. */
                if (base_meets(b, x0, y0, x1, y1) &&
                    MAX(b->x, x0) / s->bucket_w == bx && MAX(b->y, y0) / s->bucket_h == by)
                    list[n++] = s->bucket_bases[k];
            }
        }
    if (buckets > 1) /* back into list order */
        qsort(list, n, sizeof *list, compare_ints);
    return n;
}

static double stitch_scratch_bytes(const pgp_graph *graph, const pgp_node *n)
{
    const stitch_state *s = (const stitch_state *)n->state;
    return 2.0 * graph->block_x * graph->block_y * sizeof(double) +
           (double)s->n_bases * sizeof(int) + 4.0 * graph->block_x * sizeof(double);
}

static void *compute_stitch(pgp_job *job, int node, const pgp_rect *t, int depth)
{
    const pgp_graph *g = pgp_job_graph(job);
    const pgp_node *n = &g->nodes[node];
    stitch_state *s = (stitch_state *)n->state;
    const size_t count = (size_t)t->w * t->h;
    double sx, sy, *values, *row;
    size_t row_count;
    fold_work work;
    int *list, n_list, k, ok;

    pgp_job_level_scale(job, &sx, &sy);
    /* A full-resolution window of the tile's size, or one row of it at its
     * full-resolution width on an overview level. */
    row_count = MAX(count, (size_t)ceil(t->w * sx) + 2);
    values = (double *)pgp_job_scratch(job, depth,
                                       (count + row_count + 4 * (size_t)t->w) * sizeof(double) +
                                           (size_t)s->n_bases * sizeof(int));
    if (values == NULL)
        return NULL;
    row = values + count;
    work.v = row + row_count;
    work.gathered = work.v + t->w;
    work.base_nd = (uint64_t *)(work.gathered + t->w);
    work.target_nd = work.base_nd + t->w;
    list = (int *)(work.target_nd + t->w);
    ok = pgp_job_read(job, n->input_nodes[0], t, depth + 1, values, t->w) == 0;
    n_list = ok ? tile_bases(s, t, sx, sy, list) : 0;
    for (k = 0; k < n_list && ok; k++) {
        const stitch_base *b = &s->bases[list[k]];
        GDALDatasetH ds = checkout_base(s, n, list[k], g);
        ok = ds != NULL &&
             fold_base(s, n, list[k], GDALGetRasterBand(ds, b->warped ? 1 : b->band), t, sx, sy,
                       values, row, &work) == 0;
        if (!ok && ds != NULL) {
            /* A base that failed may go on failing: the next tile opens it afresh.
             * The renderer adds the node and tile. */
            pgp_fail_because(CPLE_FileIO, CPLSPrintf("reading base '%s'", b->path));
            GDALClose(ds);
        } else if (ds != NULL) {
            checkin_base(s, list[k], ds);
        }
    }
    return ok ? pgp_job_tile(job, node, values, count) : NULL;
}

static void stitch_metadata(const pgp_node *node,
                            void (*set)(void *arg, const char *key, const char *value), void *arg)
{
    const stitch_state *s = (const stitch_state *)node->state;
    set(arg, "PGP_TARGET", s->target);
    set(arg, "PGP_OVERLAP", overlap_names[s->overlap]);
    set(arg, "PGP_BASES", CPLSPrintf("%d", s->n_bases));
}

static void free_stitch(pgp_node *node)
{
    stitch_state *s = (stitch_state *)node->state;
    int i;
    if (s == NULL)
        return;
    for (i = 0; i < s->pool_count; i++)
        GDALClose(s->pool[i].dataset);
    if (s->pool_mutex != NULL)
        CPLDestroyMutex(s->pool_mutex);
    if (s->owner != 0)
        pgp_tile_cache_purge_owner(pgp_block_cache_global(), s->owner);
    for (i = 0; s->bases != NULL && i < s->n_bases; i++) {
        pgp_free(s->bases[i].path);
        pgp_free(s->bases[i].grid.srs_wkt);
        pgp_free(s->bases[i].row_scale);
    }
    pgp_free(s->bases);
    pgp_free(s->bucket_start);
    pgp_free(s->bucket_bases);
    pgp_free(s->target);
    pgp_free(s);
    node->state = NULL;
}

const pgp_node_kind_def pgp_node_stitch = {
    "Stitch",       parse_stitch,    link_stitch, stitch_scratch_bytes,
    compute_stitch, stitch_metadata, free_stitch, inherit_stitch};
