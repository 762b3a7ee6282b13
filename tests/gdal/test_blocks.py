#!/usr/bin/python3
"""Block-by-block reads (band.ReadBlock, ReadRaster per block: QGIS's and most
clients' loops) compute the next tiles ahead in the read's own batch, on every
worker (docs/driver.md, Execution): the same bytes as a serial whole read, each
tile once, within half the cache, errors reported on the read that needs the tile.
Observed with the PGP/TILES_COMPUTED and PGP/TILES_AHEAD counters; PREFETCH=0
keeps background work out of the counts."""
import os

import numpy as np
import pytest
from osgeo import gdal
from scipy import ndimage

from conftest import write_graph, write_raster

ROWS, COLS = 200, 300  # 64 x 64 blocks: 5 x 4 tiles, partial at the right and bottom
TILES_X, TILES_Y = 5, 4
KERNEL = np.arange(1, 10, dtype=np.float64).reshape(3, 3)
GRAPH = """<Source name="A" file="a.tif"/>
<Calc name="f" dataType="Float32"><Expression>sqrt(A) * 3 - 1</Expression></Calc>
<Convolve name="k" input="f" dataType="Float32" noData="-1">
  <Kernel rows="3" cols="3">1 2 3 4 5 6 7 8 9</Kernel></Convolve>
<Band ref="f"/><Band ref="k"/>"""


@pytest.fixture()
def inputs(tmp_path):
    a = np.random.default_rng(5).uniform(0, 100, (ROWS, COLS)).astype(np.float32)
    write_raster(tmp_path / "a.tif", a)
    return a, write_graph(tmp_path / "g.pgp.vrt", GRAPH)


def counter(ds, name):
    return int(ds.GetMetadataItem(name, "PGP"))


def open_graph(path, executor, *options):
    return gdal.OpenEx(path, open_options=[f"EXECUTOR={executor}", "PREFETCH=0", *options])


def block_window(bx, by, block=64):
    x, y = bx * block, by * block
    return x, y, min(block, COLS - x), min(block, ROWS - y)


def scan(band, how, blocks=None):
    """The band read block by block in row-major order, reassembled."""
    out = np.empty((ROWS, COLS), np.float32)
    for by, bx in blocks or [(by, bx) for by in range(TILES_Y) for bx in range(TILES_X)]:
        x, y, w, h = block_window(bx, by)
        if how == "ReadBlock":
            block = np.frombuffer(band.ReadBlock(bx, by), np.float32).reshape(64, 64)[:h, :w]
        else:
            block = np.frombuffer(band.ReadRaster(x, y, w, h), np.float32).reshape(h, w)
        out[y:y + h, x:x + w] = block
    return out


@pytest.mark.parametrize("how", ["ReadBlock", "ReadRaster"])
def test_a_block_scan_gives_the_bytes_of_a_serial_whole_read(inputs, how):
    a, path = inputs
    serial = gdal.OpenEx(path, open_options=["EXECUTOR=serial"])
    whole = [serial.GetRasterBand(b).ReadAsArray() for b in (1, 2)]
    f = (np.sqrt(a.astype(np.float64)) * 3 - 1).astype(np.float32)
    np.testing.assert_array_equal(whole[0], f)
    np.testing.assert_allclose(
        whole[1], ndimage.convolve(f.astype(np.float64), KERNEL, mode="constant"), rtol=1e-6)
    for executor in ["threading:1", "threading:2", "threading:4"]:
        ds = open_graph(path, executor)
        for b in (1, 2):
            assert scan(ds.GetRasterBand(b), how).tobytes() == whole[b - 1].tobytes(), \
                (executor, b)
        assert counter(ds, "TILES_AHEAD") > 0, executor


