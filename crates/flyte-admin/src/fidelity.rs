//! Keeping what a client sent as received: raw request bytes in, spliced responses out.
//!
//! prost drops fields it does not know, so a spec decoded and re-encoded by this build would
//! lose whatever a newer flytekit added. To keep them:
//!
//! 1. [`FidelityLayer`] (a tower layer around a unary gRPC service) buffers each request,
//!    strips the 5-byte gRPC frame header and puts the message bytes into the request
//!    extensions as [`RawMessage`]; tonic hands them to `tonic::Request::extensions()`.
//! 2. Handlers slice the sub-message they store (e.g. `TaskCreateRequest.spec`) out of those
//!    bytes with [`sub_message`] and keep it as received.
//! 3. A handler answering with an entity built from stored bytes puts the full encoding into
//!    `tonic::Response::extensions_mut()` as [`EncodedResponse`]; the layer sends those bytes
//!    instead of tonic's re-encoding of the typed message. [`splice`] builds them: the typed
//!    encoding with the raw-backed sub-message removed, plus that field's raw bytes appended.
//!    Protobuf merges repeated occurrences of a message field, so a client decodes exactly the
//!    typed response with the raw sub-message (unknown fields included) in place.
//!
//! The layer also enforces the request size limit (RESOURCE_EXHAUSTED) and refuses compressed
//! requests (UNIMPLEMENTED), both with a message a person can act on.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use futures::future::BoxFuture;
use http_body::Frame;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited, StreamBody};
use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};
use tower::{Layer, Service};

/// The gRPC message frame header: 1 byte compressed flag + 4 bytes big-endian length.
const FRAME_HEADER_LEN: usize = 5;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request message exactly as the client encoded it (without the gRPC frame header).
#[derive(Debug, Clone)]
pub struct RawMessage(pub Bytes);

/// The full encoding of a response message, to be sent instead of the typed re-encoding.
#[derive(Debug, Clone)]
pub struct EncodedResponse(pub Bytes);

/// Wraps a unary gRPC service (e.g. `AdminServiceServer`) so that handlers see raw request
/// bytes and may answer with pre-encoded bytes. See the module docs.
pub fn layer(max_request_bytes: usize) -> FidelityLayer {
    FidelityLayer { max_request_bytes }
}

#[derive(Debug, Clone, Copy)]
pub struct FidelityLayer {
    max_request_bytes: usize,
}

impl<S> Layer<S> for FidelityLayer {
    type Service = FidelityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FidelityService {
            inner,
            max_request_bytes: self.max_request_bytes,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FidelityService<S> {
    inner: S,
    max_request_bytes: usize,
}

/// Keeps the wrapped service's gRPC name, so `tonic::service::Routes::add_service` routes
/// `/<service name>/*` to the wrapper.
impl<S: tonic::server::NamedService> tonic::server::NamedService for FidelityService<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for FidelityService<S>
where
    S: Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The clone is the one that is not ready yet; the ready one serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let max = self.max_request_bytes;
        Box::pin(async move {
            let req = match buffer_request(req, max).await {
                Ok(req) => req,
                Err(status) => return Ok(status.into_http()),
            };
            let response = inner.call(req).await?;
            Ok(replace_response_body(response).await)
        })
    }
}

fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/grpc") && !ct.starts_with("application/grpc-web")
        })
}

fn too_large(size: Option<usize>, max: usize) -> tonic::Status {
    let what = match size {
        Some(size) => format!("request message of {size} bytes"),
        None => "request body".to_string(),
    };
    tonic::Status::resource_exhausted(format!(
        "{what} is larger than this server accepts ({max} bytes, setting \
         max_request_bytes); send a smaller request or raise the limit"
    ))
}

