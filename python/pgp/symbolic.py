"""pygeoprocessing.symbolic.evaluate_raster_calculator_expression, compiled to a
<Calc> and evaluated by the plugin: no Python per pixel.

The expression is Python (pygeoprocessing evaluates it with ``eval`` on numpy
arrays); its abstract syntax tree is translated into pgp's expression language.
"""
import ast
import functools
import logging
import os
import shutil
import tempfile

import numpy
from osgeo import gdal

from . import _gdal
from .calls import _check_calc_arguments
from .executors import resolve
from .graph import Graph, _number, _render

LOGGER = logging.getLogger("pgp")

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**",
           ast.Mod: "%"}
_COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
            ast.NotEq: "!="}
_NODATA_MESSAGE = ("`target_nodata` is undefined (None) but there are nodata values "
                   "present in the input rasters.")
_NAN_MESSAGE = "Encountered NaN in calculation but `default_nan` is None."
_INF_MESSAGE = "Encountered inf in calculation but `default_inf` is None."


def _is_boolean(node):
    """True for nodes numpy evaluates to boolean arrays: comparisons and their
    combinations with & | ~."""
    if isinstance(node, ast.Compare):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
        return _is_boolean(node.left) and _is_boolean(node.right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
        return _is_boolean(node.operand)
    return isinstance(node, ast.Constant) and isinstance(node.value, bool)


def _parse(expression):
    """The expression's syntax tree; a SyntaxError that quotes it (Python's names only
    '<unknown>')."""
    try:
        return ast.parse(expression, mode="eval")
    except SyntaxError as error:
        raise SyntaxError(f"expression {expression!r}: {error.msg}") from None


def compile_expression(expression, names):
    """Translates a pygeoprocessing expression (Python syntax) into pgp's expression
    language; ``names`` maps its symbols to graph node names. Raises ValueError for
    what numpy would not evaluate element-wise, or pgp cannot (bitwise integer
    operations, function calls)."""

    def fail(node, what):
        raise ValueError(f"expression {expression!r}: {what} at column "
                         f"{getattr(node, 'col_offset', 0) + 1} is not supported by pgp")

    def emit(node):
        if isinstance(node, ast.Expression):
            return emit(node.body)
        if isinstance(node, ast.Name):
            return names[node.id]
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool):
                return "1" if value else "0"
            if isinstance(value, (int, float)):
                return repr(float(value)) if isinstance(value, float) or abs(value) >= 2**53 \
                    else str(value)
            fail(node, f"the constant {value!r}")
        if isinstance(node, ast.BinOp):
            left, right = emit(node.left), emit(node.right)
            if isinstance(node.op, (ast.BitAnd, ast.BitOr)):
                if not (_is_boolean(node.left) and _is_boolean(node.right)):
                    fail(node, "'&' or '|' between values that are not comparisons "
                               "(a bitwise integer operation)")
                return f"({left} {'&&' if isinstance(node.op, ast.BitAnd) else '||'} {right})"
            if isinstance(node.op, ast.FloorDiv):
                return f"floor({left} / {right})"
            if isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Constant) \
                    and node.right.value == 0.5:
                return f"sqrt({left})"  # numpy's own shortcut for ** 0.5
            if type(node.op) not in _BINARY:
                fail(node, f"the operator {type(node.op).__name__}")
            return f"({left} {_BINARY[type(node.op)]} {right})"
        if isinstance(node, ast.UnaryOp):
            operand = emit(node.operand)
            if isinstance(node.op, ast.USub):
                return f"(-{operand})"
            if isinstance(node.op, ast.UAdd):
                return f"(+{operand})"
            if isinstance(node.op, ast.Invert) and _is_boolean(node.operand):
                return f"(!{operand})"
            fail(node, f"the unary operator {type(node.op).__name__}")
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                fail(node, "a chained comparison (numpy cannot evaluate it on arrays; "
                           "write (a < b) & (b < c))")
            if type(node.ops[0]) not in _COMPARE:
                fail(node, f"the comparison {type(node.ops[0]).__name__}")
            return f"({emit(node.left)} {_COMPARE[type(node.ops[0])]} " \
                   f"{emit(node.comparators[0])})"
        if isinstance(node, ast.Call):
            fail(node, "a function call")
        fail(node, f"{type(node).__name__}")

    return emit(_parse(expression))


