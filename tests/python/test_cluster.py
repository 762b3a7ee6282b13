"""A real Dask cluster on 127.0.0.1: ``dask-scheduler`` and two ``dask-worker``
processes started from their commands, each under ``timeout`` (and the scheduler with
an idle timeout, the workers with a death timeout), always killed at teardown.

An Align -> Calc -> Convolve graph rendered through the cluster in both write modes
equals a serial render; a worker killed mid-render leaves the result unchanged (Dask
reruns its tasks); a source the workers cannot see, a plugin a worker cannot find and
a parts folder the caller cannot see are errors naming the worker and the thing."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy
import pytest
from osgeo import gdal

import pgp
from pgp_testing import PYTHON, write_raster

distributed = pytest.importorskip("distributed")

LIMIT_S = 300  # no cluster process outlives this, whatever happens to the tests


class DaskProcesses:
    """Scheduler and worker processes, each in its own process group (timeout + the
    dask command), killed by group id."""

    def __init__(self, folder):
        self.folder = folder
        self.groups = []
        self.scheduler_file = str(folder / "scheduler.json")

    def _start(self, command, cwd, env=None):
        process = subprocess.Popen(
            ["timeout", "-s", "KILL", str(LIMIT_S)] + command, cwd=cwd,
            env=env or os.environ.copy(), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=open(self.folder / "dask.log", "ab"))
        self.groups.append(process)
        return process

    def start_scheduler(self):
        self._start(["dask-scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--no-dashboard", "--idle-timeout", f"{LIMIT_S}s",
                     "--scheduler-file", self.scheduler_file], self.folder)
        deadline = time.time() + 60
        while time.time() < deadline:
            if os.path.exists(self.scheduler_file):
                try:
                    with open(self.scheduler_file) as f:
                        return json.load(f)["address"]
                except (ValueError, KeyError):
                    pass  # being written
            time.sleep(0.1)
        raise RuntimeError("dask-scheduler did not start: " + self.log())

    def start_worker(self, name, cwd, env=None):
        return self._start(["dask-worker", "--scheduler-file", self.scheduler_file,
                            "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
                            "--no-dashboard", "--name", name, "--death-timeout", "30",
                            "--memory-limit", "0", "--local-directory",
                            str(self.folder / name)], cwd, env)

    def kill(self, process):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self):
        for process in self.groups:
            self.kill(process)

    def log(self):
        path = self.folder / "dask.log"
        return path.read_text()[-2000:] if path.exists() else ""


def connect(processes, address, n_workers):
    client = distributed.Client(address, timeout="60s")
    try:
        client.wait_for_workers(n_workers, timeout=60)
    except Exception:
        client.close()
        raise RuntimeError(f"{n_workers} dask workers did not start: " + processes.log())
    return client


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    workers_cwd = folder / "workers_cwd"  # an empty folder: relative paths fail there
    workers_cwd.mkdir()
    processes = DaskProcesses(folder)
    client = None
    try:
        address = processes.start_scheduler()
        workers = {name: processes.start_worker(name, workers_cwd)
                   for name in ("w1", "w2")}
        client = connect(processes, address, 2)
        yield {"client": client, "processes": processes, "workers": workers,
               "folder": folder}
    finally:
        if client is not None:
            client.close()
        processes.stop_all()


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """Align (a 30 m and a 45 m raster, bilinear) -> Calc -> Convolve 7x7 on 64x64
    tiles: 1800 x 1500 pixels, 3 render windows."""
    folder = tmp_path_factory.mktemp("cluster_inputs")
    rng = numpy.random.default_rng(18)
    a = rng.uniform(0, 100, (1500, 1800)).astype(numpy.float32)
    a[rng.random(a.shape) < 0.02] = -1
    b = rng.uniform(0, 10, (1000, 1200)).astype(numpy.float32)
    paths = {"a": write_raster(folder / "a.tif", a, nodata=-1),
             "b": write_raster(folder / "b.tif", b, nodata=-1, pixel=45.0)}
    g = pgp.Graph((64, 64))
    g.source("a", paths["a"])
    g.source("b", paths["b"])
    g.align((30.0, -30.0), "intersection", resampling={"b": "bilinear"})
    g.calc("c", "a * 0.5 + b * b", "Float32", -1)
    g.convolve("smooth", "c", rng.uniform(0, 1, (7, 7)), data_type="Float32", nodata=-1)
    g.band("smooth")
    path = g.write(str(folder / "chain.pgp.vrt"))
    serial = str(folder / "serial.tif")
    pgp.render(path, serial)
    return {"path": path, "serial": serial, "folder": folder, "paths": paths}


def pixels_and_stats(path):
    dataset = gdal.Open(path)
    band = dataset.GetRasterBand(1)
    return band.ReadAsArray(), band.GetMetadata()


@pytest.mark.parametrize("write", ["single", "parts"])
def test_cluster_render_equals_serial(cluster, graph, tmp_path, write):
    parts_dir = str(tmp_path / "parts") if write == "parts" else None
    target = str(tmp_path / "out.tif")
    pgp.render(graph["path"], target, executor=cluster["client"], write=write,
               parts_dir=parts_dir, worker_settings={"GDAL_CACHEMAX": 96})
    serial_pixels, serial_stats = pixels_and_stats(graph["serial"])
    pixels, stats = pixels_and_stats(target)
    assert serial_stats["STATISTICS_MEAN"]
    numpy.testing.assert_array_equal(pixels, serial_pixels)
    assert stats == serial_stats
    if parts_dir:
        assert os.listdir(parts_dir) == []  # every part read back and deleted


def _cache_settings(graph_path):
    """On a worker: GDAL's cache and the plugin's tile cache budget after an open."""
    dataset = gdal.OpenEx(graph_path, gdal.OF_RASTER)
    return gdal.GetCacheMax() >> 20, dataset.GetMetadataItem("CACHE_MB", "PGP")


def test_worker_settings_reach_every_worker(cluster, graph):
    client = cluster["client"]
    assert len(client.scheduler_info()["workers"]) == 2
    for address in client.scheduler_info()["workers"]:
        executor = pgp.ClusterExecutor(client.get_executor(workers=[address]),
                                       worker_settings={"GDAL_CACHEMAX": 77,
                                                        "PGP_CACHE_MB": 33})
        assert executor.submit(_cache_settings, graph["path"]).result() == (77, "33")
    with pytest.raises(ValueError, match="GDAL_CACHE"):
        pgp.ClusterExecutor(client, worker_settings={"GDAL_CACHE": 1})


def test_raster_calculator_through_parts(cluster, graph, tmp_path):
    """Any call's tasks go through the parts folder (here a Python local_op)."""
    import ops
    reference = str(tmp_path / "reference.tif")
    target = str(tmp_path / "parts.tif")
    arguments = ([(graph["paths"]["a"], 1), (graph["paths"]["a"], 1)], ops.add)
    pgp.raster_calculator(*arguments, reference, gdal.GDT_Float32, -1)
    executor = pgp.ClusterExecutor(cluster["client"], "parts", str(tmp_path / "p"))
    pgp.raster_calculator(*arguments, target, gdal.GDT_Float32, -1, executor=executor)
    numpy.testing.assert_array_equal(pixels_and_stats(target)[0],
                                     pixels_and_stats(reference)[0])
    assert pixels_and_stats(target)[1] == pixels_and_stats(reference)[1]


