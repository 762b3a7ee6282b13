#!/usr/bin/python3
"""The bad-input matrix (issue 6 part 3): malformed graphs, expressions, rasters and
options, each through a real GDAL client.

Every row asserts
- the failure: gdal.OpenEx or a read raising RuntimeError in this process, or
  gdal_translate / gdalinfo exiting non-zero;
- that the message names the problem AND its place: the element and its name
  attribute, the column of an expression, the node and tile of a read, the option;
- that the process is fine afterwards: the next valid graph opens and reads the
  right pixels in the same Python process.

Add rows here when an element or option lands. test_errors.py covers a few of the
same inputs more briefly.
"""
import os
import shutil
from collections import namedtuple
from xml.sax.saxutils import escape

import numpy as np
import pytest
from osgeo import gdal

from conftest import run, write_graph, write_raster

ROWS, COLS = 30, 41
GOOD_SOURCES = '<Source name="A" file="a.tif"/><Source name="B" file="b.tif"/>'
GOOD = GOOD_SOURCES + ('<Calc name="c" dataType="Float32" noData="-1">'
                       '<Expression>A + B</Expression></Calc><Band ref="c"/>')

Row = namedtuple("Row", "id kind input parts")
# kind:
#   open       input: a <PGPDataset> body (or a whole document); gdal.OpenEx fails
#   read       input: a body that opens; reading the whole band fails
#   stats      input: a body that opens; computing the band's statistics fails
#   config     input: (config option, value); opening GOOD fails
#   openopt    input: (open option, value); opening GOOD fails
#   translate  input: a body; gdal_translate fails
#   translate_env  input: {environment}; gdal_translate of GOOD fails
#   gdalinfo   input: a body; gdalinfo fails


def calc(expression, name="c", attributes=' noData="-1"'):
    """GOOD's sources, one Calc of expression (escaped for XML) as the band."""
    return (GOOD_SOURCES + f'<Calc name="{name}"{attributes}><Expression>'
            f'{escape(expression)}</Expression></Calc><Band ref="{name}"/>')


def doc(body, attributes=""):
    return f"<PGPDataset{attributes}>{body}</PGPDataset>"


def many_calcs(n):
    return GOOD_SOURCES + "".join(f'<Calc name="k{i}" noDataPolicy="expression">'
                                  f'<Expression>A</Expression></Calc>' for i in range(n)) + \
        '<Band ref="k0"/>'