/// Buffers a gRPC request body (up to the limit) and records its message bytes.
async fn buffer_request<B>(
    req: http::Request<B>,
    max: usize,
) -> Result<http::Request<tonic::body::Body>, tonic::Status>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if !is_grpc(req.headers()) {
        return Ok(req.map(tonic::body::Body::new));
    }
    let (mut parts, body) = req.into_parts();
    let limit = max.saturating_add(FRAME_HEADER_LEN);
    let collected = Limited::new(body, limit).collect().await.map_err(|err| {
        if err.downcast_ref::<LengthLimitError>().is_some() {
            too_large(None, max)
        } else {
            tonic::Status::invalid_argument(format!("could not read the request body: {err}"))
        }
    })?;
    let buf = collected.to_bytes();
    if let Some(message) = single_frame(&buf, max)? {
        parts.extensions.insert(RawMessage(message));
    }
    Ok(http::Request::from_parts(
        parts,
        tonic::body::Body::new(Full::new(buf)),
    ))
}

/// The message of a body that is exactly one uncompressed gRPC frame. Anything else that is
/// not refused here is left for tonic to judge (it answers malformed frames itself).
fn single_frame(buf: &Bytes, max: usize) -> Result<Option<Bytes>, tonic::Status> {
    if buf.len() < FRAME_HEADER_LEN {
        return Ok(None);
    }
    if buf[0] != 0 {
        return Err(tonic::Status::unimplemented(
            "compressed gRPC messages are not supported by this server; \
             send requests without compression (no grpc-encoding)",
        ));
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > max {
        return Err(too_large(Some(len), max));
    }
    if buf.len() != FRAME_HEADER_LEN + len {
        return Ok(None);
    }
    Ok(Some(buf.slice(FRAME_HEADER_LEN..)))
}

/// Sends the handler's [`EncodedResponse`] in place of tonic's encoding, keeping trailers.
async fn replace_response_body(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let Some(EncodedResponse(message)) = response.extensions_mut().remove::<EncodedResponse>()
    else {
        return response;
    };
    // A compressed response is never produced (no send compression is configured); if it
    // ever is, the typed encoding is sent rather than a frame with the wrong flag.
    if response.headers().contains_key("grpc-encoding") {
        return response;
    }
    let (parts, body) = response.into_parts();
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(status) => return status.into_http(),
    };
    let trailers = collected.trailers().cloned();
    let ok = trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .is_some_and(|s| s == "0");
    let data = if ok {
        grpc_frame(&message)
    } else {
        collected.to_bytes()
    };
    let mut frames = vec![Frame::data(data)];
    frames.extend(trailers.map(Frame::trailers));
    let body = StreamBody::new(futures::stream::iter(
        frames.into_iter().map(Ok::<_, Infallible>),
    ));
    http::Response::from_parts(parts, tonic::body::Body::new(body))
}

fn grpc_frame(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.extend_from_slice(message);
    out.into()
}

// --- handler side -----------------------------------------------------------------------

/// The raw bytes of the request message, or its prost encoding when no [`FidelityLayer`] ran
/// (in-process calls, the REST gateway): then there is nothing unknown to keep anyway.
pub fn raw_request<T: prost::Message>(request: &tonic::Request<T>) -> Bytes {
    match request.extensions().get::<RawMessage>() {
        Some(RawMessage(raw)) => raw.clone(),
        None => request.get_ref().encode_to_vec().into(),
    }
}

/// The raw bytes of the message field at `path` of the request (e.g. `[2]` for the `spec` of
/// a create request); `fallback` encodes the typed field when the request has no raw bytes.
pub fn raw_field<T: prost::Message>(
    request: &tonic::Request<T>,
    path: &[u32],
    fallback: impl FnOnce(&T) -> Vec<u8>,
) -> Bytes {
    match request.extensions().get::<RawMessage>() {
        Some(RawMessage(raw)) => sub_message(raw, path).unwrap_or_default(),
        None => fallback(request.get_ref()).into(),
    }
}

/// Wraps a typed response together with its full encoding for the [`FidelityLayer`].
pub fn respond<T>(typed: T, encoded: Vec<u8>) -> tonic::Response<T> {
    let mut response = tonic::Response::new(typed);
    response
        .extensions_mut()
        .insert(EncodedResponse(encoded.into()));
    response
}

