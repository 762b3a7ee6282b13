// test_grid.cpp — <Align> geometry (docs/semantics.md#align); warped views
// are test_warp.cpp's.
//
// Grid expectations are derived by hand in the comments.
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
#include "grid_files.h"

namespace {

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
