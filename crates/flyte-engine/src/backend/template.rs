//! Flyte's container template variables (`{{.input}}`, `{{.outputPrefix}}`, `{{.Inputs.x}}` …),
//! rendered as propeller renders them (`flyteplugins/…/core/template/template.go`): names are
//! matched case-insensitively, the leading `.` or `$` is optional, whitespace inside the braces
//! is allowed, and unknown templates are left as they are.
//!
//! Also here: the per-attempt generated name (`FixedLengthUniqueIDForParts(50, [execution,
//! node, attempt])`) that `{{.perRetryUniqueKey}}` and the raw output prefix derive from, and
//! the Go-compatible formatting of primitive input values.

use flyteidl::core::{Literal, LiteralMap, literal, primitive, scalar};

use super::{AttemptKey, AttemptPaths};

/// Propeller's `IDMaxLength`: the maximum length of a generated name.
pub const GENERATED_NAME_MAX_LENGTH: usize = 50;

/// The attempt's generated name, as propeller makes it for a task execution
/// (`encoding.FixedLengthUniqueIDForParts(50, [execName, nodeUniqueID, attempt])`): the parts
/// joined with `-`, or, when longer than 50 characters, `f` + base32(fnv32a(joined)).
pub fn generated_name(key: &AttemptKey) -> String {
    let attempt = key.retry_attempt.to_string();
    fixed_length_unique_id_for_parts(
        GENERATED_NAME_MAX_LENGTH,
        &[&key.execution, &key.node_id, &attempt],
    )
}

/// `encoding.FixedLengthUniqueIDForParts` with the default 32-bit FNV-1a hash.
pub fn fixed_length_unique_id_for_parts(max_length: usize, parts: &[&str]) -> String {
    let mut joined = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 && !joined.is_empty() {
            joined.push('-');
        }
        joined.push_str(part);
    }
    fixed_length_unique_id(&joined, max_length)
}

/// `encoding.FixedLengthUniqueID`: the input if it fits, else `f` + base32(fnv32a(input)) with
/// the alphabet `a-z1-6` and no padding.
pub fn fixed_length_unique_id(input: &str, max_length: usize) -> String {
    if input.len() <= max_length {
        return input.to_string();
    }
    let mut hash: u32 = 0x811c_9dc5;
    for byte in input.as_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("f{}", base32_flyte(&hash.to_be_bytes()))
}

