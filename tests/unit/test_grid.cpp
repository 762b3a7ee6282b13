// test_grid.cpp — <Align> geometry (docs/semantics.md#align) and warped views.
//
// Grid expectations are derived by hand in the comments; warped pixels are
// compared with what the gdalwarp command line writes for the same grid.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "gdal.h"
#include "gdal_alg.h"
#include "ogr_api.h"
#include "ogr_srs_api.h"
#include "pgp/grid.h"
#include "pgp/warp.h"

namespace {

std::string Wkt(int epsg)
{
    OGRSpatialReferenceH srs = OSRNewSpatialReference(nullptr);
    OSRImportFromEPSG(srs, epsg);
    char *wkt = nullptr;
    OSRExportToWkt(srs, &wkt);
    std::string out(wkt);
    CPLFree(wkt);
    OSRDestroySpatialReference(srs);
    return out;
}

// Three rasters on offset grids, like SEMANTICS' generated cases:
//   A: 100x80 at 30 m from (500000, 4500000): [500000, 4497600, 503000, 4500000]
//   B: 110x90 at 25 m from (500010, 4500025): [500010, 4497775, 502760, 4500025]
//   C: 120x70 at 30 m from (498000, 4499500): [498000, 4497400, 501600, 4499500]
// union        = [498000, 4497400, 503000, 4500025]
// intersection = [500010, 4497775, 501600, 4499500]
const pgp_grid_input kA = {{500000, 30, 0, 4500000, 0, -30}, 100, 80, nullptr};
const pgp_grid_input kB = {{500010, 25, 0, 4500025, 0, -25}, 110, 90, nullptr};
const pgp_grid_input kC = {{498000, 30, 0, 4499500, 0, -30}, 120, 70, nullptr};

struct GridCase {
    const char *bbox;
    int align;
    double px, py;
    int nx, ny;
    double gt[6];
};

// Each expectation by hand (trunc, ceiling unless exact, anchored at min corner):
const GridCase kCases[] = {
    // union 30: w 5000/30 = 166.7 -> 167; h 2625/30 = 87.5 -> 88; top 4497400+2640
    {"union", -1, 30, -30, 167, 88, {498000, 30, 0, 4500040, 0, -30}},
    // intersection, align A: minx n=trunc(10/30)=0 -> 500000; miny n=trunc(175/-30)=-5
    // -> 4497750. 20 m: w 1600/20 = 80; h 1750/20 = 87.5 -> 88; top 4497750+1760
    {"intersection", 0, 20, -20, 80, 88, {500000, 20, 0, 4499510, 0, -20}},
    // intersection, align B: on B's grid already. 37.5 m: w 1590/37.5 = 42.4 -> 43;
    // h 1725/37.5 = 46 exactly; top 4497775+1725
    {"intersection", 1, 37.5, -37.5, 43, 46, {500010, 37.5, 0, 4499500, 0, -37.5}},
    // union, align C: on C's grid already. 40x25: w 5000/40 = 125; h 2625/25 = 105
    {"union", 2, 40, -25, 125, 105, {498000, 40, 0, 4500025, 0, -25}},
    // union, align A (inward clip): minx n=trunc(-2000/30)=-66 -> 498020; miny
    // n=trunc(-200/-30)=6 -> 4497420. 45 m: w 4980/45 = 110.7 -> 111;
    // h 2605/45 = 57.9 -> 58; top 4497420+2610
    {"union", 0, 45, -45, 111, 58, {498020, 45, 0, 4500030, 0, -45}},
    // union, align B (inward clip): minx n=trunc(-2010/25)=-80 -> 498010; miny
    // n=trunc(-375/-25)=15 -> 4497400. w 4990/37.5 = 133.1 -> 134; h 2625/37.5 = 70
    {"union", 1, 37.5, -37.5, 134, 70, {498010, 37.5, 0, 4500025, 0, -37.5}},
    // intersection, align C: minx n=67 -> 500010; miny n=trunc(375/-30)=-12 ->
    // 4497760. 45 m: w 1590/45 = 35.3 -> 36; h 1740/45 = 38.7 -> 39; top +1755
    {"intersection", 2, 45, -45, 36, 39, {500010, 45, 0, 4499515, 0, -45}},
    // explicit: w 900/30 = 30; h 1000/30 = 33.3 -> 34; top 4498000+1020
    {"500100,4498000,501000,4499000", -1, 30, -30, 30, 34, {500100, 30, 0, 4499020, 0, -30}},
    // explicit, align B: minx n=trunc(90/25)=3 -> 500085; miny n=trunc(225/-25)=-9 ->
    // 4498000. 20 m: w 915/20 = 45.75 -> 46; h 1000/20 = 50
    {"500100,4498000,501000,4499000", 1, 20, -20, 46, 50, {500085, 20, 0, 4499000, 0, -20}},
    // positive y pixel size: still north-up. w 1590/30 = 53; h 1725/30 = 57.5 -> 58
    {"intersection", -1, 30, 30, 53, 58, {500010, 30, 0, 4499515, 0, -30}},
    {"intersection", -1, -30, 30, 53, 58, {500010, 30, 0, 4499515, 0, -30}},
    // smaller than a pixel, and empty: 1x1
    {"500000,4498000,500010,4498005", -1, 30, -30, 1, 1, {500000, 30, 0, 4498030, 0, -30}},
    {"500000,4498000,500000,4498000", -1, 30, -30, 1, 1, {500000, 30, 0, 4498030, 0, -30}},
    // far from every raster: not checked, 1x1
    {"0,0,10,10", -1, 30, -30, 1, 1, {0, 30, 0, 30, 0, -30}},
};

pgp_grid ComputeOrDie(const std::vector<pgp_grid_input> &inputs, const char *bbox, int align,
                      double px, double py, const char *srs = nullptr)
{
    pgp_bbox_spec spec;
    char err[512] = "";
    EXPECT_EQ(pgp_grid_parse_bbox(bbox, &spec, err, sizeof err), 0) << err;
    const double pixel[2] = {px, py};
    pgp_grid grid;
    EXPECT_EQ(pgp_grid_compute(inputs.data(), (int)inputs.size(), &spec, pixel, align, srs,
                               nullptr, 0, nullptr, &grid, err, sizeof err),
              0)
        << err;
    return grid;
}

std::string ComputeError(const std::vector<pgp_grid_input> &inputs, const char *bbox, int align,
                         double px, double py, const char *srs = nullptr,
                         const std::vector<pgp_grid_vector> &vectors = {},
                         const pgp_grid_vector *mask = nullptr)
{
    pgp_bbox_spec spec;
    char err[512] = "";
    EXPECT_EQ(pgp_grid_parse_bbox(bbox, &spec, err, sizeof err), 0) << err;
    const double pixel[2] = {px, py};
    pgp_grid grid;
    EXPECT_EQ(pgp_grid_compute(inputs.data(), (int)inputs.size(), &spec, pixel, align, srs,
                               vectors.data(), (int)vectors.size(), mask, &grid, err,
                               sizeof err),
              -1);
    return err;
}

TEST(GridBBox, RasterBboxUsesTwoCorners)
{
    // Rotated: corners (100,200) and (100+5*10+4*2, 200+5*3+4*-10) = (158, 175). A
    // four-corner rule would reach y = 215 at (150, 215).
    const double gt[6] = {100, 10, 2, 200, 3, -10};
    const pgp_bbox b = pgp_grid_raster_bbox(gt, 5, 4);
    EXPECT_EQ(b.minx, 100);
    EXPECT_EQ(b.miny, 175);
    EXPECT_EQ(b.maxx, 158);
    EXPECT_EQ(b.maxy, 200);
    const pgp_bbox a = pgp_grid_raster_bbox(kA.gt, kA.x_size, kA.y_size);
    EXPECT_EQ(a.minx, 500000);
    EXPECT_EQ(a.miny, 4497600);
    EXPECT_EQ(a.maxx, 503000);
    EXPECT_EQ(a.maxy, 4500000);
}

TEST(GridBBox, MergeUnionAndIntersection)
{
    const pgp_bbox boxes[2] = {{-1, -5, 2, 6}, {0, -2, 1, 10}};
    pgp_bbox r;
    char err[256];
    ASSERT_EQ(pgp_grid_merge_bboxes(boxes, 2, PGP_BBOX_UNION, &r, err, sizeof err), 0);
    EXPECT_EQ(r.minx, -1);
    EXPECT_EQ(r.miny, -5);
    EXPECT_EQ(r.maxx, 2);
    EXPECT_EQ(r.maxy, 10);
    ASSERT_EQ(pgp_grid_merge_bboxes(boxes, 2, PGP_BBOX_INTERSECTION, &r, err, sizeof err), 0);
    EXPECT_EQ(r.minx, 0);
    EXPECT_EQ(r.miny, -2);
    EXPECT_EQ(r.maxx, 1);
    EXPECT_EQ(r.maxy, 6);
}

TEST(GridBBox, TouchingIntersectsDisjointDoesNot)
{
    const pgp_bbox touching[2] = {{0, 0, 10, 10}, {10, 0, 20, 10}};
    pgp_bbox r;
    char err[256] = "";
    ASSERT_EQ(pgp_grid_merge_bboxes(touching, 2, PGP_BBOX_INTERSECTION, &r, err, sizeof err), 0)
        << err;
    EXPECT_EQ(r.minx, 10);
    EXPECT_EQ(r.maxx, 10);
    const pgp_bbox disjoint[2] = {{0, 0, 10, 10}, {10.5, 0, 20, 10}};
    EXPECT_EQ(pgp_grid_merge_bboxes(disjoint, 2, PGP_BBOX_INTERSECTION, &r, err, sizeof err),
              -1);
    EXPECT_NE(std::string(err).find("boundingBox: the bounding boxes do not intersect"),
              std::string::npos)
        << err;
}

TEST(GridParse, BoundingBox)
{
    pgp_bbox_spec s;
    char err[256];
    ASSERT_EQ(pgp_grid_parse_bbox("union", &s, err, sizeof err), 0);
    EXPECT_EQ(s.mode, PGP_BBOX_UNION);
    ASSERT_EQ(pgp_grid_parse_bbox("intersection", &s, err, sizeof err), 0);
    EXPECT_EQ(s.mode, PGP_BBOX_INTERSECTION);
    ASSERT_EQ(pgp_grid_parse_bbox(" -1.5, 2 ,3e2,4", &s, err, sizeof err), 0);
    EXPECT_EQ(s.mode, PGP_BBOX_EXPLICIT);
    EXPECT_EQ(s.box.minx, -1.5);
    EXPECT_EQ(s.box.miny, 2);
    EXPECT_EQ(s.box.maxx, 300);
    EXPECT_EQ(s.box.maxy, 4);
    for (const char *bad : {"Union", "both", "", "1,2,3", "1,2,3,4,5", "1,2,a,4", "1,2,3,4,",
                            "3,0,1,4", "0,3,1,2", "nan,0,1,1", "0,0,inf,1", "1;2;3;4"}) {
        err[0] = '\0';
        EXPECT_EQ(pgp_grid_parse_bbox(bad, &s, err, sizeof err), -1) << bad;
        EXPECT_NE(std::string(err).find("boundingBox"), std::string::npos) << bad;
    }
}

TEST(GridParse, PixelSize)
{
    double px[2];
    char err[256];
    ASSERT_EQ(pgp_grid_parse_pixel_size("30,-30", px, err, sizeof err), 0);
    EXPECT_EQ(px[0], 30);
    EXPECT_EQ(px[1], -30);
    ASSERT_EQ(pgp_grid_parse_pixel_size(" 40 , 25 ", px, err, sizeof err), 0);
    EXPECT_EQ(px[0], 40);
    EXPECT_EQ(px[1], 25);
    ASSERT_EQ(pgp_grid_parse_pixel_size("-30,30", px, err, sizeof err), 0);
    EXPECT_EQ(px[0], -30);
    for (const char *bad : {"0,30", "-0,30", "30,0.0", "30", "30,30,30", "a,b", "30,inf",
                            "nan,30", "", "30 30"}) {
        err[0] = '\0';
        EXPECT_EQ(pgp_grid_parse_pixel_size(bad, px, err, sizeof err), -1) << bad;
        EXPECT_EQ(std::string(err).rfind(std::string("pixelSize '") + bad + "'", 0), 0u)
            << err;
    }
}

TEST(GridParse, Resampling)
{
    const struct {
        const char *name;
        GDALResampleAlg alg;
    } known[] = {{"near", GRA_NearestNeighbour}, {"bilinear", GRA_Bilinear},
                 {"cubic", GRA_Cubic},           {"cubicspline", GRA_CubicSpline},
                 {"lanczos", GRA_Lanczos},       {"average", GRA_Average},
                 {"mode", GRA_Mode},             {"min", GRA_Min},
                 {"max", GRA_Max},               {"med", GRA_Med},
                 {"q1", GRA_Q1},                 {"q3", GRA_Q3},
                 {"sum", GRA_Sum},               {"rms", GRA_RMS},
                 {"NEAR", GRA_NearestNeighbour}};
    char err[512];
    for (const auto &k : known) {
        GDALResampleAlg alg = GRA_Sum;
        ASSERT_EQ(pgp_grid_parse_resampling(k.name, &alg, err, sizeof err), 0) << k.name;
        EXPECT_EQ(alg, k.alg) << k.name;
    }
    GDALResampleAlg alg;
    for (const char *bad : {"nearest", "gauss", "", "bilinear "}) {
        EXPECT_EQ(pgp_grid_parse_resampling(bad, &alg, err, sizeof err), -1) << bad;
        EXPECT_NE(std::string(err).find("unknown resampling method"), std::string::npos);
    }
}

TEST(GridSnap, TruncationMovesTowardTheAlignRasterMinCorner)
{
    // SEMANTICS' example: union minx 498000, align minx 500000, 30 m:
    // n = int(-66.67) = -66 -> 498020 (inward). miny 4497650 inside A:
    // n = int(50 / -30) = -1 -> 4497630 (outward). max corner untouched.
    const pgp_bbox b = pgp_grid_snap_min_corner({498000, 4497650, 501234, 4499999}, kA.gt,
                                                kA.x_size, kA.y_size);
    EXPECT_EQ(b.minx, 498020);
    EXPECT_EQ(b.miny, 4497630);
    EXPECT_EQ(b.maxx, 501234);
    EXPECT_EQ(b.maxy, 4499999);
}

TEST(GridCompute, Cases)
{
    const std::vector<pgp_grid_input> inputs = {kA, kB, kC};
    for (const GridCase &c : kCases) {
        SCOPED_TRACE(std::string(c.bbox) + " align " + std::to_string(c.align) + " px " +
                     std::to_string(c.px) + "," + std::to_string(c.py));
        pgp_grid g = ComputeOrDie(inputs, c.bbox, c.align, c.px, c.py);
        EXPECT_EQ(g.x_size, c.nx);
        EXPECT_EQ(g.y_size, c.ny);
        for (int i = 0; i < 6; i++)
            EXPECT_EQ(g.gt[i], c.gt[i]) << "gt[" << i << "]";
        EXPECT_EQ(g.srs_wkt, nullptr); // the inputs have none
        EXPECT_EQ(g.reproject, 0);
        pgp_grid_clear(&g);
    }
}

TEST(GridCompute, AlignPositiveYPixelTopMovesUp)
{
    // SEMANTICS' align_positive_y_px: intersection y range [4494000, 4499388.3]:
    // 5388.3 / 30 = 179.6 -> 180 rows, top 4494000 + 5400 = 4499400.
    const pgp_grid_input r1 = {{500000, 30, 0, 4499388.3, 0, -30}, 10, 200, nullptr};
    const pgp_grid_input r2 = {{500000, 30, 0, 4500000, 0, -30}, 10, 200, nullptr};
    pgp_grid g = ComputeOrDie({r1, r2}, "intersection", -1, 30, 30);
    EXPECT_EQ(g.x_size, 10);
    EXPECT_EQ(g.y_size, 180);
    EXPECT_EQ(g.gt[3], 4499400);
    EXPECT_EQ(g.gt[5], -30);
    pgp_grid_clear(&g);
}

TEST(GridCompute, SrsDefaultsToTheFirstInputWithoutReprojection)
{
    const std::string utm = Wkt(32631);
    pgp_grid_input a = kA, b = kB;
    a.srs_wkt = utm.c_str();
    b.srs_wkt = nullptr;
    pgp_grid g = ComputeOrDie({a, b}, "union", -1, 30, -30);
    ASSERT_NE(g.srs_wkt, nullptr);
    EXPECT_EQ(std::string(g.srs_wkt), utm);
    EXPECT_EQ(g.reproject, 0);
    pgp_grid_clear(&g);
    EXPECT_EQ(g.srs_wkt, nullptr);
}

TEST(GridCompute, Errors)
{
    const std::vector<pgp_grid_input> inputs = {kA, kB, kC};
    const pgp_grid_input far = {{900000, 30, 0, 4500000, 0, -30}, 10, 10, nullptr};
    EXPECT_NE(ComputeError({kA, far}, "intersection", -1, 30, -30)
                  .find("boundingBox: the bounding boxes do not intersect"),
              std::string::npos);
    EXPECT_NE(ComputeError(inputs, "union", 3, 30, -30).find("alignTo"), std::string::npos);
    EXPECT_NE(ComputeError(inputs, "union", -2, 30, -30).find("alignTo"), std::string::npos);
    EXPECT_NE(ComputeError(inputs, "union", -1, 0, -30).find("pixelSize"), std::string::npos);
    // Reprojecting needs every input's projection.
    const std::string err = ComputeError(inputs, "union", -1, 30, -30, "EPSG:32631");
    EXPECT_NE(err.find("input 0 has no projection"), std::string::npos) << err;
    CPLPushErrorHandler(CPLQuietErrorHandler); // PROJ reports the unknown code too
    EXPECT_NE(ComputeError(inputs, "union", -1, 30, -30, "EPSG:999999").find("srs"),
              std::string::npos);
    CPLPopErrorHandler();
    // 1e9 m at 1 mm is 1e12 pixels: refused, not allocated.
    const std::string big = ComputeError(inputs, "0,0,1e9,10", -1, 1e-3, -1e-3);
    EXPECT_NE(big.find("more than the limit"), std::string::npos) << big;
}

TEST(GridFromBbox, AbsurdSizesAreRefused)
{
    int nx = 0, ny = 0;
    double gt[6];
    char err[256] = "";
    const double px[2] = {1, 1};
    EXPECT_EQ(pgp_grid_from_bbox({0, 0, PGP_GRID_MAX_SIZE, 1}, px, &nx, &ny, gt, err,
                                 sizeof err),
              0)
        << err;
    EXPECT_EQ(nx, PGP_GRID_MAX_SIZE);
    EXPECT_EQ(pgp_grid_from_bbox({0, 0, PGP_GRID_MAX_SIZE + 0.5, 1}, px, &nx, &ny, gt, err,
                                 sizeof err),
              -1);
    EXPECT_EQ(pgp_grid_from_bbox({0, 0, 1, 1e300}, px, &nx, &ny, gt, err, sizeof err), -1);
    EXPECT_NE(std::string(err).find("along y"), std::string::npos) << err;
}

// 11 points per edge, transformed one by one with OSR here.
TEST(GridTransform, Utm31FromWgs84MatchesEdgeSamples)
{
    const std::string wgs84 = Wkt(4326), utm = Wkt(32631);
    const pgp_bbox in = {0, 40, 6, 60}; // lon 0..6, lat 40..60; UTM 31 CM = 3 E
    pgp_bbox out;
    char err[512] = "";
    ASSERT_EQ(pgp_grid_transform_bbox(in, wgs84.c_str(), utm.c_str(), &out, err, sizeof err),
              0)
        << err;

    OGRSpatialReferenceH s = OSRNewSpatialReference(nullptr), t = OSRNewSpatialReference(nullptr);
    OSRImportFromEPSG(s, 4326);
    OSRImportFromEPSG(t, 32631);
    OSRSetAxisMappingStrategy(s, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(t, OAMS_TRADITIONAL_GIS_ORDER);
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(s, t);
    auto at = [&](double lon, double lat) {
        double x = lon, y = lat;
        EXPECT_TRUE(OCTTransform(ct, 1, &x, &y, nullptr));
        return std::make_pair(x, y);
    };
    double minx = INFINITY, miny = INFINITY, maxx = -INFINITY, maxy = -INFINITY;
    for (int i = 0; i <= 10; i++) {
        const double lat = 40 + 2.0 * i, lon = 0.6 * i;
        minx = std::min(minx, at(0, lat).first);  // left edge
        maxx = std::max(maxx, at(6, lat).first);  // right edge
        miny = std::min(miny, at(lon, 40).second); // bottom edge
        maxy = std::max(maxy, at(lon, 60).second); // top edge
    }
    EXPECT_NEAR(out.minx, minx, 1e-6);
    EXPECT_NEAR(out.miny, miny, 1e-6);
    EXPECT_NEAR(out.maxx, maxx, 1e-6);
    EXPECT_NEAR(out.maxy, maxy, 1e-6);
    // Parallels curve north away from the central meridian (3 E): the bottom
    // edge's min y is its middle sample (3 E, 40 N), kilometres below both
    // bottom corners, which a corner-only transform would miss. The top edge's
    // max y is at its corners, the left edge's min x at its south end.
    EXPECT_NEAR(out.miny, at(3, 40).second, 1e-6);
    EXPECT_LT(out.miny, at(0, 40).second - 1000);
    EXPECT_LT(out.miny, at(6, 40).second - 1000);
    EXPECT_NEAR(out.maxy, at(0, 60).second, 1e-6);
    EXPECT_NEAR(out.minx, at(0, 40).first, 1e-6);
    OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(s);
    OSRDestroySpatialReference(t);
}

TEST(GridTransform, Errors)
{
    const std::string utm = Wkt(32631);
    pgp_bbox out;
    char err[512] = "";
    EXPECT_EQ(pgp_grid_transform_bbox({0, 0, 1, 1}, nullptr, utm.c_str(), &out, err, sizeof err),
              -1);
    EXPECT_NE(std::string(err).find("source SRS is missing"), std::string::npos) << err;
    EXPECT_EQ(pgp_grid_transform_bbox({0, 0, 1, 1}, "", utm.c_str(), &out, err, sizeof err), -1);
    EXPECT_EQ(
        pgp_grid_transform_bbox({0, 0, 1, 1}, "not an srs", utm.c_str(), &out, err, sizeof err),
        -1);
}

TEST(GridCompute, ReprojectsEveryBoxIntoTheTargetSrs)
{
    // A 1x1-degree WGS84 raster on UTM 31N: the grid covers the transformed box
    // and reports the target SRS.
    const std::string wgs84 = Wkt(4326), utm = Wkt(32631);
    const pgp_grid_input geo = {{2, 1, 0, 46, 0, -1}, 1, 1, wgs84.c_str()};
    pgp_bbox expect;
    char err[512] = "";
    ASSERT_EQ(pgp_grid_transform_bbox({2, 45, 3, 46}, wgs84.c_str(), utm.c_str(), &expect, err,
                                      sizeof err),
              0);
    pgp_grid g = ComputeOrDie({geo}, "union", -1, 1000, -1000, "EPSG:32631");
    EXPECT_EQ(g.reproject, 1);
    EXPECT_EQ(g.gt[0], expect.minx);
    EXPECT_EQ(g.gt[3], expect.miny + 1000.0 * g.y_size);
    EXPECT_EQ(g.x_size, (int)std::ceil((expect.maxx - expect.minx) / 1000));
    OGRSpatialReferenceH s = OSRNewSpatialReference(g.srs_wkt);
    OGRSpatialReferenceH t = OSRNewSpatialReference(utm.c_str());
    EXPECT_TRUE(OSRIsSame(s, t));
    OSRDestroySpatialReference(s);
    OSRDestroySpatialReference(t);
    pgp_grid_clear(&g);
}

// ---------------------------------------------------------------------------
// Files: rasters and vectors in a temporary folder, so gdalwarp can read them.

class GridFiles : public ::testing::Test {
  protected:
    static std::string dir_;

    static void SetUpTestSuite()
    {
        GDALAllRegister();
        char tmpl[] = "/tmp/pgp-grid-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

    static std::string Path(const std::string &name) { return dir_ + "/" + name; }

    // A one-band tiled GeoTIFF; nodata set when has_nodata.
    static std::string Raster(const std::string &name, int w, int h, GDALDataType type,
                              const double gt[6], int epsg, const std::vector<double> &values,
                              bool has_nodata, double nodata)
    {
        const std::string path = Path(name);
        const char *options[] = {"TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64", nullptr};
        GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path.c_str(), w, h, 1, type,
                                     const_cast<char **>(options));
        double g[6];
        std::memcpy(g, gt, sizeof g);
        GDALSetGeoTransform(ds, g);
        if (epsg != 0)
            GDALSetProjection(ds, Wkt(epsg).c_str());
        GDALRasterBandH band = GDALGetRasterBand(ds, 1);
        if (has_nodata)
            GDALSetRasterNoDataValue(band, nodata);
        std::vector<double> copy(values);
        EXPECT_EQ(GDALRasterIO(band, GF_Write, 0, 0, w, h, copy.data(), w, h, GDT_Float64, 0, 0),
                  CE_None);
        GDALClose(ds);
        return path;
    }

    // A smooth field plus noise, with nodata holes every 17th pixel if asked.
    static std::vector<double> Field(int w, int h, double scale, bool holes, double nodata)
    {
        std::vector<double> v((size_t)w * h);
        unsigned seed = 12345;
        for (int i = 0; i < w * h; i++) {
            seed = seed * 1664525u + 1013904223u;
            v[i] = scale * (0.5 + 0.3 * std::sin(i % w * 0.07) * std::cos(i / w * 0.05)) +
                   scale * 0.2 * ((seed >> 8) / double(1u << 24));
            if (holes && i % 17 == 5)
                v[i] = nodata;
        }
        return v;
    }

    static std::vector<double> Read(GDALDatasetH ds, int x, int y, int w, int h)
    {
        std::vector<double> out((size_t)w * h);
        EXPECT_EQ(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Read, x, y, w, h, out.data(), w, h,
                               GDT_Float64, 0, 0),
                  CE_None);
        return out;
    }

    // What gdalwarp writes for the grid: -te/-tr from the grid, -t_srs when
    // the grid reprojects (as pygeoprocessing's warp_raster calls it).
    static std::vector<double> Gdalwarp(const std::string &src, const pgp_grid &g,
                                        const char *alg, const char *t_srs, const char *extra)
    {
        const std::string dst = Path("gdalwarp.tif");
        char cmd[2048];
        std::snprintf(cmd, sizeof cmd,
                      "gdalwarp -q -overwrite -of GTiff -te %.17g %.17g %.17g %.17g -tr %.17g "
                      "%.17g -r %s %s%s %s %s %s >/dev/null 2>&1",
                      g.gt[0], g.gt[3] + g.y_size * g.gt[5], g.gt[0] + g.x_size * g.gt[1],
                      g.gt[3], g.gt[1], -g.gt[5], alg, t_srs ? "-t_srs " : "",
                      t_srs ? t_srs : "", extra, src.c_str(), dst.c_str());
        EXPECT_EQ(std::system(cmd), 0) << cmd;
        GDALDatasetH ds = GDALOpen(dst.c_str(), GA_ReadOnly);
        EXPECT_NE(ds, nullptr);
        if (ds == nullptr)
            return {};
        EXPECT_EQ(GDALGetRasterXSize(ds), g.x_size);
        EXPECT_EQ(GDALGetRasterYSize(ds), g.y_size);
        std::vector<double> out = Read(ds, 0, 0, g.x_size, g.y_size);
        GDALClose(ds);
        return out;
    }

    static GDALDatasetH OpenView(GDALDatasetH src, const pgp_grid &g, const char *alg)
    {
        GDALResampleAlg ra;
        char err[512] = "";
        EXPECT_EQ(pgp_grid_parse_resampling(alg, &ra, err, sizeof err), 0);
        // Odd blocks: strips narrower than GDAL's 512-wide chunks, block rows
        // across its 128-row ones.
        GDALDatasetH view = pgp_warp_open_view(src, 1, &g, ra, 96, 40, err, sizeof err);
        EXPECT_NE(view, nullptr) << err;
        return view;
    }

    // Bit-for-bit, NaN included; reports the first difference.
    static void ExpectSameBits(const std::vector<double> &a, const std::vector<double> &b,
                               const char *what)
    {
        ASSERT_EQ(a.size(), b.size()) << what;
        size_t n_diff = 0, first = 0;
        for (size_t i = 0; i < a.size(); i++)
            if (std::memcmp(&a[i], &b[i], sizeof(double)) != 0 && n_diff++ == 0)
                first = i;
        EXPECT_EQ(n_diff, 0u) << what << ": first at " << first << ": " << a[first]
                              << " vs " << b[first];
    }

    // Opens the source, then checks the view against gdalwarp read whole, in
    // odd windows (7x5 tiles and a 53x37 sweep, each through a fresh view so
    // blocks are warped in another order), and block by block.
    // pygeoprocessing's mask for a grid with a <Mask>: a Byte raster on the
    // grid, 0 filled, 1 burnt by GDALRasterizeLayers with default options.
    static std::vector<double> Rasterized(const pgp_grid &g)
    {
        GDALDatasetH mem = GDALCreate(GDALGetDriverByName("MEM"), "", g.x_size, g.y_size, 1,
                                      GDT_Byte, nullptr);
        double gt[6];
        std::memcpy(gt, g.gt, sizeof gt);
        GDALSetGeoTransform(mem, gt);
        GDALSetProjection(mem, g.srs_wkt);
        GDALDatasetH vector = GDALOpenEx(g.mask.path, GDAL_OF_VECTOR, nullptr, nullptr, nullptr);
        EXPECT_NE(vector, nullptr);
        OGRLayerH layer = g.mask.layer ? GDALDatasetGetLayerByName(vector, g.mask.layer)
                                       : GDALDatasetGetLayer(vector, 0);
        if (g.mask.where) {
            EXPECT_EQ(OGR_L_SetAttributeFilter(layer, g.mask.where), OGRERR_NONE);
        }
        int band = 1;
        double burn = 1;
        EXPECT_EQ(GDALRasterizeLayers(mem, 1, &band, 1, &layer, nullptr, nullptr, &burn, nullptr,
                                      nullptr, nullptr),
                  CE_None);
        std::vector<double> out = Read(mem, 0, 0, g.x_size, g.y_size);
        GDALClose(vector);
        GDALClose(mem);
        return out;
    }

    static std::vector<double> CheckView(const std::string &src_path, const pgp_grid &g,
                                         const char *alg, const char *t_srs,
                                         GDALDataType want_type, const char *extra = "")
    {
        std::vector<double> expect = Gdalwarp(src_path, g, alg, t_srs, extra);
        if (g.mask.path != nullptr) { // outside the mask: the view's fill
            GDALDatasetH ds = GDALOpen(src_path.c_str(), GA_ReadOnly);
            int has = 0;
            const double nodata = GDALGetRasterNoDataValue(GDALGetRasterBand(ds, 1), &has);
            GDALClose(ds);
            const std::vector<double> inside = Rasterized(g);
            size_t n_inside = 0;
            for (size_t i = 0; i < expect.size() && i < inside.size(); i++) {
                n_inside += inside[i] == 1;
                if (inside[i] != 1)
                    expect[i] = has ? nodata : 0;
            }
            EXPECT_GT(n_inside, 0u);
            EXPECT_LT(n_inside, expect.size());
        }
        GDALDatasetH src = GDALOpen(src_path.c_str(), GA_ReadOnly);
        GDALDatasetH view = OpenView(src, g, alg);
        if (view == nullptr) {
            GDALClose(src);
            return {};
        }
        EXPECT_EQ(GDALGetRasterDataType(GDALGetRasterBand(view, 1)), want_type);
        double gt[6];
        EXPECT_EQ(GDALGetGeoTransform(view, gt), CE_None);
        for (int i = 0; i < 6; i++)
            EXPECT_EQ(gt[i], g.gt[i]);
        const std::vector<double> whole = Read(view, 0, 0, g.x_size, g.y_size);
        ExpectSameBits(whole, expect, alg);
        GDALClose(view);

        view = OpenView(src, g, alg); // windows on a cold view
        const int x0 = 3, y0 = 2, w = 7, h = 5;
        const std::vector<double> win = Read(view, x0, y0, w, h);
        for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++)
                EXPECT_EQ(std::memcmp(&win[r * w + c], &whole[(y0 + r) * g.x_size + x0 + c], 8),
                          0);
        std::vector<double> swept(whole.size());
        for (int y = g.y_size - 1; y >= 0; y -= 37)
            for (int x = 0; x < g.x_size; x += 53) {
                const int ty = std::max(0, y - 36), tw = std::min(53, g.x_size - x),
                          th = y - ty + 1;
                const std::vector<double> t = Read(view, x, ty, tw, th);
                for (int r = 0; r < th; r++)
                    std::memcpy(&swept[(size_t)(ty + r) * g.x_size + x], &t[(size_t)r * tw],
                                tw * sizeof(double));
            }
        ExpectSameBits(swept, whole, "53x37 windows");
        GDALClose(view);

        view = OpenView(src, g, alg); // raw blocks
        GDALRasterBandH band = GDALGetRasterBand(view, 1);
        int bx, by;
        GDALGetBlockSize(band, &bx, &by);
        const int dsize = GDALGetDataTypeSizeBytes(want_type);
        std::vector<unsigned char> block((size_t)bx * by * dsize);
        std::vector<double> from_blocks(whole.size());
        for (int j = 0; j * by < g.y_size; j++)
            for (int i = 0; i * bx < g.x_size; i++) {
                EXPECT_EQ(GDALReadBlock(band, i, j, block.data()), CE_None);
                for (int r = 0; r < by && j * by + r < g.y_size; r++)
                    GDALCopyWords(&block[(size_t)r * bx * dsize], want_type, dsize,
                                  &from_blocks[(size_t)(j * by + r) * g.x_size + i * bx],
                                  GDT_Float64, 8, std::min(bx, g.x_size - i * bx));
            }
        ExpectSameBits(from_blocks, whole, "blocks");
        GDALClose(view);
        GDALClose(src);
        return whole;
    }
};
std::string GridFiles::dir_;

