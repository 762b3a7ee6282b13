// test_render.cpp — tile evaluation against a naive per-pixel reference, and
// bit-identical output for every executor and request shape.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_multiproc.h"
#include "cpl_string.h"
#include "cpl_vsi.h"
#include "fault_vsi.h"
#include "raster_fixture.h"

extern "C" {
#include "pgp/alloc.h"
#include "pgp/cache.h"
#include "pgp/executor.h"
#include "pgp/graph.h"
#include "pgp/pixelfuncs.h"
#include "pgp/render.h"
#include "pgp/stats.h"
#include "pgp/target.h"
}

namespace {

constexpr int kW = 101, kH = 67;

class RenderTest : public ::testing::Test
{
  protected:
    std::vector<double> a_, b_;

    void SetUp() override
    {
        a_ = pgp_test::Field(kW * kH, 400.0, 7);
        b_ = pgp_test::Field(kW * kH, 80.0, 11);
        for (int i = 0; i < kW * kH; i += 13)
            a_[i] = -9999;
        for (auto &v : b_)
            v = std::round(v);
        for (int i = 5; i < kW * kH; i += 17)
            b_[i] = -1;
        for (auto &v : a_)
            v = static_cast<float>(v); // a is stored as Float32
        pgp_test::WriteRaster("/vsimem/r/a.tif", kW, kH, GDT_Float32, a_, true, -9999);
        pgp_test::WriteRaster("/vsimem/r/b.tif", kW, kH, GDT_Int16, b_, true, -1);
        graph_ = OpenGraph(8);
        ASSERT_NE(graph_, nullptr) << CPLGetLastErrorMsg();
        d_ = pgp_graph_find(graph_, "d");
    }
    // The graph in tiles of 16 x tile_rows, with bands.
    static pgp_graph *OpenGraph(int tile_rows, const char *bands = "<Band ref='d'/>")
    {
        return pgp_graph_open(CPLSPrintf(
            "<PGPDataset blockXSize='16' blockYSize='%d'>"
            "<Source name='a' file='/vsimem/r/a.tif'/><Source name='b' file='/vsimem/r/b.tif'/>"
            "<Calc name='c' dataType='Float32' noData='-3'>"
            "<Expression>sqrt(abs(a)) + b * 2</Expression></Calc>"
            "<Calc name='d' dataType='Int32' noData='-7'><Expression>c * 3 - b / 4"
            "</Expression></Calc>"
            "%s</PGPDataset>",
            tile_rows, bands));
    }
    void TearDown() override
    {
        pgp_graph_free(graph_);
        VSIRmdirRecursive("/vsimem/r");
    }

    // The reference: the same two steps, pixel by pixel, with the casts spelled out.
    double Expected(int i) const
    {
        if (a_[i] == -9999 || b_[i] == -1)
            return -7;
        const float c = static_cast<float>(std::sqrt(std::fabs(a_[i])) + b_[i] * 2);
        if (std::fabs(c - -3.0) <= 1e-8 + 1e-5 * 3) // isclose: c is Float32
            return -7;
        return std::round(c * 3.0 - b_[i] / 4); // Int32: half away from zero
    }

    std::vector<double> Read(int threads, int x, int y, int w, int h, GDALDataType type)
    {
        pgp_tile_cache *cache = pgp_tile_cache_new(64 << 20);
        pgp_renderer *r = pgp_renderer_new(graph_, pgp_executor_get(threads), cache, 0);
        std::vector<double> out(static_cast<size_t>(w) * h, -12345);
        const int size = GDALGetDataTypeSizeBytes(type);
        std::vector<GByte> raw(static_cast<size_t>(w) * h * size);
        EXPECT_EQ(pgp_renderer_read(r, 1, &d_, x, y, w, h, raw.data(), type, size,
                                    static_cast<GSpacing>(size) * w, 0, nullptr, nullptr),
                  CE_None)
            << CPLGetLastErrorMsg();
        GDALCopyWords64(raw.data(), type, size, out.data(), GDT_Float64, 8, w * h);
        pgp_renderer_free(r);
        pgp_tile_cache_free(cache);
        return out;
    }

