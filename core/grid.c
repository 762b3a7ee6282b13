/* grid.c — <Align> geometry (SEMANTICS §3) and warped views on the grid. */
#include "pgp/grid.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_minixml.h"
#include "cpl_string.h"
#include "gdal_alg.h"
#include "gdal_vrt.h"
#include "ogr_api.h"
#include "ogr_srs_api.h"

static int fail(char *err, size_t errlen, const char *fmt, ...) CPL_PRINT_FUNC_FORMAT(3, 4);

/* Writes the message (locale-independent numbers) and returns -1. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list args;
        va_start(args, fmt);
        CPLvsnprintf(err, errlen, fmt, args);
        va_end(args);
    }
    return -1;
}

/* The text of the last CPLError on this thread, for appending to messages. */
static const char *gdal_reason(void)
{
    const char *msg = CPLGetLastErrorMsg();
    return (msg != NULL && *msg != '\0') ? msg : "no detail from GDAL";
}

static int has_text(const char *s)
{
    return s != NULL && *s != '\0';
}

/* Parses exactly `want` comma-separated finite numbers (spaces allowed
 * around them). Returns 0, or -1 with the reason in *why. */
static int parse_numbers(const char *text, double *values, int want, const char **why)
{
    const char *p = text;
    int n = 0;
    for (;;) {
        char *end = NULL;
        double v;
        while (*p == ' ')
            p++;
        v = CPLStrtod(p, &end);
        if (end == p) {
            *why = "expected a number";
            return -1;
        }
        if (!isfinite(v)) {
            *why = "numbers must be finite";
            return -1;
        }
        if (n == want) {
            *why = "too many values";
            return -1;
        }
        values[n++] = v;
        p = end;
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        if (*p != ',') {
            *why = "expected a number";
            return -1;
        }
        p++;
    }
    if (n != want) {
        *why = "too few values";
        return -1;
    }
    return 0;
}

pgp_bbox pgp_grid_raster_bbox(const double gt[6], int x_size, int y_size)
{
    /* pygeoprocessing's get_raster_info: two corners only, evaluated left to
     * right as Python does. */
    const double x1 = gt[0] + x_size * gt[1] + y_size * gt[2];
    const double y1 = gt[3] + x_size * gt[4] + y_size * gt[5];
    pgp_bbox bb;
    bb.minx = fmin(gt[0], x1);
    bb.maxx = fmax(gt[0], x1);
    bb.miny = fmin(gt[3], y1);
    bb.maxy = fmax(gt[3], y1);
    return bb;
}

int pgp_grid_merge_bboxes(const pgp_bbox *boxes, int n, pgp_bbox_mode mode, pgp_bbox *out,
                          char *err, size_t errlen)
{
    pgp_bbox r;
    int i;
    if (n < 1 || boxes == NULL)
        return fail(err, errlen, "boundingBox: no bounding box to merge");
    if (mode == PGP_BBOX_EXPLICIT)
        return fail(err, errlen, "boundingBox: an explicit box is not merged");
    r = boxes[0];
    for (i = 1; i < n; i++) {
        const pgp_bbox *b = &boxes[i];
        const int u = mode == PGP_BBOX_UNION;
        r.minx = u ? fmin(r.minx, b->minx) : fmax(r.minx, b->minx);
        r.miny = u ? fmin(r.miny, b->miny) : fmax(r.miny, b->miny);
        r.maxx = u ? fmax(r.maxx, b->maxx) : fmin(r.maxx, b->maxx);
        r.maxy = u ? fmax(r.maxy, b->maxy) : fmin(r.maxy, b->maxy);
    }
    if (r.minx > r.maxx || r.miny > r.maxy)
        return fail(err, errlen,
                    "boundingBox: the bounding boxes do not intersect (intersection "
                    "[%.17g, %.17g, %.17g, %.17g])",
                    r.minx, r.miny, r.maxx, r.maxy);
    *out = r;
    return 0;
}

int pgp_grid_parse_bbox(const char *text, pgp_bbox_spec *out, char *err, size_t errlen)
{
    double v[4];
    const char *why = NULL;
    if (text == NULL)
        return fail(err, errlen, "boundingBox: missing");
    if (strcmp(text, "intersection") == 0 || strcmp(text, "union") == 0) {
        out->mode = text[0] == 'u' ? PGP_BBOX_UNION : PGP_BBOX_INTERSECTION;
        memset(&out->box, 0, sizeof out->box);
        return 0;
    }
    if (parse_numbers(text, v, 4, &why) != 0)
        return fail(err, errlen,
                    "boundingBox '%s': %s (expected intersection, union or "
                    "xmin,ymin,xmax,ymax)",
                    text, why);
    if (v[0] > v[2] || v[1] > v[3])
        return fail(err, errlen, "boundingBox '%s': xmin > xmax or ymin > ymax", text);
    out->mode = PGP_BBOX_EXPLICIT;
    out->box.minx = v[0];
    out->box.miny = v[1];
    out->box.maxx = v[2];
    out->box.maxy = v[3];
    return 0;
}

