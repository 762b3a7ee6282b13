"""pgp.render's target writer (pgp/target.h): the file gdal_translate writes, the same
bytes for every executor, statistics as GDAL computes them on the output, no target
after a failure or a cancel, edge tiles, and every target layout (whole blocks,
band-interleaved, pixel-interleaved, strips)."""
import os

import numpy
import pytest
from osgeo import gdal, osr

from pgp_testing import EXECUTORS, executor_for, write_raster
import pgp
from test_executors import leftovers

LAYOUTS = {
    # graph tiles 64x64 on a 300x200 raster: partial tiles on the right and bottom
    "whole_blocks": ("GTIFF", ("TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64", "COMPRESS=LZW")),
    "band_interleaved": ("GTIFF", ("TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64",
                                   "INTERLEAVE=BAND")),
    "pixel_interleaved": ("GTIFF", ("TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64",
                                    "INTERLEAVE=PIXEL", "COMPRESS=DEFLATE", "NUM_THREADS=2")),
    "other_blocks": ("GTIFF", ("TILED=YES", "BLOCKXSIZE=32", "BLOCKYSIZE=128")),
    "strips": ("GTIFF", ("COMPRESS=LZW",)),
}


def _graph(inputs, bands):
    graph = pgp.Graph(block_size=(64, 64))
    graph.source("a", inputs["a"])
    graph.source("b", inputs["b"])
    graph.calc("s", "a * b", data_type="Float32", nodata=-9)
    graph.convolve("smooth", "s", inputs["kernel"], data_type="Float32", nodata=-9)
    for name in bands:
        graph.band(name)
    return graph


def _contents(path):
    """Everything gdalinfo shows of a raster, pixels and statistics apart."""
    ds = gdal.Open(str(path))
    srs = osr.SpatialReference(wkt=ds.GetProjection())
    bands = []
    for i in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(i)
        bands.append((band.DataType, band.GetNoDataValue(), band.GetDescription(),
                      band.GetBlockSize(),
                      {k: v for k, v in band.GetMetadata().items()
                       if not k.startswith("STATISTICS_")}))
    return (ds.RasterXSize, ds.RasterYSize, ds.GetGeoTransform(), srs.ExportToProj4(),
            ds.GetMetadata(), ds.GetMetadata("IMAGE_STRUCTURE"), bands)


def _pixels(path):
    ds = gdal.Open(str(path))
    return [ds.GetRasterBand(i).ReadAsArray() for i in range(1, ds.RasterCount + 1)]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("executor", [None, "threading:2"])
def test_render_writes_what_gdal_translate_writes(inputs, tmp_path, layout, executor):
    bands = ["smooth"] if layout == "whole_blocks" else ["s", "smooth"]
    path = _graph(inputs, bands).write(str(tmp_path / "g.pgp.vrt"))
    driver, options = LAYOUTS[layout]
    reference = tmp_path / "translated.tif"
    gdal.Translate(str(reference), path, creationOptions=list(options))
    target = tmp_path / "rendered.tif"
    pgp.render(path, str(target), executor=executor,
               raster_driver_creation_tuple=(driver, options))
    assert _contents(target) == _contents(reference)
    for rendered, translated in zip(_pixels(target), _pixels(reference)):
        numpy.testing.assert_array_equal(rendered, translated)
    # the statistics GDAL itself computes on the written file
    ds = gdal.Open(str(target))
    for i in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(i)
        written = [float(band.GetMetadataItem(f"STATISTICS_{key}"))
                   for key in ("MINIMUM", "MAXIMUM", "MEAN", "STDDEV")]
        band.SetMetadata({})  # so that GDAL computes them afresh
        assert written == pytest.approx(band.ComputeStatistics(False), rel=1e-12)
    assert not leftovers(tmp_path)


def test_same_file_bytes_for_every_executor(inputs, pools, tmp_path):
    """One band (written as whole blocks) and two (through RasterIO): the rendered
    files are identical byte for byte, statistics included."""
    for bands, options in ((["smooth"], LAYOUTS["whole_blocks"]),
                           (["s", "smooth"], LAYOUTS["pixel_interleaved"])):
        path = _graph(inputs, bands).write(str(tmp_path / "g.pgp.vrt"))
        contents = []
        for name in EXECUTORS:
            target = tmp_path / f"r_{name.replace(':', '_')}.tif"
            pgp.render(path, str(target), executor=executor_for(name, pools),
                       raster_driver_creation_tuple=options)
            contents.append(target.read_bytes())
        assert all(content == contents[0] for content in contents[1:]), bands


def test_edge_blocks_hold_what_gdal_translate_writes(inputs, tmp_path):
    """The parts of a 300x200 raster's 64x64 edge blocks outside the raster hold what
    gdal_translate writes there (zeros, not the nodata)."""
    path = _graph(inputs, ["s"]).write(str(tmp_path / "g.pgp.vrt"))
    options = ("GTIFF", ("TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64"))
    rendered, translated = tmp_path / "r.tif", tmp_path / "t.tif"
    pgp.render(path, str(rendered), raster_driver_creation_tuple=options)
    gdal.Translate(str(translated), path, creationOptions=list(options[1]))
    ours, theirs = gdal.Open(str(rendered)), gdal.Open(str(translated))
    for x, y in [(4, row) for row in range(4)] + [(column, 3) for column in range(4)]:
        assert (ours.GetRasterBand(1).ReadBlock(x, y) ==
                theirs.GetRasterBand(1).ReadBlock(x, y)), (x, y)


@pytest.mark.parametrize("executor", [None, "threading:2"])
def test_failure_mid_render_leaves_no_target(tmp_path, executor):
    path = write_raster(tmp_path / "cut.tif", numpy.ones((512, 512), numpy.float32),
                        block=64)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) * 2 // 3)
    graph = pgp.Graph((64, 64))
    graph.source("a", path)
    graph.band("a")
    target = tmp_path / "out.tif"
    with pytest.raises(RuntimeError, match="cut.tif"):
        pgp.render(graph, str(target), executor=executor)
    assert not target.exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("executor, stop_at", [(None, 3), ("threading:2", 1)])
def test_progress_false_cancels_a_render(inputs, tmp_path, executor, stop_at):
    """Serial renders report every tile; with threads, tiles may finish between two
    reports, so the first one cancels."""
    seen = []

    def progress(fraction, message, data):
        seen.append(fraction)
        return len(seen) < stop_at

    target = tmp_path / "t.tif"
    with pytest.raises(pgp.Cancelled):
        pgp.render(_graph(inputs, ["smooth"]), str(target), executor=executor,
                   progress=progress)
    assert len(seen) == stop_at and seen == sorted(seen)
    assert not target.exists() and not leftovers(tmp_path)
