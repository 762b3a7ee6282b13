#!/usr/bin/python3
"""Memory is bounded by the window (plus the cache budget), never by the raster."""
import re

import numpy as np
from osgeo import gdal
from scipy import ndimage

from conftest import run, write_graph, write_raster


def huge_source(path, size, data_type="Float32", georeferenced=False):
    """A size x size VRT without sources: GDAL serves zeros, instantly."""
    where = ("<SRS>EPSG:32618</SRS><GeoTransform>400000, 30, 0, 4000000, 0, -30</GeoTransform>"
             if georeferenced else "")
    path.write_text(f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}">{where}'
                    f'<VRTRasterBand dataType="{data_type}" band="1"/></VRTDataset>')
    return str(path)


def peak_rss_mb(args, env=None):
    result = run(["/usr/bin/time", "-v"] + args, env=env)
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    seconds = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)",
                        result.stderr)
    elapsed = (int(seconds.group(1) or 0) * 3600 + int(seconds.group(2)) * 60
               + float(seconds.group(3)))
    return kb / 1024, elapsed, result


def test_a_window_of_a_100000_square_graph_is_cheap(tmp_path):
    huge_source(tmp_path / "a.vrt", 100_000)
    huge_source(tmp_path / "b.vrt", 100_000)
    graph = write_graph(tmp_path / "g.pgp.vrt", """<Source name="A" file="a.vrt"/>
<Source name="B" file="b.vrt"/>
<Calc name="mid" dataType="Float32"><Expression>A + B + 1</Expression></Calc>
<Calc name="f" dataType="Float32"><Expression>mid * 2</Expression></Calc>
<Band ref="f"/>""", block=(256, 256))
    info = run(["gdalinfo", graph]).stdout
    assert "Size is 100000, 100000" in info
    for x, y in [(0, 0), (50_000, 70_001), (99_488, 99_488)]:
        out = tmp_path / "w.tif"
        rss, elapsed, _ = peak_rss_mb(["gdal_translate", "-q", "-srcwin", str(x), str(y),
                                       "512", "512", graph, str(out)],
                                      env={"PGP_EXECUTOR": "threading:2"})
        assert rss < 100, f"window at {x},{y}: peak RSS {rss:.1f} MB"
        assert elapsed < 2.0, f"window at {x},{y}: {elapsed:.2f} s"
        stats = run(["gdalinfo", "-stats", str(out)]).stdout
        assert "Minimum=2.000, Maximum=2.000" in stats


def test_reading_a_whole_band_stays_within_the_cache_budget(tmp_path):
    huge_source(tmp_path / "a.vrt", 12_000, "Byte")
    graph = write_graph(tmp_path / "g.pgp.vrt", """<Source name="A" file="a.vrt"/>
<Calc name="f" dataType="Float32"><Expression>A + 3</Expression></Calc>
<Band ref="f"/>""", block=(256, 256))
    rss, _, result = peak_rss_mb(["gdalinfo", "-checksum", graph],
                                 env={"PGP_EXECUTOR": "threading:2", "PGP_CACHE_MB": "16",
                                      "GDAL_CACHEMAX": "16"})
    assert "Checksum=" in result.stdout
    # 576 MB of Float32 output went through; the budget is 16 + 16 MB.
    assert rss < 16 + 16 + 90, f"peak RSS {rss:.1f} MB"


KERNEL_5X5 = "1 1 1 1 1  1 2 2 2 1  1 2 4 2 1  1 2 2 2 1  1 1 1 1 1"


def test_a_window_of_an_align_calc_convolve_graph_stays_near_a_plain_vrt(tmp_path):
    """Issue 19: a 512x512 window of a 100 000^2 Align -> Calc -> Convolve graph on
    threading:2 peaks at most 32 MB above gdal_translate of the same window of the
    plain source VRT (bench/bench_memory.py measures it over a GeoTIFF too)."""
    size = 100_000
    source = huge_source(tmp_path / "a.vrt", size, georeferenced=True)
    graph = write_graph(tmp_path / "g.pgp.vrt", f"""<Source name="A" file="a.vrt"/>
<Align pixelSize="30,-30"><Input ref="A" resampling="bilinear"/></Align>
<Calc name="c" dataType="Float32"><Expression>A * 2 + 1</Expression></Calc>
<Convolve name="k" input="c" dataType="Float32" noData="-1">
  <Kernel rows="5" cols="5">{KERNEL_5X5}</Kernel></Convolve>
<Band ref="k"/>""", block=(256, 256))
    kernel = np.array(KERNEL_5X5.split(), np.float64).reshape(5, 5)
    for x, y in [(0, 0), (50_000, 70_001), (99_488, 99_488)]:
        window = ["-srcwin", str(x), str(y), "512", "512"]
        plain, _, _ = peak_rss_mb(["gdal_translate", "-q", *window, source,
                                   str(tmp_path / "plain.tif")])
        rss, _, _ = peak_rss_mb(["gdal_translate", "-q", *window, graph,
                                 str(tmp_path / "w.tif")],
                                env={"PGP_EXECUTOR": "threading:2"})
        assert rss - plain <= 32, f"window at {x},{y}: {rss:.1f} MB, plain VRT {plain:.1f} MB"
        # c = 1 inside the raster, 0 outside: the convolution of that, by scipy
        ones = np.zeros((516, 516))
        ones[max(0, 2 - y):min(516, size + 2 - y), max(0, 2 - x):min(516, size + 2 - x)] = 1
        expected = ndimage.convolve(ones, kernel, mode="constant")[2:-2, 2:-2]
        np.testing.assert_array_equal(gdal.Open(str(tmp_path / "w.tif")).ReadAsArray(),
                                      expected.astype(np.float32))


def test_aligned_reads_leave_no_blocks_in_gdals_cache(tmp_path):
    """A warped view's blocks and the source blocks the warper read are of no use
    once the tile is in pgp's cache; GDAL's default budget would keep them all
    (twice the output, per worker handle). Same pixels as gdalwarp."""
    rng = np.random.default_rng(8)
    write_raster(tmp_path / "a.tif", rng.uniform(0, 100, (1000, 1200)).astype(np.float32),
                 block=256)
    graph = write_graph(tmp_path / "g.pgp.vrt", """<Source name="A" file="a.tif"/>
<Align pixelSize="29,-29"><Input ref="A" resampling="bilinear"/></Align>
<Band ref="A"/>""", block=(256, 256))
    before = gdal.GetCacheUsed()
    ds = gdal.OpenEx(graph, open_options=["EXECUTOR=threading:2"])
    got = ds.ReadAsArray()
    assert gdal.GetCacheUsed() - before < 256 * 256 * 4  # less than one block
    gt = ds.GetGeoTransform()
    bounds = [gt[0], gt[3] + ds.RasterYSize * gt[5], gt[0] + ds.RasterXSize * gt[1], gt[3]]
    expected = gdal.Warp("", str(tmp_path / "a.tif"), format="MEM", outputBounds=bounds,
                         xRes=29, yRes=29, resampleAlg="bilinear",
                         warpOptions=["SRC_FILL_RATIO_HEURISTICS=NO"]).ReadAsArray()
    np.testing.assert_array_equal(got, expected)