    pgp_graph *graph_ = nullptr;
    int d_ = -1;
};

TEST_F(RenderTest, MatchesNaiveReference)
{
    const std::vector<double> out = Read(0, 0, 0, kW, kH, GDT_Float64);
    int nodata = 0;
    for (int i = 0; i < kW * kH; i++) {
        ASSERT_EQ(out[i], Expected(i)) << "pixel " << i;
        nodata += out[i] == -7;
    }
    EXPECT_GT(nodata, kW * kH / 13); // the nodata paths were exercised
}

TEST_F(RenderTest, BitIdenticalAcrossExecutorsAndWindows)
{
    const std::vector<double> whole = Read(0, 0, 0, kW, kH, GDT_Float64);
    for (int threads : {1, 2, 4}) {
        EXPECT_EQ(Read(threads, 0, 0, kW, kH, GDT_Float64), whole) << threads;
        // An odd window at an offset that cuts tiles.
        const std::vector<double> window = Read(threads, 13, 5, 37, 41, GDT_Float64);
        for (int row = 0; row < 41; row++)
            for (int col = 0; col < 37; col++)
                ASSERT_EQ(window[row * 37 + col], whole[(row + 5) * kW + col + 13]);
    }
}

// An overview level: every pixel is the reference at the full-resolution pixel
// under its centre (GDAL's nearest downsampling), for every executor.
TEST_F(RenderTest, OverviewSamplesTheSourcesUnderEachCoarsePixelCentre)
{
    constexpr int kOvW = 51, kOvH = 34; // ratios 1.98 and 1.97: not whole numbers
    pgp_tile_cache *cache = pgp_tile_cache_new(64 << 20);
    std::vector<double> first;
    for (int threads : {0, 1, 4}) {
        pgp_renderer *r = pgp_renderer_new_overview(graph_, pgp_executor_get(threads), cache, 0,
                                                    kOvW, kOvH);
        ASSERT_NE(r, nullptr) << CPLGetLastErrorMsg();
        std::vector<double> out(kOvW * kOvH);
        ASSERT_EQ(pgp_renderer_read(r, 1, &d_, 0, 0, kOvW, kOvH, out.data(), GDT_Float64, 8,
                                    8 * kOvW, 0, nullptr, nullptr),
                  CE_None)
            << CPLGetLastErrorMsg();
        EXPECT_EQ(pgp_renderer_tiles_computed(r), 2u * 4u * 5u); // tiles of c and d
        // a and b for c, b again for d: each read at the coarse grid only
        EXPECT_EQ(pgp_renderer_source_pixels(r), 3u * kOvW * kOvH);
        pgp_renderer_free(r);
        for (int row = 0; row < kOvH; row++)
            for (int col = 0; col < kOvW; col++) {
                const int y = static_cast<int>((row + 0.5) * kH / kOvH + 1e-10);
                const int x = static_cast<int>((col + 0.5) * kW / kOvW + 1e-10);
                ASSERT_EQ(out[row * kOvW + col], Expected(y * kW + x)) << row << "," << col;
            }
        if (threads == 0)
            first = out;
        EXPECT_EQ(out, first) << threads;
    }
    EXPECT_EQ(pgp_renderer_new_overview(graph_, pgp_executor_get(0), cache, 0, kW + 1, kH),
              nullptr);
    pgp_tile_cache_free(cache);
}

// pgp_renderer_compute leaves a window's tiles in the cache for block-by-block
// readers, but only when they fit in half the budget.
TEST_F(RenderTest, ComputeWarmsTheWindowWhenItFitsTheCache)
{
    for (size_t budget : {size_t(64) << 20, size_t(0)}) {
        pgp_tile_cache *cache = pgp_tile_cache_new(budget);
        pgp_renderer *r = pgp_renderer_new(graph_, pgp_executor_get(4), cache, 0);
        ASSERT_EQ(pgp_renderer_compute(r, 1, &d_, 13, 5, 37, 41, nullptr, nullptr), CE_None);
        const uint64_t warmed = pgp_renderer_tiles_computed(r);
        EXPECT_EQ(warmed, budget ? 2u * 4u * 6u : 0u) << budget; // c and d, 4 x 6 tiles
        std::vector<double> out(37 * 41);
        ASSERT_EQ(pgp_renderer_read(r, 1, &d_, 13, 5, 37, 41, out.data(), GDT_Float64, 8,
                                    8 * 37, 0, nullptr, nullptr),
                  CE_None);
        if (budget) { // all found in the cache
            EXPECT_EQ(pgp_renderer_tiles_computed(r), warmed);
        }
        for (int row = 0; row < 41; row++)
            for (int col = 0; col < 37; col++)
                ASSERT_EQ(out[row * 37 + col], Expected((row + 5) * kW + col + 13));
        pgp_renderer_free(r);
        pgp_tile_cache_free(cache);
    }
}

TEST_F(RenderTest, ConvertsToTheBufferType)
{
    const std::vector<double> as_byte = Read(2, 0, 0, kW, kH, GDT_Byte);
    const std::vector<double> whole = Read(2, 0, 0, kW, kH, GDT_Float64);
    for (int i = 0; i < kW * kH; i++)
        ASSERT_EQ(as_byte[i], std::min(255.0, std::max(0.0, whole[i])));
}

TEST_F(RenderTest, StatisticsAreIdenticalForEveryExecutor)
{
    pgp_stats reference{};
    double sum = 0, sum_sq = 0, n = 0, mn = HUGE_VAL, mx = -HUGE_VAL;
    for (int i = 0; i < kW * kH; i++) {
        const double v = Expected(i);
        if (v == -7)
            continue;
        n++;
        sum += v;
        mn = std::min(mn, v);
        mx = std::max(mx, v);
    }
    for (int i = 0; i < kW * kH; i++)
        if (Expected(i) != -7)
            sum_sq += (Expected(i) - sum / n) * (Expected(i) - sum / n);
    const double nodata = -7;
    for (int threads : {0, 1, 3}) {
        pgp_tile_cache *cache = pgp_tile_cache_new(0);
        pgp_renderer *r = pgp_renderer_new(graph_, pgp_executor_get(threads), cache, 0);
        pgp_stats stats{};
        ASSERT_EQ(pgp_stats_of_node(r, d_, &nodata, &stats, nullptr, nullptr), CE_None);
        pgp_renderer_free(r);
        pgp_tile_cache_free(cache);
        EXPECT_EQ(stats.valid, static_cast<GUIntBig>(n));
        EXPECT_EQ(stats.total, static_cast<GUIntBig>(kW * kH));
        EXPECT_EQ(stats.min, mn);
        EXPECT_EQ(stats.max, mx);
        EXPECT_NEAR(stats.mean, sum / n, 1e-9 * std::fabs(sum / n));
        EXPECT_NEAR(stats.m2, sum_sq, 1e-9 * sum_sq);
        if (threads == 0)
            reference = stats;
        EXPECT_EQ(std::memcmp(&stats, &reference, sizeof stats), 0) << threads;
    }
}

// pgp.render's writer: the graph's tiles written into a GeoTIFF by every executor
// (whole blocks when tiled like the graph, RasterIO for strips), and the same
// pixels written from a buffer in windows of two tile rows, give the same file
// bytes, the reference pixels and the driver's statistics.
TEST_F(RenderTest, TargetFilesAreTheSameForEveryExecutorAndFromWindows)
{
    const std::vector<double> whole = Read(0, 0, 0, kW, kH, GDT_Float64);
    std::vector<GInt32> pixels(whole.begin(), whole.end());
    const double nodata = -7;
    pgp_graph *graph = OpenGraph(16); // GeoTIFF tiles are multiples of 16
    ASSERT_NE(graph, nullptr) << CPLGetLastErrorMsg();
    pgp_stats node_stats{};
    {
        pgp_tile_cache *cache = pgp_tile_cache_new(0);
        pgp_renderer *r = pgp_renderer_new(graph, pgp_executor_get(0), cache, 0);
        ASSERT_EQ(pgp_stats_of_node(r, d_, &nodata, &node_stats, nullptr, nullptr), CE_None);
        pgp_renderer_free(r);
        pgp_tile_cache_free(cache);
    }
    auto file_bytes = [](const char *path) {
        vsi_l_offset size = 0;
        const GByte *data = VSIGetMemFileBuffer(path, &size, FALSE);
        return std::string(reinterpret_cast<const char *>(data), size);
    };
    // Renders (threads >= 0) or writes the pixels in windows of two tile rows (-1).
    auto write = [&](const char *path, const char *const *options, int threads) {
        GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, kW, kH, 1, GDT_Int32,
                                     const_cast<char **>(options));
        GDALSetRasterNoDataValue(GDALGetRasterBand(ds, 1), nodata);
        pgp_target *target = pgp_target_new(ds, 16, 16, 1);
        EXPECT_NE(target, nullptr) << CPLGetLastErrorMsg();
        if (threads >= 0) {
            pgp_tile_cache *cache = pgp_tile_cache_new(64 << 20);
            pgp_renderer *r = pgp_renderer_new(graph, pgp_executor_get(threads), cache, 0);
            EXPECT_EQ(pgp_target_render(target, r, &d_, nullptr, nullptr), CE_None)
                << CPLGetLastErrorMsg();
            pgp_renderer_free(r);
            pgp_tile_cache_free(cache);
        } else {
            const int type = GDT_Int32, line = kW;
            for (int y = 0; y < kH; y += 32) {
                const void *rows = &pixels[static_cast<size_t>(y) * kW];
                EXPECT_EQ(pgp_target_write(target, 0, y, kW, std::min(32, kH - y), &rows, &type,
                                           &line),
                          0);
            }
        }
        pgp_stats stats{};
        pgp_target_statistics(target, 0, &stats);
        EXPECT_EQ(std::memcmp(&stats, &node_stats, sizeof stats), 0) << path << threads;
        pgp_target_free(target);
        GDALClose(ds);
        ds = GDALOpen(path, GA_ReadOnly);
        std::vector<GInt32> back(static_cast<size_t>(kW) * kH);
        EXPECT_EQ(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Read, 0, 0, kW, kH, back.data(), kW,
                               kH, GDT_Int32, 0, 0),
                  CE_None);
        GDALClose(ds);
        EXPECT_EQ(back, pixels) << path << threads;
        return file_bytes(path);
    };
    const char *tiled[] = {"TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16", "COMPRESS=LZW", nullptr};
    const char *strips[] = {"BLOCKYSIZE=5", nullptr};
    for (const char *const *options : {tiled, strips}) {
        const std::string reference = write("/vsimem/r/t0.tif", options, 0);
        for (int threads : {-1, 1, 3})
            EXPECT_EQ(write("/vsimem/r/t.tif", options, threads), reference) << threads;
    }
    // Memory running out at the n-th allocation of a render, n = 1, 2, ...: the
    // render fails with an error (or, for the optional reuse of a buffer, goes on),
    // and whatever succeeds wrote the reference bytes.
    const std::string reference = file_bytes("/vsimem/r/t0.tif"); // the strips
    for (int threads : {0, 3}) {
        for (long n = 1;; n++) {
            GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), "/vsimem/r/f.tif", kW,
                                         kH, 1, GDT_Int32, const_cast<char **>(strips));
            GDALSetRasterNoDataValue(GDALGetRasterBand(ds, 1), nodata);
            pgp_tile_cache *cache = pgp_tile_cache_new(64 << 20);
            pgp_renderer *r = pgp_renderer_new(graph, pgp_executor_get(threads), cache, 0);
            const long injected = pgp_alloc_injected_failures();
            CPLPushErrorHandler(CPLQuietErrorHandler);
            CPLErrorReset();
            pgp_alloc_fail_after(n);
            pgp_target *target = pgp_target_new(ds, 16, 16, 1);
            const CPLErr err = target ? pgp_target_render(target, r, &d_, nullptr, nullptr)
                                      : CE_Failure;
            pgp_alloc_fail_after(0);
            CPLPopErrorHandler();
            const bool faulted = pgp_alloc_injected_failures() > injected;
            if (err != CE_None) {
                EXPECT_NE(std::string(CPLGetLastErrorMsg()), "") << n << " " << threads;
            }
            pgp_target_free(target);
            pgp_renderer_free(r);
            pgp_tile_cache_free(cache);
            GDALClose(ds);
            if (err == CE_None) {
                EXPECT_EQ(file_bytes("/vsimem/r/f.tif"), reference) << n << " " << threads;
            }
            if (!faulted)
                break;
        }
    }
    pgp_graph_free(graph);
}

