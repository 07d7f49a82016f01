//! Usage reports for operators: totals over the daily rollups (`GET /admin/usage`) and pages of
//! the request log (`GET /admin/logs`), with their query strings read into plain types.

use chrono::{DateTime, Days, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

use super::{Admin, AdminError, DEFAULT_PAGE, List, MAX_PAGE};
use crate::db::{LogQuery, LogRow, UsageCounts, UsageGroup, UsageQuery, UsageTotals};
use crate::pricing::Nanodollars;

/// A `from` or `to` value: a UTC day (`2025-01-31`) or an instant (RFC 3339).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Day(NaiveDate),
    Instant(DateTime<Utc>),
}

impl Bound {
    fn parse(param: &'static str, value: &str) -> Result<Self, AdminError> {
        let value = value.trim();
        if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
            return Ok(Self::Day(day));
        }
        DateTime::parse_from_rfc3339(value)
            .map(|time| Self::Instant(time.to_utc()))
            .map_err(|_| {
                AdminError::invalid(
                    param,
                    format!(
                        "'{value}' is not a date or a time; write a UTC day like 2025-01-31 or an \
                         RFC 3339 time like 2025-01-31T12:00:00Z"
                    ),
                )
            })
    }

    /// The UTC day it falls on.
    fn day(self) -> NaiveDate {
        match self {
            Self::Day(day) => day,
            Self::Instant(time) => time.date_naive(),
        }
    }

    /// The first Unix millisecond it covers.
    fn first_ms(self) -> Option<i64> {
        match self {
            Self::Day(day) => Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis()),
            Self::Instant(time) => Some(time.timestamp_millis()),
        }
    }

    /// The Unix millisecond just after the last one it covers: a day covers all of itself.
    fn end_ms(self) -> Option<i64> {
        match self {
            Self::Day(day) => Some(
                day.checked_add_days(Days::new(1))?
                    .and_hms_opt(0, 0, 0)?
                    .and_utc()
                    .timestamp_millis(),
            ),
            Self::Instant(time) => time.timestamp_millis().checked_add(1),
        }
    }
}

/// The parameters of a query string, each one of `known` and given at most once.
fn read_params(
    query: Option<&str>,
    known: &[&'static str],
) -> Result<Vec<(&'static str, String)>, AdminError> {
    let mut found: Vec<(&'static str, String)> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let Some(param) = known.iter().copied().find(|known| *known == name) else {
            return Err(AdminError::invalid(
                name.into_owned(),
                format!(
                    "unknown query parameter; this endpoint takes: {}",
                    known.join(", ")
                ),
            ));
        };
        if found.iter().any(|(seen, _)| *seen == param) {
            return Err(AdminError::invalid(
                param,
                "given more than once; give it once (group_by takes a comma-separated list)",
            ));
        }
        found.push((param, value.into_owned()));
    }
    Ok(found)
}

/// `from <= to`, or a 400 naming `from`.
fn check_order(from: NaiveDate, to: NaiveDate) -> Result<(), AdminError> {
    if from > to {
        return Err(AdminError::invalid(
            "from",
            format!("{from} is after to ({to}); give from no later than to"),
        ));
    }
    Ok(())
}

/// `GET /admin/usage`: the days `from..=to` (UTC) and the groups to total them by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRequest {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group_by: Vec<UsageGroup>,
}

impl UsageRequest {
    /// Reads `?from=&to=&group_by=`. Rollups are daily, so a time counts as its UTC day. `to`
    /// defaults to `today`, `from` to `to`; `group_by` is a comma-separated subset of `key`,
    /// `model`, `account` and `day` (none: one line of totals).
    pub fn parse(query: Option<&str>, today: NaiveDate) -> Result<Self, AdminError> {
        let mut from = None;
        let mut to = None;
        let mut group_by = Vec::new();
        for (param, value) in read_params(query, &["from", "to", "group_by"])? {
            match param {
                "from" => from = Some(Bound::parse(param, &value)?.day()),
                "to" => to = Some(Bound::parse(param, &value)?.day()),
                _ => {
                    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        let group = UsageGroup::parse(name).ok_or_else(|| {
                            AdminError::invalid(
                                "group_by",
                                format!(
                                    "cannot group by '{name}'; use any of key, model, account, day, \
                                     separated by commas"
                                ),
                            )
                        })?;
                        if !group_by.contains(&group) {
                            group_by.push(group);
                        }
                    }
                }
            }
        }
        let to = to.unwrap_or(today);
        let from = from.unwrap_or(to);
        check_order(from, to)?;
        Ok(Self { from, to, group_by })
    }
}

