// Unit tests for core/cache.c (pgp/cache.h). The global shutdown
// environment lives in test_executor.cpp.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cpl_conv.h"
#include "cpl_vsi.h"
#include "pgp/cache.h"

namespace {

const size_t kTileBytes = 1000;

pgp_tile_key Key(uint64_t owner, int node, int tx, int ty)
{
    pgp_tile_key key;
    key.owner = owner;
    key.node = node;
    key.tx = tx;
    key.ty = ty;
    return key;
}

// Tile bytes encode their key, so a tile handed out for the wrong key or
// freed under a reader shows up as a mismatch.
uint8_t PatternByte(const pgp_tile_key &key, size_t i)
{
    uint64_t h = key.owner * 1000003u ^ (uint64_t)(uint32_t)key.node * 10007u ^
                 (uint64_t)(uint32_t)key.tx * 101u ^ (uint64_t)(uint32_t)key.ty * 7u;
    return (uint8_t)(h + i * 31u);
}

void *MakeTileData(const pgp_tile_key &key, size_t bytes)
{
    auto *data = static_cast<uint8_t *>(VSIMalloc(bytes));
    for (size_t i = 0; i < bytes; i++)
        data[i] = PatternByte(key, i);
    return data;
}

bool TileDataMatches(const pgp_tile *tile, const pgp_tile_key &key, size_t bytes)
{
    const auto *data = static_cast<const uint8_t *>(pgp_tile_data(tile));
    if (data == nullptr)
        return false;
    for (size_t i = 0; i < bytes; i++)
        if (data[i] != PatternByte(key, i))
            return false;
    return true;
}

pgp_tile_cache_stats Stats(pgp_tile_cache *cache)
{
    pgp_tile_cache_stats stats;
    pgp_tile_cache_get_stats(cache, &stats);
    return stats;
}

class TileCache : public ::testing::Test {
  protected:
    void TearDown() override { pgp_tile_cache_free(cache_); }

    void Open(size_t budget) { cache_ = pgp_tile_cache_new(budget); }

    // Computes (or finds) key and releases it.
    pgp_tile_status Touch(const pgp_tile_key &key, size_t bytes = kTileBytes)
    {
        pgp_tile *tile;
        pgp_tile_status status = pgp_tile_cache_acquire(cache_, &key, &tile);
        if (status == PGP_TILE_MUST_COMPUTE)
            pgp_tile_cache_publish(cache_, tile, MakeTileData(key, bytes), bytes);
        else
            EXPECT_TRUE(TileDataMatches(tile, key, bytes));
        pgp_tile_cache_release(cache_, tile);
        return status;
    }

    // Acquires without computing: a miss is failed at once so the probe
    // leaves no entry behind, and a hit keeps how it was last released.
    bool IsCached(const pgp_tile_key &key)
    {
        pgp_tile *tile;
        pgp_tile_status status = pgp_tile_cache_acquire(cache_, &key, &tile);
        if (status == PGP_TILE_MUST_COMPUTE)
            pgp_tile_cache_fail(cache_, tile);
        pgp_tile_cache_unpin(cache_, tile);
        return status == PGP_TILE_READY;
    }

