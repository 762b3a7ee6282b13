#!/usr/bin/python3
"""Dask cluster benchmark (issue 18). Same script, same graph, ratios.

An Align -> Calc -> Convolve (7x7) graph over two SIZE x SIZE Float32 rasters
(256x256 tiles), rendered to an uncompressed tiled GeoTIFF:

1. reference: ``PGP_EXECUTOR=threading:T gdal_translate`` of the graph;
2. pgp.render through a local Dask cluster of T single-threaded worker processes
   (write='single', then write='parts'): the overhead against 1 (goal <= 1.3x), in
   wall time and in CPU time (caller and scheduler + workers against gdal_translate's):
   on a machine shared with other work, the CPU ratio is the steadier figure;
3. --scaling 1,2,4,8,16: the same render on clusters of 1, 2, 4, … workers, speed-up
   against one worker (goal: 16 workers >= 10x one, on a 16-core machine).

Every output is checked equal to the reference, pixel for pixel.

Usage: bench/bench_distributed.py [--size 8192] [--threads 2] [--repeat 1]
       [--scaling 1,2,4] [--work DIR]
"""
import os
import shutil
import subprocess
import sys
import time

from common import REPO, bench_parser, make_inputs, plugin_env

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


def cpu_seconds(times):
    return times.user + times.system


def timed_translate(command, env, repeat):
    """Best (wall, CPU) seconds of ``repeat`` runs of a command."""
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        before, start = os.times(), time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        wall, after = time.perf_counter() - start, os.times()
        cpu = (after.children_user - before.children_user +
               after.children_system - before.children_system)
        best = min(best, (wall, cpu))
    return best


def dask_render(graph, target, workers, repeat, reference, **write):
    """Best (wall, CPU) seconds of ``repeat`` renders on a fresh local cluster of
    ``workers`` single-threaded processes (start-up not timed). CPU: every worker's
    and this process's (LocalCluster runs the scheduler here)."""
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)

        def cluster_cpu():
            return (sum(cpu_seconds(t) for t in client.run(os.times).values()) +
                    cpu_seconds(os.times()))

        best = (float("inf"), 0.0)
        for _ in range(repeat):
            cpu, start = cluster_cpu(), time.perf_counter()
            pgp.render(graph, target, executor=client, calc_raster_stats=False,
                       raster_driver_creation_tuple=CREATION, **write)
            best = min(best, (time.perf_counter() - start, cluster_cpu() - cpu))
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
    translate, translate_cpu = timed_translate(command, env, args.repeat)
    print(f"  PGP_EXECUTOR=threading:{args.threads} gdal_translate: {translate:7.2f} s "
          f"(CPU {translate_cpu:.2f} s)")
    target = os.path.join(args.work, "distributed.tif")
    parts = os.path.join(args.work, "parts")
    for label, write in (("write='single'", {}),
                         ("write='parts'", {"write": "parts", "parts_dir": parts})):
        seconds, cpu = dask_render(graph, target, args.threads, args.repeat, reference,
                                   **write)
        print(f"  Dask, {args.threads} worker processes, {label}: {seconds:7.2f} s "
              f"(CPU {cpu:.2f} s): {seconds / translate:.2f}x the wall time, "
              f"{cpu / translate_cpu:.2f}x the CPU time of gdal_translate")
    shutil.rmtree(parts, ignore_errors=True)
    if args.scaling:
        counts = [int(n) for n in args.scaling.split(",")]
        print(f"scaling (CPUs here: {os.cpu_count()}):")
        first = None
        for count in counts:
            seconds, _ = dask_render(graph, target, count, args.repeat, reference)
            first = first or seconds
            print(f"  {count:3d} workers: {seconds:7.2f} s  "
                  f"speed-up {first / seconds:5.2f}x "
                  f"against {counts[0]}")
    for path in (target, reference):
        os.remove(path)


if __name__ == "__main__":
    main()
