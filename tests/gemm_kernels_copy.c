/* test_gemm's own compilation of the SGEMM kernels: in sanitizer builds
 * blpo_core's copy is built without instrumentation for speed
 * (CMakeLists.txt), and this one, instrumented like the rest of the test,
 * keeps the kernels' memory accesses under ASan and UBSan. The linker takes
 * these definitions before the library's. */
#include "../src/cpu_gemm.c"
