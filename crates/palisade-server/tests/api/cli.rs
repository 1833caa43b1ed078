//! The other subcommands: `check-config`, `gen-secret`, `hash-password`, `migrate`.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::helpers::palisade_command;

async fn run(env: &[(&str, &str)], args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    run_in(dir.path(), env, args, stdin).await
}

async fn run_in(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: &[u8],
) -> (i32, String, String) {
    let mut child = palisade_command(dir, env, args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).await.expect("write stdin");
    drop(input);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("exits")
        .expect("output");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn check_config_masks_secrets_and_lists_production_warnings() {
    let env = [
        (
            "SECRET_KEY",
            "a-development-secret-that-is-long-enough-1234",
        ),
        ("REDIS_URL", "redis://user:hunter2@redis.internal:6380/1"),
        ("DEBUG", "true"),
        ("AUTH_RATE_LIMIT", "7/minute"),
    ];
    let (code, out, _) = run(&env, &["check-config"], b"").await;
    assert_eq!(code, 0);
    assert!(!out.contains("hunter2"), "{out}");
    assert!(
        !out.contains("a-development-secret-that-is-long-enough-1234"),
        "{out}"
    );
    assert!(out.contains("redis://***@redis.internal:6380/1"), "{out}");
    assert!(out.contains("AUTH_RATE_LIMIT [login]"), "{out}");
    assert!(out.contains("7 per 1 minute  (environment)"), "{out}");
    assert!(
        out.contains("warning (refused when ENVIRONMENT=production): DEBUG"),
        "{out}"
    );

    let (code, _, err) = run(
        &[("ENVIRONMENT", "production"), ("DEBUG", "true")],
        &["check-config"],
        b"",
    )
    .await;
    assert_eq!(
        code, 2,
        "an unusable production configuration fails the check"
    );
    assert!(err.contains("SECRET_KEY") && err.contains("DEBUG"), "{err}");
}

#[tokio::test]
async fn gen_secret_prints_a_fresh_long_secret_each_time() {
    let (code, first, _) = run(&[], &["gen-secret"], b"").await;
    let (_, second, _) = run(&[], &["gen-secret"], b"").await;
    assert_eq!(code, 0);
    assert_eq!(first.trim().len(), 64);
    assert_ne!(first, second);
}

#[tokio::test]
async fn hash_password_reads_stdin_and_prints_an_argon2id_hash() {
    let (code, out, _) = run(&[], &["hash-password"], b"correct horse battery\n").await;
    assert_eq!(code, 0);
    let hash = out.trim();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    let (code, _, err) = run(&[], &["hash-password"], b"").await;
    assert_ne!(code, 0);
    assert!(err.contains("empty"), "{err}");
}

#[tokio::test]
async fn migrate_creates_the_database_in_wal_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = run_in(
        dir.path(),
        &[("DATABASE_URL", "sqlite://users.db")],
        &["migrate"],
        b"",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    // Bytes 18 and 19 of a SQLite file are its write and read format versions: 2 means WAL
    // (https://www.sqlite.org/fileformat.html#the_database_header), kept after the process exits.
    let header = std::fs::read(dir.path().join("users.db")).expect("database file");
    assert_eq!(&header[18..20], &[2, 2], "journal mode is WAL");
    let store = palisade_server::store::SqliteUserStore::connect(&format!(
        "sqlite://{}",
        dir.path().join("users.db").display()
    ))
    .await
    .expect("migrated database opens");
    use palisade_server::store::UserStore;
    assert!(
        store
            .find_by_username("nobody")
            .await
            .expect("users table exists")
            .is_none()
    );
}
