//! Property tests of the REST gateway's transcoder (`flyte_admin::gateway`), see
//! docs/fuzzing.md. No server: the transcoder is driven directly, route by route.
//!
//! - JSON bodies generated from each route's request descriptor (every field kind, well-known
//!   types, maps, oneofs set twice), with wrong types, unknown fields, out-of-range numbers,
//!   bad base64, bad timestamps and deep nesting mixed in; raw bytes under every codec; query
//!   strings over the request's field paths; random URL paths. The transcoder answers with a
//!   message or an error, never a panic.
//! - A request the transcoder accepted renders to JSON (or refuses to, with an error), and
//!   that JSON transcodes back to the same message.

use flyte_admin::gateway::transcode::{self, Codec, build_request, to_json};
use flyte_admin::gateway::{BodySpec, Route, descriptor_pool, route_table};
use proptest::prelude::*;
use prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Value as Json, json};
use std::sync::LazyLock;

static ROUTES: LazyLock<Vec<Route>> = LazyLock::new(route_table);

/// A stream of choices read from proptest's bytes: shrinking the bytes simplifies the
/// generated JSON, and running out of bytes ends it with the simplest choices.
struct Src<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Src<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn below(&mut self, n: usize) -> usize {
        let raw = u16::from(self.byte()) << 8 | u16::from(self.byte());
        usize::from(raw) % n.max(1)
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn i64(&mut self) -> i64 {
        (0..8).fold(0i64, |acc, _| acc << 8 | i64::from(self.byte()))
    }
    fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "0",
            "-",
            "_",
            ".",
            "/",
            "%",
            "%2F",
            "%zz",
            " ",
            "é",
            "😀",
            "\u{0}",
            "\"",
            "\\",
            "{",
            "}",
            "+",
            ";",
            ",",
            "(",
            ")",
            "eq(name,x)",
            "NaN",
        ];
        (0..self.below(6))
            .map(|_| PIECES[self.below(PIECES.len())])
            .collect()
    }
}

/// Any JSON at all, sometimes nested far past what any request needs.
fn junk(src: &mut Src, depth: usize) -> Json {
    match src.below(10) {
        0 => Json::Null,
        1 => Json::Bool(src.chance(2)),
        2 => json!(src.i64()),
        3 => json!(src.i64() as f64 / 7.0),
        4 => json!(u64::MAX),
        5 | 6 => Json::String(src.text()),
        7 if depth < 6 => Json::Array((0..src.below(3)).map(|_| junk(src, depth + 1)).collect()),
        8 if depth < 6 => Json::Object(
            (0..src.below(3))
                .map(|_| (src.text(), junk(src, depth + 1)))
                .collect(),
        ),
        9 => {
            // Deep nesting: arrays or objects up to past serde_json's limit of 128.
            let levels = src.below(200);
            let object = src.chance(2);
            (0..levels).fold(Json::Null, |inner, _| {
                if object {
                    json!({ "value": inner })
                } else {
                    json!([inner])
                }
            })
        }
        _ => Json::String(src.text()),
    }
}

fn number_text(src: &mut Src) -> Json {
    const ODD: &[&str] = &[
        "1",
        "-1",
        "1.5",
        "1e3",
        "0x10",
        "",
        " 1",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
    ];
    match src.below(3) {
        0 => json!(src.i64()),
        1 => Json::String(src.i64().to_string()),
        _ => Json::String(ODD[src.below(ODD.len())].to_string()),
    }
}

fn wkt(m: &MessageDescriptor, src: &mut Src, depth: usize) -> Json {
    match m.full_name() {
        "google.protobuf.Timestamp" => {
            const TS: &[&str] = &[
                "1970-01-01T00:00:00Z",
                "2024-02-29T23:59:59.999999999Z",
                "0001-01-01T00:00:00Z",
                "9999-12-31T23:59:59Z",
                "2024-01-01T00:00:00+01:00",
                "2024-13-01T00:00:00Z",
                "2024-01-01",
                "",
                "+10000-01-01T00:00:00Z",
                "2024-01-01T00:00:00.1234567891Z",
            ];
            Json::String(TS[src.below(TS.len())].into())
        }
        "google.protobuf.Duration" => {
            const D: &[&str] = &[
                "1s",
                "-1.5s",
                "0.000000001s",
                "315576000000s",
                "315576000001s",
                "-315576000001s",
                "1",
                "s",
                "1.0000000001s",
                "9223372036854775807s",
            ];
            Json::String(D[src.below(D.len())].into())
        }
        "google.protobuf.Struct" => json!({ "k": junk(src, depth + 1) }),
        "google.protobuf.Value" => junk(src, depth + 1),
        "google.protobuf.ListValue" => json!([junk(src, depth + 1)]),
        "google.protobuf.Any" => {
            const TYPES: &[&str] = &[
                "type.googleapis.com/flyteidl.core.Literal",
                "type.googleapis.com/google.protobuf.Duration",
                "type.googleapis.com/no.such.Type",
                "",
                "/",
            ];
            json!({ "@type": TYPES[src.below(TYPES.len())], "value": junk(src, depth + 1) })
        }
        "google.protobuf.FieldMask" => Json::String(src.text()),
        "google.protobuf.Empty" => json!({}),
        _ => match m.get_field_by_name("value") {
            // Wrappers: the wrapped scalar itself.
            Some(inner) => kind_value(&inner.kind(), src, depth + 1),
            None => junk(src, depth + 1),
        },
    }
}

