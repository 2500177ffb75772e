# C functions of the kernels module that other compiled modules cimport (Cython
# shares them through the module's C API table: one copy of the kernels, one SIMD
# level, chosen at the kernels' import).

from libc.stdint cimport uint8_t


# Unmask (XOR with the 4-byte key) n bytes at p in place, with the active SIMD level.
cdef void mask_inplace(uint8_t *p, size_t n, const uint8_t *key) noexcept nogil


# encode_frame(first, data, keys[at:at + 4]) for the core, without a Python call nor
# a key object: the masking key is the 4 bytes of keys at at (None: no key, a server's
# frame). first must be a byte.
cdef bytes frame_of(int first, object data, bytes keys, Py_ssize_t at)

# The payload of n bytes at src (a pointer into owner's buffer) as new bytes, unmasked
# as it is copied with the 4-byte key just before src if masked: the compiled core's
# frame_payload, without a Python call.
cdef bytes payload_of(object owner, const uint8_t *src, Py_ssize_t n, bint masked)

# view[start:end] of a memoryview (0 <= start <= end <= len(view)) without a slice
# object: a view on the same managed buffer, narrowed (so it is export-tracked as a
# slice is); a slice when view is not one-dimensional, contiguous bytes.
cdef object sub_view(object view, Py_ssize_t start, Py_ssize_t end)

# Start loading the nbytes at p into the CPU's caches, for a loop that is about to
# touch objects far apart in memory (broadcast's connections); no effect where the
# compiler has no prefetch builtin.
cdef void prefetch(const void *p, Py_ssize_t nbytes) noexcept nogil

# send(2) of n bytes at buf on the connected socket fd (MSG_NOSIGNAL where defined):
# the bytes sent, or -1 with errno set (always -1 where there is no send(2) here).
# The system call a socket's own send makes, which costs less than write(2).
cdef Py_ssize_t socket_send(int fd, const char *buf, Py_ssize_t n) noexcept nogil

# memoryview.nbytes of a memoryview as a C call (ValueError once it is released).
cdef Py_ssize_t view_nbytes(object view) except -1

# Whether a memoryview is what the core's parser reads as it is: flat, writable bytes
# (one dimension, format "B", contiguous), not released.
cdef bint byte_view(object view) noexcept

# A completed awaitable whose await gives value at once (done.h): no coroutine frame,
# no Future, no loop turn.
cdef object done(object value)

# A read without a coroutine (ready.h): a step calls take(owner, arg) for the value
# (None: nothing to take), else block(owner, arg) (if not NULL) for a future to yield
# (None: not here), else wait(owner, arg) for the coroutine whose steps it takes
# from then on.
ctypedef object (*ready_fn)(object owner, object arg)
cdef object ready(object owner, object arg, ready_fn take, ready_fn block, ready_fn wait)