// A 400x300 Float32 source at 30 m (no nodata) and the same as Byte with nodata
// 255: both from (500000, 4500000) in UTM 31N.
const double kSrcGt[6] = {500000, 30, 0, 4500000, 0, -30};

pgp_grid Grid(int nx, int ny, double minx, double maxy, double px, double py, int epsg = 32631,
              int reproject = 0)
{
    pgp_grid g = {};
    g.x_size = nx;
    g.y_size = ny;
    g.gt[0] = minx;
    g.gt[1] = px;
    g.gt[2] = 0;
    g.gt[3] = maxy;
    g.gt[4] = 0;
    g.gt[5] = -py;
    g.srs_wkt = CPLStrdup(Wkt(epsg).c_str());
    g.reproject = reproject;
    return g;
}

TEST_F(GridFiles, NearByteWithNodataBeyondTheSource)
{
    std::vector<double> v = Field(400, 300, 200, true, 255);
    const std::string src = Raster("byte_nd.tif", 400, 300, GDT_Byte, kSrcGt, 32631, v, true, 255);
    // 20 m over a 30 m source, sticking out 600 m to the left and the top: many
    // pixel centres fall exactly on source pixel edges.
    pgp_grid g = Grid(620, 250, 499400, 4500600, 20, 20);
    const std::vector<double> whole = CheckView(src, g, "near", nullptr, GDT_Byte);
    GDALDatasetH ds = GDALOpen(src.c_str(), GA_ReadOnly);
    GDALDatasetH view = OpenView(ds, g, "near");
    int has = 0;
    EXPECT_EQ(GDALGetRasterNoDataValue(GDALGetRasterBand(view, 1), &has), 255);
    EXPECT_TRUE(has);
    const double corner = Read(ds, 0, 0, 1, 1)[0];
    GDALClose(view);
    GDALClose(ds);
    ASSERT_EQ(whole.size(), (size_t)620 * 250);
    EXPECT_EQ(whole[0], 255); // outside the source: nodata
    // Centre of (30, 30) = (499400 + 610, 4500600 - 610): source pixel (0, 0).
    EXPECT_EQ(whole[30 * 620 + 30], corner);
    pgp_grid_clear(&g);
}