fn kind_value(kind: &Kind, src: &mut Src, depth: usize) -> Json {
    if src.chance(16) {
        return junk(src, depth);
    }
    match kind {
        Kind::Double | Kind::Float => match src.below(3) {
            0 => json!(src.i64() as f64 / 3.0),
            1 => json!(src.below(1000)),
            _ => number_text(src),
        },
        Kind::Int32
        | Kind::Sint32
        | Kind::Sfixed32
        | Kind::Uint32
        | Kind::Fixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64
        | Kind::Uint64
        | Kind::Fixed64 => match src.below(2) {
            0 => json!(src.below(100)),
            _ => number_text(src),
        },
        Kind::Bool => match src.below(3) {
            0 => Json::Bool(true),
            1 => Json::Bool(false),
            _ => Json::String("true".into()),
        },
        Kind::String => Json::String(src.text()),
        Kind::Bytes => {
            const B: &[&str] = &["", "AAEC", "AAE=", "AAE", "-_-_", "!!", "QUJD\nREVG"];
            Json::String(B[src.below(B.len())].into())
        }
        Kind::Enum(e) => match src.below(4) {
            0 | 1 => {
                let values: Vec<_> = e.values().collect();
                Json::String(values[src.below(values.len())].name().to_string())
            }
            2 => json!(src.below(40) as i64 - 5),
            _ => Json::String(src.text()),
        },
        Kind::Message(m) if m.full_name().starts_with("google.protobuf.") => wkt(m, src, depth),
        Kind::Message(m) => message(m, src, depth + 1),
    }
}

fn field_value(field: &FieldDescriptor, src: &mut Src, depth: usize) -> Json {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            unreachable!("map fields are messages")
        };
        let key_kind = entry.map_entry_key_field().kind();
        let value_kind = entry.map_entry_value_field().kind();
        let entries = (0..src.below(3))
            .map(|_| {
                let key = match key_kind {
                    Kind::String => src.text(),
                    Kind::Bool => ["true", "false", "yes"][src.below(3)].to_string(),
                    _ => match number_text(src) {
                        Json::String(s) => s,
                        other => other.to_string(),
                    },
                };
                (key, kind_value(&value_kind, src, depth))
            })
            .collect();
        Json::Object(entries)
    } else if field.is_list() && !src.chance(12) {
        Json::Array(
            (0..src.below(3))
                .map(|_| kind_value(&field.kind(), src, depth))
                .collect(),
        )
    } else {
        kind_value(&field.kind(), src, depth)
    }
}

/// A JSON object for `desc`: a random subset of its fields under their proto or JSON name,
/// sometimes an unknown field; past a few levels only scalars, so sizes stay small, except
/// for the deliberately deep `junk`.
fn message(desc: &MessageDescriptor, src: &mut Src, depth: usize) -> Json {
    if depth > 8 || src.chance(40) {
        return junk(src, depth);
    }
    let mut map = serde_json::Map::new();
    for field in desc.fields() {
        if !src.chance(3) {
            continue;
        }
        let name = if src.chance(2) {
            field.name().to_string()
        } else {
            field.json_name().to_string()
        };
        let value = field_value(&field, src, depth);
        map.insert(name, value);
    }
    if src.chance(10) {
        map.insert(src.text(), junk(src, depth));
    }
    Json::Object(map)
}

/// Dotted paths of the singular scalar fields of `desc` (what a query string can set).
fn query_paths(
    desc: &MessageDescriptor,
    prefix: &str,
    depth: usize,
    out: &mut Vec<(String, Kind)>,
) {
    for field in desc.fields() {
        let path = format!("{prefix}{}", field.name());
        match field.kind() {
            Kind::Message(m)
                if !field.is_list()
                    && !field.is_map()
                    && !m.full_name().starts_with("google.protobuf.")
                    && depth < 3 =>
            {
                query_paths(&m, &format!("{path}."), depth + 1, out)
            }
            kind => out.push((path, kind)),
        }
    }
}

fn query(route: &Route, src: &mut Src) -> Option<String> {
    if src.chance(4) {
        return None;
    }
    let mut paths = Vec::new();
    query_paths(&route.input, "", 0, &mut paths);
    let mut pairs = url::form_urlencoded::Serializer::new(String::new());
    for _ in 0..src.below(5) {
        let (key, value) = if paths.is_empty() || src.chance(6) {
            (src.text(), src.text())
        } else {
            let (path, kind) = &paths[src.below(paths.len())];
            let value = match kind_value(kind, src, 0) {
                Json::String(s) => s,
                other => other.to_string(),
            };
            (path.clone(), value)
        };
        pairs.append_pair(&key, &value);
    }
    let mut q = pairs.finish();
    if src.chance(8) {
        q.push_str("&%zz=%&=&a=%FF");
    }
    Some(q)
}

