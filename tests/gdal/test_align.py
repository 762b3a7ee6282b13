#!/usr/bin/python3
"""<Align> through osgeo.gdal, against pygeoprocessing's grid rules and gdalwarp."""
import math
import os

import numpy as np
import pytest
from osgeo import gdal
from scipy import ndimage

from conftest import isnodata, read, run, write_graph, write_raster


def inputs(tmp_path):
    rng = np.random.default_rng(8)
    dem = rng.uniform(100, 900, (80, 100)).astype(np.float32)
    dem[5:9, 5:9] = -9999
    write_raster(tmp_path / "dem.tif", dem, nodata=-9999, origin=(444720.0, 3751320.0),
                 pixel=30.0)
    lulc = rng.integers(1, 6, (60, 70)).astype(np.uint8)
    lulc[10:14, 20:30] = 255
    write_raster(tmp_path / "lulc.tif", lulc, nodata=255, origin=(444737.0, 3751290.0),
                 pixel=45.0)
    return dem, lulc


def bbox(path):
    ds = gdal.Open(str(path))
    gt = ds.GetGeoTransform()
    xs = (gt[0], gt[0] + ds.RasterXSize * gt[1])
    ys = (gt[3], gt[3] + ds.RasterYSize * gt[5])
    return [min(xs), min(ys), max(xs), max(ys)], gt


def expected_grid(paths, pixel, align_path=None):
    """pygeoprocessing: intersection, min-corner snapping by truncation, ceiling size."""
    boxes = [bbox(p)[0] for p in paths]
    bb = [max(b[0] for b in boxes), max(b[1] for b in boxes),
          min(b[2] for b in boxes), min(b[3] for b in boxes)]
    if align_path:
        abb, agt = bbox(align_path)
        for i, p in ((0, agt[1]), (1, agt[5])):
            bb[i] = abb[i] + int((bb[i] - abb[i]) / p) * p
    nx = int(abs((bb[2] - bb[0]) / pixel))
    ny = int(abs((bb[3] - bb[1]) / pixel))
    if not math.isclose(abs(nx * pixel) - (bb[2] - bb[0]), 0.0, abs_tol=1e-8):
        nx += 1
    if not math.isclose(abs(ny * pixel) - (bb[3] - bb[1]), 0.0, abs_tol=1e-8):
        ny += 1
    return nx, ny, (bb[0], pixel, 0.0, bb[1] + ny * pixel, 0.0, -pixel)


def gdalwarp(tmp_path, source, grid, method, extra=()):
    nx, ny, gt = grid
    out = tmp_path / f"warp_{source}_{method}.tif"
    run(["gdalwarp", "-q", "-overwrite", "-te", str(gt[0]), str(gt[3] - ny * gt[1]),
         str(gt[0] + nx * gt[1]), str(gt[3]), "-tr", str(gt[1]), str(gt[1]), "-r", method,
         *extra, str(tmp_path / source), str(out)])
    return gdal.Open(str(out)).ReadAsArray()


ALIGN = """<Source name="dem" file="dem.tif"/><Source name="lulc" file="lulc.tif"/>
<Align boundingBox="intersection" pixelSize="30,-30" alignTo="dem">
  <Input ref="dem" resampling="{dem}"/><Input ref="lulc" resampling="near"/>
</Align>"""


@pytest.mark.parametrize("dem_method", ["near", "bilinear"])
def test_aligned_sources_equal_gdalwarp(tmp_path, dem_method):
    inputs(tmp_path)
    graph = write_graph(tmp_path / "g.pgp.vrt",
                        ALIGN.format(dem=dem_method) + '<Band ref="dem"/><Band ref="lulc"/>')
    grid = expected_grid([tmp_path / "dem.tif", tmp_path / "lulc.tif"], 30.0,
                         tmp_path / "dem.tif")
    ds = gdal.Open(graph)
    assert (ds.RasterXSize, ds.RasterYSize) == grid[:2]
    np.testing.assert_allclose(ds.GetGeoTransform(), grid[2], rtol=0, atol=1e-6)
    dem, lulc = read(graph)
    assert ds.GetRasterBand(2).DataType == gdal.GDT_Byte
    assert ds.GetRasterBand(2).GetNoDataValue() == 255
    np.testing.assert_array_equal(lulc, gdalwarp(tmp_path, "lulc.tif", grid, "near"))
    np.testing.assert_array_equal(dem, gdalwarp(tmp_path, "dem.tif", grid, dem_method))


