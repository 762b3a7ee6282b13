"""pygeoprocessing's convolve_2d and align_and_resize_raster_stack, built as
<Convolve> / <Align> graphs and rendered by the plugin."""
import logging
import os
import shutil
import tempfile
import warnings

import numpy
from osgeo import gdal
from osgeo import osr

from . import _gdal
from .calls import _MAX_TIMEOUT, _is_raster_path_band_formatted
from .executors import resolve
from .graph import Graph, _render
from .symbolic import _block_size

LOGGER = logging.getLogger("pgp")
DEFAULT_OSR_AXIS_MAPPING_STRATEGY = osr.OAMS_TRADITIONAL_GIS_ORDER


def _layout_of_base(options, base_path):
    """pygeoprocessing's new_raster_from_base, which creates convolve_2d's target:
    options without TILED get TILED=YES unless the base's blocks are whole rows, and
    options without BLOCK* get the base's block size."""
    options = list(options)
    info = _gdal.get_raster_info(base_path)
    block = info['block_size']
    if not any('TILED' in option for option in options) and \
            block[0] != info['raster_size'][0]:
        options.append('TILED=YES')
    if not any('BLOCK' in option for option in options):
        options += [f'BLOCKXSIZE={block[0]}', f'BLOCKYSIZE={block[1]}']
    return options


def _as_stored(value, gdal_type):
    """value as GDAL stores it in a band of gdal_type (rounded half away from zero and
    saturated for integers, NaN 0): what pygeoprocessing writes for a target_nodata
    the type cannot hold."""
    dataset = gdal.GetDriverByName('MEM').Create('', 1, 1, 1, gdal_type)
    band = dataset.GetRasterBand(1)
    band.WriteArray(numpy.array([[value]], dtype=numpy.float64))
    return float(band.ReadAsArray()[0, 0])


def convolve_2d(signal_path_band, kernel_path_band, target_path,
                ignore_nodata_and_edges=False, mask_nodata=True,
                normalize_kernel=False, target_datatype=gdal.GDT_Float64,
                target_nodata=None, working_dir=None, set_tol_to_zero=1e-8,
                max_timeout=_MAX_TIMEOUT,
                raster_driver_creation_tuple=_gdal.DEFAULT_GTIFF_CREATION_TUPLE_OPTIONS,
                *, executor=None, progress=None):
    """Convolve a 2-D kernel over a 2-D signal (pygeoprocessing's call).

    A true convolution (kernel flipped, centre ``K[rows//2, cols//2]``), zero
    outside the raster; signal nodata contributes 0 and is written as
    ``target_nodata`` when ``mask_nodata``; kernel nodata weighs 0 (in the kernel
    sum too). ``ignore_nodata_and_edges`` divides by the convolution of the valid
    mask (``* kernel sum`` unless ``normalize_kernel``). ``set_tol_to_zero``: results
    with ``|v| <= tol`` become 0 (None: none). ``target_nodata`` defaults to float32's
    lowest for Float64 and is required for other types. Computed in double by the
    plugin. ``working_dir`` holds a one-band copy of a kernel band other than 1;
    ``max_timeout`` is accepted and unused.
    ``executor``, ``progress``: as raster_calculator's.
    """
    if target_datatype is not gdal.GDT_Float64 and target_nodata is None:
        raise ValueError(
            "`target_datatype` is set, but `target_nodata` is None. `target_nodata` "
            "must be set if `target_datatype` is not `gdal.GDT_Float64`.  "
            "`target_nodata` is set to None.")
    if target_nodata is None:
        target_nodata = float(numpy.finfo(numpy.float32).min)
    if isinstance(target_nodata, numpy.generic):  # SetNoDataValue takes Python numbers
        target_nodata = target_nodata.item()
    bad = [(name, value) for name, value in (('signal', signal_path_band),
                                             ('kernel', kernel_path_band))
           if not _is_raster_path_band_formatted(value)]
    if bad:
        raise ValueError("Expected raster path band sequences for the following "
                         f"arguments but instead got: {bad}")
    for path_band in (signal_path_band, kernel_path_band):
        if 1 in _gdal.get_raster_info(path_band[0])['block_size']:
            raise ValueError(
                f'{path_band} has a row blocksize which can make this function run '
                'very slow, create a square blocksize using `warp_raster` or '
                '`align_and_resize_raster_stack` which creates square blocksizes by '
                'default')
    plan = resolve(executor)
    driver, options = raster_driver_creation_tuple
    options = _layout_of_base(options, signal_path_band[0])
    graph = Graph(_block_size(options))
    graph.source("signal", signal_path_band[0], signal_path_band[1])
    kernel_path, kernel_band = kernel_path_band
    # The plugin reads band 1 of a kernel file: another band is copied, with its
    # nodata, into a one-band file in working_dir (or the system's temporary folder).
    scratch = None if kernel_band == 1 else tempfile.mkdtemp(prefix='pgp-convolve-',
                                                             dir=working_dir)
    try:
        if scratch:
            _gdal.band_of(_gdal.open_raster(kernel_path), kernel_band, kernel_path)
            kernel_path = os.path.join(scratch, 'kernel.tif')
            gdal.Translate(kernel_path, kernel_path_band[0], bandList=[kernel_band])
        graph.convolve("convolved", "signal", kernel_path,
                       normalize_kernel=normalize_kernel,
                       ignore_nodata_and_edges=ignore_nodata_and_edges,
                       mask_nodata=mask_nodata, set_tol_to_zero=set_tol_to_zero,
                       data_type=gdal.GetDataTypeName(target_datatype),
                       nodata=_as_stored(target_nodata, target_datatype))
        graph.band("convolved")
        with plan:
            _render(plan, graph, target_path, (driver, options), False, progress,
                    nodata=[target_nodata])
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _write_mask(grid_path, mask_options):
    """mask_options['mask_raster_path']: the Byte mask pygeoprocessing keeps there (1
    inside the selected polygons by pixel centre, 0 elsewhere and nodata), on the
    aligned grid."""
    grid = _gdal.open_raster(grid_path)
    mask = gdal.GetDriverByName('GTiff').Create(
        mask_options['mask_raster_path'], grid.RasterXSize, grid.RasterYSize, 1,
        gdal.GDT_Byte, list(_gdal.DEFAULT_CREATION_OPTIONS))
    mask.SetGeoTransform(grid.GetGeoTransform())
    mask.SetProjection(grid.GetProjection())
    mask.GetRasterBand(1).SetNoDataValue(0)
    mask.GetRasterBand(1).Fill(0)
    options = {'burnValues': [1]}
    if mask_options.get('mask_layer_name'):
        options['layers'] = [mask_options['mask_layer_name']]
    if mask_options.get('mask_vector_where_filter'):
        options['where'] = mask_options['mask_vector_where_filter']
    if gdal.Rasterize(mask, mask_options['mask_vector_path'], **options) is None:
        raise RuntimeError(f"rasterizing {mask_options['mask_vector_path']} into "
                           f"{mask_options['mask_raster_path']} failed: "
                           f"{gdal.GetLastErrorMsg()}")
    mask = None


