// test_warp.cpp — warped views of sources on an <Align> grid (core/warp.c),
// compared with what the gdalwarp command line writes for the same grid.
#include "grid_files.h"

namespace {

// Its own suite: the grid tests' fixture is another class in that file.
using GridWarp = GridFiles;

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

TEST_F(GridWarp, NearByteWithNodataBeyondTheSource)
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

TEST_F(GridWarp, NearFloat32WithoutNodataFillsZero)
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

TEST_F(GridWarp, BilinearAndAverageInsideTheSourceMatchGdalwarp)
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

TEST_F(GridWarp, WholePixelShiftIsCopiedAsGdalwarpDoes)
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

TEST_F(GridWarp, BeyondTheSourceMatchesOneChunkGdalwarp)
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

TEST_F(GridWarp, ReprojectedNearMatchesGdalwarp)
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

TEST_F(GridWarp, MaskedViewEqualsGdalwarpThenRasterize)
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

TEST_F(GridWarp, MaskBoxAndErrors)
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

TEST_F(GridWarp, MissingProjectionWhenReprojecting)
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

TEST_F(GridWarp, ExplicitBoxOutsideTheSourceIsOnePixelOfNodata)
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
TEST_F(GridWarp, ViewHoldsOneReferenceOnTheSource)
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

TEST_F(GridWarp, SourceOverviewsAreNotUsed)
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

} // namespace