// Four Float64 bands of 5 x 4 tiles of 256 x 256 (2 MB a tile, edge tiles
// padded), written by three workers taking turns: serial and threaded renders
// write the same bytes, and the pixels.
TEST(RenderTarget, WorkersWriteTheirTilesInTileOrder)
{
    constexpr int w = 5 * 256 - 40, h = 4 * 256 - 100, bands = 4;
    const std::vector<double> a = pgp_test::Field(w * h, 1000.0, 3);
    pgp_test::WriteRaster("/vsimem/batch/a.tif", w, h, GDT_Float64, a, false, 0, 1000, 30, 256);
    pgp_graph *graph = pgp_graph_open(
        "<PGPDataset><Source name='a' file='/vsimem/batch/a.tif'/>"
        "<Calc name='b'><Expression>a * 2</Expression></Calc>"
        "<Calc name='c'><Expression>a - 1</Expression></Calc>"
        "<Calc name='d'><Expression>-a</Expression></Calc>"
        "<Band ref='a'/><Band ref='b'/><Band ref='c'/><Band ref='d'/></PGPDataset>");
    ASSERT_NE(graph, nullptr) << CPLGetLastErrorMsg();
    const int nodes[bands] = {0, 1, 2, 3};
    std::string reference;
    for (int threads : {0, 3}) {
        const char *options[] = {"TILED=YES", "INTERLEAVE=BAND", nullptr};
        GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), "/vsimem/batch/t.tif", w, h,
                                     bands, GDT_Float64, const_cast<char **>(options));
        pgp_target *target = pgp_target_new(ds, 256, 256, 0);
        pgp_tile_cache *cache = pgp_tile_cache_new(64 << 20);
        pgp_renderer *r = pgp_renderer_new(graph, pgp_executor_get(threads), cache, 0);
        EXPECT_EQ(pgp_target_render(target, r, nodes, nullptr, nullptr), CE_None)
            << CPLGetLastErrorMsg();
        pgp_renderer_free(r);
        pgp_tile_cache_free(cache);
        pgp_target_free(target);
        std::vector<double> band(static_cast<size_t>(w) * h);
        for (int i = 0; i < bands; i++) {
            ASSERT_EQ(GDALRasterIO(GDALGetRasterBand(ds, i + 1), GF_Read, 0, 0, w, h, band.data(),
                                   w, h, GDT_Float64, 0, 0),
                      CE_None);
            for (size_t p = 0; p < band.size(); p += 97)
                ASSERT_EQ(band[p], i == 0 ? a[p] : i == 1 ? a[p] * 2 : i == 2 ? a[p] - 1 : -a[p])
                    << threads << " band " << i << " pixel " << p;
        }
        GDALClose(ds);
        vsi_l_offset size = 0;
        const GByte *data = VSIGetMemFileBuffer("/vsimem/batch/t.tif", &size, FALSE);
        const std::string bytes(reinterpret_cast<const char *>(data), size);
        if (threads == 0)
            reference = bytes;
        EXPECT_EQ(bytes, reference) << threads;
    }
    pgp_graph_free(graph);
    VSIRmdirRecursive("/vsimem/batch");
}

