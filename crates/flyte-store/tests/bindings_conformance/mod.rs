//! Role bindings made over the API: created with an id, listed oldest first, a duplicate is
//! `AlreadyExists`, deleted once (`NotFound` after).

use std::sync::Arc;

use chrono::Utc;
use flyte_store::{MetadataStore, RoleBindingRecord, StoreError};

fn binding(
    kind: &str,
    subject: &str,
    role: &str,
    project: &str,
    domain: &str,
) -> RoleBindingRecord {
    RoleBindingRecord {
        id: 0,
        subject_kind: kind.into(),
        subject: subject.into(),
        role: role.into(),
        project: project.into(),
        domain: domain.into(),
        created_by: "root".into(),
        created_at: Utc::now(),
    }
}

pub async fn role_bindings_create_list_delete(store: Arc<dyn MetadataStore>) {
    assert!(store.list_role_bindings().await.unwrap().is_empty());
    let a = store
        .create_role_binding(binding(
            "user",
            "alice",
            "executor",
            "flytesnacks",
            "development",
        ))
        .await
        .unwrap();
    let b = store
        .create_role_binding(binding("group", "ml", "viewer", "*", ""))
        .await
        .unwrap();
    assert!(a.id > 0 && b.id > a.id, "{a:?} {b:?}");
    assert_eq!(a.subject, "alice");
    assert_eq!(a.created_by, "root");
    let listed = store.list_role_bindings().await.unwrap();
    assert_eq!(listed, vec![a.clone(), b.clone()]);

    // The same subject, role and place again: refused; another domain is another binding.
    let dup = store
        .create_role_binding(binding(
            "user",
            "alice",
            "executor",
            "flytesnacks",
            "development",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(dup, StoreError::AlreadyExists(ref m) if m.contains("alice")),
        "{dup:?}"
    );
    store
        .create_role_binding(binding(
            "user",
            "alice",
            "executor",
            "flytesnacks",
            "production",
        ))
        .await
        .unwrap();

    store.delete_role_binding(a.id).await.unwrap();
    let err = store.delete_role_binding(a.id).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let listed = store.list_role_bindings().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|x| x.id != a.id));
}

fn audited(
    subject: &str,
    project: &str,
    domain: &str,
    at: chrono::DateTime<Utc>,
) -> flyte_store::AuditRecord {
    flyte_store::AuditRecord {
        id: 0,
        at,
        subject: subject.into(),
        email: String::new(),
        service: "AdminService".into(),
        method: "CreateExecution".into(),
        project: project.into(),
        domain: domain.into(),
        name: "e1".into(),
        code: "Ok".into(),
    }
}

pub async fn audit_records_insert_filter_page_prune(store: Arc<dyn MetadataStore>) {
    use flyte_store::AuditQuery;
    let now = Utc::now();
    let old = now - chrono::Duration::days(40);
    store
        .insert_audit_records(vec![
            audited("old", "flytesnacks", "development", old),
            audited("a", "flytesnacks", "development", now),
            audited("b", "flytesnacks", "production", now),
            audited("c", "ml", "development", now),
        ])
        .await
        .unwrap();
    let q = |project: Option<&str>, domain: Option<&str>| AuditQuery {
        project: project.map(str::to_owned),
        domain: domain.map(str::to_owned),
        limit: 10,
        ..AuditQuery::default()
    };
    let subjects =
        |rs: Vec<flyte_store::AuditRecord>| rs.into_iter().map(|r| r.subject).collect::<Vec<_>>();
    // Newest first.
    assert_eq!(
        subjects(store.list_audit_records(&q(None, None)).await.unwrap()),
        ["c", "b", "a", "old"]
    );
    assert_eq!(
        subjects(
            store
                .list_audit_records(&q(Some("flytesnacks"), Some("development")))
                .await
                .unwrap()
        ),
        ["a", "old"]
    );
    let since = AuditQuery {
        since: Some(now - chrono::Duration::days(1)),
        ..q(Some("flytesnacks"), None)
    };
    assert_eq!(
        subjects(store.list_audit_records(&since).await.unwrap()),
        ["b", "a"]
    );
    // Pages: two, then the rest after the last id seen.
    let first = store
        .list_audit_records(&AuditQuery {
            limit: 2,
            ..q(None, None)
        })
        .await
        .unwrap();
    assert_eq!(subjects(first.clone()), ["c", "b"]);
    let next = AuditQuery {
        limit: 2,
        before_id: Some(first[1].id),
        ..q(None, None)
    };
    assert_eq!(
        subjects(store.list_audit_records(&next).await.unwrap()),
        ["a", "old"]
    );
    // Retention.
    assert_eq!(
        store
            .prune_audit_records(now - chrono::Duration::days(30))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        subjects(store.list_audit_records(&q(None, None)).await.unwrap()),
        ["c", "b", "a"]
    );
}
