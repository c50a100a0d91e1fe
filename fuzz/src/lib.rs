//! What every fuzz target shares: an allocator that bounds the heap, so an
//! input that makes a parser allocate without bound is a crash the fuzzer
//! saves, not a slow run or an out-of-memory kill that saves nothing.
//!
//! libFuzzer's own `-malloc_limit_mb` needs a sanitizer's malloc hooks,
//! and its `-rss_limit_mb` misses a huge allocation never touched (the
//! kernel maps it lazily), so the bound is counted here: every target links
//! this crate (`use hokan_fuzz as _;` at least).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The most heap the fuzzed code may hold at once. Inputs are a few KiB;
/// the largest buffers the parsers may rightly take for them are tens of
/// MiB (a bbolt leaf run is split up to 32 MiB, a tar entry is read up to
/// 64 MiB), so anything near this is an allocation sized by a claim in the
/// input rather than by the input.
pub const MAX_LIVE_BYTES: usize = 512 << 20;

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Counts live bytes and refuses (returns null, which aborts with
/// "memory allocation of N bytes failed") past [`MAX_LIVE_BYTES`].
pub struct Bounded;

fn reserve(n: usize) -> bool {
    let before = LIVE.fetch_add(n, Relaxed);
    if before.saturating_add(n) > MAX_LIVE_BYTES {
        LIVE.fetch_sub(n, Relaxed);
        return false;
    }
    true
}

// SAFETY: every call is passed on to the system allocator unchanged; only
// the count of live bytes is kept beside it.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !reserve(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as the caller promised for `layout`.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !reserve(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as the caller promised for `layout`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !reserve(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: as the caller promised for `ptr`, `layout` and `new_size`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            if new_size > old {
                LIVE.fetch_sub(new_size - old, Relaxed);
            }
        } else if new_size < old {
            LIVE.fetch_sub(old - new_size, Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Bounded = Bounded;

/// Bytes the fuzzed code holds now (for targets that check that a parser
/// gave back what it took).
pub fn live_bytes() -> usize {
    LIVE.load(Relaxed)
}
