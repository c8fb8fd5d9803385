//! Request and response transcoding between HTTP (proto3 JSON or binary protobuf) and the
//! protobuf messages of an RPC, as grpc-gateway does it.

use base64::Engine;
use prost::Message;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, SerializeOptions, Value,
};
use serde_json::Value as Json;

use super::routes::{BodySpec, Route};

/// How request and response bodies are encoded, chosen as grpc-gateway's
/// `MarshalerForRequest` chooses among flyteadmin's marshalers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// `application/json`: proto field names, unpopulated fields emitted, unknown fields refused.
    JsonProtoNames,
    /// Anything else (grpc-gateway's default): lowerCamelCase names, unpopulated fields
    /// emitted, unknown fields ignored.
    JsonCamel,
    /// `application/octet-stream`: binary protobuf.
    Proto,
}

impl Codec {
    fn from_mime(mime: &str) -> Option<Self> {
        let essence = mime
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(Self::JsonProtoNames),
            "application/octet-stream" => Some(Self::Proto),
            _ => None,
        }
    }

    /// (inbound, outbound): inbound from Content-Type, outbound from Accept, else inbound.
    pub fn for_request(headers: &http::HeaderMap) -> (Self, Self) {
        let inbound = headers
            .get_all(http::header::CONTENT_TYPE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(Self::from_mime)
            .unwrap_or(Self::JsonCamel);
        let outbound = headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(Self::from_mime)
            .unwrap_or(inbound);
        (inbound, outbound)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Proto => "application/octet-stream",
            _ => "application/json",
        }
    }
}

/// Finds a field by proto name or JSON name.
fn field_by_name(desc: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    desc.get_field_by_name(name)
        .or_else(|| desc.get_field_by_json_name(name))
}

/// Builds the request message of `route` from path captures, the query string and the body.
pub fn build_request(
    route: &Route,
    captures: &[(String, String)],
    query: Option<&str>,
    body: &[u8],
    codec: Codec,
) -> Result<DynamicMessage, String> {
    let mut msg = DynamicMessage::new(route.input.clone());
    match &route.body {
        BodySpec::None => {}
        BodySpec::All => {
            if !body.iter().all(u8::is_ascii_whitespace) {
                msg = decode_body(route.input.clone(), body, codec)?;
            }
        }
        BodySpec::Field(path) => {
            if !body.iter().all(u8::is_ascii_whitespace) {
                let (parent, field) = walk_mut(&mut msg, path)?;
                let value = match field.kind() {
                    Kind::Message(m) if !field.is_list() && !field.is_map() => {
                        Value::Message(decode_body(m, body, codec)?)
                    }
                    _ => {
                        // A repeated or scalar body field: decode it as that field of a
                        // one-field JSON object.
                        if codec == Codec::Proto {
                            return Err(format!(
                                "body field '{path}' cannot be sent as binary protobuf"
                            ));
                        }
                        let json: Json = serde_json::from_slice(body)
                            .map_err(|e| format!("invalid JSON body: {e}"))?;
                        let wrapped = serde_json::json!({ field.name(): json });
                        let tmp = deserialize(parent.descriptor(), &wrapped, codec)?;
                        tmp.get_field(&field).into_owned()
                    }
                };
                parent.set_field(&field, value);
            }
        }
    }
    for (field, value) in captures {
        set_path(&mut msg, field, &[value.as_str()])
            .map_err(|e| format!("path parameter '{field}': {e}"))?;
    }
    if route.body != BodySpec::All
        && let Some(query) = query
    {
        {
            let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
            for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
                match grouped.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, values)) => values.push(value.into_owned()),
                    None => grouped.push((key.into_owned(), vec![value.into_owned()])),
                }
            }
            let body_field = match &route.body {
                BodySpec::Field(f) => Some(f.as_str()),
                _ => None,
            };
            for (key, values) in grouped {
                let bound = route
                    .path
                    .fields()
                    .chain(body_field)
                    .any(|f| f == key || key.starts_with(&format!("{f}.")));
                if bound || !resolves(&route.input, &key) {
                    // grpc-gateway ignores parameters that are not fields of the request.
                    continue;
                }
                let refs: Vec<&str> = values.iter().map(String::as_str).collect();
                set_path(&mut msg, &key, &refs)
                    .map_err(|e| format!("query parameter '{key}': {e}"))?;
            }
        }
    }
    Ok(msg)
}

