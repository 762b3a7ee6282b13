#!/usr/bin/python3
"""Align benchmark (issue: Align node). Same script run, ratios.

Three SIZE x SIZE 30 m Float32 rasters and one 45 m Byte land cover on a
shifted grid are aligned (intersection, 30 m, alignTo the first) and a Calc is
evaluated over them: pgp renders the .pgp.vrt with gdal_translate (serial and
threading:N, no intermediate files) against the pygeoprocessing-style
pipeline: gdalwarp each input to a file (-multi -wo NUM_THREADS=ALL_CPUS) onto
the same grid, then gdal_calc.py.

Usage: bench/bench_align.py [--size 8192] [--threads 2]
"""
import os
import time

from common import bench_parser, make_inputs, plugin_env, timed  # first: it sets GDAL_DRIVER_PATH

import numpy as np
from osgeo import gdal


EXPRESSION = "where(L == 3, A + B, C * 0.5)"
CALC_EXPRESSION = "numpy.where(L == 3, A + B, C * 0.5)"


def make_landcover(work, size):
    path = os.path.join(work, "lulc45.tif")
    if os.path.exists(path):
        return path
    cells = size * 30 // 45 + 2
    ds = gdal.GetDriverByName("GTiff").Create(path, cells, cells, 1, gdal.GDT_Byte,
                                              ["TILED=YES", "BIGTIFF=YES"])
    ds.SetGeoTransform((-17, 45, 0, size * 30 + 13, 0, -45))
    ds.GetRasterBand(1).SetNoDataValue(255)
    rng = np.random.default_rng(5)
    for y in range(0, cells, 1024):
        rows = min(1024, cells - y)
        ds.GetRasterBand(1).WriteArray(rng.integers(1, 6, (rows, cells)).astype(np.uint8), 0, y)
    ds = None
    return path


def main():
    parser = bench_parser(repeat=False)
    options = parser.parse_args()
    os.makedirs(options.work, exist_ok=True)
    rasters = make_inputs(options.work, options.size)
    lulc = make_landcover(options.work, options.size)
    env = plugin_env()
    graph = os.path.join(options.work, "align.pgp.vrt")
    with open(graph, "w") as f:
        f.write('<PGPDataset><Source name="A" file="a.tif"/><Source name="B" file="b.tif"/>'
                '<Source name="C" file="c.tif"/><Source name="L" file="lulc45.tif"/>'
                '<Align boundingBox="intersection" pixelSize="30,-30" alignTo="A">'
                '<Input ref="A" resampling="bilinear"/><Input ref="B" resampling="bilinear"/>'
                '<Input ref="C" resampling="bilinear"/><Input ref="L" resampling="near"/>'
                '</Align><Calc name="out" dataType="Float32" noData="-1">'
                f'<Expression>{EXPRESSION}</Expression></Calc><Band ref="out"/></PGPDataset>')
    os.environ.update(env)
    ds = gdal.Open(graph)
    gt, nx, ny = ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize
    ds = None
    out = os.path.join(options.work, "align_out.tif")
    tiff = ["-co", "TILED=YES", "-co", "BIGTIFF=YES"]
    results = {}
    for executor in ["serial", f"threading:{options.threads}"]:
        results[executor] = timed(["gdal_translate", "-q", *tiff, graph, out],
                                  dict(env, PGP_EXECUTOR=executor), 1)
    start = time.perf_counter()
    warped = []
    for path, method in zip(rasters + [lulc], ["bilinear"] * 3 + ["near"]):
        target = path.replace(".tif", "_warped.tif")
        timed(["gdalwarp", "-q", "-overwrite", "-multi", "-wo", "NUM_THREADS=ALL_CPUS", *tiff,
               "-te", repr(gt[0]), repr(gt[3] + ny * gt[5]), repr(gt[0] + nx * gt[1]),
               repr(gt[3]), "-tr", "30", "30", "-r", method, path, target], env, 1)
        warped.append(target)
    timed(["/usr/bin/python3", "/usr/bin/gdal_calc.py", "--quiet", "--overwrite",
           "-A", warped[0], "-B", warped[1], "-C", warped[2], "-L", warped[3],
           "--type", "Float32", "--NoDataValue=-1", f"--calc={CALC_EXPRESSION}",
           "--outfile", out, *[o.replace("-co", "--co") for o in tiff]], env, 1)
    pipeline = time.perf_counter() - start
    print(f"{nx}x{ny} aligned stack (3 x 30 m Float32 bilinear + 45 m Byte near)")
    print(f"gdalwarp x4 + gdal_calc.py  {pipeline:7.2f} s (plus 4 intermediate files)")
    for executor, seconds in results.items():
        print(f"pgp {executor:<23} {seconds:7.2f} s  {pipeline / seconds:4.2f}x")


if __name__ == "__main__":
    main()
