#!/usr/bin/python3
"""Scaling benchmark (issue 17): serial vs threading:N through gdal_translate.

SIZE x SIZE Float32 tiled inputs (the shared a/b/c.tif). Graphs: 5x5 and 31x31
gaussian Convolve of a.tif, and the heavy Calc of bench_calc.py for contrast.
Each is rendered with gdal_translate to an uncompressed tiled GeoTIFF with
GDAL_CACHEMAX unset (GDAL's default, 5% of RAM) and/or set (--cachemax).
Runs are interleaved (serial, threaded, serial, ...) so that load from other
processes hits both alike; the table gives the best wall time of --repeat runs
with the spread (max - best), the speed-up best/best, and, from the run's
getrusage, CPU (user + system) and system time and minor page faults, in all and per output tile (the
figure that shows memory being freshly mapped per tile).

"in pgp" is the wall time gdal_translate spent inside pgp's reads (the driver's
CPL_DEBUG=PGP line at close), "client" the rest of the run: start-up, writing the
GeoTIFF, flushing it. Threads only shorten the first, so the serial run's split
gives the bound "max" = serial / (client + in pgp / threads) on the speed-up
when nothing overlaps (prefetch lets the workers compute the next strip while
gdal_translate writes, which is how a run can beat it).

--reference DIR also runs every case with the plugin built in DIR (e.g. a
build of main), interleaved with this build's runs, rows labelled "ref".
--wait-idle P starts each run only once the machine's CPUs were at least P%
idle over half a second (waiting up to 20 s), for shared machines.

Usage: bench/bench_scaling.py [--size 4096] [--threads 2] [--repeat 5]
       [--cachemax default,64] [--graphs conv5,conv31,calc] [--reference DIR] [--wait-idle 90]
"""
import os
import re
import time

import common  # first: it sets GDAL_DRIVER_PATH
from common import bench_parser, make_inputs, measured, plugin_env
from bench_convolve import gaussian, write_kernel

HEAVY = "sqrt(A*A+B*B)+log(1+abs(C))"
BLOCK = 256


def write_graphs(work):
    graphs = {}
    for size in (5, 31):
        write_kernel(os.path.join(work, f"k{size}.tif"), gaussian(size))
        graphs[f"conv{size}"] = (
            f'<PGPDataset><Source name="s" file="a.tif"/><Convolve name="c" input="s" '
            f'kernel="k{size}.tif" dataType="Float32" noData="-1e30"/><Band ref="c"/>'
            '</PGPDataset>')
    graphs["calc"] = (
        '<PGPDataset><Source name="A" file="a.tif"/><Source name="B" file="b.tif"/>'
        f'<Source name="C" file="c.tif"/><Calc name="out" dataType="Float32"><Expression>'
        f'{HEAVY}</Expression></Calc><Band ref="out"/></PGPDataset>')
    return common.write_graphs(work, "scaling", graphs)


def cpu_times():
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return values[3] + values[4], sum(values)  # idle + iowait, all


def wait_idle(percent, patience=20.0):
    """Returns once the CPUs were percent idle over 0.5 s, or after patience seconds."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        idle0, all0 = cpu_times()
        time.sleep(0.5)
        idle1, all1 = cpu_times()
        if 100 * (idle1 - idle0) >= percent * max(all1 - all0, 1):
            return


def run_once(graph, out, env):
    """common.measured of one gdal_translate, with the seconds spent in pgp's reads
    (None from a build without the debug line) in place of its standard error."""
    if os.path.exists(out):  # not timed: deleting the last output is not rendering
        os.unlink(out)
    *result, stderr = measured(["gdal_translate", "-q", "-co", "TILED=YES", graph, out],
                               dict(env, CPL_DEBUG="PGP"), keep_stderr=True)
    found = re.findall(r"reads took ([0-9.]+) s", stderr)
    return (*result, float(found[-1]) if found else None)


def main():
    parser = bench_parser()
    parser.set_defaults(size=4096, repeat=5, work="/tmp/pgp-bench-scaling")
    parser.add_argument("--cachemax", default="default,64",
                        help="GDAL_CACHEMAX values (MB, or default: unset), comma-separated")
    parser.add_argument("--graphs", default="conv5,conv31,calc")
    parser.add_argument("--reference", help="a folder holding another build's gdal_PGP.so")
    parser.add_argument("--wait-idle", type=float, default=0,
                        help="start each run once the CPUs are this %% idle")
    options = parser.parse_args()
    work = f"{options.work}-{options.size}"  # make_inputs keeps inputs by name only
    os.makedirs(work, exist_ok=True)
    make_inputs(work, options.size)
    graphs = write_graphs(work)
    tiles = ((options.size + BLOCK - 1) // BLOCK) ** 2
    out = os.path.join(work, "out.tif")
    executors = ["serial", f"threading:{options.threads}"]
    plugins = [("", plugin_env()["GDAL_DRIVER_PATH"])]
    if options.reference:
        plugins.insert(0, ("ref ", options.reference))
    print(f"{options.size}x{options.size} Float32, {tiles} output tiles, {os.cpu_count()} CPUs, "
          f"best of {options.repeat} (spread = max - best)")
    print(f"{'graph':7} {'GDAL_CACHEMAX':13} {'executor':16} {'wall s':>7} {'spread':>7} "
          f"{'speed-up':>8} {'max':>6} {'in pgp':>6} {'client':>6} {'cpu s':>6} {'sys s':>6} "
          f"{'faults':>8} {'faults/tile':>11}")
    for cachemax in options.cachemax.split(","):
        env = dict(plugin_env())
        env.pop("GDAL_CACHEMAX", None)
        if cachemax != "default":
            env["GDAL_CACHEMAX"] = cachemax
        for name in options.graphs.split(","):
            runs = {(p, e): [] for p in plugins for e in executors}
            for _ in range(options.repeat):
                for plugin, executor in runs:
                    if options.wait_idle:
                        wait_idle(options.wait_idle)
                    runs[plugin, executor].append(run_once(
                        graphs[name], out,
                        dict(env, PGP_EXECUTOR=executor, GDAL_DRIVER_PATH=plugin[1])))
            for plugin, executor in runs:
                serial_best, _, _, _, serial_in_pgp = min(runs[plugin, "serial"])
                walls = [r[0] for r in runs[plugin, executor]]
                best, system, faults, cpu, in_pgp = min(runs[plugin, executor])  # the fastest run
                threads = 1 if executor == "serial" else options.threads
                bound = (f"{serial_best / (serial_best - serial_in_pgp + serial_in_pgp / threads):5.2f}x"
                         if serial_in_pgp is not None else f"{'-':>6}")
                split = (f"{in_pgp:6.3f} {best - in_pgp:6.3f}" if in_pgp is not None
                         else f"{'-':>6} {'-':>6}")
                print(f"{name:7} {cachemax:13} {plugin[0] + executor:16} {best:7.3f} "
                      f"{max(walls) - best:7.3f} {serial_best / best:7.2f}x {bound} {split} "
                      f"{cpu:6.2f} {system:6.2f} {faults:8d} {faults / tiles:11.1f}", flush=True)


if __name__ == "__main__":
    main()