int pgp_grid_parse_pixel_size(const char *text, double pixel_size[2], char *err, size_t errlen)
{
    double v[2];
    const char *why = NULL;
    if (text == NULL)
        return fail(err, errlen, "pixelSize: missing");
    if (parse_numbers(text, v, 2, &why) != 0)
        return fail(err, errlen, "pixelSize '%s': %s (expected x,y)", text, why);
    if (v[0] == 0 || v[1] == 0) /* also -0 */
        return fail(err, errlen, "pixelSize '%s': pixel sizes must be non-zero", text);
    pixel_size[0] = v[0];
    pixel_size[1] = v[1];
    return 0;
}

/* GDAL's resampling names, and each kernel's radius in source pixels
 * (GDAL's anGWKFilterRadius, which 3.6 does not export to C). */
static const struct {
    const char *name;
    GDALResampleAlg alg;
    int radius;
} resamplings[] = {
    {"near", GRA_NearestNeighbour, 0}, {"bilinear", GRA_Bilinear, 1},
    {"cubic", GRA_Cubic, 2},           {"cubicspline", GRA_CubicSpline, 2},
    {"lanczos", GRA_Lanczos, 3},       {"average", GRA_Average, 0},
    {"mode", GRA_Mode, 0},             {"min", GRA_Min, 0},
    {"max", GRA_Max, 0},               {"med", GRA_Med, 0},
    {"q1", GRA_Q1, 0},                 {"q3", GRA_Q3, 0},
    {"sum", GRA_Sum, 0},               {"rms", GRA_RMS, 0},
};
#define N_RESAMPLINGS ((int)(sizeof resamplings / sizeof resamplings[0]))

int pgp_grid_parse_resampling(const char *text, GDALResampleAlg *out, char *err, size_t errlen)
{
    int i;
    for (i = 0; text != NULL && i < N_RESAMPLINGS; i++)
        if (EQUAL(text, resamplings[i].name)) {
            *out = resamplings[i].alg;
            return 0;
        }
    return fail(err, errlen,
                "resampling '%s': unknown resampling method (expected near, bilinear, "
                "cubic, cubicspline, lanczos, average, mode, min, max, med, q1, q3, sum "
                "or rms)",
                text ? text : "");
}

static int filter_radius(GDALResampleAlg alg)
{
    int i;
    for (i = 0; i < N_RESAMPLINGS; i++)
        if (resamplings[i].alg == alg)
            return resamplings[i].radius;
    return -1;
}

pgp_bbox pgp_grid_snap_min_corner(pgp_bbox bb, const double align_gt[6], int align_x_size,
                                  int align_y_size)
{
    const pgp_bbox abb = pgp_grid_raster_bbox(align_gt, align_x_size, align_y_size);
    /* Python's int() truncates toward zero; n*p is float(n)*p. */
    bb.minx = abb.minx + trunc((bb.minx - abb.minx) / align_gt[1]) * align_gt[1];
    bb.miny = abb.miny + trunc((bb.miny - abb.miny) / align_gt[5]) * align_gt[5];
    return bb;
}

/* One axis of warp_raster's grid: trunc, then ceiling unless the residual is
 * within numpy.isclose's 1e-8 absolute tolerance, at least 1. */
static int axis_size(double extent, double pixel, const char *axis, int *size, char *err,
                     size_t errlen)
{
    const double q = fabs(extent / pixel);
    int n;
    if (!(q < PGP_GRID_MAX_SIZE + 1.0))
        return fail(err, errlen,
                    "the target grid would be %.17g pixels along %s, more than the limit of "
                    "%d",
                    q, axis, PGP_GRID_MAX_SIZE);
    n = (int)q;
    if (!(fabs(fabs(n * pixel) - extent) <= 1e-8))
        n++;
    if (n < 1)
        n = 1;
    if (n > PGP_GRID_MAX_SIZE)
        return fail(err, errlen,
                    "the target grid would be %d pixels along %s, more than the limit of %d",
                    n, axis, PGP_GRID_MAX_SIZE);
    *size = n;
    return 0;
}

