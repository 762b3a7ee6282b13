#!/usr/bin/python3
"""Accuracy of the expression language's transcendental functions (SLEEF's
deterministic functions, docs/driver.md#expression-language): within 1 ULP of
the exact value, taken from numpy in long double (64-bit mantissa: 2**-11 ULP
of a double), over wide argument ranges; at special values (NaN, infinities,
zeros, poles, negatives for log, huge for sin) numpy's double results exactly.
The documented exceptions are tested as documented: atan2 within 2 ULP below
1e-307, sinh and cosh overflowing from |x| > 709.78, pow overflowing within
0.01% of the largest double.

And the same bytes at every instruction-set level (PGP_ISA) this CPU runs,
through gdal_translate."""
import numpy as np
import pytest
from osgeo import gdal

from conftest import read, run, write_graph, write_raster

# 1 ULP (SLEEF's u10 bound) plus the long-double reference's own error.
ULP_BOUND = 1.0 + 2.0 ** -10
DBL_MAX = np.finfo(np.float64).max
SINH_OVERFLOW = 709.782712893384  # log(DBL_MAX): SLEEF's sinh / cosh limit

SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0,
                     3.0, -3.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-300, 1e300,
                     -1e300, 1.7976931348623157e308, -1.7976931348623157e308, 1e22,
                     np.pi, -np.pi, np.pi / 2, 710.0, -746.0, 0.25, 100.5, -7.0])


def magnitudes(rng, n, low=-308, high=308):
    """Doubles of every magnitude from 10**low to 10**high, both signs."""
    return rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(low, high, n)


def uniform(rng, n, low, high):
    return rng.uniform(low, high, n)


rng = np.random.default_rng(19)
N = 6000
UNARY = {  # expression name: (numpy function, arguments)
    "exp": (np.exp, np.concatenate([uniform(rng, N, -750, 720), magnitudes(rng, N, -30, 3)])),
    "log": (np.log, np.concatenate([np.abs(magnitudes(rng, N)), uniform(rng, N, 0, 3),
                                    [5e-324, 1e-320, -1e-3, -5.0]])),
    "log10": (np.log10, np.concatenate([np.abs(magnitudes(rng, N)), uniform(rng, N, 0, 3)])),
    "log2": (np.log2, np.concatenate([np.abs(magnitudes(rng, N)), uniform(rng, N, 0, 3)])),
    "sin": (np.sin, np.concatenate([uniform(rng, N, -10, 10), uniform(rng, N, -1e6, 1e6),
                                    magnitudes(rng, N)])),
    "cos": (np.cos, np.concatenate([uniform(rng, N, -10, 10), uniform(rng, N, -1e6, 1e6),
                                    magnitudes(rng, N)])),
    "tan": (np.tan, np.concatenate([uniform(rng, N, -10, 10), uniform(rng, N, -1e6, 1e6),
                                    magnitudes(rng, N)])),
    "asin": (np.arcsin, np.concatenate([uniform(rng, N, -1.1, 1.1), magnitudes(rng, N, -300, 0)])),
    "acos": (np.arccos, np.concatenate([uniform(rng, N, -1.1, 1.1), magnitudes(rng, N, -300, 0)])),
    "atan": (np.arctan, np.concatenate([uniform(rng, N, -10, 10), magnitudes(rng, N)])),
    "sinh": (np.sinh, np.concatenate([uniform(rng, N, -720, 720), magnitudes(rng, N, -300, 1)])),
    "cosh": (np.cosh, np.concatenate([uniform(rng, N, -720, 720), magnitudes(rng, N, -300, 1)])),
    "tanh": (np.tanh, np.concatenate([uniform(rng, N, -25, 25), magnitudes(rng, N, -300, 2)])),
}
BINARY = {
    "pow": (np.power,
            np.concatenate([10.0 ** uniform(rng, N, -5, 5), -np.round(uniform(rng, N, 0, 50)),
                            uniform(rng, N, 0, 2)]),
            np.concatenate([uniform(rng, N, -50, 50), np.round(uniform(rng, N, -30, 30)),
                            uniform(rng, N, -700, 700)])),
    "atan2": (np.arctan2, magnitudes(rng, 3 * N), magnitudes(rng, 3 * N)),
}