TEST_F(GridFiles, NearFloat32WithoutNodataFillsZero)
{
    const std::vector<double> v = Field(400, 300, 1000, false, 0);
    const std::string src = Raster("f32.tif", 400, 300, GDT_Float32, kSrcGt, 32631, v, false, 0);
    pgp_grid g = Grid(560, 160, 499400.5, 4500600, 25, 45);
    const std::vector<double> whole = CheckView(src, g, "near", nullptr, GDT_Float32);
    GDALDatasetH ds = GDALOpen(src.c_str(), GA_ReadOnly);
    GDALDatasetH view = OpenView(ds, g, "near");
    int has = 1;
    GDALGetRasterNoDataValue(GDALGetRasterBand(view, 1), &has);
    EXPECT_FALSE(has);
    GDALClose(view);
    GDALClose(ds);
    ASSERT_FALSE(whole.empty());
    EXPECT_EQ(whole[0], 0); // left of and above the source: 0
    // Last column, x centre 513388 > source maxx 512000: 0 too.
    EXPECT_EQ(whole[159 * 560 + 559], 0);
    EXPECT_NE(whole[30 * 560 + 30], 0); // inside (the field has no zero)
    pgp_grid_clear(&g);
}

TEST_F(GridFiles, BilinearAndAverageInsideTheSourceMatchGdalwarp)
{
    const std::vector<double> v = Field(400, 300, 1000, true, -9999);
    const std::string src =
        Raster("f32_nd.tif", 400, 300, GDT_Float32, kSrcGt, 32631, v, true, -9999);
    // Inside the source, downsampling (45 m, 37.5 m) and upsampling (20 m).
    struct {
        const char *alg;
        pgp_grid g;
    } cases[] = {
        {"bilinear", Grid(260, 190, 500100, 4499900, 45, 45)},
        {"bilinear", Grid(530, 150, 500700, 4499000, 20, 20)},
        {"average", Grid(310, 220, 500100, 4499900, 37.5, 37.5)},
        {"cubic", Grid(260, 190, 500100, 4499900, 45, 45)},
    };
    for (auto &c : cases) {
        SCOPED_TRACE(c.alg);
        CheckView(src, c.g, c.alg, nullptr, GDT_Float32);
        pgp_grid_clear(&c.g);
    }
}

