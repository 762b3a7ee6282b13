#!/usr/bin/python3
"""Overviews through osgeo.gdal and gdal_translate: levels, values against numpy
on the coarse grid, zoomed-out reads that never touch full resolution."""
import os

import numpy as np
import pytest
from osgeo import gdal
from scipy import ndimage

from conftest import read, run, write_graph, write_raster

CALC = """<Source name="A" file="a.tif"/><Source name="B" file="b.tif"/>
<Calc name="f" dataType="Float32" noData="-1"><Expression>A * 2 + sqrt(B)</Expression></Calc>
<Band ref="f"/>"""


def calc_inputs(tmp_path, rows, cols, seed=1):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 100, (rows, cols)).astype(np.float32)
    b = rng.uniform(0, 100, (rows, cols)).astype(np.float32)
    write_raster(tmp_path / "a.tif", a)
    write_raster(tmp_path / "b.tif", b)
    return a, b


def calc(a, b):
    return (a.astype(np.float64) * 2 + np.sqrt(b.astype(np.float64))).astype(np.float32)


def nearest(array, out_rows, out_cols):
    """GDAL's nearest downsampling of the whole extent: the source pixel under
    each coarse pixel centre (with GDAL's 1e-10 guard against rounding)."""
    rows = np.floor((np.arange(out_rows) + 0.5) * array.shape[0] / out_rows + 1e-10)
    cols = np.floor((np.arange(out_cols) + 0.5) * array.shape[1] / out_cols + 1e-10)
    return array[rows.astype(int)][:, cols.astype(int)]


