//! Signals (flyteadmin `gormimpl/signal_repo.go`): get-or-create by key, get, list of one
//! execution, and setting the value.

use chrono::{DateTime, Utc};

use super::backend::{Backend, Col, DbErrorKind, Row, Stmt, Value, classify};
use super::list::{self, FieldType, ListSpec, SqlBuilder, field};
use super::{Reader, SqlStore, internal, text, ts};
use crate::{ExecutionKey, ListQuery, Page, Result, SignalKey, SignalRecord, StoreError};

const SIGNAL_SELECT: &str = "SELECT project, domain, execution_name, signal_id, type, value, created_at, \
     updated_at FROM signals";
const SIGNAL_COLS: &[Col] = &[
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Bytes,
    Col::Bytes,
    Col::Timestamp,
    Col::Timestamp,
];
const KEY_WHERE: &str =
    " WHERE project = $1 AND domain = $2 AND execution_name = $3 AND signal_id = $4";

const SIGNAL_FIELDS: &[list::Field] = &[
    field("signal_id", FieldType::Text),
    field("created_at", FieldType::Timestamp),
    field("updated_at", FieldType::Timestamp),
];
const SIGNALS: ListSpec = ListSpec {
    what: "signals",
    prefixes: &["signal"],
    filters: SIGNAL_FIELDS,
    sorts: SIGNAL_FIELDS,
    default_sort: "created_at",
    tiebreak: "id",
};

fn key_args(key: &SignalKey) -> Vec<Value> {
    let e = &key.execution;
    vec![
        text(&e.project),
        text(&e.domain),
        text(&e.name),
        text(&key.signal_id),
    ]
}

fn signal_from_row(row: Row) -> Result<SignalRecord> {
    let mut r = Reader::new(row);
    Ok(SignalRecord {
        key: SignalKey {
            execution: ExecutionKey {
                project: r.text("project")?,
                domain: r.text("domain")?,
                name: r.text("execution_name")?,
            },
            signal_id: r.text("signal_id")?,
        },
        r#type: r.bytes("type")?,
        value: r.opt_bytes("value")?,
        created_at: r.timestamp("created_at")?,
        updated_at: r.timestamp("updated_at")?,
    })
}

fn key_stmt(key: &SignalKey) -> Stmt {
    Stmt {
        sql: format!("{SIGNAL_SELECT}{KEY_WHERE}").into(),
        args: key_args(key),
    }
}

impl<B: Backend> SqlStore<B> {
    pub(super) async fn get_or_create_signal_impl(
        &self,
        signal: SignalRecord,
    ) -> Result<SignalRecord> {
        let key = signal.key.clone();
        let mut args = key_args(&key);
        args.extend([
            Value::Bytes(signal.r#type),
            ts(signal.created_at),
            ts(signal.updated_at),
        ]);
        let insert = Stmt::new(
            "INSERT INTO signals (project, domain, execution_name, signal_id, type, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (project, domain, execution_name, signal_id) DO NOTHING",
            args,
        );
        let mut tx = self.begin().await?;
        B::tx_execute(&mut tx, insert)
            .await
            .map_err(|err| match classify(&err) {
                DbErrorKind::ForeignKeyViolation => StoreError::NotFound(key.execution.to_string()),
                DbErrorKind::UniqueViolation => StoreError::AlreadyExists(key.to_string()),
                DbErrorKind::StorageFull | DbErrorKind::Other => internal(err),
            })?;
        let row = B::tx_fetch(&mut tx, key_stmt(&key), SIGNAL_COLS)
            .await
            .map_err(internal)?
            .pop()
            .ok_or_else(|| StoreError::Internal(format!("{key} vanished after insert").into()))?;
        B::commit(tx).await.map_err(internal)?;
        signal_from_row(row)
    }

    pub(super) async fn get_signal_impl(&self, key: &SignalKey) -> Result<SignalRecord> {
        signal_from_row(
            self.fetch_one(key_stmt(key), SIGNAL_COLS, || key.to_string())
                .await?,
        )
    }

    pub(super) async fn list_signals_impl(
        &self,
        execution: &ExecutionKey,
        query: &ListQuery,
    ) -> Result<Page<SignalRecord>> {
        let paging = list::parse_paging(query)?;
        let mut b = SqlBuilder::new(SIGNAL_SELECT);
        b.push(" WHERE project = ")
            .bind(text(&execution.project))
            .push(" AND domain = ")
            .bind(text(&execution.domain))
            .push(" AND execution_name = ")
            .bind(text(&execution.name));
        list::push_filters(&mut b, &SIGNALS, &query.filters)?;
        list::push_order_and_page(&mut b, &SIGNALS, query, paging)?;
        let rows = self
            .backend
            .fetch(b.build(), SIGNAL_COLS)
            .await
            .map_err(internal)?;
        let (rows, next_token) = paging.page(rows);
        let items = rows
            .into_iter()
            .map(signal_from_row)
            .collect::<Result<_>>()?;
        Ok(Page { items, next_token })
    }

    pub(super) async fn set_signal_value_impl(
        &self,
        key: &SignalKey,
        value: Vec<u8>,
        at: DateTime<Utc>,
    ) -> Result<SignalRecord> {
        let mut args = key_args(key);
        args.extend([Value::Bytes(value), ts(at)]);
        let update = Stmt {
            sql: format!("UPDATE signals SET value = $5, updated_at = $6{KEY_WHERE}").into(),
            args,
        };
        let mut tx = self.begin().await?;
        let n = B::tx_execute(&mut tx, update).await.map_err(internal)?;
        if n == 0 {
            return Err(StoreError::NotFound(key.to_string()));
        }
        let row = B::tx_fetch(&mut tx, key_stmt(key), SIGNAL_COLS)
            .await
            .map_err(internal)?
            .pop()
            .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        B::commit(tx).await.map_err(internal)?;
        signal_from_row(row)
    }
}