XML_ROWS = [
    # -- XML structure
    Row("malformed-xml", "open", '<PGPDataset><Source name="A" file="a.tif"',
        ["malformed-xml.pgp.vrt", "malformed XML", "not all elements have been closed"]),
    Row("unclosed-element", "open",
        "<PGPDataset>\n" + GOOD_SOURCES + '\n<Calc name="c"><Expression>A\n</PGPDataset>',
        ["unclosed-element.pgp.vrt", "malformed XML", "Line 3", "</PGPDataset>"]),
    Row("empty-dataset", "open", "<PGPDataset/>", ["<PGPDataset>", "no <Source>"]),
    Row("text-only-dataset", "open", doc("just text"), ["<PGPDataset>", "no <Source>"]),
    Row("no-band", "open", GOOD_SOURCES, ["<PGPDataset>", 'no <Band ref="..."/>']),
    Row("unknown-element", "open", GOOD_SOURCES + '<Convolve2 name="k"/><Band ref="A"/>',
        ["<Convolve2 name='k'>", "unknown element"]),
    Row("unknown-element-unnamed", "open", GOOD_SOURCES + '<Sauce/><Band ref="A"/>',
        ["<Sauce>", "unknown element"]),
    Row("unknown-attribute-source", "open",
        '<Source name="A" file="a.tif" bnad="1"/><Band ref="A"/>',
        ["<Source name='A'>", "unknown attribute 'bnad'"]),
    Row("unknown-attribute-case", "open", calc("A", attributes=' nodata="-1"'),
        ["<Calc name='c'>", "unknown attribute 'nodata'"]),
    Row("unknown-attribute-band", "open", GOOD_SOURCES + '<Band ref="A" descr="x"/>',
        ["<Band> #1", "unknown attribute 'descr'"]),
    Row("unknown-attribute-root", "open", doc(GOOD_SOURCES + '<Band ref="A"/>', ' blockSize="8"'),
        ["<PGPDataset>", "unknown attribute 'blockSize'"]),
    Row("unexpected-child", "open",
        GOOD_SOURCES + '<Calc name="c"><Expression>A</Expression><Foo/></Calc><Band ref="c"/>',
        ["<Calc name='c'>", "unexpected element <Foo>"]),
    Row("two-expressions", "open",
        GOOD_SOURCES + '<Calc name="c"><Expression>A</Expression><Expression>B</Expression>'
        '</Calc><Band ref="c"/>',
        ["<Calc name='c'>", "unexpected element <Expression>", "one <Expression>"]),
    # -- names
    Row("missing-name-source", "open", '<Source file="a.tif"/><Band ref="A"/>',
        ["<Source>", "missing attribute 'name'"]),
    Row("missing-name-calc", "open",
        GOOD_SOURCES + '<Calc noData="-1"><Expression>A</Expression></Calc><Band ref="A"/>',
        ["<Calc>", "missing attribute 'name'"]),
    Row("name-not-identifier", "open", '<Source name="1a" file="a.tif"/><Band ref="1a"/>',
        ["<Source name='1a'>", "not an identifier"]),
    Row("name-with-dash", "open", GOOD_SOURCES + '<Calc name="a-b" noData="-1">'
        '<Expression>A</Expression></Calc><Band ref="A"/>',
        ["<Calc name='a-b'>", "not an identifier"]),
    Row("duplicate-source", "open",
        '<Source name="A" file="a.tif"/><Source name="A" file="b.tif"/><Band ref="A"/>',
        ["<Source name='A'>", "duplicate name", "'A'"]),
    Row("duplicate-calc-source", "open",
        GOOD_SOURCES + '<Calc name="B"><Expression>A</Expression></Calc><Band ref="B"/>',
        ["<Calc name='B'>", "duplicate name"]),
    Row("cycle-2", "open",
        GOOD_SOURCES + '<Calc name="x"><Expression>y</Expression></Calc>'
        '<Calc name="y"><Expression>x + A</Expression></Calc><Band ref="x"/>',
        ["<Calc name='x'>", "cycle", "x -> y -> x"]),
    Row("cycle-3", "open",
        GOOD_SOURCES + '<Calc name="x"><Expression>y</Expression></Calc>'
        '<Calc name="y"><Expression>z</Expression></Calc>'
        '<Calc name="z"><Expression>x * 2</Expression></Calc><Band ref="A"/>',
        ["cycle", "x -> y -> z -> x"]),
    Row("self-reference", "open", calc("c + A", name="c"),
        ["<Calc name='c'>", "cycle", "c -> c"]),
    Row("self-reference-isnodata", "open",
        calc("isnodata(c)", name="c", attributes=' noDataPolicy="expression"'),
        ["<Calc name='c'>", "c -> c"]),
    Row("unknown-band-ref", "open", GOOD_SOURCES + '<Band ref="A"/><Band ref="nothing"/>',
        ["<Band> #2", "ref 'nothing'"]),
    Row("band-without-ref", "open", GOOD_SOURCES + '<Band description="x"/>',
        ["<Band> #1", "missing attribute 'ref'"]),
    # -- sizes and numbers
    Row("block-huge", "open", doc(GOOD, ' blockXSize="100000"'),
        ["<PGPDataset>", "blockXSize '100000'", "1 to 8192"]),
    Row("block-negative", "open", doc(GOOD, ' blockYSize="-16"'),
        ["<PGPDataset>", "blockYSize '-16'"]),
    Row("block-zero", "open", doc(GOOD, ' blockXSize="0"'), ["<PGPDataset>", "blockXSize '0'"]),
    Row("block-not-a-number", "open", doc(GOOD, ' blockXSize="16px"'),
        ["<PGPDataset>", "blockXSize '16px'"]),
    Row("block-float", "open", doc(GOOD, ' blockYSize="1e3"'),
        ["<PGPDataset>", "blockYSize '1e3'"]),
    Row("block-overflow", "open", doc(GOOD, ' blockXSize="99999999999999999999"'),
        ["<PGPDataset>", "blockXSize '99999999999999999999'"]),
    Row("block-pixels", "open", doc(GOOD, ' blockXSize="8192" blockYSize="8192"'),
        ["<PGPDataset>", "8192x8192", "exceeds the limit of 16777216 pixels"]),
    Row("too-many-nodes", "open", many_calcs(4095),
        ["<PGPDataset>", "more than 4096 nodes"]),
    Row("band-zero", "open", '<Source name="A" file="a.tif" band="0"/><Band ref="A"/>',
        ["<Source name='A'>", "band '0' is not a band number"]),
    Row("band-negative", "open", '<Source name="A" file="a.tif" band="-1"/><Band ref="A"/>',
        ["<Source name='A'>", "band '-1'"]),
    Row("band-not-a-number", "open", '<Source name="A" file="a.tif" band="one"/><Band ref="A"/>',
        ["<Source name='A'>", "band 'one'"]),
    Row("unknown-band", "open", '<Source name="A" file="a.tif" band="2"/><Band ref="A"/>',
        ["<Source name='A'>", "band 2 does not exist", "has 1 band"]),
    Row("source-nodata-not-a-number", "open",
        '<Source name="A" file="a.tif" noData="abc"/><Band ref="A"/>',
        ["<Source name='A'>", "noData 'abc' is not a number"]),
    Row("calc-nodata-not-a-number", "open", calc("A", attributes=' noData="x1"'),
        ["<Calc name='c'>", "noData 'x1' is not a number"]),
    Row("calc-nodata-out-of-type", "open", calc("A", attributes=' dataType="Byte" noData="-1"'),
        ["<Calc name='c'>", "noData -1 cannot be represented in Byte"]),
    Row("calc-nodata-fraction-in-int", "open",
        calc("A", attributes=' dataType="Int16" noData="0.5"'),
        ["<Calc name='c'>", "noData 0.5 cannot be represented in Int16"]),
    Row("data-type-unknown", "open", calc("A", attributes=' dataType="Int5" noData="-1"'),
        ["<Calc name='c'>", "dataType 'Int5'"]),
    Row("data-type-complex", "open", calc("A", attributes=' dataType="CFloat32" noData="-1"'),
        ["<Calc name='c'>", "dataType 'CFloat32'"]),
    Row("nodata-policy-unknown", "open",
        calc("A", attributes=' noData="-1" noDataPolicy="ignore"'),
        ["<Calc name='c'>", "noDataPolicy 'ignore'"]),
    Row("propagate-without-nodata", "open", calc("A + B", attributes=""),
        ["<Calc name='c'>", "input 'B' has nodata", "noData"]),
    Row("missing-expression", "open", GOOD_SOURCES + '<Calc name="c" noData="-1"/><Band ref="c"/>',
        ["<Calc name='c'>", "missing or empty <Expression>"]),
    Row("empty-expression", "open", calc("   "), ["<Calc name='c'>", "missing or empty"]),
    # -- files and rasters
    Row("missing-file", "open", '<Source name="M" file="missing.tif"/><Band ref="M"/>',
        ["<Source name='M'>", "cannot open", "missing.tif"]),
    Row("missing-file-attribute", "open", '<Source name="A"/><Band ref="A"/>',
        ["<Source name='A'>", "missing attribute 'file'"]),
    Row("empty-file-attribute", "open", '<Source name="A" file=""/><Band ref="A"/>',
        ["<Source name='A'>", "missing attribute 'file'"]),
    Row("not-a-raster", "open", '<Source name="T" file="notes.txt"/><Band ref="T"/>',
        ["<Source name='T'>", "cannot open", "notes.txt"]),
    Row("a-folder", "open", '<Source name="D" file="folder"/><Band ref="D"/>',
        ["<Source name='D'>", "cannot open", "folder"]),
    Row("truncated-header", "open", '<Source name="T" file="header_cut.tif"/><Band ref="T"/>',
        ["<Source name='T'>", "cannot open", "header_cut.tif"]),
    Row("complex-source", "open", '<Source name="Z" file="complex.tif"/><Band ref="Z"/>',
        ["<Source name='Z'>", "complex", "CFloat32"]),
    Row("size-mismatch", "open", '<Source name="A" file="a.tif"/>'
        '<Source name="S" file="small.tif"/><Band ref="S"/>',
        ["<Source name='S'>", "<Source name='A'>", "40x30", "41x30", "<Align>"]),
    Row("geotransform-mismatch", "open", '<Source name="A" file="a.tif"/>'
        '<Source name="T" file="shifted.tif"/><Band ref="T"/>',
        ["<Source name='T'>", "<Source name='A'>", "geotransform", "<Align>"]),
    # -- reads
    Row("truncated-tiles-read", "read",
        '<Source name="T" file="tiles_cut.tif"/><Calc name="f" dataType="Float32">'
        '<Expression>T * 2</Expression></Calc><Band ref="f"/>',
        ["<Calc name='f'> tile (", "<Source name='T'>", "reading window", "tiles_cut.tif"]),
    Row("truncated-tiles-convolve", "read",
        '<Source name="T" file="tiles_cut.tif"/><Convolve name="k" input="T" method="direct">'
        '<Kernel rows="3" cols="3">1 1 1 1 1 1 1 1 1</Kernel></Convolve><Band ref="k"/>',
        ["<Convolve name='k'> tile (", "<Source name='T'>", "tiles_cut.tif"]),
    Row("truncated-tiles-align", "read",
        '<Source name="T" file="tiles_cut.tif"/><Align pixelSize="30,-30">'
        '<Input ref="T" resampling="bilinear"/></Align><Band ref="T"/>',
        ["<Source name='T'> tile (", "tiles_cut.tif"]),
    Row("truncated-tiles-statistics", "stats",
        '<Source name="T" file="tiles_cut.tif"/><Calc name="f" dataType="Float32">'
        '<Expression>T + 1</Expression></Calc><Band ref="f"/>',
        ["<Calc name='f'> tile (", "<Source name='T'>", "reading window", "tiles_cut.tif"]),
    Row("truncated-tiles-translate", "translate",
        '<Source name="T" file="tiles_cut.tif"/><Band ref="T"/>',
        ["<Source name='T'> tile (", "reading window", "tiles_cut.tif"]),
]

