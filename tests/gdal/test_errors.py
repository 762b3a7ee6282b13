#!/usr/bin/python3
"""Bad input through osgeo.gdal and gdalinfo: a CE_Failure naming problem and place."""
import numpy as np
import pytest
from osgeo import gdal

from conftest import read, run, write_graph, write_raster

GOOD = """<Source name="A" file="a.tif"/><Source name="B" file="b.tif"/>"""

CASES = [
    # (id, body of <PGPDataset> or a whole document, expected parts of the message)
    ("malformed-xml", '<PGPDataset><Source name="A" file="a.tif"', ["malformed XML"]),
    ("missing-file", '<Source name="M" file="missing.tif"/><Band ref="M"/>',
     ["<Source name='M'>", "cannot open", "missing.tif"]),
    ("band-0", '<Source name="A" file="a.tif" band="0"/><Band ref="A"/>',
     ["<Source name='A'>", "band '0'"]),
    ("band-beyond-count", '<Source name="A" file="a.tif" band="3"/><Band ref="A"/>',
     ["<Source name='A'>", "band 3 does not exist"]),
    ("unknown-name", GOOD + '<Calc name="c"><Expression>A + Q</Expression></Calc><Band ref="c"/>',
     ["<Calc name='c'>", "column 5", "'Q'"]),
    ("unknown-band-ref", GOOD + '<Band ref="nothing"/>', ["<Band> #1", "'nothing'"]),
    ("cycle", GOOD + '<Calc name="x"><Expression>y</Expression></Calc>'
                     '<Calc name="y"><Expression>x + A</Expression></Calc><Band ref="x"/>',
     ["cycle", "x -> y -> x"]),
    ("duplicate-name", GOOD + '<Calc name="A"><Expression>B</Expression></Calc><Band ref="A"/>',
     ["<Calc name='A'>", "duplicate"]),
    ("bad-expression", GOOD + '<Calc name="c"><Expression>A + * B</Expression></Calc>'
                              '<Band ref="c"/>',
     ["<Calc name='c'>", "'A + * B' at column 5"]),
    ("wrong-arity", GOOD + '<Calc name="c"><Expression>pow(A)</Expression></Calc>'
                           '<Band ref="c"/>',
     ["<Calc name='c'>", "pow", "2"]),
    ("bad-data-type", GOOD + '<Calc name="c" dataType="Int5"><Expression>A</Expression></Calc>'
                             '<Band ref="c"/>',
     ["<Calc name='c'>", "dataType 'Int5'"]),
    ("size-mismatch", '<Source name="A" file="a.tif"/><Source name="S" file="small.tif"/>'
                      '<Band ref="S"/>',
     ["<Source name='S'>", "<Source name='A'>", "40x30", "41x30"]),
    ("absurd-block", '<PGPDataset blockXSize="100000">' + GOOD + '<Band ref="A"/></PGPDataset>',
     ["<PGPDataset>", "blockXSize '100000'"]),
    ("unknown-element", GOOD + '<Convolve2 name="k"/><Band ref="A"/>',
     ["<Convolve2 name='k'>", "unknown element"]),
    ("unknown-attribute", '<Source name="A" file="a.tif" bnad="1"/><Band ref="A"/>',
     ["<Source name='A'>", "unknown attribute 'bnad'"]),
    # a child element is not ignored (CPLGetXMLValue would read <file> as file=)
    ("element-in-source", '<Source name="A"><file>a.tif</file></Source><Band ref="A"/>',
     ["<Source name='A'>", "unexpected element <file>"]),
    ("element-in-band", GOOD + '<Band ref="A"><Description>x</Description></Band>',
     ["<Band> #1", "unexpected element <Description>"]),
    ("element-in-input", GOOD + '<Align pixelSize="30,-30"><Input ref="A"><near/></Input>'
                                '</Align><Band ref="A"/>',
     ["<Align> <Input>", "unexpected element <near>"]),
    ("element-in-kernel", GOOD + '<Convolve name="k" input="A"><Kernel rows="1" cols="1">'
                                 '1<w/></Kernel></Convolve><Band ref="k"/>',
     ["<Convolve name='k'>", "unexpected element <w>"]),
    ("attribute-on-expression", GOOD + '<Calc name="c"><Expression lang="py">A</Expression>'
                                       '</Calc><Band ref="c"/>',
     ["<Calc name='c'>", "unknown attribute 'lang'"]),
    # Expressions as people write them are not XML: say so, and what to write.
    ("raw-ampersand", GOOD + '<Calc name="c">\n<Expression>A > 100 && B < 5</Expression>'
                             '</Calc><Band ref="c"/>',
     ["malformed XML", "<Expression> on line 3 holds a raw '&' ('A > 100 && B < 5')",
      "'and'/'or'", "'&amp;'", "'&lt;'", "<![CDATA["]),
    ("raw-less-than", GOOD + '<Calc name="c"><Expression>A < 5</Expression></Calc>'
                             '<Band ref="c"/>',
     ["malformed XML", "<Expression> on line 2 holds a raw '<' ('A < 5')"]),
    # minixml accepts a raw '&' without '<' but keeps only the text before it
    # (here "A > 0.5 "): refused, not computed from half an expression.
    ("raw-ampersand-parsed", GOOD + '<Calc name="c">\n<Expression>A > 0.5 && B > 5'
                                    '</Expression></Calc><Band ref="c"/>',
     ["g.pgp.vrt", "read only part of an <Expression>",
      "<Expression> on line 3 holds a raw '&' ('A > 0.5 && B > 5')", "'&amp;'"]),
]


