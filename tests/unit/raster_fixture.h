// raster_fixture.h — small in-memory GeoTIFFs for the graph and render tests.
#pragma once

#include <string>
#include <vector>

#include "gdal.h"

namespace pgp_test {

// Writes a one-band tiled GeoTIFF at path filled with values (row-major) and
// returns path. nodata is set when has_nodata.
inline std::string WriteRaster(const std::string &path, int w, int h, GDALDataType type,
                               const std::vector<double> &values, bool has_nodata = false,
                               double nodata = 0, double origin_x = 1000, double pixel = 30,
                               int block = 16)
{
    GDALAllRegister();
    const std::string bx = "BLOCKXSIZE=" + std::to_string(block);
    const std::string by = "BLOCKYSIZE=" + std::to_string(block);
    const char *options[] = {"TILED=YES", bx.c_str(), by.c_str(), nullptr};
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path.c_str(), w, h, 1, type,
                                 const_cast<char **>(options));
    double gt[6] = {origin_x, pixel, 0, 5000, 0, -pixel};
    GDALSetGeoTransform(ds, gt);
    GDALRasterBandH band = GDALGetRasterBand(ds, 1);
    if (has_nodata)
        GDALSetRasterNoDataValue(band, nodata);
    std::vector<double> copy(values);
    if (GDALRasterIO(band, GF_Write, 0, 0, w, h, copy.data(), w, h, GDT_Float64, 0, 0) !=
        CE_None)
        return "";
    GDALClose(ds);
    return path;
}

// A deterministic pseudo-random field (LCG), so tests need no seed handling.
inline std::vector<double> Field(int n, double scale, unsigned seed)
{
    std::vector<double> v(n);
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = scale * ((seed >> 8) / double(1u << 24)) - scale / 4;
    }
    return v;
}

} // namespace pgp_test
