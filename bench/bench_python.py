#!/usr/bin/python3
"""Python package benchmark (issue 13). Same script, same inputs, ratios.

1. A CPU-heavy numpy local_op through pgp.raster_calculator on three SIZE x SIZE
   Float32 rasters: serial against 'threading:2' and 'multiprocessing:2'.
2. pgp.evaluate_raster_calculator_expression (compiled to a <Calc>, run by the
   plugin) against the same expression as a numpy local_op in raster_calculator.
3. pgp.convolve_2d with a 31x31 gaussian against scipy.signal.fftconvolve on the
   whole array (reading it included).
4. Peak RSS of raster_calculator over a RSS_SIZE x RSS_SIZE Float32 raster (a child
   process per executor; the pool's processes counted too).

Outputs are uncompressed 256x256-tiled GeoTIFFs (the single writer's LZW would
otherwise cap every parallel figure).

Usage: bench/bench_python.py [--size 8192] [--rss-size 20000] [--repeat 1] [--work DIR]
"""
import os
import resource
import subprocess
import sys
import time

from common import REPO, bench_parser, make_inputs

sys.path.insert(0, os.path.join(REPO, "python"))
import numpy  # noqa: E402
from osgeo import gdal  # noqa: E402

import pgp  # noqa: E402

CREATION = ("GTIFF", ("TILED=YES", "BIGTIFF=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256"))
EXPRESSION = "(a * a + b * b) ** 0.5 * (a > b) + c / 3 - (a < c) * b"


def heavy(a, b, c):
    """A CPU-bound local_op: transcendental functions, several passes."""
    x = a.astype(numpy.float64)
    for _ in range(4):
        x = numpy.sin(x) * numpy.sqrt(numpy.abs(x) + numpy.abs(b)) + numpy.log1p(numpy.abs(c))
    return x


def expression_op(a, b, c):
    """EXPRESSION as a numpy local_op (what evaluate_raster_calculator_expression
    does in pygeoprocessing, without its nodata masking: these inputs have none)."""
    return (a * a + b * b) ** 0.5 * (a > b) + c / 3 - (a < c) * b


def generic_op(*arg_list):
    """pygeoprocessing.symbolic's _generic_raster_op, the local_op its
    evaluate_raster_calculator_expression runs: nodata mask, eval, NaN/inf checks."""
    n = (len(arg_list) - 4) // 2
    arrays, nodatas = arg_list[:n], arg_list[n:2 * n]
    expression, target_nodata, default_nan, default_inf, names = arg_list[2 * n:]
    result = numpy.empty(arrays[0].shape, dtype=numpy.result_type(*arrays))
    if target_nodata is not None:
        result[:] = target_nodata
    if any(nodata is not None for nodata in nodatas):
        valid = ~numpy.logical_or.reduce([numpy.isclose(a, nd) for a, nd in
                                          zip(arrays, nodatas) if nd is not None])
        result[valid] = eval(expression, {}, {k: a[valid] for k, a in zip(names, arrays)})
    else:
        result[:] = eval(expression, {}, dict(zip(names, arrays)))
    for test, default in ((numpy.isnan, default_nan), (numpy.isinf, default_inf)):
        found = test(result)
        if found.any():
            result[found] = default
    return result


def double(a):
    return a * 2


