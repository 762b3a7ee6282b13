"""Each call against an independent numpy/scipy computation, then the same output
(pixels, nodata, statistics, geotransform) for every executor form."""
import os

import numpy
import pytest
import scipy.ndimage
from osgeo import gdal

import ops
import pgp
from pgp_testing import (EXECUTORS, SMALL_BLOCKS, assert_same_output, executor_for, read,
                         write_raster)

REFERENCES = {}


def reference(name, make):
    """The executor=None output of a call, computed once per session."""
    if name not in REFERENCES:
        REFERENCES[name] = make()
    return REFERENCES[name]


def statistics_of(values):
    values = values.astype(numpy.float64)
    return values.min(), values.max(), values.mean(), values.std()


def assert_statistics(stats, values, valid_percent):
    low, high, mean, std = statistics_of(values)
    assert float(stats["STATISTICS_MINIMUM"]) == pytest.approx(low, rel=1e-12)
    assert float(stats["STATISTICS_MAXIMUM"]) == pytest.approx(high, rel=1e-12)
    assert float(stats["STATISTICS_MEAN"]) == pytest.approx(mean, rel=1e-9, abs=1e-12)
    assert float(stats["STATISTICS_STDDEV"]) == pytest.approx(std, rel=1e-9)
    assert stats["STATISTICS_VALID_PERCENT"] == valid_percent


# --- raster_calculator ---------------------------------------------------------------

def _calculator(inputs, target, executor):
    pgp.raster_calculator([(inputs["a"], 1), (inputs["b"], 1)], ops.heavy, str(target),
                          gdal.GDT_Float32, -9.0, largest_block=0,
                          raster_driver_creation_tuple=SMALL_BLOCKS, executor=executor)


def test_raster_calculator_matches_numpy(inputs):
    target = inputs["folder"] / "calc_none.tif"
    _calculator(inputs, target, None)
    pixels, nodata, stats, geotransform = read(target)
    expected = ops.heavy(inputs["A"], inputs["B"])  # float64, before the cast
    numpy.testing.assert_array_equal(pixels, expected.astype(numpy.float32))
    assert nodata == -9.0
    assert geotransform == gdal.Open(inputs["a"]).GetGeoTransform()
    valid = ~numpy.isclose(expected, -9.0)
    assert_statistics(stats, expected[valid], f"{valid.mean() * 100:.2f}")
    REFERENCES["calc"] = read(target)


@pytest.mark.parametrize("name", EXECUTORS[1:])
def test_raster_calculator_executors(inputs, pools, name):
    ref = reference("calc", lambda: (_calculator(inputs, inputs["folder"] / "c0.tif", None),
                                     read(inputs["folder"] / "c0.tif"))[1])
    target = inputs["folder"] / f"calc_{name.replace(':', '_')}.tif"
    _calculator(inputs, target, executor_for(name, pools))
    assert_same_output(target, ref)


# --- raster_map ------------------------------------------------------------------------

def test_raster_map_matches_numpy(inputs, pools):
    outputs = []
    for name in EXECUTORS:
        target = inputs["folder"] / f"map_{name.replace(':', '_')}.tif"
        pgp.raster_map(ops.twice_minus, [inputs["a"], inputs["b"]], str(target),
                       executor=executor_for(name, pools))
        outputs.append(read(target))
    pixels, nodata, stats, _ = outputs[0]
    a, b = inputs["A"], inputs["B"]
    dtype = numpy.result_type(a.dtype, b.dtype)  # float32
    target_nodata = float(numpy.finfo(dtype).max)
    valid = ~numpy.isclose(a, -9, equal_nan=True) & (b != 0)
    expected = numpy.full(a.shape, target_nodata, dtype)
    expected[valid] = ops.twice_minus(a[valid], b[valid])
    numpy.testing.assert_array_equal(pixels, expected)
    assert pixels.dtype == numpy.float32 and nodata == target_nodata
    assert_statistics(stats, expected[valid], f"{valid.mean() * 100:.2f}")
    for output in outputs[1:]:
        numpy.testing.assert_array_equal(output[0], pixels)
        assert output[1:] == outputs[0][1:]


def test_raster_map_nodata_must_fit_dtype(inputs):
    with pytest.raises(ValueError, match="incompatible with the target dtype"):
        pgp.raster_map(ops.double, [inputs["b"]], str(inputs["folder"] / "x.tif"),
                       target_nodata=-1.5, target_dtype=numpy.int16)


# --- raster_reduce -----------------------------------------------------------------------

def test_raster_reduce(inputs, pools):
    a = inputs["A"]
    valid = a[a != -9].astype(numpy.float64)
    serial = pgp.raster_reduce(ops.add_sum, (inputs["a"], 1), 0.0)
    assert serial == pytest.approx(valid.sum(), rel=1e-12)
    expected_hist = numpy.histogram(a.ravel(), bins=8, range=(-50, 50))[0]
    for name in EXECUTORS[1:]:
        executor = executor_for(name, pools)
        total = pgp.raster_reduce(ops.add_sum, (inputs["a"], 1), 0.0, largest_block=0,
                                  executor=executor, combine=ops.add)
        assert total == pytest.approx(valid.sum(), rel=1e-12)
        counts = pgp.raster_reduce(ops.histogram, (inputs["a"], 1), numpy.zeros(8, int),
                                   mask_nodata=False, executor=executor, combine=ops.add)
        numpy.testing.assert_array_equal(counts, expected_hist)
    # Window order: the same partials combined the same way give the same bits.
    assert pgp.raster_reduce(ops.add_sum, (inputs["a"], 1), 0.0, largest_block=0,
                             executor="threading:2", combine=ops.add) == \
        pgp.raster_reduce(ops.add_sum, (inputs["a"], 1), 0.0, largest_block=0,
                          executor=executor_for("thread_pool", pools), combine=ops.add)