def test_chain_align_calc_convolve_equals_steps_done_one_at_a_time(tmp_path):
    inputs(tmp_path)
    graph = write_graph(tmp_path / "g.pgp.vrt", ALIGN.format(dem="near") + """
<Calc name="risk" dataType="Float32" noData="-1">
  <Expression>where(lulc == 3, dem * 0.5, dem * 0.1)</Expression></Calc>
<Convolve name="smooth" input="risk" method="direct" dataType="Float32" noData="-1"
          ignoreNoDataAndEdges="true" normalizeKernel="true">
  <Kernel rows="3" cols="3">1 2 1 2 4 2 1 2 1</Kernel></Convolve>
<Band ref="smooth"/>""", block=(32, 24))
    out = tmp_path / "chain.tif"
    run(["gdal_translate", "-q", graph, str(out)], env={"PGP_EXECUTOR": "threading:2"})
    grid = expected_grid([tmp_path / "dem.tif", tmp_path / "lulc.tif"], 30.0,
                         tmp_path / "dem.tif")
    dem = gdalwarp(tmp_path, "dem.tif", grid, "near").astype(np.float64)
    lulc = gdalwarp(tmp_path, "lulc.tif", grid, "near")
    nodata = isnodata(dem, -9999) | (lulc == 255)
    risk = np.where(nodata, -1, np.where(lulc == 3, dem * 0.5, dem * 0.1)).astype(np.float32)
    valid = ~isnodata(risk, -1.0)
    k = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], float) / 16
    s = np.where(valid, risk.astype(np.float64), 0)
    c = ndimage.convolve(s, k, mode="constant")
    m = ndimage.convolve(valid.astype(float), k, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        smooth = np.where(m > 1e-12, c / m, 0)
    smooth[np.abs(smooth) <= 1e-8] = 0
    smooth[~valid] = -1
    result = gdal.Open(str(out)).ReadAsArray()
    np.testing.assert_allclose(result, smooth.astype(np.float32), rtol=1e-6)


def test_identical_across_executors_and_windows(tmp_path):
    inputs(tmp_path)
    graph = write_graph(tmp_path / "g.pgp.vrt", ALIGN.format(dem="cubic") +
                        '<Band ref="dem"/>', block=(40, 24))
    outputs = []
    for executor in ["serial", "threading:1", "threading:4"]:
        ds = gdal.OpenEx(graph, open_options=[f"EXECUTOR={executor}"])
        whole = ds.ReadAsArray()
        assert ds.ReadAsArray(7, 5, 37, 41).tobytes() == whole[5:46, 7:44].tobytes()
        outputs.append(whole.tobytes())
    assert outputs[0] == outputs[1] == outputs[2]


def test_reprojection_from_geographic_matches_gdalwarp(tmp_path):
    values = np.arange(40 * 50, dtype=np.int16).reshape(40, 50)
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "geo.tif"), 50, 40, 1,
                                              gdal.GDT_Int16)
    ds.SetGeoTransform((-75.5, 0.002, 0, 40.1, 0, -0.002))
    ds.SetProjection('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
                     '298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433],'
                     'AUTHORITY["EPSG","4326"]]')
    ds.GetRasterBand(1).WriteArray(values)
    ds = None
    graph = write_graph(tmp_path / "g.pgp.vrt", """<Source name="geo" file="geo.tif"/>
<Align boundingBox="intersection" pixelSize="150,-150" srs="EPSG:32618"/>
<Band ref="geo"/>""")
    ds = gdal.Open(graph)
    gt, nx, ny = ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize
    out = tmp_path / "w.tif"
    run(["gdalwarp", "-q", "-t_srs", "EPSG:32618", "-te", repr(gt[0]), repr(gt[3] + ny * gt[5]),
         repr(gt[0] + nx * gt[1]), repr(gt[3]), "-tr", "150", "150", "-r", "near",
         str(tmp_path / "geo.tif"), str(out)])
    np.testing.assert_array_equal(ds.ReadAsArray(), gdal.Open(str(out)).ReadAsArray())
    assert "32618" in ds.GetSpatialRef().ExportToWkt()


