"""The executor contract: accepted forms, pickling checked up front, failures,
cancellation, caller-owned executors left running, and plugin discovery."""
import concurrent.futures
import contextlib
import logging
import os
import subprocess
import sys

import numpy
import pytest
from osgeo import gdal

import ops
import pgp
from pgp_testing import PYTHON, REPO, executor_for, read


def leftovers(folder):
    """Files of the folder that are pgp's temporary targets."""
    return [name for name in os.listdir(folder) if ".pgp-" in name]


@pytest.mark.parametrize("value", [
    "threading:0", "threading:x", "multiprocessing:-1", "fork", "serial:2", "threads",
    "multiprocessing:", 3, True, object()])
def test_bad_executor_values(inputs, tmp_path, value):
    target = tmp_path / "t.tif"
    with pytest.raises(ValueError) as error:
        pgp.raster_calculator([(inputs["a"], 1)], ops.double, str(target),
                              gdal.GDT_Float32, None, executor=value)
    assert repr(value) in str(error.value)
    assert "'threading:N'" in str(error.value) and "concurrent.futures.Executor" in str(
        error.value)
    assert not target.exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("name", ["multiprocessing:2", "process_pool"])
def test_lambda_refused_before_any_work(inputs, pools, tmp_path, name):
    target = tmp_path / "t.tif"
    with pytest.raises(ValueError, match=r"local_op '.*<lambda>'.*module level"):
        pgp.raster_calculator([(inputs["a"], 1)], lambda x: x, str(target),
                              gdal.GDT_Float32, None, executor=executor_for(name, pools))

    def nested(x):
        return x

    with pytest.raises(ValueError, match=r"op '.*nested'.*module level"):
        pgp.raster_map(nested, [inputs["a"]], str(target),
                       executor=executor_for(name, pools))
    assert not target.exists() and not leftovers(tmp_path)


def test_dask_serializer_accepts_a_closure(inputs, pools, tmp_path):
    """Dask pickles with cloudpickle, so a closure is fine there (its own serializer
    decides, not plain pickle)."""
    factor = 3.0
    target = tmp_path / "t.tif"
    pgp.raster_calculator([(inputs["a"], 1)], lambda x: x * factor, str(target),
                          gdal.GDT_Float32, None, executor=executor_for("dask", pools))
    numpy.testing.assert_array_equal(read(target)[0], inputs["A"] * numpy.float32(3))


@pytest.mark.parametrize("name", ["none", "threading:2", "process_pool", "dask"])
def test_failing_task_reraised_with_its_window(inputs, pools, tmp_path, name):
    target = tmp_path / "t.tif"
    rows = numpy.arange(200).reshape((200, 1))
    with pytest.raises(ops.WindowRefused) as error:
        pgp.raster_calculator([(inputs["a"], 1), rows], ops.refuse_last_rows, str(target),
                              gdal.GDT_Float32, None, largest_block=0,
                              raster_driver_creation_tuple=(
                                  "GTIFF", ("TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64")),
                              executor=executor_for(name, pools))
    message = str(error.value)
    assert "rows up to 199 refused" in message
    assert "window (xoff=0, yoff=192, xsize=64, ysize=8)" in message
    assert not target.exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("name", ["none", "threading:2", "process_pool"])
def test_failed_call_removes_the_target_it_was_replacing(inputs, pools, tmp_path, name,
                                                           caplog):
    """pygeoprocessing replaces the target as a call starts, so after a failure the older
    file is gone; pgp leaves nothing under the name either, rather than an older result
    looking like this call's. A call refused before any work leaves the file."""
    target = tmp_path / "t.tif"
    pgp.raster_calculator([(inputs["a"], 1)], ops.double, str(target), gdal.GDT_Float32,
                          None)
    older = target.read_bytes()
    with pytest.raises(ValueError):
        pgp.raster_calculator([(inputs["a"], 1)], ops.double, str(target),
                              gdal.GDT_Float32, None, executor="threads")
    assert target.read_bytes() == older
    rows = numpy.arange(200).reshape((200, 1))
    with pytest.raises(ops.WindowRefused):
        pgp.raster_calculator([(inputs["a"], 1), rows], ops.refuse_last_rows, str(target),
                              gdal.GDT_Float32, None, executor=executor_for(name, pools))
    assert not target.exists() and not leftovers(tmp_path)
    assert f"{target}: removed: the call replacing it failed" in caplog.text


