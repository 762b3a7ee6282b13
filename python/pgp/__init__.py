"""pgp: pygeoprocessing's raster calls with ``executor=``, computed by the PGP GDAL
plugin where they are expressions, convolutions, alignments or stitches.

``import pgp as pygeoprocessing`` keeps a script working; each call gains the
keyword-only ``executor=`` (None, 'serial', 'threading[:N]', 'multiprocessing[:N]',
any ``concurrent.futures.Executor``, a dask ``distributed.Client``) and
``progress=``. See docs/python.md.

Importing pgp registers the plugin and nothing more: the public names and the
submodules are imported when first used (PEP 562), so ``pgp render`` starts without
numpy or the calls it does not run.
"""
import importlib

from . import _plugin

_plugin.ensure_registered()

__version__ = "0.1.0"
# Each public name and the module that defines it.
_EXPORTS = {
    "Cancelled": "_engine", "array_equals_nodata": "_engine",
    "DEFAULT_CREATION_OPTIONS": "_gdal", "DEFAULT_GTIFF_CREATION_TUPLE_OPTIONS": "_gdal",
    "get_raster_info": "_gdal",
    "choose_dtype": "calls", "choose_nodata": "calls", "raster_calculator": "calls",
    "raster_map": "calls", "raster_reduce": "calls",
    "ClusterExecutor": "distributed",
    "ACCEPTED_FORMS": "executors",
    "Graph": "graph", "render": "graph",
    "align_and_resize_raster_stack": "graphcalls", "convolve_2d": "graphcalls",
    "stitch_rasters": "stitch",
    "evaluate_raster_calculator_expression": "symbolic",
    "reproject_vector": "zonal", "zonal_statistics": "zonal",
}
_SUBMODULES = ("calls", "cli", "distributed", "executors", "graph", "graphcalls",
               "stitch", "symbolic", "zonal")
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    """A public name or a submodule, imported on first use (then a plain attribute)."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
