"""pgp.stitch_rasters against the independent numpy model of tests/gdal/stitch_model.py
(docs/semantics.md#stitch) and pygeoprocessing's own test shapes and expectations;
the same pixels for every executor; pygeoprocessing's errors; the target kept as it
was on failure and its layout, compression and metadata kept on success. (Named
apart from tests/gdal/test_stitch.py, the node's own tests, so that one pytest run
can collect both.)"""
import hashlib
import importlib.util
import os

import numpy
import pytest
from osgeo import gdal, osr

import pgp
from pgp_testing import EXECUTORS, REPO, executor_for

ORIGIN = (444720.0, 3751320.0)  # UTM 18N (EPSG:32618)
PIXEL = 30.0


def _load_model():
    """tests/gdal/stitch_model.py by path; it turns GDAL exceptions on, which the
    package's tests run without."""
    spec = importlib.util.spec_from_file_location(
        "stitch_model", os.path.join(REPO, "tests", "gdal", "stitch_model.py"))
    module = importlib.util.module_from_spec(spec)
    exceptions = gdal.GetUseExceptions()
    spec.loader.exec_module(module)
    if not exceptions:
        gdal.DontUseExceptions()
    return module


model = _load_model()


def srs_wkt(epsg):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def make_raster(path, arrays, nodata=None, origin=ORIGIN, pixel=(PIXEL, -PIXEL),
                epsg=32618, options=("TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64"),
                gdal_type=None):
    """A GeoTIFF of one array or a list of same-shaped arrays (one per band)."""
    from osgeo import gdal_array
    arrays = [arrays] if isinstance(arrays, numpy.ndarray) else arrays
    rows, cols = arrays[0].shape
    gdal_type = gdal_type or gdal_array.NumericTypeCodeToGDALTypeCode(arrays[0].dtype)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, len(arrays),
                                              gdal_type, list(options))
    ds.SetGeoTransform((origin[0], pixel[0], 0.0, origin[1], 0.0, pixel[1]))
    ds.SetProjection(srs_wkt(epsg))
    for index, array in enumerate(arrays, 1):
        band = ds.GetRasterBand(index)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(array)
    ds = None
    return str(path)


def at(col, row):
    """The target grid's map coordinates of a (fractional) pixel corner."""
    return ORIGIN[0] + col * PIXEL, ORIGIN[1] - row * PIXEL


def values(rng, shape, dtype, nodata, low=0, high=100, missing=0.2):
    array = rng.uniform(low, high, shape).astype(dtype)
    if nodata is not None:
        array[rng.random(shape) < missing] = nodata
    return array


def make_target(path, dtype=numpy.float32, nodata=-1, seed=1):
    """300x200, its left third nodata, elsewhere values with some nodata."""
    rng = numpy.random.default_rng(seed)
    array = values(rng, (200, 300), dtype, nodata, -50, 50, 0.3)
    array[:, :100] = nodata
    return make_raster(path, array, nodata)


def make_bases(folder, seed=2):
    """(path, band) bases and their resamplings: inside, overlapping each other,
    sticking out on every side (sub-pixel offsets, negative ones truncated toward
    zero), a narrow one past the top-left corner, one entirely outside, two on a 45 m
    grid (warped), one band 2 of a two-band file, of several types and nodatas."""
    rng = numpy.random.default_rng(seed)
    placements = [  # (name, col, row, rows, cols, dtype, nodata)
        ("inside", 20.0, 30.0, 40, 50, numpy.float32, -5),
        ("overlapping", 45.25, 50.5, 50, 60, numpy.float32, -5),
        ("left", -15.25, 80.0, 30, 40, numpy.int16, 0),
        ("right", 280.0, 100.75, 30, 50, numpy.float64, None),
        ("top", 100.5, -12.25, 40, 30, numpy.uint8, 255),
        ("bottom", 150.0, 185.0, 40, 30, numpy.float32, -5),
        ("corner", -5.5, -5.5, 12, 7, numpy.float32, -5),
        ("outside", 400.0, 10.0, 20, 20, numpy.float32, -5),
    ]
    bases, methods = [], []
    for name, col, row, rows, cols, dtype, nodata in placements:
        path = make_raster(folder / f"{name}.tif",
                           values(rng, (rows, cols), dtype, nodata), nodata,
                           origin=at(col, row))
        bases.append((path, 1))
        methods.append("near")
    for name, col, row in (("coarse", 60.3, 20.7), ("coarse_edge", 270.0, 150.0)):
        path = make_raster(folder / f"{name}.tif",
                           values(rng, (30, 40), numpy.float32, -5), -5,
                           origin=at(col, row), pixel=(45.0, -45.0))
        bases.append((path, 1))
        methods.append("near")
    two = make_raster(folder / "two_bands.tif",
                      [values(rng, (25, 35), numpy.float32, -5) for _ in range(2)], -5,
                      origin=at(120.0, 60.0))
    bases.append((two, 2))
    methods.append("near")
    return bases, methods