@pytest.mark.parametrize("align,message", [
    ('<Align pixelSize="30,-30"><Input ref="dem" resampling="nearest-ish"/></Align>',
     "<Align> <Input ref='dem'>"),
    ('<Align pixelSize="30,-30" srs="EPSG:999999"/>', "srs 'EPSG:999999'"),
    ('<Align pixelSize="30,-30" alignTo="nothing"/>', "alignTo 'nothing'"),
    ('<Align pixelSize="0,30"/>', "pixelSize"),
    ('<Align pixelSize="a,b"/>', "pixelSize"),
    ('<Align pixelSize="30,-30" boundingBox="sideways"/>', "boundingBox"),
    ('<Align pixelSize="30,-30"><Input ref="lulc"/><Input ref="lulc"/></Align>',
     "two <Input>s"),
])
def test_bad_align(tmp_path, align, message):
    inputs(tmp_path)
    graph = write_graph(tmp_path / "g.pgp.vrt", '<Source name="dem" file="dem.tif"/>'
                        '<Source name="lulc" file="lulc.tif"/>' + align + '<Band ref="dem"/>')
    with pytest.raises(RuntimeError) as error:
        gdal.Open(graph)
    assert "<Align>" in str(error.value) and message in str(error.value)


def test_disjoint_sources_do_not_intersect(tmp_path):
    write_raster(tmp_path / "a.tif", np.ones((10, 10), np.float32), origin=(0, 1000))
    write_raster(tmp_path / "b.tif", np.ones((10, 10), np.float32), origin=(5000, 1000))
    graph = write_graph(tmp_path / "g.pgp.vrt", '<Source name="a" file="a.tif"/>'
                        '<Source name="b" file="b.tif"/><Align pixelSize="30,-30"/>'
                        '<Band ref="a"/>')
    with pytest.raises(RuntimeError, match="do not intersect"):
        gdal.Open(graph)


# ---- <Mask>: pygeoprocessing's mask_options ----------------------------------

KEEP = [  # (kind, WKT) in UTM 18N; edges on pixel centre lines and corners too
    ("keep", "POLYGON ((444800 3749000, 446500 3749000, 446500 3750800, 444800 3750800, "
             "444800 3749000), (445500 3749500, 445935 3749500, 445935 3750015, "
             "445500 3750015, 445500 3749500))"),
    ("keep", "MULTIPOLYGON (((446000 3750000, 447500 3750100, 446800 3751200, "
             "446000 3750000)), ((447000 3749000, 447300 3749000, 447300 3749300, "
             "447000 3749000)))"),
    ("drop", "POLYGON ((445000 3749100, 447600 3749100, 447600 3749900, 445000 3749900, "
             "445000 3749100))"),
]


def write_mask(path, epsg=32618):
    """A GeoPackage: layer 'zones' (KEEP, in epsg) and layer 'other' (one big square)."""
    from osgeo import ogr, osr
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    target = osr.SpatialReference()
    target.ImportFromEPSG(epsg)
    for s in (srs, target):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_target = osr.CoordinateTransformation(srs, target)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    zones = ds.CreateLayer("zones", target, ogr.wkbUnknown)
    zones.CreateField(ogr.FieldDefn("kind", ogr.OFTString))
    for kind, wkt in KEEP:
        feature = ogr.Feature(zones.GetLayerDefn())
        feature.SetField("kind", kind)
        geometry = ogr.CreateGeometryFromWkt(wkt)
        geometry.Transform(to_target)
        feature.SetGeometry(geometry)
        zones.CreateFeature(feature)
    other = ds.CreateLayer("other", srs, ogr.wkbPolygon)
    feature = ogr.Feature(other.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt(
        "POLYGON ((444000 3748000, 448000 3748000, 448000 3752000, 444000 3752000, "
        "444000 3748000))"))
    other.CreateFeature(feature)
    ds = None
    return str(path)


def rasterized(path, grid, srs, layer=None, where=None):
    """pygeoprocessing's mask: a Byte raster on the grid, 0 filled, 1 burnt by
    gdal.RasterizeLayer with default options (pixel centres) and the filter."""
    nx, ny, gt = grid
    mem = gdal.GetDriverByName("MEM").Create("", nx, ny, 1, gdal.GDT_Byte)
    mem.SetGeoTransform(gt)
    mem.SetProjection(srs)
    vector = gdal.OpenEx(path, gdal.OF_VECTOR)
    lyr = vector.GetLayerByName(layer) if layer else vector.GetLayer(0)
    if where:
        lyr.SetAttributeFilter(where)
    gdal.RasterizeLayer(mem, [1], lyr, burn_values=[1])
    return mem.ReadAsArray()