// A graph in square tiles of block showing one Float32 Calc (node 1, with
// calc_attributes) of a source a read from file.
pgp_graph *FloatCalcOfA(const char *file, int block, const char *expression,
                        const char *calc_attributes = "")
{
    return pgp_graph_open(CPLSPrintf("<PGPDataset blockXSize='%d' blockYSize='%d'>"
                                     "<Source name='a' file='%s'/>"
                                     "<Calc name='b' dataType='Float32' %s><Expression>%s"
                                     "</Expression></Calc><Band ref='b'/></PGPDataset>",
                                     block, block, file, calc_attributes, expression));
}

// The n-th read of the source fails, n = 1, 2, ..., while three workers render
// 6 x 5 tiles: the render fails with an error naming a tile, the workers waiting
// for the failed tile's turn are released (a hang would time the test out), and
// a render that meets no failure writes the reference bytes.
TEST(RenderTarget, AFailedTileReleasesTheWorkersWaitingForItsTurn)
{
    constexpr int w = 6 * 64, h = 5 * 64;
    pgp_test::FaultVsi::Install();
    pgp_test::WriteRaster("/vsimem/turns/a.tif", w, h, GDT_Float32,
                          pgp_test::Field(w * h, 100.0, 5), false, 0, 1000, 30, 64);
    auto render = [&](int threads, long fail_read) {
        pgp_graph *graph = FloatCalcOfA("/vsipgpfault//vsimem/turns/a.tif", 64, "a * 2");
        EXPECT_NE(graph, nullptr) << CPLGetLastErrorMsg();
        const char *options[] = {"TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64", nullptr};
        GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), "/vsimem/turns/t.tif", w, h,
                                     1, GDT_Float32, const_cast<char **>(options));
        pgp_target *target = pgp_target_new(ds, 64, 64, 1);
        pgp_tile_cache *cache = pgp_tile_cache_new(64 << 20);
        pgp_renderer *r = pgp_renderer_new(graph, pgp_executor_get(threads), cache, 0);
        const int node = 1;
        CPLPushErrorHandler(CPLQuietErrorHandler);
        CPLErrorReset();
        pgp_test::FaultVsi::FailReadAfter(fail_read);
        const CPLErr err = pgp_target_render(target, r, &node, nullptr, nullptr);
        pgp_test::FaultVsi::FailReadAfter(0);
        CPLPopErrorHandler();
        const std::string message = CPLGetLastErrorMsg();
        pgp_renderer_free(r);
        pgp_tile_cache_free(cache);
        pgp_target_free(target);
        pgp_graph_free(graph);
        GDALClose(ds);
        vsi_l_offset size = 0;
        const GByte *data = VSIGetMemFileBuffer("/vsimem/turns/t.tif", &size, FALSE);
        return std::make_pair(err == CE_None ? std::string(reinterpret_cast<const char *>(data),
                                                           size)
                                             : std::string(),
                              message);
    };
    const std::string reference = render(0, 0).first;
    ASSERT_FALSE(reference.empty());
    long failed = 0, n = 1;
    for (; n < 1000; n++) {
        const long injected = pgp_test::FaultVsi::InjectedFailures();
        const auto [bytes, message] = render(3, n);
        if (pgp_test::FaultVsi::InjectedFailures() == injected) {
            EXPECT_EQ(bytes, reference) << n;
            break;
        }
        if (bytes.empty()) {
            failed++;
            EXPECT_NE(message.find("<Source name='a'>"), std::string::npos) << n << ": " << message;
        } else {
            EXPECT_EQ(bytes, reference) << n;
        }
    }
    EXPECT_GT(failed, 10) << "too few renders failed to test the release of waiting workers";
    EXPECT_LT(n, 1000);
    VSIRmdirRecursive("/vsimem/turns");
}

// Band 1 of ds as Float32; ds is closed.
std::vector<float> FloatBandThenClose(GDALDatasetH ds)
{
    const int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
    std::vector<float> out(static_cast<size_t>(w) * h);
    EXPECT_EQ(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Read, 0, 0, w, h, out.data(), w, h,
                           GDT_Float32, 0, 0),
              CE_None);
    GDALClose(ds);
    return out;
}

// Progress that says stop at its stop_at-th call, keeping the fraction it was told.
struct StopAt {
    int stop_at, calls = 0;
    double fraction = -1, first = -1;
};

int StopAtCall(double fraction, const char *, void *arg)
{
    auto *stop = static_cast<StopAt *>(arg);
    if (stop->calls == 0)
        stop->first = fraction;
    if (++stop->calls < stop->stop_at)
        return TRUE;
    stop->fraction = fraction;
    return FALSE;
}

