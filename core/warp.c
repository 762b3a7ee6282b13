/* warp.c — views of a source warped onto an <Align> grid by GDAL's warper:
 * the whole-grid warp scale, the row-consistent transformer, per-tile strips
 * and the <Mask> rasterised inside the warp (docs/semantics.md#align). */
#include "pgp/warp.h"
#include "pgp/alloc.h"
#include "grid_internal.h"

#include <math.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_string.h"
#include "gdal_alg.h"
#include "gdal_vrt.h"
#include "gdalwarper.h"
#include "ogr_api.h"
#include "ogr_srs_api.h"

/* The resampling scale per axis that GDAL 3.6 uses when the whole grid is one
 * warp chunk: GDALWarpOperation::ComputeSourceWindow samples 21 points along
 * each destination edge and clips their source extent (raw size), then
 * GDALWarpKernel::PerformWarp takes dst_size / (src_size - extra) with its
 * snapping to 1 and to integer reciprocals. Each step is mirrored operation
 * for operation so the value is bit-identical to gdalwarp's. Returns -1 where
 * GDAL would leave the edge-sampling path (a point failed to transform, a
 * bogus window, no source at all): the scale is then left to GDAL per chunk. */
static int whole_grid_scale(GDALTransformerFunc transform, void *arg, int src_x, int src_y,
                            int dst_x, int dst_y, int radius, double scale[2])
{
    enum { STEPS = 21, MAX_POINTS = 4 * STEPS };
    const double step = 1.0 / (STEPS - 1);
    double x[MAX_POINTS], y[MAX_POINTS], z[MAX_POINTS];
    double lo[2] = {HUGE_VAL, HUGE_VAL}, hi[2] = {-HUGE_VAL, -HUGE_VAL}, ratio;
    int ok[MAX_POINTS], n = 0, i, axis;
    /* The same accumulating loop as GDAL, so the same sample positions. */
    for (ratio = 0.0; ratio <= 1.0 + step * 0.5 && n < MAX_POINTS; ratio += step) {
        x[n] = ratio * dst_x, y[n] = 0, z[n++] = 0;         /* top    */
        x[n] = ratio * dst_x, y[n] = dst_y, z[n++] = 0;     /* bottom */
        x[n] = 0, y[n] = ratio * dst_y, z[n++] = 0;         /* left   */
        x[n] = dst_x, y[n] = ratio * dst_y, z[n++] = 0;     /* right  */
    }
    if (!transform(arg, TRUE, n, x, y, z, ok))
        return -1;
    for (i = 0; i < n; i++) {
        if (!ok[i] || isnan(x[i]) || isnan(y[i]))
            return -1;
        lo[0] = x[i] < lo[0] ? x[i] : lo[0];
        lo[1] = y[i] < lo[1] ? y[i] : lo[1];
        hi[0] = x[i] > hi[0] ? x[i] : hi[0];
        hi[1] = y[i] > hi[1] ? y[i] : hi[1];
    }
    if (lo[0] < -1e6 || lo[1] < -1e6 || hi[0] > src_x + 1e6 || hi[1] > src_y + 1e6 ||
        lo[0] > src_x || hi[0] < 0 || lo[1] > src_y || hi[1] < 0)
        return -1;
    for (axis = 0; axis < 2; axis++) {
        const int src_n = axis == 0 ? src_x : src_y, dst_n = axis == 0 ? dst_x : dst_y;
        const int min_c = (int)(lo[axis] > 0.0 ? lo[axis] : 0.0);
        const int max_c = (int)fmin(ceil(hi[axis]), (double)src_n);
        const double raw = fmax(0.0, fmin((double)(src_n - min_c), hi[axis] - lo[axis]));
        const double win_scale = fmax(1e-3, (double)dst_n / (hi[axis] - lo[axis]));
        const int r = win_scale < 0.95 ? (int)ceil(radius / win_scale) : radius;
        int off, size;
        double extra, s;
        if (max_c - min_c > 0.9 * src_n) {
            off = 0;
            size = src_n;
        } else {
            off = min_c - r < src_n ? min_c - r : src_n;
            off = off > 0 ? off : 0;
            size = src_n - off < max_c - off + r ? src_n - off : max_c - off + r;
            size = size > 0 ? size : 0;
        }
        extra = size - raw;
        s = (double)dst_n / (size - extra);
        if (size >= dst_n && size <= dst_n + extra)
            s = 1.0;
        if (s < 1.0) {
            const double reciprocal = 1.0 / s;
            const int rounded = (int)(reciprocal + 0.5);
            if (fabs(reciprocal - rounded) < 0.05)
                s = 1.0 / rounded;
        }
        if (!isfinite(s) || s <= 0)
            return -1;
        scale[axis] = s;
    }
    return 0;
}