def test_raster_reduce_needs_combine_off_serial(inputs):
    with pytest.raises(ValueError, match="combine"):
        pgp.raster_reduce(ops.add_sum, (inputs["a"], 1), 0.0, executor="threading:2")


# --- evaluate_raster_calculator_expression --------------------------------------------------

EXPRESSION = "(a * b - a / 2) * ((a > 0) & (b < 10) | (b == -3)) + b ** 2 // 3"


def _expression(inputs, target, executor):
    pgp.evaluate_raster_calculator_expression(
        EXPRESSION, {"a": (inputs["a"], 1), "b": (inputs["b"], 1), "unused": ("x", 1)},
        -1.0, str(target), executor=executor)


def test_expression_matches_numpy(inputs, pools):
    outputs = []
    for name in EXECUTORS:
        target = inputs["folder"] / f"expr_{name.replace(':', '_')}.tif"
        _expression(inputs, target, executor_for(name, pools))
        outputs.append(read(target))
    pixels, nodata, stats, _ = outputs[0]
    a, b = inputs["A"].astype(numpy.float64), inputs["B"].astype(numpy.float64)
    valid = ~numpy.isclose(a, -9) & (b != 0)
    value = (a * b - a / 2) * ((a > 0) & (b < 10) | (b == -3)) + b ** 2 // 3
    expected = numpy.where(valid, value, -1.0).astype(numpy.float32)
    assert pixels.dtype == numpy.float32 and nodata == -1.0
    numpy.testing.assert_array_equal(pixels, expected)
    kept = ~numpy.isclose(expected, -1.0)
    assert_statistics(stats, expected[kept], f"{kept.mean() * 100:.2f}")
    for output in outputs[1:]:
        numpy.testing.assert_array_equal(output[0], pixels)
        assert output[1:] == outputs[0][1:]


@pytest.mark.parametrize("name", ["none", "threading:2", "process_pool"])
def test_expression_pairs_pixels_of_shifted_rasters_by_index(inputs, pools, tmp_path, name):
    # pygeoprocessing checks sizes only: same-size rasters on other grids pair by
    # index, and the result takes the first's grid.
    shifted = write_raster(tmp_path / "shifted.tif", inputs["B"], nodata=0,
                           origin=(500000.0, 4000000.0), pixel=10.0, projection=False)
    target = tmp_path / "out" / "sum.tif"
    pgp.evaluate_raster_calculator_expression(
        "a + b * 2", {"a": (inputs["a"], 1), "b": (shifted, 1)}, -1.0, str(target),
        executor=executor_for(name, pools))
    pixels, nodata, _, geotransform = read(target)
    a, b = inputs["A"].astype(numpy.float64), inputs["B"].astype(numpy.float64)
    valid = ~numpy.isclose(a, -9) & (b != 0)
    numpy.testing.assert_array_equal(
        pixels, numpy.where(valid, a + b * 2, -1.0).astype(numpy.float32))
    assert geotransform == read(inputs["a"])[3]
    assert gdal.Open(str(target)).GetProjection() == gdal.Open(inputs["a"]).GetProjection()
    assert os.listdir(target.parent) == ["sum.tif"]  # no scratch VRT folder left
    # A failing call leaves no scratch folder either.
    with pytest.raises(ValueError, match="target_nodata"):
        pgp.evaluate_raster_calculator_expression(
            "a + b", {"a": (inputs["a"], 1), "b": (shifted, 1)}, None,
            str(tmp_path / "out" / "none.tif"), executor=executor_for(name, pools))
    assert os.listdir(target.parent) == ["sum.tif"]


@pytest.mark.parametrize("name", ["none", "threading:2", "process_pool"])
def test_expression_nan_inf_rules(inputs, pools, name):
    folder = inputs["folder"]
    symbols = {"a": (inputs["a"], 1), "b": (inputs["b"], 1)}
    executor = executor_for(name, pools)
    tag = name.replace(":", "_")
    with pytest.raises(ValueError, match="Encountered inf in calculation"):
        pgp.evaluate_raster_calculator_expression("a / (b - b)", symbols, -1.0,
                                                  str(folder / f"inf{tag}.tif"),
                                                  executor=executor)
    with pytest.raises(ValueError, match="Encountered NaN in calculation"):
        pgp.evaluate_raster_calculator_expression("(a - a) / (b - b)", symbols, -1.0,
                                                  str(folder / f"inf{tag}.tif"),
                                                  default_inf=1.0, executor=executor)
    assert not (folder / f"inf{tag}.tif").exists()
    pgp.evaluate_raster_calculator_expression(
        "(a - a) / (b - b) + a / (b - b)", symbols, -1.0, str(folder / f"nan{tag}.tif"),
        default_nan=5.0, default_inf=7.0, executor=executor)
    pixels = read(folder / f"nan{tag}.tif")[0]
    a, b = inputs["A"], inputs["B"]
    valid = (a != -9) & (b != 0)
    with numpy.errstate(all="ignore"):
        raw = (a.astype(float) - a) / 0.0 + a / 0.0
    expected = numpy.where(numpy.isnan(raw), 5.0, numpy.where(numpy.isinf(raw), 7.0, raw))
    numpy.testing.assert_array_equal(pixels, numpy.where(valid, expected, -1).astype(
        numpy.float32))
    with pytest.raises(ValueError, match="`target_nodata` is undefined"):
        pgp.evaluate_raster_calculator_expression("a + b", symbols, None,
                                                  str(folder / f"nd{tag}.tif"),
                                                  executor=executor)
    assert not (folder / f"nd{tag}.tif").exists()


