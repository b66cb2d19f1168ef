//! What every wasm contract needs: an allocator and a panic handler.
//!
//! Each call runs in a fresh instance, so a bump allocator that never frees is both the
//! simplest and the fastest choice: memory is reclaimed when the call ends. Contracts are
//! linked with 2 MiB of initial memory (the workspace's `.cargo/config.toml`), so most calls
//! never grow it.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::UnsafeCell;

struct Bump {
    /// (next free byte, end of memory); 0 = not initialised.
    state: UnsafeCell<(usize, usize)>,
}

extern "C" {
    /// First byte after the data and the stack, placed by the linker (wasm-ld).
    static __heap_base: u8;
}

// SAFETY: wasm32 contracts are single-threaded.
unsafe impl Sync for Bump {}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let s = &mut *self.state.get();
        if s.1 == 0 {
            // The heap starts right after the static data and fills the initial memory
            // before growing it (growing is the expensive part of a call).
            let base = core::ptr::addr_of!(__heap_base) as usize;
            *s = (base, wasm32::memory_size(0) * 65536);
        }
        let start = (s.0 + layout.align() - 1) & !(layout.align() - 1);
        let Some(new_next) = start.checked_add(layout.size()) else { return core::ptr::null_mut() };
        if new_next > s.1 {
            let pages = (new_next - s.1).div_ceil(65536);
            if wasm32::memory_grow(0, pages) == usize::MAX {
                return core::ptr::null_mut();
            }
            s.1 += pages * 65536;
        }
        s.0 = new_next;
        start as *mut u8
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOC: Bump = Bump { state: UnsafeCell::new((0, 0)) };

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let msg = alloc::format!("{}", info.message());
    crate::env::abort(&msg)
}
