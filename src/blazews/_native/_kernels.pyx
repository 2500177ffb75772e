# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: embedsignature=True
"""Compiled kernels: masking, frame serialization and UTF-8 validation over the C
kernels in ``kernel*.c``.

The twin of ``blazews._kernels_py`` (same functions, same errors), plus what the C
side knows: the SIMD level in use, the CPU features, the levels available.

The level is chosen once, at import, as the best one that was compiled and that the
CPU (and the OS) supports (AVX-512 only where it does not lower the clock: with VBMI2). ``BLAZEWS_SIMD=scalar|sse2|avx2|avx512|neon`` forces one;
a level that is unknown, not compiled or not supported makes the import fail with a
``RuntimeError`` saying so.
"""

import os

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from blazews import _kernels_py

__all__ = [
    "Done",
    "Utf8Validator",
    "apply_mask",
    "available_levels",
    "cpu_features",
    "encode_frame",
    "frame_header",
    "frame_payload",
    "mask_bytes",
    "mask_into",
    "payload_buffer",
    "simd_level",
    "validate_utf8",
]


cdef extern from "Python.h":
    ctypedef struct Py_buffer:
        void *buf
        Py_ssize_t len
        int readonly
        Py_ssize_t itemsize
        char *format
        int ndim
        Py_ssize_t *shape
        Py_ssize_t *strides
        Py_ssize_t *suboffsets
    Py_buffer *PyMemoryView_GET_BUFFER(object o)
    ctypedef struct PyMemoryViewObject:
        int flags
    int _Py_MEMORYVIEW_RELEASED
    # Declared without an exception value: a failure is handled here, by handing the
    # call to the pure-Python twin, which raises the same error it always raises (or
    # copes, as with a strided memoryview).
    int _get_buffer "PyObject_GetBuffer"(object obj, Py_buffer *view, int flags)
    int PyObject_GetBuffer(object obj, Py_buffer *view, int flags) except -1
    void PyBuffer_Release(Py_buffer *view)
    void PyErr_Clear()
    int PyBUF_SIMPLE
    int PyBUF_WRITABLE
    char *PyBytes_AS_STRING(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)
    object PyBytes_FromStringAndSize(const char *v, Py_ssize_t n)
    char *PyByteArray_AS_STRING(object o)
    Py_ssize_t PyByteArray_GET_SIZE(object o)
    object PyMemoryView_FromObject(object o)
    object PyMemoryView_FromMemory(char *mem, Py_ssize_t size, int flags)
    int PyBUF_WRITE


cdef extern from "kernel.h" nogil:
    ctypedef struct bws_kernels:
        const char *name
    ctypedef struct bws_cpu:
        int sse2, ssse3, sse41, sse42, avx, avx2, bmi2, avx512f, avx512bw, avx512vl, avx512vbmi2, neon
    int BWS_LEVEL_COUNT
    const bws_kernels *bws_active
    void bws_init()
    const bws_cpu *bws_cpu_features()
    const char *bws_level_name(int level)
    int bws_level_from_name(const char *name)
    int bws_level_compiled(int level)
    int bws_level_supported(int level)
    int bws_set_level(int level)
    int bws_best_level()
    void bws_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t *key, size_t offset)
    int bws_utf8_valid(const uint8_t *s, size_t n)
    uint32_t bws_utf8_feed(uint32_t state, const uint8_t *s, size_t n)
    uint32_t BWS_UTF8_ACCEPT
    uint32_t BWS_UTF8_REJECT


# Buffers this large are worked on without the GIL. Below it, taking the GIL back
# costs more than the work.
cdef Py_ssize_t NOGIL_MIN = 65536


cdef void mask_inplace(uint8_t *p, size_t n, const uint8_t *key) noexcept nogil:
    bws_mask(p, p, n, key, 0)


cdef inline bytes _key(object key):
    if type(key) is not bytes:
        key = bytes(key)
    if PyBytes_GET_SIZE(key) != 4:
        raise ValueError(f"mask key must be 4 bytes, got {PyBytes_GET_SIZE(key)}")
    return <bytes>key


