// Unit tests for core/zonal.c (pgp/zonal.h): the C core against a naive reference
// (each feature burnt alone over the whole raster by GDAL's rasteriser, then a
// plain loop), the merge invariant, every thread count, and errors. Run under
// ASan+UBSan in test.sh; the Python-level tests are tests/python/test_zonal.py.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "gdal_alg.h"
#include "ogr_api.h"
#include "pgp/alloc.h"
#include "pgp/zonal.h"
#include "raster_fixture.h"

namespace {

constexpr int kWidth = 70, kHeight = 50;
constexpr double kOriginX = 1000, kOriginY = 5000, kPixel = 30;

// Circles around pixel (col, row) of radius r pixels: overlapping, sub-pixel, outside.
const double kCircles[][3] = {{10, 10, 8}, {14, 12, 6}, {40, 30, 12}, {60.3, 5.3, 0.1},
                              {-20, -20, 3}, {68, 48, 5}, {33, 20, 2.5}};

std::string WriteVector(const std::string &path)
{
    GDALDriverH driver = GDALGetDriverByName("GPKG");
    GDALDatasetH ds = GDALCreate(driver, path.c_str(), 0, 0, 0, GDT_Unknown, nullptr);
    OGRLayerH layer = GDALDatasetCreateLayer(ds, "zones", nullptr, wkbPolygon, nullptr);
    for (const auto &c : kCircles) {
        OGRFeatureH feature = OGR_F_Create(OGR_L_GetLayerDefn(layer));
        OGRGeometryH point = OGR_G_CreateGeometry(wkbPoint);
        OGR_G_SetPoint_2D(point, 0, kOriginX + c[0] * kPixel, kOriginY - c[1] * kPixel);
        OGRGeometryH circle = OGR_G_Buffer(point, c[2] * kPixel, 8);
        OGR_F_SetGeometryDirectly(feature, circle);
        EXPECT_EQ(OGR_L_CreateFeature(layer, feature), OGRERR_NONE);
        OGR_F_Destroy(feature);
        OGR_G_DestroyGeometry(point);
    }
    OGRFeatureH empty = OGR_F_Create(OGR_L_GetLayerDefn(layer)); // no geometry
    EXPECT_EQ(OGR_L_CreateFeature(layer, empty), OGRERR_NONE);
    OGR_F_Destroy(empty);
    GDALClose(ds);
    return path;
}

class ZonalTest : public ::testing::Test {
  protected:
    void SetUp() override
    {
        GDALAllRegister();
        values_ = pgp_test::Field(kWidth * kHeight, 100, 3);
        for (int i = 0; i < kWidth * kHeight; i += 17)
            values_[i] = -9; // nodata
        raster_ = pgp_test::WriteRaster("/vsimem/zonal.tif", kWidth, kHeight, GDT_Float32,
                                        values_, true, -9, kOriginX, kPixel, 16);
        vector_ = WriteVector("/vsimem/zonal.gpkg");
        // the raster's values as stored (Float32)
        for (double &v : values_)
            v = static_cast<float>(v);
    }
    void TearDown() override
    {
        VSIUnlink(raster_.c_str());
        VSIUnlink(vector_.c_str());
    }

    // The pixels feature fid burns alone over the whole raster.
    std::vector<bool> Burnt(GIntBig fid)
    {
        GDALDatasetH vector = GDALOpenEx(vector_.c_str(), GDAL_OF_VECTOR, nullptr, nullptr,
                                         nullptr);
        OGRLayerH layer = GDALDatasetGetLayer(vector, 0);
        OGRFeatureH feature = OGR_L_GetFeature(layer, fid);
        std::vector<GByte> mask(kWidth * kHeight, 0);
        OGRGeometryH geometry = OGR_F_GetGeometryRef(feature);
        if (geometry != nullptr) {
            char spec[256];
            snprintf(spec, sizeof spec, "MEM:::DATAPOINTER=%p,PIXELS=%d,LINES=%d",
                     mask.data(), kWidth, kHeight);
            GDALDatasetH mem = GDALOpenEx(spec, GDAL_OF_RASTER | GDAL_OF_UPDATE, nullptr,
                                          nullptr, nullptr);
            double gt[6] = {kOriginX, kPixel, 0, kOriginY, 0, -kPixel};
            GDALSetGeoTransform(mem, gt);
            int band = 1;
            double burn = 1;
            EXPECT_EQ(GDALRasterizeGeometries(mem, 1, &band, 1, &geometry, nullptr, nullptr,
                                              &burn, nullptr, nullptr, nullptr),
                      CE_None);
            GDALClose(mem);
        }
        OGR_F_Destroy(feature);
        GDALClose(vector);
        return std::vector<bool>(mask.begin(), mask.end());
    }

