#!/usr/bin/python3
"""Calc graphs through real GDAL clients, against numpy computations."""
import threading

import numpy as np
import pytest
from osgeo import gdal

from conftest import (NUMPY_OF_GDAL, cast_like_gdal, isnodata, read, run, write_graph,
                      write_raster)

ROWS, COLS = 203, 317  # not multiples of the 64-pixel blocks: edge tiles are partial
NODATA = {"Byte": 255, "Int16": -999, "UInt16": 65535, "Int32": -99999,
          "Float32": -3.4e38, "Float64": -1e300}


def field(seed, dtype, low, high):
    rng = np.random.default_rng(seed)
    values = rng.uniform(low, high, (ROWS, COLS))
    return (np.round(values) if np.dtype(dtype).kind in "iu" else values).astype(dtype)


def inputs(tmp_path, type_name, holes=True):
    """Rasters A, B, C of one type with nodata holes; returns arrays and nodata."""
    dtype = NUMPY_OF_GDAL[type_name]
    low = 0 if np.dtype(dtype).kind == "u" else -100
    arrays = [field(i, dtype, low, 200) for i in range(3)]
    nodata = NODATA[type_name]
    for i, array in enumerate(arrays):
        if holes:
            array.flat[i::23] = nodata
        write_raster(tmp_path / f"{'abc'[i]}.tif", array, nodata)
    return arrays, nodata


SOURCES = """<Source name="A" file="a.tif"/><Source name="B" file="b.tif"/>
<Source name="C" file="c.tif"/>"""


@pytest.mark.parametrize("type_name", ["Byte", "Int16", "UInt16", "Int32", "Float32",
                                       "Float64"])
def test_propagate_matches_numpy_for_every_type(tmp_path, type_name):
    (a, b, c), nodata = inputs(tmp_path, type_name)
    graph = write_graph(tmp_path / "g.pgp.vrt", SOURCES + f"""
<Calc name="f64" dataType="Float64" noData="-1e300"><Expression>(A + B) * C / 2 - A % 7</Expression></Calc>
<Calc name="same" dataType="{type_name}" noData="{nodata}"><Expression>A * 1.5 - B / 4 + 0.5</Expression></Calc>
<Band ref="f64"/><Band ref="same"/>""")
    out = read(graph)
    A, B, C = (x.astype(np.float64) for x in (a, b, c))
    mask = isnodata(a, nodata) | isnodata(b, nodata) | isnodata(c, nodata)
    expected = np.where(mask, -1e300, (A + B) * C / 2 - np.mod(A, 7))
    np.testing.assert_array_equal(out[0], expected)
    mask_ab = isnodata(a, nodata) | isnodata(b, nodata)
    same = cast_like_gdal(A * 1.5 - B / 4 + 0.5, NUMPY_OF_GDAL[type_name])
    np.testing.assert_array_equal(out[1], np.where(mask_ab, np.array(nodata).astype(same.dtype),
                                                   same))
    assert mask.any() and (~mask).any()


