/* pgp/cache.h — process-wide LRU tile cache with a byte budget (docs/architecture.md#execution).
 *
 * An entry is created COMPUTING by the thread that acquires a missing key,
 * which gets PGP_TILE_MUST_COMPUTE and owns computing it; it then becomes
 * READY, or FAILED and leaves the table. Any other thread acquiring the same
 * key meanwhile waits for it rather than computing it again.
 *
 * Ownership: an acquired entry is pinned until pgp_tile_cache_release; pinned
 * entries are never evicted, so the data pointer stays valid while pinned.
 * Published data belongs to the cache. Unpinned READY entries are evicted
 * least-recently-used first whenever the READY bytes exceed the budget; an
 * evicted entry's data is kept as a spare for pgp_tile_cache_buffer (spares
 * hold at most an eighth of the budget beyond it, newest kept, the rest freed
 * with pgp_free). All functions are thread-safe.
 */
#ifndef PGP_CACHE_H
#define PGP_CACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pgp_tile_key {
    uint64_t owner; /* one id per open dataset: pgp_tile_cache_new_owner() */
    int node;
    int tx, ty;
} pgp_tile_key;

typedef struct pgp_tile_cache pgp_tile_cache;
typedef struct pgp_tile pgp_tile;

typedef enum pgp_tile_status {
    PGP_TILE_READY,        /* data is valid                                    */
    PGP_TILE_MUST_COMPUTE, /* caller computes, then publish() or fail()        */
    PGP_TILE_FAILED,       /* the thread computing it failed; caller reports it */
    PGP_TILE_NO_MEMORY     /* no entry could be made (CPLError); *tile is NULL  */
} pgp_tile_status;

/* NULL after CPLError when memory runs out. */
pgp_tile_cache *pgp_tile_cache_new(size_t budget_bytes);
void pgp_tile_cache_free(pgp_tile_cache *cache); /* no entry may be pinned */

/* The shared cache, created on first use with the budget PGP_CACHE_MB
 * (default 256 MB); NULL after CPLError if it cannot be created. Freed by
 * pgp_tile_cache_shutdown_global at unload. */
pgp_tile_cache *pgp_tile_cache_global(void);

/* The shared cache of decoded source blocks (render.c's window reads), a
 * separate instance so that blocks, cheap to decode again, never evict
 * computed tiles: its budget is the tile cache's / PGP_BLOCK_CACHE_SHARE. */
#define PGP_BLOCK_CACHE_SHARE 8
pgp_tile_cache *pgp_block_cache_global(void);

/* Frees both shared caches (at unload). */
void pgp_tile_cache_shutdown_global(void);

/* Changes the budget and evicts down to it (nothing for a NULL cache). */
void pgp_tile_cache_set_budget(pgp_tile_cache *cache, size_t budget_bytes);

/* A process-unique owner id (never 0). */
uint64_t pgp_tile_cache_new_owner(void);

/* Finds or creates the entry for key and pins it (*tile set, NULL only with
 * PGP_TILE_NO_MEMORY).
 * Waits while another thread computes it. A FAILED entry is removed from the
 * cache, so a later acquire computes it afresh. */
pgp_tile_status pgp_tile_cache_acquire(pgp_tile_cache *cache, const pgp_tile_key *key,
                                       pgp_tile **tile);

/* A buffer of bytes for data to publish: an evicted entry's of exactly that
 * size when one is spare (already paged in, unlike fresh memory), else
 * pgp_malloc's (NULL after CPLError). Free it with pgp_free if not published. */
void *pgp_tile_cache_buffer(pgp_tile_cache *cache, size_t bytes);

/* For a MUST_COMPUTE entry: hands data (pgp_malloc'd, bytes long) to the cache,
 * marks it READY and wakes waiters. The entry stays pinned. */
void pgp_tile_cache_publish(pgp_tile_cache *cache, pgp_tile *tile, void *data, size_t bytes);

/* For a MUST_COMPUTE entry: marks it FAILED and wakes waiters. Still pinned. */
void pgp_tile_cache_fail(pgp_tile_cache *cache, pgp_tile *tile);

/* Hands a buffer from pgp_tile_cache_buffer that was used and not published
 * (a tile read once) back as a spare for the next tile of its size. */
void pgp_tile_cache_recycle(pgp_tile_cache *cache, void *data, size_t bytes);

const void *pgp_tile_data(const pgp_tile *tile);

/* What an acquire of key would find now, without pinning, waiting or counting
 * a hit: a hint for scheduling, which may be stale as soon as it returns. */
typedef enum pgp_tile_presence {
    PGP_TILE_ABSENT,      /* no entry: an acquire would compute it */
    PGP_TILE_IN_PROGRESS, /* some thread is computing it           */
    PGP_TILE_CACHED       /* READY                                 */
} pgp_tile_presence;

pgp_tile_presence pgp_tile_cache_peek(pgp_tile_cache *cache, const pgp_tile_key *key);

void pgp_tile_cache_release(pgp_tile_cache *cache, pgp_tile *tile);

/* Releases an entry whose pixels a client now has (copied out, summarised):
 * such entries are evicted first, and held to an eighth of the budget, so
 * that a scan of a large raster recycles their buffers instead of mapping
 * fresh memory for every tile. The entry's next release decides again. */
void pgp_tile_cache_release_delivered(pgp_tile_cache *cache, pgp_tile *tile);

/* Releases an entry without changing how it was last released (a job that
 * only made sure it is cached: a prefetch finding it delivered leaves it so). */
void pgp_tile_cache_unpin(pgp_tile_cache *cache, pgp_tile *tile);

/* Drops every entry of owner (none may be pinned): a dataset is closing. */
void pgp_tile_cache_purge_owner(pgp_tile_cache *cache, uint64_t owner);

/* Observations for tests and debug metadata. */
typedef struct pgp_tile_cache_stats {
    size_t budget_bytes;
    size_t ready_bytes;   /* bytes of READY entries held               */
    size_t entries;       /* entries in the cache, any state           */
    uint64_t computed;    /* MUST_COMPUTE hand-outs since creation     */
    uint64_t hits;        /* acquires answered READY                   */
    uint64_t evictions;
    size_t spare_bytes;   /* evicted data kept for pgp_tile_cache_buffer */
    uint64_t recycled;    /* buffers pgp_tile_cache_buffer reused      */
    size_t waiting;       /* acquires blocked on a computing entry now */
} pgp_tile_cache_stats;

void pgp_tile_cache_get_stats(pgp_tile_cache *cache, pgp_tile_cache_stats *stats);

#ifdef __cplusplus
}
#endif

#endif
