#!/usr/bin/python3
"""Calc benchmark (issue: Foundation). Same script run, same inputs, ratios.

Renders a 3-input Float32 calc on SIZE x SIZE tiled GeoTIFFs to an uncompressed
tiled GeoTIFF with gdal_translate on a .pgp.vrt (serial and threading:N),
against gdal_calc.py with the same expression and GDAL's VRT built-in pixel
function 'sum' (A+B+C, with pgp's A+B+C beside it).

Usage: bench/bench_calc.py [--size 8192] [--threads 2] [--repeat 1] [--work DIR]
Needs GDAL_DRIVER_PATH pointing at the build folder (defaults to ./build).
"""
import os
import sys

from common import bench_parser, make_inputs, plugin_env, timed
EXPRESSIONS = {"light": "(A+B)*C/2", "heavy": "sqrt(A*A+B*B)+log(1+abs(C))"}
TIFF_OPTIONS = ["-co", "TILED=YES", "-co", "BIGTIFF=YES"]


def pgp_graph(work, label, expression):
    path = os.path.join(work, f"calc_{label}.pgp.vrt")
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


def main():
    options = bench_parser().parse_args()
    os.makedirs(options.work, exist_ok=True)
    env = plugin_env()
    a, b, c = make_inputs(options.work, options.size)
    out = os.path.join(options.work, "out.tif")
    translate = ["gdal_translate", "-q"] + TIFF_OPTIONS

    def pgp(label, expression, executor):
        return timed(translate + [pgp_graph(options.work, label, expression), out],
                     dict(env, PGP_EXECUTOR=executor), options.repeat)

    threaded = f"threading:{options.threads}"
    print(f"{options.size}x{options.size} Float32, 3 inputs, {os.cpu_count()} CPUs")
    print(f"{'case':<28}{'seconds':>9}  ratio")
    for label, expression in EXPRESSIONS.items():
        calc = timed([sys.executable, "/usr/bin/gdal_calc.py", "--quiet", "--overwrite",
                      "-A", a, "-B", b, "-C", c, "--type", "Float32", f"--calc={expression}",
                      "--outfile", out, "--co", "TILED=YES", "--co", "BIGTIFF=YES"],
                     env, options.repeat)
        serial = pgp(label, expression, "serial")
        parallel = pgp(label, expression, threaded)
        print(f"{label + ' gdal_calc.py':<28}{calc:9.2f}")
        print(f"{label + ' pgp serial':<28}{serial:9.2f}  {calc / serial:5.2f}x gdal_calc")
        print(f"{label + ' pgp ' + threaded:<28}{parallel:9.2f}  {calc / parallel:5.2f}x "
              f"gdal_calc, {serial / parallel:4.2f}x serial")
    vrt = timed(translate + [sum_vrt(options.work, options.size), out], env, options.repeat)
    serial = pgp("sum", "A+B+C", "serial")
    parallel = pgp("sum", "A+B+C", threaded)
    print(f"{'sum VRT pixel function':<28}{vrt:9.2f}")
    print(f"{'sum pgp serial':<28}{serial:9.2f}  {vrt / serial:5.2f}x VRT")
    print(f"{'sum pgp ' + threaded:<28}{parallel:9.2f}  {vrt / parallel:5.2f}x VRT")


if __name__ == "__main__":
    main()
