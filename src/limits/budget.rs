//! Budgets, in tokens or in nano-dollars (one mechanism, two units): UTC calendar windows, the
//! spend of the current one, the admission rule (a request runs only when its whole reservation
//! fits), and the rebuild of spend from the usage rollups at start-up.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};

use crate::db::{Db, DbError};
use crate::vocab::BudgetWindow;

/// The first day of the window containing `today`: the day itself, its ISO week's Monday, or
/// its month's first day. A budget without a window never resets: its "window" starts at the
/// Unix epoch.
pub fn window_start(window: Option<BudgetWindow>, today: NaiveDate) -> NaiveDate {
    match window {
        Some(BudgetWindow::Daily) => today,
        Some(BudgetWindow::Weekly) => today
            .checked_sub_days(Days::new(u64::from(today.weekday().num_days_from_monday())))
            .unwrap_or(today),
        Some(BudgetWindow::Monthly) => today.with_day(1).unwrap_or(today),
        None => NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(today),
    }
}

/// When the window containing `now` ends (and the budget resets), or `None` without a window.
pub fn window_end(window: Option<BudgetWindow>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let start = window_start(window, now.date_naive());
    let end = match window? {
        BudgetWindow::Daily => start.checked_add_days(Days::new(1)),
        BudgetWindow::Weekly => start.checked_add_days(Days::new(7)),
        BudgetWindow::Monthly => start.checked_add_months(Months::new(1)),
    }?;
    Some(Utc.from_utc_datetime(&end.and_hms_opt(0, 0, 0)?))
}

/// A key's budget in one unit (tokens, or nano-dollars): what its current window has spent and
/// what requests in flight reserved.
#[derive(Debug, Clone)]
pub(super) struct Budget {
    pub limit: u64,
    pub window: Option<BudgetWindow>,
    /// Unix seconds at which the current window ends.
    pub ends_at: Option<i64>,
    pub spent: u64,
    pub reserved: u64,
}

impl Budget {
    pub fn new(limit: u64, window: Option<BudgetWindow>, spent: u64, now: DateTime<Utc>) -> Self {
        Self {
            limit,
            window,
            ends_at: window_end(window, now).map(|end| end.timestamp()),
            spent,
            reserved: 0,
        }
    }

    /// Starts a new window when the current one is over.
    pub fn roll(&mut self, now_seconds: i64, now: impl FnOnce() -> DateTime<Utc>) {
        if self.ends_at.is_some_and(|end| now_seconds >= end) {
            self.spent = 0;
            self.ends_at = window_end(self.window, now()).map(|end| end.timestamp());
        }
    }

    /// Changes limit or window. A new window starts counting from what was spent so far, and
    /// resets at its own end.
    pub fn configure(&mut self, limit: u64, window: Option<BudgetWindow>, now: DateTime<Utc>) {
        self.limit = limit;
        if window != self.window {
            self.window = window;
            self.ends_at = window_end(window, now).map(|end| end.timestamp());
        }
    }

    /// Tokens neither spent in this window nor reserved by requests in flight.
    pub fn left(&self) -> u64 {
        self.limit
            .saturating_sub(self.spent.saturating_add(self.reserved))
    }

    /// Whether a request reserving `estimate` tokens fits in what is left: spent, reserved
    /// and this reservation together within the limit. The budget is a hard cap on what
    /// requests may reserve; spend passes the limit only by usage beyond a reservation (a
    /// request that uses more than it reserved, see `crate::limits::estimate_tokens`).
    pub fn admits(&self, estimate: u64) -> bool {
        estimate <= self.left()
    }

    pub fn resets_at(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.ends_at?, 0)
    }
}

/// The two units a key's budget may count in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetUnit {
    /// Prompt plus completion tokens (`budget_tokens`).
    Tokens,
    /// Nano-dollars at the prices of the routes that served the requests (`budget_usd`).
    Nanodollars,
}

/// Each key's spend in one unit in the current daily, weekly and monthly windows and overall.
#[derive(Debug, Clone, Default)]
pub struct WindowSpend {
    pub daily: HashMap<i64, u64>,
    pub weekly: HashMap<i64, u64>,
    pub monthly: HashMap<i64, u64>,
    pub lifetime: HashMap<i64, u64>,
}

impl WindowSpend {
    async fn load<F, Fut>(today: NaiveDate, since: F) -> Result<Self, DbError>
    where
        F: Fn(NaiveDate) -> Fut,
        Fut: Future<Output = Result<HashMap<i64, u64>, DbError>>,
    {
        let from = |window| since(window_start(window, today));
        Ok(Self {
            daily: from(Some(BudgetWindow::Daily)).await?,
            weekly: from(Some(BudgetWindow::Weekly)).await?,
            monthly: from(Some(BudgetWindow::Monthly)).await?,
            lifetime: from(None).await?,
        })
    }
}

/// Each key's spend, in tokens and in nano-dollars, read from the rollups at start-up so
/// budgets survive restarts.
#[derive(Debug, Clone, Default)]
pub struct BudgetSeed {
    /// The day the seed was read on.
    pub today: NaiveDate,
    pub tokens: WindowSpend,
    pub cost: WindowSpend,
}

impl BudgetSeed {
    /// Reads the spend of every key from the rollups, as of `now`.
    pub async fn load(db: &Db, now: DateTime<Utc>) -> Result<Self, DbError> {
        let today = now.date_naive();
        Ok(Self {
            today,
            tokens: WindowSpend::load(today, |day| db.tokens_spent_since(day)).await?,
            cost: WindowSpend::load(today, |day| db.cost_spent_since(day)).await?,
        })
    }

