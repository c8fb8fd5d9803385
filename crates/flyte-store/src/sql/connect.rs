//! Opening a store from a URL: pool options per backend, then the embedded migrations.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::SqlStore;
use super::backend::{Backend, PROBE_WRITE_SQL, PostgresBackend, SqliteBackend, Stmt};
use super::sqlite_direct::WriteConn;
use crate::{MetadataStore, Result, StoreError, migrations};

fn open_error(what: &str, err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Internal(format!("{what}: {err}").into())
}

/// `sqlite://relative/path.db`, `sqlite:///absolute/path.db`, `sqlite::memory:`. The file
/// and its directory are created if missing.
pub(crate) async fn open_sqlite(url: &str) -> Result<Arc<dyn MetadataStore>> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::InvalidArgument(format!("invalid SQLite URL {url:?}: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        // LIKE (filter `contains`) is case-sensitive, as in PostgreSQL.
        .pragma("case_sensitive_like", "ON");
    let filename = options.get_filename().to_path_buf();
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let dir = filename
        .parent()
        .filter(|d| !in_memory && !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            open_error(
                &format!("cannot create the directory of {}", filename.display()),
                e,
            )
        })?;
    }
    // An in-memory database lives as long as a connection to it: keep exactly one.
    let pool_options = if in_memory {
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        SqlitePoolOptions::new().max_connections(8)
    };
    // A connection still inside a transaction is closed rather than handed out: after a
    // COMMIT that failed for a full disk SQLite may already have rolled back, so sqlx's
    // rollback-on-drop fails, its transaction depth stays at 1 and every later `begin` on
    // that connection failed ("begin_with at non-zero transaction depth") until a restart.
    let pool = pool_options
        .before_acquire(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
        .connect_with(options.clone())
        .await
        .map_err(|e| {
            // A WAL database on a read-only filesystem with no `-shm` file left (its last
            // server closed it cleanly) fails to open at all, with SQLite's generic
            // "unable to open database file": say why.
            if !in_memory && let Some(cause) = read_only_cause(&filename) {
                return StoreError::Internal(
                    format!(
                        "the SQLite database {} is read-only ({cause}): {e}",
                        filename.display()
                    )
                    .into(),
                );
            }
            open_error(
                &format!("cannot open SQLite database {}", filename.display()),
                e,
            )
        })?;
    migrations::migrator(migrations::SQLITE)
        .run(&pool)
        .await
        .map_err(|e| {
            open_error(
                &format!("migrating the SQLite metadata store {}", filename.display()),
                e,
            )
        })?;
    // Writes go through one connection of their own, run on the caller's thread
    // (sqlite_direct); an in-memory database lives in the pool's one connection, so its
    // writes run there.
    let write_conn = if in_memory {
        None
    } else {
        match WriteConn::open(&options, pool.clone()).await {
            Ok(conn) => Some(conn),
            Err(e) => {
                pool.close().await;
                return Err(open_error(
                    &format!(
                        "cannot open SQLite database {} for writing",
                        filename.display()
                    ),
                    e,
                ));
            }
        }
    };
    let backend = SqliteBackend {
        pool,
        writer: Arc::new(tokio::sync::Mutex::new(write_conn)),
    };
    // A database that opens but cannot be written (read-only file or filesystem, full disk)
    // would only fail later, in a retry loop: say so now, naming the file.
    if !in_memory && let Err(e) = probe_writable(&backend).await {
        backend.pool.close().await;
        return Err(StoreError::Internal(
            format!("the SQLite database {} {e}", filename.display()).into(),
        ));
    }
    tracing::info!(path = %filename.display(), "metadata store: SQLite");
    Ok(Arc::new(SqlStore::new(backend)))
}

/// `postgres://user[:password]@host[:port]/database[?options]`. The database is created if
/// it does not exist and the user may create it.
pub(crate) async fn open_postgres(url: &str) -> Result<Arc<dyn MetadataStore>> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::InvalidArgument(format!("invalid PostgreSQL URL: {e}")))?;
    let database = options.get_database().unwrap_or("postgres").to_owned();
    let where_ = format!("{}:{}/{database}", options.get_host(), options.get_port());
    if let Ok(false) = sqlx::Postgres::database_exists(url).await {
        tracing::info!(database = %where_, "metadata store: creating the PostgreSQL database");
        if let Err(err) = sqlx::Postgres::create_database(url).await {
            // Someone else may have created it meanwhile; connecting tells.
            tracing::warn!(database = %where_, error = %err, "cannot create the PostgreSQL database");
        }
    }
    let pool = PgPoolOptions::new()
        .max_connections(16)
        // As for SQLite: never hand out a connection left inside a failed transaction.
        .before_acquire(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(|e| open_error(&format!("cannot connect to PostgreSQL at {where_}"), e))?;
    migrations::migrator(migrations::POSTGRES)
        .run(&pool)
        .await
        .map_err(|e| open_error("migrating the PostgreSQL metadata store", e))?;
    tracing::info!(database = %where_, "metadata store: PostgreSQL");
    Ok(Arc::new(SqlStore::new(PostgresBackend { pool })))
}

/// Whether an existing database file cannot be opened for writing because it, its directory
/// or its filesystem is read-only (`None` when it can, or when it does not exist).
fn read_only_cause(filename: &std::path::Path) -> Option<&'static str> {
    if !filename.is_file() {
        return None;
    }
    match std::fs::OpenOptions::new().append(true).open(filename) {
        Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => Some("its filesystem"),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some("the file"),
        Err(_) => None,
        Ok(_) => {
            // The file is writable; SQLite also needs to create `-wal`/`-shm` beside it.
            let dir = filename.parent()?;
            let probe = dir.join(format!(".flyte-rs-write-probe-{}", std::process::id()));
            match std::fs::File::create(&probe) {
                Ok(_) => {
                    let _ = std::fs::remove_file(&probe);
                    None
                }
                Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => {
                    Some("its filesystem")
                }
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some("its directory"),
                Err(_) => None,
            }
        }
    }
}

/// Why a freshly opened SQLite database cannot be written, in words for the start-up error.
async fn probe_writable(backend: &SqliteBackend) -> std::result::Result<(), String> {
    let mut tx = backend.begin().await.map_err(|e| cannot_write(&e))?;
    SqliteBackend::tx_execute(&mut tx, Stmt::new(PROBE_WRITE_SQL, Vec::new()))
        .await
        .map_err(|e| cannot_write(&e))?;
    SqliteBackend::commit(tx)
        .await
        .map_err(|e| cannot_write(&e))
}

fn cannot_write(err: &sqlx::Error) -> String {
    let code = match err {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<u32>().ok()),
        _ => None,
    };
    // Primary result codes (the low byte): SQLITE_READONLY 8, SQLITE_FULL 13.
    match code.map(|c| c & 0xff) {
        Some(8) => format!("is read-only (the file, its directory or its filesystem): {err}"),
        Some(13) => format!("cannot be written: its disk is full: {err}"),
        _ => format!("cannot be written: {err}"),
    }
}
