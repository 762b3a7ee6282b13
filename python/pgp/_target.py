"""The plugin's target writer (pgp/target.h, through ctypes): pgp.render's one way of
writing its target.

Tiles are written whole, in row-major tile order, with their statistics summarised in C
on the written values and merged in tile order, whether the plugin computed them
(``render``: the graph's tiles on its own executor, each written as soon as the tiles
before it are, without a trip through Python or GDAL's block cache) or a task returned
them (``write``: a window of whole tiles). Same calls in the same order, so the same
file and statistics for every executor.
"""
import ctypes

from osgeo import gdal

from . import _gdal
from . import _plugin
from ._engine import Statistics


class _Stats(ctypes.Structure):
    """pgp_stats (pgp/stats.h)."""
    _fields_ = [("valid", ctypes.c_uint64), ("total", ctypes.c_uint64),
                ("min", ctypes.c_double), ("max", ctypes.c_double),
                ("mean", ctypes.c_double), ("m2", ctypes.c_double)]


def _core():
    lib = _plugin.library()
    if not hasattr(lib, "_pgp_target_ready"):
        lib.pgp_target_new.restype = ctypes.c_void_p
        lib.pgp_target_new.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                       ctypes.c_int]
        lib.pgp_target_free.restype = None
        lib.pgp_target_free.argtypes = [ctypes.c_void_p]
        lib.pgp_target_write.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 4 + [
            ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int),
            ctypes.POINTER(ctypes.c_int)]
        lib.pgp_target_statistics.restype = None
        lib.pgp_target_statistics.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                              ctypes.POINTER(_Stats)]
        lib.pgp_render_into.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                        ctypes.POINTER(ctypes.c_int), ctypes.c_void_p,
                                        ctypes.c_void_p, ctypes.c_void_p]
        lib._pgp_target_ready = True
    return lib


def _handle(gdal_object):
    """The C handle (GDALDatasetH) behind an osgeo object."""
    return int(gdal_object.this)


def _failed(what):
    return RuntimeError(gdal.GetLastErrorMsg() or f"{what} failed")


class Target:
    """The target dataset cut into the graph's tiles; ``statistics``: summarise what
    is written (GDAL's rule: NaN and the band's nodata skipped)."""

    def __init__(self, dataset, tile_size, statistics):
        self._dataset = dataset  # the C target borrows it
        self._n_bands = dataset.RasterCount
        self._target = None
        # A failure's traceback keeps this frame and self: with the dataset in
        # neither, the caller can still close and delete its temporary target.
        dataset = None
        try:
            self._lib = _core()
            gdal.ErrorReset()
            self._target = self._lib.pgp_target_new(
                _handle(self._dataset), int(tile_size[0]), int(tile_size[1]),
                int(bool(statistics)))
            if not self._target:
                raise _failed(f"writing {self._dataset.GetDescription()}")
        except BaseException:
            self._dataset = None
            raise

    def write(self, window, pixels):
        """Writes window (xoff, yoff, xsize, ysize) of whole tiles from one 2-D array
        per band."""
        import numpy  # only windows computed in Python are arrays
        arrays = [numpy.ascontiguousarray(block) for block in pixels]
        types = [_gdal.gdal_type_of(a.dtype)[0] for a in arrays]
        n = self._n_bands
        gdal.ErrorReset()
        if self._lib.pgp_target_write(
                self._target, *[int(v) for v in window],
                (ctypes.c_void_p * n)(*[a.ctypes.data for a in arrays]),
                (ctypes.c_int * n)(*types),
                (ctypes.c_int * n)(*[a.shape[1] for a in arrays])) != 0:
            raise _failed(f"writing {self._dataset.GetDescription()}")

    def render(self, graph, bands, progress):
        """Computes bands of the open graph dataset on the plugin's executor and writes
        them; progress: a pgp._engine.Progress (Cancelled stops the render)."""
        cancelled = []
        callback = _plugin.progress_callback(progress, cancelled)
        gdal.ErrorReset()
        status = self._lib.pgp_render_into(
            _handle(graph), len(bands), (ctypes.c_int * len(bands))(*bands), self._target,
            ctypes.cast(callback, ctypes.c_void_p), None)
        if status != 0:
            if cancelled:
                raise cancelled[0]
            raise _failed(f"rendering {self._dataset.GetDescription()}")

    def statistics(self, band_index):
        """The 0-based band's statistics so far, as a pgp._engine.Statistics."""
        summary = _Stats()
        self._lib.pgp_target_statistics(self._target, band_index, ctypes.byref(summary))
        statistics = Statistics()
        statistics.add((summary.valid, summary.valid, summary.min, summary.max,
                        summary.mean, summary.m2))
        return statistics

    def close(self):
        """Frees the C target and lets go of the dataset, so that a failed render's
        temporary target can be closed and deleted."""
        if self._target:
            self._lib.pgp_target_free(self._target)
            self._target = None
        self._dataset = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