@pytest.fixture
def folder(tmp_path):
    write_raster(tmp_path / "a.tif", np.ones((30, 41), np.float32))
    write_raster(tmp_path / "b.tif", np.ones((30, 41), np.int16))
    write_raster(tmp_path / "small.tif", np.ones((30, 40), np.float32))
    return tmp_path


def graph_file(folder, body):
    if body.startswith("<PGPDataset"):
        path = folder / "g.pgp.vrt"
        path.write_text(body)
        return str(path)
    return write_graph(folder / "g.pgp.vrt", body)


@pytest.mark.parametrize("case_id,body,parts", CASES, ids=[c[0] for c in CASES])
def test_bad_graph_fails_with_a_clear_message(folder, case_id, body, parts):
    path = graph_file(folder, body)
    with pytest.raises(RuntimeError) as error:
        gdal.OpenEx(path, gdal.OF_RASTER, allowed_drivers=["PGP"])
    for part in parts:
        assert part in str(error.value), f"{case_id}: {error.value}"
    # The process is fine afterwards: the next valid open works.
    ok = write_graph(folder / "ok.pgp.vrt", GOOD + '<Band ref="A"/>')
    assert read(ok).shape == (30, 41)


@pytest.mark.parametrize("expression", [
    "A > 0.5 and B &lt; 5", "A > 0.5 &amp;&amp; B &lt; 5", "<![CDATA[A > 0.5 && B < 5]]>",
    "\n  <![CDATA[A > 0.5 && B < 5]]>\n"])
def test_the_suggested_spellings_open(folder, expression):
    # a commented-out raw '&' is not read, so not refused
    path = write_graph(folder / "g.pgp.vrt", GOOD + '<!-- <Expression>A && B</Expression> -->'
                       f'<Calc name="c" dataType="Byte">'
                       f'<Expression>{expression}</Expression></Calc><Band ref="c"/>')
    np.testing.assert_array_equal(read(path), np.ones((30, 41), np.uint8))


def test_gdalinfo_reports_the_error_and_fails(folder):
    path = graph_file(folder, CASES[8][1])
    result = run(["gdalinfo", path], check=False)
    assert result.returncode != 0
    assert "'A + * B' at column 5" in result.stderr


@pytest.mark.parametrize("origin,value", [
    ("PGP_EXECUTOR", "threads:2"), ("PGP_EXECUTOR", "threading:0"),
    ("PGP_EXECUTOR", "threading:x"), ("EXECUTOR", "fast"),
    ("PGP_CACHE_MB", "lots"), ("CACHE_MB", "-5"), ("PGP_PREFETCH", "1e3"), ("PREFETCH", "x"),
])
def test_bad_option_values(folder, origin, value):
    path = write_graph(folder / "g.pgp.vrt", GOOD + '<Band ref="A"/>')
    options = []
    if origin.startswith("PGP_"):
        gdal.SetConfigOption(origin, value)
    else:
        options = [f"{origin}={value}"]
    with pytest.raises(RuntimeError) as error:
        gdal.OpenEx(path, gdal.OF_RASTER, open_options=options)
    assert origin in str(error.value) and f"'{value}'" in str(error.value)
    if origin.endswith("EXECUTOR"):
        assert "serial" in str(error.value) and "threading:N" in str(error.value)


def test_bad_executor_through_gdal_translate(folder):
    path = write_graph(folder / "g.pgp.vrt", GOOD + '<Band ref="A"/>')
    result = run(["gdal_translate", path, str(folder / "o.tif")],
                 env={"PGP_EXECUTOR": "threading:-2"}, check=False)
    assert result.returncode != 0
    assert "PGP_EXECUTOR='threading:-2' is not valid" in result.stderr