// A render of 12 x 10 tiles by three workers and the caller, into a slowly
// compressed GeoTIFF (so that workers run ahead and wait for room), cancelled
// by its progress at its n-th call: it returns (a worker left waiting would hang
// it) with CPLE_UserInterrupt, having written exactly the first tiles, in tile
// order (every claimed tile is finished), at least those done when progress
// said stop, each with the reference pixels. Uncancelled, progress is called
// throughout, first before half the tiles: no thread (the caller, which reports
// progress, among them) writes for the whole raster.
TEST(RenderTarget, ACancelFinishesTheStartedTilesInTileOrder)
{
    constexpr int tile = 32, tiles_x = 12, tiles_y = 10;
    constexpr int w = tiles_x * tile - 7, h = tiles_y * tile - 5, n_tiles = tiles_x * tiles_y;
    std::vector<double> a = pgp_test::Field(w * h, 100.0, 9);
    for (auto &v : a)
        v = static_cast<float>(v); // stored as Float32
    pgp_test::WriteRaster("/vsimem/cancel/a.tif", w, h, GDT_Float32, a, false, 0, 1000, 30, tile);
    pgp_graph *graph = FloatCalcOfA("/vsimem/cancel/a.tif", tile, "a * 2 + 1000");
    ASSERT_NE(graph, nullptr) << CPLGetLastErrorMsg();
    const int node = 1;
    constexpr int kNever = 1 << 20;
    for (int stop_at : {1, 2, 5, kNever}) {
        const char *options[] = {"TILED=YES", "BLOCKXSIZE=32", "BLOCKYSIZE=32",
                                 "COMPRESS=DEFLATE", "ZLEVEL=9", nullptr};
        GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), "/vsimem/cancel/t.tif", w, h,
                                     1, GDT_Float32, const_cast<char **>(options));
        pgp_target *target = pgp_target_new(ds, tile, tile, 1);
        pgp_tile_cache *cache = pgp_tile_cache_new(64 << 20);
        pgp_renderer *r = pgp_renderer_new(graph, pgp_executor_get(3), cache, 0);
        StopAt stop{stop_at};
        CPLPushErrorHandler(CPLQuietErrorHandler);
        CPLErrorReset();
        const CPLErr err = pgp_target_render(target, r, &node, StopAtCall, &stop);
        CPLPopErrorHandler();
        if (stop.calls < stop_at) { // every tile was done before the n-th call
            EXPECT_EQ(err, CE_None) << stop_at << ": " << CPLGetLastErrorMsg();
        } else {
            EXPECT_EQ(err, CE_Failure) << stop_at;
            EXPECT_EQ(CPLGetLastErrorNo(), CPLE_UserInterrupt) << stop_at;
        }
        pgp_renderer_free(r);
        pgp_tile_cache_free(cache);
        pgp_target_free(target);
        const std::vector<float> out = FloatBandThenClose(ds);
        // Each tile holds either a * 2 + 1000 (never 0) everywhere, or 0: unwritten.
        int written = 0;
        for (int i = 0; i < n_tiles; i++) {
            int right = 0, zero = 0, pixels = 0;
            for (int y = i / tiles_x * tile; y < std::min(h, (i / tiles_x + 1) * tile); y++)
                for (int x = i % tiles_x * tile; x < std::min(w, (i % tiles_x + 1) * tile); x++) {
                    const size_t p = static_cast<size_t>(y) * w + x;
                    right += out[p] == static_cast<float>(a[p] * 2 + 1000);
                    zero += out[p] == 0;
                    pixels++;
                }
            ASSERT_TRUE(right == pixels || zero == pixels) << stop_at << " tile " << i;
            if (right == pixels) {
                EXPECT_EQ(written, i) << stop_at << ": tile " << i << " after an unwritten tile";
                written = i + 1;
            }
        }
        if (stop.calls == stop_at)
            EXPECT_GE(written, std::lround(stop.fraction * n_tiles)) << stop_at;
        else
            EXPECT_EQ(written, n_tiles) << stop_at;
        if (stop_at == kNever) {
            EXPECT_GE(stop.calls, 4);
            EXPECT_LE(stop.first, 0.5);
        }
    }
    pgp_graph_free(graph);
    VSIRmdirRecursive("/vsimem/cancel");
}

// The source is a pgp_expr VRT, so that each 256-row tile's read runs a nested
// batch of four 64-row jobs on the render's own pool while the render's other
// workers run ahead and wait for room in the ring: the nested caller takes its
// own jobs, so the render finishes, with s * 2 + 1 everywhere and the bytes of
// a serial render.
TEST(RenderTarget, ATileRunningANestedBatchOnThePoolFinishes)
{
    constexpr int tile = 256, w = 4 * tile - 30, h = 3 * tile - 20;
    std::vector<double> s = pgp_test::Field(w * h, 100.0, 3);
    for (auto &v : s)
        v = static_cast<float>(v); // stored as Float32
    pgp_test::WriteRaster("/vsimem/nested/s.tif", w, h, GDT_Float32, s, false, 0, 1000, 30, tile);
    const std::string vrt = CPLSPrintf(
        "<VRTDataset rasterXSize='%d' rasterYSize='%d'>"
        "<VRTRasterBand dataType='Float32' band='1' subClass='VRTDerivedRasterBand'>"
        "<NoDataValue>-12345</NoDataValue><PixelFunctionType>pgp_expr</PixelFunctionType>"
        "<PixelFunctionArguments expression='s * 2' names='s'/>"
        "<SourceTransferType>Float64</SourceTransferType><SimpleSource><SourceFilename "
        "relativeToVRT='0'>/vsimem/nested/s.tif</SourceFilename><SourceBand>1</SourceBand>"
        "</SimpleSource></VRTRasterBand></VRTDataset>",
        w, h);
    VSILFILE *f = VSIFOpenL("/vsimem/nested/s.vrt", "wb");
    ASSERT_EQ(VSIFWriteL(vrt.data(), 1, vrt.size(), f), vrt.size());
    VSIFCloseL(f);
    pgp_register_pixel_functions();
    pgp_graph *graph = FloatCalcOfA("/vsimem/nested/s.vrt", tile, "a + 1", "noData='-12345'");
    ASSERT_NE(graph, nullptr) << CPLGetLastErrorMsg();
    std::string reference;
    for (const char *executor : {"serial", "threading:3", "threading:3"}) {
        // pgp_expr's pool: the jobs' thread-local options are the caller's.
        CPLSetThreadLocalConfigOption("PGP_EXECUTOR", executor);
        const char *options[] = {"TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", nullptr};
        GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), "/vsimem/nested/t.tif", w, h,
                                     1, GDT_Float32, const_cast<char **>(options));
        pgp_target *target = pgp_target_new(ds, tile, tile, 0);
        pgp_tile_cache *cache = pgp_tile_cache_new(64 << 20);
        pgp_renderer *r = pgp_renderer_new(
            graph, pgp_executor_get(std::strcmp(executor, "serial") == 0 ? 0 : 3), cache, 0);
        const int node = 1;
        EXPECT_EQ(pgp_target_render(target, r, &node, nullptr, nullptr), CE_None)
            << executor << ": " << CPLGetLastErrorMsg();
        pgp_renderer_free(r);
        pgp_tile_cache_free(cache);
        pgp_target_free(target);
        const std::vector<float> out = FloatBandThenClose(ds);
        for (size_t p = 0; p < out.size(); p++)
            ASSERT_EQ(out[p], static_cast<float>(static_cast<float>(s[p] * 2) + 1.0))
                << executor << " pixel " << p;
        vsi_l_offset size = 0;
        const GByte *data = VSIGetMemFileBuffer("/vsimem/nested/t.tif", &size, FALSE);
        if (reference.empty())
            reference.assign(reinterpret_cast<const char *>(data), size);
        EXPECT_EQ(std::string(reinterpret_cast<const char *>(data), size), reference) << executor;
    }
    CPLSetThreadLocalConfigOption("PGP_EXECUTOR", nullptr);
    pgp_graph_free(graph);
    VSIRmdirRecursive("/vsimem/nested");
}

