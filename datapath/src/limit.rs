//! A token bucket on the PMD's own millisecond clock, for the per-rx-queue
//! upcall rate limit: no syscall, no lock, no allocation per use.
//!
//! Tokens are kept in thousandths so that rates below one per millisecond
//! still refill smoothly (as OVS's `token_bucket` does).

/// Upcalls per second and burst a rx queue may use by default
/// (`other_config:upcall-rate`, `upcall-burst`). At ~1.5 µs an upcall,
/// 200k/s is a third of a core: one port's new flows cannot take a whole
/// PMD away from the others' established ones.
pub const DEFAULT_UPCALL_RATE: u32 = 200_000;
pub const DEFAULT_UPCALL_BURST: u32 = 20_000;

const MILLI: u64 = 1000;

/// A token bucket: `rate` tokens a second up to `burst`; rate 0 is unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    /// Tokens available, in thousandths.
    milli: u64,
    /// Clock (ms) of the last refill.
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at time `now_ms`.
    pub fn new(rate: u32, burst: u32, now_ms: u64) -> TokenBucket {
        let burst = u64::from(burst.max(1));
        TokenBucket {
            rate: u64::from(rate),
            burst,
            milli: burst * MILLI,
            last_ms: now_ms,
        }
    }

    /// Changes rate and burst, keeping the tokens left (capped at the new burst).
    pub fn set(&mut self, rate: u32, burst: u32) {
        self.rate = u64::from(rate);
        self.burst = u64::from(burst.max(1));
        self.milli = self.milli.min(self.burst * MILLI);
    }

    pub fn rate(&self) -> u32 {
        self.rate as u32
    }

    /// Whole tokens available now (after refilling to `now_ms`).
    pub fn available(&mut self, now_ms: u64) -> u64 {
        self.refill(now_ms);
        self.milli / MILLI
    }

    #[inline]
    fn refill(&mut self, now_ms: u64) {
        let dt = now_ms.saturating_sub(self.last_ms);
        if dt > 0 {
            let add = dt.saturating_mul(self.rate);
            self.milli = self.milli.saturating_add(add).min(self.burst * MILLI);
            self.last_ms = now_ms;
        }
    }

    /// Takes up to `n` tokens at once (all `n` when unlimited); returns how many.
    #[inline]
    pub fn take_up_to(&mut self, n: u32, now_ms: u64) -> u32 {
        if self.rate == 0 {
            return n;
        }
        self.refill(now_ms);
        let k = (self.milli / MILLI).min(u64::from(n));
        self.milli -= k * MILLI;
        k as u32
    }

    /// Returns `n` tokens taken and not used (capped at the burst).
    #[inline]
    pub fn put_back(&mut self, n: u32) {
        if self.rate != 0 {
            self.milli = (self.milli + u64::from(n) * MILLI).min(self.burst * MILLI);
        }
    }

    /// Takes one token if there is one (always, when unlimited).
    #[inline]
    pub fn take(&mut self, now_ms: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        self.refill(now_ms);
        if self.milli >= MILLI {
            self.milli -= MILLI;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_at_rate() {
        let mut b = TokenBucket::new(1000, 50, 10);
        // A full bucket lets exactly `burst` through at once.
        let passed = (0..200).filter(|_| b.take(10)).count();
        assert_eq!(passed, 50);
        // 1000/s is one a millisecond.
        assert!(b.take(11));
        assert!(!b.take(11));
        let passed = (0..200).filter(|_| b.take(21)).count();
        assert_eq!(passed, 10);
        // A long pause refills to the burst, not beyond.
        assert_eq!(b.available(100_000), 50);
    }

    #[test]
    fn batch_withdrawal_and_return() {
        let mut b = TokenBucket::new(1000, 10, 0);
        assert_eq!(b.take_up_to(32, 0), 10);
        assert_eq!(b.take_up_to(32, 0), 0);
        b.put_back(3);
        assert_eq!(b.available(0), 3);
        b.put_back(100);
        assert_eq!(b.available(0), 10, "never beyond the burst");
        let mut u = TokenBucket::new(0, 1, 0);
        assert_eq!(u.take_up_to(32, 0), 32, "unlimited");
    }

    #[test]
    fn slow_rates_refill_in_fractions() {
        // 250/s: one token every 4 ms, accumulated from thousandths.
        let mut b = TokenBucket::new(250, 1, 0);
        assert!(b.take(0));
        for t in 1..4 {
            assert!(!b.take(t), "at {t} ms");
        }
        assert!(b.take(4));
        assert!(!b.take(5));
    }

    #[test]
    fn unlimited_and_reconfigured() {
        let mut b = TokenBucket::new(0, 10, 0);
        assert!((0..10_000).all(|_| b.take(0)));
        b.set(100, 5);
        // Tokens kept across `set` are capped at the new burst.
        assert_eq!((0..100).filter(|_| b.take(0)).count(), 5);
        // The clock going backwards (a bucket older than the PMD's time) refills nothing.
        assert!(!b.take(0));
    }
}
