//! A global allocator that counts the bytes live and their peak, for the memory tests
//! (`flyte-core`'s `compile_memory`, `flyte-engine`'s `dynamic_build_memory` and
//! `map_memory`, `flyte-admin`'s `dynamic_workflow_memory` and `dynamic_batch_memory`).
//!
//! A test binary opts in with
//! `#[global_allocator] static ALLOCATOR: flyte_test_alloc::Counting = flyte_test_alloc::Counting;`
//! and reads [`LIVE`] and [`PEAK`]; each test binary links its own copy of the counters.
//! Dev-dependency only: the server uses jemalloc.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes allocated and not yet freed.
pub static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The highest [`LIVE`] seen since the test last stored a value in it.
pub static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting into [`LIVE`] and [`PEAK`].
pub struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                - layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