/// The answer of `GET /admin/usage`: `{"from", "to", "group_by", "data": [...]}`.
#[derive(Debug, Serialize)]
pub struct UsageReport {
    pub from: String,
    pub to: String,
    pub group_by: Vec<&'static str>,
    pub data: Vec<UsageLine>,
}

/// One line of totals. Only the grouped fields appear: `day`; `key` (its name, `null` once the
/// key is deleted) and `key_id`; `model`; `account`, `account_id` and the account's `provider`
/// (all `null` for requests that reached no account).
#[derive(Debug, Serialize)]
pub struct UsageLine {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Option<String>>,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The counters of a line: requests, errors (status 400 and up), tokens by kind, and cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Counts {
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub reasoning_tokens: i64,
    /// Requests whose tokens llmgate counted itself because the upstream reported none.
    pub estimated_requests: i64,
    /// USD at the prices of the routes that served the requests (summed exactly in
    /// nano-dollars, shown as a number).
    pub cost_usd: f64,
    /// The part of `cost_usd` computed from estimated usage.
    pub estimated_cost_usd: f64,
}

/// Stored nano-dollars as USD.
fn usd(nanos: i64) -> f64 {
    Nanodollars(u64::try_from(nanos).unwrap_or(0)).usd()
}

impl From<UsageCounts> for Counts {
    fn from(counts: UsageCounts) -> Self {
        Self {
            requests: counts.requests,
            errors: counts.errors,
            prompt_tokens: counts.prompt_tokens,
            completion_tokens: counts.completion_tokens,
            cached_tokens: counts.cached_tokens,
            reasoning_tokens: counts.reasoning_tokens,
            estimated_requests: counts.estimated_requests,
            cost_usd: usd(counts.cost_nanos),
            estimated_cost_usd: usd(counts.estimated_cost_nanos),
        }
    }
}

impl UsageLine {
    fn new(totals: UsageTotals, group_by: &[UsageGroup]) -> Self {
        let grouped = |group| group_by.contains(&group);
        let by_key = grouped(UsageGroup::Key);
        let by_account = grouped(UsageGroup::Account);
        Self {
            day: totals.day.filter(|_| grouped(UsageGroup::Day)),
            key: by_key.then_some(totals.key_name),
            key_id: by_key.then_some(totals.key_id),
            model: totals.model.filter(|_| grouped(UsageGroup::Model)),
            account: by_account.then_some(totals.account_name),
            account_id: by_account.then_some(totals.account_id),
            provider: by_account.then_some(totals.provider_name),
            counts: totals.counts.into(),
        }
    }
}

/// `GET /admin/logs`: filters and page of the request log. `key` is resolved to an id by
/// [`Admin::logs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    /// A key's name or id.
    pub key: Option<String>,
    pub model: Option<String>,
    pub status: Option<u16>,
    /// Unix milliseconds, inclusive.
    pub from_ms: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub to_ms: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    pub limit: u32,
}

