//! PostgreSQL through the binary: `llmgate migrate-data` moves a served SQLite database into a
//! PostgreSQL database of the test cluster, `backup` names `pg_dump`, and the commands that
//! would store in PostgreSQL refuse it, saying why, until its queries exist.

use crate::helpers::spawn_app;

#[tokio::test]
async fn migrate_data_moves_a_served_sqlite_database_into_postgres() {
    let app = spawn_app().await;
    for name in ["alpha", "beta"] {
        llmgate::auth::create_key(
            &app.db,
            llmgate::auth::NewKey {
                name: name.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let to = crate::pg_cluster::fresh_database().await;
    let args = ["migrate-data", "--from", &app.db_url, "--to", &to];
    let (code, stdout, stderr) = app.cli(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("copied"), "{stdout}");

    // Every key, with its id, as the served SQLite database holds it.
    let keys = "SELECT id, name, key_hash FROM client_keys ORDER BY id";
    let sqlite = sqlx::SqlitePool::connect(&app.db_url).await.unwrap();
    let expected: Vec<(i64, String, String)> =
        sqlx::query_as(keys).fetch_all(&sqlite).await.unwrap();
    sqlite.close().await;
    let pg = sqlx::PgPool::connect(&to).await.unwrap();
    let copied: Vec<(i64, String, String)> = sqlx::query_as(keys).fetch_all(&pg).await.unwrap();
    assert_eq!(copied, expected);
    assert!(copied.iter().any(|(_, name, _)| name == "beta"));
    pg.close().await;

    // The target is no longer empty: a second run refuses and changes nothing.
    let (code, _, stderr) = app.cli(&args);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("empty database only"), "{stderr}");
    app.stop().await;
}

#[tokio::test]
async fn backup_of_a_postgres_database_names_pg_dump_and_hides_the_password() {
    let app = spawn_app().await;
    let url = "postgres://u:hunter2@127.0.0.1:9/db";
    let (code, _, stderr) = app.cli(&["backup", "snapshot.dump", "--database", url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(!std::path::Path::new("snapshot.dump").exists());
    app.stop().await;
}

#[tokio::test]
async fn a_postgres_url_is_refused_by_commands_that_would_store_in_it() {
    let app = spawn_app().await;
    let url = crate::pg_cluster::fresh_database().await;
    let (code, _, stderr) = app.cli(&["migrate", "--database", &url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot store in yet"), "{stderr}");
    app.stop().await;
}
