"""Fixtures of the pgp Python package tests: small rasters and caller-owned pools."""
import numpy
import pytest

from pgp_testing import write_raster


@pytest.fixture(scope="session")
def inputs(tmp_path_factory):
    """300x200 rasters with 64x64 blocks (20 tiles): a Float32 with nodata -9 at
    some pixels, b Int16 with nodata 0, a 7x7 kernel, c on another grid."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = numpy.random.default_rng(7)
    a = rng.uniform(-50, 50, (200, 300)).astype(numpy.float32)
    a[rng.random(a.shape) < 0.05] = -9
    b = rng.integers(-20, 20, (200, 300)).astype(numpy.int16)
    kernel = rng.uniform(0, 1, (7, 7)).astype(numpy.float32)
    c = rng.uniform(0, 10, (90, 130)).astype(numpy.float32)
    return {
        "a": write_raster(folder / "a.tif", a, nodata=-9),
        "b": write_raster(folder / "b.tif", b, nodata=0),
        "kernel": write_raster(folder / "kernel.tif", kernel, block=16),
        "c": write_raster(folder / "c.tif", c, nodata=-1, pixel=45.0,
                          origin=(444720.0 + 400, 3751320.0 - 700)),
        "A": a, "B": b, "K": kernel, "C": c, "folder": folder,
    }


@pytest.fixture(scope="session")
def pools():
    """The caller-owned executors, created once and closed at the end."""
    made = {}
    yield made
    for name, pool in made.items():
        if name == "dask":
            pool["client"].close()
            pool["cluster"].close()
        else:
            pool.shutdown()
