"""zonal_statistics and reproject_vector (docs/zonal.md).

zonal_statistics runs in the plugin's C core (pgp/zonal.h, called through ctypes):
only the tiles some polygon meets are read or, for a .pgp.vrt band, computed; each is
rasterised in the raster's own pixel frame and summarised per feature; the partial
summaries are merged per feature in tile order. The numbers are the same for every
executor and thread count.
"""
import ctypes
import math
import os

import numpy
from osgeo import gdal, ogr, osr

from . import _plugin
from ._engine import Progress, run_windows
from ._gdal import get_raster_info
from .calls import _is_raster_path_band_formatted
from .executors import resolve

POLYGON_TYPES = {ogr.wkbPolygon, ogr.wkbMultiPolygon}
DEFAULT_OSR_AXIS_MAPPING_STRATEGY = osr.OAMS_TRADITIONAL_GIS_ORDER
REPROJECT_CHUNK_FEATURES = 2048  # features per reproject_vector task (from the layer alone)


class _Options(ctypes.Structure):
    _fields_ = [("all_touched", ctypes.c_int), ("ignore_nodata", ctypes.c_int),
                ("polygons_might_overlap", ctypes.c_int), ("value_counts", ctypes.c_int),
                ("n_threads", ctypes.c_int), ("progress", ctypes.c_void_p),
                ("progress_arg", ctypes.c_void_p)]


class _ValueCount(ctypes.Structure):
    _fields_ = [("value", ctypes.c_double), ("count", ctypes.c_uint64)]


class _Feature(ctypes.Structure):
    _fields_ = [("fid", ctypes.c_int64), ("has_geometry", ctypes.c_int),
                ("fallback", ctypes.c_int), ("count", ctypes.c_uint64),
                ("nodata_count", ctypes.c_uint64), ("sum", ctypes.c_double),
                ("min", ctypes.c_double), ("max", ctypes.c_double),
                ("mean", ctypes.c_double), ("m2", ctypes.c_double),
                ("n_values", ctypes.c_size_t), ("values", ctypes.POINTER(_ValueCount))]


class _Result(ctypes.Structure):
    _fields_ = [("n_features", ctypes.c_size_t), ("features", ctypes.POINTER(_Feature)),
                ("tiles_read", ctypes.c_uint64), ("tiles_total", ctypes.c_uint64)]


def _core():
    lib = _plugin.library()
    if not hasattr(lib, "_pgp_zonal_ready"):
        lib.pgp_zonal_compute.restype = ctypes.POINTER(_Result)
        lib.pgp_zonal_compute.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_char_p, ctypes.POINTER(_Options)]
        lib.pgp_zonal_result_free.argtypes = [ctypes.POINTER(_Result)]
        lib.pgp_zonal_result_free.restype = None
        lib._pgp_zonal_ready = True
    return lib


def _number(value, integer):
    return int(value) if integer else float(value)


def _feature_stats(feature, integer, include_value_counts, extra_statistics):
    """pygeoprocessing's dict for one feature (docs/zonal.md)."""
    stats = {'min': None, 'max': None, 'count': int(feature.count),
             'nodata_count': int(feature.nodata_count), 'sum': 0, 'average': None}
    histogram = {_number(feature.values[i].value, integer): int(feature.values[i].count)
                 for i in range(feature.n_values)}
    if feature.count > 0:
        stats['min'] = _number(feature.min, integer)
        stats['max'] = _number(feature.max, integer)
        stats['sum'] = _number(feature.sum, integer) if integer else float(feature.sum)
        stats['average'] = float(feature.sum) / feature.count
    elif feature.fallback:
        # pygeoprocessing's envelope fallback found no valid pixel: zeros, no average
        stats['min'] = stats['max'] = stats['sum'] = 0
    if include_value_counts:
        stats['value_counts'] = histogram
    if extra_statistics:
        stats['stdev'] = math.sqrt(feature.m2 / feature.count) if feature.count else None
        # ties: the smallest value, so the answer never depends on the order of pixels
        ranked = sorted(histogram.items(), key=lambda item: (-item[1], item[0]))
        stats['majority'] = ranked[0][0] if ranked else None
        stats['minority'] = min(histogram.items(), key=lambda item: (item[1], item[0]))[0] \
            if histogram else None
        stats['variety'] = len(histogram)
    return stats


