//! The thin per-database layer: running a [`Stmt`] (SQL text plus typed [`Value`]s) on a pool
//! or inside a transaction, and reading rows back as [`Value`]s. Everything above it — SQL
//! text, list translation, record mapping, error mapping — is shared by both databases.
//!
//! The SQL dialect both accept: `$N` placeholders (SQLite reads `$N` as parameter N),
//! `ON CONFLICT … DO UPDATE`, `RETURNING`, `LIKE … ESCAPE`, `LIMIT … OFFSET`. The column
//! types differ only in the migrations; timestamps are bound per backend (SQLite: INTEGER
//! microseconds since the epoch, PostgreSQL: TIMESTAMPTZ).

use std::borrow::Cow;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A typed SQL parameter or column value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Text(String),
    /// INTEGER columns (states, resource types).
    Int(i32),
    /// BIGINT columns, LIMIT and OFFSET.
    BigInt(i64),
    Bytes(Vec<u8>),
    Timestamp(DateTime<Utc>),
    /// A NULL for an INTEGER column (typed, so PostgreSQL knows the parameter type).
    NullInt,
    /// A NULL for a BLOB/BYTEA column.
    NullBytes,
    /// A NULL for a timestamp column.
    NullTimestamp,
}

/// The type a result column is read as. Every column is read as nullable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col {
    Text,
    Int,
    BigInt,
    Bytes,
    Timestamp,
}

/// One statement ready to run: SQL text (static, or built from whitelisted identifiers only)
/// and its parameters in `$1..$N` order.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub sql: Cow<'static, str>,
    pub args: Vec<Value>,
}

impl Stmt {
    pub fn new(sql: &'static str, args: Vec<Value>) -> Self {
        Self {
            sql: Cow::Borrowed(sql),
            args,
        }
    }
}

pub(crate) type Row = Vec<Value>;

/// What went wrong in the database, as far as the store's callers care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DbErrorKind {
    UniqueViolation,
    ForeignKeyViolation,
    /// No space left for the database: SQLite `SQLITE_FULL` (13, also as the low byte of an
    /// extended code), PostgreSQL SQLSTATE 53100 `disk_full`.
    StorageFull,
    Other,
}

pub(crate) fn classify(err: &sqlx::Error) -> DbErrorKind {
    match err {
        sqlx::Error::Database(db) => match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => DbErrorKind::UniqueViolation,
            sqlx::error::ErrorKind::ForeignKeyViolation => DbErrorKind::ForeignKeyViolation,
            _ if is_storage_full(db.code().as_deref()) => DbErrorKind::StorageFull,
            _ => DbErrorKind::Other,
        },
        _ => DbErrorKind::Other,
    }
}

/// PostgreSQL reports SQLSTATEs (always five characters), SQLite extended result codes as
/// decimal numbers of at most four digits whose low byte is the primary code.
fn is_storage_full(code: Option<&str>) -> bool {
    match code {
        Some(sqlstate) if sqlstate.len() == 5 => sqlstate == "53100",
        Some(code) => code.parse::<u32>().is_ok_and(|c| c & 0xff == 13),
        None => false,
    }
}

