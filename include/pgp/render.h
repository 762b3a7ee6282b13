/* pgp/render.h — evaluates graph nodes tile by tile and serves windows
 * (docs/architecture.md#execution).
 *
 * Work is partitioned by the graph's block grid, never by the request: a job
 * computes one whole tile, so every executor and every request shape yields the
 * same bits. Tiles go through the process-wide tile cache; a job computing a
 * Calc or Convolve tile acquires, in the same job, the tiles of its input
 * nodes that it needs (a Convolve's: those under its tile grown by the
 * kernel's reach); sources are read straight from GDAL, not cached.
 *
 * Threads: a renderer may be called from several client threads at once. Each
 * running job borrows a worker context (its own GDAL handle per source, opened
 * on first use, closed by pgp_renderer_free), so no GDAL handle is ever used by
 * two threads at once. A handle whose read failed is closed, and the next
 * read opens a fresh one; a read fails when GDAL raised an error during it,
 * even if GDAL returned success (pgp/executor.h, resources).
 *
 * Scan-ahead: a read too small to occupy the executor (one block) that
 * continues a scan and misses a tile also computes, in its own batch, the next
 * tiles in row-major order that no thread has (2 x workers, doubling with
 * each batch of the scan up to 8 x workers; as many as half the cache holds), so a client reading block by block uses every worker.
 *
 * Prefetch: after each read, up to prefetch_tiles tiles that follow the window
 * (and the tiles computed ahead) in row-major order are computed in the
 * background, so a client scanning the raster finds them ready. They never
 * delay a foreground read.
 *
 * Ownership: the graph, executor and cache are borrowed and must outlive the
 * renderer. pgp_renderer_free cancels queued prefetches, waits for running
 * ones, and drops the renderer's cached tiles.
 */
#ifndef PGP_RENDER_H
#define PGP_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "gdal.h"
#include "pgp/cache.h"
#include "pgp/executor.h"
#include "pgp/graph.h"
#include "pgp/node.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pgp_renderer pgp_renderer;

/* NULL after CPLError when memory runs out (or cache is NULL: its creation
 * failed and was reported). */
pgp_renderer *pgp_renderer_new(const pgp_graph *graph, pgp_executor *executor,
                               pgp_tile_cache *cache, int prefetch_tiles);
/* An overview: the same graph evaluated on a coarser grid of x_size x y_size
 * (at most the graph's) covering the same extent, with the same tiles, cache
 * and determinism rules. Unaligned sources are read through GDAL's nearest
 * downsampling (their own overviews when they have some), <Align> warps
 * straight onto the coarse grid, and each Convolve uses its kernel downsampled
 * to the coarse pixel (pgp_kernel_downsample). NULL after CPLError. */
pgp_renderer *pgp_renderer_new_overview(const pgp_graph *graph, pgp_executor *executor,
                                        pgp_tile_cache *cache, int prefetch_tiles, int x_size,
                                        int y_size);
void pgp_renderer_free(pgp_renderer *renderer);

/* Reads window (x, y, w, h) of nodes[0..n_nodes) at the renderer's level into
 * buffer (node i at buffer + i * band_space), converting with GDALCopyWords to
 * buffer_type. Missing tiles are computed on the executor; jobs write disjoint
 * parts of buffer. progress is called per tile on the calling thread. */
CPLErr pgp_renderer_read(pgp_renderer *renderer, int n_nodes, const int *nodes, int x, int y,
                         int w, int h, void *buffer, GDALDataType buffer_type,
                         GSpacing pixel_space, GSpacing line_space, GSpacing band_space,
                         GDALProgressFunc progress, void *progress_arg);

/* Computes the tiles of nodes covering window (x, y, w, h) in parallel and
 * leaves them in the cache, for a caller about to read the window block by
 * block (GDAL's resampling of a downsampled request). Does nothing when those
 * tiles would not fit in half the cache budget: they would be evicted before
 * being read. */
