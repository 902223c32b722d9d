//! Flood control: a token bucket per connection, as ergo's "fakelag".
//!
//! A client may send `burst` lines at once, then `rate` lines per second. Past that the
//! session does not drop anything: it reads the client's next line later, so a paste
//! arrives whole and in order, only slower, and only the flooder is slowed. Meanwhile
//! the session keeps delivering events to the flooder.

use tokio::time::{Duration, Instant};

/// Tokens for lines, refilled continuously.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    /// Most tokens held: the burst.
    burst: f64,
    /// Tokens added per second.
    rate: f64,
    /// Tokens now (as of `last`).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Instant,
}

impl TokenBucket {
    /// A full bucket, or `None` when flood control is off (`rate` 0).
    pub(crate) fn new(burst: usize, rate: f64, now: Instant) -> Option<TokenBucket> {
        if rate <= 0.0 {
            return None;
        }
        let burst = burst.max(1) as f64;
        Some(TokenBucket {
            burst,
            rate,
            tokens: burst,
            last: now,
        })
    }

    /// Spends a token on a line just read. Returns when the next line may be read, or
    /// `None` if it may be read now.
    pub(crate) fn take(&mut self, now: Instant) -> Option<Instant> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 1.0 {
            None
        } else {
            Some(now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(5, 2.0, t0).unwrap();
        for _ in 0..4 {
            assert_eq!(bucket.take(t0), None, "the burst is free");
        }
        // The fifth line empties the bucket: the next may come after half a second.
        let next = bucket.take(t0).unwrap();
        assert_eq!(next - t0, Duration::from_millis(500));
        // Reading exactly then, each further line waits another half second.
        let after = bucket.take(next).unwrap();
        assert_eq!(after - next, Duration::from_millis(500));
    }

    #[test]
    fn refills_up_to_the_burst_only() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(3, 10.0, t0).unwrap();
        let later = t0 + Duration::from_secs(60);
        for _ in 0..2 {
            assert_eq!(bucket.take(later), None);
        }
        assert!(
            bucket.take(later).is_some(),
            "a long pause earns no more than the burst"
        );
    }

    #[test]
    fn rate_zero_is_off() {
        assert!(TokenBucket::new(5, 0.0, Instant::now()).is_none());
    }
}
