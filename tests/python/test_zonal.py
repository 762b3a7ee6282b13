"""pgp.zonal_statistics against an independent computation: per feature, GDAL's
RasterizeLayer over the whole raster plus numpy (pygeoprocessing's documented
semantics, with its FID and float32-sum bugs fixed: docs/zonal.md); and
pgp.reproject_vector against OGR's own transformation of each feature."""
import numpy
import pytest
from osgeo import gdal, ogr, osr

import pgp
from pgp_testing import EXECUTORS, executor_for, write_raster

UTM = osr.SpatialReference()
UTM.ImportFromEPSG(32618)
ORIGIN = (444720.0, 3751320.0)
PIXEL = 30.0


def polygon(x, y, radius, segments=8):
    return ogr.CreateGeometryFromWkt(f"POINT ({x} {y})").Buffer(radius, segments)


def write_layer(path, geometries, srs=UTM, fids=None, geom_type=ogr.wkbPolygon, name="zones"):
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer(name, srs, geom_type)
    for i, geometry in enumerate(geometries):
        feature = ogr.Feature(layer.GetLayerDefn())
        if fids is not None:
            feature.SetFID(fids[i])
        if geometry is not None:
            feature.SetGeometry(geometry)
        layer.CreateFeature(feature)
    ds = None
    return str(path)


def open_layer(path):
    """(dataset, first layer): the dataset must outlive the layer (osgeo does not
    keep it alive)."""
    dataset = gdal.OpenEx(str(path), gdal.OF_VECTOR)
    return dataset, dataset.GetLayer(0)


def to_map(col, row):
    return ORIGIN[0] + col * PIXEL, ORIGIN[1] - row * PIXEL


@pytest.fixture(scope="module")
def zones(tmp_path_factory):
    """A 300x200 Float32 raster (nodata -9), an Int16 copy, and polygons: large,
    overlapping, touching, sub-pixel, outside, partly outside, no geometry."""
    folder = tmp_path_factory.mktemp("zonal")
    rng = numpy.random.default_rng(11)
    a = rng.uniform(-50, 50, (200, 300)).astype(numpy.float32)
    a[rng.random(a.shape) < 0.05] = -9
    b = rng.integers(0, 6, (200, 300)).astype(numpy.int16)
    geometries = [polygon(*to_map(60, 50), 40 * PIXEL), polygon(*to_map(90, 60), 30 * PIXEL),
                  ogr.CreateGeometryFromWkt("POLYGON ((%f %f, %f %f, %f %f, %f %f, %f %f))" % (
                      *to_map(150, 100), *to_map(200, 100), *to_map(200, 150),
                      *to_map(150, 150), *to_map(150, 100))),
                  ogr.CreateGeometryFromWkt("POLYGON ((%f %f, %f %f, %f %f, %f %f, %f %f))" % (
                      *to_map(200, 100), *to_map(240, 100), *to_map(240, 150),
                      *to_map(200, 150), *to_map(200, 100))),  # touches the one before
                  polygon(*to_map(250.3, 30.3), 0.1 * PIXEL),  # sub-pixel: no centre
                  polygon(*to_map(10.5, 190.5), 0.2 * PIXEL),  # sub-pixel on a centre
                  polygon(*to_map(-50, -50), 5 * PIXEL),       # outside the raster
                  polygon(*to_map(295, 195), 20 * PIXEL),      # partly outside
                  None]                                        # no geometry
    geometries += [polygon(*to_map(x, y), r * PIXEL)
                   for x, y, r in zip(rng.uniform(0, 300, 25), rng.uniform(0, 200, 25),
                                      rng.uniform(0.3, 12, 25))]
    return {"a": write_raster(folder / "a.tif", a, nodata=-9),
            "b": write_raster(folder / "b.tif", b, nodata=5),
            "A": a, "B": b, "folder": folder,
            "vector": write_layer(folder / "zones.gpkg", geometries)}


def rasterized(vector_path, fid, shape, all_touched=False, srs=UTM):
    mem = gdal.GetDriverByName("MEM").Create("", shape[1], shape[0], 1, gdal.GDT_Byte)
    mem.SetGeoTransform((ORIGIN[0], PIXEL, 0, ORIGIN[1], 0, -PIXEL))
    mem.SetProjection(srs.ExportToWkt())
    vector = gdal.OpenEx(vector_path, gdal.OF_VECTOR)
    layer = vector.GetLayer(0)
    layer.SetAttributeFilter(f"fid = {fid}")
    gdal.RasterizeLayer(mem, [1], layer, burn_values=[1],
                        options=["ALL_TOUCHED=TRUE"] if all_touched else [])
    return mem.ReadAsArray() == 1


