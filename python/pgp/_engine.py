"""Windows, per-window statistics, the ordered writer loop and temporary targets.

Work is split into windows chosen from the raster's size and block size alone, never
from the worker count, so every executor computes the same windows. Tasks return
arrays; the calling thread consumes them in window order (one writer), with at most
``plan.max_in_flight`` windows submitted and not yet consumed.
"""
import collections
import logging
import math
import os
import time
import uuid

from osgeo import gdal

from . import _gdal

LOGGER = logging.getLogger("pgp")
LOGGING_PERIOD = 5.0
RENDER_WINDOW_PIXELS = 1 << 20


class Cancelled(RuntimeError):
    """Raised when a progress callback returns False; the target is not created."""


# --- windows -----------------------------------------------------------------

def iterblocks_windows(raster_size, block_size, largest_block):
    """pygeoprocessing's iterblocks windows as (xoff, yoff, xsize, ysize): blocks
    widened, then heightened, to about largest_block pixels; row-major."""
    n_cols, n_rows = raster_size
    cols, rows = block_size
    if largest_block // (cols * rows) > 0:
        cols = min(cols * (largest_block // (cols * rows)), n_cols)
    if largest_block // (cols * rows) > 0:
        rows = min(rows * (largest_block // (cols * rows)), n_rows)
    return [(x, y, min(cols, n_cols - x), min(rows, n_rows - y))
            for y in range(0, n_rows, rows) for x in range(0, n_cols, cols)]


def tile_windows(raster_size, tile_size, pixels=RENDER_WINDOW_PIXELS):
    """Windows of whole tiles of about ``pixels`` pixels: whole rows of tiles when a
    row of tiles fits, otherwise runs of tiles along one row."""
    n_cols, n_rows = raster_size
    tile_x, tile_y = min(tile_size[0], n_cols), min(tile_size[1], n_rows)
    if n_cols * tile_y <= pixels:
        cols, rows = n_cols, tile_y * max(1, pixels // (n_cols * tile_y))
    else:
        cols, rows = tile_x * max(1, pixels // (tile_x * tile_y)), tile_y
    return iterblocks_windows(raster_size, (cols, rows), 0)


def describe(window):
    xoff, yoff, xsize, ysize = window
    return f"window (xoff={xoff}, yoff={yoff}, xsize={xsize}, ysize={ysize})"


# --- statistics ----------------------------------------------------------------

def array_equals_nodata(array, nodata):
    """pygeoprocessing's nodata test: exact for integer arrays, numpy.isclose with
    NaN equality for floats, nothing when nodata is None."""
    import numpy  # here, not at the top: renders in the plugin never load it
    if nodata is None:
        return numpy.zeros(array.shape, dtype=bool)
    if numpy.issubdtype(array.dtype, numpy.integer):
        return array == nodata
    if not math.isfinite(nodata):
        return numpy.isnan(array) if math.isnan(nodata) else array == nodata
    # numpy.isclose's own test for a finite nodata (its within_tol, the same 0-d
    # float64 operand), without its checks for non-finite values: those fail the
    # comparison anyway (NaN <= tol and inf <= tol are False).
    reference = numpy.asarray(nodata, dtype=numpy.float64)
    with numpy.errstate(invalid="ignore"):
        return numpy.less_equal(abs(array - reference), 1e-8 + 1e-5 * abs(reference))


def stats_partial(block, nodata):
    """One window's summary (valid, count, min, max, mean, m2) by raster_calculator's
    rule: isclose nodata test on the block's dtype; NaN kept, so it makes the mean
    NaN; min/max skip it. (GDAL's rule is the plugin's: pgp/target.h.)"""
    import numpy
    if nodata is not None:
        keep = ~array_equals_nodata(block, nodata)
        valid = int(keep.sum())
        values = block.ravel() if valid == block.size else block[keep]
    else:
        values = block.ravel()
        valid = 0  # pygeoprocessing counts nothing valid without a nodata
    if values.size == 0:
        return (valid, 0, math.inf, -math.inf, 0.0, 0.0)
    # fmin/fmax skip NaN without a masked copy; NaN only if every value is NaN.
    low, high = float(numpy.fmin.reduce(values)), float(numpy.fmax.reduce(values))
    mean = float(values.mean(dtype=numpy.float64))
    deviations = values.astype(numpy.float64) - mean
    # numpy's pairwise sum, not BLAS (whose threading may vary between workers).
    m2 = float(numpy.square(deviations, out=deviations).sum())
    return (valid, values.size, low if low == low else math.inf,
            high if high == high else -math.inf, mean, m2)


class Statistics:
    """Combines window summaries in window order (Chan et al.'s pairwise update), so
    the result depends on the windows only, never on the executor."""

    def __init__(self):
        self.valid = 0
        self.count = 0
        self.low, self.high = math.inf, -math.inf
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, partial):
        valid, count, low, high, mean, m2 = partial
        self.valid += valid
        self.low, self.high = min(self.low, low), max(self.high, high)
        if count == 0:
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean += delta * count / total
        self.m2 += m2 + delta * delta * self.count * count / total
        self.count = total

    def write(self, band, n_pixels):
        """SetStatistics plus STATISTICS_VALID_PERCENT, as pygeoprocessing writes
        them; nothing when no pixel was valid."""
        if self.count == 0:
            return
        std = math.sqrt(self.m2 / self.count) if self.count else 0.0
        band.SetStatistics(float(self.low), float(self.high), float(self.mean), std)
        band.SetMetadataItem("STATISTICS_VALID_PERCENT",
                             f"{self.valid / n_pixels * 100:.2f}")


# --- progress ------------------------------------------------------------------

class Progress:
    """progress=: a GDAL-style callback (fraction, message, data) -> bool (False
    cancels), True for GDAL's text bar, otherwise a log line every 5 seconds."""

    def __init__(self, progress, label):
        self.label = label
        self.callback = None
        if progress is True:
            self.callback = lambda fraction, message, data: gdal.TermProgress_nocb(fraction)
        elif callable(progress):
            self.callback = progress
        elif progress not in (None, False):
            raise ValueError(f"progress={progress!r}: expected a callable "
                             "(fraction, message, data) -> bool, True or None")
        self.last_log = time.time()

    def __call__(self, fraction):
        if self.callback is not None:
            if self.callback(fraction, self.label, None) is False:
                raise Cancelled(f"{self.label}: cancelled by the progress callback at "
                                f"{fraction * 100:.1f}%")
        elif time.time() - self.last_log >= LOGGING_PERIOD or fraction >= 1.0:
            self.last_log = time.time()
            LOGGER.info("%s %.1f%% complete", self.label, fraction * 100.0)


# --- the writer loop -------------------------------------------------------------

def annotate(error, window):
    """Adds the window to an exception's message, keeping its type."""
    where = describe(window)
    if error.args and isinstance(error.args[0], str) and where not in error.args[0]:
        try:
            error.args = (f"{error.args[0]} [pgp: in {where}]",) + error.args[1:]
        except (AttributeError, TypeError):
            pass
    if hasattr(error, "add_note"):
        error.add_note(f"pgp: raised while computing {where}")
    return error


def run_windows(plan, task, windows, consume, progress, task_args=None):
    """Submits task(*task_args(window)) (default task(window)) for every window and
    calls consume(window, result) in window order in the calling thread, with at most
    plan.max_in_flight windows submitted and not yet consumed. A failure cancels the
    windows not started and is re-raised with its window; Cancelled comes from
    progress."""
    pending = collections.deque()
    total = sum(w[2] * w[3] for w in windows)
    done = 0

    def consume_next():
        nonlocal done
        window, future = pending.popleft()
        try:
            result = future.result()
        except Exception as error:
            raise annotate(error, window)
        consume(window, result)
        done += window[2] * window[3]
        progress(done / total)

    try:
        for window in windows:
            if len(pending) == plan.max_in_flight:
                consume_next()
            pending.append((window, plan.executor.submit(
                task, *(task_args(window) if task_args else (window,)))))
        while pending:
            consume_next()
    finally:
        for _, future in pending:
            future.cancel()
        _gdal.release_handles()  # those the caller's thread kept (serial tasks)


def flush_finished_rows(dataset, window, block_size):
    """Writes out and drops the target's cached blocks once a window completes a row
    of target blocks, so GDAL's block cache holds at most one row of dirty blocks
    (memory does not grow with the raster)."""
    xoff, yoff, xsize, ysize = window
    bottom = yoff + ysize
    if xoff + xsize == dataset.RasterXSize and (
            bottom % block_size[1] == 0 or bottom == dataset.RasterYSize):
        dataset.FlushCache()


def _same_file(a, b):
    """Whether paths a and b name one file (b existing)."""
    if a == b:
        return True
    try:
        return not a.startswith("/vsi") and os.path.samefile(a, b)
    except OSError:
        return False


class TemporaryTarget:
    """Creates the target under a temporary name in its folder; ``commit`` renames it
    into place, ``discard`` deletes it and any older file under the target's name (the
    call was replacing it, as pygeoprocessing's would have by then), so after a failure
    nothing under the target's name looks like its result; unless that file is one of
    ``inputs``, the files the call reads, which a failure leaves as they were."""

    def __init__(self, target_path, driver_name, size, band_count, data_type, options,
                 inputs=()):
        self.target_path = target_path
        self.inputs = inputs
        self.driver = gdal.GetDriverByName(driver_name)
        if self.driver is None:
            raise ValueError(f"unknown GDAL driver {driver_name!r}")
        folder, name = os.path.split(target_path)
        if folder and not folder.startswith("/vsi"):
            os.makedirs(folder, exist_ok=True)
        stem, ext = os.path.splitext(name)
        self.path = os.path.join(folder, f".{stem}.pgp-{uuid.uuid4().hex[:12]}{ext}")
        self.dataset = self.driver.Create(self.path, size[0], size[1], band_count,
                                          data_type, list(options))
        if self.dataset is None:
            raise RuntimeError(f"creating {target_path!r} failed: {gdal.GetLastErrorMsg()}")

    def _remove_older_target(self):
        """Deletes the file under the target's name, if any, as GDAL's Create would
        (pygeoprocessing's): through the driver that identifies it, so with its sidecars
        but not the files a VRT reads (the target's driver deletes every file the dataset
        lists), and never a directory. True when there was one."""
        stat = gdal.VSIStatL(self.target_path)
        if stat is None:
            return False
        if stat.IsDirectory():
            raise RuntimeError(f"{self.target_path}: is a directory")
        gdal.PushErrorHandler("CPLQuietErrorHandler")
        try:
            driver = gdal.IdentifyDriver(self.target_path)
            if driver is None or driver.Delete(self.target_path) != gdal.CE_None:
                gdal.Unlink(self.target_path)
        except RuntimeError:  # the caller turned gdal.UseExceptions() on
            gdal.Unlink(self.target_path)
        finally:
            gdal.PopErrorHandler()
        if gdal.VSIStatL(self.target_path) is not None:
            raise RuntimeError(f"{self.target_path}: cannot be removed")
        return True

    def commit(self):
        self.dataset.FlushCache()
        self.dataset = None
        try:
            self._remove_older_target()
            if self.driver.Rename(self.target_path, self.path) != gdal.CE_None:
                raise RuntimeError(f"renaming {self.path!r} to {self.target_path!r} "
                                   f"failed: {gdal.GetLastErrorMsg()}")
        except RuntimeError:
            self.driver.Delete(self.path)
            raise

    def discard(self):
        self.dataset = None
        if gdal.VSIStatL(self.path) is not None:
            self.driver.Delete(self.path)
        if any(_same_file(path, self.target_path) for path in self.inputs):
            return
        try:
            if self._remove_older_target():
                LOGGER.warning("%s: removed: the call replacing it failed", self.target_path)
        except RuntimeError as error:  # the failure being raised matters more
            LOGGER.warning("%s, after the call replacing it failed", error)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.discard()
