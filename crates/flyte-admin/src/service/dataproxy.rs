//! DataProxyService: signed upload and download locations in the blob store, and the HTTP
//! endpoints those signed URLs point to.
//!
//! Behaviour follows flyteadmin's `dataproxy/service.go`: uploads land at
//! `<upload_prefix>/<project>/<domain>/<filename_root or base32(md5)>/<filename>` in the blob
//! store; `native_url` is what task processes read (`pyflyte-fast-execute
//! --additional-distribution <native_url>`). The signed URL is the object store's own
//! presigned URL when it has one (S3, GCS, Azure; docs/storage.md), else this server's
//! `PUT /api/v1/dataproxy/upload/<path>?expires=…&md5=…&sig=…`, verified by [`upload`].

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use data_encoding::{BASE32, HEXLOWER};
use flyte_blob::{BlobError, SignatureError, SignedMethod, UrlSigner};
use flyte_store::StoreError;
use flyteidl::service::data_proxy_service_server::{DataProxyService, DataProxyServiceServer};
use flyteidl::service::{
    ArtifactType, CreateDownloadLinkRequest, CreateDownloadLinkResponse,
    CreateDownloadLocationRequest, CreateDownloadLocationResponse, CreateUploadLocationRequest,
    CreateUploadLocationResponse, GetDataRequest, GetDataResponse, PreSignedUrLs,
    create_download_link_request, get_data_response,
};
use futures::StreamExt;
use http::{HeaderMap, StatusCode, header};
use md5::{Digest, Md5};
use serde::Deserialize;
use tonic::{Request, Response as GrpcResponse, Status};

use crate::error::{AdminError, AdminResult, http_status_for, quoted};
use crate::service::admin::data_access;
use crate::state::AdminState;

/// Route of the upload endpoint (axum syntax); signed URLs point below it.
pub const UPLOAD_ROUTE: &str = "/api/v1/dataproxy/upload/{*path}";
/// Route of the download endpoint (axum syntax).
pub const DOWNLOAD_ROUTE: &str = "/api/v1/dataproxy/download/{*path}";
const UPLOAD_BASE: [&str; 4] = ["api", "v1", "dataproxy", "upload"];
const DOWNLOAD_BASE: [&str; 4] = ["api", "v1", "dataproxy", "download"];
/// Length of the random file name when a client gives none (flyteadmin: DefaultFileNameLength).
const RANDOM_FILENAME_LEN: usize = 20;

/// The DataProxyService implementation. Shares its [`UrlSigner`] with the HTTP endpoints.
#[derive(Clone)]
pub struct DataProxyApi {
    state: AdminState,
    signer: UrlSigner,
}

impl DataProxyApi {
    pub fn new(state: AdminState, signer: UrlSigner) -> Self {
        Self { state, signer }
    }
}

/// The tonic service, ready to be added to the gRPC routes.
pub fn data_proxy_service(
    state: AdminState,
    signer: UrlSigner,
) -> DataProxyServiceServer<DataProxyApi> {
    let max = state.config.max_request_bytes;
    DataProxyServiceServer::new(DataProxyApi::new(state, signer))
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX)
}

fn blob_error(err: BlobError) -> AdminError {
    match err {
        BlobError::InvalidPath { .. } | BlobError::InvalidUrl { .. } => {
            AdminError::InvalidArgument(err.to_string())
        }
        BlobError::NotFound(what) => AdminError::NotFound(format!("blob {what} not found")),
        BlobError::StorageFull { .. } => AdminError::ResourceExhausted(err.to_string()),
        BlobError::Backend(_) => AdminError::internal(&err),
    }
}