fn decode_body(
    desc: MessageDescriptor,
    body: &[u8],
    codec: Codec,
) -> Result<DynamicMessage, String> {
    match codec {
        Codec::Proto => {
            DynamicMessage::decode(desc, body).map_err(|e| format!("invalid protobuf body: {e}"))
        }
        _ => {
            let json: Json =
                serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
            deserialize(desc, &json, codec)
        }
    }
}

fn deserialize(
    desc: MessageDescriptor,
    json: &Json,
    codec: Codec,
) -> Result<DynamicMessage, String> {
    let options = DeserializeOptions::new().deny_unknown_fields(codec == Codec::JsonProtoNames);
    DynamicMessage::deserialize_with_options(desc.clone(), json, &options)
        .map_err(|e| format!("invalid {} body: {e}", desc.full_name()))
}

/// Whether a dotted field path names a field of `desc` (through singular messages).
fn resolves(desc: &MessageDescriptor, path: &str) -> bool {
    let mut desc = desc.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let Some(field) = field_by_name(&desc, part) else {
            return false;
        };
        if parts.peek().is_none() {
            return true;
        }
        match field.kind() {
            Kind::Message(m) if !field.is_list() && !field.is_map() && !is_wkt(&m) => desc = m,
            _ => return false,
        }
    }
    false
}

/// Walks to the message holding the last field of `path`, creating messages on the way.
fn walk_mut<'a>(
    msg: &'a mut DynamicMessage,
    path: &str,
) -> Result<(&'a mut DynamicMessage, FieldDescriptor), String> {
    let (head, last) = match path.rsplit_once('.') {
        Some((head, last)) => (Some(head), last),
        None => (None, path),
    };
    let mut current = msg;
    if let Some(head) = head {
        for part in head.split('.') {
            let desc = current.descriptor();
            let field = field_by_name(&desc, part)
                .ok_or_else(|| format!("no field '{part}' in {}", desc.full_name()))?;
            if field.is_list() || field.is_map() || !matches!(field.kind(), Kind::Message(_)) {
                return Err(format!("'{part}' is not a singular message field"));
            }
            current = match current.get_field_mut(&field) {
                Value::Message(m) => m,
                _ => return Err(format!("'{part}' is not a message")),
            };
        }
    }
    let desc = current.descriptor();
    let field = field_by_name(&desc, last)
        .ok_or_else(|| format!("no field '{last}' in {}", desc.full_name()))?;
    Ok((current, field))
}

/// Sets the (nested) field `path` from textual values, as grpc-gateway's
/// `PopulateFieldFromPath` / `PopulateQueryParameters` do.
fn set_path(msg: &mut DynamicMessage, path: &str, values: &[&str]) -> Result<(), String> {
    let (parent, field) = walk_mut(msg, path)?;
    if field.is_map() {
        return Err("map fields cannot be set from the URL".into());
    }
    if field.is_list() {
        let parsed = values
            .iter()
            .map(|v| parse_value(&field.kind(), v))
            .collect::<Result<Vec<_>, _>>()?;
        match parent.get_field_mut(&field) {
            Value::List(list) => list.extend(parsed),
            _ => return Err("not a list".into()),
        }
        return Ok(());
    }
    let [value] = values else {
        return Err(format!("expected one value, got {}", values.len()));
    };
    let value = parse_value(&field.kind(), value)?;
    parent
        .try_set_field(&field, value)
        .map_err(|e| e.to_string())
}

fn is_wkt(desc: &MessageDescriptor) -> bool {
    desc.full_name().starts_with("google.protobuf.")
}

