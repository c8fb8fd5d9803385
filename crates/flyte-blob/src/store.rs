use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::signer::{HeaderName, HeaderValue, Method, SignedUrlOptions, Signer};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

use crate::SignedMethod;
use crate::error::BlobError;
use crate::metrics::{record_bytes, record_op};

/// Settings of the object stores beyond their URL (`storage.s3` and `storage.blob_options`
/// in the server's configuration). Unset fields fall back to the provider's standard
/// environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`, as read by `object_store`'s builders) and then
/// to instance metadata or web identity (IRSA / workload identity).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BlobOptions {
    pub region: Option<String>,
    /// An S3-compatible server (`http://127.0.0.1:9000`); also Azure's endpoint (Azurite).
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Allow `http://` endpoints (S3-compatible servers on a private network).
    pub allow_http: bool,
    /// `https://bucket.endpoint/key` instead of path-style `https://endpoint/bucket/key`.
    pub virtual_hosted_style: bool,
    /// Any further `object_store` builder key (`aws_…`, `google_…`, `azure_…`).
    pub extra: BTreeMap<String, String>,
}

impl fmt::Debug for BlobOptions {
    /// Secrets never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("BlobOptions")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("allow_http", &self.allow_http)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What `head` knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub size: u64,
    /// The backend's entity tag, if it has one (not an MD5 for local files).
    pub e_tag: Option<String>,
}

