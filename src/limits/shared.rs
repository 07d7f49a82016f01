//! Limits shared by every replica through Redis: the same buckets and budgets as the
//! per-process ones, kept in Redis and changed only by two atomic server-side scripts, one
//! round trip to admit a request and one, off the request path, to settle it.
//!
//! Buckets refill on Redis's own clock (`TIME`), the one clock all replicas agree on; budget
//! windows are named by the day they start, so a new window is a new key and the old one
//! expires a day after it ends. A budget's key that does not exist yet starts from what the
//! rollups say the key spent in the window (the start-up seed), as the per-process one does.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use redis::Script;

use super::budget::{BudgetUnit, window_end, window_start};
use super::{Admission, LimitKind, Limits, Refusal, Reservation, Spend, lock};
use super::{BucketStatus, RateLimitStatus};
use crate::auth::ClientKey;
use crate::cluster::{Cluster, Invocation, Unavailable};

/// Refills a bucket (a hash of `level` and `ts`, in microseconds of Redis time) and returns
/// its level; a missing bucket is full. Shared by both scripts.
const REFILL: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function refill(key, limit)
  local stored = redis.call('HMGET', key, 'level', 'ts')
  local level, ts = tonumber(stored[1]), tonumber(stored[2])
  if level == nil or ts == nil then return limit end
  local elapsed = math.max(0, now - ts)
  return math.min(limit, level + elapsed * limit / 60000000)
end
local function store(key, level)
  redis.call('HSET', key, 'level', tostring(level), 'ts', tostring(now))
  redis.call('PEXPIRE', key, 120000)
end
";

/// KEYS: rpm bucket, tpm bucket, token budget, dollar budget. ARGV: rpm limit, tpm limit,
/// tokens asked, then for each budget (tokens, nano-dollars) its limit, its seed, its key's
/// lifetime in seconds (0: none) and the amount asked. A limit of -1 is absent.
/// Answers `{code, left, wait_us, rpm_level, tpm_level}`: code 0 admitted (everything
/// charged), 1 token budget, 2 dollar budget, 3 rpm, 4 tpm refused (nothing charged).
const ADMIT: &str = r"
local function budget(key, limit, seed, ttl)
  local used = redis.call('GET', key)
  if used then return tonumber(used) end
  if ttl > 0 then redis.call('SET', key, seed, 'EX', ttl) else redis.call('SET', key, seed) end
  return tonumber(seed)
end
local function wait(level, limit, amount)
  local needed = math.min(amount, limit)
  if level >= needed then return 0 end
  if limit <= 0 then return 60000000 end
  return math.ceil((needed - level) * 60000000 / limit)
end
local rpm_limit, tpm_limit, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 0, 1 do
  local limit = tonumber(ARGV[4 + i * 4])
  if limit >= 0 then
    local used = budget(KEYS[3 + i], limit, ARGV[5 + i * 4], tonumber(ARGV[6 + i * 4]))
    local asked = tonumber(ARGV[7 + i * 4])
    if used + asked > limit then
      return {1 + i, math.max(0, limit - used), 0, -1, -1}
    end
  end
end
local rpm, tpm = -1, -1
local code, delay = 0, 0
if rpm_limit >= 0 then
  rpm = refill(KEYS[1], rpm_limit)
  delay = wait(rpm, rpm_limit, 1)
  if delay > 0 then code = 3 end
end
if tpm_limit >= 0 then
  tpm = refill(KEYS[2], tpm_limit)
  local tpm_delay = wait(tpm, tpm_limit, tokens)
  if code == 0 and tpm_delay > 0 then code, delay = 4, tpm_delay end
end
if code ~= 0 then
  return {code, 0, delay, math.floor(rpm), math.floor(tpm)}
end
if rpm_limit >= 0 then rpm = rpm - 1; store(KEYS[1], rpm) end
if tpm_limit >= 0 then tpm = tpm - tokens; store(KEYS[2], tpm) end
for i = 0, 1 do
  if tonumber(ARGV[4 + i * 4]) >= 0 then redis.call('INCRBY', KEYS[3 + i], ARGV[7 + i * 4]) end
end
return {0, 0, 0, math.floor(rpm), math.floor(tpm)}
";

/// KEYS: tpm bucket, token budget, dollar budget. ARGV: tpm limit (-1: none), tokens
/// reserved from it, tokens used, then the change of each budget (used minus reserved, or
/// `none`). A budget whose key expired (its window ended) is left alone.
const SETTLE: &str = r"
local limit = tonumber(ARGV[1])
if limit >= 0 then
  local level = refill(KEYS[1], limit)
  store(KEYS[1], math.min(limit, level + tonumber(ARGV[2]) - tonumber(ARGV[3])))
end
for i = 0, 1 do
  if ARGV[4 + i] ~= 'none' and redis.call('EXISTS', KEYS[2 + i]) == 1 then
    redis.call('INCRBY', KEYS[2 + i], ARGV[4 + i])
  end
end
return 0
";

static ADMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&format!("{REFILL}{ADMIT}")));
static SETTLE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{REFILL}{SETTLE}")));

