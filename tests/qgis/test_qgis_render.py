"""Headless QGIS: a .pgp.vrt as a QGIS raster layer (provider "gdal").

Loads the demo graph (samples/demo.pgp.vrt, two Calc bands) and a Convolve graph
over inputs samples/make_inputs.py writes into a temporary folder, renders each with
QgsMapRendererSequentialJob to a PNG, checks the picture is not blank, and compares
the values QGIS's provider reports (identify and sample) with osgeo.gdal's
ReadAsArray at the same pixels.

Run with /usr/bin/python3 (python3-qgis, python3-gdal). The plugin is found through
GDAL_DRIVER_PATH (ctest sets it; run directly it defaults to the repository's build/).
PNGs are kept in $PGP_ARTIFACTS_DIR (ctest: <build>/qgis-artifacts; default
<GDAL_DRIVER_PATH>/qgis-artifacts). PGP_UPDATE_SCREENSHOT=1 also copies the demo
render to docs/img/qgis-demo.png (as an 8-bit palette PNG).
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Before osgeo or qgis loads GDAL (plugins are registered when GDAL initialises).
os.environ.setdefault("GDAL_DRIVER_PATH", os.path.join(REPO, "build"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Qt wants a private runtime folder and QGIS a profile folder; keep both out of $HOME.
_SCRATCH = tempfile.mkdtemp(prefix="pgp-qgis-")
atexit.register(shutil.rmtree, _SCRATCH, True)
if not os.environ.get("XDG_RUNTIME_DIR") or not os.access(os.environ["XDG_RUNTIME_DIR"],
                                                           os.W_OK):
    os.environ["XDG_RUNTIME_DIR"] = os.path.join(_SCRATCH, "runtime")
    os.makedirs(os.environ["XDG_RUNTIME_DIR"], mode=0o700)
os.environ.setdefault("QGIS_CUSTOM_CONFIG_PATH", os.path.join(_SCRATCH, "profile"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from osgeo import gdal  # noqa: E402

gdal.UseExceptions()

from qgis.core import (  # noqa: E402
    QgsApplication, QgsColorRampShader, QgsGradientColorRamp, QgsGradientStop,
    QgsMapRendererSequentialJob, QgsMapSettings, QgsPointXY, QgsProject, QgsProviderRegistry,
    QgsRaster, QgsRasterLayer, QgsRasterShader, QgsSingleBandPseudoColorRenderer)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor, QImage  # noqa: E402

ARTIFACTS = os.environ.get("PGP_ARTIFACTS_DIR") or os.path.join(
    os.environ["GDAL_DRIVER_PATH"].split(os.pathsep)[0], "qgis-artifacts")
SCREENSHOT = os.path.join(REPO, "docs", "img", "qgis-demo.png")

CONVOLVE_GRAPH = """<PGPDataset blockXSize="128" blockYSize="128">
  <Source name="dem" file="data/dem.tif"/>
  <Convolve name="smooth" input="dem" dataType="Float32" noData="-9999"
            normalizeKernel="true">
    <Kernel rows="5" cols="5">1 1 1 1 1  1 2 2 2 1  1 2 4 2 1  1 2 2 2 1  1 1 1 1 1</Kernel>
  </Convolve>
  <Band ref="smooth" description="smoothed dem"/>
</PGPDataset>
"""


@pytest.fixture(scope="module")
def qgis_app():
    app = QgsApplication([], False)
    QgsApplication.setPrefixPath("/usr", True)
    QgsApplication.initQgis()
    yield app
    # Layers belong to the project (see load()): drop them while QGIS is still up, then
    # exitQgis before the interpreter tears the QApplication down, so nothing (a layer
    # kept alive by a failed test's traceback, say) is destroyed after QGIS is gone.
    QgsProject.instance().removeAllMapLayers()
    QgsApplication.exitQgis()


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """The demo graph and a Convolve graph, over 300x200 inputs written by
    samples/make_inputs.py (with nodata in each)."""
    work = tmp_path_factory.mktemp("qgis")
    subprocess.run([sys.executable, os.path.join(REPO, "samples", "make_inputs.py"),
                    str(work / "data"), "300", "200"], check=True, capture_output=True)
    shutil.copy(os.path.join(REPO, "samples", "demo.pgp.vrt"), work / "demo.pgp.vrt")
    (work / "smooth.pgp.vrt").write_text(CONVOLVE_GRAPH)
    return {"demo": str(work / "demo.pgp.vrt"), "convolve": str(work / "smooth.pgp.vrt")}


def load(path, name):
    """A valid QgsRasterLayer of path; owned by the project, not by Python."""
    layer = QgsRasterLayer(path, name, "gdal")
    assert layer.isValid(), layer.error().summary()
    QgsProject.instance().addMapLayer(layer, False)
    return layer


def pseudocolor(layer, band):
    """A Spectral-like pseudocolour ramp stretched over the band's min/max."""
    provider = layer.dataProvider()
    stats = provider.bandStatistics(band)
    ramp = QgsGradientColorRamp(QColor(43, 131, 186), QColor(215, 25, 28), False, [
        QgsGradientStop(0.25, QColor(171, 221, 164)),
        QgsGradientStop(0.5, QColor(255, 255, 191)),
        QgsGradientStop(0.75, QColor(253, 174, 97))])
    shader_fn = QgsColorRampShader(stats.minimumValue, stats.maximumValue, ramp)
    shader_fn.classifyColorRamp(9)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_fn)
    renderer = QgsSingleBandPseudoColorRenderer(provider, band, shader)
    renderer.setClassificationMin(stats.minimumValue)
    renderer.setClassificationMax(stats.maximumValue)
    layer.setRenderer(renderer)
    return stats