def test_expression_integer_target_truncates(inputs):
    target = inputs["folder"] / "int.tif"
    pgp.evaluate_raster_calculator_expression("b / 3 - 2", {"b": (inputs["b"], 1)}, 99,
                                              str(target))
    pixels, nodata, _, _ = read(target)
    b = inputs["B"]
    expected = numpy.where(b == 0, 99, numpy.trunc(b / 3 - 2)).astype(numpy.int16)
    assert pixels.dtype == numpy.int16 and nodata == 99
    numpy.testing.assert_array_equal(pixels, expected)
    # A fractional target_nodata is stored as numpy stores it into the int16 result
    # (pygeoprocessing fills the array with it): truncated, the band's nodata as given.
    pgp.evaluate_raster_calculator_expression("b / 3 - 2", {"b": (inputs["b"], 1)}, -2.5,
                                              str(target))
    pixels, nodata, _, _ = read(target)
    filled = numpy.empty(b.shape, numpy.int16)
    filled[:] = -2.5
    assert nodata == -2.5
    numpy.testing.assert_array_equal(pixels, numpy.where(b == 0, filled, expected))


@pytest.mark.parametrize("expression, message", [
    ("a & b", "bitwise"), ("a < b < 3", "chained"), ("abs(a)", "abs"),
    ("a if b else 1", "IfExp"), ("z + a", "The variables z are defined"),
])
def test_expression_refused(inputs, expression, message):
    with pytest.raises(ValueError, match=message):
        pgp.evaluate_raster_calculator_expression(
            expression, {"a": (inputs["a"], 1), "b": (inputs["b"], 1)}, -1,
            str(inputs["folder"] / "refused.tif"))
    with pytest.raises(ValueError, match="Expected type `str`"):
        pgp.evaluate_raster_calculator_expression(3, {}, -1, "x.tif")


# --- convolve_2d -----------------------------------------------------------------------------

def test_convolve_2d_matches_scipy(inputs, pools):
    outputs = []
    for name in EXECUTORS:
        target = inputs["folder"] / f"conv_{name.replace(':', '_')}.tif"
        pgp.convolve_2d((inputs["a"], 1), (inputs["kernel"], 1), str(target),
                        ignore_nodata_and_edges=True, normalize_kernel=True,
                        executor=executor_for(name, pools))
        outputs.append(read(target))
    pixels, nodata, stats, _ = outputs[0]
    a = inputs["A"].astype(numpy.float64)
    kernel = inputs["K"].astype(numpy.float64)
    kernel /= kernel.sum()
    valid = a != -9
    convolved = scipy.ndimage.convolve(numpy.where(valid, a, 0), kernel, mode="constant")
    mask = scipy.ndimage.convolve(valid.astype(float), kernel, mode="constant")
    expected = numpy.where(valid, convolved / mask, numpy.finfo(numpy.float32).min)
    assert nodata == float(numpy.finfo(numpy.float32).min)
    assert stats == {}  # pygeoprocessing's convolve_2d writes no statistics
    numpy.testing.assert_allclose(pixels, expected, rtol=1e-9, atol=1e-9)
    for output in outputs[1:]:
        numpy.testing.assert_array_equal(output[0], pixels)
        assert output[1:] == outputs[0][1:]


def test_convolve_2d_layout_from_the_signal(inputs, tmp_path):
    """Options without TILED or BLOCK*: the target takes the signal's block size, tiled
    unless its blocks are whole rows (pygeoprocessing's new_raster_from_base). Oracle:
    the signal's own block size as GDAL reports it, and scipy for the pixels."""
    striped = str(tmp_path / "striped.tif")
    gdal.Translate(striped, inputs["a"], creationOptions=["BLOCKYSIZE=8"])
    expected = scipy.ndimage.convolve(
        numpy.where(inputs["A"] != -9, inputs["A"], 0).astype(numpy.float64),
        inputs["K"].astype(numpy.float64), mode="constant")
    for signal, options, tiled in ((inputs["a"], ["COMPRESS=LZW"], True),
                                   (striped, [], False),
                                   (inputs["a"], ["TILED=YES"], True)):
        target = str(tmp_path / "layout.tif")
        pgp.convolve_2d((signal, 1), (inputs["kernel"], 1), target, mask_nodata=False,
                        raster_driver_creation_tuple=("GTiff", options))
        source, out = gdal.Open(signal), gdal.Open(target)
        assert (out.GetRasterBand(1).GetBlockSize() ==
                source.GetRasterBand(1).GetBlockSize())
        assert (out.GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE") ==
                ("LZW" if options == ["COMPRESS=LZW"] else None))
        assert (out.GetRasterBand(1).GetBlockSize()[0] < out.RasterXSize) == tiled
        numpy.testing.assert_allclose(out.ReadAsArray(), expected, rtol=1e-9, atol=1e-9)
        source = out = None


