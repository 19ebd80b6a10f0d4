// Small CPU hints for the engine's Swift kernels that Swift itself does not expose.
#ifndef REPENG_KERNEL_SUPPORT_H
#define REPENG_KERNEL_SUPPORT_H

/// Asks the CPU to start loading the cache line at `address` for reading (no fault if the
/// address is invalid; a hint only, results never depend on it).
static inline void repeng_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

/// Tells the CPU this thread is spinning on a shared variable (x86 `pause`, Arm `yield`), so
/// the wait costs less power and less of a sibling thread's time.
static inline void repeng_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
