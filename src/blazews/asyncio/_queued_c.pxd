# C types for the compiled build of _queued_py.py (Cython pure-Python mode): the
# .py stays the one source; this file only adds types. See setup.py.

cimport cython

from blazews.asyncio._readpath_c cimport ReadPath
from blazews.sansio._events_c cimport Message, MessageQueue
from blazews.sansio._protocol_c cimport Protocol


@cython.locals(queue=MessageQueue, before=Py_ssize_t, others=object, waiter=object, limit=Py_ssize_t)
cpdef void queue_dispatch(object conn, list events) except *

@cython.locals(kind=object, protocol=Protocol)
cpdef object send_now(object conn, object data, bint compress)

@cython.locals(c=ReadPath, pending=Py_ssize_t, total=Py_ssize_t)
cpdef void write_soon(object conn, Py_ssize_t size) except *

@cython.locals(c=ReadPath, queue=MessageQueue)
cpdef object sent(object conn, Py_ssize_t size)


cdef class Messages:
    cdef object _conn
    cdef MessageQueue _queue


@cython.locals(message=Message)
cdef object _take_bytes(MessageQueue queue)

@cython.locals(message=Message, data=object)
cdef object _ready(MessageQueue queue)

cpdef object recv(object conn, object timeout=*)
cpdef object read_message(object conn, object timeout=*)
cpdef object read_message_into(object conn, object buf)

@cython.locals(protocol=Protocol, waiter=object)
cpdef object recv_waiter(object conn)

cdef object _take_recv(object conn, object timeout)

@cython.locals(queue=MessageQueue, message=Message)
cdef object _take_message(object conn, object timeout)

@cython.locals(queue=MessageQueue)
cdef object _take_into(object conn, object buf)

@cython.locals(queue=MessageQueue, waiter=object)
cdef object _block(object conn, object timeout)
cdef object _block_anext(object conn, object unused)

cdef object _wait_recv(object conn, object timeout)
cdef object _wait_message(object conn, object timeout)
cdef object _wait_into(object conn, object buf)
cdef object _wait_anext(object conn, object unused)
