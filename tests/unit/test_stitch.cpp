// <Stitch> through the renderer on several threads (run under ThreadSanitizer
// in test.sh): more bases than its pool of open bases holds, so workers check
// bases out, in and close them concurrently; every thread count and window
// must give a naive fold's pixels.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gdal.h"
#include "pgp/cache.h"
#include "pgp/executor.h"
#include "pgp/graph.h"
#include "pgp/render.h"
#include "raster_fixture.h"

namespace {

constexpr int kW = 150, kH = 110, kBases = 90, kBaseSize = 24;
const std::string kDir = "/vsimem/stitch_unit/";

struct Base {
    int x, y;
    std::vector<double> values; // -9: nodata
};

class StitchThreads : public ::testing::Test
{
  protected:
    static void SetUpTestSuite()
    {
        std::vector<double> target(kW * kH, -1);
        for (int i = 0; i < kW * 20; i++)
            target[i] = 3; // a valid strip to add to
        pgp_test::WriteRaster(kDir + "target.tif", kW, kH, GDT_Float32, target, true, -1);
        std::string xml = "<PGPDataset blockXSize='16' blockYSize='16'>"
                          "<Source name='t' file='" + kDir + "target.tif'/>"
                          "<Stitch name='s' target='t' overlap='add'>";
        for (int i = 0; i < kBases; i++) {
            Base b;
            b.x = (i * 37) % (kW + 10) - 10; // some past the left and top edges
            b.y = (i * 53) % (kH + 10) - 10;
            b.values = pgp_test::Field(kBaseSize * kBaseSize, 8, 100 + i);
            for (size_t k = 0; k < b.values.size(); k += 7)
                b.values[k] = -9;
            const std::string name = kDir + "b" + std::to_string(i) + ".tif";
            // raster_fixture's origin is (origin_x, 5000) with 30 m pixels.
            ASSERT_FALSE(pgp_test::WriteRaster(name, kBaseSize, kBaseSize, GDT_Float32, b.values,
                                               true, -9)
                             .empty());
            // Placed at target pixel (x, y): the target's origin is (1000, 5000).
            GDALDatasetH ds = GDALOpen(name.c_str(), GA_Update);
            double gt[6] = {1000 + 30.0 * b.x, 30, 0, 5000 - 30.0 * b.y, 0, -30};
            GDALSetGeoTransform(ds, gt);
            GDALClose(ds);
            xml += "<Base file='" + name + "'/>";
            bases().push_back(b);
        }
        xml += "</Stitch><Band ref='s'/></PGPDataset>";
        Expected() = Fold(target);
        Xml() = xml;
    }
    static void TearDownTestSuite() { VSIRmdirRecursive(kDir.c_str()); }

    static std::vector<Base> &bases()
    {
        static std::vector<Base> b;
        return b;
    }
    static std::vector<double> &Expected()
    {
        static std::vector<double> e;
        return e;
    }
    static std::string &Xml()
    {
        static std::string x;
        return x;
    }

    // The naive fold: each base in order, placed as pygeoprocessing does (its
    // corner through GDAL's inverse geotransform, truncated: 1/30 is inexact,
    // so a corner at -5 pixels may land on -4), add where valid (float32).
    static std::vector<double> Fold(std::vector<double> out)
    {
        double gt[6] = {1000, 30, 0, 5000, 0, -30}, inverse[6], fx, fy;
        if (!GDALInvGeoTransform(gt, inverse))
            ADD_FAILURE() << "the target geotransform does not invert";
        for (const Base &b : bases()) {
            GDALApplyGeoTransform(inverse, 1000 + 30.0 * b.x, 5000 - 30.0 * b.y, &fx, &fy);
            const int bx = static_cast<int>(fx), by = static_cast<int>(fy);
            for (int j = 0; j < kBaseSize; j++)
                for (int i = 0; i < kBaseSize; i++) {
                    const int x = bx + i, y = by + j;
                    const double v = static_cast<float>(b.values[j * kBaseSize + i]);
                    if (x < 0 || y < 0 || x >= kW || y >= kH || v == -9)
                        continue;
                    double &t = out[y * kW + x];
                    t = static_cast<float>(v + (t == -1 ? 0 : t));
                }
        }
        return out;
    }
};

TEST_F(StitchThreads, EveryThreadCountAndWindowGivesTheNaiveFold)
{
    pgp_graph *graph = pgp_graph_open(Xml().c_str());
    ASSERT_NE(graph, nullptr) << CPLGetLastErrorMsg();
    const int node = pgp_graph_find(graph, "s");
    for (int threads : {0, 2, 4}) {
        pgp_tile_cache *cache = pgp_tile_cache_new(0); // every read recomputes
        pgp_renderer *r = pgp_renderer_new(graph, pgp_executor_get(threads), cache, 0);
        ASSERT_NE(r, nullptr);
        std::vector<double> out(kW * kH);
        ASSERT_EQ(pgp_renderer_read(r, 1, &node, 0, 0, kW, kH, out.data(), GDT_Float64, 8, 8 * kW,
                                    0, nullptr, nullptr),
                  CE_None)
            << CPLGetLastErrorMsg();
        for (size_t k = 0; k < out.size(); k++)
            ASSERT_EQ(out[k], Expected()[k]) << "pixel (" << k % kW << "," << k / kW << "), "
                                             << threads << " threads";
        std::vector<double> window(37 * 29);
        ASSERT_EQ(pgp_renderer_read(r, 1, &node, 21, 13, 37, 29, window.data(), GDT_Float64, 8,
                                    8 * 37, 0, nullptr, nullptr),
                  CE_None);
        for (int j = 0; j < 29; j++)
            for (int i = 0; i < 37; i++)
                ASSERT_EQ(window[j * 37 + i], Expected()[(13 + j) * kW + 21 + i]);
        pgp_renderer_free(r);
        pgp_tile_cache_free(cache);
    }
    pgp_graph_free(graph);
}

} // namespace
