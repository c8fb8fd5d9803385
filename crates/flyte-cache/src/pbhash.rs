//! Flyte's protobuf hash (`flytestdlib/pbhash.ComputeHash`), reproduced byte for byte:
//!
//! 1. the message as proto3 JSON the way golang/protobuf `jsonpb.Marshaler{}` writes it
//!    (lowerCamelCase names, default values left out, a set oneof member always written, enums
//!    as names, 64-bit integers as strings, bytes as base64);
//! 2. that JSON parsed as "common JSON" (every number a float64) and hashed with objecthash
//!    (`benlaurie/objecthash/go`, `CommonJSONHash`): SHA-256 over a type tag and the content,
//!    dictionaries as their sorted key/value hash pairs, so map order never matters.
//!
//! Step 1 uses the flyteidl crate's pbjson serde impls, which agree with jsonpb on every rule
//! above; numbers are taken as f64 as Go's `json.Unmarshal` does. The hashes match upstream's
//! own test vectors (see the tests).

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Why a message could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("cannot write the message as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// objecthash cannot normalise this float (upstream fails the same way).
    #[error("cannot hash the number {0}")]
    Float(f64),
}

/// `pbhash.ComputeHash`: 32 bytes.
pub fn compute_hash<M: Serialize>(message: &M) -> Result<[u8; 32], HashError> {
    let json = serde_json::to_value(message)?;
    object_hash(&json)
}

fn hash(tag: &[u8], content: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tag);
    h.update(content);
    h.finalize().into()
}

/// objecthash of a common-JSON value.
pub fn object_hash(value: &Value) -> Result<[u8; 32], HashError> {
    Ok(match value {
        Value::Null => hash(b"n", b""),
        Value::Bool(b) => hash(b"b", if *b { b"1" } else { b"0" }),
        Value::String(s) => hash(b"u", s.as_bytes()),
        Value::Number(n) => {
            // Common JSON: every number is a float64 (Go `json.Unmarshal` into interface{}).
            let f = n.as_f64().ok_or(HashError::Float(f64::NAN))?;
            hash(b"f", normalize_float(f)?.as_bytes())
        }
        Value::Array(items) => {
            let mut buf = Vec::with_capacity(items.len() * 32);
            for item in items {
                buf.extend_from_slice(&object_hash(item)?);
            }
            hash(b"l", &buf)
        }
        Value::Object(map) => {
            let mut pairs = Vec::with_capacity(map.len());
            for (k, v) in map {
                pairs.push((hash(b"u", k.as_bytes()), object_hash(v)?));
            }
            pairs.sort_by_key(|p| p.0);
            let mut buf = Vec::with_capacity(pairs.len() * 64);
            for (k, v) in pairs {
                buf.extend_from_slice(&k);
                buf.extend_from_slice(&v);
            }
            hash(b"d", &buf)
        }
    })
}

/// objecthash's float normal form: sign, binary exponent, `:`, mantissa bits, with the
/// mantissa in (0.5, 1]. Upstream loops forever on 0 (it never leaves `f <= .5`); jsonpb only
/// writes a 0 inside a oneof or a Struct, and here it hashes as `+0:`.
fn normalize_float(original: f64) -> Result<String, HashError> {
    if !original.is_finite() {
        return Err(HashError::Float(original));
    }
    let mut f = original;
    let mut s = String::from(if f < 0.0 { "-" } else { "+" });
    if f < 0.0 {
        f = -f;
    }
    if f == 0.0 {
        s.push_str("0:");
        return Ok(s);
    }
    let mut e: i32 = 0;
    while f > 1.0 {
        f /= 2.0;
        e += 1;
    }
    while f <= 0.5 {
        f *= 2.0;
        e -= 1;
    }
    s.push_str(&format!("{e}:"));
    while f != 0.0 {
        if f >= 1.0 {
            s.push('1');
            f -= 1.0;
        } else {
            s.push('0');
        }
        if f >= 1.0 || s.len() >= 1000 {
            return Err(HashError::Float(original));
        }
        f *= 2.0;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_normal_form() {
        assert_eq!(normalize_float(1.0).unwrap(), "+0:1");
        assert_eq!(normalize_float(2.0).unwrap(), "+1:1");
        assert_eq!(normalize_float(-1.5).unwrap(), "-1:011");
        assert_eq!(normalize_float(0.0).unwrap(), "+0:");
        assert!(normalize_float(f64::NAN).is_err());
    }

    #[test]
    fn objecthash_reference_vectors() {
        // From objecthash's common_json.test (integers and floats are one in common JSON).
        let hex = |b: [u8; 32]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let h = |j: &str| hex(object_hash(&serde_json::from_str(j).unwrap()).unwrap());
        assert_eq!(
            h("[]"),
            "acac86c0e609ca906f632b0e2dacccb2b77d22b0621f20ebece1a4835b93f6f0"
        );
        assert_eq!(
            h("{}"),
            "18ac3e7343f016890c510e93f935261169d9e3f565436429830faf0934f4f8e4"
        );
        assert_eq!(
            h(r#"["foo"]"#),
            "268bc27d4974d9d576222e4cdbb8f7c6bd6791894098645a19eeca9c102d0964"
        );
        assert_eq!(
            h(r#"{"foo": "bar"}"#),
            "7ef5237c3027d6c58100afadf37796b3d351025cf28038280147d42fdc53b960"
        );
        assert_eq!(
            h("true"),
            "7dc96f776c8423e57a2785489a3f9c43fb6e756876d6ad9a9cac4aa4e72ec193"
        );
        assert_eq!(
            h(r#"["foo", {"bar": ["baz", null, 1, 1.5, 0.0001, 1000.0, 2.0, -23.1234, 2.0]}]"#),
            "783a423b094307bcb28d005bc2f026ff44204442ef3513585e7e73b66e3c2213"
        );
        assert_eq!(
            h(r#"{"k2": "v2", "k1": "v1", "k3": "v3"}"#),
            "ddd65f1f7568269a30df7cafc26044537dc2f02a1a0d830da61762fc3e687057"
        );
    }
}