MASKED = """<Source name="dem" file="dem.tif"/><Source name="lulc" file="lulc.tif"/>
<Source name="plain" file="plain.tif"/>
<Align boundingBox="intersection" pixelSize="30,-30" alignTo="dem">
  <Input ref="dem" resampling="bilinear"/><Input ref="plain" resampling="cubic"/>
  {mask}
</Align><Band ref="dem"/><Band ref="lulc"/><Band ref="plain"/>"""


def masked_inputs(tmp_path):
    inputs(tmp_path)
    rng = np.random.default_rng(9)
    # No nodata: masked pixels are 0, like the warp's fill outside the source.
    write_raster(tmp_path / "plain.tif", rng.uniform(1, 50, (75, 90)).astype(np.float32),
                 origin=(444700.0, 3751330.0), pixel=33.0)
    return expected_grid([tmp_path / "dem.tif", tmp_path / "lulc.tif", tmp_path / "plain.tif"],
                         30.0, tmp_path / "dem.tif")


def expected_masked(tmp_path, grid, mask):
    out = []
    for source, method, nodata in [("dem.tif", "bilinear", -9999), ("lulc.tif", "near", 255),
                                   ("plain.tif", "cubic", 0)]:
        warped = gdalwarp(tmp_path, source, grid, method)
        out.append(np.where(mask == 1, warped, np.array(nodata, warped.dtype)))
    return out


@pytest.mark.parametrize("epsg", [32618, 4326])
def test_mask_equals_warp_then_rasterize(tmp_path, epsg):
    masked_inputs(tmp_path)
    path = write_mask(tmp_path / "mask.gpkg", epsg)
    # A layer in another SRS is rasterised through a reprojection to the
    # grid's; pygeoprocessing's box check only transforms its box when a
    # target SRS is given.
    body = MASKED.format(mask='<Mask vector="mask.gpkg" layer="zones" where="kind = \'keep\'"/>')
    if epsg != 32618:
        body = body.replace('alignTo="dem"', 'alignTo="dem" srs="EPSG:32618"')
    graph = write_graph(tmp_path / "g.pgp.vrt", body, block=(40, 24))
    ds = gdal.Open(graph)
    grid = (ds.RasterXSize, ds.RasterYSize, ds.GetGeoTransform())
    mask = rasterized(path, grid, ds.GetProjection(), "zones", "kind = 'keep'")
    assert 0 < mask.sum() < mask.size * 0.8  # the filter and the hole matter
    expect = expected_masked(tmp_path, grid, mask)
    out = tmp_path / "out.tif"  # a GeoTIFF holds one type: Float32 for all three
    run(["gdal_translate", "-q", graph, str(out)], env={"PGP_EXECUTOR": "threading:2"})
    for got, want in zip(read(out), expect):
        assert got.tobytes() == want.astype(np.float32).tobytes()
    # Identical for every executor and for odd windows.
    for executor in ["serial", "threading:1", "threading:4"]:
        ds = gdal.OpenEx(graph, open_options=[f"EXECUTOR={executor}"])
        for band, want in enumerate(expect):
            b = ds.GetRasterBand(band + 1)
            assert b.ReadAsArray().tobytes() == want.tobytes(), (executor, band)
            assert b.ReadAsArray(7, 5, 37, 41).tobytes() == want[5:46, 7:44].tobytes()


def test_mask_defaults_to_the_first_layer_and_every_feature(tmp_path):
    grid = masked_inputs(tmp_path)
    path = write_mask(tmp_path / "mask.gpkg")
    graph = write_graph(tmp_path / "g.pgp.vrt", MASKED.format(mask='<Mask vector="mask.gpkg"/>'))
    srs = gdal.Open(graph).GetProjection()
    expect = expected_masked(tmp_path, grid, rasterized(path, grid, srs))
    for got, want in zip(read(graph), expect):
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("mask,message", [
    ('<Mask vector="missing.gpkg"/>', "cannot open"),
    ('<Mask vector="mask.gpkg" layer="nothing"/>', "no layer 'nothing'"),
    ('<Mask vector="mask.gpkg" where="kind = = 1"/>', "where 'kind = = 1'"),
    ('<Mask vector="mask.gpkg" where="colour = \'red\'"/>', "colour"),
    ('<Mask vector="mask.gpkg" where="kind = \'none\'"/>', "no feature"),
    ('<Mask layer="zones"/>', "missing vector"),
    ('<Mask vector="mask.gpkg" fill="1"/>', "unknown attribute 'fill'"),
    ('<Mask vector="mask.gpkg"/><Mask vector="mask.gpkg"/>', "at most one <Mask>"),
])
def test_bad_mask(tmp_path, mask, message):
    masked_inputs(tmp_path)
    write_mask(tmp_path / "mask.gpkg")
    graph = write_graph(tmp_path / "g.pgp.vrt", MASKED.format(mask=mask))
    with pytest.raises(RuntimeError) as error:
        gdal.Open(graph)
    assert "<Mask>" in str(error.value) and message in str(error.value)


