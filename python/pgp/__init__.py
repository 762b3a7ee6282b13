"""pgp: pygeoprocessing's raster calls with ``executor=``, computed by the PGP GDAL
plugin where they are expressions, convolutions, alignments or stitches.

``import pgp as pygeoprocessing`` keeps a script working; each call gains the
keyword-only ``executor=`` (None, 'serial', 'threading[:N]', 'multiprocessing[:N]',
any ``concurrent.futures.Executor``, a dask ``distributed.Client``) and
``progress=``. See docs/python.md.
"""
from . import _plugin

_plugin.ensure_registered()

# The calls below open .pgp.vrt graphs, so the driver is registered first.
from ._engine import Cancelled, array_equals_nodata  # noqa: E402
from ._gdal import DEFAULT_CREATION_OPTIONS  # noqa: E402
from ._gdal import DEFAULT_GTIFF_CREATION_TUPLE_OPTIONS  # noqa: E402
from ._gdal import get_raster_info  # noqa: E402
from .calls import choose_dtype, choose_nodata  # noqa: E402
from .calls import raster_calculator, raster_map, raster_reduce  # noqa: E402
from .distributed import ClusterExecutor  # noqa: E402
from .executors import ACCEPTED_FORMS  # noqa: E402
from .graph import Graph, render  # noqa: E402
from .graphcalls import align_and_resize_raster_stack, convolve_2d  # noqa: E402
from .stitch import stitch_rasters  # noqa: E402
from .symbolic import evaluate_raster_calculator_expression  # noqa: E402
from .zonal import reproject_vector, zonal_statistics  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "ACCEPTED_FORMS", "Cancelled", "ClusterExecutor", "DEFAULT_CREATION_OPTIONS",
    "DEFAULT_GTIFF_CREATION_TUPLE_OPTIONS", "Graph", "align_and_resize_raster_stack",
    "array_equals_nodata", "choose_dtype", "choose_nodata", "convolve_2d",
    "evaluate_raster_calculator_expression", "get_raster_info", "raster_calculator",
    "raster_map", "raster_reduce", "render", "reproject_vector", "stitch_rasters",
    "zonal_statistics",
]
