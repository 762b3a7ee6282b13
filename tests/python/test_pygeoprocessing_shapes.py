"""pygeoprocessing's argument shapes and validation errors (its own tests' cases)."""
import os

import numpy
import pytest
from osgeo import gdal

import ops
import pgp
from pgp_testing import read, write_raster


def test_constant_arguments(tmp_path):
    target = str(tmp_path / "target.tif")
    pgp.raster_calculator(
        [(3, 'raw'), numpy.array(range(2)), numpy.array(range(3)).reshape((3, 1)),
         numpy.ones((3, 2))], lambda a, x, y, z: a * x * y * z, target, gdal.GDT_Float32, 0)
    numpy.testing.assert_array_equal(read(target)[0], [[0, 0], [0, 3], [0, 6]])
    with pytest.raises(ValueError, match="Only \\(object, 'raw'\\) values have been passed"):
        pgp.raster_calculator([(3, 'raw')], lambda a: a, str(tmp_path / "a.tif"),
                              gdal.GDT_Float32, None)
    with pytest.raises(ValueError, match="Expected `local_op` to return a numpy.ndarray"):
        pgp.raster_calculator([numpy.ones((3, 2))], lambda a: 1, str(tmp_path / "b.tif"),
                              gdal.GDT_Float32, None)
    assert not (tmp_path / "b.tif").exists()
    pgp.raster_calculator([numpy.arange(5)], lambda a: a * 2, str(tmp_path / "c.tif"),
                          gdal.GDT_Int32, None)
    numpy.testing.assert_array_equal(read(tmp_path / "c.tif")[0], [numpy.arange(5) * 2])
    passed = []
    pgp.raster_calculator(
        [numpy.ones((2, 2)), ([1, 2], 'raw'), (numpy.arange(3), 'raw')],
        lambda a, raw_list, raw_array: passed.append((raw_list, raw_array)) or a,
        str(tmp_path / "d.tif"), gdal.GDT_Float32, None)
    assert passed[0][0] == [1, 2] and isinstance(passed[0][1], numpy.ndarray)


def test_row_vector_tiled_down_a_raster(tmp_path):
    base = write_raster(tmp_path / "base.tif", numpy.ones((128, 128), numpy.float32),
                        block=16)
    row = numpy.arange(128)
    target = str(tmp_path / "t.tif")
    pgp.raster_calculator([(base, 1), row], lambda a, r: a * r, target, gdal.GDT_Float32,
                          None, largest_block=0, executor="threading:2")
    numpy.testing.assert_array_equal(read(target)[0], numpy.tile(row, (128, 1)))


def test_statistics_strings(tmp_path):
    array = numpy.ones((10, 10), numpy.int32)
    array[0, :] = -1
    base = write_raster(tmp_path / "base.tif", array, nodata=-1, block=16)
    target = str(tmp_path / "t.tif")
    pgp.raster_calculator([(base, 1)], ops.double, target, gdal.GDT_Int32, -2,
                          largest_block=5)
    stats = read(target)[2]
    assert stats["STATISTICS_MINIMUM"] == "2" and stats["STATISTICS_MAXIMUM"] == "2"
    pgp.raster_calculator([(base, 1)], lambda a: numpy.where(a == -1, -1, a), target,
                          gdal.GDT_Int32, -1, largest_block=5)
    assert read(target)[2] == {
        "STATISTICS_MINIMUM": "1", "STATISTICS_MAXIMUM": "1", "STATISTICS_MEAN": "1",
        "STATISTICS_STDDEV": "0", "STATISTICS_VALID_PERCENT": "90.00"}
    # Without a target nodata pygeoprocessing counts no pixel as valid.
    pgp.raster_calculator([(base, 1)], ops.double, target, gdal.GDT_Int32, None)
    assert read(target)[2]["STATISTICS_VALID_PERCENT"] == "0.00"


