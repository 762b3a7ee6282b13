#!/usr/bin/python3
"""Zonal statistics: pgp.zonal_statistics (C core) against a straightforward
implementation (gdal.RasterizeLayer of the FIDs over the whole raster, then numpy
bincount per FID), in the same run; and reproject_vector, multiprocessing vs serial.

Cases (--size S, default 8192: an S x S Float32 raster):
  a  100 large polygons            (serial and threading:N against the reference)
  b  50 000 small polygons         (serial against the reference)
  c  5 000 overlapping buffers     (serial and threading:N)
  d  20 polygons over a 100 000^2 graph (time and peak RSS, in a child process)
  r  reproject_vector of 200 000 polygons (--reproject-features), multiprocessing:N vs serial
"""
import os
import subprocess
import sys
import time

from common import REPO, bench_parser, make_inputs

sys.path.insert(0, os.path.join(REPO, "python"))
import numpy as np  # noqa: E402
from osgeo import gdal, ogr, osr  # noqa: E402

import pgp  # noqa: E402

PIXEL = 30.0


def layer_of_circles(path, centres, radii, srs, segments=8):
    if os.path.exists(path):
        return path
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    layer = ds.CreateLayer("zones", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("zone", ogr.OFTInteger))  # = FID, for the reference
    layer.StartTransaction()
    for i, ((x, y), r) in enumerate(zip(centres, radii)):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetFID(i + 1)
        feature.SetField("zone", i + 1)
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({x} {y})").Buffer(r, segments))
        layer.CreateFeature(feature)
    layer.CommitTransaction()
    return path


def reference(raster_path, vector_path):
    """Rasterise every FID (later wins) on the whole raster, then per-FID sums."""
    ds = gdal.Open(raster_path)
    band = ds.GetRasterBand(1)
    mem = gdal.GetDriverByName("MEM").Create("", ds.RasterXSize, ds.RasterYSize, 1,
                                             gdal.GDT_UInt32)
    mem.SetGeoTransform(ds.GetGeoTransform())
    mem.SetProjection(ds.GetProjection())
    vector = gdal.OpenEx(vector_path, gdal.OF_VECTOR)
    layer = vector.GetLayer(0)
    gdal.RasterizeLayer(mem, [1], layer, options=["ATTRIBUTE=zone"])
    fids = mem.ReadAsArray().ravel()
    values = band.ReadAsArray().ravel().astype(np.float64)
    counts = np.bincount(fids)
    sums = np.bincount(fids, weights=values)
    return {fid: (int(counts[fid]), sums[fid]) for fid in range(1, counts.size)}


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def peak_rss_mb():
    """This process's own peak RSS (VmHWM): ru_maxrss carries the parent's peak
    across fork and exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def huge_graph_child(work, threads):
    """Case d in a fresh process, so its peak RSS is its own."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    size = 100_000
    source = os.path.join(work, "tile.tif")
    if not os.path.exists(source):
        ds = gdal.GetDriverByName("GTiff").Create(source, 256, 256, 1, gdal.GDT_Float32,
                                                  ["TILED=YES"])
        ds.SetGeoTransform((0, PIXEL, 0, 256 * PIXEL, 0, -PIXEL))
        ds.SetProjection(srs.ExportToWkt())
        ds.GetRasterBand(1).Fill(1.5)
        ds = None
    # A 100 000^2 grid: <Align> of the small tile onto a huge union box.
    graph = os.path.join(work, "huge.pgp.vrt")
    with open(graph, "w") as f:
        f.write(f"""<PGPDataset blockXSize="256" blockYSize="256">
<Source name="s" file="{source}" noData="-1"/>
<Align boundingBox="0,0,{size * PIXEL},{size * PIXEL}" pixelSize="{PIXEL},{-PIXEL}">
  <Input ref="s" resampling="near"/></Align>
<Calc name="c" dataType="Float32" noData="-1"><Expression>s * 2</Expression></Calc>
<Band ref="c"/></PGPDataset>""")
    rng = np.random.default_rng(4)
    centres = rng.uniform(0, size * PIXEL, (20, 2))
    vector = layer_of_circles(os.path.join(work, "d.gpkg"), centres, [50 * PIXEL] * 20, srs)
    seconds, stats = timed(pgp.zonal_statistics, (graph, 1), vector,
                           executor=f"threading:{threads}")
    peak_mb = peak_rss_mb()
    print(f"d  20 polygons over a {size}^2 graph: {seconds:.2f} s, peak RSS {peak_mb:.0f} MB, "
          f"{sum(s['count'] for s in stats.values())} pixels summarised")