/// flyteplugins `encoding.Base32Encoder`: base32 with the alphabet `a-z1-6`, no padding.
pub fn base32_flyte(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz123456";
    let mut out = String::new();
    let mut buffer: u64 = 0;
    let mut bits = 0u32;
    for byte in bytes {
        buffer = (buffer << 8) | u64::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// `{{.perRetryUniqueKey}}`: the generated name with a non-letter start replaced by `a` and
/// every run of characters outside `[a-zA-Z0-9_]` replaced by `_`.
pub fn per_retry_unique_key(key: &AttemptKey) -> String {
    sanitize_unique_key(&generated_name(key))
}

fn sanitize_unique_key(name: &str) -> String {
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_';
    let trimmed = name.trim_start_matches(|c: char| !is_start(c));
    let mut out = String::with_capacity(name.len() + 1);
    if trimmed.len() != name.len() {
        out.push('a');
    }
    let mut in_run = false;
    for c in trimmed.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

/// The values the templates render to, for one attempt.
#[derive(Debug, Clone)]
pub struct TemplateValues<'a> {
    pub paths: &'a AttemptPaths,
    /// `{{.perRetryUniqueKey}}`.
    pub per_retry_unique_key: String,
    /// `{{.namespace}}` (`<project>-<domain>` here).
    pub namespace: String,
    /// The node's inputs, for `{{.Inputs.<name>}}`; `None` renders such a template as an error
    /// ("inputs not read"), so read them when [`needs_inputs`] says so.
    pub inputs: Option<&'a LiteralMap>,
}

/// A template that cannot be rendered (an unknown input, a value that has no string form).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// One recognised `{{…}}` occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Var<'s> {
    Input,
    InputPrefix,
    OutputPrefix,
    RawOutputDataPrefix,
    CheckpointOutputPrefix,
    PrevCheckpointPrefix,
    PerRetryUniqueKey,
    TaskTemplatePath,
    Namespace,
    Inputs(&'s str),
}

/// A piece of a scanned string.
enum Token<'s> {
    Literal(&'s str),
    /// A recognised template and its raw text.
    Var(Var<'s>, &'s str),
}

/// Splits `s` into literal text and recognised templates.
fn scan(s: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut rest = s;
    let mut literal_start = 0usize;
    let mut offset = 0usize;
    while let Some(open) = rest.find("{{") {
        let at = offset + open;
        match parse_var(&s[at..]) {
            Some((var, len)) => {
                if literal_start < at {
                    tokens.push(Token::Literal(&s[literal_start..at]));
                }
                tokens.push(Token::Var(var, &s[at..at + len]));
                offset = at + len;
                literal_start = offset;
            }
            None => offset = at + 2,
        }
        rest = &s[offset..];
    }
    if literal_start < s.len() {
        tokens.push(Token::Literal(&s[literal_start..]));
    }
    tokens
}

/// Parses `{{ [.$]name }}` at the start of `s`; returns the variable and the length consumed.
fn parse_var(s: &str) -> Option<(Var<'_>, usize)> {
    let inner_start = 2;
    let after_open = &s[inner_start..];
    let ws = after_open.len() - after_open.trim_start().len();
    let mut pos = inner_start + ws;
    if s[pos..].starts_with(['.', '$']) {
        pos += 1;
    }
    let name_start = pos;
    let name_len = s[pos..]
        .find(|c: char| c == '}' || c.is_whitespace())
        .unwrap_or(s.len() - pos);
    if name_len == 0 {
        return None;
    }
    let name = &s[name_start..name_start + name_len];
    pos = name_start + name_len;
    let after_name = &s[pos..];
    pos += after_name.len() - after_name.trim_start().len();
    if !s[pos..].starts_with("}}") {
        return None;
    }
    pos += 2;
    let var = match name.to_ascii_lowercase().as_str() {
        "input" => Var::Input,
        "inputprefix" => Var::InputPrefix,
        "outputprefix" => Var::OutputPrefix,
        "rawoutputdataprefix" => Var::RawOutputDataPrefix,
        "checkpointoutputprefix" => Var::CheckpointOutputPrefix,
        "prevcheckpointprefix" => Var::PrevCheckpointPrefix,
        "perretryuniquekey" => Var::PerRetryUniqueKey,
        "tasktemplatepath" => Var::TaskTemplatePath,
        "namespace" => Var::Namespace,
        lower if lower.starts_with("inputs.") && name.len() > "inputs.".len() => {
            Var::Inputs(&name["inputs.".len()..])
        }
        _ => return None,
    };
    Some((var, pos))
}

/// Whether any of `parts` uses `{{.Inputs.<name>}}` (so the inputs must be read first).
pub fn needs_inputs<'a>(parts: impl IntoIterator<Item = &'a String>) -> bool {
    uses(parts, |v| matches!(v, Var::Inputs(_)))
}

/// Whether any of `parts` uses `{{.taskTemplatePath}}` (so `task.pb` must be written first).
pub fn needs_task_template<'a>(parts: impl IntoIterator<Item = &'a String>) -> bool {
    uses(parts, |v| matches!(v, Var::TaskTemplatePath))
}

fn uses<'a>(parts: impl IntoIterator<Item = &'a String>, pred: impl Fn(&Var<'_>) -> bool) -> bool {
    parts.into_iter().any(|part| {
        scan(part)
            .iter()
            .any(|t| matches!(t, Token::Var(v, _) if pred(v)))
    })
}

/// Renders every template in `parts` (command and args, one string each).
pub fn render_all(
    parts: &[String],
    values: &TemplateValues<'_>,
) -> Result<Vec<String>, RenderError> {
    parts.iter().map(|p| render(p, values)).collect()
}