def best(function, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def big_input(work, size):
    """A compressible SIZE x SIZE Float32 raster (a gradient), kept between runs."""
    path = os.path.join(work, f"big_{size}.tif")
    if os.path.exists(path):
        return path
    ds = gdal.GetDriverByName("GTiff").Create(
        path + ".part", size, size, 1, gdal.GDT_Float32,
        ["TILED=YES", "BIGTIFF=YES", "COMPRESS=LZW", "BLOCKXSIZE=256", "BLOCKYSIZE=256"])
    band = ds.GetRasterBand(1)
    row = numpy.arange(size, dtype=numpy.float32)
    for y in range(0, size, 1024):
        rows = min(1024, size - y)
        band.WriteArray(numpy.tile(row + y, (rows, 1)), 0, y)
    ds = None
    os.rename(path + ".part", path)
    return path


def rss_child(path, out, executor):
    """Runs in a child: raster_calculator over path, prints seconds and peak RSS."""
    start = time.perf_counter()
    pgp.raster_calculator([(path, 1)], double, out, gdal.GDT_Float32, None,
                          raster_driver_creation_tuple=CREATION, executor=executor)
    seconds = time.perf_counter() - start
    # VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss across exec.
    with open("/proc/self/status") as status:
        own = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{seconds:.2f} {own:.0f} {children:.0f}")


def main():
    parser = bench_parser()
    parser.add_argument("--rss-size", type=int, default=20000)
    parser.add_argument("--skip", default="", help="comma list of: heavy,expr,convolve,rss")
    options = parser.parse_args()
    skip = set(options.skip.split(","))
    os.makedirs(options.work, exist_ok=True)
    a, b, c = make_inputs(options.work, options.size)
    out = os.path.join(options.work, "py_out.tif")
    size = gdal.Open(a).RasterXSize  # make_inputs keeps the inputs of earlier runs
    print(f"{size}x{size} Float32 inputs (in {options.work}), {os.cpu_count()} CPUs")

    def calc(op, paths, executor):
        return best(lambda: pgp.raster_calculator(
            [(p, 1) for p in paths], op, out, gdal.GDT_Float32, None,
            raster_driver_creation_tuple=CREATION, executor=executor), options.repeat)

    if "heavy" not in skip:
        serial = calc(heavy, (a, b, c), None)
        print(f"heavy local_op serial            {serial:7.2f} s", flush=True)
        for executor in ("threading:2", "multiprocessing:2"):
            seconds = calc(heavy, (a, b, c), executor)
            print(f"heavy local_op {executor:<18}{seconds:7.2f} s  {serial / seconds:.2f}x "
                  "serial", flush=True)
    if "expr" not in skip:
        numpy_op = calc(expression_op, (a, b, c), None)
        print(f"expression as numpy local_op     {numpy_op:7.2f} s", flush=True)
        # With nodata declared (as most rasters have): VRTs over the same files.
        nodata_paths = []
        for path in (a, b, c):
            nodata_paths.append(path[:-4] + "_nodata.vrt")
            gdal.Translate(nodata_paths[-1], path, format="VRT", noData=-100)
        for label, paths in (("", (a, b, c)), (" nodata", nodata_paths)):
            nodatas = [(pgp.get_raster_info(p)["nodata"][0], 'raw') for p in paths]
            generic = best(lambda: pgp.raster_calculator(
                [(p, 1) for p in paths] + nodatas + [
                    (EXPRESSION, 'raw'), (-1.0, 'raw'), (0.5, 'raw'), (0.5, 'raw'),
                    (("a", "b", "c"), 'raw')], generic_op, out, gdal.GDT_Float32, -1.0,
                raster_driver_creation_tuple=CREATION), options.repeat)
            print(f"pygeoprocessing's op{label:<8}     {generic:7.2f} s", flush=True)
            for executor in (None, "threading:2"):
                seconds = best(lambda: pgp.evaluate_raster_calculator_expression(
                    EXPRESSION, dict(zip("abc", ((p, 1) for p in paths))), -1.0, out,
                    default_nan=0.5, default_inf=0.5, raster_driver_creation_tuple=CREATION,
                    executor=executor), options.repeat)
                print(f"evaluate{label:<8} {str(executor):<15}{seconds:7.2f} s  "
                      f"{generic / seconds:.2f}x pygeoprocessing's op, "
                      f"{numpy_op / seconds:.2f}x bare numpy op", flush=True)
    if "convolve" not in skip:
        kernel_path = os.path.join(options.work, "gauss31.tif")
        y, x = numpy.mgrid[-15:16, -15:16]
        kernel = numpy.exp(-(x * x + y * y) / (2 * 5.0 ** 2))
        kernel /= kernel.sum()
        ds = gdal.GetDriverByName("GTiff").Create(kernel_path, 31, 31, 1, gdal.GDT_Float64)
        ds.GetRasterBand(1).WriteArray(kernel)
        ds = None
        from scipy import signal  # here: spawned workers re-import this script
        fft = best(lambda: signal.fftconvolve(
            gdal.Open(a).ReadAsArray().astype(numpy.float64), kernel, mode="same"),
            options.repeat)
        print(f"scipy fftconvolve (whole array)  {fft:7.2f} s", flush=True)
        for executor in (None, "threading:2"):
            seconds = best(lambda: pgp.convolve_2d(
                (a, 1), (kernel_path, 1), out, raster_driver_creation_tuple=CREATION,
                executor=executor), options.repeat)
            print(f"convolve_2d 31x31 {str(executor):<15}{seconds:7.2f} s  "
                  f"{fft / seconds:.2f}x fftconvolve", flush=True)
    if "rss" not in skip:
        path = big_input(options.work, options.rss_size)
        for executor in ("serial", "threading:2", "multiprocessing:2"):
            result = subprocess.run(
                [sys.executable, __file__, "--rss-child", path,
                 os.path.join(options.work, "py_big_out.tif"), executor],
                check=True, capture_output=True, text=True)
            seconds, own, children = result.stdout.split()
            print(f"raster_calculator {options.rss_size}^2 {executor:<18}{float(seconds):7.2f} s"
                  f"  peak RSS {own} MB (pool processes: {children} MB each at most)",
                  flush=True)
        os.remove(os.path.join(options.work, "py_big_out.tif"))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--rss-child":
        rss_child(*sys.argv[2:])
    else:
        main()
