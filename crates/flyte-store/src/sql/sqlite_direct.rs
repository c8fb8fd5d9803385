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
//! connection lives) and runs each write transaction's statements through SQLite's C API
//! directly, with its own cache of prepared statements. Every write already held the
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
use std::ffi::{CStr, c_int};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use chrono::{DateTime, Utc};
use libsqlite3_sys as ffi;
use sqlx::Connection;
use sqlx::sqlite::{LockedSqliteHandle, SqliteConnectOptions, SqliteConnection, SqlitePool};

use super::backend::{Col, Row, Value};

/// WAL pages after which a checkpoint starts (SQLite's own automatic checkpoint's default).
const CHECKPOINT_PAGES: i32 = 1000;

/// Prepared statements kept per connection; past it the cache starts over (statements built
/// for one batch size are many).
const MAX_CACHED: usize = 256;

/// A cached statement and, for each of its parameters, the argument it takes: SQLite numbers
/// parameters in order of first appearance, so a `$N` left named (out of order or reused,
/// see `anonymous_placeholders`) is bound by its name, as sqlx does.
#[derive(Clone)]
struct Prepared {
    stmt: NonNull<ffi::sqlite3_stmt>,
    args: Vec<usize>,
}

/// The write connection: sqlx opened it (same options as the pool: WAL, busy timeout,
/// foreign keys, pragmas); its handle is held away from sqlx's worker for its whole life.
pub(crate) struct WriteConn {
    stmts: HashMap<String, Prepared>,
    db: NonNull<ffi::sqlite3>,
    /// Borrows `*conn`; dropped before it (see `Drop`).
    handle: Option<LockedSqliteHandle<'static>>,
    conn: ConnPtr,
    /// Pages in the WAL after the last commit (set by `wal_pages`, the WAL hook).
    wal_pages: Box<AtomicI32>,
    checkpointing: Arc<AtomicBool>,
    pool: SqlitePool,
}

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

