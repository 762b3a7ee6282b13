#!/usr/bin/python3
"""Dask cluster benchmark (issue 18). Same script, same graph, ratios.

An Align -> Calc -> Convolve (7x7) graph over two SIZE x SIZE Float32 rasters
(256x256 tiles), rendered to an uncompressed tiled GeoTIFF:

1. reference: ``PGP_EXECUTOR=threading:T gdal_translate`` of the graph;
2. pgp.render through a local Dask cluster of W single-threaded worker processes
   (write='single', then write='parts'): the overhead against 1 (goal <= 1.3x with
   W = T = 2);
3. --scaling 1,2,4,8,16: the same render on clusters of 1, 2, 4, … workers, speed-up
   against one worker (goal: 16 workers >= 10x one, on a 16-core machine).

Every output is checked equal to the reference, pixel for pixel.

Usage: bench/bench_distributed.py [--size 8192] [--threads 2] [--repeat 1]
       [--scaling 1,2,4] [--work DIR]
"""
import os
import shutil
import sys
import time

from common import REPO, bench_parser, make_inputs, plugin_env, timed

sys.path.insert(0, os.path.join(REPO, "python"))
import numpy  # noqa: E402
from osgeo import gdal  # noqa: E402

import pgp  # noqa: E402

CREATION = ("GTIFF", ("TILED=YES", "BIGTIFF=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256"))


def write_graph(work, a, b):
    graph = pgp.Graph((256, 256))
    graph.source("a", a)
    graph.source("b", b)
    graph.align((30.0, -30.0), "intersection", resampling={"b": "bilinear"})
    graph.calc("c", "a * 0.5 + b * b", "Float32", -1)
    graph.convolve("smooth", "c", numpy.full((7, 7), 1 / 49), data_type="Float32",
                   nodata=-1)
    graph.band("smooth")
    return graph.write(os.path.join(work, "chain.pgp.vrt"))


def same_pixels(path, reference):
    a, b = gdal.Open(path), gdal.Open(reference)
    for y in range(0, a.RasterYSize, 1024):
        rows = min(1024, a.RasterYSize - y)
        if not numpy.array_equal(a.ReadAsArray(0, y, a.RasterXSize, rows),
                                 b.ReadAsArray(0, y, b.RasterXSize, rows)):
            raise AssertionError(f"{path} differs from {reference} in rows {y}..")


def dask_render(graph, target, workers, repeat, reference, **write):
    """Best time of ``repeat`` renders on a fresh local cluster of ``workers``
    single-threaded processes (start-up not timed)."""
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            pgp.render(graph, target, executor=client, calc_raster_stats=False,
                       raster_driver_creation_tuple=CREATION, **write)
            best = min(best, time.perf_counter() - start)
    same_pixels(target, reference)
    return best


def main():
    parser = bench_parser()
    parser.add_argument("--scaling", default="",
                        help="comma-separated worker counts, e.g. 1,2,4,8,16")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    a, b, _ = make_inputs(args.work, args.size)
    graph = write_graph(args.work, a, b)
    reference = os.path.join(args.work, "distributed_reference.tif")
    env = dict(plugin_env(), PGP_EXECUTOR=f"threading:{args.threads}")
    command = ["gdal_translate", "-q"]
    for option in CREATION[1]:
        command += ["-co", option]
    command += [graph, reference]
    print(f"{args.size}x{args.size} Align -> Calc -> Convolve 7x7, best of {args.repeat}")
    translate = timed(command, env, args.repeat)
    print(f"  PGP_EXECUTOR=threading:{args.threads} gdal_translate: {translate:7.2f} s")
    target = os.path.join(args.work, "distributed.tif")
    parts = os.path.join(args.work, "parts")
    for label, write in (("write='single'", {}),
                         ("write='parts'", {"write": "parts", "parts_dir": parts})):
        seconds = dask_render(graph, target, args.threads, args.repeat, reference, **write)
        print(f"  Dask, {args.threads} worker processes, {label}: {seconds:7.2f} s  "
              f"({seconds / translate:.2f}x gdal_translate)")
    shutil.rmtree(parts, ignore_errors=True)
    if args.scaling:
        counts = [int(n) for n in args.scaling.split(",")]
        print(f"scaling (CPUs here: {os.cpu_count()}):")
        first = None
        for count in counts:
            seconds = dask_render(graph, target, count, args.repeat, reference)
            first = first or seconds
            print(f"  {count:3d} workers: {seconds:7.2f} s  speed-up {first / seconds:5.2f}x "
                  f"against {counts[0]}")
    for path in (target, reference):
        os.remove(path)


if __name__ == "__main__":
    main()
