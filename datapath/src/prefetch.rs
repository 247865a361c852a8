//! Cache-line prefetch hints, for loops that know their next misses a few
//! steps ahead (classifier lookups of a round, a vhost-user burst's guest
//! buffers). A prefetch never faults and changes no memory, whatever the
//! address: callers may pass pointers they have not validated.

/// Asks the CPU for the cache line at `p`, to be read.
#[inline(always)]
pub fn read<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults, whatever the address,
    // and changes no memory (SSE, which it needs, is part of x86_64).
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Asks the CPU for the cache line at `p`, to be written: PREFETCHW when
/// `has_write` (see [`has_write`]), a read prefetch otherwise.
#[inline(always)]
pub fn write<T>(p: *const T, has_write: bool) {
    #[cfg(target_arch = "x86_64")]
    if has_write {
        // SAFETY: as in `read`; the caller checked that the CPU has the
        // instruction (CPUID).
        unsafe {
            core::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
        }
        return;
    }
    let _ = has_write;
    read(p);
}

/// Hands to `f` the first and the last byte of `[p, p + len)` (`len` > 0):
/// a prefetch of the lines a short copy touches, one or two (asking twice
/// for one line costs an instruction, a test to avoid it two). A guest
/// buffer's header may sit alone at the end of a line the copy never
/// reads; a longer copy's middle lines are streamed.
#[inline(always)]
pub fn ends(p: *const u8, len: usize, f: impl Fn(*const u8)) {
    f(p);
    f(p.wrapping_add(len.wrapping_sub(1)));
}

/// Whether the CPU has PREFETCHW (CPUID 0x8000_0001, ECX bit 8; std's
/// feature detection does not know it); asked once.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn has_write() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    static KNOWN: AtomicU8 = AtomicU8::new(0);
    match KNOWN.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            // Leaf 0x8000_0001 exists on every x86_64 CPU.
            let ecx = core::arch::x86_64::__cpuid(0x8000_0001).ecx;
            let has = ecx & (1 << 8) != 0;
            KNOWN.store(if has { 2 } else { 1 }, Ordering::Relaxed);
            has
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub fn has_write() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// The lines `ends` gives for `[off, off + len)` of a line-aligned
    /// buffer, as line numbers.
    fn lines_of(off: usize, len: usize) -> Vec<usize> {
        let buf = vec![0u8; 1024];
        let aligned = (buf.as_ptr() as usize + 63) & !63;
        let got = RefCell::new(Vec::new());
        ends(
            buf.as_ptr()
                .wrapping_add(aligned - buf.as_ptr() as usize + off),
            len,
            |l| got.borrow_mut().push((l as usize - aligned) / 64),
        );
        let mut v = got.into_inner();
        v.dedup();
        v
    }

    #[test]
    fn ends_gives_the_first_and_last_line_of_a_span() {
        // A 64-byte frame after a 12-byte header that ends its line: one line.
        assert_eq!(lines_of(128, 64), vec![2]);
        // Header and frame together: two lines.
        assert_eq!(lines_of(116, 76), vec![1, 2]);
        // A frame starting at its line: one line for 64 bytes, two for 65.
        assert_eq!(lines_of(0, 64), vec![0]);
        assert_eq!(lines_of(0, 65), vec![0, 1]);
        // A long span: its two ends.
        assert_eq!(lines_of(10, 1000), vec![0, 15]);
    }
}