def test_mask_outside_the_box(tmp_path):
    masked_inputs(tmp_path)
    from osgeo import ogr
    ds = ogr.GetDriverByName("GeoJSON").CreateDataSource(str(tmp_path / "far.geojson"))
    layer = ds.CreateLayer("far", None, ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt("POLYGON ((0 0, 10 0, 10 10, 0 0))"))
    layer.CreateFeature(feature)
    ds = None
    graph = write_graph(tmp_path / "g.pgp.vrt", MASKED.format(mask='<Mask vector="far.geojson"/>'))
    with pytest.raises(RuntimeError, match="<Mask>.*does not intersect"):
        gdal.Open(graph)


def test_mask_vector_is_listed_and_fingerprinted(tmp_path):
    masked_inputs(tmp_path)
    write_mask(tmp_path / "mask.gpkg")
    graph = write_graph(tmp_path / "g.pgp.vrt", MASKED.format(mask='<Mask vector="mask.gpkg"/>'))
    ds = gdal.Open(graph)
    assert str(tmp_path / "mask.gpkg") in ds.GetFileList()
    ds.GetRasterBand(1).ComputeStatistics(False)
    ds = None
    ds = gdal.Open(graph)
    assert ds.GetRasterBand(1).GetStatistics(0, 0)[3] >= 0  # served from the sidecar
    ds = None
    stat = os.stat(tmp_path / "mask.gpkg")
    os.utime(tmp_path / "mask.gpkg", (stat.st_atime, stat.st_mtime + 10))
    ds = gdal.Open(graph)
    assert ds.GetRasterBand(1).GetStatistics(0, 0) == [0.0, 0.0, 0.0, -1.0]  # stale: ignored


def test_masked_overview_warps_and_masks_on_the_coarse_grid(tmp_path):
    masked_inputs(tmp_path)
    path = write_mask(tmp_path / "mask.gpkg")
    rng = np.random.default_rng(3)  # a bigger dem so that there is an overview
    write_raster(tmp_path / "big.tif", rng.uniform(1, 9, (400, 600)).astype(np.float32),
                 nodata=-9999)
    graph = write_graph(tmp_path / "g.pgp.vrt", """<Source name="dem" file="big.tif"/>
<Align boundingBox="intersection" pixelSize="30,-30">
  <Input ref="dem" resampling="bilinear"/><Mask vector="mask.gpkg" layer="other"/>
</Align><Band ref="dem"/>""")
    ds = gdal.Open(graph)
    ov = ds.GetRasterBand(1).GetOverview(0)
    gt = ds.GetGeoTransform()
    coarse_gt = (gt[0], gt[1] * ds.RasterXSize / ov.XSize, 0, gt[3], 0,
                 gt[5] * ds.RasterYSize / ov.YSize)
    mask = rasterized(path, (ov.XSize, ov.YSize, coarse_gt), ds.GetProjection(), "other")
    assert 0 < mask.sum() < mask.size
    out = tmp_path / "coarse.tif"
    extent = [gt[0], gt[3] + ds.RasterYSize * gt[5], gt[0] + ds.RasterXSize * gt[1], gt[3]]
    run(["gdalwarp", "-q", "-te", *map(repr, extent), "-ts", str(ov.XSize), str(ov.YSize),
         "-r", "bilinear", str(tmp_path / "big.tif"), str(out)])
    warped = gdal.Open(str(out)).ReadAsArray()
    expected = np.where(mask == 1, warped, np.float32(-9999))
    assert ov.ReadAsArray().tobytes() == expected.tobytes()