/// Renders the templates in one string.
pub fn render(s: &str, values: &TemplateValues<'_>) -> Result<String, RenderError> {
    let mut out = String::with_capacity(s.len());
    let mut errors = Vec::new();
    let paths = values.paths;
    for token in scan(s) {
        let (var, raw) = match token {
            Token::Literal(lit) => {
                out.push_str(lit);
                continue;
            }
            Token::Var(var, raw) => (var, raw),
        };
        match var {
            Var::Input => out.push_str(&paths.inputs),
            Var::InputPrefix => out.push_str(&paths.input_prefix),
            Var::OutputPrefix => out.push_str(&paths.output_prefix),
            Var::RawOutputDataPrefix => out.push_str(&paths.raw_output_prefix),
            Var::CheckpointOutputPrefix => out.push_str(&paths.checkpoint_prefix),
            Var::PrevCheckpointPrefix => match paths.prev_checkpoint_prefix.as_deref() {
                Some(prev) if !prev.is_empty() => out.push_str(prev),
                _ => out.push_str("\"\""),
            },
            Var::PerRetryUniqueKey => out.push_str(&values.per_retry_unique_key),
            Var::TaskTemplatePath => out.push_str(&paths.task_template),
            Var::Namespace => out.push_str(&values.namespace),
            Var::Inputs(name) => match values.inputs {
                None => errors.push(format!("input template [{raw}]: inputs not available")),
                Some(inputs) => match inputs.literals.get(name) {
                    None => errors.push(format!(
                        "input template [{raw}]: requested input is not found [{name}]"
                    )),
                    Some(lit) => match literal_to_template_string(lit) {
                        Ok(v) => out.push_str(&v),
                        Err(e) => errors.push(format!(
                            "input template [{raw}]: failed to bind a value to inputName [{name}]: {e}"
                        )),
                    },
                },
            },
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(RenderError(errors.join("; ")))
    }
}

/// The string form of an input value in `{{.Inputs.<name>}}`: primitives as Go prints them,
/// blobs and schemas by URI, collections as `[a,b]`.
pub fn literal_to_template_string(lit: &Literal) -> Result<String, String> {
    match &lit.value {
        Some(literal::Value::Scalar(s)) => match &s.value {
            Some(scalar::Value::Primitive(p)) => match &p.value {
                Some(primitive::Value::Integer(i)) => Ok(i.to_string()),
                Some(primitive::Value::Boolean(b)) => Ok(b.to_string()),
                Some(primitive::Value::FloatValue(f)) => Ok(go_float(*f)),
                Some(primitive::Value::StringValue(s)) => Ok(s.clone()),
                Some(primitive::Value::Datetime(ts)) => Ok(go_timestamp(ts.seconds, ts.nanos)),
                Some(primitive::Value::Duration(d)) => Ok(go_duration(d.seconds, d.nanos)),
                None => Err("received an empty primitive".into()),
            },
            Some(scalar::Value::Blob(b)) => Ok(b.uri.clone()),
            Some(scalar::Value::Schema(s)) => Ok(s.uri.clone()),
            Some(scalar::Value::StructuredDataset(sd)) => Ok(sd.uri.clone()),
            other => Err(format!(
                "received an unexpected scalar type [{}]",
                other.as_ref().map_or("none", scalar_kind)
            )),
        },
        Some(literal::Value::Collection(c)) => {
            let items: Result<Vec<_>, _> =
                c.literals.iter().map(literal_to_template_string).collect();
            Ok(format!("[{}]", items?.join(",")))
        }
        Some(literal::Value::Map(_)) => Err("received an unexpected literal type [map]".into()),
        Some(literal::Value::OffloadedMetadata(_)) => {
            Err("received an unexpected literal type [offloaded]".into())
        }
        None => Err("received an empty literal".into()),
    }
}

fn scalar_kind(v: &scalar::Value) -> &'static str {
    match v {
        scalar::Value::Primitive(_) => "primitive",
        scalar::Value::Blob(_) => "blob",
        scalar::Value::Binary(_) => "binary",
        scalar::Value::Schema(_) => "schema",
        scalar::Value::NoneType(_) => "none",
        scalar::Value::Error(_) => "error",
        scalar::Value::Generic(_) => "generic",
        scalar::Value::StructuredDataset(_) => "structured dataset",
        scalar::Value::Union(_) => "union",
    }
}

