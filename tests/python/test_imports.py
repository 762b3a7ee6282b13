"""`import pgp` is lazy (PEP 562): the public names and submodules load on first use,
and `pgp render` runs without numpy or the calls it does not use. Checked in fresh
interpreters, since this one has imported everything already."""
import json
import subprocess
import sys

import numpy
from osgeo import gdal

import pgp_testing  # noqa: F401 (puts python/ on the children's PYTHONPATH)

# The modules a plain render must not load: numpy and pgp's Python calls.
NOT_FOR_RENDER = ("numpy", "pgp.calls", "pgp.graphcalls", "pgp.stitch", "pgp.symbolic",
                  "pgp.zonal")


def fresh(code, *args):
    """Runs code in a new interpreter; its last stdout line, parsed as JSON."""
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_import_pgp_registers_the_driver_and_loads_nothing_else():
    loaded = fresh("import json, sys\nimport pgp\nfrom osgeo import gdal\n"
                   "print(json.dumps([gdal.GetDriverByName('PGP') is not None,\n"
                   "                  sorted(m for m in sys.modules if m.startswith(\n"
                   "                      ('numpy', 'pgp')))]))")
    assert loaded == [True, ["pgp", "pgp._plugin"]]


def test_every_public_name_resolves_pickles_and_is_listed():
    """Each name of __all__ (and `from pgp import *`) is the object its own module
    defines; functions and classes pickle by reference (what process pools and Dask
    send); dir() lists them; an unknown name is an AttributeError, as for any module."""
    code = """
import json, pickle, sys
import pgp
from pgp import *
names = {}
for name in pgp.__all__:
    value = getattr(pgp, name)
    by_reference = None
    if callable(value):
        module = sys.modules[value.__module__]
        by_reference = (getattr(module, value.__qualname__) is value and
                        pickle.loads(pickle.dumps(value)) is value)
    names[name] = [value.__module__ if callable(value) else None, by_reference,
                   globals()[name] is value]
print(json.dumps([names, sorted(set(pgp.__all__) - set(dir(pgp))),
                  hasattr(pgp, "no_such_name"), pgp.distributed.Part.__module__]))
"""
    names, unlisted, unknown, submodule = fresh(code)
    assert unlisted == [] and unknown is False and submodule == "pgp.distributed"
    for name, (module, by_reference, star) in names.items():
        assert star, name
        if module is not None:
            assert module.startswith("pgp.") and by_reference, (name, module)


def test_render_command_loads_neither_numpy_nor_the_calls(tmp_path):
    """pgp render through cli.main, then the modules it loaded; its output against
    gdal_translate of the same graph (an independent reader of the graph)."""
    rng = numpy.random.default_rng(3)
    paths = []
    for name in "ab":
        path = str(tmp_path / f"{name}.tif")
        dataset = gdal.GetDriverByName("GTiff").Create(path, 70, 50, 1, gdal.GDT_Float32)
        dataset.SetGeoTransform((0, 1, 0, 50, 0, -1))
        dataset.GetRasterBand(1).WriteArray(rng.uniform(-5, 5, (50, 70)).astype("f4"))
        dataset = None
        paths.append(path)
    graph = tmp_path / "g.pgp.vrt"
    graph.write_text(f'<PGPDataset><Source name="A" file="{paths[0]}"/><Source name="B" '
                     f'file="{paths[1]}"/><Calc name="out" dataType="Float32"><Expression>'
                     '(A+B)*A/2</Expression></Calc><Band ref="out"/></PGPDataset>\n')
    code = ("import json, sys\nfrom pgp.cli import main\n"
            "code = main(['render', '-q', '--executor', 'serial'] + sys.argv[1:])\n"
            f"print(json.dumps([code, [m for m in {NOT_FOR_RENDER!r} if m in sys.modules]]))")
    out = tmp_path / "out.tif"
    assert fresh(code, graph, out) == [0, []]
    reference = gdal.Translate(str(tmp_path / "ref.tif"), str(graph))
    numpy.testing.assert_array_equal(gdal.Open(str(out)).ReadAsArray(),
                                     reference.ReadAsArray())