/* A view's <Mask>: its own handle on the vector (OGR handles are never shared
 * between threads) and the mask rasterised one band of grid rows at a time. */
typedef struct grid_mask {
    GDALDatasetH ds;
    OGRLayerH layer;
    void *to_grid;   /* GenImgProj: layer coordinates -> whole-grid pixels */
    int band_y0;     /* first grid row held, -1 for none */
    int band_rows;   /* rows per band */
    GByte *band;     /* grid width x band_rows; 1 where a pixel centre is inside */
} grid_mask;

static void free_mask(grid_mask *m)
{
    if (m == NULL)
        return;
    if (m->to_grid != NULL)
        GDALDestroyGenImgProjTransformer(m->to_grid);
    if (m->ds != NULL)
        GDALClose(m->ds);
    pgp_free(m->band);
    pgp_free(m);
}

/* The transformer GDALRasterizeLayers builds for the whole grid (layer SRS
 * to grid SRS, then grid pixels), then the same shift GDAL's rasterizer
 * applies to each of its row chunks: a band equals those rows of a
 * whole-grid gdal.RasterizeLayer bit for bit. */
static void *mask_to_grid(OGRLayerH layer, const pgp_grid *grid)
{
    OGRSpatialReferenceH srs = OGR_L_GetSpatialRef(layer);
    char **options = NULL, *wkt = NULL;
    double gt[6];
    void *t;
    if (srs != NULL && OSRExportToWkt(srs, &wkt) == OGRERR_NONE)
        options = CSLSetNameValue(options, "SRC_SRS", wkt);
    if (pgp_grid_has_text(grid->srs_wkt))
        options = CSLSetNameValue(options, "DST_SRS", grid->srs_wkt);
    t = GDALCreateGenImgProjTransformer2(NULL, NULL, options);
    CPLFree(wkt);
    CSLDestroy(options);
    if (t != NULL) {
        memcpy(gt, grid->gt, sizeof gt);
        GDALSetGenImgProjTransformerDstGeoTransform(t, gt);
    }
    return t;
}

static int to_band(void *arg, int dst_to_src, int n, double *x, double *y, double *z, int *ok)
{
    const grid_mask *m = (const grid_mask *)arg;
    const int result = GDALGenImgProjTransform(m->to_grid, dst_to_src, n, x, y, z, ok);
    int i;
    for (i = 0; i < n; i++)
        y[i] -= m->band_y0;
    return result;
}

static grid_mask *open_mask(const pgp_grid *grid, int band_rows, char *err, size_t errlen)
{
    grid_mask *m = (grid_mask *)pgp_calloc(1, sizeof *m);
    char why[512];
    if (m == NULL) {
        pgp_grid_fail(err, errlen, "<Mask>: %s", pgp_grid_gdal_reason());
        return NULL;
    }
    m->band_y0 = -1;
    m->band_rows = band_rows;
    if (pgp_grid_open_mask_layer(&grid->mask, &m->ds, &m->layer, why, sizeof why) != 0) {
        pgp_grid_fail(err, errlen, "<Mask> %s", why);
        pgp_free(m);
        return NULL;
    }
    CPLErrorReset();
    m->to_grid = mask_to_grid(m->layer, grid);
    m->band = (GByte *)pgp_malloc_array(grid->x_size, band_rows);
    if (m->to_grid == NULL || m->band == NULL) {
        pgp_grid_fail(err, errlen, "<Mask> vector '%s': cannot relate it to the grid: %s",
             grid->mask.path, pgp_grid_gdal_reason());
        free_mask(m);
        return NULL;
    }
    return m;
}

/* The mask of grid row `row` (rasterising its band if needed), or NULL
 * after CPLError: the warper takes a failed transform for pixels outside the
 * source, so the failure must be said (source.c's pgp_source_read hears it). */
static const GByte *mask_row(grid_mask *m, const pgp_grid *grid, int row)
{
    const int y0 = row - row % m->band_rows;
    if (m->band_y0 != y0) {
        const int rows = grid->y_size - y0 < m->band_rows ? grid->y_size - y0 : m->band_rows;
        memset(m->band, 0, (size_t)grid->x_size * rows);
        m->band_y0 = y0;
        if (GDALRasterizeLayersBuf(m->band, grid->x_size, rows, GDT_Byte, 0, 0, 1, &m->layer,
                                   NULL, NULL, to_band, m, 1.0, NULL, NULL, NULL) != CE_None) {
            char cause[1024]; /* copied: CPLError formats into the message's buffer */
            CPLStrlcpy(cause, pgp_grid_gdal_reason(), sizeof cause);
            CPLError(CE_Failure, CPLE_AppDefined,
                     "<Mask> vector '%s': rasterising grid rows %d to %d failed: %s",
                     grid->mask.path, y0, y0 + rows - 1, cause);
            m->band_y0 = -1;
            return NULL;
        }
    }
    return m->band + (size_t)(row - y0) * grid->x_size;
}

