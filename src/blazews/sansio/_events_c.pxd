# C types for the compiled build of _events_py.py (Cython pure-Python mode): the .py
# stays the one source; this file only adds types. The compiled core cimports them.

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

    cpdef void deliver(self, int opcode, object data) except *