@pytest.mark.parametrize("gdal_type, dtype, target_nodata", [
    (gdal.GDT_Int16, numpy.int16, -2.5), (gdal.GDT_Byte, numpy.uint8, -1.0),
    (gdal.GDT_UInt16, numpy.uint16, 70000.0)])
def test_convolve_2d_nodata_the_type_cannot_hold(inputs, tmp_path, gdal_type, dtype,
                                                  target_nodata):
    """pygeoprocessing accepts any target_nodata: masked pixels get it as GDAL stores
    it in the type (rounded half away from zero, saturated), the band's nodata the
    value given. Oracle: numpy's rounding and clipping, scipy for the convolution."""
    target = str(tmp_path / "typed.tif")
    pgp.convolve_2d((inputs["a"], 1), (inputs["kernel"], 1), target,
                    target_datatype=gdal_type, target_nodata=target_nodata)
    pixels, nodata, _, _ = read(target)
    info = numpy.iinfo(dtype)

    def stored(values):
        rounded = numpy.sign(values) * numpy.floor(numpy.abs(values) + 0.5)
        return numpy.clip(rounded, info.min, info.max).astype(dtype)
    valid = inputs["A"] != -9
    convolved = scipy.ndimage.convolve(
        numpy.where(valid, inputs["A"], 0).astype(numpy.float64),
        inputs["K"].astype(numpy.float64), mode="constant")
    assert nodata == target_nodata
    numpy.testing.assert_array_equal(
        pixels, numpy.where(valid, stored(convolved), stored(numpy.array(target_nodata))))


def test_convolve_2d_validation(inputs):
    target = str(inputs["folder"] / "cv.tif")
    with pytest.raises(ValueError, match="`target_nodata` must be set"):
        pgp.convolve_2d((inputs["a"], 1), (inputs["kernel"], 1), target,
                        target_datatype=gdal.GDT_Int32)
    with pytest.raises(ValueError, match="signal"):
        pgp.convolve_2d(inputs["a"], (inputs["kernel"], 1), target)


# --- align_and_resize_raster_stack -------------------------------------------------------------

def test_align_matches_gdalwarp(inputs, pools):
    folder = inputs["folder"]
    for name in ("none", "multiprocessing:2", "dask"):
        tag = name.replace(":", "_")
        targets = [str(folder / f"al_a_{tag}.tif"), str(folder / f"al_c_{tag}.tif")]
        pgp.align_and_resize_raster_stack(
            [inputs["a"], inputs["c"]], targets, ["near", "near"], (30, -30),
            "intersection", raster_align_index=0, executor=executor_for(name, pools))
        outputs = [read(t) for t in targets]
        if name == "none":
            first = outputs
            continue
        for output, ref in zip(outputs, first):
            numpy.testing.assert_array_equal(output[0], ref[0])
            assert output[1:] == ref[1:]
    # Independent: the intersection snapped to a's grid, then gdalwarp near.
    info_a, info_c = pgp.get_raster_info(inputs["a"]), pgp.get_raster_info(inputs["c"])
    box = [max(info_a["bounding_box"][0], info_c["bounding_box"][0]),
           max(info_a["bounding_box"][1], info_c["bounding_box"][1]),
           min(info_a["bounding_box"][2], info_c["bounding_box"][2]),
           min(info_a["bounding_box"][3], info_c["bounding_box"][3])]
    for i, p in ((0, 30.0), (1, -30.0)):
        box[i] = info_a["bounding_box"][i] + int((box[i] - info_a["bounding_box"][i]) / p) * p
    nx = int(numpy.ceil(round((box[2] - box[0]) / 30, 6)))
    ny = int(numpy.ceil(round((box[3] - box[1]) / 30, 6)))
    for (pixels, nodata, _, geotransform), source in zip(first, ("a", "c")):
        assert geotransform == (box[0], 30.0, 0.0, box[1] + ny * 30, 0.0, -30.0)
        warped = gdal.Warp("", inputs[source], format="MEM", resampleAlg="near",
                           outputBounds=(box[0], box[1], box[0] + nx * 30, box[1] + ny * 30),
                           xRes=30, yRes=30)
        numpy.testing.assert_array_equal(pixels, warped.ReadAsArray())
        assert nodata == warped.GetRasterBand(1).GetNoDataValue()


def test_align_validation(inputs):
    folder = inputs["folder"]
    with pytest.raises(ValueError, match="must be the same length"):
        pgp.align_and_resize_raster_stack([inputs["a"]], [], ["near"], (30, -30), "union")
    with pytest.raises(ValueError, match="duplicated paths"):
        pgp.align_and_resize_raster_stack([inputs["a"], inputs["c"]], ["x.tif", "x.tif"],
                                          ["near"] * 2, (30, -30), "union")
    with pytest.raises(ValueError, match="Unknown bounding_box_mode"):
        pgp.align_and_resize_raster_stack([inputs["a"]], [str(folder / "y.tif")],
                                          ["near"], (30, -30), "bogus")
    with pytest.raises(ValueError, match="Alignment index is out of bounds"):
        pgp.align_and_resize_raster_stack([inputs["a"]], [str(folder / "y.tif")],
                                          ["near"], (30, -30), "union", raster_align_index=-1)
    with pytest.raises(ValueError, match="Invalid value for `target_pixel_size`"):
        pgp.align_and_resize_raster_stack([inputs["a"]], [str(folder / "y.tif")],
                                          ["near"], ("30", -30), "union")