/// The Redis keys of one key's limits: its two buckets, and its two budgets in the window that
/// starts on `start`.
#[derive(Debug, Clone, Copy)]
struct RedisKeys {
    id: i64,
    start: NaiveDate,
}

impl RedisKeys {
    fn of(key: &ClientKey, now: DateTime<Utc>) -> Self {
        Self {
            id: key.id,
            start: window_start(key.budget_window, now.date_naive()),
        }
    }

    /// Adds the keys named in `which` to `call`, in that order, written in one buffer: the id
    /// and the window's date are formatted once (through `fmt`, a date costs hundreds of
    /// instructions, and this runs twice per request).
    fn add(self, call: &mut Invocation, which: &[RedisKey]) {
        let mut id = String::with_capacity(20);
        // Writing to a String cannot fail.
        let _ = write!(id, "{}", self.id);
        let mut date = String::with_capacity(10);
        push_digits(&mut date, u32::try_from(self.start.year()).unwrap_or(0), 4);
        date.push('-');
        push_digits(&mut date, self.start.month(), 2);
        date.push('-');
        push_digits(&mut date, self.start.day(), 2);
        let mut name = String::with_capacity(64);
        for key in which {
            let (kind, window) = match key {
                RedisKey::Rpm => ("rpm:", None),
                RedisKey::Tpm => ("tpm:", None),
                RedisKey::BudgetTokens => ("budget:", Some(":tokens:")),
                RedisKey::BudgetUsd => ("budget:", Some(":usd:")),
            };
            name.clear();
            name.push_str("llmgate:");
            name.push_str(kind);
            name.push_str(&id);
            if let Some(unit) = window {
                name.push_str(unit);
                name.push_str(&date);
            }
            call.arg(name.as_str());
        }
    }
}

/// Writes the last `width` decimal digits of `value`, zero-padded (a date's year, month, day).
fn push_digits(text: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10_u32.pow(place) % 10;
        text.push(char::from_digit(digit, 10).unwrap_or('0'));
    }
}

/// One of a key's limits in Redis (see [`RedisKeys`]).
#[derive(Debug, Clone, Copy)]
enum RedisKey {
    Rpm,
    Tpm,
    BudgetTokens,
    BudgetUsd,
}

/// A limit as the scripts read it: -1 when absent.
fn optional(limit: Option<u64>) -> i128 {
    limit.map_or(-1, i128::from)
}

/// A bucket's status from the level the script read (in units), for the headers.
fn bucket_status(limit: Option<u32>, level: i64) -> Option<BucketStatus> {
    let limit = u64::from(limit?);
    let missing = limit.saturating_sub(u64::try_from(level).unwrap_or(0));
    let reset = if limit == 0 {
        Duration::ZERO
    } else {
        Duration::from_micros(missing.saturating_mul(60_000_000).div_ceil(limit))
    };
    Some(BucketStatus {
        limit,
        remaining: u64::try_from(level).unwrap_or(0),
        reset,
    })
}

/// A shared reservation: what to give back or charge once the request's usage is known.
#[derive(Debug)]
pub(super) struct SharedReservation {
    cluster: Cluster,
    keys: RedisKeys,
    tpm: Option<u32>,
    /// Reserved from the TPM bucket and the token budget, and from the dollar budget.
    tokens: u64,
    budget_tokens: bool,
    spending: Option<u64>,
}

impl SharedReservation {
    pub(super) fn reserved(&self) -> u64 {
        self.tokens
    }

    /// Queues the settlement for the cluster's writer task (never on the request path).
    pub(super) fn settle(self, used: Spend) {
        let change = |reserved: u64, used: u64| i128::from(used) - i128::from(reserved);
        let mut call = Invocation::new(&SETTLE_SCRIPT, 3);
        self.keys.add(
            &mut call,
            &[RedisKey::Tpm, RedisKey::BudgetTokens, RedisKey::BudgetUsd],
        );
        call.arg(optional(self.tpm.map(u64::from)))
            .arg(self.tokens)
            .arg(used.tokens);
        if self.budget_tokens {
            call.arg(change(self.tokens, used.tokens));
        } else {
            call.arg("none");
        }
        match self.spending {
            Some(cost) => call.arg(change(cost, used.cost.0)),
            None => call.arg("none"),
        };
        self.cluster.eval_later(call);
    }
}

