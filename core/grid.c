/* grid.c — <Align> geometry (docs/semantics.md#align): boxes, grids, vector extents. */
#include "pgp/grid.h"
#include "grid_internal.h"
#include "pgp/alloc.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_string.h"
#include "ogr_api.h"
#include "ogr_srs_api.h"

int pgp_grid_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list args;
        va_start(args, fmt);
        CPLvsnprintf(err, errlen, fmt, args);
        va_end(args);
    }
    return -1;
}

const char *pgp_grid_gdal_reason(void)
{
    const char *msg = CPLGetLastErrorMsg();
    return (msg != NULL && *msg != '\0') ? msg : "no detail from GDAL";
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
        return pgp_grid_fail(err, errlen, "boundingBox: no bounding box to merge");
    if (mode == PGP_BBOX_EXPLICIT)
        return pgp_grid_fail(err, errlen, "boundingBox: an explicit box is not merged");
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
        return pgp_grid_fail(err, errlen,
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
        return pgp_grid_fail(err, errlen, "boundingBox: missing");
    if (strcmp(text, "intersection") == 0 || strcmp(text, "union") == 0) {
        out->mode = text[0] == 'u' ? PGP_BBOX_UNION : PGP_BBOX_INTERSECTION;
        memset(&out->box, 0, sizeof out->box);
        return 0;
    }
    if (parse_numbers(text, v, 4, &why) != 0)
        return pgp_grid_fail(err, errlen,
                    "boundingBox '%s': %s (expected intersection, union or "
                    "xmin,ymin,xmax,ymax)",
                    text, why);
    if (v[0] > v[2] || v[1] > v[3])
        return pgp_grid_fail(err, errlen, "boundingBox '%s': xmin > xmax or ymin > ymax", text);
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
        return pgp_grid_fail(err, errlen, "pixelSize: missing");
    if (parse_numbers(text, v, 2, &why) != 0)
        return pgp_grid_fail(err, errlen, "pixelSize '%s': %s (expected x,y)", text, why);
    if (v[0] == 0 || v[1] == 0) /* also -0 */
        return pgp_grid_fail(err, errlen, "pixelSize '%s': pixel sizes must be non-zero", text);
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
    return pgp_grid_fail(err, errlen,
                "resampling '%s': unknown resampling method (expected near, bilinear, "
                "cubic, cubicspline, lanczos, average, mode, min, max, med, q1, q3, sum "
                "or rms)",
                text ? text : "");
}

int pgp_grid_resampling_radius(GDALResampleAlg alg)
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
        return pgp_grid_fail(err, errlen,
                    "the target grid would be %.17g pixels along %s, more than the limit of "
                    "%d",
                    q, axis, PGP_GRID_MAX_SIZE);
    n = (int)q;
    if (!(fabs(fabs(n * pixel) - extent) <= 1e-8))
        n++;
    if (n < 1)
        n = 1;
    if (n > PGP_GRID_MAX_SIZE)
        return pgp_grid_fail(err, errlen,
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
        return pgp_grid_fail(err, errlen, "boundingBox: the bounding box is not finite");
    if (!isfinite(pixel_size[0]) || !isfinite(pixel_size[1]) || pixel_size[0] == 0 ||
        pixel_size[1] == 0)
        return pgp_grid_fail(err, errlen, "pixelSize '%.17g,%.17g': must be finite and non-zero",
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

OGRSpatialReferenceH pgp_grid_new_srs(const char *text)
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
    if (!pgp_grid_has_text(src_wkt) || !pgp_grid_has_text(dst_wkt))
        return pgp_grid_fail(err, errlen, "cannot transform a bounding box: the %s SRS is missing",
                    pgp_grid_has_text(src_wkt) ? "target" : "source");
    CPLErrorReset();
    src = pgp_grid_new_srs(src_wkt);
    dst = pgp_grid_new_srs(dst_wkt);
    ct = (src && dst) ? OCTNewCoordinateTransformation(src, dst) : NULL;
    if (ct == NULL) {
        OSRDestroySpatialReference(src);
        OSRDestroySpatialReference(dst);
        return pgp_grid_fail(err, errlen, "cannot transform a bounding box between these SRSs: %s",
                    pgp_grid_gdal_reason());
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
        return pgp_grid_fail(err, errlen,
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
            return pgp_grid_fail(err, errlen, "vector '%s': layer '%s' has a different SRS", path,
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
    ds = GDALOpenEx(path, GDAL_OF_VECTOR | GDAL_OF_INTERNAL, NULL, NULL, NULL);
    if (ds == NULL)
        return pgp_grid_fail(err, errlen, "vector '%s': cannot open: %s", path, pgp_grid_gdal_reason());
    if (layer != NULL) {
        OGRLayerH l = GDALDatasetGetLayerByName(ds, layer);
        rc = l == NULL ? pgp_grid_fail(err, errlen, "vector '%s': no layer '%s'", path, layer)
                       : add_layer_extent(l, path, &n_found, out, &srs, err, errlen);
    } else {
        for (i = 0; rc == 0 && i < GDALDatasetGetLayerCount(ds); i++)
            rc = add_layer_extent(GDALDatasetGetLayer(ds, i), path, &n_found, out, &srs, err,
                                  errlen);
    }
    if (rc == 0 && n_found == 0)
        rc = pgp_grid_fail(err, errlen, "vector '%s': no feature, so no bounding box", path);
    if (rc == 0 && srs != NULL && OSRExportToWkt(srs, srs_wkt) != OGRERR_NONE) {
        CPLFree(*srs_wkt);
        *srs_wkt = NULL;
        rc = pgp_grid_fail(err, errlen, "vector '%s': cannot export its SRS", path);
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
    if (!pgp_grid_has_text(srs))
        return pgp_grid_fail(err, errlen,
                    "boundingBox: %s has no projection, so its bounding box cannot be "
                    "transformed to the target SRS",
                    what);
    if (pgp_grid_transform_bbox(box, srs, target_wkt, out, why, sizeof why) != 0)
        return pgp_grid_fail(err, errlen, "boundingBox: %s: %s", what, why);
    return 0;
}

/* Union or intersection of the vectors' then the rasters' boxes. */
static int merged_bbox(const pgp_grid_input *inputs, int n_inputs, pgp_bbox_mode mode,
                       const char *target_wkt, const pgp_grid_vector *vectors, int n_vectors,
                       pgp_bbox *out, char *err, size_t errlen)
{
    const int n = n_vectors + n_inputs;
    pgp_bbox *boxes = (pgp_bbox *)pgp_malloc_array(n, sizeof *boxes);
    int i, rc = 0;
    if (boxes == NULL)
        return pgp_grid_fail(err, errlen, "boundingBox: out of memory");
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
    pgp_free(boxes);
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
        return pgp_grid_fail(err, errlen, "Align: no input raster");
    if (n_vectors < 0 || (n_vectors > 0 && vectors == NULL))
        return pgp_grid_fail(err, errlen, "Align: bad vector list");
    if (align_index < -1 || align_index >= n_inputs)
        return pgp_grid_fail(err, errlen, "alignTo: input index %d is not in [0, %d)", align_index,
                    n_inputs);
    if (target_srs != NULL) {
        OGRSpatialReferenceH srs;
        CPLErrorReset();
        srs = pgp_grid_new_srs(target_srs);
        if (srs == NULL || OSRExportToWkt(srs, &target_wkt) != OGRERR_NONE) {
            OSRDestroySpatialReference(srs);
            CPLFree(target_wkt);
            return pgp_grid_fail(err, errlen, "srs '%s': not an SRS GDAL accepts: %s", target_srs,
                        pgp_grid_gdal_reason());
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
                           pgp_grid_has_text(mask->srs_wkt) ? target_wkt : NULL, "the <Mask> features",
                           &mb, err, errlen);
        if (rc == 0 && (fmax(mb.minx, bb.minx) > fmin(mb.maxx, bb.maxx) ||
                        fmax(mb.miny, bb.miny) > fmin(mb.maxy, bb.maxy)))
            rc = pgp_grid_fail(err, errlen,
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
                   : pgp_grid_has_text(inputs[0].srs_wkt) ? pgp_strdup(inputs[0].srs_wkt)
                                                 : NULL;
    if (out->srs_wkt == NULL && pgp_grid_has_text(inputs[0].srs_wkt)) {
        memset(out, 0, sizeof *out);
        return pgp_grid_fail(err, errlen, "out of memory");
    }
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

/* ---- <Mask> ------------------------------------------------------------------ */

int pgp_grid_open_mask_layer(const pgp_grid_mask *mask, GDALDatasetH *ds, OGRLayerH *layer,
                           char *err, size_t errlen)
{
    CPLErrorReset();
    *ds = GDALOpenEx(mask->path, GDAL_OF_VECTOR | GDAL_OF_INTERNAL, NULL, NULL, NULL);
    if (*ds == NULL)
        return pgp_grid_fail(err, errlen, "vector '%s': cannot open: %s", mask->path, pgp_grid_gdal_reason());
    *layer = mask->layer != NULL ? GDALDatasetGetLayerByName(*ds, mask->layer)
                                 : GDALDatasetGetLayer(*ds, 0);
    if (*layer == NULL) {
        pgp_grid_fail(err, errlen, "vector '%s': no layer%s%s%s", mask->path, mask->layer ? " '" : "",
             mask->layer ? mask->layer : "", mask->layer ? "'" : "");
        GDALClose(*ds);
        return -1;
    }
    CPLErrorReset();
    if (pgp_grid_has_text(mask->where) && OGR_L_SetAttributeFilter(*layer, mask->where) != OGRERR_NONE) {
        pgp_grid_fail(err, errlen, "where '%s': %s", mask->where, pgp_grid_gdal_reason());
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
    if (pgp_grid_open_mask_layer(mask, &ds, &layer, err, errlen) != 0)
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
        rc = pgp_grid_fail(err, errlen, "vector '%s': no feature with a geometry%s%s%s", mask->path,
                  pgp_grid_has_text(mask->where) ? " where '" : "",
                  pgp_grid_has_text(mask->where) ? mask->where : "", pgp_grid_has_text(mask->where) ? "'" : "");
    else if (srs != NULL && OSRExportToWkt(srs, srs_wkt) != OGRERR_NONE) {
        CPLFree(*srs_wkt);
        *srs_wkt = NULL;
        rc = pgp_grid_fail(err, errlen, "vector '%s': cannot export its SRS", mask->path);
    }
    GDALClose(ds);
    return rc;
}