def convolve(attributes='input="A"', kernel='<Kernel rows="3" cols="3">1 1 1 1 1 1 1 1 1</Kernel>',
             name="k"):
    return (GOOD_SOURCES + f'<Convolve name="{name}" {attributes}>{kernel}</Convolve>'
            f'<Band ref="{name}"/>')


KERNEL_ROWS = [
    Row("kernel-empty", "open", convolve(kernel='<Kernel rows="2" cols="2"></Kernel>'),
        ["<Convolve name='k'>", "<Kernel> of 2x2 needs 4 values but has 0"]),
    Row("kernel-too-few", "open", convolve(kernel='<Kernel rows="2" cols="3">1 2 3 4</Kernel>'),
        ["<Convolve name='k'>", "needs 6 values but has 4"]),
    Row("kernel-not-a-number", "open",
        convolve(kernel='<Kernel rows="2" cols="2">1 2 x 4</Kernel>'),
        ["<Convolve name='k'>", "<Kernel> value 3 'x' is not a number"]),
    Row("kernel-not-finite", "open",
        convolve(kernel='<Kernel rows="1" cols="3">1 inf 1</Kernel>'),
        ["<Convolve name='k'>", "not finite"]),
    Row("kernel-zero-rows", "open", convolve(kernel='<Kernel rows="0" cols="3"></Kernel>'),
        ["<Convolve name='k'>", "rows '0'", "from 1 to 2049"]),
    Row("kernel-beyond-limit", "open",
        convolve(kernel='<Kernel rows="1" cols="2050">1</Kernel>'),
        ["<Convolve name='k'>", "cols '2050'", "from 1 to 2049"]),
    Row("kernel-raster-beyond-limit", "open", convolve('input="A" kernel="wide_kernel.tif"', ""),
        ["<Convolve name='k'>", "wide_kernel.tif", "exceeds the 2049x2049 limit"]),
    Row("kernel-all-nodata", "open", convolve('input="A" kernel="nodata_kernel.tif"', ""),
        ["<Convolve name='k'>", "nodata_kernel.tif", "every kernel pixel is nodata"]),
    Row("kernel-missing-file", "open", convolve('input="A" kernel="nokernel.tif"', ""),
        ["<Convolve name='k'>", "cannot open kernel", "nokernel.tif"]),
    Row("kernel-twice", "open", convolve('input="A" kernel="nodata_kernel.tif"'),
        ["<Convolve name='k'>", "either as kernel=\"file\" or as one <Kernel>"]),
    Row("kernel-none", "open", convolve(kernel=""),
        ["<Convolve name='k'>", "either as kernel"]),
    Row("kernel-two-elements", "open",
        convolve(kernel='<Kernel rows="1" cols="1">1</Kernel><Kernel rows="1" cols="1">2</Kernel>'),
        ["<Convolve name='k'>", "unexpected element <Kernel>", "at most one <Kernel>"]),
    Row("kernel-unknown-attribute", "open",
        convolve(kernel='<Kernel rows="1" cols="1" size="3">1</Kernel>'),
        ["<Convolve name='k'>", "unknown attribute 'size'"]),
    Row("convolve-unknown-input", "open", convolve('input="nothing"'),
        ["<Convolve name='k'>", "input 'nothing'"]),
    Row("convolve-missing-input", "open", convolve(""),
        ["<Convolve name='k'>", "missing attribute 'input'"]),
    Row("convolve-self-input", "open", convolve('input="k"'),
        ["<Convolve name='k'>", "cycle", "k -> k"]),
    Row("convolve-bad-flag", "open", convolve('input="A" normalizeKernel="maybe"'),
        ["<Convolve name='k'>", "normalizeKernel 'maybe' is not a boolean"]),
    Row("convolve-bad-tolerance", "open", convolve('input="A" setTolToZero="-1"'),
        ["<Convolve name='k'>", "setTolToZero '-1'"]),
    Row("convolve-bad-method", "open", convolve('input="A" method="fast"'),
        ["<Convolve name='k'>", "method 'fast'"]),
    Row("convolve-int-without-nodata", "open", convolve('input="A" dataType="Int16"'),
        ["<Convolve name='k'>", "dataType Int16 needs a noData"]),
]

