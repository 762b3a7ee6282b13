/* pgp/warp.h — a source band seen warped onto an <Align> grid
 * (docs/semantics.md#align), pixels from GDAL's warper.
 *
 * Errors: NULL and a message naming the problem in err (errlen bytes), as in
 * pgp/grid.h. Threads: a view, like any GDAL 3.6 dataset, is used by one
 * thread at a time; it reads its source (and opens the mask's vector), so the
 * source is not used concurrently either (one source handle and one view per
 * worker, docs/architecture.md#execution).
 */
#ifndef PGP_WARP_H
#define PGP_WARP_H

#include <stddef.h>

#include "gdal.h"
#include "gdalwarper.h"
#include "pgp/grid.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A view of band `band` of `source` warped exactly onto `grid`: the pixels
 * `gdalwarp -te <grid> -tr <grid> -r <resampling> [-t_srs <grid srs>]` writes
 * when it warps the grid as one chunk (GenImgProj transformer, its default
 * 0.125 px approximation, full-resolution source), with one band:
 *  - the source band's data type (and PIXELTYPE=SIGNEDBYTE flag);
 *  - source nodata nd: src and dst nodata nd, INIT_DEST=NO_DATA (pixels with
 *    no valid source are nd), band nodata nd;
 *  - no source nodata: no band nodata, pixels outside the source are 0;
 *  - blocks of block_x x block_y (clamped to the grid): the caller's tiles.
 *    The view is a VRT mosaic of one warped VRT per column of blocks, so the
 *    warp chunks (at most 512x128 in GDAL 3.6) never straddle two blocks and
 *    workers reading different blocks never warp the same pixels;
 *  - where the source's pixels lie on the grid (no reprojection, same pixel
 *    size, origin on a source pixel corner) the warp is a `near` copy
 *    whatever `resampling` says, as in GDAL's own warper;
 *  - XSCALE/YSCALE warp options fixed to the scale GDAL computes for one
 *    chunk covering the whole grid, and a transformer that gives each chunk
 *    row the source positions GDAL's approximation gives its whole grid row,
 *    so every chunk and hence every window read equals the whole-grid warp
 *    bit for bit (docs/semantics.md#the-pixels);
 *  - with grid->mask, pixels whose centre is outside the selected polygons
 *    (gdal.RasterizeLayer's default rule on the whole grid, layer SRS to grid
 *    SRS) are left at the fill: the nodata, or 0 without one. The vector is
 *    opened by the view itself (one handle per view, so per worker).
 * It differs from plain gdalwarp only where gdalwarp splits the destination
 * itself (over its 64 MB warp memory, or a source fill ratio below 0.5) or
 * reads a source overview (-ovr AUTO-1 on a source with overviews). Implicit
 * overviews are declined: reduced-resolution reads are computed from the
 * full-resolution warp. The view is not meant to be serialised (xml:VRT).
 * With grid->reproject, the view reprojects from the source's own SRS (a
 * source without one is an error) and reports grid->srs_wkt; otherwise it
 * does not reproject and reports the source's own SRS.
 *
 * Ownership: the view holds its own references on `source` (GDAL's
 * warped-VRT rule, one per column of blocks: taken on creation, released
 * when the view closes, and the source is closed only when the last one
 * goes). The caller keeps its own reference and must GDALClose the view
 * BEFORE GDALClose(source) (GDALClose destroys a non-shared dataset whatever
 * its reference count). To hand the source over instead, call
 * GDALReleaseDataset(source) once after this returns: closing the view then
 * closes the source. On failure no reference is taken and NULL is returned. */
GDALDatasetH pgp_warp_open_view(GDALDatasetH source, int band, const pgp_grid *grid,
                                GDALResampleAlg resampling, int block_x, int block_y, char *err,
                                size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