// --- the wire scanner -------------------------------------------------------------------

/// One field of an encoded message.
struct WireField<'a> {
    tag: u32,
    /// The whole field: key, length prefix (if any) and value.
    whole: &'a [u8],
    /// The contents of a length-delimited field.
    payload: Option<&'a [u8]>,
}

/// Splits an encoded message into its fields; `None` if it is malformed.
fn wire_fields(message: &[u8]) -> Option<Vec<WireField<'_>>> {
    let mut fields = Vec::new();
    let mut rest = message;
    while !rest.is_empty() {
        let start = rest;
        let (tag, wire_type) = decode_key(&mut rest).ok()?;
        let payload = if wire_type == WireType::LengthDelimited {
            let len = usize::try_from(decode_varint(&mut rest).ok()?).ok()?;
            if len > rest.len() {
                return None;
            }
            let payload = &rest[..len];
            rest.advance(len);
            Some(payload)
        } else {
            prost::encoding::skip_field(wire_type, tag, &mut rest, Default::default()).ok()?;
            None
        };
        let consumed = start.len() - rest.len();
        fields.push(WireField {
            tag,
            whole: &start[..consumed],
            payload,
        });
    }
    Some(fields)
}

/// The bytes of the message field at `path` (field numbers from the outermost message down),
/// as the sender encoded them. Several occurrences of a field are concatenated, which is what
/// protobuf's merge semantics make of them. `None` if the field is absent or the bytes are
/// malformed.
pub fn sub_message(raw: &[u8], path: &[u32]) -> Option<Bytes> {
    let mut out = Vec::new();
    let found = collect_path(raw, path, &mut out)?;
    found.then(|| out.into())
}

fn collect_path(message: &[u8], path: &[u32], out: &mut Vec<u8>) -> Option<bool> {
    let Some((&first, rest)) = path.split_first() else {
        out.extend_from_slice(message);
        return Some(true);
    };
    let mut found = false;
    for field in wire_fields(message)? {
        if field.tag != first {
            continue;
        }
        let payload = field.payload?;
        found |= collect_path(payload, rest, out)?;
    }
    Some(found)
}

/// `typed` (an encoded message) with the message field at `path` replaced by `raw`: every
/// occurrence of the field is removed, then `raw` is appended inside the nested wrappers.
pub fn splice(typed: Vec<u8>, path: &[u32], raw: &[u8]) -> Vec<u8> {
    splice_repeated(typed, path, &[raw])
}

/// Like [`splice`] for a repeated message field: each of `items` becomes one element.
/// Wrappers of the enclosing fields merge, so elements are appended in order.
pub fn splice_repeated<R: AsRef<[u8]>>(typed: Vec<u8>, path: &[u32], items: &[R]) -> Vec<u8> {
    let Some(mut out) = strip_path(&typed, path) else {
        // Only reachable with malformed `typed`, which prost never produces.
        tracing::error!("fidelity: could not re-encode a typed message; sending it as is");
        return typed;
    };
    for item in items {
        out.extend(wrap(path, item.as_ref()));
    }
    out
}

/// Removes every occurrence of the field at `path`, re-encoding the enclosing messages.
fn strip_path(message: &[u8], path: &[u32]) -> Option<Vec<u8>> {
    let Some((&first, rest)) = path.split_first() else {
        return Some(Vec::new());
    };
    let mut out = Vec::with_capacity(message.len());
    for field in wire_fields(message)? {
        if field.tag != first {
            out.extend_from_slice(field.whole);
        } else if !rest.is_empty() {
            let inner = strip_path(field.payload?, rest)?;
            put_length_delimited(first, &inner, &mut out);
        }
    }
    Some(out)
}

/// `raw` nested as the message field at `path`.
fn wrap(path: &[u32], raw: &[u8]) -> Vec<u8> {
    let mut bytes = raw.to_vec();
    for &tag in path.iter().rev() {
        let mut outer = Vec::with_capacity(bytes.len() + 8);
        put_length_delimited(tag, &bytes, &mut outer);
        bytes = outer;
    }
    bytes
}

