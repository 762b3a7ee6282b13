#!/usr/bin/python3
"""pgp from Python: pygeoprocessing's calls with executor=, on the demo's inputs.

    PYTHONPATH=python /usr/bin/python3 samples/python_example.py [DATA_DIR [OUT_DIR]]

DATA_DIR holds dem.tif, lulc.tif and precip.tif (samples/make_inputs.py writes them;
this script runs it when they are missing). Outputs go to OUT_DIR (default out/).
A script that used pygeoprocessing changes its import and adds executor=.
"""
import os
import subprocess
import sys

import numpy

import pgp  # instead of: import pygeoprocessing
from osgeo import gdal

HERE = os.path.dirname(os.path.abspath(__file__))


def runoff(lulc, precip, dem, lulc_nodata):
    """A local_op, defined at module level so that process pools can pickle it."""
    result = numpy.full(lulc.shape, -1.0, dtype=numpy.float32)
    valid = (lulc != lulc_nodata) & (precip != -1) & (dem != -9999)
    factor = numpy.where((lulc == 3) | (lulc == 4), 0.8, 0.3)
    result[valid] = (factor * precip * (1 + numpy.maximum(dem, 0) / 1000))[valid]
    return result


def total(sum_so_far, block):
    return sum_so_far + float(block.sum(dtype=numpy.float64))


def add(a, b):
    return a + b


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "data")
    out = sys.argv[2] if len(sys.argv) > 2 else "out"
    if not os.path.exists(os.path.join(data, "dem.tif")):
        subprocess.run([sys.executable, os.path.join(HERE, "make_inputs.py"), data],
                       check=True)
    os.makedirs(out, exist_ok=True)
    dem, lulc, precip = (os.path.join(data, f"{name}.tif")
                         for name in ("dem", "lulc", "precip"))

    # 1. A Python local_op on two worker processes (spawned: GDAL is not fork-safe).
    pgp.raster_calculator(
        [(lulc, 1), (precip, 1), (dem, 1), (255, 'raw')], runoff,
        os.path.join(out, "runoff.tif"), gdal.GDT_Float32, -1.0,
        executor="multiprocessing:2")

    # 2. The same formula as an expression: compiled for the plugin, no Python per pixel.
    pgp.evaluate_raster_calculator_expression(
        "(((lulc == 3) | (lulc == 4)) * 0.5 + 0.3) * precip * (1 + (dem > 0) * dem / 1000)",
        {"lulc": (lulc, 1), "precip": (precip, 1), "dem": (dem, 1)}, -1.0,
        os.path.join(out, "runoff_expression.tif"), executor="threading:2")

    # 3. A 9x9 mean filter of the runoff, computed by the plugin's convolution.
    kernel_path = os.path.join(out, "mean9.tif")
    kernel = gdal.GetDriverByName("GTiff").Create(kernel_path, 9, 9, 1, gdal.GDT_Float32)
    kernel.GetRasterBand(1).WriteArray(numpy.ones((9, 9)))
    kernel = None
    pgp.convolve_2d((os.path.join(out, "runoff.tif"), 1), (kernel_path, 1),
                    os.path.join(out, "runoff_smooth.tif"), ignore_nodata_and_edges=True,
                    normalize_kernel=True, target_datatype=gdal.GDT_Float32,
                    target_nodata=-1.0, executor="threading:2")

    # 4. A reduction: partials per window on a thread pool, joined in window order.
    runoff_sum = pgp.raster_reduce(total, (os.path.join(out, "runoff.tif"), 1), 0.0,
                                   executor="threading:2", combine=add)

    # 5. A graph built in Python and rendered, with a text progress bar.
    graph = pgp.Graph(block_size=(128, 128))
    graph.source("dem", dem)
    graph.source("precip", precip)
    graph.calc("wet_highlands", "where(dem > 900, precip, 0)", data_type="Int16", nodata=-1)
    graph.band("wet_highlands")
    graph.write(os.path.join(out, "wet_highlands.pgp.vrt"))
    pgp.render(graph, os.path.join(out, "wet_highlands.tif"), executor="threading:2",
               progress=True)

    info = pgp.get_raster_info(os.path.join(out, "runoff.tif"))
    dataset = gdal.Open(os.path.join(out, "runoff.tif"))
    mean = dataset.GetRasterBand(1).GetMetadataItem("STATISTICS_MEAN")
    print(f"runoff.tif {info['raster_size']}, mean {float(mean):.2f}, "
          f"sum {runoff_sum:.0f}; wrote runoff_expression.tif, runoff_smooth.tif, "
          f"wet_highlands.tif in {out}")


if __name__ == "__main__":
    main()