def main():
    parser = bench_parser(repeat=False)
    parser.add_argument("--reproject-features", type=int, default=200_000)
    parser.add_argument("--huge-graph-child", action="store_true", help=argparse_hidden())
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    if args.huge_graph_child:
        huge_graph_child(args.work, args.threads)
        return
    size, threads = args.size, args.threads
    raster = make_inputs(args.work, size)[0]
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    ds = gdal.Open(raster, gdal.GA_Update)
    ds.SetProjection(srs.ExportToWkt())
    ds = None
    extent = size * PIXEL
    rng = np.random.default_rng(3)
    work = args.work
    cases = {
        "a": layer_of_circles(os.path.join(work, f"a{size}.gpkg"),
                              rng.uniform(0.1 * extent, 0.9 * extent, (100, 2)),
                              [0.05 * extent] * 100, srs, 32),
        "b": layer_of_circles(os.path.join(work, f"b{size}.gpkg"),
                              rng.uniform(0, extent, (50_000, 2)),
                              rng.uniform(1, 4, 50_000) * PIXEL, srs),
        "c": layer_of_circles(os.path.join(work, f"c{size}.gpkg"),
                              rng.uniform(0, extent, (5_000, 2)),
                              rng.uniform(10, 60, 5_000) * PIXEL, srs),
    }
    for name, vector in cases.items():
        serial, result = timed(pgp.zonal_statistics, (raster, 1), vector)
        threaded, result_threads = timed(pgp.zonal_statistics, (raster, 1), vector,
                                         executor=f"threading:{threads}")
        assert repr(result) == repr(result_threads)
        line = (f"{name}  {len(result)} polygons: serial {serial:.2f} s, threading:{threads} "
                f"{threaded:.2f} s ({serial / threaded:.2f}x)")
        if name in "ab":
            seconds, naive = timed(reference, raster, vector)
            line += f"; rasterize+numpy {seconds:.2f} s ({seconds / serial:.1f}x slower than serial)"
            if name == "b":  # non-overlapping enough to compare counts where they agree
                agree = sum(naive.get(fid, (0,))[0] == s["count"] for fid, s in result.items())
                line += f", counts agree on {agree}/{len(result)} (overlaps: later wins there)"
        print(line, flush=True)

    subprocess.run([sys.executable, __file__, "--huge-graph-child", "--work", work,
                    "--threads", str(threads)], check=True)

    n = args.reproject_features
    vector = layer_of_circles(os.path.join(work, f"r{n}.gpkg"),
                              rng.uniform(0, extent, (n, 2)), [2 * PIXEL] * n, srs, 4)
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    out = os.path.join(work, "reprojected.gpkg")
    serial, _ = timed(pgp.reproject_vector, vector, wgs84.ExportToWkt(), out,
                      driver_name="GPKG")
    parallel, _ = timed(pgp.reproject_vector, vector, wgs84.ExportToWkt(), out,
                        driver_name="GPKG", executor=f"multiprocessing:{threads}")
    print(f"r  reproject_vector of {n} polygons: serial {serial:.2f} s, multiprocessing:{threads} "
          f"{parallel:.2f} s ({serial / parallel:.2f}x)")


def argparse_hidden():
    import argparse
    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
