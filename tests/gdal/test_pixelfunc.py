#!/usr/bin/python3
"""The pgp_expr pixel function in plain GDAL VRTs, against numpy."""
import numpy as np
import pytest
from osgeo import gdal

from conftest import cast_like_gdal, run, write_raster

ROWS, COLS = 301, 157  # several 64-row jobs, a partial last one


def sources(tmp_path):
    rng = np.random.default_rng(5)
    a = rng.integers(-50, 50, (ROWS, COLS)).astype(np.int16)
    a.flat[::19] = -1
    b = rng.uniform(-10, 10, (ROWS, COLS)).astype(np.float32)
    write_raster(tmp_path / "a.tif", a, nodata=-1)
    write_raster(tmp_path / "b.tif", b)
    return a, b


def vrt(tmp_path, arguments, data_type="Float32", nodata="-9999", transfer="Float64"):
    sources_xml = "".join(
        f'<SimpleSource><SourceFilename relativeToVRT="1">{n}.tif</SourceFilename>'
        '<SourceBand>1</SourceBand></SimpleSource>' for n in "ab")
    nodata_xml = f"<NoDataValue>{nodata}</NoDataValue>" if nodata is not None else ""
    attributes = " ".join(f'{k}="{v}"' for k, v in arguments.items())
    path = tmp_path / "f.vrt"
    path.write_text(
        f'<VRTDataset rasterXSize="{COLS}" rasterYSize="{ROWS}">'
        f'<VRTRasterBand dataType="{data_type}" band="1" subClass="VRTDerivedRasterBand">'
        f"{nodata_xml}<PixelFunctionType>pgp_expr</PixelFunctionType>"
        f"<PixelFunctionArguments {attributes}/>"
        f"<SourceTransferType>{transfer}</SourceTransferType>{sources_xml}"
        "</VRTRasterBand></VRTDataset>")
    return str(path)


def read_band(path):
    ds = gdal.Open(path)
    return ds.GetRasterBand(1).ReadAsArray()


def test_matches_numpy_with_per_source_nodata(tmp_path):
    a, b = sources(tmp_path)
    path = vrt(tmp_path, {"expression": "A * 2 + sqrt(abs(B)) - (A &gt; 3)", "names": "A,B",
                          "source_nodata": "-1,none"})
    out = read_band(path)
    expected = a * 2.0 + np.sqrt(np.abs(b.astype(np.float64))) - (a > 3)
    expected = np.where(a == -1, -9999, expected).astype(np.float32)
    np.testing.assert_array_equal(out, expected)


def test_band_nodata_is_every_source_nodata_by_default(tmp_path):
    a, b = sources(tmp_path)
    b[:3, :4] = -9999
    write_raster(tmp_path / "b.tif", b)
    path = vrt(tmp_path, {"expression": "A + B", "names": "A,B"}, data_type="Int32")
    out = read_band(path)
    raw = a.astype(np.float64) + b
    expected = np.where(b == -9999, -9999, cast_like_gdal(raw, np.int32))
    np.testing.assert_array_equal(out, expected)  # a's -1 is data here


def test_expression_policy_and_isnodata(tmp_path):
    a, b = sources(tmp_path)
    path = vrt(tmp_path, {"expression": "where(isnodata(A), 100, A + B)", "names": "A,B",
                          "source_nodata": "-1,none", "nodata_policy": "expression"})
    out = read_band(path)
    expected = np.where(a == -1, 100, a + b.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(out, expected)


def test_gdal_translate_identical_for_every_executor(tmp_path):
    sources(tmp_path)
    path = vrt(tmp_path, {"expression": "log(1 + abs(A)) * B", "names": "A,B",
                          "source_nodata": "-1,none"})
    outputs = []
    for executor in ["serial", "threading:1", "threading:4"]:
        out = tmp_path / f"{executor.replace(':', '_')}.tif"
        run(["gdal_translate", "-q", path, str(out)], env={"PGP_EXECUTOR": executor})
        outputs.append(gdal.Open(str(out)).ReadAsArray().tobytes())
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0] == read_band(path).tobytes()


@pytest.mark.parametrize("arguments,message", [
    ({"expression": "A + * B", "names": "A,B"}, "'A + * B' at column 5"),
    ({"expression": "A + B", "names": "A"}, "gives 1 names but the band has 2 sources"),
    ({"expression": "A + C", "names": "A,B"}, "unknown name 'C'"),
    ({"expression": "A", "names": "A,B", "source_nodata": "1"}, "gives 1 values for 2 sources"),
    ({"expression": "A", "names": "A,B", "source_nodata": "x,1"}, "'x' is not a number"),
    ({"expression": "A", "names": "A,B", "nodata_policy": "skip"}, "nodata_policy 'skip'"),
])
def test_errors_surface_when_the_vrt_is_read(tmp_path, arguments, message):
    sources(tmp_path)
    path = vrt(tmp_path, arguments)
    ds = gdal.Open(path)
    with pytest.raises(RuntimeError, match="pgp_expr") as error:
        ds.GetRasterBand(1).ReadAsArray()
    assert message in str(error.value)
    result = run(["gdal_translate", path, str(tmp_path / "o.tif")], check=False)
    assert result.returncode != 0 and message in result.stderr


def test_nodata_spelling_replaces_the_band_nodata(tmp_path):
    # GDAL 3.6 merges pixel function arguments case-insensitively: 'nodata'
    # replaces the builtin NoData, so propagation has no output value.
    a, b = sources(tmp_path)
    path = vrt(tmp_path, {"expression": "A", "names": "A,B", "nodata": "-1,none"})
    ds = gdal.Open(path)
    with pytest.raises(RuntimeError, match="source_nodata"):
        ds.GetRasterBand(1).ReadAsArray()
    # With the expression policy the spelling works.
    path = vrt(tmp_path, {"expression": "where(isnodata(A), 7, A)", "names": "A,B",
                          "nodata": "-1,none", "nodata_policy": "expression"})
    np.testing.assert_array_equal(read_band(path), np.where(a == -1, 7, a).astype(np.float32))


def test_a_band_without_nodata_value_is_refused_by_gdal(tmp_path):
    sources(tmp_path)
    path = vrt(tmp_path, {"expression": "B", "names": "A,B"}, nodata=None)
    ds = gdal.Open(path)
    with pytest.raises(RuntimeError, match="no NoData"):
        ds.GetRasterBand(1).ReadAsArray()