TEST_F(GridFiles, WholePixelShiftIsCopiedAsGdalwarpDoes)
{
    // Same pixel size, origin on a source pixel corner: GDAL's warper copies
    // with nearest whatever -r says (its translation-on-pixel-boundaries
    // optimisation). Infinities show a real bilinear: 0 * inf is NaN in the
    // neighbours' weights.
    std::vector<double> v = Field(400, 300, 1000, false, 0);
    for (size_t i = 7; i < v.size(); i += 97)
        v[i] = (i / 97) % 2 ? INFINITY : -INFINITY;
    const std::string src = Raster("inf.tif", 400, 300, GDT_Float32, kSrcGt, 32631, v, false, 0);
    pgp_grid g = Grid(300, 200, 500000 + 30 * 17, 4500000 - 30 * 9, 30, 30);
    for (const char *alg : {"bilinear", "cubic", "average"}) {
        SCOPED_TRACE(alg);
        CheckView(src, g, alg, nullptr, GDT_Float32);
    }
    pgp_grid_clear(&g);
}

TEST_F(GridFiles, BeyondTheSourceMatchesOneChunkGdalwarp)
{
    // Union-like: the grid sticks out of the source on every side, downsampling
    // 30 m to 45 m. A per-block scale would differ from a whole-image one; the
    // view fixes gdalwarp's one-chunk scale. Plain gdalwarp splits this
    // destination itself (its source fill ratio is below 0.5), each chunk with
    // its own scale, so the reference is gdalwarp kept to one chunk.
    const std::vector<double> v = Field(400, 300, 1000, true, -9999);
    const std::string src =
        Raster("f32_nd2.tif", 400, 300, GDT_Float32, kSrcGt, 32631, v, true, -9999);
    pgp_grid g = Grid(540, 230, 499000, 4501000, 45, 45);
    for (const char *alg : {"bilinear", "average"}) {
        SCOPED_TRACE(alg);
        CheckView(src, g, alg, nullptr, GDT_Float32, "-wo SRC_FILL_RATIO_HEURISTICS=NO");
    }
    pgp_grid_clear(&g);
}

