//! SQLite write transactions run on the caller's thread, on one dedicated connection.
//!
//! sqlx runs every SQLite statement on a worker thread of its connection and hands each one
//! over through a channel: two thread switches per statement. A creation took four write
//! statements (BEGIN, two INSERTs, COMMIT) and each engine transition as many again, all in
//! the process's one writer turn, so on two cores the writers' chain of hand-offs bounded
//! CreateExecution at ~350/s, half of the server's CPU in the kernel's scheduler
//! (docs/benchmarks.md, "Admin throughput: write transactions without thread hand-offs").
//!
//! Here the store keeps one connection for writes only, takes its handle from sqlx's worker
//! once (`lock_handle`: the worker thread then sleeps on the handle's lock for as long as the
//! connection lives) and runs each write transaction's statements on it directly through
//! rusqlite (over the same `libsqlite3-sys` sqlx links), with rusqlite's prepared-statement
//! cache. Every write already held the
//! process's writer turn, so one connection loses no concurrency; reads stay on the pool.
//! Durability is unchanged: the same WAL file, `synchronous = NORMAL`, the same COMMIT.
//!
//! Checkpoints (copying the WAL back into the database file, with an fsync of each) would
//! now run inside a COMMIT on a runtime thread, every ~1,000 WAL pages (SQLite's automatic
//! checkpoint), stalling the tasks queued behind it. The write connection instead counts the
//! WAL's pages after each commit (`sqlite3_wal_hook`, which also turns the automatic
//! checkpoint off) and, past the same 1,000, queues a checkpoint for the writer turn that a
//! pool connection runs on sqlx's worker thread (`WriteConn::commit`).

use std::collections::HashMap;
use std::ffi::c_int;
use std::mem::ManuallyDrop;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use chrono::{DateTime, Utc};
use rusqlite::ffi;
use rusqlite::types::{Null, ValueRef};
use sqlx::Connection;
use sqlx::sqlite::{LockedSqliteHandle, SqliteConnectOptions, SqliteConnection, SqlitePool};

use super::backend::{Col, Row, Value};

/// WAL pages after which a checkpoint starts (SQLite's own automatic checkpoint's default).
const CHECKPOINT_PAGES: i32 = 1000;

/// Prepared statements kept per connection (statements built for one batch size are many).
const MAX_CACHED: usize = 256;

/// The write connection: sqlx opened it (same options as the pool: WAL, busy timeout,
/// foreign keys, pragmas); its handle is held away from sqlx's worker for its whole life.
pub(crate) struct WriteConn {
    /// rusqlite's view of the handle (it does not close it); dropped first, in `Drop`.
    db: ManuallyDrop<rusqlite::Connection>,
    /// For each statement, the argument each of its parameters takes: SQLite numbers
    /// parameters in order of first appearance, so a `$N` left named (out of order or
    /// reused, see `anonymous_placeholders`) is bound by its name, as sqlx does.
    params: HashMap<String, Arc<[usize]>>,
    /// Borrows `*conn`; dropped before it (see `Drop`).
    handle: Option<LockedSqliteHandle<'static>>,
    conn: ConnPtr,
    /// Pages in the WAL after the last commit (set by `wal_pages`, the WAL hook).
    wal_pages: Box<AtomicI32>,
    checkpointing: Arc<AtomicBool>,
    pool: SqlitePool,
}

/// The WAL hook: rusqlite's own `wal_hook` takes a plain `fn` with no state, and the count
/// is per connection.
unsafe extern "C" fn wal_pages(
    pages: *mut std::ffi::c_void,
    _db: *mut ffi::sqlite3,
    _schema: *const std::ffi::c_char,
    n: c_int,
) -> c_int {
    // SAFETY: registered with a pointer to the connection's `wal_pages`, which outlives the
    // hook (unregistered in `Drop` first).
    unsafe { (*pages.cast::<AtomicI32>()).store(n, Ordering::Relaxed) };
    ffi::SQLITE_OK
}

/// The boxed connection `handle` borrows.
struct ConnPtr(*mut SqliteConnection);

// SAFETY: a `SqliteConnection` is `Send`; the pointer is its unique owner.
unsafe impl Send for ConnPtr {}

// SAFETY: the lock handle and the rusqlite connection refer to the connection's own SQLite
// handle, used only by the owner of the `WriteConn` (behind the writer turn, one task at a
// time); SQLite connections may move between threads (sqlx builds SQLite in serialized
// threading mode).
unsafe impl Send for WriteConn {}