fn captures(route: &Route, src: &mut Src) -> Vec<(String, String)> {
    route
        .path
        .fields()
        .map(|f| (f.to_string(), src.text()))
        .collect()
}

fn codec(src: &mut Src) -> Codec {
    [Codec::JsonProtoNames, Codec::JsonCamel, Codec::Proto][src.below(3)]
}

struct Case {
    route: &'static Route,
    captures: Vec<(String, String)>,
    query: Option<String>,
    body: Vec<u8>,
    codec: Codec,
}

fn case(bytes: &[u8]) -> Case {
    let mut src = Src { bytes, pos: 0 };
    let route = &ROUTES[src.below(ROUTES.len())];
    let codec = codec(&mut src);
    let captures = captures(route, &mut src);
    let query = query(route, &mut src);
    let body_desc = match &route.body {
        BodySpec::Field(path) => path.split('.').try_fold(route.input.clone(), |d, part| {
            match d.get_field_by_name(part)?.kind() {
                Kind::Message(m) => Some(m),
                _ => None,
            }
        }),
        _ => Some(route.input.clone()),
    };
    let json = match body_desc {
        Some(desc) => message(&desc, &mut src, 0),
        None => junk(&mut src, 0),
    };
    let body = match (codec, src.below(8)) {
        (_, 0) => Vec::new(),
        (_, 1) => src.bytes[src.pos.min(src.bytes.len())..].to_vec(),
        (Codec::Proto, _) => {
            // A valid encoding of what the JSON describes, when it describes one.
            let desc = route.input.clone();
            match DynamicMessage::deserialize(desc, &json) {
                Ok(m) => m.encode_to_vec(),
                Err(_) => serde_json::to_vec(&json).expect("serializable"),
            }
        }
        (_, 2) => {
            let mut b = serde_json::to_vec(&json).expect("serializable");
            b.truncate(src.below(b.len() + 1));
            b
        }
        _ => serde_json::to_vec(&json).expect("serializable"),
    };
    Case {
        route,
        captures,
        query,
        body,
        codec,
    }
}

/// Everything the gateway does with a request after matching its route.
fn transcode(c: &Case, body: &[u8]) -> Result<DynamicMessage, String> {
    build_request(c.route, &c.captures, c.query.as_deref(), body, c.codec)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_request_transcodes_or_is_refused(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let c = case(&bytes);
        let Ok(msg) = transcode(&c, &c.body) else { return Ok(()) };
        let _ = msg.encode_to_vec();
        for proto_names in [true, false] {
            let Ok(rendered) = to_json(&msg, proto_names) else { continue };
            // Round trip: what the gateway renders it reads back as the same message (the
            // body carries the whole message; path and query set the same fields again).
            if c.route.body == BodySpec::All {
                let body = serde_json::to_vec(&rendered).expect("serializable");
                let codec = if proto_names { Codec::JsonProtoNames } else { Codec::JsonCamel };
                let again = build_request(c.route, &c.captures, c.query.as_deref(), &body, codec);
                prop_assert!(again.is_ok(), "{} rejected its own rendering: {:?}\n{}", c.route.method, again.err(), rendered);
                let again = to_json(&again.unwrap(), proto_names);
                prop_assert_eq!(again.as_ref().ok(), Some(&rendered), "{}", c.route.method);
            }
        }
    }

    #[test]
    fn any_url_path_matches_or_not(path in prop::collection::vec(
        prop_oneof![
            "api|v1|tasks|workflows|executions|data|projects|flytesnacks|development",
            "[a-z%0-9]{0,4}",
            Just("%".to_string()),
            Just("%F0%9F".to_string()),
            Just(":".to_string()),
            any::<String>(),
        ],
        0..9,
    )) {
        let path = path.join("/");
        for route in ROUTES.iter() {
            if let Some(captures) = route.path.matches(&path) {
                let _ = build_request(route, &captures, None, b"", Codec::JsonProtoNames);
            }
        }
    }

    #[test]
    fn any_grpc_status_details_decode(bin in prop::collection::vec(any::<u8>(), 0..300), proto_names: bool) {
        let _ = transcode::status_details(descriptor_pool(), &bin, proto_names);
    }

    #[test]
    fn any_content_type_and_accept_choose_a_codec(ct in any::<String>(), accept in any::<String>()) {
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&ct) {
            headers.insert(http::header::CONTENT_TYPE, v);
        }
        if let Ok(v) = http::HeaderValue::from_str(&accept) {
            headers.insert(http::header::ACCEPT, v);
        }
        let _ = Codec::for_request(&headers);
    }
}
