//! DataProxyService over gRPC plus the signed HTTP upload/download endpoints, on one port,
//! as `pyflyte register` uses them (contract §1.1).

// CreateDownloadLocation is deprecated in flyteidl but still served (flytekit calls it).
#![allow(deprecated)]

mod gateway_support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use flyte_blob::{SignedMethod, UrlSigner};
use flyteidl::service::data_proxy_service_client::DataProxyServiceClient;
use flyteidl::service::{
    CreateDownloadLinkRequest, CreateDownloadLocationRequest, CreateUploadLocationRequest,
    GetDataRequest,
};
use gateway_support::*;
use tonic::Code;
use tonic::transport::Channel;

fn md5(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

async fn client(server: &TestServer) -> DataProxyServiceClient<Channel> {
    DataProxyServiceClient::new(server.channel().await)
}

/// What flytekit's `get_upload_signed_url` sends for a fast-registration bundle.
fn bundle_request(data: &[u8], filename: &str) -> CreateUploadLocationRequest {
    CreateUploadLocationRequest {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        filename: filename.into(),
        content_md5: md5(data).to_vec(),
        add_content_md5_metadata: true,
        ..Default::default()
    }
}

async fn put(
    server: &TestServer,
    url: &str,
    body: &'static [u8],
    content_md5: Option<String>,
) -> (u16, String) {
    let mut req = server.http.put(url).body(body);
    if let Some(md5) = content_md5 {
        req = req.header("Content-MD5", md5);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn upload_happy_path_lands_at_native_url() {
    let server = start().await;
    let mut dp = client(&server).await;
    let data: &'static [u8] = b"a fast registration bundle";
    let resp = dp
        .create_upload_location(bundle_request(data, "fastabc.tar.gz"))
        .await
        .unwrap()
        .into_inner();

    let prefix = data_encoding::BASE32.encode(&md5(data));
    // A plain path for the local store: flytekit takes a file:// literal URI verbatim.
    let expected_native = format!(
        "{}/uploads/{PROJECT}/{DOMAIN}/{prefix}/fastabc.tar.gz",
        server.blob_root.display()
    );
    assert_eq!(resp.native_url, expected_native);
    assert!(resp.signed_url.starts_with(&format!(
        "{}/api/v1/dataproxy/upload/uploads/{PROJECT}/{DOMAIN}/",
        server.base
    )));
    assert_eq!(
        resp.headers.get("Content-MD5"),
        Some(&BASE64.encode(md5(data)))
    );
    let expires = resp.expires_at.expect("expires_at").seconds;
    let now = chrono::Utc::now().timestamp();
    assert!(
        expires > now && expires <= now + 3600 + 5,
        "{expires} vs {now}"
    );

    // flytekit: PUT with Content-Length, Content-MD5 and the response headers; 200 or 201.
    let (status, text) = put(
        &server,
        &resp.signed_url,
        data,
        Some(BASE64.encode(md5(data))),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let on_disk = std::fs::read(&resp.native_url).unwrap();
    assert_eq!(on_disk, data);
    // Again (pyflyte register twice): replaced, 200.
    let (status, text) = put(
        &server,
        &resp.signed_url,
        data,
        Some(BASE64.encode(md5(data))),
    )
    .await;
    assert_eq!(status, 200, "{text}");

    // And back through a signed download URL.
    let dl = dp
        .create_download_location(CreateDownloadLocationRequest {
            native_url: resp.native_url.clone(),
            expires_in: None,
        })
        .await
        .unwrap()
        .into_inner();
    let got = server.http.get(&dl.signed_url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), data);
    // The download URL does not allow uploads, nor the upload URL downloads.
    let upload_via_dl = dl
        .signed_url
        .replace("/dataproxy/download/", "/dataproxy/upload/");
    assert_eq!(
        put(
            &server,
            &upload_via_dl,
            data,
            Some(BASE64.encode(md5(data)))
        )
        .await
        .0,
        403
    );
}

#[tokio::test]
async fn expired_and_forged_urls_are_refused() {
    let server = start().await;
    let signer = UrlSigner::new(SIGNING_KEY);
    let data: &'static [u8] = b"late";
    let path = "uploads/flytesnacks/development/x/late.tar.gz";
    let expired_at = chrono::Utc::now() - chrono::Duration::seconds(30);
    let url = flyte_admin::service::dataproxy::signed_url(
        &server.base,
        &signer,
        SignedMethod::Put,
        path,
        expired_at,
        Some(md5(data)),
    )
    .unwrap();
    let (status, text) = put(&server, &url, data, Some(BASE64.encode(md5(data)))).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("expired"), "{text}");
    assert!(
        server.state.blob.head(path).await.unwrap().is_none(),
        "nothing stored"
    );

    // A URL signed with another key, a tampered signature, and no signature at all.
    let other = UrlSigner::new(b"someone else");
    let later = chrono::Utc::now() + chrono::Duration::minutes(5);
    let forged = flyte_admin::service::dataproxy::signed_url(
        &server.base,
        &other,
        SignedMethod::Put,
        path,
        later,
        Some(md5(data)),
    )
    .unwrap();
    let (status, text) = put(&server, &forged, data, Some(BASE64.encode(md5(data)))).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("signature is invalid"), "{text}");
    let (status, text) = put(
        &server,
        &server.url(&format!("/api/v1/dataproxy/upload/{path}")),
        data,
        None,
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("not signed"), "{text}");
    // Signed for one path, used for another.
    let good = flyte_admin::service::dataproxy::signed_url(
        &server.base,
        &signer,
        SignedMethod::Put,
        path,
        later,
        Some(md5(data)),
    )
    .unwrap();
    let moved = good.replace("late.tar.gz", "other.tar.gz");
    assert_eq!(
        put(&server, &moved, data, Some(BASE64.encode(md5(data))))
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn bad_md5_is_refused() {
    let server = start().await;
    let mut dp = client(&server).await;
    let data: &'static [u8] = b"the real content";
    let resp = dp
        .create_upload_location(bundle_request(data, "f.tar.gz"))
        .await
        .unwrap()
        .into_inner();
    let native_path = resp.native_url.clone();

    // Header for other content than the URL was signed for.
    let (status, text) = put(
        &server,
        &resp.signed_url,
        b"other content",
        Some(BASE64.encode(md5(b"other content"))),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("does not match the MD5"), "{text}");
    // Right header, corrupted body.
    let (status, text) = put(
        &server,
        &resp.signed_url,
        b"the real c0ntent",
        Some(BASE64.encode(md5(data))),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("body's MD5"), "{text}");
    // No header although the URL is bound to an MD5.
    let (status, text) = put(&server, &resp.signed_url, data, None).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("Content-MD5"), "{text}");
    // Not base64.
    let (status, _) = put(&server, &resp.signed_url, data, Some("%%%".into())).await;
    assert_eq!(status, 400);
    assert!(
        !std::path::Path::new(&native_path).exists(),
        "nothing stored"
    );
}

#[tokio::test]
async fn request_validation() {
    let server = start().await;
    let mut dp = client(&server).await;
    let data = b"x";

    let err = dp
        .create_upload_location(CreateUploadLocationRequest {
            project: "nope".into(),
            ..bundle_request(data, "f")
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("project 'nope' does not exist"),
        "{err:?}"
    );

    let err = dp
        .create_upload_location(CreateUploadLocationRequest {
            domain: "qa".into(),
            ..bundle_request(data, "f")
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("domain 'qa'"), "{err:?}");

    let err = dp
        .create_upload_location(CreateUploadLocationRequest {
            project: String::new(),
            ..bundle_request(data, "f")
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::InvalidArgument,
            "project and domain are required parameters"
        )
    );

    let err = dp
        .create_upload_location(CreateUploadLocationRequest {
            content_md5: vec![],
            ..bundle_request(data, "f")
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::InvalidArgument,
            "content_md5 or filename_root is a required parameter"
        )
    );

    let err = dp
        .create_upload_location(CreateUploadLocationRequest {
            filename: "../escape".into(),
            ..bundle_request(data, "f")
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    let err = dp
        .create_upload_location(CreateUploadLocationRequest {
            expires_in: Some(pbjson_types::Duration {
                seconds: 30 * 24 * 3600,
                nanos: 0,
            }),
            ..bundle_request(data, "f")
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("cannot exceed"), "{err:?}");

    let err = dp
        .create_download_location(CreateDownloadLocationRequest {
            native_url: "s3://elsewhere/x".into(),
            expires_in: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    let err = dp
        .create_download_link(CreateDownloadLinkRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    let err = dp
        .get_data(GetDataRequest {
            flyte_url: "s3://x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    // A well-formed URL of an execution that does not exist.
    let err = dp
        .get_data(GetDataRequest {
            flyte_url: "flyte://v1/p/d/e/n/i".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("p/d/e/n"), "{err:?}");
}

#[tokio::test]
async fn filename_root_uploads() {
    let server = start().await;
    let mut dp = client(&server).await;
    let data: &'static [u8] = b"named content";

    // FlyteFS style: filename_root only, no MD5; the server picks a file name and the PUT has no Content-MD5.
    let resp = dp
        .create_upload_location(CreateUploadLocationRequest {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            filename_root: "myroot".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        resp.native_url
            .contains("/uploads/flytesnacks/development/myroot/"),
        "{}",
        resp.native_url
    );
    assert!(resp.headers.is_empty());
    let (status, text) = put(&server, &resp.signed_url, data, None).await;
    assert_eq!(status, 201, "{text}");

    // Deterministic location (filename_root + filename): rewriting needs the same MD5.
    let named = |md5: Option<[u8; 16]>| CreateUploadLocationRequest {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        filename_root: "root2".into(),
        filename: "data.bin".into(),
        content_md5: md5.map(|m| m.to_vec()).unwrap_or_default(),
        ..Default::default()
    };
    let first = dp
        .create_upload_location(named(Some(md5(data))))
        .await
        .unwrap()
        .into_inner();
    assert!(
        first
            .native_url
            .ends_with("/uploads/flytesnacks/development/root2/data.bin")
    );
    assert_eq!(
        put(
            &server,
            &first.signed_url,
            data,
            Some(BASE64.encode(md5(data)))
        )
        .await
        .0,
        201
    );
    // Same content again: allowed.
    dp.create_upload_location(named(Some(md5(data))))
        .await
        .unwrap();
    // Different content, or no hash: ALREADY_EXISTS.
    let err = dp
        .create_upload_location(named(Some(md5(b"changed"))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let err = dp.create_upload_location(named(None)).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
}

#[tokio::test]
async fn oversized_uploads_are_refused() {
    let server = start_with(|c| c.max_upload_bytes = 1024).await;
    let mut dp = client(&server).await;
    static BIG: [u8; 4096] = [7u8; 4096];
    let resp = dp
        .create_upload_location(bundle_request(&BIG, "big.bin"))
        .await
        .unwrap()
        .into_inner();
    let (status, text) = put(
        &server,
        &resp.signed_url,
        &BIG,
        Some(BASE64.encode(md5(&BIG))),
    )
    .await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("maximum size"), "{text}");
}

/// Uploads larger than a request may be (32 MiB by default) stream through to the store and
/// back: here 80 MiB in 1 MiB chunks with its MD5 checked; with a wrong MD5 nothing is stored.
#[tokio::test]
async fn large_uploads_stream_to_the_store_and_back() {
    let server = start().await;
    let mut dp = client(&server).await;
    let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let chunks = 80;
    let mut whole = md5::Md5::default();
    for _ in 0..chunks {
        md5::Digest::update(&mut whole, &chunk);
    }
    let digest: [u8; 16] = md5::Digest::finalize(whole).into();
    let request = CreateUploadLocationRequest {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        filename: "large.bin".into(),
        content_md5: digest.to_vec(),
        ..Default::default()
    };
    let resp = dp
        .create_upload_location(request)
        .await
        .unwrap()
        .into_inner();
    let body = |chunk: Vec<u8>| {
        reqwest::Body::wrap_stream(futures::stream::iter(
            (0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
        ))
    };
    let sent = server
        .http
        .put(&resp.signed_url)
        .header("Content-MD5", BASE64.encode(digest))
        .body(body(chunk.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        sent.status().as_u16(),
        201,
        "{}",
        sent.text().await.unwrap()
    );
    let on_disk = std::fs::metadata(&resp.native_url).unwrap().len();
    assert_eq!(on_disk, (chunks * chunk.len()) as u64);

    let dl = dp
        .create_download_location(CreateDownloadLocationRequest {
            native_url: resp.native_url.clone(),
            expires_in: None,
        })
        .await
        .unwrap()
        .into_inner();
    let got = server.http.get(&dl.signed_url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.content_length(), Some(on_disk));
    let back = got.bytes().await.unwrap();
    assert_eq!(md5(&back), digest);

    // A corrupted stream (last chunk differs) is refused and leaves the old object as it was.
    let mut bad = chunk.clone();
    bad[0] ^= 1;
    let corrupted = futures::stream::iter((0..chunks).map(move |i| {
        Ok::<_, std::io::Error>(if i == chunks - 1 {
            bad.clone()
        } else {
            chunk.clone()
        })
    }));
    let refused = server
        .http
        .put(&resp.signed_url)
        .header("Content-MD5", BASE64.encode(digest))
        .body(reqwest::Body::wrap_stream(corrupted))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    let kept = std::fs::read(&resp.native_url).unwrap();
    assert_eq!(
        md5(&kept),
        digest,
        "the refused upload must not replace the object"
    );
}
