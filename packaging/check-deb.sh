#!/bin/sh
# Builds the pgp .deb from a configured build folder (cpack -G DEB), installs it
# with apt-get, checks that GDAL finds the plugin with no GDAL_DRIVER_PATH, that
# the installed sample renders, that /usr/bin/python3 imports the installed pgp
# package (and renders the sample with it) and that /usr/bin/pgp runs, then removes
# the package again: on success, on failure and on interruption alike, so the
# installed plugin never outlives the check.
#   packaging/check-deb.sh [BUILD_DIR]      (default: build)
# Needs root, or sudo without a password; otherwise it says so and skips (exit 0).
# Skips too when a pgp package is installed already (it would be replaced).
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
[ -f "$build/CPackConfig.cmake" ] || {
  echo "check-deb: $build is not a configured build folder (cmake -S . -B $build)" >&2
  exit 1
}

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "check-deb: SKIPPED: installing the .deb needs root or password-less sudo"
    exit 0
  fi
fi
installed() {  # unpacked, half-installed, installed, ...: anything dpkg must remove
  case "$(dpkg-query -W -f='${db:Status-Status}' pgp 2>/dev/null || true)" in
    "" | not-installed | config-files) return 1 ;;
  esac
}
if installed; then
  echo "check-deb: SKIPPED: a pgp package is installed already" \
    "($(dpkg-query -W -f='${Version}' pgp)); remove it (apt-get remove pgp) to run this check"
  exit 0
fi

cmake --build "$build" --target gdal_PGP >/dev/null
rm -f "$build"/pgp_*.deb
(cd "$build" && cpack -G DEB) >"$build/cpack-deb.log" 2>&1 || {
  cat "$build/cpack-deb.log" >&2
  echo "check-deb: FAILED: cpack -G DEB in $build" >&2
  exit 1
}
deb=$(ls "$build"/pgp_*_*.deb)
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
echo "check-deb: built $deb"
dpkg-deb -f "$deb" Package Version Depends

work=$(mktemp -d)
cleanup() {
  status=$?
  trap - EXIT INT TERM HUP
  if installed; then
    echo "check-deb: removing the pgp package"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get remove -y -o DPkg::Lock::Timeout=300 pgp \
      >/dev/null || $SUDO dpkg --remove pgp >/dev/null || status=1
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
  -o DPkg::Lock::Timeout=300 "$deb" >"$work/apt.log" 2>&1 || {
  cat "$work/apt.log" >&2
  echo "check-deb: FAILED: apt-get install $deb" >&2
  exit 1
}
plugin=/usr/lib/x86_64-linux-gnu/gdalplugins/gdal_PGP.so
dpkg -L pgp | grep -qx "$plugin" || {
  echo "check-deb: FAILED: the package does not hold $plugin" >&2
  exit 1
}

# postinst byte-compiled the package: the pgp command does not compile it each run.
for module in /usr/lib/python3/dist-packages/pgp/*.py; do
  name=$(basename "$module" .py)
  ls /usr/lib/python3/dist-packages/pgp/__pycache__/"$name".cpython-*.pyc >/dev/null 2>&1 || {
    echo "check-deb: FAILED: $module was not byte-compiled at install" >&2
    exit 1
  }
done

# The checks run with no GDAL_DRIVER_PATH / GDAL_SKIP: GDAL finds the plugin on its own.
clean_env() { env -u GDAL_DRIVER_PATH -u GDAL_SKIP -u GDAL_DATA "$@"; }
clean_env gdalinfo --format PGP >"$work/format.txt" 2>&1 || {
  cat "$work/format.txt" >&2
  echo "check-deb: FAILED: gdalinfo --format PGP without GDAL_DRIVER_PATH" >&2
  exit 1
}
head -n 3 "$work/format.txt"

# The installed sample graph, on inputs its generator writes, through gdal_translate.
cp /usr/share/pgp/samples/demo.pgp.vrt "$work/"
clean_env /usr/bin/python3 /usr/share/pgp/samples/make_inputs.py "$work/data" 96 64 >/dev/null
clean_env gdal_translate -q -ot Float32 "$work/demo.pgp.vrt" "$work/demo.tif"
clean_env gdalinfo "$work/demo.tif" | grep -q 'Size is 96, 64' || {
  echo "check-deb: FAILED: gdal_translate of the installed sample" >&2
  exit 1
}
# The Python package, for /usr/bin/python3 with no PYTHONPATH, from a folder outside
# the source tree: the installed copy is imported, and it renders the sample.
(cd "$work" && clean_env env -u PYTHONPATH -u PGP_PLUGIN /usr/bin/python3 -c '
import pgp, sys
assert pgp.__file__.startswith("/usr/lib/python3/dist-packages/pgp/"), pgp.__file__
pgp.render("demo.pgp.vrt", "demo_python.tif", executor="threading:2")
from osgeo import gdal
ds = gdal.Open("demo_python.tif")
assert (ds.RasterXSize, ds.RasterYSize) == (96, 64)
print("check-deb: import pgp:", pgp.__file__)
') || {
  echo "check-deb: FAILED: import pgp with the installed package" >&2
  exit 1
}
# The pgp command in /usr/bin: info and render of the sample, a one-line error.
(cd "$work" && clean_env env -u PYTHONPATH -u PGP_PLUGIN sh -c '
[ "$(command -v pgp)" = /usr/bin/pgp ] &&
pgp info demo.pgp.vrt | grep -q "Calc     runoff" &&
pgp render -q demo.pgp.vrt demo_cli.tif --executor threading:2 &&
gdalinfo demo_cli.tif | grep -q "Size is 96, 64" &&
! pgp render demo.pgp.vrt x.tif --bogus 2>err.txt && [ "$(wc -l <err.txt)" = 1 ]
') || {
  echo "check-deb: FAILED: the pgp command (/usr/bin/pgp)" >&2
  exit 1
}
[ -f /usr/share/doc/pgp/README.md ] || {
  echo "check-deb: FAILED: /usr/share/doc/pgp/README.md is missing" >&2
  exit 1
}
# README's links lead into docs/: the package must hold every page of it.
for page in docs/*.md; do
  [ -f "/usr/share/doc/pgp/$page" ] || {
    echo "check-deb: FAILED: /usr/share/doc/pgp/$page is missing" >&2
    exit 1
  }
done
# Removal leaves nothing of the package behind, its bytecode included.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get remove -y -o DPkg::Lock::Timeout=300 pgp \
  >"$work/remove.log" 2>&1 || {
  cat "$work/remove.log" >&2
  echo "check-deb: FAILED: apt-get remove pgp" >&2
  exit 1
}
[ ! -e /usr/lib/python3/dist-packages/pgp ] && [ ! -e "$plugin" ] || {
  echo "check-deb: FAILED: removing pgp left files behind:" \
    "$(ls -R /usr/lib/python3/dist-packages/pgp "$plugin" 2>/dev/null | head -5)" >&2
  exit 1
}
echo "check-deb: OK: $(basename "$deb") installs (its Python package byte-compiled), GDAL" \
  "loads PGP from $plugin, the sample renders, import pgp and /usr/bin/pgp work, and it" \
  "removes cleanly"