TEST_F(GridFiles, ReprojectedNearMatchesGdalwarp)
{
    // A WGS84 source (0.001 degree) onto UTM 31N at 60 m.
    const double gt[6] = {2.5, 0.001, 0, 45.6, 0, -0.001};
    const std::vector<double> v = Field(600, 400, 100, true, -1);
    const std::string src = Raster("geo.tif", 600, 400, GDT_Float32, gt, 4326, v, true, -1);
    const std::string wgs84 = Wkt(4326);
    pgp_grid_input in = {{2.5, 0.001, 0, 45.6, 0, -0.001}, 600, 400, wgs84.c_str()};
    pgp_bbox_spec spec = {PGP_BBOX_UNION, {0, 0, 0, 0}};
    const double px[2] = {60, -60};
    pgp_grid g;
    char err[512] = "";
    ASSERT_EQ(pgp_grid_compute(&in, 1, &spec, px, -1, "EPSG:32631", nullptr, 0, nullptr, &g,
                               err, sizeof err),
              0)
        << err;
    ASSERT_EQ(g.reproject, 1);
    CheckView(src, g, "near", "EPSG:32631", GDT_Float32);
    pgp_grid_clear(&g);
}

// <Mask>: a GeoJSON layer in the grid's SRS, its second feature filtered out.
// Pixel centres lie on the x = 503010 edge (column 180) and on the corner
// (500010, 4496010).
const char kMaskJson[] = R"({"type": "FeatureCollection",
 "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32631"}},
 "features": [
  {"type": "Feature", "properties": {"k": 1}, "geometry": {"type": "Polygon", "coordinates": [
    [[500010, 4496010], [508000, 4496500], [507000, 4500000], [503010, 4499000],
     [503010, 4497000], [500010, 4496010]],
    [[504000, 4497500], [505000, 4497500], [505000, 4498500], [504000, 4497500]]]}},
  {"type": "Feature", "properties": {"k": 2}, "geometry": {"type": "Polygon", "coordinates": [
    [[499000, 4495000], [512000, 4495000], [512000, 4501000], [499000, 4495000]]]}}]})";

