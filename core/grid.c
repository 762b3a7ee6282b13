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
                     const pgp_grid_vector *vectors, int n_vectors, pgp_grid *out, char *err,
                     size_t errlen)
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

/* Per-row consistency. GDAL's warp kernel transforms each destination row
 * of a chunk in one call, and the 0.125 px approximating transformer
 * interpolates between points it transforms exactly at the ends and middle
 * of that row. gdalwarp's chunk is the whole grid, a warped VRT's is one
 * 512-pixel-wide block, so the same pixel would get a slightly different
 * source position (up to 0.125 px when reprojecting, an ulp otherwise). This
 * wrapper answers a block row with the slice of the whole grid row, which
 * makes every block agree with gdalwarp and with each other. */
typedef struct row_transformer {
    GDALTransformerInfo info; /* first: GDAL recognises transformers by it */
    void *approx;             /* owned                                       */
    int x_size;               /* the grid's width: gdalwarp's row length     */
    int block_x;              /* the view's block width: chunks start at its
                                 multiples */
} row_transformer;

static void *new_row_transformer(void *approx, int x_size, int block_x);

static int row_transform(void *arg, int dst_to_src, int n, double *x, double *y, double *z,
                         int *ok)
{
    const row_transformer *t = (const row_transformer *)arg;
    double first, frac, *fx;
    int i, start, result;
    if (!dst_to_src || n < 2 || n >= t->x_size)
        return GDALApproxTransform(t->approx, dst_to_src, n, x, y, z, ok);
    for (i = 1; i < n; i++) /* a row: constant y and z, unit x steps */
        if (y[i] != y[0] || z[i] != z[0] || x[i] != x[0] + i)
            return GDALApproxTransform(t->approx, dst_to_src, n, x, y, z, ok);
    /* The kernel numbers a row from its chunk's x offset (a multiple of the
     * block width) plus 0 (left edges), 0.5 (centres) or 1 (right edges). */
    first = t->block_x * floor(x[0] / t->block_x);
    frac = x[0] - first;
    start = (int)first;
    if (!(first >= 0) || start + n > t->x_size)
        return GDALApproxTransform(t->approx, dst_to_src, n, x, y, z, ok);
    fx = (double *)VSI_MALLOC2_VERBOSE(t->x_size, 3 * sizeof(double) + sizeof(int));
    if (fx == NULL)
        return FALSE;
    {
        double *fy = fx + t->x_size, *fz = fy + t->x_size;
        int *fok = (int *)(fz + t->x_size);
        for (i = 0; i < t->x_size; i++) {
            fx[i] = i + frac;
            fy[i] = y[0];
            fz[i] = z[0];
        }
        result = GDALApproxTransform(t->approx, TRUE, t->x_size, fx, fy, fz, fok);
        memcpy(x, fx + start, n * sizeof *x);
        memcpy(y, fy + start, n * sizeof *y);
        memcpy(z, fz + start, n * sizeof *z);
        memcpy(ok, fok + start, n * sizeof *ok);
    }
    VSIFree(fx);
    return result;
}

static void free_row_transformer(void *arg)
{
    row_transformer *t = (row_transformer *)arg;
    GDALDestroyTransformer(t->approx);
    CPLFree(t);
}

/* Serialised, a view keeps the approximating transformer (a VRT file has no
 * notion of ours): valid, without the per-row guarantee. */
static CPLXMLNode *serialize_row_transformer(void *arg)
{
    return GDALSerializeTransformer(GDALApproxTransform,
                                    ((const row_transformer *)arg)->approx);
}

/* Clones for GDAL's warper threads, through the XML form (libgdal 3.6 does
 * not export GDALCreateSimilarTransformer). Other ratios are for implicit
 * overviews: declined, so reduced-resolution reads warp at full resolution. */
static void *similar_row_transformer(void *arg, double ratio_x, double ratio_y)
{
    const row_transformer *t = (const row_transformer *)arg;
    GDALTransformerFunc fn = NULL;
    void *approx = NULL;
    CPLXMLNode *xml;
    if (ratio_x != 1.0 || ratio_y != 1.0)
        return NULL;
    xml = GDALSerializeTransformer(GDALApproxTransform, t->approx);
    if (xml == NULL)
        return NULL;
    if (GDALDeserializeTransformer(xml, &fn, &approx) != CE_None || fn != GDALApproxTransform) {
        if (approx != NULL)
            GDALDestroyTransformer(approx);
        approx = NULL;
    }
    CPLDestroyXMLNode(xml);
    return approx == NULL ? NULL : new_row_transformer(approx, t->x_size, t->block_x);
}

/* Takes ownership of approx, also on failure. */
static void *new_row_transformer(void *approx, int x_size, int block_x)
{
    row_transformer *t = (row_transformer *)VSI_CALLOC_VERBOSE(1, sizeof *t);
    if (t == NULL) {
        GDALDestroyTransformer(approx);
        return NULL;
    }
    memcpy(t->info.abySignature, GDAL_GTI2_SIGNATURE, strlen(GDAL_GTI2_SIGNATURE));
    t->info.pszClassName = "PGPRowTransformer";
    t->info.pfnTransform = row_transform;
    t->info.pfnCleanup = free_row_transformer;
    t->info.pfnSerialize = serialize_row_transformer;
    t->info.pfnCreateSimilar = similar_row_transformer;
    t->approx = approx;
    t->x_size = x_size;
    t->block_x = block_x;
    return t;
}

/* The GenImgProj transformer gdalwarp builds (source pixels <-> grid pixels,
 * reprojecting into the grid's SRS when asked) in gdalwarp's default -et
 * 0.125 approximation, made row-consistent for blocks block_x wide. */