/// A float as Go's `%v` prints it: the shortest representation, in exponent form when the
/// exponent is below -4 or at least 21 (`1e+21`, `1e-05`).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..21).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// A timestamp as Go's `ptypes.TimestampString`: RFC 3339 in UTC, fraction without trailing zeros.
pub fn go_timestamp(seconds: i64, nanos: i32) -> String {
    let Some(dt) = chrono::DateTime::from_timestamp(seconds, nanos.max(0) as u32) else {
        return format!("{seconds}s");
    };
    let mut out = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// A duration as Go's `time.Duration.String` prints it (`1h2m3.5s`, `500ms`, `0s`).
pub fn go_duration(seconds: i64, nanos: i32) -> String {
    let total: i128 = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    if total == 0 {
        return "0s".into();
    }
    let neg = total < 0;
    let mut u = total.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Sub-second: one unit with a fraction.
        let (unit, scale) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(u, scale));
        out.push_str(unit);
    } else {
        let hours = u / 3_600_000_000_000;
        u -= hours * 3_600_000_000_000;
        let minutes = u / 60_000_000_000;
        u -= minutes * 60_000_000_000;
        if hours > 0 {
            out.push_str(&format!("{hours}h"));
        }
        if hours > 0 || minutes > 0 {
            out.push_str(&format!("{minutes}m"));
        }
        out.push_str(&fraction(u, 1_000_000_000));
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

fn fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let digits = scale.to_string().len() - 1;
    let frac = format!("{rest:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_hash_names_are_fixed_length() {
        // Short names pass through.
        assert_eq!(
            fixed_length_unique_id_for_parts(50, &["abc", "n0", "1"]),
            "abc-n0-1"
        );
        // Empty leading part: no leading dash.
        assert_eq!(fixed_length_unique_id_for_parts(50, &["", "n0"]), "n0");
        let long = "x".repeat(60);
        let id = fixed_length_unique_id(&long, 50);
        assert_eq!(id.len(), 8);
        assert!(id.starts_with('f'));
        // fnv32a("a") = 0xe40c292c; base32 (a-z1-6) of e4 0c 29 2c.
        assert_eq!(fixed_length_unique_id("a", 0), "f3qgcsla");
    }

    #[test]
    fn unique_key_is_sanitised() {
        assert_eq!(sanitize_unique_key("abc-n0-1"), "abc_n0_1");
        assert_eq!(sanitize_unique_key("0abc--x"), "aabc_x");
        assert_eq!(sanitize_unique_key("_ok"), "_ok");
    }

    #[test]
    fn go_formats() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(2.5), "2.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1e20), "100000000000000000000");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(-1.5e-7), "-1.5e-07");
        assert_eq!(go_duration(0, 0), "0s");
        assert_eq!(go_duration(90, 0), "1m30s");
        assert_eq!(go_duration(3600, 500_000_000), "1h0m0.5s");
        assert_eq!(go_duration(0, 1_500_000), "1.5ms");
        assert_eq!(go_duration(0, 2_000), "2µs");
        assert_eq!(go_duration(-5, 0), "-5s");
        assert_eq!(go_timestamp(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            go_timestamp(1_700_000_000, 120_000_000),
            "2023-11-14T22:13:20.12Z"
        );
    }

    fn paths(prev: Option<&str>) -> AttemptPaths {
        AttemptPaths {
            inputs: "file:///d/n0/data/inputs.pb".into(),
            input_prefix: "file:///d/n0/data".into(),
            output_prefix: "file:///d/n0/data/0".into(),
            raw_output_prefix: "file:///raw/ab/x-n0-0".into(),
            checkpoint_prefix: "file:///raw/ab/x-n0-0/_flytecheckpoints".into(),
            prev_checkpoint_prefix: prev.map(String::from),
            task_template: "file:///d/n0/data/0/task.pb".into(),
        }
    }

    fn lit(v: primitive::Value) -> Literal {
        Literal {
            value: Some(literal::Value::Scalar(Box::new(flyteidl::core::Scalar {
                value: Some(scalar::Value::Primitive(flyteidl::core::Primitive {
                    value: Some(v),
                })),
            }))),
            ..Default::default()
        }
    }

    fn inputs() -> LiteralMap {
        let mut m = LiteralMap::default();
        m.literals
            .insert("x".into(), lit(primitive::Value::Integer(7)));
        m.literals
            .insert("f".into(), lit(primitive::Value::FloatValue(1.5)));
        m.literals
            .insert("b".into(), lit(primitive::Value::Boolean(true)));
        m.literals.insert(
            "s".into(),
            lit(primitive::Value::StringValue("hi there".into())),
        );
        m.literals.insert(
            "d".into(),
            lit(primitive::Value::Duration(pbjson_types::Duration {
                seconds: 5,
                nanos: 0,
            })),
        );
        m.literals.insert(
            "l".into(),
            Literal {
                value: Some(literal::Value::Collection(
                    flyteidl::core::LiteralCollection {
                        literals: vec![
                            lit(primitive::Value::Integer(1)),
                            lit(primitive::Value::Integer(2)),
                        ],
                    },
                )),
                ..Default::default()
            },
        );
        m
    }

    fn values<'a>(paths: &'a AttemptPaths, inputs: Option<&'a LiteralMap>) -> TemplateValues<'a> {
        TemplateValues {
            paths,
            per_retry_unique_key: "x_n0_0".into(),
            namespace: "p-d".into(),
            inputs,
        }
    }

    #[test]
    fn renders_every_variable() {
        let p = paths(Some("file:///raw/prev/_flytecheckpoints"));
        let i = inputs();
        let v = values(&p, Some(&i));
        let cases = [
            ("{{.input}}", "file:///d/n0/data/inputs.pb"),
            ("{{.inputPrefix}}", "file:///d/n0/data"),
            ("{{.outputPrefix}}", "file:///d/n0/data/0"),
            ("{{.rawOutputDataPrefix}}", "file:///raw/ab/x-n0-0"),
            (
                "{{.checkpointOutputPrefix}}",
                "file:///raw/ab/x-n0-0/_flytecheckpoints",
            ),
            (
                "{{.prevCheckpointPrefix}}",
                "file:///raw/prev/_flytecheckpoints",
            ),
            ("{{.perRetryUniqueKey}}", "x_n0_0"),
            ("{{.taskTemplatePath}}", "file:///d/n0/data/0/task.pb"),
            ("{{.namespace}}", "p-d"),
            ("{{.Inputs.x}}", "7"),
            ("{{.Inputs.f}}", "1.5"),
            ("{{.Inputs.b}}", "true"),
            ("{{.Inputs.s}}", "hi there"),
            ("{{.Inputs.d}}", "5s"),
            ("{{.Inputs.l}}", "[1,2]"),
        ];
        for (t, want) in cases {
            assert_eq!(render(t, &v).unwrap(), want, "{t}");
        }
    }

    #[test]
    fn matching_is_case_insensitive_with_optional_dot_and_spaces() {
        let p = paths(None);
        let v = values(&p, None);
        for t in [
            "{{.input}}",
            "{{.Input}}",
            "{{.INPUT}}",
            "{{ .Input }}",
            "{{$input}}",
            "{{ $Input}}",
            "{{input}}",
            "{{  input\t}}",
        ] {
            assert_eq!(render(t, &v).unwrap(), "file:///d/n0/data/inputs.pb", "{t}");
        }
        assert_eq!(
            render(
                "--out={{ .OUTPUTPREFIX }}/x --raw {{.RawOutputDataPrefix}}",
                &v
            )
            .unwrap(),
            "--out=file:///d/n0/data/0/x --raw file:///raw/ab/x-n0-0"
        );
        // Input names are looked up as written; the "Inputs." prefix is case-insensitive.
        let i = inputs();
        let v = values(&p, Some(&i));
        assert_eq!(render("{{ .inputs.x }}-{{$INPUTS.x}}", &v).unwrap(), "7-7");
    }

    #[test]
    fn first_attempt_has_an_empty_quoted_previous_checkpoint() {
        let p = paths(None);
        assert_eq!(
            render("{{.prevCheckpointPrefix}}", &values(&p, None)).unwrap(),
            "\"\""
        );
        let p = paths(Some(""));
        assert_eq!(
            render("{{.PrevCheckpointPrefix}}", &values(&p, None)).unwrap(),
            "\"\""
        );
    }

    #[test]
    fn unknown_templates_and_text_stay_as_they_are() {
        let p = paths(None);
        let v = values(&p, None);
        for t in [
            "{{.unknown}}",
            "{{",
            "}}",
            "{{.input",
            "{{ }}",
            "a {{b}} c",
            "{{.Inputs.}}",
            "plain",
        ] {
            assert_eq!(render(t, &v).unwrap(), t, "{t}");
        }
        assert_eq!(
            render("{{{{.input}}}}", &v).unwrap(),
            "{{file:///d/n0/data/inputs.pb}}"
        );
    }

    #[test]
    fn missing_inputs_are_errors() {
        let p = paths(None);
        let i = inputs();
        let err = render("{{.Inputs.nope}}", &values(&p, Some(&i))).unwrap_err();
        assert!(
            err.0.contains("requested input is not found [nope]"),
            "{err}"
        );
        assert!(render("{{.Inputs.x}}", &values(&p, None)).is_err());
        let parts = vec!["a".to_string(), "{{ .inputs.x }}".to_string()];
        assert!(needs_inputs(&parts));
        assert!(!needs_task_template(&parts));
        assert!(needs_task_template(&["{{$TaskTemplatePath}}".to_string()]));
    }

    #[test]
    fn generated_names_follow_propeller() {
        let key = AttemptKey {
            project: "p".into(),
            domain: "d".into(),
            execution: "abc".into(),
            node_id: "n0".into(),
            retry_attempt: 1,
        };
        assert_eq!(generated_name(&key), "abc-n0-1");
        assert_eq!(per_retry_unique_key(&key), "abc_n0_1");
        let long = AttemptKey {
            node_id: "n".repeat(60),
            ..key
        };
        let name = generated_name(&long);
        assert_eq!(name.len(), 8);
        assert!(per_retry_unique_key(&long).starts_with('f'));
    }
}