def mask_bytes(key, buf, Py_ssize_t offset=0):
    """XOR ``buf`` in place with the 4-byte ``key``, starting at key position ``offset``.

    Args:
        key: The 4-byte masking key (any bytes-like object).
        buf: A writable, C-contiguous buffer (bytearray, memoryview, numpy array...).
        offset: How many payload bytes precede ``buf``; lets a payload be masked in
            chunks. Only ``offset % 4`` matters.

    Raises:
        ValueError: If ``key`` is not 4 bytes long.
        TypeError: If ``buf`` is read-only.
    """
    cdef bytes k = _key(key)
    cdef const uint8_t *kp = <const uint8_t *>PyBytes_AS_STRING(k)
    cdef uint8_t *p
    cdef size_t n
    cdef size_t off = <size_t>offset
    cdef Py_buffer view
    if type(buf) is bytearray and PyByteArray_GET_SIZE(buf) < NOGIL_MIN:
        # The GIL is held throughout, so the bytearray cannot be resized under us.
        p = <uint8_t *>PyByteArray_AS_STRING(buf)
        bws_mask(p, p, <size_t>PyByteArray_GET_SIZE(buf), kp, off)
        return
    if _get_buffer(buf, &view, PyBUF_WRITABLE) < 0:
        PyErr_Clear()
        _kernels_py.mask_bytes(k, buf, offset)
        return
    p = <uint8_t *>view.buf
    n = <size_t>view.len
    if view.len >= NOGIL_MIN:
        with nogil:
            bws_mask(p, p, n, kp, off)
    else:
        bws_mask(p, p, n, kp, off)
    PyBuffer_Release(&view)


def mask_into(key, src, dst, Py_ssize_t offset=0):
    """Write ``src`` XORed with the 4-byte ``key`` into ``dst``, in one pass.

    What ``dst[:] = src`` and then :func:`mask_bytes` on ``dst`` do, without going
    over the memory twice: for a front end masking a large payload piece by piece
    into a buffer of its own.

    Args:
        key: The 4-byte masking key (any bytes-like object).
        src: Any bytes-like object.
        dst: A writable buffer of the same size in bytes (``src`` itself will do;
            a partial overlap will not).
        offset: How many payload bytes precede ``src``; only ``offset % 4`` matters.

    Raises:
        ValueError: If ``key`` is not 4 bytes long, or ``src`` and ``dst`` differ
            in size.
        TypeError: If ``dst`` is read-only, or either is not a buffer.
    """
    cdef bytes k = _key(key)
    cdef const uint8_t *kp = <const uint8_t *>PyBytes_AS_STRING(k)
    cdef Py_buffer s
    cdef Py_buffer d
    cdef size_t n
    cdef size_t off = <size_t>offset
    if _get_buffer(src, &s, PyBUF_SIMPLE) < 0:
        PyErr_Clear()
        _kernels_py.mask_into(k, src, dst, offset)
        return
    if _get_buffer(dst, &d, PyBUF_WRITABLE) < 0:
        PyBuffer_Release(&s)
        PyErr_Clear()
        _kernels_py.mask_into(k, src, dst, offset)
        return
    try:
        if s.len != d.len:
            raise ValueError(f"src and dst differ in size: {s.len} and {d.len} bytes")
        n = <size_t>s.len
        if s.len >= NOGIL_MIN:
            with nogil:
                bws_mask(<uint8_t *>d.buf, <const uint8_t *>s.buf, n, kp, off)
        else:
            bws_mask(<uint8_t *>d.buf, <const uint8_t *>s.buf, n, kp, off)
    finally:
        PyBuffer_Release(&d)
        PyBuffer_Release(&s)


def apply_mask(data, key):
    """Return ``data`` XORed with the 4-byte ``key`` as new bytes.

    Args:
        data: Any bytes-like object.
        key: The 4-byte masking key.

    Raises:
        ValueError: If ``key`` is not 4 bytes long.
    """
    cdef bytes k = _key(key)
    cdef const uint8_t *kp = <const uint8_t *>PyBytes_AS_STRING(k)
    cdef Py_buffer view
    cdef bytes out
    cdef uint8_t *dst
    cdef const uint8_t *src
    cdef size_t n
    if _get_buffer(data, &view, PyBUF_SIMPLE) < 0:
        PyErr_Clear()
        return _kernels_py.apply_mask(data, k)
    try:
        out = PyBytes_FromStringAndSize(NULL, view.len)
        dst = <uint8_t *>PyBytes_AS_STRING(out)
        src = <const uint8_t *>view.buf
        n = <size_t>view.len
        if view.len >= NOGIL_MIN:
            with nogil:
                bws_mask(dst, src, n, kp, 0)
        else:
            bws_mask(dst, src, n, kp, 0)
    finally:
        PyBuffer_Release(&view)
    return out


