#!/usr/bin/python3
"""Render benchmark (issue 19 item 3, issue 17's remainder): `pgp render` against the
GDAL floor. Same script, same inputs, interleaved runs, medians.

SIZE x SIZE Float32 256x256-tiled inputs (the shared a/b/c.tif), every output an
uncompressed 256x256-tiled BigTIFF, GDAL_CACHEMAX=64 (--cachemax) for every command.
Graphs: a Source-only copy, the light Calc (A+B)*C/2, 5x5 and 31x31 gaussian
Convolves. Each is rendered serially and with threading:N by
- `pgp render --no-stats` (tiles written straight into the target, pgp/target.h), and
- gdal_translate of the .pgp.vrt (GDAL's block cache in between);
anchors: gdal_calc.py for the Calc, a VRT KernelFilteredSource through gdal_translate
for the 5x5. `pgp render` with statistics is timed too, and the start-up floors:
`import osgeo.gdal`, `import pgp`, and `pgp render` of the Calc on 16x16 inputs.

--reference DIR also runs both pgp forms with another checkout (DIR/python and
DIR/build, e.g. /work/main: the "before"), interleaved, rows marked "ref".

Usage: bench/bench_render.py [--size 4096] [--threads 2] [--repeat 5] [--reference DIR]
"""
import compileall
import os
import statistics
import sys

import common  # first: it sets GDAL_DRIVER_PATH
from common import REPO, bench_parser, make_inputs, measured, plugin_env
from bench_convolve import gaussian, kernel_filtered_vrt, write_kernel
from osgeo import gdal

LIGHT = "(A+B)*C/2"
TIFF = ["-co", "TILED=YES", "-co", "BIGTIFF=YES"]


def light(files):
    """The light Calc of A, B and C read from files[0], files[1], files[2]."""
    sources = "".join(f'<Source name="{n}" file="{f}"/>' for n, f in zip("ABC", files))
    return (f'{sources}<Calc name="out" dataType="Float32"><Expression>{LIGHT}'
            '</Expression></Calc><Band ref="out"/>')


def write_graphs(work):
    tiny = os.path.join(work, "tiny.tif")
    dataset = gdal.GetDriverByName("GTiff").Create(tiny, 16, 16, 1, gdal.GDT_Float32)
    dataset.SetGeoTransform((0, 30, 0, 16 * 30, 0, -30))
    dataset.GetRasterBand(1).Fill(1.5)
    dataset = None
    graphs = {
        "copy": '<Source name="A" file="a.tif"/><Band ref="A"/>',
        "calc": light(["a.tif", "b.tif", "c.tif"]),
        "tiny": light(["tiny.tif"] * 3)}  # the start-up floor of `pgp render`
    for size in (5, 31):
        write_kernel(os.path.join(work, f"k{size}.tif"), gaussian(size))
        graphs[f"conv{size}"] = (
            f'<Source name="A" file="a.tif"/><Convolve name="c" input="A" '
            f'kernel="k{size}.tif" dataType="Float32" noData="-1e30"/><Band ref="c"/>')
    return common.write_graphs(work, "render", {name: f"<PGPDataset>{body}</PGPDataset>\n"
                                                for name, body in graphs.items()})


def checkout(folder):
    """The environment that runs a checkout's pgp: its package and its plugin."""
    build = os.path.join(folder, "build")
    return dict(plugin_env(), PYTHONPATH=os.path.join(folder, "python"),
                GDAL_DRIVER_PATH=build, PGP_PLUGIN=os.path.join(build, "gdal_PGP.so"))


def cases(work, size, graphs, executors, reference, out):
    """label -> (command, environment), in the order they run in each round."""
    a, b, c = (os.path.join(work, f"{n}.tif") for n in "abc")
    builds = [("", checkout(REPO))] + ([("ref ", checkout(reference))] if reference else [])
    tiny = graphs.pop("tiny")

    def render(executor, graph):
        return [sys.executable, "-m", "pgp", "render", "-q", "--no-stats", "--executor",
                executor] + TIFF + [graph, out]

    table = {"import osgeo.gdal": ([sys.executable, "-c", "from osgeo import gdal"],
                                   builds[0][1])}
    for mark, env in builds:
        table[f"{mark}import pgp"] = ([sys.executable, "-c", "import pgp"], env)
        table[f"{mark}render tiny serial"] = (render("serial", tiny), env)
    table.update({
        "gdal_calc.py calc": ([sys.executable, "/usr/bin/gdal_calc.py", "--quiet",
                               "--overwrite", "-A", a, "-B", b, "-C", c, "--type",
                               "Float32", f"--calc={LIGHT}", "--outfile", out, "--co",
                               "TILED=YES", "--co", "BIGTIFF=YES"], builds[0][1]),
        "KernelFilteredSource conv5": (["gdal_translate", "-q"] + TIFF + [
            kernel_filtered_vrt(work, size, gaussian(5)), out], builds[0][1]),
    })
    for name, graph in graphs.items():
        for executor in executors:
            for mark, env in builds:
                table[f"{mark}render {name} {executor}"] = (render(executor, graph), env)
                table[f"{mark}translate {name} {executor}"] = (
                    ["gdal_translate", "-q"] + TIFF + [graph, out],
                    dict(env, PGP_EXECUTOR=executor))
    table["render calc serial, with statistics"] = (
        [sys.executable, "-m", "pgp", "render", "-q", "--executor", "serial"] + TIFF +
        [graphs["calc"], out], builds[0][1])
    return table