def test_a_block_read_computes_the_next_tiles_in_its_batch(inputs):
    _, path = inputs
    ds = open_graph(path, "threading:2")
    band = ds.GetRasterBand(1)
    band.ReadBlock(0, 0)
    # the block's tile and 2 x workers more, in the read's own batch
    assert (counter(ds, "TILES_COMPUTED"), counter(ds, "TILES_AHEAD")) == (5, 4)
    for bx in range(1, TILES_X):
        band.ReadBlock(bx, 0)  # all cached
    assert counter(ds, "TILES_COMPUTED") == 5
    scan(band, "ReadBlock", [(by, bx) for by in range(1, TILES_Y) for bx in range(TILES_X)])
    assert counter(ds, "TILES_COMPUTED") == TILES_X * TILES_Y  # each tile once

    serial = open_graph(path, "serial")
    scan(serial.GetRasterBand(1), "ReadBlock")
    assert (counter(serial, "TILES_COMPUTED"), counter(serial, "TILES_AHEAD")) == (20, 0)


def test_cache_budget_zero_and_tiny_budgets(tmp_path):
    """Tiles ahead must fit in half the budget: none with 0, one with 1 MB of
    256 KB tiles. The same bytes either way."""
    rows, cols = 768, 1024
    a = np.random.default_rng(6).uniform(0, 100, (rows, cols)).astype(np.float32)
    write_raster(tmp_path / "a.tif", a, block=256)
    path = write_graph(tmp_path / "g.pgp.vrt", """<Source name="A" file="a.tif"/>
<Calc name="f" dataType="Float32"><Expression>A * 2 + 1</Expression></Calc><Band ref="f"/>""",
                       block=(256, 256))
    expected = (a.astype(np.float64) * 2 + 1).astype(np.float32)
    try:
        for cache_mb, ahead_per_batch in [(0, 0), (1, 1)]:
            ds = open_graph(path, "threading:2", f"CACHE_MB={cache_mb}")
            band = ds.GetRasterBand(1)
            got = np.vstack([np.hstack([np.frombuffer(band.ReadBlock(bx, by), np.float32)
                                        .reshape(256, 256) for bx in range(4)])
                             for by in range(3)])
            np.testing.assert_array_equal(got, expected)
            batches = 12 // (1 + ahead_per_batch)
            assert counter(ds, "TILES_AHEAD") == 12 - batches, cache_mb
            assert counter(ds, "TILES_COMPUTED") == 12, cache_mb
    finally:
        gdal.OpenEx(path, open_options=["CACHE_MB=256"])  # the default budget again


def test_an_error_in_a_tile_computed_ahead_fails_the_read_that_needs_it(tmp_path):
    """A source cut short: its last tiles cannot be read. The read before the first
    bad tile computes that tile ahead and still succeeds; the read of the bad tile
    fails naming its node and tile, as a serial read of it does."""
    a = np.random.default_rng(7).uniform(0, 100, (ROWS, COLS)).astype(np.float32)
    source = write_raster(tmp_path / "a.tif", a)
    os.truncate(source, os.path.getsize(source) * 2 // 3)  # the header survives, tiles don't
    path = write_graph(tmp_path / "g.pgp.vrt", GRAPH)
    serial_ds = open_graph(path, "serial")  # a band does not keep its dataset alive
    serial = serial_ds.GetRasterBand(1)
    bad, serial_error = None, None
    for index in range(TILES_X * TILES_Y):  # the first bad tile, read alone
        try:
            serial.ReadBlock(index % TILES_X, index // TILES_X)
        except RuntimeError as error:
            bad, serial_error = index, str(error)
            break
    assert bad is not None and bad > 0
    tile = f"<Calc name='f'> tile ({bad % TILES_X},{bad // TILES_X})"
    assert tile in serial_error

    ds = open_graph(path, "threading:2")
    band = ds.GetRasterBand(1)
    before = bad - 1
    band.ReadBlock(before % TILES_X, before // TILES_X)  # the bad tile is among those ahead
    assert counter(ds, "TILES_AHEAD") == 4
    with pytest.raises(RuntimeError) as error:
        band.ReadBlock(bad % TILES_X, bad // TILES_X)
    assert tile in str(error.value) and "<Source name='A'>" in str(error.value)
