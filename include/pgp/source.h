/* pgp/source.h — reading a Source node's pixels for one renderer level
 * (docs/architecture.md#modules).
 *
 * A level (pgp_source_level) says which grid the sources are read on: full
 * resolution, or an overview level whose sources are downsampled, or with
 * <Align> warped onto the level's aligned grid. Each worker context holds its
 * own GDAL handles (pgp_source_handles), opened when the context is created,
 * so no tile job builds a warped view; a handle whose read failed is closed
 * and opened afresh by the next read. Reads go straight to a block when the
 * rectangle is one source block that only one node reads, through the shared
 * block cache (each block decoded once for all workers and readers) when it
 * spans a few or several nodes read the source, and through GDAL's RasterIO
 * otherwise. Not for C++: the counters are C11 atomics.
 */
#ifndef PGP_SOURCE_H
#define PGP_SOURCE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "gdal.h"
#include "pgp/cache.h"
#include "pgp/graph.h"
#include "pgp/grid.h"
#include "pgp/node.h"

/* Memory reused from tile to tile: fresh large allocations cost a page fault
 * per 4 KiB, which dominated rendering before buffers were kept. */
typedef struct pgp_scratch {
    void *data;
    size_t bytes;
} pgp_scratch;

/* Returns s's buffer grown to at least bytes (contents not kept), or NULL
 * after CPLError. */
void *pgp_scratch_reserve(pgp_scratch *s, size_t bytes);

/* What reading sources needs from a renderer level; set by the renderer. */
typedef struct pgp_source_level {
    const pgp_graph *graph;
    const pgp_grid *align;   /* with <Align>: the level's aligned grid */
    int is_overview;
    double scale_x, scale_y; /* full-resolution pixels per pixel of the level */
    pgp_tile_cache *blocks;  /* decoded source blocks, keyed by owner */
    uint64_t owner;
    /* Per node: a source that several nodes or bands read, whose whole blocks go
     * through the block cache too, so each is decoded once for all of them. */
    const unsigned char *read_by_several;
    _Atomic uint64_t source_pixels;
    _Atomic uint64_t blocks_decoded;
} pgp_source_level;

/* One worker context's handles: one per node (NULL for other kinds). */
typedef struct pgp_source_handles {
    GDALDatasetH *sources;
    GDALDatasetH *warped_files; /* with <Align>: the file each view warps (the view's) */
    pgp_scratch source_block; /* one block of a source, native type */
} pgp_source_handles;

/* Opens every source of the level's graph into h (zeroed by the caller).
 * Returns 0, or -1 after CPLError naming the node; h is then to be closed. */
int pgp_source_handles_open(const pgp_source_level *level, pgp_source_handles *h);

/* Closes what h holds, also a partly opened h. */
void pgp_source_handles_close(const pgp_source_level *level, pgp_source_handles *h);

/* Reads source node's pixels of rect r as type (its own type or Float64) into
 * pixels, whose rows are stride pixels apart. Returns 0, or -1 after CPLError
 * naming the node, the window and the file. */
int pgp_source_read(pgp_source_level *level, pgp_source_handles *h, int node,
                    const pgp_rect *r, void *pixels, GDALDataType type, int stride);

/* Where a band's decoded blocks are shared between workers: the cache, the
 * key's owner and node, and a counter of blocks decoded (or NULL). */
typedef struct pgp_shared_blocks {
    pgp_tile_cache *cache;
    uint64_t owner;
    int node;
    _Atomic uint64_t *decoded;
} pgp_shared_blocks;

/* Window (x, y, w, h) of band at full resolution as type into pixels (rows
 * stride pixels apart): from its blocks decoded once into shared (unless
 * NULL, or they would fill half of it), else with GDALRasterIO. Any error
 * GDAL raised on the way counts as a failure (GTiff may return an unreadable
 * tile as empty with success). Returns 0, or -1 with the first failure as the
 * last CPLError. */
int pgp_band_read_checked(GDALRasterBandH band, const pgp_shared_blocks *shared, int x, int y,
                          int w, int h, void *pixels, GDALDataType type, int stride);

/* Copies n values of type to dst_type (GDALCopyWords' conversions, the common
 * widenings vectorised). */
void pgp_copy_row(const void *src, GDALDataType type, void *dst, GDALDataType dst_type, int n);

/* Reports a failure in context, quoting the error that caused it; allocates
 * nothing, so it also reports running out of memory. */
void pgp_fail_because(CPLErrorNum err_no, const char *context);

/* Opens path's raster quietly (GDAL_OF_INTERNAL), for a node (where) reading
 * its grid or pixels. NULL after CPLError "where: cannot open [what ]'path':
 * GDAL's reason" (what may be NULL). libtiff opens a file whose tag
 * (GDAL_NODATA) it failed to read with only a warning: it is passed on naming
 * where and the file; strict (a reopen, whose handle would silently differ
 * from the one first read) makes it a failure, the file closed. */
GDALDatasetH pgp_open_raster(const char *where, const char *what, const char *path, int strict);

#endif
