"""Module-level operations for the tests: importable where a process pool or a Dask
worker unpickles them."""
import numpy


def heavy(a, b):
    """A pixel-wise numpy local_op on a Float32 and an Int16 block."""
    return numpy.sqrt(numpy.abs(a) + 1.0) * numpy.sin(b.astype(numpy.float64)) + a / 3.0


def scaled_sum(x, y, scale):
    return (x + y) * scale


def double(x):
    return x * 2.0


def add_sum(total, block):
    return total + float(numpy.sum(block, dtype=numpy.float64))


def add(x, y):
    return x + y


def histogram(counts, block):
    return counts + numpy.histogram(block, bins=8, range=(-50, 50))[0]


class WindowRefused(Exception):
    """An exception type of the tests' own: it must arrive in the caller as is."""


def refuse_last_rows(a, rows):
    """Passes a through, except on the window holding rows 192 and below."""
    if rows.max() >= 192:
        raise WindowRefused(f"rows up to {rows.max()} refused")
    return a


def twice_minus(a, b):
    return a * 2.0 - b
