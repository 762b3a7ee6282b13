#!/bin/sh
# Installs the Debian 12 packages pgp builds, tests and benchmarks with
# (python3-distributed: the Dask executor tests of tests/python; clang, libclang-rt-14-dev
# and llvm-14, for its symbolizer: the libFuzzer targets
# of tests/fuzz; python3-qgis and qgis-providers for tests/qgis; dpkg-dev for the .deb's
# dpkg-shlibdeps).
# Does nothing when they are all present; otherwise needs root (or sudo).
set -eu
PACKAGES="cmake make g++ libgdal-dev gdal-bin python3-gdal python3-numpy python3-scipy python3-distributed \
python3-pytest python3-rasterio libgtest-dev libfftw3-dev libsleef-dev pkg-config clang libclang-rt-14-dev \
llvm-14 python3-qgis qgis-providers dpkg-dev"
missing=""
for p in $PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
