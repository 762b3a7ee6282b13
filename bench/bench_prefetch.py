#!/usr/bin/python3
"""Prefetch benchmark (issue: Prefetch): QGIS-like access, prefetch on vs off.

Two access patterns over a heavy 3-input Calc on SIZE x SIZE inputs, through
osgeo.gdal in one process: full-width 256-line strips top to bottom, and
random 512x512 windows (fixed seed). Each pattern runs on a fresh dataset
with PREFETCH=0 and with the default (2 x workers); the tile cache is
emptied between runs by closing the dataset.

Usage: bench/bench_prefetch.py [--size 8192] [--threads 2] [--windows 200]
"""
import os
import time

from common import bench_parser, make_inputs  # first: it sets GDAL_DRIVER_PATH

import numpy as np  # noqa: E402
from osgeo import gdal  # noqa: E402

GRAPH = """<PGPDataset><Source name="A" file="a.tif"/><Source name="B" file="b.tif"/>
<Source name="C" file="c.tif"/><Calc name="f" dataType="Float32">
<Expression>sqrt(A*A+B*B)+log(1+abs(C))</Expression></Calc><Band ref="f"/></PGPDataset>"""


def strips(band, size):
    for y in range(0, size, 256):
        band.ReadRaster(0, y, size, min(256, size - y))


def windows(band, size, count):
    rng = np.random.default_rng(3)
    for x, y in rng.integers(0, size - 512, (count, 2)):
        band.ReadRaster(int(x), int(y), 512, 512)


def main():
    parser = bench_parser(repeat=False)
    parser.add_argument("--windows", type=int, default=200)
    options = parser.parse_args()
    os.makedirs(options.work, exist_ok=True)
    make_inputs(options.work, options.size)
    graph = os.path.join(options.work, "prefetch.pgp.vrt")
    with open(graph, "w") as f:
        f.write(GRAPH)
    patterns = {"256-line strips": lambda b: strips(b, options.size),
                f"{options.windows} random 512x512": lambda b: windows(b, options.size,
                                                                         options.windows)}
    print(f"{options.size}x{options.size}, threading:{options.threads}")
    for name, pattern in patterns.items():
        seconds = {}
        for prefetch in ["0", str(2 * options.threads)]:
            ds = gdal.OpenEx(graph, open_options=[f"EXECUTOR=threading:{options.threads}",
                                                  f"PREFETCH={prefetch}"])
            start = time.perf_counter()
            pattern(ds.GetRasterBand(1))
            seconds[prefetch] = time.perf_counter() - start
            ds = None
        off, on = seconds["0"], seconds[str(2 * options.threads)]
        print(f"{name:<24} prefetch off {off:6.2f} s   on {on:6.2f} s   {off / on:4.2f}x")


if __name__ == "__main__":
    main()