def expected_stats(values, nodata, ignore_nodata=True):
    """pygeoprocessing's per-feature numbers over the pixels `values`, sums in double."""
    is_nodata = values == nodata
    counted = values[~is_nodata] if ignore_nodata else values
    out = {"count": counted.size, "nodata_count": int(is_nodata.sum())}
    if counted.size:
        out.update(min=counted.min(), max=counted.max(), sum=counted.astype(numpy.float64).sum())
    return out


def envelope_window(vector_path, fid, shape):
    """pygeoprocessing's fallback window: envelope offset truncated, far edge ceil."""
    _dataset, layer = open_layer(vector_path)
    feature = layer.GetFeature(fid)  # kept: the geometry belongs to it
    x_min, x_max, y_min, y_max = feature.GetGeometryRef().GetEnvelope()
    xoff = int((x_min - ORIGIN[0]) / PIXEL)
    yoff = int((y_max - ORIGIN[1]) / -PIXEL)
    w = int(numpy.ceil((x_max - ORIGIN[0]) / PIXEL)) - xoff
    h = int(numpy.ceil((y_min - ORIGIN[1]) / -PIXEL)) - yoff
    if xoff < 0:
        w, xoff = w + xoff, 0
    if yoff < 0:
        h, yoff = h + yoff, 0
    w, h = min(w, shape[1] - xoff), min(h, shape[0] - yoff)
    return (xoff, yoff, w, h) if w > 0 and h > 0 else None


def check_against_oracle(result, vector_path, array, nodata, ignore_nodata=True,
                         all_touched=False, value_counts=False):
    _dataset, layer = open_layer(vector_path)
    fids = [f.GetFID() for f in layer]
    assert sorted(result) == sorted(fids)
    fallbacks = 0
    for fid in fids:
        got = result[fid]
        mask = rasterized(vector_path, fid, array.shape, all_touched)
        values = array[mask]
        if mask.sum() == 0:
            window = None
            feature = layer.GetFeature(fid)
            if feature.GetGeometryRef() is not None:
                window = envelope_window(vector_path, fid, array.shape)
            if window is None:
                assert got == {"min": None, "max": None, "count": 0, "nodata_count": 0,
                               "sum": 0, "average": None,
                               **({"value_counts": {}} if value_counts else {})}, fid
                continue
            fallbacks += 1
            xoff, yoff, w, h = window
            values = array[yoff:yoff + h, xoff:xoff + w].ravel()
        want = expected_stats(values, nodata, ignore_nodata)
        assert (got["count"], got["nodata_count"]) == (want["count"], want["nodata_count"]), fid
        if want["count"]:
            assert got["min"] == want["min"] and got["max"] == want["max"], fid
            assert got["sum"] == pytest.approx(want["sum"], rel=1e-12), fid
            assert got["average"] == pytest.approx(want["sum"] / want["count"], rel=1e-12)
        if value_counts:
            counted = values[values != nodata] if ignore_nodata else values
            unique, counts = numpy.unique(counted, return_counts=True)
            assert got["value_counts"] == dict(zip(unique.tolist(), counts.tolist())), fid
    return fallbacks


def test_float_raster_against_rasterize_and_numpy(zones):
    result = pgp.zonal_statistics((zones["a"], 1), zones["vector"])
    fallbacks = check_against_oracle(result, zones["vector"], zones["A"], -9)
    assert fallbacks >= 1  # the sub-pixel polygon takes pygeoprocessing's envelope path


@pytest.mark.parametrize("ignore_nodata", [True, False])
def test_integer_raster_with_value_counts(zones, ignore_nodata):
    result = pgp.zonal_statistics((zones["b"], 1), zones["vector"], ignore_nodata=ignore_nodata,
                                  include_value_counts=True)
    check_against_oracle(result, zones["vector"], zones["B"], 5, ignore_nodata,
                         value_counts=True)
    assert all(isinstance(s["min"], int) for s in result.values() if s["count"])


def test_all_touched(zones):
    result = pgp.zonal_statistics((zones["a"], 1), zones["vector"], all_touched=True)
    check_against_oracle(result, zones["vector"], zones["A"], -9, all_touched=True)