int pgp_grid_from_bbox(pgp_bbox bb, const double pixel_size[2], int *x_size, int *y_size,
                       double gt[6], char *err, size_t errlen)
{
    int nx = 0, ny = 0;
    if (!isfinite(bb.minx) || !isfinite(bb.miny) || !isfinite(bb.maxx) || !isfinite(bb.maxy))
        return fail(err, errlen, "boundingBox: the bounding box is not finite");
    if (!isfinite(pixel_size[0]) || !isfinite(pixel_size[1]) || pixel_size[0] == 0 ||
        pixel_size[1] == 0)
        return fail(err, errlen, "pixelSize '%.17g,%.17g': must be finite and non-zero",
                    pixel_size[0], pixel_size[1]);
    if (axis_size(bb.maxx - bb.minx, pixel_size[0], "x", &nx, err, errlen) != 0 ||
        axis_size(bb.maxy - bb.miny, pixel_size[1], "y", &ny, err, errlen) != 0)
        return -1;
    *x_size = nx;
    *y_size = ny;
    gt[0] = bb.minx;
    gt[1] = fabs(pixel_size[0]);
    gt[2] = 0;
    gt[3] = bb.miny + fabs(pixel_size[1]) * ny;
    gt[4] = 0;
    gt[5] = -fabs(pixel_size[1]);
    return 0;
}

/* An SRS from any string OSR accepts, in traditional GIS axis order. */
static OGRSpatialReferenceH new_srs(const char *text)
{
    OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
    if (OSRSetFromUserInput(srs, text) != OGRERR_NONE) {
        OSRDestroySpatialReference(srs);
        return NULL;
    }
    OSRSetAxisMappingStrategy(srs, OAMS_TRADITIONAL_GIS_ORDER);
    return srs;
}

int pgp_grid_transform_bbox(pgp_bbox in, const char *src_wkt, const char *dst_wkt,
                            pgp_bbox *out, char *err, size_t errlen)
{
    enum { SAMPLES = 11 };
    /* Edges as pygeoprocessing walks them: p_a*v + p_b*(1-v) from the
     * corners 0=(minx,maxy) 1=(minx,miny) 2=(maxx,miny) 3=(maxx,maxy). */
    const double cx[4] = {in.minx, in.minx, in.maxx, in.maxx};
    const double cy[4] = {in.maxy, in.miny, in.miny, in.maxy};
    double raw[4];
    OGRSpatialReferenceH src, dst;
    OGRCoordinateTransformationH ct;
    int edge;
    if (!has_text(src_wkt) || !has_text(dst_wkt))
        return fail(err, errlen, "cannot transform a bounding box: the %s SRS is missing",
                    has_text(src_wkt) ? "target" : "source");
    CPLErrorReset();
    src = new_srs(src_wkt);
    dst = new_srs(dst_wkt);
    ct = (src && dst) ? OCTNewCoordinateTransformation(src, dst) : NULL;
    if (ct == NULL) {
        OSRDestroySpatialReference(src);
        OSRDestroySpatialReference(dst);
        return fail(err, errlen, "cannot transform a bounding box between these SRSs: %s",
                    gdal_reason());
    }
    for (edge = 0; edge < 4; edge++) {
        const int a = edge, b = (edge + 1) % 4;
        double x[SAMPLES], y[SAMPLES];
        int ok[SAMPLES], i;
        for (i = 0; i < SAMPLES; i++) {
            /* numpy.linspace(0, 1, 11): i*0.1, the end exactly 1. */
            const double v = i == SAMPLES - 1 ? 1.0 : i * (1.0 / (SAMPLES - 1));
            x[i] = cx[a] * v + cx[b] * (1 - v);
            y[i] = cy[a] * v + cy[b] * (1 - v);
        }
        OCTTransformEx(ct, SAMPLES, x, y, NULL, ok);
        /* Python's min()/max() over the samples, a failed point being NaN:
         * edge 0 = min x (left), 1 = min y (bottom), 2 = max x, 3 = max y. */
        raw[edge] = NAN;
        for (i = 0; i < SAMPLES; i++) {
            const double v = !ok[i] ? NAN : (edge % 2 == 0) ? x[i] : y[i];
            if (i == 0 || (edge < 2 ? v < raw[edge] : v > raw[edge]))
                raw[edge] = v;
        }
    }
    OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(src);
    OSRDestroySpatialReference(dst);
    /* sorted() guards against a transform that flips an axis. */
    out->minx = raw[2] < raw[0] ? raw[2] : raw[0];
    out->maxx = raw[2] < raw[0] ? raw[0] : raw[2];
    out->miny = raw[3] < raw[1] ? raw[3] : raw[1];
    out->maxy = raw[3] < raw[1] ? raw[1] : raw[3];
    if (!isfinite(out->minx) || !isfinite(out->miny) || !isfinite(out->maxx) ||
        !isfinite(out->maxy))
        return fail(err, errlen,
                    "transforming the bounding box [%.17g, %.17g, %.17g, %.17g] gave a "
                    "non-finite result",
                    in.minx, in.miny, in.maxx, in.maxy);
    return 0;
}

