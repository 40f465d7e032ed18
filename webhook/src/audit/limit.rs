//! A client-side bound on the audit's API requests (`--qps`, `--burst`): a token
//! bucket every list, get and report write takes a token from, so that a scan of a
//! large cluster cannot flood the API server it shares with admission. Watches hold
//! one long request each and are not counted.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests per second, with bursts of `burst`; `qps` 0 lifts the bound.
pub struct RateLimit {
    qps: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    pub fn new(qps: f64, burst: u32) -> RateLimit {
        let burst = f64::from(burst.max(1));
        RateLimit {
            qps,
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                at: Instant::now(),
            }),
        }
    }

    /// How long the next request must wait (and takes its token), at `now`.
    fn reserve(&self, now: Instant) -> Duration {
        if self.qps <= 0.0 {
            return Duration::ZERO;
        }
        // Updating two numbers cannot leave the bucket inconsistent.
        let mut bucket = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.qps).min(self.burst);
        bucket.at = now;
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / self.qps)
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_requests_are_spaced_at_the_rate() {
        let limit = RateLimit::new(10.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limit.reserve(t0), Duration::ZERO);
        }
        // The fourth at the same instant waits one interval, the fifth two.
        assert_eq!(limit.reserve(t0), Duration::from_millis(100));
        assert_eq!(limit.reserve(t0), Duration::from_millis(200));
        // A second later the bucket has refilled to its burst only.
        let later = t0 + Duration::from_secs(10);
        for _ in 0..3 {
            assert_eq!(limit.reserve(later), Duration::ZERO);
        }
        assert!(limit.reserve(later) > Duration::ZERO);
    }

    #[test]
    fn zero_qps_lifts_the_bound() {
        let limit = RateLimit::new(0.0, 1);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(limit.reserve(t0), Duration::ZERO);
        }
    }
}
