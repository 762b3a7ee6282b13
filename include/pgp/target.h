/* pgp/target.h — writing rendered tiles into a raster: pgp.render's target
 * (docs/python.md#performance, docs/design-notes.md).
 *
 * A target wraps a GDAL dataset the caller created (size, type, bands,
 * nodata, georeferencing) and writes it tile by tile, in row-major tile order,
 * whatever order the tiles were computed in: the same calls in the same order
 * for every executor, so the same file. A tile is converted to the target's
 * type, summarised for statistics (pgp/stats.h, on the written values:
 * NaN and the band's nodata skipped), and written as whole blocks with
 * GDALWriteBlock when the target's blocks are the tiles and its bands are
 * separate (one band, or INTERLEAVE=BAND), bypassing GDAL's block cache;
 * otherwise with RasterIO, flushing GDAL's cache after each finished row of
 * target blocks. Outside-the-raster parts of edge blocks hold zeros, as GDAL's
 * block cache leaves them (so gdal_translate's edge blocks).
 *
 * pgp_target_render computes a graph's tiles on its renderer's executor and
 * writes each once every tile before it is written: from the node's own
 * buffers when it is that tile's turn, otherwise after waiting, converted, in
 * one of two slots per computing thread. A worker whose tile is further ahead
 * waits for room, so memory is bounded by the threads, never by the raster.
 * The waiting tiles are written by the worker that finished last, or one that
 * arrives later: a writer's turn is bounded by the slots, so that no thread
 * (the calling one, which reports progress, among them) writes the whole
 * raster; what the last turns leave is written once the tiles are computed.
 *
 * Threads: one caller at a time per target; pgp_target_render writes from the
 * executor's workers and the calling thread, one at a time, in tile order.
 * Entry points are exported for Python (ctypes, python/pgp/graph.py). Errors:
 * -1 after CPLError naming the target and the tile.
 */
#ifndef PGP_TARGET_H
#define PGP_TARGET_H

#include <stddef.h>

#include "gdal.h"
#include "pgp/render.h"
#include "pgp/stats.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef PGP_API
#define PGP_API __attribute__((visibility("default")))
#endif

typedef struct pgp_target pgp_target;

/* A target over every band of dataset, cut into tiles of tile_x x tile_y
 * pixels; statistics: summarise what is written. NULL after CPLError. The
 * dataset stays the caller's and must outlive the target. */
PGP_API pgp_target *pgp_target_new(GDALDatasetH dataset, int tile_x, int tile_y, int statistics);

PGP_API void pgp_target_free(pgp_target *target);

/* Writes window (x, y, w, h), whole tiles at tile-grid offsets, from one
 * buffer per band (bands[i]: types[i] pixels, rows line_pixels[i] apart),
 * tile after tile. Windows must come in row-major tile order. 0 or -1. */
PGP_API int pgp_target_write(pgp_target *target, int x, int y, int w, int h,
                             const void *const *bands, const int *types,
                             const int *line_pixels);

/* Band band's (0-based) statistics of everything written so far, merged in
 * tile order. */
PGP_API void pgp_target_statistics(const pgp_target *target, int band, pgp_stats *stats);

/* Computes every tile of nodes[0..target's band count) with renderer (whose
 * tiles must be the target's) and writes them. progress (may be NULL) is
 * called on the calling thread; FALSE cancels (CPLE_UserInterrupt). */
CPLErr pgp_target_render(pgp_target *target, pgp_renderer *renderer, const int *nodes,
                         GDALProgressFunc progress, void *progress_arg);

#ifdef __cplusplus
}
#endif

#endif