/* Adds one layer's extent to *out; its SRS must match the earlier ones'. */
static int add_layer_extent(OGRLayerH layer, const char *path, int *n_found, pgp_bbox *out,
                            OGRSpatialReferenceH *srs, char *err, size_t errlen)
{
    OGREnvelope env;
    OGRSpatialReferenceH layer_srs = OGR_L_GetSpatialRef(layer);
    if (OGR_L_GetExtent(layer, &env, TRUE) != OGRERR_NONE)
        return 0; /* no feature: nothing to add */
    if (*n_found == 0) {
        *srs = layer_srs;
        out->minx = env.MinX;
        out->miny = env.MinY;
        out->maxx = env.MaxX;
        out->maxy = env.MaxY;
    } else {
        if ((*srs == NULL) != (layer_srs == NULL) ||
            (layer_srs != NULL && !OSRIsSame(*srs, layer_srs)))
            return fail(err, errlen, "vector '%s': layer '%s' has a different SRS", path,
                        OGR_L_GetName(layer));
        out->minx = fmin(out->minx, env.MinX);
        out->miny = fmin(out->miny, env.MinY);
        out->maxx = fmax(out->maxx, env.MaxX);
        out->maxy = fmax(out->maxy, env.MaxY);
    }
    (*n_found)++;
    return 0;
}

int pgp_grid_vector_bbox(const char *path, const char *layer, pgp_bbox *out, char **srs_wkt,
                         char *err, size_t errlen)
{
    GDALDatasetH ds;
    OGRSpatialReferenceH srs = NULL;
    int n_found = 0, rc = 0, i;
    *srs_wkt = NULL;
    CPLErrorReset();
    ds = GDALOpenEx(path, GDAL_OF_VECTOR, NULL, NULL, NULL);
    if (ds == NULL)
        return fail(err, errlen, "vector '%s': cannot open: %s", path, gdal_reason());
    if (layer != NULL) {
        OGRLayerH l = GDALDatasetGetLayerByName(ds, layer);
        rc = l == NULL ? fail(err, errlen, "vector '%s': no layer '%s'", path, layer)
                       : add_layer_extent(l, path, &n_found, out, &srs, err, errlen);
    } else {
        for (i = 0; rc == 0 && i < GDALDatasetGetLayerCount(ds); i++)
            rc = add_layer_extent(GDALDatasetGetLayer(ds, i), path, &n_found, out, &srs, err,
                                  errlen);
    }
    if (rc == 0 && n_found == 0)
        rc = fail(err, errlen, "vector '%s': no feature, so no bounding box", path);
    if (rc == 0 && srs != NULL && OSRExportToWkt(srs, srs_wkt) != OGRERR_NONE) {
        CPLFree(*srs_wkt);
        *srs_wkt = NULL;
        rc = fail(err, errlen, "vector '%s': cannot export its SRS", path);
    }
    GDALClose(ds);
    return rc;
}

/* The box of item `what` in the target SRS (unchanged without one). */
static int box_in_target(pgp_bbox box, const char *srs, const char *target_wkt,
                         const char *what, pgp_bbox *out, char *err, size_t errlen)
{
    char why[512];
    if (target_wkt == NULL) {
        *out = box;
        return 0;
    }
    if (!has_text(srs))
        return fail(err, errlen,
                    "boundingBox: %s has no projection, so its bounding box cannot be "
                    "transformed to the target SRS",
                    what);
    if (pgp_grid_transform_bbox(box, srs, target_wkt, out, why, sizeof why) != 0)
        return fail(err, errlen, "boundingBox: %s: %s", what, why);
    return 0;
}

/* Union or intersection of the vectors' then the rasters' boxes. */
static int merged_bbox(const pgp_grid_input *inputs, int n_inputs, pgp_bbox_mode mode,
                       const char *target_wkt, const pgp_grid_vector *vectors, int n_vectors,
                       pgp_bbox *out, char *err, size_t errlen)
{
    const int n = n_vectors + n_inputs;
    pgp_bbox *boxes = (pgp_bbox *)VSI_MALLOC2_VERBOSE(n, sizeof *boxes);
    int i, rc = 0;
    if (boxes == NULL)
        return fail(err, errlen, "boundingBox: out of memory");
    for (i = 0; rc == 0 && i < n; i++) {
        char what[64];
        if (i < n_vectors) {
            snprintf(what, sizeof what, "vector %d", i);
            rc = box_in_target(vectors[i].bbox, vectors[i].srs_wkt, target_wkt, what,
                               &boxes[i], err, errlen);
        } else {
            const pgp_grid_input *in = &inputs[i - n_vectors];
            snprintf(what, sizeof what, "input %d", i - n_vectors);
            rc = box_in_target(pgp_grid_raster_bbox(in->gt, in->x_size, in->y_size),
                               in->srs_wkt, target_wkt, what, &boxes[i], err, errlen);
        }
    }
    if (rc == 0)
        rc = pgp_grid_merge_bboxes(boxes, n, mode, out, err, errlen);
    VSIFree(boxes);
    return rc;
}

