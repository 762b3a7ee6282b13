#!/usr/bin/python3
"""Peak memory of a small window of a huge graph (issue 19, item 5).

gdal_translate -srcwin of a 512 x 512 window of a 100 000 x 100 000 graph, against
gdal_translate of the same window of the plain source: peak RSS of the
gdal_translate process as /usr/bin/time reports it (its own wait4 rusage of a child
forked from a small process, so no parent's peak is carried in, unlike ru_maxrss of
a child forked from this Python process; see bench_zonal.py). Graphs: Calc ->
Convolve and Align -> Calc -> Convolve (bilinear onto the source's own grid),
5 x 5 kernel, 256 x 256 tiles, over two sources: a VRT without sources (GDAL
serves zeros) and a sparse tiled GeoTIFF (no pixel stored; libtiff holds its tile
index per handle, and pgp opens one handle per worker). Three windows: a corner,
the middle, the far corner. Medians of --repeat runs, interleaved.

Usage: bench/bench_memory.py [--threads 2] [--repeat 5] [--work /tmp/pgp-bench]
"""
import os
import re
import statistics
import subprocess

from common import bench_parser, plugin_env  # first: it sets GDAL_DRIVER_PATH

from osgeo import gdal  # noqa: E402

SIZE = 100_000
WINDOWS = [(0, 0), (50_000, 70_001), (99_488, 99_488)]
KERNEL = "1 1 1 1 1 1 2 2 2 1 1 2 4 2 1 1 2 2 2 1 1 1 1 1 1"
CALC_CONVOLVE = """<Calc name="c" dataType="Float32"><Expression>A * 2 + 1</Expression></Calc>
<Convolve name="k" input="c" dataType="Float32" noData="-1">
<Kernel rows="5" cols="5">{kernel}</Kernel></Convolve><Band ref="k"/>"""
ALIGN = """<Align pixelSize="30,-30"><Input ref="A" resampling="bilinear"/></Align>"""


def sources(work):
    """{name: path} of the two 100 000^2 sources (made once)."""
    vrt = os.path.join(work, "huge-zeros.vrt")
    with open(vrt, "w") as f:
        f.write(f'<VRTDataset rasterXSize="{SIZE}" rasterYSize="{SIZE}"><SRS>EPSG:32618</SRS>'
                '<GeoTransform>400000, 30, 0, 4000000, 0, -30</GeoTransform>'
                '<VRTRasterBand dataType="Float32" band="1"/></VRTDataset>')
    tif = os.path.join(work, "huge-sparse.tif")
    if not os.path.exists(tif):
        ds = gdal.GetDriverByName("GTiff").Create(
            tif, SIZE, SIZE, 1, gdal.GDT_Float32,
            ["TILED=YES", "SPARSE_OK=TRUE", "BIGTIFF=YES"])
        ds.SetGeoTransform((400000, 30, 0, 4000000, 0, -30))
        ds.SetProjection("EPSG:32618")
        ds = None
    return {"VRT of zeros": vrt, "sparse GeoTIFF": tif}


def graph(work, source, aligned):
    path = os.path.join(work, f"huge-{'acc' if aligned else 'cc'}-"
                              f"{os.path.basename(source).split('.')[0]}.pgp.vrt")
    with open(path, "w") as f:
        f.write(f'<PGPDataset blockXSize="256" blockYSize="256">'
                f'<Source name="A" file="{source}"/>{ALIGN if aligned else ""}'
                f'{CALC_CONVOLVE.format(kernel=KERNEL)}</PGPDataset>')
    return path


def peak_mb(path, window, env, out):
    result = subprocess.run(["/usr/bin/time", "-v", "gdal_translate", "-q", "-srcwin",
                             str(window[0]), str(window[1]), "512", "512", path, out],
                            env=env, capture_output=True, text=True, check=True)
    kb = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1)
    return int(kb) / 1024


def main():
    parser = bench_parser()
    parser.set_defaults(repeat=5)
    options = parser.parse_args()
    os.makedirs(options.work, exist_ok=True)
    env = plugin_env()
    env["PGP_EXECUTOR"] = f"threading:{options.threads}"
    out = os.path.join(options.work, "huge-window.tif")
    print(f"512x512 windows of {SIZE}^2, threading:{options.threads}, gdal_translate peak RSS, "
          f"medians of {options.repeat}: MB, and MB above the plain source")
    for source_name, source in sources(options.work).items():
        runs = {"plain": source, "Calc->Convolve": graph(options.work, source, False),
                "Align->Calc->Convolve": graph(options.work, source, True)}
        for window in WINDOWS:
            peaks = {name: [] for name in runs}
            for _ in range(options.repeat):
                for name, path in runs.items():
                    peaks[name].append(peak_mb(path, window, env, out))
            plain = statistics.median(peaks["plain"])
            line = f"{source_name:<15} {str(window):<16} plain {plain:5.1f}"
            for name in list(runs)[1:]:
                median = statistics.median(peaks[name])
                line += f"   {name} {median:5.1f} (+{median - plain:4.1f}, max +" \
                        f"{max(peaks[name]) - plain:4.1f})"
            print(line)


if __name__ == "__main__":
    main()
