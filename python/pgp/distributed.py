"""Running pgp's windows on other machines: a Dask cluster, or shares of the tiles
rendered by separate jobs (a Slurm job array) and assembled afterwards.

``ClusterExecutor`` wraps any ``executor=`` value (a Dask ``Client`` above all) for
every pgp call:

- each task first applies the per-worker settings (``GDAL_CACHEMAX``,
  ``PGP_CACHE_MB``), and an exception it raises is re-raised in the caller with
  its type and the worker's name and host added;
- ``write='parts'``: the task writes each 2-D array it returns to a GeoTIFF in
  ``parts_dir`` (a folder every worker and the caller see) and returns its name;
  the caller reads the parts back in window order, writes them into the target
  and deletes them. Only file names travel through the scheduler.

The task functions stay the calls' own, so the pixels are a serial render's.
"""
import concurrent.futures
import ctypes
import functools
import math
import os
import uuid

from osgeo import gdal

from . import _gdal
from . import _plugin
from . import executors

WRITE_MODES = ("single", "parts")
WORKER_SETTINGS = ("GDAL_CACHEMAX", "PGP_CACHE_MB")
PART_PREFIX = "pgp-part-"


def _check_settings(worker_settings):
    import numpy  # here and below: `pgp render` imports this module without numpy
    settings = dict(worker_settings or {})
    for key, value in settings.items():
        if key not in WORKER_SETTINGS:
            raise ValueError(f"worker_settings: unknown setting {key!r}; use "
                             f"{', '.join(WORKER_SETTINGS)} (megabytes)")
        if (isinstance(value, bool) or not isinstance(value, (int, numpy.integer))
                or value < 0):
            raise ValueError(f"worker_settings[{key!r}]={value!r}: expected a whole "
                             "number of megabytes >= 0")
    return tuple(sorted((key, int(value)) for key, value in settings.items()))


