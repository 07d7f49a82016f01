//! Integration tests: the real app on a random local port, against the mock upstream served by
//! the test itself, spoken to over HTTP like a client would.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed unwrap is a failed test, with its location"
)]
#![expect(
    clippy::disallowed_methods,
    reason = "tests spawn their own tasks, and clients that speak to llmgate as a client would"
)]

mod admin;
mod admin_console;
mod admin_hardening;
mod bedrock;
mod cli;
mod clouds;
mod cluster;
mod dialects;
mod edge;
mod errors;
mod helpers;
mod keys;
mod money;
mod ops;
#[path = "../support/postgres.rs"]
mod pg_cluster;
mod postgres;
mod proxy;
mod replicas;
mod responses;
mod responses_forward;
mod responses_store;
mod routing;
mod shaping;
mod streaming;
mod upstream;
mod upstream_pool;
mod usage;
