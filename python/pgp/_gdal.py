"""Small osgeo.gdal helpers that raise instead of returning None, without touching
the process-wide gdal.UseExceptions() state (tasks run in many threads).

numpy, and osgeo.gdal_array which loads it, are imported by the functions that use
them: ``pgp render`` runs without them (docs/design-notes.md)."""
import threading

from osgeo import gdal

DEFAULT_CREATION_OPTIONS = ('TILED=YES', 'BIGTIFF=YES', 'COMPRESS=LZW',
                            'BLOCKXSIZE=256', 'BLOCKYSIZE=256')
DEFAULT_GTIFF_CREATION_TUPLE_OPTIONS = ('GTIFF', DEFAULT_CREATION_OPTIONS)
GDAL_37 = int(gdal.VersionInfo()) >= 3070000


def open_raster(path, open_options=()):
    """gdal.OpenEx; RuntimeError (GDAL's class) naming the path when it fails."""
    dataset = gdal.OpenEx(path, gdal.OF_RASTER, open_options=list(open_options))
    if dataset is None:
        if path.lstrip().startswith("<"):  # a graph's XML text: its error names the node
            raise RuntimeError(f"graph: {gdal.GetLastErrorMsg() or 'cannot be opened'}")
        if gdal.VSIStatL(path) is None:
            raise RuntimeError(f"{path}: No such file or directory")
        raise RuntimeError(f"{path}: {gdal.GetLastErrorMsg() or 'cannot be opened'}")
    return dataset


_LOCAL = threading.local()


def open_for_call(call, path, open_options=()):
    """open_raster, kept in this thread for the rest of the call (opening costs about a
    millisecond, a window's read a tenth of that). A new call token drops the handles
    of the previous call; a pool thread keeps its handles until then or until it
    exits."""
    handles = getattr(_LOCAL, "handles", None)
    if handles is None or handles[0] != call:
        handles = _LOCAL.handles = (call, {})
    key = (path, tuple(open_options))
    if key not in handles[1]:
        handles[1][key] = open_raster(path, open_options)
    return handles[1][key]


def release_handles():
    """Closes the handles this thread kept (the caller's, at the end of a call)."""
    _LOCAL.handles = None


def band_of(dataset, index, path):
    band = dataset.GetRasterBand(index) if 1 <= index <= dataset.RasterCount else None
    if band is None:
        raise RuntimeError(f"{path}: Illegal band # {index} (the raster has "
                           f"{dataset.RasterCount})")
    return band


def read(source, window, path):
    """ReadAsArray of a band over (xoff, yoff, xsize, ysize); the blocks it brought
    into GDAL's cache are dropped, so a kept handle does not grow the cache."""
    xoff, yoff, xsize, ysize = window
    array = source.ReadAsArray(xoff, yoff, xsize, ysize)
    if array is None:
        raise RuntimeError(f"{path}: reading window {window} failed: "
                           f"{gdal.GetLastErrorMsg()}")
    source.FlushCache()
    return array


def numpy_type(band):
    """The numpy type of a band, int8 for GDAL 3.6's signed bytes."""
    import numpy
    from osgeo import gdal_array
    if (not GDAL_37 and band.DataType == gdal.GDT_Byte and
            band.GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") == "SIGNEDBYTE"):
        return numpy.int8
    numpy_type = gdal_array.GDALTypeCodeToNumericTypeCode(band.DataType)
    if numpy_type is None:
        raise ValueError(f"Unsupported DataType: {band.DataType}")
    return numpy_type


def gdal_type_of(dtype):
    """(GDAL type, extra creation options) for a numpy dtype (signed bytes on 3.6)."""
    import numpy
    from osgeo import gdal_array
    dtype = numpy.dtype(dtype)
    if not GDAL_37 and dtype == numpy.dtype(numpy.int8):
        return gdal.GDT_Byte, ['PIXELTYPE=SIGNEDBYTE']
    gdal_type = gdal_array.NumericTypeCodeToGDALTypeCode(dtype)
    if gdal_type is None:
        raise ValueError(f"Unsupported DataType: {dtype}")
    return gdal_type, []


def get_raster_info(raster_path):
    """pygeoprocessing.get_raster_info: pixel_size, raster_size, nodata, n_bands,
    geotransform, datatype, projection_wkt, bounding_box, block_size, numpy_type,
    overviews, file_list."""
    import numpy
    raster = open_raster(raster_path)
    info = {'file_list': raster.GetFileList()}
    info['projection_wkt'] = raster.GetProjection() or None
    geotransform = raster.GetGeoTransform()
    info['geotransform'] = geotransform
    info['pixel_size'] = (geotransform[1], geotransform[5])
    first = raster.GetRasterBand(1)
    info['raster_size'] = (first.XSize, first.YSize)
    info['n_bands'] = raster.RasterCount
    info['nodata'] = [raster.GetRasterBand(i).GetNoDataValue()
                      for i in range(1, raster.RasterCount + 1)]
    info['overviews'] = [(first.GetOverview(i).XSize, first.GetOverview(i).YSize)
                         for i in range(first.GetOverviewCount())]
    info['block_size'] = first.GetBlockSize()
    nx, ny = info['raster_size']
    x_bounds = [geotransform[0], geotransform[0] + nx * geotransform[1] + ny * geotransform[2]]
    y_bounds = [geotransform[3], geotransform[3] + nx * geotransform[4] + ny * geotransform[5]]
    info['bounding_box'] = [numpy.min(x_bounds), numpy.min(y_bounds),
                            numpy.max(x_bounds), numpy.max(y_bounds)]
    info['datatype'] = first.DataType
    info['numpy_type'] = numpy_type(first)
    return info
