#!/usr/bin/python3
"""Vector kernels and math benchmark (issue 19 items 1-2): the table's rows that
the VM and the convolution taps decide, before and after, against their anchors.

Rows (SIZE x SIZE Float32 tiled inputs, the shared a/b/c.tif; outputs are
uncompressed tiled GeoTIFFs written by gdal_translate, GDAL_CACHEMAX=64 for
every command):
- light: (A+B)*C/2, serial, against gdal_calc.py;
- heavy: sqrt(A*A+B*B)+log(1+abs(C)), threading:N, against gdal_calc.py;
- conv5: 5x5 gaussian Convolve, serial, against GDAL's VRT KernelFilteredSource.
Each row runs the anchor, the plugin built in --before (e.g. a build of main),
this build, and this build at PGP_ISA=baseline (the x86-64 level of the same
binary), interleaved run by run so that load from other processes hits all
alike; the table gives medians of --repeat runs and anchor / pgp ratios, of wall
time and of CPU time (user + system, which a loaded shared machine disturbs less).
Then the kernels alone at every level, with glibc beside them: the build's
pgp_bench_kernels (bench/bench_kernels.c).

Usage: bench/bench_vector.py [--size 4096] [--threads 2] [--repeat 5]
       [--before /work/main/build] [--work DIR]
"""
import os
import resource
import statistics
import subprocess
import sys
import time

from common import REPO, bench_parser, make_inputs, plugin_env  # sets GDAL_DRIVER_PATH
from bench_convolve import gaussian, kernel_filtered_vrt, write_kernel

TIFF_OPTIONS = ["-co", "TILED=YES", "-co", "BIGTIFF=YES"]
LIGHT = "(A+B)*C/2"
HEAVY = "sqrt(A*A+B*B)+log(1+abs(C))"


def timed(args, env):
    """(wall seconds, CPU seconds: user + system) of one run of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def write_graph(work, name, body):
    path = os.path.join(work, f"vector_{name}.pgp.vrt")
    with open(path, "w") as f:
        f.write(f'<PGPDataset blockXSize="256" blockYSize="256">{body}<Band ref="out"/>'
                '</PGPDataset>\n')
    return path


def calc_body(expression):
    return ('<Source name="A" file="a.tif"/><Source name="B" file="b.tif"/>'
            '<Source name="C" file="c.tif"/><Calc name="out" dataType="Float32">'
            f'<Expression>{expression}</Expression></Calc>')


def main():
    parser = bench_parser()
    parser.add_argument("--before", default="/work/main/build",
                        help="build folder of the plugin to compare with")
    parser.set_defaults(size=4096, repeat=5)
    options = parser.parse_args()
    os.makedirs(options.work, exist_ok=True)
    a, b, c = make_inputs(options.work, options.size)
    write_kernel(os.path.join(options.work, "k5.tif"), gaussian(5))
    out = os.path.join(options.work, "vector_out.tif")
    env = dict(plugin_env(), GDAL_CACHEMAX="64")
    after = os.path.join(REPO, "build")
    threaded = f"threading:{options.threads}"

    def gdal_calc(expression):
        return [sys.executable, "/usr/bin/gdal_calc.py", "--quiet", "--overwrite", "-A", a,
                "-B", b, "-C", c, "--type", "Float32", f"--calc={expression}", "--outfile",
                out, "--co", "TILED=YES", "--co", "BIGTIFF=YES"]

    translate = ["gdal_translate", "-q"] + TIFF_OPTIONS
    rows = {  # row: (anchor name, anchor command, pgp graph, executor)
        "light serial": ("gdal_calc.py", gdal_calc(LIGHT),
                         write_graph(options.work, "light", calc_body(LIGHT)), "serial"),
        f"heavy {threaded}": ("gdal_calc.py", gdal_calc(HEAVY),
                              write_graph(options.work, "heavy", calc_body(HEAVY)), threaded),
        "conv5 serial": ("KernelFilteredSource",
                         translate + [kernel_filtered_vrt(options.work, options.size,
                                                          gaussian(5)), out],
                         write_graph(options.work, "conv5",
                                     '<Source name="s" file="a.tif"/><Convolve name="out" '
                                     'input="s" kernel="k5.tif" dataType="Float32" '
                                     'noData="-1e30"/>'), "serial"),
    }
    variants = {  # variant: environment on top of env
        "before": {"GDAL_DRIVER_PATH": options.before},
        "after": {"GDAL_DRIVER_PATH": after},
        "after PGP_ISA=baseline": {"GDAL_DRIVER_PATH": after, "PGP_ISA": "baseline"},
    }
    times = {(row, v): [] for row in rows for v in ["anchor"] + list(variants)}
    for _ in range(options.repeat):
        for row, (_, anchor, graph, executor) in rows.items():
            times[(row, "anchor")].append(timed(anchor, env))
            for variant, extra in variants.items():
                times[(row, variant)].append(
                    timed(translate + [graph, out], dict(env, PGP_EXECUTOR=executor, **extra)))
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"{options.size}x{options.size} Float32, GDAL_CACHEMAX=64, {os.cpu_count()} CPUs, "
          f"medians of {options.repeat} interleaved runs, load average {' '.join(load)}")
    print(f"{'row':<20}{'command':<26}{'wall s':>7}{'spread':>7}{'ratio':>7}"
          f"{'CPU s':>7}{'ratio':>7}")
    for row, (anchor_name, _, _, _) in rows.items():
        anchor = [statistics.median(t[k] for t in times[(row, "anchor")]) for k in (0, 1)]
        for variant in ["anchor"] + list(variants):
            samples = times[(row, variant)]
            wall, cpu = (statistics.median(t[k] for t in samples) for k in (0, 1))
            spread = max(t[0] for t in samples) - min(t[0] for t in samples)
            label = anchor_name if variant == "anchor" else f"pgp {variant}"
            ratios = ("" if variant == "anchor" else f"{anchor[0] / wall:6.2f}x", "" if
                      variant == "anchor" else f"{anchor[1] / cpu:6.2f}x")
            print(f"{row:<20}{label:<26}{wall:7.3f}{spread:7.3f}{ratios[0]:>7}{cpu:7.3f}"
                  f"{ratios[1]:>7}")
    print("ratio: anchor / pgp (above 1: pgp faster)\n")
    kernels = os.path.join(after, "pgp_bench_kernels")
    if os.path.exists(kernels):
        subprocess.run([kernels, str(max(options.repeat, 9))], check=True)


if __name__ == "__main__":
    main()