int pgp_grid_compute(const pgp_grid_input *inputs, int n_inputs, const pgp_bbox_spec *bbox,
                     const double pixel_size[2], int align_index, const char *target_srs,
                     const pgp_grid_vector *vectors, int n_vectors,
                     const pgp_grid_vector *mask, pgp_grid *out, char *err, size_t errlen)
{
    char *target_wkt = NULL;
    pgp_bbox bb;
    int rc;
    memset(out, 0, sizeof *out);
    if (inputs == NULL || n_inputs < 1)
        return fail(err, errlen, "Align: no input raster");
    if (n_vectors < 0 || (n_vectors > 0 && vectors == NULL))
        return fail(err, errlen, "Align: bad vector list");
    if (align_index < -1 || align_index >= n_inputs)
        return fail(err, errlen, "alignTo: input index %d is not in [0, %d)", align_index,
                    n_inputs);
    if (target_srs != NULL) {
        OGRSpatialReferenceH srs;
        CPLErrorReset();
        srs = new_srs(target_srs);
        if (srs == NULL || OSRExportToWkt(srs, &target_wkt) != OGRERR_NONE) {
            OSRDestroySpatialReference(srs);
            CPLFree(target_wkt);
            return fail(err, errlen, "srs '%s': not an SRS GDAL accepts: %s", target_srs,
                        gdal_reason());
        }
        OSRDestroySpatialReference(srs);
    }
    if (bbox->mode == PGP_BBOX_EXPLICIT) {
        bb = bbox->box; /* taken as target coordinates: no reprojection */
        rc = 0;
    } else {
        rc = merged_bbox(inputs, n_inputs, bbox->mode, target_wkt, vectors, n_vectors, &bb,
                         err, errlen);
    }
    if (rc == 0 && mask != NULL) {
        pgp_bbox mb;
        /* pygeoprocessing transforms the mask's box only when both SRSs are
         * known, and compares it raw otherwise. */
        rc = box_in_target(mask->bbox, mask->srs_wkt,
                           has_text(mask->srs_wkt) ? target_wkt : NULL, "the <Mask> features",
                           &mb, err, errlen);
        if (rc == 0 && (fmax(mb.minx, bb.minx) > fmin(mb.maxx, bb.maxx) ||
                        fmax(mb.miny, bb.miny) > fmin(mb.maxy, bb.maxy)))
            rc = fail(err, errlen,
                      "<Mask>: the features' bounding box [%.17g, %.17g, %.17g, %.17g] does "
                      "not intersect the target bounding box [%.17g, %.17g, %.17g, %.17g]",
                      mb.minx, mb.miny, mb.maxx, mb.maxy, bb.minx, bb.miny, bb.maxx, bb.maxy);
    }
    if (rc == 0 && align_index >= 0) {
        const pgp_grid_input *a = &inputs[align_index];
        bb = pgp_grid_snap_min_corner(bb, a->gt, a->x_size, a->y_size);
    }
    if (rc == 0)
        rc = pgp_grid_from_bbox(bb, pixel_size, &out->x_size, &out->y_size, out->gt, err,
                                errlen);
    if (rc != 0) {
        CPLFree(target_wkt);
        memset(out, 0, sizeof *out);
        return -1;
    }
    out->reproject = target_wkt != NULL;
    out->srs_wkt = target_wkt != NULL             ? target_wkt
                   : has_text(inputs[0].srs_wkt) ? CPLStrdup(inputs[0].srs_wkt)
                                                 : NULL;
    return 0;
}

void pgp_grid_clear(pgp_grid *grid)
{
    if (grid == NULL)
        return;
    CPLFree(grid->srs_wkt);
    CPLFree(grid->mask.path);
    CPLFree(grid->mask.layer);
    CPLFree(grid->mask.where);
    memset(grid, 0, sizeof *grid);
}

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

/* ---- <Mask> ------------------------------------------------------------------ */

/* Opens mask->path, takes its layer (the first when none is named) and
 * applies the where filter, as pygeoprocessing's rasterize does. */
static int open_mask_layer(const pgp_grid_mask *mask, GDALDatasetH *ds, OGRLayerH *layer,
                           char *err, size_t errlen)
{
    CPLErrorReset();
    *ds = GDALOpenEx(mask->path, GDAL_OF_VECTOR, NULL, NULL, NULL);
    if (*ds == NULL)
        return fail(err, errlen, "vector '%s': cannot open: %s", mask->path, gdal_reason());
    *layer = mask->layer != NULL ? GDALDatasetGetLayerByName(*ds, mask->layer)
                                 : GDALDatasetGetLayer(*ds, 0);
    if (*layer == NULL) {
        fail(err, errlen, "vector '%s': no layer%s%s%s", mask->path, mask->layer ? " '" : "",
             mask->layer ? mask->layer : "", mask->layer ? "'" : "");
        GDALClose(*ds);
        return -1;
    }
    CPLErrorReset();
    if (has_text(mask->where) && OGR_L_SetAttributeFilter(*layer, mask->where) != OGRERR_NONE) {
        fail(err, errlen, "where '%s': %s", mask->where, gdal_reason());
        GDALClose(*ds);
        return -1;
    }
    return 0;
}

