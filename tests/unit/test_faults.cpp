// test_faults.cpp — the resource contract (pgp/executor.h, docs/hardening.md).
// The n-th allocation (pgp/alloc.h's countdown) or the n-th source read
// (/vsipgpfault/, fault_vsi.h) is made to fail, for n = 1, 2, 3, ... over
// opening and reading each kind of graph, until the operation runs with no
// fault left to inject. Every step must fail cleanly — an open error that says
// why, or a read error naming the node and tile — and the same renderer's next
// read must return the bytes of an unfaulted run — or succeed with them, or
// with exactly what one of GDAL's documented degradations gives (a failed read
// GDAL goes on without; docs/hardening.md). Under ASan+LSan (test.sh) every
// step is also free of crashes, bad accesses and leaks.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <regex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_vsi.h"
#include "fault_vsi.h"
#include "gdal.h"
#include "ogr_srs_api.h"
#include "raster_fixture.h"

extern "C" {
#include "pgp/alloc.h"
#include "pgp/cache.h"
#include "pgp/executor.h"
#include "pgp/graph.h"
#include "pgp/pixelfuncs.h"
#include "pgp/render.h"
#include "pgp/stats.h"
}

namespace {

using pgp_test::FaultVsi;

constexpr int kSize = 64, kBlock = 32; // 2 x 2 tiles: small, and every edge case
const std::string kDir = "/vsimem/faults/";
// Sources are read through the faulting filesystem.
const std::string kVia = std::string(FaultVsi::kPrefix) + kDir;

enum class Fault { kAlloc, kRead };

void Arm(Fault fault, long n)
{
    if (fault == Fault::kAlloc)
        pgp_alloc_fail_after(n);
    else
        FaultVsi::FailReadAfter(n);
}

long Injected(Fault fault)
{
    return fault == Fault::kAlloc ? pgp_alloc_injected_failures()
                                  : FaultVsi::InjectedFailures();
}

// A one-band tiled GeoTIFF in UTM 31N with 30 m pixels; every 13th pixel is
// nodata (-9999) when has_nodata; internal overviews (factor 2) when asked.
void WriteSource(const std::string &name, GDALDataType type, double origin_x, unsigned seed,
                 bool has_nodata, bool overviews, double pixel = 30)
{
    const char *options[] = {"TILED=YES", "BLOCKXSIZE=32", "BLOCKYSIZE=32", nullptr};
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), (kDir + name).c_str(), kSize,
                                 kSize, 1, type, const_cast<char **>(options));
    ASSERT_NE(ds, nullptr);
    double gt[6] = {origin_x, pixel, 0, 4500000, 0, -pixel};
    GDALSetGeoTransform(ds, gt);
    OGRSpatialReferenceH srs = OSRNewSpatialReference(nullptr);
    OSRImportFromEPSG(srs, 32631);
    GDALSetSpatialRef(ds, srs);
    OSRDestroySpatialReference(srs);
    std::vector<double> values = pgp_test::Field(kSize * kSize, 400.0, seed);
    for (size_t i = 0; i < values.size(); i++) {
        values[i] = std::round(values[i]);
        if (has_nodata && i % 13 == 0)
            values[i] = -9999;
    }
    GDALRasterBandH band = GDALGetRasterBand(ds, 1);
    if (has_nodata)
        GDALSetRasterNoDataValue(band, -9999);
    ASSERT_EQ(GDALRasterIO(band, GF_Write, 0, 0, kSize, kSize, values.data(), kSize, kSize,
                           GDT_Float64, 0, 0),
              CE_None);
    int factor = 2;
    if (overviews) {
        ASSERT_EQ(GDALBuildOverviews(ds, "NEAREST", 1, &factor, 0, nullptr, nullptr, nullptr),
                  CE_None);
    }
    GDALClose(ds);
}

struct Case {
    const char *name;
    std::string xml;
    const char *node;  // the node read, or summarised
    int factor;        // 1: full resolution; 2: the overview of half the size
    bool stats;        // statistics of the node instead of a read
    int threads;       // executor workers (0: serial)
    int prefetch;      // tiles; reads go strip by strip so prefetch runs
};

const std::string kSources = "<Source name='a' file='" + kVia + "a.tif'/>"
                             "<Source name='b' file='" + kVia + "b.tif'/>";
