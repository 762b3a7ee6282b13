#!/usr/bin/python3
"""<Stitch> through osgeo.gdal and GDAL's tools, against the numpy model of
stitch_model.py (pygeoprocessing's stitch_rasters with its clipping fixed)."""
import os

import numpy as np
import pytest
from osgeo import gdal, osr

import stitch_model
from conftest import read, run, write_graph, write_raster

ORIGIN = (444720.0, 3751320.0)  # write_raster's default, 30 m pixels, EPSG:32618


def at(col, row, pixel=30.0, dx=0.0, dy=0.0):
    """The origin of a raster whose corner is target pixel (col, row), moved by dx, dy m."""
    return (ORIGIN[0] + col * 30.0 + dx, ORIGIN[1] - row * 30.0 + dy)


def stitch_graph(tmp_path, bases, overlap="etch", block=(64, 64), extra="", name="g"):
    """A graph stitching bases ((file, band, resampling) triples) into target.tif."""
    rows = "".join(f'<Base file="{f}" band="{b}" resampling="{r}"/>' for f, b, r in bases)
    return write_graph(tmp_path / f"{name}.pgp.vrt",
                       f'<Source name="target" file="target.tif"/>'
                       f'<Stitch name="mosaic" target="target" overlap="{overlap}"{extra}>'
                       f'{rows}</Stitch><Band ref="mosaic"/>', block=block)


def model(tmp_path, bases, overlap, area_weight=False):
    return stitch_model.stitch(str(tmp_path / "target.tif"), 1,
                               [(str(tmp_path / f), b) for f, b, _ in bases],
                               [r for _, _, r in bases], overlap, area_weight)


def scene(tmp_path, target_type=np.float32):
    """A 200x230 target partly filled, and bases inside, overlapping each other and
    sticking out past every edge, one entirely outside, one on a 45 m grid."""
    rng = np.random.default_rng(15)
    target = np.full((200, 230), -1, target_type)
    target[:40, :60] = 7
    target[150:, 100:] = rng.uniform(0, 50, (50, 130)).astype(target_type)
    write_raster(tmp_path / "target.tif", target, nodata=-1, block=64)
    bases = []

    def base(name, shape, origin, nodata=-9, dtype=np.float32, pixel=30.0, resampling="near"):
        values = rng.uniform(0, 100, shape).astype(dtype)
        values[rng.random(shape) < 0.1] = nodata if nodata is not None else 0
        write_raster(tmp_path / name, values, nodata=nodata, origin=origin, pixel=pixel,
                     block=32)
        bases.append((name, 1, resampling))

    base("inside.tif", (50, 70), at(20, 30))
    base("overlapping.tif", (60, 50), at(60, 50, dx=12.0, dy=-7.0))   # sub-pixel offset
    base("left_top.tif", (40, 45), at(-17, -9))                         # past left and top
    base("right_bottom.tif", (70, 90), at(190, 170), dtype=np.int16, nodata=0)
    base("narrow_left.tif", (30, 5), at(-3, 100))                       # pygeoprocessing fails
    base("outside.tif", (10, 10), at(400, 400))
    base("coarse.tif", (40, 40), at(100, 20, dx=7.0), pixel=45.0, resampling="bilinear")
    base("no_nodata.tif", (20, 20), at(5, 170), nodata=None)
    return bases


@pytest.mark.parametrize("overlap", ["etch", "replace", "add"])
def test_each_overlap_mode_equals_the_model(tmp_path, overlap):
    bases = scene(tmp_path)
    graph = stitch_graph(tmp_path, bases, overlap)
    gdal.PushErrorHandler("CPLQuietErrorHandler")  # the warning about outside.tif
    got = read(graph)
    gdal.PopErrorHandler()
    expected = model(tmp_path, bases, overlap)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    # Every base counted: the graph differs from the bare target where bases are valid.
    assert (got != read(tmp_path / "target.tif")).sum() > 5000


def test_the_skipped_base_is_named_in_a_warning(tmp_path):
    bases = scene(tmp_path)
    messages = []

    def handler(cls, number, message):
        messages.append((cls, message))
    gdal.PushErrorHandler(handler)
    try:
        ds = gdal.Open(stitch_graph(tmp_path, bases))
    finally:
        gdal.PopErrorHandler()
    warnings = [m for c, m in messages if c == gdal.CE_Warning]
    assert len(warnings) == 1 and "outside.tif" in warnings[0] and "inside.tif" not in warnings[0]
    band = ds.GetRasterBand(1)
    assert band.GetMetadataItem("PGP_OVERLAP") == "etch"
    assert band.GetMetadataItem("PGP_BASES") == str(len(bases))
    assert band.GetMetadataItem("PGP_TARGET") == "target"
    assert band.GetNoDataValue() == -1 and band.DataType == gdal.GDT_Float32