int pgp_grid_mask_bbox(const pgp_grid_mask *mask, pgp_bbox *out, char **srs_wkt, char *err,
                       size_t errlen)
{
    GDALDatasetH ds;
    OGRLayerH layer;
    OGRFeatureH feature;
    OGRSpatialReferenceH srs;
    int n = 0, rc = 0;
    *srs_wkt = NULL;
    if (open_mask_layer(mask, &ds, &layer, err, errlen) != 0)
        return -1;
    /* The union of the selected features' envelopes: a layer's own extent
     * may ignore the where filter. */
    OGR_L_ResetReading(layer);
    while ((feature = OGR_L_GetNextFeature(layer)) != NULL) {
        OGRGeometryH g = OGR_F_GetGeometryRef(feature);
        if (g != NULL && !OGR_G_IsEmpty(g)) {
            OGREnvelope env;
            OGR_G_GetEnvelope(g, &env);
            out->minx = n == 0 ? env.MinX : fmin(out->minx, env.MinX);
            out->miny = n == 0 ? env.MinY : fmin(out->miny, env.MinY);
            out->maxx = n == 0 ? env.MaxX : fmax(out->maxx, env.MaxX);
            out->maxy = n == 0 ? env.MaxY : fmax(out->maxy, env.MaxY);
            n++;
        }
        OGR_F_Destroy(feature);
    }
    srs = OGR_L_GetSpatialRef(layer);
    if (n == 0)
        rc = fail(err, errlen, "vector '%s': no feature with a geometry%s%s%s", mask->path,
                  has_text(mask->where) ? " where '" : "",
                  has_text(mask->where) ? mask->where : "", has_text(mask->where) ? "'" : "");
    else if (srs != NULL && OSRExportToWkt(srs, srs_wkt) != OGRERR_NONE) {
        CPLFree(*srs_wkt);
        *srs_wkt = NULL;
        rc = fail(err, errlen, "vector '%s': cannot export its SRS", mask->path);
    }
    GDALClose(ds);
    return rc;
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
    VSIFree(m->band);
    CPLFree(m);
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
    if (has_text(grid->srs_wkt))
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
    grid_mask *m = (grid_mask *)CPLCalloc(1, sizeof *m);
    char why[512];
    m->band_y0 = -1;
    m->band_rows = band_rows;
    if (open_mask_layer(&grid->mask, &m->ds, &m->layer, why, sizeof why) != 0) {
        fail(err, errlen, "<Mask> %s", why);
        CPLFree(m);
        return NULL;
    }
    CPLErrorReset();
    m->to_grid = mask_to_grid(m->layer, grid);
    m->band = (GByte *)VSI_MALLOC2_VERBOSE(grid->x_size, band_rows);
    if (m->to_grid == NULL || m->band == NULL) {
        fail(err, errlen, "<Mask> vector '%s': cannot relate it to the grid: %s",
             grid->mask.path, gdal_reason());
        free_mask(m);
        return NULL;
    }
    return m;
}

/* The mask of grid row `row` (rasterising its band if needed), or NULL. */
static const GByte *mask_row(grid_mask *m, const pgp_grid *grid, int row)
{
    const int y0 = row - row % m->band_rows;
    if (m->band_y0 != y0) {
        const int rows = grid->y_size - y0 < m->band_rows ? grid->y_size - y0 : m->band_rows;
        memset(m->band, 0, (size_t)grid->x_size * rows);
        m->band_y0 = y0;
        if (GDALRasterizeLayersBuf(m->band, grid->x_size, rows, GDT_Byte, 0, 0, 1, &m->layer,
                                   NULL, NULL, to_band, m, 1.0, NULL, NULL, NULL) != CE_None) {
            m->band_y0 = -1;
            return NULL;
        }
    }
    return m->band + (size_t)(row - y0) * grid->x_size;
}

/* ---- the warped view's transformer ------------------------------------------- */

/* Deep copy (strings included). */
static void grid_copy(pgp_grid *dst, const pgp_grid *src)
{
    *dst = *src;
    dst->srs_wkt = src->srs_wkt ? CPLStrdup(src->srs_wkt) : NULL;
    dst->mask.path = src->mask.path ? CPLStrdup(src->mask.path) : NULL;
    dst->mask.layer = src->mask.layer ? CPLStrdup(src->mask.layer) : NULL;
    dst->mask.where = src->mask.where ? CPLStrdup(src->mask.where) : NULL;
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
    CPLFree(c);
}