const std::string kCalcGraph =
    "<PGPDataset blockXSize='32' blockYSize='32'>" + kSources +
    "<Calc name='c' dataType='Float32' noData='-3'><Expression>sqrt(abs(a)) + b * 2"
    "</Expression></Calc>"
    "<Calc name='d' dataType='Int32' noData='-7'><Expression>c * 3 - b / 4</Expression></Calc>"
    "<Band ref='d'/></PGPDataset>";
const std::string kDirectGraph =
    "<PGPDataset blockXSize='32' blockYSize='32'>" + kSources +
    "<Convolve name='k' input='a' method='direct' dataType='Float32' noData='-5'>"
    "<Kernel rows='3' cols='3'>1 2 1 2 4 2 1 2 1</Kernel></Convolve>"
    "<Calc name='e' dataType='Float64' noData='-6'><Expression>k + b</Expression></Calc>"
    "<Band ref='e'/></PGPDataset>";
const std::string kFftGraph =
    "<PGPDataset blockXSize='32' blockYSize='32'>" + kSources +
    "<Convolve name='k' input='a' method='fft' normalizeKernel='true' "
    "ignoreNoDataAndEdges='true'><Kernel rows='5' cols='5'>"
    "1 1 2 1 1 1 2 3 2 1 2 3 5 3 2 1 2 3 2 1 1 1 2 1 1</Kernel></Convolve>"
    "<Band ref='k'/></PGPDataset>";
// b is 2 pixels east of a: the intersection is 62 x 64. The mask keeps a
// triangle of it.
const std::string kAlignGraph =
    "<PGPDataset blockXSize='32' blockYSize='32'>"
    "<Source name='a' file='" + kVia + "a.tif'/>"
    "<Source name='b' file='" + kVia + "b_east.tif'/>"
    "<Align boundingBox='intersection' pixelSize='30,-30'><Input ref='a' resampling='bilinear'/>"
    "<Mask vector='" + kVia + "mask.geojson'/></Align>"
    "<Calc name='c' dataType='Float32' noData='-3'><Expression>a - b</Expression></Calc>"
    "<Band ref='c'/></PGPDataset>";

// Stitched into a: b 2 pixels east (placed as it is) and c on 45 m pixels
// (warped onto warp_raster's grid for it, bilinear).
const std::string kStitchGraph =
    "<PGPDataset blockXSize='32' blockYSize='32'>"
    "<Source name='a' file='" + kVia + "a.tif'/>"
    "<Stitch name='s' target='a' overlap='add'>"
    "<Base file='" + kVia + "b_east.tif'/>"
    "<Base file='" + kVia + "c45.tif' resampling='bilinear'/></Stitch>"
    "<Band ref='s'/></PGPDataset>";

const Case kCases[] = {
    {"Calc", kCalcGraph, "d", 1, false, 0, 0},
    {"CalcThreadsPrefetch", kCalcGraph, "d", 1, false, 2, 2},
    {"ConvolveDirect", kDirectGraph, "e", 1, false, 0, 0},
    {"ConvolveFft", kFftGraph, "k", 1, false, 0, 0},
    {"AlignMask", kAlignGraph, "c", 1, false, 0, 0},
    {"OverviewConvolve", kDirectGraph, "e", 2, false, 0, 0},
    {"OverviewAlignSourceOverview", kAlignGraph, "c", 2, false, 0, 0},
    {"Statistics", kCalcGraph, "d", 1, true, 0, 0},
    {"StatisticsConvolveFft", kFftGraph, "k", 1, true, 2, 0},
    {"Stitch", kStitchGraph, "s", 1, false, 0, 0},
    {"OverviewStitchThreads", kStitchGraph, "s", 2, false, 2, 0},
};

// A tile, or for statistics the node's table of per-tile summaries.
const std::regex kNodeAndTile(
    R"(<(Source|Calc|Convolve|Stitch) name='[a-z]+'>( tile \(\d,\d\)|: statistics of \d+ tiles))");