def test_extra_statistics(zones):
    result = pgp.zonal_statistics((zones["b"], 1), zones["vector"], extra_statistics=True)
    for fid, stats in result.items():
        mask = rasterized(zones["vector"], fid, zones["B"].shape)
        values = zones["B"][mask]
        values = values[values != 5]
        if mask.sum() == 0 or values.size == 0:
            continue
        unique, counts = numpy.unique(values, return_counts=True)
        assert stats["stdev"] == pytest.approx(values.astype(float).std(), rel=1e-9, abs=1e-12)
        assert stats["majority"] == unique[numpy.argmax(counts)]  # ties: the smallest
        assert stats["minority"] == unique[numpy.argmin(counts)]
        assert stats["variety"] == unique.size


def test_overlap_modes(zones, tmp_path):
    """Overlapping polygons each get all their pixels; with polygons_might_overlap=False
    the later feature wins, as one rasterisation in layer order burns it."""
    big, inner = polygon(*to_map(100, 100), 50 * PIXEL), polygon(*to_map(110, 100), 20 * PIXEL)
    vector = write_layer(tmp_path / "overlap.gpkg", [big, inner])
    overlapping = pgp.zonal_statistics((zones["a"], 1), vector)
    check_against_oracle(overlapping, vector, zones["A"], -9)
    later_wins = pgp.zonal_statistics((zones["a"], 1), vector, polygons_might_overlap=False)
    mem = gdal.GetDriverByName("MEM").Create("", 300, 200, 1, gdal.GDT_Int32)
    mem.SetGeoTransform((ORIGIN[0], PIXEL, 0, ORIGIN[1], 0, -PIXEL))
    _dataset, layer = open_layer(vector)
    for fid in (1, 2):  # in layer order: the later burn wins
        layer.SetAttributeFilter(f"fid = {fid}")
        gdal.RasterizeLayer(mem, [1], layer, burn_values=[fid])
    owner = mem.ReadAsArray()
    for fid in (1, 2):
        want = expected_stats(zones["A"][owner == fid], -9)
        assert later_wins[fid]["count"] == want["count"]
        assert later_wins[fid]["sum"] == pytest.approx(want["sum"], rel=1e-12)
    assert later_wins[1]["count"] < overlapping[1]["count"]


def test_fids_beyond_65535_and_another_srs(zones, tmp_path):
    """FIDs of 70000 and more keep their own pixels (pygeoprocessing's UInt16 FID raster
    cannot), and a layer in WGS84 is reprojected to the raster's SRS first."""
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    UTM.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_wgs84 = osr.CoordinateTransformation(UTM, wgs84)
    shapes = [polygon(*to_map(80, 80), 25 * PIXEL, 16), polygon(*to_map(200, 60), 15 * PIXEL)]
    utm_vector = write_layer(tmp_path / "utm.gpkg", [g.Clone() for g in shapes],
                             fids=[70000, 123456])
    for g in shapes:
        g.Transform(to_wgs84)
    geographic = write_layer(tmp_path / "wgs84.gpkg", shapes, srs=wgs84, fids=[70000, 123456])
    utm = pgp.zonal_statistics((zones["a"], 1), utm_vector)
    assert sorted(utm) == [70000, 123456]
    check_against_oracle(utm, utm_vector, zones["A"], -9)
    reprojected = pgp.zonal_statistics((zones["a"], 1), geographic)
    for fid in utm:  # the same pixels, up to vertices moved by the round trip
        assert abs(reprojected[fid]["count"] - utm[fid]["count"]) <= 0.02 * utm[fid]["count"]


def test_list_of_rasters_and_alignment_check(zones, tmp_path):
    both = pgp.zonal_statistics([(zones["a"], 1), (zones["b"], 1)], zones["vector"])
    assert both == [pgp.zonal_statistics((zones["a"], 1), zones["vector"]),
                    pgp.zonal_statistics((zones["b"], 1), zones["vector"])]
    shifted = write_raster(tmp_path / "shifted.tif", zones["A"], nodata=-9,
                           origin=(ORIGIN[0] + 30, ORIGIN[1]))
    with pytest.raises(ValueError, match="must be aligned"):
        pgp.zonal_statistics([(zones["a"], 1), (shifted, 1)], zones["vector"])


