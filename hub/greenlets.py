"""Where the hub runs under gevent's monkey-patching (gunicorn's gevent worker), and how
work that would stall the event loop is kept off it.

Monkey-patched, ``threading`` is cooperative: the hub's threads are greenlets of one OS
thread, and a long call in C or a long stretch of Python stalls every one of them, every
webhook and console included. ``off_the_loop`` runs such work on a thread of gevent's pool,
where the interpreter shares its time with the loop's thread as threads always do.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def cooperative() -> bool:
    """True under gevent's monkey-patching (gunicorn's gevent worker): threads are greenlets."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def os_thread_local() -> Any:
    """A ``threading.local`` of the OS thread, even where ``threading`` is monkey-patched."""
    if cooperative():
        return sys.modules["gevent.monkey"].get_original("threading", "local")()
    return threading.local()


def off_the_loop(work: Callable[[], T]) -> T:
    """``work()``, run where it stalls no other greenlet: under gevent, on a thread of gevent's
    pool while the calling greenlet waits; otherwise right here. Its exception is raised here
    (gevent would also print it, unmasked, if it left the pool's thread)."""
    if not cooperative():
        return work()
    import gevent

    def caught() -> tuple[bool, Any]:
        try:
            return True, work()
        except BaseException as exc:  # raised again in the calling greenlet
            return False, exc

    done, outcome = gevent.get_hub().threadpool.apply(caught)
    if not done:
        raise outcome
    result: T = outcome
    return result