def test_functions_and_operators_match_numpy(tmp_path):
    (a, b, c), _ = inputs(tmp_path, "Float32", holes=False)
    expression = ("where(A > B, sqrt(abs(A)), log(1 + abs(B))) + atan2(A, B) - min(A, B, 3)"
                  " + max(A, C) * (A >= 0 && B < 50 || !(C != 1)) + floor(A / 3) - ceil(B / 5)"
                  " + round(C / 4) + trunc(A / 7) + clamp(B, -10, 10) + pow(abs(C), 0.5)"
                  " + fmod(A, 3) + (A < 0 ? -2 ** 2 : 2 ** 3 ** 0.5) + exp(-abs(A) / 100)"
                  " + sin(A) * cos(B) + tanh(C / 50) + log10(1 + abs(A)) + log2(2 + abs(B))")
    graph = write_graph(tmp_path / "g.pgp.vrt", SOURCES + f"""
<Calc name="f" noDataPolicy="expression"><Expression>{expression.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')}</Expression></Calc>
<Band ref="f"/>""")
    out = read(graph)
    A, B, C = (x.astype(np.float64) for x in (a, b, c))
    expected = (np.where(A > B, np.sqrt(np.abs(A)), np.log(1 + np.abs(B))) + np.arctan2(A, B)
                - np.minimum(np.minimum(A, B), 3)
                + np.maximum(A, C) * ((A >= 0) & (B < 50) | ~(C != 1))
                + np.floor(A / 3) - np.ceil(B / 5)
                + np.where(C / 4 >= 0, np.floor(C / 4 + 0.5), np.ceil(C / 4 - 0.5))
                + np.trunc(A / 7) + np.clip(B, -10, 10) + np.power(np.abs(C), 0.5)
                + np.fmod(A, 3) + np.where(A < 0, -4.0, 2 ** 3 ** 0.5) + np.exp(-np.abs(A) / 100)
                + np.sin(A) * np.cos(B) + np.tanh(C / 50) + np.log10(1 + np.abs(A))
                + np.log2(2 + np.abs(B)))
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_calc_reads_calc_with_casts_between(tmp_path):
    (a, b, _), nodata = inputs(tmp_path, "Int16")
    graph = write_graph(tmp_path / "g.pgp.vrt", SOURCES + """
<Calc name="half" dataType="Float32" noData="-1"><Expression>A / 3 + B</Expression></Calc>
<Calc name="outer" dataType="Int32" noData="-7"><Expression>half * 2 + isnan(half)</Expression></Calc>
<Band ref="outer"/><Band ref="half"/>""")
    out = read(graph)
    mask = isnodata(a, nodata) | isnodata(b, nodata)
    half = np.where(mask, -1, (a / 3.0 + b)).astype(np.float32)
    half_nodata = isnodata(half, -1.0)
    outer = np.where(half_nodata, -7, cast_like_gdal(half.astype(np.float64) * 2, np.int32))
    np.testing.assert_array_equal(out[1], half)
    np.testing.assert_array_equal(out[0], outer)


def test_expression_policy_sees_raw_values_and_isnodata(tmp_path):
    (a, b, _), nodata = inputs(tmp_path, "Int16")
    graph = write_graph(tmp_path / "g.pgp.vrt", SOURCES + """
<Calc name="f" dataType="Int16" noDataPolicy="expression">
  <Expression>where(isnodata(A), 0, A) + where(isnodata(B), 1000, 0) + B * 0</Expression></Calc>
<Band ref="f"/>""")
    out = read(graph)
    expected = np.where(a == nodata, 0, a) + np.where(b == nodata, 1000, 0) + b * 0
    np.testing.assert_array_equal(out, expected.astype(np.int16))


def test_nan_result_becomes_nodata(tmp_path):
    a = field(3, np.float64, -50, 50)
    write_raster(tmp_path / "a.tif", a)
    graph = write_graph(tmp_path / "g.pgp.vrt", """<Source name="A" file="a.tif"/>
<Calc name="f" dataType="Float32" noData="-9"><Expression>log(A)</Expression></Calc>
<Calc name="bare" dataType="Float32"><Expression>log(A)</Expression></Calc>
<Band ref="f"/><Band ref="bare"/>""")
    out = read(graph)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.log(a)
    np.testing.assert_allclose(out[0], np.where(np.isnan(expected), -9, expected).astype(
        np.float32), rtol=1e-7)
    assert np.isnan(out[1]).sum() == np.isnan(expected).sum() > 0


def test_float_nodata_uses_isclose_and_nan_nodata(tmp_path):
    a = np.full((ROWS, COLS), 5.0)
    a[0, :10] = -1.000005   # within isclose of -1: nodata
    a[1, :10] = -1.0001     # not nodata
    write_raster(tmp_path / "a.tif", a, nodata=-1)
    b = np.full((ROWS, COLS), 2.0, np.float32)
    b[2, :5] = np.nan
    write_raster(tmp_path / "b.tif", b, nodata=float("nan"))
    graph = write_graph(tmp_path / "g.pgp.vrt", """<Source name="A" file="a.tif"/>
<Source name="B" file="b.tif"/>
<Calc name="f" noData="-99"><Expression>A + B</Expression></Calc><Band ref="f"/>""")
    out = read(graph)
    assert (out[0, :10] == -99).all()
    np.testing.assert_allclose(out[1, :10], -1.0001 + 2)
    assert (out[2, :5] == -99).all() and out[2, 5] == 7


