"""Shutdown with PGP datasets still open: GDALDestroyDriverManager() (what QGIS's
exitQgis and GDAL's own library destructor call) and a Python process that exits
with datasets alive and prefetch running.

GDAL force-closes every dataset in its open-dataset list, in address order. pgp's
private handles (worker source handles, warped views, mask vectors) stay out of that
list, so only the PGP dataset closes them (docs/hardening.md, "Shutdown"). The C
program tests/shutdown/shutdown_check.c is the reproduction: it runs from the
folder GDAL_DRIVER_PATH names, so the sanitized run tests the ASan build.
"""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from osgeo import gdal

from conftest import leak_exit, write_graph, write_raster
from test_align import write_mask

CHECK = os.path.join(os.environ["GDAL_DRIVER_PATH"].split(os.pathsep)[0], "pgp_shutdown_check")

CALC = """<Source name="a" file="a.tif"/><Source name="b" file="b.tif"/>
<Calc name="c" dataType="Float32" noData="-1"><Expression>a * 2 + b</Expression></Calc>
<Band ref="c"/>"""
CONVOLVE = """<Source name="a" file="a.tif"/>
<Convolve name="direct" input="a" method="direct" dataType="Float32" noData="-1">
  <Kernel rows="3" cols="3">1 2 1 2 4 2 1 2 1</Kernel></Convolve>
<Convolve name="fft" input="a" method="fft" dataType="Float32" noData="-1">
  <Kernel rows="9" cols="9">{ones}</Kernel></Convolve>
<Band ref="direct"/><Band ref="fft"/>""".format(ones=" ".join(["1"] * 81))
ALIGN = """<Source name="a" file="a.tif"/><Source name="shifted" file="shifted.tif"/>
<Align boundingBox="intersection" pixelSize="30,-30" alignTo="a">
  <Input ref="a" resampling="near"/><Input ref="shifted" resampling="bilinear"/>
  <Mask vector="mask.gpkg" layer="zones"/>
</Align>
<Calc name="sum" dataType="Float32" noData="-1"><Expression>a + shifted</Expression></Calc>
<Band ref="sum"/><Band ref="shifted"/>"""


@pytest.fixture
def graphs(tmp_path):
    rng = np.random.default_rng(5)
    write_raster(tmp_path / "a.tif", rng.uniform(0, 100, (300, 360)).astype(np.float32),
                 nodata=-1)
    write_raster(tmp_path / "b.tif", rng.uniform(0, 100, (300, 360)).astype(np.float32),
                 nodata=-1)
    write_raster(tmp_path / "shifted.tif", rng.uniform(0, 9, (280, 330)).astype(np.float32),
                 nodata=-1, origin=(444735.0, 3751305.0), pixel=31.0)
    write_mask(tmp_path / "mask.gpkg")
    return {name: write_graph(tmp_path / f"{name}.pgp.vrt", body)
            for name, body in (("calc", CALC), ("convolve", CONVOLVE), ("align", ALIGN))}


def check(scenario, paths, executor="threading:2", prefetch="4"):
    env = dict(os.environ, PGP_EXECUTOR=executor, PGP_PREFETCH=prefetch)
    result = subprocess.run([CHECK, scenario, *paths], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", (
        f"{scenario} {paths}: exit {result.returncode}\n{result.stderr[-3000:]}")


def test_no_dataset_open():
    check("none", [])


@pytest.mark.parametrize("kind", ["calc", "convolve", "align"])
def test_one_dataset_open(graphs, kind):
    check("read", [graphs[kind]], "serial")


def test_several_datasets_open_the_same_graph_twice(graphs):
    check("read", [graphs["calc"], graphs["convolve"], graphs["align"], graphs["calc"]])


def test_prefetch_queued_and_running(graphs):
    # The first tile of each, with 64 tiles to prefetch behind it: the manager is
    # destroyed while prefetch jobs of every kind are queued and running.
    check("prefetch", [graphs["calc"], graphs["convolve"], graphs["align"]], "threading:2", "64")


def test_overview_levels_in_use(graphs):
    check("overview", [graphs["calc"], graphs["convolve"], graphs["align"]])


def test_statistics_sidecar_is_complete(graphs):
    check("stats", [graphs["convolve"], graphs["align"]])
    for kind in ("convolve", "align"):
        ds = gdal.Open(graphs[kind])
        tree = ET.parse(graphs[kind] + ".aux.xml").getroot()
        assert tree.find("PGPFingerprint") is not None
        bands = tree.findall("PAMRasterBand")
        assert len(bands) == ds.RasterCount
        for band_xml in bands:
            band = ds.GetRasterBand(int(band_xml.get("band")))
            # Statistics are served from the sidecar and equal numpy's of the pixels.
            assert band.GetMetadataItem("STATISTICS_MEAN") is not None
            values = band.ReadAsArray().astype(np.float64)
            valid = values[values != band.GetNoDataValue()]
            # (PAM writes 14 significant digits)
            for item, expected in (("MINIMUM", valid.min()), ("MAXIMUM", valid.max()),
                                   ("MEAN", valid.mean()), ("STDDEV", valid.std())):
                assert np.isclose(float(band.GetMetadataItem("STATISTICS_" + item)),
                                  expected, rtol=1e-12), item
        ds = None


def test_driver_manager_comes_back(graphs):
    check("reopen", [graphs["calc"], graphs["convolve"], graphs["align"]])


PYTHON_EXIT = """
import sys
from osgeo import gdal
gdal.UseExceptions()
gdal.SetConfigOption("PGP_EXECUTOR", "threading:2")
gdal.SetConfigOption("PGP_PREFETCH", "64")
kept = []
for path in sys.argv[1:]:
    ds = gdal.Open(path)
    ds.GetRasterBand(1).ReadAsArray(0, 0, 64, 64)  # prefetch starts behind this tile
    kept.append((ds, ds.GetRasterBand(1)))
band = kept[0][0].GetRasterBand(1)
print("ok", flush=True)
"""


def test_python_exits_with_datasets_alive_and_prefetch_running(graphs):
    result = subprocess.run(
        [sys.executable, "-c", PYTHON_EXIT, graphs["calc"], graphs["convolve"],
         graphs["align"]], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 or leak_exit([sys.executable], result), (
        f"exit {result.returncode}\n{result.stderr[-3000:]}")
    assert result.stdout.strip() == "ok"