def align(attributes='pixelSize="30,-30"', children=""):
    return GOOD_SOURCES + f"<Align {attributes}>{children}</Align>" + '<Band ref="A"/>'


ALIGN_ROWS = [
    Row("align-bad-resampling", "open", align(children='<Input ref="A" resampling="nearest-ish"/>'),
        ["<Align> <Input ref='A'>", "nearest-ish"]),
    Row("align-bad-srs", "open", align('pixelSize="30,-30" srs="EPSG:999999"'),
        ["<Align>", "srs 'EPSG:999999' is not a spatial reference"]),
    Row("align-garbage-srs", "open", align('pixelSize="30,-30" srs="not a crs"'),
        ["<Align>", "srs 'not a crs'"]),
    Row("align-unknown-align-to", "open", align('pixelSize="30,-30" alignTo="nothing"'),
        ["<Align>", "alignTo 'nothing' names no <Source>"]),
    Row("align-pixel-zero", "open", align('pixelSize="0,30"'), ["<Align>", "pixelSize '0,30'"]),
    Row("align-pixel-not-numbers", "open", align('pixelSize="a,b"'),
        ["<Align>", "pixelSize 'a,b'"]),
    Row("align-pixel-missing", "open", align(""), ["<Align>", "pixelSize"]),
    Row("align-pixel-nan", "open", align('pixelSize="nan,30"'), ["<Align>", "pixelSize 'nan,30'"]),
    Row("align-bad-bbox", "open", align('pixelSize="30,-30" boundingBox="sideways"'),
        ["<Align>", "boundingBox 'sideways'"]),
    Row("align-bbox-three-numbers", "open", align('pixelSize="30,-30" boundingBox="1,2,3"'),
        ["<Align>", "boundingBox '1,2,3'"]),
    Row("align-grid-too-large", "open", align('pixelSize="0.0001,-0.0001"'),
        ["<Align>", "more than the limit of 10000000"]),
    Row("align-input-twice", "open",
        align(children='<Input ref="A"/><Input ref="A" resampling="bilinear"/>'),
        ["<Align> <Input>", "source 'A' has two <Input>s"]),
    Row("align-input-unknown", "open", align(children='<Input ref="nothing"/>'),
        ["<Align> <Input>", "ref 'nothing' names no <Source>"]),
    Row("align-input-not-a-source", "open",
        GOOD_SOURCES + '<Calc name="c" noData="-1"><Expression>A</Expression></Calc>'
        '<Align pixelSize="30,-30"><Input ref="c"/></Align><Band ref="c"/>',
        ["<Align> <Input>", "ref 'c' names no <Source>"]),
    Row("align-unexpected-child", "open", align(children="<Output/>"),
        ["<Align>", "unexpected element <Output>"]),
    Row("align-unknown-attribute", "open", align('pixelSize="30,-30" resampling="near"'),
        ["<Align>", "unknown attribute 'resampling'"]),
    Row("align-twice", "open",
        GOOD_SOURCES + '<Align pixelSize="30,-30"/><Align pixelSize="60,-60"/><Band ref="A"/>',
        ["<Align>", "at most one <Align>"]),
    Row("align-missing-vector", "open", align('pixelSize="30,-30" vectors="nothing.geojson"'),
        ["<Align>", "vectors: 'nothing.geojson'"]),
    Row("align-disjoint", "open",
        '<Source name="A" file="a.tif"/><Source name="F" file="far.tif"/>'
        '<Align pixelSize="30,-30"/><Band ref="A"/>',
        ["<Align>", "do not intersect"]),
]