# --- render and Graph -----------------------------------------------------------------------------

def test_render_graph_matches_numpy(inputs, pools, tmp_path):
    graph = pgp.Graph(block_size=(64, 64))
    graph.source("a", inputs["a"])
    graph.source("b", inputs["b"])
    graph.calc("s", "where(a > 0, a * b, -a)", data_type="Float32", nodata=-9)
    graph.convolve("smooth", "s", numpy.ones((3, 3)), data_type="Float32", nodata=-9)
    graph.band("s", description="product")
    graph.band("smooth")
    path = graph.write(str(tmp_path / "g.pgp.vrt"))
    a, b = inputs["A"].astype(float), inputs["B"].astype(float)
    valid = (a != -9) & (b != 0)
    s = numpy.where(valid, numpy.where(a > 0, a * b, -a), -9).astype(numpy.float32)
    smooth = scipy.ndimage.convolve(numpy.where(valid, s, 0).astype(float), numpy.ones((3, 3)),
                                    mode="constant")
    smooth = numpy.where(valid, smooth, -9).astype(numpy.float32)
    outputs = []
    for name in EXECUTORS:
        target = tmp_path / f"r_{name.replace(':', '_')}.tif"
        pgp.render(path if name != "dask" else graph.to_xml(), str(target),
                   executor=executor_for(name, pools))
        ds = gdal.Open(str(target))
        outputs.append([(ds.GetRasterBand(i).ReadAsArray(), ds.GetRasterBand(i).GetMetadata())
                        for i in (1, 2)])
        ds = None
    numpy.testing.assert_array_equal(outputs[0][0][0], s)
    numpy.testing.assert_allclose(outputs[0][1][0], smooth, rtol=1e-6)
    kept = s[s != -9].astype(numpy.float64)
    stats = outputs[0][0][1]
    assert float(stats["STATISTICS_MEAN"]) == pytest.approx(kept.mean(), rel=1e-9)
    assert float(stats["STATISTICS_STDDEV"]) == pytest.approx(kept.std(), rel=1e-9)
    for output in outputs[1:]:
        for (pixels, metadata), (ref_pixels, ref_metadata) in zip(output, outputs[0]):
            numpy.testing.assert_array_equal(pixels, ref_pixels)
            assert metadata == ref_metadata


def test_get_raster_info(inputs):
    info = pgp.get_raster_info(inputs["c"])
    assert info["raster_size"] == (130, 90)
    assert info["pixel_size"] == (45.0, -45.0)
    assert info["nodata"] == [-1.0]
    assert info["block_size"] == [64, 64]
    assert info["bounding_box"] == [444720.0 + 400, 3751320.0 - 700 - 90 * 45,
                                    444720.0 + 400 + 130 * 45, 3751320.0 - 700]
    assert info["numpy_type"] == numpy.float32 and info["datatype"] == gdal.GDT_Float32
    assert pgp.DEFAULT_GTIFF_CREATION_TUPLE_OPTIONS == (
        'GTIFF', ('TILED=YES', 'BIGTIFF=YES', 'COMPRESS=LZW', 'BLOCKXSIZE=256',
                  'BLOCKYSIZE=256'))


def test_align_mask_options(inputs, tmp_path):
    """Pixels whose centre is outside the selected polygon become nodata; the mask
    raster is kept at mask_raster_path. Oracle: gdal.RasterizeLayer on the grid."""
    from osgeo import ogr, osr
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    vector = str(tmp_path / "mask.gpkg")
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(vector)
    layer = ds.CreateLayer("zones", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("keep", ogr.OFTInteger))
    x0, y0 = 444720.0, 3751320.0
    for keep, wkt in ((1, f"POLYGON(({x0 + 100} {y0 - 100},{x0 + 4000} {y0 - 600},"
                          f"{x0 + 2500} {y0 - 5000},{x0 + 100} {y0 - 100}))"),
                      (0, f"POLYGON(({x0 + 5000} {y0 - 100},{x0 + 8000} {y0 - 100},"
                          f"{x0 + 8000} {y0 - 5000},{x0 + 5000} {y0 - 100}))")):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("keep", keep)
        feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        layer.CreateFeature(feature)
    ds = None
    target = str(tmp_path / "masked.tif")
    mask_path = str(tmp_path / "kept_mask.tif")
    pgp.align_and_resize_raster_stack(
        [inputs["a"]], [target], ["near"], (30, -30), "intersection",
        mask_options={"mask_vector_path": vector, "mask_vector_where_filter": "keep = 1",
                      "mask_raster_path": mask_path}, executor="threading:2")
    pixels, nodata, stats, geotransform = read(target)
    grid = gdal.GetDriverByName("MEM").Create("", pixels.shape[1], pixels.shape[0], 1,
                                             gdal.GDT_Byte)
    grid.SetGeoTransform(geotransform)
    grid.SetProjection(srs.ExportToWkt())
    vector_ds = ogr.Open(vector)
    layer = vector_ds.GetLayer()
    layer.SetAttributeFilter("keep = 1")
    gdal.RasterizeLayer(grid, [1], layer, burn_values=[1])
    inside = grid.ReadAsArray() == 1
    assert 0 < inside.sum() < inside.size
    numpy.testing.assert_array_equal(pixels, numpy.where(inside, inputs["A"], nodata))
    # pygeoprocessing masks through raster_calculator, which writes statistics.
    kept = inputs["A"][inside & (inputs["A"] != nodata)]
    assert_statistics(stats, kept, f"{kept.size / pixels.size * 100:.2f}")
    numpy.testing.assert_array_equal(read(mask_path)[0], inside.astype(numpy.uint8))
    # The deprecated alias: pygeoprocessing's DeprecationWarning, the same masking.
    with pytest.warns(DeprecationWarning, match="vector_mask_options"):
        pgp.align_and_resize_raster_stack(
            [inputs["a"]], [target], ["near"], (30, -30), "intersection",
            vector_mask_options={"mask_vector_path": vector,
                                 "mask_vector_where_filter": "keep = 1"})
    numpy.testing.assert_array_equal(read(target)[0],
                                     numpy.where(inside, inputs["A"], nodata))


