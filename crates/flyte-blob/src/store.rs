use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

use crate::error::BlobError;
use crate::metrics::{record_bytes, record_op};

/// What `head` knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub size: u64,
    /// The backend's entity tag, if it has one (not an MD5 for local files).
    pub e_tag: Option<String>,
}

/// A handle on one blob store, cheap to clone. Chosen by URL in [`BlobStore::from_url`].
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    location: Location,
    /// Why the last write failed for want of space, until a write succeeds again: readiness
    /// probes with a write only then.
    write_blocked: std::sync::Mutex<Option<String>>,
}

/// Free space below which a local store that already met a full disk stays not ready (a
/// failed big write can leave room for a tiny probe on an otherwise full disk).
const MIN_FREE_BYTES: u64 = 1 << 20;
/// The object readiness writes (and removes) to probe a store that was full.
const PROBE_KEY: &str = ".flyte-rs/readiness-probe";

enum Location {
    /// `file:///abs/dir`: keys are relative to `root`, a canonical absolute directory.
    Local {
        root: PathBuf,
        fs: Arc<LocalFileSystem>,
    },
    /// Any other scheme `object_store` was built with: `base` is `scheme://host` and
    /// `prefix` the key prefix inside the bucket/container (possibly empty).
    Remote { base: String, prefix: Path },
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStore")
            .field("root", &self.root_url())
            .finish()
    }
}

