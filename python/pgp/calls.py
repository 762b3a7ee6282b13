"""pygeoprocessing's Python-callable calls with ``executor=``: raster_calculator,
raster_map, raster_reduce. Tasks run a user function on one window each; the
caller writes (see _engine)."""
import functools
import logging
import pprint
import uuid

import numpy
from osgeo import gdal

from . import _engine
from . import _gdal
from .executors import check_serializable, check_visible_paths, resolve

LOGGER = logging.getLogger("pgp")
_LARGEST_ITERBLOCK = 2**16
_MAX_TIMEOUT = 60.0
_VALID_GDAL_TYPES = {getattr(gdal, x) for x in dir(gdal.gdalconst) if 'GDT_' in x}


def _is_raster_path_band_formatted(value):
    return (isinstance(value, (list, tuple)) and len(value) == 2 and
            isinstance(value[0], str) and isinstance(value[1], int))


def _is_raw(value):
    return isinstance(value, tuple) and len(value) == 2 and (
        isinstance(value[1], str) and value[1] == 'raw')


# --- tasks (module level: they travel to processes) -------------------------------

def _calc_window(local_op, nodata_target, stats, call, window, arguments):
    """Reads one window's inputs, calls local_op, checks its shape; returns the block
    and, when stats, the block's statistics summary."""
    xoff, yoff, xsize, ysize = window
    blocks = []
    for kind, value in arguments:
        if kind == 'band':
            path, band_index = value
            band = _gdal.band_of(_gdal.open_for_call(call, path), band_index, path)
            blocks.append(_gdal.read(band, window, path))
        elif kind == 'array':
            array, tile_dims = value
            blocks.append(numpy.tile(array, tile_dims))
        else:
            blocks.append(value)
    result = local_op(*blocks)
    if not isinstance(result, numpy.ndarray) or result.shape != (ysize, xsize):
        raise ValueError(
            "Expected `local_op` to return a numpy.ndarray of shape %s but got this "
            "instead: %s" % ((ysize, xsize), result))
    partial = _engine.stats_partial(result, nodata_target) if stats else None
    return result, partial


def _map_op(op, nodatas, target_nodata, target_dtype, *arrays):
    """raster_map's block function: op sees 1-D arrays of the pixels valid in every
    input; the rest is target_nodata."""
    result = numpy.full(arrays[0].shape, target_nodata, dtype=target_dtype)
    valid = numpy.full(arrays[0].shape, True)
    for array, nodata in zip(arrays, nodatas):
        valid &= ~_engine.array_equals_nodata(array, nodata)
    result[valid] = op(*[array[valid] for array in arrays])
    return result


def _reduce_window(function, initializer, path, band_index, mask_nodata, call, window):
    band = _gdal.band_of(_gdal.open_for_call(call, path), band_index, path)
    block = _gdal.read(band, window, path)
    if mask_nodata:
        data = block[~_engine.array_equals_nodata(block, band.GetNoDataValue())]
    else:
        data = block.flatten()
    return function(initializer, data)


# --- raster_calculator -------------------------------------------------------------