    pgp_tile_cache *cache_ = nullptr;
};

TEST_F(TileCache, MissComputesThenHitReturnsSameData)
{
    Open(1 << 20);
    pgp_tile_key key = Key(1, 2, 3, 4);
    pgp_tile *tile;
    ASSERT_EQ(pgp_tile_cache_acquire(cache_, &key, &tile), PGP_TILE_MUST_COMPUTE);
    EXPECT_EQ(pgp_tile_data(tile), nullptr);
    void *data = MakeTileData(key, kTileBytes);
    pgp_tile_cache_publish(cache_, tile, data, kTileBytes);
    EXPECT_EQ(pgp_tile_data(tile), data);
    pgp_tile_cache_release(cache_, tile);

    pgp_tile *again;
    ASSERT_EQ(pgp_tile_cache_acquire(cache_, &key, &again), PGP_TILE_READY);
    EXPECT_EQ(again, tile);
    EXPECT_EQ(pgp_tile_data(again), data);
    EXPECT_TRUE(TileDataMatches(again, key, kTileBytes));
    pgp_tile_cache_release(cache_, again);

    pgp_tile_cache_stats stats = Stats(cache_);
    EXPECT_EQ(stats.budget_bytes, size_t(1 << 20));
    EXPECT_EQ(stats.ready_bytes, kTileBytes);
    EXPECT_EQ(stats.entries, 1u);
    EXPECT_EQ(stats.computed, 1u);
    EXPECT_EQ(stats.hits, 1u);
    EXPECT_EQ(stats.evictions, 0u);
}

TEST_F(TileCache, KeysDifferingInOneFieldAreDistinct)
{
    Open(1 << 20);
    const pgp_tile_key keys[] = {Key(1, 0, 0, 0), Key(2, 0, 0, 0), Key(1, 1, 0, 0),
                                 Key(1, 0, 1, 0), Key(1, 0, 0, 1), Key(1, 0, -1, 0),
                                 Key(1, 0, 0, -1)};
    for (const auto &key : keys)
        EXPECT_EQ(Touch(key), PGP_TILE_MUST_COMPUTE);
    for (const auto &key : keys)
        EXPECT_EQ(Touch(key), PGP_TILE_READY);
    EXPECT_EQ(Stats(cache_).entries, 7u);
}

TEST_F(TileCache, TableGrowsAndKeepsEveryEntry)
{
    Open(SIZE_MAX);
    for (int i = 0; i < 5000; i++)
        ASSERT_EQ(Touch(Key(9, i % 3, i - 2500, -i), 16), PGP_TILE_MUST_COMPUTE);
    for (int i = 0; i < 5000; i++)
        ASSERT_EQ(Touch(Key(9, i % 3, i - 2500, -i), 16), PGP_TILE_READY) << i;
    pgp_tile_cache_stats stats = Stats(cache_);
    EXPECT_EQ(stats.entries, 5000u);
    EXPECT_EQ(stats.ready_bytes, 5000u * 16);
}

TEST_F(TileCache, EvictsLeastRecentlyUsedFirst)
{
    Open(3 * kTileBytes);
    Touch(Key(1, 0, 0, 0));
    Touch(Key(1, 0, 1, 0));
    Touch(Key(1, 0, 2, 0));
    EXPECT_EQ(Touch(Key(1, 0, 0, 0)), PGP_TILE_READY);  // tile 0 becomes most recent
    Touch(Key(1, 0, 3, 0));                              // evicts tile 1
    Touch(Key(1, 0, 4, 0));                              // evicts tile 2

    pgp_tile_cache_stats stats = Stats(cache_);
    EXPECT_EQ(stats.evictions, 2u);
    EXPECT_EQ(stats.entries, 3u);
    EXPECT_EQ(stats.ready_bytes, 3 * kTileBytes);
    EXPECT_TRUE(IsCached(Key(1, 0, 0, 0)));
    EXPECT_TRUE(IsCached(Key(1, 0, 3, 0)));
    EXPECT_TRUE(IsCached(Key(1, 0, 4, 0)));
    EXPECT_FALSE(IsCached(Key(1, 0, 1, 0)));
    EXPECT_FALSE(IsCached(Key(1, 0, 2, 0)));
}

TEST_F(TileCache, PinnedEntriesAreNeverEvicted)
{
    Open(kTileBytes);
    pgp_tile_key a = Key(1, 0, 0, 0), b = Key(1, 0, 1, 0);
    pgp_tile *ta, *tb;
    ASSERT_EQ(pgp_tile_cache_acquire(cache_, &a, &ta), PGP_TILE_MUST_COMPUTE);
    pgp_tile_cache_publish(cache_, ta, MakeTileData(a, kTileBytes), kTileBytes);
    ASSERT_EQ(pgp_tile_cache_acquire(cache_, &b, &tb), PGP_TILE_MUST_COMPUTE);
    pgp_tile_cache_publish(cache_, tb, MakeTileData(b, kTileBytes), kTileBytes);
    pgp_tile_cache_set_budget(cache_, 0);

    pgp_tile_cache_stats stats = Stats(cache_);
    EXPECT_EQ(stats.ready_bytes, 2 * kTileBytes);  // over budget, but all pinned
    EXPECT_EQ(stats.evictions, 0u);
    EXPECT_TRUE(TileDataMatches(ta, a, kTileBytes));
    EXPECT_TRUE(TileDataMatches(tb, b, kTileBytes));

    pgp_tile_cache_set_budget(cache_, kTileBytes);
    pgp_tile_cache_release(cache_, ta);  // unpinned and over budget: evicted
    stats = Stats(cache_);
    EXPECT_EQ(stats.evictions, 1u);
    EXPECT_EQ(stats.ready_bytes, kTileBytes);
    EXPECT_TRUE(TileDataMatches(tb, b, kTileBytes));
    pgp_tile_cache_release(cache_, tb);  // fits the budget: kept
    EXPECT_TRUE(IsCached(b));
    EXPECT_FALSE(IsCached(a));
}

TEST_F(TileCache, BudgetZeroKeepsNothingOnceReleased)
{
    Open(0);
    pgp_tile_key key = Key(1, 0, 0, 0);
    pgp_tile *computer, *reader;
    ASSERT_EQ(pgp_tile_cache_acquire(cache_, &key, &computer), PGP_TILE_MUST_COMPUTE);
    pgp_tile_cache_publish(cache_, computer, MakeTileData(key, kTileBytes), kTileBytes);
    ASSERT_EQ(pgp_tile_cache_acquire(cache_, &key, &reader), PGP_TILE_READY);
    pgp_tile_cache_release(cache_, computer);
    EXPECT_TRUE(TileDataMatches(reader, key, kTileBytes));  // still pinned by reader
    pgp_tile_cache_release(cache_, reader);

    pgp_tile_cache_stats stats = Stats(cache_);
    EXPECT_EQ(stats.entries, 0u);
    EXPECT_EQ(stats.ready_bytes, 0u);
    EXPECT_EQ(stats.evictions, 1u);
    EXPECT_EQ(Touch(key), PGP_TILE_MUST_COMPUTE);
}

TEST_F(TileCache, SetBudgetShrinksToTheNewBudget)
{
    Open(10 * kTileBytes);
    for (int i = 0; i < 5; i++)
        Touch(Key(1, 0, i, 0));
    pgp_tile_cache_set_budget(cache_, 2 * kTileBytes);
    pgp_tile_cache_stats stats = Stats(cache_);
    EXPECT_EQ(stats.budget_bytes, 2 * kTileBytes);
    EXPECT_EQ(stats.ready_bytes, 2 * kTileBytes);
    EXPECT_EQ(stats.evictions, 3u);
    for (int i = 0; i < 5; i++)
        EXPECT_EQ(IsCached(Key(1, 0, i, 0)), i >= 3) << i;
}

TEST_F(TileCache, EvictedDataIsHandedOutAgainForTheSameSize)
{
    std::set<const void *> published;
    auto publish = [&](int n, int ty) {
        for (int i = 0; i < n; i++) {
            pgp_tile_key key = Key(1, 0, i, ty);
            pgp_tile *tile;
            ASSERT_EQ(pgp_tile_cache_acquire(cache_, &key, &tile), PGP_TILE_MUST_COMPUTE);
            void *data = MakeTileData(key, kTileBytes);
            published.insert(data);
            pgp_tile_cache_publish(cache_, tile, data, kTileBytes);
            pgp_tile_cache_release(cache_, tile);
        }
    };
    Open(4 * kTileBytes);
    publish(5, 0); // the fifth evicts the first
    EXPECT_EQ(Stats(cache_).evictions, 1u);
    EXPECT_EQ(Stats(cache_).spare_bytes, 0u) << "a spare beyond budget / 8 is freed";
    pgp_tile_cache_set_budget(cache_, 16 * kTileBytes); // spares: 2 tiles
    publish(14, 1);                                     // 18 tiles: evicts 2
    EXPECT_EQ(Stats(cache_).spare_bytes, 2 * kTileBytes);
    pgp_tile_cache_set_budget(cache_, 10 * kTileBytes); // evicts 6, 1 spare stays
    EXPECT_EQ(Stats(cache_).spare_bytes, kTileBytes);
    void *other_size = pgp_tile_cache_buffer(cache_, kTileBytes + 1);
    EXPECT_EQ(Stats(cache_).recycled, 0u) << "only the exact size is reused";
    void *recycled = pgp_tile_cache_buffer(cache_, kTileBytes);
    EXPECT_EQ(published.count(recycled), 1u) << "an evicted tile's data";
    EXPECT_EQ(Stats(cache_).recycled, 1u);
    EXPECT_EQ(Stats(cache_).spare_bytes, 0u);
    void *fresh = pgp_tile_cache_buffer(cache_, kTileBytes);
    EXPECT_EQ(Stats(cache_).recycled, 1u) << "no spare left";
    // The recycled buffer is published like any: it holds the new tile.
    pgp_tile_key key = Key(2, 0, 0, 0);
    pgp_tile *tile;
    ASSERT_EQ(pgp_tile_cache_acquire(cache_, &key, &tile), PGP_TILE_MUST_COMPUTE);
    for (size_t i = 0; i < kTileBytes; i++)
        static_cast<uint8_t *>(recycled)[i] = PatternByte(key, i);
    pgp_tile_cache_publish(cache_, tile, recycled, kTileBytes);
    pgp_tile_cache_release(cache_, tile);
    ASSERT_EQ(pgp_tile_cache_acquire(cache_, &key, &tile), PGP_TILE_READY);
    EXPECT_TRUE(TileDataMatches(tile, key, kTileBytes));
    pgp_tile_cache_release(cache_, tile);
    VSIFree(other_size);
    VSIFree(fresh);
}

TEST_F(TileCache, RecycledBuffersAreHandedOutAgainWithinTheSpareShare)
{
    Open(16 * kTileBytes); // spares: 2 tiles
    void *used[3];
    for (auto &buffer : used)
        buffer = pgp_tile_cache_buffer(cache_, kTileBytes);
    for (auto *buffer : used)
        pgp_tile_cache_recycle(cache_, buffer, kTileBytes);
    pgp_tile_cache_stats stats = Stats(cache_);
    EXPECT_EQ(stats.spare_bytes, 2 * kTileBytes) << "the oldest beyond budget / 8 freed";
    EXPECT_EQ(stats.entries, 0u) << "a recycled buffer is no cache entry";
    void *again = pgp_tile_cache_buffer(cache_, kTileBytes);
    EXPECT_EQ(again, used[2]) << "the newest spare first";
    EXPECT_EQ(Stats(cache_).recycled, 1u);
    VSIFree(again);
}

// A read's tiles (released as delivered) are held to budget / 8 and evicted
// before any tile still to be read or used by other tiles; their buffers are
// handed out again, so a scan bigger than that share maps no fresh memory.
TEST_F(TileCache, DeliveredEntriesAreHeldToAnEighthAndEvictedFirst)
{
    Open(32 * kTileBytes); // delivered share: 4 tiles; spares: 4 tiles
    auto deliver = [&](const pgp_tile_key &key) {
        pgp_tile *tile;
        pgp_tile_status status = pgp_tile_cache_acquire(cache_, &key, &tile);
        if (status == PGP_TILE_MUST_COMPUTE)
            pgp_tile_cache_publish(cache_, tile, MakeTileData(key, kTileBytes), kTileBytes);
        pgp_tile_cache_release_delivered(cache_, tile);
        return status;
    };
    Touch(Key(1, 1, 0, 0)); // kept: an input, older than every delivered tile
    for (int i = 0; i < 4; i++)
        deliver(Key(1, 0, i, 0));
    EXPECT_EQ(Stats(cache_).evictions, 0u) << "four delivered tiles fit the share";
    deliver(Key(1, 0, 4, 0));
    EXPECT_EQ(Stats(cache_).evictions, 1u);
    EXPECT_EQ(Stats(cache_).spare_bytes, kTileBytes) << "its buffer is kept for the next tile";
    EXPECT_FALSE(IsCached(Key(1, 0, 0, 0))) << "the oldest delivered tile went";
    for (int i = 1; i <= 4; i++)
        EXPECT_TRUE(IsCached(Key(1, 0, i, 0))) << i;
    EXPECT_TRUE(IsCached(Key(1, 1, 0, 0))) << "the kept tile, though older, stays";

    // Found again by a read, a delivered tile is the newest of its list.
    EXPECT_EQ(deliver(Key(1, 0, 1, 0)), PGP_TILE_READY);
    deliver(Key(1, 0, 5, 0));
    EXPECT_TRUE(IsCached(Key(1, 0, 1, 0)));
    EXPECT_FALSE(IsCached(Key(1, 0, 2, 0)));

    // Unpinning (a prefetch finding the tile cached) leaves it delivered;
    // a plain release (an input of another tile) keeps it with the others.
    pgp_tile_key unpinned = Key(1, 0, 3, 0), used = Key(1, 0, 4, 0);
    pgp_tile *tile;
    ASSERT_EQ(pgp_tile_cache_acquire(cache_, &unpinned, &tile), PGP_TILE_READY);
    pgp_tile_cache_unpin(cache_, tile);
    EXPECT_EQ(Touch(used), PGP_TILE_READY);
    for (int i = 6; i < 10; i++)
        deliver(Key(1, 0, i, 0));
    EXPECT_FALSE(IsCached(unpinned)) << "still delivered: evicted in its turn";
    EXPECT_TRUE(IsCached(used)) << "kept once used as an input";

    // Over the whole budget, delivered tiles still go first.
    pgp_tile_cache_set_budget(cache_, 3 * kTileBytes);
    EXPECT_TRUE(IsCached(Key(1, 1, 0, 0)));
    EXPECT_TRUE(IsCached(used));
    EXPECT_EQ(Stats(cache_).ready_bytes, 2 * kTileBytes) << "delivered share of 3 tiles: none";
}

TEST_F(TileCache, FailureWakesWaitersAndIsRecomputedLater)
{
    Open(1 << 20);
    pgp_tile_key key = Key(1, 0, 0, 0);
    pgp_tile *computer;
    ASSERT_EQ(pgp_tile_cache_acquire(cache_, &key, &computer), PGP_TILE_MUST_COMPUTE);

    pgp_tile_status waiter_status = PGP_TILE_READY;
    std::thread waiter([&] {
        pgp_tile *tile;
        waiter_status = pgp_tile_cache_acquire(cache_, &key, &tile);
        pgp_tile_cache_release(cache_, tile);
    });
    while (Stats(cache_).waiting == 0)  // until it blocks on the computing entry
        std::this_thread::yield();
    pgp_tile_cache_fail(cache_, computer);
    EXPECT_EQ(Stats(cache_).entries, 0u);  // failed entries leave the table at once
    waiter.join();
    EXPECT_EQ(waiter_status, PGP_TILE_FAILED);
    pgp_tile_cache_release(cache_, computer);

    EXPECT_EQ(Touch(key), PGP_TILE_MUST_COMPUTE);
    EXPECT_EQ(Touch(key), PGP_TILE_READY);
    pgp_tile_cache_stats stats = Stats(cache_);
    EXPECT_EQ(stats.computed, 2u);
    EXPECT_EQ(stats.entries, 1u);
}

TEST_F(TileCache, ConcurrentAcquiresComputeOnce)
{
    Open(1 << 20);
    const int n_threads = 8;
    pgp_tile_key key = Key(5, 1, 2, 3);
    std::atomic<int> arrived{0}, must_compute{0}, ready_ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < n_threads; t++)
        threads.emplace_back([&] {
            arrived++;
            while (arrived < n_threads)
                std::this_thread::yield();
            pgp_tile *tile;
            pgp_tile_status status = pgp_tile_cache_acquire(cache_, &key, &tile);
            if (status == PGP_TILE_MUST_COMPUTE) {
                must_compute++;
                // Publishes only once every other thread waits on this entry.
                while (Stats(cache_).waiting < size_t(n_threads - 1))
                    std::this_thread::yield();
                pgp_tile_cache_publish(cache_, tile, MakeTileData(key, kTileBytes), kTileBytes);
            } else if (status == PGP_TILE_READY && TileDataMatches(tile, key, kTileBytes)) {
                ready_ok++;
            }
            pgp_tile_cache_release(cache_, tile);
        });
    for (auto &t : threads)
        t.join();
    EXPECT_EQ(must_compute.load(), 1);
    EXPECT_EQ(ready_ok.load(), n_threads - 1);
    pgp_tile_cache_stats stats = Stats(cache_);
    EXPECT_EQ(stats.computed, 1u);
    EXPECT_EQ(stats.hits, uint64_t(n_threads - 1));
    EXPECT_EQ(stats.waiting, 0u);
}