/* ---- the warped view's transformer ------------------------------------------- */

/* A copy of s, or NULL for NULL; sets *failed when memory runs out. */
static char *copy_text(const char *s, int *failed)
{
    char *copy = s != NULL ? pgp_strdup(s) : NULL;
    *failed |= s != NULL && copy == NULL;
    return copy;
}

/* Deep copy (strings included); -1 after CPLError when memory runs out (dst
 * is then still for pgp_grid_clear). */
static int grid_copy(pgp_grid *dst, const pgp_grid *src)
{
    int failed = 0;
    *dst = *src;
    dst->srs_wkt = copy_text(src->srs_wkt, &failed);
    dst->mask.path = copy_text(src->mask.path, &failed);
    dst->mask.layer = copy_text(src->mask.layer, &failed);
    dst->mask.where = copy_text(src->mask.where, &failed);
    return failed ? -1 : 0;
}

/* Per-row consistency. GDAL's warp kernel transforms each destination row
 * of a chunk in one call, and the 0.125 px approximating transformer
 * interpolates between points it transforms exactly at the ends and middle
 * of that row, halving the row where that is not close enough. gdalwarp's
 * chunk is the whole grid, a view's is one block of a strip, so the same
 * pixel would get a slightly different source position (up to 0.125 px when
 * reprojecting, an ulp otherwise). The view's transformer answers a block row
 * with what GDALApproxTransform gives the same points within the whole grid
 * row, which makes every block agree with gdalwarp and with each other: it
 * replays GDAL 3.6's GDALApproxTransformInternal over the whole row,
 * descending only into the halves that overlap the block, so a block row
 * costs its own width plus a few exact transforms per halving level
 * (transforming the whole grid row instead made a warp grow with the width
 * squared). It also applies <Mask>: pixels outside it fail to transform, so
 * the kernel leaves them at INIT_DEST, the view's nodata (or 0). */

/* What the strips of one view share (they are used by one thread at a time,
 * like the view). */
typedef struct warp_core {
    void *exact;     /* GenImgProj: source pixels <-> whole-grid pixels */
    void *approx;    /* GDAL's 0.125 px approximation of exact, for calls that
                        are not block rows */
    pgp_grid grid;   /* own copy: the row length, the mask */
    grid_mask *mask; /* NULL without <Mask> */
    int refs;        /* one per strip transformer */
} warp_core;

typedef struct row_transformer {
    GDALTransformerInfo info; /* first: GDAL recognises transformers by it */
    warp_core *core;
    int x_off;   /* the strip's first grid column: strip pixels + x_off = grid pixels */
    int block_x; /* the strip's block width: its chunks start at multiples of it */
} row_transformer;

/* A block row being answered: point k of the grid row is (k + frac, y, z);
 * points [lo, hi) are wanted, into x, y, z, ok at k - lo. */
typedef struct row_replay {
    void *exact;
    double frac, y, z, max_error;
    int lo, hi;
    double *xo, *yo, *zo;
    int *ok;
} row_replay;

/* Points [a, b) of the wanted ones, transformed exactly. */
static int replay_exact(const row_replay *r, int a, int b)
{
    int i;
    a = a > r->lo ? a : r->lo;
    b = b < r->hi ? b : r->hi;
    if (a >= b)
        return TRUE;
    for (i = a; i < b; i++) {
        r->xo[i - r->lo] = i + r->frac;
        r->yo[i - r->lo] = r->y;
        r->zo[i - r->lo] = r->z;
    }
    return GDALGenImgProjTransform(r->exact, TRUE, b - a, r->xo + (a - r->lo),
                                   r->yo + (a - r->lo), r->zo + (a - r->lo),
                                   r->ok + (a - r->lo));
}

/* Point k transformed exactly into p (x, y, z); 0 when it fails. */
static int replay_point(const row_replay *r, int k, double p[3])
{
    int ok = FALSE;
    p[0] = k + r->frac;
    p[1] = r->y;
    p[2] = r->z;
    return GDALGenImgProjTransform(r->exact, TRUE, 1, &p[0], &p[1], &p[2], &ok) && ok;
}

