# The AVX2+FMA build of the kernel (see _core.pxi): the same source as
# _core.pyx, compiled with -mavx2 -mfma and chosen at import time only on a
# CPU that has both (bpfast._dispatch).
include "_core.pxi"
