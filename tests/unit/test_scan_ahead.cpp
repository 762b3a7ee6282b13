// test_scan_ahead.cpp — a scan read block by block runs on every worker: a
// one-tile read that continues a scan computes the next tiles in its own batch.
// Proven with a node kind, <Meet input="..."/>, whose tiles each wait until a
// given number of tiles are being computed at once (a rendezvous, no sleeps):
// a batch of one job would wait alone and fail.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_vsi.h"
#include "raster_fixture.h"

extern "C" {
#include "pgp/alloc.h"
#include "pgp/cache.h"
#include "pgp/executor.h"
#include "pgp/graph.h"
#include "pgp/node.h"
#include "pgp/render.h"
}

namespace {

struct Meeting {
    std::mutex mutex;
    std::condition_variable changed;
    int arrived = 0;
    int needed = 0;
} meeting;

int ParseMeet(pgp_graph *, const CPLXMLNode *element, const char *, pgp_node *node)
{
    static const char *const attributes[] = {"name", "input", nullptr};
    node->data_type = GDT_Float64;
    if (pgp_graph_check_attributes(element, node->where, attributes) != 0)
        return -1;
    node->state = pgp_strdup(CPLGetXMLValue(element, "input", ""));
    return node->state != nullptr ? 0 : -1;
}

int LinkMeet(pgp_graph *graph, pgp_node *node, const pgp_expr_var *)
{
    return pgp_graph_link_one(graph, node, static_cast<const char *>(node->state));
}

double MeetScratch(const pgp_graph *graph, const pgp_node *)
{
    return static_cast<double>(graph->block_x) * graph->block_y * sizeof(double);
}

// Its input's pixels, once meeting.needed tiles have arrived here together.
void *ComputeMeet(pgp_job *job, int node, const pgp_rect *t, int depth)
{
    {
        std::unique_lock<std::mutex> lock(meeting.mutex);
        meeting.arrived++;
        meeting.changed.notify_all();
        if (!meeting.changed.wait_for(lock, std::chrono::seconds(20),
                                      [] { return meeting.arrived >= meeting.needed; })) {
            CPLError(CE_Failure, CPLE_AppDefined, "tile (%d,%d) was computed alone", t->tx,
                     t->ty);
            return nullptr;
        }
    }
    const pgp_node *n = &pgp_job_graph(job)->nodes[node];
    const size_t count = static_cast<size_t>(t->w) * t->h;
    auto *values = static_cast<double *>(pgp_job_scratch(job, depth, count * sizeof(double)));
    if (values == nullptr || pgp_job_read(job, n->input_nodes[0], t, depth + 1, values, t->w))
        return nullptr;
    return pgp_job_tile(job, node, values, count);
}

void FreeMeet(pgp_node *node)
{
    pgp_free(node->state);
}

const pgp_node_kind_def kMeetKind = {"Meet",      ParseMeet, LinkMeet, MeetScratch,
                                     ComputeMeet, nullptr,   FreeMeet, nullptr};

// 16 x 8 tiles over 101 x 67: 7 tiles a row, 63 in all.
constexpr int kW = 101, kH = 67, kBlockX = 16, kBlockY = 8;

class ScanAheadTest : public ::testing::Test
{
  protected:
    static void SetUpTestSuite()
    {
        if (pgp_node_kind_find("Meet") == nullptr) {
            ASSERT_EQ(pgp_node_kind_register(&kMeetKind), 0);
        }
    }
    void SetUp() override
    {
        a_ = pgp_test::Field(kW * kH, 100.0, 5);
        pgp_test::WriteRaster("/vsimem/ahead/a.tif", kW, kH, GDT_Float64, a_);
        graph_ = pgp_graph_open("<PGPDataset blockXSize='16' blockYSize='8'>"
                                "<Source name='a' file='/vsimem/ahead/a.tif'/>"
                                "<Meet name='m' input='a'/><Band ref='m'/></PGPDataset>");
        ASSERT_NE(graph_, nullptr) << CPLGetLastErrorMsg();
        node_ = pgp_graph_find(graph_, "m");
        meeting.arrived = 0;
    }
    void TearDown() override
    {
        pgp_graph_free(graph_);
        VSIRmdirRecursive("/vsimem/ahead");
    }

    // Reads block (bx, by) and checks its pixels against the source's.
    CPLErr ReadBlock(pgp_renderer *r, int bx, int by)
    {
        const int x = bx * kBlockX, y = by * kBlockY;
        const int w = std::min(kBlockX, kW - x), h = std::min(kBlockY, kH - y);
        std::vector<double> block(static_cast<size_t>(w) * h);
        const CPLErr err = pgp_renderer_read(r, 1, &node_, x, y, w, h, block.data(),
                                             GDT_Float64, 8, 8 * w, 0, nullptr, nullptr);
        for (int row = 0; err == CE_None && row < h; row++)
            EXPECT_EQ(0, std::memcmp(&block[static_cast<size_t>(row) * w],
                                     &a_[static_cast<size_t>(y + row) * kW + x], 8 * w))
                << "block " << bx << "," << by << " row " << row;
        return err;
    }