EXPRESSION_ROWS = [
    Row("expr-unbalanced-open", "open", calc("(A + B"),
        ["<Calc name='c'>", "at column 7", "expected ')' to close the '(' at column 1"]),
    Row("expr-unbalanced-close", "open", calc("A + B)"),
        ["<Calc name='c'>", "at column 6", "unexpected ')'"]),
    Row("expr-empty-parens", "open", calc("()"),
        ["<Calc name='c'>", "at column 2", "expected an operand"]),
    Row("expr-missing-operand", "open", calc("A + * B"),
        ["<Calc name='c'>", "'A + * B' at column 5", "expected an operand"]),
    Row("expr-trailing-operator", "open", calc("A +"),
        ["<Calc name='c'>", "at column 4", "expected an operand"]),
    Row("expr-unknown-function", "open", calc("A + foo(B)"),
        ["<Calc name='c'>", "at column 5", "unknown function 'foo'"]),
    Row("expr-unknown-variable", "open", calc("A + Q"),
        ["<Calc name='c'>", "at column 5", "unknown name 'Q'"]),
    Row("expr-variable-case", "open", calc("a + B"),
        ["<Calc name='c'>", "at column 1", "unknown name 'a'"]),
    Row("expr-arity-too-few", "open", calc("pow(A)"),
        ["<Calc name='c'>", "at column 1", "function 'pow' takes 2 arguments, got 1"]),
    Row("expr-arity-too-many", "open", calc("1 + where(A, B)"),
        ["<Calc name='c'>", "at column 5", "function 'where' takes 3 arguments, got 2"]),
    Row("expr-arity-variadic", "open", calc("min(A)"),
        ["<Calc name='c'>", "at column 1", "function 'min' takes at least 2 arguments, got 1"]),
    Row("expr-trailing-comma", "open", calc("max(A, B,)"),
        ["<Calc name='c'>", "at column 10", "expected an operand"]),
    Row("expr-bad-character", "open", calc("A $ B"),
        ["<Calc name='c'>", "at column 3", "unexpected character '$'"]),
    Row("expr-non-ascii", "open", calc("A \u00d7 B"),
        ["<Calc name='c'>", "at column 3", "unexpected character '\u00d7'"]),
    Row("expr-single-equals", "open", calc("A = B"),
        ["<Calc name='c'>", "at column 3", "use '=='"]),
    Row("expr-malformed-number", "open", calc("2x + A"),
        ["<Calc name='c'>", "at column 1", "malformed number '2x'"]),
    Row("expr-isnodata-of-number", "open", calc("isnodata(1)"),
        ["<Calc name='c'>", "at column 10", "isnodata() takes a variable name"]),
    Row("expr-ternary-without-colon", "open", calc("A ? B"),
        ["<Calc name='c'>", "at column 6", "expected ':'"]),
    Row("expr-nesting-257", "open", calc("(" * 257 + "A" + ")" * 257),
        ["<Calc name='c'>", "at column 257", "nesting deeper than 256"]),
    Row("expr-nesting-30000", "open", calc("(" * 30000 + "A" + ")" * 30000),
        ["<Calc name='c'>", "at column 257", "nesting deeper than 256"]),
    Row("expr-unary-60000", "open", calc("-" * 60000 + "A"),
        ["<Calc name='c'>", "at column 257", "nesting deeper than 256"]),
    Row("expr-power-chain", "open", calc("A" + " ** A" * 300),
        ["<Calc name='c'>", "nesting deeper than 256"]),
    Row("expr-ternary-chain", "open", calc("A ? 1 : " * 300 + "B"),
        ["<Calc name='c'>", "nesting deeper than 256"]),
    Row("expr-calls-nested", "open", calc("abs(" * 300 + "A" + ")" * 300),
        ["<Calc name='c'>", "at column 1028", "nesting deeper than 256"]),
    Row("expr-100000-parens", "open", calc("(" * 100000),
        ["<Calc name='c'>", "100000 characters long", "the limit is 65536"]),
    Row("expr-too-long", "open", calc("A" + " + 1" * 20000),
        ["<Calc name='c'>", "80001 characters long", "the limit is 65536", "at column 65537"]),
]

