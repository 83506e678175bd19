//! Large buffers backed by transparent huge pages.
//!
//! The dense passes of `cp-als` stream the whole tensor 1.5 times per
//! iteration. With 4 KB pages the hardware prefetchers stop at every page
//! boundary and each page costs a TLB walk; with 2 MB pages a pass at 200³
//! ran 10–15 % faster here (2 threads, `bench/RESULTS.md`, session 7).
//! Linux hands out huge pages for anonymous memory only where a program asks
//! (`/sys/kernel/mm/transparent_hugepage/enabled` is `madvise` on many
//! distributions), and only to pages not yet touched, so the advice is given
//! when the buffer is allocated, before it is filled.
//!
//! [`huge_vec`] is an empty vector with room for `capacity` values whose
//! memory carries that advice (on Linux, for buffers of at least
//! [`HUGE_MIN_BYTES`]); the caller fills it with `extend`/`resize`
//! (`collect` would allocate a new buffer). Elsewhere it is
//! `Vec::with_capacity`. The advice never changes the values, only how the
//! memory is mapped; a kernel without transparent huge pages ignores it.

/// Buffers smaller than this get no advice (a huge page is 2 MB; below a few
/// of them the gain is nil).
pub const HUGE_MIN_BYTES: usize = 8 << 20;

/// The size of a transparent huge page on x86-64 and most aarch64 kernels.
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 2 << 20;

/// An empty vector with room for `capacity` values, its memory advised for
/// transparent huge pages when it is large (see the module documentation).
pub fn huge_vec<T>(capacity: usize) -> Vec<T> {
    let v: Vec<T> = Vec::with_capacity(capacity);
    #[cfg(target_os = "linux")]
    {
        let bytes = capacity.saturating_mul(size_of::<T>());
        if bytes >= HUGE_MIN_BYTES {
            let start = v.as_ptr() as usize;
            // the whole huge pages inside the allocation
            let first = start.next_multiple_of(HUGE_PAGE);
            let end = (start + bytes) / HUGE_PAGE * HUGE_PAGE;
            if end > first {
                // SAFETY: `first..end` lies inside the allocation `v` owns;
                // MADV_HUGEPAGE only changes how its pages are backed, never
                // their contents, and a failure (no THP support) is harmless.
                let _ = unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) };
            }
        }
    }
    v
}

/// A vector of `len` zeros in memory from [`huge_vec`].
pub fn huge_zeros(len: usize) -> Vec<f64> {
    let mut v = huge_vec(len);
    v.resize(len, 0.0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_hold_what_is_written_whatever_their_size() {
        for len in [0, 1, 1000, HUGE_MIN_BYTES / 8 + 12345] {
            let mut v = huge_vec::<f64>(len);
            assert!(v.capacity() >= len && v.is_empty());
            v.extend((0..len).map(|i| i as f64));
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as f64));
            let z = huge_zeros(len);
            assert!(z.len() == len && z.iter().all(|&x| x == 0.0));
        }
    }

    /// On Linux with THP in `always` or `madvise` mode, a large buffer is
    /// actually backed by huge pages (the point of the module); skipped where
    /// the kernel offers none.
    #[cfg(target_os = "linux")]
    #[test]
    fn large_buffers_get_huge_pages_where_the_kernel_offers_them() {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        // and where a fault in advised memory may compact to find one (with
        // `defer` or `never` the kernel hands them out later, or not at all)
        let defrag = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/defrag").unwrap_or_default();
        let compacts = ["[always]", "[madvise]", "[defer+madvise]"].iter().any(|m| defrag.contains(m));
        if !(mode.contains("[always]") || mode.contains("[madvise]")) || !compacts {
            return;
        }
        let anon_huge = || -> Option<u64> {
            let s = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
            let line = s.lines().find(|l| l.starts_with("AnonHugePages:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        };
        let Some(before) = anon_huge() else { return };
        let z = huge_zeros(64 << 17); // 64 MB
        let after = anon_huge().unwrap_or(0);
        // other tests run in parallel and may free huge pages meanwhile, so
        // this only asks that some were handed out while `z` is alive
        assert!(after > 0, "no huge pages ({before} kB before, {after} kB after)");
        drop(z);
    }
}