def odd_windows_and_blocks(path):
    ds = gdal.Open(str(path))
    whole = ds.ReadAsArray()
    window = ds.ReadAsArray(13, 29, 37, 91)
    band = ds.GetRasterBand(1)
    bx, by = band.GetBlockSize()
    blocks = np.zeros_like(whole[0] if whole.ndim == 3 else whole)
    for y in range(0, ds.RasterYSize, by):
        for x in range(0, ds.RasterXSize, bx):
            w, h = min(bx, ds.RasterXSize - x), min(by, ds.RasterYSize - y)
            blocks[y:y + h, x:x + w] = band.ReadAsArray(x, y, w, h)
    return whole, window, blocks


@pytest.mark.parametrize("block", [(64, 64), (100, 37)])
def test_identical_across_executors_and_windows(tmp_path, block):
    inputs(tmp_path, "Float32")
    graph = write_graph(tmp_path / "g.pgp.vrt", SOURCES + """
<Calc name="heavy" dataType="Float32" noData="-1"><Expression>sqrt(A*A+B*B)+log(1+abs(C))</Expression></Calc>
<Calc name="light" dataType="Float64" noData="-1"><Expression>(A+B)*C/2</Expression></Calc>
<Band ref="heavy"/><Band ref="light"/>""", block=block)
    reference = None
    for executor in ["serial", "threading:1", "threading:4", "multiprocessing:3"]:
        gdal.SetConfigOption("PGP_EXECUTOR", executor)
        whole, window, blocks = odd_windows_and_blocks(graph)
        assert whole.tobytes() == whole.tobytes()
        assert window.tobytes() == whole[:, 29:29 + 91, 13:13 + 37].tobytes()
        assert blocks.tobytes() == whole[0].tobytes()
        if reference is None:
            reference = whole
        assert whole.tobytes() == reference.tobytes(), executor
    gdal.SetConfigOption("PGP_EXECUTOR", None)
    # The open option overrides the config option.
    threaded = gdal.OpenEx(graph, open_options=["EXECUTOR=threading:2"]).ReadAsArray()
    assert threaded.tobytes() == reference.tobytes()


def test_gdal_translate_bytes_identical_for_every_executor(tmp_path):
    inputs(tmp_path, "Int16")
    graph = write_graph(tmp_path / "g.pgp.vrt", SOURCES + """
<Calc name="f" dataType="Float32" noData="-1"><Expression>sqrt(A*A+B*B)+log(1+abs(C))</Expression></Calc>
<Band ref="f"/>""", block=(48, 80))
    outputs = []
    for executor in ["serial", "threading:1", "threading:4"]:
        out = tmp_path / f"{executor.replace(':', '_')}.tif"
        run(["gdal_translate", "-q", "-co", "TILED=YES", graph, str(out)],
            env={"PGP_EXECUTOR": executor})
        outputs.append(gdal.Open(str(out)).ReadAsArray().tobytes())
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0] == read(graph).tobytes()