TEST_F(GridFiles, MaskedViewEqualsGdalwarpThenRasterize)
{
    const std::string path = Path("mask.geojson");
    FILE *f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(kMaskJson, f);
    std::fclose(f);
    const std::string nd = Raster("mask_nd.tif", 400, 300, GDT_Float32, kSrcGt, 32631,
                                  Field(400, 300, 1000, true, -9999), true, -9999);
    const std::string plain = Raster("mask_plain.tif", 400, 300, GDT_Byte, kSrcGt, 32631,
                                     Field(400, 300, 200, false, 0), false, 0);
    pgp_grid g = Grid(620, 250, 499400, 4500600, 20, 20);
    g.mask.path = CPLStrdup(path.c_str());
    g.mask.where = CPLStrdup("k = 1");
    CheckView(nd, g, "bilinear", nullptr, GDT_Float32); // outside: nodata
    CheckView(plain, g, "near", nullptr, GDT_Byte);     // outside: 0
    // An overview's grid: the same extent in 40 m pixels, sharing the strings.
    pgp_grid coarse = g;
    coarse.x_size = 310;
    coarse.y_size = 125;
    coarse.gt[1] = 40;
    coarse.gt[5] = -40;
    CheckView(nd, coarse, "average", nullptr, GDT_Float32);

    // The view opens the vector itself: a vector gone since is its error.
    GDALDatasetH ds = GDALOpen(nd.c_str(), GA_ReadOnly);
    char err[512] = "";
    CPLFree(g.mask.path);
    g.mask.path = CPLStrdup(Path("gone.geojson").c_str());
    CPLPushErrorHandler(CPLQuietErrorHandler);
    EXPECT_EQ(pgp_warp_open_view(ds, 1, &g, GRA_Bilinear, 64, 64, err, sizeof err), nullptr);
    CPLPopErrorHandler();
    EXPECT_NE(std::string(err).find("<Mask> vector"), std::string::npos) << err;
    GDALClose(ds);
    pgp_grid_clear(&g);
}

