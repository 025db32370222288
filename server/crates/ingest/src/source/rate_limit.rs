//! A shared request-rate limit: every request to BSE, from any job and any retry, takes the next
//! free slot, so `--jobs` raises concurrency without raising the load on BSE.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Spaces requests at least `1 / rate` seconds apart.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` requests per second (must be positive).
    #[must_use]
    pub fn new(per_second: f64) -> Self {
        Self { interval: Duration::from_secs_f64(1.0 / per_second.max(1e-3)), next: Mutex::new(None) }
    }

    /// Waits for the caller's slot.
    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spaces_requests() {
        let rl = RateLimiter::new(50.0);
        let start = Instant::now();
        for _ in 0..5 {
            rl.acquire().await;
        }
        // Slots at 0, 20, 40, 60 and 80 ms: the fifth cannot start before 80 ms.
        assert!(start.elapsed() >= Duration::from_millis(80), "{:?}", start.elapsed());
    }
}