// The rasters every walk reads, written once per suite.
class FaultFiles
{
  public:
    static void Write()
    {
        GDALAllRegister();
        FaultVsi::Install();
        WriteSource("a.tif", GDT_Float32, 500000, 7, true, true);
        WriteSource("a_flat.tif", GDT_Float32, 500000, 7, true, false); // a, no overviews
        WriteSource("b.tif", GDT_Int16, 500000, 11, false, false);
        WriteSource("b_east.tif", GDT_Int16, 500060, 13, true, false);
        WriteSource("c45.tif", GDT_Float32, 500100, 17, true, false, 45);
        const char mask[] =
            R"({"type": "FeatureCollection", "crs": {"type": "name", "properties": )"
            R"({"name": "urn:ogc:def:crs:EPSG::32631"}}, "features": [{"type": "Feature", )"
            R"("properties": {}, "geometry": {"type": "Polygon", "coordinates": )"
            R"([[[500000, 4500000], [501920, 4500000], [500000, 4498080], [500000, 4500000]]]}}]})";
        VSILFILE *f = VSIFOpenL((kDir + "mask.geojson").c_str(), "wb");
        VSIFWriteL(mask, 1, sizeof mask - 1, f);
        VSIFCloseL(f);
    }
    static void Remove() { VSIRmdirRecursive(kDir.c_str()); }

    // Every warning and error raised on the test's thread, in order.
    static void CPL_STDCALL KeepMessages(CPLErr type, CPLErrorNum, const char *message)
    {
        if (type == CE_Warning || type == CE_Failure)
            static_cast<std::vector<std::string> *>(CPLGetErrorHandlerUserData())
                ->push_back(message);
    }

    static bool AnyHas(const std::vector<std::string> &heard, const char *a, const char *b)
    {
        return std::any_of(heard.begin(), heard.end(), [&](const std::string &m) {
            return m.find(a) != std::string::npos && m.find(b) != std::string::npos;
        });
    }
};

class FaultWalk : public ::testing::TestWithParam<std::tuple<int, Fault>>, public FaultFiles
{
  public:
    static void SetUpTestSuite() { Write(); }
    static void TearDownTestSuite() { Remove(); }

  protected:
    const Case &TheCase() const { return kCases[std::get<0>(GetParam())]; }
    Fault TheFault() const { return std::get<1>(GetParam()); }

    // The node read whole (or its statistics) through r, as bytes.
    static CPLErr ReadAll(const Case &c, pgp_renderer *r, std::vector<GByte> *out)
    {
        const pgp_graph *g = pgp_renderer_graph(r);
        int node = pgp_graph_find(g, c.node);
        if (c.stats) {
            const pgp_nodata &nd = g->nodes[node].nodata;
            pgp_stats stats{};
            const CPLErr err = pgp_stats_of_node(r, node, nd.present ? &nd.value : nullptr,
                                                 &stats, nullptr, nullptr);
            const GByte *p = reinterpret_cast<const GByte *>(&stats);
            out->assign(p, p + sizeof stats);
            return err;
        }
        const int w = (g->x_size + c.factor - 1) / c.factor;
        const int h = (g->y_size + c.factor - 1) / c.factor;
        const int strip = c.prefetch > 0 ? kBlock : h;
        out->assign(static_cast<size_t>(w) * h * sizeof(double), 0);
        for (int y = 0; y < h; y += strip) {
            const CPLErr err = pgp_renderer_read(
                r, 1, &node, 0, y, w, std::min(strip, h - y), out->data() + y * w * 8,
                GDT_Float64, 8, 8 * w, 0, nullptr, nullptr);
            if (err != CE_None)
                return err;
        }
        return CE_None;
    }

    // What an unfaulted run returns, and what GDAL returns when a failed read
    // makes it degrade silently (docs/hardening.md, limits of GDAL 3.6).
    struct Expected {
        std::vector<GByte> bytes;
        // The source's overview directory unreadable: GDAL reads the full
        // resolution instead, as for a copy of a without overviews.
        std::vector<GByte> without_source_overviews;
    };

    // The <Mask>'s GeoJSON unreadable when the warp first needs its features:
    // OGR goes on with none, so every pixel is outside the mask (nodata -3).
    static bool AllMaskedOut(const Case &c, const std::vector<GByte> &bytes)
    {
        if (c.xml.find("<Mask") == std::string::npos)
            return false;
        for (size_t i = 0; i < bytes.size(); i += sizeof(double)) {
            double v;
            std::memcpy(&v, &bytes[i], sizeof v);
            if (v != -3)
                return false;
        }
        return true;
    }

