"""pygeoprocessing's stitch_rasters as a <Stitch> graph, rendered beside the target
and moved over it only once complete: a failure leaves the target as it was."""
import os
import shutil
import struct
import uuid

from osgeo import gdal

from . import _gdal
from .calls import _is_raster_path_band_formatted
from .executors import resolve
from .graph import Graph, _render, copy_properties
from .graphcalls import DEFAULT_OSR_AXIS_MAPPING_STRATEGY, require_traditional_axis_order

OVERLAP_ALGORITHMS = ['etch', 'replace', 'add']
# pygeoprocessing's get_gis_type bits.
RASTER_TYPE, VECTOR_TYPE = 1, 2
_TIFF_TILE_WIDTH_TAG = 322


def stitch_rasters(base_raster_path_band_list, resample_method_list,
                   target_stitch_raster_path_band, overlap_algorithm='etch',
                   area_weight_m2_to_wgs84=False,
                   osr_axis_mapping_strategy=DEFAULT_OSR_AXIS_MAPPING_STRATEGY,
                   *, executor=None, progress=None):
    """Stitch the (path, band) rasters into an existing target band (pygeoprocessing's
    call), in list order.

    ``overlap_algorithm``: 'etch' (a base pixel is written only where the target is
    still nodata), 'replace' (every valid base pixel) or 'add' (base + target, nodata
    counting as 0). A base on another grid or SRS is warped onto the target's pixel
    size with its ``resample_method_list`` method; ``area_weight_m2_to_wgs84`` scales
    a warped base's values by the WGS84 area of its pixels over its own pixel area.
    The rules and the differences from pygeoprocessing: docs/semantics.md#stitch.

    The target's other bands, data type, nodata, SRS, geotransform, band descriptions
    and metadata and (for GeoTIFF) its layout and compression are kept: the result is
    written under a temporary name in the target's folder and replaces the target only
    when complete. ``executor``, ``progress``: as raster_calculator's.
    """
    if overlap_algorithm not in OVERLAP_ALGORITHMS:
        raise ValueError(f'overlap algorithm {overlap_algorithm} is not one of '
                         f'{OVERLAP_ALGORITHMS}')
    if not _is_raster_path_band_formatted(target_stitch_raster_path_band):
        raise ValueError('Expected raster path/band tuple for '
                         'target_stitch_raster_path_band but got '
                         f'"{target_stitch_raster_path_band}"')
    if len(base_raster_path_band_list) != len(resample_method_list):
        raise ValueError('Expected same number of elements in '
                         '`base_raster_path_band_list` as `resample_method_list` but '
                         f'got {len(base_raster_path_band_list)} != '
                         f'{len(resample_method_list)} respectively')
    target_path, target_band = target_stitch_raster_path_band
    gis_type = _gis_type(target_path)
    if gis_type != RASTER_TYPE:
        raise ValueError(f'Target stitch raster is not a raster. Location: '
                         f'"{target_path}" GIS type: {gis_type}')
    target = _gdal.open_raster(target_path)
    if not 1 <= target_band <= target.RasterCount:
        raise ValueError('target_stitch_raster_path_band refers to a band that exceeds '
                         'the number of bands in the raster:\n'
                         f'target_stitch_raster_path_band[1]: {target_band} '
                         f'n bands: {target.RasterCount}')
    if target.GetRasterBand(target_band).GetNoDataValue() is None:
        raise ValueError(f'target stitch raster at "{target_path} "nodata value is '
                         '`None`, expected non-`None` value')
    require_traditional_axis_order(osr_axis_mapping_strategy, "stitches")
    for base in base_raster_path_band_list:
        if not _is_raster_path_band_formatted(base):
            raise ValueError(f'Expected raster path/band tuples in '
                             f'base_raster_path_band_list but got "{base}"')
        if ':' not in base[0] and gdal.VSIStatL(base[0]) is None:  # not /vsi, NETCDF:…
            raise RuntimeError(f'{base[0]}: No such file or directory (a base of '
                               f'stitch_rasters into {target_path})')
    if target_path.startswith('/vsi'):
        raise ValueError(f'{target_path}: pgp stitches into a file on disk only (the '
                         'result replaces it by a rename)')
    plan = resolve(executor)  # a bad executor= fails before anything is written
    if not base_raster_path_band_list:
        return
    graph = _stitch_graph(target, target_path, target_band, base_raster_path_band_list,
                          resample_method_list, overlap_algorithm,
                          area_weight_m2_to_wgs84)
    # A symbolic link's file is replaced, not the link.
    folder, name = os.path.split(os.path.realpath(target_path))
    stem, ext = os.path.splitext(name)
    scratch = os.path.join(folder, f".{stem}.pgp-stitch-{uuid.uuid4().hex[:12]}{ext}")
    try:
        with plan:
            creation = _creation_tuple(target, target_path, plan.workers)
            _render(plan, graph, scratch, creation, False, progress)
        _copy_properties(target, scratch, target_band)
        target = None
        shutil.copymode(os.path.join(folder, name), scratch)
        _replace(scratch, os.path.join(folder, name))
    finally:
        for path in _files_of(scratch):
            os.remove(path)


def _gis_type(path):
    """pygeoprocessing's get_gis_type: RASTER_TYPE | VECTOR_TYPE, as the path opens."""
    def opens(flag):
        try:
            return gdal.OpenEx(path, flag) is not None
        except RuntimeError:  # the caller turned gdal.UseExceptions() on
            return False

    gdal.PushErrorHandler('CPLQuietErrorHandler')
    try:
        gis_type = sum(kind for kind, flag in ((RASTER_TYPE, gdal.OF_RASTER),
                                               (VECTOR_TYPE, gdal.OF_VECTOR))
                       if opens(flag))
    finally:
        gdal.PopErrorHandler()
    if not gis_type:
        raise ValueError(f"Could not open {path} as a gdal.OF_RASTER or gdal.OF_VECTOR.")
    return gis_type


