"""The ``pgp`` command: render, calc, convolve, align, stitch, zonal, info, assemble.

GDAL's command-line habits: ``-of``, ``-co``, ``-ot``, ``-q``; a progress bar when
standard output is a terminal; on failure one line ``pgp CMD: error: …`` on standard
error and exit code 1 (2 for bad arguments); ``--help`` on every subcommand,
``--version``.

Each subcommand imports the modules it runs: ``pgp render`` starts without numpy and
without the calls it does not use (docs/design-notes.md).
"""
import argparse
import math
import os
import string
import sys
import xml.etree.ElementTree as ET

from osgeo import gdal
from osgeo import osr

from . import _gdal
from . import distributed
from .executors import resolve

NODE_KINDS = ("Source", "Align", "Calc", "Convolve", "Stitch")


class _Parser(argparse.ArgumentParser):
    """argparse with GDAL's one-line errors."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _gdal_type(name):
    value = gdal.GetDataTypeByName(name)
    if value == gdal.GDT_Unknown:
        raise argparse.ArgumentTypeError(f"unknown GDAL data type {name!r}")
    return value


def _megabytes(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of megabytes")
    return int(text)


def _output_options(parser, output_type=True):
    parser.add_argument("-of", dest="format", default="GTiff", metavar="FORMAT",
                        help="GDAL driver of the output (default GTiff)")
    parser.add_argument("-co", dest="creation_options", action="append", default=None,
                        metavar="NAME=VALUE",
                        help="creation option, repeatable (default for GTiff: " +
                        " ".join(_gdal.DEFAULT_CREATION_OPTIONS) + ")")
    if output_type:
        parser.add_argument("-ot", "--type", dest="output_type", type=_gdal_type,
                            metavar="TYPE", help="output data type (Byte, Int16, "
                            "Float32, …), converted as gdal_translate -ot does")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _executor_options(parser):
    group = parser.add_argument_group("where the work runs")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--executor", default="threading", metavar="SPEC",
                       help="serial, threading[:N], multiprocessing[:N] (default "
                       "threading: all CPUs)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="a Dask scheduler, e.g. tcp://10.0.0.1:8786: its workers "
                       "compute the windows (docs/distributed.md)")
    group.add_argument("--write", choices=distributed.WRITE_MODES, default="single",
                       help="single: windows come back to this process; parts: each "
                       "worker writes its windows to GeoTIFFs in --parts-dir")
    group.add_argument("--parts-dir", metavar="DIR",
                       help="with --write parts: a folder shared by every worker")
    group.add_argument("--gdal-cachemax", type=_megabytes, metavar="MB",
                       help="GDAL_CACHEMAX of each worker")
    group.add_argument("--cache-mb", type=_megabytes, metavar="MB",
                       help="PGP_CACHE_MB (the plugin's tile cache) of each worker")


class _Executor:
    """The executor= value the options ask for, and the Dask client to close."""

    def __init__(self, args):
        self.client = None
        settings = {key: value for key, value in (("GDAL_CACHEMAX", args.gdal_cachemax),
                                                  ("PGP_CACHE_MB", args.cache_mb))
                    if value is not None}
        spec = args.executor
        resolve(spec)  # a bad --executor fails before anything else
        if args.scheduler:
            from distributed import Client
            self.client = Client(args.scheduler, timeout="20s")
            spec = self.client
        if args.scheduler or args.write != "single" or args.parts_dir or settings:
            self.value = distributed.ClusterExecutor(spec, args.write, args.parts_dir,
                                                     settings)
        else:
            self.value = spec

    def __enter__(self):
        return self.value

    def __exit__(self, *exc):
        if isinstance(self.value, distributed.ClusterExecutor):
            self.value.shutdown()
        if self.client is not None:
            self.client.close()


def _creation(args):
    options = args.creation_options
    if options is None:
        options = _gdal.DEFAULT_CREATION_OPTIONS if args.format.upper() == "GTIFF" else ()
    if gdal.GetDriverByName(args.format) is None:
        raise ValueError(f"-of {args.format}: no such GDAL driver")
    return args.format, tuple(options)


def _progress(args):
    return None if args.quiet or not sys.stdout.isatty() else True


def _gdal_callback(args):
    return gdal.TermProgress_nocb if _progress(args) else None


def _existing(path):
    if not path.startswith("/vsi") and not os.path.exists(path):
        raise FileNotFoundError(f"{path}: No such file or directory")
    return path


# --- subcommands ----------------------------------------------------------------------

def cmd_render(args):
    from .graph import _graph_source, _render
    source = _graph_source(_existing(args.graph))
    if args.tiles:
        index, count = distributed.parse_share(args.tiles)
        plan = resolve(args.executor)
        if plan.plugin_threads is None and plan.kind != "serial" or args.scheduler:
            raise ValueError("--tiles renders with the plugin's own threads: use "
                             "--executor serial or threading[:N], without --scheduler")
        driver, options = _creation(args)
        distributed.render_share(source, args.output, index, count,
                                 plan.plugin_threads or 1, driver, options,
                                 args.output_type, _gdal_callback(args))
        return
    with _Executor(args) as executor, resolve(executor) as plan:
        _render(plan, source, args.output, _creation(args), not args.no_stats,
                _progress(args), type_override=args.output_type, like_translate=True)


def cmd_assemble(args):
    for part in args.parts:
        _existing(part)
    driver, options = _creation(args)
    distributed.assemble(args.output, args.parts, driver, options, args.stats,
                         _gdal_callback(args))


def _calc_inputs(args):
    symbols = {}
    for letter in string.ascii_uppercase:
        path = getattr(args, letter)
        if path is not None:
            symbols[letter] = (_existing(path), getattr(args, f"{letter}_band"))
    if not symbols:
        raise ValueError("no input raster: give at least -A FILE")
    return symbols


def cmd_calc(args):
    from . import symbolic
    if (args.output is None) == (args.outfile is None):
        args.parser.error("give the output once: OUT or --outfile OUT")
    args.output = args.output or args.outfile
    symbols = _calc_inputs(args)
    if args.output.endswith(".pgp.vrt"):
        driver, options = _creation(args)
        graph, numpy_type, _ = symbolic.expression_graph(
            args.calc, symbols, args.nodata, symbolic._block_size(options))
        if graph.root.find("Calc[@name='check']") is not None:
            raise ValueError("the inputs have nodata: give --nodata V for the graph's "
                             "output where an input is nodata")
        result = graph.root.find("Calc[@name='result']")
        if args.output_type is not None:
            result.set("dataType", gdal.GetDataTypeName(args.output_type))
        if args.nodata is not None:
            result.set("noData", repr(float(args.nodata)))
        graph.write(args.output)
        return
    with _Executor(args) as executor:
        if args.output_type is None:
            symbolic.evaluate_raster_calculator_expression(
                args.calc, symbols, args.nodata, args.output, args.default_nan,
                args.default_inf, _creation(args), executor=executor,
                progress=_progress(args))
            return
        folder, name = os.path.split(os.path.abspath(args.output))
        scratch = os.path.join(folder, f".{name}.pgp-calc.tif")
        try:
            symbolic.evaluate_raster_calculator_expression(
                args.calc, symbols, args.nodata, scratch, args.default_nan,
                args.default_inf, ("GTiff", ()), executor=executor,
                progress=_progress(args))
            driver, options = _creation(args)
            if gdal.Translate(args.output, scratch, format=driver,
                              creationOptions=list(options),
                              outputType=args.output_type) is None:
                raise RuntimeError(f"{args.output}: {gdal.GetLastErrorMsg()}")
        finally:
            if os.path.exists(scratch):
                gdal.GetDriverByName("GTiff").Delete(scratch)


def _number_or_none(text):
    return None if text.lower() == "none" else float(text)


def cmd_convolve(args):
    from . import convolve_2d
    with _Executor(args) as executor:
        convolve_2d((_existing(args.signal), args.signal_band),
                    (_existing(args.kernel), args.kernel_band), args.output,
                    ignore_nodata_and_edges=args.ignore_nodata_and_edges,
                    mask_nodata=not args.no_mask_nodata,
                    normalize_kernel=args.normalize_kernel,
                    target_datatype=args.output_type or gdal.GDT_Float64,
                    target_nodata=args.nodata, set_tol_to_zero=args.set_tol_to_zero,
                    raster_driver_creation_tuple=_creation(args), executor=executor,
                    progress=_progress(args))


def _once_or_per_source(values, default, option, count):
    """An option given once (for every source) or once per source."""
    values = values or [default]
    if len(values) == 1:
        values = values * count
    if len(values) != count:
        raise ValueError(f"{option} given {len(values)} times for {count} sources: "
                         "give it once, or once per source")
    return values


def _srs_wkt(text):
    srs = osr.SpatialReference()
    if srs.SetFromUserInput(text) != 0:
        raise ValueError(f"--t_srs {text!r}: not a spatial reference GDAL knows")
    return srs.ExportToWkt()


def cmd_align(args):
    from . import align_and_resize_raster_stack
    pairs = args.pairs
    if len(pairs) % 2:
        raise ValueError("give SOURCE TARGET pairs (an even number of paths)")
    sources = [_existing(path) for path in pairs[0::2]]
    methods = _once_or_per_source(args.resampling, "near", "-r", len(sources))
    box = args.bbox
    if box not in ("union", "intersection"):
        try:
            box = [float(v) for v in box.split(",")]
        except ValueError:
            box = None
        if box is None or len(box) != 4:
            raise ValueError(f"--bbox {args.bbox!r}: union, intersection or "
                             "xmin,ymin,xmax,ymax")
    mask = None
    if args.mask_vector:
        mask = {"mask_vector_path": _existing(args.mask_vector),
                "mask_layer_name": args.mask_layer,
                "mask_vector_where_filter": args.mask_where}
    with _Executor(args) as executor:
        align_and_resize_raster_stack(
            sources, pairs[1::2], methods, tuple(args.pixel_size), box,
            raster_align_index=args.align_to,
            target_projection_wkt=_srs_wkt(args.t_srs) if args.t_srs else None,
            mask_options=mask, raster_driver_creation_tuple=_creation(args),
            executor=executor, progress=_progress(args))


def cmd_stitch(args):
    from .stitch import stitch_rasters
    bases = [_existing(path) for path in args.bases]
    bands = _once_or_per_source(args.base_band, 1, "--base-band", len(bases))
    methods = _once_or_per_source(args.resampling, "near", "-r", len(bases))
    with _Executor(args) as executor:
        stitch_rasters(list(zip(bases, bands)), methods, (_existing(args.target), args.band),
                       overlap_algorithm=args.overlap,
                       area_weight_m2_to_wgs84=args.area_weight, executor=executor,
                       progress=_progress(args))


ZONAL_COLUMNS = ("count", "nodata_count", "sum", "min", "max", "average")
EXTRA_COLUMNS = ("stdev", "majority", "minority", "variety")


def cmd_zonal(args):
    """zonal_statistics of RASTER under VECTOR's polygons: CSV on standard output or
    -o out.csv, or a GeoPackage of the polygons with the statistics as fields."""
    from .zonal import zonal_statistics
    with _Executor(args) as executor:
        stats = zonal_statistics(
            (_existing(args.raster), args.band), _existing(args.vector), args.layer,
            ignore_nodata=not args.include_nodata,
            polygons_might_overlap=not args.later_wins, executor=executor,
            all_touched=args.all_touched, extra_statistics=args.extra,
            progress=_progress(args))
    columns = ZONAL_COLUMNS + (EXTRA_COLUMNS if args.extra else ())
    if args.output and args.output.lower().endswith(".gpkg"):
        _zonal_gpkg(args, stats, columns)
        return
    import csv
    out = open(args.output, "w", newline="") if args.output else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow(("fid",) + columns)
        for fid in sorted(stats):
            writer.writerow([fid] + ["" if stats[fid][c] is None else stats[fid][c]
                                     for c in columns])
    finally:
        if out is not sys.stdout:
            out.close()


def _zonal_gpkg(args, stats, columns):
    """The layer's polygons (in its own SRS, with their FIDs) and one field per
    statistic."""
    from osgeo import ogr
    source = gdal.OpenEx(args.vector, gdal.OF_VECTOR)
    layer = source.GetLayer() if args.layer is None else source.GetLayerByName(args.layer)
    target = gdal.GetDriverByName("GPKG").Create(args.output, 0, 0, 0, gdal.GDT_Unknown)
    out = target.CreateLayer(layer.GetName(), layer.GetSpatialRef(), layer.GetGeomType())
    for column in columns:
        kind = ogr.OFTInteger64 if column in ("count", "nodata_count", "variety") \
            else ogr.OFTReal
        out.CreateField(ogr.FieldDefn(column, kind))
    out.StartTransaction()
    for feature in layer:
        copy = ogr.Feature(out.GetLayerDefn())
        copy.SetFID(feature.GetFID())
        copy.SetGeometry(feature.GetGeometryRef())
        for column in columns:
            value = stats[feature.GetFID()][column]
            if value is not None:
                copy.SetField(column, value)
        out.CreateFeature(copy)
    out.CommitTransaction()
    out = target = layer = source = None


def _kernel_cells(element, graph_folder):
    inline = element.find("Kernel")
    if inline is not None:
        return int(inline.get("rows")), int(inline.get("cols"))
    path = element.get("kernel")
    path = path if os.path.isabs(path) else os.path.join(graph_folder, path)
    kernel = _gdal.open_raster(path)
    return kernel.RasterYSize, kernel.RasterXSize


def cmd_info(args):
    """Nodes, grid, tiles and an estimate of the work of a graph."""
    path = _existing(args.graph)
    root = ET.parse(path).getroot()
    dataset = _gdal.open_raster(os.path.abspath(path))
    width, height = dataset.RasterXSize, dataset.RasterYSize
    block = dataset.GetRasterBand(1).GetBlockSize()
    tiles = (math.ceil(width / block[0]), math.ceil(height / block[1]))
    pixels = width * height
    folder = os.path.dirname(os.path.abspath(path))
    lines = [f"Graph: {path}", "Nodes:"]
    node_tiles, operations = 0, 0
    for element in root:
        if element.tag not in NODE_KINDS:
            continue
        name = element.get("name") or "(grid)"
        detail = ""
        if element.tag == "Source":
            detail = f"{element.get('file')} band {element.get('band', '1')}"
        elif element.tag == "Calc":
            detail = " ".join((element.findtext("Expression") or "").split())
            node_tiles, operations = node_tiles + tiles[0] * tiles[1], operations + pixels
        elif element.tag == "Convolve":
            rows, cols = _kernel_cells(element, folder)
            detail = f"{element.get('input')} by a {rows}x{cols} kernel"
            node_tiles += tiles[0] * tiles[1]
            operations += pixels * rows * cols
        elif element.tag == "Stitch":  # each base's pixels folded in once
            bases = element.findall("Base")
            detail = (f"{len(bases)} bases into {element.get('target')}, overlap "
                      f"{element.get('overlap', 'etch')}")
            node_tiles += tiles[0] * tiles[1]
            operations += pixels
        else:  # Align: one warp per source
            sources = len(root.findall("Source"))
            detail = f"{sources} sources warped onto the grid"
            node_tiles += tiles[0] * tiles[1] * sources
            operations += pixels * sources
        lines.append(f"  {element.tag:<8} {name}: {detail}")
    geotransform = dataset.GetGeoTransform()
    srs = dataset.GetSpatialRef()
    lines += [
        f"Grid: {width} x {height} pixels, pixel size {geotransform[1]:g} x "
        f"{geotransform[5]:g}, origin ({geotransform[0]:.10g}, {geotransform[3]:.10g}), "
        f"SRS {srs.GetName() if srs else 'none'}",
        f"Tiles: {block[0]} x {block[1]} pixels, {tiles[0]} x {tiles[1]} = "
        f"{tiles[0] * tiles[1]}"]
    for index in range(1, dataset.RasterCount + 1):
        band = dataset.GetRasterBand(index)
        lines.append(f"Band {index}: {gdal.GetDataTypeName(band.DataType)}, nodata "
                     f"{band.GetNoDataValue()}, {band.GetDescription() or '-'}")
    lines.append(f"Work (full render, direct convolution): {node_tiles} node tiles, "
                 f"about {operations:.3g} pixel operations")
    print("\n".join(lines))


# --- the parser -----------------------------------------------------------------------

def build_parser():
    parser = _Parser(prog="pgp", description="pgp: render and build .pgp.vrt graphs "
                     "(docs/python.md, docs/distributed.md)")
    from . import __version__  # the package is initialised before its command runs
    parser.add_argument("--version", action="version",
                        version=f"pgp {__version__}, GDAL {gdal.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=_Parser)

    render = commands.add_parser("render", help="render a .pgp.vrt graph into a raster",
                                 description="Render every band of a graph; with "
                                 "--tiles I/N only the I-th of N shares of its rows of "
                                 "tiles (join them with pgp assemble).")
    render.add_argument("graph", metavar="GRAPH")
    render.add_argument("output", metavar="OUT")
    render.add_argument("--tiles", metavar="I/N", help="render share I of N (a Slurm "
                        "job array: I=$((SLURM_ARRAY_TASK_ID + 1)))")
    render.add_argument("--no-stats", action="store_true", help="write no statistics")
    _output_options(render)
    _executor_options(render)
    render.set_defaults(run=cmd_render, parser=render)

    assemble = commands.add_parser("assemble", help="join the parts of render --tiles",
                                   description="Join the N parts written by pgp render "
                                   "--tiles I/N (any order) into one raster.")
    assemble.add_argument("output", metavar="OUT")
    assemble.add_argument("parts", metavar="PART", nargs="+")
    assemble.add_argument("--stats", action="store_true",
                          help="compute statistics (GDAL's ComputeStatistics)")
    _output_options(assemble, output_type=False)
    assemble.set_defaults(run=cmd_assemble, parser=assemble)

    calc = commands.add_parser("calc", help="an expression of rasters (gdal_calc.py's "
                               "form)", description="evaluate_raster_calculator_"
                               "expression: OUT ending in .pgp.vrt writes the graph, "
                               "anything else renders it.")
    for letter in string.ascii_uppercase:
        calc.add_argument(f"-{letter}", metavar="FILE",
                          help="input raster named A in --calc" if letter == "A"
                          else argparse.SUPPRESS)
        calc.add_argument(f"--{letter}_band", type=int, default=1,
                          help="its band (default 1); likewise -B … -Z, --B_band …"
                          if letter == "A" else argparse.SUPPRESS)
    calc.add_argument("--calc", required=True, metavar="EXPR",
                      help="Python arithmetic of the letters, e.g. 'A * 2 + B'")
    calc.add_argument("--nodata", "--NoDataValue", type=float,
                      help="output where an input is nodata")
    calc.add_argument("--default-nan", type=float, help="replaces NaN results")
    calc.add_argument("--default-inf", type=float, help="replaces ±inf results")
    calc.add_argument("output", metavar="OUT", nargs="?")
    calc.add_argument("--outfile", metavar="OUT", help="gdal_calc.py's spelling of OUT")
    _output_options(calc)
    _executor_options(calc)
    calc.set_defaults(run=cmd_calc, parser=calc)

    convolve = commands.add_parser("convolve", help="convolve_2d",
                                   description="pygeoprocessing's convolve_2d.")
    convolve.add_argument("signal", metavar="SIGNAL")
    convolve.add_argument("kernel", metavar="KERNEL")
    convolve.add_argument("output", metavar="OUT")
    convolve.add_argument("--signal-band", type=int, default=1)
    convolve.add_argument("--kernel-band", type=int, default=1)
    convolve.add_argument("--normalize-kernel", action="store_true")
    convolve.add_argument("--ignore-nodata-and-edges", action="store_true")
    convolve.add_argument("--no-mask-nodata", action="store_true",
                          help="do not write nodata where the signal is nodata")
    convolve.add_argument("--nodata", type=float,
                          help="target nodata (required with -ot other than Float64)")
    convolve.add_argument("--set-tol-to-zero", type=_number_or_none, default=1e-8,
                          metavar="TOL", help="|v| <= TOL becomes 0 (default 1e-8; none)")
    _output_options(convolve)
    _executor_options(convolve)
    convolve.set_defaults(run=cmd_convolve, parser=convolve)

    align = commands.add_parser("align", help="align_and_resize_raster_stack",
                                description="Resample rasters onto one grid: SOURCE "
                                "TARGET pairs.")
    align.add_argument("pairs", metavar="SOURCE TARGET", nargs="+")
    align.add_argument("--pixel-size", "-tr", type=float, nargs=2, required=True,
                       metavar=("X", "Y"), help="target pixel size (gdalwarp's -tr)")
    align.add_argument("--bbox", default="intersection",
                       help="union, intersection (default) or xmin,ymin,xmax,ymax")
    align.add_argument("-r", dest="resampling", action="append", metavar="METHOD",
                       help="near (default), bilinear, cubic, average, mode, …; once "
                       "for all sources or once per source")
    align.add_argument("--align-to", type=int, metavar="INDEX",
                       help="snap the grid to this source's (0-based)")
    align.add_argument("--t_srs", "-t_srs", metavar="SRS",
                       help="target SRS (EPSG:n, WKT, …)")
    align.add_argument("--mask-vector", metavar="VECTOR",
                       help="pixels outside its polygons become nodata")
    align.add_argument("--mask-layer", metavar="LAYER")
    align.add_argument("--mask-where", metavar="FILTER")
    _output_options(align, output_type=False)
    _executor_options(align)
    align.set_defaults(run=cmd_align, parser=align)

    stitch = commands.add_parser("stitch", help="stitch_rasters: mosaic rasters into an "
                                 "existing one", description="Stitch each BASE, in "
                                 "order, into band -b of TARGET (which must have nodata); "
                                 "TARGET keeps its format and creation options and is "
                                 "replaced only when complete (docs/semantics.md#stitch).")
    stitch.add_argument("target", metavar="TARGET")
    stitch.add_argument("bases", metavar="BASE", nargs="+")
    stitch.add_argument("-b", "--band", type=int, default=1,
                        help="band of TARGET (default 1)")
    stitch.add_argument("--base-band", type=int, action="append", metavar="N",
                        help="band of the bases (default 1); once for all or once per base")
    stitch.add_argument("-r", dest="resampling", action="append", metavar="METHOD",
                        help="for bases on another grid: near (default), bilinear, …; "
                        "once for all or once per base")
    stitch.add_argument("--overlap", choices=("etch", "replace", "add"), default="etch",
                        help="etch (default): only where TARGET is nodata; replace: "
                        "the last base wins; add: the sum")
    stitch.add_argument("--area-weight", action="store_true",
                        help="area_weight_m2_to_wgs84: scale warped bases' values by "
                        "the WGS84 area of their pixels")
    stitch.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _executor_options(stitch)
    stitch.set_defaults(run=cmd_stitch, parser=stitch)

    zonal = commands.add_parser("zonal", help="zonal_statistics: raster statistics per "
                                "polygon", description="Statistics of RASTER (a .pgp.vrt "
                                "band too: only the tiles the polygons meet are computed) "
                                "under each polygon of VECTOR, by FID (docs/zonal.md).")
    zonal.add_argument("raster", metavar="RASTER")
    zonal.add_argument("vector", metavar="VECTOR")
    zonal.add_argument("-b", "--band", type=int, default=1, help="raster band (default 1)")
    zonal.add_argument("-l", "--layer", help="vector layer (default: the first)")
    zonal.add_argument("-o", "--output", metavar="OUT.csv|OUT.gpkg",
                       help="CSV file, or a GeoPackage of the polygons with the statistics "
                       "as fields (default: CSV on standard output)")
    zonal.add_argument("--all-touched", action="store_true",
                       help="every pixel a polygon touches, not only covered centres")
    zonal.add_argument("--include-nodata", action="store_true",
                       help="count nodata pixels as values (pygeoprocessing's "
                       "ignore_nodata=False)")
    zonal.add_argument("--later-wins", action="store_true",
                       help="overlapping polygons: the later one takes the pixel "
                       "(polygons_might_overlap=False)")
    zonal.add_argument("--extra", action="store_true",
                       help="also stdev, majority, minority and variety")
    zonal.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _executor_options(zonal)
    zonal.set_defaults(run=cmd_zonal, parser=zonal)

    info = commands.add_parser("info", help="a graph's nodes, grid, tiles and work",
                               description="Each node's name and kind, the grid, the "
                               "tiles and an estimate of the work of a full render.")
    info.add_argument("graph", metavar="GRAPH")
    info.set_defaults(run=cmd_info, parser=info)
    return parser


def main(argv=None):
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the subcommand's parser, which names it
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    # Errors reach the user as one line. Process-wide, not pushed: a pushed handler
    # is the calling thread's, and the plugin's worker threads report too.
    gdal.SetErrorHandler("CPLQuietErrorHandler")
    try:
        args.run(args)
    except KeyboardInterrupt:
        print(f"pgp {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # every failure: one line, exit code 1
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"pgp {args.command}: error: {message}", file=sys.stderr)
        return 1
    finally:
        gdal.SetErrorHandler("CPLDefaultErrorHandler")
    return 0