/// Parses one textual value for a field of kind `kind`.
fn parse_value(kind: &Kind, text: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("'{text}' is not a valid {what}");
    Ok(match kind {
        Kind::Bool => Value::Bool(match text {
            "true" | "True" | "TRUE" | "t" | "T" | "1" => true,
            "false" | "False" | "FALSE" | "f" | "F" | "0" => false,
            _ => return Err(bad("bool")),
        }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(text.parse().map_err(|_| bad("int32"))?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(text.parse().map_err(|_| bad("int64"))?)
        }
        Kind::Uint32 | Kind::Fixed32 => Value::U32(text.parse().map_err(|_| bad("uint32"))?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(text.parse().map_err(|_| bad("uint64"))?),
        Kind::Float => Value::F32(text.parse().map_err(|_| bad("float"))?),
        Kind::Double => Value::F64(text.parse().map_err(|_| bad("double"))?),
        Kind::String => Value::String(text.to_string()),
        Kind::Bytes => {
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::URL_SAFE,
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            let bytes = engines
                .iter()
                .find_map(|e| e.decode(text).ok())
                .ok_or_else(|| bad("base64 value"))?;
            Value::Bytes(bytes.into())
        }
        Kind::Enum(e) => {
            if let Some(v) = e.get_value_by_name(text) {
                Value::EnumNumber(v.number())
            } else if let Ok(n) = text.parse::<i32>() {
                if e.get_value(n).is_none() {
                    return Err(format!("{n} is not a value of {}", e.full_name()));
                }
                Value::EnumNumber(n)
            } else {
                let names: Vec<String> = e.values().map(|v| v.name().to_string()).collect();
                return Err(format!(
                    "'{text}' is not a value of {} ({})",
                    e.full_name(),
                    names.join(", ")
                ));
            }
        }
        Kind::Message(m) if is_wkt(m) => {
            let name = m.full_name();
            let json = if name.ends_with("Value")
                && m.get_field_by_name("value").is_some()
                && name != "google.protobuf.Value"
            {
                // Wrappers: the JSON form is the wrapped scalar.
                let inner = m.get_field_by_name("value").expect("checked");
                match parse_value(&inner.kind(), text)? {
                    Value::Bool(b) => Json::Bool(b),
                    Value::String(s) => Json::String(s),
                    Value::Bytes(_) => Json::String(text.to_string()),
                    other => Json::String(match other {
                        Value::I32(v) => v.to_string(),
                        Value::I64(v) => v.to_string(),
                        Value::U32(v) => v.to_string(),
                        Value::U64(v) => v.to_string(),
                        Value::F32(v) => v.to_string(),
                        Value::F64(v) => v.to_string(),
                        _ => text.to_string(),
                    }),
                }
            } else {
                Json::String(text.to_string())
            };
            Value::Message(
                DynamicMessage::deserialize(m.clone(), &json)
                    .map_err(|e| format!("'{text}' is not a valid {name}: {e}"))?,
            )
        }
        Kind::Message(m) => {
            return Err(format!(
                "message {} cannot be set from a single value",
                m.full_name()
            ));
        }
    })
}

/// Serializes a message as flyteadmin's gateway does: proto3 JSON with unpopulated fields
/// emitted (`EmitUnpopulated`), 64-bit integers as strings, enums by name; field names as
/// written in the proto (`application/json`) or lowerCamelCase (default marshaler).
pub fn to_json(msg: &DynamicMessage, proto_names: bool) -> Result<Json, String> {
    let options = SerializeOptions::new()
        .use_proto_field_name(proto_names)
        .skip_default_fields(false);
    let mut json = msg
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| format!("cannot serialize {}: {e}", msg.descriptor().full_name()))?;
    fill_unset_messages(msg, &mut json, proto_names);
    Ok(json)
}

/// protojson's EmitUnpopulated writes `null` for unset singular message fields (outside
/// oneofs); prost-reflect leaves them out. Adds them, recursively.
fn fill_unset_messages(msg: &DynamicMessage, json: &mut Json, proto_names: bool) {
    let desc = msg.descriptor();
    if is_wkt(&desc) {
        return;
    }
    let Json::Object(map) = json else { return };
    for field in desc.fields() {
        let Kind::Message(field_msg) = field.kind() else {
            continue;
        };
        let name = if proto_names {
            field.name().to_string()
        } else {
            field.json_name().to_string()
        };
        if field.is_map() {
            let value_field = field_msg.map_entry_value_field();
            if !matches!(value_field.kind(), Kind::Message(_)) {
                continue;
            }
            let field_value = msg.get_field(&field);
            let (Some(Json::Object(entries)), Value::Map(values)) =
                (map.get_mut(&name), field_value.as_ref())
            else {
                continue;
            };
            for (key, value) in values {
                let key = match key {
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(v) => v.to_string(),
                    MapKey::I64(v) => v.to_string(),
                    MapKey::U32(v) => v.to_string(),
                    MapKey::U64(v) => v.to_string(),
                    MapKey::String(s) => s.clone(),
                };
                if let (Some(entry), Value::Message(m)) = (entries.get_mut(&key), value) {
                    fill_unset_messages(m, entry, proto_names);
                }
            }
        } else if field.is_list() {
            let field_value = msg.get_field(&field);
            let (Some(Json::Array(items)), Value::List(values)) =
                (map.get_mut(&name), field_value.as_ref())
            else {
                continue;
            };
            for (item, value) in items.iter_mut().zip(values) {
                if let Value::Message(m) = value {
                    fill_unset_messages(m, item, proto_names);
                }
            }
        } else if msg.has_field(&field) {
            let field_value = msg.get_field(&field);
            if let (Some(entry), Value::Message(m)) = (map.get_mut(&name), field_value.as_ref()) {
                fill_unset_messages(m, entry, proto_names);
            }
        } else if field.containing_oneof().is_none() {
            map.insert(name, Json::Null);
        }
    }
}

/// The `response_body` field of a response, or the whole response.
pub fn select_response(msg: DynamicMessage, response_body: Option<&str>) -> Result<Value, String> {
    let Some(path) = response_body else {
        return Ok(Value::Message(msg));
    };
    let mut current = msg;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let desc = current.descriptor();
        let field = field_by_name(&desc, part)
            .ok_or_else(|| format!("no field '{part}' in {}", desc.full_name()))?;
        let value = current.get_field(&field).into_owned();
        if parts.peek().is_none() {
            return Ok(value);
        }
        current = match value {
            Value::Message(m) => m,
            _ => return Err(format!("'{part}' is not a message")),
        };
    }
    Ok(Value::Message(current))
}

