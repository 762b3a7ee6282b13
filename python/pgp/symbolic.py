"""pygeoprocessing.symbolic.evaluate_raster_calculator_expression, compiled to a
<Calc> and evaluated by the plugin: no Python per pixel.

The expression is Python (pygeoprocessing evaluates it with ``eval`` on numpy
arrays); its abstract syntax tree is translated into pgp's expression language.
"""
import ast
import functools
import logging

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
# Codes of the check band: pygeoprocessing's three ValueErrors, in its order.
_NODATA, _NAN, _INF = 3, 1, 2
_MESSAGES = {
    _NODATA: "`target_nodata` is undefined (None) but there are nodata values "
             "present in the input rasters.",
    _NAN: "Encountered NaN in calculation but `default_nan` is None.",
    _INF: "Encountered inf in calculation but `default_inf` is None.",
}


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

    return emit(ast.parse(expression, mode="eval"))


def _block_size(options):
    size = {"BLOCKXSIZE": 256, "BLOCKYSIZE": 256}
    for option in options:
        key, _, value = str(option).partition("=")
        if key.upper() in size and value.isdigit():
            size[key.upper()] = int(value)
    return size["BLOCKXSIZE"], size["BLOCKYSIZE"]


def expression_graph(expression, symbol_to_path_band_map, target_nodata,
                     default_nan=None, default_inf=None, block_size=(256, 256)):
    """The graph evaluate_raster_calculator_expression renders, its numpy result
    type, the check band's (band, codes) and the (path, band)s used. Band 1 is the
    result; band 2, when present, flags pixels that raise pygeoprocessing's
    ValueErrors (see _MESSAGES)."""
    if not isinstance(expression, str):
        raise ValueError("Expected type `str` for `expression` but instead got %s" %
                         str(type(expression)))
    active = {node.id for node in ast.walk(ast.parse(expression))
              if isinstance(node, ast.Name)}
    used = [(symbol, path_band) for symbol, path_band in
            sorted(symbol_to_path_band_map.items()) if symbol in active]
    missing = active - {symbol for symbol, _ in used}
    if missing:
        raise ValueError("The variables %s are defined in the expression but are not in "
                         "symbol_to_path_band_map" % ', '.join(sorted(missing)))
    if not used:
        raise ValueError(f"expression {expression!r} uses no raster")
    numpy_type = numpy.result_type(*[_gdal.get_raster_info(path_band[0])['numpy_type']
                                     for _, path_band in used])
    graph = Graph(block_size)
    names = {}
    invalid = []
    for index, (symbol, (path, band)) in enumerate(used):
        names[symbol] = graph.source(f"v{index}", path, band)
        nodata = _gdal.get_raster_info(path)['nodata'][band - 1]
        if nodata is not None:
            invalid.append(f"isnodata({names[symbol]})")
    value = graph.calc("value", compile_expression(expression, names),
                       nodata_policy="expression")
    invalid = " || ".join(invalid) or "0"
    gdal_type, _ = _gdal.gdal_type_of(numpy_type)
    integer = numpy.issubdtype(numpy_type, numpy.integer)
    fill = 0 if target_nodata is None else target_nodata
    if integer:  # numpy assigns floats into integer arrays by truncation
        result = f"({invalid}) ? {_number(fill)} : trunc({value})"
    else:
        nan = "nan" if default_nan is None else repr(float(default_nan))
        inf = "inf" if default_inf is None else repr(float(default_inf))
        result = (f"({invalid}) ? {_number(float(fill))} : (isnan({value}) ? {nan} : "
                  f"(isinf({value}) ? {inf} : {value}))")
    graph.calc("result", result, data_type=gdal.GetDataTypeName(gdal_type),
               nodata=target_nodata, nodata_policy="expression")
    graph.band("result")
    codes = []
    if target_nodata is None and invalid != "0":
        codes.append((_NODATA, invalid))
    if not integer and default_nan is None:
        codes.append((_NAN, f"isnan({value})"))
    if not integer and default_inf is None:
        codes.append((_INF, f"isinf({value})"))
    checks = None
    if codes:
        flag = "0"
        for code, condition in reversed(codes):
            flag = f"({condition}) ? {code} : {flag}"
        if target_nodata is not None and invalid != "0":
            flag = f"({invalid}) ? 0 : {flag}"
        graph.calc("check", flag, data_type="Byte", nodata_policy="expression")
        graph.band("check")
        checks = (2, tuple((code, _MESSAGES[code]) for code, _ in codes))
    return graph, numpy_type, checks, [tuple(path_band) for _, path_band in used]


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
            expression does not use are ignored. Rasters must share a grid.
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
    graph, numpy_type, checks, used = expression_graph(
        expression, symbol_to_path_band_map, target_nodata, default_nan, default_inf,
        _block_size(options))
    _check_calc_arguments(used, target_raster_path)
    gdal_type, type_options = _gdal.gdal_type_of(numpy_type)
    with plan:
        _render(plan, graph, target_raster_path,
                (driver, list(options) + type_options), True, progress, bands=[1],
                stats_rule="pygeoprocessing", checks=checks, type_override=gdal_type)
