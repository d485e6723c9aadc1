"""The command line's exit without the interpreter's teardown.

After a sweep, CPython's finalisation (freeing every module, the XLA client, its
buffers and executables) takes 0.5-0.6 s of a warm ``coarse``'s ~5 s on a 2-core CPU,
while the exit functions that matter take about 20 ms (measured). :func:`exit` runs
those exit functions (``atexit``: the store's, logging's flush, ``jax.distributed``'s
shutdown), flushes every open file object (the standard streams among them), and ends
the process with ``os._exit``.

It does so only where nothing can be lost: no other non-daemon thread is running (the
interpreter would wait for it), no profiler or tracer is attached (``python -m cProfile
-m sweepjax`` writes its results after the module returns), and
``SWEEPJAX_FAST_EXIT`` is not ``0`` / ``off``. Otherwise the exit is the ordinary one.
"""

from __future__ import annotations

import _io
import atexit
import contextlib
import gc
import os
import sys
import threading

ENV = "SWEEPJAX_FAST_EXIT"


def allowed() -> bool:
    """Whether ending the process now skips nothing but the teardown."""
    if os.environ.get(ENV, "1").strip().lower() in ("0", "off", "no", "false"):
        return False
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return False
    if not hasattr(atexit, "_run_exitfuncs"):  # not CPython: keep the ordinary exit
        return False
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    return not any(t.is_alive() and not t.daemon for t in others)


def exit(code: int) -> None:  # noqa: A001 - the process's exit, as sys.exit
    """End the process with ``code``: quickly where :func:`allowed`, else ``sys.exit``."""
    if not allowed():
        sys.exit(code)
    atexit._run_exitfuncs()
    _flush_files()
    os._exit(code)


def _flush_files() -> None:
    """Write what every open file object still buffers (the standard streams, a file a
    module keeps open): at an ordinary exit their finalisers would; ``os._exit`` runs
    none. The test is against the C base class of every file object: ``io.IOBase`` is
    an abstract class whose check took 3x longer over a sweep's heap (76 vs 26 ms over
    the 124k objects of the imports alone, 2-core CPU); a class only *registered* with
    it, not derived from an ``io`` class, is not flushed."""
    for obj in [sys.stdout, sys.stderr, *gc.get_objects()]:
        if isinstance(obj, _io._IOBase):
            with contextlib.suppress(Exception):  # closed, read-only, a broken pipe
                if not obj.closed and obj.writable():
                    obj.flush()