// SAFETY: the raw pointers are the connection's own handle and statements, used only by the
// owner of the `WriteConn` (behind the writer turn, one task at a time); SQLite connections
// may move between threads (sqlx builds SQLite in serialized threading mode).
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
        let db = handle.as_raw_handle();
        let pages = Box::new(AtomicI32::new(0));
        // SAFETY: `db` is open; the pointer stays valid until the hook is unregistered.
        unsafe {
            ffi::sqlite3_wal_hook(
                db.as_ptr(),
                Some(wal_pages),
                ptr::from_ref::<AtomicI32>(&pages).cast_mut().cast(),
            );
        }
        Ok(Self {
            stmts: HashMap::new(),
            db,
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
        self.exec_plain(c"COMMIT")?;
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

    fn error(&self, rc: c_int) -> sqlx::Error {
        // SAFETY: `db` is open; errmsg returns a NUL-terminated string owned by SQLite.
        let (code, message) = unsafe {
            let code = ffi::sqlite3_extended_errcode(self.db.as_ptr());
            let msg = ffi::sqlite3_errmsg(self.db.as_ptr());
            let message = if msg.is_null() {
                String::new()
            } else {
                CStr::from_ptr(msg).to_string_lossy().into_owned()
            };
            // A step's rc is the extended code already; errcode may have been reset.
            (if code == 0 { rc } else { code }, message)
        };
        sqlx::Error::Database(Box::new(DirectError { code, message }))
    }

    /// Runs SQL that takes no parameters and returns no rows (BEGIN, COMMIT, ROLLBACK).
    pub(crate) fn exec_plain(&mut self, sql: &'static CStr) -> Result<(), sqlx::Error> {
        // SAFETY: `db` is open and `sql` NUL-terminated.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.db.as_ptr(),
                sql.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.error(rc))
        }
    }

    /// Whether no transaction is open (SQLite's autocommit mode).
    pub(crate) fn autocommit(&self) -> bool {
        // SAFETY: `db` is open.
        unsafe { ffi::sqlite3_get_autocommit(self.db.as_ptr()) != 0 }
    }

    fn prepare(&mut self, sql: &str) -> Result<Prepared, sqlx::Error> {
        if let Some(prepared) = self.stmts.get(sql) {
            return Ok(prepared.clone());
        }
        if self.stmts.len() >= MAX_CACHED {
            self.finalize_all();
        }
        let mut stmt = ptr::null_mut();
        let mut tail = ptr::null();
        // SAFETY: `sql` is valid for `len` bytes; SQLite writes the statement and tail.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db.as_ptr(),
                sql.as_ptr().cast(),
                sql.len() as c_int,
                ffi::SQLITE_PREPARE_PERSISTENT as _,
                &mut stmt,
                &mut tail,
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.error(rc));
        }
        let Some(stmt) = NonNull::new(stmt) else {
            return Err(sqlx::Error::Protocol(format!(
                "empty SQL statement: {sql:?}"
            )));
        };
        // SAFETY: `tail` points into `sql` (or is its end).
        let rest = unsafe { tail.cast::<u8>().offset_from(sql.as_ptr()) } as usize;
        if !sql[rest.min(sql.len())..]
            .trim()
            .trim_end_matches(';')
            .trim()
            .is_empty()
        {
            // SAFETY: just prepared, used nowhere else.
            unsafe { ffi::sqlite3_finalize(stmt.as_ptr()) };
            return Err(sqlx::Error::Protocol(format!(
                "one statement per write call, got more: {sql:?}"
            )));
        }
        // SAFETY: `stmt` is prepared; parameter names are NUL-terminated or NULL (`?`).
        let args = unsafe {
            let count = ffi::sqlite3_bind_parameter_count(stmt.as_ptr());
            (1..=count)
                .map(|k| {
                    let name = ffi::sqlite3_bind_parameter_name(stmt.as_ptr(), k);
                    if name.is_null() {
                        return Ok(k as usize - 1);
                    }
                    let name = CStr::from_ptr(name).to_string_lossy();
                    name.strip_prefix('$')
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|n| *n >= 1)
                        .map(|n| n - 1)
                        .ok_or_else(|| {
                            sqlx::Error::Protocol(format!("parameter {name} in {sql:?}"))
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let args = match args {
            Ok(args) => args,
            Err(e) => {
                // SAFETY: just prepared, used nowhere else.
                unsafe { ffi::sqlite3_finalize(stmt.as_ptr()) };
                return Err(e);
            }
        };
        let prepared = Prepared { stmt, args };
        self.stmts.insert(sql.to_owned(), prepared.clone());
        Ok(prepared)
    }

    fn finalize_all(&mut self) {
        for (_, prepared) in self.stmts.drain() {
            // SAFETY: each cached statement is finalized once, here.
            unsafe { ffi::sqlite3_finalize(prepared.stmt.as_ptr()) };
        }
    }

    /// Runs one statement with its parameters; the rows it returns, read as `cols` (none
    /// for a write), and the number of rows it changed.
    pub(crate) fn run(
        &mut self,
        sql: &str,
        args: &[Value],
        cols: &[Col],
    ) -> Result<(Vec<Row>, u64), sqlx::Error> {
        let prepared = self.prepare(sql)?;
        let s = prepared.stmt.as_ptr();
        let result = (|| {
            for (k, &i) in prepared.args.iter().enumerate() {
                let Some(arg) = args.get(i) else {
                    return Err(sqlx::Error::Protocol(format!(
                        "{sql:?} takes parameter {}, {} given",
                        i + 1,
                        args.len()
                    )));
                };
                let rc = bind(s, k as c_int + 1, arg);
                if rc != ffi::SQLITE_OK {
                    return Err(self.error(rc));
                }
            }
            let mut rows = Vec::new();
            loop {
                // SAFETY: `s` is a prepared statement of `db` with all parameters bound;
                // the bound values (SQLITE_STATIC) outlive the step (`args` is borrowed).
                match unsafe { ffi::sqlite3_step(s) } {
                    ffi::SQLITE_ROW => rows.push(read_row(s, cols)?),
                    ffi::SQLITE_DONE => break,
                    rc => return Err(self.error(rc)),
                }
            }
            // SAFETY: `db` is open.
            let changed = unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) } as u64;
            Ok((rows, changed))
        })();
        // SAFETY: resetting and unbinding a statement that is not running; after this no
        // pointer into `args` is kept.
        unsafe {
            ffi::sqlite3_reset(s);
            ffi::sqlite3_clear_bindings(s);
        }
        result
    }
}

