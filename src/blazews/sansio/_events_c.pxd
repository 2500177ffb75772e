# C types for the compiled build of _events_py.py (Cython pure-Python mode): the .py
# stays the one source; this file only adds types. The compiled core cimports them.

cimport cython


cdef class Message:
    cdef public object type
    cdef public object data


cdef class Ping:
    cdef public object data


cdef class Pong:
    cdef public object data


cdef class MessageCallback:
    cdef public object callback
    cdef public object arg
    cdef public tuple kinds
    cdef public object on_error
    cdef public bint failed

    @cython.locals(refs=Py_ssize_t)
    cpdef void deliver(self, int opcode, object data) except *


cdef Py_ssize_t _RESULT_MAX
cdef list _results
cdef object _results_kinds


cdef class MessageQueue(list):
    cdef public Py_ssize_t head
    cdef public tuple kinds
    cdef public object on_resume
    cdef public bint paused
    cdef public Py_ssize_t resume_at
    cdef public Py_ssize_t full_reads

    cpdef Py_ssize_t pending(self)

    @cython.locals(head=Py_ssize_t)
    cpdef Message peek(self)

    @cython.locals(message=Message)
    cpdef Message take(self)

    @cython.locals(head=Py_ssize_t)
    cdef void _advance(self) except *

    cpdef void unread(self, Message message) except *

    @cython.locals(others=list)
    cpdef list queue_messages(self, list events)

    @cython.locals(n=Py_ssize_t, message=Message, kinds=tuple, op=Py_ssize_t, slot=Py_ssize_t, result=object)
    cpdef object take_into(self, object buf)
