//! Where the engine reads the time (docs/adr-006-engine-clock.md).
//!
//! Two times: the wall clock, for the timestamps of records and events, comes from the
//! injected [`Clock`]; the monotonic time of timers and deadlines is tokio's
//! (`tokio::time::Instant`, `sleep_until`), which tokio's test utilities pause and advance.
//! [`VirtualClock`] derives its wall time from tokio's instant, so under a paused runtime
//! (`#[tokio::test(start_paused = true)]`) both move together: an hour-long timeout fires at
//! once and its events are stamped an hour later.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The engine's wall clock.
pub trait Clock: Send + Sync + 'static {
    /// Microseconds since the Unix epoch.
    fn now_us(&self) -> i64;
}

impl std::fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock(now_us={})", self.now_us())
    }
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> i64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
    }
}

/// A wall clock that follows tokio's time (tests): it starts at a given instant and advances
/// exactly as far as tokio's clock does, so it is virtual under a paused runtime. Create it
/// inside the runtime whose time it follows.
#[derive(Debug, Clone, Copy)]
pub struct VirtualClock {
    start_us: i64,
    anchor: tokio::time::Instant,
}

impl VirtualClock {
    /// Starts at `start_us` microseconds since the Unix epoch.
    pub fn starting_at(start_us: i64) -> Self {
        Self {
            start_us,
            anchor: tokio::time::Instant::now(),
        }
    }

    /// Starts at the system's time now.
    pub fn new() -> Self {
        Self::starting_at(SystemClock.now_us())
    }

    /// How far tokio's clock moved since this clock was created.
    pub fn elapsed(&self) -> Duration {
        tokio::time::Instant::now().duration_since(self.anchor)
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for VirtualClock {
    fn now_us(&self) -> i64 {
        self.start_us
            .saturating_add(i64::try_from(self.elapsed().as_micros()).unwrap_or(i64::MAX))
    }
}

/// The system clock, shared.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_virtual_clock_moves_with_paused_tokio_time() {
        let c = VirtualClock::starting_at(1_000_000);
        assert_eq!(c.now_us(), 1_000_000);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(c.now_us(), 1_000_000 + 3_600_000_000);
    }
}