def test_source_missing_on_workers_names_it_and_the_worker(cluster, graph, tmp_path,
                                                            monkeypatch):
    # A relative path: found from the caller's folder, not from the workers'.
    monkeypatch.chdir(os.path.dirname(graph["paths"]["a"]))
    xml = ('<PGPDataset blockXSize="64" blockYSize="64"><Source name="a" file="a.tif"/>'
           '<Calc name="c" dataType="Float32" noData="-1"><Expression>a + 1</Expression>'
           '</Calc>'
           '<Band ref="c"/></PGPDataset>')
    target = tmp_path / "never.tif"
    with pytest.raises(RuntimeError) as raised:
        pgp.render(xml, str(target), executor=cluster["client"])
    message = str(raised.value)
    assert "cannot open 'a.tif'" in message
    workers = cluster["client"].scheduler_info()["workers"]
    assert any(f"dask worker {address}" in message for address in workers), message
    assert not target.exists() and not [p for p in os.listdir(tmp_path)
                                        if p.startswith(".never")]


def test_parts_dir_not_shared(cluster, graph, tmp_path):
    """A parts folder a worker cannot write to, or the caller cannot read from: errors
    naming the worker, or saying what parts_dir must be."""
    parts_dir = tmp_path / "parts"
    executor = pgp.ClusterExecutor(cluster["client"], "parts", str(parts_dir))
    parts_dir.rmdir()  # as on a worker that does not mount it
    with pytest.raises(RuntimeError, match=r"writing the part .* \[pgp: on dask worker "
                       r"tcp://127\.0\.0\.1:\d+"):
        pgp.render(graph["path"], str(tmp_path / "out.tif"), executor=executor)
    unreadable = pgp.distributed.Part(str(parts_dir / "gone.tif"), "<f4")
    with pytest.raises(RuntimeError, match="parts_dir must be a folder shared by the "
                       "caller and every worker"):
        pgp.distributed._from_parts([unreadable])


