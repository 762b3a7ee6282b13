#!/usr/bin/python3
"""<Convolve> through osgeo.gdal and gdal_translate, against scipy.ndimage."""
import itertools

import numpy as np
import pytest
from osgeo import gdal
from scipy import ndimage

from conftest import isnodata, read, run, write_graph, write_raster

ROWS, COLS = 170, 230
FLOAT32_LOWEST = -3.4028234663852886e38


def signal(tmp_path, dtype=np.float32, nodata=-1.0, holes=True):
    rng = np.random.default_rng(11)
    values = rng.uniform(0, 10, (ROWS, COLS))
    if np.dtype(dtype).kind in "iu":
        values = np.round(values * 10)
    values = values.astype(dtype)
    if holes:
        values[40:52, 60:75] = nodata  # a hole larger than small kernels
        values.flat[::97] = nodata
    write_raster(tmp_path / "s.tif", values, nodata=nodata)
    return values


def gaussian(size, sigma):
    y, x = np.mgrid[0:size, 0:size] - (size - 1) / 2
    return np.exp(-(x * x + y * y) / (2 * sigma * sigma))


KERNELS = {
    "3x3": np.ones((3, 3)),
    "4x6": np.arange(24, dtype=float).reshape(4, 6) % 7 - 2,
    "5x5asym": np.random.default_rng(4).uniform(-1, 2, (5, 5)),
    "31x31": gaussian(31, 5),
    "101x101": gaussian(101, 20),
}


def reference(values, nodata, kernel, kernel_valid=None, normalize=False, ignore=False,
              mask=True, tol=1e-8, out_nodata=FLOAT32_LOWEST):
    valid = ~isnodata(values, nodata)
    s = np.where(valid, values.astype(np.float64), 0.0)
    k = np.where(kernel_valid if kernel_valid is not None else True, kernel, 0.0)
    ksum = k.sum()
    if normalize:
        k = k / ksum
    c = ndimage.convolve(s, k, mode="constant", cval=0.0)
    if ignore:
        m = ndimage.convolve(valid.astype(np.float64), k, mode="constant", cval=0.0)
        defined = m > 1e-12 * np.abs(k).sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.where(defined, c / m * (1.0 if normalize else ksum), 0.0)
    if tol is not None:
        c[np.abs(c) <= tol] = 0
    if mask:
        c[~valid] = out_nodata
    return c


def kernel_xml(kernel):
    rows, cols = kernel.shape
    values = " ".join(repr(float(v)) for v in kernel.ravel())
    return f'<Kernel rows="{rows}" cols="{cols}">{values}</Kernel>'


def convolve_graph(tmp_path, kernel, attributes="", block=(64, 64)):
    return write_graph(tmp_path / "g.pgp.vrt", f"""<Source name="s" file="s.tif"/>
<Convolve name="c" input="s" {attributes}>{kernel_xml(kernel)}</Convolve>
<Band ref="c"/>""", block=block)


def assert_close(out, expected):
    """Exact where expected is nodata (float32's lowest) or not finite, within 1e-9 of
    the largest other value elsewhere (nodata must not set that scale)."""
    exact = ~np.isfinite(expected) | (expected == FLOAT32_LOWEST)
    np.testing.assert_array_equal(out[exact], expected[exact])
    scale = np.abs(expected[~exact]).max()
    np.testing.assert_allclose(out[~exact], expected[~exact], rtol=0, atol=1e-9 * scale)


@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_kernels_match_scipy(tmp_path, name, method):
    values = signal(tmp_path)
    graph = convolve_graph(tmp_path, KERNELS[name], f'method="{method}"')
    assert_close(read(graph), reference(values, -1.0, KERNELS[name]))


FLAGS = list(itertools.product([False, True], repeat=3))


@pytest.mark.parametrize("normalize,ignore,mask", FLAGS)
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_every_flag_combination(tmp_path, normalize, ignore, mask, method):
    values = signal(tmp_path)
    kernel = KERNELS["5x5asym"]
    flags = (f'normalizeKernel="{str(normalize).lower()}" '
             f'ignoreNoDataAndEdges="{str(ignore).lower()}" maskNoData="{str(mask).lower()}" '
             f'method="{method}"')
    out = read(convolve_graph(tmp_path, kernel, flags))
    assert_close(out, reference(values, -1.0, kernel, normalize=normalize, ignore=ignore,
                                mask=mask))


def test_no_tolerance_and_integer_target(tmp_path):
    values = signal(tmp_path, np.int16, -999)
    kernel = KERNELS["4x6"]
    graph = convolve_graph(tmp_path, kernel,
                           'setTolToZero="none" dataType="Int32" noData="-7777"')
    expected = reference(values, -999, kernel, tol=None, out_nodata=-7777)
    rounded = np.where(expected >= 0, np.floor(expected + 0.5), np.ceil(expected - 0.5))
    np.testing.assert_array_equal(read(graph), rounded.astype(np.int32))


