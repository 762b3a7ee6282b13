#!/usr/bin/python3
"""Memory is bounded by the window (plus the cache budget), never by the raster."""
import re

from conftest import run, write_graph


def huge_source(path, size, data_type="Float32"):
    """A size x size VRT without sources: GDAL serves zeros, instantly."""
    path.write_text(f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}">'
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