class ClusterExecutor(concurrent.futures.Executor):
    """An ``executor=`` value that runs another one's tasks with per-worker settings,
    names the worker in errors, and with ``write='parts'`` returns arrays through
    GeoTIFF files in ``parts_dir`` instead of the scheduler.

    executor: any ``executor=`` form (a Dask ``Client``, its executor, a pool, a
    string); a pool created from a string is shut down with this executor.
    worker_settings: {'GDAL_CACHEMAX': MB, 'PGP_CACHE_MB': MB}, applied in each
    worker process before its tasks (they stay in force there).
    """

    def __init__(self, executor=None, write="single", parts_dir=None,
                 worker_settings=None):
        if write not in WRITE_MODES:
            raise ValueError(f"write={write!r}: expected one of {WRITE_MODES}")
        if write == "parts":
            if not parts_dir:
                raise ValueError("write='parts' needs parts_dir: a folder every worker "
                                 "and the caller see at the same path")
            parts_dir = os.path.abspath(parts_dir)
            os.makedirs(parts_dir, exist_ok=True)
        elif parts_dir is not None:
            raise ValueError("parts_dir is only used with write='parts'")
        if executors._is_dask_client(executor):
            executor = executor.get_executor()
        self._plan = (executors.dask_plan(executor) if executors._is_dask(executor)
                      else executors.resolve(executor))
        # Parts are named after this executor, so shutdown finds those of tasks Dask
        # reran after a worker died (their first results were lost with it).
        self._parts = (parts_dir, f"{PART_PREFIX}{uuid.uuid4().hex[:12]}-")
        self._job = (write, self._parts, _check_settings(worker_settings))
        # Read by executors.resolve: this executor's tasks travel as the inner one's.
        self.plan_kind = self._plan.kind
        self._max_workers = self._plan.workers

    def submit(self, fn, /, *args, **kwargs):
        future = self._plan.executor.submit(_on_worker, self._job, fn, args, kwargs)
        return _PartsFuture(future) if self._job[0] == "parts" else future

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Shuts down a pool made from a string and deletes parts nobody read."""
        self._plan.close()
        folder, prefix = self._parts
        if folder and os.path.isdir(folder):
            for name in os.listdir(folder):
                if name.startswith(prefix):
                    os.remove(os.path.join(folder, name))


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_malloc_restored = False


def _restore_malloc():
    """Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also fixes
    glibc's mmap threshold at 128 KiB: every tile buffer of every window then is a
    fresh mmap whose pages the kernel zeroes again (renders measured 2x slower). The
    limits glibc would reach on its own (32 MiB, trimming above twice that) are set
    once per such process."""
    global _malloc_restored
    if _malloc_restored or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return
    _malloc_restored = True
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to restore
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)


def _apply_settings(settings):
    _restore_malloc()
    for key, megabytes in settings:
        if key == "GDAL_CACHEMAX":
            if gdal.GetCacheMax() != megabytes << 20:
                gdal.SetCacheMax(megabytes << 20)
        else:  # the plugin resizes its tile cache at the next open that sets it
            gdal.SetConfigOption(key, str(megabytes))


def _on_worker(job, fn, args, kwargs):
    """The task as a worker runs it: settings, fn, then parts."""
    write, parts, settings = job
    _apply_settings(settings)
    try:
        result = fn(*args, **kwargs)
        return _to_parts(result, parts) if write == "parts" else result
    except Exception as error:
        where = f"[pgp: on {_plugin.where()}]"
        if error.args and isinstance(error.args[0], str) and where not in error.args[0]:
            try:
                error.args = (f"{error.args[0]} {where}",) + error.args[1:]
            except (AttributeError, TypeError):
                pass
        raise


class Part:
    """A 2-D array a worker wrote to ``path`` (its dtype kept: GDAL 3.6 reads signed
    bytes and booleans back as unsigned bytes)."""

    def __init__(self, path, dtype):
        self.path = path
        self.dtype = dtype


def _to_parts(value, parts):
    """Replaces each 2-D array in a (nested) tuple or list by a Part written in
    parts = (folder, name prefix)."""
    import numpy
    from osgeo import gdal_array
    if isinstance(value, (tuple, list)):
        return type(value)(_to_parts(item, parts) for item in value)
    if not isinstance(value, numpy.ndarray) or value.ndim != 2:
        return value
    dtype = value.dtype
    stored = value.view(numpy.uint8) if dtype in (numpy.int8, numpy.bool_) else value
    gdal_type = gdal_array.NumericTypeCodeToGDALTypeCode(stored.dtype)
    if gdal_type is None:  # no GDAL type (float16, …): it travels as it is
        return value
    path = os.path.join(parts[0], f"{parts[1]}{uuid.uuid4().hex}.tif")
    partial = path + ".tmp"
    dataset = gdal.GetDriverByName("GTiff").Create(
        partial, value.shape[1], value.shape[0], 1, gdal_type)
    if dataset is None or dataset.GetRasterBand(1).WriteArray(stored) != gdal.CE_None:
        raise RuntimeError(f"writing the part {partial!r} failed: {gdal.GetLastErrorMsg()}")
    dataset = None
    os.replace(partial, path)  # a killed task leaves only a .tmp, never a short part
    return Part(path, dtype.str)


def _from_parts(value):
    """Reads back (and deletes) each Part in a (nested) tuple or list."""
    import numpy
    if isinstance(value, (tuple, list)):
        return type(value)(_from_parts(item) for item in value)
    if not isinstance(value, Part):
        return value
    dataset = gdal.Open(value.path)
    if dataset is None:
        raise RuntimeError(
            f"the part {value.path!r} a worker wrote cannot be read here "
            f"({gdal.GetLastErrorMsg() or 'missing'}): parts_dir must be a folder "
            "shared by the caller and every worker, at the same path")
    array = _gdal.read(dataset, (0, 0, dataset.RasterXSize, dataset.RasterYSize),
                       value.path).view(numpy.dtype(value.dtype))
    dataset = None
    os.remove(value.path)
    return array


class _PartsFuture(concurrent.futures.Future):
    """The inner future, its Parts read back by result() in the caller's thread."""

    def __init__(self, inner):
        super().__init__()
        self._inner = inner

    def result(self, timeout=None):
        return _from_parts(self._inner.result(timeout))

    def cancel(self):
        return self._inner.cancel()

    def done(self):
        return self._inner.done()


# --- shares of the tiles (a Slurm job array) and their assembly ---------------------

def parse_share(text):
    """'I/N' -> (I, N) with 1 <= I <= N."""
    index, slash, count = str(text).partition("/")
    if not (slash and index.isdigit() and count.isdigit() and
            1 <= int(index) <= int(count)):
        raise ValueError(f"--tiles {text!r}: expected I/N with 1 <= I <= N, e.g. 2/8")
    return int(index), int(count)


def share_window(size, tile_height, index, count):
    """The window (xoff, yoff, xsize, ysize) of share ``index`` of ``count``: a run of
    whole rows of tiles, the rows split as evenly as they go."""
    rows = math.ceil(size[1] / tile_height)
    if count > rows:
        raise ValueError(f"--tiles {index}/{count}: the graph has only {rows} rows of "
                         f"tiles ({tile_height} pixels high); use at most {rows} shares")
    first, last = (index - 1) * rows // count, index * rows // count
    yoff = first * tile_height
    return (0, yoff, size[0], min(last * tile_height, size[1]) - yoff)