// A source two nodes read: each of its blocks is decoded once (into the shared
// block cache) for both, on every executor, and both see the right pixels.
TEST_F(RenderTest, ASourceReadBySeveralNodesIsDecodedOnce)
{
    pgp_graph *graph = pgp_graph_open(
        "<PGPDataset blockXSize='16' blockYSize='16'>"
        "<Source name='a' file='/vsimem/r/a.tif' noData='-9999'/>"
        "<Calc name='twice' noData='-1'><Expression>a * 2</Expression></Calc>"
        "<Calc name='plus' noData='-1'><Expression>a + 1</Expression></Calc>"
        "<Band ref='twice'/><Band ref='plus'/></PGPDataset>");
    ASSERT_NE(graph, nullptr) << CPLGetLastErrorMsg();
    const int nodes[2] = {pgp_graph_find(graph, "twice"), pgp_graph_find(graph, "plus")};
    const uint64_t blocks = 7 * 5; // 16x16 blocks over 101x67
    pgp_tile_cache_set_budget(pgp_block_cache_global(), 8 << 20);
    for (int threads : {0, 3}) {
        pgp_tile_cache *cache = pgp_tile_cache_new(64 << 20);
        pgp_renderer *r = pgp_renderer_new(graph, pgp_executor_get(threads), cache, 0);
        std::vector<double> out(2 * static_cast<size_t>(kW) * kH);
        ASSERT_EQ(pgp_renderer_read(r, 2, nodes, 0, 0, kW, kH, out.data(), GDT_Float64, 8,
                                    8 * kW, 8 * static_cast<GSpacing>(kW) * kH, nullptr,
                                    nullptr),
                  CE_None)
            << CPLGetLastErrorMsg();
        EXPECT_EQ(pgp_renderer_blocks_decoded(r), blocks) << threads;
        pgp_renderer_free(r);
        pgp_tile_cache_free(cache);
        for (int i = 0; i < kW * kH; i++) {
            ASSERT_EQ(out[i], a_[i] == -9999 ? -1 : a_[i] * 2) << i;
            ASSERT_EQ(out[kW * kH + i], a_[i] == -9999 ? -1 : a_[i] + 1) << i;
        }
    }
    pgp_graph_free(graph);
}

TEST_F(RenderTest, SourceFailureInAWorkerIsReportedWithNodeAndTile)
{
    pgp_tile_cache *cache = pgp_tile_cache_new(1 << 20);
    pgp_renderer *r = pgp_renderer_new(graph_, pgp_executor_get(2), cache, 0);
    VSIUnlink("/vsimem/r/a.tif"); // workers open their own handles: this one is gone
    std::vector<double> out(kW * kH);
    CPLPushErrorHandler(CPLQuietErrorHandler);
    const CPLErr err = pgp_renderer_read(r, 1, &d_, 0, 0, kW, kH, out.data(), GDT_Float64, 8,
                                         8 * kW, 0, nullptr, nullptr);
    CPLPopErrorHandler();
    EXPECT_EQ(err, CE_Failure);
    const std::string message = CPLGetLastErrorMsg();
    EXPECT_NE(message.find("<Calc name='d'> tile ("), std::string::npos) << message;
    EXPECT_NE(message.find("<Source name='a'>"), std::string::npos) << message;
    EXPECT_NE(message.find("a.tif"), std::string::npos) << message;
    pgp_renderer_free(r);
    pgp_tile_cache_free(cache);
}

uint64_t ComputedTiles(pgp_tile_cache *cache)
{
    pgp_tile_cache_stats stats;
    pgp_tile_cache_get_stats(cache, &stats);
    return stats.computed;
}

// The tiles computed once the renderer's prefetch jobs have all run.
uint64_t ComputedAfterPrefetch(pgp_renderer *r, pgp_tile_cache *cache)
{
    pgp_renderer_wait_prefetch(r);
    return ComputedTiles(cache);
}

TEST_F(RenderTest, PrefetchComputesTheNextTilesInTheBackground)
{
    // 16x8 tiles over 101x67: 7 tiles a strip; each tile of d also computes c.
    const std::vector<double> whole = Read(0, 0, 0, kW, kH, GDT_Float64);
    pgp_tile_cache *cache = pgp_tile_cache_new(64 << 20);
    pgp_renderer *r = pgp_renderer_new(graph_, pgp_executor_get(2), cache, 4);
    std::vector<double> strip(kW * 8);
    for (int row = 0; row < 2; row++) {
        ASSERT_EQ(pgp_renderer_read(r, 1, &d_, 0, row * 8, kW, 8, strip.data(), GDT_Float64, 8,
                                    8 * kW, 0, nullptr, nullptr),
                  CE_None);
        EXPECT_EQ(0, std::memcmp(strip.data(), &whole[row * 8 * kW], strip.size() * 8));
        // A full-width strip prefetches the whole next strip, more than PREFETCH
        // (4): strip 1 computes 7 tiles (x2 nodes) and prefetches strip 2's 7;
        // strip 2 computes none and prefetches strip 3.
        const uint64_t expected = row == 0 ? 2 * (7 + 7) : 2 * (7 + 7) + 2 * (0 + 7);
        EXPECT_EQ(ComputedAfterPrefetch(r, cache), expected);
    }
    pgp_renderer_free(r); // cancels nothing pending, frees cleanly
    pgp_tile_cache_free(cache);
}

