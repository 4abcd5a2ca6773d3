//! Feature `alloc-count` (MNG-R01, §5.1): a counting global allocator and the two metric
//! families it feeds, `mongoose_process_allocations_total` and
//! `mongoose_hot_path_allocations_total{agent}`.
//!
//! Install it in the binary that embeds mongoose (`mongoose-server` does when built with the
//! feature):
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: mongoose::alloc::CountingAllocator = mongoose::alloc::CountingAllocator;
//! ```
//!
//! Every allocation counts toward the process total. An allocation made while a thread is
//! inside a hot-path section ([`hot_path`]: a group draining its queues, a publisher
//! publishing) also counts toward that section's counter, so MNG-R22's "no allocation on the
//! hot path" is visible in production, not only in MNG-T25. Without the allocator installed
//! the counters stay at 0 and the sections cost one thread-local write each.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

static PROCESS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Const-initialised, no destructor: reading it from inside the allocator never
    // allocates or registers anything.
    static HOT: Cell<*const AtomicU64> = const { Cell::new(std::ptr::null()) };
}

/// The system allocator, counting.
pub struct CountingAllocator;

fn count() {
    PROCESS.fetch_add(1, Ordering::Relaxed);
    let hot = HOT.with(Cell::get);
    if !hot.is_null() {
        // SAFETY: `hot_path` sets the pointer from a reference that its guard borrows, and
        // the guard restores the previous pointer before that borrow ends, on this thread.
        unsafe { &*hot }.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; this only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `alloc`'s contract, which is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as for `dealloc`, plus the caller's `new_size` contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations by the whole process since start (0 unless the allocator is installed).
pub fn process_allocations() -> u64 {
    PROCESS.load(Ordering::Relaxed)
}

/// A hot-path section in progress; dropping it ends the section.
pub struct HotPath<'a> {
    prev: *const AtomicU64,
    _counter: std::marker::PhantomData<&'a AtomicU64>,
}

/// Starts a hot-path section on this thread: allocations until the returned guard drops
/// also count in `counter`. Sections nest; the outer one is restored afterwards (also on
/// unwind).
#[inline]
pub fn hot_path(counter: &AtomicU64) -> HotPath<'_> {
    let prev = HOT.with(|h| h.replace(counter as *const AtomicU64));
    HotPath {
        prev,
        _counter: std::marker::PhantomData,
    }
}

impl Drop for HotPath<'_> {
    #[inline]
    fn drop(&mut self) {
        HOT.with(|h| h.set(self.prev));
    }
}