def main():
    parser = bench_parser()
    parser.set_defaults(size=4096, repeat=5, work="/tmp/pgp-bench-render")
    parser.add_argument("--cachemax", default="64", help="GDAL_CACHEMAX of every command")
    parser.add_argument("--reference", help="another checkout (its python/ and build/)")
    options = parser.parse_args()
    work = f"{options.work}-{options.size}"
    os.makedirs(work, exist_ok=True)
    make_inputs(work, options.size)
    # Bytecode, as an installed package has it (the .deb's postinst compiles it) and as
    # gdal_calc.py's osgeo_utils have it: a shell with PYTHONDONTWRITEBYTECODE set would
    # otherwise time pgp compiling its modules on every run.
    for folder in [REPO] + ([options.reference] if options.reference else []):
        compileall.compile_dir(os.path.join(folder, "python", "pgp"), quiet=1)
    threaded = f"threading:{options.threads}"
    out = os.path.join(work, "render_out.tif")
    table = cases(work, options.size, write_graphs(work), ["serial", threaded],
                  options.reference, out)
    for _, env in table.values():
        env["GDAL_CACHEMAX"] = options.cachemax
    runs = {label: [] for label in table}
    for _ in range(options.repeat):
        for label, (args, env) in table.items():
            if os.path.exists(out):  # not timed: deleting the last output is not rendering
                os.unlink(out)
            runs[label].append(measured(args, env))
    median = {label: statistics.median(r[0] for r in values) for label, values in runs.items()}
    print(f"{options.size}x{options.size} Float32, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}, GDAL_CACHEMAX={options.cachemax}, median of "
          f"{options.repeat} interleaved runs (spread = max - min)")
    print(f"{'case':42} {'wall s':>7} {'spread':>7} {'cpu s':>6} {'sys s':>6} {'faults':>8}")
    for label, values in runs.items():
        walls = [r[0] for r in values]
        print(f"{label:42} {median[label]:7.3f} {max(walls) - min(walls):7.3f} "
              f"{statistics.median(r[3] for r in values):6.2f} "
              f"{statistics.median(r[1] for r in values):6.2f} "
              f"{int(statistics.median(r[2] for r in values)):8d}")

    def ratio(text, slow, fast, goal=""):
        print(f"{text:58} {median[slow] / median[fast]:5.2f}x {goal}")

    print()
    ratio("calc serial: gdal_calc.py / pgp render", "gdal_calc.py calc",
          "render calc serial", "(goal >= 2)")
    ratio("conv5 serial: KernelFilteredSource / pgp render", "KernelFilteredSource conv5",
          "render conv5 serial", "(goal >= 3)")
    for name in ("copy", "calc", "conv5", "conv31"):
        for executor in ("serial", threaded):
            ratio(f"{name} {executor}: gdal_translate / pgp render",
                  f"translate {name} {executor}", f"render {name} {executor}")
    for name in ("conv5", "conv31", "calc"):
        for tool in ("render", "translate"):
            ratio(f"{name} {tool}: serial / {threaded}", f"{tool} {name} serial",
                  f"{tool} {name} {threaded}", "(goal >= 1.7)" if name != "calc" else "")
    if options.reference:
        ratio("start-up, render tiny serial: before / now", "ref render tiny serial",
              "render tiny serial")
        for name in ("copy", "calc", "conv5", "conv31"):
            for executor in ("serial", threaded):
                for tool in ("render", "translate"):
                    ratio(f"{name} {tool} {executor}: before / now",
                          f"ref {tool} {name} {executor}", f"{tool} {name} {executor}")


if __name__ == "__main__":
    main()
