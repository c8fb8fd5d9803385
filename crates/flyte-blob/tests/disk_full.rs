//! A full disk under the local blob store: writes fail with `StorageFull`, readiness says
//! why, and once space is freed the same store writes again.
//!
//! The disk is a real, small tmpfs; growing it frees the space. Mounting needs root (CI and
//! the dev machines run as root): without it the test fails at the mount, it never skips.

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use flyte_blob::{BlobError, BlobStore};

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

#[tokio::test]
async fn local_blob_store_reports_a_full_disk_and_recovers() {
    let disk = SmallDisk::mount("1m");
    let store = BlobStore::from_url(&format!("file://{}", disk.path().display())).unwrap();
    store.ready().await.expect("ready on an empty disk");

    let chunk = Bytes::from(vec![7u8; 256 * 1024]);
    let mut err = None;
    for i in 0..16 {
        if let Err(e) = store.put(&format!("data/{i}"), chunk.clone()).await {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("4 MB written to a 1 MB disk without an error");
    assert!(matches!(err, BlobError::StorageFull { .. }), "{err:?}");
    assert!(err.to_string().contains("disk is full"), "{err}");
    let not_ready = store.ready().await.unwrap_err();
    assert!(
        matches!(not_ready, BlobError::StorageFull { .. }),
        "{not_ready:?}"
    );

    disk.grow("64m");
    store.ready().await.expect("ready once space is freed");
    store.put("data/after", chunk.clone()).await.unwrap();
    assert_eq!(store.get("data/after").await.unwrap(), chunk);
}