/* Takes ownership of exact, also on failure. band_rows: rows per mask band. */
static warp_core *new_core(void *exact, const pgp_grid *grid, int band_rows, char *err,
                           size_t errlen)
{
    warp_core *c = (warp_core *)CPLCalloc(1, sizeof *c);
    c->exact = exact;
    c->refs = 1;
    grid_copy(&c->grid, grid);
    CPLErrorReset();
    c->approx = GDALCreateApproxTransformer(GDALGenImgProjTransform, exact, 0.125);
    if (c->approx == NULL)
        fail(err, errlen, "cannot approximate the transformer: %s", gdal_reason());
    else if (grid->mask.path == NULL || (c->mask = open_mask(grid, band_rows, err, errlen)))
        return c;
    release_core(c);
    return NULL;
}

static void free_row_transformer(void *arg)
{
    release_core(((row_transformer *)arg)->core);
    CPLFree(arg);
}

static void *similar_row_transformer(void *arg, double ratio_x, double ratio_y);

/* Takes one reference on core. */
static row_transformer *new_row_transformer(warp_core *core, int x_off, int block_x)
{
    row_transformer *t = (row_transformer *)CPLCalloc(1, sizeof *t);
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
        fail(err, errlen, "cannot relate '%s' to the target grid: %s",
             GDALGetDescription(source), gdal_reason());
        return NULL;
    }
    memcpy(gt, grid->gt, sizeof gt);
    GDALSetGenImgProjTransformerDstGeoTransform(exact, gt);
    return new_core(exact, grid, band_rows, err, errlen);
}

/* A VRT of grid columns [x_off, x_off + width) with one band of the source's
 * type, nodata and signed-byte flag: a warped strip (GDAL's 512x128 blocks
 * at most), or the plain mosaic of the strips, whose blocks are block_x x
 * block_y and which reports the grid's SRS. */
static GDALDatasetH new_vrt(const pgp_grid *grid, GDALDatasetH source, GDALRasterBandH src_band,
                            int x_off, int width, int warped, int block_x, int block_y)
{
    char *warped_options[] = {"SUBCLASS=VRTWarpedDataset", NULL};
    char **band_options = NULL;
    double gt[6], nodata;
    int has_nodata = 0, ok;
    const GDALDataType type = GDALGetRasterDataType(src_band);
    const char *pixel_type = GDALGetMetadataItem(src_band, "PIXELTYPE", "IMAGE_STRUCTURE");
    const char *srs = grid->reproject ? grid->srs_wkt : GDALGetProjectionRef(source);
    GDALRasterBandH band;
    GDALDatasetH vrt = GDALCreate(GDALGetDriverByName("VRT"), "", width, grid->y_size,
                                  warped, type, warped ? warped_options : NULL);
    if (vrt == NULL)
        return NULL;
    if (!warped) {
        band_options = CSLSetNameValue(band_options, "BLOCKXSIZE", CPLSPrintf("%d", block_x));
        band_options = CSLSetNameValue(band_options, "BLOCKYSIZE", CPLSPrintf("%d", block_y));
        ok = GDALAddBand(vrt, type, band_options) == CE_None;
        CSLDestroy(band_options);
        if (!ok) {
            GDALClose(vrt);
            return NULL;
        }
    }
    memcpy(gt, grid->gt, sizeof gt);
    gt[0] += x_off * gt[1];
    gt[3] += x_off * gt[4];
    band = GDALGetRasterBand(vrt, 1);
    nodata = GDALGetRasterNoDataValue(src_band, &has_nodata);
    if (GDALSetGeoTransform(vrt, gt) != CE_None ||
        (!warped && has_text(srs) && GDALSetProjection(vrt, srs) != CE_None) ||
        (has_nodata && GDALSetRasterNoDataValue(band, nodata) != CE_None) ||
        (pixel_type != NULL &&
         GDALSetMetadataItem(band, "PIXELTYPE", pixel_type, "IMAGE_STRUCTURE") != CE_None)) {
        GDALClose(vrt);
        return NULL;
    }
    return vrt;
}

/* gdalwarp's options for band `band` of source onto a strip. scale: the
 * XSCALE/YSCALE to fix, or NULL. */