    // One step of the walk: open, make a renderer and read with the n-th
    // allocation or read failing (n = 0: none). Returns whether a fault was
    // injected; checks the outcome against expected (unless null).
    static bool Step(const Case &c, Fault fault, long n, std::vector<GByte> *bytes,
                     const Expected *expected)
    {
        pgp_executor *executor = pgp_executor_get(c.threads); // process-wide, made once
        const long before = Injected(fault);
        std::vector<std::string> heard;
        CPLPushErrorHandlerEx(KeepMessages, &heard);
        CPLErrorReset();
        Arm(fault, n);
        pgp_graph *graph = pgp_graph_open(c.xml.c_str());
        pgp_tile_cache *cache = graph ? pgp_tile_cache_new(8 << 20) : nullptr;
        pgp_renderer *r = nullptr;
        if (cache != nullptr && c.factor == 1)
            r = pgp_renderer_new(graph, executor, cache, c.prefetch);
        else if (cache != nullptr)
            r = pgp_renderer_new_overview(graph, executor, cache, c.prefetch,
                                          (graph->x_size + 1) / 2, (graph->y_size + 1) / 2);
        const CPLErr err = r ? ReadAll(c, r, bytes) : CE_Failure;
        Arm(fault, 0);
        const bool injected = Injected(fault) != before;
        const std::string message = CPLGetLastErrorMsg();
        const CPLErr type = CPLGetLastErrorType();
        if (expected != nullptr) {
            const std::vector<GByte> *reference = &expected->bytes;
            if (r == nullptr) { // a clean open failure, saying why
                EXPECT_TRUE(injected) << message;
                EXPECT_EQ(type, CE_Failure) << message;
                EXPECT_FALSE(message.empty());
                if (fault == Fault::kAlloc) {
                    EXPECT_NE(message.find("out of memory"), std::string::npos) << message;
                }
            } else if (err != CE_None) {
                EXPECT_TRUE(injected) << message;
                EXPECT_TRUE(std::regex_search(message, kNodeAndTile)) << message;
                if (fault == Fault::kAlloc) {
                    EXPECT_NE(message.find("out of memory"), std::string::npos) << message;
                }
                CPLErrorReset(); // the next read, with nothing failing, is whole
                EXPECT_EQ(ReadAll(c, r, bytes), CE_None) << CPLGetLastErrorMsg();
                EXPECT_TRUE(*bytes == *reference);
            } else if (*bytes != *reference) {
                // Only where GDAL itself went on without what it failed to
                // read, each case pinned to its exact outcome.
                EXPECT_TRUE(injected);
                EXPECT_TRUE(fault == Fault::kRead);
                // libtiff: a tag it failed to read is ignored with a warning
                // (GDAL_NODATA), which pgp passes on naming the source.
                EXPECT_TRUE(AnyHas(heard, "'>: opening '", "tag ignored") ||
                            (c.factor > 1 && *bytes == expected->without_source_overviews) ||
                            AllMaskedOut(c, *bytes))
                    << "different bytes, and not one of GDAL's known degradations; heard: "
                    << ::testing::PrintToString(heard);
            }
        }
        CPLPopErrorHandler();
        pgp_renderer_free(r);
        pgp_tile_cache_free(cache);
        pgp_graph_free(graph);
        return injected;
    }
};

TEST_P(FaultWalk, EveryStepFailsCleanlyAndTheNextReadIsWhole)
{
    const Case &c = TheCase();
    Expected expected;
    std::vector<GByte> bytes;
    ASSERT_FALSE(Step(c, TheFault(), 0, &expected.bytes, nullptr));
    ASSERT_FALSE(expected.bytes.empty());
    if (c.factor > 1) {
        Case flat = c;
        flat.xml.replace(flat.xml.find("a.tif'"), 6, "a_flat.tif'");
        ASSERT_FALSE(Step(flat, TheFault(), 0, &expected.without_source_overviews, nullptr));
    }
    long n = 1;
    for (; n < 20000 && !HasFailure(); n++) {
        SCOPED_TRACE("failing call " + std::to_string(n));
        if (!Step(c, TheFault(), n, &bytes, &expected))
            break;
    }
    EXPECT_GT(n, 1) << "no fault was injected: the walk tested nothing";
    std::printf("[ walk     ] %s: %ld steps\n", c.name, n);
}

std::string CaseName(const ::testing::TestParamInfo<std::tuple<int, Fault>> &info)
{
    return std::string(kCases[std::get<0>(info.param)].name) +
           (std::get<1>(info.param) == Fault::kAlloc ? "_Alloc" : "_Read");
}