TEST_F(TileCache, ManyThreadsOnRandomKeysUnderASmallBudget)
{
    const size_t tile_bytes = 256;
    Open(8 * tile_bytes);
    const int n_threads = 8, ops_per_thread = 20000;
    std::atomic<int> corrupt{0}, failed_seen{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < n_threads; t++)
        threads.emplace_back([&, t] {
            std::mt19937 rng(t + 1);
            for (int op = 0; op < ops_per_thread; op++) {
                pgp_tile_key key = Key(1 + rng() % 2, rng() % 2, rng() % 6, rng() % 4);
                pgp_tile *tile;
                switch (pgp_tile_cache_acquire(cache_, &key, &tile)) {
                case PGP_TILE_MUST_COMPUTE:
                    if (rng() % 50 == 0)
                        pgp_tile_cache_fail(cache_, tile);
                    else
                        pgp_tile_cache_publish(cache_, tile, MakeTileData(key, tile_bytes),
                                               tile_bytes);
                    break;
                case PGP_TILE_READY:
                    if (!TileDataMatches(tile, key, tile_bytes))
                        corrupt++;
                    break;
                case PGP_TILE_FAILED:
                    failed_seen++;
                    break;
                case PGP_TILE_NO_MEMORY:
                    ADD_FAILURE() << "no memory for an entry";
                    continue;
                }
                // The three releases move entries between the two LRU lists.
                switch (rng() % 3) {
                case 0:
                    pgp_tile_cache_release(cache_, tile);
                    break;
                case 1:
                    pgp_tile_cache_release_delivered(cache_, tile);
                    break;
                default:
                    pgp_tile_cache_unpin(cache_, tile);
                }
            }
        });
    for (auto &t : threads)
        t.join();
    EXPECT_EQ(corrupt.load(), 0);
    pgp_tile_cache_stats stats = Stats(cache_);
    EXPECT_EQ(stats.computed + stats.hits + failed_seen.load(),
              uint64_t(n_threads) * ops_per_thread);
    EXPECT_LE(stats.ready_bytes, stats.budget_bytes);
    EXPECT_EQ(stats.ready_bytes, stats.entries * tile_bytes);  // nothing left COMPUTING
    EXPECT_GT(stats.evictions, 0u);
    // Every entry is on exactly one list, with its bytes: shrinking to nothing
    // finds and drops them all.
    pgp_tile_cache_set_budget(cache_, 0);
    stats = Stats(cache_);
    EXPECT_EQ(stats.entries, 0u);
    EXPECT_EQ(stats.ready_bytes, 0u);
}

