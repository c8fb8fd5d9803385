//! Conformance tests for signals (run on every backend by the `conformance!` macro).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use flyte_store::{FilterOp, MetadataStore, SignalKey, SignalRecord, SortDirection, StoreError};

use crate::executions_conformance::{ekey, execution};
use crate::t;
use crate::tests::{f, q, sort};

fn skey(exec: &str, id: &str) -> SignalKey {
    SignalKey {
        execution: ekey(exec),
        signal_id: id.into(),
    }
}

fn signal(exec: &str, id: &str, ty: &[u8], at: DateTime<Utc>) -> SignalRecord {
    SignalRecord {
        key: skey(exec, id),
        r#type: ty.to_vec(),
        value: None,
        created_at: at,
        updated_at: at,
    }
}

fn ids(page: &flyte_store::Page<SignalRecord>) -> Vec<String> {
    page.items.iter().map(|s| s.key.signal_id.clone()).collect()
}

pub async fn signal_get_or_create_set(store: Arc<dyn MetadataStore>) {
    store
        .create_execution(execution("e1", "lp", "RUNNING", t(1)), None)
        .await
        .unwrap();

    // Created on first ask, returned as stored afterwards (type and value kept).
    let s = signal("e1", "approve", b"bool type", t(2));
    assert_eq!(store.get_or_create_signal(s.clone()).await.unwrap(), s);
    let again = store
        .get_or_create_signal(signal("e1", "approve", b"other type", t(3)))
        .await
        .unwrap();
    assert_eq!(again, s);
    assert_eq!(store.get_signal(&s.key).await.unwrap(), s);

    // Set, read back through both paths; setting again replaces the value.
    let set = store
        .set_signal_value(&s.key, vec![0, 1, 0, 2], t(4))
        .await
        .unwrap();
    assert_eq!(set.value.as_deref(), Some(&[0, 1, 0, 2][..]));
    assert_eq!(set.updated_at, t(4));
    assert_eq!(set.created_at, t(2));
    assert_eq!(set.r#type, b"bool type");
    assert_eq!(store.get_signal(&s.key).await.unwrap(), set);
    assert_eq!(
        store
            .get_or_create_signal(signal("e1", "approve", b"bool type", t(5)))
            .await
            .unwrap(),
        set
    );
    let replaced = store.set_signal_value(&s.key, vec![9], t(6)).await.unwrap();
    assert_eq!(replaced.value.as_deref(), Some(&[9][..]));

    // Unknown signal, unknown execution: NotFound.
    let err = store
        .set_signal_value(&skey("e1", "nope"), vec![1], t(7))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(ref w) if w.contains("nope")),
        "{err}"
    );
    let err = store.get_signal(&skey("e1", "nope")).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    let err = store
        .get_or_create_signal(signal("missing", "approve", b"t", t(2)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(ref w) if w.contains("missing")),
        "{err}"
    );
    assert!(
        store
            .list_signals(&ekey("missing"), &q(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn signal_list_filters_sort_pages(store: Arc<dyn MetadataStore>) {
    for name in ["e1", "e2"] {
        store
            .create_execution(execution(name, "lp", "RUNNING", t(1)), None)
            .await
            .unwrap();
    }
    for (i, id) in ["s-a", "s-b", "s-c", "s-d", "s-e"].iter().enumerate() {
        store
            .get_or_create_signal(signal("e1", id, b"t", t(10 + i as i64)))
            .await
            .unwrap();
    }
    store
        .get_or_create_signal(signal("e2", "s-a", b"t", t(1)))
        .await
        .unwrap();
    store
        .set_signal_value(&skey("e1", "s-b"), vec![1], t(30))
        .await
        .unwrap();

    // Default: newest first, only this execution's.
    let all = store.list_signals(&ekey("e1"), &q(100)).await.unwrap();
    assert_eq!(ids(&all), ["s-e", "s-d", "s-c", "s-b", "s-a"]);
    assert!(all.next_token.is_empty());

    // Pages.
    let mut query = q(2);
    let mut seen = Vec::new();
    loop {
        let page = store.list_signals(&ekey("e1"), &query).await.unwrap();
        seen.extend(ids(&page));
        if page.next_token.is_empty() {
            break;
        }
        query.token = page.next_token;
    }
    assert_eq!(seen, ["s-e", "s-d", "s-c", "s-b", "s-a"]);

    // Filters and sort.
    let mut query = q(100);
    query.filters = vec![f("signal_id", FilterOp::Eq, &["s-c"])];
    assert_eq!(
        ids(&store.list_signals(&ekey("e1"), &query).await.unwrap()),
        ["s-c"]
    );
    query.filters = vec![f("updated_at", FilterOp::Gte, &["2024-01-01T00:30:00Z"])];
    assert_eq!(
        ids(&store.list_signals(&ekey("e1"), &query).await.unwrap()),
        ["s-b"]
    );
    query.filters = vec![];
    query.sort = sort("signal_id", SortDirection::Ascending);
    assert_eq!(
        ids(&store.list_signals(&ekey("e1"), &query).await.unwrap()),
        ["s-a", "s-b", "s-c", "s-d", "s-e"]
    );

    // Unknown fields are refused, naming the field.
    query.sort = None;
    query.filters = vec![f("value", FilterOp::Eq, &["x"])];
    let err = store.list_signals(&ekey("e1"), &query).await.unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidArgument(ref m) if m.contains("value")),
        "{err}"
    );
}