    pgp_zonal_result *Compute(int threads, int value_counts = 1)
    {
        pgp_zonal_options options{};
        options.ignore_nodata = 1;
        options.polygons_might_overlap = 1;
        options.value_counts = value_counts;
        options.n_threads = threads;
        return pgp_zonal_compute(raster_.c_str(), 1, vector_.c_str(), nullptr, &options);
    }

    std::vector<double> values_;
    std::string raster_, vector_;
};

TEST_F(ZonalTest, EachFeatureMatchesItsOwnRasterisation)
{
    pgp_zonal_result *result = Compute(0);
    ASSERT_NE(result, nullptr) << CPLGetLastErrorMsg();
    ASSERT_EQ(result->n_features, std::size(kCircles) + 1);
    int fallbacks = 0;
    for (size_t i = 0; i < result->n_features; i++) {
        const pgp_zonal_feature &f = result->features[i];
        SCOPED_TRACE(f.fid);
        const std::vector<bool> mask = Burnt(f.fid);
        uint64_t count = 0, nodata = 0;
        double sum = 0, lo = INFINITY, hi = -INFINITY;
        for (int p = 0; p < kWidth * kHeight; p++) {
            if (!mask[p])
                continue;
            if (values_[p] == -9) {
                nodata++;
                continue;
            }
            count++;
            sum += values_[p];
            lo = std::min(lo, values_[p]);
            hi = std::max(hi, values_[p]);
        }
        if (count + nodata == 0) { // outside, no geometry, or the envelope fallback
            fallbacks += f.fallback;
            if (!f.fallback) {
                EXPECT_EQ(f.count + f.nodata_count, 0u);
            }
            continue;
        }
        EXPECT_FALSE(f.fallback);
        EXPECT_EQ(f.count, count);
        EXPECT_EQ(f.nodata_count, nodata);
        EXPECT_NEAR(f.sum, sum, 1e-9 * std::fabs(sum) + 1e-9);
        EXPECT_EQ(f.min, lo);
        EXPECT_EQ(f.max, hi);
        uint64_t histogram_total = 0;
        for (size_t k = 0; k < f.n_values; k++) {
            histogram_total += f.values[k].count;
            if (k > 0) {
                EXPECT_LT(f.values[k - 1].value, f.values[k].value);
            }
        }
        EXPECT_EQ(histogram_total, count);
    }
    EXPECT_EQ(fallbacks, 1); // the sub-pixel circle
    EXPECT_FALSE(result->features[result->n_features - 1].has_geometry);
    pgp_zonal_result_free(result);
}

TEST_F(ZonalTest, SameBitsForEveryThreadCount)
{
    pgp_zonal_result *serial = Compute(0);
    ASSERT_NE(serial, nullptr);
    for (int threads : {1, 2, 4}) {
        pgp_zonal_result *other = Compute(threads);
        ASSERT_NE(other, nullptr);
        ASSERT_EQ(other->n_features, serial->n_features);
        for (size_t i = 0; i < serial->n_features; i++) {
            const pgp_zonal_feature &a = serial->features[i], &b = other->features[i];
            EXPECT_EQ(a.count, b.count);
            EXPECT_EQ(0, memcmp(&a.sum, &b.sum, sizeof a.sum)) << threads;
            EXPECT_EQ(0, memcmp(&a.m2, &b.m2, sizeof a.m2)) << threads;
            ASSERT_EQ(a.n_values, b.n_values);
            if (a.n_values > 0) {
                EXPECT_EQ(0, memcmp(a.values, b.values, a.n_values * sizeof *a.values));
            }
        }
        pgp_zonal_result_free(other);
    }
    pgp_zonal_result_free(serial);
}

// Summary of values[from, to) as the core builds it pixel by pixel.
pgp_zonal_feature Summary(const std::vector<double> &values, size_t from, size_t to)
{
    pgp_zonal_feature s{};
    pgp_zonal_feature one{};
    for (size_t i = from; i < to; i++) {
        one = pgp_zonal_feature{};
        one.count = 1;
        one.sum = one.min = one.max = one.mean = values[i];
        EXPECT_EQ(pgp_zonal_merge(&s, &one), 0);
    }
    return s;
}

TEST(ZonalMerge, MergingPartsEqualsTheWhole)
{
    const std::vector<double> v = pgp_test::Field(1000, 50, 9);
    pgp_zonal_feature a = Summary(v, 0, 400), b = Summary(v, 400, 1000);
    const pgp_zonal_feature whole = Summary(v, 0, 1000);
    ASSERT_EQ(pgp_zonal_merge(&a, &b), 0);
    EXPECT_EQ(a.count, whole.count);
    EXPECT_EQ(a.min, whole.min);
    EXPECT_EQ(a.max, whole.max);
    double mean = 0, m2 = 0;
    for (double x : v)
        mean += x / v.size();
    for (double x : v)
        m2 += (x - mean) * (x - mean);
    EXPECT_NEAR(a.mean, mean, 1e-12 * std::fabs(mean) + 1e-12);
    EXPECT_NEAR(a.m2, m2, 1e-10 * m2);
    EXPECT_NEAR(a.sum, whole.sum, 1e-10 * std::fabs(whole.sum) + 1e-10);
    // an empty part changes nothing
    pgp_zonal_feature empty{};
    const pgp_zonal_feature before = a;
    ASSERT_EQ(pgp_zonal_merge(&a, &empty), 0);
    EXPECT_EQ(0, memcmp(&before, &a, sizeof a));
}

TEST_F(ZonalTest, ErrorsNameTheProblem)
{
    pgp_zonal_options options{};
    CPLPushErrorHandler(CPLQuietErrorHandler);
    EXPECT_EQ(pgp_zonal_compute(raster_.c_str(), 2, vector_.c_str(), nullptr, &options), nullptr);
    EXPECT_NE(std::string(CPLGetLastErrorMsg()).find("no band 2"), std::string::npos);
    EXPECT_EQ(pgp_zonal_compute(raster_.c_str(), 1, vector_.c_str(), "nothing", &options),
              nullptr);
    EXPECT_NE(std::string(CPLGetLastErrorMsg()).find("no layer 'nothing'"), std::string::npos);
    EXPECT_EQ(pgp_zonal_compute(raster_.c_str(), 1, "/vsimem/none.gpkg", nullptr, &options),
              nullptr);
    CPLPopErrorHandler();
    pgp_zonal_result *ok = Compute(2, 0); // the next call works
    ASSERT_NE(ok, nullptr);
    pgp_zonal_result_free(ok);
}

// The resource contract (docs/hardening.md): the n-th allocation fails, for n = 1,
// 2, ... until none is left to fail; every step is NULL with a message (or, where
// the failed allocation was optional, the full result), and the next call is whole.
TEST_F(ZonalTest, AllocationFaultWalk)
{
    pgp_zonal_result *reference = Compute(2);
    ASSERT_NE(reference, nullptr);
    long n = 1;
    for (; n < 5000 && !HasFailure(); n++) {
        SCOPED_TRACE("failing allocation " + std::to_string(n));
        const long before = pgp_alloc_injected_failures();
        CPLPushErrorHandler(CPLQuietErrorHandler);
        CPLErrorReset();
        pgp_alloc_fail_after(n);
        pgp_zonal_result *faulted = Compute(2);
        pgp_alloc_fail_after(0);
        const std::string message = CPLGetLastErrorMsg();
        CPLPopErrorHandler();
        const bool injected = pgp_alloc_injected_failures() != before;
        if (faulted == nullptr) {
            EXPECT_TRUE(injected);
            EXPECT_NE(message.find("out of memory"), std::string::npos) << message;
        }
        pgp_zonal_result_free(faulted);
        pgp_zonal_result *again = Compute(2);
        ASSERT_NE(again, nullptr) << CPLGetLastErrorMsg();
        for (size_t i = 0; i < reference->n_features; i++)
            EXPECT_EQ(0, memcmp(&again->features[i].sum, &reference->features[i].sum,
                                sizeof(double)));
        pgp_zonal_result_free(again);
        if (!injected)
            break;
    }
    EXPECT_GT(n, 5) << "the walk tested nothing";
    pgp_zonal_result_free(reference);
}

} // namespace