/// A handle on one blob store, cheap to clone. Chosen by URL in [`BlobStore::from_url`].
///
/// It may route keys to other stores ([`BlobStore::with_routes`]: per-project metadata
/// locations): every operation on a key picks its store here, and a native URL is resolved
/// to the store that holds it, so callers keep using keys and URLs without knowing where
/// each lives.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<Inner>,
    /// Key prefixes whose objects live in another store, longest prefix first.
    routes: Arc<[(String, BlobStore)]>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    /// Presigns URLs of the object store itself (S3, GCS, Azure); `None` for local files,
    /// whose URLs the data proxy signs and serves.
    signer: Option<Arc<dyn Signer>>,
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
            .field(
                "routes",
                &self
                    .routes
                    .iter()
                    .map(|(prefix, store)| (prefix, store.root_url()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl BlobStore {
    /// Opens the store a URL names with default options: see [`BlobStore::open`].
    pub fn from_url(url: &str) -> Result<Self, BlobError> {
        Self::open(url, &BlobOptions::default())
    }

    /// Opens the store a URL names: `file:///abs/dir` (the directory is created if missing;
    /// a plain absolute path is accepted too), `s3://bucket/prefix` (also `s3a://`),
    /// `gs://bucket/prefix`, `az://container/prefix` or
    /// `abfs[s]://container@account.dfs.core.windows.net/prefix`, and `memory:///` for tests.
    /// Object stores are not contacted here: a wrong credential shows at the first request.
    pub fn open(url: &str, options: &BlobOptions) -> Result<Self, BlobError> {
        let invalid = |reason: String| BlobError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let parsed = if url.starts_with('/') {
            Url::from_file_path(url).map_err(|()| invalid("not an absolute path".into()))?
        } else {
            Url::parse(url).map_err(|e| invalid(e.to_string()))?
        };
        let (location, store, signer) = if parsed.scheme() == "file" {
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
            (Location::Local { root, fs }, store, None)
        } else {
            install_tls_provider();
            let (store, signer) = remote_store(&parsed, options).map_err(invalid)?;
            let prefix = Path::from_url_path(parsed.path())
                .map_err(|e| invalid(format!("bad key prefix: {e}")))?;
            // Everything before the path: `s3://bucket`, `abfs://container@account.host`.
            let base = parsed[..url::Position::BeforePath].to_string();
            (Location::Remote { base, prefix }, store, signer)
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                signer,
                location,
                write_blocked: std::sync::Mutex::new(None),
            }),
            routes: Arc::new([]),
        })
    }

    /// This store, with the objects under each key prefix kept in another store instead
    /// (`metadata/team-a/`, …: per-project metadata locations). The longest matching prefix
    /// wins; keys are the same in every store (a routed key `k` is `<route root>/k`).
    pub fn with_routes(self, routes: Vec<(String, BlobStore)>) -> Result<Self, BlobError> {
        let mut checked = Vec::with_capacity(routes.len());
        for (prefix, store) in routes {
            if prefix.is_empty() || prefix.starts_with('/') || Path::parse(&prefix).is_err() {
                return Err(BlobError::InvalidPath {
                    path: prefix,
                    reason: "a route is a relative key prefix".into(),
                });
            }
            // A route's store routes nothing further.
            let plain = BlobStore {
                inner: store.inner,
                routes: Arc::new([]),
            };
            checked.push((prefix, plain));
        }
        checked.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(Self {
            inner: self.inner,
            routes: checked.into(),
        })
    }

    /// The store that holds `path`: the route with the longest matching prefix, else this.
    fn target(&self, path: &str) -> &BlobStore {
        let key = path.trim_start_matches('/');
        self.routes
            .iter()
            .find(|(prefix, _)| key.starts_with(prefix.as_str()))
            .map_or(self, |(_, store)| store)
    }

    /// Whether the store hands out its own presigned URLs ([`BlobStore::presigned_url`]).
    pub fn presigns(&self) -> bool {
        self.inner.signer.is_some()
    }

    /// A URL of the object store itself that lets its holder `method` the object at `path`
    /// for `expires_in`, without credentials; `None` for stores that cannot presign (local
    /// files: the data proxy signs URLs of its own). With `content_md5`, an upload URL binds
    /// the `Content-MD5` header into the signature where the store supports it (S3, GCS), so
    /// the store refuses a body with another digest; Azure checks the header when sent.
    pub async fn presigned_url(
        &self,
        method: SignedMethod,
        path: &str,
        expires_in: Duration,
        content_md5: Option<[u8; 16]>,
    ) -> Result<Option<String>, BlobError> {
        let this = self.target(path);
        let Some(signer) = &this.inner.signer else {
            return Ok(None);
        };
        let key = this.key(path)?;
        let method = match method {
            SignedMethod::Put => Method::PUT,
            SignedMethod::Get => Method::GET,
        };
        let mut opts = SignedUrlOptions::new();
        if let (true, Some(md5)) = (method == Method::PUT, content_md5) {
            use base64::Engine;
            let value = base64::engine::general_purpose::STANDARD.encode(md5);
            let value = HeaderValue::from_str(&value).map_err(|e| BlobError::InvalidPath {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
            opts = opts.with_signed_header(HeaderName::from_static("content-md5"), value);
        }
        let signed = match signer
            .signed_url_opts(method.clone(), &key, expires_in, &opts)
            .await
        {
            // Azure signs no headers: its SAS URL, and the store checks a sent Content-MD5.
            Err(object_store::Error::NotSupported { .. }) if !opts.is_empty() => {
                signer.signed_url(method, &key, expires_in).await
            }
            other => other,
        };
        match signed {
            Ok(url) => {
                record_op("presign", "ok");
                Ok(Some(url.to_string()))
            }
            Err(err) => {
                record_op("presign", "error");
                Err(BlobError::from_backend(path, err))
            }
        }
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
        let this = self.target(path);
        let key = this.key(path)?;
        let len = data.len() as u64;
        match this
            .inner
            .store
            .put(&key, PutPayload::from_bytes(data))
            .await
        {
            Ok(_) => {
                record_op("put", "ok");
                record_bytes("put", len);
                tracing::debug!(path, bytes = len, "blob written");
                this.set_write_blocked(None);
                Ok(())
            }
            Err(err) => {
                record_op("put", "error");
                let err = BlobError::from_backend(path, err);
                if let BlobError::StorageFull { reason, .. } = &err {
                    this.set_write_blocked(Some(reason.clone()));
                }
                Err(err)
            }
        }
    }

    /// Whether writes can succeed now: after a write failed for want of space, the local
    /// store needs [`MIN_FREE_BYTES`] free and a probe object must write; otherwise `Ok`
    /// without touching the backend.
    pub async fn ready(&self) -> Result<(), BlobError> {
        for (_, store) in self.routes.iter() {
            store.ready_here().await?;
        }
        self.ready_here().await
    }

    async fn ready_here(&self) -> Result<(), BlobError> {
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
        let this = self.target(path);
        let key = this.key(path)?;
        let result = match this.inner.store.get(&key).await {
            Ok(result) => result.bytes().await,
            Err(err) => Err(err),
        };
        match result {
            Ok(bytes) => {
                record_op("get", "ok");
                record_bytes("get", bytes.len() as u64);
                Ok(bytes)
            }
            Err(err) => Err(read_error(path, err)),
        }
    }

    /// Starts writing an object part by part (uploads of any size: nothing is held in memory
    /// beyond a few parts). The object appears only when [`BlobUpload::finish`] succeeds; an
    /// upload dropped or aborted leaves nothing behind.
    pub async fn begin_upload(&self, path: &str) -> Result<BlobUpload, BlobError> {
        let this = self.target(path);
        let key = this.key(path)?;
        match this.inner.store.put_multipart(&key).await {
            Ok(upload) => Ok(BlobUpload {
                writer: Some(object_store::WriteMultipart::new(upload)),
                path: path.to_string(),
                bytes: 0,
                store: this.clone(),
            }),
            Err(err) => {
                record_op("put", "error");
                Err(BlobError::from_backend(path, err))
            }
        }
    }

    /// Reads an object as a stream of chunks, with its size; `NotFound` if absent.
    pub async fn get_stream(
        &self,
        path: &str,
    ) -> Result<
        (
            u64,
            futures::stream::BoxStream<'static, Result<Bytes, BlobError>>,
        ),
        BlobError,
    > {
        use futures::StreamExt;
        let this = self.target(path);
        let key = this.key(path)?;
        match this.inner.store.get(&key).await {
            Ok(result) => {
                record_op("get", "ok");
                let size = result.meta.size;
                record_bytes("get", size);
                let shown = path.to_string();
                let stream = result
                    .into_stream()
                    .map(move |chunk| chunk.map_err(|e| BlobError::from_backend(&shown, e)));
                Ok((size, stream.boxed()))
            }
            Err(err) => Err(read_error(path, err)),
        }
    }

    /// Size (and entity tag) of an object, `None` if it does not exist.
    pub async fn head(&self, path: &str) -> Result<Option<BlobMeta>, BlobError> {
        let this = self.target(path);
        let key = this.key(path)?;
        match this.inner.store.head(&key).await {
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
        match &self.target(path).inner.location {
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
        match &self.target(path).inner.location {
            Location::Local { .. } => url
                .strip_prefix("file://")
                .map(str::to_string)
                .unwrap_or(url),
            Location::Remote { .. } => url,
        }
    }

    /// The inverse of [`BlobStore::native_url`]: the key of a native URL (or, for file
    /// stores, of an absolute path) inside this store or one of its routes; `None` if it lies
    /// elsewhere, or in a store that does not hold that key (a route's root holds only the
    /// route's keys, and the main root none of them).
    pub fn path_from_native_url(&self, url: &str) -> Option<String> {
        self.routes
            .iter()
            .map(|(_, store)| store)
            .chain(std::iter::once(self))
            .find_map(|store| {
                let key = store.key_of_url_here(url)?;
                Arc::ptr_eq(&self.target(&key).inner, &store.inner).then_some(key)
            })
    }

    /// The key of a native URL under this store's own root (routes aside).
    fn key_of_url_here(&self, url: &str) -> Option<String> {
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

type Remote = (Arc<dyn ObjectStore>, Option<Arc<dyn Signer>>);

/// The object store of a non-file URL, with its presigner. The builders start from the
/// provider's standard environment (credentials, region, web identity), then the options.
fn remote_store(url: &Url, options: &BlobOptions) -> Result<Remote, String> {
    let set = |what: &str, v: &Option<String>| v.clone().map(|v| (what.to_string(), v));
    match url.scheme() {
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_allow_http(options.allow_http)
                .with_virtual_hosted_style_request(options.virtual_hosted_style);
            for (key, value) in [
                set("aws_region", &options.region),
                set("aws_endpoint", &options.endpoint),
                set("aws_access_key_id", &options.access_key_id),
                set("aws_secret_access_key", &options.secret_access_key),
                set("aws_session_token", &options.session_token),
            ]
            .into_iter()
            .flatten()
            .chain(options.extra.clone())
            {
                let k: AmazonS3ConfigKey = key.parse().map_err(|e| format!("option {key}: {e}"))?;
                b = b.with_config(k, value);
            }
            let s3 = Arc::new(b.build().map_err(|e| e.to_string())?);
            Ok((s3.clone(), Some(s3)))
        }
        "gs" => {
            let mut b = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
            for (key, value) in options.extra.clone() {
                let k: GoogleConfigKey = key.parse().map_err(|e| format!("option {key}: {e}"))?;
                b = b.with_config(k, value);
            }
            let gcs = Arc::new(b.build().map_err(|e| e.to_string())?);
            Ok((gcs.clone(), Some(gcs)))
        }
        "az" | "azure" | "abfs" | "abfss" | "adl" => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .with_allow_http(options.allow_http);
            if let Some(endpoint) = &options.endpoint {
                b = b.with_endpoint(endpoint.clone());
            }
            for (key, value) in options.extra.clone() {
                let k: AzureConfigKey = key.parse().map_err(|e| format!("option {key}: {e}"))?;
                b = b.with_config(k, value);
            }
            let az = Arc::new(b.build().map_err(|e| e.to_string())?);
            Ok((az.clone(), Some(az)))
        }
        "memory" => Ok((Arc::new(InMemory::new()), None)),
        other => Err(format!(
            "unsupported scheme {other}: use file://, s3://, gs://, az:// or abfs://"
        )),
    }
}

/// Installs rustls' ring provider as the process default, unless one is installed already.
/// reqwest 0.13 is built with `rustls-no-provider` for the object stores (no aws-lc C build),
/// and that feature is unified over the whole binary: every reqwest 0.13 client (the CLI's,
/// the OTLP exporter's) needs a provider before it is built, so `main` calls this first.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An object being written part by part ([`BlobStore::begin_upload`]).
pub struct BlobUpload {
    writer: Option<object_store::WriteMultipart>,
    path: String,
    bytes: u64,
    store: BlobStore,
}

/// Parts being uploaded at once, at most (each up to object_store's part size, 5 MiB).
const UPLOAD_PARTS_IN_FLIGHT: usize = 4;

impl BlobUpload {
    /// Appends a chunk; waits while too many parts are in flight, so memory stays bounded.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(BlobError::from_backend(
                &self.path,
                object_store::Error::Generic {
                    store: "flyte-blob",
                    source: "write after finish or abort".into(),
                },
            ));
        };
        if let Err(err) = writer.wait_for_capacity(UPLOAD_PARTS_IN_FLIGHT).await {
            return Err(self.failed(err));
        }
        writer.write(chunk);
        self.bytes += chunk.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Completes the object.
    pub async fn finish(mut self) -> Result<(), BlobError> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        match writer.finish().await {
            Ok(_) => {
                record_op("put", "ok");
                record_bytes("put", self.bytes);
                tracing::debug!(path = %self.path, bytes = self.bytes, "blob written (streamed)");
                self.store.set_write_blocked(None);
                Ok(())
            }
            Err(err) => Err(self.failed(err)),
        }
    }

    /// Gives the upload up: the object is not created (or keeps its old content).
    pub async fn abort(mut self) {
        if let Some(writer) = self.writer.take()
            && let Err(err) = writer.abort().await
        {
            tracing::warn!(path = %self.path, error = %err, "could not abort a blob upload");
        }
    }

    fn failed(&self, err: object_store::Error) -> BlobError {
        record_op("put", "error");
        let err = BlobError::from_backend(&self.path, err);
        if let BlobError::StorageFull { reason, .. } = &err {
            self.store.set_write_blocked(Some(reason.clone()));
        }
        err
    }
}