@pytest.mark.parametrize("target_type", [np.int16, np.uint8])
def test_integer_targets_truncate_like_numpy(tmp_path, target_type):
    bases = scene(tmp_path, target_type)
    graph = stitch_graph(tmp_path, bases, "add")
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    got = read(graph)
    gdal.PopErrorHandler()
    np.testing.assert_array_equal(got, model(tmp_path, bases, "add"))


def test_same_bytes_for_every_executor_block_and_window(tmp_path):
    bases = scene(tmp_path)
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    expected = model(tmp_path, bases, "replace").tobytes()
    rng = np.random.default_rng(3)
    for block in [(64, 64), (37, 23), (230, 1)]:
        graph = stitch_graph(tmp_path, bases, "replace", block=block,
                             name=f"g{block[0]}x{block[1]}")
        for executor in ["serial", "threading:1", "threading:3"]:
            ds = gdal.OpenEx(graph, open_options=[f"EXECUTOR={executor}", "CACHE_MB=0"])
            band = ds.GetRasterBand(1)
            assert band.ReadAsArray().tobytes() == expected
            full = np.frombuffer(expected, np.float32).reshape(200, 230)
            for _ in range(4):
                x, y = int(rng.integers(0, 200)), int(rng.integers(0, 170))
                w, h = int(rng.integers(1, 231 - x)), int(rng.integers(1, 201 - y))
                np.testing.assert_array_equal(band.ReadAsArray(x, y, w, h),
                                              full[y:y + h, x:x + w])
    gdal.PopErrorHandler()


def test_many_bases_through_the_index(tmp_path):
    """300 small bases scattered over a 1100x900 target (several index buckets a
    tile on overview-free full resolution, list order kept across buckets)."""
    rng = np.random.default_rng(9)
    write_raster(tmp_path / "target.tif", np.full((900, 1100), -1, np.float32), nodata=-1,
                 block=128)
    bases = []
    for i in range(300):
        h, w = (int(v) for v in rng.integers(1, 90, 2))
        col, row = int(rng.integers(-60, 1100)), int(rng.integers(-60, 900))
        values = rng.uniform(1, 9, (h, w)).astype(np.float32)
        write_raster(tmp_path / f"b{i}.tif", values, nodata=-9, origin=at(col, row),
                     block=16)
        bases.append((f"b{i}.tif", 1, "near"))
    for overlap in ["etch", "add"]:
        graph = stitch_graph(tmp_path, bases, overlap, block=(16, 16), name=overlap)
        got = gdal.OpenEx(graph, open_options=["EXECUTOR=threading:2"]).ReadAsArray()
        np.testing.assert_array_equal(got, model(tmp_path, bases, overlap))


def write_in_srs(path, values, gt, epsg, nodata=None):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), values.shape[1], values.shape[0], 1,
                                              gdal.GDT_Float32, ["TILED=YES"])
    ds.SetGeoTransform(gt)
    ds.SetProjection(srs.ExportToWkt())
    if nodata is not None:
        ds.GetRasterBand(1).SetNoDataValue(nodata)
    ds.GetRasterBand(1).WriteArray(values)


@pytest.mark.parametrize("resampling", ["near", "bilinear"])
def test_a_base_in_another_srs_is_warped_like_warp_raster(tmp_path, resampling):
    write_raster(tmp_path / "target.tif", np.full((150, 160), -1, np.float32), nodata=-1)
    rng = np.random.default_rng(4)
    # Geographic, then a neighbouring UTM zone, both over the target.
    write_in_srs(tmp_path / "geo.tif", rng.uniform(0, 5, (60, 70)).astype(np.float32),
                 (-75.59, 0.0004, 0, 33.895, 0, -0.0004), 4326, nodata=-3)
    write_in_srs(tmp_path / "utm17.tif", rng.uniform(5, 9, (50, 40)).astype(np.float32),
                 (1000500.0, 40.0, 0, 3763800.0, 0, -40.0), 32617)
    bases = [("geo.tif", 1, resampling), ("utm17.tif", 1, resampling)]
    graph = stitch_graph(tmp_path, bases, "add")
    got = read(graph)
    expected = model(tmp_path, bases, "add")
    np.testing.assert_array_equal(got, expected)
    assert (got > 0).sum() > 1000


