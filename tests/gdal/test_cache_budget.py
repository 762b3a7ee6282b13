"""The process-wide tile-cache budget changes only when an open asks for it
(docs/driver.md, Memory): an open without CACHE_MB or PGP_CACHE_MB keeps it."""
import numpy as np
from osgeo import gdal

from conftest import write_graph, write_raster

GRAPH = """<Source name="a" file="a.tif"/>
<Calc name="c" dataType="Float32"><Expression>a + 1</Expression></Calc><Band ref="c"/>"""


def budget(ds):
    return int(ds.GetMetadataItem("CACHE_MB", "PGP"))


def tiles_computed(ds):
    return int(ds.GetMetadataItem("TILES_COMPUTED", "PGP"))


def test_an_open_that_asks_nothing_keeps_the_budget(tmp_path):
    write_raster(tmp_path / "a.tif", np.arange(256 * 256, dtype=np.float32).reshape(256, 256))
    path = write_graph(tmp_path / "g.pgp.vrt", GRAPH)
    small = gdal.OpenEx(path, open_options=["CACHE_MB=0", "PREFETCH=0"])
    assert budget(small) == 0
    plain = gdal.OpenEx(path, open_options=["PREFETCH=0"])  # asks nothing
    assert budget(plain) == 0
    # The budget really is still 0: every read recomputes its tiles.
    plain.GetRasterBand(1).ReadAsArray(0, 0, 64, 64)
    plain.GetRasterBand(1).ReadAsArray(0, 0, 64, 64)
    assert tiles_computed(plain) == 2
    gdal.SetConfigOption("PGP_CACHE_MB", "8")
    from_config = gdal.OpenEx(path, open_options=["PREFETCH=0"])
    assert budget(from_config) == 8
    gdal.SetConfigOption("PGP_CACHE_MB", None)
    again = gdal.OpenEx(path, open_options=["PREFETCH=0"])
    assert budget(again) == 8
    # With a budget, a second read of the same window is served from the cache.
    again.GetRasterBand(1).ReadAsArray(0, 0, 64, 64)
    again.GetRasterBand(1).ReadAsArray(0, 0, 64, 64)
    assert tiles_computed(again) == 1
