/* core/cache.c — process-wide LRU tile cache (see pgp/cache.h).
 *
 * A chained hash table finds entries by key; unpinned READY entries also sit
 * on a doubly-linked LRU list (head = least recently used), which is all
 * eviction looks at. An entry leaves the table when it fails, is evicted or
 * purged; a pinned entry out of the table is freed by its last release.
 * One mutex guards everything; one condition wakes every waiter for a
 * COMPUTING entry whenever any entry leaves that state. Evicted entries keep
 * their data as spares (newest first, up to SPARE_SHARE of the budget) for
 * pgp_tile_cache_buffer: a recycled buffer is already mapped, a fresh one
 * costs a page fault per 4 KiB. Entries last released as delivered (a client
 * has their pixels) sit on a second LRU list, evicted first and held to
 * DELIVERED_SHARE of the budget: a gdal_translate streams the raster through
 * recycled buffers instead of filling the budget with fresh memory, while
 * tiles still to be read, or read again by other tiles, stay.
 */
#include "pgp/cache.h"
#include "pgp/settings.h"
#include "pgp/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_multiproc.h"
#include "cpl_vsi.h"

#define INITIAL_BUCKETS 64
#define SPARE_SHARE 8 /* spares hold at most budget / SPARE_SHARE bytes */
#define DELIVERED_SHARE 8 /* delivered entries hold at most budget / DELIVERED_SHARE */

typedef enum tile_state { TILE_COMPUTING, TILE_READY, TILE_FAILED } tile_state;

struct pgp_tile {
    pgp_tile_key key;
    uint64_t hash;
    tile_state state;
    int in_table;
    int delivered; /* last released by pgp_tile_cache_release_delivered */
    unsigned pins;
    void *data;
    size_t bytes;
    pgp_tile *next_in_bucket;
    pgp_tile *lru_prev, *lru_next; /* also links the spare list */
};

struct pgp_tile_cache {
    CPLMutex *mutex;
    CPLCond *state_changed;
    pgp_tile **buckets;
    size_t n_buckets; /* a power of two */
    pgp_tile *lru_head, *lru_tail;
    pgp_tile *delivered_head, *delivered_tail; /* the LRU list of delivered entries */
    size_t delivered_bytes;
    pgp_tile *spare_head, *spare_tail; /* out of the table; data kept for reuse */
    pgp_tile_cache_stats stats;
};

/* ------------------------------------------------------------ hashing */

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t key_hash(const pgp_tile_key *key)
{
    uint64_t h = mix64(key->owner ^ 0x9e3779b97f4a7c15ULL);
    h = mix64(h ^ (uint32_t)key->node);
    return mix64(h ^ (((uint64_t)(uint32_t)key->tx << 32) | (uint32_t)key->ty));
}

static int key_equal(const pgp_tile_key *a, const pgp_tile_key *b)
{
    return a->owner == b->owner && a->node == b->node && a->tx == b->tx && a->ty == b->ty;
}

/* ------------------------------------------------------ table and list
 * Everything below runs with cache->mutex held. */

static pgp_tile **bucket_of(pgp_tile_cache *cache, uint64_t hash)
{
    return &cache->buckets[hash & (cache->n_buckets - 1)];
}

static pgp_tile *table_find(pgp_tile_cache *cache, const pgp_tile_key *key, uint64_t hash)
{
    pgp_tile *t = *bucket_of(cache, hash);
    while (t != NULL && !(t->hash == hash && key_equal(&t->key, key)))
        t = t->next_in_bucket;
    return t;
}

