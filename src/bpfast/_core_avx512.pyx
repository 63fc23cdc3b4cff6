# The AVX-512 build of the kernel (see _core.pxi): the same source as
# _core.pyx, compiled with -mavx512f -mavx512vl (and AVX2+FMA) for 512-bit
# vectors, and chosen at import time only on a CPU that has them
# (bpfast._dispatch).
include "_core.pxi"