/// One database. Write paths run in a [`Backend::Tx`]; dropping it uncommitted rolls back,
/// so an early `?` never leaves anything partial behind.
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    type Tx: Send;

    /// `sqlite` or `postgres` (metrics label, messages).
    fn name(&self) -> &'static str;

    /// Appended to a SELECT inside a write transaction to lock the rows it reads
    /// (PostgreSQL `FOR UPDATE`; empty for SQLite, whose write transactions are serial).
    const LOCK_ROWS: &'static str;

    /// Parameters per multi-row statement that write fastest (SQLite slows down on very large
    /// statements; PostgreSQL gains from fewer round trips).
    const BATCH_PARAMS: usize;

    /// Whether concurrent creations share one write transaction (SQLite, whose writers take
    /// turns anyway; PostgreSQL writes them concurrently).
    const GROUP_COMMIT: bool;

    /// Starts a write transaction. SQLite takes the write lock up front (`BEGIN IMMEDIATE`),
    /// so a transaction that reads before it writes never fails to upgrade its lock.
    async fn begin(&self) -> Result<Self::Tx, sqlx::Error>;
    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error>;

    /// Runs a statement in a transaction; the number of rows affected.
    async fn tx_execute(tx: &mut Self::Tx, stmt: Stmt) -> Result<u64, sqlx::Error>;
    async fn tx_fetch(tx: &mut Self::Tx, stmt: Stmt, cols: &[Col])
    -> Result<Vec<Row>, sqlx::Error>;

    /// Runs a single read outside an explicit transaction.
    async fn fetch(&self, stmt: Stmt, cols: &[Col]) -> Result<Vec<Row>, sqlx::Error>;

    /// A round trip to the database.
    async fn ping(&self) -> Result<(), sqlx::Error>;
    /// Whether the database can be written now: a committed write that changes nothing
    /// (sqlx's newest migration row rewritten with its own values, a table every store has);
    /// for SQLite first whether its filesystem has [`MIN_FREE_BYTES`] free, since a failed
    /// bigger write leaves room for a probe that small even on a full disk.
    async fn probe_write(&self) -> crate::Result<()>;
    async fn close(&self);

    /// Sends `payload` to every listener of `channel` (PostgreSQL `NOTIFY`; SQLite, a
    /// single-process store, has no one else to tell: nothing).
    async fn notify(&self, channel: &str, payload: &str) -> Result<(), sqlx::Error>;
    /// Payloads sent to `channel` from now on, by any process (PostgreSQL `LISTEN`); `None`
    /// on SQLite. An empty payload means the connection was lost and notifications sent
    /// meanwhile are gone.
    async fn listen(
        &self,
        channel: &str,
    ) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, sqlx::Error>;
}