cdef inline bint _flat(const Py_buffer *b) noexcept:
    """Whether a buffer is one dimension of contiguous 1-byte items."""
    return (
        b.ndim == 1
        and b.itemsize == 1
        and (b.strides == NULL or b.strides[0] == 1)
        and b.suboffsets == NULL
    )


cdef object sub_view(object view, Py_ssize_t start, Py_ssize_t end):
    cdef Py_buffer *b = PyMemoryView_GET_BUFFER(view)
    cdef object sub
    if not _flat(b):
        return view[start:end]
    sub = PyMemoryView_FromObject(view)  # a view on the same managed buffer
    b = PyMemoryView_GET_BUFFER(sub)
    b.buf = <char *>b.buf + start
    b.len = end - start
    b.shape[0] = end - start
    return sub


def payload_buffer(Py_ssize_t n):
    """Return a new ``bytes`` object of ``n`` bytes, not filled yet, and a writable
    memoryview of its bytes, to read a payload into before the object is handed out.

    The view holds no reference to the object: keep both, and write through the view
    only before anything else sees the object (the pure twin returns a bytearray,
    which its caller turns into bytes)."""
    if n < 0:
        raise ValueError("negative size")
    data = PyBytes_FromStringAndSize(NULL, n)
    return data, PyMemoryView_FromMemory(PyBytes_AS_STRING(data), n, PyBUF_WRITE)


cdef extern from "done.h":
    object bw_done_new(object value)
    object bw_done_type()


# The completed awaitable (done.h): what the coroutine API's reads return when a
# message is queued already.
Done = bw_done_type()


cdef object done(object value):
    return bw_done_new(value)


cdef extern from "ready.h":
    object bw_ready_new(object owner, object arg, ready_fn take, ready_fn block, ready_fn wait)
    object bw_ready_type()


# A read without a coroutine (ready.h): takes its message at a step, as the
# coroutine it stands for would.
Ready = bw_ready_type()


cdef object ready(object owner, object arg, ready_fn take, ready_fn block, ready_fn wait):
    return bw_ready_new(owner, arg, take, block, wait)


cdef extern from *:
    """
    /* Ask the CPU to start loading the nbytes at p into its caches (no effect where
       the compiler has no prefetch builtin). */
    static inline void bw_prefetch(const void *p, Py_ssize_t nbytes) {
    #if defined(__GNUC__) || defined(__clang__)
        const char *c = (const char *)p;
        for (Py_ssize_t at = 0; at < nbytes; at += 64) {
            __builtin_prefetch(c + at);
        }
    #else
        (void)p;
        (void)nbytes;
    #endif
    }
    """
    void bw_prefetch(const void *p, Py_ssize_t nbytes) noexcept nogil


cdef void prefetch(const void *p, Py_ssize_t nbytes) noexcept nogil:
    bw_prefetch(p, nbytes)


cdef extern from *:
    """
    /* send(2) on a connected socket, without SIGPIPE where the platform says so;
       -1 (nothing sent) where there is no send(2) to call here. */
    #if defined(_WIN32)
    static Py_ssize_t bw_socket_send(int fd, const char *buf, Py_ssize_t n) {
        (void)fd; (void)buf; (void)n;
        return -1;
    }
    #else
    #include <sys/socket.h>
    #ifndef MSG_NOSIGNAL
    #define MSG_NOSIGNAL 0
    #endif
    static Py_ssize_t bw_socket_send(int fd, const char *buf, Py_ssize_t n) {
        return (Py_ssize_t)send(fd, buf, (size_t)n, MSG_NOSIGNAL);
    }
    #endif
    """
    Py_ssize_t bw_socket_send(int fd, const char *buf, Py_ssize_t n) noexcept nogil


cdef Py_ssize_t socket_send(int fd, const char *buf, Py_ssize_t n) noexcept nogil:
    return bw_socket_send(fd, buf, n)


cdef inline bint _released(object view) noexcept:
    return (<PyMemoryViewObject *><void *>view).flags & _Py_MEMORYVIEW_RELEASED != 0


cdef Py_ssize_t view_nbytes(object view) except -1:
    if _released(view):
        raise ValueError("operation forbidden on released memoryview object")
    return PyMemoryView_GET_BUFFER(view).len


cdef bint byte_view(object view) noexcept:
    cdef Py_buffer *b = PyMemoryView_GET_BUFFER(view)
    return (
        not _released(view)
        and not b.readonly
        and _flat(b)
        and (b.format == NULL or (b.format[0] == b'B' and b.format[1] == 0))
    )