def render_share(graph_source, target_path, index, count, threads, driver, options,
                 output_type=None, progress=None):
    """Renders share ``index`` of ``count`` of a graph (its whole rows of tiles, with
    the plugin's own pool of ``threads``) into a georeferenced raster; its metadata
    PGP_SHARE=I/N and PGP_SIZE=W,H let ``assemble`` check the set."""
    dataset = _gdal.open_raster(graph_source, (f"EXECUTOR=threading:{threads}",))
    size = (dataset.RasterXSize, dataset.RasterYSize)
    if output_type is None:  # as pgp.render: a type that holds every band
        output_type = functools.reduce(gdal.DataTypeUnion, [
            dataset.GetRasterBand(b).DataType for b in range(1, dataset.RasterCount + 1)])
    window = share_window(size, dataset.GetRasterBand(1).GetBlockSize()[1], index, count)
    result = gdal.Translate(
        target_path, dataset, format=driver, creationOptions=list(options),
        srcWin=list(window), outputType=output_type,
        metadataOptions=[f"PGP_SHARE={index}/{count}", f"PGP_SIZE={size[0]},{size[1]}"],
        callback=progress)
    if result is None:
        raise RuntimeError(f"rendering share {index}/{count} of {graph_source} into "
                           f"{target_path} failed: {gdal.GetLastErrorMsg()}")
    result = None


def _share_of(path):
    dataset = _gdal.open_raster(path)
    share, size = dataset.GetMetadataItem("PGP_SHARE"), dataset.GetMetadataItem("PGP_SIZE")
    if not share or not size:
        raise ValueError(f"{path}: not a part written by pgp render --tiles "
                         "(no PGP_SHARE metadata)")
    return parse_share(share), size


def assemble(target_path, part_paths, driver, options, compute_statistics=False,
             progress=None):
    """Joins the parts of ``pgp render --tiles I/N`` (all N of one graph, in any
    order) into one raster: a VRT of the parts copied by gdal.Translate, written
    under a temporary name and renamed when complete."""
    if not part_paths:
        raise ValueError("no parts given")
    shares = {}
    sizes = set()
    for path in part_paths:
        (index, count), size = _share_of(path)
        if (index, count) in shares:
            raise ValueError(f"{path} and {shares[index, count]} are both "
                             f"share {index}/{count}")
        shares[index, count] = path
        sizes.add((count, size))
    if len(sizes) != 1:
        raise ValueError("the parts come from different renders (shares of "
                         f"N / sizes {sorted(sizes)})")
    count = next(iter(sizes))[0]
    missing = [f"{i}/{count}" for i in range(1, count + 1) if (i, count) not in shares]
    if missing:
        raise ValueError(f"missing share(s) {', '.join(missing)}")
    ordered = [shares[i, count] for i in range(1, count + 1)]
    folder, name = os.path.split(os.path.abspath(target_path))
    stem, ext = os.path.splitext(name)
    scratch = os.path.join(folder, f".{stem}.pgp-{uuid.uuid4().hex[:12]}")
    vrt = gdal.BuildVRT(scratch + ".vrt", ordered)
    try:
        if vrt is None:
            raise RuntimeError(f"the parts do not join: {gdal.GetLastErrorMsg()}")
        vrt = None
        result = gdal.Translate(scratch + ext, scratch + ".vrt", format=driver,
                                creationOptions=list(options),
                                metadataOptions=["PGP_SHARE=", "PGP_SIZE="],
                                callback=progress)
        if result is None:
            raise RuntimeError(f"writing {target_path} failed: "
                               f"{gdal.GetLastErrorMsg()}")
        # BuildVRT keeps no band descriptions or metadata: the first part's, as a
        # one-shot render copies them from the graph.
        first = _gdal.open_raster(ordered[0])
        for band_index in range(1, result.RasterCount + 1):
            band, part_band = result.GetRasterBand(band_index), first.GetRasterBand(band_index)
            band.SetDescription(part_band.GetDescription())
            band.SetMetadata({key: value for key, value in part_band.GetMetadata().items()
                              if not key.startswith("STATISTICS_")})
            if compute_statistics:
                band.ComputeStatistics(False)
        result = None
        target_driver = gdal.GetDriverByName(driver)
        if gdal.VSIStatL(target_path) is not None:
            target_driver.Delete(target_path)
        if target_driver.Rename(target_path, scratch + ext) != gdal.CE_None:
            raise RuntimeError(f"renaming to {target_path} failed: "
                               f"{gdal.GetLastErrorMsg()}")
    finally:
        for leftover in (scratch + ".vrt", scratch + ext):
            if gdal.VSIStatL(leftover) is not None:
                gdal.Unlink(leftover)