/* GDALApproxTransformInternal on points [a, a + n) of the row, given the
 * exact transforms s of its first, middle and last points; only points in
 * [lo, hi) are written. Where GDAL transforms exactly (short halves, failed
 * points) its values are the exact transforms, so those cases replay as
 * replay_exact. */
static int replay_span(const row_replay *r, int a, int n, const double s[3][3])
{
    const int mid = (n - 1) / 2;
    const double x0 = a + r->frac, dist_mid = (a + mid + r->frac) - x0,
                 dist_end = (a + n - 1 + r->frac) - x0;
    const double dx = (s[2][0] - s[0][0]) / dist_end, dy = (s[2][1] - s[0][1]) / dist_end,
                 dz = (s[2][2] - s[0][2]) / dist_end;
    const double error = fabs((s[0][0] + dx * dist_mid) - s[1][0]) +
                         fabs((s[0][1] + dy * dist_mid) - s[1][1]);
    int k;
    if (error > r->max_error) {
        const int exact1 = mid <= 5, exact2 = n - mid <= 5;
        double m[3][3];
        if ((exact1 && exact2) ||
            (!exact1 && (!replay_point(r, a + (mid - 1) / 2, m[0]) ||
                         !replay_point(r, a + mid - 1, m[1]))) ||
            (!exact2 && !replay_point(r, a + mid + (n - mid - 1) / 2, m[2])))
            return replay_exact(r, a, a + n);
        if (a < r->hi && a + mid > r->lo) {
            const double h[3][3] = {{s[0][0], s[0][1], s[0][2]},
                                    {m[0][0], m[0][1], m[0][2]},
                                    {m[1][0], m[1][1], m[1][2]}};
            if (!(exact1 ? replay_exact(r, a, a + mid) : replay_span(r, a, mid, h)))
                return FALSE;
        }
        if (a + mid < r->hi && a + n > r->lo) {
            const double h[3][3] = {{s[1][0], s[1][1], s[1][2]},
                                    {m[2][0], m[2][1], m[2][2]},
                                    {s[2][0], s[2][1], s[2][2]}};
            return exact2 ? replay_exact(r, a + mid, a + n)
                          : replay_span(r, a + mid, n - mid, h);
        }
        return TRUE;
    }
    {
        /* Locals and restrict: the outputs alias nothing, so this vectorises. */
        const int first = a > r->lo ? a : r->lo, end = a + n < r->hi ? a + n : r->hi;
        const double frac = r->frac, sx = s[0][0], sy = s[0][1], sz = s[0][2];
        double *restrict xo = r->xo + (first - r->lo), *restrict yo = r->yo + (first - r->lo),
                         *restrict zo = r->zo + (first - r->lo);
        int *restrict ok = r->ok + (first - r->lo);
        for (k = 0; k < end - first; k++) {
            const double dist = ((first + k) + frac) - x0;
            xo[k] = sx + dx * dist;
            yo[k] = sy + dy * dist;
            zo[k] = sz + dz * dist;
            ok[k] = TRUE;
        }
    }
    return TRUE;
}

/* GDALApproxTransform's entry on the whole row of `width` points. */
static int replay_row(const row_replay *r, int width)
{
    double s[3][3];
    if (width <= 5 || !replay_point(r, 0, s[0]) || !replay_point(r, (width - 1) / 2, s[1]) ||
        !replay_point(r, width - 1, s[2]))
        return replay_exact(r, 0, width);
    return replay_span(r, 0, width, s);
}

/* Calls other than block rows: GDAL's approximation in grid pixels. */
static int strip_approx(const row_transformer *t, int dst_to_src, int n, double *x, double *y,
                        double *z, int *ok)
{
    int i, result;
    if (dst_to_src)
        for (i = 0; i < n; i++)
            x[i] += t->x_off;
    result = GDALApproxTransform(t->core->approx, dst_to_src, n, x, y, z, ok);
    if (!dst_to_src)
        for (i = 0; i < n; i++)
            x[i] -= t->x_off;
    return result;
}

