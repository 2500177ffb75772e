"""A stand-in for the ``cython`` module, for the pure-Python core without Cython.

The one-source modules of the core (``_protocol_py.py``, ``_events_py.py``) name
Cython's class decorators and ``cython.compiled``; compiled, Cython itself provides
them, and in pure Python its shadow module does when Cython is installed. Without it,
this object does: the decorators do nothing and ``compiled`` is false.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["NO_CYTHON"]

_T = TypeVar("_T")


class _NoCython:
    compiled = False

    @staticmethod
    def cclass(cls: _T) -> _T:
        return cls

    @staticmethod
    def no_gc(cls: _T) -> _T:
        return cls

    @staticmethod
    def freelist(n: int) -> Callable[[_T], _T]:
        return lambda cls: cls


NO_CYTHON = _NoCython()
