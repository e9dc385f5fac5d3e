"""One line on stderr when numba compiles selfinterp's kernels (a first run).

numba compiles a kernel the first time it is called with new argument types
and caches the machine code on disk (``cache=True``), so only the first run
in a fresh installation (or after an upgrade) pays for it, with nothing on
the screen otherwise.  numba's ``numba:compile`` event fires only for a real
compilation, never for a load from the cache: the line is printed at the
first such event for a function of this package, once per process, and a
warm run prints nothing.  Every kernel module imports this module.
"""

from __future__ import annotations

import sys

from numba.core import event

MESSAGE = ("selfinterp: compiling numba kernels for this machine, on the first run only (they are then "
           "cached on disk): about 30 s, up to 2 minutes for bench-estimators")


class _CompileNotice(event.Listener):
    def __init__(self):
        self.printed = False

    def on_start(self, ev):
        if self.printed:
            return
        func = getattr(ev.data.get("dispatcher"), "py_func", None)
        if getattr(func, "__module__", "").startswith("selfinterp."):
            self.printed = True
            print(MESSAGE, file=sys.stderr, flush=True)

    def on_end(self, ev):
        pass


NOTICE = _CompileNotice()
event.register("numba:compile", NOTICE)