/* Doubles the bucket array; on allocation failure keeps the longer chains. */
static void table_grow(pgp_tile_cache *cache)
{
    size_t n = cache->n_buckets * 2;
    pgp_tile **buckets = (pgp_tile **)pgp_calloc_optional(n, sizeof(*buckets));
    if (buckets == NULL)
        return;
    for (size_t i = 0; i < cache->n_buckets; i++) {
        pgp_tile *t = cache->buckets[i];
        while (t != NULL) {
            pgp_tile *next = t->next_in_bucket;
            pgp_tile **bucket = &buckets[t->hash & (n - 1)];
            t->next_in_bucket = *bucket;
            *bucket = t;
            t = next;
        }
    }
    pgp_free(cache->buckets);
    cache->buckets = buckets;
    cache->n_buckets = n;
}

static void table_insert(pgp_tile_cache *cache, pgp_tile *t)
{
    pgp_tile **bucket;
    if (cache->stats.entries >= cache->n_buckets)
        table_grow(cache);
    bucket = bucket_of(cache, t->hash);
    t->next_in_bucket = *bucket;
    *bucket = t;
    t->in_table = 1;
    cache->stats.entries++;
}

static void table_remove(pgp_tile_cache *cache, pgp_tile *t)
{
    pgp_tile **link = bucket_of(cache, t->hash);
    while (*link != t)
        link = &(*link)->next_in_bucket;
    *link = t->next_in_bucket;
    t->in_table = 0;
    cache->stats.entries--;
    if (t->state == TILE_READY)
        cache->stats.ready_bytes -= t->bytes;
}

/* Unlinks t from a list linked by lru_prev/lru_next: the LRU or the spares. */
static void list_remove(pgp_tile **head, pgp_tile **tail, pgp_tile *t)
{
    if (t->lru_prev)
        t->lru_prev->lru_next = t->lru_next;
    else
        *head = t->lru_next;
    if (t->lru_next)
        t->lru_next->lru_prev = t->lru_prev;
    else
        *tail = t->lru_prev;
    t->lru_prev = t->lru_next = NULL;
}

/* Takes an unpinned READY entry off its LRU list. */
static void lru_remove(pgp_tile_cache *cache, pgp_tile *t)
{
    if (t->delivered) {
        list_remove(&cache->delivered_head, &cache->delivered_tail, t);
        cache->delivered_bytes -= t->bytes;
    } else {
        list_remove(&cache->lru_head, &cache->lru_tail, t);
    }
}

/* Makes t the most recently used entry of its list. */
static void lru_append(pgp_tile_cache *cache, pgp_tile *t)
{
    pgp_tile **head = t->delivered ? &cache->delivered_head : &cache->lru_head;
    pgp_tile **tail = t->delivered ? &cache->delivered_tail : &cache->lru_tail;
    t->lru_prev = *tail;
    t->lru_next = NULL;
    if (*tail)
        (*tail)->lru_next = t;
    else
        *head = t;
    *tail = t;
    if (t->delivered)
        cache->delivered_bytes += t->bytes;
}

static void tile_free(pgp_tile *t)
{
    pgp_free(t->data);
    pgp_free(t);
}

static void spare_remove(pgp_tile_cache *cache, pgp_tile *t)
{
    list_remove(&cache->spare_head, &cache->spare_tail, t);
    cache->stats.spare_bytes -= t->bytes;
}

/* Frees the oldest spares beyond the budget's share. */
static void trim_spares(pgp_tile_cache *cache)
{
    while (cache->spare_tail != NULL &&
           cache->stats.spare_bytes > cache->stats.budget_bytes / SPARE_SHARE) {
        pgp_tile *t = cache->spare_tail;
        spare_remove(cache, t);
        tile_free(t);
    }
}

/* Makes t (out of the table and the LRU list) the newest spare. */
static void spare_add(pgp_tile_cache *cache, pgp_tile *t)
{
    t->lru_prev = NULL;
    t->lru_next = cache->spare_head;
    if (cache->spare_head)
        cache->spare_head->lru_prev = t;
    else
        cache->spare_tail = t;
    cache->spare_head = t;
    cache->stats.spare_bytes += t->bytes;
    trim_spares(cache);
}

/* Drops an unpinned entry of the table (so READY, on the LRU list), keeping
 * its data as the newest spare. */