TEST_F(GridFiles, MaskBoxAndErrors)
{
    const std::string path = Path("mask2.geojson");
    FILE *f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(kMaskJson, f);
    std::fclose(f);
    pgp_grid_mask mask = {const_cast<char *>(path.c_str()), nullptr,
                          const_cast<char *>("k = 1")};
    pgp_bbox box;
    char *srs = nullptr, err[512] = "";
    ASSERT_EQ(pgp_grid_mask_bbox(&mask, &box, &srs, err, sizeof err), 0) << err;
    EXPECT_EQ(box.minx, 500010); // the where filter leaves the big square out
    EXPECT_EQ(box.miny, 4496010);
    EXPECT_EQ(box.maxx, 508000);
    EXPECT_EQ(box.maxy, 4500000);
    ASSERT_NE(srs, nullptr);
    CPLFree(srs);
    // The box must meet the target box (here a raster far away).
    pgp_grid_vector mv = {box, nullptr};
    pgp_grid_input far = {{0, 30, 0, 3000, 0, -30}, 100, 100, nullptr};
    EXPECT_NE(ComputeError({far}, "intersection", -1, 30, -30, nullptr, {}, &mv)
                  .find("does not intersect"),
              std::string::npos);

    struct {
        const char *layer, *where, *message;
    } bad[] = {
        {"nothing", nullptr, "no layer 'nothing'"},
        {nullptr, "k = = 1", "where 'k = = 1'"},
        {nullptr, "colour = 1", "colour"},
        {nullptr, "k = 3", "no feature"},
    };
    CPLPushErrorHandler(CPLQuietErrorHandler);
    for (const auto &b : bad) {
        pgp_grid_mask m = {const_cast<char *>(path.c_str()), const_cast<char *>(b.layer),
                           const_cast<char *>(b.where)};
        EXPECT_EQ(pgp_grid_mask_bbox(&m, &box, &srs, err, sizeof err), -1) << b.message;
        EXPECT_NE(std::string(err).find(b.message), std::string::npos) << err;
    }
    pgp_grid_mask missing = {const_cast<char *>("/nonexistent/m.gpkg"), nullptr, nullptr};
    EXPECT_EQ(pgp_grid_mask_bbox(&missing, &box, &srs, err, sizeof err), -1);
    EXPECT_NE(std::string(err).find("cannot open"), std::string::npos) << err;
    CPLPopErrorHandler();
}

TEST_F(GridFiles, MissingProjectionWhenReprojecting)
{
    const std::string src =
        Raster("nosrs.tif", 10, 10, GDT_Byte, kSrcGt, 0, std::vector<double>(100, 1), false, 0);
    pgp_grid g = Grid(10, 10, 500000, 4500000, 30, 30, 32631, 1);
    GDALDatasetH ds = GDALOpen(src.c_str(), GA_ReadOnly);
    char err[512] = "";
    EXPECT_EQ(pgp_warp_open_view(ds, 1, &g, GRA_NearestNeighbour, 64, 64, err, sizeof err),
              nullptr);
    EXPECT_NE(std::string(err).find("has no projection"), std::string::npos) << err;
    EXPECT_EQ(pgp_warp_open_view(ds, 2, &g, GRA_NearestNeighbour, 64, 64, err, sizeof err),
              nullptr);
    EXPECT_NE(std::string(err).find("no band 2"), std::string::npos) << err;
    GDALClose(ds);
    pgp_grid_clear(&g);
}

TEST_F(GridFiles, ExplicitBoxOutsideTheSourceIsOnePixelOfNodata)
{
    const std::string src = Raster("small.tif", 10, 10, GDT_Int16, kSrcGt, 32631,
                                   std::vector<double>(100, 7), true, -5);
    pgp_grid_input in = {{500000, 30, 0, 4500000, 0, -30}, 10, 10, nullptr};
    pgp_grid g = ComputeOrDie({in}, "0,0,10,10", -1, 30, -30);
    ASSERT_EQ(g.x_size, 1);
    ASSERT_EQ(g.y_size, 1);
    GDALDatasetH ds = GDALOpen(src.c_str(), GA_ReadOnly);
    GDALDatasetH view = OpenView(ds, g, "bilinear");
    EXPECT_EQ(GDALGetRasterDataType(GDALGetRasterBand(view, 1)), GDT_Int16);
    EXPECT_EQ(Read(view, 0, 0, 1, 1)[0], -5);
    GDALClose(view);
    GDALClose(ds);
    pgp_grid_clear(&g);
}