def _block_size(options):
    size = {"BLOCKXSIZE": 256, "BLOCKYSIZE": 256}
    for option in options:
        key, _, value = str(option).partition("=")
        if key.upper() in size and value.isdigit():
            size[key.upper()] = int(value)
    return size["BLOCKXSIZE"], size["BLOCKYSIZE"]


def used_rasters(expression, symbol_to_path_band_map):
    """[(symbol, (path, band))] of the map's entries the expression uses, by symbol;
    pygeoprocessing's ValueErrors for a bad expression or a missing symbol."""
    if not isinstance(expression, str):
        raise ValueError("Expected type `str` for `expression` but instead got %s" %
                         str(type(expression)))
    active = {node.id for node in ast.walk(_parse(expression))
              if isinstance(node, ast.Name)}
    used = [(symbol, path_band) for symbol, path_band in
            sorted(symbol_to_path_band_map.items()) if symbol in active]
    missing = active - {symbol for symbol, _ in used}
    if missing:
        raise ValueError("The variables %s are defined in the expression but are not in "
                         "symbol_to_path_band_map" % ', '.join(sorted(missing)))
    if not used:
        raise ValueError(f"expression {expression!r} uses no raster")
    return used


def expression_graph(expression, symbol_to_path_band_map, target_nodata,
                     block_size=(256, 256), read_from=None):
    """The graph evaluate_raster_calculator_expression renders: band 1 the result
    (target_nodata where a used raster is nodata), band 2, when target_nodata is
    None and a used raster has nodata, 1 where one is; read_from: {path: the path
    its <Source> reads instead}. Also returns the numpy result type and the (path,
    band)s used."""
    used = used_rasters(expression, symbol_to_path_band_map)
    read_from = read_from or {}
    numpy_type = numpy.result_type(*[_gdal.get_raster_info(path_band[0])['numpy_type']
                                     for _, path_band in used])
    graph = Graph(block_size)
    names = {}
    invalid = []
    for index, (symbol, (path, band)) in enumerate(used):
        names[symbol] = graph.source(f"v{index}", read_from.get(path, path), band)
        if _gdal.get_raster_info(path)['nodata'][band - 1] is not None:
            invalid.append(f"isnodata({names[symbol]})")
    value = compile_expression(expression, names)
    data_type = gdal.GetDataTypeName(_gdal.gdal_type_of(numpy_type)[0])
    fill = _number(0 if target_nodata is None else target_nodata)
    if invalid:
        value = f"({' || '.join(invalid)}) ? {fill} : {value}"
    if numpy.issubdtype(numpy_type, numpy.integer):
        # numpy truncates floats stored in integer arrays: the result and the
        # target_nodata pygeoprocessing fills the array with
        value = f"trunc({value})"
    if numpy.dtype(numpy_type) == numpy.int8:  # GDAL 3.6 has no Int8: the task casts
        value, data_type = f"clamp({value}, -128, 127)", "Int16"
    # No noData on the Calc: NaN must reach the NaN/inf rules, not become nodata.
    graph.calc("result", value, nodata_policy="expression", data_type=data_type)
    graph.band("result")
    if target_nodata is None and invalid:
        graph.calc("check", " || ".join(invalid), data_type="Byte",
                   nodata_policy="expression")
        graph.band("check")
    return graph, numpy_type, [tuple(path_band) for _, path_band in used]