TEST_F(TileCache, PurgeOwnerRemovesOnlyThatOwner)
{
    Open(1 << 20);
    uint64_t closing = pgp_tile_cache_new_owner(), staying = pgp_tile_cache_new_owner();
    for (int i = 0; i < 3; i++) {
        Touch(Key(closing, 0, i, 0));
        Touch(Key(staying, 0, i, 0));
    }
    pgp_tile_cache_purge_owner(cache_, closing);
    pgp_tile_cache_stats stats = Stats(cache_);
    EXPECT_EQ(stats.entries, 3u);
    EXPECT_EQ(stats.ready_bytes, 3 * kTileBytes);
    for (int i = 0; i < 3; i++) {
        EXPECT_FALSE(IsCached(Key(closing, 0, i, 0))) << i;
        EXPECT_TRUE(IsCached(Key(staying, 0, i, 0))) << i;
    }
}

TEST(TileCacheOwners, IdsAreUniqueAndNonZeroAcrossThreads)
{
    const int n_threads = 4, per_thread = 1000;
    std::vector<std::vector<uint64_t>> ids(n_threads);
    std::vector<std::thread> threads;
    for (int t = 0; t < n_threads; t++)
        threads.emplace_back([&, t] {
            for (int i = 0; i < per_thread; i++)
                ids[t].push_back(pgp_tile_cache_new_owner());
        });
    for (auto &t : threads)
        t.join();
    std::set<uint64_t> unique;
    for (const auto &list : ids)
        unique.insert(list.begin(), list.end());
    EXPECT_EQ(unique.size(), size_t(n_threads * per_thread));
    EXPECT_EQ(unique.count(0), 0u);
}