def overview_sizes(cols, rows):
    """Factors 2, 4, ... (sizes rounded up) until the long side is below 256."""
    sizes, factor = [], 2
    while max(cols, rows) // (factor // 2) > 256:
        sizes.append(((cols + factor - 1) // factor, (rows + factor - 1) // factor))
        factor *= 2
    return sizes


@pytest.mark.parametrize("shape", [(700, 1000), (300, 257), (256, 200), (1001, 333)])
def test_levels_follow_gdal_sizes(tmp_path, shape):
    calc_inputs(tmp_path, *shape)
    ds = gdal.Open(write_graph(tmp_path / "g.pgp.vrt", CALC))
    band = ds.GetRasterBand(1)
    sizes = [(band.GetOverview(i).XSize, band.GetOverview(i).YSize)
             for i in range(band.GetOverviewCount())]
    assert sizes == overview_sizes(shape[1], shape[0])
    assert ds.GetMetadataItem("OVERVIEWS", "PGP") == str(len(sizes))
    for i, (cols, rows) in enumerate(sizes):
        gt, full = band.GetOverview(i).GetDataset().GetGeoTransform(), ds.GetGeoTransform()
        assert gt[0] == full[0] and gt[3] == full[3]
        assert gt[1] == pytest.approx(full[1] * shape[1] / cols, rel=1e-15)
        assert gt[5] == pytest.approx(full[5] * shape[0] / rows, rel=1e-15)


def test_overviews_can_be_turned_off(tmp_path):
    calc_inputs(tmp_path, 600, 600)
    path = write_graph(tmp_path / "g.pgp.vrt", CALC)
    assert gdal.Open(path).GetRasterBand(1).GetOverviewCount() == 2
    off = gdal.OpenEx(path, open_options=["OVERVIEWS=NO"])
    assert off.GetRasterBand(1).GetOverviewCount() == 0
    gdal.SetConfigOption("PGP_OVERVIEWS", "OFF")
    assert gdal.Open(path).GetRasterBand(1).GetOverviewCount() == 0
    # the open option wins over the config option
    on = gdal.OpenEx(path, open_options=["OVERVIEWS=YES"])
    assert on.GetRasterBand(1).GetOverviewCount() == 2
    gdal.SetConfigOption("PGP_OVERVIEWS", "maybe")
    with pytest.raises(RuntimeError, match="PGP_OVERVIEWS='maybe' is not valid"):
        gdal.Open(path)
    gdal.SetConfigOption("PGP_OVERVIEWS", None)
    with pytest.raises(RuntimeError, match="open option OVERVIEWS='2' is not valid"):
        gdal.OpenEx(path, open_options=["OVERVIEWS=2"])
    options = gdal.GetDriverByName("PGP").GetMetadataItem("DMD_OPENOPTIONLIST")
    assert "name='OVERVIEWS'" in options


@pytest.mark.parametrize("shape", [(700, 1000), (1001, 333)])
def test_calc_overviews_equal_numpy_on_the_coarse_grid(tmp_path, shape):
    a, b = calc_inputs(tmp_path, *shape)
    ds = gdal.Open(write_graph(tmp_path / "g.pgp.vrt", CALC))
    band = ds.GetRasterBand(1)
    for i in range(band.GetOverviewCount()):
        ov = band.GetOverview(i)
        expected = calc(nearest(a, ov.YSize, ov.XSize), nearest(b, ov.YSize, ov.XSize))
        np.testing.assert_array_equal(ov.ReadAsArray(), expected)


def test_sources_own_overviews_are_used(tmp_path):
    a, b = calc_inputs(tmp_path, 512, 768)
    for name in ("a.tif", "b.tif"):
        run(["gdaladdo", "-q", "-r", "average", str(tmp_path / name), "2", "4"])
    ds = gdal.Open(write_graph(tmp_path / "g.pgp.vrt", CALC))
    ov = ds.GetRasterBand(1).GetOverview(1)  # 192 x 128 = the sources' factor-4 level
    sources = [gdal.Open(str(tmp_path / n)) for n in ("a.tif", "b.tif")]  # kept open: 3.6
    source_levels = [s.GetRasterBand(1).GetOverview(1).ReadAsArray() for s in sources]
    np.testing.assert_array_equal(ov.ReadAsArray(), calc(*source_levels))
    # averaged levels differ from sampling the full resolution: the test can fail
    assert not np.array_equal(ov.ReadAsArray(), calc(nearest(a, 128, 192), nearest(b, 128, 192)))


def downsample_kernel(kernel, scale_y, scale_x):
    """Each tap added into the coarse tap at round(offset / scale); odd, centred."""
    rows, cols = kernel.shape
    cy, cx = rows // 2, cols // 2
    dy = np.floor((np.arange(rows) - cy) / scale_y + 0.5).astype(int)
    dx = np.floor((np.arange(cols) - cx) / scale_x + 0.5).astype(int)
    my, mx = np.abs(dy).max(), np.abs(dx).max()
    coarse = np.zeros((2 * my + 1, 2 * mx + 1))
    for r in range(rows):
        for c in range(cols):
            coarse[my + dy[r], mx + dx[c]] += kernel[r, c]
    return coarse


def test_convolve_overview_uses_the_kernel_summed_into_coarse_taps(tmp_path):
    rng = np.random.default_rng(4)
    a = rng.uniform(0, 10, (600, 520)).astype(np.float32)
    write_raster(tmp_path / "a.tif", a)
    kernel = rng.uniform(0, 1, (9, 7))
    rows = " ".join(" ".join(repr(float(v)) for v in row) for row in kernel)
    ds = gdal.Open(write_graph(tmp_path / "g.pgp.vrt", f"""<Source name="A" file="a.tif"/>
<Convolve name="s" input="A" setTolToZero="none"><Kernel rows="9" cols="7">{rows}</Kernel></Convolve>
<Band ref="s"/>"""))
    band = ds.GetRasterBand(1)
    assert band.GetOverviewCount() == 2
    for i in range(2):
        ov = band.GetOverview(i)
        coarse = nearest(a, ov.YSize, ov.XSize).astype(np.float64)
        k = downsample_kernel(kernel, 600 / ov.YSize, 520 / ov.XSize)
        expected = ndimage.convolve(coarse, k, mode="constant", cval=0.0)
        np.testing.assert_allclose(ov.ReadAsArray(), expected, rtol=0, atol=1e-9 * expected.max())
    # the whole kernel weight is kept: a constant signal keeps its full-resolution sum
    assert downsample_kernel(kernel, 4, 4).sum() == pytest.approx(kernel.sum())


def test_align_overview_warps_straight_onto_the_coarse_grid(tmp_path):
    rng = np.random.default_rng(8)
    dem = rng.uniform(100, 900, (400, 600)).astype(np.float32)
    write_raster(tmp_path / "dem.tif", dem, nodata=-9999)
    lulc = rng.integers(1, 6, (300, 420)).astype(np.uint8)
    write_raster(tmp_path / "lulc.tif", lulc, nodata=255, origin=(444737.0, 3751290.0),
                 pixel=45.0)
    ds = gdal.Open(write_graph(tmp_path / "g.pgp.vrt", """<Source name="dem" file="dem.tif"/>
<Source name="lulc" file="lulc.tif"/>
<Align boundingBox="intersection" pixelSize="30,-30" alignTo="dem">
  <Input ref="dem" resampling="bilinear"/><Input ref="lulc" resampling="near"/>
</Align><Band ref="dem"/><Band ref="lulc"/>"""))
    gt = ds.GetGeoTransform()
    extent = [gt[0], gt[3] + ds.RasterYSize * gt[5], gt[0] + ds.RasterXSize * gt[1], gt[3]]
    for band_index, source, method in ((1, "dem.tif", "bilinear"), (2, "lulc.tif", "near")):
        ov = ds.GetRasterBand(band_index).GetOverview(0)
        out = tmp_path / f"ov_{source}"
        run(["gdalwarp", "-q", "-overwrite", "-te", *map(repr, extent), "-ts", str(ov.XSize),
             str(ov.YSize), "-r", method, str(tmp_path / source), str(out)])
        np.testing.assert_array_equal(ov.ReadAsArray(), gdal.Open(str(out)).ReadAsArray())


def test_overviews_identical_across_executors_and_windows(tmp_path):
    calc_inputs(tmp_path, 700, 1000)
    path = write_graph(tmp_path / "g.pgp.vrt", CALC)
    serial = gdal.OpenEx(path, open_options=["EXECUTOR=serial"])
    reference = serial.GetRasterBand(1).GetOverview(0).ReadAsArray()
    for executor in ("threading:1", "threading:4"):
        ds = gdal.OpenEx(path, open_options=[f"EXECUTOR={executor}"])
        ov = ds.GetRasterBand(1).GetOverview(0)
        tiles = [ov.ReadAsArray(x, y, min(37, 500 - x), min(91, 350 - y))
                 for y in range(0, 350, 91) for x in range(0, 500, 37)]
        rows = [np.hstack(tiles[i:i + 14]) for i in range(0, len(tiles), 14)]
        np.testing.assert_array_equal(np.vstack(rows), reference)


def test_downsampled_reads_are_answered_from_the_best_overview(tmp_path):
    calc_inputs(tmp_path, 700, 1000)
    path = write_graph(tmp_path / "g.pgp.vrt", CALC)
    ds = gdal.Open(path)
    band = ds.GetRasterBand(1)
    overview = band.GetOverview(1).ReadAsArray()  # 250 x 175
    np.testing.assert_array_equal(band.ReadAsArray(buf_xsize=250, buf_ysize=175), overview)
    assert ds.GetMetadataItem("TILES_COMPUTED", "PGP") == "0"
    # without overviews the same read computes full-resolution tiles
    off = gdal.OpenEx(path, open_options=["OVERVIEWS=NO"])
    off.GetRasterBand(1).ReadAsArray(buf_xsize=250, buf_ysize=175)
    assert int(off.GetMetadataItem("TILES_COMPUTED", "PGP")) > 0


def test_zoomed_out_view_of_a_large_graph_reads_no_full_resolution_pixel(tmp_path):
    """A 40000 x 30000 graph (sparse GeoTIFF sources: no pixel stored), viewed
    512 pixels wide: only coarse tiles are computed, from at most the view's own
    pixels times the number of sources read at the coarse grid."""
    for name in ("a.tif", "b.tif"):
        ds = gdal.GetDriverByName("GTiff").Create(
            str(tmp_path / name), 40000, 30000, 1, gdal.GDT_Float32,
            ["TILED=YES", "SPARSE_OK=TRUE", "BLOCKXSIZE=512", "BLOCKYSIZE=512"])
        ds.SetGeoTransform((0, 30, 0, 900000, 0, -30))
        ds = None
    ds = gdal.Open(write_graph(tmp_path / "g.pgp.vrt", CALC, block=(256, 256)))
    view = ds.GetRasterBand(1).ReadAsArray(buf_xsize=512, buf_ysize=384)
    np.testing.assert_array_equal(view, np.zeros((384, 512), np.float32))
    assert ds.GetMetadataItem("TILES_COMPUTED", "PGP") == "0"
    assert ds.GetMetadataItem("SOURCE_PIXELS_READ", "PGP") == "0"
    # GDAL picks the 625 x 469 level (factor 64) for a 512-wide view
    level_pixels = 625 * 469
    read = int(ds.GetMetadataItem("OVERVIEW_SOURCE_PIXELS_READ", "PGP"))
    assert 0 < read <= 2 * level_pixels
    assert int(ds.GetMetadataItem("OVERVIEW_TILES_COMPUTED", "PGP")) <= 3 * 2


def test_gdal_translate_of_an_overview_level(tmp_path):
    a, b = calc_inputs(tmp_path, 700, 1000)
    path = write_graph(tmp_path / "g.pgp.vrt", CALC)
    out = tmp_path / "ov.tif"
    run(["gdal_translate", "-q", "-ovr", "0", path, str(out)])
    np.testing.assert_array_equal(read(out), calc(nearest(a, 350, 500), nearest(b, 350, 500)))


def test_aligned_overview_warps_from_the_sources_own_overview(tmp_path):
    """With <Align> (no reprojection), a level warps the source's coarsest overview
    that is still at least as fine as the level, as gdalwarp -ovr would."""
    rng = np.random.default_rng(12)
    write_raster(tmp_path / "dem.tif", rng.uniform(0, 100, (600, 800)).astype(np.float32),
                 nodata=-9999)
    run(["gdaladdo", "-q", "-r", "average", str(tmp_path / "dem.tif"), "2", "4", "8"])
    ds = gdal.Open(write_graph(tmp_path / "g.pgp.vrt", """<Source name="dem" file="dem.tif"/>
<Align boundingBox="intersection" pixelSize="45,-45">
  <Input ref="dem" resampling="bilinear"/></Align><Band ref="dem"/>"""))
    gt = ds.GetGeoTransform()
    extent = [gt[0], gt[3] + ds.RasterYSize * gt[5], gt[0] + ds.RasterXSize * gt[1], gt[3]]
    band = ds.GetRasterBand(1)
    # levels of 90 m and 180 m pixels: the source's 60 m and 120 m overviews (levels 0, 1)
    for index, source_level in ((0, 0), (1, 1)):
        ov = band.GetOverview(index)
        source = gdal.OpenEx(str(tmp_path / "dem.tif"), open_options=[
            f"OVERVIEW_LEVEL={source_level}"])
        expected = gdal.Warp("", source, format="MEM", outputBounds=extent, width=ov.XSize,
                             height=ov.YSize, resampleAlg="bilinear").ReadAsArray()
        np.testing.assert_array_equal(ov.ReadAsArray(), expected)
        full = gdal.Warp("", str(tmp_path / "dem.tif"), format="MEM", outputBounds=extent,
                         width=ov.XSize, height=ov.YSize, resampleAlg="bilinear",
                         overviewLevel="NONE").ReadAsArray()
        assert not np.array_equal(full, expected)  # the source's overview made a difference


@pytest.mark.parametrize("cache_mb", [256, 0])
def test_resampled_reads_without_overviews_compute_tiles_in_parallel(tmp_path, cache_mb):
    """OVERVIEWS=NO: GDAL resamples blocks; pgp computes the window's tiles on the
    executor first (unless they would not fit in the cache), same bits either way."""
    a, b = calc_inputs(tmp_path, 700, 1000)
    path = write_graph(tmp_path / "g.pgp.vrt", CALC)
    expected = nearest(calc(a, b), 175, 250)
    for executor in ("serial", "threading:4"):
        ds = gdal.OpenEx(path, open_options=["OVERVIEWS=NO", f"EXECUTOR={executor}",
                                             f"CACHE_MB={cache_mb}", "PREFETCH=0"])
        band = ds.GetRasterBand(1)
        np.testing.assert_array_equal(band.ReadAsArray(buf_xsize=250, buf_ysize=175), expected)
        np.testing.assert_array_equal(ds.ReadAsArray(buf_xsize=250, buf_ysize=175), expected)
        # every tile once: warmed in the cache, or read once into GDAL's block cache
        assert ds.GetMetadataItem("TILES_COMPUTED", "PGP") == str(11 * 16)


def test_reprojected_overview_warps_from_the_sources_own_overview(tmp_path):
    """A geographic source on a UTM grid: its pixel width on the grid comes from its
    box transformed into UTM; the level warps the coarsest overview no wider."""
    from osgeo import osr
    rng = np.random.default_rng(13)
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "geo.tif"), 400, 300, 1,
                                              gdal.GDT_Float32, ["TILED=YES"])
    ds.SetGeoTransform((-75.5, 0.0005, 0, 33.9, 0, -0.0005))
    geographic = osr.SpatialReference()
    geographic.ImportFromEPSG(4326)
    ds.SetProjection(geographic.ExportToWkt())
    ds.GetRasterBand(1).WriteArray(rng.uniform(0, 100, (300, 400)).astype(np.float32))
    ds = None
    run(["gdaladdo", "-q", "-r", "average", str(tmp_path / "geo.tif"), "2", "4", "8"])
    ds = gdal.Open(write_graph(tmp_path / "g.pgp.vrt", """<Source name="geo" file="geo.tif"/>
<Align boundingBox="intersection" pixelSize="30,-30" srs="EPSG:32618">
  <Input ref="geo" resampling="bilinear"/></Align><Band ref="geo"/>"""))
    gt = ds.GetGeoTransform()
    extent = [gt[0], gt[3] + ds.RasterYSize * gt[5], gt[0] + ds.RasterXSize * gt[1], gt[3]]
    # the source's width on the grid: its box's corners in UTM (~46.5 m a pixel)
    utm = osr.SpatialReference()
    utm.ImportFromEPSG(32618)
    for s in (geographic, utm):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_utm = osr.CoordinateTransformation(geographic, utm)
    xs = [to_utm.TransformPoint(-75.5, lat)[0] for lat in np.linspace(33.75, 33.9, 11)] + \
         [to_utm.TransformPoint(-75.3, lat)[0] for lat in np.linspace(33.75, 33.9, 11)]
    source_pixel = (max(xs[11:]) - min(xs[:11])) / 400
    band = ds.GetRasterBand(1)
    levels = [band.GetOverview(i) for i in range(band.GetOverviewCount())]
    used = []
    for ov in levels[:3]:
        level_pixel = gt[1] * ds.RasterXSize / ov.XSize
        widths = [source_pixel * 2 ** (k + 1) for k in range(3)]
        k = max([i for i, w in enumerate(widths) if w <= level_pixel], default=None)
        used.append(k)
        source = gdal.OpenEx(str(tmp_path / "geo.tif"), open_options=[] if k is None else [
            f"OVERVIEW_LEVEL={k}"])
        expected = gdal.Warp("", source, format="MEM", dstSRS="EPSG:32618",
                             outputBounds=extent, width=ov.XSize, height=ov.YSize,
                             resampleAlg="bilinear", overviewLevel="NONE").ReadAsArray()
        np.testing.assert_array_equal(ov.ReadAsArray(), expected)
    assert used[:2] == [None, 0]  # 60 m: full resolution; 120 m: the 93 m overview


def test_gdaladdo_is_refused_with_a_reason(tmp_path):
    calc_inputs(tmp_path, 600, 600)
    path = write_graph(tmp_path / "g.pgp.vrt", CALC)
    result = run(["gdaladdo", path, "2", "4"], check=False)
    assert result.returncode != 0
    assert "compute their overview levels on demand" in result.stderr
    assert not os.path.exists(path + ".ovr")


def test_gdalinfo_and_rasterio_see_the_levels(tmp_path):
    a, b = calc_inputs(tmp_path, 700, 1000)
    path = write_graph(tmp_path / "g.pgp.vrt", CALC)
    assert "Overviews: 500x350, 250x175" in run(["gdalinfo", path]).stdout
    rasterio = pytest.importorskip("rasterio")
    from rasterio.enums import Resampling
    with rasterio.open(path) as src:
        assert src.overviews(1) == [2, 4]
        # a decimated read (what rasterio's users do for previews) comes from a level
        view = src.read(1, out_shape=(175, 250), resampling=Resampling.nearest)
    np.testing.assert_array_equal(view, calc(nearest(a, 175, 250), nearest(b, 175, 250)))
