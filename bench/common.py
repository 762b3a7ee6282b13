"""Helpers shared by the benchmarks: inputs, the plugin environment, timing."""
import os
import subprocess
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Before osgeo loads GDAL, which registers plugins once: benchmarks that open a
# .pgp.vrt in-process find the build's plugin too.
os.environ.setdefault("GDAL_DRIVER_PATH", os.path.join(REPO, "build"))

import numpy as np  # noqa: E402
from osgeo import gdal  # noqa: E402

gdal.UseExceptions()


def bench_parser(repeat=True):
    """The options the benchmarks share: --size, --threads, --work (and --repeat
    for those that time commands several times)."""
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default="/tmp/pgp-bench")
    if repeat:
        parser.add_argument("--repeat", type=int, default=1)
    return parser


def plugin_env():
    """The environment for commands: GDAL_DRIVER_PATH on the build folder (unless set)."""
    return dict(os.environ)


def make_inputs(work, size):
    """a.tif, b.tif, c.tif: random Float32, 256x256 tiles (kept between runs)."""
    paths = [os.path.join(work, f"{name}.tif") for name in "abc"]
    if all(os.path.exists(p) for p in paths):
        return paths
    rng = np.random.default_rng(1)
    for path in paths:
        ds = gdal.GetDriverByName("GTiff").Create(
            path, size, size, 1, gdal.GDT_Float32,
            ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=YES"])
        ds.SetGeoTransform((0, 30, 0, size * 30, 0, -30))
        band = ds.GetRasterBand(1)
        for y in range(0, size, 1024):
            rows = min(1024, size - y)
            band.WriteArray(rng.uniform(-100, 100, (rows, size)).astype(np.float32), 0, y)
        ds = None
    return paths


def timed(args, env, repeat):
    """Best wall time of repeat runs of a command."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def write_graphs(work, prefix, texts):
    """Writes each {name: .pgp.vrt text} to WORK/PREFIX_NAME.pgp.vrt; {name: path}."""
    paths = {}
    for name, text in texts.items():
        paths[name] = os.path.join(work, f"{prefix}_{name}.pgp.vrt")
        with open(paths[name], "w") as f:
            f.write(text)
    return paths


def measured(args, env, keep_stderr=False):
    """(wall seconds, system seconds, minor faults, CPU seconds) of one command, from
    its getrusage; with keep_stderr, its standard error as a fifth item."""
    start = time.perf_counter()
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE if keep_stderr else None)
    stderr = child.stderr.read().decode(errors="replace") if keep_stderr else None
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(args)} failed ({status}){': ' + stderr if stderr else ''}")
    result = (seconds, usage.ru_stime, usage.ru_minflt, usage.ru_utime + usage.ru_stime)
    return result + (stderr,) if keep_stderr else result