OPTION_ROWS = [
    Row("executor-unknown", "config", ("PGP_EXECUTOR", "threads:2"),
        ["PGP_EXECUTOR='threads:2' is not valid", "serial", "threading:N"]),
    Row("executor-zero", "config", ("PGP_EXECUTOR", "threading:0"),
        ["PGP_EXECUTOR='threading:0'", "threading:N"]),
    Row("executor-beyond-max", "config", ("PGP_EXECUTOR", "threading:1025"),
        ["PGP_EXECUTOR='threading:1025'", "1024"]),
    Row("executor-overflow", "config", ("PGP_EXECUTOR", "threading:99999999999999999999999"),
        ["PGP_EXECUTOR='threading:99999999999999999999999'"]),
    Row("executor-negative", "config", ("PGP_EXECUTOR", "multiprocessing:-2"),
        ["PGP_EXECUTOR='multiprocessing:-2'"]),
    Row("executor-empty", "config", ("PGP_EXECUTOR", ""), ["PGP_EXECUTOR=''"]),
    Row("executor-serial-count", "openopt", ("EXECUTOR", "serial:2"),
        ["open option EXECUTOR='serial:2'", "serial"]),
    Row("executor-open-option", "openopt", ("EXECUTOR", "fast"),
        ["open option EXECUTOR='fast'", "threading:N"]),
    Row("cache-not-a-number", "config", ("PGP_CACHE_MB", "lots"),
        ["PGP_CACHE_MB='lots' is not valid", "integer from 0 to"]),
    Row("cache-negative", "openopt", ("CACHE_MB", "-5"),
        ["open option CACHE_MB='-5' is not valid"]),
    Row("cache-float", "openopt", ("CACHE_MB", "1e3"), ["open option CACHE_MB='1e3'"]),
    Row("cache-unit", "config", ("PGP_CACHE_MB", "256MB"), ["PGP_CACHE_MB='256MB'"]),
    Row("cache-huge", "config", ("PGP_CACHE_MB", "16777217"),
        ["PGP_CACHE_MB='16777217'", "from 0 to 16777216"]),
    Row("cache-overflow", "config", ("PGP_CACHE_MB", "99999999999999999999999"),
        ["PGP_CACHE_MB='99999999999999999999999'"]),
    Row("prefetch-not-a-number", "config", ("PGP_PREFETCH", "x"),
        ["PGP_PREFETCH='x' is not valid"]),
    Row("prefetch-negative", "openopt", ("PREFETCH", "-1"), ["open option PREFETCH='-1'"]),
    Row("prefetch-huge", "openopt", ("PREFETCH", "65537"),
        ["open option PREFETCH='65537'", "from 0 to 65536"]),
    Row("prefetch-empty", "config", ("PGP_PREFETCH", ""), ["PGP_PREFETCH=''"]),
    Row("overviews-not-a-boolean", "config", ("PGP_OVERVIEWS", "sometimes"),
        ["PGP_OVERVIEWS='sometimes'", "YES or NO"]),
    Row("overviews-number", "openopt", ("OVERVIEWS", "2"), ["open option OVERVIEWS='2'"]),
]

CLIENT_ROWS = [
    Row("gdalinfo-bad-expression", "gdalinfo", calc("A + * B"),
        ["<Calc name='c'>", "'A + * B' at column 5"]),
    Row("gdalinfo-cycle", "gdalinfo",
        GOOD_SOURCES + '<Calc name="x"><Expression>x</Expression></Calc><Band ref="x"/>',
        ["<Calc name='x'>", "x -> x"]),
    Row("translate-bad-executor", "translate_env", {"PGP_EXECUTOR": "threading:-2"},
        ["PGP_EXECUTOR='threading:-2' is not valid"]),
    Row("translate-bad-cache", "translate_env", {"PGP_CACHE_MB": "-1"},
        ["PGP_CACHE_MB='-1' is not valid"]),
    Row("translate-missing-file", "translate", '<Source name="M" file="gone.tif"/><Band ref="M"/>',
        ["<Source name='M'>", "cannot open", "gone.tif"]),
]

ALL_ROWS = XML_ROWS + KERNEL_ROWS + ALIGN_ROWS + EXPRESSION_ROWS + OPTION_ROWS + CLIENT_ROWS


