//! One suite of blob store behaviour, run against every backend: the local file system
//! (always), a real S3-compatible server at `FLYTERS_TEST_S3_ENDPOINT` (started by
//! `scripts/s3.sh`) and Azurite, Microsoft's Azure Storage emulator, at
//! `FLYTERS_TEST_AZURITE_ENDPOINT` (`scripts/azurite.sh`). Unset, those tests FAIL rather than
//! skip: `export FLYTERS_TEST_S3_ENDPOINT=$(scripts/s3.sh | tail -n 1)`.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use flyte_blob::{BlobError, BlobOptions, BlobStore, SignedMethod};
use md5::Digest;

const S3_ENV: &str = "FLYTERS_TEST_S3_ENDPOINT";
const AZURITE_ENV: &str = "FLYTERS_TEST_AZURITE_ENDPOINT";
/// Azurite's well-known development account (public, documented by Microsoft).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const AZURE_CONTAINER: &str = "flyte-rs";

/// S3 settings matching scripts/s3.sh's defaults (overridable the same way).
fn s3_options() -> BlobOptions {
    let endpoint = std::env::var(S3_ENV).unwrap_or_else(|_| {
        panic!(
            "{S3_ENV} is not set: start the S3 server with \
             `export {S3_ENV}=$(scripts/s3.sh | tail -n 1)`"
        )
    });
    BlobOptions {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint),
        access_key_id: Some(env_or("FLYTERS_S3_ACCESS_KEY", "flyters")),
        secret_access_key: Some(env_or("FLYTERS_S3_SECRET_KEY", "flyters-secret-key")),
        allow_http: true,
        ..BlobOptions::default()
    }
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

fn unique() -> String {
    use rand::Rng;
    format!("conformance-{:016x}", rand::rng().random::<u64>())
}

/// A fresh, empty store of one backend (and what keeps it alive).
struct Backend {
    store: BlobStore,
    _dir: Option<tempfile::TempDir>,
}

fn fs() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::from_url(&format!("file://{}/blobs", dir.path().display())).unwrap();
    Backend {
        store,
        _dir: Some(dir),
    }
}

fn s3() -> Backend {
    let bucket = env_or("FLYTERS_S3_BUCKET", "flyte-rs");
    let url = format!("s3://{bucket}/{}", unique());
    Backend {
        store: BlobStore::open(&url, &s3_options()).unwrap(),
        _dir: None,
    }
}

fn azurite_endpoint() -> String {
    std::env::var(AZURITE_ENV).unwrap_or_else(|_| {
        panic!(
            "{AZURITE_ENV} is not set: start Azurite with \
             `export {AZURITE_ENV}=$(scripts/azurite.sh | tail -n 1)`"
        )
    })
}

fn azure_options() -> BlobOptions {
    let mut extra = std::collections::BTreeMap::new();
    extra.insert("azure_storage_account_name".into(), AZURITE_ACCOUNT.into());
    extra.insert("azure_storage_account_key".into(), AZURITE_KEY.into());
    BlobOptions {
        endpoint: Some(azurite_endpoint()),
        allow_http: true,
        extra,
        ..BlobOptions::default()
    }
}

/// Creates the container (object stores hold no API for it; operators create buckets and
/// containers beforehand): Azure's Create Container with a SharedKey signature.
async fn create_azure_container() {
    use hmac::{Hmac, Mac};
    flyte_blob::install_tls_provider();
    let endpoint = azurite_endpoint();
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
         /{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{AZURE_CONTAINER}\nrestype:container"
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&b64.decode(AZURITE_KEY).unwrap()).unwrap();
    mac.update(to_sign.as_bytes());
    let sig = b64.encode(mac.finalize().into_bytes());
    let resp = reqwest::Client::new()
        .put(format!("{endpoint}/{AZURE_CONTAINER}?restype=container"))
        .header("x-ms-date", date)
        .header("x-ms-version", version)
        .header("Content-Length", "0")
        .header(
            "Authorization",
            format!("SharedKey {AZURITE_ACCOUNT}:{sig}"),
        )
        .send()
        .await
        .unwrap();
    // 409: it exists already.
    assert!(
        resp.status().is_success() || resp.status().as_u16() == 409,
        "create container: {} {:?}",
        resp.status(),
        resp.text().await
    );
}

async fn azure() -> Backend {
    create_azure_container().await;
    let url = format!("az://{AZURE_CONTAINER}/{}", unique());
    Backend {
        store: BlobStore::open(&url, &azure_options()).unwrap(),
        _dir: None,
    }
}

