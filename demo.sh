#!/bin/sh
# Builds the PGP driver and renders the bundled demo graph with progress.
#   ./demo.sh            -> out/demo.tif, plus gdalinfo of the graph and its statistics,
#                           then the Python example (out/runoff*.tif)
set -eu
cd "$(dirname "$0")"
sh packaging/debian-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target gdal_PGP
export GDAL_DRIVER_PATH="$PWD/build"
/usr/bin/python3 samples/make_inputs.py samples/data
echo "== the driver"
gdalinfo --format PGP | head -n 12
echo "== the graph (nothing computed yet)"
gdalinfo samples/demo.pgp.vrt
mkdir -p out
echo "== rendering with PGP_EXECUTOR=threading:2"
PGP_EXECUTOR=threading:2 gdal_translate -ot Float32 -co TILED=YES samples/demo.pgp.vrt out/demo.tif
echo "== statistics, computed tile by tile in parallel"
PGP_EXECUTOR=threading:2 gdalinfo -stats -nomd samples/demo.pgp.vrt | grep -E 'Band|Minimum=|NoData'
echo "== statistics again: served from the sidecar, stamped with the graph's fingerprint"
grep -o '<PGPFingerprint>[0-9a-f]*</PGPFingerprint>' samples/demo.pgp.vrt.aux.xml
gdalinfo samples/demo.pgp.vrt | grep -E 'Min=.*Max='
echo "== a zoomed-out view: 120x90 pixels read from the overview level (no full-resolution tile)"
gdal_translate -q -ot Float32 -outsize 120 90 samples/demo.pgp.vrt out/demo_thumbnail.tif
gdalinfo out/demo_thumbnail.tif | grep 'Size is'
echo "== from Python: pygeoprocessing's calls with executor= (samples/python_example.py)"
PYTHONPATH=python /usr/bin/python3 samples/python_example.py samples/data out
echo "== the pgp command (/usr/bin/pgp from the .deb): info, then a render in two shares + assemble"
pgp() { PYTHONPATH=python /usr/bin/python3 -m pgp "$@"; }
pgp info samples/demo.pgp.vrt
pgp render -q samples/demo.pgp.vrt out/demo_share1.tif --tiles 1/2 --executor threading:2
pgp render -q samples/demo.pgp.vrt out/demo_share2.tif --tiles 2/2 --executor threading:2
pgp assemble -q out/demo_assembled.tif out/demo_share1.tif out/demo_share2.tif
pgp calc -A samples/data/dem.tif --calc "A * 0.3048" --nodata -1 out/dem_feet.pgp.vrt
echo "the assembled shares equal the one-shot render:" \
  "$(/usr/bin/python3 -c 'import sys, numpy; from osgeo import gdal
a, b = (gdal.Open(p).ReadAsArray() for p in sys.argv[1:]); print(numpy.array_equal(a, b))' \
  out/demo.tif out/demo_assembled.tif)"
echo "demo done: out/demo.tif, out/runoff*.tif, out/wet_highlands.tif, out/demo_assembled.tif"