def render(layer, name, size=(600, 400)):
    """Renders layer alone over its full extent; returns the QImage, saved as name.png."""
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(*size))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    errors = [f"{e.layerID}: {e.message}" for e in job.errors()]
    assert not errors, errors
    image = job.renderedImage()
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, f"{name}.png")
    assert image.save(path, "PNG"), path
    return image, path


def distinct_colours(image, step=4):
    return {image.pixel(x, y) for y in range(0, image.height(), step)
            for x in range(0, image.width(), step)}


def pixel_centre(gt, col, row):
    return QgsPointXY(gt[0] + (col + 0.5) * gt[1], gt[3] + (row + 0.5) * gt[5])


def compare_values(layer, path, positions):
    """QGIS's identify() and sample() against GDAL's ReadAsArray, pixel by pixel."""
    ds = gdal.Open(path)
    gt = ds.GetGeoTransform()
    provider = layer.dataProvider()
    assert provider.bandCount() == ds.RasterCount
    checked = nodata_seen = 0
    for b in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(b)
        array = band.ReadAsArray()
        nodata = band.GetNoDataValue()
        assert provider.sourceNoDataValue(b) == nodata
        for col, row in positions:
            point = pixel_centre(gt, col, row)
            expected = array[row, col]
            identified = provider.identify(point, QgsRaster.IdentifyFormatValue)
            assert identified.isValid()
            got = identified.results()[b]
            sampled, ok = provider.sample(point, b)
            if nodata is not None and expected == nodata:
                assert got is None, (b, col, row, got)  # QGIS reports nodata as no value
                assert not ok
                nodata_seen += 1
            else:
                assert got == float(expected), (b, col, row, got, expected)
                assert ok and sampled == float(expected), (b, col, row, sampled)
            checked += 1
    return checked, nodata_seen


def test_pgp_driver_visible_to_qgis(qgis_app):
    assert gdal.GetDriverByName("PGP") is not None, os.environ["GDAL_DRIVER_PATH"]
    assert "gdal" in QgsProviderRegistry.instance().providerList()


