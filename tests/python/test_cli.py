"""The pgp command: each subcommand against the Python call's output, GDAL's habits
(-co, -ot, -q, a progress bar on a terminal only, one-line errors, exit codes,
--help everywhere), and --tiles I/N shares + assemble against a one-shot render."""
import math
import os
import pty
import shutil
import subprocess
import sys

import numpy
import pytest
from osgeo import gdal
from osgeo import osr

import pgp
from pgp import cli
from pgp_testing import PYTHON, read, write_raster

SUBCOMMANDS = ("render", "assemble", "calc", "convolve", "align", "stitch", "zonal",
               "info")


def run_pgp(*args, stdout=subprocess.PIPE):
    """python3 -m pgp from the tree, as a user runs it."""
    env = dict(os.environ, PYTHONPATH=PYTHON)
    return subprocess.run([sys.executable, "-m", "pgp", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=120)


def pgp_main(capsys, *args):
    """cli.main in this process: (exit code, stdout, stderr)."""
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pixels(path, band=1):
    dataset = gdal.Open(str(path))
    return dataset.GetRasterBand(band).ReadAsArray()


def same_raster(path, reference):
    """Same bands (pixels and type), geotransform, nodata and statistics."""
    a, b = gdal.Open(str(path)), gdal.Open(str(reference))
    assert a.RasterCount == b.RasterCount
    assert a.GetGeoTransform() == b.GetGeoTransform()
    for index in range(1, a.RasterCount + 1):
        band_a, band_b = a.GetRasterBand(index), b.GetRasterBand(index)
        assert band_a.DataType == band_b.DataType
        assert band_a.GetNoDataValue() == band_b.GetNoDataValue()
        numpy.testing.assert_array_equal(band_a.ReadAsArray(), band_b.ReadAsArray())
        assert band_a.GetMetadata() == band_b.GetMetadata()


@pytest.fixture(scope="module")
def graph(inputs, tmp_path_factory):
    """Align (a at 30 m, c at 45 m) -> Calc -> Convolve, 64x64 tiles, two bands."""
    g = pgp.Graph((64, 64))
    g.source("a", inputs["a"])
    g.source("c", inputs["c"])
    g.align((30.0, -30.0), "union", resampling={"c": "bilinear"})
    g.calc("sum", "a + c * 3", "Float32", -9)
    g.convolve("smooth", "sum", inputs["kernel"], data_type="Float32", nodata=-9)
    g.calc("level", "sum / 10", "Int16", -9)
    g.band("level", "level")  # an Int16 band first: the output holds both types
    g.band("smooth", "smoothed")
    return g.write(str(tmp_path_factory.mktemp("cli") / "chain.pgp.vrt"))


def test_help_on_every_subcommand(capsys):
    result = run_pgp("--help")
    assert result.returncode == 0
    assert "render" in result.stdout and "assemble" in result.stdout
    for command in SUBCOMMANDS:
        code, out, _ = pgp_main(capsys, command, "--help")
        assert code == 0 and out.startswith(f"usage: pgp {command}")


def test_version_as_gdal_tools_print_it():
    result = run_pgp("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"pgp {pgp.__version__}, GDAL {gdal.__version__}"


def test_render_equals_pgp_render(graph, tmp_path, capsys):
    reference = tmp_path / "reference.tif"
    pgp.render(graph, str(reference))
    for extra in ([], ["--executor", "multiprocessing:2"],
                  ["--executor", "threading:2", "--write", "parts", "--parts-dir",
                   tmp_path / "parts", "--cache-mb", "64", "--gdal-cachemax", "64"]):
        out = tmp_path / "out.tif"
        assert pgp_main(capsys, "render", graph, out, "-q", *extra) == (0, "", "")
        same_raster(out, reference)


def test_render_creation_options_and_output_type(graph, tmp_path, capsys):
    out = tmp_path / "out.tif"
    assert pgp_main(capsys, "render", graph, out, "-co", "TILED=YES", "-co",
                    "BLOCKXSIZE=32", "-co", "BLOCKYSIZE=32", "-ot", "Int16",
                    "--no-stats")[0] == 0
    float_render = tmp_path / "float.tif"
    pgp.render(graph, str(float_render))
    converted = tmp_path / "converted.tif"
    gdal.Translate(str(converted), str(float_render), outputType=gdal.GDT_Int16)
    dataset = gdal.Open(str(out))
    assert dataset.GetRasterBand(1).GetBlockSize() == [32, 32]
    assert dataset.GetRasterBand(1).DataType == gdal.GDT_Int16
    metadata = dataset.GetRasterBand(1).GetMetadata()
    assert not [key for key in metadata if key.startswith("STATISTICS_")]  # --no-stats
    assert "PGP_NODE" in metadata  # copied as gdal_translate copies it
    for band in (1, 2):
        numpy.testing.assert_array_equal(pixels(out, band), pixels(converted, band))


def test_calc_equals_the_expression_call(inputs, tmp_path, capsys):
    expression = "A * 2 + B"
    symbols = {"A": (inputs["a"], 1), "B": (inputs["b"], 1)}
    reference = tmp_path / "reference.tif"
    pgp.evaluate_raster_calculator_expression(expression, symbols, -5, str(reference))
    out = tmp_path / "out.tif"
    assert pgp_main(capsys, "calc", "-A", inputs["a"], "-B", inputs["b"], "--calc",
                    expression, "--nodata", "-5", out, "-q")[0] == 0
    same_raster(out, reference)
    # gdal_calc.py's spellings of OUT and --nodata
    calc_style = tmp_path / "calc_style.tif"
    assert pgp_main(capsys, "calc", "-A", inputs["a"], "-B", inputs["b"],
                    f"--calc={expression}", "--NoDataValue=-5", f"--outfile={calc_style}",
                    "-q")[0] == 0
    same_raster(calc_style, reference)
    # --type converts as gdal_translate -ot does
    typed = tmp_path / "typed.tif"
    assert pgp_main(capsys, "calc", "-A", inputs["a"], "-B", inputs["b"], "--calc",
                    expression, "--nodata", "-5", "--type", "Int16", typed)[0] == 0
    converted = tmp_path / "converted.tif"
    gdal.Translate(str(converted), str(reference), outputType=gdal.GDT_Int16)
    numpy.testing.assert_array_equal(pixels(typed), pixels(converted))
    assert gdal.Open(str(typed)).GetRasterBand(1).DataType == gdal.GDT_Int16
    # OUT.pgp.vrt writes the graph; rendering it gives the same pixels
    graph = tmp_path / "calc.pgp.vrt"
    assert pgp_main(capsys, "calc", "-A", inputs["a"], "-B", inputs["b"], "--calc",
                    expression, "--nodata", "-5", graph)[0] == 0
    assert "<Calc" in graph.read_text()
    numpy.testing.assert_array_equal(pixels(graph), pixels(reference))
    assert gdal.Open(str(graph)).GetRasterBand(1).GetNoDataValue() == -5
    # a graph without --nodata over inputs with nodata: refused, one line
    code, _, err = pgp_main(capsys, "calc", "-A", inputs["a"], "--calc", "A + 1",
                            tmp_path / "x.pgp.vrt")
    assert code == 1 and err.count("\n") == 1 and "--nodata" in err


def test_calc_band_option(inputs, tmp_path, capsys):
    two_bands = tmp_path / "two.tif"
    gdal.Translate(str(two_bands), inputs["a"], bandList=[1, 1])
    reference = tmp_path / "reference.tif"
    pgp.evaluate_raster_calculator_expression("A - 1", {"A": (str(two_bands), 2)}, -5,
                                              str(reference))
    out = tmp_path / "out.tif"
    assert pgp_main(capsys, "calc", "-A", two_bands, "--A_band", "2", "--calc", "A - 1",
                    "--nodata", "-5", out)[0] == 0
    same_raster(out, reference)


def test_convolve_equals_convolve_2d(inputs, tmp_path, capsys):
    reference = tmp_path / "reference.tif"
    pgp.convolve_2d((inputs["a"], 1), (inputs["kernel"], 1), str(reference),
                    normalize_kernel=True, ignore_nodata_and_edges=True,
                    target_datatype=gdal.GDT_Float32, target_nodata=-1)
    out = tmp_path / "out.tif"
    assert pgp_main(capsys, "convolve", inputs["a"], inputs["kernel"], out,
                    "--normalize-kernel", "--ignore-nodata-and-edges", "-ot", "Float32",
                    "--nodata", "-1", "--executor", "threading:2")[0] == 0
    same_raster(out, reference)


def test_align_equals_align_and_resize(inputs, tmp_path, capsys):
    references = [str(tmp_path / "ref_a.tif"), str(tmp_path / "ref_c.tif")]
    pgp.align_and_resize_raster_stack([inputs["a"], inputs["c"]], references,
                                      ["near", "bilinear"], (45.0, -45.0), "union",
                                      raster_align_index=1)
    outs = [tmp_path / "a.tif", tmp_path / "c.tif"]
    assert pgp_main(capsys, "align", inputs["a"], outs[0], inputs["c"], outs[1],
                    "--pixel-size", "45", "-45", "--bbox", "union", "-r", "near",
                    "-r", "bilinear", "--align-to", "1")[0] == 0
    for out, reference in zip(outs, references):
        same_raster(out, reference)
    # gdalwarp's spellings -tr and -t_srs (to the next UTM zone)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32617)
    reference = str(tmp_path / "ref_utm.tif")
    pgp.align_and_resize_raster_stack([inputs["a"]], [reference], ["near"], (60.0, -60.0),
                                      "intersection", target_projection_wkt=srs.ExportToWkt())
    out = tmp_path / "utm.tif"
    assert pgp_main(capsys, "align", inputs["a"], out, "-tr", "60", "-60",
                    "-t_srs", "EPSG:32617")[0] == 0
    same_raster(out, reference)


def test_stitch_equals_stitch_rasters(inputs, tmp_path, capsys):
    """c (45 m, warped bilinear) then b (the target's grid, band 1) added into a copy
    of a; the command's target equals the call's, and its graph is listed by info."""
    reference, out = tmp_path / "reference.tif", tmp_path / "out.tif"
    for path in (reference, out):
        shutil.copy(inputs["a"], path)
    pgp.stitch_rasters([(inputs["c"], 1), (inputs["b"], 1)], ["bilinear", "near"],
                       (str(reference), 1), overlap_algorithm="add")
    assert pgp_main(capsys, "stitch", out, inputs["c"], inputs["b"], "--overlap", "add",
                    "-r", "bilinear", "-r", "near", "--base-band", "1",
                    "--executor", "threading:2")[0] == 0
    same_raster(out, reference)
    assert not numpy.array_equal(pixels(out), inputs["A"])
    graph = pgp.Graph((64, 64))
    graph.source("t", inputs["a"])
    graph.stitch("mosaic", "t", [(inputs["c"], 1, "near"), (inputs["b"], 1, "near")],
                 "add")
    graph.band("mosaic")
    code, listing, _ = pgp_main(capsys, "info", graph.write(str(tmp_path / "s.pgp.vrt")))
    assert code == 0 and "Stitch   mosaic: 2 bases into t, overlap add" in listing


def test_info_lists_nodes_grid_tiles_and_work(graph, capsys):
    code, out, _ = pgp_main(capsys, "info", graph)
    assert code == 0
    dataset = gdal.Open(graph)
    width, height = dataset.RasterXSize, dataset.RasterYSize
    for line in ("Source   a:", "Source   c:", "Align    (grid): 2 sources",
                 "Calc     sum: a + c * 3", "Convolve smooth: sum by a 7x7 kernel",
                 f"Grid: {width} x {height} pixels, pixel size 30 x -30",
                 f"Tiles: 64 x 64 pixels, {math.ceil(width / 64)} x "
                 f"{math.ceil(height / 64)} = "
                 f"{math.ceil(width / 64) * math.ceil(height / 64)}",
                 "Calc     level: sum / 10",
                 "Band 1: Int16, nodata -9.0, level",
                 "Band 2: Float32, nodata -9.0, smoothed"):
        assert line in out, (line, out)
    tiles = math.ceil(width / 64) * math.ceil(height / 64)
    assert f"Work (full render, direct convolution): {5 * tiles} node tiles" in out


def test_tiles_shares_and_assemble_equal_one_render(graph, tmp_path, capsys):
    one_shot = tmp_path / "one.tif"
    assert pgp_main(capsys, "render", graph, one_shot, "--no-stats")[0] == 0
    parts = [tmp_path / f"part{i}.tif" for i in (1, 2, 3)]
    for index, part in enumerate(parts, 1):
        assert pgp_main(capsys, "render", graph, part, "--tiles", f"{index}/3",
                        "--executor", "threading:2")[0] == 0
    heights = [gdal.Open(str(p)).RasterYSize for p in parts]
    assert sum(heights) == gdal.Open(str(one_shot)).RasterYSize and min(heights) > 0
    joined = tmp_path / "joined.tif"
    assert pgp_main(capsys, "assemble", joined, parts[2], parts[0], parts[1])[0] == 0
    same_raster(joined, one_shot)
    assert "PGP_SHARE" not in gdal.Open(str(joined)).GetMetadata()
    code, _, err = pgp_main(capsys, "assemble", tmp_path / "x.tif", parts[0], parts[2])
    assert code == 1 and err == "pgp assemble: error: missing share(s) 2/3\n"
    assert not (tmp_path / "x.tif").exists()
    code, _, err = pgp_main(capsys, "assemble", tmp_path / "x.tif", one_shot)
    assert code == 1 and "not a part written by pgp render --tiles" in err


@pytest.mark.parametrize("args, code, message", [
    (["render", "{graph}", "{out}", "--bogus"], 2,
     "pgp render: error: unrecognized arguments: --bogus (see pgp render --help)"),
    (["render", "{missing}", "{out}"], 1, "pgp render: error: {missing}: No such file"),
    (["render", "{graph}", "{out}", "--executor", "fork"], 1,
     "pgp render: error: executor='fork' is not accepted"),
    (["render", "{graph}", "{out}", "--tiles", "4/3"], 1,
     "pgp render: error: --tiles '4/3': expected I/N with 1 <= I <= N"),
    (["render", "{graph}", "{out}", "--tiles", "x"], 1,
     "pgp render: error: --tiles 'x': expected I/N"),
    (["render", "{graph}", "{out}", "--tiles", "1/50"], 1,
     "pgp render: error: --tiles 1/50: the graph has only 4 rows of tiles"),
    (["render", "{graph}", "{out}", "--write", "parts"], 1,
     "pgp render: error: write='parts' needs parts_dir"),
    (["calc", "-A", "{missing}", "--calc", "A", "{out}"], 1,
     "pgp calc: error: {missing}: No such file"),
    (["calc", "-A", "{graph}", "--calc", "A"], 2,
     "pgp calc: error: give the output once: OUT or --outfile OUT"),
    (["calc", "-A", "{graph}", "--calc", "A", "{out}", "--outfile", "{out}"], 2,
     "pgp calc: error: give the output once"),
    (["calc", "-A", "{graph}", "--calc", "A +* 2", "{out}"], 1,
     "pgp calc: error: expression 'A +* 2': invalid syntax"),
    (["convolve", "{graph}", "{missing}", "{out}"], 1,
     "pgp convolve: error: {missing}: No such file"),
    (["align", "{graph}", "--pixel-size", "1", "1"], 1,
     "pgp align: error: give SOURCE TARGET pairs"),
    (["stitch", "{graph}", "{missing}"], 1, "pgp stitch: error: {missing}: No such file"),
    (["stitch", "{graph}", "{graph}", "{graph}", "-r", "near", "-r", "near", "-r", "near"],
     1, "pgp stitch: error: -r given 3 times for 2 sources"),
    (["stitch", "{graph}", "{graph}", "--overlap", "sum"], 2,
     "pgp stitch: error: argument --overlap: invalid choice: 'sum'"),
    (["info"], 2, "pgp info: error: the following arguments are required: GRAPH"),
])
def test_bad_arguments_one_line_and_exit_code(graph, tmp_path, capsys, args, code,
                                              message):
    names = {"graph": graph, "out": tmp_path / "out.tif",
             "missing": tmp_path / "missing.tif"}
    args = [a.format(**names) for a in args]
    got, out, err = pgp_main(capsys, *args)
    assert got == code
    assert err.startswith(message.format(**names)) and err.count("\n") == 1, err
    assert not (tmp_path / "out.tif").exists()


def test_failure_in_the_plugin_threads_is_one_line(tmp_path):
    """A source that breaks mid-render (a truncated GeoTIFF): the plugin's threads
    report it too, yet the user sees one line."""
    path = write_raster(tmp_path / "cut.tif", numpy.ones((1024, 1024), numpy.float32),
                        block=256)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    graph = pgp.Graph((256, 256))
    graph.source("a", path)
    graph.calc("c", "a * 2", "Float32")
    graph.band("c")
    result = run_pgp("render", graph.write(str(tmp_path / "cut.pgp.vrt")),
                     str(tmp_path / "out.tif"), "--executor", "threading:2")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("pgp render: error: ") and "cut.tif" in result.stderr
    assert not (tmp_path / "out.tif").exists()


def run_on_terminal(*args):
    """python3 -m pgp with a pseudo-terminal as standard output: (exit code, what
    it showed there)."""
    master, slave = pty.openpty()
    try:
        result = run_pgp(*args, stdout=slave)
        os.close(slave)
        slave = None
        shown = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other end is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    return result.returncode, shown


def test_real_exit_code_and_progress_only_on_a_terminal(graph, tmp_path):
    result = run_pgp("render", graph, str(tmp_path / "o.tif"), "--executor", "nope")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("pgp render: error: executor='nope'")
    piped = run_pgp("render", graph, str(tmp_path / "piped.tif"))
    assert piped.returncode == 0 and piped.stdout == "" and piped.stderr == ""
    code, shown = run_on_terminal("render", graph, str(tmp_path / "tty.tif"))
    assert code == 0 and b"0...10...20" in shown and b"100 - done" in shown
    code, shown = run_on_terminal("render", graph, str(tmp_path / "quiet.tif"), "-q")
    assert code == 0 and shown == b""
    assert (read(tmp_path / "tty.tif")[0].tobytes() ==
            read(tmp_path / "piped.tif")[0].tobytes())


def test_zonal_csv_and_geopackage_equal_zonal_statistics(inputs, tmp_path, capsys):
    from osgeo import ogr, osr
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    vector = str(tmp_path / "zones.gpkg")
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(vector)
    layer = ds.CreateLayer("zones", srs, ogr.wkbPolygon)
    for x, y, r in ((444720 + 3000, 3751320 - 2000, 900), (444720 + 6000, 3751320 - 4000, 400),
                    (0, 0, 10)):  # the last is outside the raster: empty statistics
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({x} {y})").Buffer(r, 8))
        layer.CreateFeature(feature)
    ds = layer = None
    expected = pgp.zonal_statistics((inputs["a"], 1), vector, extra_statistics=True)
    code, out, err = pgp_main(capsys, "zonal", inputs["a"], vector, "--extra", "-q")
    assert code == 0, err
    rows = [line.split(",") for line in out.strip().splitlines()]
    header = rows[0]
    assert header[:7] == ["fid", "count", "nodata_count", "sum", "min", "max", "average"]
    for row in rows[1:]:
        stats = expected[int(row[0])]
        for name, text in zip(header[1:], row[1:]):
            assert text == ("" if stats[name] is None else str(stats[name])), name
    gpkg = tmp_path / "stats.gpkg"
    code, _, err = pgp_main(capsys, "zonal", inputs["a"], vector, "-o", gpkg,
                            "--executor", "serial")
    assert code == 0, err
    out_ds = gdal.OpenEx(str(gpkg), gdal.OF_VECTOR)
    for feature in out_ds.GetLayer(0):
        stats = expected[feature.GetFID()]
        assert feature.GetGeometryRef() is not None
        for name in ("count", "sum", "average"):
            got = feature.GetField(name)
            assert (got is None and stats[name] is None) or got == stats[name], name
