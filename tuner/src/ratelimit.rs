//! A token bucket for hint writes.

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_s: f64,
    burst: f64,
    tokens: f64,
    last_ms: Option<u64>,
}

impl TokenBucket {
    pub fn new(rate_per_s: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate_per_s: f64::from(rate_per_s.max(1)),
            burst,
            tokens: burst,
            last_ms: None,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now_ms: u64) -> bool {
        self.try_take_n(now_ms, 1)
    }

    /// Takes `n` tokens at once, or none when fewer are there. More than the burst is
    /// charged as the burst: the bucket never holds more, and a request that could never be
    /// granted would wait forever.
    pub fn try_take_n(&mut self, now_ms: u64, n: usize) -> bool {
        if let Some(last) = self.last_ms {
            let dt = now_ms.saturating_sub(last) as f64 / 1000.0;
            self.tokens = (self.tokens + dt * self.rate_per_s).min(self.burst);
        }
        self.last_ms = Some(now_ms);
        let cost = (n as f64).min(self.burst);
        if self.tokens >= cost {
            self.tokens -= cost;
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
    fn burst_then_rate() {
        let mut b = TokenBucket::new(10, 3);
        assert_eq!((0..5).filter(|_| b.try_take(0)).count(), 3);
        // 100 ms at 10/s refill one token.
        assert!(b.try_take(100));
        assert!(!b.try_take(100));
        // A long pause refills only up to the burst.
        assert_eq!((0..10).filter(|_| b.try_take(60_000)).count(), 3);
    }

    #[test]
    fn a_request_takes_all_its_tokens_or_none() {
        let mut b = TokenBucket::new(10, 5);
        assert!(b.try_take_n(0, 3));
        // Two left: a request for three takes nothing, and the two stay.
        assert!(!b.try_take_n(0, 3));
        assert!(b.try_take_n(0, 2));
        // A request larger than the burst costs the burst, once the bucket is full again.
        assert!(!b.try_take_n(400, 1000));
        assert!(b.try_take_n(500, 1000));
        assert!(!b.try_take(500));
    }
}
