//! A full disk under the SQLite store: writes fail with `StorageFull` (not a generic internal
//! error), readiness says why, and once space is freed the same store writes again by itself.
//!
//! The disk is a real, small tmpfs (so SQLite sees ENOSPC exactly as on a full disk); growing
//! it frees the space. Mounting needs root (CI and the dev machines run as root): without it
//! the test fails at the mount, it never skips.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use chrono::Utc;
use flyte_store::{MetadataStore, ProjectRecord, StoreError};

/// A tmpfs of `size` mounted on a temp dir, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let disk = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        disk.run_mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]);
        disk
    }

    /// Frees space the way an operator would: the filesystem gets bigger.
    fn grow(&self, size: &str) {
        self.run_mount(&["-o", &format!("remount,size={size}")]);
    }

    fn run_mount(&self, args: &[&str]) {
        let out = Command::new("mount")
            .args(args)
            .arg(self.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount {args:?} failed (this test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn project(id: &str, description_bytes: usize) -> ProjectRecord {
    ProjectRecord {
        id: id.to_string(),
        name: id.to_string(),
        description: "x".repeat(description_bytes),
        labels: Vec::new(),
        state: 0,
        created_at: Utc::now(),
    }
}

/// Writes projects, big then ever smaller, until not even a small one fits; the first
/// error that said the disk is full.
async fn fill(store: &Arc<dyn MetadataStore>) -> StoreError {
    let mut first = None;
    for size in [64 * 1024, 4096, 256, 0] {
        for i in 0..1000 {
            let id = format!("fill-{size}-{i}");
            if let Err(e) = store.create_project(project(&id, size)).await {
                first.get_or_insert(e);
                break;
            }
            assert!(i < 999, "1000 projects of {size} bytes fit on a 2 MB disk");
        }
    }
    first.expect("a full disk fails writes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_recovers_by_itself_after_the_disk_was_full() {
    let disk = SmallDisk::mount("2m");
    let url = format!("sqlite://{}", disk.path().join("flyte.db").display());
    let store = flyte_store::open(&url).await.unwrap();
    store.ready().await.expect("ready on an empty disk");

    let err = fill(&store).await;
    assert!(
        matches!(err, StoreError::StorageFull(_)),
        "a full disk is StorageFull: {err:?}"
    );
    assert!(err.to_string().contains("disk is full"), "{err}");
    // Every connection of the pool meets the full disk, and readiness says why.
    for i in 0..16 {
        let e = store
            .create_project(project(&format!("while-full-{i}"), 0))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::StorageFull(_)), "{e:?}");
    }
    let not_ready = store.ready().await.unwrap_err();
    assert!(
        matches!(not_ready, StoreError::StorageFull(_)),
        "{not_ready:?}"
    );

    disk.grow("64m");
    // The same store (same pool, no restart) writes again, on every connection; readiness
    // sees it without waiting for a write.
    store.ready().await.expect("ready once space is freed");
    for i in 0..32 {
        store
            .create_project(project(&format!("after-{i}"), 1024))
            .await
            .unwrap_or_else(|e| panic!("write {i} after space was freed: {e}"));
    }
    let writes = (0..16).map(|i| {
        let store = store.clone();
        async move {
            store
                .create_project(project(&format!("concurrent-{i}"), 1024))
                .await
        }
    });
    for r in futures_join_all(writes).await {
        r.expect("concurrent write after space was freed");
    }
    assert_eq!(
        store.get_project("after-31").await.unwrap().name,
        "after-31"
    );
}

/// `join_all` without a futures dependency: spawn each, await in order.
async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