def _check_calc_arguments(base_raster_path_band_const_list, target_raster_path):
    """pygeoprocessing's validation, in its order; returns (raster infos, raster
    path/bands, broadcast shape or None)."""
    if not base_raster_path_band_const_list:
        raise ValueError("`base_raster_path_band_const_list` is empty and should have "
                         "at least one value.")
    arguments = base_raster_path_band_const_list
    if not isinstance(arguments, (list, tuple)) or not all(
            _is_raster_path_band_formatted(v) or isinstance(v, numpy.ndarray) or
            _is_raw(v) for v in arguments):
        raise ValueError(
            "Expected a sequence of path / integer band tuples, ndarrays, or "
            "(value, 'raw') pairs for `base_raster_path_band_const_list`, instead "
            "got: %s" % pprint.pformat(arguments))
    path_bands = [v for v in arguments if _is_raster_path_band_formatted(v)]
    if target_raster_path in [v[0] for v in path_bands]:
        raise ValueError("%s is used as a target path, but it is also in the base input "
                         "path list %s" % (target_raster_path, str(arguments)))
    infos = [_gdal.get_raster_info(v[0]) for v in path_bands]
    sizes = [info['raster_size'] for info in infos]
    if len(set(sizes)) > 1:
        raise ValueError(
            "Input Rasters are not the same dimensions. The following raster are not "
            "identical: %s" % pprint.pformat(
                [(v[0], size) for v, size in zip(path_bands, sizes)]))
    arrays = [v for v in arguments if isinstance(v, numpy.ndarray)]
    shape = None
    if arrays:
        try:
            shape = numpy.broadcast_shapes(*[a.shape for a in arrays])
        except ValueError:
            raise ValueError("Numpy array inputs cannot be broadcast into a single "
                             "shape %s" % arrays)
        if len(shape) > 2:
            raise ValueError("Numpy array inputs must be 2 dimensions or less %s" % arrays)
    if infos and shape is not None:
        raster_shape = tuple(reversed(infos[0]['raster_size']))
        if len(shape) == 1:
            bad = shape[0] not in (raster_shape[1], 1)
        else:
            bad = any(shape[i] not in (raster_shape[i], 1) for i in range(2))
        if bad:
            raise ValueError("Raster size %s cannot be broadcast to numpy shape %s" % (
                raster_shape, shape))
    return infos, path_bands, shape


def _window_arguments(canonical, window):
    """The per-window arguments: bands stay (path, band) for the task to read, 2-D
    arrays are sliced here (the task tiles them), raw values pass unchanged."""
    xoff, yoff, xsize, ysize = window
    arguments = []
    for kind, value in canonical:
        if kind == 'array':
            slices, tile_dims = [slice(0, 1)] * 2, [ysize, xsize]
            for dim, (offset, size) in enumerate(((yoff, ysize), (xoff, xsize))):
                if value.shape[dim] > 1:
                    slices[dim] = slice(offset, offset + size)
                    tile_dims[dim] = 1
            arguments.append(('array', (value[tuple(slices)], tuple(tile_dims))))
        else:
            arguments.append((kind, value))
    return (window, arguments)


def _raster_calculator(plan, base_raster_path_band_const_list, local_op,
                       target_raster_path, datatype_target, nodata_target,
                       calc_raster_stats, largest_block, raster_driver_creation_tuple,
                       progress):
    infos, path_bands, shape = _check_calc_arguments(
        base_raster_path_band_const_list, target_raster_path)
    canonical = []
    for value in base_raster_path_band_const_list:
        if _is_raster_path_band_formatted(value):
            canonical.append(('band', (value[0], value[1])))
        elif isinstance(value, numpy.ndarray):
            canonical.append(('array', value.reshape((1, -1)) if value.ndim == 1 else value))
        else:
            canonical.append(('raw', value[0]))
    if infos:
        n_cols, n_rows = infos[0]['raster_size']
    elif shape is not None:
        n_rows, n_cols = (1, shape[0]) if len(shape) == 1 else shape
    else:
        raise ValueError(
            "Only (object, 'raw') values have been passed. Raster calculator requires "
            "at least a raster or numpy array as a parameter. This is the input list: "
            "%s" % pprint.pformat(base_raster_path_band_const_list))
    if datatype_target not in _VALID_GDAL_TYPES:
        raise ValueError('Invalid target type, should be a gdal.GDT_* type, received '
                         '"%s"' % datatype_target)
    # Bands are checked here, as pygeoprocessing opens them before creating the target.
    for path, band_index in path_bands:
        _gdal.band_of(_gdal.open_raster(path), band_index, path)
    check_serializable(plan, [('local_op', local_op)] + [
        ('raw argument', value) for kind, value in canonical if kind == 'raw'])
    check_visible_paths(plan, [path for path, _ in path_bands])

    driver, options = raster_driver_creation_tuple
    progress = _engine.Progress(progress, target_raster_path)
    with _engine.TemporaryTarget(target_raster_path, driver, (n_cols, n_rows), 1,
                                 datatype_target, options,
                                 [path for path, _ in path_bands]) as target:
        band = target.dataset.GetRasterBand(1)
        if nodata_target is not None:
            band.SetNoDataValue(nodata_target)
        if infos:
            first = _gdal.open_raster(path_bands[0][0])
            target.dataset.SetProjection(first.GetProjection())
            target.dataset.SetGeoTransform(first.GetGeoTransform())
            first = None
        block_size = band.GetBlockSize()
        windows = _engine.iterblocks_windows((n_cols, n_rows), block_size, largest_block)
        statistics = _engine.Statistics()

        def consume(window, result):
            block, partial = result
            band.WriteArray(block, xoff=window[0], yoff=window[1])
            _engine.flush_finished_rows(target.dataset, window, block_size)
            if partial is not None:
                statistics.add(partial)

        task = functools.partial(_calc_window, local_op, nodata_target, calc_raster_stats,
                                 uuid.uuid4().hex)
        _engine.run_windows(plan, task, windows, consume, progress,
                            task_args=functools.partial(_window_arguments, canonical))
        if calc_raster_stats:
            statistics.write(band, n_cols * n_rows)
        band = None


