//! Memory for the weights every decode step streams, placed where the kernel can back it with
//! 2 MiB pages.
//!
//! A decode step reads all of a model's weights once (SmolLM2: 134 MB in 211 matrices of
//! 110 KB to 28 MB), so it runs at the speed memory streams into one core. On 4 KiB pages
//! that stream pays a TLB miss every 4 KiB and the hardware prefetcher stops at each page's
//! end; on 2 MiB pages it does neither. Linux gives anonymous memory 2 MiB pages only in
//! 2 MiB-aligned ranges and, under its common `madvise` setting of transparent huge pages, only
//! where asked (`MADV_HUGEPAGE`). Most weight matrices are smaller than 2 MiB, so each in its
//! own allocation would never get one: [`Slab::zeroed`] places them side by side in 2 MiB
//! aligned regions of [`REGION`] bytes (a larger matrix gets a region of its own).
//!
//! Measured (BENCHMARKS.md, "weights on 2 MiB pages"): decode +18–35 % on one thread. Nothing
//! computed depends on where the bytes live.
//!
//! A region is never reused piecemeal: slabs are carved from its start onwards, and it is
//! returned to the system when the last slab in it is dropped. So only what lives as long as
//! a model (its weights) belongs here; a step's temporaries stay on the heap.

use std::sync::{Arc, Mutex, PoisonError};

/// Bytes of one shared region: a model's matrices fill a few of them.
pub const REGION: usize = 32 << 20;
/// The huge page size the regions are aligned to.
const HUGE: usize = 2 << 20;
/// Alignment of a slab within its region (a cache line, and a whole zmm load).
const SLAB_ALIGN: usize = 64;