cdef inline Py_ssize_t _put_header(uint8_t *p, int first, uint64_t n, const uint8_t *key):
    """Write a header with the minimal length encoding at ``p``; return its length."""
    cdef Py_ssize_t h
    cdef int i
    cdef uint8_t mask_bit = 0x80 if key != NULL else 0
    p[0] = <uint8_t>first
    if n < 126:
        p[1] = mask_bit | <uint8_t>n
        h = 2
    elif n < 65536:
        p[1] = mask_bit | 126
        p[2] = <uint8_t>(n >> 8)
        p[3] = <uint8_t>n
        h = 4
    else:
        p[1] = mask_bit | 127
        for i in range(8):
            p[2 + i] = <uint8_t>(n >> (56 - 8 * i))
        h = 10
    if key != NULL:
        memcpy(p + h, key, 4)
        h += 4
    return h


cdef inline int _check_first(int first) except -1:
    if first < 0 or first > 0xFF:
        raise ValueError(f"first header byte must be 0-255, got {first}")
    return 0


def frame_header(int first, length, key=None):
    """Return a frame header (RFC 6455 §5.2) with the minimal length encoding.

    Args:
        first: The first header byte: FIN, the RSV bits and the opcode.
        length: The payload length, ``0 <= length < 2**63``.
        key: The 4-byte masking key, appended after the length with the MASK bit
            set; ``None`` for an unmasked frame.

    Raises:
        ValueError: ``first`` is not a byte, ``length`` is out of range, or ``key``
            is not 4 bytes long.
    """
    cdef uint8_t tmp[14]
    cdef const uint8_t *kp = NULL
    cdef bytes k
    cdef uint64_t n
    _check_first(first)
    if not 0 <= length < (1 << 63):
        raise ValueError(f"payload length out of range: {length}")
    n = <uint64_t>length
    if key is not None:
        k = _key(key)
        kp = <const uint8_t *>PyBytes_AS_STRING(k)
    return PyBytes_FromStringAndSize(<char *>tmp, _put_header(tmp, first, n, kp))


def encode_frame(int first, data, key=None):
    """Return a whole frame, header and payload, as one new ``bytes`` object.

    The header is written straight into the frame's memory, and the payload copied
    (or masked, with ``key``) after it: one allocation, no separate header object.

    Args:
        first: The first header byte: FIN, the RSV bits and the opcode.
        data: The payload, any bytes-like object (its bytes, whatever its format).
        key: The 4-byte masking key: the payload is masked with it as it is copied
            in; ``None`` for an unmasked (server) frame.

    Raises:
        ValueError: ``first`` is not a byte, or ``key`` is not 4 bytes long.
    """
    _check_first(first)
    return frame_of(first, data, None if key is None else _key(key), 0)


cdef bytes frame_of(int first, object data, bytes keys, Py_ssize_t at):
    cdef Py_buffer view
    cdef const uint8_t *key = NULL
    cdef Py_buffer *b
    if keys is not None:
        key = <const uint8_t *>PyBytes_AS_STRING(keys) + at
    # Bytes, and a flat view that is not released, are read in place: no export and
    # release around the copy. (Not past NOGIL_MIN: with the GIL let go while it
    # copies, only an export keeps another thread from releasing the memory.)
    if type(data) is bytes and PyBytes_GET_SIZE(data) < NOGIL_MIN:
        return _build_frame(first, <const uint8_t *>PyBytes_AS_STRING(data),
                            <size_t>PyBytes_GET_SIZE(data), key)
    if type(data) is memoryview and not _released(data):
        b = PyMemoryView_GET_BUFFER(data)
        if b.len < NOGIL_MIN and _flat(b):
            return _build_frame(first, <const uint8_t *>b.buf, <size_t>b.len, key)
    if _get_buffer(data, &view, PyBUF_SIMPLE) < 0:
        PyErr_Clear()  # not contiguous, say: the pure twin copes or raises
        return _kernels_py.encode_frame(first, data, None if keys is None else keys[at : at + 4])
    try:
        return _build_frame(first, <const uint8_t *>view.buf, <size_t>view.len, key)
    finally:
        PyBuffer_Release(&view)


