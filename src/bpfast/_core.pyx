# The portable build of the kernel (see _core.pxi): compiled with the
# baseline instruction set of the target platform.
include "_core.pxi"
