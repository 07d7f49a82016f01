//! Token buckets holding a per-minute allowance, and the `x-ratelimit-*` headers describing them.

use std::fmt::Write as _;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

const NANOS_PER_MINUTE: f64 = 60e9;

/// A bucket of `limit` units refilled continuously at `limit` per minute. Its level may go below
/// zero when usage settles above its reservation; that debt refills like any other.
#[derive(Debug, Clone)]
pub(super) struct Bucket {
    limit: u64,
    level: f64,
    updated: u64,
}

impl Bucket {
    /// A full bucket.
    pub fn new(limit: u64, now: u64) -> Self {
        Self {
            limit,
            level: limit as f64,
            updated: now,
        }
    }

    /// Changes the limit, keeping what was used.
    pub fn set_limit(&mut self, limit: u64, now: u64) {
        if limit != self.limit {
            self.refill(now);
            let used = self.limit as f64 - self.level;
            self.limit = limit;
            self.level = (limit as f64 - used).min(limit as f64);
        }
    }

    fn per_nano(&self) -> f64 {
        self.limit as f64 / NANOS_PER_MINUTE
    }

    pub fn refill(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.updated);
        self.updated = self.updated.max(now);
        self.level = (self.level + elapsed as f64 * self.per_nano()).min(self.limit as f64);
    }

    /// How long until `amount` units are available (zero when they are). An amount above the
    /// limit waits for a full bucket, so a large request is slow, not impossible.
    pub fn wait_for(&self, amount: u64) -> Duration {
        let needed = amount.min(self.limit) as f64;
        if self.level >= needed {
            return Duration::ZERO;
        }
        Duration::from_nanos(((needed - self.level) / self.per_nano()).ceil() as u64)
    }

    pub fn take(&mut self, amount: u64) {
        self.level -= amount as f64;
    }

    /// Gives back `amount` (a refund), never above the limit.
    pub fn give(&mut self, amount: u64) {
        self.level = (self.level + amount as f64).min(self.limit as f64);
    }

    pub fn status(&self) -> BucketStatus {
        let missing = self.limit as f64 - self.level;
        BucketStatus {
            limit: self.limit,
            remaining: self.level.max(0.0).floor() as u64,
            reset: Duration::from_nanos((missing.max(0.0) / self.per_nano()).ceil() as u64),
        }
    }
}

/// One limit as OpenAI's headers describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketStatus {
    pub limit: u64,
    pub remaining: u64,
    /// Until the bucket is full again.
    pub reset: Duration,
}

/// A key's request and token limits, for the `x-ratelimit-*` headers of every response (and of
/// the 429 refusing it). A limit the key does not have is `None`, and sends no headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitStatus {
    pub requests: Option<BucketStatus>,
    pub tokens: Option<BucketStatus>,
}

const REQUEST_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit-requests"),
    HeaderName::from_static("x-ratelimit-remaining-requests"),
    HeaderName::from_static("x-ratelimit-reset-requests"),
];
const TOKEN_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit-tokens"),
    HeaderName::from_static("x-ratelimit-remaining-tokens"),
    HeaderName::from_static("x-ratelimit-reset-tokens"),
];

impl RateLimitStatus {
    pub fn is_empty(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }

    /// The `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers, in that order,
    /// made as they are consumed.
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> {
        [
            (self.requests, REQUEST_HEADERS),
            (self.tokens, TOKEN_HEADERS),
        ]
        .into_iter()
        .filter_map(|(status, names)| Some((status?, names)))
        .flat_map(|(status, [limit, remaining, reset])| {
            let reset_value = HeaderValue::from_str(&format_reset(status.reset))
                .unwrap_or_else(|_| HeaderValue::from_static("0s"));
            [
                (limit, HeaderValue::from(status.limit)),
                (remaining, HeaderValue::from(status.remaining)),
                (reset, reset_value),
            ]
        })
    }

    /// [`Self::headers`], collected.
    pub fn header_pairs(&self) -> Vec<(HeaderName, HeaderValue)> {
        self.headers().collect()
    }