static GDALWarpOptions *warp_options(GDALDatasetH source, int band, GDALDatasetH strip,
                                     row_transformer *t, GDALResampleAlg resampling,
                                     const double *scale)
{
    GDALWarpOptions *wo = GDALCreateWarpOptions();
    int has_nodata = 0;
    const double nodata = GDALGetRasterNoDataValue(GDALGetRasterBand(source, band), &has_nodata);
    wo->eResampleAlg = resampling;
    wo->hSrcDS = source;
    wo->hDstDS = strip;
    wo->nBandCount = 1;
    wo->panSrcBands = (int *)CPLMalloc(sizeof(int));
    wo->panDstBands = (int *)CPLMalloc(sizeof(int));
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
    GDALDatasetH strip = new_vrt(grid, source, src_band, x_off, width, 1, 0, 0);
    GDALWarpOptions *wo;
    row_transformer *t;
    int block_x = 0, ok;
    if (strip == NULL)
        return -1;
    GDALGetBlockSize(GDALGetRasterBand(strip, 1), &block_x, NULL);
    t = new_row_transformer(core, x_off, block_x);
    wo = warp_options(source, band, strip, t, resampling, scale);
    /* On success the strip owns the transformer and one reference on
     * source; on failure it took neither. */
    ok = GDALInitializeWarpedVRT(strip, wo) == CE_None;
    GDALDestroyWarpOptions(wo);
    if (!ok)
        free_row_transformer(t);
    else /* the mosaic takes its own reference on the strip */
        ok = VRTAddSimpleSource((VRTSourcedRasterBandH)GDALGetRasterBand(mosaic, 1),
                                GDALGetRasterBand(strip, 1), 0, 0, width, grid->y_size,
                                x_off, 0, width, grid->y_size, NULL,
                                VRT_NODATA_UNSET) == CE_None;
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
        OGRSpatialReferenceH a = new_srs(GDALGetProjectionRef(source));
        OGRSpatialReferenceH b = new_srs(grid->srs_wkt);
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

GDALDatasetH pgp_grid_open_warped(GDALDatasetH source, int band, const pgp_grid *grid,
                                  GDALResampleAlg resampling, int block_x, int block_y,
                                  char *err, size_t errlen)
{
    GDALDatasetH view;
    warp_core *core;
    double scale[2];
    char why[1024];
    int x_off, scale_ok, radius;

    if (source == NULL || grid == NULL) {
        fail(err, errlen, "warp: no source or no grid");
        return NULL;
    }
    if (band < 1 || band > GDALGetRasterCount(source)) {
        fail(err, errlen, "warp: '%s' has no band %d", GDALGetDescription(source), band);
        return NULL;
    }
    if (grid->x_size < 1 || grid->y_size < 1 || grid->x_size > PGP_GRID_MAX_SIZE ||
        grid->y_size > PGP_GRID_MAX_SIZE) {
        fail(err, errlen, "warp: grid size %dx%d is not in [1, %d]", grid->x_size,
             grid->y_size, PGP_GRID_MAX_SIZE);
        return NULL;
    }
    if (block_x < 1 || block_y < 1) {
        fail(err, errlen, "warp: block size %dx%d is not positive", block_x, block_y);
        return NULL;
    }
    if (filter_radius(resampling) < 0) {
        fail(err, errlen, "warp: unsupported resampling algorithm %d", (int)resampling);
        return NULL;
    }
    if (grid->reproject && !has_text(grid->srs_wkt)) {
        fail(err, errlen, "warp: the grid reprojects but has no SRS");
        return NULL;
    }
    if (grid->reproject && !has_text(GDALGetProjectionRef(source))) {
        fail(err, errlen,
             "warp: '%s' has no projection, so it cannot be reprojected to the target SRS",
             GDALGetDescription(source));
        return NULL;
    }
    /* Then gdalwarp's warper copies with nearest (and a source window without
     * margin) whatever the resampling: so does the view, bit for bit. Our
     * transformer hides the translation from GDAL, so it is told here. */
    if (translation_on_pixel_boundaries(source, grid))
        resampling = GRA_NearestNeighbour;
    radius = filter_radius(resampling);
    block_x = block_x < grid->x_size ? block_x : grid->x_size;
    block_y = block_y < grid->y_size ? block_y : grid->y_size;
    /* Mask bands as tall as the strips' blocks (GDAL 3.6: 128 rows). */
    core = create_core(source, grid, grid->y_size < 128 ? grid->y_size : 128, why, sizeof why);
    if (core == NULL) {
        fail(err, errlen, "warp: %s", why);
        return NULL;
    }
    scale_ok = whole_grid_scale(GDALApproxTransform, core->approx, GDALGetRasterXSize(source),
                                GDALGetRasterYSize(source), grid->x_size, grid->y_size, radius,
                                scale) == 0;
    /* One strip per column of blocks: each strip's warp chunks lie inside one
     * block of the view, so no two workers reading different blocks ever warp
     * the same chunk (with 512-wide chunks over 256-wide tiles they did). */
    CPLErrorReset();
    view = new_vrt(grid, source, GDALGetRasterBand(source, band), 0, grid->x_size, 0, block_x,
                   block_y);
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
        fail(err, errlen, "warp: cannot create the warped view of '%s': %s",
             GDALGetDescription(source), gdal_reason());
    return view;
}