def _on_the_first_grid(used, folder):
    """pygeoprocessing pairs the rasters' pixels by index, whatever their grids; a
    graph's sources must share one. Each used raster whose geotransform differs from
    the first's is read through a VRT in folder (created on demand) that declares
    the first's geotransform and projection over the same pixels. Returns {path:
    path to read} for those, and the folder, or ({}, None) when all share it."""
    infos = {path: _gdal.get_raster_info(path) for path, _ in used}
    first = infos[used[0][0]]
    moved = [path for path in dict.fromkeys(path for path, _ in used)
             if infos[path]['geotransform'] != first['geotransform']]
    if not moved:
        return {}, None
    os.makedirs(folder, exist_ok=True)  # as the render makes the target's
    folder = tempfile.mkdtemp(prefix=".pgp-grid-", dir=folder)
    substitutes = {}
    for index, path in enumerate(moved):
        substitutes[path] = os.path.join(folder, f"r{index}.vrt")
        view = gdal.Translate(substitutes[path], os.path.abspath(path), format="VRT")
        view.SetGeoTransform(first['geotransform'])
        if first['projection_wkt']:
            view.SetProjection(first['projection_wkt'])
        view = None
    return substitutes, folder


def nan_inf_rules(default_nan, default_inf, dtype, block):
    """pygeoprocessing's rules on a result block, in its order: NaN replaced by
    default_nan (or ValueError), then ±inf by default_inf (or ValueError); the block
    in the result's dtype."""
    if block.dtype.kind != "f" or numpy.isfinite(block).all():
        return block.astype(dtype, copy=False)
    for test, default, message in ((numpy.isnan, default_nan, _NAN_MESSAGE),
                                   (numpy.isinf, default_inf, _INF_MESSAGE)):
        found = test(block)
        if found.any():
            if default is None:
                raise ValueError(message)
            block[found] = default
    return block


def evaluate_raster_calculator_expression(
        expression, symbol_to_path_band_map, target_nodata, target_raster_path,
        default_nan=None, default_inf=None,
        raster_driver_creation_tuple=_gdal.DEFAULT_GTIFF_CREATION_TUPLE_OPTIONS, *,
        executor=None, progress=None):
    """Evaluate an arithmetic expression of rasters (pygeoprocessing.symbolic's call).

    Args:
        expression (str): Python arithmetic on the symbols: ``+ - * / // % **``,
            comparisons, and ``&`` / ``|`` / ``~`` combining comparisons.
        symbol_to_path_band_map (dict): symbol -> (path, band); entries the
            expression does not use are ignored. Rasters must have the same size;
            as in pygeoprocessing their pixels pair by index, and the result takes
            the first used raster's grid.
        target_nodata (number): written where any used raster is nodata; None
            raises ValueError if such a pixel exists.
        target_raster_path (str): the output; its type is ``numpy.result_type``
            of the used rasters.
        default_nan, default_inf: replace NaN / ±inf results; None raises a
            ValueError when one occurs.
        raster_driver_creation_tuple (tuple): (driver name, creation options).
        executor, progress: as raster_calculator's.
    """
    plan = resolve(executor)
    driver, options = raster_driver_creation_tuple
    used = [tuple(path_band) for _, path_band in
            used_rasters(expression, symbol_to_path_band_map)]
    _check_calc_arguments(used, target_raster_path)
    # Beside the target: workers of any executor see that folder.
    substitutes, scratch = _on_the_first_grid(
        used, os.path.dirname(os.path.abspath(target_raster_path)))
    try:
        graph, numpy_type, _ = expression_graph(
            expression, symbol_to_path_band_map, target_nodata, _block_size(options),
            read_from=substitutes)
        gdal_type, type_options = _gdal.gdal_type_of(numpy_type)
        with plan:
            _render(plan, graph, target_raster_path,
                    (driver, list(options) + type_options), True, progress, bands=[1],
                    stats_rule="pygeoprocessing", type_override=gdal_type,
                    checks=(2, _NODATA_MESSAGE) if graph.root.find("Calc[@name='check']")
                    is not None else None,
                    post=functools.partial(nan_inf_rules, default_nan, default_inf,
                                           numpy.dtype(numpy_type)),
                    nodata=[target_nodata])
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