    /// What `key_id` spent in `unit` in `window` as of `today`: the seeded amount while the
    /// window the seed was read in is still the current one, else zero (a new window began
    /// since).
    pub fn spent(
        &self,
        key_id: i64,
        unit: BudgetUnit,
        window: Option<BudgetWindow>,
        today: NaiveDate,
    ) -> u64 {
        if window_start(window, self.today) != window_start(window, today) {
            return 0;
        }
        let seeded = match unit {
            BudgetUnit::Tokens => &self.tokens,
            BudgetUnit::Nanodollars => &self.cost,
        };
        let spend = match window {
            Some(BudgetWindow::Daily) => &seeded.daily,
            Some(BudgetWindow::Weekly) => &seeded.weekly,
            Some(BudgetWindow::Monthly) => &seeded.monthly,
            None => &seeded.lifetime,
        };
        spend.get(&key_id).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn windows_are_utc_calendar_periods() {
        let check = |window, now: &str, end: Option<&str>| {
            assert_eq!(
                window_end(window, at(now)),
                end.map(at),
                "{window:?} at {now}"
            );
        };
        // 2025-03-05 is a Wednesday.
        check(
            Some(BudgetWindow::Daily),
            "2025-03-05T23:59:59Z",
            Some("2025-03-06T00:00:00Z"),
        );
        check(
            Some(BudgetWindow::Daily),
            "2025-03-06T00:00:00Z",
            Some("2025-03-07T00:00:00Z"),
        );
        check(
            Some(BudgetWindow::Weekly),
            "2025-03-05T12:00:00Z",
            Some("2025-03-10T00:00:00Z"),
        );
        check(
            Some(BudgetWindow::Weekly),
            "2025-03-09T23:59:59Z",
            Some("2025-03-10T00:00:00Z"),
        );
        check(
            Some(BudgetWindow::Weekly),
            "2025-03-10T00:00:00Z",
            Some("2025-03-17T00:00:00Z"),
        );
        check(
            Some(BudgetWindow::Monthly),
            "2025-01-31T10:00:00Z",
            Some("2025-02-01T00:00:00Z"),
        );
        check(
            Some(BudgetWindow::Monthly),
            "2024-12-15T00:00:00Z",
            Some("2025-01-01T00:00:00Z"),
        );
        // A time zone offset is only another way to write the same instant.
        check(
            Some(BudgetWindow::Daily),
            "2025-03-05T23:30:00-02:00",
            Some("2025-03-07T00:00:00Z"),
        );
        check(None, "2025-03-05T12:00:00Z", None);
    }

    #[test]
    fn a_request_is_admitted_only_when_its_whole_reservation_fits() {
        let now = at("2025-03-05T12:00:00Z");
        let mut budget = Budget::new(300, None, 0, now);
        assert!(
            !budget.admits(1030),
            "a reservation beyond the whole budget"
        );
        assert!(budget.admits(300));
        budget.reserved = 200;
        budget.spent = 50;
        assert_eq!(budget.left(), 50);
        assert!(budget.admits(50));
        assert!(!budget.admits(51));
        // Usage beyond a reservation may take spend past the limit; nothing is left then.
        budget.reserved = 0;
        budget.spent = 320;
        assert_eq!(budget.left(), 0);
        assert!(!budget.admits(1));
        assert!(budget.admits(0));
    }

    #[test]
    fn window_starts() {
        let day = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
        assert_eq!(
            window_start(Some(BudgetWindow::Weekly), day("2025-03-05")),
            day("2025-03-03")
        );
        assert_eq!(
            window_start(Some(BudgetWindow::Monthly), day("2025-03-05")),
            day("2025-03-01")
        );
        assert_eq!(window_start(None, day("2025-03-05")), day("1970-01-01"));
    }

    #[test]
    fn a_seed_counts_only_while_its_window_is_current() {
        let seed = BudgetSeed {
            today: NaiveDate::from_ymd_opt(2025, 3, 5).unwrap(),
            tokens: WindowSpend {
                daily: HashMap::from([(1, 10)]),
                weekly: HashMap::from([(1, 20)]),
                monthly: HashMap::from([(1, 30)]),
                lifetime: HashMap::from([(1, 40)]),
            },
            cost: WindowSpend {
                lifetime: HashMap::from([(1, 7_000)]),
                ..WindowSpend::default()
            },
        };
        let tokens = BudgetUnit::Tokens;
        assert_eq!(
            seed.spent(1, BudgetUnit::Nanodollars, None, seed.today),
            7_000,
            "each unit has its own spend"
        );
        assert_eq!(
            seed.spent(
                1,
                BudgetUnit::Nanodollars,
                Some(BudgetWindow::Daily),
                seed.today
            ),
            0
        );
        let same_day = seed.today;
        let next_day = NaiveDate::from_ymd_opt(2025, 3, 6).unwrap();
        assert_eq!(
            seed.spent(1, tokens, Some(BudgetWindow::Daily), same_day),
            10
        );
        assert_eq!(
            seed.spent(1, tokens, Some(BudgetWindow::Daily), next_day),
            0
        );
        assert_eq!(
            seed.spent(1, tokens, Some(BudgetWindow::Weekly), next_day),
            20
        );
        assert_eq!(
            seed.spent(1, tokens, Some(BudgetWindow::Monthly), next_day),
            30
        );
        assert_eq!(seed.spent(1, tokens, None, next_day), 40);
        assert_eq!(seed.spent(2, tokens, None, next_day), 0);
    }
}
