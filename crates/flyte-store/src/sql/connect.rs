//! Opening a store from a URL: pool options per backend, then the embedded migrations.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::SqlStore;
use super::backend::{PostgresBackend, SqliteBackend};
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
    let pool = pool_options.connect_with(options).await.map_err(|e| {
        open_error(
            &format!("cannot open SQLite database {}", filename.display()),
            e,
        )
    })?;
    migrations::migrator(migrations::SQLITE)
        .run(&pool)
        .await
        .map_err(|e| open_error("migrating the SQLite metadata store", e))?;
    tracing::info!(path = %filename.display(), "metadata store: SQLite");
    Ok(Arc::new(SqlStore::new(SqliteBackend { pool })))
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
