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
echo "demo done: out/demo.tif, out/runoff*.tif, out/wet_highlands.tif"
