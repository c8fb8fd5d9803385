//! Node inputs that arrive inline in a node event (`NodeExecutionEvent.input_data`), as the
//! engine sends them for in-engine tasks whose inputs no process reads. flyteadmin offloads
//! such inputs to a blob; here they stay in the node execution's `input_uri` column as an
//! RFC 2397 `data:` URL, so a 6,000-leaf fan-out writes no 6,000 files and the row (written
//! in the same transaction as the engine's journal) is where they live. The API never shows
//! that URL: `input_uri` reads as empty and `GetNodeExecutionData` / `GetTaskExecutionData`
//! return the map as `full_inputs`, the way inline outputs are returned.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flyteidl::admin::UrlBlob;
use flyteidl::core::LiteralMap;
use prost::Message;

use crate::error::{AdminError, AdminResult};

const PREFIX: &str = "data:application/vnd.flyte.literalmap+protobuf;base64,";

/// The column value holding `inputs`.
pub(crate) fn encode(inputs: &LiteralMap) -> String {
    let mut out = String::with_capacity(PREFIX.len() + inputs.encoded_len() * 4 / 3 + 4);
    out.push_str(PREFIX);
    STANDARD.encode_string(inputs.encode_to_vec(), &mut out);
    out
}

/// Whether a stored `input_uri` holds the inputs themselves.
pub(crate) fn is_inline(uri: &str) -> bool {
    uri.starts_with(PREFIX)
}

/// The URI to show clients: inline inputs have none (their data comes with the node's data).
pub(crate) fn public_uri(uri: &str) -> String {
    if is_inline(uri) {
        String::new()
    } else {
        uri.to_string()
    }
}

/// The inputs of an inline `input_uri` (`None`: it is a URL of a blob).
pub(crate) fn decode(uri: &str) -> Option<AdminResult<LiteralMap>> {
    let data = uri.strip_prefix(PREFIX)?;
    let map = STANDARD
        .decode(data)
        .map_err(|e| e.to_string())
        .and_then(|bytes| LiteralMap::decode(bytes.as_slice()).map_err(|e| e.to_string()))
        .map_err(|e| AdminError::Internal(format!("stored inline inputs are not valid: {e}")));
    Some(map)
}

/// `(full_inputs, inputs)` of `GetNodeExecutionData` for inline inputs, as for inline
/// outputs: the map, and a blob with no URL giving its size.
pub(crate) fn data_response(map: LiteralMap) -> (Option<LiteralMap>, Option<UrlBlob>) {
    let blob = UrlBlob {
        url: String::new(),
        bytes: map.encoded_len() as i64,
    };
    (Some(map), Some(blob))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flyteidl::core::{Literal, Primitive, Scalar, literal, primitive, scalar};

    #[test]
    fn inputs_round_trip_and_urls_pass_through() {
        let mut map = LiteralMap::default();
        map.literals.insert(
            "d".into(),
            Literal {
                value: Some(literal::Value::Scalar(Box::new(Scalar {
                    value: Some(scalar::Value::Primitive(Primitive {
                        value: Some(primitive::Value::Integer(7)),
                    })),
                }))),
                ..Default::default()
            },
        );
        let uri = encode(&map);
        assert!(is_inline(&uri));
        assert_eq!(public_uri(&uri), "");
        assert_eq!(decode(&uri).unwrap().unwrap(), map);
        let file = "file:///data/p/d/x/n0/data/inputs.pb";
        assert!(decode(file).is_none());
        assert_eq!(public_uri(file), file);
        assert!(decode(&format!("{PREFIX}!!")).unwrap().is_err());
    }
}