static void drop_entry(pgp_tile_cache *cache, pgp_tile *t)
{
    lru_remove(cache, t);
    table_remove(cache, t);
    spare_add(cache, t);
}

/* Delivered entries beyond their share, then the least recently used entries
 * (delivered first) beyond the budget. */
static void evict_to_budget(pgp_tile_cache *cache)
{
    while (cache->delivered_bytes > cache->stats.budget_bytes / DELIVERED_SHARE &&
           cache->delivered_head != NULL) {
        drop_entry(cache, cache->delivered_head);
        cache->stats.evictions++;
    }
    while (cache->stats.ready_bytes > cache->stats.budget_bytes &&
           (cache->delivered_head != NULL || cache->lru_head != NULL)) {
        drop_entry(cache, cache->delivered_head ? cache->delivered_head : cache->lru_head);
        cache->stats.evictions++;
    }
}

/* --------------------------------------------------------------- API */

pgp_tile_cache *pgp_tile_cache_new(size_t budget_bytes)
{
    pgp_tile_cache *cache = (pgp_tile_cache *)pgp_calloc(1, sizeof(*cache));
    if (cache == NULL)
        return NULL;
    cache->mutex = CPLCreateMutex();
    if (cache->mutex != NULL)
        CPLReleaseMutex(cache->mutex);
    cache->state_changed = CPLCreateCond();
    cache->n_buckets = INITIAL_BUCKETS;
    cache->buckets = (pgp_tile **)pgp_calloc(cache->n_buckets, sizeof(*cache->buckets));
    cache->stats.budget_bytes = budget_bytes;
    if (cache->mutex == NULL || cache->state_changed == NULL || cache->buckets == NULL) {
        pgp_tile_cache_free(cache);
        return NULL;
    }
    return cache;
}

void pgp_tile_cache_free(pgp_tile_cache *cache)
{
    if (cache == NULL)
        return;
    for (size_t i = 0; cache->buckets != NULL && i < cache->n_buckets; i++) {
        pgp_tile *t = cache->buckets[i];
        while (t != NULL) {
            pgp_tile *next = t->next_in_bucket;
            CPLAssert(t->pins == 0);
            tile_free(t);
            t = next;
        }
    }
    while (cache->spare_head != NULL) {
        pgp_tile *t = cache->spare_head;
        cache->spare_head = t->lru_next;
        tile_free(t);
    }
    pgp_free(cache->buckets);
    if (cache->state_changed != NULL)
        CPLDestroyCond(cache->state_changed);
    if (cache->mutex != NULL)
        CPLDestroyMutex(cache->mutex);
    pgp_free(cache);
}

static CPLMutex *global_mutex;
static pgp_tile_cache *global_cache, *global_block_cache;

/* PGP_CACHE_MB as bytes. */
static size_t budget_from_config(void)
{
    return (size_t)pgp_settings_cache_mb() * 1024 * 1024;
}

/* *slot, created on first use with budget_from_config() / divisor. Created
 * outside global_mutex: creating a CPL mutex, or reading a config option,
 * takes CPL's own global mutexes, which must not nest inside ours. */
static pgp_tile_cache *global_instance(pgp_tile_cache **slot, size_t divisor)
{
    pgp_tile_cache *cache;
    pgp_tile_cache *created;
    CPLCreateOrAcquireMutex(&global_mutex, 1000.0);
    cache = *slot;
    CPLReleaseMutex(global_mutex);
    if (cache != NULL)
        return cache;

    created = pgp_tile_cache_new(budget_from_config() / divisor);
    if (created == NULL)
        return NULL;
    CPLCreateOrAcquireMutex(&global_mutex, 1000.0);
    if (*slot == NULL) {
        *slot = created;
        created = NULL;
    }
    cache = *slot;
    CPLReleaseMutex(global_mutex);
    pgp_tile_cache_free(created); /* another thread installed one first */
    return cache;
}

