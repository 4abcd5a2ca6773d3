//! glibc allocator settings (spec §8 memory levers, §4.10 SIGUSR1): at most two malloc
//! arenas, so the few runtime threads do not each keep a heap of their own, and returning
//! free heap pages to the kernel on demand. Other C libraries get no-ops.

/// Caps glibc at two malloc arenas; call before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn limit_arenas() {
    // SAFETY: mallopt only changes allocator tuning; it is called before other threads
    // exist, and M_ARENA_MAX with a positive value is always accepted.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Caps glibc at two malloc arenas (no-op here).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}

/// Hands free heap pages back to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn trim_heap() {
    // SAFETY: malloc_trim(0) has no preconditions; it only hands free pages at the top of
    // glibc's heaps back to the kernel and never touches live allocations.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Hands free heap pages back to the kernel (no-op here).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim_heap() {}
