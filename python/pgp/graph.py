"""pgp's own calls: the Graph builder (writes .pgp.vrt) and render().

A render task is (graph, window of whole tiles): it opens the graph itself, from its
path or its XML text, in its own thread or process with EXECUTOR=serial, and returns
the window's pixels. No GDAL object crosses a thread or process.
"""
import contextlib
import functools
import logging
import os
import uuid
import xml.etree.ElementTree as ET

from osgeo import gdal

from . import _engine
from . import _gdal
from . import _target
from .distributed import ClusterExecutor
from .executors import Plan, check_visible_paths, resolve

_LOGGER = logging.getLogger("pgp")
_TASK_OPEN_OPTIONS = ("EXECUTOR=serial", "PREFETCH=0")


def _number(value):
    """A number as the plugin parses it, exactly (repr round-trips doubles)."""
    import numpy  # building graphs, not rendering them, needs it
    if isinstance(value, (bool, numpy.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, numpy.integer)):
        return str(int(value))
    return repr(float(value))


def _path(path):
    """Paths are stored absolute (graphs may be given as XML text, whose relative
    paths would resolve against the reader's current folder); /vsi paths unchanged."""
    return path if path.startswith("/vsi") else os.path.abspath(path)


class Graph:
    """Builds a ``.pgp.vrt`` graph: sources, an optional align, calcs, convolutions
    and output bands. Each method returns the node's name for use in later nodes::

        g = pgp.Graph()
        g.source("dem", "dem.tif")
        g.calc("slope2", "dem * 2", data_type="Float32", nodata=-1)
        g.band("slope2")
        g.write("out.pgp.vrt")   # or pgp.render(g, "out.tif")
    """

    def __init__(self, block_size=(256, 256)):
        self.root = ET.Element("PGPDataset", blockXSize=str(int(block_size[0])),
                               blockYSize=str(int(block_size[1])))
        self._align = None

    def source(self, name, path, band=1, nodata=None):
        """A raster band; ``nodata`` overrides the band's."""
        attributes = {"name": name, "file": _path(path), "band": str(int(band))}
        if nodata is not None:
            attributes["noData"] = _number(nodata)
        ET.SubElement(self.root, "Source", attributes)
        return name

    def align(self, pixel_size, bounding_box="intersection", align_to=None, srs=None,
              resampling=None, vectors=None, mask=None):
        """Puts every source on one grid (align_and_resize_raster_stack).

        bounding_box: 'intersection', 'union' or (xmin, ymin, xmax, ymax);
        resampling: {source name: GDAL resampling name}, default near;
        vectors: paths whose extents join the union/intersection;
        mask: {'vector': path, 'layer': name, 'where': filter}."""
        if self._align is not None:
            raise ValueError("a graph has at most one align")
        attributes = {"pixelSize": ",".join(_number(v) for v in pixel_size)}
        if isinstance(bounding_box, str):
            attributes["boundingBox"] = bounding_box
        else:
            attributes["boundingBox"] = ",".join(_number(v) for v in bounding_box)
        if align_to is not None:
            attributes["alignTo"] = align_to
        if srs:
            attributes["srs"] = srs
        if vectors:
            attributes["vectors"] = ",".join(_path(v) for v in vectors)
        self._align = ET.SubElement(self.root, "Align", attributes)
        for name, method in (resampling or {}).items():
            ET.SubElement(self._align, "Input", ref=name, resampling=method)
        if mask:
            mask_attributes = {"vector": _path(mask["vector"])}
            for key in ("layer", "where"):
                if mask.get(key) is not None:
                    mask_attributes[key] = mask[key]
            ET.SubElement(self._align, "Mask", mask_attributes)

    def calc(self, name, expression, data_type="Float64", nodata=None,
             nodata_policy="propagate"):
        """An expression in pgp's language (docs/driver.md) over node names."""
        attributes = {"name": name, "dataType": data_type, "noDataPolicy": nodata_policy}
        if nodata is not None:
            attributes["noData"] = _number(nodata)
        ET.SubElement(ET.SubElement(self.root, "Calc", attributes),
                      "Expression").text = expression
        return name

    def convolve(self, name, input, kernel, normalize_kernel=False,
                 ignore_nodata_and_edges=False, mask_nodata=True, set_tol_to_zero=1e-8,
                 data_type="Float64", nodata=None, method="auto"):
        """convolve_2d of node ``input`` by ``kernel``: a raster path (band 1) or a
        2-D array written inline."""
        attributes = {
            "name": name, "input": input,
            "normalizeKernel": str(bool(normalize_kernel)).lower(),
            "ignoreNoDataAndEdges": str(bool(ignore_nodata_and_edges)).lower(),
            "maskNoData": str(bool(mask_nodata)).lower(),
            "setTolToZero": "none" if set_tol_to_zero is None else _number(set_tol_to_zero),
            "dataType": data_type, "method": method}
        if nodata is not None:
            attributes["noData"] = _number(nodata)
        if isinstance(kernel, str):
            attributes["kernel"] = _path(kernel)
        element = ET.SubElement(self.root, "Convolve", attributes)
        if not isinstance(kernel, str):
            import numpy
            kernel = numpy.asarray(kernel, dtype=numpy.float64)
            if kernel.ndim != 2:
                raise ValueError(f"kernel of {name!r} must be 2-D, got shape {kernel.shape}")
            ET.SubElement(element, "Kernel", rows=str(kernel.shape[0]),
                          cols=str(kernel.shape[1])).text = " ".join(
                              repr(float(v)) for v in kernel.ravel())
        return name

    def stitch(self, name, target, bases, overlap="etch", area_weight_m2_to_wgs84=False):
        """stitch_rasters into the source ``target``: ``bases`` are (path, band,
        resampling) triples, folded in list order; overlap 'etch', 'replace' or
        'add'."""
        element = ET.SubElement(self.root, "Stitch", {
            "name": name, "target": target, "overlap": overlap,
            "areaWeightM2ToWGS84": str(bool(area_weight_m2_to_wgs84)).lower()})
        for path, band, resampling in bases:
            ET.SubElement(element, "Base", file=_path(path), band=str(int(band)),
                          resampling=resampling)
        return name

    def band(self, ref, description=None):
        """An output band showing node ``ref``."""
        attributes = {"ref": ref}
        if description is not None:
            attributes["description"] = description
        ET.SubElement(self.root, "Band", attributes)

    def to_xml(self):
        ET.indent(self.root)
        return ET.tostring(self.root, encoding="unicode") + "\n"

    def write(self, path):
        """Writes the graph as a .pgp.vrt file; returns the path."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_xml())
        return path

    def __str__(self):
        return self.to_xml()


def _graph_source(graph):
    """The string GDAL opens: a path (made absolute) or the XML text."""
    if isinstance(graph, Graph):
        return graph.to_xml()
    if not isinstance(graph, str):
        raise ValueError(f"graph must be a path, XML text or a pgp.Graph, got {graph!r}")
    return graph if graph.lstrip().startswith("<") else os.path.abspath(graph)


def shared_files(source):
    """The file attributes of a graph (sources, kernels, masks): what every worker
    must be able to open."""
    text = source
    if not source.lstrip().startswith("<"):
        handle = gdal.VSIFOpenL(source, "rb")
        if handle is None:
            return []  # the plugin reports the missing graph when it opens it
        try:
            size = gdal.VSIStatL(source).size
            text = gdal.VSIFReadL(1, size, handle).decode("utf-8", "replace")
        finally:
            gdal.VSIFCloseL(handle)
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return []  # the plugin reports the XML error when it opens the graph
    return [element.get(key) for element in root.iter()
            for key in ("file", "kernel", "vector") if element.get(key)]


def _read_window(dataset, bands, label, window):
    """The window of each requested band: a list of 2-D arrays."""
    return [_gdal.read(dataset.GetRasterBand(b), window, label) for b in bands]


def _render_window(source, bands, stats, checks, post, call, window):
    """One task: opens the graph serially (once per thread and call) and computes the
    window (_finish_window); stats: the bands' nodata for pygeoprocessing's rule."""
    dataset = _gdal.open_for_call(call, source, _TASK_OPEN_OPTIONS)
    return _finish_window(dataset, source, bands, stats, checks, post, window)


def _finish_window(dataset, source, bands, stats, checks, post, window):
    """Reads the window's bands; checks = (band, message): ValueError(message) if
    that band is non-zero anywhere in the window; post(block) rewrites each block;
    then each block's statistics summary (pygeoprocessing's rule) when asked."""
    label = "graph" if source.lstrip().startswith("<") else source
    if checks:
        band_index, message = checks
        if _gdal.read(dataset.GetRasterBand(band_index), window, label).any():
            raise ValueError(message)
    pixels = _read_window(dataset, bands, label, window)
    if post is not None:
        pixels = [post(block) for block in pixels]
    partials = None
    if stats:
        partials = [_engine.stats_partial(block, nodata)
                    for block, nodata in zip(pixels, stats)]
    return pixels, partials


def _copy_metadata(source, target):
    """The default-domain metadata items gdal_translate copies (statistics aside:
    the render writes its own)."""
    target.SetMetadata({key: value for key, value in source.GetMetadata().items()
                        if not key.startswith("STATISTICS_")})


def copy_properties(source, target, stale_statistics=()):
    """What gdalwarp carries from a source dataset to its output: the dataset's
    metadata and each band's description, metadata, unit, scale, offset, colour
    interpretation and table. Bands in stale_statistics drop their STATISTICS_*
    items (they describe other values)."""
    target.SetMetadata(source.GetMetadata())
    for index in range(1, source.RasterCount + 1):
        band, out = source.GetRasterBand(index), target.GetRasterBand(index)
        out.SetDescription(band.GetDescription())
        out.SetMetadata({key: value for key, value in band.GetMetadata().items()
                         if index not in stale_statistics or
                         not key.startswith("STATISTICS_")})
        if band.GetUnitType():
            out.SetUnitType(band.GetUnitType())
        if band.GetScale() not in (None, 1.0):
            out.SetScale(band.GetScale())
        if band.GetOffset() not in (None, 0.0):
            out.SetOffset(band.GetOffset())
        if out.GetColorInterpretation() != band.GetColorInterpretation():
            out.SetColorInterpretation(band.GetColorInterpretation())
        if band.GetColorTable() is not None:
            out.SetColorTable(band.GetColorTable())


def _render(plan, graph, target_path, raster_driver_creation_tuple, calc_raster_stats,
            progress, bands=None, stats_rule="gdal", checks=None, type_override=None,
            post=None, nodata=None, like_translate=False, projection=None, like=None):
    """Renders bands of a graph into target_path: all bands unless ``bands``; the
    target's type and nodata from the graph unless overridden; checks and post as
    in _finish_window; projection: the target's WKT instead of the graph's; like: a
    dataset whose properties the target takes (copy_properties) instead of the graph's.
    like_translate: every band's description and the dataset's and bands' metadata
    as gdal_translate copies them (pgp.render); otherwise, as pygeoprocessing's calls
    write, descriptions of multi-band targets only.
    Statistics: GDAL's rule (NaN and nodata skipped) summarised by the plugin as it
    writes, or stats_rule='pygeoprocessing' (raster_calculator's) from the blocks in
    Python. Serial and 'threading:N' renders without checks or post compute and write
    in the plugin (pgp/target.h); other executors return windows that the plugin
    writes."""
    source = _graph_source(graph)
    files = shared_files(source)
    if plan.kind not in ("serial", "threads"):
        check_visible_paths(plan, [source])
        check_visible_paths(plan, files)
    shared = _gdal.open_raster(source, (f"EXECUTOR=threading:{plan.plugin_threads}",)
                               if plan.plugin_threads else _TASK_OPEN_OPTIONS)
    bands = list(bands or range(1, shared.RasterCount + 1))
    first = shared.GetRasterBand(bands[0])
    size = (shared.RasterXSize, shared.RasterYSize)
    data_type = type_override or functools.reduce(
        gdal.DataTypeUnion, [shared.GetRasterBand(b).DataType for b in bands])
    driver, options = raster_driver_creation_tuple
    options = list(options)
    if (first.GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") == "SIGNEDBYTE" and
            "PIXELTYPE=SIGNEDBYTE" not in options):
        options.append("PIXELTYPE=SIGNEDBYTE")
    nodatas = nodata or [shared.GetRasterBand(b).GetNoDataValue() for b in bands]
    if len({repr(n) for n in nodatas}) > 1 and driver.upper() == "GTIFF":
        # A GeoTIFF holds one nodata value for all bands (the last one set wins).
        _LOGGER.warning("%s: GeoTIFF keeps one nodata value per file: band 1's %r "
                        "is kept, the bands' own are %r", target_path, nodatas[0],
                        nodatas)
        nodatas = [nodatas[0]] * len(nodatas)
    tile_size = first.GetBlockSize()
    windows = _engine.tile_windows(size, tile_size)
    python_stats = calc_raster_stats and stats_rule != "gdal"
    direct = (plan.kind == "serial" or plan.plugin_threads) and checks is None and post is None
    if (direct and (plan.plugin_threads or 1) > 1 and driver.upper() == "GTIFF" and
            not any(o.upper().startswith("NUM_THREADS=") for o in options)):
        # The plugin's workers write one at a time: GTiff compresses on as many.
        options.append(f"NUM_THREADS={plan.plugin_threads}")
    if direct:
        task = None
    elif plan.plugin_threads:
        # The plugin's own pool computes each window's tiles; one thread reads the
        # shared handle (only it, one window at a time) while the caller writes the
        # window before.
        plan = reader = Plan(plan.spec, "threads", 1, owned=True)
        task = functools.partial(_finish_window, shared, source, bands,
                                 nodatas if python_stats else None, checks, post)
    else:
        reader = None
        task = functools.partial(_render_window, source, bands,
                                 nodatas if python_stats else None, checks, post,
                                 uuid.uuid4().hex)
    progress = _engine.Progress(progress, target_path)
    # What the graph reads: a failure keeps these under the target's name.
    text = source.lstrip().startswith("<")
    inputs = ([] if text else [source]) + [
        f if f.startswith("/vsi") else os.path.join("" if text else os.path.dirname(source), f)
        for f in files]
    with _engine.TemporaryTarget(target_path, driver, size, len(bands), data_type,
                                 options, inputs) as target:
        target.dataset.SetProjection(shared.GetProjection() if projection is None
                                     else projection)
        target.dataset.SetGeoTransform(shared.GetGeoTransform())
        out_bands = [target.dataset.GetRasterBand(i + 1) for i in range(len(bands))]
        if like_translate:
            _copy_metadata(shared, target.dataset)
        if like is not None:
            copy_properties(like, target.dataset, range(1, like.RasterCount + 1))
        for out, b, nodata in zip(out_bands, bands, nodatas):
            if nodata is not None:
                out.SetNoDataValue(nodata)
            if like is not None:
                continue
            description = shared.GetRasterBand(b).GetDescription()
            if description and (len(bands) > 1 or like_translate):
                out.SetDescription(description)
            if like_translate:
                _copy_metadata(shared.GetRasterBand(b), out)
        with _target.Target(target.dataset, tile_size,
                            calc_raster_stats and not python_stats) as writer:
            if direct:
                writer.render(shared, bands, progress)
                statistics = [writer.statistics(i) for i in range(len(bands))]
            else:
                statistics = [_engine.Statistics() for _ in bands]

                def consume(window, result):
                    pixels, partials = result
                    writer.write(window, pixels)
                    for statistic, partial in zip(statistics, partials or ()):
                        statistic.add(partial)

                with reader or contextlib.nullcontext():
                    _engine.run_windows(plan, task, windows, consume, progress)
                if not python_stats:
                    statistics = [writer.statistics(i) for i in range(len(bands))]
        if calc_raster_stats:
            for out, statistic in zip(out_bands, statistics):
                statistic.write(out, size[0] * size[1])
        out_bands = None
    shared = None


def render(graph, target_path, *, executor=None,
           raster_driver_creation_tuple=_gdal.DEFAULT_GTIFF_CREATION_TUPLE_OPTIONS,
           calc_raster_stats=True, progress=None, write="single", parts_dir=None,
           worker_settings=None):
    """Renders every band of a graph into a new raster.

    Args:
        graph: a ``.pgp.vrt`` path, its XML text, or a ``pgp.Graph``.
        target_path (str): the output, written under a temporary name in its folder
            and renamed when complete.
        executor: as raster_calculator's. 'threading[:N]' runs the graph on the
            plugin's own thread pool; other executors give each window to a task
            that opens the graph itself with EXECUTOR=serial.
        raster_driver_creation_tuple (tuple): (driver name, creation options).
        calc_raster_stats (bool): write GDAL statistics (NaN and nodata skipped),
            from per-window summaries combined in window order.
        progress: as raster_calculator's.
        write, parts_dir, worker_settings: as pgp.ClusterExecutor's (write='parts'
            returns each window through a GeoTIFF in parts_dir; worker_settings
            {'GDAL_CACHEMAX': MB, 'PGP_CACHE_MB': MB} for the workers).
    """
    if write != "single" or parts_dir is not None or worker_settings:
        with ClusterExecutor(executor, write, parts_dir, worker_settings) as cluster:
            render(graph, target_path, executor=cluster,
                   raster_driver_creation_tuple=raster_driver_creation_tuple,
                   calc_raster_stats=calc_raster_stats, progress=progress)
        return
    with resolve(executor) as plan:
        _render(plan, graph, target_path, raster_driver_creation_tuple,
                calc_raster_stats, progress, like_translate=True)