impl LogRequest {
    /// Reads `?key=&model=&status=&from=&to=&limit=&cursor=`. `from` and `to` are inclusive:
    /// a day covers all of itself, a time its millisecond.
    pub fn parse(query: Option<&str>) -> Result<Self, AdminError> {
        let mut request = Self {
            key: None,
            model: None,
            status: None,
            from_ms: None,
            to_ms: None,
            cursor: None,
            limit: DEFAULT_PAGE,
        };
        let mut bounds = (None, None);
        let known = ["key", "model", "status", "from", "to", "limit", "cursor"];
        for (param, value) in read_params(query, &known)? {
            let not_empty = |value: String| {
                let value = value.trim().to_owned();
                if value.is_empty() {
                    Err(AdminError::invalid(
                        param,
                        "must not be empty; leave the parameter out to match every value",
                    ))
                } else {
                    Ok(value)
                }
            };
            match param {
                "key" => request.key = Some(not_empty(value)?),
                "model" => request.model = Some(not_empty(value)?),
                "status" => {
                    request.status = Some(
                        value
                            .trim()
                            .parse::<u16>()
                            .ok()
                            .filter(|status| (100..=599).contains(status))
                            .ok_or_else(|| {
                                AdminError::invalid(
                                    param,
                                    format!("'{value}' is not an HTTP status; use a number like 200 or 429"),
                                )
                            })?,
                    );
                }
                "from" => bounds.0 = Some(Bound::parse(param, &value)?),
                "to" => bounds.1 = Some(Bound::parse(param, &value)?),
                "limit" => {
                    request.limit = value
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or_else(|| {
                            AdminError::invalid(
                                param,
                                format!("'{value}' is not a page size; use a whole number from 1 to {MAX_PAGE}"),
                            )
                        })?;
                }
                _ => {
                    request.cursor = Some(
                        value
                            .trim()
                            .parse::<i64>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| {
                                AdminError::invalid(
                                    param,
                                    format!("'{value}' is not a cursor; pass the next_cursor of the previous page"),
                                )
                            })?,
                    );
                }
            }
        }
        let out_of_range = |param: &'static str| {
            AdminError::invalid(param, "is out of the range of supported times")
        };
        if let Some(from) = bounds.0 {
            request.from_ms = Some(from.first_ms().ok_or_else(|| out_of_range("from"))?);
        }
        if let Some(to) = bounds.1 {
            request.to_ms = Some(to.end_ms().ok_or_else(|| out_of_range("to"))?);
        }
        if let (Some(from), Some(to)) = (request.from_ms, request.to_ms)
            && from >= to
        {
            return Err(AdminError::invalid(
                "from",
                "is after to; give from no later than to",
            ));
        }
        Ok(request)
    }
}

/// One request log row as operators see it.
#[derive(Debug, Serialize)]
pub struct LogView {
    pub id: i64,
    /// When the request finished, RFC 3339 with milliseconds.
    pub at: String,
    pub request_id: String,
    /// The key's name (`null` once it is deleted).
    pub key: Option<String>,
    pub key_id: i64,
    pub model: String,
    pub endpoint: String,
    pub stream: bool,
    pub provider: Option<String>,
    pub route_id: Option<i64>,
    pub account: Option<String>,
    pub account_id: Option<i64>,
    pub status: i64,
    pub attempts: i64,
    pub latency_ms: i64,
    pub ttfb_ms: Option<i64>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub reasoning_tokens: i64,
    pub estimated: bool,
    /// USD at the prices of the route that served it; an estimate when `estimated` is set.
    pub cost_usd: f64,
}

impl From<LogRow> for LogView {
    fn from(row: LogRow) -> Self {
        Self {
            id: row.id,
            at: DateTime::from_timestamp_millis(row.at)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
                .unwrap_or_else(|| row.at.to_string()),
            request_id: row.request_id,
            key: row.key_name,
            key_id: row.key_id,
            model: row.model,
            endpoint: row.endpoint,
            stream: row.stream,
            provider: row.provider,
            route_id: row.route_id,
            account: row.account_name,
            account_id: row.account_id,
            status: row.status,
            attempts: row.attempts,
            latency_ms: row.latency_ms,
            ttfb_ms: row.ttfb_ms,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
            cached_tokens: row.cached_tokens,
            reasoning_tokens: row.reasoning_tokens,
            estimated: row.estimated,
            cost_usd: usd(row.cost_nanos),
        }
    }
}

impl Admin {
    /// Totals over the rollups of the requested days, one line per group.
    pub async fn usage(&self, request: UsageRequest) -> Result<UsageReport, AdminError> {
        let totals = self
            .db
            .usage_totals(&UsageQuery {
                from: Some(request.from),
                to: Some(request.to),
                group_by: request.group_by.clone(),
            })
            .await?;
        Ok(UsageReport {
            from: request.from.to_string(),
            to: request.to.to_string(),
            group_by: request.group_by.iter().map(|g| g.as_str()).collect(),
            data: totals
                .into_iter()
                .map(|totals| UsageLine::new(totals, &request.group_by))
                .collect(),
        })
    }