static int row_transform(void *arg, int dst_to_src, int n, double *x, double *y, double *z,
                         int *ok)
{
    const row_transformer *t = (const row_transformer *)arg;
    warp_core *c = t->core;
    row_replay r;
    double first;
    int i, result;
    /* A row: constant y and z, unit x steps, told from its ends and middle
     * as GDAL's approximator tells one (the warp kernel's calls are rows;
     * its other calls sample window edges, with varying y). */
    if (!dst_to_src || n < 2 || y[n - 1] != y[0] || y[n / 2] != y[0] || z[n - 1] != z[0] ||
        x[n - 1] != x[0] + (n - 1) || x[n / 2] != x[0] + n / 2)
        return strip_approx(t, dst_to_src, n, x, y, z, ok);
    /* The kernel numbers a row from its chunk's x offset (a multiple of the
     * block width) plus 0 (left edges), 0.5 (centres) or 1 (right edges). */
    first = t->block_x * floor(x[0] / t->block_x);
    if (!(first >= 0) || t->x_off + first + n > c->grid.x_size)
        return strip_approx(t, dst_to_src, n, x, y, z, ok);
    r.exact = c->exact;
    r.frac = x[0] - first;
    r.y = y[0];
    r.z = z[0];
    r.max_error = 0.125;
    r.lo = t->x_off + (int)first;
    r.hi = r.lo + n;
    r.xo = x;
    r.yo = y;
    r.zo = z;
    r.ok = ok;
    result = replay_row(&r, c->grid.x_size);
    if (result && c->mask != NULL) {
        /* Pixel (k, y - frac): the kernel's centres, top-left and
         * bottom-right corners all name their pixel this way. */
        const double row = r.y - r.frac;
        const GByte *inside;
        if (row < 0 || row >= c->grid.y_size || row != floor(row))
            return result;
        inside = mask_row(c->mask, &c->grid, (int)row);
        if (inside == NULL)
            return FALSE;
        for (i = 0; i < n; i++)
            ok[i] = ok[i] && inside[r.lo + i] == 1;
    }
    return result;
}

static void release_core(warp_core *c)
{
    if (--c->refs > 0)
        return;
    if (c->approx != NULL)
        GDALDestroyApproxTransformer(c->approx);
    GDALDestroyGenImgProjTransformer(c->exact);
    free_mask(c->mask);
    pgp_grid_clear(&c->grid);
    pgp_free(c);
}

/* Takes ownership of exact, also on failure. band_rows: rows per mask band. */
static warp_core *new_core(void *exact, const pgp_grid *grid, int band_rows, char *err,
                           size_t errlen)
{
    warp_core *c = (warp_core *)pgp_calloc(1, sizeof *c);
    if (c == NULL) {
        GDALDestroyGenImgProjTransformer(exact);
        pgp_grid_fail(err, errlen, "%s", pgp_grid_gdal_reason());
        return NULL;
    }
    c->exact = exact;
    c->refs = 1;
    if (grid_copy(&c->grid, grid) != 0) {
        pgp_grid_fail(err, errlen, "%s", pgp_grid_gdal_reason());
        release_core(c);
        return NULL;
    }
    CPLErrorReset();
    c->approx = GDALCreateApproxTransformer(GDALGenImgProjTransform, exact, 0.125);
    if (c->approx == NULL)
        pgp_grid_fail(err, errlen, "cannot approximate the transformer: %s", pgp_grid_gdal_reason());
    else if (grid->mask.path == NULL || (c->mask = open_mask(grid, band_rows, err, errlen)))
        return c;
    release_core(c);
    return NULL;
}

static void free_row_transformer(void *arg)
{
    release_core(((row_transformer *)arg)->core);
    pgp_free(arg);
}

static void *similar_row_transformer(void *arg, double ratio_x, double ratio_y);

/* Takes one reference on core; NULL after CPLError. */
static row_transformer *new_row_transformer(warp_core *core, int x_off, int block_x)
{
    row_transformer *t = (row_transformer *)pgp_calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    memcpy(t->info.abySignature, GDAL_GTI2_SIGNATURE, strlen(GDAL_GTI2_SIGNATURE));
    t->info.pszClassName = "PGPRowTransformer";
    t->info.pfnTransform = row_transform;
    t->info.pfnCleanup = free_row_transformer;
    t->info.pfnCreateSimilar = similar_row_transformer;
    /* No pfnSerialize: a VRT file has no notion of this transformer. */
    t->core = core;
    t->x_off = x_off;
    t->block_x = block_x;
    core->refs++;
    return t;
}

/* Clones for GDAL's warper threads, with a core of their own (rebuilt
 * through the XML form: libgdal 3.6 does not export
 * GDALCreateSimilarTransformer). Other ratios are for implicit overviews:
 * declined, so reduced-resolution reads warp at full resolution. */