TEST(TileCacheGlobal, BudgetComesFromPgpCacheMb)
{
    const struct {
        const char *value;
        size_t expected;
    } cases[] = {
        {nullptr, 256u << 20}, {"3", 3u << 20}, {"0", 0}, {"junk", 256u << 20},
        {"-5", 256u << 20},    {"12MB", 256u << 20},
    };
    std::string saved = CPLGetConfigOption("PGP_CACHE_MB", "");
    bool had_saved = CPLGetConfigOption("PGP_CACHE_MB", nullptr) != nullptr;
    for (const auto &c : cases) {
        if (c.value == nullptr && getenv("PGP_CACHE_MB") != nullptr)
            continue;
        CPLSetConfigOption("PGP_CACHE_MB", c.value);
        pgp_tile_cache_shutdown_global();
        pgp_tile_cache *cache = pgp_tile_cache_global();
        ASSERT_NE(cache, nullptr);
        EXPECT_EQ(pgp_tile_cache_global(), cache);
        EXPECT_EQ(Stats(cache).budget_bytes, c.expected) << (c.value ? c.value : "(unset)");
    }
    CPLSetConfigOption("PGP_CACHE_MB", had_saved ? saved.c_str() : nullptr);
    pgp_tile_cache_shutdown_global();
}

}  // namespace
