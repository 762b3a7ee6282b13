#!/usr/bin/python3
"""Block-by-block reads (issue 19, item 4): serial against threading:N.

Two graphs over SIZE x SIZE Float32 inputs (256 x 256 tiles): the heavy Calc
sqrt(A*A+B*B)+log(1+abs(C)) and a 5x5 Convolve of A. For each, a Python loop reads
every block in row-major order (band.ReadBlock, then band.ReadRaster of the block's
window: what QGIS's identify and most GDAL clients do), on a fresh dataset per run
with the default PREFETCH; and a headless QGIS render of the layer (QgsMapSettings
at the raster's own size: QGIS reads it in windows of up to 2000 x 2000 pixels), in
a child process per run, timing the render job only. Runs are interleaved (serial,
threaded, serial, ...); medians of --repeat runs and their ratio are printed.
--wait-idle P starts each run once the CPUs were P% idle (bench_scaling.py's gate).

Usage: bench/bench_blocks.py [--size 4096] [--threads 2] [--repeat 5] [--no-qgis]
       [--wait-idle 90]
"""
import os
import statistics
import subprocess
import sys
import time

from common import bench_parser, make_inputs, plugin_env  # first: it sets GDAL_DRIVER_PATH
from bench_scaling import wait_idle

from osgeo import gdal  # noqa: E402

GRAPHS = {
    "heavy Calc": """<PGPDataset><Source name="A" file="a.tif"/><Source name="B" file="b.tif"/>
<Source name="C" file="c.tif"/><Calc name="f" dataType="Float32">
<Expression>sqrt(A*A+B*B)+log(1+abs(C))</Expression></Calc><Band ref="f"/></PGPDataset>""",
    "5x5 Convolve": """<PGPDataset><Source name="A" file="a.tif"/>
<Convolve name="k" input="A" dataType="Float32" noData="-9999"><Kernel rows="5" cols="5">
1 1 1 1 1 1 2 2 2 1 1 2 4 2 1 1 2 2 2 1 1 1 1 1 1</Kernel></Convolve>
<Band ref="k"/></PGPDataset>""",
}


def read_blocks(path, executor, how):
    """Seconds to read every block of band 1 in row-major order."""
    ds = gdal.OpenEx(path, open_options=[f"EXECUTOR={executor}"])
    band = ds.GetRasterBand(1)
    bw, bh = band.GetBlockSize()
    start = time.perf_counter()
    for by in range((band.YSize + bh - 1) // bh):
        for bx in range((band.XSize + bw - 1) // bw):
            if how == "ReadBlock":
                band.ReadBlock(bx, by)
            else:
                x, y = bx * bw, by * bh
                band.ReadRaster(x, y, min(bw, band.XSize - x), min(bh, band.YSize - y))
    return time.perf_counter() - start


QGIS_CHILD = r"""
import os, sys, tempfile, time
scratch = tempfile.mkdtemp(prefix="pgp-bench-qgis-")
os.environ["XDG_RUNTIME_DIR"] = scratch
os.environ["QGIS_CUSTOM_CONFIG_PATH"] = scratch
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from qgis.core import (QgsApplication, QgsMapRendererSequentialJob, QgsMapSettings,
                       QgsProject, QgsRasterLayer)
from qgis.PyQt.QtCore import QSize
app = QgsApplication([], False)
QgsApplication.setPrefixPath("/usr", True)
QgsApplication.initQgis()
layer = QgsRasterLayer(sys.argv[1], "graph", "gdal")
assert layer.isValid(), layer.error().summary()
QgsProject.instance().addMapLayer(layer, False)
settings = QgsMapSettings()
settings.setLayers([layer])
settings.setDestinationCrs(layer.crs())
settings.setExtent(layer.extent())
settings.setOutputSize(QSize(layer.width(), layer.height()))
start = time.perf_counter()
job = QgsMapRendererSequentialJob(settings)
job.start()
job.waitForFinished()
print(time.perf_counter() - start)
assert not job.errors(), [e.message for e in job.errors()]
QgsProject.instance().removeAllMapLayers()
QgsApplication.exitQgis()
"""


def qgis_render(path, executor):
    """Seconds QGIS takes to render the layer at full resolution (child process)."""
    env = plugin_env()
    env["PGP_EXECUTOR"] = executor
    out = subprocess.run(["/usr/bin/python3", "-c", QGIS_CHILD, path], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def compare(name, run, executors, options):
    seconds = {executor: [] for executor in executors}
    for _ in range(options.repeat):
        for executor in executors:
            if options.wait_idle:
                wait_idle(options.wait_idle)
            seconds[executor].append(run(executor))
    medians = [statistics.median(seconds[executor]) for executor in executors]
    print(f"{name:<34} serial {medians[0]:6.3f} s   {executors[1]} {medians[1]:6.3f} s   "
          f"{medians[0] / medians[1]:4.2f}x")


def main():
    parser = bench_parser()
    parser.set_defaults(size=4096, repeat=5)
    parser.add_argument("--no-qgis", action="store_true")
    parser.add_argument("--wait-idle", type=float, default=0)
    options = parser.parse_args()
    os.makedirs(options.work, exist_ok=True)
    make_inputs(options.work, options.size)
    executors = ["serial", f"threading:{options.threads}"]
    print(f"{options.size}x{options.size}, medians of {options.repeat} interleaved runs, "
          f"load {os.getloadavg()[0]:.1f}")
    for name, text in GRAPHS.items():
        path = os.path.join(options.work, f"blocks-{name.split()[1].lower()}.pgp.vrt")
        with open(path, "w") as f:
            f.write(text)
        for how in ("ReadBlock", "ReadRaster"):
            compare(f"{name}, {how} per block", lambda ex: read_blocks(path, ex, how),
                    executors, options)
        if not options.no_qgis:
            compare(f"{name}, QGIS render", lambda ex: qgis_render(path, ex), executors,
                    options)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
