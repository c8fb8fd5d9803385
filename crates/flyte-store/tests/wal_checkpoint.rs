//! SQLite's WAL is checkpointed while writes go on: the store's write connection turns
//! SQLite's automatic checkpoint off (it would run inside a COMMIT on a runtime thread) and
//! starts one on the pool past 1,000 WAL pages instead (crates/flyte-store/src/sql/
//! sqlite_direct.rs). Without it the `-wal` file would grow with every write and readers
//! would walk an ever longer log; with it the log restarts from its beginning, so its file
//! stays near the checkpoint size however much is written, and what was written is in the
//! database file and reads back after a reopen.

use chrono::Utc;
use flyte_store::ProjectRecord;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_stays_bounded_under_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flyte.db");
    let wal = dir.path().join("flyte.db-wal");
    let store = flyte_store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    // 4,000 projects of ~6 KB each: ~6,000 pages of WAL frames in all, six times the
    // checkpoint threshold.
    let labels = vec![7u8; 6000];
    let mut largest_wal = 0;
    for i in 0..4000 {
        store
            .create_project(ProjectRecord {
                id: format!("p{i}"),
                name: format!("project {i}"),
                description: String::new(),
                labels: labels.clone(),
                state: 0,
                created_at: Utc::now(),
            })
            .await
            .unwrap();
        if i % 100 == 0 {
            // Give the checkpoint, on a pool connection, a moment as a busy server would.
            tokio::task::yield_now().await;
            largest_wal = largest_wal.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
    }
    let written = 4000 * labels.len() as u64;
    assert!(
        largest_wal < written / 2,
        "the WAL reached {largest_wal} bytes for {written} bytes written: not checkpointed"
    );
    assert!(
        std::fs::metadata(&db).unwrap().len() > written / 2,
        "the database file did not receive the checkpointed pages"
    );
    assert!(largest_wal > 0, "no WAL file seen");
    store.close().await;
    drop(store);

    let store = flyte_store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    for i in [0, 1999, 3999] {
        let p = store.get_project(&format!("p{i}")).await.unwrap();
        assert_eq!(p.labels.len(), labels.len());
    }
}
