#!/usr/bin/python3
"""Writes the demo's input rasters: a synthetic DEM, land cover and precipitation.

Small (a few hundred pixels a side) tiled GeoTIFFs on one 30 m UTM grid, with
nodata in each so the demo exercises nodata propagation.
Usage: make_inputs.py OUTPUT_DIR [SIZE_X SIZE_Y]
"""
import os
import sys

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()


def write(path, array, gdal_type, nodata, origin=(444720.0, 3751320.0), pixel=30.0):
    rows, cols = array.shape
    ds = gdal.GetDriverByName("GTiff").Create(
        path, cols, rows, 1, gdal_type,
        ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=LZW"])
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    ds.SetProjection(srs.ExportToWkt())
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(nodata)
    band.WriteArray(array)
    ds = None


def main():
    out = sys.argv[1]
    cols = int(sys.argv[2]) if len(sys.argv) > 2 else 480
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 360
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(42)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    dem = (800 + 300 * np.sin(x / 37.0) * np.cos(y / 53.0) + 0.8 * x
           + rng.normal(0, 5, (rows, cols))).astype(np.float32)
    dem[:12, :20] = -9999  # a nodata corner
    lulc = (1 + (x // 60 + y // 45) % 5).astype(np.uint8)
    lulc[rows // 2, :] = 255
    precip = (900 + 4 * y - 2 * x + rng.normal(0, 20, (rows, cols))).astype(np.int16)
    precip[rng.random((rows, cols)) < 0.01] = -1
    write(os.path.join(out, "dem.tif"), dem, gdal.GDT_Float32, -9999)
    write(os.path.join(out, "lulc.tif"), lulc, gdal.GDT_Byte, 255)
    write(os.path.join(out, "precip.tif"), precip, gdal.GDT_Int16, -1)
    print(f"wrote dem.tif, lulc.tif, precip.tif ({cols}x{rows}) to {out}")


if __name__ == "__main__":
    main()