def test_validation_errors(tmp_path):
    base = write_raster(tmp_path / "base.tif", numpy.ones((5, 5), numpy.int16), nodata=-1)
    other = write_raster(tmp_path / "other.tif", numpy.ones((4, 5), numpy.int16))
    target = str(tmp_path / "t.tif")
    cases = [
        ([], "`base_raster_path_band_const_list` is empty"),
        ([base], "Expected a sequence of path / integer band tuples"),
        ([(base, "1")], "Expected a sequence of path / integer band tuples"),
        ([(1, 1)], "Expected a sequence of path / integer band tuples"),
        ([(base, 1), (other, 1)], "Input Rasters are not the same dimensions"),
        ([numpy.empty((3, 3, 3))], "Numpy array inputs must be 2 dimensions or less"),
        ([numpy.arange(2), numpy.ones((4, 4))], "cannot be broadcast into a single shape"),
        ([(base, 1), numpy.ones((4, 4))], "cannot be broadcast to numpy shape"),
    ]
    for arguments, message in cases:
        with pytest.raises(ValueError, match=message.replace("(", "\\(").replace(")", "\\)")):
            pgp.raster_calculator(arguments, lambda *a: a[0], target, gdal.GDT_Float32, None)
    with pytest.raises(ValueError, match="is used as a target path"):
        pgp.raster_calculator([(base, 1)], lambda a: a, base, gdal.GDT_Float32, None)
    with pytest.raises(ValueError, match="Invalid target type"):
        pgp.raster_calculator([(base, 1)], lambda a: a, target, 999, None)
    for band in (0, 2):
        with pytest.raises(RuntimeError, match="Illegal band #"):
            pgp.raster_calculator([(base, band)], lambda a: a, target, gdal.GDT_Float32, None)
    with pytest.raises(RuntimeError, match="No such file or directory"):
        pgp.raster_calculator([(str(tmp_path / "missing.tif"), 1)], lambda a: a, target,
                              gdal.GDT_Float32, None)
    assert sorted(os.listdir(tmp_path)) == ["base.tif", "other.tif"]


def test_nested_target_folder_and_creation_tuple(tmp_path):
    base = write_raster(tmp_path / "base.tif", numpy.arange(20, dtype=numpy.int16).reshape(4, 5))
    target = tmp_path / "sub" / "dir" / "t.tif"
    pgp.raster_calculator([(base, 1)], lambda a: a, str(target), gdal.GDT_Int32, None,
                          raster_driver_creation_tuple=("GTiff", ()))
    pixels, _, _, _ = read(target)
    numpy.testing.assert_array_equal(pixels, numpy.arange(20).reshape(4, 5))
    assert gdal.Open(str(target)).GetRasterBand(1).GetBlockSize() == [5, 4]


def test_array_equals_nodata_is_numpy_isclose():
    """pgp's nodata test (a faster isclose for a scalar nodata) against numpy.isclose
    with equal_nan, over values near, at and away from each nodata."""
    rng = numpy.random.default_rng(3)
    for dtype in (numpy.float32, numpy.float64):
        for nodata in (-1.0, 0.0, -9999.0, 3.4e38, float(numpy.finfo(numpy.float32).min),
                       5e-9, 1.00001, numpy.nan, numpy.inf, -numpy.inf):
            values = rng.uniform(-2, 2, 10000).astype(dtype)
            with numpy.errstate(over="ignore"):
                for step, value in ((7, nodata), (11, numpy.nan), (13, numpy.inf),
                                    (17, nodata * (1 + 1e-6)), (19, nodata + 1e-8),
                                    (23, -numpy.inf), (29, nodata * (1 + 2e-5))):
                    values[::step] = value
            numpy.testing.assert_array_equal(
                pgp.array_equals_nodata(values, nodata),
                numpy.isclose(values, nodata, equal_nan=True), err_msg=f"{dtype} {nodata}")
    integers = numpy.array([2147483647, 2147483646, 0], numpy.int32)
    numpy.testing.assert_array_equal(pgp.array_equals_nodata(integers, 2147483647),
                                     [True, False, False])
    assert not pgp.array_equals_nodata(integers, None).any()


def test_iterblocks_windows():
    """pygeoprocessing's iterblocks: 256 blocks on 300x200 grow to the raster's height
    (its verified example); largest_block=0 keeps the blocks; windows are row-major."""
    from pgp._engine import iterblocks_windows, tile_windows
    assert iterblocks_windows((300, 200), (256, 256), 2**16) == [
        (0, 0, 256, 200), (256, 0, 44, 200)]
    assert iterblocks_windows((300, 200), (64, 64), 0)[:6] == [
        (0, 0, 64, 64), (64, 0, 64, 64), (128, 0, 64, 64), (192, 0, 64, 64),
        (256, 0, 44, 64), (0, 64, 64, 64)]
    assert iterblocks_windows((1000, 1000), (100, 10), 2000) == [
        (x, y, 200, 10) for y in range(0, 1000, 10) for x in range(0, 1000, 200)]
    # Graph windows: whole tiles, from the size alone.
    assert tile_windows((8192, 8192), (256, 256)) == [
        (x, y, 4096, 256) for y in range(0, 8192, 256) for x in (0, 4096)]
    assert tile_windows((300, 200), (64, 64)) == [(0, 0, 300, 200)]
