# C types for the compiled build of _sending_py.py (Cython pure-Python mode): the .py
# stays the one source; this file only adds types. The compiled core (Protocol)
# derives from Writer and cimports it.

cimport cython

cdef Py_ssize_t _COALESCE, _KEY_BATCH
cdef object _OPEN, _CLOSING


cdef class Writer:
    cdef public object side
    cdef public object state
    cdef public list extensions
    cdef public object close_rcvd
    cdef public object close_sent
    cdef public object close_rcvd_then_sent
    cdef public object protocol_error
    cdef public Py_ssize_t mask_later
    cdef list _out
    cdef bint _is_client
    cdef bytes _key_batch
    cdef Py_ssize_t _key_pos

    cpdef list data_to_send(self)

    cpdef bint holds_output(self)

    cpdef void send_prepared(self, object frame) except *

    @cython.locals(rsv=int)
    cpdef void send_frame(self, int opcode, object data, bint fin=*, bint compress=*) except *

    @cython.locals(n=Py_ssize_t, key=Py_ssize_t, t=object)
    cpdef void _write_frame(self, int first, object data) except *
