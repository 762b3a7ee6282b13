#!/usr/bin/python3
"""Convolve benchmark (issue: Convolve node). Same script run, ratios.

SIZE x SIZE Float32 signal (a.tif of the shared inputs). Cases:
- 5x5: pgp serial / threading:N vs GDAL's VRT KernelFilteredSource and
  scipy.ndimage.convolve on the whole array;
- 31x31, 101x101, 401x401 gaussians: pgp threading:N vs
  scipy.signal.fftconvolve on the whole array (and ndimage.convolve up to
  --ndimage-max).
pgp renders with gdal_translate to an uncompressed tiled GeoTIFF; scipy times
include reading the signal into memory (what a whole-array user does).
Peak RSS of each pgp run is reported (bounded by tiles, not the raster).

Usage: bench/bench_convolve.py [--size 8192] [--threads 2] [--kernels 5,31,101,401]
"""
import os
import re
import subprocess
import time

from common import bench_parser, make_inputs, plugin_env  # first: it sets GDAL_DRIVER_PATH

import numpy as np
from osgeo import gdal
from scipy import ndimage, signal



def gaussian(size):
    sigma = size / 6
    y, x = np.mgrid[0:size, 0:size] - (size - 1) / 2
    kernel = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    return kernel / kernel.sum()


def write_kernel(path, kernel):
    ds = gdal.GetDriverByName("GTiff").Create(path, kernel.shape[1], kernel.shape[0], 1,
                                              gdal.GDT_Float64)
    ds.GetRasterBand(1).WriteArray(kernel)
    ds = None


def pgp_run(work, size, executor, env):
    graph = os.path.join(work, f"conv{size}.pgp.vrt")
    with open(graph, "w") as f:
        f.write(f'<PGPDataset><Source name="s" file="a.tif"/><Convolve name="c" input="s" '
                f'kernel="k{size}.tif" dataType="Float32" noData="-1e30"/>'
                '<Band ref="c"/></PGPDataset>')
    out = os.path.join(work, "conv_out.tif")
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", "gdal_translate", "-q", "-co", "TILED=YES",
                             "-co", "BIGTIFF=YES", graph, out],
                            env=dict(env, PGP_EXECUTOR=executor), capture_output=True,
                            text=True, check=True)
    seconds = time.perf_counter() - start
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return seconds, rss / 1024


def kernel_filtered_vrt(work, raster_size, kernel):
    path = os.path.join(work, "kfs.vrt")
    coefs = " ".join(repr(float(v)) for v in kernel.ravel())
    with open(path, "w") as f:
        f.write(f'<VRTDataset rasterXSize="{raster_size}" rasterYSize="{raster_size}">'
                '<VRTRasterBand dataType="Float32" band="1"><KernelFilteredSource>'
                '<SourceFilename relativeToVRT="1">a.tif</SourceFilename>'
                f'<SourceBand>1</SourceBand><Kernel normalized="0"><Size>{kernel.shape[0]}</Size>'
                f'<Coefs>{coefs}</Coefs></Kernel></KernelFilteredSource></VRTRasterBand>'
                '</VRTDataset>')
    return path


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    parser = bench_parser(repeat=False)
    parser.add_argument("--kernels", default="5,31,101,401")
    parser.add_argument("--ndimage-max", type=int, default=31,
                        help="largest kernel also timed with scipy.ndimage.convolve")
    options = parser.parse_args()
    os.makedirs(options.work, exist_ok=True)
    a_path = make_inputs(options.work, options.size)[0]
    env = plugin_env()
    threaded = f"threading:{options.threads}"
    print(f"{options.size}x{options.size} Float32 signal, {os.cpu_count()} CPUs")

    def load():
        return gdal.Open(a_path).ReadAsArray().astype(np.float64)

    for size in (int(k) for k in options.kernels.split(",")):
        kernel = gaussian(size)
        write_kernel(os.path.join(options.work, f"k{size}.tif"), kernel)
        serial, serial_rss = pgp_run(options.work, size, "serial", env)
        parallel, rss = pgp_run(options.work, size, threaded, env)
        line = (f"{size}x{size}: pgp serial {serial:7.2f} s ({serial_rss:.0f} MB) | "
                f"{threaded} {parallel:7.2f} s ({rss:.0f} MB)")
        if size <= 5:
            vrt = kernel_filtered_vrt(options.work, options.size, kernel)
            kfs = timed(lambda: subprocess.run(
                ["gdal_translate", "-q", "-co", "TILED=YES", "-co", "BIGTIFF=YES", vrt,
                 os.path.join(options.work, "kfs_out.tif")], check=True, env=env))
            line += f" | KernelFilteredSource {kfs:7.2f} s ({kfs / serial:.2f}x serial)"
        if size <= options.ndimage_max:
            nd = timed(lambda: ndimage.convolve(load(), kernel, mode="constant"))
            line += f" | ndimage {nd:7.2f} s ({nd / parallel:.2f}x)"
        if size >= 31:
            fft = timed(lambda: signal.fftconvolve(load(), kernel, mode="same"))
            line += f" | fftconvolve {fft:7.2f} s ({fft / parallel:.2f}x)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