pgp_tile_cache *pgp_tile_cache_global(void)
{
    return global_instance(&global_cache, 1);
}

pgp_tile_cache *pgp_block_cache_global(void)
{
    return global_instance(&global_block_cache, PGP_BLOCK_CACHE_SHARE);
}

void pgp_tile_cache_shutdown_global(void)
{
    pgp_tile_cache *cache, *blocks;
    CPLCreateOrAcquireMutex(&global_mutex, 1000.0);
    cache = global_cache;
    blocks = global_block_cache;
    global_cache = global_block_cache = NULL;
    CPLReleaseMutex(global_mutex);
    pgp_tile_cache_free(cache);
    pgp_tile_cache_free(blocks);
}

void pgp_tile_cache_set_budget(pgp_tile_cache *cache, size_t budget_bytes)
{
    if (cache == NULL) /* pgp_tile_cache_global failed, and said so */
        return;
    CPLAcquireMutex(cache->mutex, 1000.0);
    cache->stats.budget_bytes = budget_bytes;
    evict_to_budget(cache);
    trim_spares(cache);
    CPLReleaseMutex(cache->mutex);
}

uint64_t pgp_tile_cache_new_owner(void)
{
    static _Atomic uint64_t last_owner;
    return atomic_fetch_add(&last_owner, 1) + 1;
}

pgp_tile_status pgp_tile_cache_acquire(pgp_tile_cache *cache, const pgp_tile_key *key,
                                       pgp_tile **tile)
{
    uint64_t hash = key_hash(key);
    pgp_tile_status status;
    pgp_tile *t;

    CPLAcquireMutex(cache->mutex, 1000.0);
    t = table_find(cache, key, hash);
    if (t == NULL) {
        t = (pgp_tile *)pgp_calloc(1, sizeof(*t));
        if (t == NULL) {
            CPLReleaseMutex(cache->mutex);
            *tile = NULL;
            return PGP_TILE_NO_MEMORY;
        }
        t->key = *key;
        t->hash = hash;
        t->state = TILE_COMPUTING;
        t->pins = 1;
        table_insert(cache, t);
        cache->stats.computed++;
        status = PGP_TILE_MUST_COMPUTE;
    } else {
        if (t->pins++ == 0) /* unpinned entries of the table are on the LRU list */
            lru_remove(cache, t);
        if (t->state == TILE_COMPUTING) {
            cache->stats.waiting++;
            while (t->state == TILE_COMPUTING)
                CPLCondWait(cache->state_changed, cache->mutex);
            cache->stats.waiting--;
        }
        if (t->state == TILE_READY) {
            cache->stats.hits++;
            status = PGP_TILE_READY;
        } else {
            status = PGP_TILE_FAILED;
        }
    }
    CPLReleaseMutex(cache->mutex);
    *tile = t;
    return status;
}

void pgp_tile_cache_publish(pgp_tile_cache *cache, pgp_tile *tile, void *data, size_t bytes)
{
    CPLAcquireMutex(cache->mutex, 1000.0);
    CPLAssert(tile->state == TILE_COMPUTING);
    tile->data = data;
    tile->bytes = bytes;
    tile->state = TILE_READY;
    if (tile->in_table) {
        cache->stats.ready_bytes += bytes;
        evict_to_budget(cache);
    }
    CPLCondBroadcast(cache->state_changed);
    CPLReleaseMutex(cache->mutex);
}

void pgp_tile_cache_fail(pgp_tile_cache *cache, pgp_tile *tile)
{
    CPLAcquireMutex(cache->mutex, 1000.0);
    CPLAssert(tile->state == TILE_COMPUTING);
    tile->state = TILE_FAILED;
    if (tile->in_table)
        table_remove(cache, tile);
    CPLCondBroadcast(cache->state_changed);
    CPLReleaseMutex(cache->mutex);
}

