# C types for the compiled build of _protocol_py.py (Cython pure-Python mode): the
# .py stays the one source; this file only adds types. See setup.py.

cimport cython
from cpython.object cimport PyObject

from blazews.sansio._events_c cimport Message, MessageCallback, Ping, Pong
from blazews.sansio._sending_c cimport Writer


@cython.locals(message=Message)
cdef Message _message(int opcode, object data)

cdef Py_ssize_t _ASM_FIRST
cdef int _COPY, _IN_PLACE, _BORROW
cdef object _CONNECTING, _OPEN, _CLOSING, _CLOSED
cdef tuple _RULES

@cython.locals(opcode=int, rsv=int)
cpdef int header_rule(
    int b0, unsigned long long length, int rsv_allowed, int msg_opcode
) noexcept

cpdef object rule_error(int rule, int b0)


cdef class Protocol(Writer):
    cdef public object max_message_size
    cdef public bint eof_rcvd
    cdef public Py_ssize_t incomplete_frame_size
    cdef public object message_sink
    cdef list _events
    cdef bint _lend
    cdef bytearray _buf
    cdef bint _discard
    cdef bint _want_eof
    cdef int _rsv_allowed
    cdef int _msg_opcode
    cdef object _asm
    cdef Py_ssize_t _asm_n
    cdef Py_ssize_t _msg_size
    cdef Py_ssize_t _msg_frags
    cdef object _utf8

    cpdef void _fail_with(self, object error)

    cpdef list events_received(self)

    @cython.locals(
        n=Py_ssize_t, pos=Py_ssize_t, limit=cython.longlong, b0=int, b1=int, opcode=int,
        rsv=int, fin=int, masked=int, rule=int, mask_expected=bint, length=cython.ulonglong,
        hlen=Py_ssize_t, start=Py_ssize_t, end=Py_ssize_t, view="unsigned char *",
        mv=object, payload=object,
    )
    cpdef Py_ssize_t _parse(self, object data, Py_ssize_t pos, Py_ssize_t n, int mode) except -1

    @cython.locals(before=Py_ssize_t, pos=Py_ssize_t, first=Py_ssize_t, held=bytearray)
    cpdef Py_ssize_t receive_into_buffer(
        self, object buf, Py_ssize_t start, Py_ssize_t end, bint borrow=*
    ) except -1

    @cython.locals(sink=object, callback=MessageCallback, message=Message)
    cpdef void _data_frame(self, int opcode, int fin, int rsv, object payload) except *

    @cython.locals(n=Py_ssize_t, k=Py_ssize_t, size=Py_ssize_t)
    cpdef void _assemble(self, object payload) except *

    @cython.locals(ptr="PyObject *")
    cdef void _resize_assembly(self, Py_ssize_t size) except *

    cpdef object _assembled(self)

    cpdef void _drop_assembly(self)

    cpdef void _control_frame(self, int opcode, object payload) except *