cdef inline bytes _build_frame(int first, const uint8_t *src, size_t n, const uint8_t *key):
    cdef Py_ssize_t h = 2 if n < 126 else 4 if n < 65536 else 10
    cdef bytes out
    cdef uint8_t *dst
    if key != NULL:
        h += 4
    out = PyBytes_FromStringAndSize(NULL, h + <Py_ssize_t>n)
    dst = <uint8_t *>PyBytes_AS_STRING(out)
    _put_header(dst, first, <uint64_t>n, key)
    dst += h
    if key == NULL:
        if n >= <size_t>NOGIL_MIN:
            with nogil:
                memcpy(dst, src, n)
        else:
            memcpy(dst, src, n)
    elif n >= <size_t>NOGIL_MIN:
        with nogil:
            bws_mask(dst, src, n, key, 0)
    else:
        bws_mask(dst, src, n, key, 0)
    return out


cdef bytes payload_of(object owner, const uint8_t *src, Py_ssize_t n, bint masked):
    # frame_payload for the compiled core, which holds a pointer into owner's buffer
    # (a memoryview): a C call, no range check (the parser's), no Python ints. Large
    # payloads are copied with the GIL let go under an export of owner, which keeps
    # the memory from being released or resized meanwhile.
    cdef Py_buffer hold
    cdef bytes out
    cdef uint8_t *dst
    if n < NOGIL_MIN:
        if not masked:
            return PyBytes_FromStringAndSize(<const char *>src, n)
        out = PyBytes_FromStringAndSize(NULL, n)
        bws_mask(<uint8_t *>PyBytes_AS_STRING(out), src, <size_t>n, src - 4, 0)
        return out
    out = PyBytes_FromStringAndSize(NULL, n)
    dst = <uint8_t *>PyBytes_AS_STRING(out)
    if _get_buffer(owner, &hold, PyBUF_SIMPLE) < 0:
        raise BufferError("payload_of: the buffer cannot be exported")
    try:
        with nogil:
            if masked:
                bws_mask(dst, src, <size_t>n, src - 4, 0)
            else:
                memcpy(dst, src, <size_t>n)
    finally:
        PyBuffer_Release(&hold)
    return out


def frame_payload(buf, Py_ssize_t start, Py_ssize_t end, bint masked):
    """Return ``buf[start:end]`` as new bytes, unmasked as it is copied if ``masked``.

    The parser's way to take a payload out of a receive buffer: one call, one copy,
    no intermediate view. When ``masked``, the key is the 4 bytes before ``start``
    (where a frame header puts it).

    Args:
        buf: A C-contiguous buffer (bytes, bytearray, memoryview...).
        start: Where the payload begins (``>= 4`` when ``masked``).
        end: Where it ends.
        masked: Whether to unmask with the key at ``buf[start - 4:start]``.

    Raises:
        ValueError: The range is not within ``buf``.
    """
    cdef Py_buffer view
    cdef bytes out
    cdef uint8_t *dst
    cdef const uint8_t *src
    cdef Py_ssize_t n = end - start
    if _get_buffer(buf, &view, PyBUF_SIMPLE) < 0:
        PyErr_Clear()
        return _kernels_py.frame_payload(buf, start, end, masked)
    try:
        if start < (4 if masked else 0) or n < 0 or end > view.len:
            raise ValueError(f"payload range {start}:{end} not within a {view.len}-byte buffer")
        src = <const uint8_t *>view.buf
        if not masked:
            return PyBytes_FromStringAndSize(<const char *>src + start, n)
        out = PyBytes_FromStringAndSize(NULL, n)
        dst = <uint8_t *>PyBytes_AS_STRING(out)
        if n >= NOGIL_MIN:
            with nogil:
                bws_mask(dst, src + start, <size_t>n, src + start - 4, 0)
        else:
            bws_mask(dst, src + start, <size_t>n, src + start - 4, 0)
        return out
    finally:
        PyBuffer_Release(&view)


def validate_utf8(data):
    """Return whether ``data`` is complete, valid UTF-8 (RFC 3629: no surrogates)."""
    cdef Py_buffer view
    cdef const uint8_t *s
    cdef size_t n
    cdef int ok
    if type(data) is bytes and PyBytes_GET_SIZE(data) < NOGIL_MIN:
        return bws_utf8_valid(<const uint8_t *>PyBytes_AS_STRING(data),
                              <size_t>PyBytes_GET_SIZE(data)) != 0
    # The same errors as codecs.utf_8_decode: TypeError for str and other
    # non-buffers, BufferError for a non-contiguous buffer.
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    s = <const uint8_t *>view.buf
    n = <size_t>view.len
    if view.len >= NOGIL_MIN:
        with nogil:
            ok = bws_utf8_valid(s, n)
    else:
        ok = bws_utf8_valid(s, n)
    PyBuffer_Release(&view)
    return ok != 0