@pytest.mark.parametrize("as_file", [False, True])
def test_a_failed_render_keeps_its_own_source(tmp_path, monkeypatch, as_file, caplog):
    """A render cancelled once it has begun removes the file under the target's name,
    unless the graph reads it: that is the call's input, not an older result (a graph
    file's sources are relative to its folder). raster_calculator's inputs as well."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "in"
    folder.mkdir()
    source = folder / "a.tif"
    pixels = numpy.arange(512 * 512, dtype=numpy.float32).reshape((512, 512))
    ds = gdal.GetDriverByName("GTiff").Create(str(source), 512, 512, 1, gdal.GDT_Float32,
                                              ["TILED=YES"])
    ds.GetRasterBand(1).WriteArray(pixels)
    ds = None
    graph = pgp.Graph(block_size=(256, 256))
    graph.source("a", "in/a.tif")  # made absolute
    graph.calc("b", "a * 2")
    graph.band("b")
    if as_file:
        (folder / "g.pgp.vrt").write_text(graph.to_xml().replace(str(source), "a.tif"))
        graph = "in/g.pgp.vrt"
    with pytest.raises(pgp.Cancelled):
        pgp.render(graph, "in/a.tif", progress=lambda fraction, message, data: fraction < 0.3)
    assert numpy.array_equal(read(source)[0], pixels)
    # raster_calculator refuses its input's path as the target, not another spelling.
    with pytest.raises(ops.WindowRefused):
        pgp.raster_calculator([(str(source), 1), numpy.arange(512).reshape((512, 1))],
                              ops.refuse_last_rows, "in/../in/a.tif", gdal.GDT_Float32,
                              None)
    assert numpy.array_equal(read(source)[0], pixels)
    assert "removed" not in caplog.text and not leftovers(folder)


@pytest.mark.parametrize("fails", [False, True])
def test_replacing_a_target_removes_that_file_only(inputs, tmp_path, fails):
    """What stands under the target's name goes as GDAL's Create removes it before
    writing (pygeoprocessing's): a VRT there goes, not the raster it reads; a directory
    there stays, with the dataset inside it. The target's driver would delete every file
    it lists when it opens them, sources and folder contents among them."""
    rows = numpy.arange(200).reshape((200, 1)) if fails else numpy.zeros((200, 1))
    source = tmp_path / "source.tif"
    gdal.Translate(str(source), inputs["a"])
    vrt = tmp_path / "t.tif"
    gdal.Translate(str(vrt), str(source), format="VRT").FlushCache()
    folder = tmp_path / "folder"
    shapes = gdal.GetDriverByName("ESRI Shapefile").Create(str(folder), 0, 0, 0,
                                                         gdal.GDT_Unknown)
    shapes.CreateLayer("l")
    shapes = None
    kept = sorted(os.listdir(folder))
    expected = ops.WindowRefused if fails else None
    for target, error in ((vrt, expected), (folder, expected or RuntimeError)):
        with pytest.raises(error) if error else contextlib.nullcontext():
            pgp.raster_calculator([(inputs["a"], 1), rows], ops.refuse_last_rows,
                                  str(target), gdal.GDT_Float32, None)
    assert numpy.array_equal(read(source)[0], read(inputs["a"])[0])
    assert sorted(os.listdir(folder)) == kept
    if fails:
        assert not vrt.exists()
    else:
        assert gdal.Open(str(vrt)).GetDriver().ShortName == "GTiff"
    assert not leftovers(tmp_path)


def test_graph_failure_reaches_the_caller(inputs, tmp_path):
    graph = pgp.Graph(block_size=(64, 64))
    graph.source("a", inputs["a"])
    graph.calc("f", "a * 2", data_type="Float32", nodata=-9)
    graph.band("f")
    path = graph.write(str(tmp_path / "g.pgp.vrt"))
    os.rename(inputs["a"], inputs["a"] + ".moved")
    try:
        for executor in (None, "threading:2"):
            with pytest.raises(RuntimeError, match="a.tif"):
                pgp.render(path, str(tmp_path / "t.tif"), executor=executor)
    finally:
        os.rename(inputs["a"] + ".moved", inputs["a"])
    assert not (tmp_path / "t.tif").exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("name", ["none", "threading:2", "thread_pool"])
def test_progress_false_cancels(inputs, pools, tmp_path, name):
    seen = []

    def progress(fraction, message, data):
        seen.append(fraction)
        return len(seen) < 3

    target = tmp_path / "t.tif"
    with pytest.raises(pgp.Cancelled):
        pgp.raster_calculator([(inputs["a"], 1)], ops.double, str(target), gdal.GDT_Float32,
                              None, largest_block=0, executor=executor_for(name, pools),
                              raster_driver_creation_tuple=(
                                  "GTIFF", ("TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64")),
                              progress=progress)
    assert len(seen) == 3 and seen == sorted(seen) and seen[-1] < 1
    assert not target.exists() and not leftovers(tmp_path)


def test_progress_forms(inputs, tmp_path, capfd, caplog):
    seen = []
    pgp.render(_graph(inputs), str(tmp_path / "r.tif"),
               progress=lambda f, m, d: seen.append((f, m)) or True)
    assert seen[-1] == (1.0, str(tmp_path / "r.tif")) and len(seen) >= 1
    pgp.render(_graph(inputs), str(tmp_path / "r.tif"), progress=True)
    assert "100 - done" in capfd.readouterr().out
    with caplog.at_level(logging.INFO, logger="pgp"):
        pgp.render(_graph(inputs), str(tmp_path / "r.tif"))
    assert "100.0% complete" in caplog.text


def _graph(inputs):
    graph = pgp.Graph(block_size=(64, 64))
    graph.source("a", inputs["a"])
    graph.band("a")
    return graph


def test_caller_executors_are_reused_not_shut_down(inputs, pools, tmp_path):
    thread_pool = concurrent.futures.ThreadPoolExecutor(2)
    dask_executor = executor_for("dask", pools)
    client = pools["dask"]["client"]
    try:
        for executor in (thread_pool, dask_executor, client):
            for round_ in range(2):
                target = tmp_path / f"t{round_}.tif"
                pgp.raster_calculator([(inputs["a"], 1)], ops.double, str(target),
                                      gdal.GDT_Float32, None, executor=executor)
                numpy.testing.assert_array_equal(read(target)[0], inputs["A"] * 2)
        assert thread_pool.submit(sum, [1, 2]).result() == 3
        assert dask_executor.submit(sum, [1, 2]).result() == 3
    finally:
        thread_pool.shutdown()


def test_target_replaced_whole(inputs, tmp_path):
    target = tmp_path / "t.tif"
    target.write_bytes(b"not a raster")
    pgp.raster_calculator([(inputs["a"], 1)], ops.double, str(target), gdal.GDT_Float32, -9)
    numpy.testing.assert_array_equal(read(target)[0], inputs["A"] * 2)
    assert os.listdir(tmp_path) == ["t.tif"]


def _import_check(code):
    env = {k: v for k, v in os.environ.items() if k not in ("GDAL_DRIVER_PATH", "PYTHONPATH")}
    env["PYTHONPATH"] = PYTHON
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_import_finds_the_plugin_without_gdal_driver_path():
    for code in ("import pgp; from osgeo import gdal; print(gdal.GetDriverByName('PGP').ShortName)",
                 "from osgeo import gdal; assert gdal.GetDriverByName('PGP') is None or True; "
                 "import pgp; print(gdal.GetDriverByName('PGP').ShortName)"):
        result = _import_check(code)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "PGP"


def test_sample_runs(tmp_path):
    """samples/python_example.py runs as documented, and its local_op and its
    expression (the same formula) agree."""
    env = dict(os.environ, PYTHONPATH=PYTHON)
    env.pop("GDAL_DRIVER_PATH", None)
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "samples", "python_example.py"),
         str(tmp_path / "data"), str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    local_op = read(tmp_path / "out" / "runoff.tif")[0]
    expression = read(tmp_path / "out" / "runoff_expression.tif")[0]
    numpy.testing.assert_allclose(expression, local_op, rtol=1e-6)
    assert (local_op == -1).sum() > 0


def test_interactive_main_function_refused():
    """A function typed at the interpreter (here python -c) pickles by reference to a
    __main__ the spawned processes cannot import: refused up front, no hang."""
    code = ("import pgp, numpy\n"
            "from osgeo import gdal\n"
            "def op(a): return a\n"
            "try:\n"
            "    pgp.raster_calculator([numpy.ones((4, 4))], op, '/vsimem/t.tif',\n"
            "                          gdal.GDT_Float32, None, executor='multiprocessing:2')\n"
            "except ValueError as error:\n"
            "    print(error)\n")
    result = _import_check(code)
    assert result.returncode == 0, result.stderr
    assert "interactive __main__" in result.stdout and "'op'" in result.stdout


class CountingExecutor(concurrent.futures.Executor):
    """A caller's executor of unknown kind (2 threads) that records how many windows
    were submitted and not yet taken by the writer."""

    _max_workers = 2

    def __init__(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(2)
        self.outstanding = 0
        self.most = 0

    def submit(self, fn, /, *args, **kwargs):
        self.outstanding += 1
        self.most = max(self.most, self.outstanding)
        future = self.pool.submit(fn, *args, **kwargs)
        taken = future.result

        def result(timeout=None):
            self.outstanding -= 1
            return taken(timeout)

        future.result = result
        return future

    def shutdown(self, wait=True, **kwargs):
        self.pool.shutdown(wait, **kwargs)


def test_windows_in_flight_are_bounded(inputs, tmp_path):
    """One writer, at most 2 x workers windows submitted and not yet written, however
    many windows the raster has (here 20)."""
    executor = CountingExecutor()
    try:
        pgp.raster_calculator([(inputs["a"], 1)], ops.double, str(tmp_path / "t.tif"),
                              gdal.GDT_Float32, None, largest_block=0, executor=executor,
                              raster_driver_creation_tuple=(
                                  "GTIFF", ("TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64")))
    finally:
        executor.shutdown()
    assert executor.most == 4 and executor.outstanding == 0
    numpy.testing.assert_array_equal(read(tmp_path / "t.tif")[0], inputs["A"] * 2)


def test_accepted_executor_strings():
    """The proposal's spellings: case-insensitive names, no N = all CPUs."""
    from pgp.executors import resolve
    cpus = os.cpu_count()
    cases = {None: ("serial", 1), "serial": ("serial", 1), "Threading:3": ("threads", 3),
             "threading": ("threads", cpus), "multiprocessing": ("processes", cpus),
             "Multiprocessing:2": ("processes", 2)}
    for value, (kind, workers) in cases.items():
        plan = resolve(value)
        assert (plan.kind, plan.workers) == (kind, workers), value
        assert plan.owned == (kind != "serial")
        plan.close()
    pool = concurrent.futures.ThreadPoolExecutor(3)
    plan = resolve(pool)
    assert (plan.kind, plan.workers, plan.owned) == ("threads", 3, False)
    plan.close()
    assert pool.submit(abs, -1).result() == 1
    pool.shutdown()


def test_in_memory_inputs_refused_for_processes(inputs, pools, tmp_path):
    gdal.Translate("/vsimem/pgp_test_a.tif", inputs["a"])
    try:
        for call in (
                lambda ex: pgp.raster_calculator([("/vsimem/pgp_test_a.tif", 1)], ops.double,
                                                 str(tmp_path / "t.tif"), gdal.GDT_Float32,
                                                 None, executor=ex),
                lambda ex: pgp.convolve_2d(("/vsimem/pgp_test_a.tif", 1),
                                           (inputs["kernel"], 1), str(tmp_path / "t.tif"),
                                           executor=ex)):
            with pytest.raises(ValueError, match="in-memory file"):
                call(executor_for("process_pool", pools))
            call("threading:2")  # threads share the process's /vsimem
        graph = pgp.Graph()
        graph.source("a", "/vsimem/pgp_test_a.tif")
        graph.band("a")
        gdal.FileFromMemBuffer("/vsimem/pgp_test.pgp.vrt", graph.to_xml())
        pgp.render("/vsimem/pgp_test.pgp.vrt", str(tmp_path / "r.tif"))
        numpy.testing.assert_array_equal(read(tmp_path / "r.tif")[0], inputs["A"])
        for graph_source in ("/vsimem/pgp_test.pgp.vrt", graph.to_xml()):
            with pytest.raises(ValueError, match="in-memory file"):
                pgp.render(graph_source, str(tmp_path / "r2.tif"),
                           executor=executor_for("process_pool", pools))
        assert not leftovers(tmp_path)
    finally:
        gdal.Unlink("/vsimem/pgp_test_a.tif")
        gdal.Unlink("/vsimem/pgp_test.pgp.vrt")