def raster_calculator(
        base_raster_path_band_const_list, local_op, target_raster_path,
        datatype_target, nodata_target, calc_raster_stats=True,
        use_shared_memory=False, largest_block=_LARGEST_ITERBLOCK,
        max_timeout=_MAX_TIMEOUT,
        raster_driver_creation_tuple=_gdal.DEFAULT_GTIFF_CREATION_TUPLE_OPTIONS, *,
        executor=None, progress=None):
    """Apply a raster operation on a stack of rasters (pygeoprocessing's call).

    Args:
        base_raster_path_band_const_list (sequence): ``(path, band)`` tuples,
            ``numpy.ndarray`` s of up to two dimensions broadcastable to the rasters,
            and ``(object, 'raw')`` tuples passed to ``local_op`` unchanged.
        local_op (function): called once per window with the arguments in order
            (2-D arrays for rasters and arrays); must return an array of the
            window's shape. With a process or distributed executor it must be
            picklable (defined at module level).
        target_raster_path (str): the output raster, created under a temporary name
            in its folder and renamed when complete.
        datatype_target (int): a ``gdal.GDT_*`` type.
        nodata_target (number): the target's nodata value, or None.
        calc_raster_stats (bool): write min, max, mean, stddev and valid percent
            (computed on local_op's results, per window, combined in window order).
        use_shared_memory, max_timeout: accepted for compatibility; unused.
        largest_block (int): windows grow from the target's blocks to about this
            many pixels, as pygeoprocessing's ``iterblocks``.
        raster_driver_creation_tuple (tuple): (driver name, creation options).
        executor: None, 'serial', 'threading[:N]', 'multiprocessing[:N]', a
            ``concurrent.futures.Executor`` or a dask ``distributed.Client``.
        progress: a GDAL-style callback ``(fraction, message, data) -> bool``
            (False cancels with ``pgp.Cancelled``), True for a text bar, or None for
            a log line every 5 seconds.

    Returns:
        None
    """
    plan = resolve(executor)
    with plan:
        _raster_calculator(plan, base_raster_path_band_const_list, local_op,
                           target_raster_path, datatype_target, nodata_target,
                           calc_raster_stats, largest_block,
                           raster_driver_creation_tuple, progress)


def choose_dtype(*raster_paths):
    """numpy.result_type of the rasters' numpy types."""
    return numpy.result_type(*[_gdal.get_raster_info(p)['numpy_type'] for p in raster_paths])


def choose_nodata(dtype):
    """The dtype's maximum: a float for float types, an int otherwise."""
    try:
        return float(numpy.finfo(dtype).max)
    except ValueError:
        return int(numpy.iinfo(dtype).max)


