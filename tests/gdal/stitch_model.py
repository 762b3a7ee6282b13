"""An independent numpy model of stitching (docs/semantics.md#stitch), written from
pygeoprocessing's stitch_rasters with its left/top clipping fixed, for the tests to
compare <Stitch> and pgp.stitch_rasters against. Whole arrays in memory: small
rasters only.

    model = stitch(target_path, 1, [(path, band), ...], ["near", ...], "etch")

Warped bases go through gdal.Warp onto warp_raster's own grid (the base's box
transformed into the target's SRS, the target's pixel size), as pygeoprocessing
does, then are placed like every base: the upper-left corner through the target's
inverse geotransform, truncated toward zero.
"""
import math

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

NUMPY_OF_GDAL = {
    gdal.GDT_Byte: np.uint8, gdal.GDT_Int16: np.int16, gdal.GDT_UInt16: np.uint16,
    gdal.GDT_Int32: np.int32, gdal.GDT_UInt32: np.uint32, gdal.GDT_Float32: np.float32,
    gdal.GDT_Float64: np.float64,
}


def is_nodata(values, nodata):
    """Exact for integer arrays, |v - nd| <= 1e-8 + 1e-5|nd| for floats, NaN
    matching a NaN nodata."""
    if nodata is None:
        return np.zeros(values.shape, bool)
    if np.issubdtype(values.dtype, np.integer):
        return values == nodata
    return np.isclose(values, nodata, equal_nan=True)


def convert(values, dtype):
    """A double into the target's type as numpy's assignment does it (truncation
    toward zero for integers), saturating, NaN -> 0."""
    dtype = np.dtype(dtype)
    values = np.asarray(values, np.float64)
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            return values.astype(dtype)
    info = np.iinfo(dtype)
    values = np.where(np.isnan(values), 0, np.trunc(values))
    return np.clip(values, info.min, info.max).astype(dtype)


def _bbox(gt, cols, rows):
    xs = (gt[0], gt[0] + cols * gt[1] + rows * gt[2])
    ys = (gt[3], gt[3] + cols * gt[4] + rows * gt[5])
    return [min(xs), min(ys), max(xs), max(ys)]


def _srs(wkt):
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def transform_bbox(box, src_wkt, dst_wkt, samples=11):
    """pygeoprocessing's transform_bounding_box: 11 points per edge."""
    transform = osr.CoordinateTransformation(_srs(src_wkt), _srs(dst_wkt))

    def edge(a, b):
        return [transform.TransformPoint(float(x), float(y))[:2]
                for x, y in np.linspace(a, b, samples)]
    ul, ll = (box[0], box[3]), (box[0], box[1])
    lr, ur = (box[2], box[1]), (box[2], box[3])
    minx = min(p[0] for p in edge(ul, ll))
    miny = min(p[1] for p in edge(ll, lr))
    maxx = max(p[0] for p in edge(lr, ur))
    maxy = max(p[1] for p in edge(ur, ul))
    return [min(minx, maxx), min(miny, maxy), max(minx, maxx), max(miny, maxy)]


def _warp_grid(box, pixel):
    """warp_raster's size rule: truncate, +1 unless the residual is ~0."""
    sizes = []
    for extent, p in ((box[2] - box[0], pixel[0]), (box[3] - box[1], pixel[1])):
        n = int(abs(extent / p))
        if not np.isclose(abs(n * p) - extent, 0.0):
            n += 1
        sizes.append(max(n, 1))
    box = [box[0], box[1], box[0] + abs(pixel[0] * sizes[0]),
           box[1] + abs(pixel[1] * sizes[1])]
    return box, sizes


def _m2_area_of_wgs84_pixel(pixel_size, center_lat):
    a, b = 6378137, 6356752.3142
    e = math.sqrt(1 - (b / a) ** 2)
    areas = []
    for f in (center_lat + pixel_size / 2, center_lat - pixel_size / 2):
        zm = 1 - e * math.sin(math.radians(f))
        zp = 1 + e * math.sin(math.radians(f))
        areas.append(math.pi * b ** 2 * (math.log(zp / zm) / (2 * e) +
                                         math.sin(math.radians(f)) / (zp * zm)))
    return abs(pixel_size / 360. * (areas[0] - areas[1]))


def area_scale_column(lat_min, lat_max, rows, base_pixel_area):
    """Per-row factor: a WGS84 pixel's m^2 area at the row's centre latitude over
    the base's pixel area (row 0 the northernmost)."""
    size = (lat_max - lat_min) / rows
    centres = np.linspace(lat_min + size / 2, lat_max - size / 2, rows)
    areas = np.array([_m2_area_of_wgs84_pixel(size, lat) for lat in reversed(centres)])
    return (areas / base_pixel_area).reshape((rows, 1))


def prepare_base(path, band, resampling, target, area_weight):
    """(array, geotransform, nodata) of a base on the target's pixel size and SRS."""
    ds = gdal.Open(path)
    gt, wkt = ds.GetGeoTransform(), ds.GetProjection()
    nodata = ds.GetRasterBand(band).GetNoDataValue()
    if wkt == target["wkt"] and (gt[1], gt[5]) == target["pixel"]:
        return ds.GetRasterBand(band).ReadAsArray(), gt, nodata
    box = transform_bbox(_bbox(gt, ds.RasterXSize, ds.RasterYSize), wkt, target["wkt"])
    box, _ = _warp_grid(box, target["pixel"])
    warped = gdal.Warp("", ds, format="MEM", outputBounds=box,
                       xRes=abs(target["pixel"][0]), yRes=abs(target["pixel"][1]),
                       resampleAlg=resampling, dstSRS=target["wkt"])
    array = warped.GetRasterBand(band).ReadAsArray()
    if area_weight:
        scale = area_scale_column(box[1], box[3], array.shape[0], abs(gt[1] * gt[5]))
        result = array.astype(target["dtype"])
        valid = ~is_nodata(array, nodata)
        scaled = result.astype(np.float64) * np.broadcast_to(scale, array.shape)
        result[valid] = convert(scaled[valid], target["dtype"])
        array = result
    return array, warped.GetGeoTransform(), nodata


def stitch(target_path, target_band, bases, resamplings, overlap, area_weight=False):
    """The target band's pixels after stitching bases ((path, band) pairs) in order."""
    ds = gdal.Open(target_path)
    band = ds.GetRasterBand(target_band)
    out = band.ReadAsArray()
    target = {"wkt": ds.GetProjection(), "dtype": out.dtype,
              "pixel": (ds.GetGeoTransform()[1], ds.GetGeoTransform()[5])}
    inverse = gdal.InvGeoTransform(ds.GetGeoTransform())
    target_nodata = band.GetNoDataValue()
    rows, cols = out.shape
    for (path, base_band), resampling in zip(bases, resamplings):
        array, gt, nodata = prepare_base(path, base_band, resampling, target, area_weight)
        x, y = (int(v) for v in gdal.ApplyGeoTransform(inverse, gt[0], gt[3]))
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + array.shape[1], cols), min(y + array.shape[0], rows)
        if x0 >= x1 or y0 >= y1:
            continue
        base = array[y0 - y:y1 - y, x0 - x:x1 - x].astype(np.float64)
        window = out[y0:y1, x0:x1]
        write = ~is_nodata(array[y0 - y:y1 - y, x0 - x:x1 - x], nodata)
        if overlap == "etch":
            write &= is_nodata(window, target_nodata)
        elif overlap == "add":
            current = np.where(is_nodata(window, target_nodata), 0.0,
                               window.astype(np.float64))
            base = base + current
        window[write] = convert(base[write], out.dtype)
    return out