def test_area_weighting_into_a_wgs84_target(tmp_path):
    """pygeoprocessing's test_stitch_rasters_area_change: a base of 1 per 30 m pixel in
    metres stitched into a degree target keeps its total (to 1e-4 relative)."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    target = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "target.tif"), 200, 200, 1,
                                                  gdal.GDT_Float32, ["TILED=YES"])
    target.SetGeoTransform((-75.4, 0.0005, 0, 33.95, 0, -0.0005))
    target.SetProjection(srs.ExportToWkt())
    target.GetRasterBand(1).SetNoDataValue(-1)
    target.GetRasterBand(1).Fill(-1)
    target = None
    values = np.ones((100, 120), np.float32)
    write_in_srs(tmp_path / "base.tif", values, (1020000.0, 30.0, 0, 3768000.0, 0, -30.0),
                 32617, nodata=-9)
    bases = [("base.tif", 1, "near")]
    for weighted in [False, True]:
        extra = ' areaWeightM2ToWGS84="true"' if weighted else ""
        graph = stitch_graph(tmp_path, bases, "etch", extra=extra, name=f"w{weighted}")
        got = read(graph)
        np.testing.assert_array_equal(got, model(tmp_path, bases, "etch", weighted))
    # Totals kept: about 1 per 30 m x 30 m of base area.
    total = got[got != -1].astype(np.float64).sum()
    assert abs(total - values.size) / values.size < 0.05


def test_overviews_sample_the_full_resolution_result(tmp_path):
    bases = scene(tmp_path)
    graph = stitch_graph(tmp_path, bases, "add")
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    full = model(tmp_path, bases, "add")
    ds = gdal.Open(graph)
    assert ds.GetRasterBand(1).GetOverviewCount() == 0  # smaller than 256: no overview levels
    gdal.PopErrorHandler()
    # A bigger target gets overviews: each level pixel is the full-resolution
    # result at the pixel under its centre.
    write_raster(tmp_path / "target.tif", np.full((600, 700), -1, np.float32), nodata=-1,
                 block=64)
    full = model(tmp_path, bases, "add")
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    ds = gdal.Open(stitch_graph(tmp_path, bases, "add", name="big"))
    band = ds.GetRasterBand(1)
    gdal.PopErrorHandler()
    assert band.GetOverviewCount() >= 1
    overview = band.GetOverview(0)
    got = overview.ReadAsArray()
    sy = 600 / overview.YSize
    sx = 700 / overview.XSize
    rows = np.floor((np.arange(overview.YSize) + 0.5) * sy).astype(int)
    cols = np.floor((np.arange(overview.XSize) + 0.5) * sx).astype(int)
    np.testing.assert_array_equal(got, full[np.ix_(rows, cols)])


def test_gdal_translate_and_statistics(tmp_path):
    bases = scene(tmp_path)
    graph = stitch_graph(tmp_path, bases, "replace")
    env = {"PGP_EXECUTOR": "threading:2"}
    run(["gdal_translate", "-q", "-co", "TILED=YES", graph, str(tmp_path / "out.tif")], env)
    expected = model(tmp_path, bases, "replace")
    out = gdal.Open(str(tmp_path / "out.tif"))
    np.testing.assert_array_equal(out.ReadAsArray(), expected)
    assert out.GetRasterBand(1).GetNoDataValue() == -1
    ds = gdal.Open(graph)
    minimum, maximum, mean, std = ds.GetRasterBand(1).ComputeStatistics(False)
    valid = expected[expected != -1].astype(np.float64)
    assert (minimum, maximum) == (valid.min(), valid.max())
    assert mean == pytest.approx(valid.mean(), rel=1e-9)
    assert std == pytest.approx(valid.std(), rel=1e-6)


def test_a_base_that_breaks_after_opening_fails_the_read_naming_it(tmp_path):
    bases = scene(tmp_path)
    graph = stitch_graph(tmp_path, bases, "replace", block=(32, 32))
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    ds = gdal.OpenEx(graph, open_options=["CACHE_MB=0", "EXECUTOR=threading:2"])
    gdal.PopErrorHandler()
    good = (tmp_path / "inside.tif").read_bytes()
    (tmp_path / "inside.tif").write_bytes(good[:600])  # header kept, tiles gone
    with pytest.raises(RuntimeError) as error:
        ds.GetRasterBand(1).ReadAsArray(20, 30, 70, 50)
    message = str(error.value)
    assert "<Stitch name='mosaic'>" in message and "inside.tif" in message
    (tmp_path / "inside.tif").write_bytes(good)
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    np.testing.assert_array_equal(ds.GetRasterBand(1).ReadAsArray(),
                                  model(tmp_path, bases, "replace"))
    gdal.PopErrorHandler()


BAD = [
    ('<Stitch name="s" target="target" overlap="merge"><Base file="b.tif"/></Stitch>',
     "overlap 'merge' is not one of etch, replace, add"),
    ('<Stitch name="s" target="nothing"><Base file="b.tif"/></Stitch>',
     "target 'nothing' names no <Source>"),
    ('<Stitch name="s"><Base file="b.tif"/></Stitch>', "missing attribute 'target'"),
    ('<Stitch name="s" target="target"/>', "nothing to stitch"),
    ('<Stitch name="s" target="target"><Base file="missing.tif"/></Stitch>',
     "cannot open base"),
    ('<Stitch name="s" target="target"><Base file="b.tif" band="2"/></Stitch>',
     "has no band 2"),
    ('<Stitch name="s" target="target"><Base file="b.tif" resampling="fancy"/></Stitch>',
     "<Base> #1"),
    ('<Stitch name="s" target="target"><Base/></Stitch>', "missing attribute 'file'"),
    ('<Stitch name="s" target="target"><Input file="b.tif"/></Stitch>',
     "unexpected element <Input>"),
    ('<Stitch name="s" target="target" areaWeightM2ToWGS84="maybe"><Base file="b.tif"/>'
     '</Stitch>', "areaWeightM2ToWGS84 'maybe'"),
    ('<Stitch name="s" target="t2"><Base file="b.tif"/></Stitch>'
     '<Calc name="t2"><Expression>target</Expression></Calc>', "names no <Source>"),
]


@pytest.mark.parametrize("stitch,message", BAD)
def test_bad_stitch(tmp_path, stitch, message):
    write_raster(tmp_path / "target.tif", np.zeros((20, 20), np.float32), nodata=-1)
    write_raster(tmp_path / "b.tif", np.ones((5, 5), np.float32))
    graph = write_graph(tmp_path / "g.pgp.vrt", '<Source name="target" file="target.tif"/>'
                        + stitch + '<Band ref="s"/>')
    with pytest.raises(RuntimeError) as error:
        gdal.Open(graph)
    assert "<Stitch name='s'>" in str(error.value) and message in str(error.value)


def test_a_target_without_nodata_and_a_graph_with_align_are_refused(tmp_path):
    write_raster(tmp_path / "target.tif", np.zeros((20, 20), np.float32))
    write_raster(tmp_path / "b.tif", np.ones((5, 5), np.float32))
    body = ('<Source name="target" file="target.tif"/>'
            '<Stitch name="s" target="target" overlap="replace">'
            '<Base file="b.tif"/></Stitch><Band ref="s"/>')
    with pytest.raises(RuntimeError, match="has no nodata value"):
        gdal.Open(write_graph(tmp_path / "g.pgp.vrt", body))
    write_raster(tmp_path / "target.tif", np.zeros((20, 20), np.float32), nodata=-1)
    with pytest.raises(RuntimeError, match="cannot be in a graph with <Align>"):
        gdal.Open(write_graph(tmp_path / "a.pgp.vrt",
                              body + '<Align pixelSize="30,-30"/>'))
    # The next open works.
    np.testing.assert_array_equal(read(write_graph(tmp_path / "ok.pgp.vrt", body))[:5, :5],
                                  np.ones((5, 5), np.float32))


@pytest.mark.parametrize("overlap", ["etch", "add"])
def test_every_instruction_set_level_gives_the_model(tmp_path, overlap):
    """The fold's kernel runs at the level PGP_ISA picks (chosen once per process):
    gdal_translate at each level this CPU runs writes the model's pixels (an Int16
    target: the stores truncate)."""
    from test_calc_accuracy import runnable_levels
    bases = scene(tmp_path, np.int16)
    graph = stitch_graph(tmp_path, bases, overlap)
    expected = model(tmp_path, bases, overlap)
    for level in runnable_levels():
        out = tmp_path / f"{level}.tif"
        run(["gdal_translate", "-q", graph, str(out)], env={"PGP_ISA": level})
        np.testing.assert_array_equal(read(out), expected, err_msg=level)