def test_worker_without_the_plugin(graph, tmp_path):
    """A worker whose pgp finds no gdal_PGP.so: the ImportError names the worker."""
    if os.path.exists("/usr/lib/x86_64-linux-gnu/gdalplugins/gdal_PGP.so"):
        pytest.skip("an installed plugin would be found")
    package = tmp_path / "bare"
    shutil.copytree(os.path.join(PYTHON, "pgp"), package / "pgp")  # no build/ beside it
    env = {k: v for k, v in os.environ.items()
           if k not in ("PGP_PLUGIN", "GDAL_DRIVER_PATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(package)] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != PYTHON])
    processes = DaskProcesses(tmp_path)
    client = None
    try:
        address = processes.start_scheduler()
        processes.start_worker("bare", str(tmp_path), env)
        client = connect(processes, address, 1)
        with pytest.raises(ImportError) as raised:
            pgp.render(graph["path"], str(tmp_path / "x.tif"), executor=client)
        assert "gdal_PGP.so was not found" in str(raised.value)
        assert "dask worker tcp://127.0.0.1:" in str(raised.value)
    finally:
        if client is not None:
            client.close()
        processes.stop_all()


def test_command_line_scheduler(cluster, graph, tmp_path):
    """pgp render --scheduler ADDRESS --write parts: the serial render's pixels."""
    from pgp import cli
    target = str(tmp_path / "out.tif")
    address = cluster["client"].scheduler.address
    assert cli.main(["render", graph["path"], target, "-q", "--scheduler", address,
                     "--write", "parts", "--parts-dir", str(tmp_path / "parts"),
                     "--cache-mb", "64"]) == 0
    assert pixels_and_stats(target)[1] == pixels_and_stats(graph["serial"])[1]
    numpy.testing.assert_array_equal(pixels_and_stats(target)[0],
                                     pixels_and_stats(graph["serial"])[0])


def test_worker_killed_mid_render(cluster, graph, tmp_path):
    """Runs last in this module: one worker is killed at the first window written;
    Dask reruns its tasks on the other and the pixels are unchanged."""
    client = cluster["client"]
    victim = cluster["workers"]["w2"]
    seen = []

    def kill_at_first_window(fraction, message, data):
        if not seen:
            seen.append(fraction)
            cluster["processes"].kill(victim)
        return True

    target = str(tmp_path / "out.tif")
    pgp.render(graph["path"], target, executor=client, write="parts",
               parts_dir=str(tmp_path / "parts"), progress=kill_at_first_window)
    assert seen and seen[0] < 1.0  # killed while windows were still to come
    assert victim.poll() is not None
    deadline = time.time() + 30
    while len(client.scheduler_info()["workers"]) != 1 and time.time() < deadline:
        time.sleep(0.1)
    assert len(client.scheduler_info()["workers"]) == 1
    assert os.listdir(tmp_path / "parts") == []  # the lost results' parts too
    numpy.testing.assert_array_equal(pixels_and_stats(target)[0],
                                     pixels_and_stats(graph["serial"])[0])
    assert pixels_and_stats(target)[1] == pixels_and_stats(graph["serial"])[1]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
