//! Token buckets holding a per-minute allowance, and the `x-ratelimit-*` headers describing them.

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

    /// The `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers, in that order.
    pub fn header_pairs(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut pairs = Vec::with_capacity(6);
        self.each_header(|name, value| pairs.push((name.clone(), value)));
        pairs
    }

    /// Adds the headers to `headers`, replacing any of the same name (an upstream's own).
    pub fn apply(&self, headers: &mut HeaderMap) {
        self.each_header(|name, value| {
            headers.insert(name.clone(), value);
        });
    }

    /// Hands each header to `put`, in the order of [`Self::header_pairs`]. Written out rather
    /// than as an iterator chain, and the resets formatted on the stack without `fmt`: on every
    /// response of a key with limits, the chain and the formatting machinery cost more than the
    /// six headers themselves (callgrind, OPTIMIZATION.md).
    fn each_header(&self, mut put: impl FnMut(&HeaderName, HeaderValue)) {
        for (status, [limit, remaining, reset]) in [
            (self.requests, &REQUEST_HEADERS),
            (self.tokens, &TOKEN_HEADERS),
        ] {
            if let Some(status) = status {
                // http's integer values write two digits at a time from a table: cheaper than
                // `StackText`'s digit by digit, allocation included (callgrind).
                put(limit, HeaderValue::from(status.limit));
                put(remaining, HeaderValue::from(status.remaining));
                let mut text = StackText::default();
                write_reset(&mut text, status.reset);
                put(reset, text.to_value());
            }
        }
    }
}

/// A duration the way OpenAI's reset headers write it (Go's format): `250ms`, `1s`, `1.5s`,
/// `6m0s`, `1h2m3s`. Rounded up to the millisecond.
pub fn format_reset(duration: Duration) -> String {
    let mut text = StackText::default();
    write_reset(&mut text, duration);
    String::from_utf8_lossy(text.as_bytes()).into_owned()
}

/// [`format_reset`] into `out`.
fn write_reset(out: &mut StackText, duration: Duration) {
    let ms = duration.as_nanos().div_ceil(1_000_000);
    if ms == 0 {
        out.push_str("0s");
        return;
    }
    if ms < 1000 {
        out.push_number(u64::try_from(ms).unwrap_or_default());
        out.push_str("ms");
        return;
    }
    // In u64 arithmetic, several times cheaper than u128's: only a reset beyond 584 million
    // years needs the hours divided in u128 (`Duration::MAX` has 5.1e15 of them).
    let (hours, rest) = match u64::try_from(ms) {
        Ok(ms) => (ms / 3_600_000, ms % 3_600_000),
        Err(_) => (
            u64::try_from(ms / 3_600_000).unwrap_or(u64::MAX),
            u64::try_from(ms % 3_600_000).unwrap_or_default(),
        ),
    };
    let minutes = rest / 60_000;
    let seconds = rest / 1000 % 60;
    let millis = rest % 1000;
    if hours > 0 {
        out.push_number(hours);
        out.push_str("h");
    }
    if hours > 0 || minutes > 0 {
        out.push_number(minutes);
        out.push_str("m");
    }
    out.push_number(seconds);
    if millis > 0 {
        // Three digits, then without the trailing zeros: `.5`, `.25`, `.004`.
        let digits = [millis / 100, millis / 10 % 10, millis % 10];
        let kept = if digits[2] != 0 {
            3
        } else if digits[1] != 0 {
            2
        } else {
            1
        };
        out.push_str(".");
        for digit in &digits[..kept] {
            out.push_digit(*digit);
        }
    }
    out.push_str("s");
}

/// A short ASCII text built on the stack: a reset is at most 27 bytes (`Duration::MAX` has 16
/// digits of hours).
struct StackText {
    bytes: [u8; 40],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        Self {
            bytes: [0; 40],
            len: 0,
        }
    }
}

impl StackText {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The text as a header value, copied once.
    fn to_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(self.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static("0"))
    }

    fn push_str(&mut self, text: &str) {
        for &byte in text.as_bytes() {
            if let Some(slot) = self.bytes.get_mut(self.len) {
                *slot = byte;
                self.len += 1;
            }
        }
    }

    fn push_digit(&mut self, digit: u64) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            // A digit is below ten.
            *slot = b'0' + (digit % 10) as u8;
            self.len += 1;
        }
    }

    fn push_number(&mut self, mut number: u64) {
        let mut reversed = [0u8; 20];
        let mut count = 0;
        loop {
            reversed[count] = (number % 10) as u8;
            count += 1;
            number /= 10;
            if number == 0 {
                break;
            }
        }
        for &digit in reversed[..count].iter().rev() {
            self.push_digit(u64::from(digit));
        }
    }
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
        check(1010, "1.01s");
        check(59_999, "59.999s");
        check(86_400_000, "24h0m0s");
        assert_eq!(format_reset(Duration::from_nanos(1)), "1ms");
        assert_eq!(format_reset(Duration::MAX), "5124095576030431h0m16s");
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
