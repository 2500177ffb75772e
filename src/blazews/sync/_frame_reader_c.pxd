# C types for the compiled build of _frame_reader_py.py (Cython pure-Python mode): the
# .py stays the one source; this file only adds types. See setup.py.

cimport cython

cdef Py_ssize_t _DIRECT, _GROW
cdef tuple _OPCODES, _TYPES
cdef bint _COMPILED


@cython.locals(i=Py_ssize_t)
cdef void _xor_into(
    unsigned char[::1] dst, Py_ssize_t d, const unsigned char[::1] src, Py_ssize_t s,
    Py_ssize_t n, unsigned char k0, unsigned char k1, unsigned char k2, unsigned char k3,
) noexcept

@cython.locals(i=Py_ssize_t, end=Py_ssize_t)
cdef void _xor_in_place(
    unsigned char[::1] buf, Py_ssize_t s, Py_ssize_t n, unsigned char k0, unsigned char k1,
    unsigned char k2, unsigned char k3,
) noexcept

cpdef object _byte_view(object buf)

cdef object _pyview(object buf)

cdef object _truncated()


cdef class FrameReader:
    cdef public object source
    cdef object _read
    cdef object _pool
    cdef object _buf
    cdef object _view
    cdef unsigned char[::1] _data
    cdef Py_ssize_t _size
    cdef Py_ssize_t _start
    cdef Py_ssize_t _end
    cdef bint _hdr
    cdef int _h_opcode
    cdef bint _h_fin
    cdef int _h_rsv
    cdef Py_ssize_t _h_length
    cdef bint _h_masked
    cdef unsigned char _k0, _k1, _k2, _k3
    cdef bint _broken
    cdef Py_ssize_t _limit
    cdef object _max_message_size
    cdef public object on_control
    cdef int _msg_opcode
    cdef object _partial
    cdef object _utf8
    cdef object _error
    cdef public object close_rcvd

    cdef Py_ssize_t _recv(self, object view) except -1

    @cython.locals(avail=Py_ssize_t, n=Py_ssize_t)
    cdef bint _fill(self, Py_ssize_t need) except -1

    @cython.locals(
        data="unsigned char[::1]", start=Py_ssize_t, b0=int, b1=int, opcode=int, masked=int,
        length=cython.ulonglong, hlen=Py_ssize_t, i=Py_ssize_t, rule=int,
    )
    cdef void _read_header(self) except *

    cdef bytes _key(self)

    @cython.locals(start=Py_ssize_t)
    cdef void _payload_into(
        self, object buf, unsigned char[::1] out, Py_ssize_t pos, Py_ssize_t length
    ) except *

    @cython.locals(end=Py_ssize_t, take=Py_ssize_t, missing=Py_ssize_t, n=Py_ssize_t)
    cdef void _read_payload(self, object out, Py_ssize_t pos, Py_ssize_t length) except *

    @cython.locals(
        start=Py_ssize_t, k0="unsigned char", k1="unsigned char", k2="unsigned char",
        k3="unsigned char",
    )
    cdef bytes _payload_bytes(self, Py_ssize_t length)

    @cython.locals(chunks=list, done=Py_ssize_t, step=Py_ssize_t, chunk=bytearray)
    cdef list _payload_chunks(self, Py_ssize_t length, bytearray out)

    cdef void _check(self) except *

    @cython.locals(out="unsigned char[::1]", length=Py_ssize_t, rsv=int)
    cpdef tuple read_frame_into(self, object buf)

    cdef object _fail(self, object error)

    @cython.locals(opcode=int, limit=Py_ssize_t, b0=int, rule=int)
    cdef void _next_data_frame(self, Py_ssize_t size) except *

    cdef void _closed(self, object payload) except *

    cdef void _start_message(self) except *

    cdef void _check_text(self, object chunk, bint fin) except *

    @cython.locals(
        out="unsigned char[::1]", cap=Py_ssize_t, pos=Py_ssize_t, length=Py_ssize_t,
        fin=bint, kind=int,
    )
    cpdef tuple read_message_into(self, object buf)

    @cython.locals(opcode=int, pos=Py_ssize_t, length=Py_ssize_t, fin=bint, kind=int)
    cpdef tuple read_message(self)