// GDAL's warped-VRT rule: the view takes one reference and releases it on close.
TEST_F(GridFiles, ViewHoldsOneReferenceOnTheSource)
{
    const std::string src = Raster("ref.tif", 20, 20, GDT_Byte, kSrcGt, 32631,
                                   std::vector<double>(400, 9), false, 0);
    pgp_grid g = Grid(10, 10, 500000, 4500000, 30, 30);
    GDALDatasetH ds = GDALOpen(src.c_str(), GA_ReadOnly);
    EXPECT_EQ(GDALReferenceDataset(ds), 2); // probe: count + 1
    GDALDereferenceDataset(ds);
    GDALDatasetH view = OpenView(ds, g, "near");
    EXPECT_EQ(GDALReferenceDataset(ds), 3);
    GDALDereferenceDataset(ds);
    GDALClose(view);
    EXPECT_EQ(GDALReferenceDataset(ds), 2);
    GDALDereferenceDataset(ds);
    GDALClose(ds);

    // Handing over: the view's reference is then the last one and closing the
    // view closes the source (LeakSanitizer would report it otherwise).
    ds = GDALOpen(src.c_str(), GA_ReadOnly);
    view = OpenView(ds, g, "near");
    GDALReleaseDataset(ds);
    EXPECT_EQ(Read(view, 0, 0, 1, 1)[0], 9);
    GDALClose(view);
    pgp_grid_clear(&g);
}

TEST_F(GridFiles, SourceOverviewsAreNotUsed)
{
    const std::string src = Raster("ovr.tif", 64, 64, GDT_Float32, kSrcGt, 32631,
                                   Field(64, 64, 100, false, 0), false, 0);
    GDALDatasetH ds = GDALOpen(src.c_str(), GA_Update);
    int level = 2;
    ASSERT_EQ(GDALBuildOverviews(ds, "AVERAGE", 1, &level, 0, nullptr, nullptr, nullptr),
              CE_None);
    pgp_grid g = Grid(64, 64, 500000, 4500000, 30, 30);
    GDALDatasetH view = OpenView(ds, g, "near");
    CPLErrorReset();
    EXPECT_EQ(GDALGetOverviewCount(GDALGetRasterBand(view, 1)), 0);
    // A half-resolution read is the full-resolution warp subsampled at the
    // output pixel centres: (7, 5) takes ((7 + 0.5) * 2, (5 + 0.5) * 2).
    const std::vector<double> full = Read(view, 0, 0, 64, 64);
    std::vector<double> half(32 * 32);
    ASSERT_EQ(GDALRasterIO(GDALGetRasterBand(view, 1), GF_Read, 0, 0, 64, 64, half.data(), 32,
                           32, GDT_Float64, 0, 0),
              CE_None);
    EXPECT_EQ(CPLGetLastErrorType(), CE_None);
    EXPECT_EQ(half[5 * 32 + 7], full[11 * 64 + 15]);
    GDALClose(view);
    GDALClose(ds);
    pgp_grid_clear(&g);
}

// ---------------------------------------------------------------------------
// Vectors: layer extents and SRS, and their part in union/intersection.

TEST_F(GridFiles, VectorBboxOfLayers)
{
    const std::string path = Path("v.gpkg");
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GPKG"), path.c_str(), 0, 0, 0,
                                 GDT_Unknown, nullptr);
    ASSERT_NE(ds, nullptr);
    OGRSpatialReferenceH srs = OSRNewSpatialReference(nullptr);
    OSRImportFromEPSG(srs, 32631);
    auto add_layer = [&](const char *name, std::vector<std::pair<double, double>> pts) {
        OGRLayerH l = GDALDatasetCreateLayer(ds, name, srs, wkbPoint, nullptr);
        for (auto p : pts) {
            OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(l));
            OGRGeometryH pt = OGR_G_CreateGeometry(wkbPoint);
            OGR_G_SetPoint_2D(pt, 0, p.first, p.second);
            OGR_F_SetGeometryDirectly(f, pt);
            EXPECT_EQ(OGR_L_CreateFeature(l, f), OGRERR_NONE);
            OGR_F_Destroy(f);
        }
    };
    add_layer("a", {{500100, 4498100}, {500130, 4498130}});
    add_layer("b", {{500500, 4498050}, {500600, 4498120}});
    add_layer("empty", {});
    OSRDestroySpatialReference(srs);
    GDALClose(ds);

    pgp_bbox bb;
    char *wkt = nullptr;
    char err[512] = "";
    ASSERT_EQ(pgp_grid_vector_bbox(path.c_str(), nullptr, &bb, &wkt, err, sizeof err), 0) << err;
    EXPECT_EQ(bb.minx, 500100);
    EXPECT_EQ(bb.miny, 4498050);
    EXPECT_EQ(bb.maxx, 500600);
    EXPECT_EQ(bb.maxy, 4498130);
    ASSERT_NE(wkt, nullptr);
    EXPECT_NE(std::string(wkt).find("31N"), std::string::npos);
    CPLFree(wkt);
    ASSERT_EQ(pgp_grid_vector_bbox(path.c_str(), "a", &bb, &wkt, err, sizeof err), 0) << err;
    EXPECT_EQ(bb.minx, 500100);
    EXPECT_EQ(bb.maxy, 4498130);
    // One vector pixel in an intersection: the grid is 1x1 at 30 m
    // ([500100, 4498100, 500130, 4498130] is exactly one pixel).
    pgp_grid_input a = kA;
    a.srs_wkt = wkt;
    pgp_grid_vector vec = {bb, wkt};
    pgp_bbox_spec spec = {PGP_BBOX_INTERSECTION, {0, 0, 0, 0}};
    const double px[2] = {30, -30};
    pgp_grid g;
    ASSERT_EQ(pgp_grid_compute(&a, 1, &spec, px, -1, nullptr, &vec, 1, nullptr, &g, err,
                               sizeof err),
              0)
        << err;
    EXPECT_EQ(g.x_size, 1);
    EXPECT_EQ(g.y_size, 1);
    EXPECT_EQ(g.gt[0], 500100);
    EXPECT_EQ(g.gt[3], 4498130);
    pgp_grid_clear(&g);
    // A vector without projection cannot be reprojected.
    pgp_grid_vector bare = {bb, nullptr};
    const std::string e = ComputeError({a}, "union", -1, 30, -30, "EPSG:32631", {bare});
    EXPECT_NE(e.find("vector 0 has no projection"), std::string::npos) << e;
    CPLFree(wkt);

    EXPECT_EQ(pgp_grid_vector_bbox(path.c_str(), "empty", &bb, &wkt, err, sizeof err), -1);
    EXPECT_NE(std::string(err).find("no feature"), std::string::npos) << err;
    EXPECT_EQ(pgp_grid_vector_bbox(path.c_str(), "zzz", &bb, &wkt, err, sizeof err), -1);
    EXPECT_NE(std::string(err).find("no layer 'zzz'"), std::string::npos) << err;
    EXPECT_EQ(pgp_grid_vector_bbox(Path("none.gpkg").c_str(), nullptr, &bb, &wkt, err,
                                   sizeof err),
              -1);
    EXPECT_NE(std::string(err).find("cannot open"), std::string::npos) << err;
}

} // namespace
