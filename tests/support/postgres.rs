//! A throwaway PostgreSQL cluster for tests: started once per test process from Debian's
//! PostgreSQL binaries (`tests/setup.sh` installs them), on a free loopback port, with trust
//! authentication and its data in a temporary directory; each test gets a database of its own.
//!
//! Shared by the db module's unit tests and the integration tests (both include this file with
//! `#[path]`), so there is one way to start a cluster. A watchdog process stops the cluster and
//! removes its directory once the test process has exited, since Rust never drops a static.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The running cluster of this test process.
pub struct Cluster {
    port: u16,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The cluster of this test process, started on first use. Panics with what to install when
/// PostgreSQL's binaries are missing.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(start)
}

/// A new, empty database on the test cluster: its `postgres://` URL.
pub async fn fresh_database() -> String {
    use sqlx::Connection;
    let cluster = cluster();
    let name = format!(
        "llmgate_test_{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .expect("connect to the test cluster");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    admin.close().await.ok();
    cluster.url(&name)
}

impl Cluster {
    /// The URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://llmgate@127.0.0.1:{}/{database}", self.port)
    }
}

/// Where PostgreSQL's server binaries are: `LLMGATE_TEST_PG_BIN`, the directory of `pg_ctl` on
/// the PATH, or Debian's `/usr/lib/postgresql/<version>/bin` (newest first; Debian does not put
/// `initdb` on the PATH).
fn binaries() -> PathBuf {
    if let Some(dir) = std::env::var_os("LLMGATE_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| dir.join("pg_ctl").is_file() && dir.join("initdb").is_file());
    if let Some(dir) = on_path {
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "the PostgreSQL tests need PostgreSQL's server binaries (initdb, pg_ctl): run \
             tests/setup.sh (Debian's `postgresql` package), or set LLMGATE_TEST_PG_BIN"
        ),
    }
}

/// `initdb` refuses to run as root: as root, the cluster runs as the `postgres` user (Debian's
/// package creates it), or `nobody`.
fn server_user() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return None;
    }
    let exists = |user: &str| {
        Command::new("id")
            .arg(user)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    Some(
        if exists("postgres") {
            "postgres"
        } else {
            "nobody"
        }
        .to_owned(),
    )
}

/// A command for `program` in `bin`, run as `user` when there is one.
fn as_user(user: Option<&str>, bin: &Path, program: &str) -> Command {
    match user {
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(bin.join(program));
            command
        }
        None => Command::new(bin.join(program)),
    }
}

fn run(mut command: Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{what}: {error}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

fn start() -> Cluster {
    let bin = binaries();
    let user = server_user();
    let dir = tempfile::Builder::new()
        .prefix("llmgate-pg-")
        .tempdir()
        .expect("a temporary directory")
        .keep();
    let data = dir.join("data");
    if let Some(user) = &user {
        let mut chown = Command::new("chown");
        chown.arg(format!("{user}:")).arg(&dir);
        run(chown, "chown the cluster's directory");
    }
    let mut initdb = as_user(user.as_deref(), &bin, "initdb");
    initdb.arg("-D").arg(&data).args([
        "-U",
        "llmgate",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--no-locale",
        "--no-sync",
    ]);
    run(initdb, "initdb");
    // A port taken between `free_port` and the server's bind makes the start fail: try again.
    let mut last_error = String::new();
    for _ in 0..3 {
        let port = free_port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            dir.display()
        );
        let mut pg_ctl = as_user(user.as_deref(), &bin, "pg_ctl");
        pg_ctl
            .arg("start")
            .arg("-w")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .arg("-o")
            .arg(&options)
            .stdout(Stdio::null());
        match pg_ctl.output() {
            Ok(output) if output.status.success() => {
                watch(&dir, &data, &bin, user.as_deref());
                return Cluster { port };
            }
            Ok(output) => last_error = String::from_utf8_lossy(&output.stderr).into_owned(),
            Err(error) => last_error = error.to_string(),
        }
    }
    panic!(
        "pg_ctl start failed three times: {last_error} (see {})",
        dir.join("server.log").display()
    );
}

/// Starts a process that outlives this one by at most a second: once the test process is gone,
/// it stops the cluster and removes its directory.
fn watch(dir: &Path, data: &Path, bin: &Path, user: Option<&str>) {
    let stop = match user {
        Some(user) => format!("runuser -u {user} -- '{}'", bin.join("pg_ctl").display()),
        None => format!("'{}'", bin.join("pg_ctl").display()),
    };
    // The outer shell starts the watchdog in the background and exits at once: waiting for it
    // leaves no zombie, and the watchdog, orphaned, is adopted by init.
    let script = format!(
        "(while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         {stop} stop -D '{data}' -m immediate; rm -rf '{dir}') >/dev/null 2>&1 &",
        pid = std::process::id(),
        data = data.display(),
        dir = dir.display(),
    );
    let started = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start the cluster's watchdog");
    assert!(started.success(), "start the cluster's watchdog");
}