TEST_F(RenderTest, APartialStripPrefetchesPrefetchTilesToTheRight)
{
    pgp_tile_cache *cache = pgp_tile_cache_new(64 << 20);
    pgp_renderer *r = pgp_renderer_new(graph_, pgp_executor_get(2), cache, 4);
    std::vector<double> window(48 * 8);
    // Tiles 0-2 of strip 1 (more than the 2 workers: no scan-ahead), then the
    // 4 tiles after them; x2 nodes.
    ASSERT_EQ(pgp_renderer_read(r, 1, &d_, 0, 0, 48, 8, window.data(), GDT_Float64, 8, 8 * 48,
                                0, nullptr, nullptr),
              CE_None);
    EXPECT_EQ(ComputedAfterPrefetch(r, cache), 2u * (3 + 4));
    pgp_renderer_free(r);
    pgp_tile_cache_free(cache);
}

// Holds the background slot of a one-worker executor from construction to
// destruction with another group's job, so the renderer's prefetches stay queued.
class HeldWorker
{
  public:
    explicit HeldWorker(pgp_executor *executor) : group_(pgp_background_new(executor))
    {
        pgp_background_submit(group_, Hold, this, 0);
        while (!started_)
            CPLSleep(0.001);
    }
    ~HeldWorker()
    {
        release_ = true;
        pgp_background_free(group_);
    }

  private:
    static int Hold(void *arg, size_t)
    {
        auto *held = static_cast<HeldWorker *>(arg);
        held->started_ = true;
        while (!held->release_)
            CPLSleep(0.001);
        return 0;
    }
    pgp_background *group_;
    std::atomic<bool> started_{false}, release_{false};
};

TEST_F(RenderTest, FreeingCancelsQueuedPrefetches)
{
    // The one worker is held by another group's background job, so the
    // renderer's 1000 prefetches stay queued: freeing it must drop them, not
    // wait for them (nor compute them).
    pgp_executor *executor = pgp_executor_get(1);
    auto held = std::make_unique<HeldWorker>(executor);
    pgp_tile_cache *cache = pgp_tile_cache_new(64 << 20);
    pgp_renderer *r = pgp_renderer_new(graph_, executor, cache, 1000);
    std::vector<double> tile(16 * 8);
    ASSERT_EQ(pgp_renderer_read(r, 1, &d_, 0, 0, 16, 8, tile.data(), GDT_Float64, 8, 8 * 16, 0,
                                nullptr, nullptr),
              CE_None); // computed on this thread, with the tiles it scans ahead
    const uint64_t computed_by_the_read = ComputedTiles(cache);
    pgp_renderer_free(r);
    EXPECT_EQ(ComputedTiles(cache), computed_by_the_read);
    EXPECT_LT(computed_by_the_read, 2u * 63);
    held.reset();
    pgp_tile_cache_free(cache);
}

// Tiles a read delivered go first, and only an eighth of the budget of them
// stays (pgp_tile_cache_release_delivered): the tiles of a node that another
// band shows, or another node reads, must not be among them.
TEST_F(RenderTest, ANodeTwoBandsShowIsNotDeliveredByTheFirst)
{
    pgp_graph *graph = OpenGraph(8, "<Band ref='d'/><Band ref='d'/>");
    ASSERT_NE(graph, nullptr) << CPLGetLastErrorMsg();
    pgp_tile_cache *cache = pgp_tile_cache_new(64 << 10); // delivered share: 16 tiles of d
    pgp_renderer *r = pgp_renderer_new(graph, pgp_executor_get(0), cache, 0);
    const int d = pgp_graph_find(graph, "d"), nodes[2] = {d, d};
    // 20 tiles computed for GDAL's resampling, then read band by band.
    ASSERT_EQ(pgp_renderer_compute(r, 2, nodes, 0, 0, 80, 32, nullptr, nullptr), CE_None);
    const uint64_t computed = ComputedTiles(cache);
    EXPECT_EQ(computed, 2u * 20); // with c's
    std::vector<double> out(80 * 32);
    for (int band = 0; band < 2; band++)
        ASSERT_EQ(pgp_renderer_read(r, 1, &d, 0, 0, 80, 32, out.data(), GDT_Float64, 8, 8 * 80,
                                    0, nullptr, nullptr),
                  CE_None);
    EXPECT_EQ(ComputedTiles(cache), computed) << "band 2 computed what band 1 read";
    pgp_renderer_free(r);
    pgp_tile_cache_free(cache);
    pgp_graph_free(graph);
}

TEST_F(RenderTest, ANodeAnotherNodeReadsIsNotDeliveredByItsRead)
{
    pgp_tile_cache *cache = pgp_tile_cache_new(128 << 10); // far below c's 63 tiles
    pgp_renderer *r = pgp_renderer_new(graph_, pgp_executor_get(0), cache, 0);
    const int c = pgp_graph_find(graph_, "c");
    std::vector<double> out(kW * kH);
    for (const int node : {c, d_})
        ASSERT_EQ(pgp_renderer_read(r, 1, &node, 0, 0, kW, kH, out.data(), GDT_Float64, 8,
                                    8 * kW, 0, nullptr, nullptr),
                  CE_None);
    EXPECT_EQ(ComputedTiles(cache), 2u * 63) << "d computed c's tiles again";
    pgp_renderer_free(r);
    pgp_tile_cache_free(cache);
}

// A strip read before the workers reached the prefetch of it: the queued
// prefetches are skipped, not run on tiles the read has delivered (and maybe
// evicted already).
TEST_F(RenderTest, PrefetchesOfTilesALaterReadReachedAreSkipped)
{
    pgp_executor *executor = pgp_executor_get(1);
    auto held = std::make_unique<HeldWorker>(executor);
    pgp_tile_cache *cache = pgp_tile_cache_new(16 << 10); // delivered share: 4 tiles of d
    pgp_renderer *r = pgp_renderer_new(graph_, executor, cache, 4);
    std::vector<double> strip(kW * 8);
    for (int row = 0; row < 2; row++)
        ASSERT_EQ(pgp_renderer_read(r, 1, &d_, 0, row * 8, kW, 8, strip.data(), GDT_Float64, 8,
                                    8 * kW, 0, nullptr, nullptr),
                  CE_None);
    const uint64_t by_reads = ComputedTiles(cache);
    EXPECT_EQ(by_reads, 2u * 14);
    held.reset();
    pgp_renderer_wait_prefetch(r);
    // Strip 2's queued prefetches are skipped (run, they computed the 3 tiles of
    // d the delivered share had evicted again); strip 3's were never queued,
    // as strip 2's were still pending.
    EXPECT_EQ(ComputedTiles(cache), by_reads);
    pgp_renderer_free(r);
    pgp_tile_cache_free(cache);
}