INSTANTIATE_TEST_SUITE_P(Graphs, FaultWalk,
                         ::testing::Combine(::testing::Range(0, static_cast<int>(
                                                                    std::size(kCases))),
                                            ::testing::Values(Fault::kAlloc, Fault::kRead)),
                         CaseName);


// The pgp_expr pixel function in a plain VRT: GDAL opens and reads the
// sources, pgp evaluates. A failed allocation of pgp's fails the read with a
// pgp_expr: error naming the rows; a failed source read fails it with GDAL's.
class PixelFunctionWalk : public ::testing::TestWithParam<Fault>, public FaultFiles
{
  public:
    static void SetUpTestSuite()
    {
        Write();
        pgp_register_pixel_functions();
    }
    static void TearDownTestSuite() { Remove(); }

  protected:
    static std::string Vrt()
    {
        std::string sources;
        for (const char *name : {"a.tif", "b.tif"})
            sources += "<SimpleSource><SourceFilename relativeToVRT='0'>" + kVia + name +
                       "</SourceFilename><SourceBand>1</SourceBand></SimpleSource>";
        return "<VRTDataset rasterXSize='64' rasterYSize='64'>"
               "<VRTRasterBand dataType='Float64' band='1' subClass='VRTDerivedRasterBand'>"
               "<NoDataValue>-1</NoDataValue><PixelFunctionType>pgp_expr</PixelFunctionType>"
               "<PixelFunctionArguments expression='a * 2 + sqrt(abs(b))' names='a,b' "
               "source_nodata='-9999,none'/>"
               "<SourceTransferType>Float64</SourceTransferType>" +
               sources + "</VRTRasterBand></VRTDataset>";
    }

    static CPLErr Read(GDALDatasetH ds, std::vector<double> *out)
    {
        out->assign(kSize * kSize, 0);
        return GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Read, 0, 0, kSize, kSize, out->data(),
                            kSize, kSize, GDT_Float64, 0, 0);
    }

    // As FaultWalk::Step, through GDAL.
    static bool Step(Fault fault, long n, std::vector<double> *values,
                     const std::vector<double> *reference)
    {
        const long before = Injected(fault);
        std::vector<std::string> heard;
        CPLPushErrorHandlerEx(KeepMessages, &heard);
        CPLErrorReset();
        Arm(fault, n);
        GDALDatasetH ds = GDALOpen(Vrt().c_str(), GA_ReadOnly);
        const CPLErr err = ds ? Read(ds, values) : CE_Failure;
        Arm(fault, 0);
        const bool injected = Injected(fault) != before;
        const std::string message = CPLGetLastErrorMsg();
        if (reference != nullptr) {
            if (ds == nullptr) {
                EXPECT_TRUE(injected) << message;
                EXPECT_FALSE(message.empty());
            } else if (err != CE_None) {
                EXPECT_TRUE(injected) << message;
                if (fault == Fault::kAlloc) {
                    EXPECT_EQ(message.rfind("pgp_expr: ", 0), 0u) << message;
                    EXPECT_NE(message.find("out of memory"), std::string::npos) << message;
                } else {
                    EXPECT_FALSE(message.empty());
                }
                // A GTiff handle whose tile offsets libtiff failed to read
                // fails every later read (GDAL 3.6): the VRT's sources are
                // GDAL's, so a fresh dataset is what recovers.
                if (fault == Fault::kRead) {
                    GDALClose(ds);
                    ds = GDALOpen(Vrt().c_str(), GA_ReadOnly);
                    EXPECT_NE(ds, nullptr);
                }
                CPLErrorReset();
                EXPECT_EQ(ds ? Read(ds, values) : CE_Failure, CE_None) << CPLGetLastErrorMsg();
                EXPECT_TRUE(*values == *reference);
            } else if (*values != *reference) {
                // GDAL reads the sources here: a tag or a tile offset libtiff
                // could not read is reported (a warning, an error) and GDAL's
                // VRT returns success all the same.
                EXPECT_TRUE(injected && fault == Fault::kRead && AnyHas(heard, "IO error", ""))
                    << "different values, and GDAL said nothing";
            }
        }
        CPLPopErrorHandler();
        if (ds != nullptr)
            GDALClose(ds);
        return injected;
    }
};