/// A requested lifetime, checked against the configured maximum (flyteadmin rejects
/// rather than clamps); the configured default when none is asked for.
fn lifetime(
    requested: Option<&pbjson_types::Duration>,
    default: Duration,
    max: Duration,
) -> AdminResult<Duration> {
    let Some(d) = requested else {
        return Ok(default.min(max));
    };
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        return Err(AdminError::invalid(format!(
            "expires_in {}s{}ns is invalid: it must be a non-negative duration",
            d.seconds, d.nanos
        )));
    }
    let asked = Duration::new(d.seconds as u64, d.nanos as u32);
    if asked > max {
        return Err(AdminError::invalid(format!(
            "expires_in {}s cannot exceed the maximum allowed expiration of {}s",
            asked.as_secs(),
            max.as_secs()
        )));
    }
    if asked.is_zero() {
        Ok(default.min(max))
    } else {
        Ok(asked)
    }
}

fn timestamp(at: DateTime<Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// Longest path segment, in bytes: the 255 a file system holds (NAME_MAX on Linux and
/// macOS) less room for the `#<n>` suffix of the file object_store's local store writes
/// first and renames (object_store `local.rs`, `staged_upload_path`): a 255-byte name fails
/// there with "File name too long". The same bound for every store, so it is predictable.
pub const MAX_SEGMENT_BYTES: usize = 240;
/// Longest object key, in bytes: what S3 and GCS hold (and well inside PATH_MAX below any
/// local root).
pub const MAX_KEY_BYTES: usize = 1024;

/// A path part given by a client, checked for what every blob store can hold: a relative path
/// of non-empty segments of at most [`MAX_SEGMENT_BYTES`], no `.`/`..`, no backslashes or
/// control characters (NUL included). Refused here rather than failing at the upload.
fn check_part(field: &str, value: &str) -> AdminResult<()> {
    let shape = value.is_empty()
        || value.starts_with('/')
        || value.ends_with('/')
        || value.contains('\\')
        || value.chars().any(char::is_control)
        || value
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if shape {
        return Err(AdminError::invalid(format!(
            "{field} {} is invalid: it must be a relative path without empty, '.' or '..' \
             segments, backslashes or control characters",
            quoted(value)
        )));
    }
    if let Some(long) = value.split('/').find(|s| s.len() > MAX_SEGMENT_BYTES) {
        return Err(AdminError::invalid(format!(
            "{field} {} is invalid: its part {} is {} bytes long, more than the \
             {MAX_SEGMENT_BYTES} bytes a file name can have in the blob store",
            quoted(value),
            quoted(long),
            long.len()
        )));
    }
    if value.len() > MAX_KEY_BYTES {
        return Err(AdminError::invalid(format!(
            "{field} {} is invalid: it is {} bytes long, more than the {MAX_KEY_BYTES} bytes \
             an object key can have",
            quoted(value),
            value.len()
        )));
    }
    Ok(())
}

fn random_filename() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..RANDOM_FILENAME_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn md5_of(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

impl DataProxyApi {
    /// A presigned URL of the object store itself when it has one (S3, GCS, Azure: the data
    /// never passes through this server; an upload's Content-MD5 is bound into the signature),
    /// else this server's own
    /// `<public_url>/api/v1/dataproxy/{upload,download}/<path>?expires=…[&md5=…]&sig=…`.
    async fn signed_url(
        &self,
        method: SignedMethod,
        path: &str,
        expires_at: DateTime<Utc>,
        md5: Option<[u8; 16]>,
    ) -> AdminResult<String> {
        let ttl = (expires_at - Utc::now()).to_std().unwrap_or_default();
        if let Some(url) = self
            .state
            .blob
            .presigned_url(method, path, ttl, md5)
            .await
            .map_err(blob_error)?
        {
            return Ok(url);
        }
        signed_url(
            &self.state.config.public_url,
            &self.signer,
            method,
            path,
            expires_at,
            md5,
        )
    }

    async fn check_project_domain(&self, project: &str, domain: &str) -> AdminResult<()> {
        if !self.state.config.domains.iter().any(|(id, _)| id == domain) {
            let known: Vec<&str> = self
                .state
                .config
                .domains
                .iter()
                .map(|(id, _)| id.as_str())
                .collect();
            return Err(AdminError::invalid(format!(
                "domain {} is not configured; known domains: {}",
                quoted(domain),
                known.join(", ")
            )));
        }
        match self.state.store.get_project(project).await {
            Ok(_) => Ok(()),
            Err(StoreError::NotFound(_)) => Err(AdminError::invalid(format!(
                "project {} does not exist; register it first (pyflyte/flytectl create project)",
                quoted(project)
            ))),
            Err(err) => Err(err.into()),
        }
    }

    async fn create_upload(
        &self,
        req: CreateUploadLocationRequest,
    ) -> AdminResult<CreateUploadLocationResponse> {
        if req.project.is_empty() || req.domain.is_empty() {
            return Err(AdminError::invalid(
                "project and domain are required parameters",
            ));
        }
        if req.filename_root.is_empty() && req.content_md5.is_empty() {
            return Err(AdminError::invalid(
                "content_md5 or filename_root is a required parameter",
            ));
        }
        let md5: Option<[u8; 16]> = if req.content_md5.is_empty() {
            None
        } else {
            Some(req.content_md5.as_slice().try_into().map_err(|_| {
                AdminError::invalid(format!(
                    "content_md5 must be the 16 raw bytes of an MD5 digest, got {} bytes",
                    req.content_md5.len()
                ))
            })?)
        };
        check_part("project", &req.project)?;
        check_part("domain", &req.domain)?;
        if !req.filename_root.is_empty() {
            check_part("filename_root", &req.filename_root)?;
        }
        if !req.filename.is_empty() {
            check_part("filename", &req.filename)?;
        }
        self.check_project_domain(&req.project, &req.domain).await?;
        let config = &self.state.config;
        let ttl = lifetime(
            req.expires_in.as_ref(),
            config.signed_url_ttl,
            config.max_signed_url_ttl,
        )?;

        let location = |prefix: &str, filename: &str| {
            [
                config.upload_prefix.as_str(),
                &req.project,
                &req.domain,
                prefix,
                filename,
            ]
            .iter()
            .flat_map(|part| part.split('/'))
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("/")
        };

        // A deterministic location (filename_root + filename) may only be rewritten with the
        // same content.
        if !req.filename.is_empty() && !req.filename_root.is_empty() {
            let known = location(&req.filename_root, &req.filename);
            if self
                .state
                .blob
                .head(&known)
                .await
                .map_err(blob_error)?
                .is_some()
            {
                let Some(md5) = md5 else {
                    return Err(AdminError::AlreadyExists(format!(
                        "file already exists at location [{}], specify a matching hash if you wish to rewrite",
                        self.state.blob.native_url(&known)
                    )));
                };
                let existing = self.state.blob.get(&known).await.map_err(blob_error)?;
                if md5_of(&existing) != md5 {
                    return Err(AdminError::AlreadyExists(format!(
                        "file already exists at location [{}] with a different content MD5; specify a matching hash if you wish to rewrite",
                        self.state.blob.native_url(&known)
                    )));
                }
            }
        }

        let filename = if req.filename.is_empty() {
            random_filename()
        } else {
            req.filename.clone()
        };
        let prefix = if req.filename_root.is_empty() {
            BASE32.encode(md5.as_ref().map(|m| &m[..]).unwrap_or_default())
        } else {
            req.filename_root.clone()
        };
        let path = location(&prefix, &filename);
        if path.len() > MAX_KEY_BYTES {
            return Err(AdminError::invalid(format!(
                "filename {} and filename_root {} make an object key of {} bytes, more than \
                 the {MAX_KEY_BYTES} bytes a blob store can hold",
                quoted(&filename),
                quoted(&prefix),
                path.len()
            )));
        }
        let expires_at = Utc::now() + ttl;
        let signed_url = self
            .signed_url(SignedMethod::Put, &path, expires_at, md5)
            .await?;
        let mut headers = BTreeMap::new();
        if let (Some(md5), true) = (md5, req.add_content_md5_metadata) {
            headers.insert("Content-MD5".to_string(), BASE64.encode(md5));
        }
        Ok(CreateUploadLocationResponse {
            signed_url,
            native_url: self.state.blob.literal_uri(&path),
            expires_at: Some(timestamp(expires_at)),
            headers,
        })
    }

    fn download_path(&self, native_url: &str) -> AdminResult<String> {
        if native_url.is_empty() {
            return Err(AdminError::invalid("native_url is required"));
        }
        self.state
            .blob
            .path_from_native_url(native_url)
            .ok_or_else(|| {
                AdminError::invalid(format!(
                    "native_url {} is not inside this server's blob store ({})",
                    quoted(native_url),
                    self.state.blob.root_url()
                ))
            })
    }
}

/// Builds a signed data-proxy URL on `public_url`.
pub fn signed_url(
    public_url: &str,
    signer: &UrlSigner,
    method: SignedMethod,
    path: &str,
    expires_at: DateTime<Utc>,
    md5: Option<[u8; 16]>,
) -> AdminResult<String> {
    let mut url = url::Url::parse(public_url).map_err(|e| {
        AdminError::Internal(format!("public_url '{public_url}' is not a URL: {e}"))
    })?;
    let base = match method {
        SignedMethod::Put => UPLOAD_BASE,
        SignedMethod::Get => DOWNLOAD_BASE,
    };
    {
        let mut segments = url.path_segments_mut().map_err(|()| {
            AdminError::Internal(format!("public_url '{public_url}' cannot have a path"))
        })?;
        segments.pop_if_empty().extend(base).extend(path.split('/'));
    }
    let sig = signer.sign(method, path, expires_at, md5);
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("expires", &expires_at.timestamp().to_string());
        if let Some(md5) = md5 {
            query.append_pair("md5", &HEXLOWER.encode(&md5));
        }
        query.append_pair("sig", &sig);
    }
    Ok(url.into())
}

#[tonic::async_trait]
impl DataProxyService for DataProxyApi {
    async fn create_upload_location(
        &self,
        request: Request<CreateUploadLocationRequest>,
    ) -> Result<GrpcResponse<CreateUploadLocationResponse>, Status> {
        Ok(GrpcResponse::new(
            self.create_upload(request.into_inner()).await?,
        ))
    }

    async fn create_download_location(
        &self,
        request: Request<CreateDownloadLocationRequest>,
    ) -> Result<GrpcResponse<CreateDownloadLocationResponse>, Status> {
        let req = request.into_inner();
        let config = &self.state.config;
        let ttl = lifetime(
            req.expires_in.as_ref(),
            config.signed_url_ttl,
            config.max_signed_url_ttl,
        )?;
        let path = self.download_path(&req.native_url)?;
        let expires_at = Utc::now() + ttl;
        let signed_url = self
            .signed_url(SignedMethod::Get, &path, expires_at, None)
            .await?;
        Ok(GrpcResponse::new(CreateDownloadLocationResponse {
            signed_url,
            expires_at: Some(timestamp(expires_at)),
        }))
    }

    async fn create_download_link(
        &self,
        request: Request<CreateDownloadLinkRequest>,
    ) -> Result<GrpcResponse<CreateDownloadLinkResponse>, Status> {
        Ok(GrpcResponse::new(
            self.download_link(request.into_inner()).await?,
        ))
    }

    async fn get_data(
        &self,
        request: Request<GetDataRequest>,
    ) -> Result<GrpcResponse<GetDataResponse>, Status> {
        Ok(GrpcResponse::new(self.data(request.into_inner()).await?))
    }
}

impl DataProxyApi {
    /// flyteadmin `CreateDownloadLink`: a signed GET URL of a node's deck (also in the
    /// deprecated top-level fields, which older clients read).
    #[allow(deprecated)]
    async fn download_link(
        &self,
        req: CreateDownloadLinkRequest,
    ) -> AdminResult<CreateDownloadLinkResponse> {
        let config = &self.state.config;
        let ttl = lifetime(
            req.expires_in.as_ref(),
            config.signed_url_ttl,
            config.max_signed_url_ttl,
        )?;
        if req.artifact_type != ArtifactType::Deck as i32 {
            return Err(AdminError::invalid(format!(
                "artifact_type {} is invalid: use ARTIFACT_TYPE_DECK",
                req.artifact_type
            )));
        }
        let Some(create_download_link_request::Source::NodeExecutionId(id)) = req.source else {
            return Err(AdminError::invalid(
                "source is required: set node_execution_id",
            ));
        };
        let path = data_access::deck_path(&self.state, Some(&id)).await?;
        let expires_at = Utc::now() + ttl;
        let url = self
            .signed_url(SignedMethod::Get, &path, expires_at, None)
            .await?;
        Ok(CreateDownloadLinkResponse {
            signed_url: vec![url.clone()],
            expires_at: Some(timestamp(expires_at)),
            pre_signed_urls: Some(PreSignedUrLs {
                signed_url: vec![url],
                expires_at: Some(timestamp(expires_at)),
            }),
        })
    }

    /// flyteadmin `GetData`: what a `flyte://` URL names (node or attempt inputs/outputs, one
    /// of them by name, or the node's deck as a download link).
    async fn data(&self, req: GetDataRequest) -> AdminResult<GetDataResponse> {
        if req.flyte_url.is_empty() {
            return Err(AdminError::invalid("flyte_url is required"));
        }
        let url = data_access::parse_flyte_url(&req.flyte_url)?;
        let data = match url.artifact {
            data_access::Artifact::Deck => {
                let link = self
                    .download_link(CreateDownloadLinkRequest {
                        artifact_type: ArtifactType::Deck as i32,
                        expires_in: None,
                        source: Some(create_download_link_request::Source::NodeExecutionId(
                            flyteidl::core::NodeExecutionIdentifier {
                                node_id: url.node.node_id.clone(),
                                execution_id: Some(flyteidl::core::WorkflowExecutionIdentifier {
                                    project: url.node.execution.project.clone(),
                                    domain: url.node.execution.domain.clone(),
                                    name: url.node.execution.name.clone(),
                                    ..Default::default()
                                }),
                            },
                        )),
                    })
                    .await?;
                get_data_response::Data::PreSignedUrls(link.pre_signed_urls.unwrap_or_default())
            }
            _ => match data_access::literal_data(&self.state, &url).await? {
                data_access::Data::Map(map) => get_data_response::Data::LiteralMap(map),
                data_access::Data::One(lit) => get_data_response::Data::Literal(*lit),
            },
        };
        Ok(GetDataResponse { data: Some(data) })
    }
}

// --- the HTTP endpoints -----------------------------------------------------------------

/// State of the upload/download endpoints.
#[derive(Clone)]
pub struct DataProxyHttp {
    pub state: AdminState,
    pub signer: UrlSigner,
}

#[derive(Debug, Deserialize)]
pub struct SignedQuery {
    expires: Option<String>,
    md5: Option<String>,
    sig: Option<String>,
}

/// A JSON error as the gateway writes them: `{"code": <grpc code>, "message": …, "details": []}`.
pub(crate) fn json_error(
    code: tonic::Code,
    status: StatusCode,
    message: impl Into<String>,
) -> Response {
    let body = serde_json::json!({ "code": code as i32, "message": message.into(), "details": [] });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn admin_error_response(err: AdminError) -> Response {
    let (code, message) = err.answer();
    json_error(code, http_status_for(code), message)
}

fn forbidden(message: impl Into<String>) -> Response {
    json_error(
        tonic::Code::PermissionDenied,
        StatusCode::FORBIDDEN,
        message,
    )
}

fn bad_request(message: impl Into<String>) -> Response {
    json_error(
        tonic::Code::InvalidArgument,
        StatusCode::BAD_REQUEST,
        message,
    )
}

/// Checks the signature of a request to `path`; the error is the response to send.
#[allow(clippy::result_large_err)]
fn verify(
    signer: &UrlSigner,
    method: SignedMethod,
    path: &str,
    query: &SignedQuery,
) -> Result<Option<[u8; 16]>, Response> {
    let (Some(expires), Some(sig)) = (query.expires.as_deref(), query.sig.as_deref()) else {
        return Err(forbidden(
            "this URL is not signed: request a signed URL with DataProxyService CreateUploadLocation / CreateDownloadLocation",
        ));
    };
    let expires: i64 = expires
        .parse()
        .map_err(|_| forbidden(format!("invalid expires parameter {}", quoted(expires))))?;
    let md5 = match query.md5.as_deref() {
        None | Some("") => None,
        Some(hex) => {
            let bytes = HEXLOWER
                .decode(hex.to_ascii_lowercase().as_bytes())
                .ok()
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| forbidden(format!("invalid md5 parameter {}", quoted(hex))))?;
            Some(bytes)
        }
    };
    match signer.verify(method, path, expires, md5, sig, Utc::now()) {
        Ok(()) => Ok(md5),
        Err(err @ SignatureError::Expired(_)) => Err(forbidden(err.to_string())),
        Err(err @ SignatureError::Invalid) => Err(forbidden(err.to_string())),
    }
}

/// `PUT /api/v1/dataproxy/upload/*path`: the target of CreateUploadLocation's signed URL.
/// 201 when the object is new, 200 when it replaced one.
pub async fn upload(
    State(http): State<DataProxyHttp>,
    Path(path): Path<String>,
    Query(query): Query<SignedQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let signed_md5 = match verify(&http.signer, SignedMethod::Put, &path, &query) {
        Ok(md5) => md5,
        Err(response) => return response,
    };
    let header_md5 = match headers.get("content-md5") {
        None => None,
        Some(value) => {
            let decoded = value
                .to_str()
                .ok()
                .and_then(|v| BASE64.decode(v.trim()).ok())
                .and_then(|b| <[u8; 16]>::try_from(b).ok());
            match decoded {
                Some(md5) => Some(md5),
                None => {
                    return bad_request(
                        "the Content-MD5 header must be the base64 of a 16-byte MD5 digest",
                    );
                }
            }
        }
    };
    if let Some(signed) = signed_md5 {
        match header_md5 {
            None => {
                return bad_request(format!(
                    "this upload URL was signed for content MD5 {}; send it as the Content-MD5 header (base64)",
                    BASE64.encode(signed)
                ));
            }
            Some(sent) if sent != signed => {
                return bad_request(format!(
                    "Content-MD5 {} does not match the MD5 {} this upload URL was signed for",
                    BASE64.encode(sent),
                    BASE64.encode(signed)
                ));
            }
            Some(_) => {}
        }
    }
    let limit = http.state.config.max_upload_bytes;
    let too_large = || {
        json_error(
            tonic::Code::ResourceExhausted,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("upload exceeds the maximum size of {limit} bytes (admin.max_upload_bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return too_large();
    }
    // Whether it is new or replaced (201 or 200), before any of it is written.
    let existed = match http.state.blob.head(&path).await {
        Ok(meta) => meta.is_some(),
        Err(err) => return admin_error_response(blob_error(err)),
    };
    // Streamed part by part into the store: an upload of any size holds a few parts in
    // memory, and becomes visible only once complete and its MD5 checked.
    let mut upload = match http.state.blob.begin_upload(&path).await {
        Ok(upload) => upload,
        Err(err) => return admin_error_response(blob_error(err)),
    };
    let mut hasher = header_md5.map(|_| Md5::new());
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                upload.abort().await;
                return bad_request(format!("failed to read the upload body: {err}"));
            }
        };
        if upload.len() + chunk.len() as u64 > limit {
            upload.abort().await;
            return too_large();
        }
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&chunk);
        }
        if let Err(err) = upload.write(&chunk).await {
            upload.abort().await;
            return admin_error_response(blob_error(err));
        }
    }
    if let (Some(expected), Some(hasher)) = (header_md5, hasher) {
        let actual: [u8; 16] = hasher.finalize().into();
        if actual != expected {
            upload.abort().await;
            return bad_request(format!(
                "the body's MD5 {} does not match Content-MD5 {}; the upload was corrupted or the header is wrong",
                BASE64.encode(actual),
                BASE64.encode(expected)
            ));
        }
    }
    if let Err(err) = upload.finish().await {
        return admin_error_response(blob_error(err));
    }
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = serde_json::json!({ "native_url": http.state.blob.native_url(&path) });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /api/v1/dataproxy/download/*path`: the target of CreateDownloadLocation's signed URL.
pub async fn download(
    State(http): State<DataProxyHttp>,
    Path(path): Path<String>,
    Query(query): Query<SignedQuery>,
) -> Response {
    if let Err(response) = verify(&http.signer, SignedMethod::Get, &path, &query) {
        return response;
    }
    // Decks open in a browser as pages, everything else downloads.
    let content_type = if path.ends_with(".html") {
        "text/html; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    // Streamed from the store: objects of any size, never whole in memory.
    match http.state.blob.get_stream(&path).await {
        Ok((size, chunks)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, content_type.to_string()),
                (header::CONTENT_LENGTH, size.to_string()),
            ],
            Body::from_stream(chunks),
        )
            .into_response(),
        Err(err) => admin_error_response(blob_error(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_prefix_matches_go_std_encoding() {
        // Go: base32.StdEncoding.EncodeToString(md5("hello")) — padded RFC 4648 alphabet
        // (same as Python base64.b32encode).
        let md5 = md5_of(b"hello");
        assert_eq!(BASE32.encode(&md5), "LVAUAKV4JMVHNOLRTWIRAF6FSI======");
    }

    #[test]
    fn lifetimes() {
        let d = Duration::from_secs(3600);
        let max = Duration::from_secs(7200);
        assert_eq!(lifetime(None, d, max).unwrap(), d);
        let asked = pbjson_types::Duration {
            seconds: 60,
            nanos: 0,
        };
        assert_eq!(
            lifetime(Some(&asked), d, max).unwrap(),
            Duration::from_secs(60)
        );
        let too_long = pbjson_types::Duration {
            seconds: 7201,
            nanos: 0,
        };
        assert!(matches!(
            lifetime(Some(&too_long), d, max),
            Err(AdminError::InvalidArgument(_))
        ));
        let negative = pbjson_types::Duration {
            seconds: -1,
            nanos: 0,
        };
        assert!(matches!(
            lifetime(Some(&negative), d, max),
            Err(AdminError::InvalidArgument(_))
        ));
    }

    #[test]
    fn parts() {
        assert!(check_part("f", "a/b.tar.gz").is_ok());
        for bad in ["", "/a", "a/", "a//b", "../a", "a/./b", "a\\b"] {
            assert!(check_part("f", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn signed_urls_encode_the_path() {
        let signer = UrlSigner::new(b"k");
        let at = DateTime::from_timestamp(2_000_000_000, 0).unwrap();
        let url = signed_url(
            "http://127.0.0.1:30080",
            &signer,
            SignedMethod::Put,
            "uploads/p/d/AB==/f x.tgz",
            at,
            Some([0xab; 16]),
        )
        .unwrap();
        assert!(
            url.starts_with("http://127.0.0.1:30080/api/v1/dataproxy/upload/uploads/p/d/AB==/f%20x.tgz?expires=2000000000&md5=abababab"),
            "{url}"
        );
        assert!(url.contains("&sig="));
    }
}