def file_bytes(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def pixels(path, band=1):
    dataset = gdal.Open(str(path))  # kept: GDAL 3.6's band does not keep it alive
    return dataset.GetRasterBand(band).ReadAsArray()


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stitch")
    bases, methods = make_bases(folder)
    return {"folder": folder, "bases": bases, "methods": methods}


# --- against the model ------------------------------------------------------------------

@pytest.mark.parametrize("overlap", ["etch", "replace", "add"])
@pytest.mark.parametrize("dtype,nodata", [(numpy.float32, -1), (numpy.int16, -32768)])
def test_overlap_modes_match_the_model(scene, tmp_path, overlap, dtype, nodata):
    target = make_target(tmp_path / "target.tif", dtype, nodata)
    expected = model.stitch(target, 1, scene["bases"], scene["methods"], overlap)
    before = pixels(target)
    pgp.stitch_rasters(scene["bases"], scene["methods"], (target, 1), overlap)
    result = pixels(target)
    assert result.dtype == before.dtype
    numpy.testing.assert_array_equal(result, expected)
    assert (result != before).mean() > 0.05  # the bases did change it


def test_bases_outside_warn_and_leave_the_target(scene, tmp_path):
    """Only bases that miss the target: a warning naming them, the pixels unchanged."""
    target = make_target(tmp_path / "target.tif")
    outside = [base for base in scene["bases"] if "outside" in base[0]]
    before = pixels(target)
    messages = []

    def handler(level, number, message):
        messages.append((level, message))

    gdal.PushErrorHandler(handler)
    try:
        pgp.stitch_rasters(outside, ["near"], (target, 1), "replace")
    finally:
        gdal.PopErrorHandler()
    numpy.testing.assert_array_equal(pixels(target), before)
    assert any(level == gdal.CE_Warning and "outside.tif" in message
               for level, message in messages), messages


@pytest.mark.parametrize("method", ["near", "bilinear"])
def test_other_srs_bases_match_the_model(tmp_path, method):
    """A UTM 18N target, bases in the neighbouring zone (17N) and in EPSG:4326 (one
    past the top edge), warped onto it."""
    target = make_target(tmp_path / "target.tif")
    rng = numpy.random.default_rng(5)
    to_17n = osr.CoordinateTransformation(
        *[_traditional(epsg) for epsg in (32618, 32617)])
    to_4326 = osr.CoordinateTransformation(
        *[_traditional(epsg) for epsg in (32618, 4326)])
    bases, methods = [], []
    for name, transform, epsg, pixel, col, row in (
            ("zone17", to_17n, 32617, (30.0, -30.0), 40.0, 20.0),
            ("zone17_finer", to_17n, 32617, (25.0, -25.0), 200.0, 120.0),
            ("wgs84", to_4326, 4326, (0.0003, -0.0003), 120.0, 90.0),
            ("wgs84_past_edge", to_4326, 4326, (0.0004, -0.0004), 270.0, -10.0)):
        origin = transform.TransformPoint(*at(col, row))[:2]
        path = make_raster(tmp_path / f"{name}.tif",
                           values(rng, (40, 40), numpy.float32, -5), -5, origin=origin,
                           pixel=pixel, epsg=epsg)
        bases.append((path, 1))
        methods.append(method)
    expected = model.stitch(target, 1, bases, methods, "add")
    pgp.stitch_rasters(bases, methods, (target, 1), "add")
    numpy.testing.assert_array_equal(pixels(target), expected)


def _traditional(epsg):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def _utm31n_base(path, array, nodata, pixel):
    """pygeoprocessing's area test base: UTM 31N, upper left (277438.26, 110597.97)."""
    return make_raster(path, array, nodata, origin=(277438.26, 110597.97),
                       pixel=(pixel, -pixel), epsg=32631)


def test_area_weight_pygeoprocessing_expectation(tmp_path):
    """test_stitch_rasters_area_change: one 10 km pixel of 1 into a 0.0001 degree
    WGS84 grid sums to 1 (to 4 decimals), and matches the model."""
    base = _utm31n_base(tmp_path / "a.tif", numpy.ones((1, 1), numpy.int32), None, 10000)
    target = make_raster(tmp_path / "by_area.tif", numpy.full((1000, 1000), -1.0), -1,
                         origin=(1, 1), pixel=(0.0001, -0.0001), epsg=4326)
    expected = model.stitch(target, 1, [(base, 1)], ["near"], "etch", area_weight=True)
    pgp.stitch_rasters([(base, 1)], ["near"], (target, 1), overlap_algorithm="etch",
                       area_weight_m2_to_wgs84=True)
    result = pixels(target)
    numpy.testing.assert_almost_equal(numpy.sum(result[result != -1]), 1.0, decimal=4)
    numpy.testing.assert_allclose(result, expected, rtol=1e-12)


def test_area_weight_with_nodata_matches_the_model(tmp_path):
    """A 5x5 base of 2 km pixels with a nodata pixel, 'add' into a WGS84 target with
    values; a same-grid base beside it is not weighted."""
    rng = numpy.random.default_rng(9)
    array = rng.integers(1, 9, (5, 5)).astype(numpy.float32)
    array[2, 3] = 0
    base = _utm31n_base(tmp_path / "b.tif", array, 0, 2000)
    target_array = values(rng, (300, 300), numpy.float64, -1, 0, 1, 0.5)
    target = make_raster(tmp_path / "t.tif", target_array, -1, origin=(0.99, 1.01),
                         pixel=(0.0005, -0.0005), epsg=4326)
    same_grid = make_raster(tmp_path / "same.tif", numpy.full((10, 10), 7.0), -1,
                            origin=(1.0, 1.0), pixel=(0.0005, -0.0005), epsg=4326)
    bases = [(base, 1), (same_grid, 1)]
    expected = model.stitch(target, 1, bases, ["near"] * 2, "add", area_weight=True)
    pgp.stitch_rasters(bases, ["near"] * 2, (target, 1), "add",
                       area_weight_m2_to_wgs84=True)
    numpy.testing.assert_allclose(pixels(target), expected, rtol=1e-12)


# --- pygeoprocessing's test shapes -------------------------------------------------------

@pytest.mark.parametrize("overlap", ["etch", "replace", "add"])
def test_pygeoprocessing_shapes(tmp_path, overlap):
    """test_stitch_rasters: 128x128 squares of 10 at (0, 0) and 20 at (64, -64), Int32
    without nodata, into a 256x256 Float32 target of -1 (nodata -1), WGS84, 1 degree
    pixels; the expected arrays are pygeoprocessing's, built by hand."""
    a = make_raster(tmp_path / "a.tif", numpy.full((128, 128), 10, numpy.int32),
                    origin=(0, 0), pixel=(1, -1), epsg=4326)
    b = make_raster(tmp_path / "b.tif", numpy.full((128, 128), 20, numpy.int32),
                    origin=(64, -64), pixel=(1, -1), epsg=4326)
    target = make_raster(tmp_path / f"{overlap}.tif",
                         numpy.full((256, 256), -1, numpy.float32), -1, origin=(0, 0),
                         pixel=(1, -1), epsg=4326)
    pgp.stitch_rasters([(a, 1), (b, 1)], ["near", "near"], (target, 1),
                       overlap_algorithm=overlap)
    expected = numpy.full((256, 256), -1)
    if overlap == "etch":
        expected[64:192, 64:192] = 20
        expected[0:128, 0:128] = 10
    else:
        expected[0:128, 0:128] = 10
        square = expected[64:192, 64:192]
        expected[64:192, 64:192] = (20 if overlap == "replace"
                                    else numpy.where(square == -1, 20, square + 20))
    numpy.testing.assert_almost_equal(pixels(target), expected)


# --- every executor ----------------------------------------------------------------------

EXECUTOR_REFERENCE = {}


@pytest.fixture(scope="module")
def tall_scene(scene):
    """A 1024x2100 target (three render windows of whole 64x64 tiles) and bases across
    the windows' seams at rows 1024 and 2048, one of them warped."""
    folder = scene["folder"]
    rng = numpy.random.default_rng(6)
    bases = list(scene["bases"])
    for name, col, row, pixel in (("seam1", 100.5, 950.25, 30.0),
                                  ("seam2", 600.0, 1990.0, 30.0),
                                  ("seam1_coarse", 300.0, 980.0, 45.0)):
        path = make_raster(folder / f"{name}.tif",
                           values(rng, (150, 200), numpy.float32, -5), -5,
                           origin=at(col, row), pixel=(pixel, -pixel))
        bases.append((path, 1))
    return {"bases": bases, "methods": ["near"] * len(bases)}


def _stitched_with(tall_scene, folder, executor):
    rng = numpy.random.default_rng(3)
    target = make_raster(folder / "target.tif",
                         values(rng, (2100, 1024), numpy.float32, -1, -50, 50, 0.5), -1)
    pgp.stitch_rasters(tall_scene["bases"], tall_scene["methods"], (target, 1), "add",
                       executor=executor)
    return target


def test_tall_target_matches_the_model(tall_scene, tmp_path):
    rng = numpy.random.default_rng(3)
    target = make_raster(tmp_path / "target.tif",
                         values(rng, (2100, 1024), numpy.float32, -1, -50, 50, 0.5), -1)
    expected = model.stitch(target, 1, tall_scene["bases"], tall_scene["methods"], "add")
    EXECUTOR_REFERENCE["reference"] = pixels(_stitched_with(tall_scene, tmp_path, None))
    numpy.testing.assert_array_equal(EXECUTOR_REFERENCE["reference"], expected)


@pytest.mark.parametrize("name", EXECUTORS[1:])
def test_same_pixels_for_every_executor(tall_scene, tmp_path, pools, name):
    if "reference" not in EXECUTOR_REFERENCE:
        EXECUTOR_REFERENCE["reference"] = pixels(_stitched_with(
            tall_scene, tmp_path / "serial", None))
    (tmp_path / "run").mkdir()
    result = pixels(_stitched_with(tall_scene, tmp_path / "run", executor_for(name, pools)))
    assert result.tobytes() == EXECUTOR_REFERENCE["reference"].tobytes()


# --- errors ------------------------------------------------------------------------------

def test_pygeoprocessing_errors_and_the_target_untouched(scene, tmp_path):
    """pygeoprocessing's checks, in its order, with its classes and messages; a
    missing base named; nothing written."""
    target = make_target(tmp_path / "target.tif")
    no_nodata = make_raster(tmp_path / "no_nodata.tif",
                            numpy.ones((4, 4), numpy.float32), None)
    text = tmp_path / "file.txt"
    text.touch()
    vector = str(tmp_path / "vector.gpkg")
    source = gdal.GetDriverByName("GPKG").Create(vector, 0, 0, 0, gdal.GDT_Unknown)
    source.CreateLayer("points")
    source = None
    base = scene["bases"][:1]
    missing = str(tmp_path / "missing.tif")
    cases = [
        ((base, ["near"], (target, 1), "bad algo"), ValueError, "overlap algorithm"),
        # the overlap is checked before the target's form
        ((base, ["near"], target, "bad algo"), ValueError, "overlap algorithm"),
        ((base, ["near"], target, "etch"), ValueError,
         "Expected raster path/band tuple for target_stitch_raster_path_band"),
        ((base, ["near"] * 2, (target, 1), "add"), ValueError,
         "Expected same number of elements in"),
        ((base, ["near"], (str(text), 1), "etch"), ValueError,
         "Could not open"),
        ((base, ["near"], (vector, 1), "etch"), ValueError,
         "Target stitch raster is not a raster"),
        ((base, ["near"], (target, 2), "add"), ValueError,
         "target_stitch_raster_path_band refers to a band that exceeds"),
        ((base, ["near"], (no_nodata, 1), "etch"), ValueError,
         "nodata value is `None`, expected non-`None` value"),
        ((base + [(missing, 1)], ["near"] * 2, (target, 1), "etch"), RuntimeError,
         "missing.tif: No such file or directory"),
        ((scene["bases"][-3:-2], ["foo"], (target, 1), "etch"), RuntimeError,
         "resampling 'foo': unknown resampling method"),
        ((base + [(base[0][0], 2)], ["near"] * 2, (target, 1), "etch"), RuntimeError,
         f"base '{base[0][0]}' has no band 2 (it has 1)"),
        ((base, ["near"], (target, 1), "etch", False,
          osr.OAMS_AUTHORITY_COMPLIANT), ValueError,
         "traditional GIS axis order"),
    ]
    before = sorted(os.listdir(tmp_path)), file_bytes(target)
    for arguments, error, message in cases:
        with pytest.raises(error) as raised:
            pgp.stitch_rasters(*arguments)
        assert message in str(raised.value), (arguments, str(raised.value))
    with pytest.raises(ValueError, match="executor='nope'"):
        pgp.stitch_rasters(base, ["near"], (target, 1), executor="nope")
    assert (sorted(os.listdir(tmp_path)), file_bytes(target)) == before


def test_with_gdal_exceptions_on(scene, tmp_path):
    """pygeoprocessing turns gdal.UseExceptions() on around its calls; a caller may
    leave it on: the same errors and results."""
    target = make_target(tmp_path / "target.tif")
    text = tmp_path / "file.txt"
    text.touch()
    expected = model.stitch(target, 1, scene["bases"], scene["methods"], "add")
    exceptions = gdal.GetUseExceptions()
    gdal.UseExceptions()
    try:
        with pytest.raises(ValueError, match="Could not open"):
            pgp.stitch_rasters(scene["bases"], scene["methods"], (str(text), 1), "add")
        pgp.stitch_rasters(scene["bases"], scene["methods"], (target, 1), "add")
    finally:
        if not exceptions:
            gdal.DontUseExceptions()
    numpy.testing.assert_array_equal(pixels(target), expected)


def _assert_unchanged(folder, target, before):
    assert (sorted(os.listdir(folder)), file_bytes(target)) == before


def test_cancelled_leaves_the_target_as_it_was(scene, tmp_path):
    """A progress callback returning False at its first call (the render reports per
    tile written): the call stops there and the target is as it was."""
    calls = []

    def cancel(fraction, message, data):
        calls.append(fraction)
        return False

    target = make_target(tmp_path / "target.tif")
    before = sorted(os.listdir(tmp_path)), file_bytes(target)
    with pytest.raises(pgp.Cancelled):
        pgp.stitch_rasters(scene["bases"], scene["methods"], (target, 1), "replace",
                           progress=cancel, executor="threading:2")
    assert len(calls) == 1 and 0 < calls[0] <= 1  # stopped at the first report
    _assert_unchanged(tmp_path, target, before)


@pytest.mark.parametrize("executor", [None, "threading:2"])
def test_a_base_broken_mid_way_leaves_the_target_as_it_was(scene, tmp_path, executor):
    """A truncated GeoTIFF base: it opens, its later tiles fail to read."""
    broken = make_raster(tmp_path / "cut.tif", numpy.ones((512, 512), numpy.float32), -5,
                         origin=at(0, 0), options=("TILED=YES", "BLOCKXSIZE=64",
                                                   "BLOCKYSIZE=64"))
    with open(broken, "r+b") as f:
        f.truncate(os.path.getsize(broken) // 2)
    target = make_raster(tmp_path / "target.tif",
                         numpy.full((512, 512), -1, numpy.float32), -1)
    before = sorted(os.listdir(tmp_path)), file_bytes(target)
    with pytest.raises(RuntimeError) as raised:
        pgp.stitch_rasters(scene["bases"][:2] + [(broken, 1)], ["near"] * 3,
                           (target, 1), "etch", executor=executor)
    assert "cut.tif" in str(raised.value)
    _assert_unchanged(tmp_path, target, before)


# --- the target's layout and metadata ------------------------------------------------------

def test_creation_options_bands_and_metadata_kept(scene, tmp_path):
    """A two-band BigTIFF, DEFLATE with the float predictor, band-interleaved, 64x32
    tiles, descriptions and metadata: stitched into band 2, everything else kept."""
    rng = numpy.random.default_rng(4)
    first = values(rng, (200, 300), numpy.float32, -1)
    target = make_raster(
        tmp_path / "target.tif", [first, numpy.full((200, 300), -1, numpy.float32)], -1,
        options=("TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=32", "COMPRESS=DEFLATE",
                 "PREDICTOR=3", "INTERLEAVE=BAND", "BIGTIFF=YES"))
    ds = gdal.Open(target, gdal.GA_Update)
    ds.SetMetadata({"SOURCE": "test"})
    for index, name in ((1, "kept"), (2, "stitched")):
        ds.GetRasterBand(index).SetDescription(name)
        ds.GetRasterBand(index).SetMetadata({"ROLE": name})
    ds = None
    expected = model.stitch(target, 2, scene["bases"], scene["methods"], "etch")
    listing = sorted(os.listdir(tmp_path))
    pgp.stitch_rasters(scene["bases"], scene["methods"], (target, 2))
    assert sorted(os.listdir(tmp_path)) == listing
    ds = gdal.Open(target)
    structure = ds.GetMetadata("IMAGE_STRUCTURE")
    assert (structure["COMPRESSION"], structure["PREDICTOR"], structure["INTERLEAVE"]) == (
        "DEFLATE", "3", "BAND")
    with open(target, "rb") as f:
        assert f.read(4) == b"II+\x00"  # BigTIFF
    assert ds.GetMetadataItem("SOURCE") == "test"
    assert ds.GetGeoTransform() == (ORIGIN[0], PIXEL, 0, ORIGIN[1], 0, -PIXEL)
    assert osr.SpatialReference(ds.GetProjection()).GetAuthorityCode(None) == "32618"
    for index, name in ((1, "kept"), (2, "stitched")):
        band = ds.GetRasterBand(index)
        assert (band.GetDescription(), band.GetMetadataItem("ROLE")) == (name, name)
        assert band.GetBlockSize() == [64, 32]
        assert band.DataType == gdal.GDT_Float32 and band.GetNoDataValue() == -1
    numpy.testing.assert_array_equal(ds.GetRasterBand(1).ReadAsArray(), first)
    numpy.testing.assert_array_equal(ds.GetRasterBand(2).ReadAsArray(), expected)


def test_envi_target_keeps_its_files(scene, tmp_path):
    """A two-file format (ENVI: .bin and its .hdr): both replaced, nothing else left."""
    made = make_target(tmp_path / "made.tif")
    target = str(tmp_path / "target.bin")
    gdal.Translate(target, made, format="ENVI")
    os.remove(made)
    expected = model.stitch(target, 1, scene["bases"], scene["methods"], "etch")
    listing = sorted(os.listdir(tmp_path))
    pgp.stitch_rasters(scene["bases"], scene["methods"], (target, 1), "etch")
    assert sorted(os.listdir(tmp_path)) == listing
    ds = gdal.Open(target)
    assert ds.GetDriver().ShortName == "ENVI" and ds.GetRasterBand(1).GetNoDataValue() == -1
    numpy.testing.assert_array_equal(ds.GetRasterBand(1).ReadAsArray(), expected)


def test_target_through_a_link_keeps_the_link_and_mode(scene, tmp_path):
    """The linked file is replaced (the link stays a link), its permissions kept."""
    real = make_target(tmp_path / "real.tif")
    os.chmod(real, 0o640)
    link = str(tmp_path / "link.tif")
    os.symlink(real, link)
    expected = model.stitch(real, 1, scene["bases"], scene["methods"], "add")
    listing = sorted(os.listdir(tmp_path))
    pgp.stitch_rasters(scene["bases"], scene["methods"], (link, 1), "add")
    assert sorted(os.listdir(tmp_path)) == listing
    assert os.path.islink(link) and os.stat(real).st_mode & 0o777 == 0o640
    numpy.testing.assert_array_equal(pixels(real), expected)


@pytest.mark.parametrize("options,block", [
    (("COMPRESS=LZW", "BLOCKYSIZE=8"), [300, 8]),
    (("TILED=YES", "COMPRESS=LZW", "BLOCKXSIZE=256", "BLOCKYSIZE=256"), [256, 256]),
])
def test_strips_tiles_and_classic_tiff_kept(scene, tmp_path, options, block):
    target = make_raster(tmp_path / "target.tif", numpy.full((200, 300), -1, numpy.int16),
                         -1, options=options)
    expected = model.stitch(target, 1, scene["bases"], scene["methods"], "replace")
    pgp.stitch_rasters(scene["bases"], scene["methods"], (target, 1), "replace")
    ds = gdal.Open(target)
    assert ds.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "LZW"
    assert ds.GetRasterBand(1).GetBlockSize() == block
    with open(target, "rb") as f:
        assert f.read(4) == b"II*\x00"  # classic TIFF
    numpy.testing.assert_array_equal(ds.GetRasterBand(1).ReadAsArray(), expected)