fn bind(s: *mut ffi::sqlite3_stmt, i: c_int, arg: &Value) -> c_int {
    // SAFETY: the pointers passed stay valid until the statement is reset (`run`).
    unsafe {
        match arg {
            Value::Null | Value::NullInt | Value::NullBytes | Value::NullTimestamp => {
                ffi::sqlite3_bind_null(s, i)
            }
            Value::Text(v) => ffi::sqlite3_bind_text64(
                s,
                i,
                v.as_ptr().cast(),
                v.len() as u64,
                ffi::SQLITE_STATIC(),
                ffi::SQLITE_UTF8 as u8,
            ),
            Value::Int(v) => ffi::sqlite3_bind_int(s, i, *v),
            Value::BigInt(v) => ffi::sqlite3_bind_int64(s, i, *v),
            Value::Bytes(v) => ffi::sqlite3_bind_blob64(
                s,
                i,
                v.as_ptr().cast(),
                v.len() as u64,
                ffi::SQLITE_STATIC(),
            ),
            Value::Timestamp(t) => ffi::sqlite3_bind_int64(s, i, t.timestamp_micros()),
        }
    }
}

fn read_row(s: *mut ffi::sqlite3_stmt, cols: &[Col]) -> Result<Row, sqlx::Error> {
    let mut row = Vec::with_capacity(cols.len());
    for (i, col) in cols.iter().enumerate() {
        let i = i as c_int;
        // SAFETY: `s` is on a row; the pointers SQLite returns are valid until the next
        // step or reset, and are copied at once.
        let value = unsafe {
            if ffi::sqlite3_column_type(s, i) == ffi::SQLITE_NULL {
                Value::Null
            } else {
                match col {
                    Col::Text => {
                        let p = ffi::sqlite3_column_text(s, i);
                        let n = ffi::sqlite3_column_bytes(s, i) as usize;
                        let bytes = if p.is_null() {
                            &[][..]
                        } else {
                            std::slice::from_raw_parts(p, n)
                        };
                        Value::Text(
                            String::from_utf8(bytes.to_vec())
                                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                        )
                    }
                    Col::Int => Value::Int(ffi::sqlite3_column_int(s, i)),
                    Col::BigInt => Value::BigInt(ffi::sqlite3_column_int64(s, i)),
                    Col::Bytes => {
                        let p = ffi::sqlite3_column_blob(s, i).cast::<u8>();
                        let n = ffi::sqlite3_column_bytes(s, i) as usize;
                        Value::Bytes(if p.is_null() {
                            Vec::new()
                        } else {
                            std::slice::from_raw_parts(p, n).to_vec()
                        })
                    }
                    Col::Timestamp => Value::Timestamp(
                        DateTime::<Utc>::from_timestamp_micros(ffi::sqlite3_column_int64(s, i))
                            .unwrap_or_default(),
                    ),
                }
            }
        };
        row.push(value);
    }
    Ok(row)
}

impl Drop for WriteConn {
    fn drop(&mut self) {
        if !self.autocommit() {
            let _ = self.exec_plain(c"ROLLBACK");
        }
        self.finalize_all();
        // SAFETY: `db` is open; no hook refers to `wal_pages` after this.
        unsafe { ffi::sqlite3_wal_hook(self.db.as_ptr(), None, ptr::null_mut()) };
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