/// Encodes a (selected) response for the outbound codec.
pub fn render(value: &Value, codec: Codec) -> Result<Vec<u8>, String> {
    match (value, codec) {
        (Value::Message(m), Codec::Proto) => Ok(m.encode_to_vec()),
        (Value::Message(m), _) => {
            let json = to_json(m, codec == Codec::JsonProtoNames)?;
            serde_json::to_vec(&json).map_err(|e| e.to_string())
        }
        (_, Codec::Proto) => Err("only message responses can be sent as binary protobuf".into()),
        (other, codec) => {
            // A scalar or repeated response_body: serialize through a one-field wrapper is not
            // possible without its descriptor, so render the common cases directly.
            let json = match other {
                Value::List(items) => Json::Array(
                    items
                        .iter()
                        .map(|i| match i {
                            Value::Message(m) => to_json(m, codec == Codec::JsonProtoNames),
                            Value::String(s) => Ok(Json::String(s.clone())),
                            v => Ok(Json::String(format!("{v:?}"))),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Value::String(s) => Json::String(s.clone()),
                Value::Bool(b) => Json::Bool(*b),
                v => Json::String(format!("{v:?}")),
            };
            serde_json::to_vec(&json).map_err(|e| e.to_string())
        }
    }
}

/// Decodes `grpc-status-details-bin` (a `google.rpc.Status`) into grpc-gateway's `details`
/// array: each `Any` as its JSON form with `@type`, when its type is known.
pub fn status_details(
    pool: &prost_reflect::DescriptorPool,
    bin: &[u8],
    proto_names: bool,
) -> Vec<Json> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
        #[prost(message, repeated, tag = "3")]
        details: Vec<pbjson_types::Any>,
    }
    let Ok(status) = RpcStatus::decode(bin) else {
        return Vec::new();
    };
    status
        .details
        .iter()
        .map(|any| {
            let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
            let decoded = pool
                .get_message_by_name(type_name)
                .and_then(|desc| DynamicMessage::decode(desc, any.value.as_ref()).ok())
                .and_then(|m| to_json(&m, proto_names).ok());
            match decoded {
                Some(Json::Object(mut map)) => {
                    map.insert("@type".into(), Json::String(any.type_url.clone()));
                    Json::Object(map)
                }
                _ => serde_json::json!({
                    "@type": any.type_url,
                    "value": base64::engine::general_purpose::STANDARD.encode(&any.value),
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::route_table;

    #[test]
    fn path_and_query_fill_the_request() {
        let routes = route_table();
        let route = routes
            .iter()
            .find(|r| r.method == "GetTask" && r.service == "flyteidl.service.AdminService")
            .unwrap();
        let captures = route
            .path
            .matches("api/v1/tasks/p/d/n/v")
            .unwrap_or_else(|| panic!("{route:?}"));
        let msg = build_request(
            route,
            &captures,
            Some("id.resource_type=TASK&x.y=1"),
            b"",
            Codec::JsonProtoNames,
        )
        .unwrap();
        let json = to_json(&msg, true).unwrap();
        assert_eq!(json["id"]["resource_type"], "TASK", "{json}");
        assert_eq!(json["id"]["version"], "v", "{json}");
    }
}