def test_gdalinfo_stats_match_numpy_and_agree_across_executors(tmp_path):
    (a, b, _), nodata = inputs(tmp_path, "Float32")
    graph = write_graph(tmp_path / "g.pgp.vrt", SOURCES + """
<Calc name="f" dataType="Float32" noData="-1"><Expression>A - B</Expression></Calc>
<Band ref="f"/>""")
    reports = []
    for executor in ["serial", "threading:4"]:
        result = run(["gdalinfo", "-stats", graph], env={"PGP_EXECUTOR": executor})
        reports.append([line for line in result.stdout.splitlines() if "STATISTICS_" in line])
    assert reports[0] == reports[1] and reports[0]
    values = dict(line.strip().split("=") for line in reports[0])
    mask = isnodata(a, nodata) | isnodata(b, nodata)
    valid = (a.astype(np.float64) - b)[~mask].astype(np.float32).astype(np.float64)
    assert float(values["STATISTICS_MINIMUM"]) == pytest.approx(valid.min(), rel=1e-6)
    assert float(values["STATISTICS_MAXIMUM"]) == pytest.approx(valid.max(), rel=1e-6)
    assert float(values["STATISTICS_MEAN"]) == pytest.approx(valid.mean(), rel=1e-6)
    assert float(values["STATISTICS_STDDEV"]) == pytest.approx(valid.std(), rel=1e-6)
    assert float(values["STATISTICS_VALID_PERCENT"]) == pytest.approx(
        100 * valid.size / a.size, abs=0.01)


def test_statistics_through_osgeo(tmp_path):
    (a, _, _), nodata = inputs(tmp_path, "Int16")
    graph = write_graph(tmp_path / "g.pgp.vrt", SOURCES + """
<Calc name="f" dataType="Int16" noData="-999"><Expression>A</Expression></Calc>
<Band ref="f"/>""")
    gdal.SetConfigOption("PGP_EXECUTOR", "threading:2")
    ds = gdal.Open(graph)  # GDAL 3.6 bands do not keep their dataset alive
    band = ds.GetRasterBand(1)
    fractions = []
    minimum, maximum, mean, std = band.ComputeStatistics(
        False, callback=lambda fraction, *_: fractions.append(fraction) or 1)
    assert fractions and fractions[-1] == 1.0
    valid = a[a != nodata].astype(np.float64)
    assert (minimum, maximum) == (valid.min(), valid.max())
    assert mean == pytest.approx(valid.mean(), rel=1e-12)
    assert std == pytest.approx(valid.std(), rel=1e-12)
    assert band.ComputeRasterMinMax(False) == (valid.min(), valid.max())


def test_xml_string_as_filename(tmp_path):
    (a, _, _), nodata = inputs(tmp_path, "Int16")
    xml = (f'<PGPDataset><Source name="A" file="{tmp_path}/a.tif"/>'
           '<Calc name="f" dataType="Int16" noData="-999"><Expression>A * 2</Expression></Calc>'
           '<Band ref="f"/></PGPDataset>')
    ds = gdal.Open(xml)
    assert ds.GetDriver().ShortName == "PGP"
    np.testing.assert_array_equal(ds.ReadAsArray(),
                                  np.where(a == nodata, -999, a.astype(np.int32) * 2))


def test_dataset_metadata_grid_and_file_list(tmp_path):
    inputs(tmp_path, "Float32")
    graph = write_graph(tmp_path / "g.pgp.vrt", SOURCES + """
<Calc name="f" dataType="UInt16" noData="0"><Expression>A &gt; 0</Expression></Calc>
<Band ref="f" description="positive A"/><Band ref="A"/>""", block=(32, 16))
    ds = gdal.Open(graph)
    src = gdal.Open(str(tmp_path / "a.tif"))
    assert ds.GetGeoTransform() == src.GetGeoTransform()
    assert ds.GetSpatialRef().IsSame(src.GetSpatialRef())
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (COLS, ROWS, 2)
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_UInt16 and band.GetNoDataValue() == 0
    assert band.GetBlockSize() == [32, 16]
    assert band.GetDescription() == "positive A"
    assert band.GetMetadataItem("PGP_EXPRESSION") == "A > 0"
    assert ds.GetRasterBand(2).DataType == gdal.GDT_Float32
    assert ds.GetRasterBand(2).GetNoDataValue() == pytest.approx(NODATA["Float32"])
    np.testing.assert_array_equal(ds.GetRasterBand(2).ReadAsArray(), src.ReadAsArray())
    assert sorted(ds.GetFileList()) == sorted([graph] + [str(tmp_path / f"{n}.tif")
                                                         for n in "abc"])