def _stitch_graph(target, target_path, target_band, bases, resamplings, overlap,
                  area_weight):
    """Every band of the target as a source; the stitched one through a <Stitch>."""
    block = target.GetRasterBand(1).GetBlockSize()
    graph = Graph(block if block[0] < target.RasterXSize else (256, 256))
    for band in range(1, target.RasterCount + 1):
        graph.source(f"band{band}", target_path, band)
    graph.stitch("stitched", f"band{target_band}",
                 [(path, band, method) for (path, band), method in zip(bases, resamplings)],
                 overlap, area_weight)
    for band in range(1, target.RasterCount + 1):
        graph.band("stitched" if band == target_band else f"band{band}")
    return graph


def _creation_tuple(dataset, path, threads):
    """(driver, creation options) that rebuild the target's layout as far as GDAL
    reports it: for GeoTIFF, tiles or strips and their size, compression, predictor,
    interleaving, bit depth and BigTIFF; compression on ``threads`` threads."""
    driver = dataset.GetDriver().ShortName
    if driver != "GTiff":
        return driver, ()
    block_x, block_y = dataset.GetRasterBand(1).GetBlockSize()
    tiled, bigtiff = _tiff_layout(path)
    options = (["TILED=YES", f"BLOCKXSIZE={block_x}", f"BLOCKYSIZE={block_y}"]
               if tiled else [f"BLOCKYSIZE={block_y}"])
    options.append("BIGTIFF=YES" if bigtiff else "BIGTIFF=IF_SAFER")
    structure = dataset.GetMetadata("IMAGE_STRUCTURE") or {}
    compression = structure.get("COMPRESSION")
    if compression == "YCbCr JPEG":
        options += ["COMPRESS=JPEG", "PHOTOMETRIC=YCBCR"]
    elif compression:
        options.append(f"COMPRESS={compression}")
    if compression and threads > 1:
        # The writer would otherwise compress every tile alone (most of the work when
        # the stitch itself is cheap); not stored in the file.
        options.append(f"NUM_THREADS={threads}")
    if structure.get("PREDICTOR"):
        options.append(f"PREDICTOR={structure['PREDICTOR']}")
    if dataset.RasterCount > 1 and structure.get("INTERLEAVE"):
        options.append(f"INTERLEAVE={structure['INTERLEAVE']}")
    nbits = dataset.GetRasterBand(1).GetMetadataItem("NBITS", "IMAGE_STRUCTURE")
    if nbits:
        options.append(f"NBITS={nbits}")
    return driver, tuple(options)


def _tiff_layout(path):
    """(tiled, BigTIFF) of a TIFF from its header and first directory (GDAL reports
    block sizes but not whether they are tiles or strips)."""
    handle = gdal.VSIFOpenL(path, "rb")
    if handle is None:
        raise RuntimeError(f"{path}: cannot be read")
    try:
        header = gdal.VSIFReadL(1, 16, handle)
        order = "<" if header[:2] == b"II" else ">"
        bigtiff = struct.unpack(order + "H", header[2:4])[0] == 43
        count_format, entry_size = ("Q", 20) if bigtiff else ("H", 12)
        offset = struct.unpack(order + ("Q" if bigtiff else "I"),
                               header[8:16] if bigtiff else header[4:8])[0]
        gdal.VSIFSeekL(handle, offset, 0)
        count_size = struct.calcsize(count_format)
        count = struct.unpack(order + count_format,
                              gdal.VSIFReadL(1, count_size, handle))[0]
        entries = gdal.VSIFReadL(1, count * entry_size, handle)
    finally:
        gdal.VSIFCloseL(handle)
    tags = {struct.unpack_from(order + "H", entries, i * entry_size)[0]
            for i in range(len(entries) // entry_size)}
    return _TIFF_TILE_WIDTH_TAG in tags, bigtiff


def _copy_properties(target, path, stitched_band):
    """The target's properties (copy_properties) written into the rendered file; the
    stitched band's statistics are dropped: they describe the old values."""
    copy = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_UPDATE)
    if copy is None:
        raise RuntimeError(f"{path}: {gdal.GetLastErrorMsg() or 'cannot be updated'}")
    copy_properties(target, copy, {stitched_band})
    copy.FlushCache()
    copy = None


def _files_of(path):
    """The files a rendered raster consists of (none once moved)."""
    folder, name = os.path.split(path)
    stem = os.path.splitext(name)[0]
    return [os.path.join(folder, f) for f in os.listdir(folder) if f.startswith(stem)]


def _replace(scratch, target_path):
    """Moves the rendered files over the target's (sidecars first, the raster last):
    each move is atomic. A sidecar .aux.xml of the old target describes old values
    (its metadata was copied into the new file) and goes."""
    stem = os.path.splitext(scratch)[0]
    target_stem = os.path.splitext(target_path)[0]
    moves = [(path, target_stem + path[len(stem):]) for path in _files_of(scratch)]
    moves.sort(key=lambda move: move[0] == scratch)
    for source, destination in moves:
        os.replace(source, destination)
    stale = target_path + ".aux.xml"
    if stale not in [destination for _, destination in moves] and os.path.exists(stale):
        os.remove(stale)
