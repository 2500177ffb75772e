# C types for the compiled build of _readpath_py.py (Cython pure-Python mode): the
# .py stays the one source; this file only adds types. See setup.py.

cimport cython
from cpython.object cimport PyObject

from blazews.sansio._protocol_c cimport Protocol

cdef object _OPEN, _CLOSING, _SERVER, _TEXT, _BINARY, PerMessageDeflate
cdef tuple _wmethods

cdef tuple _learn_transport(object t)
cdef object _SOCKET_TRANSPORTS

@cython.locals(kind=object, sock=object)
cdef int _socket_fd(object transport) except? -2


cdef class ReadPath:
    cdef int _fd
    cdef public bint _batching
    cdef public bint _holds_views
    cdef public object _direct
    cdef public object _into
    cdef public Py_ssize_t _lowat
    cdef public object _lowat_sock
    cdef public object _out
    cdef public object _rbuf
    cdef public bint _release_pending
    cdef public Py_ssize_t _rend
    cdef public bint _rfull
    cdef public Py_ssize_t _rstart
    cdef public object _rtail
    cdef public object _rview
    cdef public object loop
    cdef public object owner
    cdef public object protocol
    cdef public object transport
    cdef public bint _writing_paused
    cdef public Py_ssize_t _write_cap

    @cython.locals(view=object, tail=object, start=Py_ssize_t, end=Py_ssize_t)
    cpdef object get_buffer(self, Py_ssize_t sizehint)

    @cython.locals(tail=object, released=bint, end=Py_ssize_t)
    cdef bint _took(self, Py_ssize_t nbytes) except -1

    @cython.locals(protocol=Protocol)
    cpdef void _parsed(self, object buf, Py_ssize_t start, Py_ssize_t end, bint released) except *

    @cython.locals(protocol=Protocol)
    cpdef void _flush(self) except *

    cdef void _write(self, list out) except *

    @cython.locals(known=tuple)
    cdef bint _write_one(self, object data) except -1

    @cython.locals(transport=object, fd=int, known=tuple, idle=bint, size=Py_ssize_t, n=Py_ssize_t)
    cdef bint _write_direct(self, object data) except -1

    @cython.locals(protocol=Protocol)
    cpdef void _process(self) except *

    @cython.locals(released=bint, start=Py_ssize_t, end=Py_ssize_t, protocol=Protocol, view=object)
    cpdef void _lend_read(self, Py_ssize_t nbytes) except *

    @cython.locals(buf=object, released=bint, start=Py_ssize_t, end=Py_ssize_t, protocol=Protocol, view=object)
    cpdef void _queue_read(self, Py_ssize_t nbytes) except *


cdef class SendHandle:
    cdef public object _conn
    cdef public ReadPath _rx
    cdef public Protocol _protocol
    cdef public Py_ssize_t _kept_from


@cython.locals(
    n=Py_ssize_t, count=Py_ssize_t, i=Py_ssize_t, rxs=list, c=ReadPath, p=Protocol, own=object,
    rx=object, exts=list, key=object, last_key=object, last_frame=object,
)
cpdef Py_ssize_t write_frame_all(list items, object frame, object frame_for, list rest) except -1

@cython.locals(ahead="PyObject *", c=ReadPath, p=Protocol)
cdef void _prefetch_ahead(list rxs, Py_ssize_t i, Py_ssize_t count) noexcept