static void *similar_row_transformer(void *arg, double ratio_x, double ratio_y)
{
    const row_transformer *t = (const row_transformer *)arg;
    const warp_core *c = t->core;
    GDALTransformerFunc fn = NULL;
    void *exact = NULL, *clone;
    warp_core *core;
    CPLXMLNode *xml;
    char err[512];
    if (ratio_x != 1.0 || ratio_y != 1.0)
        return NULL;
    xml = GDALSerializeTransformer(GDALGenImgProjTransform, c->exact);
    if (xml == NULL)
        return NULL;
    if (GDALDeserializeTransformer(xml, &fn, &exact) != CE_None ||
        fn != GDALGenImgProjTransform) {
        if (exact != NULL)
            GDALDestroyTransformer(exact);
        exact = NULL;
    }
    CPLDestroyXMLNode(xml);
    core = exact ? new_core(exact, &c->grid, c->mask ? c->mask->band_rows : 1, err,
                            sizeof err)
                 : NULL;
    if (core == NULL)
        return NULL;
    clone = new_row_transformer(core, t->x_off, t->block_x);
    release_core(core);
    return clone;
}

/* The GenImgProj transformer gdalwarp builds (source pixels <-> grid pixels,
 * reprojecting into the grid's SRS when asked), shared by a view's strips. */
static warp_core *create_core(GDALDatasetH source, const pgp_grid *grid, int band_rows,
                              char *err, size_t errlen)
{
    char **options = NULL;
    void *exact;
    double gt[6];
    if (grid->reproject)
        options = CSLSetNameValue(options, "DST_SRS", grid->srs_wkt);
    CPLErrorReset();
    exact = GDALCreateGenImgProjTransformer2(source, NULL, options);
    CSLDestroy(options);
    if (exact == NULL) {
        pgp_grid_fail(err, errlen, "cannot relate '%s' to the target grid: %s",
             GDALGetDescription(source), pgp_grid_gdal_reason());
        return NULL;
    }
    memcpy(gt, grid->gt, sizeof gt);
    GDALSetGenImgProjTransformerDstGeoTransform(exact, gt);
    return new_core(exact, grid, band_rows, err, errlen);
}

/* The view's band properties every VRT of it repeats: geotransform of grid
 * columns from x_off, the source's nodata and its signed-byte flag. */
static int describe_vrt(GDALDatasetH vrt, const pgp_grid *grid, GDALRasterBandH src_band,
                        int x_off)
{
    GDALRasterBandH band = GDALGetRasterBand(vrt, 1);
    const char *pixel_type = GDALGetMetadataItem(src_band, "PIXELTYPE", "IMAGE_STRUCTURE");
    double gt[6], nodata;
    int has_nodata = 0;
    memcpy(gt, grid->gt, sizeof gt);
    gt[0] += x_off * gt[1];
    gt[3] += x_off * gt[4];
    nodata = GDALGetRasterNoDataValue(src_band, &has_nodata);
    return GDALSetGeoTransform(vrt, gt) == CE_None &&
           (!has_nodata || GDALSetRasterNoDataValue(band, nodata) == CE_None) &&
           (pixel_type == NULL ||
            GDALSetMetadataItem(band, "PIXELTYPE", pixel_type, "IMAGE_STRUCTURE") == CE_None);
}

/* The plain mosaic of a view's strips: one band of the source's type whose
 * blocks are block_x x block_y, reporting the grid's SRS. VRTCreate, not
 * GDALCreate: like every dataset pgp opens for itself it stays out of GDAL's
 * list of open datasets, which GDALDestroyDriverManager force-closes in
 * address order (it would close it under the renderer that owns it). */
static GDALDatasetH new_mosaic(const pgp_grid *grid, GDALDatasetH source,
                               GDALRasterBandH src_band, int block_x, int block_y)
{
    const char *srs = grid->reproject ? grid->srs_wkt : GDALGetProjectionRef(source);
    char **band_options = NULL;
    GDALDatasetH vrt = (GDALDatasetH)VRTCreate(grid->x_size, grid->y_size);
    int ok;
    band_options = CSLSetNameValue(band_options, "BLOCKXSIZE", CPLSPrintf("%d", block_x));
    band_options = CSLSetNameValue(band_options, "BLOCKYSIZE", CPLSPrintf("%d", block_y));
    ok = vrt != NULL &&
         GDALAddBand(vrt, GDALGetRasterDataType(src_band), band_options) == CE_None &&
         describe_vrt(vrt, grid, src_band, 0) &&
         (!pgp_grid_has_text(srs) || GDALSetProjection(vrt, srs) == CE_None);
    CSLDestroy(band_options);
    if (!ok && vrt != NULL) {
        GDALClose(vrt);
        vrt = NULL;
    }
    return vrt;
}

/* gdalwarp's options for band `band` of source onto a strip. scale: the
 * XSCALE/YSCALE to fix, or NULL. NULL after CPLError. */
