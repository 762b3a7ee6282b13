#!/usr/bin/python3
"""stitch_rasters benchmark (issue 15). Same script, interleaved runs, medians.

256 overlapping BASE x BASE Float32 bases (BASE = SIZE / 8, 10 % nodata, a 16 x 16
layout at a stride of about half a base) are stitched into a SIZE x SIZE LZW-tiled
Float32 target (--compress NONE: uncompressed) that starts all nodata, for each overlap mode:

- pgp: pgp.stitch_rasters(..., executor='threading:N') (a <Stitch> graph rendered
  beside the target, moved over it);
- loop: pygeoprocessing's method, a per-base numpy read-modify-write: for each base,
  for each of its blocks, read the target window, fold, write it back into the LZW
  tiles in place (one core);
- replace only: gdalbuildvrt (the target then the bases, so the last listed wins)
  + gdal_translate into a new LZW-tiled file.

Each run stitches into a fresh copy of the target (copying is not timed) in its own
process. The results are compared (GDAL checksums) before any timing counts.

Usage: bench/bench_stitch.py [--size 8192] [--threads 2] [--repeat 3]
       [--modes etch,replace,add] [--compress LZW|NONE]   (--size 2048: a quick run)
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

from common import REPO, bench_parser, plugin_env  # first: it sets GDAL_DRIVER_PATH

import numpy as np
from osgeo import gdal

NODATA = -9999.0
LAYOUT = 16  # bases per side
TILING = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=YES"]
PIXEL = 30.0


def base_paths(work, size):
    """The bases (kept between runs), written once."""
    folder = os.path.join(work, f"stitch_{size}")
    os.makedirs(folder, exist_ok=True)
    base = size // 8
    stride = (size - base) / (LAYOUT - 1)
    paths = []
    rng = np.random.default_rng(11)
    for index in range(LAYOUT * LAYOUT):
        path = os.path.join(folder, f"base_{index:03d}.tif")
        paths.append(path)
        if os.path.exists(path):
            continue
        col, row = int(index % LAYOUT * stride), int(index // LAYOUT * stride)
        array = rng.uniform(0, 100, (base, base)).astype(np.float32)
        array[rng.random(array.shape) < 0.1] = NODATA
        ds = gdal.GetDriverByName("GTiff").Create(
            path + ".part", base, base, 1, gdal.GDT_Float32,
            ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256"])
        ds.SetGeoTransform((col * PIXEL, PIXEL, 0, (size - row) * PIXEL, 0, -PIXEL))
        ds.GetRasterBand(1).SetNoDataValue(NODATA)
        ds.GetRasterBand(1).WriteArray(array)
        ds = None
        os.replace(path + ".part", path)
    return paths


def target_options(compress):
    return TILING + [f"COMPRESS={compress}"]


def target_template(work, size, compress):
    path = os.path.join(work, f"stitch_{size}", f"target_{compress}.tif")
    if not os.path.exists(path):
        ds = gdal.GetDriverByName("GTiff").Create(path + ".part.tif", size, size, 1,
                                                  gdal.GDT_Float32,
                                                  target_options(compress))
        ds.SetGeoTransform((0, PIXEL, 0, size * PIXEL, 0, -PIXEL))
        ds.GetRasterBand(1).SetNoDataValue(NODATA)
        ds.GetRasterBand(1).Fill(NODATA)
        ds = None
        os.replace(path + ".part.tif", path)
    return path


# --- the methods (each run in its own process) ----------------------------------------

def run_pgp(bases, target, mode, threads, compress):
    sys.path.insert(0, os.path.join(REPO, "python"))
    import pgp
    pgp.stitch_rasters([(path, 1) for path in bases], ["near"] * len(bases), (target, 1),
                       mode, executor=f"threading:{threads}")


def run_loop(bases, target, mode, threads, compress):
    """pygeoprocessing's stitch_rasters loop for bases on the target's grid (all are
    inside it here, so its clipping rules do not matter)."""
    target_ds = gdal.OpenEx(target, gdal.OF_RASTER | gdal.GA_Update)
    target_band = target_ds.GetRasterBand(1)
    inverse = gdal.InvGeoTransform(target_ds.GetGeoTransform())
    for path in bases:
        base_ds = gdal.OpenEx(path, gdal.OF_RASTER)
        base_band = base_ds.GetRasterBand(1)
        base_nodata = base_band.GetNoDataValue()
        xoff, yoff = (int(v) for v in gdal.ApplyGeoTransform(
            inverse, *gdal.ApplyGeoTransform(base_ds.GetGeoTransform(), 0, 0)))
        block_x, block_y = base_band.GetBlockSize()
        for y in range(0, base_ds.RasterYSize, block_y):
            for x in range(0, base_ds.RasterXSize, block_x):
                cols = min(block_x, base_ds.RasterXSize - x)
                rows = min(block_y, base_ds.RasterYSize - y)
                window = dict(xoff=xoff + x, yoff=yoff + y, win_xsize=cols, win_ysize=rows)
                target_array = target_band.ReadAsArray(**window)
                target_nodata_mask = np.isclose(target_array, NODATA)
                base_array = base_band.ReadAsArray(x, y, cols, rows)
                valid = ~np.isclose(base_array, base_nodata)
                if mode == "etch":
                    valid &= target_nodata_mask
                    target_array[valid] = base_array[valid]
                elif mode == "replace":
                    target_array[valid] = base_array[valid]
                else:
                    target_array[valid] = base_array[valid] + np.where(
                        target_nodata_mask[valid], 0, target_array[valid])
                target_band.WriteArray(target_array, xoff=xoff + x, yoff=yoff + y)
        base_ds = None
    target_band = None
    target_ds = None


def run_gdal(bases, target, mode, threads, compress):
    """gdalbuildvrt + gdal_translate: the last listed source wins."""
    vrt = target + ".vrt"
    out = target + ".gdal.tif"
    subprocess.run(["gdalbuildvrt", "-q", vrt, target] + bases, check=True)
    subprocess.run(["gdal_translate", "-q", vrt, out] +
                   [arg for option in target_options(compress) for arg in ("-co", option)],
                   check=True)
    os.replace(out, target)
    os.remove(vrt)


METHODS = {"pgp": run_pgp, "loop": run_loop, "gdal": run_gdal}


def one(method, mode, target, options):
    """A run: copy the template, then stitch (timed). Returns (wall seconds, CPU
    seconds of the run's processes, checksum)."""
    shutil.copy(target_template(options.work, options.size, options.compress), target)
    command = [sys.executable, os.path.abspath(__file__), "--one", method, "--mode", mode,
               "--target", target, "--size", str(options.size), "--work", options.work,
               "--threads", str(options.threads), "--compress", options.compress]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=plugin_env(), check=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    ds = gdal.Open(target)
    checksum = ds.GetRasterBand(1).Checksum()
    ds = None
    os.remove(target)
    return seconds, cpu, checksum


def summary(runs, mode, method):
    """'wall s (CPU s)' medians of a method, and the wall median."""
    wall = statistics.median(run[0] for run in runs[(mode, method)])
    cpu = statistics.median(run[1] for run in runs[(mode, method)])
    return f"{wall:6.2f} s (CPU {cpu:5.2f} s)", wall


def main():
    parser = bench_parser(repeat=True)
    parser.set_defaults(repeat=3)
    parser.add_argument("--modes", default="etch,replace,add")
    parser.add_argument("--compress", default="LZW",
                        help="the target's COMPRESS (LZW; NONE shows the stitch alone)")
    parser.add_argument("--one", choices=sorted(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    options = parser.parse_args()
    bases = base_paths(options.work, options.size)
    if options.one:
        METHODS[options.one](bases, options.target, options.mode, options.threads,
                             options.compress)
        return
    target_template(options.work, options.size, options.compress)
    target = os.path.join(options.work, f"stitch_{options.size}", "target.tif")
    runs, checksums = {}, {}
    for _ in range(options.repeat):
        for mode in options.modes.split(","):
            for method in ("pgp", "loop", "gdal") if mode == "replace" else ("pgp", "loop"):
                seconds, cpu, checksum = one(method, mode, target, options)
                runs.setdefault((mode, method), []).append((seconds, cpu))
                print(f"{mode:8} {method:5} {seconds:7.2f} s  CPU {cpu:6.2f} s  checksum "
                      f"{checksum}  load {os.getloadavg()[0]:.1f}", flush=True)
                if checksums.setdefault(mode, checksum) != checksum:
                    raise SystemExit(f"{mode}: {method} differs from pgp (checksum "
                                     f"{checksum} vs {checksums[mode]})")
    print(f"\n{options.size}² {options.compress} target, 256 bases of "
          f"{options.size // 8}², threading:{options.threads}, medians of "
          f"{options.repeat} (wall, and CPU time of the run's processes):")
    for mode in options.modes.split(","):
        pgp_text, pgp_s = summary(runs, mode, "pgp")
        loop_text, loop_s = summary(runs, mode, "loop")
        line = f"{mode:8} pgp {pgp_text}   loop {loop_text} = {loop_s / pgp_s:.2f}x"
        if (mode, "gdal") in runs:
            gdal_text, gdal_s = summary(runs, mode, "gdal")
            line += f"   gdalbuildvrt+gdal_translate {gdal_text} = {gdal_s / pgp_s:.2f}x"
        print(line)


if __name__ == "__main__":
    main()
