# The kernel's buffers: zeroed, starting on a cache line, exactly their size
# to the sanitizers.  Included by _core.pxi.
#
# Every buffer the kernel walks with SIMD loads and stores (parameters,
# optimizer state, gradients, scratch) is made by aligned_zeros.  Rows are
# whole SIMD registers long (width[l], a multiple of 8 entries), so in a
# buffer that starts on ALIGN bytes no access straddles two cache lines.
# NumPy promises 16 bytes only, and at 16 mod 32 half of all 256-bit
# accesses split: a [4, 64, 64, 2] float64 one-sample step took 4.0-4.2 us
# instead of 3.5-3.7 us for half of all networks made (bench/latency.py's
# network, 24 networks timed in one process), and MNIST at batch 200 ran
# ~20% slower in float32.
#
# A block is calloc'd ALIGN bytes longer than asked (calloc: the pages of a
# large buffer stay untouched until used, as with np.zeros) and the array
# starts at the first aligned byte in it.  In an AddressSanitizer build the
# bytes before and after the array are poisoned, so that reading past its
# end is reported as for any exact allocation (as "use-after-poison"); where
# valgrind's headers are found at build time, valgrind is told the same.

cimport cython
cimport numpy as cnp
from libc.stdlib cimport calloc, free
from libc.stdint cimport uintptr_t

import numpy as np

cnp.import_array()

cdef extern from *:
    """
    #if defined(__SANITIZE_ADDRESS__)
    #include <sanitizer/asan_interface.h>
    #define BPFAST_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
    #define BPFAST_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
    #elif defined(__has_include)
    #if __has_include(<valgrind/memcheck.h>)
    #include <valgrind/memcheck.h>
    #define BPFAST_POISON(p, n) ((void)VALGRIND_MAKE_MEM_NOACCESS((p), (n)))
    #define BPFAST_UNPOISON(p, n) ((void)VALGRIND_MAKE_MEM_UNDEFINED((p), (n)))
    #endif
    #endif
    #ifndef BPFAST_POISON
    #define BPFAST_POISON(p, n) ((void)(p), (void)(n))
    #define BPFAST_UNPOISON(p, n) ((void)(p), (void)(n))
    #endif
    """
    void poison "BPFAST_POISON"(const void* p, size_t n) noexcept nogil
    void unpoison "BPFAST_UNPOISON"(const void* p, size_t n) noexcept nogil

cdef enum:
    # Where every kernel buffer starts: a cache line, and a whole SIMD
    # register of any width up to AVX-512.
    ALIGN_BYTES = 64

ALIGN = ALIGN_BYTES


@cython.auto_pickle(False)         # an array on it pickles its values, not the block
cdef class _AlignedBlock:
    """One calloc'd block, the base object of the array made on it."""

    cdef char* raw
    cdef size_t size

    def __dealloc__(self):
        if self.raw != NULL:
            unpoison(self.raw, self.size)
            free(self.raw)


def aligned_zeros(shape, dtype):
    """A zeroed C-contiguous array of `shape` and `dtype` whose first entry
    starts at an ALIGN-byte boundary (see the head of _buffers.pxi)."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    cdef Py_ssize_t n_bytes = dtype.itemsize
    for n in shape:
        n_bytes *= n
    cdef _AlignedBlock block = _AlignedBlock.__new__(_AlignedBlock)
    cdef size_t start
    cdef cnp.npy_intp length = n_bytes
    block.size = <size_t>n_bytes + ALIGN_BYTES
    block.raw = <char*>calloc(block.size, 1)
    if block.raw == NULL:
        raise MemoryError(f"cannot allocate {n_bytes} bytes")
    start = (-<uintptr_t>block.raw) % ALIGN_BYTES
    poison(block.raw, start)
    poison(block.raw + start + n_bytes, block.size - start - n_bytes)
    array = cnp.PyArray_SimpleNewFromData(1, &length, cnp.NPY_UINT8, block.raw + start)
    cnp.set_array_base(array, block)
    return array.view(dtype).reshape(shape)


def aligned_copy(a):
    """A copy of array a in a buffer of aligned_zeros."""
    out = aligned_zeros(a.shape, a.dtype)
    out[...] = a
    return out
