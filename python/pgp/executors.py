"""The ``executor=`` argument: parsing, validation and the serializer check.

Accepted forms (anything else is a ValueError naming the value):
``None`` or ``'serial'``; ``'threading'`` / ``'threading:N'``; ``'multiprocessing'`` /
``'multiprocessing:N'`` (a spawn-started process pool: GDAL is not fork-safe once
used); any ``concurrent.futures.Executor``; a Dask ``distributed.Client``. Pools pgp
creates from a string are shut down by pgp; an executor the caller passed never is.
"""
import concurrent.futures
import os
import pickle
import sys

ACCEPTED_FORMS = ("None, 'serial', 'threading', 'threading:N', 'multiprocessing', "
                  "'multiprocessing:N' (N a positive integer), a "
                  "concurrent.futures.Executor, or a dask distributed.Client")
MAX_WORKERS = 1024


class SerialExecutor(concurrent.futures.Executor):
    """Runs each task in the calling thread when it is submitted."""

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # handed to the caller through the future
            future.set_exception(error)
        return future


class Plan:
    """A resolved executor: what runs the tasks, and how arguments travel.

    kind: 'serial', 'threads', 'processes', 'distributed' or 'other'.
    plugin_threads: N for the string 'threading[:N]' (graphs may then run on the
    plugin's own thread pool instead of Python threads).
    """

    def __init__(self, spec, kind, workers, executor=None, owned=False,
                 plugin_threads=None):
        self.spec = spec
        self.kind = kind
        self.workers = workers
        self._executor = executor
        self.owned = owned
        self.plugin_threads = plugin_threads

    @property
    def executor(self):
        """The executor, created on first use for the string forms."""
        if self._executor is None:
            if self.kind == "serial":
                self._executor = SerialExecutor()
            elif self.kind == "threads":
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    self.workers, thread_name_prefix="pgp")
            else:
                import multiprocessing  # not loaded by calls that start no processes
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._executor

    @property
    def max_in_flight(self):
        """Windows submitted but not yet written: bounds the writer's memory."""
        return 1 if self.kind == "serial" else 2 * self.workers

    def serializer(self):
        """The function that serializes task arguments for this executor, or None
        when tasks share the caller's memory."""
        if self.kind in ("serial", "threads"):
            return None
        if self.kind == "distributed":
            from distributed.protocol import pickle as dask_pickle
            return dask_pickle.dumps
        return pickle.dumps

    def close(self):
        """Shuts down a pool pgp created; never the caller's."""
        if self.owned and self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._executor = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _bad(value):
    return ValueError(f"executor={value!r} is not accepted; use {ACCEPTED_FORMS}")


def _count(value, text):
    if text is None:
        return os.cpu_count() or 1
    if not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise _bad(value)
    return int(text)


def _is_dask_client(value):
    return (type(value).__module__.split(".")[0] == "distributed"
            and type(value).__name__ == "Client")


def _is_dask(executor):
    return type(executor).__module__.split(".")[0] == "distributed"


def dask_plan(executor):
    """The Plan of a Dask executor as it is (ClusterExecutor wraps its tasks)."""
    return Plan(executor, "distributed", _executor_workers(executor), executor=executor)


def _executor_workers(executor):
    workers = getattr(executor, "_max_workers", None)
    if workers is None and _is_dask(executor):
        client = getattr(executor, "_client", None)
        try:
            workers = sum(client.nthreads().values())
        except Exception:  # a client without workers yet: plan for the CPUs here
            workers = None
    return max(1, workers or os.cpu_count() or 1)


def resolve(value):
    """Checks ``executor=`` and returns its Plan; creates no pool yet."""
    if value is None:
        return Plan(value, "serial", 1)
    if isinstance(value, str):
        name, _, count = value.strip().lower().partition(":")
        count = count if _ else None
        if name == "serial" and count is None:
            return Plan(value, "serial", 1)
        if name == "threading":
            n = _count(value, count)
            return Plan(value, "threads", n, owned=True, plugin_threads=n)
        if name == "multiprocessing":
            return Plan(value, "processes", _count(value, count), owned=True)
        raise _bad(value)
    if _is_dask_client(value):
        value = value.get_executor()
    if isinstance(value, concurrent.futures.Executor):
        workers = _executor_workers(value)
        if isinstance(value, SerialExecutor):
            kind = "serial"
        elif isinstance(value, concurrent.futures.ThreadPoolExecutor):
            kind = "threads"
        elif isinstance(value, concurrent.futures.ProcessPoolExecutor):
            kind = "processes"
        elif _is_dask(value):
            from .distributed import ClusterExecutor  # its tasks name their worker
            return Plan(value, "distributed", workers, executor=ClusterExecutor(value))
        else:
            # parsl and the like: assumed to pickle their tasks; a ClusterExecutor
            # says how its inner executor's tasks travel.
            kind = getattr(value, "plan_kind", "other")
        return Plan(value, kind, workers, executor=value)
    raise _bad(value)


def check_serializable(plan, named_values):
    """Serializes each (description, value) with the executor's own serializer before
    any work, so a lambda sent to a process pool fails here with a clear message
    instead of inside the pool."""
    dumps = plan.serializer()
    if dumps is None:
        return
    interactive = not hasattr(sys.modules.get("__main__"), "__file__")
    for description, value in named_values:
        # pickle names a function of __main__ by reference; spawned workers cannot
        # import the __main__ of an interactive session or of python -c.
        if (plan.kind == "processes" and interactive and
                getattr(value, "__module__", None) == "__main__"):
            raise ValueError(
                f"{description} {getattr(value, '__qualname__', value)!r} is defined in an "
                f"interactive __main__, which the processes of executor={plan.spec!r} "
                "cannot import; define it in a module (or a script file)")
        try:
            dumps(value)
        except Exception as error:
            name = getattr(value, "__qualname__", None) or repr(value)
            raise ValueError(
                f"{description} {name!r} cannot be sent to executor={plan.spec!r} "
                f"({type(error).__name__}: {error}); a process or distributed executor "
                "needs functions defined at module level (not a lambda, closure or "
                "nested function) and picklable arguments") from error


def check_visible_paths(plan, paths):
    """Process and distributed workers open the inputs themselves: an in-memory
    /vsimem/ raster of the caller does not exist there."""
    if plan.kind in ("serial", "threads"):
        return
    for path in paths:
        if isinstance(path, str) and path.startswith("/vsimem/"):
            raise ValueError(
                f"{path!r} is an in-memory file of this process; the workers of "
                f"executor={plan.spec!r} cannot read it (write it to a file, or use "
                "None or a thread executor)")
