// grid_files.h — rasters and vectors in a temporary folder for the grid and
// warp tests, so that gdalwarp can read them.
#pragma once

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

// The grid of inputs, bbox, alignTo and pixel size (errors fail the test).
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

// The error computing that grid gives (success fails the test).
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

// ---------------------------------------------------------------------------
// Files: rasters and vectors in a temporary folder, so gdalwarp can read them.

class GridFiles : public ::testing::Test {
  protected:
    inline static std::string dir_;

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

} // namespace
