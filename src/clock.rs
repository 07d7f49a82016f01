//! The time behaviour is measured in (rate limits, budget windows, cooldowns, circuits): the
//! system clocks, or a manual clock tests move by hand. `limits` and `routing::health` take
//! the one `Clock` the app was built with, so a test advances it instead of sleeping.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// A monotonic clock (token buckets, cooldowns, circuits) and a calendar clock (budget windows).
#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    Manual(Arc<ManualClock>),
}

/// A clock that stands still until [`advance`](Self::advance)d; both readings move together.
#[derive(Debug)]
pub struct ManualClock {
    nanos: AtomicU64,
    unix_ms: AtomicI64,
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
        self.unix_ms.fetch_add(
            i64::try_from(by.as_millis()).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
    }
}

impl Clock {
    /// A manual clock starting at `now`, and its handle.
    pub fn manual(now: DateTime<Utc>) -> (Self, Arc<ManualClock>) {
        let handle = Arc::new(ManualClock {
            nanos: AtomicU64::new(0),
            unix_ms: AtomicI64::new(now.timestamp_millis()),
        });
        (Self::Manual(handle.clone()), handle)
    }

    /// Nanoseconds on a monotonic clock (since an arbitrary start).
    pub fn monotonic_nanos(&self) -> u64 {
        match self {
            Self::System => {
                static START: OnceLock<Instant> = OnceLock::new();
                let elapsed = START.get_or_init(Instant::now).elapsed();
                u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
            }
            Self::Manual(clock) => clock.nanos.load(Ordering::Relaxed),
        }
    }

    /// The calendar time.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now(),
            Self::Manual(clock) => {
                DateTime::from_timestamp_millis(clock.unix_ms.load(Ordering::Relaxed))
                    .unwrap_or_default()
            }
        }
    }

    /// Unix seconds.
    pub fn unix_seconds(&self) -> i64 {
        match self {
            Self::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            Self::Manual(clock) => clock.unix_ms.load(Ordering::Relaxed).div_euclid(1000),
        }
    }
}