    std::vector<double> a_;
    pgp_graph *graph_ = nullptr;
    int node_ = -1;
};

TEST_F(ScanAheadTest, ABlockReadComputesTheNextTilesOnEveryWorker)
{
    // Two workers and the caller: three tiles must be computed at once.
    meeting.needed = 3;
    pgp_tile_cache *cache = pgp_tile_cache_new(16 << 20);
    pgp_renderer *r = pgp_renderer_new(graph_, pgp_executor_get(2), cache, 0);
    ASSERT_EQ(ReadBlock(r, 0, 0), CE_None) << CPLGetLastErrorMsg();
    EXPECT_EQ(pgp_renderer_tiles_ahead(r), 4u); // 2 x workers, the scan's first batch
    EXPECT_EQ(pgp_renderer_tiles_computed(r), 5u);
    for (int bx = 1; bx < 5; bx++) // ready: nothing computed
        ASSERT_EQ(ReadBlock(r, bx, 0), CE_None);
    EXPECT_EQ(pgp_renderer_tiles_computed(r), 5u);
    // The rest of the scan, wrapping from row to row, computes each tile once.
    for (int by = 0; by < 9; by++)
        for (int bx = by == 0 ? 5 : 0; bx < 7; bx++)
            ASSERT_EQ(ReadBlock(r, bx, by), CE_None) << CPLGetLastErrorMsg();
    EXPECT_EQ(pgp_renderer_tiles_computed(r), 63u);
    // batches of 1 + 4, 1 + 8, then 1 + 16 (2, 4, 8 x workers): at tiles 0, 5, 14, 31
    // and 48 (the last holds the 14 tiles left)
    EXPECT_EQ(pgp_renderer_tiles_ahead(r), 63u - 5);
    pgp_renderer_free(r);
    pgp_tile_cache_free(cache);
}

TEST_F(ScanAheadTest, RandomAccessAndSerialComputeOnlyTheirTiles)
{
    meeting.needed = 1;
    pgp_tile_cache *cache = pgp_tile_cache_new(16 << 20);
    pgp_renderer *serial = pgp_renderer_new(graph_, pgp_executor_get(0), cache, 0);
    pgp_renderer *threaded = pgp_renderer_new(graph_, pgp_executor_get(2), cache, 0);
    ASSERT_EQ(ReadBlock(serial, 0, 0), CE_None);
    ASSERT_EQ(ReadBlock(serial, 1, 0), CE_None);
    EXPECT_EQ(pgp_renderer_tiles_ahead(serial), 0u);
    ASSERT_EQ(ReadBlock(threaded, 3, 5), CE_None); // a first read counts as a scan
    const uint64_t first = pgp_renderer_tiles_computed(threaded);
    ASSERT_EQ(ReadBlock(threaded, 0, 2), CE_None); // neither right of nor below it
    ASSERT_EQ(ReadBlock(threaded, 6, 7), CE_None);
    EXPECT_EQ(pgp_renderer_tiles_computed(threaded), first + 2);
    pgp_renderer_free(serial);
    pgp_renderer_free(threaded);
    pgp_tile_cache_free(cache);
}

TEST_F(ScanAheadTest, HalfTheCacheBoundsTheTilesAhead)
{
    meeting.needed = 1;
    const size_t tile_bytes = kBlockX * kBlockY * 8;
    for (size_t tiles : {0, 1, 2, 3}) {
        pgp_tile_cache *cache = pgp_tile_cache_new(2 * tiles * tile_bytes);
        pgp_renderer *r = pgp_renderer_new(graph_, pgp_executor_get(4), cache, 0);
        for (int by = 0; by < 9; by++)
            for (int bx = 0; bx < 7; bx++)
                ASSERT_EQ(ReadBlock(r, bx, by), CE_None) << CPLGetLastErrorMsg();
        // the window's tile and tiles - 1 more fit in half the cache; each once
        const uint64_t ahead = pgp_renderer_tiles_ahead(r);
        EXPECT_EQ(ahead, tiles == 0 ? 0 : 63 - (63 + tiles - 1) / tiles) << tiles;
        EXPECT_EQ(pgp_renderer_tiles_computed(r), 63u) << tiles;
        pgp_renderer_free(r);
        pgp_tile_cache_free(cache);
    }
}

} // namespace
