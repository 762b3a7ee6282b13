#!/usr/bin/python3
"""Prefetch through osgeo.gdal, observed with the PGP/TILES_COMPUTED counter."""
import time

import numpy as np
from osgeo import gdal

from conftest import write_graph, write_raster

ROWS, COLS, BLOCK = 200, 300, 64  # 5 x 4 tiles


def graph(tmp_path):
    rng = np.random.default_rng(2)
    write_raster(tmp_path / "a.tif", rng.uniform(0, 100, (ROWS, COLS)).astype(np.float32))
    return write_graph(tmp_path / "g.pgp.vrt", """<Source name="A" file="a.tif"/>
<Calc name="f" dataType="Float32"><Expression>sqrt(A) * 3</Expression></Calc>
<Band ref="f"/>""", block=(BLOCK, BLOCK))


def computed(ds):
    return int(ds.GetMetadataItem("TILES_COMPUTED", "PGP"))


def wait_for(ds, count, seconds=10):
    deadline = time.time() + seconds
    while computed(ds) < count and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # anything computed beyond count would show now
    return computed(ds)


def scan_by_block_rows(ds, on_row=None):
    band = ds.GetRasterBand(1)
    rows = []
    for y in range(0, ROWS, BLOCK):
        rows.append(band.ReadAsArray(0, y, COLS, min(BLOCK, ROWS - y)))
        if on_row:
            on_row(y // BLOCK)
    return np.vstack(rows)


def test_without_prefetch_a_scan_computes_each_tile_once(tmp_path):
    ds = gdal.OpenEx(graph(tmp_path), open_options=["EXECUTOR=threading:2", "PREFETCH=0"])
    counts = []
    scan_by_block_rows(ds, lambda row: counts.append(computed(ds)))
    assert counts == [5, 10, 15, 20]
    ds.GetRasterBand(1).ReadAsArray()  # everything is cached now
    assert computed(ds) == 20


def test_prefetch_finds_the_next_row_computed_and_results_are_identical(tmp_path):
    path = graph(tmp_path)
    reference = gdal.OpenEx(path, open_options=["EXECUTOR=serial"]).ReadAsArray()
    ds = gdal.OpenEx(path, open_options=["EXECUTOR=threading:2", "PREFETCH=5"])
    band = ds.GetRasterBand(1)
    first = band.ReadAsArray(0, 0, COLS, BLOCK)
    assert wait_for(ds, 10) == 10  # row 0 read, row 1 prefetched
    second = band.ReadAsArray(0, BLOCK, COLS, BLOCK)
    assert computed(ds) >= 10
    assert wait_for(ds, 15) == 15  # reading row 1 computed nothing new; row 2 prefetched
    rest = band.ReadAsArray(0, 2 * BLOCK, COLS, ROWS - 2 * BLOCK)
    assert wait_for(ds, 20) == 20  # every tile exactly once
    assert np.vstack([first, second, rest]).tobytes() == reference.tobytes()


def test_closing_with_queued_prefetches_is_clean(tmp_path):
    path = graph(tmp_path)
    for _ in range(20):
        ds = gdal.OpenEx(path, open_options=["EXECUTOR=threading:2", "PREFETCH=1000"])
        ds.GetRasterBand(1).ReadAsArray(0, 0, BLOCK, BLOCK)
        ds = None  # cancels what is queued, waits for what runs
    ds = gdal.OpenEx(path, open_options=["EXECUTOR=threading:2"])
    assert ds.ReadAsArray().shape == (ROWS, COLS)