cdef class Utf8Validator:
    """Incremental UTF-8 validation across fragments.

    ``feed`` returns ``False`` as soon as the bytes seen so far cannot start a valid
    text (an invalid byte, an overlong form, a surrogate or a code point above
    U+10FFFF), even in the middle of a sequence cut between two chunks, and keeps
    returning ``False`` until ``finish`` or ``reset``. ``finish`` also fails when the
    text ends inside a sequence.
    """

    cdef uint32_t _state

    def __cinit__(self):
        self._state = BWS_UTF8_ACCEPT

    def feed(self, data):
        """Validate the next chunk; ``False`` once the text is known to be invalid."""
        cdef Py_buffer view
        cdef const uint8_t *s
        cdef size_t n
        cdef uint32_t state = self._state
        if type(data) is bytes and PyBytes_GET_SIZE(data) < NOGIL_MIN:
            state = bws_utf8_feed(state, <const uint8_t *>PyBytes_AS_STRING(data),
                                  <size_t>PyBytes_GET_SIZE(data))
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            s = <const uint8_t *>view.buf
            n = <size_t>view.len
            if view.len >= NOGIL_MIN:
                with nogil:
                    state = bws_utf8_feed(state, s, n)
            else:
                state = bws_utf8_feed(state, s, n)
            PyBuffer_Release(&view)
        self._state = state
        return state != BWS_UTF8_REJECT

    def finish(self):
        """Return whether the text ended on a sequence boundary; resets the validator."""
        cdef bint ok = self._state == BWS_UTF8_ACCEPT
        self._state = BWS_UTF8_ACCEPT
        return ok

    def reset(self):
        """Forget any partial sequence, ready for a new message."""
        self._state = BWS_UTF8_ACCEPT


def simd_level():
    """Return the name of the SIMD level in use: ``"scalar"``, ``"sse2"``, ``"avx2"``..."""
    return bws_active.name.decode("ascii")


def cpu_features():
    """Return the CPU features detected at import, as the kernels may use them.

    An x86 vector extension counts only when the OS also saves its registers.
    """
    cdef const bws_cpu *c = bws_cpu_features()
    return {
        "sse2": c.sse2 != 0,
        "ssse3": c.ssse3 != 0,
        "sse4_1": c.sse41 != 0,
        "sse4_2": c.sse42 != 0,
        "avx": c.avx != 0,
        "avx2": c.avx2 != 0,
        "bmi2": c.bmi2 != 0,
        "avx512f": c.avx512f != 0,
        "avx512bw": c.avx512bw != 0,
        "avx512vl": c.avx512vl != 0,
        "avx512vbmi2": c.avx512vbmi2 != 0,
        "neon": c.neon != 0,
    }


def _all_levels():
    return [bws_level_name(i).decode("ascii") for i in range(BWS_LEVEL_COUNT)]


def compiled_levels():
    """Return the levels this build includes, lowest first (the CPU may lack some)."""
    return [bws_level_name(i).decode("ascii") for i in range(BWS_LEVEL_COUNT)
            if bws_level_compiled(i)]


def available_levels():
    """Return the levels this build includes and this CPU runs, lowest first."""
    return [bws_level_name(i).decode("ascii") for i in range(BWS_LEVEL_COUNT)
            if bws_level_supported(i)]


def _set_level(name):
    """Switch every kernel to the level ``name`` (for tests and benchmarks).

    ``"auto"`` or ``""`` picks the best available level.

    Raises:
        RuntimeError: If the level is unknown, not compiled or not supported here.
    """
    cdef int level
    name = str(name).strip().lower()
    if name in ("", "auto"):
        bws_set_level(bws_best_level())
        return
    level = bws_level_from_name(name.encode("ascii", "replace"))
    if level < 0:
        raise RuntimeError(
            f"SIMD level {name!r} is unknown; the levels are: {', '.join(_all_levels())}"
        )
    if not bws_level_compiled(level):
        raise RuntimeError(
            f"SIMD level {name!r} was not compiled into this build "
            f"(compiled: {', '.join(compiled_levels())})"
        )
    if bws_set_level(level) != 0:
        raise RuntimeError(
            f"SIMD level {name!r} needs CPU features this machine lacks "
            f"(available here: {', '.join(available_levels())})"
        )


bws_init()

_forced = os.environ.get("BLAZEWS_SIMD", "")
if _forced:
    try:
        _set_level(_forced)
    except RuntimeError as exc:
        raise RuntimeError(f"BLAZEWS_SIMD={_forced} requested but {exc}") from None
del _forced