/// A failed read, counted by its kind (`not_found` or `error`).
fn read_error(path: &str, err: object_store::Error) -> BlobError {
    let outcome = if matches!(err, object_store::Error::NotFound { .. }) {
        "not_found"
    } else {
        "error"
    };
    record_op("get", outcome);
    BlobError::from_backend(path, err)
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
        assert!(matches!(
            BlobStore::from_url("ftp://host/x"),
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
    async fn routed_keys_live_in_their_store_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let open = |name: &str| BlobStore::from_url(&format!("file://{}/{name}", root.display()));
        let store = open("main")
            .unwrap()
            .with_routes(vec![
                ("metadata/team/".into(), open("team").unwrap()),
                ("metadata/team/prod/".into(), open("team-prod").unwrap()),
            ])
            .unwrap();
        for (key, body) in [
            ("metadata/team/dev/x/inputs.pb", "a"),
            ("metadata/team/prod/x/inputs.pb", "b"),
            ("metadata/other/dev/x/inputs.pb", "c"),
        ] {
            store.put(key, Bytes::from(body)).await.unwrap();
            assert_eq!(store.get(key).await.unwrap(), Bytes::from(body));
            assert_eq!(store.head(key).await.unwrap().unwrap().size, 1);
        }
        let on_disk = |p: &str| root.join(p).is_file();
        // The longest prefix wins; nothing routed is in the main store.
        assert!(on_disk("team/metadata/team/dev/x/inputs.pb"));
        assert!(on_disk("team-prod/metadata/team/prod/x/inputs.pb"));
        assert!(on_disk("main/metadata/other/dev/x/inputs.pb"));
        assert!(!on_disk("main/metadata/team/dev/x/inputs.pb"));
        assert!(!on_disk("team/metadata/team/prod/x/inputs.pb"));
        assert!(!on_disk("team/metadata/other/dev/x/inputs.pb"));

        let url = store.native_url("metadata/team/dev/x/inputs.pb");
        assert_eq!(
            url,
            format!(
                "file://{}/team/metadata/team/dev/x/inputs.pb",
                root.display()
            )
        );
        assert_eq!(
            store.path_from_native_url(&url).as_deref(),
            Some("metadata/team/dev/x/inputs.pb")
        );
        assert_eq!(
            store.literal_uri("metadata/team/dev/x/inputs.pb"),
            url.strip_prefix("file://").unwrap()
        );
        let mut upload = store.begin_upload("metadata/team/dev/big").await.unwrap();
        upload.write(b"streamed").await.unwrap();
        upload.finish().await.unwrap();
        assert!(on_disk("team/metadata/team/dev/big"));
        let (size, _) = store.get_stream("metadata/team/dev/big").await.unwrap();
        assert_eq!(size, 8);
        // A URL names a key only in the store that holds it.
        let main = |k: &str| format!("file://{}/main/{k}", root.display());
        let team = |k: &str| format!("file://{}/team/{k}", root.display());
        assert_eq!(
            store.path_from_native_url(&main("metadata/team/dev/x/inputs.pb")),
            None
        );
        assert_eq!(
            store.path_from_native_url(&team("metadata/other/dev/x/inputs.pb")),
            None
        );
        assert_eq!(
            store
                .path_from_native_url(&main("metadata/other/dev/x/inputs.pb"))
                .as_deref(),
            Some("metadata/other/dev/x/inputs.pb")
        );
        assert_eq!(store.root_url(), format!("file://{}/main", root.display()));
        store.ready().await.unwrap();
        assert!(matches!(
            open("x")
                .unwrap()
                .with_routes(vec![("/abs".into(), open("y").unwrap())]),
            Err(BlobError::InvalidPath { .. })
        ));
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
