//! The guest's memory allocator: a bump allocator over linear memory.
//!
//! Every evaluation runs in a fresh instance that lives for one call, so nothing
//! ever needs freeing. Allocation starts in the memory the module begins with (the
//! SDK's policies start with 1 MiB, see `.cargo/config.toml`) and grows memory only
//! when that runs out, in steps of at least 1 MiB. Rust's default wasm allocator
//! would call `memory.grow` on the first allocation of every instance, and each grow
//! costs the host a change of page protections. Only for wasm32 guests; host builds
//! (unit tests) keep the system allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::ptr::null_mut;

const PAGE: usize = 65536;
/// Grow by at least this many pages at a time (1 MiB).
const MIN_GROW_PAGES: usize = 16;

unsafe extern "C" {
    /// First byte after the module's data, placed by the linker.
    static __heap_base: u8;
}

/// The global allocator of wasm32 guests (see the module documentation).
pub struct BumpAllocator {
    /// Next free address; 0 until the first allocation.
    next: Cell<usize>,
}

impl BumpAllocator {
    /// An allocator that starts at the heap base on its first allocation.
    pub const fn new() -> Self {
        BumpAllocator { next: Cell::new(0) }
    }

    fn reserve(&self, size: usize, align: usize) -> *mut u8 {
        let mut next = self.next.get();
        if next == 0 {
            next = (&raw const __heap_base) as usize;
        }
        let Some(start) = next.checked_add(align - 1).map(|n| n & !(align - 1)) else {
            return null_mut();
        };
        let Some(end) = start.checked_add(size) else {
            return null_mut();
        };
        if !ensure_memory(end) {
            return null_mut();
        }
        self.next.set(end);
        start as *mut u8
    }
}

impl Default for BumpAllocator {
    fn default() -> Self {
        Self::new()
    }
}

/// Makes linear memory at least `end` bytes long; false when the host refuses.
fn ensure_memory(end: usize) -> bool {
    let have = core::arch::wasm32::memory_size(0) * PAGE;
    if end <= have {
        return true;
    }
    let pages = (end - have).div_ceil(PAGE).max(MIN_GROW_PAGES);
    core::arch::wasm32::memory_grow(0, pages) != usize::MAX
        || core::arch::wasm32::memory_grow(0, (end - have).div_ceil(PAGE)) != usize::MAX
}

// SAFETY: wasm32 guests are single-threaded; the Cell is never shared across threads.
unsafe impl Sync for BumpAllocator {}

// SAFETY: `reserve` returns aligned, non-overlapping regions inside linear memory
// (grown as needed) or null; memory is never reused, so no region is aliased.
unsafe impl GlobalAlloc for BumpAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.reserve(layout.size(), layout.align())
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // The most recent allocation can grow (or shrink) in place.
        if ptr as usize + layout.size() == self.next.get() {
            let Some(end) = (ptr as usize).checked_add(new_size) else {
                return null_mut();
            };
            if !ensure_memory(end) {
                return null_mut();
            }
            self.next.set(end);
            return ptr;
        }
        let new = self.reserve(new_size, layout.align());
        if !new.is_null() {
            // SAFETY: both regions are valid for the copied length and do not overlap
            // (the new one lies after everything allocated so far).
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}
