//! A server whose metadata store's disk fills up: API writes answer RESOURCE_EXHAUSTED
//! saying the disk is full, `/readyz` answers 503 with the reason, and once space is freed
//! both recover without a restart.
//!
//! The disk is a real, small tmpfs filled with a ballast file; deleting it frees the space.
//! Mounting needs root (CI and the dev machines run as root): without it the test fails at
//! the mount, it never skips.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flyte_rs::testing::TestServer;
use flyteidl::admin::{Project, ProjectRegisterRequest};
use flyteidl::service::admin_service_client::AdminServiceClient;

/// A tmpfs of `size` mounted on a temp dir, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let disk = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(disk.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount failed (this test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        disk
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills what is left with a file; its path.
    fn fill(&self) -> PathBuf {
        let ballast = self.path().join("ballast");
        let mut file = std::fs::File::create(&ballast).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        let _ = file.sync_all();
        ballast
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn project(id: &str) -> ProjectRegisterRequest {
    ProjectRegisterRequest {
        project: Some(Project {
            id: id.to_string(),
            name: id.to_string(),
            description: "x".repeat(300),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn a_full_metadata_disk_is_resource_exhausted_and_not_ready_until_space_is_freed() {
    let disk = SmallDisk::mount("8m");
    let db = disk.path().join("flyte.db");
    let server = TestServer::start_with(|c| {
        c.storage.metadata_url = Some(format!("sqlite://{}", db.display()));
    })
    .await
    .unwrap();
    let channel = tonic::transport::Endpoint::from_shared(server.grpc_endpoint())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let mut client = AdminServiceClient::new(channel);
    client.register_project(project("before")).await.unwrap();

    let ballast = disk.fill();
    let status = client
        .register_project(project("while-full"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("disk is full"),
        "{}",
        status.message()
    );
    let r = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 503);
    let reason = r.text().await.unwrap();
    assert!(reason.contains("disk is full"), "{reason}");

    std::fs::remove_file(&ballast).unwrap();
    let r = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    for i in 0..10 {
        client
            .register_project(project(&format!("after-{i}")))
            .await
            .unwrap_or_else(|s| panic!("write {i} after space was freed: {s:?}"));
    }
    server.shutdown().await.unwrap();
}