int CancelAfterThree(double, const char *, void *arg)
{
    return ++*static_cast<int *>(arg) < 3;
}

TEST_F(RenderTest, ProgressFalseCancels)
{
    pgp_tile_cache *cache = pgp_tile_cache_new(1 << 20);
    pgp_renderer *r = pgp_renderer_new(graph_, pgp_executor_get(0), cache, 0);
    std::vector<double> out(kW * kH);
    int calls = 0;
    CPLPushErrorHandler(CPLQuietErrorHandler);
    const CPLErr err = pgp_renderer_read(r, 1, &d_, 0, 0, kW, kH, out.data(), GDT_Float64, 8,
                                         8 * kW, 0, CancelAfterThree, &calls);
    CPLPopErrorHandler();
    EXPECT_EQ(err, CE_Failure);
    EXPECT_EQ(CPLGetLastErrorNo(), CPLE_UserInterrupt);
    EXPECT_EQ(calls, 3);
    pgp_renderer_free(r);
    pgp_tile_cache_free(cache);
}

// A Convolve reads windows spanning several source blocks (5x3 kernel, 24x12
// tiles over 16x16 source blocks) through the shared block cache: every budget
// (ample, evicting, too small so GDAL's RasterIO reads) and every executor give
// the same bits, within round-off of a naive sum, and with an ample budget
// each block is decoded once however many threads share it.
class RenderConvolveTest : public ::testing::Test
{
  protected:
    static constexpr int kKRows = 3, kKCols = 5;
    std::vector<double> a_, kernel_;
    pgp_graph *graph_ = nullptr;
    size_t saved_budget_ = 0;

    void SetUp() override
    {
        a_ = pgp_test::Field(kW * kH, 400.0, 5);
        for (int i = 0; i < kW * kH; i += 11)
            a_[i] = -9999;
        for (auto &v : a_)
            v = static_cast<float>(v);
        pgp_test::WriteRaster("/vsimem/rc/a.tif", kW, kH, GDT_Float32, a_, true, -9999);
        kernel_ = pgp_test::Field(kKRows * kKCols, 2.0, 3);
        std::string taps;
        for (double v : kernel_)
            taps += CPLSPrintf("%.17g ", v);
        graph_ = pgp_graph_open(
            ("<PGPDataset blockXSize='24' blockYSize='12'><Source name='a' "
             "file='/vsimem/rc/a.tif'/><Convolve name='c' input='a' method='direct'>"
             "<Kernel rows='3' cols='5'>" + taps + "</Kernel></Convolve><Band ref='c'/>"
             "</PGPDataset>").c_str());
        ASSERT_NE(graph_, nullptr) << CPLGetLastErrorMsg();
        pgp_tile_cache_stats stats;
        pgp_tile_cache_get_stats(pgp_block_cache_global(), &stats);
        saved_budget_ = stats.budget_bytes;
    }
    void TearDown() override
    {
        pgp_tile_cache_set_budget(pgp_block_cache_global(), saved_budget_);
        pgp_graph_free(graph_);
        VSIRmdirRecursive("/vsimem/rc");
    }

    // convolve_2d's formula, pixel by pixel: nodata and outside weigh 0,
    // |sum| <= 1e-8 is 0, a nodata input pixel is nodata (float32's lowest).
    double Expected(int x, int y) const
    {
        if (a_[y * kW + x] == -9999)
            return -3.4028234663852886e38;
        double sum = 0;
        for (int i = 0; i < kKRows; i++)
            for (int j = 0; j < kKCols; j++) {
                const int sy = y + kKRows / 2 - i, sx = x + kKCols / 2 - j;
                if (sy >= 0 && sy < kH && sx >= 0 && sx < kW && a_[sy * kW + sx] != -9999)
                    sum += kernel_[i * kKCols + j] * a_[sy * kW + sx];
            }
        return std::fabs(sum) <= 1e-8 ? 0 : sum;
    }

    // The whole band with block_budget bytes of block cache; *decoded: blocks
    // the renderer decoded.
    std::vector<double> Read(int threads, size_t block_budget, uint64_t *decoded)
    {
        pgp_tile_cache_set_budget(pgp_block_cache_global(), block_budget);
        pgp_tile_cache *cache = pgp_tile_cache_new(64 << 20);
        pgp_renderer *r = pgp_renderer_new(graph_, pgp_executor_get(threads), cache, 0);
        const int c = pgp_graph_find(graph_, "c");
        std::vector<double> out(static_cast<size_t>(kW) * kH);
        EXPECT_EQ(pgp_renderer_read(r, 1, &c, 0, 0, kW, kH, out.data(), GDT_Float64, 8, 8 * kW,
                                    0, nullptr, nullptr),
                  CE_None)
            << CPLGetLastErrorMsg();
        *decoded = pgp_renderer_blocks_decoded(r);
        pgp_renderer_free(r);
        pgp_tile_cache_free(cache);
        return out;
    }
};

TEST_F(RenderConvolveTest, EveryBudgetAndExecutorGivesTheSameBits)
{
    constexpr uint64_t kBlocks = 7 * 5; // 16x16 blocks over 101x67
    constexpr size_t kBlockBytes = 16 * 16 * 4;
    uint64_t decoded;
    const std::vector<double> serial = Read(0, 1 << 20, &decoded);
    EXPECT_EQ(decoded, kBlocks);
    for (int y = 0; y < kH; y++)
        for (int x = 0; x < kW; x++)
            ASSERT_NEAR(serial[y * kW + x], Expected(x, y),
                        1e-12 * std::max(1.0, std::fabs(Expected(x, y))))
                << x << "," << y;
    for (int threads : {1, 2, 4}) {
        EXPECT_EQ(Read(threads, 1 << 20, &decoded), serial) << threads;
        EXPECT_EQ(decoded, kBlocks) << threads << " threads decoded a block twice";
        // 12 blocks: a window's (up to 3x2) fits, a row of tiles' does not.
        EXPECT_EQ(Read(threads, 12 * kBlockBytes, &decoded), serial) << threads;
        EXPECT_GT(decoded, kBlocks) << "evicted blocks are decoded again";
        EXPECT_EQ(Read(threads, 0, &decoded), serial) << threads;
        EXPECT_EQ(decoded, 0u) << "windows too big for the budget are GDAL's RasterIO";
    }
}

} // namespace