/// Implements [`Backend`] for one sqlx database. The two instantiations differ only in how a
/// transaction begins and how timestamps are bound and read.
macro_rules! sql_backend {
    (
        $backend:ident, $db:ty, $name:literal,
        fields: { $($field:ident: $field_ty:ty),* $(,)? },
        tx: $tx:ty,
        begin: |$this:ident| $begin:expr,
        lock_rows: $lock_rows:literal,
        batch_params: $batch_params:literal,
        group_commit: $group_commit:literal,
        sql_text: $sql_text:path,
        bind_timestamp: |$ts:ident| $bind_ts:expr,
        timestamp_type: $ts_ty:ty,
        null_timestamp: $null_ts:expr,
        read_timestamp: |$raw:ident| $read_ts:expr $(,)?
    ) => {
        pub(crate) struct $backend {
            pub pool: sqlx::Pool<$db>,
            $(pub $field: $field_ty,)*
        }

        impl $backend {
            fn query(
                stmt: $crate::sql::backend::Stmt,
            ) -> sqlx::query::Query<'static, $db, <$db as sqlx::Database>::Arguments> {
                use $crate::sql::backend::Value;
                let mut q = sqlx::query(sqlx::AssertSqlSafe($sql_text(stmt.sql)));
                for arg in stmt.args {
                    q = match arg {
                        Value::Null => q.bind(None::<String>),
                        Value::NullInt => q.bind(None::<i32>),
                        Value::NullBytes => q.bind(None::<Vec<u8>>),
                        Value::NullTimestamp => q.bind($null_ts),
                        Value::Text(v) => q.bind(v),
                        Value::Int(v) => q.bind(v),
                        Value::BigInt(v) => q.bind(v),
                        Value::Bytes(v) => q.bind(v),
                        Value::Timestamp($ts) => q.bind($bind_ts),
                    };
                }
                q
            }

            fn read_row(
                row: &<$db as sqlx::Database>::Row,
                cols: &[$crate::sql::backend::Col],
            ) -> Result<$crate::sql::backend::Row, sqlx::Error> {
                use sqlx::Row as _;
                use $crate::sql::backend::{Col, Value};
                let mut out = Vec::with_capacity(cols.len());
                for (i, col) in cols.iter().enumerate() {
                    let value = match col {
                        Col::Text => row.try_get::<Option<String>, _>(i)?.map(Value::Text),
                        Col::Int => row.try_get::<Option<i32>, _>(i)?.map(Value::Int),
                        Col::BigInt => row.try_get::<Option<i64>, _>(i)?.map(Value::BigInt),
                        Col::Bytes => row.try_get::<Option<Vec<u8>>, _>(i)?.map(Value::Bytes),
                        Col::Timestamp => match row.try_get::<Option<$ts_ty>, _>(i)? {
                            Some($raw) => Some(Value::Timestamp($read_ts)),
                            None => None,
                        },
                    };
                    out.push(value.unwrap_or(Value::Null));
                }
                Ok(out)
            }
        }

        #[async_trait::async_trait]
        impl $crate::sql::backend::Backend for $backend {
            type Tx = $tx;

            const LOCK_ROWS: &'static str = $lock_rows;
            const BATCH_PARAMS: usize = $batch_params;
            const GROUP_COMMIT: bool = $group_commit;

            fn name(&self) -> &'static str {
                $name
            }

            async fn begin(&self) -> Result<Self::Tx, sqlx::Error> {
                let $this = self;
                $begin.await
            }

            async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error> {
                $crate::sql::backend::TxRun::commit(tx).await
            }

            async fn tx_execute(
                tx: &mut Self::Tx,
                stmt: $crate::sql::backend::Stmt,
            ) -> Result<u64, sqlx::Error> {
                $crate::sql::backend::TxRun::execute(tx, stmt).await
            }

            #[allow(dead_code)] // reads inside a transaction: the engine's read-modify-write
            async fn tx_fetch(
                tx: &mut Self::Tx,
                stmt: $crate::sql::backend::Stmt,
                cols: &[$crate::sql::backend::Col],
            ) -> Result<Vec<$crate::sql::backend::Row>, sqlx::Error> {
                $crate::sql::backend::TxRun::fetch(tx, stmt, cols).await
            }

            async fn fetch(
                &self,
                stmt: $crate::sql::backend::Stmt,
                cols: &[$crate::sql::backend::Col],
            ) -> Result<Vec<$crate::sql::backend::Row>, sqlx::Error> {
                let rows = Self::query(stmt).fetch_all(&self.pool).await?;
                rows.iter().map(|r| Self::read_row(r, cols)).collect()
            }

            async fn ping(&self) -> Result<(), sqlx::Error> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
            }

            async fn probe_write(&self) -> crate::Result<()> {
                use $crate::sql::internal;
                self.check_space()?;
                let mut tx = self.begin().await.map_err(internal)?;
                Self::tx_execute(&mut tx, $crate::sql::backend::Stmt::new(PROBE_WRITE_SQL, Vec::new()))
                    .await
                    .map_err(internal)?;
                Self::commit(tx).await.map_err(internal)
            }

            async fn close(&self) {
                self.db_close().await;
                self.pool.close().await
            }

            async fn notify(&self, channel: &str, payload: &str) -> Result<(), sqlx::Error> {
                self.db_notify(channel, payload).await
            }

            async fn listen(
                &self,
                channel: &str,
            ) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, sqlx::Error> {
                self.db_listen(channel).await
            }
        }
    };
}

