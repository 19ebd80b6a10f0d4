// C boundary for BLAS and LAPACK: OpenBLAS's CBLAS and the reference LAPACKE (Debian packages).
#pragma once
#include <cblas.h>
#include <lapacke.h>
// OpenBLAS extensions used to pin the thread count at run time.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
// Name of the kernel set OpenBLAS picked for this CPU (DYNAMIC_ARCH builds).
char *openblas_get_corename(void);