def _zonal_one(raster_path, band, vector_path, layer_name, ignore_nodata,
               polygons_might_overlap, include_value_counts, extra_statistics, all_touched,
               n_threads, progress=None):
    """One band's statistics through the C core; a dict FID -> stats."""
    lib = _core()
    integer = numpy.issubdtype(get_raster_info(raster_path)['numpy_type'], numpy.integer)
    options = _Options(int(bool(all_touched)), int(bool(ignore_nodata)),
                       int(bool(polygons_might_overlap)),
                       int(bool(include_value_counts or extra_statistics)), int(n_threads))
    cancelled = []
    callback = _plugin.progress_callback(progress, cancelled) if progress is not None else None
    if callback is not None:
        options.progress = ctypes.cast(callback, ctypes.c_void_p)
    gdal.ErrorReset()
    result = lib.pgp_zonal_compute(
        os.fsencode(raster_path), band, os.fsencode(vector_path),
        os.fsencode(layer_name) if layer_name is not None else None, ctypes.byref(options))
    if not result:
        if cancelled:
            raise cancelled[0]
        raise RuntimeError(gdal.GetLastErrorMsg() or "zonal statistics failed")
    try:
        contents = result.contents
        return {int(f.fid): _feature_stats(f, integer, include_value_counts, extra_statistics)
                for f in contents.features[:contents.n_features]}, int(contents.tiles_read)
    finally:
        lib.pgp_zonal_result_free(result)


def _open_layer(vector_path, layer_name):
    vector = gdal.OpenEx(vector_path, gdal.OF_VECTOR)
    if vector is None:
        raise RuntimeError(f"Could not open aggregate vector at {vector_path}")
    layer = vector.GetLayer() if layer_name is None else vector.GetLayerByName(layer_name)
    if layer is None:
        raise RuntimeError(f"Could not open layer {layer_name} of {vector_path}")
    return vector, layer


def zonal_statistics(base_raster_path_band, aggregate_vector_path,
                     aggregate_layer_name=None, ignore_nodata=True,
                     polygons_might_overlap=True, include_value_counts=False,
                     working_dir=None, *, executor=None, all_touched=False,
                     extra_statistics=False, progress=None):
    """Statistics of raster pixels under each polygon: pygeoprocessing's
    zonal_statistics, computed in pgp's C core.

    Returns ``{fid: {'min', 'max', 'sum', 'count', 'average', 'nodata_count'
    [, 'value_counts']}}`` (a list of such dicts for a list of ``(path, band)``
    tuples, which must be aligned). Keys are the layer's own FIDs (any size).
    ``extra_statistics=True`` adds 'stdev' (population), 'majority', 'minority'
    (ties: the smallest value) and 'variety'. ``all_touched=True`` counts every pixel
    a polygon touches instead of those whose centre it covers. ``working_dir`` is
    accepted for compatibility: nothing is written to disk.

    executor: None/'serial' runs on the calling thread; 'threading:N' and
    'multiprocessing:N' run the C core with N threads (it holds no interpreter
    lock); any other executor (a process pool, a Dask client) runs the whole call as
    one task on it. The numbers are the same, bit for bit, for every executor.

    Raises ValueError for a malformed ``(path, band)``, unaligned rasters or a layer
    of other than polygons; RuntimeError when the vector or layer cannot be opened.
    """
    del working_dir  # nothing temporary is written
    multi = isinstance(base_raster_path_band, list)
    path_bands = base_raster_path_band if multi else [base_raster_path_band]
    for path_band in path_bands:
        if not _is_raster_path_band_formatted(path_band):
            raise ValueError('`base_raster_path_band` not formatted as expected.  Expected '
                             f'(path, band_index), received {path_band!r}')
    for attribute in ('geotransform', 'bounding_box', 'projection_wkt'):
        values = {str(get_raster_info(path)[attribute]) for path, _ in path_bands}
        if len(values) > 1:
            raise ValueError('All input rasters must be aligned. Multiple values of '
                             f'"{attribute}" were found among the input rasters: {values}')
    vector, layer = _open_layer(aggregate_vector_path, aggregate_layer_name)
    if ogr.GT_Flatten(layer.GetGeomType()) not in POLYGON_TYPES:
        raise ValueError('Vector geometry type must be Polygon or MultiPolygon')
    layer_name = layer.GetName()
    layer = vector = None
    plan = resolve(executor)
    arguments = (aggregate_vector_path, layer_name, ignore_nodata, polygons_might_overlap,
                 include_value_counts, extra_statistics, all_touched)
    reporter = Progress(progress, "zonal_statistics")
    results = []
    with plan:
        for index, (path, band) in enumerate(path_bands):
            if plan.kind in ("serial", "threads", "processes"):
                # The C core has no interpreter lock: its own threads do the work.
                threads = 0 if plan.kind == "serial" else plan.workers
                done = index / len(path_bands)

                def step(fraction, done=done):
                    reporter(done + fraction / len(path_bands))
                stats, _ = _zonal_one(path, band, *arguments, threads, step)
            else:
                future = plan.executor.submit(_zonal_one, path, band, *arguments,
                                              plan.workers)
                try:
                    stats, _ = future.result()
                except Exception:
                    future.cancel()
                    raise
                reporter((index + 1) / len(path_bands))
            results.append(stats)
    return results if multi else results[0]


# --- reproject_vector -------------------------------------------------------------

