/* pgp/grid.h — the geometry of <Align> (docs/semantics.md#align).
 *
 * The bounding-box and grid half of pygeoprocessing's
 * align_and_resize_raster_stack / warp_raster as pure functions (bbox merge,
 * min-corner snapping, ceiling-sized lower-left-anchored grid,
 * transform_bounding_box), and the extents of vectors and of <Mask>'s
 * features. Views of sources warped onto a grid are pgp/warp.h's.
 *
 * Errors: every function that can fail returns 0 on success and -1 after
 * writing a message naming the problem into err (errlen bytes, always
 * NUL-terminated when errlen > 0), e.g. "pixelSize '0,30': ...". GDAL may also
 * have emitted CPLErrors of its own on the calling thread; their text is
 * appended to the message.
 *
 * Threads: everything here is reentrant and keeps no global state.
 */
#ifndef PGP_GRID_H
#define PGP_GRID_H

#include <stddef.h>

#include "gdal.h"
#include "gdalwarper.h" /* GDALResampleAlg */

#ifdef __cplusplus
extern "C" {
#endif

/* Documented limit: a grid side above this many pixels is refused with an
 * error instead of being allocated (docs/hardening.md#resource-limits). */
#define PGP_GRID_MAX_SIZE 10000000

typedef struct pgp_bbox {
    double minx, miny, maxx, maxy;
} pgp_bbox;

typedef enum pgp_bbox_mode {
    PGP_BBOX_INTERSECTION,
    PGP_BBOX_UNION,
    PGP_BBOX_EXPLICIT /* the box is given, in target coordinates */
} pgp_bbox_mode;

/* A parsed boundingBox attribute. */
typedef struct pgp_bbox_spec {
    pgp_bbox_mode mode;
    pgp_bbox box; /* PGP_BBOX_EXPLICIT only */
} pgp_bbox_spec;

/* The grid of one input raster, as its dataset reports it. */
typedef struct pgp_grid_input {
    double gt[6];
    int x_size, y_size;
    const char *srs_wkt; /* NULL or "" when the raster has no projection */
} pgp_grid_input;

/* The extent of one vector dataset (see pgp_grid_vector_bbox). */
typedef struct pgp_grid_vector {
    pgp_bbox bbox;
    const char *srs_wkt; /* NULL or "" when it has no SRS */
} pgp_grid_vector;

/* <Mask> (pygeoprocessing's mask_options): the polygons of one layer of a
 * vector, optionally filtered by an OGR SQL where clause. path NULL: none. */
typedef struct pgp_grid_mask {
    char *path;  /* CPLMalloc'd                                          */
    char *layer; /* CPLMalloc'd; NULL: the first layer                     */
    char *where; /* CPLMalloc'd; NULL: every feature                       */
} pgp_grid_mask;

/* The aligned target grid. Owned by whoever filled it; release srs_wkt and
 * the mask's strings with pgp_grid_clear. A shallow copy with other x_size,
 * y_size and gt (the same extent in bigger pixels, for overviews) is a valid
 * grid for pgp_warp_open_view; it shares the strings, so only the original
 * is cleared. */
typedef struct pgp_grid {
    int x_size, y_size;
    double gt[6];   /* north-up: (minx, |px|, 0, maxy, 0, -|py|)             */
    char *srs_wkt;  /* the grid's SRS (pgp_malloc'd WKT); NULL when none      */
    int reproject;  /* 1: an explicit target SRS was given and every source is
                       reprojected into srs_wkt. 0: none was given; srs_wkt is
                       the first input's, and each source is read in its own
                       CRS (pygeoprocessing's -t_srs = the source's own). */
    pgp_grid_mask mask;
} pgp_grid;

/* pygeoprocessing's raster bounding box: min/max over the two corners
 * (gt0, gt3) and (gt0 + nx*gt1 + ny*gt2, gt3 + nx*gt4 + ny*gt5). */
pgp_bbox pgp_grid_raster_bbox(const double gt[6], int x_size, int y_size);

/* Reduces n >= 1 boxes pairwise: union = min of mins, max of maxes;
 * intersection = max of mins, min of maxes. An empty intersection (min > max
 * on either axis) is the error "the bounding boxes do not intersect";
 * touching boxes (min == max) are allowed. mode must not be EXPLICIT. */
int pgp_grid_merge_bboxes(const pgp_bbox *boxes, int n, pgp_bbox_mode mode, pgp_bbox *out,
                          char *err, size_t errlen);

/* boundingBox = "intersection" | "union" | "xmin,ymin,xmax,ymax" (finite
 * numbers, min <= max on each axis). */
int pgp_grid_parse_bbox(const char *text, pgp_bbox_spec *out, char *err, size_t errlen);

/* pixelSize = "x,y": two finite non-zero numbers of either sign (only the
 * absolute values are used for the grid). */
int pgp_grid_parse_pixel_size(const char *text, double pixel_size[2], char *err,
                              size_t errlen);

/* resampling = near | bilinear | cubic | cubicspline | lanczos | average |
 * mode | min | max | med | q1 | q3 | sum | rms (case-insensitive, like
 * gdalwarp -r). */
int pgp_grid_parse_resampling(const char *text, GDALResampleAlg *out, char *err, size_t errlen);

/* raster_align_index snapping: moves only the min corner of bb onto the grid
 * lines of the align raster, using that raster's own bbox and own pixel size
 * (gt[1], gt[5]): n = trunc((bb.min - abb.min) / p); bb.min = abb.min + n*p.
 * Truncation moves the corner toward the align raster's min corner, so it
 * moves inward (clipping up to one pixel) when bb starts outside it. */
pgp_bbox pgp_grid_snap_min_corner(pgp_bbox bb, const double align_gt[6], int align_x_size,
                                  int align_y_size);

/* warp_raster's grid: n = trunc(|extent / p|), + 1 unless the residual
 * |n*p| - extent is within 1e-8 (absolute), at least 1; anchored at
 * (minx, miny), gt = (minx, |px|, 0, miny + ny*|py|, 0, -|py|). Sides above
 * PGP_GRID_MAX_SIZE are an error. */
int pgp_grid_from_bbox(pgp_bbox bb, const double pixel_size[2], int *x_size, int *y_size,
                       double gt[6], char *err, size_t errlen);

/* transform_bounding_box: 11 evenly spaced points per edge (corners
 * included) transformed with OSR in traditional GIS order; min x over the
 * left edge, min y over the bottom, max x over the right, max y over the
 * top; then x and y each sorted. A missing source or target SRS, an SRS OSR
 * does not accept, or a non-finite result is an error. */
int pgp_grid_transform_bbox(pgp_bbox in, const char *src_wkt, const char *dst_wkt,
                            pgp_bbox *out, char *err, size_t errlen);

/* The extent of a vector dataset: the named layer's, or (layer == NULL) the
 * union of every non-empty layer's. (pygeoprocessing reads layer 0 only; the
 * two agree for single-layer files.) *srs_wkt receives the layers' SRS as a
 * CPLMalloc'd WKT (NULL when they have none); the caller CPLFree()s it. Layers
 * with different SRSs, or no feature at all, are an error. */
int pgp_grid_vector_bbox(const char *path, const char *layer, pgp_bbox *out, char **srs_wkt,
                         char *err, size_t errlen);

/* The bounding box of the features <Mask> selects (the union of their
 * envelopes, the where filter applied) and their layer's SRS in *srs_wkt
 * (CPLMalloc'd WKT, NULL when it has none; the caller CPLFree()s it).
 * Errors: the vector does not open, no such layer, a where clause OGR
 * refuses (bad syntax, unknown attribute), no feature selected. */
int pgp_grid_mask_bbox(const pgp_grid_mask *mask, pgp_bbox *out, char **srs_wkt, char *err,
                       size_t errlen);

/* The whole bbox -> grid pipeline of docs/semantics.md#align, for n_inputs >= 1 rasters:
 *  - explicit bbox: used as given (not reprojected, vectors ignored);
 *  - union / intersection: the vectors' and rasters' bboxes, each first
 *    transformed into target_srs when one is given (a missing projection is
 *    an error), then merged;
 *  - mask (NULL: none; see pgp_grid_mask_bbox) must intersect that box,
 *    once transformed like the vectors' (the box is not changed);
 *  - align_index in [0, n_inputs) snaps the min corner (-1: no snapping);
 *  - then pgp_grid_from_bbox with pixel_size.
 * target_srs is any string OSR accepts (NULL: the first input's SRS, without
 * reprojection; see pgp_grid.reproject). On success *out is filled (the
 * caller calls pgp_grid_clear); on failure *out holds nothing to free. */
int pgp_grid_compute(const pgp_grid_input *inputs, int n_inputs, const pgp_bbox_spec *bbox,
                     const double pixel_size[2], int align_index, const char *target_srs,
                     const pgp_grid_vector *vectors, int n_vectors,
                     const pgp_grid_vector *mask, pgp_grid *out, char *err, size_t errlen);

void pgp_grid_clear(pgp_grid *grid);

#ifdef __cplusplus
}
#endif

#endif
