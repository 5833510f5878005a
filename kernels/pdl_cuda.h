// Programmatic dependent launch (PDL; run.pdl; compute capability 9.0+),
// the device side.
//
// A kernel launched with cudaLaunchAttributeProgrammaticStreamSerialization
// (blpo_launch in cuda_backend_internal.h) may be scheduled while the kernel
// before it on the stream is still running, so that its launch latency, a
// large part of this trainer's iteration of short kernels, overlaps the
// earlier kernel's last blocks instead of following them. In exchange every
// kernel must not touch global memory before the grid it depends on has
// finished: griddepcontrol.wait blocks until that grid has completed and its
// writes are visible (an immediate return when the kernel was launched
// without the attribute).
//
// Every kernel in kernels/ calls blpo_pdl_enter() as its first statement, in
// every block and before any branch. It has to be unconditional: a kernel
// counts as complete when its blocks have exited, so a kernel whose blocks
// could exit without waiting could "complete" before the kernel it follows,
// and the kernel after it would then read that one's outputs too early.
// After the wait the kernel allows its own successor to be scheduled at once
// (griddepcontrol.launch_dependents): the successor waits in its turn, and
// all of this kernel's blocks are resident by then, so the successor's
// blocks only take room this kernel no longer needs.
//
// tools/kernel_resources.py checks every kernel's sm_90 PTX for the wait
// ahead of any memory access, barrier, branch or return (the CTest
// kernel_resources), so a kernel added without it fails CI here.
#ifndef BLPO_PDL_CUDA_H
#define BLPO_PDL_CUDA_H

static __device__ __forceinline__ void blpo_pdl_enter() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;" ::: "memory");
#endif
}

#endif
