"""Finds and registers the PGP GDAL plugin without GDAL_DRIVER_PATH.

GDAL registers plugins once, when osgeo loads, from GDAL_DRIVER_PATH or its own
plugin folder. Setting GDAL_DRIVER_PATH here would be too late when the caller
imported osgeo first, and would hide GDAL's own plugin folder, so the plugin is
loaded with ctypes and its registration function called directly (it is a no-op
when the driver is registered already).
"""
import ctypes
import os
import sys
import sysconfig

from osgeo import gdal

PLUGIN_NAME = "gdal_PGP.so"
# GDALProgressFunc, for the C entry points that report progress.
PROGRESS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_double, ctypes.c_char_p, ctypes.c_void_p)


def progress_callback(progress, cancelled):
    """A GDALProgressFunc (keep it referenced while C may call it) calling
    progress(fraction), a pgp._engine.Progress: the Cancelled it raises is appended to
    the list cancelled and tells the C side to stop."""
    from ._engine import Cancelled

    def report(fraction, _message, _data):
        try:
            progress(fraction)
        except Cancelled as error:
            cancelled.append(error)
            return 0
        return 1
    return PROGRESS(report)


def candidate_paths():
    """Where the plugin may be, in order: PGP_PLUGIN (a file), the build folder
    beside the package (a source checkout: python/../build), Debian's plugin folder."""
    paths = []
    explicit = os.environ.get("PGP_PLUGIN")
    if explicit:
        paths.append(explicit)
    package_dir = os.path.dirname(os.path.abspath(__file__))
    paths.append(os.path.join(os.path.dirname(os.path.dirname(package_dir)), "build",
                              PLUGIN_NAME))
    multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    paths.append(os.path.join("/usr/lib", multiarch, "gdalplugins", PLUGIN_NAME))
    return paths


def ensure_registered():
    """Registers the PGP driver if GDAL has not; returns the driver."""
    driver = gdal.GetDriverByName("PGP")
    if driver is not None:
        return driver
    tried = []
    for path in candidate_paths():
        if not os.path.isfile(path):
            tried.append(f"{path} (missing)")
            continue
        try:
            ctypes.CDLL(path).GDALRegister_PGP()
        except (OSError, AttributeError) as error:
            tried.append(f"{path} ({error})")
            continue
        driver = gdal.GetDriverByName("PGP")
        if driver is not None:
            return driver
        tried.append(f"{path} (loaded, but registered no PGP driver)")
    raise ImportError(f"pgp on {where()}: the GDAL plugin gdal_PGP.so was not found; "
                      "build it (cmake --build build) or install the pgp .deb. Tried: " +
                      "; ".join(tried))


def where():
    """This process for error messages: the Dask worker's address when in one, and
    the host (gethostname's name, without importing socket)."""
    host = os.uname().nodename
    if "distributed" in sys.modules:  # never imported just to ask
        try:
            return f"dask worker {sys.modules['distributed'].get_worker().address} " \
                f"(host {host})"
        except ValueError:  # not in a worker
            pass
    return f"host {host} (process {os.getpid()})"


_LIBRARY = []  # the loaded plugin, once found


def library():
    """The loaded plugin as a ctypes library, for its exported C entry points
    (pgp/zonal.h): the gdal_PGP.so this process mapped (GDAL's or ours). Found
    once: a plugin file rebuilt or upgraded since shows as "(deleted)" in the maps,
    and dlopen of its path still returns the mapped copy GDAL uses."""
    if _LIBRARY:
        return _LIBRARY[0]
    ensure_registered()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split(None, 5)[-1].strip()
            if path.endswith(" (deleted)"):
                path = path[:-len(" (deleted)")]
            if os.path.basename(path) == PLUGIN_NAME:
                _LIBRARY.append(ctypes.CDLL(path))
                return _LIBRARY[0]
    raise ImportError("pgp: the PGP driver is registered but no gdal_PGP.so is mapped")
