#!/usr/bin/python3
"""Calc benchmark (issue: Foundation). Same script run, same inputs, ratios.

Renders a 3-input Float32 calc on SIZE x SIZE tiled GeoTIFFs to an uncompressed
tiled GeoTIFF with gdal_translate on a .pgp.vrt (serial and threading:N),
against gdal_calc.py with the same expression and GDAL's VRT built-in pixel
function 'sum' (A+B+C, with pgp's A+B+C beside it).

Usage: bench/bench_calc.py [--size 8192] [--threads 2] [--repeat 1] [--work DIR]
Needs GDAL_DRIVER_PATH pointing at the build folder (defaults to ./build).
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np
from osgeo import gdal

gdal.UseExceptions()
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPRESSIONS = {"light": "(A+B)*C/2", "heavy": "sqrt(A*A+B*B)+log(1+abs(C))"}
TIFF_OPTIONS = ["-co", "TILED=YES", "-co", "BIGTIFF=YES"]


def make_inputs(work, size):
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


def pgp_graph(work, expression):
    path = os.path.join(work, f"calc_{abs(hash(expression))}.pgp.vrt")
    with open(path, "w") as f:
        f.write('<PGPDataset blockXSize="256" blockYSize="256">\n'
                '  <Source name="A" file="a.tif"/><Source name="B" file="b.tif"/>'
                '<Source name="C" file="c.tif"/>\n'
                f'  <Calc name="out" dataType="Float32"><Expression>{expression}</Expression>'
                '</Calc>\n  <Band ref="out"/>\n</PGPDataset>\n')
    return path


def sum_vrt(work, size):
    path = os.path.join(work, "sum.vrt")
    sources = "".join(
        f'<SimpleSource><SourceFilename relativeToVRT="1">{n}.tif</SourceFilename>'
        '<SourceBand>1</SourceBand></SimpleSource>' for n in "abc")
    with open(path, "w") as f:
        f.write(f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}">'
                '<VRTRasterBand dataType="Float32" band="1" subClass="VRTDerivedRasterBand">'
                f'<PixelFunctionType>sum</PixelFunctionType>{sources}</VRTRasterBand>'
                '</VRTDataset>')
    return path


def timed(args, env, repeat):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--work", default="/tmp/pgp-bench")
    options = parser.parse_args()
    os.makedirs(options.work, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("GDAL_DRIVER_PATH", os.path.join(REPO, "build"))
    a, b, c = make_inputs(options.work, options.size)
    out = os.path.join(options.work, "out.tif")
    translate = ["gdal_translate", "-q"] + TIFF_OPTIONS

    def pgp(expression, executor):
        return timed(translate + [pgp_graph(options.work, expression), out],
                     dict(env, PGP_EXECUTOR=executor), options.repeat)

    threaded = f"threading:{options.threads}"
    print(f"{options.size}x{options.size} Float32, 3 inputs, {os.cpu_count()} CPUs")
    print(f"{'case':<28}{'seconds':>9}  ratio")
    for label, expression in EXPRESSIONS.items():
        calc = timed([sys.executable, "/usr/bin/gdal_calc.py", "--quiet", "--overwrite",
                      "-A", a, "-B", b, "-C", c, "--type", "Float32", f"--calc={expression}",
                      "--outfile", out, "--co", "TILED=YES", "--co", "BIGTIFF=YES"],
                     env, options.repeat)
        serial = pgp(expression, "serial")
        parallel = pgp(expression, threaded)
        print(f"{label + ' gdal_calc.py':<28}{calc:9.2f}")
        print(f"{label + ' pgp serial':<28}{serial:9.2f}  {calc / serial:5.2f}x gdal_calc")
        print(f"{label + ' pgp ' + threaded:<28}{parallel:9.2f}  {calc / parallel:5.2f}x "
              f"gdal_calc, {serial / parallel:4.2f}x serial")
    vrt = timed(translate + [sum_vrt(options.work, options.size), out], env, options.repeat)
    serial = pgp("A+B+C", "serial")
    parallel = pgp("A+B+C", threaded)
    print(f"{'sum VRT pixel function':<28}{vrt:9.2f}")
    print(f"{'sum pgp serial':<28}{serial:9.2f}  {vrt / serial:5.2f}x VRT")
    print(f"{'sum pgp ' + threaded:<28}{parallel:9.2f}  {vrt / parallel:5.2f}x VRT")


if __name__ == "__main__":
    main()