/// Admits `ask` for `key` in Redis: one round trip, which refuses without charging anything
/// or charges every limit at once.
pub(super) async fn admit(
    cluster: &Cluster,
    limits: &Limits,
    key: &ClientKey,
    ask: Spend,
) -> Result<Result<Admission, Refusal>, Unavailable> {
    let clock = &limits.inner.clock;
    let now = clock.now();
    let today = now.date_naive();
    let keys = RedisKeys::of(key, now);
    let ttl = window_end(key.budget_window, now)
        .map_or(0, |end| (end - now).num_seconds().max(0) + 86_400);
    let (token_seed, usd_seed) = {
        let seed = lock(&limits.inner.seed);
        (
            seed.spent(key.id, BudgetUnit::Tokens, key.budget_window, today),
            seed.spent(key.id, BudgetUnit::Nanodollars, key.budget_window, today),
        )
    };
    let budget_usd = key.budget_usd.map(|usd| usd.0);
    let mut call = Invocation::new(&ADMIT_SCRIPT, 4);
    keys.add(
        &mut call,
        &[
            RedisKey::Rpm,
            RedisKey::Tpm,
            RedisKey::BudgetTokens,
            RedisKey::BudgetUsd,
        ],
    );
    call.arg(optional(key.rpm.map(u64::from)))
        .arg(optional(key.tpm.map(u64::from)))
        .arg(ask.tokens)
        .arg(optional(key.budget_tokens))
        .arg(token_seed)
        .arg(ttl)
        .arg(ask.tokens)
        .arg(optional(budget_usd))
        .arg(usd_seed)
        .arg(ttl)
        .arg(ask.cost.0);
    let answer = cluster.eval(&call).await?;
    let [code, left, wait_us, rpm_level, tpm_level] = answer[..] else {
        return Err(Unavailable);
    };
    let status = RateLimitStatus {
        requests: bucket_status(key.rpm, rpm_level),
        tokens: bucket_status(key.tpm, tpm_level),
    };
    let resets_at = window_end(key.budget_window, now);
    let budget_refusal = |unit, budget: Option<u64>, requested| Refusal::BudgetExhausted {
        unit,
        budget: budget.unwrap_or(0),
        left: u64::try_from(left).unwrap_or(0),
        requested,
        resets_at,
        retry_after: resets_at.map(|at| (at - now).to_std().unwrap_or(Duration::ZERO)),
    };
    let rate_refusal = |kind| Refusal::RateLimited {
        kind,
        retry_after: Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)),
        requested: ask.tokens,
        status,
    };
    Ok(match code {
        0 => Ok(Admission {
            reservation: Some(Reservation::Shared(SharedReservation {
                cluster: cluster.clone(),
                keys,
                tpm: key.tpm,
                tokens: if key.tpm.is_some() || key.budget_tokens.is_some() {
                    ask.tokens
                } else {
                    0
                },
                budget_tokens: key.budget_tokens.is_some(),
                spending: budget_usd.map(|_| ask.cost.0),
            })),
            status,
        }),
        1 => Err(budget_refusal(
            BudgetUnit::Tokens,
            key.budget_tokens,
            ask.tokens,
        )),
        2 => Err(budget_refusal(
            BudgetUnit::Nanodollars,
            budget_usd,
            ask.cost.0,
        )),
        3 => Err(rate_refusal(LimitKind::Requests)),
        4 => Err(rate_refusal(LimitKind::Tokens)),
        _ => return Err(Unavailable),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_levels_read_back_as_headers() {
        let check = |limit, level, remaining, reset_ms| {
            assert_eq!(
                bucket_status(Some(limit), level),
                Some(BucketStatus {
                    limit: u64::from(limit),
                    remaining,
                    reset: Duration::from_millis(reset_ms),
                }),
                "limit {limit}, level {level}"
            );
        };
        check(60, 60, 60, 0);
        check(60, 59, 59, 1_000);
        // A level below zero (usage settled above its reservation) is debt: none remain.
        check(60, -6, 0, 60_000);
        check(600, 0, 0, 60_000);
        assert_eq!(bucket_status(None, 5), None);
    }

    /// The keys and arguments as Redis receives them, after `EVALSHA`, the hash and the count.
    fn arguments(call: &Invocation) -> Vec<String> {
        let packed = call.packed();
        let text = String::from_utf8(packed).unwrap();
        // RESP: `*N`, then `$len` and the bytes of each argument, each line ending in CRLF.
        text.split("\r\n")
            .skip(1)
            .collect::<Vec<_>>()
            .chunks(2)
            .filter(|pair| pair.len() == 2)
            .map(|pair| pair[1].to_owned())
            .skip(3)
            .collect()
    }

    #[test]
    fn budget_keys_are_named_by_their_window() {
        let now = DateTime::parse_from_rfc3339("2025-03-05T12:00:00Z")
            .unwrap()
            .to_utc();
        let all = [
            RedisKey::Rpm,
            RedisKey::Tpm,
            RedisKey::BudgetTokens,
            RedisKey::BudgetUsd,
        ];
        let mut key = crate::limits::tests::key(42);
        let mut call = Invocation::new(&ADMIT_SCRIPT, 4);
        RedisKeys::of(&key, now).add(&mut call, &all);
        assert_eq!(
            arguments(&call),
            [
                "llmgate:rpm:42",
                "llmgate:tpm:42",
                "llmgate:budget:42:tokens:1970-01-01",
                "llmgate:budget:42:usd:1970-01-01",
            ]
        );
        key.budget_window = Some(crate::vocab::BudgetWindow::Monthly);
        let mut call = Invocation::new(&SETTLE_SCRIPT, 1);
        RedisKeys::of(&key, now).add(&mut call, &[RedisKey::BudgetTokens]);
        call.arg(optional(None)).arg(7_u64).arg("none");
        assert_eq!(
            arguments(&call),
            ["llmgate:budget:42:tokens:2025-03-01", "-1", "7", "none"]
        );
    }
}