def as_raster(values, cols=250):
    """values (padded with 1.0) as a 2-D array whose width is not a multiple of any vector."""
    rows = -(-len(values) // cols)
    padded = np.ones(rows * cols)
    padded[:len(values)] = values
    return padded.reshape(rows, cols)


def evaluate(tmp_path, expression, *arguments):
    """expression over the arguments through a Float64 Calc graph read with GDAL."""
    sources = ""
    for name, values in zip("AB", arguments):
        write_raster(tmp_path / f"{name}.tif", as_raster(values))
        sources += f'<Source name="{name}" file="{name}.tif"/>'
    graph = write_graph(tmp_path / "g.pgp.vrt", sources + f"""
<Calc name="f" dataType="Float64"><Expression>{expression}</Expression></Calc><Band ref="f"/>""")
    return read(graph).ravel()[:len(arguments[0])]


def documented_overflow(name, in_double, x):
    """Where the function returns +-inf for a finite result (docs/driver.md)."""
    if name in ("sinh", "cosh"):
        return np.abs(x) > SINH_OVERFLOW
    if name == "pow":
        return np.abs(in_double) > DBL_MAX * (1 - 1e-4)
    return np.zeros(x.shape, bool)


def check_accuracy(name, got, numpy_function, *arguments):
    with np.errstate(all="ignore"):
        exact = numpy_function(*(np.asarray(a, np.longdouble) for a in arguments))
        in_double = numpy_function(*arguments)
    overflow = documented_overflow(name, in_double, arguments[0]) & np.isfinite(in_double)
    assert (got[overflow] == np.copysign(np.inf, in_double[overflow])).all()
    got, exact, in_double = got[~overflow], exact[~overflow], in_double[~overflow]
    arguments = [a[~overflow] for a in arguments]
    # NaN, infinities and zeros exactly as numpy's double result (sign included).
    special = ~np.isfinite(in_double) | (in_double == 0)
    same = (got == in_double) & (np.signbit(got) == np.signbit(in_double))
    same |= np.isnan(got) & np.isnan(in_double)
    bad = special & ~same
    assert not bad.any(), (f"{name}{tuple(a[bad][:3] for a in arguments)}: "
                           f"{got[bad][:3]}, numpy {in_double[bad][:3]}")
    # Elsewhere within the bound, in units of the double spacing at the exact value.
    finite = ~special
    spacing = np.spacing(np.abs(in_double[finite])).astype(np.longdouble)
    ulps = np.abs(got[finite].astype(np.longdouble) - exact[finite]) / spacing
    if name == "atan2":  # near and in the subnormal range
        ulps[np.abs(in_double[finite]) < 1e-307] /= 2
    worst = int(np.nanargmax(ulps))
    assert not np.isnan(ulps).any(), f"{name}: NaN where numpy has a number"
    assert ulps[worst] <= ULP_BOUND, (
        f"{name}{tuple(a[finite][worst] for a in arguments)} = {got[finite][worst]!r}: "
        f"{float(ulps[worst]):.3f} ulp from {exact[finite][worst]}")


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_function_within_one_ulp(tmp_path, name):
    numpy_function, x = UNARY[name]
    x = np.concatenate([x, SPECIALS])
    check_accuracy(name, evaluate(tmp_path, f"{name}(A)", x), numpy_function, x)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_function_within_one_ulp(tmp_path, name):
    numpy_function, x, y = BINARY[name]
    # and every special value against every other, in both orders
    x = np.concatenate([x, np.repeat(SPECIALS, len(SPECIALS))])
    y = np.concatenate([y, np.tile(SPECIALS, len(SPECIALS))])
    check_accuracy(name, evaluate(tmp_path, f"{name}(A, B)", x, y), numpy_function, x, y)


def test_power_operator_is_pow(tmp_path):
    _, x, y = BINARY["pow"]
    np.testing.assert_array_equal(evaluate(tmp_path, "A ** B", x, y),
                                  evaluate(tmp_path, "pow(A, B)", x, y))


def runnable_levels():
    flags = open("/proc/cpuinfo").read().split()
    return ["baseline"] + [level for level, flag in [("avx2", "avx2"), ("avx512", "avx512f")]
                           if flag in flags]


def test_same_bytes_at_every_instruction_set_level(tmp_path):
    """One Calc of every function and a Convolve, rendered by gdal_translate once per
    level the CPU runs (PGP_ISA): the files are identical."""
    x = np.concatenate([UNARY["sin"][1][:3000], SPECIALS, UNARY["exp"][1][:3000]])
    write_raster(tmp_path / "A.tif", as_raster(x, cols=97))
    write_raster(tmp_path / "B.tif", as_raster(x[::-1], cols=97))
    write_raster(tmp_path / "k.tif", np.arange(1.0, 26.0).reshape(5, 5) / 7)
    calls = " + ".join(f"{name}(A)" for name in UNARY) + " + pow(A, B) + atan2(A, B)"
    graph = write_graph(tmp_path / "g.pgp.vrt", f"""
<Source name="A" file="A.tif"/><Source name="B" file="B.tif"/>
<Calc name="f" dataType="Float64"><Expression>{calls} + sqrt(abs(A)) * B / 3 - A % 7</Expression></Calc>
<Convolve name="c" input="A" kernel="k.tif" dataType="Float64"/>
<Band ref="f"/><Band ref="c"/>""")
    outputs = {}
    for level in runnable_levels():
        out = tmp_path / f"{level}.tif"
        result = run(["gdal_translate", "-q", str(graph), str(out)],
                     env={"PGP_ISA": level, "PGP_EXECUTOR": "threading:2"})
        assert "PGP_ISA" not in result.stderr
        outputs[level] = out.read_bytes()
    assert len(outputs) >= 1
    for level, data in outputs.items():
        assert data == outputs["baseline"], f"{level} differs from baseline"
    values = read(str(tmp_path / "baseline.tif"))
    assert np.isfinite(values[1]).any() and np.isfinite(values[0]).any()


def test_invalid_isa_warns_and_computes(tmp_path):
    write_raster(tmp_path / "A.tif", as_raster(np.linspace(0.1, 3, 500)))
    graph = write_graph(tmp_path / "g.pgp.vrt", """<Source name="A" file="A.tif"/>
<Calc name="f" dataType="Float64"><Expression>log(A)</Expression></Calc><Band ref="f"/>""")
    result = run(["gdal_translate", "-q", graph, str(tmp_path / "out.tif")],
                 env={"PGP_ISA": "sse9"})
    assert "PGP_ISA='sse9' is not valid: expected auto, baseline, avx2 or avx512" in result.stderr
    np.testing.assert_allclose(read(str(tmp_path / "out.tif")).ravel()[:500],
                               np.log(np.linspace(0.1, 3, 500)), rtol=1e-15)