impl WriteConn {
    /// `pool` (the store's readers, on the same file) runs the checkpoints.
    pub(crate) async fn open(
        options: &SqliteConnectOptions,
        pool: SqlitePool,
    ) -> Result<Self, sqlx::Error> {
        let conn = ConnPtr(Box::into_raw(Box::new(
            SqliteConnection::connect_with(options).await?,
        )));
        // SAFETY: the connection stays allocated until `Drop`, which drops the handle first;
        // the 'static lifetime never escapes this struct.
        let handle = unsafe { &mut *conn.0 }.lock_handle().await;
        let mut handle = match handle {
            Ok(h) => h,
            Err(e) => {
                // SAFETY: allocated above; nothing borrows it any more.
                drop(unsafe { Box::from_raw(conn.0) });
                return Err(e);
            }
        };
        let raw = handle.as_raw_handle();
        // SAFETY: `raw` is open and stays so while the lock handle is held; rusqlite does not
        // close a handle it was given this way, and is dropped before the lock handle.
        let db = match unsafe { rusqlite::Connection::from_handle(raw.as_ptr()) } {
            Ok(db) => db,
            Err(e) => {
                drop(handle);
                // SAFETY: allocated above; the handle borrowing it is gone.
                drop(unsafe { Box::from_raw(conn.0) });
                return Err(to_sqlx(e));
            }
        };
        db.set_prepared_statement_cache_capacity(MAX_CACHED);
        let pages = Box::new(AtomicI32::new(0));
        // SAFETY: `raw` is open; the pointer stays valid until the hook is unregistered.
        unsafe {
            ffi::sqlite3_wal_hook(
                raw.as_ptr(),
                Some(wal_pages),
                ptr::from_ref::<AtomicI32>(&pages).cast_mut().cast(),
            );
        }
        Ok(Self {
            db: ManuallyDrop::new(db),
            params: HashMap::new(),
            handle: Some(handle),
            conn,
            wal_pages: pages,
            checkpointing: Arc::default(),
            pool,
        })
    }

    /// Commits the open transaction; past [`CHECKPOINT_PAGES`] of WAL, starts a checkpoint
    /// unless one is pending. It waits for the writer turn (`writer`, the mutex this
    /// connection lives in) like a write, so it copies a WAL that no writer is appending to
    /// and the next write restarts the log from its beginning (a checkpoint racing the
    /// writers never caught up: the WAL grew without bound); it runs on a pool connection,
    /// on sqlx's worker thread, so no runtime thread waits for its writes and fsyncs.
    pub(crate) fn commit(
        &mut self,
        writer: &Arc<tokio::sync::Mutex<Option<WriteConn>>>,
    ) -> Result<(), sqlx::Error> {
        self.exec_plain("COMMIT")?;
        if self.wal_pages.load(Ordering::Relaxed) >= CHECKPOINT_PAGES
            && !self.checkpointing.swap(true, Ordering::AcqRel)
        {
            let (pool, pending) = (self.pool.clone(), self.checkpointing.clone());
            let writer = writer.clone();
            tokio::spawn(async move {
                let turn = writer.lock().await;
                if turn.is_some()
                    && let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                        .execute(&pool)
                        .await
                {
                    tracing::warn!(error = %err, "SQLite: WAL checkpoint");
                }
                pending.store(false, Ordering::Release);
            });
        }
        Ok(())
    }

    /// Runs SQL that takes no parameters and returns no rows (BEGIN, COMMIT, ROLLBACK).
    pub(crate) fn exec_plain(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        self.db.execute_batch(sql).map_err(to_sqlx)
    }

    /// Whether no transaction is open (SQLite's autocommit mode).
    pub(crate) fn autocommit(&self) -> bool {
        self.db.is_autocommit()
    }

    /// Runs one statement with its parameters; the rows it returns, read as `cols` (none
    /// for a write), and the number of rows it changed.
    pub(crate) fn run(
        &mut self,
        sql: &str,
        args: &[Value],
        cols: &[Col],
    ) -> Result<(Vec<Row>, u64), sqlx::Error> {
        let db = &*self.db;
        let mut stmt = db.prepare_cached(sql).map_err(to_sqlx)?;
        // Most statements come with anonymous `?` only (`anonymous_placeholders`): each
        // parameter takes the argument of its position, with no lookup.
        let params = if !sql.contains('$') {
            None
        } else if let Some(p) = self.params.get(sql) {
            Some(p.clone())
        } else {
            let p = parameter_args(&stmt, sql)?;
            if self.params.len() >= MAX_CACHED {
                self.params.clear();
            }
            self.params.insert(sql.to_owned(), p.clone());
            Some(p)
        };
        let count = match &params {
            Some(p) => p.len(),
            None => stmt.parameter_count(),
        };
        for k in 0..count {
            let i = params.as_ref().map_or(k, |p| p[k]);
            let Some(arg) = args.get(i) else {
                return Err(sqlx::Error::Protocol(format!(
                    "{sql:?} takes parameter {}, {} given",
                    i + 1,
                    args.len()
                )));
            };
            bind(&mut stmt, k + 1, arg).map_err(to_sqlx)?;
        }
        let mut rows = Vec::new();
        {
            let mut result = stmt.raw_query();
            while let Some(row) = result.next().map_err(to_sqlx)? {
                rows.push(read_row(row, cols)?);
            }
        }
        Ok((rows, db.changes()))
    }
}