def test_align_base_projection_list(inputs, tmp_path):
    """A raster without projection is aligned in the projection given for it (pgp
    reads it through a VRT declaring it); with a target projection and none given,
    pygeoprocessing's ValueError."""
    from osgeo import osr
    from pgp_testing import write_raster
    source = write_raster(tmp_path / "nop.tif", inputs["C"], nodata=-1, projection=False)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    target = str(tmp_path / "nop_aligned.tif")
    pgp.align_and_resize_raster_stack([source], [target], ["near"], (30, -30),
                                      "intersection", base_projection_wkt_list=[srs.ExportToWkt()])
    pixels, nodata, _, geotransform = read(target)
    numpy.testing.assert_array_equal(pixels, inputs["C"])
    assert osr.SpatialReference(gdal.Open(target).GetProjection()).IsSame(srs)
    assert not [n for n in os.listdir(tmp_path) if n.startswith("pgp-align-")]
    with pytest.raises(ValueError, match="no projection for raster"):
        pgp.align_and_resize_raster_stack([source], [str(tmp_path / "x.tif")], ["near"],
                                          (30, -30), "intersection",
                                          target_projection_wkt=srs.ExportToWkt())


def test_convolve_2d_kernel_band_2(inputs, tmp_path):
    """A kernel in band 2 (copied to working_dir with its nodata, which weighs 0),
    plain mode, Float32 target: scipy.ndimage.convolve with zero edges."""
    kernel = numpy.arange(15, dtype=numpy.float32).reshape(3, 5) - 4
    path = str(tmp_path / "kernels.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 5, 3, 2, gdal.GDT_Float32)
    ds.GetRasterBand(1).WriteArray(numpy.zeros((3, 5)))
    ds.GetRasterBand(2).WriteArray(kernel)
    ds.GetRasterBand(2).SetNoDataValue(7)  # the value at [2, 1]: weighs 0
    ds = None
    target = str(tmp_path / "conv.tif")
    scratch = tmp_path / "work"
    scratch.mkdir()
    pgp.convolve_2d((inputs["a"], 1), (path, 2), target, target_datatype=gdal.GDT_Float32,
                    target_nodata=-5.0, set_tol_to_zero=None, working_dir=str(scratch),
                    executor="multiprocessing:2")
    assert not os.listdir(scratch)
    pixels, nodata, _, _ = read(target)
    a = inputs["A"].astype(numpy.float64)
    valid = a != -9
    weights = numpy.where(kernel == 7, 0, kernel).astype(numpy.float64)
    expected = scipy.ndimage.convolve(numpy.where(valid, a, 0), weights, mode="constant")
    assert nodata == -5.0
    numpy.testing.assert_allclose(pixels, numpy.where(valid, expected, -5).astype(
        numpy.float32), rtol=1e-6, atol=1e-3)


def test_expression_signed_byte(inputs, tmp_path):
    """int8 rasters (GDAL 3.6: Byte with PIXELTYPE=SIGNEDBYTE) give an int8 result:
    truncated, saturated, written as signed bytes."""
    values = numpy.arange(-100, 100, dtype=numpy.int8).reshape(10, 20)
    path = str(tmp_path / "s8.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 20, 10, 1, gdal.GDT_Byte,
                                              ["PIXELTYPE=SIGNEDBYTE"])
    ds.SetGeoTransform((0, 1, 0, 0, 0, -1))
    ds.GetRasterBand(1).WriteArray(values)
    ds.GetRasterBand(1).SetNoDataValue(-100)
    ds = None
    target = str(tmp_path / "out.tif")
    pgp.evaluate_raster_calculator_expression("s * 1.5 - 3", {"s": (path, 1)}, -100, target,
                                              executor="threading:2")
    pixels, nodata, _, _ = read(target)
    expected = numpy.clip(numpy.trunc(values * 1.5 - 3), -128, 127).astype(numpy.int8)
    expected[values == -100] = -100
    assert pixels.dtype == numpy.int8 and nodata == -100
    numpy.testing.assert_array_equal(pixels, expected)


def test_render_bands_with_different_nodata_into_geotiff(inputs, tmp_path, caplog):
    """GeoTIFF stores one nodata for all bands: band 1's is kept (said in a warning),
    not whichever band happened to be set last."""
    graph = pgp.Graph(block_size=(64, 64))
    graph.source("a", inputs["a"])
    graph.calc("low", "a - 100", data_type="Float32", nodata=-9)
    graph.calc("flag", "a > 0", data_type="Byte", nodata=255)
    graph.band("low")
    graph.band("flag")
    target = tmp_path / "two.tif"
    pgp.render(graph, str(target))
    assert "one nodata value per file" in caplog.text
    ds = gdal.Open(str(target))
    assert [ds.GetRasterBand(i).GetNoDataValue() for i in (1, 2)] == [-9.0, -9.0]
    valid = inputs["A"] != -9
    numpy.testing.assert_array_equal(ds.GetRasterBand(1).ReadAsArray(),
                                     numpy.where(valid, inputs["A"] - 100, -9))
    numpy.testing.assert_array_equal(ds.GetRasterBand(2).ReadAsArray(),
                                     numpy.where(valid, inputs["A"] > 0, 255))


@pytest.mark.parametrize("name", ["process_pool", "dask"])
def test_raw_arguments_travel_to_workers(inputs, pools, tmp_path, name):
    target = tmp_path / "t.tif"
    pgp.raster_calculator([(inputs["a"], 1), (inputs["b"], 1), (2.5, 'raw')],
                          ops.scaled_sum, str(target), gdal.GDT_Float64, None,
                          executor=executor_for(name, pools))
    # local_op sees the native types: float32 + int16 -> float32 arithmetic.
    numpy.testing.assert_array_equal(
        read(target)[0], ((inputs["A"] + inputs["B"]) * 2.5).astype(numpy.float64))


def test_align_with_a_vector_extent(inputs, tmp_path):
    """pygeoprocessing's int_with_vectors: a vector whose extent is one pixel, in
    intersection mode with raster_align_index, gives 1x1 outputs on that pixel."""
    from osgeo import ogr, osr
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    vector = str(tmp_path / "pixel.gpkg")
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(vector)
    layer = ds.CreateLayer("pixel", srs, ogr.wkbPolygon)
    x0, y0 = 444720.0 + 30 * 10, 3751320.0 - 30 * 20  # pixel (row 19, column 10)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt(
        f"POLYGON(({x0} {y0},{x0 + 30} {y0},{x0 + 30} {y0 + 30},{x0} {y0 + 30},{x0} {y0}))"))
    layer.CreateFeature(feature)
    ds = None
    targets = [str(tmp_path / "a1.tif"), str(tmp_path / "c1.tif")]
    pgp.align_and_resize_raster_stack([inputs["a"], inputs["a"]], targets, ["near"] * 2,
                                      (30, -30), "intersection", base_vector_path_list=[vector],
                                      raster_align_index=0)
    for target in targets:
        pixels, _, _, geotransform = read(target)
        assert pixels.shape == (1, 1) and pixels[0, 0] == inputs["A"][19, 10]
        assert geotransform == (x0, 30.0, 0.0, y0 + 30, 0.0, -30.0)


