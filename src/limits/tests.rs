#![expect(
    clippy::disallowed_methods,
    reason = "tests spawn their own tasks and clients"
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::clock::ManualClock;
use crate::pricing::Nanodollars;
use crate::vocab::BudgetWindow;

pub(super) fn key(id: i64) -> ClientKey {
    ClientKey {
        id,
        name: format!("k{id}").into(),
        models: None,
        rpm: None,
        tpm: None,
        budget_tokens: None,
        budget_usd: None,
        budget_window: None,
        expires_at: None,
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn manual(now: &str) -> (Limits, Arc<ManualClock>) {
    let (clock, handle) = Clock::manual(at(now));
    (Limits::with_clock(clock), handle)
}

#[test]
fn request_estimates_add_the_completion_cap_to_a_quarter_of_the_body() {
    let check = |body: &str, completion: u64| {
        let prompt = (body.len() as u64).div_ceil(4);
        assert_eq!(
            estimate_request_tokens(body.as_bytes()),
            prompt + completion,
            "{body}"
        );
    };
    check(r#"{"model":"m","messages":[],"max_tokens":100}"#, 100);
    check(
        r#"{"model":"m","messages":[],"max_tokens":100,"max_completion_tokens":7}"#,
        7,
    );
    check(
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        1024,
    );
    check(r#"{"model":"m","prompt":"once upon"}"#, 1024);
    check(r#"{"model":"m","input":"embed me"}"#, 0);
    check(r#"{"model":"m","input":"x","max_output_tokens":9}"#, 9);
    check("not json", 1024);
}

#[test]
fn keys_without_limits_are_admitted_without_state() {
    let limits = Limits::new();
    let admission = limits.admit(&key(1), 1_000_000).unwrap();
    assert!(admission.status().is_empty());
    assert_eq!(admission.reserved(), 0);
    assert!(limits.inner.keys.load().is_empty());
}

#[test]
fn rpm_refuses_the_request_over_the_limit_with_headers_and_retry_after() {
    let (limits, clock) = manual("2025-03-05T12:00:00Z");
    let key = ClientKey {
        rpm: Some(3),
        ..key(1)
    };
    for remaining in [2, 1, 0] {
        let admission = limits.admit(&key, 10).unwrap();
        let requests = admission.status().requests.unwrap();
        assert_eq!((requests.limit, requests.remaining), (3, remaining));
        assert!(admission.status().tokens.is_none());
        admission.settle(10);
    }
    let refusal = limits.admit(&key, 10).unwrap_err();
    let Refusal::RateLimited {
        kind,
        retry_after,
        status,
        ..
    } = &refusal
    else {
        panic!("{refusal:?}");
    };
    assert_eq!(*kind, LimitKind::Requests);
    // Three per minute: one more every twenty seconds.
    assert_eq!(*retry_after, Duration::from_secs(20));
    assert_eq!(status.requests.unwrap().reset, Duration::from_secs(60));
    assert_eq!(refusal.code(), "rate_limit_exceeded");
    assert!(
        refusal.message().contains("3 requests per minute"),
        "{}",
        refusal.message()
    );
    assert!(refusal.message().contains("20s"), "{}", refusal.message());
    let headers: HashMap<String, String> = refusal
        .header_pairs()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    assert_eq!(headers["x-ratelimit-limit-requests"], "3");
    assert_eq!(headers["x-ratelimit-remaining-requests"], "0");
    assert_eq!(headers["x-ratelimit-reset-requests"], "1m0s");

    clock.advance(Duration::from_secs(19));
    assert!(limits.admit(&key, 10).is_err());
    clock.advance(Duration::from_secs(1));
    limits.admit(&key, 10).unwrap().settle(0);
}

#[test]
fn tpm_reserves_the_estimate_and_settling_refunds_the_difference() {
    let (limits, clock) = manual("2025-03-05T12:00:00Z");
    let key = ClientKey {
        tpm: Some(1000),
        ..key(1)
    };
    let first = limits.admit(&key, 600).unwrap();
    let tokens = first.status().tokens.unwrap();
    assert_eq!((tokens.limit, tokens.remaining), (1000, 400));
    // The second would need 600 of the 400 left.
    let refusal = limits.admit(&key, 600).unwrap_err();
    assert!(matches!(
        refusal,
        Refusal::RateLimited {
            kind: LimitKind::Tokens,
            requested: 600,
            ..
        }
    ));
    // 200 missing at 1000 per minute: 12 seconds.
    assert_eq!(refusal.retry_after(), Some(Duration::from_secs(12)));
    assert!(
        refusal.message().contains("400 remain"),
        "{}",
        refusal.message()
    );
    // The first used only 100: 500 come back, and the second fits.
    first.settle(100);
    let second = limits.admit(&key, 600).unwrap();
    assert_eq!(second.status().tokens.unwrap().remaining, 300);
    // Using more than reserved charges the excess, into debt.
    second.settle(1500);
    assert_eq!(limits.status(&key).tokens.unwrap().remaining, 0);
    assert!(limits.admit(&key, 1).is_err());
    clock.advance(Duration::from_secs(60));
    assert_eq!(limits.status(&key).tokens.unwrap().remaining, 400);
}

#[test]
fn a_request_larger_than_the_tpm_waits_for_a_full_bucket() {
    let (limits, clock) = manual("2025-03-05T12:00:00Z");
    let key = ClientKey {
        tpm: Some(100),
        ..key(1)
    };
    limits.admit(&key, 5000).unwrap().settle(50);
    assert_eq!(
        limits.admit(&key, 5000).unwrap_err().retry_after(),
        Some(Duration::from_secs(30))
    );
    clock.advance(Duration::from_secs(30));
    drop(limits.admit(&key, 5000).unwrap());
}

#[test]
fn a_refused_request_costs_nothing_and_a_dropped_admission_gives_everything_back() {
    let (limits, _clock) = manual("2025-03-05T12:00:00Z");
    let key = ClientKey {
        rpm: Some(10),
        tpm: Some(100),
        budget_tokens: Some(1000),
        ..key(1)
    };
    let held = limits.admit(&key, 80).unwrap();
    // TPM refuses: RPM must not have been charged for it.
    assert!(limits.admit(&key, 80).is_err());
    assert_eq!(limits.status(&key).requests.unwrap().remaining, 9);
    assert_eq!(limits.budget_spent(&key), Some((0, 80)));
    drop(held);
    assert_eq!(limits.status(&key).tokens.unwrap().remaining, 100);
    assert_eq!(limits.budget_spent(&key), Some((0, 0)));
}

#[test]
fn budgets_trip_and_reset_with_their_window() {
    let cases = [
        (BudgetWindow::Daily, "2025-03-06T00:00:00Z"),
        (BudgetWindow::Weekly, "2025-03-10T00:00:00Z"),
        (BudgetWindow::Monthly, "2025-04-01T00:00:00Z"),
    ];
    for (window, reset) in cases {
        let (limits, clock) = manual("2025-03-05T23:59:00Z");
        let key = ClientKey {
            budget_tokens: Some(100),
            budget_window: Some(window),
            ..key(1)
        };
        limits.admit(&key, 10).unwrap().settle(60);
        limits.admit(&key, 10).unwrap().settle(60);
        let refusal = limits.admit(&key, 10).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::BudgetExhausted {
                unit: BudgetUnit::Tokens,
                budget: 100,
                left: 0,
                requested: 10,
                resets_at: Some(at(reset)),
                retry_after: Some((at(reset) - at("2025-03-05T23:59:00Z")).to_std().unwrap()),
            },
            "{window:?}"
        );
        assert_eq!(refusal.code(), "insufficient_quota");
        assert_eq!(
            refusal.message(),
            format!("The token budget of this key (100 tokens) is used up; it resets at {reset}.")
        );
        let until_reset = (at(reset) - at("2025-03-05T23:59:00Z")).to_std().unwrap();
        clock.advance(until_reset - Duration::from_secs(1));
        assert!(limits.admit(&key, 10).is_err(), "{window:?}");
        clock.advance(Duration::from_secs(1));
        limits.admit(&key, 10).unwrap().settle(10);
        assert_eq!(limits.budget_spent(&key), Some((10, 0)), "{window:?}");
    }
}

#[test]
fn a_budget_without_window_never_resets() {
    let (limits, clock) = manual("2025-03-05T12:00:00Z");
    let key = ClientKey {
        budget_tokens: Some(5),
        ..key(1)
    };
    limits.admit(&key, 1).unwrap().settle(5);
    clock.advance(Duration::from_secs(400 * 24 * 3600));
    let refusal = limits.admit(&key, 1).unwrap_err();
    assert_eq!(refusal.retry_after(), None);
    assert!(refusal.message().ends_with("it does not reset."));
}

#[test]
fn budgets_start_from_the_seeded_spend_of_the_current_window() {
    let (limits, clock) = manual("2025-03-05T12:00:00Z");
    limits.seed_budgets(BudgetSeed {
        today: at("2025-03-05T12:00:00Z").date_naive(),
        tokens: WindowSpend {
            daily: HashMap::from([(1, 95)]),
            weekly: HashMap::from([(1, 500)]),
            ..WindowSpend::default()
        },
        ..BudgetSeed::default()
    });
    let daily = ClientKey {
        budget_tokens: Some(100),
        budget_window: Some(BudgetWindow::Daily),
        ..key(1)
    };
    limits.admit(&daily, 1).unwrap().settle(5);
    assert!(limits.admit(&daily, 1).is_err());
    // A key first seen after its window rolled starts from zero.
    let (limits_later, _) = manual("2025-03-06T00:00:01Z");
    limits_later.seed_budgets(BudgetSeed {
        today: at("2025-03-05T12:00:00Z").date_naive(),
        tokens: WindowSpend {
            daily: HashMap::from([(1, 95)]),
            ..WindowSpend::default()
        },
        ..BudgetSeed::default()
    });
    assert_eq!(limits_later.budget_spent(&daily), Some((0, 0)));
    drop(clock);
}

#[tokio::test]
async fn seeds_are_read_from_the_rollups() {
    let (_dir, db) = crate::db::tests::temp_db().await;
    let row = |day: &str, tokens: i64| crate::db::RollupRow {
        day: chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap(),
        key_id: 1,
        model: "m".into(),
        account_id: 0,
        counts: crate::db::UsageCounts {
            requests: 1,
            prompt_tokens: tokens,
            completion_tokens: tokens,
            ..Default::default()
        },
    };
    db.write_usage(
        &[
            row("2025-02-20", 1),
            row("2025-03-01", 10),
            row("2025-03-04", 100),
            row("2025-03-05", 1000),
        ],
        &[] as &[crate::db::NewLogRow<'_>],
    )
    .await
    .unwrap();
    let seed = BudgetSeed::load(&db, at("2025-03-05T12:00:00Z"))
        .await
        .unwrap();
    assert_eq!(seed.tokens.daily[&1], 2000);
    assert_eq!(seed.tokens.weekly[&1], 2200);
    assert_eq!(seed.tokens.monthly[&1], 2220);
    assert_eq!(seed.tokens.lifetime[&1], 2222);
}

#[test]
fn concurrent_admissions_never_reserve_past_the_budget() {
    let budget = 10_050;
    let estimate = 100;
    let limits = Limits::new();
    limits.seed_budgets(BudgetSeed {
        today: Utc::now().date_naive(),
        tokens: WindowSpend {
            lifetime: HashMap::from([(1, budget - 1050)]),
            ..WindowSpend::default()
        },
        ..BudgetSeed::default()
    });
    let key = ClientKey {
        budget_tokens: Some(budget),
        tpm: Some(1_000_000),
        ..key(1)
    };
    let admitted = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..64 {
            scope.spawn(|| {
                for _ in 0..50 {
                    if let Ok(admission) = limits.admit(&key, estimate) {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        std::thread::yield_now();
                        // Each request uses exactly what it reserved.
                        admission.settle(estimate);
                    }
                }
            });
        }
    });
    let (spent, reserved) = limits.budget_spent(&key).unwrap();
    assert_eq!(reserved, 0);
    assert_eq!(
        spent,
        budget - 1050 + admitted.load(Ordering::Relaxed) * estimate
    );
    // Requests are admitted only while their whole reservation fits: ten of the 1050 tokens
    // left, and the 50 after them are too few for another.
    assert_eq!(admitted.load(Ordering::Relaxed), 10);
    assert_eq!(spent, budget - 50);
}

#[tokio::test]
async fn sixty_four_tasks_against_a_nearly_spent_budget() {
    let budget = 5_000;
    let estimate = 300;
    let limits = Limits::new();
    limits.seed_budgets(BudgetSeed {
        today: Utc::now().date_naive(),
        tokens: WindowSpend {
            lifetime: HashMap::from([(1, budget - 400)]),
            ..WindowSpend::default()
        },
        ..BudgetSeed::default()
    });
    let key = ClientKey {
        budget_tokens: Some(budget),
        ..key(1)
    };
    // All 64 ask before any settles: one reservation fits in the 400 left, a second does not.
    let mut refusals = Vec::new();
    let mut admissions = Vec::new();
    for _ in 0..64 {
        match limits.admit(&key, estimate) {
            Ok(admission) => admissions.push(admission),
            Err(refusal) => refusals.push(refusal),
        }
    }
    assert_eq!(admissions.len(), 1);
    assert!(refusals.iter().all(|r| r.code() == "insufficient_quota"));
    assert!(matches!(
        refusals[0],
        Refusal::BudgetExhausted {
            left: 100,
            requested: 300,
            ..
        }
    ));
    assert!(refusals[0].message().contains("has 100 tokens left"));
    let mut tasks = Vec::new();
    for admission in admissions {
        // It uses twice what it reserved: the overshoot is its usage beyond its reservation.
        tasks.push(tokio::spawn(async move { admission.settle(2 * estimate) }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (spent, _) = limits.budget_spent(&key).unwrap();
    assert_eq!(spent, budget - 400 + 2 * estimate);
    // The overshoot is bounded by the usage beyond the reservation (300 here).
    assert!(spent - budget <= estimate, "{spent}");
    assert!(limits.admit(&key, 1).is_err());
}

#[test]
fn changed_limits_apply_to_the_next_admission() {
    let (limits, _clock) = manual("2025-03-05T12:00:00Z");
    let mut key = ClientKey {
        rpm: Some(1),
        ..key(1)
    };
    limits.admit(&key, 1).unwrap().settle(1);
    assert!(limits.admit(&key, 1).is_err());
    key.rpm = Some(5);
    let admission = limits.admit(&key, 1).unwrap();
    assert_eq!(admission.status().requests.unwrap().remaining, 3);
    drop(admission);
    key.rpm = None;
    limits.admit(&key, 1).unwrap().settle(1);
    assert!(limits.status(&key).is_empty());
}

#[test]
fn accounts_have_their_own_request_buckets() {
    let (limits, clock) = manual("2025-03-05T12:00:00Z");
    assert!(limits.admit_account(7, 2).is_ok());
    assert!(limits.admit_account(7, 2).is_ok());
    assert_eq!(limits.admit_account(7, 2), Err(Duration::from_secs(30)));
    assert!(limits.admit_account(8, 2).is_ok());
    clock.advance(Duration::from_secs(30));
    assert!(limits.admit_account(7, 2).is_ok());
}

/// A key with a dollar budget of `usd` and no other limit.
fn spender(usd: f64, window: Option<BudgetWindow>) -> ClientKey {
    ClientKey {
        budget_usd: Some(Nanodollars::from_usd(usd).unwrap()),
        budget_window: window,
        ..key(1)
    }
}

fn costing(nanos: u64) -> Spend {
    Spend {
        tokens: 100,
        cost: Nanodollars(nanos),
    }
}

#[test]
fn a_dollar_budget_admits_settles_with_the_real_cost_and_refuses_once_spent() {
    let (limits, clock) = manual("2025-03-05T12:00:00Z");
    let key = spender(1.0, Some(BudgetWindow::Daily));
    let cent = 10_000_000;
    // Reserved at its worst case, settled at its real cost.
    let admission = limits.admit(&key, costing(30 * cent)).unwrap();
    assert_eq!(
        limits.spent_in(&key, BudgetUnit::Nanodollars),
        Some((0, 30 * cent))
    );
    admission.settle(costing(12 * cent));
    assert_eq!(
        limits.spent_in(&key, BudgetUnit::Nanodollars),
        Some((12 * cent, 0))
    );
    assert_eq!(limits.budget_spent(&key), None, "no token budget");
    // 88 cents left: a worst case of 89 cents is refused, one of 88 fits.
    let refusal = limits.admit(&key, costing(89 * cent)).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::BudgetExhausted {
            unit: BudgetUnit::Nanodollars,
            budget: 100 * cent,
            left: 88 * cent,
            requested: 89 * cent,
            resets_at: Some(at("2025-03-06T00:00:00Z")),
            retry_after: Some(Duration::from_secs(12 * 3600)),
        }
    );
    assert_eq!(refusal.code(), "insufficient_quota");
    assert_eq!(
        refusal.message(),
        "The spending budget of this key ($1.00) has $0.88 left, and this request may cost up \
         to $0.89 (its prompt at the model's dearest route's input price, plus its max_tokens, \
         else the route's output limit, at the output price). Set a lower max_tokens, or retry \
         once requests in flight finish; it resets at 2025-03-06T00:00:00Z."
    );
    // A request that costs more than it reserved takes spend past the limit by that much.
    limits
        .admit(&key, costing(88 * cent))
        .unwrap()
        .settle(costing(90 * cent));
    let refusal = limits.admit(&key, costing(1)).unwrap_err();
    assert_eq!(
        refusal.message(),
        "The spending budget of this key ($1.00) is used up; it resets at 2025-03-06T00:00:00Z."
    );
    assert_eq!(refusal.retry_after(), Some(Duration::from_secs(12 * 3600)));
    // A request whose worst case is nothing (every route of its model unpriced) cannot
    // spend, and passes; any other waits for the window's end.
    assert!(limits.admit(&key, costing(0)).is_ok());
    clock.advance(Duration::from_secs(12 * 3600));
    limits
        .admit(&key, costing(99 * cent))
        .unwrap()
        .settle(costing(cent));
    assert_eq!(
        limits.spent_in(&key, BudgetUnit::Nanodollars),
        Some((cent, 0))
    );
}

#[test]
fn dollars_and_tokens_are_two_budgets_of_one_key() {
    let (limits, _clock) = manual("2025-03-05T12:00:00Z");
    let key = ClientKey {
        budget_tokens: Some(1000),
        ..spender(0.5, None)
    };
    // Refused by the token budget while dollars are left, and the other way round; a refusal
    // charges neither.
    let tokens_refused = limits
        .admit(
            &key,
            Spend {
                tokens: 1001,
                cost: Nanodollars(1),
            },
        )
        .unwrap_err();
    assert!(matches!(
        tokens_refused,
        Refusal::BudgetExhausted {
            unit: BudgetUnit::Tokens,
            ..
        }
    ));
    let dollars_refused = limits
        .admit(
            &key,
            Spend {
                tokens: 1,
                cost: Nanodollars(500_000_001),
            },
        )
        .unwrap_err();
    assert!(
        dollars_refused.message().contains("$0.50"),
        "{dollars_refused:?}"
    );
    assert!(dollars_refused.message().ends_with("it does not reset."));
    assert_eq!(limits.budget_spent(&key), Some((0, 0)));
    assert_eq!(limits.spent_in(&key, BudgetUnit::Nanodollars), Some((0, 0)));
    // Dropped unsettled (the request was aborted), an admission gives both back.
    drop(limits.admit(&key, costing(400_000_000)).unwrap());
    assert_eq!(limits.spent_in(&key, BudgetUnit::Nanodollars), Some((0, 0)));
}

#[test]
fn a_dollar_budget_starts_from_the_seeded_cost_not_the_tokens() {
    let (limits, _clock) = manual("2025-03-05T12:00:00Z");
    limits.seed_budgets(BudgetSeed {
        today: at("2025-03-05T12:00:00Z").date_naive(),
        tokens: WindowSpend {
            monthly: HashMap::from([(1, 5)]),
            ..WindowSpend::default()
        },
        cost: WindowSpend {
            monthly: HashMap::from([(1, 700_000_000)]),
            ..WindowSpend::default()
        },
    });
    let key = spender(1.0, Some(BudgetWindow::Monthly));
    assert_eq!(
        limits.spent_in(&key, BudgetUnit::Nanodollars),
        Some((700_000_000, 0))
    );
    assert!(limits.admit(&key, costing(300_000_001)).is_err());
    assert!(limits.admit(&key, costing(300_000_000)).is_ok());
}

#[test]
fn threads_racing_for_the_last_dollars_never_reserve_past_the_budget() {
    let limits = Limits::new();
    let budget = Nanodollars::from_usd(1.0).unwrap().0;
    let worst_case = 30_000_000;
    limits.seed_budgets(BudgetSeed {
        today: Utc::now().date_naive(),
        cost: WindowSpend {
            lifetime: HashMap::from([(1, budget - 100_000_000)]),
            ..WindowSpend::default()
        },
        ..BudgetSeed::default()
    });
    let key = spender(1.0, None);
    let admitted = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                for _ in 0..20 {
                    if let Ok(admission) = limits.admit(&key, costing(worst_case)) {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        std::thread::yield_now();
                        // Each costs exactly its worst case: nothing is refunded.
                        admission.settle(costing(worst_case));
                    }
                }
            });
        }
    });
    // Ten cents left held three worst cases of three cents; the fourth never fitted.
    assert_eq!(admitted.load(Ordering::Relaxed), 3);
    assert_eq!(
        limits.spent_in(&key, BudgetUnit::Nanodollars),
        Some((budget - 10_000_000, 0))
    );
}

#[test]
fn amounts_in_messages_are_cents_or_finer_and_never_rounded_down() {
    for (nanos, shown) in [
        (0, "$0.00"),
        (250_000_000_000, "$250.00"),
        (10_000_000, "$0.01"),
        (10_000_001, "$0.02"),
        (1_234, "$0.000002"),
        (9_999_999, "$0.010000"),
    ] {
        assert_eq!(super::dollars(nanos), shown, "{nanos}");
    }
}
