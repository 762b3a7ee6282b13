#!/usr/bin/python3
"""pgp_expr pixel function benchmark (issue: Prefetch / pgp_expr).

Plain VRTs over the same three Float32 inputs, rendered by gdal_translate in
one script run: GDAL's built-in 'sum' and 'mul' against pgp_expr 'A+B+C' and
'A*B*C' (serial and threading:N), and a Python pixel function doing the sum.

Usage: bench/bench_pixelfunc.py [--size 8192] [--threads 2] [--repeat 1]
"""
import os

from common import bench_parser, make_inputs, plugin_env, timed

PYTHON_SUM = """<PixelFunctionLanguage>Python</PixelFunctionLanguage>
<PixelFunctionCode><![CDATA[
import numpy as np
def python_sum(in_ar, out_ar, xoff, yoff, xsize, ysize, raster_xsize, raster_ysize, buf_radius, gt, **kwargs):
    np.add(np.add(in_ar[0], in_ar[1], dtype=np.float64), in_ar[2], out=out_ar, casting="unsafe")
]]></PixelFunctionCode>"""


def vrt(work, name, size, function, arguments="", extra=""):
    sources = "".join(
        f'<SimpleSource><SourceFilename relativeToVRT="1">{n}.tif</SourceFilename>'
        '<SourceBand>1</SourceBand></SimpleSource>' for n in "abc")
    path = os.path.join(work, f"{name}.vrt")
    with open(path, "w") as f:
        f.write(f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}">'
                '<VRTRasterBand dataType="Float32" band="1" subClass="VRTDerivedRasterBand">'
                f"<NoDataValue>-9999</NoDataValue><PixelFunctionType>{function}"
                f"</PixelFunctionType>{extra}{arguments}{sources}</VRTRasterBand></VRTDataset>")
    return path


def main():
    options = bench_parser().parse_args()
    os.makedirs(options.work, exist_ok=True)
    make_inputs(options.work, options.size)
    env = plugin_env()
    out = os.path.join(options.work, "out.tif")
    translate = ["gdal_translate", "-q", "-co", "TILED=YES", "-co", "BIGTIFF=YES"]

    def run(path, extra_env=None):
        return timed(translate + [path, out], dict(env, **(extra_env or {})), options.repeat)

    print(f"{options.size}x{options.size} Float32, 3 sources")
    for builtin, expression in [("sum", "A+B+C"), ("mul", "A*B*C")]:
        reference = run(vrt(options.work, builtin, options.size, builtin))
        pgp_vrt = vrt(options.work, f"pgp_{builtin}", options.size, "pgp_expr",
                      f'<PixelFunctionArguments expression="{expression}" names="A,B,C" '
                      'nodata_policy="expression"/>')
        serial = run(pgp_vrt, {"PGP_EXECUTOR": "serial"})
        threaded = run(pgp_vrt, {"PGP_EXECUTOR": f"threading:{options.threads}"})
        print(f"{builtin:<4} built-in {reference:6.2f} s | pgp_expr serial {serial:6.2f} s "
              f"({reference / serial:4.2f}x) | threading:{options.threads} {threaded:6.2f} s "
              f"({reference / threaded:4.2f}x)")
    python = run(vrt(options.work, "python_sum", options.size, "python_sum", extra=PYTHON_SUM),
                 {"GDAL_VRT_ENABLE_PYTHON": "YES"})
    pgp_sum = run(os.path.join(options.work, "pgp_sum.vrt"),
                  {"PGP_EXECUTOR": f"threading:{options.threads}"})
    print(f"sum  Python pixel function {python:6.2f} s | pgp_expr threading:{options.threads} "
          f"{pgp_sum:6.2f} s ({python / pgp_sum:4.2f}x)")


if __name__ == "__main__":
    main()