sql_backend!(
    SqliteBackend, sqlx::Sqlite, "sqlite",
    fields: { writer: std::sync::Arc<tokio::sync::Mutex<Option<super::sqlite_direct::WriteConn>>> },
    tx: SqliteTx,
    begin: |backend| SqliteTx::begin(backend),
    lock_rows: "",
    batch_params: 300,
    group_commit: true,
    sql_text: anonymous_placeholders,
    bind_timestamp: |ts| ts.timestamp_micros(),
    timestamp_type: i64,
    null_timestamp: None::<i64>,
    read_timestamp: |micros| DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default(),
);

sql_backend!(
    PostgresBackend, sqlx::Postgres, "postgres",
    fields: {},
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    begin: |backend| backend.pool.begin(),
    lock_rows: " FOR UPDATE",
    batch_params: 8000,
    group_commit: false,
    sql_text: std::convert::identity,
    bind_timestamp: |ts| ts,
    timestamp_type: DateTime<Utc>,
    null_timestamp: None::<DateTime<Utc>>,
    read_timestamp: |ts| ts,
);

/// `$1, $2, …, $N` in that order, each once, become SQLite's anonymous `?`; anything else
/// stays as it is. A `$N` is a named parameter to SQLite: sqlx finds each one's number with
/// `sqlite3_bind_parameter_name`, a scan of the statement's parameter list, so binding a
/// statement of N parameters cost O(N²) (12% of the server's CPU while 40 `@dynamic` tasks
/// of 1,000 nodes each were taken in, docs/benchmarks.md); an anonymous `?` has no name and
/// binds in order.
pub(crate) fn anonymous_placeholders(sql: Cow<'static, str>) -> Cow<'static, str> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut next = 1u64;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'$' => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                let n: Option<u64> = sql[i + 1..i + 1 + digits].parse().ok();
                if n != Some(next) {
                    return sql;
                }
                next += 1;
                out.push_str(&sql[copied..i]);
                out.push('?');
                i += 1 + digits;
                copied = i;
                continue;
            }
            None => {}
        }
        i += 1;
    }
    if next == 1 || quote.is_some() {
        return sql;
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

/// A committed write that changes nothing: sqlx's newest migration row rewritten with its own
/// values (a table every store has).
pub(crate) const PROBE_WRITE_SQL: &str = "UPDATE _sqlx_migrations SET success = success \
     WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)";

/// How a transaction runs its statements (per database: SQLite's direct write connection or
/// a sqlx transaction).
#[async_trait]
pub(crate) trait TxRun: Send + Sized {
    async fn execute(&mut self, stmt: Stmt) -> Result<u64, sqlx::Error>;
    async fn fetch(&mut self, stmt: Stmt, cols: &[Col]) -> Result<Vec<Row>, sqlx::Error>;
    async fn commit(self) -> Result<(), sqlx::Error>;
}

#[async_trait]
impl TxRun for sqlx::Transaction<'static, sqlx::Postgres> {
    async fn execute(&mut self, stmt: Stmt) -> Result<u64, sqlx::Error> {
        Ok(PostgresBackend::query(stmt)
            .execute(&mut **self)
            .await?
            .rows_affected())
    }

    async fn fetch(&mut self, stmt: Stmt, cols: &[Col]) -> Result<Vec<Row>, sqlx::Error> {
        let rows = PostgresBackend::query(stmt).fetch_all(&mut **self).await?;
        rows.iter()
            .map(|r| PostgresBackend::read_row(r, cols))
            .collect()
    }

    async fn commit(self) -> Result<(), sqlx::Error> {
        sqlx::Transaction::commit(self).await
    }
}

