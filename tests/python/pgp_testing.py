"""Helpers of the pgp Python package tests: paths, rasters, executor forms.

The package is imported from python/ (no GDAL_DRIVER_PATH needed: it finds
../build/gdal_PGP.so itself). PYTHONPATH is set so that spawned processes and Dask
workers import pgp and the module-level operations of ops.py the same way. (Not
named conftest: tests/gdal imports its own conftest by that name.)
"""
import concurrent.futures
import multiprocessing
import os
import sys

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PYTHON = os.path.join(REPO, "python")
for folder in (PYTHON, HERE):
    if folder not in sys.path:
        sys.path.insert(0, folder)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [PYTHON, HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

import pgp  # noqa: E402
from osgeo import gdal, osr  # noqa: E402

EXECUTORS = ["none", "threading:2", "multiprocessing:2", "thread_pool", "process_pool",
             "dask"]
SMALL_BLOCKS = ("GTIFF", ("TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64"))


def write_raster(path, array, nodata=None, block=64, origin=(444720.0, 3751320.0),
                 pixel=30.0, gdal_type=None, projection=True):
    rows, cols = array.shape
    from osgeo import gdal_array
    gdal_type = gdal_type or gdal_array.NumericTypeCodeToGDALTypeCode(array.dtype)
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), cols, rows, 1, gdal_type,
        ["TILED=YES", f"BLOCKXSIZE={block}", f"BLOCKYSIZE={block}"])
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    if projection:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(32618)
        ds.SetProjection(srs.ExportToWkt())
    band = ds.GetRasterBand(1)
    if nodata is not None:
        band.SetNoDataValue(nodata)
    band.WriteArray(array)
    ds = None
    return str(path)


def read(path):
    """(pixels, nodata, statistics metadata, geotransform) of band 1."""
    ds = gdal.Open(str(path))
    band = ds.GetRasterBand(1)
    return (band.ReadAsArray(), band.GetNoDataValue(),
            {k: v for k, v in band.GetMetadata().items() if k.startswith("STATISTICS_")},
            ds.GetGeoTransform())


def assert_same_output(path, reference):
    """Same pixels (NaN equal), nodata, statistics strings and geotransform."""
    pixels, nodata, stats, geotransform = read(path)
    numpy.testing.assert_array_equal(pixels, reference[0])
    assert pixels.dtype == reference[0].dtype
    assert (nodata, stats, geotransform) == reference[1:]


def executor_for(name, pools):
    """The executor= value named in EXECUTORS (caller-owned pools are shared)."""
    if name == "none":
        return None
    if name in ("threading:2", "multiprocessing:2"):
        return name
    if name not in pools:
        if name == "thread_pool":
            pools[name] = concurrent.futures.ThreadPoolExecutor(3)
        elif name == "process_pool":
            pools[name] = concurrent.futures.ProcessPoolExecutor(
                2, mp_context=multiprocessing.get_context("spawn"))
        else:
            from distributed import Client, LocalCluster
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            pools[name] = {"cluster": cluster, "client": Client(cluster)}
    pool = pools[name]
    return pool["client"].get_executor() if name == "dask" else pool