@pytest.mark.parametrize("executor", EXECUTORS)
def test_same_numbers_for_every_executor(zones, pools, executor):
    reference = pgp.zonal_statistics((zones["a"], 1), zones["vector"],
                                     include_value_counts=True, extra_statistics=True)
    got = pgp.zonal_statistics((zones["a"], 1), zones["vector"], include_value_counts=True,
                               extra_statistics=True, executor=executor_for(executor, pools))
    assert repr(got) == repr(reference)  # bit for bit, NaN-free floats included


def test_same_numbers_for_every_tile_size(zones, tmp_path):
    """Different block grids merge partials in different groupings; sums may differ in
    the last bits, everything exact stays exact."""
    reference = pgp.zonal_statistics((zones["a"], 1), zones["vector"])
    for block in (16, 128):
        path = write_raster(tmp_path / f"a{block}.tif", zones["A"], nodata=-9, block=block)
        got = pgp.zonal_statistics((path, 1), zones["vector"])
        for fid, stats in reference.items():
            for key in ("count", "nodata_count", "min", "max"):
                assert got[fid][key] == stats[key], (block, fid, key)
            assert got[fid]["sum"] == pytest.approx(stats["sum"], rel=1e-12)


def test_graph_band_is_summarised_without_rendering_it(zones, tmp_path):
    """A .pgp.vrt band: only the tiles the polygons meet are computed."""
    cols, rows = 2048, 2048
    data = numpy.arange(cols * rows, dtype=numpy.float32).reshape(rows, cols) % 97
    source = write_raster(tmp_path / "big.tif", data, block=256)
    graph = tmp_path / "big.pgp.vrt"
    graph.write_text(f"""<PGPDataset blockXSize="256" blockYSize="256">
<Source name="s" file="{source}"/>
<Calc name="c" dataType="Float32"><Expression>s * 2 + 1</Expression></Calc>
<Band ref="c"/></PGPDataset>""")
    vector = write_layer(tmp_path / "two.gpkg", [polygon(*to_map(100, 100), 20 * PIXEL),
                                                 polygon(*to_map(1800, 1700), 10 * PIXEL)])
    driver = gdal.GetDriverByName("PGP")
    before = int(driver.GetMetadataItem("TILES_COMPUTED", "PGP"))
    result = pgp.zonal_statistics((str(graph), 1), vector, executor="threading:2")
    computed = int(driver.GetMetadataItem("TILES_COMPUTED", "PGP")) - before
    assert 2 <= computed <= 4, computed  # of 64 tiles
    check_against_oracle(result, vector, data * 2 + 1, None)


@pytest.mark.parametrize("make,error,message", [
    (lambda d: d / "missing.gpkg", RuntimeError, "Could not open aggregate vector"),
    (lambda d: write_layer(d / "points.gpkg", [ogr.CreateGeometryFromWkt("POINT (1 2)")],
                           geom_type=ogr.wkbPoint), ValueError, "Polygon or MultiPolygon"),
])
def test_bad_vectors(zones, tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        pgp.zonal_statistics((zones["a"], 1), str(make(tmp_path)))


def test_missing_layer_and_bad_raster_argument(zones):
    with pytest.raises(RuntimeError, match="Could not open layer nothing"):
        pgp.zonal_statistics((zones["a"], 1), zones["vector"], "nothing")
    with pytest.raises(ValueError, match="not formatted as expected"):
        pgp.zonal_statistics(zones["a"], zones["vector"])
    # the next call works
    assert pgp.zonal_statistics((zones["a"], 1), zones["vector"])


def test_reproject_vector_against_ogr(zones, tmp_path):
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    target = str(tmp_path / "out.gpkg")
    reference = []
    for executor in (None, "multiprocessing:2", "threading:2"):
        pgp.reproject_vector(zones["vector"], wgs84.ExportToWkt(), target, driver_name="GPKG",
                             executor=executor)
        out_dataset, out = open_layer(target)
        got = [f.GetGeometryRef().ExportToWkb() for f in out]
        out = out_dataset = None
        if not reference:
            _base_dataset, base = open_layer(zones["vector"])
            source = base.GetSpatialRef().Clone()
            source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            transform = osr.CoordinateTransformation(source, wgs84)
            for feature in base:
                geometry = feature.GetGeometryRef()
                if geometry is None:
                    continue  # skipped, as pygeoprocessing does
                geometry = geometry.Clone()
                geometry.Transform(transform)
                reference.append(geometry.ExportToWkb())
        assert got == reference, executor
