"""Shared helpers for the GDAL-client tests: rasters, graphs and the plugin path.

The plugin is found through GDAL_DRIVER_PATH (ctest sets it; run directly,
it defaults to the repository's build/ folder). It must be set before osgeo
is imported, because GDAL registers plugins when the module loads.
"""
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("GDAL_DRIVER_PATH", os.path.join(REPO, "build"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from osgeo import gdal  # noqa: E402

# pygeoprocessing's nodata test (docs/semantics.md#the-nodata-test), kept with the
# stitch model, which must stand alone for tests/python too.
from stitch_model import is_nodata as isnodata  # noqa: E402,F401

gdal.UseExceptions()

NUMPY_OF_GDAL = {
    "Byte": np.uint8, "Int16": np.int16, "UInt16": np.uint16, "Int32": np.int32,
    "UInt32": np.uint32, "Float32": np.float32, "Float64": np.float64,
}


def write_raster(path, array, nodata=None, block=64, origin=(444720.0, 3751320.0),
                 pixel=30.0, gdal_type=None):
    """Writes a tiled one-band GeoTIFF holding array and returns its path."""
    rows, cols = array.shape
    if gdal_type is None:
        gdal_type = gdal.GetDataTypeByName(
            {np.dtype(v): k for k, v in NUMPY_OF_GDAL.items()}[array.dtype])
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), cols, rows, 1, gdal_type,
        ["TILED=YES", f"BLOCKXSIZE={block}", f"BLOCKYSIZE={block}"])
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    ds.SetProjection(_utm())
    band = ds.GetRasterBand(1)
    if nodata is not None:
        band.SetNoDataValue(nodata)
    band.WriteArray(array)
    ds = None
    return str(path)


def _utm():
    from osgeo import osr
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    return srs.ExportToWkt()


def write_graph(path, body, block=(64, 64)):
    """Writes a .pgp.vrt whose <PGPDataset> holds body; returns its path."""
    with open(path, "w") as f:
        f.write(f'<PGPDataset blockXSize="{block[0]}" blockYSize="{block[1]}">\n{body}\n'
                '</PGPDataset>\n')
    return str(path)


def cast_like_gdal(values, numpy_type):
    """GDALCopyWords from float64: round half away from zero and saturate for
    integers, NaN -> 0; plain cast for floats."""
    numpy_type = np.dtype(numpy_type)
    if numpy_type.kind == "f":
        with np.errstate(over="ignore"):  # overflow gives +-inf, as in GDAL
            return values.astype(numpy_type)
    info = np.iinfo(numpy_type)
    rounded = np.where(values >= 0, np.floor(values + 0.5), np.ceil(values - 0.5))
    rounded = np.where(np.isnan(rounded), 0, rounded)
    return np.clip(rounded, info.min, info.max).astype(numpy_type)


def leak_exit(args, result):
    """Under the sanitized run (tests/sanitize), LeakSanitizer turns the exit of every
    Python process into 1 (Python's own leaks; the run's log check judges them): a
    Python process (a GDAL script such as gdal_edit.py, or python itself) that exits 1
    saying nothing has succeeded."""
    program = os.path.basename(str(args[0]))
    return (os.environ.get("PGP_SANITIZED") == "1" and result.returncode == 1 and
            result.stderr == "" and (program.endswith(".py") or program.startswith("python")))


def run(args, env=None, check=True):
    """Runs a GDAL command-line tool with the plugin path; returns the result."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    result = subprocess.run(args, env=full_env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0 and not leak_exit(args, result):
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stderr}")
    return result


def read(path, **open_options):
    """The bands of a dataset, each in its own type (a list when several)."""
    ds = gdal.OpenEx(str(path), gdal.OF_RASTER,
                     open_options=[f"{k}={v}" for k, v in open_options.items()])
    bands = [ds.GetRasterBand(i + 1).ReadAsArray() for i in range(ds.RasterCount)]
    return bands[0] if len(bands) == 1 else bands


def _restore_default_cache_budget():
    """The tile-cache budget is process-wide and kept until an open asks for another
    (docs/driver.md, Memory): a test that shrank it must not starve the next one."""
    source = "/vsimem/pgp_budget_reset.tif"
    if gdal.VSIStatL(source) is None:
        gdal.GetDriverByName("GTiff").Create(source, 1, 1, 1, gdal.GDT_Byte)
    gdal.OpenEx(f'<PGPDataset><Source name="s" file="{source}"/><Band ref="s"/></PGPDataset>',
                open_options=["CACHE_MB=256"])


@pytest.fixture(autouse=True)
def _clean_config():
    yield
    for key in ("PGP_EXECUTOR", "PGP_CACHE_MB", "PGP_PREFETCH", "PGP_OVERVIEWS",
                "GDAL_NUM_THREADS"):
        gdal.SetConfigOption(key, None)
    _restore_default_cache_budget()