static GDALWarpOptions *warp_options(GDALDatasetH source, int band, row_transformer *t,
                                     GDALResampleAlg resampling, const double *scale)
{
    GDALWarpOptions *wo = GDALCreateWarpOptions();
    int has_nodata = 0;
    const double nodata = GDALGetRasterNoDataValue(GDALGetRasterBand(source, band), &has_nodata);
    wo->eResampleAlg = resampling;
    wo->hSrcDS = source;
    wo->nBandCount = 1;
    wo->panSrcBands = (int *)pgp_malloc(sizeof(int));
    wo->panDstBands = (int *)pgp_malloc(sizeof(int));
    if (wo->panSrcBands == NULL || wo->panDstBands == NULL) {
        GDALDestroyWarpOptions(wo);
        return NULL;
    }
    wo->panSrcBands[0] = band;
    wo->panDstBands[0] = 1;
    wo->pfnTransformer = row_transform;
    wo->pTransformerArg = t;
    /* eWorkingDataType stays unknown: GDAL resolves it from the band types and
     * nodata, as for gdalwarp. */
    if (has_nodata) {
        GDALWarpInitSrcNoDataReal(wo, nodata);
        GDALWarpInitDstNoDataReal(wo, nodata);
    }
    wo->papszWarpOptions =
        CSLSetNameValue(wo->papszWarpOptions, "INIT_DEST", has_nodata ? "NO_DATA" : "0");
    if (scale != NULL) {
        /* %.17g round-trips through the kernel's CPLAtof exactly. */
        wo->papszWarpOptions =
            CSLSetNameValue(wo->papszWarpOptions, "XSCALE", CPLSPrintf("%.17g", scale[0]));
        wo->papszWarpOptions =
            CSLSetNameValue(wo->papszWarpOptions, "YSCALE", CPLSPrintf("%.17g", scale[1]));
    }
    return wo;
}

/* Adds the strip of columns [x_off, x_off + width) to the mosaic. */
static int add_strip(GDALDatasetH mosaic, GDALDatasetH source, int band, const pgp_grid *grid,
                     warp_core *core, int x_off, int width, GDALResampleAlg resampling,
                     const double *scale)
{
    GDALRasterBandH src_band = GDALGetRasterBand(source, band);
    GDALWarpOptions *wo;
    GDALDatasetH strip;
    row_transformer *t;
    double gt[6];
    int ok;
    /* GDALCreateWarpedVRT's blocks: 512 x 128 at most. */
    t = new_row_transformer(core, x_off, width < 512 ? width : 512);
    wo = t != NULL ? warp_options(source, band, t, resampling, scale) : NULL;
    if (wo == NULL) {
        if (t != NULL)
            free_row_transformer(t);
        return -1;
    }
    /* The band's type is the working type, resolved here as GDAL resolves it
     * for gdalwarp: the source's, unless its nodata does not fit. */
    GDALWarpResolveWorkingDataType(wo);
    memcpy(gt, grid->gt, sizeof gt);
    gt[0] += x_off * gt[1];
    gt[3] += x_off * gt[4];
    /* Outside GDAL's open-dataset list, as the mosaic (new_mosaic). On success
     * the strip owns the transformer and one reference on source; on failure
     * it took neither. */
    strip = GDALCreateWarpedVRT(source, width, grid->y_size, gt, wo);
    GDALDestroyWarpOptions(wo);
    if (strip == NULL) {
        free_row_transformer(t);
        return -1;
    }
    /* the mosaic takes its own reference on the strip */
    ok = describe_vrt(strip, grid, src_band, x_off) &&
         VRTAddSimpleSource((VRTSourcedRasterBandH)GDALGetRasterBand(mosaic, 1),
                            GDALGetRasterBand(strip, 1), 0, 0, width, grid->y_size, x_off, 0,
                            width, grid->y_size, NULL, VRT_NODATA_UNSET) == CE_None;
    GDALReleaseDataset(strip);
    return ok ? 0 : -1;
}

/* GDALTransformIsTranslationOnPixelBoundaries (not exported) for the view's
 * GenImgProj transformer: no reprojection, the same pixel size and rotation,
 * and the grid's origin on a source pixel corner (within 1e-6 px). */
static int translation_on_pixel_boundaries(GDALDatasetH source, const pgp_grid *grid)
{
    double src[6], inv[6], x, y;
    const double *dst = grid->gt;
    if (GDALGetGeoTransform(source, src) != CE_None || !GDALInvGeoTransform(src, inv) ||
        !CPLTestBool(CPLGetConfigOption("GDAL_WARP_USE_TRANSLATION_OPTIM", "YES")))
        return 0;
    if (grid->reproject) { /* GenImgProj2 reprojects unless same SRS, not geographic */
        OGRSpatialReferenceH a = pgp_grid_new_srs(GDALGetProjectionRef(source));
        OGRSpatialReferenceH b = pgp_grid_new_srs(grid->srs_wkt);
        const int same = a && b && OSRIsSame(a, b) && !OSRIsGeographic(a);
        OSRDestroySpatialReference(a);
        OSRDestroySpatialReference(b);
        if (!same)
            return 0;
    }
    x = inv[0] + dst[0] * inv[1] + dst[3] * inv[2];
    y = inv[3] + dst[0] * inv[4] + dst[3] * inv[5];
    return src[1] == dst[1] && src[5] == dst[5] && src[2] == dst[2] && src[4] == dst[4] &&
           fabs(x - round(x)) <= 1e-6 && fabs(y - round(y)) <= 1e-6;
}