def test_delete_rename_copy_and_overwrite_leave_the_sources(tmp_path):
    """GDAL's default Delete, Rename and CopyFiles act on every file GetFileList names,
    a graph's sources included; the PGP driver's only on the .pgp.vrt and its .aux.xml,
    so gdalmanage and a GTiff written over a graph leave the user's rasters."""
    inputs(tmp_path, "Float32")
    sources = {name: (tmp_path / f"{name}.tif").read_bytes() for name in "abc"}
    graph = write_graph(tmp_path / "g.pgp.vrt", SOURCES + '<Band ref="A"/>')
    ds = gdal.Open(graph)
    ds.GetRasterBand(1).ComputeStatistics(False)
    ds = None  # writes the .aux.xml
    assert (tmp_path / "g.pgp.vrt.aux.xml").exists()
    run(["gdalmanage", "rename", graph, str(tmp_path / "h.pgp.vrt")])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.tif", "b.tif", "c.tif", "h.pgp.vrt", "h.pgp.vrt.aux.xml"]
    run(["gdalmanage", "copy", str(tmp_path / "h.pgp.vrt"), str(tmp_path / "k.pgp.vrt")])
    assert (tmp_path / "k.pgp.vrt").read_bytes() == (tmp_path / "h.pgp.vrt").read_bytes()
    run(["gdalmanage", "delete", str(tmp_path / "h.pgp.vrt")])
    run(["gdalmanage", "delete", str(tmp_path / "k.pgp.vrt")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "b.tif", "c.tif"]
    graph = write_graph(tmp_path / "g.pgp.vrt", SOURCES + '<Band ref="A"/>')
    run(["gdal_translate", "-q", "-of", "GTiff", str(tmp_path / "b.tif"), graph])
    assert gdal.Open(graph).GetDriver().ShortName == "GTiff"
    assert {name: (tmp_path / f"{name}.tif").read_bytes() for name in "abc"} == sources


def test_driver_is_listed_with_its_open_options():
    info = run(["gdalinfo", "--format", "PGP"]).stdout
    for text in ["Short Name: PGP", "pgp.vrt", 'name="EXECUTOR"', 'name="CACHE_MB"',
                 'name="PREFETCH"', "Help Topic"]:
        assert text in info


def test_update_access_is_refused(tmp_path):
    inputs(tmp_path, "Byte")
    graph = write_graph(tmp_path / "g.pgp.vrt", SOURCES + '<Band ref="A"/>')
    with pytest.raises(RuntimeError, match="read-only"):
        gdal.OpenEx(graph, gdal.OF_RASTER | gdal.OF_UPDATE, allowed_drivers=["PGP"])


def test_georeferencing_nodata_and_description_edits_are_refused(tmp_path):
    """PAM would keep them in the .aux.xml, where the graph's own never let them show:
    gdal_edit.py -ro would succeed and change nothing. Metadata is still kept."""
    inputs(tmp_path, "Float32")
    graph = write_graph(tmp_path / "g.pgp.vrt", SOURCES + '<Band ref="A"/>')
    before = (tmp_path / "g.pgp.vrt").read_bytes()
    edit = run(["gdal_edit.py", "-ro", "-a_nodata", "5", "-a_ullr", "0", "10", "10", "0",
                "-a_srs", "EPSG:4326", "-mo", "AUTHOR=me", graph], check=False)
    for what in ["geotransform", "spatial reference", "nodata (noData of <Source name='A'>)"]:
        assert f"the {what} of a PGP graph comes from its .pgp.vrt" in edit.stderr
    refused = run(["gdal_edit.py", "-a_nodata", "5", graph], check=False)
    assert refused.returncode != 0 and "editing its .pgp.vrt" in refused.stderr
    ds = gdal.Open(graph)
    src = gdal.Open(str(tmp_path / "a.tif"))
    band = ds.GetRasterBand(1)
    for change in [lambda: ds.SetGeoTransform((0, 1, 0, 0, 0, -1)),
                   lambda: ds.SetProjection(src.GetProjection()),
                   lambda: ds.SetGCPs([gdal.GCP(0, 0, 0, 0, 0)], src.GetProjection()),
                   lambda: band.SetNoDataValue(7), band.DeleteNoDataValue,
                   lambda: band.SetDescription("renamed")]:
        with pytest.raises(RuntimeError, match="comes from its .pgp.vrt"):
            change()
    ds = None
    ds = gdal.Open(graph)
    assert ds.GetMetadataItem("AUTHOR") == "me"
    assert ds.GetGeoTransform() == src.GetGeoTransform() and ds.GetGCPCount() == 0
    assert ds.GetSpatialRef().IsSame(src.GetSpatialRef())
    assert ds.GetRasterBand(1).GetNoDataValue() == src.GetRasterBand(1).GetNoDataValue()
    assert ds.GetRasterBand(1).GetDescription() == "A"
    sidecar = (tmp_path / "g.pgp.vrt.aux.xml").read_text()
    for element in ["NoDataValue", "GeoTransform", "SRS", "GCPList"]:
        assert f"<{element}" not in sidecar
    assert (tmp_path / "g.pgp.vrt").read_bytes() == before


def test_progress_false_cancels_the_read(tmp_path):
    inputs(tmp_path, "Float32")
    graph = write_graph(tmp_path / "g.pgp.vrt", SOURCES + """
<Calc name="f" noData="-1"><Expression>A + B</Expression></Calc><Band ref="f"/>""",
                        block=(16, 16))
    calls = []

    def stop_after_five(fraction, message, data):
        calls.append(fraction)
        return 0 if len(calls) >= 5 else 1

    ds = gdal.Open(graph)
    band = ds.GetRasterBand(1)
    with pytest.raises(RuntimeError, match="[Ii]nterrupt"):
        band.ReadAsArray(callback=stop_after_five)
    assert len(calls) == 5 and calls[-1] < 1


def test_worker_failure_on_truncated_source_fails_gdal_translate(tmp_path):
    import os
    a = field(1, np.float32, 0, 1)
    big = np.tile(a, (3, 3))
    path = write_raster(tmp_path / "a.tif", big, block=64)
    graph = write_graph(tmp_path / "g.pgp.vrt", """<Source name="A" file="a.tif"/>
<Calc name="f" dataType="Float32"><Expression>A * 2</Expression></Calc>
<Band ref="f"/>""")
    os.truncate(path, os.path.getsize(path) * 2 // 3)  # the header survives, tiles don't
    for executor in ["serial", "threading:2"]:
        result = run(["gdal_translate", "-q", graph, str(tmp_path / "out.tif")],
                     env={"PGP_EXECUTOR": executor}, check=False)
        assert result.returncode != 0, executor
        assert "<Calc name='f'> tile (" in result.stderr, result.stderr
        assert "<Source name='A'>" in result.stderr and "a.tif" in result.stderr


def test_rasterio_env_in_a_thread_reaches_the_driver(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    inputs(tmp_path, "Float32")
    graph = write_graph(tmp_path / "g.pgp.vrt", SOURCES + """
<Calc name="f" dataType="Float32" noData="-1"><Expression>sqrt(A*A+B*B)+log(1+abs(C))</Expression></Calc>
<Band ref="f"/>""")
    results = {}

    def render(executor):
        # Outside the main thread rasterio.Env sets thread-local config options.
        with rasterio.Env(PGP_EXECUTOR=executor):
            with rasterio.open(graph) as src:
                results[executor] = (src.read(1).tobytes(), src.tags(ns="PGP")["EXECUTOR"])

    for executor in ["serial", "threading:2"]:
        thread = threading.Thread(target=render, args=(executor,))
        thread.start()
        thread.join(120)
    assert results["threading:2"][1] == "threading:2"
    assert results["serial"][1] == "serial"
    assert results["threading:2"][0] == results["serial"][0]
