#!/usr/bin/python3
"""Statistics in x.pgp.vrt.aux.xml carry a fingerprint of the graph and its
files: served while both are unchanged, dropped and rewritten once stale
(what clients stored there themselves is kept)."""
import os

import numpy as np
import pytest
from osgeo import gdal

from conftest import run, write_graph, write_raster

GRAPH = """<Source name="A" file="a.tif"/>
<Calc name="f" dataType="Float32" noData="-1"><Expression>{expression}</Expression></Calc>
<Band ref="f"/>"""


@pytest.fixture
def graph(tmp_path):
    rng = np.random.default_rng(6)
    a = rng.uniform(0, 100, (600, 700)).astype(np.float32)
    write_raster(tmp_path / "a.tif", a)
    return a, write_graph(tmp_path / "g.pgp.vrt", GRAPH.format(expression="A * 2"))


def stored_statistics(path):
    """What a fresh open reports without computing anything (None when none)."""
    ds = gdal.Open(path)
    stats = ds.GetRasterBand(1).GetStatistics(0, 0)  # approx_ok=0, force=0
    assert ds.GetMetadataItem("TILES_COMPUTED", "PGP") == "0"
    return None if stats == [0.0, 0.0, 0.0, -1.0] else stats


def compute_statistics(path):
    ds = gdal.Open(path)
    return ds.GetRasterBand(1).ComputeStatistics(False)


def test_statistics_are_saved_with_a_fingerprint_and_served(graph):
    a, path = graph
    with open(path, "rb") as f:
        before = f.read()
    stats = compute_statistics(path)
    expected = a.astype(np.float64) * 2
    assert stats[0] == pytest.approx(expected.min()) and stats[1] == pytest.approx(expected.max())
    assert stats[2] == pytest.approx(expected.mean(), rel=1e-6)
    with open(path + ".aux.xml") as f:
        sidecar = f.read()
    assert "<PGPFingerprint>" in sidecar and "STATISTICS_MEAN" in sidecar
    assert "PGP_NODE" not in sidecar and "EXECUTOR" not in sidecar  # derived, not saved
    assert stored_statistics(path) == pytest.approx(stats)
    with open(path, "rb") as f:
        assert f.read() == before  # the driver never rewrites the graph


def fingerprint(path):
    with open(path + ".aux.xml") as f:
        return f.read().split("</PGPFingerprint>")[0].split("<PGPFingerprint>")[1]


def test_a_changed_graph_makes_the_sidecar_stale(graph):
    a, path = graph
    compute_statistics(path)
    old = fingerprint(path)
    write_graph(path, GRAPH.format(expression="A * 3"))
    assert stored_statistics(path) is None
    # the stale sidecar was rewritten on close: new fingerprint, no old statistics
    with open(path + ".aux.xml") as f:
        assert "STATISTICS" not in f.read()
    assert fingerprint(path) != old
    stats = compute_statistics(path)
    assert stats[1] == pytest.approx(float((a.astype(np.float64) * 3).max()))
    assert stored_statistics(path) == pytest.approx(stats)


def test_a_touched_source_makes_the_sidecar_stale(graph, tmp_path):
    _, path = graph
    compute_statistics(path)
    source = tmp_path / "a.tif"
    stat = os.stat(source)
    os.utime(source, (stat.st_atime, stat.st_mtime + 10))
    assert stored_statistics(path) is None


@pytest.mark.parametrize("inner", ["pgp", "vrt"])
def test_a_touched_source_of_a_nested_graph_or_vrt_makes_the_sidecar_stale(graph, tmp_path,
                                                                           inner):
    """The outer graph names only the inner file; its statistics depend on a.tif too."""
    a, path = graph
    inner_path = path if inner == "pgp" else str(tmp_path / "inner.vrt")
    if inner == "vrt":
        run(["gdalbuildvrt", "-q", inner_path, str(tmp_path / "a.tif")])
    outer = write_graph(tmp_path / "outer.pgp.vrt", f"""<Source name="G" file="{inner_path}"/>
<Calc name="h" noData="-1"><Expression>G + 1</Expression></Calc><Band ref="h"/>""")
    compute_statistics(outer)
    a[0, 0] = 1000
    write_raster(tmp_path / "a.tif", a)
    stat = os.stat(tmp_path / "a.tif")
    os.utime(tmp_path / "a.tif", (stat.st_atime, stat.st_mtime + 10))
    assert stored_statistics(outer) is None
    factor = 2 if inner == "pgp" else 1
    assert compute_statistics(outer)[1] == pytest.approx(1000 * factor + 1)


