//! Conformance tests for matchable attributes (run on every backend by the `conformance!`
//! macro).

use std::sync::Arc;

use flyte_store::{AttributesKey, AttributesRecord, MetadataStore, StoreError};

use crate::t;

/// `admin.MatchableResource.WORKFLOW_EXECUTION_CONFIG`, `TASK_RESOURCE`.
const WEC: i32 = 6;
const TASK: i32 = 0;

fn key(project: &str, domain: &str, workflow: &str, rt: i32) -> AttributesKey {
    AttributesKey {
        project: project.into(),
        domain: domain.into(),
        workflow: workflow.into(),
        launch_plan: String::new(),
        resource_type: rt,
    }
}

fn record(key: AttributesKey, bytes: &[u8], n: i64) -> AttributesRecord {
    AttributesRecord {
        key,
        attributes: bytes.to_vec(),
        created_at: t(n),
        updated_at: t(n),
    }
}

pub async fn attributes_put_get_replace_delete(store: Arc<dyn MetadataStore>) {
    let pd = key("flytesnacks", "development", "", WEC);
    assert!(matches!(
        store.get_attributes(&pd).await,
        Err(StoreError::NotFound(_))
    ));

    let first = record(pd.clone(), b"first", 1);
    assert_eq!(store.put_attributes(first.clone()).await.unwrap(), first);
    assert_eq!(store.get_attributes(&pd).await.unwrap(), first);

    // Replacing keeps created_at, takes the new payload and updated_at.
    let replaced = store
        .put_attributes(record(pd.clone(), b"second", 5))
        .await
        .unwrap();
    assert_eq!(replaced.attributes, b"second");
    assert_eq!(replaced.created_at, t(1));
    assert_eq!(replaced.updated_at, t(5));
    assert_eq!(store.get_attributes(&pd).await.unwrap(), replaced);

    // Another type of the same scope is its own row; scopes are exact for get.
    let task = record(key("flytesnacks", "development", "", TASK), b"task", 2);
    store.put_attributes(task.clone()).await.unwrap();
    assert_eq!(
        store.get_attributes(&pd).await.unwrap().attributes,
        b"second"
    );
    assert!(matches!(
        store.get_attributes(&key("flytesnacks", "", "", WEC)).await,
        Err(StoreError::NotFound(_))
    ));

    store.delete_attributes(&pd).await.unwrap();
    assert!(matches!(
        store.get_attributes(&pd).await,
        Err(StoreError::NotFound(_))
    ));
    // Deleting what is not there says so; the other type stays.
    let err = store.delete_attributes(&pd).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(store.get_attributes(&task.key).await.unwrap(), task);

    // Scopes flyteadmin refuses.
    for bad in [
        key("", "", "", WEC),
        key("", "development", "wf", WEC),
        AttributesKey {
            launch_plan: "lp".into(),
            ..key("flytesnacks", "development", "", WEC)
        },
    ] {
        let err = store
            .put_attributes(record(bad.clone(), b"x", 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidArgument(_)),
            "{bad}: {err}"
        );
    }
}

pub async fn attributes_resolve_most_specific_and_list(store: Arc<dyn MetadataStore>) {
    let wf = key("p", "development", "my.wf", WEC);
    assert_eq!(store.resolve_attributes(&wf).await.unwrap(), None);

    store
        .put_attributes(record(key("p", "", "", WEC), b"project", 1))
        .await
        .unwrap();
    let got = |k: AttributesKey| {
        let store = store.clone();
        async move {
            store
                .resolve_attributes(&k)
                .await
                .unwrap()
                .map(|r| String::from_utf8(r.attributes).unwrap())
        }
    };
    assert_eq!(got(wf.clone()).await.as_deref(), Some("project"));

    store
        .put_attributes(record(key("p", "development", "", WEC), b"pd", 2))
        .await
        .unwrap();
    assert_eq!(got(wf.clone()).await.as_deref(), Some("pd"));
    // Another domain still sees the project level only.
    assert_eq!(
        got(key("p", "staging", "my.wf", WEC)).await.as_deref(),
        Some("project")
    );

    store
        .put_attributes(record(wf.clone(), b"workflow", 3))
        .await
        .unwrap();
    assert_eq!(got(wf.clone()).await.as_deref(), Some("workflow"));
    // Another workflow of the domain gets the project-domain level; another project nothing;
    // another type nothing.
    assert_eq!(
        got(key("p", "development", "other.wf", WEC))
            .await
            .as_deref(),
        Some("pd")
    );
    assert_eq!(got(key("q", "development", "my.wf", WEC)).await, None);
    assert_eq!(got(key("p", "development", "my.wf", TASK)).await, None);

    // Listing: every scope of the type, most specific first.
    store
        .put_attributes(record(key("q", "", "", TASK), b"q task", 4))
        .await
        .unwrap();
    let listed: Vec<String> = store
        .list_attributes(WEC)
        .await
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8(r.attributes).unwrap())
        .collect();
    assert_eq!(listed, ["workflow", "pd", "project"]);
    assert_eq!(store.list_attributes(TASK).await.unwrap().len(), 1);
    assert!(store.list_attributes(3).await.unwrap().is_empty());

    // Deleting the workflow level falls back to project-domain.
    store.delete_attributes(&wf).await.unwrap();
    assert_eq!(got(wf).await.as_deref(), Some("pd"));
}

/// What a creation reads in one round trip: every stored record of the asked types whose
/// scope applies (each part the scope's or "any"), most specific first.
pub async fn attributes_applying_all_levels_and_types_at_once(store: Arc<dyn MetadataStore>) {
    let names = |records: Vec<AttributesRecord>| -> Vec<String> {
        records
            .into_iter()
            .map(|r| String::from_utf8(r.attributes).unwrap())
            .collect()
    };
    let applying = |types: Vec<i32>| {
        let store = store.clone();
        async move {
            store
                .applying_attributes("p", "development", "my.wf", "", &types)
                .await
                .unwrap()
        }
    };
    assert!(applying(vec![WEC, TASK]).await.is_empty());
    for (k, bytes) in [
        (key("p", "", "", WEC), "wec project"),
        (key("p", "development", "", TASK), "task pd"),
        (key("p", "development", "my.wf", WEC), "wec workflow"),
        (key("p", "development", "other.wf", WEC), "other workflow"),
        (key("p", "staging", "", WEC), "other domain"),
        (key("q", "", "", TASK), "other project"),
        (key("p", "", "", 3), "another type"),
    ] {
        store
            .put_attributes(record(k, bytes.as_bytes(), 1))
            .await
            .unwrap();
    }
    assert_eq!(
        names(applying(vec![WEC, TASK]).await),
        ["wec workflow", "task pd", "wec project"]
    );
    assert_eq!(names(applying(vec![TASK]).await), ["task pd"]);
    assert!(applying(vec![]).await.is_empty());
    // The same records resolve_attributes picks, level by level.
    let resolved = store
        .resolve_attributes(&key("p", "development", "my.wf", WEC))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved, applying(vec![WEC]).await[0]);
}