void *pgp_tile_cache_buffer(pgp_tile_cache *cache, size_t bytes)
{
    pgp_tile *t;
    void *data = NULL;
    CPLAcquireMutex(cache->mutex, 1000.0);
    for (t = cache->spare_head; t != NULL && t->bytes != bytes; t = t->lru_next)
        ;
    if (t != NULL) {
        spare_remove(cache, t);
        cache->stats.recycled++;
        data = t->data;
    }
    CPLReleaseMutex(cache->mutex);
    if (t == NULL)
        return pgp_malloc(bytes);
    pgp_free(t);
    return data;
}

pgp_tile_presence pgp_tile_cache_peek(pgp_tile_cache *cache, const pgp_tile_key *key)
{
    pgp_tile_presence presence = PGP_TILE_ABSENT;
    pgp_tile *t;
    CPLAcquireMutex(cache->mutex, 1000.0);
    t = table_find(cache, key, key_hash(key));
    if (t != NULL)
        presence = t->state == TILE_READY ? PGP_TILE_CACHED : PGP_TILE_IN_PROGRESS;
    CPLReleaseMutex(cache->mutex);
    return presence;
}

void pgp_tile_cache_recycle(pgp_tile_cache *cache, void *data, size_t bytes)
{
    pgp_tile *t = (pgp_tile *)pgp_calloc(1, sizeof(pgp_tile));
    if (t == NULL) { /* nothing lost but the reuse */
        CPLErrorReset();
        pgp_free(data);
        return;
    }
    t->data = data;
    t->bytes = bytes;
    CPLAcquireMutex(cache->mutex, 1000.0);
    spare_add(cache, t);
    CPLReleaseMutex(cache->mutex);
}

const void *pgp_tile_data(const pgp_tile *tile)
{
    return tile->data;
}

/* delivered: 1 or 0 sets the entry's standing, -1 leaves it. */
static void release(pgp_tile_cache *cache, pgp_tile *tile, int delivered)
{
    CPLAcquireMutex(cache->mutex, 1000.0);
    CPLAssert(tile->pins > 0);
    if (delivered >= 0)
        tile->delivered = delivered;
    if (--tile->pins == 0) {
        CPLAssert(tile->state != TILE_COMPUTING); /* neither published nor failed */
        if (!tile->in_table) {
            tile_free(tile);
        } else if (tile->state == TILE_READY) {
            lru_append(cache, tile);
            evict_to_budget(cache);
        }
    }
    CPLReleaseMutex(cache->mutex);
}

void pgp_tile_cache_release(pgp_tile_cache *cache, pgp_tile *tile)
{
    release(cache, tile, 0);
}

void pgp_tile_cache_release_delivered(pgp_tile_cache *cache, pgp_tile *tile)
{
    release(cache, tile, 1);
}

void pgp_tile_cache_unpin(pgp_tile_cache *cache, pgp_tile *tile)
{
    release(cache, tile, -1);
}

void pgp_tile_cache_purge_owner(pgp_tile_cache *cache, uint64_t owner)
{
    CPLAcquireMutex(cache->mutex, 1000.0);
    for (size_t i = 0; i < cache->n_buckets; i++) {
        pgp_tile *t = cache->buckets[i];
        while (t != NULL) {
            pgp_tile *next = t->next_in_bucket;
            if (t->key.owner == owner) {
                CPLAssert(t->pins == 0);
                /* A pinned entry is only unlinked; its last release frees it. */
                if (t->pins == 0)
                    drop_entry(cache, t);
                else
                    table_remove(cache, t);
            }
            t = next;
        }
    }
    CPLReleaseMutex(cache->mutex);
}

void pgp_tile_cache_get_stats(pgp_tile_cache *cache, pgp_tile_cache_stats *stats)
{
    CPLAcquireMutex(cache->mutex, 1000.0);
    *stats = cache->stats;
    CPLReleaseMutex(cache->mutex);
}