def test_stale_sidecar_is_rewritten_with_the_new_fingerprint(graph):
    _, path = graph
    compute_statistics(path)
    old = fingerprint(path)
    write_graph(path, GRAPH.format(expression="A + 1"))
    run(["gdalinfo", "-stats", path])
    with open(path + ".aux.xml") as f:
        assert "STATISTICS_MAXIMUM" in f.read()
    assert fingerprint(path) != old
    out = run(["gdalinfo", path]).stdout  # served by the next gdalinfo, no -stats
    assert "STATISTICS_MAXIMUM" in out


def test_a_stale_sidecar_keeps_what_clients_stored(graph):
    """Only the statistics, histograms and band description of a stale sidecar come
    from the old graph; metadata, scale, offset and units were the user's."""
    _, path = graph
    run(["gdal_edit.py", "-ro", "-mo", "AUTHOR=me", "-scale", "2", "-offset", "1",
         "-units", "m", path])
    run(["gdalinfo", "-stats", "-hist", path])
    with open(path + ".aux.xml") as f:
        assert "<Histograms>" in f.read()
    write_graph(path, GRAPH.format(expression="A * 3").replace(
        '<Band ref="f"/>', '<Band ref="f" description="tripled"/>'))
    assert stored_statistics(path) is None
    with open(path + ".aux.xml") as f:
        sidecar = f.read()
    assert "STATISTICS" not in sidecar and "<Histograms>" not in sidecar
    ds = gdal.Open(path)
    band = ds.GetRasterBand(1)
    assert ds.GetMetadataItem("AUTHOR") == "me"
    assert (band.GetScale(), band.GetOffset(), band.GetUnitType()) == (2, 1, "m")
    assert band.GetDescription() == "tripled"
    assert band.GetDefaultHistogram(force=False) is None


def test_approximate_statistics_come_from_an_overview(graph):
    a, path = graph
    ds = gdal.Open(path)
    band = ds.GetRasterBand(1)
    approx = band.ComputeStatistics(True)
    assert band.GetMetadataItem("STATISTICS_APPROXIMATE") == "YES"
    assert ds.GetMetadataItem("TILES_COMPUTED", "PGP") == "0"
    level = band.GetRasterSampleOverview(2500) if hasattr(band, "GetRasterSampleOverview") \
        else band.GetOverview(band.GetOverviewCount() - 1)
    values = level.ReadAsArray().astype(np.float64)
    assert approx[0] == values.min() and approx[1] == values.max()
    exact = band.ComputeStatistics(False)
    assert band.GetMetadataItem("STATISTICS_APPROXIMATE") is None
    assert exact[0] == pytest.approx(float(a.min()) * 2)


def test_histograms_are_kept_too(graph):
    _, path = graph
    ds = gdal.Open(path)
    histogram = ds.GetRasterBand(1).GetDefaultHistogram(force=True)
    ds = None
    with open(path + ".aux.xml") as f:
        assert "<Histograms>" in f.read()
    ds = gdal.Open(path)
    again = ds.GetRasterBand(1).GetDefaultHistogram(force=False)
    assert again is not None and list(again[3]) == list(histogram[3])
    ds = None
    write_graph(path, GRAPH.format(expression="A * 5"))
    ds = gdal.Open(path)
    assert ds.GetRasterBand(1).GetDefaultHistogram(force=False) is None


def test_graphs_given_as_xml_text_have_no_sidecar(graph, tmp_path):
    _, path = graph
    with open(path) as f:
        text = f.read().replace('file="a.tif"', f'file="{tmp_path / "a.tif"}"')
    ds = gdal.Open(text)
    ds.GetRasterBand(1).ComputeStatistics(False)
    ds = None
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".aux.xml")]