/// Zeroed memory, `len` bytes, mapped for this region alone.
struct Region {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: a region is plain memory; the slabs carved from it are disjoint, and each is
// written only through the `&mut` of its one owner.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    /// A zeroed region of at least `len` bytes, 2 MiB aligned and advised for huge pages
    /// where the OS has them; `None` when the system refuses the memory.
    fn new(len: usize) -> Option<Self> {
        let len = len.checked_next_multiple_of(HUGE)?;
        #[cfg(target_os = "linux")]
        {
            // Map one huge page more than needed and unmap the unaligned head and tail.
            let span = len.checked_add(HUGE)?;
            // SAFETY: an anonymous private mapping at an address of the kernel's choosing.
            let raw = unsafe { libc::mmap(std::ptr::null_mut(), span, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
            if raw == libc::MAP_FAILED {
                return None;
            }
            let start = raw as usize;
            let aligned = start.next_multiple_of(HUGE);
            let (head, tail) = (aligned - start, span - (aligned - start) - len);
            // SAFETY: both ranges lie inside the mapping just made and nothing refers to them.
            unsafe {
                if head > 0 {
                    libc::munmap(raw, head);
                }
                if tail > 0 {
                    libc::munmap((aligned + len) as *mut libc::c_void, tail);
                }
                // Advice only: where the OS has no huge pages this fails and nothing changes.
                libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
            }
            Some(Region { ptr: std::ptr::NonNull::new(aligned as *mut u8)?, len })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let layout = std::alloc::Layout::from_size_align(len, HUGE).ok()?;
            // SAFETY: the layout has a non-zero size (`len` ≥ HUGE after rounding up from ≥ 1).
            let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
            Some(Region { ptr: std::ptr::NonNull::new(ptr)?, len })
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        // SAFETY: exactly the aligned range `new` kept mapped; no slab outlives the region.
        unsafe {
            libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len);
        }
        #[cfg(not(target_os = "linux"))]
        // SAFETY: allocated in `new` with this layout.
        unsafe {
            std::alloc::dealloc(self.ptr.as_ptr(), std::alloc::Layout::from_size_align_unchecked(self.len, HUGE));
        }
    }
}

/// The region slabs are being carved from, and how far.
struct Carver {
    region: Option<Arc<Region>>,
    used: usize,
}

static CARVER: Mutex<Carver> = Mutex::new(Carver { region: None, used: 0 });

/// `len` zeroed int8 values in a shared huge-page region, owned by this slab alone.
pub struct Slab {
    region: Arc<Region>,
    offset: usize,
    len: usize,
}

impl Slab {
    /// `len` zeroed bytes: carved from the current shared region, from a fresh one when it is
    /// full, or in a region of its own when `len` is over half a region. `None` when the
    /// system refuses the memory.
    pub fn zeroed(len: usize) -> Option<Slab> {
        if len > REGION / 2 {
            return Some(Slab { region: Arc::new(Region::new(len)?), offset: 0, len });
        }
        // Nothing here can panic while the lock is held, so a poisoned lock holds a valid state.
        let mut c = CARVER.lock().unwrap_or_else(PoisonError::into_inner);
        let at = c.used.next_multiple_of(SLAB_ALIGN);
        let fits = c.region.as_ref().and_then(|r| at.checked_add(len).filter(|&end| end <= r.len).map(|end| (Arc::clone(r), end)));
        if let Some((region, end)) = fits {
            c.used = end;
            return Some(Slab { region, offset: at, len });
        }
        let region = Arc::new(Region::new(REGION)?);
        c.region = Some(Arc::clone(&region));
        c.used = len;
        Some(Slab { region, offset: 0, len })
    }

    /// The slab's bytes as the int8 values it holds (weights).
    pub fn as_slice(&self) -> &[i8] {
        // SAFETY: `offset..offset + len` lies in the region, which this slab keeps alive; any
        // byte is a valid i8.
        unsafe { std::slice::from_raw_parts(self.region.ptr.as_ptr().add(self.offset) as *const i8, self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [i8] {
        // SAFETY: as above; no other slab covers these bytes, and `&mut self` is their only
        // way in.
        unsafe { std::slice::from_raw_parts_mut(self.region.ptr.as_ptr().add(self.offset) as *mut i8, self.len) }
    }
}

/// This system's transparent huge page setting (`always`, `madvise` or `never`) where it can
/// be read (Linux with THP), and whether it backs the regions' advice with 2 MiB pages
/// (`always` or `madvise`): what an operator checks when decode runs slower than BENCHMARKS.md.
pub fn huge_page_setting() -> Option<(String, bool)> {
    let s = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    thp_choice(&s).map(|c| (c.to_string(), c == "always" || c == "madvise"))
}

/// The bracketed choice of a sysfs setting such as `always [madvise] never`.
fn thp_choice(s: &str) -> Option<&str> {
    s.split_whitespace().find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chosen_thp_setting_is_the_bracketed_one() {
        assert_eq!(thp_choice("always [madvise] never\n"), Some("madvise"));
        assert_eq!(thp_choice("[always] madvise never"), Some("always"));
        assert_eq!(thp_choice("always madvise [never]"), Some("never"));
        assert_eq!(thp_choice("always madvise never"), None);
    }

    #[test]
    fn slabs_are_zeroed_aligned_disjoint_and_outlive_their_carver() {
        let mut slabs: Vec<Slab> =
            [1usize, 100, 4096, 3 << 20, REGION / 2, REGION / 2 + 1, 7, 5 << 20].iter().map(|&n| Slab::zeroed(n).expect("memory")).collect();
        for (i, s) in slabs.iter_mut().enumerate() {
            assert!(s.as_slice().iter().all(|&b| b == 0), "slab {i} zeroed");
            assert_eq!(s.as_slice().as_ptr() as usize % SLAB_ALIGN, 0, "slab {i} aligned");
            s.as_mut_slice().fill(i as i8 + 1);
        }
        // Each still holds its own fill: no two overlap.
        for (i, s) in slabs.iter().enumerate() {
            assert!(s.as_slice().iter().all(|&b| b == i as i8 + 1), "slab {i} kept its bytes");
        }
        // A slab keeps its region mapped after every other slab of it is gone.
        let last = slabs.pop().expect("slab");
        drop(slabs);
        assert!(last.as_slice().iter().all(|&b| b == 8));
    }
}
