// The inline hints live in include/kernel_support.h; the dispatched kernels in dispatch.c.
#include "kernel_support.h"