    /// A page of request log rows, newest first. `key` names a key (by name, else by id; the
    /// id of a deleted key still finds its rows).
    pub async fn logs(&self, request: LogRequest) -> Result<List<LogView>, AdminError> {
        let key_id = match request.key.as_deref() {
            None => None,
            Some(name_or_id) => match self.db.find_key(name_or_id).await? {
                Some(row) => Some(row.id),
                None => Some(name_or_id.parse::<i64>().map_err(|_| {
                    AdminError::invalid(
                        "key",
                        format!("no key named '{name_or_id}'; give a key's name or id"),
                    )
                })?),
            },
        };
        let page = self
            .db
            .log_page(&LogQuery {
                key_id,
                model: request.model,
                status: request.status,
                from_ms: request.from_ms,
                to_ms: request.to_ms,
                before: request.cursor,
                limit: request.limit,
            })
            .await?;
        Ok(List {
            data: page.rows.into_iter().map(LogView::from).collect(),
            next_cursor: page.next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    const TODAY: &str = "2025-03-05";

    fn usage(query: &str) -> Result<UsageRequest, String> {
        UsageRequest::parse(Some(query), day(TODAY)).map_err(|error| match error {
            AdminError::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn usage_queries_default_to_today_and_group_by_any_subset() {
        use UsageGroup::*;
        let check = |query: &str, from: &str, to: &str, groups: &[UsageGroup]| {
            assert_eq!(
                usage(query),
                Ok(UsageRequest {
                    from: day(from),
                    to: day(to),
                    group_by: groups.to_vec()
                }),
                "{query}"
            );
        };
        check("", TODAY, TODAY, &[]);
        check("group_by=", TODAY, TODAY, &[]);
        check("from=2025-03-01", "2025-03-01", TODAY, &[]);
        check("to=2025-02-01", "2025-02-01", "2025-02-01", &[]);
        check(
            "from=2025-01-01&to=2025-01-31&group_by=key",
            "2025-01-01",
            "2025-01-31",
            &[Key],
        );
        check(
            "group_by=day,%20model,key,model&from=2025-03-01T23:30:00-02:00",
            "2025-03-02",
            TODAY,
            &[Day, Model, Key],
        );
        check(
            "group_by=account%2Cday&to=2025-03-05T10:00:00Z",
            TODAY,
            TODAY,
            &[Account, Day],
        );
    }

    #[test]
    fn bad_usage_queries_name_the_parameter() {
        for (query, param) in [
            ("from=yesterday", "from"),
            ("to=2025-13-01", "to"),
            ("from=2025-03-06", "from"),
            ("from=2025-02-02&to=2025-02-01", "from"),
            ("group_by=user", "group_by"),
            ("group_by=key;model", "group_by"),
            ("group_by=key&group_by=model", "group_by"),
            ("limit=5", "limit"),
            ("day=2025-01-01", "day"),
        ] {
            assert_eq!(usage(query), Err(param.to_owned()), "{query}");
        }
    }

    fn logs(query: &str) -> Result<LogRequest, String> {
        LogRequest::parse(Some(query)).map_err(|error| match error {
            AdminError::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn log_queries_read_filters_bounds_and_page() {
        let all = logs("").unwrap();
        assert_eq!(
            (all.key, all.status, all.from_ms, all.cursor, all.limit),
            (None, None, None, None, DEFAULT_PAGE)
        );
        let some = logs("key=ci&model=gpt-4o&status=429&limit=5&cursor=17").unwrap();
        assert_eq!(some.key.as_deref(), Some("ci"));
        assert_eq!(some.model.as_deref(), Some("gpt-4o"));
        assert_eq!(
            (some.status, some.limit, some.cursor),
            (Some(429), 5, Some(17))
        );
        // A day covers all of itself; a time its own millisecond.
        let days = logs("from=1970-01-02&to=1970-01-02").unwrap();
        assert_eq!(
            (days.from_ms, days.to_ms),
            (Some(86_400_000), Some(172_800_000))
        );
        let times = logs("from=1970-01-01T00:00:01Z&to=1970-01-01T00:00:02.5Z").unwrap();
        assert_eq!((times.from_ms, times.to_ms), (Some(1_000), Some(2_501)));
    }

    #[test]
    fn bad_log_queries_name_the_parameter() {
        for (query, param) in [
            ("status=abc", "status"),
            ("status=42", "status"),
            ("status=600", "status"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("cursor=0", "cursor"),
            ("cursor=x", "cursor"),
            ("from=tomorrow", "from"),
            ("to=2025-02-30", "to"),
            ("from=2025-02-02&to=2025-02-01", "from"),
            ("key=", "key"),
            ("model=%20", "model"),
            ("key=a&key=b", "key"),
            ("group_by=key", "group_by"),
        ] {
            assert_eq!(logs(query).map(|_| ()), Err(param.to_owned()), "{query}");
        }
    }
}