def test_the_matrix_is_big_enough():
    assert len(ALL_ROWS) >= 40
    assert len({row.id for row in ALL_ROWS}) == len(ALL_ROWS), "row ids must be unique"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The rasters every row reads, written once."""
    path = tmp_path_factory.mktemp("matrix")
    a = np.arange(ROWS * COLS, dtype=np.float32).reshape(ROWS, COLS) / 7
    b = (np.arange(ROWS * COLS) % 11 - 1).astype(np.int16).reshape(ROWS, COLS)
    write_raster(path / "a.tif", a)
    write_raster(path / "b.tif", b, nodata=-1)
    write_raster(path / "small.tif", np.ones((ROWS, COLS - 1), np.float32))
    write_raster(path / "shifted.tif", np.ones((ROWS, COLS), np.float32),
                 origin=(444750.0, 3751320.0))
    write_raster(path / "complex.tif", np.ones((ROWS, COLS), np.complex64),
                 gdal_type=gdal.GDT_CFloat32)
    write_raster(path / "far.tif", np.ones((ROWS, COLS), np.float32), origin=(0.0, 1000.0))
    write_raster(path / "wide_kernel.tif", np.ones((1, 2050), np.float32))
    write_raster(path / "nodata_kernel.tif", np.full((3, 3), 9, np.uint8), nodata=9)
    (path / "notes.txt").write_text("not a raster\n")
    (path / "folder").mkdir()
    # Cut inside the first directory: the file does not open.
    data = (path / "a.tif").read_bytes()
    (path / "header_cut.tif").write_bytes(data[:64])
    # Uncompressed 64x64 tiles, the directory first: cut in the middle of the
    # pixel data, the file opens and its last tiles cannot be read.
    write_raster(path / "tiles.tif", np.ones((256, 256), np.float32), block=64)
    data = (path / "tiles.tif").read_bytes()
    (path / "tiles_cut.tif").write_bytes(data[:len(data) // 2])
    write_graph(path / "good.pgp.vrt", GOOD)
    return path


def expected_good(folder):
    a = gdal.Open(str(folder / "a.tif")).ReadAsArray().astype(np.float64)
    b = gdal.Open(str(folder / "b.tif")).ReadAsArray()
    return np.where(b == -1, -1, a + b).astype(np.float32)


def assert_process_is_fine(folder):
    """The next valid open and read work, with the right pixels, in this process."""
    for key in ("PGP_EXECUTOR", "PGP_CACHE_MB", "PGP_PREFETCH", "PGP_OVERVIEWS"):
        gdal.SetConfigOption(key, None)
    ds = gdal.OpenEx(str(folder / "good.pgp.vrt"), gdal.OF_RASTER, allowed_drivers=["PGP"])
    np.testing.assert_array_equal(ds.GetRasterBand(1).ReadAsArray(), expected_good(folder))
    ds = None


def graph_path(folder, row):
    path = folder / f"{row.id}.pgp.vrt"
    if row.input.startswith("<PGPDataset"):
        path.write_text(row.input)
        return str(path)
    return write_graph(path, row.input)


def assert_names(message, row):
    for part in row.parts:
        assert part in message, f"{row.id}: {part!r} not in message:\n{message[:2000]}"


@pytest.mark.parametrize("row", ALL_ROWS, ids=[row.id for row in ALL_ROWS])
def test_bad_input(folder, row):
    good = str(folder / "good.pgp.vrt")
    if row.kind == "open":
        path = graph_path(folder, row)
        with pytest.raises(RuntimeError) as error:
            gdal.OpenEx(path, gdal.OF_RASTER, allowed_drivers=["PGP"])
        assert_names(str(error.value), row)
    elif row.kind == "read":
        path = graph_path(folder, row)
        for executor in ("serial", "threading:2"):
            ds = gdal.OpenEx(path, gdal.OF_RASTER, open_options=[f"EXECUTOR={executor}"])
            with pytest.raises(RuntimeError) as error:
                ds.GetRasterBand(1).ReadAsArray()
            assert_names(str(error.value), row)
            ds = None
    elif row.kind == "stats":
        path = graph_path(folder, row)
        for executor in ("serial", "threading:2"):
            ds = gdal.OpenEx(path, gdal.OF_RASTER, open_options=[f"EXECUTOR={executor}"])
            with pytest.raises(RuntimeError) as error:
                ds.GetRasterBand(1).ComputeStatistics(False)
            assert_names(str(error.value), row)
            ds = None
    elif row.kind in ("config", "openopt"):
        option, value = row.input
        open_options = []
        if row.kind == "config":
            gdal.SetConfigOption(option, value)
        else:
            open_options = [f"{option}={value}"]
        with pytest.raises(RuntimeError) as error:
            gdal.OpenEx(good, gdal.OF_RASTER, open_options=open_options)
        assert_names(str(error.value), row)
    elif row.kind == "translate":
        path = graph_path(folder, row)
        result = run(["gdal_translate", path, str(folder / f"{row.id}.tif")], check=False)
        assert result.returncode != 0, f"{row.id}: gdal_translate succeeded"
        assert_names(result.stderr, row)
    elif row.kind == "translate_env":
        result = run(["gdal_translate", good, str(folder / f"{row.id}.tif")], env=row.input,
                     check=False)
        assert result.returncode != 0, f"{row.id}: gdal_translate succeeded"
        assert_names(result.stderr, row)
    elif row.kind == "gdalinfo":
        result = run(["gdalinfo", graph_path(folder, row)], check=False)
        assert result.returncode != 0, f"{row.id}: gdalinfo succeeded"
        assert_names(result.stderr, row)
    else:
        raise AssertionError(f"unknown kind {row.kind}")
    assert_process_is_fine(folder)


# ---- the limits themselves: just inside works, and nothing is allocated first ----


def test_limits_just_inside_work(folder):
    """The documented limits are limits, not approximations: at the limit it works."""
    inside = [
        ("nesting-256", calc("(" * 256 + "A" + ")" * 256)),
        ("length-65533", calc("A" + " + 0" * 16383)),
        ("block-16777216-pixels", doc(GOOD, ' blockXSize="8192" blockYSize="2048"')),
        ("nodes-4096", many_calcs(4094)),  # with the two sources
        ("kernel-2049", convolve(kernel='<Kernel rows="1" cols="2049">' + "1 " * 2049 +
                                 "</Kernel>")),
    ]
    for name, body in inside:
        row = Row(f"inside-{name}", "open", body, [])
        ds = gdal.OpenEx(graph_path(folder, row), gdal.OF_RASTER, allowed_drivers=["PGP"])
        assert ds.GetRasterBand(1).ReadAsArray().shape == (ROWS, COLS), name
        ds = None
    assert_process_is_fine(folder)


def test_relative_kernel_and_vector_paths_are_named_in_full(folder):
    """The place of a missing kernel or vector file is its resolved path, in full."""
    cases = [(convolve('input="A" kernel="nokernel.tif"', ""),
              f"cannot open kernel '{folder / 'nokernel.tif'}'"),
             (align('pixelSize="30,-30" vectors="nothing.geojson"'),
              f"vector '{folder / 'nothing.geojson'}'")]
    for i, (body, expected) in enumerate(cases):
        path = write_graph(folder / f"relative{i}.pgp.vrt", body)
        with pytest.raises(RuntimeError) as error:
            gdal.OpenEx(path, gdal.OF_RASTER, allowed_drivers=["PGP"])
        assert expected in str(error.value), str(error.value)
    assert_process_is_fine(folder)


def test_align_source_without_projection_fails_at_open(folder, tmp_path):
    """A graph that can never be read must not open: the error belongs to the open."""
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "plain.tif"), COLS, ROWS, 1,
                                              gdal.GDT_Float32)
    ds.SetGeoTransform((0, 30, 0, 900, 0, -30))
    ds = None
    path = write_graph(tmp_path / "g.pgp.vrt", '<Source name="P" file="plain.tif"/>'
                       '<Align pixelSize="30,-30" srs="EPSG:32618" boundingBox="0,0,900,900"/>'
                       '<Band ref="P"/>')
    with pytest.raises(RuntimeError) as error:
        gdal.OpenEx(path, gdal.OF_RASTER, allowed_drivers=["PGP"])
    assert "<Align>" in str(error.value) and "no projection" in str(error.value)
    assert_process_is_fine(folder)


def test_a_source_deleted_after_open_fails_the_read_naming_it(folder, tmp_path):
    """Workers open their own handles on first use: the error names node, tile and file."""
    shutil.copy(folder / "a.tif", tmp_path / "a.tif")
    shutil.copy(folder / "b.tif", tmp_path / "b.tif")
    path = write_graph(tmp_path / "g.pgp.vrt", GOOD)
    ds = gdal.OpenEx(path, gdal.OF_RASTER)
    os.remove(tmp_path / "a.tif")
    with pytest.raises(RuntimeError) as error:
        ds.GetRasterBand(1).ReadAsArray()
    message = str(error.value)
    assert "<Calc name='c'> tile (0,0)" in message and "<Source name='A'>" in message
    assert "a.tif" in message
    ds = None
    assert_process_is_fine(folder)


def test_bad_xml_text_as_the_file_name(folder):
    """The XML text itself as the file name goes through the same checks."""
    with pytest.raises(RuntimeError) as error:
        gdal.OpenEx(doc('<Source name="M" file="/nonexistent/m.tif"/><Band ref="M"/>'),
                    gdal.OF_RASTER, allowed_drivers=["PGP"])
    assert "<Source name='M'>" in str(error.value) and "cannot open" in str(error.value)
    with pytest.raises(RuntimeError) as error:
        gdal.OpenEx("<PGPDataset><Calc", gdal.OF_RASTER, allowed_drivers=["PGP"])
    assert "malformed XML" in str(error.value)
    assert_process_is_fine(folder)


def test_a_chain_too_deep_for_its_blocks_is_refused_at_open(tmp_path):
    """Each nested Calc holds its tile buffers while its input is computed in the
    same job: 40 levels of 8192 x 2048 tiles would need ~10 GB per worker."""
    ds = gdal.GetDriverByName("GTiff").Create(
        str(tmp_path / "big.tif"), 8192, 2048, 1, gdal.GDT_Byte, ["TILED=YES", "SPARSE_OK=TRUE"])
    ds.SetGeoTransform((0, 1, 0, 0, 0, -1))
    ds = None
    chain = "".join(f'<Calc name="k{i}"><Expression>{"A" if i == 0 else f"k{i - 1}"} + 1'
                    f'</Expression></Calc>' for i in range(40))
    body = f'<Source name="A" file="big.tif"/>{chain}<Band ref="k39"/>'
    path = write_graph(tmp_path / "deep.pgp.vrt", body, block=(8192, 2048))
    with pytest.raises(RuntimeError, match=r"<Calc name='k39'>: computing one tile needs "
                                           r"\d+ MB of scratch per worker .* 2048 MB limit"):
        gdal.Open(path)
    # the same chain with small blocks is fine
    small = write_graph(tmp_path / "shallow.pgp.vrt", body, block=(256, 256))
    assert gdal.Open(small).GetRasterBand(1).ReadAsArray(0, 0, 3, 3).tolist() == [[40] * 3] * 3