def raster_map(op, rasters, target_path, target_nodata=None, target_dtype=None,
               raster_driver_creation_tuple=_gdal.DEFAULT_GTIFF_CREATION_TUPLE_OPTIONS,
               *, executor=None, progress=None):
    """Apply a pixelwise function to rasters (pygeoprocessing's call).

    ``op`` receives 1-D arrays of the pixels valid (not nodata) in every input, in
    the order of ``rasters`` (band 1 of each); its result fills those pixels, the
    rest is ``target_nodata``. ``target_dtype`` defaults to ``numpy.result_type``
    of the inputs, ``target_nodata`` to that dtype's maximum; a given nodata must
    be castable to the dtype. ``executor`` and ``progress`` as in
    ``raster_calculator``.
    """
    plan = resolve(executor)
    nodatas = []
    for raster in rasters:
        info = _gdal.get_raster_info(raster)
        if info['n_bands'] > 1:
            LOGGER.warning(f'{raster} has more than one band. Only the first band will '
                           'be used.')
        nodatas.append(info['nodata'][0])
    if target_dtype is None:
        target_dtype = choose_dtype(*rasters)
    if target_nodata is None:
        target_nodata = choose_nodata(target_dtype)
    elif not numpy.can_cast(numpy.min_scalar_type(target_nodata), target_dtype,
                            casting='same_kind'):
        raise ValueError(f'Target nodata value {target_nodata} is incompatible with the '
                         f'target dtype {target_dtype}')
    check_serializable(plan, [('op', op)])
    driver, options = raster_driver_creation_tuple
    gdal_type, type_options = _gdal.gdal_type_of(target_dtype)
    with plan:
        _raster_calculator(
            plan, [(path, 1) for path in rasters],
            functools.partial(_map_op, op, tuple(nodatas), target_nodata,
                              numpy.dtype(target_dtype)),
            target_path, gdal_type, target_nodata, True, _LARGEST_ITERBLOCK,
            (driver, list(options) + type_options), progress)


def raster_reduce(function, raster_path_band, initializer, mask_nodata=True,
                  largest_block=_LARGEST_ITERBLOCK, *, executor=None, combine=None,
                  progress=None):
    """Reduce a raster to one value, block by block (pygeoprocessing's call).

    Serially, ``aggregator = function(aggregator, block)`` for each block in
    ``iterblocks`` order, starting from ``initializer``; ``block`` is the flattened
    block, without nodata pixels when ``mask_nodata``. With any other executor
    each window is reduced on its own from ``initializer`` and the partial results
    are joined in window order with ``combine(a, b)``, which is then required:
    ``initializer`` must be neutral for ``combine`` (0 for a sum).
    """
    plan = resolve(executor)
    if plan.kind != 'serial' and combine is None:
        raise ValueError(
            f"raster_reduce with executor={executor!r} needs combine=: a function "
            "combine(a, b) joining two partial results (windows are reduced "
            "separately, then combined in window order)")
    path, band_index = raster_path_band
    info = _gdal.get_raster_info(path)
    band = _gdal.band_of(_gdal.open_raster(path), band_index, path)
    windows = _engine.iterblocks_windows(info['raster_size'], band.GetBlockSize(),
                                         largest_block)
    band = None
    check_serializable(plan, [('function', function), ('initializer', initializer)])
    check_visible_paths(plan, [path])
    progress = _engine.Progress(progress, f"{path} reduce")
    state = {'value': initializer, 'first': True}

    def consume(window, partial):
        if plan.kind == 'serial':
            state['value'] = partial
        elif state['first']:
            state['value'] = partial
        else:
            state['value'] = combine(state['value'], partial)
        state['first'] = False

    call = uuid.uuid4().hex
    if plan.kind == 'serial':
        def task(window):
            return _reduce_window(function, state['value'], path, band_index,
                                  mask_nodata, call, window)
    else:
        task = functools.partial(_reduce_window, function, initializer, path,
                                 band_index, mask_nodata, call)
    with plan:
        _engine.run_windows(plan, task, windows, consume, progress)
    return state['value']