CPLErr pgp_renderer_compute(pgp_renderer *renderer, int n_nodes, const int *nodes, int x, int y,
                            int w, int h, GDALProgressFunc progress, void *progress_arg);

/* Calls visit once for every tile of node (index = row-major tile index), on
 * worker threads, with the tile's pixels in the node's data type. */
typedef int (*pgp_tile_visitor)(void *arg, size_t tile_index, const void *pixels, int w, int h);

CPLErr pgp_renderer_visit_tiles(pgp_renderer *renderer, int node, pgp_tile_visitor visit,
                                void *arg, GDALProgressFunc progress, void *progress_arg);

/* Computes tiles first_tile .. first_tile + n_tiles - 1 (row-major indices) of
 * nodes[0..n_nodes) on the executor and hands each tile, all nodes at once
 * (pixels[i]: nodes[i]'s, in its data type, t->w x t->h), to sink on the
 * worker that computed it, in no particular order (a render writing its
 * target, pgp/target.h); a tile that failed is handed over with pixels NULL
 * (its error raised already; the sink's return ignored), so that a sink
 * waiting for it can stop. A node that no node reads and no other band shows
 * is computed outside the tile cache, into a buffer recycled after the sink:
 * such a tile is used once, and caching it would only take fresh memory. */
typedef int (*pgp_tile_sink)(void *arg, size_t tile_index, const pgp_rect *t,
                             const void *const *pixels);

CPLErr pgp_renderer_stream_tiles(pgp_renderer *renderer, int n_nodes, const int *nodes,
                                 size_t first_tile, size_t n_tiles, pgp_tile_sink sink, void *arg,
                                 GDALProgressFunc progress, void *progress_arg);

size_t pgp_renderer_tile_count(const pgp_renderer *renderer);

/* The threads that compute a batch of tiles: the executor's workers and the
 * caller. */
int pgp_renderer_threads(const pgp_renderer *renderer);

const pgp_graph *pgp_renderer_graph(const pgp_renderer *renderer);

/* Tiles this renderer has computed (not found in the cache), prefetches
 * included: exposed as the dataset's PGP/TILES_COMPUTED metadata item. */
uint64_t pgp_renderer_tiles_computed(const pgp_renderer *renderer);

/* Tile jobs reads added ahead of their windows (scan-ahead), exposed as
 * PGP/TILES_AHEAD: tests see that a block-by-block scan computes ahead. */
uint64_t pgp_renderer_tiles_ahead(const pgp_renderer *renderer);

/* pgp_renderer_read calls so far and their wall time on the calling threads,
 * with that of pgp_renderer_compute (a resampled read's first step): what a
 * client spent waiting for pgp (the PGP debug line at close). */
void pgp_renderer_read_time(const pgp_renderer *renderer, uint64_t *reads,
                            uint64_t *microseconds);

/* Waits until the prefetch jobs the renderer queued have run (tests, benchmarks). */
void pgp_renderer_wait_prefetch(pgp_renderer *renderer);

/* Source pixels this renderer has read (at its level's resolution): exposed as
 * PGP/SOURCE_PIXELS_READ, so tests can count what a zoomed-out view costs. */
uint64_t pgp_renderer_source_pixels(const pgp_renderer *renderer);

/* Source blocks this renderer has decoded into the shared block cache (a
 * Convolve's windows): exposed as PGP/SOURCE_BLOCKS_DECODED, so tests can
 * check that workers share blocks instead of decoding them each. */
uint64_t pgp_renderer_blocks_decoded(const pgp_renderer *renderer);

/* Tiles computed in this process by every renderer so far, at full resolution and
 * at overview levels: the driver's PGP metadata, for clients (QGIS) whose datasets
 * a test cannot reach. */
void pgp_render_process_totals(uint64_t *full_resolution_tiles, uint64_t *overview_tiles);

#ifdef __cplusplus
}
#endif

#endif