def test_byte_kernel_file_with_nodata_and_nan_signal_nodata(tmp_path):
    values = signal(tmp_path, np.float32, float("nan"))
    kernel = np.array([[1, 2, 255], [3, 4, 5], [255, 6, 7]], np.uint8)
    write_raster(tmp_path / "k.tif", kernel, nodata=255)
    graph = write_graph(tmp_path / "g.pgp.vrt", """<Source name="s" file="s.tif"/>
<Convolve name="c" input="s" kernel="k.tif" normalizeKernel="true" ignoreNoDataAndEdges="true"/>
<Band ref="c"/>""")
    expected = reference(values, float("nan"), kernel.astype(float), kernel_valid=kernel != 255,
                         normalize=True, ignore=True)
    assert_close(read(graph), expected)


def test_pygeoprocessing_expectations(tmp_path):
    # test_convolve_2d_single_thread: 0.5 everywhere, a 3x3 of ones: sum formula.
    n = 100
    write_raster(tmp_path / "s.tif", np.full((n, n), 0.5, np.float32))
    out = read(convolve_graph(tmp_path, np.ones((3, 3))))
    assert out.sum() == pytest.approx(0.5 * (9 * n * n - 12 * n + 4), rel=1e-12)
    # ..._normalize_ignore_nodata: every pixel is 0.5.
    out = read(convolve_graph(tmp_path, np.ones((3, 3)),
                              'normalizeKernel="true" ignoreNoDataAndEdges="true"'))
    np.testing.assert_allclose(out, 0.5, rtol=1e-12)
    # ..._interpolate_nodata: a hole filled with a 2x2 kernel, maskNoData off.
    ones = np.ones((10, 10), np.float32)
    ones[4, 6] = -1
    write_raster(tmp_path / "s.tif", ones, nodata=-1)
    out = read(convolve_graph(tmp_path, np.ones((2, 2)), 'normalizeKernel="true" '
                              'ignoreNoDataAndEdges="true" maskNoData="false"'))
    np.testing.assert_allclose(out, 1.0, rtol=1e-12)


