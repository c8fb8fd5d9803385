//! The codec of the generated gRPC servers: tonic-prost's, except for requests that do not
//! decode. tonic-prost answers those INTERNAL "failed to decode Protobuf message" (its
//! `from_decode_error`), which reads as a server fault; bytes that are not the request message
//! (garbage, a message nested past prost's recursion limit) are the client's fault, so they
//! are INVALID_ARGUMENT naming the message that could not be decoded.
//!
//! Only servers use it (build.rs); generated clients keep `tonic_prost::ProstCodec`.

use std::marker::PhantomData;

use prost::{Message, Name};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// Encodes responses `T` as prost does, decodes requests `U` with [`RequestDecoder`].
#[derive(Debug, Clone)]
pub struct ServerCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for ServerCodec<T, U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

impl<T, U> Codec for ServerCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder { _pd: PhantomData }
    }
}

/// Decodes a request message `U`; see the module docs.
#[derive(Debug, Clone)]
pub struct RequestDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U: Message + Name + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|err| Status::invalid_argument(undecodable(&U::full_name(), &err)))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Field path entries shown at each end of a long path (a message nested past the recursion
/// limit has a hundred).
const PATH_ENDS: usize = 3;

/// "could not decode <message>: <what is wrong> (at <Message.field> > …)".
///
/// prost's `DecodeError` exposes only its Display: "failed to decode Protobuf message: " then
/// one "Message.field: " per enclosing field, innermost first, then the description.
pub fn undecodable(message: &str, err: &prost::DecodeError) -> String {
    let text = err.to_string();
    let mut rest = text
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(&text);
    let mut path = Vec::new();
    while let Some((entry, tail)) = rest.split_once(": ") {
        let is_field = entry.split_once('.').is_some_and(|(m, f)| {
            !m.is_empty()
                && !f.is_empty()
                && entry
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        });
        if !is_field {
            break;
        }
        path.push(entry);
        rest = tail;
    }
    path.reverse();
    if path.is_empty() {
        return format!("could not decode {message}: {rest}");
    }
    let shown = if path.len() > 2 * PATH_ENDS {
        let hidden = path.len() - 2 * PATH_ENDS;
        let mut shown = path[..PATH_ENDS].join(" > ");
        shown.push_str(&format!(" > … {hidden} more … > "));
        shown.push_str(&path[path.len() - PATH_ENDS..].join(" > "));
        shown
    } else {
        path.join(" > ")
    };
    format!("could not decode {message}: {rest} (at {shown})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_names_the_message() {
        let err =
            crate::admin::TaskCreateRequest::decode(&[0xffu8, 0xff, 0xff, 0xff][..]).unwrap_err();
        assert_eq!(
            undecodable(&crate::admin::TaskCreateRequest::full_name(), &err),
            "could not decode flyteidl.admin.TaskCreateRequest: invalid varint"
        );
    }

    #[test]
    fn a_field_path_is_outermost_first() {
        // TaskCreateRequest.id (field 1) holding Identifier.project (field 2) = [0xff].
        let bytes = [0x0a, 0x03, 0x12, 0x01, 0xff];
        let err = crate::admin::TaskCreateRequest::decode(&bytes[..]).unwrap_err();
        assert_eq!(
            undecodable("flyteidl.admin.TaskCreateRequest", &err),
            "could not decode flyteidl.admin.TaskCreateRequest: invalid string value: data is not \
             UTF-8 encoded (at TaskCreateRequest.id > Identifier.project)"
        );
    }

    #[test]
    fn a_long_field_path_is_shortened_in_the_middle() {
        use crate::core::{Literal, LiteralCollection, LiteralMap, literal};
        let mut lit = Literal::default();
        for _ in 0..200 {
            lit = Literal {
                value: Some(literal::Value::Collection(LiteralCollection {
                    literals: vec![lit],
                })),
                ..Default::default()
            };
        }
        let request = crate::admin::ExecutionCreateRequest {
            inputs: Some(LiteralMap {
                literals: [("x".to_string(), lit)].into(),
            }),
            ..Default::default()
        };
        let bytes = request.encode_to_vec();
        let err = crate::admin::ExecutionCreateRequest::decode(&bytes[..]).unwrap_err();
        let text = undecodable("flyteidl.admin.ExecutionCreateRequest", &err);
        assert!(
            text.starts_with(
                "could not decode flyteidl.admin.ExecutionCreateRequest: recursion limit reached \
                 (at ExecutionCreateRequest.inputs > "
            ),
            "{text}"
        );
        assert!(text.contains(" more … > "), "{text}");
        assert!(text.len() < 300, "{text}");
    }
}