def _transform_chunk(base_vector_path, layer_id, target_projection_wkt, axis_strategy,
                     start, count):
    """Features [start, start + count) of the layer in reading order, transformed:
    a list of (geometry WKB or None, field values); None where a transform failed."""
    vector = gdal.OpenEx(base_vector_path, gdal.OF_VECTOR)
    layer = vector.GetLayer(layer_id)
    source = layer.GetSpatialRef().Clone()
    target = osr.SpatialReference()
    target.ImportFromWkt(target_projection_wkt)
    source.SetAxisMappingStrategy(axis_strategy)
    target.SetAxisMappingStrategy(axis_strategy)
    transform = osr.CreateCoordinateTransformation(source, target)
    layer.SetNextByIndex(start)
    out = []
    for _ in range(count):
        feature = layer.GetNextFeature()
        if feature is None:
            break
        geometry = feature.GetGeometryRef()
        fields = [feature.GetField(i) for i in range(feature.GetFieldCount())]
        wkb = None
        if geometry is not None:
            geometry = geometry.Clone()
            try:
                if geometry.Transform(transform) == 0:
                    wkb = bytes(geometry.ExportToIsoWkb())
            except RuntimeError:
                wkb = None
        out.append((wkb, fields))
    return out


def reproject_vector(base_vector_path, target_projection_wkt, target_path, layer_id=0,
                     driver_name='ESRI Shapefile', copy_fields=True, target_layer_name=None,
                     osr_axis_mapping_strategy=DEFAULT_OSR_AXIS_MAPPING_STRATEGY, *,
                     executor=None, progress=None):
    """pygeoprocessing's reproject_vector: the layer's features transformed to
    target_projection_wkt and written, in the base layer's order, by one writer.
    Chunks of features are transformed on the executor; the output is the same for
    every executor. Features without a geometry, or whose transform fails, are
    skipped and counted in a warning, as pygeoprocessing does."""
    import logging
    logger = logging.getLogger("pgp")
    if os.path.exists(target_path):
        logger.warning("%s already exists, removing and overwriting", target_path)
        gdal.GetDriverByName(driver_name).Delete(target_path)
    base = gdal.OpenEx(base_vector_path, gdal.OF_VECTOR)
    if base is None:
        raise RuntimeError(f"Could not open {base_vector_path}")
    layer = base.GetLayer(layer_id)
    if layer is None:
        raise RuntimeError(f"{base_vector_path} has no layer {layer_id!r}")
    definition = layer.GetLayerDefn()
    if copy_fields is True:
        fields = list(range(definition.GetFieldCount()))
    elif copy_fields:
        wanted = set(copy_fields)
        fields = [i for i in range(definition.GetFieldCount())
                  if definition.GetFieldDefn(i).GetName() in wanted]
    else:
        fields = []
    name = target_layer_name or layer.GetName()
    if target_layer_name is not None and driver_name == 'ESRI Shapefile':
        logger.warning("target_layer_name is ignored for ESRI Shapefile targets")
        name = os.path.splitext(os.path.basename(target_path))[0]
    target_srs = osr.SpatialReference()
    target_srs.ImportFromWkt(target_projection_wkt)
    target_srs.SetAxisMappingStrategy(osr_axis_mapping_strategy)
    target = gdal.GetDriverByName(driver_name).Create(target_path, 0, 0, 0, gdal.GDT_Unknown)
    target_layer = target.CreateLayer(name, target_srs, layer.GetGeomType())
    for i in fields:
        target_layer.CreateField(definition.GetFieldDefn(i))
    n_features = layer.GetFeatureCount()
    layer_index = layer_id if isinstance(layer_id, int) else \
        [base.GetLayer(i).GetName() for i in range(base.GetLayerCount())].index(layer_id)
    layer = base = None
    plan = resolve(executor)
    windows = [(start, 0, min(REPROJECT_CHUNK_FEATURES, n_features - start), 1)
               for start in range(0, n_features, REPROJECT_CHUNK_FEATURES)]
    skipped = [0]
    target_definition = target_layer.GetLayerDefn()
    target_layer.StartTransaction()

    def consume(window, chunk):
        for wkb, values in chunk:
            if wkb is None:
                skipped[0] += 1
                continue
            feature = ogr.Feature(target_definition)
            feature.SetGeometry(ogr.CreateGeometryFromWkb(wkb))
            for out_index, in_index in enumerate(fields):
                if values[in_index] is not None:
                    feature.SetField(out_index, values[in_index])
            target_layer.CreateFeature(feature)

    def task_args(window):
        return (base_vector_path, layer_index, target_projection_wkt,
                osr_axis_mapping_strategy, window[0], window[2])
    with plan:
        try:
            run_windows(plan, _transform_chunk, windows, consume,
                        Progress(progress, "reproject_vector"), task_args)
        except BaseException:  # no half-written vector left behind
            target_layer = target = None
            gdal.GetDriverByName(driver_name).Delete(target_path)
            raise
    target_layer.CommitTransaction()
    target_layer = target = None
    if skipped[0]:
        logger.warning("%d features out of %d were unable to be transformed and are not "
                       "in the output vector at %s", skipped[0], n_features, target_path)