/// A SQLite write transaction, holding the process's writer turn until it commits or is
/// dropped. SQLite admits one writer per database: without the turn, concurrent writers each
/// took a pool connection and spun in SQLite's busy handler, which sleeps 1 ms, 2 ms, … up to
/// 100 ms between tries, so under load a write waited for the sleep rather than for the
/// writer before it (CreateExecution's p99 of 175 ms, docs/benchmarks.md) and the waiting
/// writers held the connections readers needed. The turn is a FIFO async mutex taken BEFORE a
/// connection, so writers queue without holding one and each starts as soon as the one
/// before it ends. Other processes on the same file still meet the busy handler.
///
/// The turn holds the store's write connection (a file database): the statements then run
/// on the caller's thread through SQLite's C API, with no hand-off to sqlx's worker thread
/// (`sqlite_direct`). An in-memory database, which lives in its pool's one connection, runs
/// them as a sqlx transaction on that connection.
pub(crate) struct SqliteTx {
    // Declared first so it drops first: its rollback is queued before the turn passes on.
    pooled: Option<sqlx::Transaction<'static, sqlx::Sqlite>>,
    turn: tokio::sync::OwnedMutexGuard<Option<super::sqlite_direct::WriteConn>>,
}

impl SqliteTx {
    async fn begin(backend: &SqliteBackend) -> Result<Self, sqlx::Error> {
        let mut turn = backend.writer.clone().lock_owned().await;
        // IMMEDIATE takes the write lock up front, so a transaction that reads before it
        // writes never fails to upgrade its lock.
        if let Some(conn) = turn.as_mut() {
            conn.exec_plain("BEGIN IMMEDIATE")?;
            return Ok(Self { pooled: None, turn });
        }
        let tx = backend.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Self {
            pooled: Some(tx),
            turn,
        })
    }

    fn direct(&mut self) -> &mut super::sqlite_direct::WriteConn {
        self.turn
            .as_mut()
            .expect("a SQLite transaction without a sqlx transaction has the write connection")
    }
}

#[async_trait]
impl TxRun for SqliteTx {
    async fn execute(&mut self, stmt: Stmt) -> Result<u64, sqlx::Error> {
        if let Some(tx) = self.pooled.as_mut() {
            return Ok(SqliteBackend::query(stmt)
                .execute(&mut **tx)
                .await?
                .rows_affected());
        }
        let sql = anonymous_placeholders(stmt.sql);
        Ok(self.direct().run(&sql, &stmt.args, &[])?.1)
    }

    async fn fetch(&mut self, stmt: Stmt, cols: &[Col]) -> Result<Vec<Row>, sqlx::Error> {
        if let Some(tx) = self.pooled.as_mut() {
            let rows = SqliteBackend::query(stmt).fetch_all(&mut **tx).await?;
            return rows
                .iter()
                .map(|r| SqliteBackend::read_row(r, cols))
                .collect();
        }
        let sql = anonymous_placeholders(stmt.sql);
        Ok(self.direct().run(&sql, &stmt.args, cols)?.0)
    }

    async fn commit(mut self) -> Result<(), sqlx::Error> {
        if let Some(tx) = self.pooled.take() {
            return tx.commit().await;
        }
        // On failure `Drop` rolls back whatever SQLite kept open.
        let writer = tokio::sync::OwnedMutexGuard::mutex(&self.turn).clone();
        self.direct().commit(&writer)
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.pooled.is_none()
            && let Some(conn) = self.turn.as_mut()
            && !conn.autocommit()
            && let Err(err) = conn.exec_plain("ROLLBACK")
        {
            tracing::warn!(error = %err, "SQLite: rolling back a write transaction");
        }
    }
}

impl SqliteBackend {
    /// Closes the write connection once the writer before has finished; later writes fail
    /// as the closed pool's do.
    async fn db_close(&self) {
        self.writer.lock().await.take();
    }

    async fn db_notify(&self, _channel: &str, _payload: &str) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn db_listen(
        &self,
        _channel: &str,
    ) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, sqlx::Error> {
        Ok(None)
    }
}

impl PostgresBackend {
    async fn db_close(&self) {}