async fn round_trip(b: Backend) {
    let s = &b.store;
    assert_eq!(s.head("a/b/c.txt").await.unwrap(), None);
    assert!(matches!(
        s.get("a/b/c.txt").await,
        Err(BlobError::NotFound(_))
    ));
    s.put("a/b/c.txt", Bytes::from_static(b"hello"))
        .await
        .unwrap();
    assert_eq!(
        s.get("a/b/c.txt").await.unwrap(),
        Bytes::from_static(b"hello")
    );
    assert_eq!(s.head("a/b/c.txt").await.unwrap().unwrap().size, 5);
    // Overwrite replaces, and a large-ish binary object survives intact.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    s.put("a/b/c.txt", Bytes::from(big.clone())).await.unwrap();
    assert_eq!(s.get("a/b/c.txt").await.unwrap(), Bytes::from(big));
    // Keys with characters flytekit uses (base32 '=', dashes, dots).
    s.put("uploads/p/d/ABC=/fast-1.tar.gz", Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(
        s.get("uploads/p/d/ABC=/fast-1.tar.gz").await.unwrap(),
        Bytes::from_static(b"x")
    );
    for bad in ["", "a//b", "a/../b"] {
        assert!(matches!(
            s.put(bad, Bytes::new()).await,
            Err(BlobError::InvalidPath { .. })
        ));
    }
}

async fn native_urls(b: Backend) {
    let s = &b.store;
    s.put("outputs/x/outputs.pb", Bytes::from_static(b"o"))
        .await
        .unwrap();
    let url = s.native_url("outputs/x/outputs.pb");
    assert!(
        url.starts_with(&s.root_url()),
        "{url} not under {}",
        s.root_url()
    );
    assert_eq!(
        s.path_from_native_url(&url).as_deref(),
        Some("outputs/x/outputs.pb")
    );
    assert_eq!(s.path_from_native_url("gs://elsewhere/outputs.pb"), None);
}

/// Two stores on different prefixes of one bucket do not see each other's objects.
async fn prefixes_are_isolated(a: Backend, b: Backend) {
    a.store.put("k", Bytes::from_static(b"a")).await.unwrap();
    assert_eq!(b.store.head("k").await.unwrap(), None);
}

fn md5(data: &[u8]) -> [u8; 16] {
    md5::Md5::digest(data).into()
}

/// What flytekit does with CreateUploadLocation's URL: PUT the bytes with Content-MD5; then
/// anyone with a presigned GET reads them. A body with another digest is refused.
/// `binds_md5`: the signature covers Content-MD5 (S3, GCS), so a swapped header is refused
/// too; Azure SAS URLs sign no headers.
async fn presigned_upload_and_download(b: Backend, binds_md5: bool) {
    let s = &b.store;
    let body = b"the bytes of a FlyteFile".to_vec();
    let digest = md5(&body);
    let ttl = Duration::from_secs(300);
    let put = s
        .presigned_url(SignedMethod::Put, "uploads/f.txt", ttl, Some(digest))
        .await
        .unwrap()
        .expect("an object store presigns");
    assert!(put.starts_with("http"), "{put}");
    flyte_blob::install_tls_provider();
    let client = reqwest::Client::new();
    let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
    let resp = client
        .put(&put)
        .header("Content-MD5", &b64)
        .header("x-ms-blob-type", "BlockBlob") // what flytekit adds for Azure
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    assert_eq!(
        s.get("uploads/f.txt").await.unwrap(),
        Bytes::from(body.clone())
    );

    let get = s
        .presigned_url(SignedMethod::Get, "uploads/f.txt", ttl, None)
        .await
        .unwrap()
        .unwrap();
    let resp = client.get(&get).send().await.unwrap();
    assert!(resp.status().is_success());
    assert_eq!(resp.bytes().await.unwrap(), Bytes::from(body.clone()));
    // Unsigned access is refused: the URL's signature is what grants it.
    let bare = get.split('?').next().unwrap().to_string();
    let resp = client.get(&bare).send().await.unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());

    // Same URL and header, other content: the store rejects the upload (s3s-fs still leaves
    // the rejected body in place, unlike AWS S3: the content is not checked after this).
    let resp = client
        .put(&put)
        .header("Content-MD5", &b64)
        .header("x-ms-blob-type", "BlockBlob")
        .body(b"tampered".to_vec())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    if !binds_md5 {
        return;
    }
    // A signed Content-MD5 cannot be swapped for the tampered body's own.
    let resp = client
        .put(&put)
        .header(
            "Content-MD5",
            base64::engine::general_purpose::STANDARD.encode(md5(b"tampered")),
        )
        .body(b"tampered".to_vec())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
}

#[tokio::test]
async fn fs_round_trip() {
    round_trip(fs()).await;
}
#[tokio::test]
async fn s3_round_trip() {
    round_trip(s3()).await;
}

#[tokio::test]
async fn fs_native_urls() {
    native_urls(fs()).await;
}
#[tokio::test]
async fn s3_native_urls() {
    native_urls(s3()).await;
}

#[tokio::test]
async fn fs_prefixes_are_isolated() {
    prefixes_are_isolated(fs(), fs()).await;
}
#[tokio::test]
async fn s3_prefixes_are_isolated() {
    prefixes_are_isolated(s3(), s3()).await;
}

#[tokio::test]
async fn fs_does_not_presign() {
    // Local files: the data proxy signs and serves its own URLs instead.
    let b = fs();
    assert!(!b.store.presigns());
    let url = b
        .store
        .presigned_url(SignedMethod::Put, "x", Duration::from_secs(60), None)
        .await
        .unwrap();
    assert_eq!(url, None);
}
#[tokio::test]
async fn s3_presigned_upload_and_download() {
    presigned_upload_and_download(s3(), true).await;
}

#[tokio::test]
async fn azure_round_trip() {
    round_trip(azure().await).await;
}
#[tokio::test]
async fn azure_native_urls() {
    native_urls(azure().await).await;
}
#[tokio::test]
async fn azure_prefixes_are_isolated() {
    prefixes_are_isolated(azure().await, azure().await).await;
}
#[tokio::test]
async fn azure_presigned_upload_and_download() {
    presigned_upload_and_download(azure().await, false).await;
}

#[tokio::test]
async fn s3_wrong_credentials_fail_with_a_backend_error() {
    let mut options = s3_options();
    options.secret_access_key = Some("not-the-secret".into());
    let store = BlobStore::open("s3://flyte-rs/conformance-badcreds", &options).unwrap();
    let err = store.put("k", Bytes::from_static(b"v")).await.unwrap_err();
    assert!(matches!(err, BlobError::Backend(_)), "{err:?}");
}

#[test]
fn s3_options_debug_hides_secrets() {
    let shown = format!("{:?}", s3_options());
    assert!(!shown.contains("flyters-secret-key"), "{shown}");
}
