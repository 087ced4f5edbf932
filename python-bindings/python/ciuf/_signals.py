"""Closing database sources when the process is told to stop.

A process that follows PostgreSQL holds a replication slot and a publication on the
server; if it dies without closing its engine, the slot stays and holds WAL. Docker,
systemd and Kubernetes stop services with SIGTERM (terminals with SIGHUP), whose
default action kills the interpreter outright. The first engine that follows a
database installs, from the main thread, handlers for SIGTERM and SIGHUP that close
every such engine and then do what was there before: call the application's own
handler, or die of the signal as the default would. SIGINT raises KeyboardInterrupt
and ends in a normal exit, where an atexit hook closes them too. A handler the
application installs later replaces ours; a graceful shutdown it starts closes the
engines through the same atexit hook (or through the web helpers' shutdown).
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from types import FrameType
from typing import Any, Callable, Dict, Union

from . import _ciuf

_Handler = Union[Callable[[int, Union[FrameType, None]], Any], int, signal.Handlers, None]

_installed = False
_previous: Dict[int, _Handler] = {}


def install() -> None:
    """Closes the engines that follow a database at exit and on SIGTERM and SIGHUP."""
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(_ciuf._close_sources)
    if threading.current_thread() is not threading.main_thread():
        return  # Signal handlers can only be set from the main thread.
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        previous = signal.getsignal(sig)
        if previous is signal.SIG_IGN:
            continue  # The application chose to ignore it.
        _previous[sig] = previous
        signal.signal(sig, _on_signal)


def _on_signal(signum: int, frame: Union[FrameType, None]) -> None:
    _ciuf._close_sources()
    previous = _previous.get(signum)
    if callable(previous):
        previous(signum, frame)
        return
    # The default action: die of the signal, as without ciuf.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
