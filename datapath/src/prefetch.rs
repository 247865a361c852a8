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