def test_align_boxes_that_do_not_meet_are_a_value_error(inputs, tmp_path):
    """pygeoprocessing's merge_bounding_box_list raises ValueError "Bounding boxes do
    not intersect" for an empty intersection and for a mask whose features miss the
    target box (its test_align_and_resize_raster_stack_no_overlap); nothing is
    written. Oracle: the rasters' boxes, which share no x."""
    from osgeo import ogr, osr
    far = write_raster(tmp_path / "far.tif", inputs["C"], nodata=-1,
                       origin=(444720.0 + 30 * 300 + 1000, 3751320.0))
    boxes = [pgp.get_raster_info(p)["bounding_box"] for p in (inputs["a"], far)]
    assert boxes[0][2] < boxes[1][0]
    targets = [str(tmp_path / "a.tif"), str(tmp_path / "far_aligned.tif")]
    with pytest.raises(ValueError, match="Bounding boxes do not intersect"):
        pgp.align_and_resize_raster_stack([inputs["a"], far], targets, ["near"] * 2,
                                          (30, -30), "intersection")
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    vector = str(tmp_path / "elsewhere.gpkg")
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(vector)
    layer = ds.CreateLayer("zones", srs, ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt("POLYGON((0 0,10 0,10 10,0 0))"))
    layer.CreateFeature(feature)
    ds = None
    with pytest.raises(ValueError, match="Bounding boxes do not intersect"):
        pgp.align_and_resize_raster_stack([inputs["a"]], targets[:1], ["near"], (30, -30),
                                          "union", mask_options={"mask_vector_path": vector})
    assert not [n for n in os.listdir(tmp_path) if n.endswith("aligned.tif") or n == "a.tif"]