def test_calc_graph_renders_and_matches_gdal(qgis_app, graphs):
    layer = load(graphs["demo"], "pgp demo")
    assert layer.width() == 300 and layer.height() == 200
    assert layer.bandCount() == 2
    assert layer.crs().authid() == "EPSG:32618"
    assert layer.dataProvider().dataType(1) == 6  # Qgis.Float32
    stats = pseudocolor(layer, 1)
    assert stats.maximumValue > stats.minimumValue > 0

    image, path = render(layer, "demo")
    assert not image.isNull() and image.width() == 600
    colours = distinct_colours(image)
    assert len(colours) >= 8, f"{path} looks blank: {len(colours)} colours"
    # (the image centre is lulc's nodata row, left blank; a third of the way is data)
    assert QColor(image.pixel(image.width() // 3, image.height() // 3)) != QColor("white")
    if os.environ.get("PGP_UPDATE_SCREENSHOT") == "1":
        os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
        assert image.convertToFormat(QImage.Format_Indexed8).save(SCREENSHOT, "PNG")

    # Interior, edge, corner, the nodata corner (dem rows <12, cols <20) and the
    # nodata row of lulc (row 100) — the last two are nodata in both bands.
    positions = [(0, 199), (299, 0), (150, 60), (37, 151), (250, 180), (5, 5), (120, 100)]
    assert compare_values(layer, graphs["demo"], positions) == (2 * len(positions), 4)


def test_convolve_graph_renders_and_matches_gdal(qgis_app, graphs):
    layer = load(graphs["convolve"], "pgp convolve")
    assert layer.bandCount() == 1
    pseudocolor(layer, 1)
    image, path = render(layer, "convolve", size=(300, 200))
    assert len(distinct_colours(image, step=2)) >= 8, f"{path} looks blank"
    positions = [(0, 0), (299, 199), (2, 100), (150, 100), (21, 13), (280, 30)]
    assert compare_values(layer, graphs["convolve"], positions) == (len(positions), 1)


def test_zoomed_out_view_is_drawn_from_pgp_overviews(qgis_app, tmp_path):
    """QGIS lists pgp's overviews as existing pyramids, and a whole-extent view at
    a tenth of the size computes overview tiles only (process-wide counters of the
    driver: QGIS's own GDAL dataset is out of the test's reach)."""

    from osgeo import osr
    cols, rows = 4000, 3000
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "field.tif"), cols, rows, 1,
                                              gdal.GDT_Float32, ["TILED=YES"])
    ds.SetGeoTransform((300000, 30, 0, 5000000, 0, -30))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    ds.SetProjection(srs.ExportToWkt())
    y, x = np.mgrid[0:rows, 0:cols]
    ds.GetRasterBand(1).WriteArray(np.sin(x / 300.0) * np.cos(y / 200.0) * 100)
    ds = None
    path = tmp_path / "field.pgp.vrt"
    path.write_text("""<PGPDataset><Source name="f" file="field.tif"/>
<Calc name="g" dataType="Float32"><Expression>f * 2 + 5</Expression></Calc>
<Band ref="g"/></PGPDataset>""")
    layer = load(str(path), "pgp zoomed out")
    existing = [(p.xDim, p.yDim) for p in layer.dataProvider().buildPyramidList() if p.exists]
    assert existing[:4] == [(2000, 1500), (1000, 750), (500, 375), (250, 188)]
    pseudocolor(layer, 1)  # statistics first: they are not part of the view
    driver = gdal.GetDriverByName("PGP")
    before = [int(driver.GetMetadataItem(k, "PGP"))
              for k in ("TILES_COMPUTED", "OVERVIEW_TILES_COMPUTED")]
    image, path_png = render(layer, "zoomed-out", size=(400, 300))
    after = [int(driver.GetMetadataItem(k, "PGP"))
             for k in ("TILES_COMPUTED", "OVERVIEW_TILES_COMPUTED")]
    assert after[0] == before[0], "the zoomed-out view computed full-resolution tiles"
    assert after[1] > before[1]
    assert len(distinct_colours(image)) >= 8, f"{path_png} looks blank"


QUIT_WITH_LAYER = """
import sys
from qgis.core import (QgsApplication, QgsMapRendererSequentialJob, QgsMapSettings,
                       QgsProject, QgsRasterBandStats, QgsRasterLayer)
from qgis.PyQt.QtCore import QSize
app = QgsApplication([], False)
QgsApplication.setPrefixPath("/usr", True)
QgsApplication.initQgis()
layers = []
for i, path in enumerate(sys.argv[1:]):
    layer = QgsRasterLayer(path, f"layer {i}", "gdal")
    assert layer.isValid(), layer.error().summary()
    QgsProject.instance().addMapLayer(layer)
    for band in range(1, layer.bandCount() + 1):
        stats = layer.dataProvider().bandStatistics(band, QgsRasterBandStats.All)
        assert stats.maximumValue > stats.minimumValue
    layers.append(layer)
settings = QgsMapSettings()
settings.setLayers(layers)
settings.setExtent(layers[0].extent())
settings.setOutputSize(QSize(300, 200))
job = QgsMapRendererSequentialJob(settings)
job.start()
job.waitForFinished()
# The layers are still in the project: quitting QGIS closes them.
QgsApplication.exitQgis()
print("quit", flush=True)
"""


def test_quitting_qgis_with_layers_loaded(graphs):
    """exitQgis() with pgp layers still in the project (it destroys GDAL's driver
    manager, which force-closes them): exit code 0, and the statistics QGIS had
    GDAL compute are in complete sidecars that a new process reads back."""
    for path in graphs.values():
        if os.path.exists(path + ".aux.xml"):
            os.remove(path + ".aux.xml")
    env = dict(os.environ, PGP_EXECUTOR="threading:2", PGP_PREFETCH="16")
    result = subprocess.run([sys.executable, "-c", QUIT_WITH_LAYER, *graphs.values()],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "quit" in result.stdout, (
        f"exit {result.returncode}\n{result.stderr[-3000:]}")
    for path in graphs.values():
        ds = gdal.Open(path)
        for b in range(1, ds.RasterCount + 1):
            band = ds.GetRasterBand(b)
            # Read back from the sidecar (the fingerprint still matches), never recomputed.
            stats = band.GetStatistics(False, False)
            assert stats is not None and stats[1] > stats[0], (path, b)
            values = band.ReadAsArray().astype(np.float64)
            valid = values[values != band.GetNoDataValue()]
            assert np.isclose(stats[0], valid.min(), rtol=1e-12)
            assert np.isclose(stats[1], valid.max(), rtol=1e-12)
        ds = None