fn put_length_delimited(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

/// Encodes `items` as elements of the repeated message field `tag` (for list responses).
pub fn repeated<R: AsRef<[u8]>>(tag: u32, items: &[R]) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        put_length_delimited(tag, item.as_ref(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flyteidl::admin::{TaskClosure, TaskCreateRequest, TaskSpec};
    use flyteidl::core::{CompiledTask, Identifier, TaskTemplate};
    use prost::Message;

    /// An unknown field 999 (string "future") appended to an encoded message.
    fn with_unknown(mut encoded: Vec<u8>) -> Vec<u8> {
        put_length_delimited(999, b"future", &mut encoded);
        encoded
    }

    fn template() -> TaskTemplate {
        TaskTemplate {
            id: Some(Identifier {
                name: "t".into(),
                ..Default::default()
            }),
            r#type: "python-task".into(),
            ..Default::default()
        }
    }

    #[test]
    fn sub_message_finds_nested_raw_bytes() {
        let raw_template = with_unknown(template().encode_to_vec());
        let mut spec = Vec::new();
        put_length_delimited(1, &raw_template, &mut spec);
        let request = TaskCreateRequest {
            id: Some(Identifier::default()),
            spec: None,
        };
        let mut raw = request.encode_to_vec();
        put_length_delimited(2, &spec, &mut raw);

        assert_eq!(sub_message(&raw, &[2]).unwrap().as_ref(), spec.as_slice());
        assert_eq!(
            sub_message(&raw, &[2, 1]).unwrap().as_ref(),
            raw_template.as_slice()
        );
        assert!(sub_message(&raw, &[3]).is_none());
        assert!(sub_message(&[0xff], &[1]).is_none());
        // The typed decode of the request sees the template but not the unknown field.
        let typed = TaskCreateRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(typed.spec.unwrap().template.unwrap(), template());
    }

    #[test]
    fn splice_replaces_the_typed_sub_message_and_keeps_unknown_fields() {
        let typed = TaskClosure {
            compiled_task: Some(CompiledTask {
                template: Some(TaskTemplate {
                    r#type: "stale".into(),
                    ..Default::default()
                }),
            }),
            created_at: Some(pbjson_types::Timestamp {
                seconds: 5,
                nanos: 0,
            }),
        };
        let raw_template = with_unknown(template().encode_to_vec());
        let spliced = splice(typed.encode_to_vec(), &[1, 1], &raw_template);

        let decoded = TaskClosure::decode(spliced.as_slice()).unwrap();
        assert_eq!(decoded.compiled_task.unwrap().template.unwrap(), template());
        assert_eq!(decoded.created_at.unwrap().seconds, 5);
        // The unknown field is in the bytes at the template's place.
        let back = sub_message(&spliced, &[1, 1]).unwrap();
        assert!(back.windows(6).any(|w| w == b"future"));
    }

    #[test]
    fn splice_repeated_appends_elements_in_order() {
        let typed = TaskSpec::default().encode_to_vec();
        let spec = splice_repeated(typed, &[1, 9], &[b"a".as_slice(), b"b".as_slice()]);
        assert_eq!(sub_message(&spec, &[1, 9]).unwrap().as_ref(), b"ab");
    }

    #[test]
    fn single_frame_checks_flag_and_size() {
        let frame = grpc_frame(b"hello");
        assert_eq!(
            single_frame(&frame, 10).unwrap().unwrap().as_ref(),
            b"hello"
        );
        assert_eq!(
            single_frame(&frame, 3).unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
        let mut compressed = frame.to_vec();
        compressed[0] = 1;
        assert_eq!(
            single_frame(&compressed.into(), 10).unwrap_err().code(),
            tonic::Code::Unimplemented
        );
        assert!(
            single_frame(&Bytes::from_static(b"\0\0"), 10)
                .unwrap()
                .is_none()
        );
    }
}