def test_align_without_target_projection_keeps_each_projection(inputs, tmp_path):
    """Without target_projection_wkt pygeoprocessing warps each raster in its own SRS
    (warp_raster's dstSRS is the base's): a raster in another SRS is not reprojected
    and keeps its SRS. Oracle: gdalwarp of that raster alone onto the union grid."""
    from osgeo import osr
    other = osr.SpatialReference()
    other.ImportFromEPSG(32619)
    moved = write_raster(tmp_path / "utm19.tif", inputs["C"], nodata=-1, pixel=45.0,
                         origin=(444720.0 + 400, 3751320.0 - 700))
    ds = gdal.Open(moved, gdal.GA_Update)
    ds.SetProjection(other.ExportToWkt())
    ds = None
    targets = [str(tmp_path / "a_union.tif"), str(tmp_path / "utm19_union.tif")]
    pgp.align_and_resize_raster_stack([inputs["a"], moved], targets, ["near"] * 2,
                                      (30, -30), "union")
    box = pgp.get_raster_info(inputs["a"])["bounding_box"]  # c lies inside a
    warped = gdal.Warp("", moved, format="MEM", outputBounds=box, xRes=30, yRes=30,
                       resampleAlg="near")
    out = gdal.Open(targets[1])
    assert osr.SpatialReference(out.GetProjection()).IsSame(other)
    assert out.GetGeoTransform() == warped.GetGeoTransform()
    numpy.testing.assert_array_equal(out.ReadAsArray(), warped.ReadAsArray())
    out = gdal.Open(targets[0])
    assert osr.SpatialReference(out.GetProjection()).IsSame(
        osr.SpatialReference(gdal.Open(inputs["a"]).GetProjection()))


def test_align_carries_every_band(inputs, tmp_path):
    """pygeoprocessing's gdal.Warp carries every band of a source; the grid comes from
    all the sources. Oracle: gdalwarp of the three-band raster onto that grid."""
    from osgeo import gdal_array
    bands = numpy.stack([inputs["C"], inputs["C"] * 2, inputs["C"] + 5])
    multi = str(tmp_path / "three.tif")
    ds = gdal.GetDriverByName("GTiff").Create(multi, 130, 90, 3, gdal.GDT_Float32)
    source = gdal.Open(inputs["c"])
    ds.SetGeoTransform(source.GetGeoTransform())
    ds.SetProjection(source.GetProjection())
    for i in range(3):
        ds.GetRasterBand(i + 1).SetNoDataValue(-1)
    ds.GetRasterBand(2).SetDescription("doubled")
    gdal_array.DatasetWriteArray(ds, bands)
    ds = source = None
    targets = [str(tmp_path / "a_al.tif"), str(tmp_path / "three_al.tif")]
    pgp.align_and_resize_raster_stack([inputs["a"], multi], targets, ["near", "bilinear"],
                                      (20, -20), "intersection", raster_align_index=0)
    out = gdal.Open(targets[1])
    geotransform = out.GetGeoTransform()
    bounds = (geotransform[0], geotransform[3] + out.RasterYSize * geotransform[5],
              geotransform[0] + out.RasterXSize * geotransform[1], geotransform[3])
    warped = gdal.Warp("", multi, format="MEM", outputBounds=bounds, xRes=20, yRes=20,
                       resampleAlg="bilinear")
    assert out.RasterCount == 3
    numpy.testing.assert_array_equal(out.ReadAsArray(), warped.ReadAsArray())
    assert [out.GetRasterBand(i).GetNoDataValue() for i in (1, 2, 3)] == [-1.0] * 3
    assert ([out.GetRasterBand(i).GetDescription() for i in (1, 2, 3)] ==
            [warped.GetRasterBand(i).GetDescription() for i in (1, 2, 3)] ==
            ["", "doubled", ""])
    assert gdal.Open(targets[0]).RasterCount == 1


def test_align_carries_the_source_properties(inputs, tmp_path):
    """What gdalwarp carries to pygeoprocessing's aligned output: dataset metadata, band
    metadata (statistics aside), unit, scale, offset, colour table. Oracle: gdalwarp."""
    source = str(tmp_path / "palette.tif")
    gdal.Translate(source, inputs["b"], outputType=gdal.GDT_Byte, noData=255,
                   scaleParams=[[-20, 20, 0, 200]])
    ds = gdal.Open(source, gdal.GA_Update)
    ds.SetMetadataItem("AREA_OR_POINT", "Point")
    ds.SetMetadataItem("PRODUCER", "test")
    band = ds.GetRasterBand(1)
    table = gdal.ColorTable()
    table.SetColorEntry(7, (200, 10, 10, 255))
    band.SetRasterColorTable(table)
    band.SetMetadataItem("CLASSES", "landcover")
    band.SetUnitType("class")
    band.SetScale(0.5)
    band.SetOffset(3.0)
    band.ComputeStatistics(False)
    band = ds = None
    target = str(tmp_path / "palette_aligned.tif")
    pgp.align_and_resize_raster_stack([source], [target], ["near"], (20, -20), "union")
    warped = gdal.Warp(str(tmp_path / "palette_warped.tif"), source, xRes=20, yRes=20)
    out = gdal.Open(target)
    assert out.GetMetadata() == warped.GetMetadata()
    assert out.GetMetadataItem("AREA_OR_POINT") == "Point"
    ours, theirs = out.GetRasterBand(1), warped.GetRasterBand(1)
    assert ours.GetMetadata() == theirs.GetMetadata() == {"CLASSES": "landcover"}
    assert (ours.GetUnitType(), ours.GetScale(), ours.GetOffset()) == ("class", 0.5, 3.0)
    assert (ours.GetUnitType(), ours.GetScale(), ours.GetOffset()) == (
        theirs.GetUnitType(), theirs.GetScale(), theirs.GetOffset())
    assert ours.GetColorInterpretation() == theirs.GetColorInterpretation()
    assert ours.GetColorTable().GetColorEntry(7) == theirs.GetColorTable().GetColorEntry(7)
    numpy.testing.assert_array_equal(ours.ReadAsArray(), theirs.ReadAsArray())