TEST_P(PixelFunctionWalk, EveryStepFailsCleanlyAndTheNextReadIsWhole)
{
    std::vector<double> reference, values;
    ASSERT_FALSE(Step(GetParam(), 0, &reference, nullptr));
    long n = 1;
    for (; n < 20000 && !HasFailure(); n++) {
        SCOPED_TRACE("failing call " + std::to_string(n));
        if (!Step(GetParam(), n, &values, &reference))
            break;
    }
    EXPECT_GT(n, 1) << "no fault was injected: the walk tested nothing";
    std::printf("[ walk     ] pgp_expr: %ld steps\n", n);
}

INSTANTIATE_TEST_SUITE_P(PixelFunction, PixelFunctionWalk,
                         ::testing::Values(Fault::kAlloc, Fault::kRead),
                         [](const ::testing::TestParamInfo<Fault> &info) {
                             return std::string(info.param == Fault::kAlloc ? "Alloc" : "Read");
                         });

// The allocator itself: NULL with a CPLError, never an abort; the countdown
// fails exactly the n-th allocation, once, whichever thread makes it.
TEST(Allocator, FailsWithAnErrorInsteadOfAborting)
{
    CPLPushErrorHandler(CPLQuietErrorHandler);
    CPLErrorReset();
    EXPECT_EQ(pgp_malloc_array(SIZE_MAX / 2, 4), nullptr); // overflow
    EXPECT_EQ(CPLGetLastErrorNo(), CPLE_OutOfMemory);
    EXPECT_NE(std::string(CPLGetLastErrorMsg()).find("out of memory"), std::string::npos);
    CPLErrorReset();
    EXPECT_EQ(pgp_calloc_optional(SIZE_MAX / 2, 4), nullptr);
    EXPECT_EQ(CPLGetLastErrorType(), CE_None); // optional: no error
    CPLPopErrorHandler();
    char *copy = pgp_strdup(nullptr);
    ASSERT_NE(copy, nullptr);
    EXPECT_STREQ(copy, "");
    pgp_free(copy);
}

TEST(Allocator, CountdownFailsTheNthAllocationOnceAcrossThreads)
{
    constexpr int kThreads = 8, kEach = 1000;
    const long before = pgp_alloc_injected_failures();
    std::atomic<int> failed{0};
    pgp_alloc_fail_after(kThreads * kEach / 2);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; t++)
        threads.emplace_back([&] {
            CPLPushErrorHandler(CPLQuietErrorHandler); // handlers are per thread
            for (int i = 0; i < kEach; i++) {
                void *p = pgp_malloc_aligned(64);
                if (p == nullptr)
                    failed++;
                pgp_free_aligned(p);
            }
            CPLPopErrorHandler();
        });
    for (auto &t : threads)
        t.join();
    pgp_alloc_fail_after(0);
    EXPECT_EQ(failed.load(), 1);
    EXPECT_EQ(pgp_alloc_injected_failures(), before + 1);
}

// Pools and cache entries: the two allocations outside a tile job's buffers.
TEST(Allocator, ExecutorAndCacheEntryFailuresAreErrors)
{
    CPLPushErrorHandler(CPLQuietErrorHandler);
    pgp_alloc_fail_after(1);
    EXPECT_EQ(pgp_executor_get(7), nullptr); // a pool not made yet
    EXPECT_NE(std::string(CPLGetLastErrorMsg()).find("could not start 7 executor threads: out "
                                                     "of memory"),
              std::string::npos)
        << CPLGetLastErrorMsg();
    EXPECT_NE(pgp_executor_get(7), nullptr);

    pgp_tile_cache *cache = pgp_tile_cache_new(1 << 20);
    ASSERT_NE(cache, nullptr);
    pgp_tile_key key{pgp_tile_cache_new_owner(), 0, 0, 0};
    pgp_tile *tile = nullptr;
    pgp_alloc_fail_after(1);
    EXPECT_EQ(pgp_tile_cache_acquire(cache, &key, &tile), PGP_TILE_NO_MEMORY);
    EXPECT_EQ(tile, nullptr);
    ASSERT_EQ(pgp_tile_cache_acquire(cache, &key, &tile), PGP_TILE_MUST_COMPUTE);
    pgp_tile_cache_fail(cache, tile);
    pgp_tile_cache_release(cache, tile);
    pgp_tile_cache_free(cache);
    CPLPopErrorHandler();
}

} // namespace