/// The argument index each parameter of `stmt` takes.
fn parameter_args(stmt: &rusqlite::Statement<'_>, sql: &str) -> Result<Arc<[usize]>, sqlx::Error> {
    (1..=stmt.parameter_count())
        .map(|k| match stmt.parameter_name(k) {
            None => Ok(k - 1),
            Some(name) => name
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n >= 1)
                .map(|n| n - 1)
                .ok_or_else(|| sqlx::Error::Protocol(format!("parameter {name} in {sql:?}"))),
        })
        .collect()
}

fn bind(stmt: &mut rusqlite::Statement<'_>, i: usize, arg: &Value) -> rusqlite::Result<()> {
    match arg {
        Value::Null | Value::NullInt | Value::NullBytes | Value::NullTimestamp => {
            stmt.raw_bind_parameter(i, Null)
        }
        Value::Text(v) => stmt.raw_bind_parameter(i, v.as_str()),
        Value::Int(v) => stmt.raw_bind_parameter(i, *v),
        Value::BigInt(v) => stmt.raw_bind_parameter(i, *v),
        Value::Bytes(v) => stmt.raw_bind_parameter(i, v.as_slice()),
        Value::Timestamp(t) => stmt.raw_bind_parameter(i, t.timestamp_micros()),
    }
}

fn read_row(row: &rusqlite::Row<'_>, cols: &[Col]) -> Result<Row, sqlx::Error> {
    let mut out = Vec::with_capacity(cols.len());
    for (i, col) in cols.iter().enumerate() {
        let value = row.get_ref(i).map_err(to_sqlx)?;
        out.push(match (value, col) {
            (ValueRef::Null, _) => Value::Null,
            (ValueRef::Text(t) | ValueRef::Blob(t), Col::Text) => Value::Text(
                String::from_utf8(t.to_vec()).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            ),
            (ValueRef::Integer(n), Col::Text) => Value::Text(n.to_string()),
            (ValueRef::Real(x), Col::Text) => Value::Text(x.to_string()),
            (ValueRef::Text(b) | ValueRef::Blob(b), Col::Bytes) => Value::Bytes(b.to_vec()),
            (ValueRef::Integer(n), Col::Int) => {
                Value::Int(i32::try_from(n).map_err(|_| decode_error(i, "a 32-bit integer"))?)
            }
            (ValueRef::Integer(n), Col::BigInt) => Value::BigInt(n),
            (ValueRef::Integer(n), Col::Timestamp) => Value::Timestamp(
                DateTime::<Utc>::from_timestamp_micros(n)
                    .ok_or_else(|| decode_error(i, "a timestamp in microseconds"))?,
            ),
            (_, Col::Int | Col::BigInt) => return Err(decode_error(i, "an integer")),
            (_, Col::Timestamp) => return Err(decode_error(i, "a timestamp in microseconds")),
            (_, Col::Bytes) => return Err(decode_error(i, "bytes")),
        });
    }
    Ok(out)
}

fn decode_error(column: usize, expected: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("column {column}: not {expected}").into())
}

/// A rusqlite error as sqlx's: SQLite's own failures keep their extended code and message
/// (`classify` and the messages read them the same way).
fn to_sqlx(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::SqliteFailure(err, message) => {
            sqlx::Error::Database(Box::new(DirectError {
                code: err.extended_code,
                message: message.unwrap_or_else(|| err.to_string()),
            }))
        }
        other => sqlx::Error::Protocol(format!("SQLite: {other}")),
    }
}

impl Drop for WriteConn {
    fn drop(&mut self) {
        if !self.db.is_autocommit() {
            let _ = self.db.execute_batch("ROLLBACK");
        }
        // SAFETY: the handle is open; no hook refers to `wal_pages` after this. Then the
        // rusqlite connection finalizes its cached statements (the handle stays open), once.
        unsafe {
            ffi::sqlite3_wal_hook(self.db.handle(), None, ptr::null_mut());
            ManuallyDrop::drop(&mut self.db);
        }
        // The handle goes back to sqlx's worker, then the connection closes.
        drop(self.handle.take());
        // SAFETY: allocated by `open`, no longer borrowed.
        drop(unsafe { Box::from_raw(self.conn.0) });
    }
}

/// A SQLite error from a direct call, shaped as sqlx's own (`classify` and the messages
/// read it the same way).
#[derive(Debug)]
struct DirectError {
    /// The extended result code.
    code: c_int,
    message: String,
}

impl std::fmt::Display for DirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for DirectError {}

impl sqlx::error::DatabaseError for DirectError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use sqlx::error::ErrorKind;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}
