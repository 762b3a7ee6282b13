#!/usr/bin/python3
"""Time to the first zoomed-out view (issue 8): a QGIS-style 1024 x 768
downsampled read of the whole extent of a graph over two 40000 x 30000 sources
that have overviews (gdaladdo), for

  * pgp with its overviews (the graph evaluated on the coarse grid),
  * pgp with OVERVIEWS=NO (GDAL samples full-resolution blocks),
  * GDAL's VRT with the built-in `sum` pixel function over the same sources.

Each read runs in a fresh process (cold caches of pgp and GDAL; the OS page
cache stays warm after the first run), so the figure is what a user waits for
after adding the layer. The inputs are kept in --work between runs.

    /usr/bin/python3 bench/bench_overview.py [--cols 40000 --rows 30000]
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import bench_parser, plugin_env  # noqa: E402  (sets GDAL_DRIVER_PATH first)

import numpy as np  # noqa: E402
from osgeo import gdal  # noqa: E402

VIEW = (1024, 768)
READ = """
import sys, time
from osgeo import gdal
gdal.UseExceptions()
start = time.perf_counter()
ds = gdal.OpenEx(sys.argv[1], open_options=sys.argv[2:])
view = ds.GetRasterBand(1).ReadAsArray(buf_xsize={w}, buf_ysize={h})
print(time.perf_counter() - start, float(view.mean()),
      ds.GetMetadataItem("TILES_COMPUTED", "PGP"))
""".format(w=VIEW[0], h=VIEW[1])


def make_source(path, cols, rows, seed):
    """A smooth Int16 field in 256 x 256 tiles, with gdaladdo's average overviews."""
    if os.path.exists(path):
        return
    ds = gdal.GetDriverByName("GTiff").Create(
        path + ".part", cols, rows, 1, gdal.GDT_Int16,
        ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=YES"])
    ds.SetGeoTransform((300000, 30, 0, 5000000, 0, -30))
    band = ds.GetRasterBand(1)
    x = np.arange(cols) / 900.0 + seed
    for y in range(0, rows, 1024):
        n = min(1024, rows - y)
        ys = (np.arange(y, y + n) / 700.0)[:, None]
        band.WriteArray((1000 * np.sin(x[None, :] + ys) * np.cos(ys * 0.3 + seed)).astype(
            np.int16), 0, y)
    ds = None
    subprocess.run(["gdaladdo", "-q", "-r", "average", "--config", "COMPRESS_OVERVIEW", "NONE",
                    path + ".part"], check=True)
    os.rename(path + ".part", path)
    if os.path.exists(path + ".part.ovr"):
        os.rename(path + ".part.ovr", path + ".ovr")


def write_graphs(work, cols, rows):
    pgp = os.path.join(work, "sum.pgp.vrt")
    with open(pgp, "w") as f:
        f.write("""<PGPDataset blockXSize="256" blockYSize="256">
  <Source name="A" file="a.tif"/><Source name="B" file="b.tif"/>
  <Calc name="s" dataType="Float32"><Expression>A + B</Expression></Calc>
  <Band ref="s"/>
</PGPDataset>
""")
    vrt = os.path.join(work, "sum.vrt")
    sources = "".join(f"""
    <SimpleSource><SourceFilename relativeToVRT="1">{name}</SourceFilename>
      <SourceBand>1</SourceBand></SimpleSource>""" for name in ("a.tif", "b.tif"))
    with open(vrt, "w") as f:
        f.write(f"""<VRTDataset rasterXSize="{cols}" rasterYSize="{rows}">
  <GeoTransform>300000, 30, 0, 5000000, 0, -30</GeoTransform>
  <VRTRasterBand dataType="Float32" band="1" subClass="VRTDerivedRasterBand">
    <PixelFunctionType>sum</PixelFunctionType>{sources}
  </VRTRasterBand>
</VRTDataset>
""")
    return pgp, vrt


def first_view(path, options, env):
    out = subprocess.run(["/usr/bin/python3", "-c", READ, path, *options], env=env,
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]), out[2]


def main():
    parser = bench_parser()
    parser.add_argument("--cols", type=int, default=40000)
    parser.add_argument("--rows", type=int, default=30000)
    args = parser.parse_args()
    work = os.path.join(args.work, f"overview-{args.cols}x{args.rows}")
    os.makedirs(work, exist_ok=True)
    for seed, name in enumerate(("a.tif", "b.tif")):
        make_source(os.path.join(work, name), args.cols, args.rows, seed)
    pgp, vrt = write_graphs(work, args.cols, args.rows)
    env = plugin_env()
    cases = [
        ("pgp overviews, serial", pgp, ["EXECUTOR=serial"]),
        (f"pgp overviews, threading:{args.threads}", pgp, [f"EXECUTOR=threading:{args.threads}"]),
        ("GDAL VRT pixel function sum", vrt, []),
        ("pgp OVERVIEWS=NO, serial", pgp, ["EXECUTOR=serial", "OVERVIEWS=NO"]),
        (f"pgp OVERVIEWS=NO, threading:{args.threads}", pgp,
         [f"EXECUTOR=threading:{args.threads}", "OVERVIEWS=NO"]),
    ]
    print(f"first {VIEW[0]}x{VIEW[1]} view of {args.cols}x{args.rows}, best of {args.repeat}")
    results = {}
    for label, path, options in cases:
        runs = [first_view(path, options, env) for _ in range(args.repeat)]
        seconds = min(r[0] for r in runs)
        results[label] = seconds
        print(f"  {label:38s} {seconds:8.3f} s  (mean {runs[0][1]:.3f}, "
              f"full-resolution tiles {runs[0][2]})", flush=True)
    reference = results["GDAL VRT pixel function sum"]
    for label, seconds in results.items():
        print(f"  {label:38s} {reference / seconds:9.3g}x the VRT's speed")


if __name__ == "__main__":
    main()