def test_gaussian_filter_with_even_512_kernel(tmp_path):
    # test_convolve_2d_gaussian: a 512x512 even gaussian centred at 256.
    rng = np.random.default_rng(0)
    values = rng.random((512, 512)).astype(np.float64)
    write_raster(tmp_path / "s.tif", values)
    y, x = np.mgrid[0:512, 0:512] - 256
    sigma = 4.0
    kernel = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    kernel /= kernel.sum()
    write_raster(tmp_path / "k.tif", kernel)
    graph = write_graph(tmp_path / "g.pgp.vrt", """<Source name="s" file="s.tif"/>
<Convolve name="c" input="s" kernel="k.tif" setTolToZero="none"/><Band ref="c"/>""",
                        block=(256, 256))
    expected = ndimage.gaussian_filter(values, sigma, mode="constant", truncate=256 / sigma)
    np.testing.assert_allclose(read(graph), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_identical_across_executors_and_windows(tmp_path, method):
    signal(tmp_path)
    graph = convolve_graph(tmp_path, KERNELS["31x31"],
                           f'method="{method}" ignoreNoDataAndEdges="true"', block=(48, 40))
    outputs = []
    for executor in ["serial", "threading:1", "threading:4"]:
        ds = gdal.OpenEx(graph, open_options=[f"EXECUTOR={executor}"])
        whole = ds.ReadAsArray()
        window = ds.ReadAsArray(13, 29, 37, 91)
        assert window.tobytes() == whole[29:29 + 91, 13:13 + 37].tobytes()
        outputs.append(whole.tobytes())
    assert outputs[0] == outputs[1] == outputs[2]
    out = tmp_path / "o.tif"
    run(["gdal_translate", "-q", graph, str(out)], env={"PGP_EXECUTOR": "threading:2"})
    assert gdal.Open(str(out)).ReadAsArray().tobytes() == outputs[0]


def test_workers_share_decoded_source_blocks(tmp_path):
    # 48x40 tiles over 64x64 source blocks with a 31x31 kernel: a window spans up to
    # 3x3 blocks and each block serves several tiles, on whichever worker.
    values = signal(tmp_path)
    graph = convolve_graph(tmp_path, KERNELS["31x31"], 'method="direct"', block=(48, 40))
    expected = reference(values, -1.0, KERNELS["31x31"])
    blocks = -(-ROWS // 64) * -(-COLS // 64)
    for executor in ["serial", "threading:4"]:
        ds = gdal.OpenEx(graph, open_options=[f"EXECUTOR={executor}"])
        assert_close(ds.GetRasterBand(1).ReadAsArray(), expected)
        assert ds.GetMetadataItem("SOURCE_BLOCKS_DECODED", "PGP") == str(blocks), executor


def test_strip_source_with_every_block_budget(tmp_path):
    # A striped GeoTIFF (3 rows a block): windows span dozens of blocks. The block
    # cache gets an eighth of CACHE_MB: 256 holds every block (each decoded once), 1
    # holds some windows' blocks but not others' (those are GDAL RasterIO reads), 0
    # none. Every budget and executor gives the same bytes.
    values = signal(tmp_path)
    striped = gdal.Translate(str(tmp_path / "striped.tif"), str(tmp_path / "s.tif"),
                             creationOptions=["BLOCKYSIZE=3"])
    assert striped.GetRasterBand(1).GetBlockSize() == [COLS, 3]
    striped = None
    graph = write_graph(tmp_path / "g.pgp.vrt", f"""<Source name="s" file="striped.tif"/>
<Convolve name="c" input="s" method="direct">{kernel_xml(KERNELS["31x31"])}</Convolve>
<Band ref="c"/>""", block=(64, 64))
    expected = reference(values, -1.0, KERNELS["31x31"])
    outputs, decoded = [], {}
    for cache_mb in [256, 1, 0]:
        for executor in ["serial", "threading:4"]:
            ds = gdal.OpenEx(graph, open_options=[f"EXECUTOR={executor}", f"CACHE_MB={cache_mb}"])
            outputs.append(ds.GetRasterBand(1).ReadAsArray())
            decoded[cache_mb, executor] = int(ds.GetMetadataItem("SOURCE_BLOCKS_DECODED", "PGP"))
    assert_close(outputs[0], expected)
    assert all(out.tobytes() == outputs[0].tobytes() for out in outputs)
    strips = -(-ROWS // 3)
    assert decoded[256, "serial"] == decoded[256, "threading:4"] == strips
    assert decoded[0, "serial"] == decoded[0, "threading:4"] == 0


def test_calc_reads_convolve_and_convolve_reads_calc(tmp_path):
    values = signal(tmp_path)
    kernel = KERNELS["3x3"]
    graph = write_graph(tmp_path / "g.pgp.vrt", f"""<Source name="s" file="s.tif"/>
<Calc name="doubled" noData="-1"><Expression>s * 2</Expression></Calc>
<Convolve name="c" input="doubled" method="direct">{kernel_xml(kernel)}</Convolve>
<Calc name="after" noData="-5"><Expression>c + 1</Expression></Calc>
<Band ref="after"/>""", block=(50, 30))
    doubled = np.where(isnodata(values, -1.0), -1.0, values.astype(np.float64) * 2)
    conv = reference(doubled, -1.0, kernel)
    expected = np.where(conv == FLOAT32_LOWEST, -5, conv + 1)
    assert_close(read(graph), expected)


def test_auto_picks_both_methods(tmp_path):
    signal(tmp_path)
    for name in ["3x3", "101x101"]:
        graph = convolve_graph(tmp_path, KERNELS[name])
        ds = gdal.Open(graph)
        assert ds.GetRasterBand(1).GetMetadataItem("PGP_KERNEL") == "{}x{}".format(
            *KERNELS[name].shape)
    # Equality of auto with the forced methods is covered by the unit tests'
    # pgp_convolve_pick checks; here both sizes must render.
        assert ds.ReadAsArray().shape == (ROWS, COLS)


@pytest.mark.parametrize("body,message", [
    ('<Convolve name="c" input="s"><Kernel rows="2" cols="2"></Kernel></Convolve>',
     "needs 4 values but has 0"),
    ('<Convolve name="c" input="s"><Kernel rows="2" cols="2">1 2 x 4</Kernel></Convolve>',
     "value 3 'x' is not a number"),
    ('<Convolve name="c" input="s"><Kernel rows="2" cols="3">1 2 3 4</Kernel></Convolve>',
     "needs 6 values but has 4"),
    ('<Convolve name="c" input="s" kernel="allnodata.tif"/>', "every kernel pixel is nodata"),
    ('<Convolve name="c" input="s"><Kernel rows="3000" cols="1">1</Kernel></Convolve>',
     "rows '3000'"),
    ('<Convolve name="c" input="s" kernel="missing.tif"/>', "cannot open kernel"),
    ('<Convolve name="c" input="nothing"><Kernel rows="1" cols="1">1</Kernel></Convolve>',
     "input 'nothing'"),
    ('<Convolve name="c" input="s" dataType="Int16"><Kernel rows="1" cols="1">1</Kernel>'
     '</Convolve>', "needs a noData"),
    ('<Convolve name="c" input="s" method="fast"><Kernel rows="1" cols="1">1</Kernel>'
     '</Convolve>', "method 'fast'"),
    ('<Convolve name="c" input="s"/>', "either as kernel"),
])
def test_bad_kernels_and_attributes(tmp_path, body, message):
    signal(tmp_path)
    write_raster(tmp_path / "allnodata.tif", np.full((3, 3), 9, np.uint8), nodata=9)
    graph = write_graph(tmp_path / "g.pgp.vrt", f'<Source name="s" file="s.tif"/>{body}'
                        '<Band ref="c"/>')
    with pytest.raises(RuntimeError) as error:
        gdal.Open(graph)
    assert "<Convolve name='c'>" in str(error.value) and message in str(error.value)