static void *create_transformer(GDALDatasetH source, const pgp_grid *grid, int block_x)
{
    char **options = NULL;
    void *exact, *approx;
    double gt[6];
    if (grid->reproject)
        options = CSLSetNameValue(options, "DST_SRS", grid->srs_wkt);
    exact = GDALCreateGenImgProjTransformer2(source, NULL, options);
    CSLDestroy(options);
    if (exact == NULL)
        return NULL;
    memcpy(gt, grid->gt, sizeof gt);
    GDALSetGenImgProjTransformerDstGeoTransform(exact, gt);
    approx = GDALCreateApproxTransformer(GDALGenImgProjTransform, exact, 0.125);
    if (approx == NULL) {
        GDALDestroyGenImgProjTransformer(exact);
        return NULL;
    }
    GDALApproxTransformerOwnsSubtransformer(approx, TRUE);
    return new_row_transformer(approx, grid->x_size, block_x);
}

/* The empty warped VRT: the grid, one band of the source's type, nodata and
 * signed-byte flag, and the SRS it reports. */
static GDALDatasetH create_view(GDALDatasetH source, GDALRasterBandH src_band,
                                const pgp_grid *grid, int has_nodata, double nodata)
{
    char *options[] = {"SUBCLASS=VRTWarpedDataset", NULL};
    double gt[6];
    const char *pixel_type = GDALGetMetadataItem(src_band, "PIXELTYPE", "IMAGE_STRUCTURE");
    const char *srs = grid->reproject ? grid->srs_wkt : GDALGetProjectionRef(source);
    GDALRasterBandH band;
    GDALDatasetH view = GDALCreate(GDALGetDriverByName("VRT"), "", grid->x_size, grid->y_size,
                                   1, GDALGetRasterDataType(src_band), options);
    if (view == NULL)
        return NULL;
    memcpy(gt, grid->gt, sizeof gt);
    band = GDALGetRasterBand(view, 1);
    if (GDALSetGeoTransform(view, gt) != CE_None ||
        (has_text(srs) && GDALSetProjection(view, srs) != CE_None) ||
        (has_nodata && GDALSetRasterNoDataValue(band, nodata) != CE_None) ||
        (pixel_type != NULL &&
         GDALSetMetadataItem(band, "PIXELTYPE", pixel_type, "IMAGE_STRUCTURE") != CE_None)) {
        GDALClose(view);
        return NULL;
    }
    return view;
}

GDALDatasetH pgp_grid_open_warped(GDALDatasetH source, int band, const pgp_grid *grid,
                                  GDALResampleAlg resampling, char *err, size_t errlen)
{
    GDALRasterBandH src_band;
    GDALDatasetH view;
    GDALWarpOptions *wo;
    void *transformer;
    double scale[2];
    int has_nodata = 0, block_x = 0;
    double nodata;
    const int radius = filter_radius(resampling);

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
    if (radius < 0) {
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
    src_band = GDALGetRasterBand(source, band);
    nodata = GDALGetRasterNoDataValue(src_band, &has_nodata);

    CPLErrorReset();
    view = create_view(source, src_band, grid, has_nodata, nodata);
    if (view == NULL) {
        fail(err, errlen, "warp: cannot create the warped view of '%s': %s",
             GDALGetDescription(source), gdal_reason());
        return NULL;
    }
    GDALGetBlockSize(GDALGetRasterBand(view, 1), &block_x, NULL);
    transformer = create_transformer(source, grid, block_x);
    if (transformer == NULL) {
        fail(err, errlen, "warp: cannot relate '%s' to the target grid: %s",
             GDALGetDescription(source), gdal_reason());
        GDALClose(view);
        return NULL;
    }

    wo = GDALCreateWarpOptions();
    wo->eResampleAlg = resampling;
    wo->hSrcDS = source;
    wo->hDstDS = view;
    wo->nBandCount = 1;
    wo->panSrcBands = (int *)CPLMalloc(sizeof(int));
    wo->panDstBands = (int *)CPLMalloc(sizeof(int));
    wo->panSrcBands[0] = band;
    wo->panDstBands[0] = 1;
    wo->pfnTransformer = row_transform;
    wo->pTransformerArg = transformer;
    /* eWorkingDataType stays unknown: GDAL resolves it from the band types and
     * nodata, as for gdalwarp. */
    if (has_nodata) {
        GDALWarpInitSrcNoDataReal(wo, nodata);
        GDALWarpInitDstNoDataReal(wo, nodata);
    }
    wo->papszWarpOptions =
        CSLSetNameValue(wo->papszWarpOptions, "INIT_DEST", has_nodata ? "NO_DATA" : "0");
    if (whole_grid_scale(row_transform, transformer, GDALGetRasterXSize(source),
                         GDALGetRasterYSize(source), grid->x_size, grid->y_size, radius,
                         scale) == 0) {
        char text[64];
        /* %.17g round-trips through the kernel's CPLAtof exactly. */
        CPLsnprintf(text, sizeof text, "%.17g", scale[0]);
        wo->papszWarpOptions = CSLSetNameValue(wo->papszWarpOptions, "XSCALE", text);
        CPLsnprintf(text, sizeof text, "%.17g", scale[1]);
        wo->papszWarpOptions = CSLSetNameValue(wo->papszWarpOptions, "YSCALE", text);
    }

    /* On success the view owns the transformer and one reference on source;
     * on failure it took neither. */
    if (GDALInitializeWarpedVRT(view, wo) != CE_None) {
        fail(err, errlen, "warp: cannot initialise the warped view of '%s': %s",
             GDALGetDescription(source), gdal_reason());
        GDALDestroyWarpOptions(wo);
        GDALDestroyTransformer(transformer);
        GDALClose(view);
        return NULL;
    }
    GDALDestroyWarpOptions(wo);
    return view;
}