    async fn db_notify(&self, channel: &str, payload: &str) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    async fn db_listen(
        &self,
        channel: &str,
    ) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, sqlx::Error> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(channel).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        let channel = channel.to_owned();
        tokio::spawn(async move {
            loop {
                let sent = match listener.try_recv().await {
                    Ok(Some(n)) => tx.send(n.payload().to_owned()).await,
                    // The connection was lost (it reconnects on the next call): tell the
                    // receiver that notifications may have been missed.
                    Ok(None) => tx.send(String::new()).await,
                    Err(err) => {
                        tracing::warn!(%channel, error = %err, "notification listener: reconnecting");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        if tx.is_closed() {
                            break;
                        }
                        continue;
                    }
                };
                if sent.is_err() {
                    break; // the receiver is gone
                }
            }
        });
        Ok(Some(rx))
    }
}

/// Free space below which a SQLite store that already met a full disk stays not ready.
pub(crate) const MIN_FREE_BYTES: u64 = 1 << 20;

impl SqliteBackend {
    fn check_space(&self) -> crate::Result<()> {
        let options = self.pool.connect_options();
        let file = options.get_filename();
        let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) else {
            return Ok(());
        };
        // In-memory databases have no directory on disk; a failing statvfs tells nothing.
        let Ok(fs) = rustix::fs::statvfs(dir) else {
            return Ok(());
        };
        let free = fs.f_bavail.saturating_mul(fs.f_frsize);
        if free < MIN_FREE_BYTES {
            return Err(crate::StoreError::StorageFull(format!(
                "{} has {} KiB free (at least {} KiB needed)",
                dir.display(),
                free / 1024,
                MIN_FREE_BYTES / 1024
            )));
        }
        Ok(())
    }
}

impl PostgresBackend {
    /// The server's disk is not visible from here: the probe write alone tells.
    fn check_space(&self) -> crate::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &'static str) -> String {
        anonymous_placeholders(Cow::Borrowed(sql)).into_owned()
    }

    #[test]
    fn placeholders_in_order_become_anonymous() {
        assert_eq!(
            rewritten(
                "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT (a) DO UPDATE SET b = excluded.b"
            ),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) ON CONFLICT (a) DO UPDATE SET b = excluded.b"
        );
        assert_eq!(
            rewritten("SELECT x FROM t WHERE a = $1 AND b LIKE $2 ESCAPE '\\' LIMIT $3"),
            "SELECT x FROM t WHERE a = ? AND b LIKE ? ESCAPE '\\' LIMIT ?"
        );
    }

    #[test]
    fn placeholders_reused_or_out_of_order_stay_numbered() {
        for sql in [
            "SELECT x FROM t WHERE a = $1 OR b = $1",
            "SELECT x FROM t WHERE a = $2 AND b = $1",
            "SELECT x FROM t WHERE a = $1 AND b = $3",
            "SELECT x FROM t WHERE a = $ AND b = $1",
            "SELECT 1",
        ] {
            assert_eq!(rewritten(sql), sql);
        }
    }

    #[test]
    fn dollars_inside_quotes_are_text() {
        assert_eq!(
            rewritten("SELECT x FROM t WHERE a = '$1' AND \"$2\" = $1"),
            "SELECT x FROM t WHERE a = '$1' AND \"$2\" = ?"
        );
    }

    /// What the rewrite is for: sqlx binds `?` by position and `$N` by name, and both give
    /// the same rows.
    #[tokio::test]
    async fn sqlite_binds_anonymous_placeholders_in_order() {
        use sqlx::Row;
        let pool = sqlx::SqlitePool::connect("sqlite::memory:")
            .await
            .expect("memory db");
        let sql = "SELECT $1 || $2 || $3 AS s";
        let fetch = |sql: String| {
            let pool = pool.clone();
            async move {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind("a")
                    .bind("b")
                    .bind("c")
                    .fetch_one(&pool)
                    .await
                    .expect("query")
                    .get::<String, _>("s")
            }
        };
        let named = fetch(sql.to_string()).await;
        let anonymous = fetch(rewritten(sql)).await;
        assert_eq!(named, "abc");
        assert_eq!(anonymous, "abc");
    }
}