GDALDatasetH pgp_warp_open_view(GDALDatasetH source, int band, const pgp_grid *grid,
                                  GDALResampleAlg resampling, int block_x, int block_y,
                                  char *err, size_t errlen)
{
    GDALDatasetH view;
    warp_core *core;
    double scale[2];
    char why[1024];
    int x_off, scale_ok, radius;

    if (source == NULL || grid == NULL) {
        pgp_grid_fail(err, errlen, "warp: no source or no grid");
        return NULL;
    }
    if (band < 1 || band > GDALGetRasterCount(source)) {
        pgp_grid_fail(err, errlen, "warp: '%s' has no band %d", GDALGetDescription(source), band);
        return NULL;
    }
    if (grid->x_size < 1 || grid->y_size < 1 || grid->x_size > PGP_GRID_MAX_SIZE ||
        grid->y_size > PGP_GRID_MAX_SIZE) {
        pgp_grid_fail(err, errlen, "warp: grid size %dx%d is not in [1, %d]", grid->x_size,
             grid->y_size, PGP_GRID_MAX_SIZE);
        return NULL;
    }
    if (block_x < 1 || block_y < 1) {
        pgp_grid_fail(err, errlen, "warp: block size %dx%d is not positive", block_x, block_y);
        return NULL;
    }
    if (pgp_grid_resampling_radius(resampling) < 0) {
        pgp_grid_fail(err, errlen, "warp: unsupported resampling algorithm %d", (int)resampling);
        return NULL;
    }
    if (grid->reproject && !pgp_grid_has_text(grid->srs_wkt)) {
        pgp_grid_fail(err, errlen, "warp: the grid reprojects but has no SRS");
        return NULL;
    }
    if (grid->reproject && !pgp_grid_has_text(GDALGetProjectionRef(source))) {
        pgp_grid_fail(err, errlen,
             "warp: '%s' has no projection, so it cannot be reprojected to the target SRS",
             GDALGetDescription(source));
        return NULL;
    }
    /* Then gdalwarp's warper copies with nearest (and a source window without
     * margin) whatever the resampling: so does the view, bit for bit. Our
     * transformer hides the translation from GDAL, so it is told here. */
    if (translation_on_pixel_boundaries(source, grid))
        resampling = GRA_NearestNeighbour;
    radius = pgp_grid_resampling_radius(resampling);
    block_x = block_x < grid->x_size ? block_x : grid->x_size;
    block_y = block_y < grid->y_size ? block_y : grid->y_size;
    /* Mask bands as tall as the strips' blocks (GDAL 3.6: 128 rows). */
    core = create_core(source, grid, grid->y_size < 128 ? grid->y_size : 128, why, sizeof why);
    if (core == NULL) {
        pgp_grid_fail(err, errlen, "warp: %s", why);
        return NULL;
    }
    scale_ok = whole_grid_scale(GDALApproxTransform, core->approx, GDALGetRasterXSize(source),
                                GDALGetRasterYSize(source), grid->x_size, grid->y_size, radius,
                                scale) == 0;
    /* One strip per column of blocks: each strip's warp chunks lie inside one
     * block of the view, so no two workers reading different blocks ever warp
     * the same chunk (with 512-wide chunks over 256-wide tiles they did). */
    CPLErrorReset();
    view = new_mosaic(grid, source, GDALGetRasterBand(source, band), block_x, block_y);
    for (x_off = 0; view != NULL && x_off < grid->x_size; x_off += block_x) {
        const int width = grid->x_size - x_off < block_x ? grid->x_size - x_off : block_x;
        if (add_strip(view, source, band, grid, core, x_off, width, resampling,
                      scale_ok ? scale : NULL) != 0) {
            GDALClose(view);
            view = NULL;
        }
    }
    release_core(core);
    if (view == NULL)
        pgp_grid_fail(err, errlen, "warp: cannot create the warped view of '%s': %s",
             GDALGetDescription(source), pgp_grid_gdal_reason());
    return view;
}