impl BlobStore {
    /// Opens the store a URL names: `file:///abs/dir` (the directory is created if missing;
    /// a plain absolute path is accepted too) or, when `object_store` is built with the
    /// feature, `s3://bucket/prefix`, `gs://…`, `az://…`, and `memory:///` for tests.
    pub fn from_url(url: &str) -> Result<Self, BlobError> {
        let invalid = |reason: String| BlobError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let parsed = if url.starts_with('/') {
            Url::from_file_path(url).map_err(|()| invalid("not an absolute path".into()))?
        } else {
            Url::parse(url).map_err(|e| invalid(e.to_string()))?
        };
        let location_and_store = if parsed.scheme() == "file" {
            let dir = parsed
                .to_file_path()
                .map_err(|()| invalid("a file URL must name an absolute local directory".into()))?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| invalid(format!("cannot create {}: {e}", dir.display())))?;
            let root = std::fs::canonicalize(&dir)
                .map_err(|e| invalid(format!("cannot resolve {}: {e}", dir.display())))?;
            let fs = Arc::new(
                LocalFileSystem::new_with_prefix(&root).map_err(|e| invalid(e.to_string()))?,
            );
            let store: Arc<dyn ObjectStore> = fs.clone();
            (Location::Local { root, fs }, store)
        } else {
            let (store, prefix) =
                object_store::parse_url(&parsed).map_err(|e| invalid(e.to_string()))?;
            let base = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or(""));
            (Location::Remote { base, prefix }, Arc::from(store))
        };
        let (location, store) = location_and_store;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                location,
                write_blocked: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The URL of the store's root (`file:///abs/dir`, `s3://bucket/prefix`).
    pub fn root_url(&self) -> String {
        match &self.inner.location {
            Location::Local { root, .. } => format!("file://{}", root.display()),
            Location::Remote { base, prefix } if prefix.as_ref().is_empty() => base.clone(),
            Location::Remote { base, prefix } => format!("{base}/{prefix}"),
        }
    }

    /// Checks a key and turns it into the backend's object path.
    fn key(&self, path: &str) -> Result<Path, BlobError> {
        let invalid = |reason: &str| BlobError::InvalidPath {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        if path.trim_matches('/').is_empty() {
            return Err(invalid("empty path"));
        }
        if path.contains('\\') || path.contains('\0') {
            return Err(invalid("backslashes and NUL are not allowed"));
        }
        let parsed = Path::parse(path).map_err(|e| invalid(&e.to_string()))?;
        Ok(match &self.inner.location {
            Location::Local { .. } => parsed,
            Location::Remote { prefix, .. } if prefix.as_ref().is_empty() => parsed,
            Location::Remote { prefix, .. } => {
                Path::from_iter(prefix.parts().chain(parsed.parts()))
            }
        })
    }

    /// Writes an object (replacing any previous content).
    pub async fn put(&self, path: &str, data: Bytes) -> Result<(), BlobError> {
        let key = self.key(path)?;
        let len = data.len() as u64;
        match self
            .inner
            .store
            .put(&key, PutPayload::from_bytes(data))
            .await
        {
            Ok(_) => {
                record_op("put", "ok");
                record_bytes("put", len);
                tracing::debug!(path, bytes = len, "blob written");
                self.set_write_blocked(None);
                Ok(())
            }
            Err(err) => {
                record_op("put", "error");
                let err = BlobError::from_backend(path, err);
                if let BlobError::StorageFull { reason, .. } = &err {
                    self.set_write_blocked(Some(reason.clone()));
                }
                Err(err)
            }
        }
    }

    /// Whether writes can succeed now: after a write failed for want of space, the local
    /// store needs [`MIN_FREE_BYTES`] free and a probe object must write; otherwise `Ok`
    /// without touching the backend.
    pub async fn ready(&self) -> Result<(), BlobError> {
        if !self.is_write_blocked() {
            return Ok(());
        }
        if let Location::Local { root, .. } = &self.inner.location
            && let Ok(fs) = rustix::fs::statvfs(root)
        {
            let free = fs.f_bavail.saturating_mul(fs.f_frsize);
            if free < MIN_FREE_BYTES {
                return Err(BlobError::StorageFull {
                    path: root.display().to_string(),
                    reason: format!(
                        "{} KiB free (at least {} KiB needed)",
                        free / 1024,
                        MIN_FREE_BYTES / 1024
                    ),
                });
            }
        }
        self.put(PROBE_KEY, Bytes::from_static(b"ok")).await?;
        let _ = self.inner.store.delete(&self.key(PROBE_KEY)?).await;
        Ok(())
    }

    fn is_write_blocked(&self) -> bool {
        self.inner
            .write_blocked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some()
    }

    /// Records the state, logging only its changes (not every failed write).
    fn set_write_blocked(&self, reason: Option<String>) {
        let mut blocked = self
            .inner
            .write_blocked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match (&*blocked, &reason) {
            (None, Some(reason)) => tracing::error!(
                root = %self.root_url(),
                %reason,
                "blob store cannot write: its disk is full; writes fail until space is freed"
            ),
            (Some(_), None) => {
                tracing::info!(root = %self.root_url(), "blob store writes again: space was freed")
            }
            _ => {}
        }
        *blocked = reason;
    }

    /// Reads a whole object; `NotFound` if absent.
    pub async fn get(&self, path: &str) -> Result<Bytes, BlobError> {
        let key = self.key(path)?;
        let result = match self.inner.store.get(&key).await {
            Ok(result) => result.bytes().await,
            Err(err) => Err(err),
        };
        match result {
            Ok(bytes) => {
                record_op("get", "ok");
                record_bytes("get", bytes.len() as u64);
                Ok(bytes)
            }
            Err(err @ object_store::Error::NotFound { .. }) => {
                record_op("get", "not_found");
                Err(BlobError::from_backend(path, err))
            }
            Err(err) => {
                record_op("get", "error");
                Err(BlobError::from_backend(path, err))
            }
        }
    }

    /// Size (and entity tag) of an object, `None` if it does not exist.
    pub async fn head(&self, path: &str) -> Result<Option<BlobMeta>, BlobError> {
        let key = self.key(path)?;
        match self.inner.store.head(&key).await {
            Ok(meta) => {
                record_op("head", "ok");
                Ok(Some(BlobMeta {
                    size: meta.size,
                    e_tag: meta.e_tag,
                }))
            }
            Err(object_store::Error::NotFound { .. }) => {
                record_op("head", "not_found");
                Ok(None)
            }
            Err(err) => {
                record_op("head", "error");
                Err(BlobError::from_backend(path, err))
            }
        }
    }

    /// The URL under which a task process on this host (file stores) or anywhere with
    /// credentials (object stores) reads the object: `file:///abs/dir/<path>` — not
    /// percent-encoded, since flytekit's fsspec strips `file://` and uses the rest as a
    /// path — or `s3://bucket/prefix/<path>`.
    pub fn native_url(&self, path: &str) -> String {
        let trimmed = path.trim_matches('/');
        match &self.inner.location {
            Location::Local { root, fs } => {
                let file = Path::parse(trimmed)
                    .ok()
                    .and_then(|key| fs.path_to_filesystem(&key).ok())
                    .unwrap_or_else(|| root.join(trimmed));
                format!("file://{}", file.display())
            }
            Location::Remote { base, prefix } if prefix.as_ref().is_empty() => {
                format!("{base}/{trimmed}")
            }
            Location::Remote { base, prefix } => format!("{base}/{prefix}/{trimmed}"),
        }
    }

    /// The URI to hand flytekit for an object it will use as a literal's location (a file
    /// uploaded through the data proxy, a code bundle): for file stores the plain absolute
    /// path — flytekit takes a `file://` literal URI for a local path verbatim and cannot open
    /// it — otherwise the native URL.
    pub fn literal_uri(&self, path: &str) -> String {
        let url = self.native_url(path);
        match &self.inner.location {
            Location::Local { .. } => url
                .strip_prefix("file://")
                .map(str::to_string)
                .unwrap_or(url),
            Location::Remote { .. } => url,
        }
    }

    /// The inverse of [`BlobStore::native_url`]: the key of a native URL (or, for file
    /// stores, of an absolute path) inside this store; `None` if it lies elsewhere.
    pub fn path_from_native_url(&self, url: &str) -> Option<String> {
        let rest = match &self.inner.location {
            Location::Local { root, .. } => {
                let fs_path = url.strip_prefix("file://").unwrap_or(url);
                if !fs_path.starts_with('/') {
                    return None;
                }
                let relative = FsPath::new(fs_path).strip_prefix(root).ok()?;
                let mut parts = Vec::new();
                for component in relative.components() {
                    match component {
                        std::path::Component::Normal(part) => {
                            parts.push(part.to_str()?.to_string())
                        }
                        _ => return None,
                    }
                }
                parts.join("/")
            }
            Location::Remote { base, prefix } => {
                let after_base = url.strip_prefix(base.as_str())?.strip_prefix('/')?;
                if prefix.as_ref().is_empty() {
                    after_base.to_string()
                } else {
                    after_base
                        .strip_prefix(prefix.as_ref())?
                        .strip_prefix('/')?
                        .to_string()
                }
            }
        };
        Path::parse(&rest)
            .ok()
            .filter(|p| !p.as_ref().is_empty())
            .map(|p| p.as_ref().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/blobs", dir.path().display());
        let store = BlobStore::from_url(&url).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn put_get_head_on_local_files() {
        let (dir, store) = local();
        assert_eq!(store.head("uploads/a/b.txt").await.unwrap(), None);
        store
            .put("uploads/a/b.txt", Bytes::from_static(b"hello"))
            .await
            .unwrap();
        assert_eq!(
            store.get("uploads/a/b.txt").await.unwrap(),
            Bytes::from_static(b"hello")
        );
        assert_eq!(
            store.head("uploads/a/b.txt").await.unwrap().unwrap().size,
            5
        );
        let on_disk = std::fs::canonicalize(dir.path())
            .unwrap()
            .join("blobs/uploads/a/b.txt");
        assert_eq!(std::fs::read(&on_disk).unwrap(), b"hello");
        assert!(matches!(
            store.get("uploads/missing").await,
            Err(BlobError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn native_urls_round_trip_and_name_the_file() {
        let (dir, store) = local();
        store
            .put("uploads/p/d/ABC=/fast1.tar.gz", Bytes::from_static(b"x"))
            .await
            .unwrap();
        let url = store.native_url("uploads/p/d/ABC=/fast1.tar.gz");
        let root = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(
            url,
            format!(
                "file://{}/blobs/uploads/p/d/ABC=/fast1.tar.gz",
                root.display()
            )
        );
        // What pyflyte-fast-execute does with it: strip file:// and read the path.
        assert_eq!(
            std::fs::read(url.strip_prefix("file://").unwrap()).unwrap(),
            b"x"
        );
        assert_eq!(
            store.path_from_native_url(&url).as_deref(),
            Some("uploads/p/d/ABC=/fast1.tar.gz")
        );
        let plain = url.strip_prefix("file://").unwrap();
        assert_eq!(
            store.path_from_native_url(plain).as_deref(),
            Some("uploads/p/d/ABC=/fast1.tar.gz")
        );
        assert_eq!(store.path_from_native_url("file:///etc/passwd"), None);
        assert_eq!(
            store.path_from_native_url(&format!("file://{}/blobs/../x", root.display())),
            None
        );
        assert_eq!(store.path_from_native_url("s3://bucket/x"), None);
        assert_eq!(store.root_url(), format!("file://{}/blobs", root.display()));
    }

    #[tokio::test]
    async fn rejects_bad_paths_and_urls() {
        let (_dir, store) = local();
        for bad in ["", "/", "a//b", "a/../b", "../x", "a\\b"] {
            assert!(
                matches!(
                    store.put(bad, Bytes::new()).await,
                    Err(BlobError::InvalidPath { .. })
                ),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            BlobStore::from_url("file://relative/x"),
            Err(BlobError::InvalidUrl { .. })
        ));
        assert!(matches!(
            BlobStore::from_url("not a url"),
            Err(BlobError::InvalidUrl { .. })
        ));
        // s3 needs the object_store "aws" feature, which this build leaves out.
        assert!(matches!(
            BlobStore::from_url("s3://bucket/prefix"),
            Err(BlobError::InvalidUrl { .. })
        ));
    }

    #[tokio::test]
    async fn plain_absolute_path_is_a_file_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
        store.put("k", Bytes::from_static(b"v")).await.unwrap();
        assert_eq!(store.get("k").await.unwrap(), Bytes::from_static(b"v"));
    }

    #[tokio::test]
    async fn memory_store_native_urls_keep_the_scheme() {
        let store = BlobStore::from_url("memory:///").unwrap();
        store.put("a/b", Bytes::from_static(b"v")).await.unwrap();
        assert_eq!(store.get("a/b").await.unwrap(), Bytes::from_static(b"v"));
        let url = store.native_url("a/b");
        assert_eq!(url, "memory:///a/b");
        assert_eq!(store.path_from_native_url(&url).as_deref(), Some("a/b"));
    }
}
