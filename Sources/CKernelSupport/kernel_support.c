// Everything in this module is inline in include/kernel_support.h; SwiftPM needs one source.
#include "kernel_support.h"
