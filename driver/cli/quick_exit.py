"""The command line's exit: quick, once the command is done.

An export leaves millions of Python objects behind (graphs, fake tensors, compiled
kernels' registrations); tearing the interpreter down frees them one by one, which took
2.4 s after a stories-sized export (6% of its wall time) and grows with the model. The
command's work is done and its files are closed when ``main`` returns, so the driver runs
what exit must run (non-daemon threads, then the ``atexit`` callbacks: the cache writer's
close, temporary-directory finalizers, logging's flush) and leaves without the teardown.
"""

import atexit
import os
import sys
import threading


def exit_now(code: int) -> None:
    """Exit with ``code`` after what a normal exit runs, without the interpreter teardown."""
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # what CPython's own exit runs, the same way
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            code = code or 1
    os._exit(code)