    /// Adds the headers to `headers`, replacing any of the same name (an upstream's own).
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.reserve(6);
        for (name, value) in self.headers() {
            headers.insert(name, value);
        }
    }
}

/// A duration the way OpenAI's reset headers write it (Go's format): `250ms`, `1s`, `1.5s`,
/// `6m0s`, `1h2m3s`. Rounded up to the millisecond.
pub fn format_reset(duration: Duration) -> String {
    let ms = duration.as_nanos().div_ceil(1_000_000);
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let hours = ms / 3_600_000;
    let minutes = ms / 60_000 % 60;
    let seconds = ms / 1000 % 60;
    let millis = ms % 1000;
    // Writing into a String cannot fail; one buffer for the whole value.
    let mut out = String::with_capacity(16);
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{seconds}");
    if millis > 0 {
        let _ = write!(out, ".{millis:03}");
        out.truncate(out.trim_end_matches('0').len());
    }
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn resets_are_written_like_openai() {
        let check = |ms: u64, expected: &str| {
            assert_eq!(format_reset(Duration::from_millis(ms)), expected, "{ms}");
        };
        check(0, "0s");
        check(20, "20ms");
        check(999, "999ms");
        check(1000, "1s");
        check(1500, "1.5s");
        check(6 * 60_000, "6m0s");
        check(61_250, "1m1.25s");
        check(3_600_000, "1h0m0s");
        check(3_723_004, "1h2m3.004s");
        assert_eq!(format_reset(Duration::from_nanos(1)), "1ms");
    }

    #[test]
    fn buckets_refill_continuously_and_report_their_state() {
        let mut bucket = Bucket::new(60, 0);
        assert_eq!(bucket.wait_for(1), Duration::ZERO);
        for _ in 0..60 {
            bucket.take(1);
        }
        assert_eq!(bucket.wait_for(1), Duration::from_secs(1));
        assert_eq!(
            bucket.status(),
            BucketStatus {
                limit: 60,
                remaining: 0,
                reset: Duration::from_secs(60)
            }
        );
        bucket.refill(SECOND / 2);
        assert_eq!(bucket.wait_for(1), Duration::from_millis(500));
        bucket.refill(30 * SECOND);
        assert_eq!(bucket.status().remaining, 30);
        bucket.refill(600 * SECOND);
        assert_eq!(bucket.status().remaining, 60);
        // More than the limit waits for a full bucket, not forever.
        bucket.take(45);
        assert_eq!(bucket.wait_for(1000), Duration::from_secs(45));
        // Debt refills like anything else.
        bucket.take(75);
        assert_eq!(bucket.wait_for(1), Duration::from_secs(61));
        bucket.give(1000);
        assert_eq!(bucket.status().remaining, 60);
    }

    #[test]
    fn a_new_limit_keeps_what_was_used() {
        let mut bucket = Bucket::new(100, 0);
        bucket.take(40);
        bucket.set_limit(50, 0);
        assert_eq!(bucket.status().remaining, 10);
        bucket.set_limit(200, 0);
        assert_eq!(bucket.status().remaining, 160);
    }

    #[test]
    fn headers_are_sent_for_the_limits_a_key_has() {
        let status = RateLimitStatus {
            requests: Some(BucketStatus {
                limit: 60,
                remaining: 59,
                reset: Duration::from_secs(1),
            }),
            tokens: None,
        };
        let pairs: Vec<(String, String)> = status
            .header_pairs()
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("x-ratelimit-limit-requests".into(), "60".into()),
                ("x-ratelimit-remaining-requests".into(), "59".into()),
                ("x-ratelimit-reset-requests".into(), "1s".into()),
            ]
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-ratelimit-limit-requests",
            HeaderValue::from_static("9999"),
        );
        status.apply(&mut headers);
        assert_eq!(headers["x-ratelimit-limit-requests"], "60");
        assert!(RateLimitStatus::default().header_pairs().is_empty());
    }
}