def _assert_is_valid_pixel_size(target_pixel_size):
    def is_number(x):
        if isinstance(x, str):
            return False
        try:
            float(x)
            return True
        except (ValueError, TypeError):
            return False

    if not isinstance(target_pixel_size, (list, tuple)):
        raise ValueError(f"target_pixel_size is not a tuple, its value was "
                         f"'{target_pixel_size!r}'")
    if len(target_pixel_size) != 2 or not all(is_number(x) for x in target_pixel_size):
        raise ValueError("Invalid value for `target_pixel_size`, expected two numerical "
                         f"elements, got: {target_pixel_size!r}")


def require_traditional_axis_order(osr_axis_mapping_strategy, what):
    """The plugin's warps take x, y in the traditional GIS order: any other
    osr_axis_mapping_strategy is a ValueError."""
    if osr_axis_mapping_strategy != osr.OAMS_TRADITIONAL_GIS_ORDER:
        raise ValueError(f"pgp {what} with the traditional GIS axis order only "
                         "(osr.OAMS_TRADITIONAL_GIS_ORDER)")


def align_and_resize_raster_stack(
        base_raster_path_list, target_raster_path_list, resample_method_list,
        target_pixel_size, bounding_box_mode, base_vector_path_list=None,
        raster_align_index=None, base_projection_wkt_list=None,
        target_projection_wkt=None, mask_options=None, vector_mask_options=None,
        gdal_warp_options=None,
        raster_driver_creation_tuple=_gdal.DEFAULT_GTIFF_CREATION_TUPLE_OPTIONS,
        osr_axis_mapping_strategy=DEFAULT_OSR_AXIS_MAPPING_STRATEGY, working_dir=None,
        *, executor=None, progress=None):
    """Resample rasters onto one grid (pygeoprocessing's call), through GDAL's warper
    in the plugin.

    The grid follows pygeoprocessing: ``bounding_box_mode`` 'union',
    'intersection' or [minx, miny, maxx, maxy]; vectors' extents join
    union/intersection; ``raster_align_index`` snaps the min corner to that
    raster's grid; ceiling-sized grid anchored at the lower left, north up. Each
    target keeps its source's type and nodata. ``mask_options`` ({'mask_vector_path',
    'mask_layer_name', 'mask_vector_where_filter'}) sets pixels outside the
    polygons to nodata; with 'mask_raster_path' the mask is also written there.
    ``gdal_warp_options`` is not supported (ValueError).
    ``executor``: the windows of each target run on it.
    """
    if vector_mask_options is not None:
        warnings.warn('The vector_mask_options parameter is deprecated and will be '
                      'removed in a future release of pygeoprocessing. Please use '
                      'mask_options instead.', DeprecationWarning)
        mask_options = vector_mask_options
    lengths = [len(base_raster_path_list), len(target_raster_path_list),
               len(resample_method_list)]
    if len(set(lengths)) != 1:
        raise ValueError("base_raster_path_list, target_raster_path_list, and "
                         "resample_method_list must be the same length  current "
                         f"lengths are {lengths}")
    seen, duplicates = set(), []
    for path in target_raster_path_list:
        (duplicates.append if path in seen else seen.add)(path)
    if duplicates:
        raise ValueError("There are duplicated paths on the target list. This is an "
                         f"invalid state of ``target_path_list``. Duplicates: {duplicates}")
    if bounding_box_mode not in ["union", "intersection"] and (
            not isinstance(bounding_box_mode, (list, tuple)) or len(bounding_box_mode) != 4):
        raise ValueError(f"Unknown bounding_box_mode {bounding_box_mode}")
    n_rasters = len(base_raster_path_list)
    if raster_align_index is not None and not 0 <= raster_align_index < n_rasters:
        raise ValueError("Alignment index is out of bounds of the datasets index: "
                         f"{raster_align_index} n_elements {n_rasters}")
    _assert_is_valid_pixel_size(target_pixel_size)
    if gdal_warp_options:
        raise ValueError("gdal_warp_options is not supported by pgp's "
                         "align_and_resize_raster_stack (the plugin's warps take no "
                         f"extra options): {gdal_warp_options!r}")
    require_traditional_axis_order(osr_axis_mapping_strategy, "aligns")
    if mask_options and 'mask_vector_path' not in mask_options:
        raise ValueError('mask_options passed, but no value for "mask_vector_path": '
                         f'{mask_options}')
    if target_projection_wkt:
        for index, path in enumerate(base_raster_path_list):
            given = base_projection_wkt_list[index] if base_projection_wkt_list else None
            if not given and not _gdal.get_raster_info(path)['projection_wkt']:
                raise ValueError(f"no projection for raster {path}")
    plan = resolve(executor)
    driver, options = raster_driver_creation_tuple
    # Sources with a given projection are read through a VRT that declares it (the
    # plugin's <Source> has no SRS override); the VRTs live until the end, in
    # working_dir or the system's temporary folder (workers must see them).
    scratch = tempfile.mkdtemp(prefix='pgp-align-', dir=working_dir)
    try:
        paths = []
        for index, path in enumerate(base_raster_path_list):
            given = base_projection_wkt_list[index] if base_projection_wkt_list else None
            if given:
                paths.append(os.path.join(scratch, f"r{index}.vrt"))
                gdal.Translate(paths[-1], path, format="VRT", outputSRS=given)
            else:
                paths.append(path)
        names = [f"r{index}" for index in range(n_rasters)]
        box = (bounding_box_mode if isinstance(bounding_box_mode, str)
               else [float(v) for v in bounding_box_mode])
        mask = None
        if mask_options:
            mask = {'vector': mask_options['mask_vector_path'],
                    'layer': mask_options.get('mask_layer_name'),
                    'where': mask_options.get('mask_vector_where_filter')}
        with plan:
            for index, target in enumerate(target_raster_path_list):
                graph = Graph(_block_size(options))
                for name, path in zip(names, paths):
                    graph.source(name, path)
                source = _gdal.open_raster(paths[index])
                # pygeoprocessing's gdal.Warp carries every band of the source: the
                # others join as sources of the same raster (the same box).
                bands = [names[index]] + [
                    graph.source(f"{names[index]}_b{band}", paths[index], band)
                    for band in range(2, source.RasterCount + 1)]
                resampling = dict(zip(names, resample_method_list))
                resampling.update({name: resample_method_list[index] for name in bands})
                graph.align(
                    target_pixel_size, box,
                    align_to=None if raster_align_index is None else names[raster_align_index],
                    srs=target_projection_wkt or None, resampling=resampling,
                    vectors=None if isinstance(box, list) else base_vector_path_list,
                    mask=mask)
                for name in bands:
                    graph.band(name)
                # Without a target SRS no source is reprojected; pygeoprocessing
                # labels each output with its own source's SRS.
                projection = None if target_projection_wkt else source.GetProjection()
                try:
                    # pygeoprocessing masks through raster_calculator: statistics.
                    # gdalwarp carries the source's metadata and band properties.
                    _render(plan, graph, target, raster_driver_creation_tuple,
                            mask is not None, progress, projection=projection,
                            like=source)
                except RuntimeError as error:
                    # The grid fails before anything is written; pygeoprocessing's
                    # merge_bounding_box_list raises ValueError for both boxes.
                    if "not intersect" not in str(error):
                        raise
                    raise ValueError(f"Bounding boxes do not intersect: {error}") from error
                LOGGER.info('%d of %d aligned: %s', index + 1, n_rasters,
                            os.path.basename(target))
        if mask_options and mask_options.get('mask_raster_path'):
            _write_mask(target_raster_path_list[0], mask_options)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
