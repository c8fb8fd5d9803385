//! The route table: every `google.api.http` rule (and additional binding) of every service
//! in the descriptor set, with its path template parsed for matching.

use http::Method;
use prost::Message;
use prost_reflect::{DescriptorPool, MessageDescriptor, MethodDescriptor, Value};

use flyteidl::google::api::{HttpRule, http_rule::Pattern};

/// What part of the request the HTTP body fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodySpec {
    /// No body: everything comes from the path and the query string.
    None,
    /// `body: "*"`: the whole request message; no query parameters.
    All,
    /// `body: "field"`: one (possibly nested) field.
    Field(String),
}

/// One token of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(String),
    /// `*`: exactly one segment.
    Star,
    /// `**`: any number of segments (only last in a template).
    StarStar,
}

/// A variable of a template: field path and the token range it captures.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Var {
    field: String,
    start: usize,
    end: usize,
}

/// A parsed `google.api.http` path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    toks: Vec<Tok>,
    vars: Vec<Var>,
    verb: Option<String>,
}

impl PathTemplate {
    /// Parses `/api/v1/tasks/{id.project}/{id.domain}`, `{name=projects/*/x/**}`, `…:verb`.
    pub fn parse(template: &str) -> Result<Self, String> {
        let rest = template
            .strip_prefix('/')
            .ok_or_else(|| format!("template {template:?} must start with '/'"))?;
        // A verb follows the last ':' that is outside braces.
        let (path, verb) = {
            let mut depth = 0usize;
            let mut split = None;
            for (i, c) in rest.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth = depth.saturating_sub(1),
                    ':' if depth == 0 => split = Some(i),
                    _ => {}
                }
            }
            match split {
                Some(i) => (&rest[..i], Some(rest[i + 1..].to_string())),
                None => (rest, None),
            }
        };
        let mut toks = Vec::new();
        let mut vars = Vec::new();
        let mut chars = path;
        while !chars.is_empty() {
            if let Some(inner) = chars.strip_prefix('{') {
                let close = inner
                    .find('}')
                    .ok_or_else(|| format!("unclosed '{{' in {template:?}"))?;
                let body = &inner[..close];
                let (field, pattern) = match body.split_once('=') {
                    Some((f, p)) => (f, p),
                    None => (body, "*"),
                };
                let start = toks.len();
                for seg in pattern.split('/') {
                    toks.push(Self::tok(seg));
                }
                vars.push(Var {
                    field: field.to_string(),
                    start,
                    end: toks.len(),
                });
                chars = &inner[close + 1..];
            } else {
                let end = chars.find('/').unwrap_or(chars.len());
                let seg = &chars[..end];
                if seg.is_empty() {
                    return Err(format!("empty segment in {template:?}"));
                }
                toks.push(Self::tok(seg));
                chars = &chars[end..];
            }
            chars = chars.strip_prefix('/').unwrap_or(chars);
        }
        Ok(Self { toks, vars, verb })
    }

    fn tok(seg: &str) -> Tok {
        match seg {
            "*" => Tok::Star,
            "**" => Tok::StarStar,
            lit => Tok::Lit(lit.to_string()),
        }
    }

    /// Literal segments: more literals make a template more specific.
    fn literals(&self) -> usize {
        self.toks
            .iter()
            .filter(|t| matches!(t, Tok::Lit(_)))
            .count()
    }

    fn has_deep_wildcard(&self) -> bool {
        self.toks.contains(&Tok::StarStar)
    }

    /// Field paths bound by this template.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.vars.iter().map(|v| v.field.as_str())
    }

    /// Matches percent-encoded path segments (without the leading `/`); the captured values
    /// are percent-decoded, multi-segment captures joined with `/`.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let (path, verb) = match &self.verb {
            Some(verb) => (
                path.strip_suffix(verb.as_str())?.strip_suffix(':')?,
                Some(verb),
            ),
            None => (path, None),
        };
        let _ = verb;
        let segs: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        // spans[i] = segment range of token i
        let mut spans = vec![(0usize, 0usize); self.toks.len()];
        if !self.match_from(0, &segs, 0, &mut spans) {
            return None;
        }
        let mut out = Vec::with_capacity(self.vars.len());
        for var in &self.vars {
            let from = spans.get(var.start).map(|s| s.0).unwrap_or(segs.len());
            let to = if var.end > var.start {
                spans[var.end - 1].1
            } else {
                from
            };
            let value = segs[from..to]
                .iter()
                .map(|s| decode(s))
                .collect::<Option<Vec<_>>>()?
                .join("/");
            out.push((var.field.clone(), value));
        }
        Some(out)
    }

    fn match_from(&self, t: usize, segs: &[&str], s: usize, spans: &mut [(usize, usize)]) -> bool {
        if t == self.toks.len() {
            return s == segs.len();
        }
        match &self.toks[t] {
            Tok::Lit(lit) => {
                if s < segs.len() && decode(segs[s]).as_deref() == Some(lit.as_str()) {
                    spans[t] = (s, s + 1);
                    self.match_from(t + 1, segs, s + 1, spans)
                } else {
                    false
                }
            }
            Tok::Star => {
                if s < segs.len() && !segs[s].is_empty() {
                    spans[t] = (s, s + 1);
                    self.match_from(t + 1, segs, s + 1, spans)
                } else {
                    false
                }
            }
            Tok::StarStar => {
                for end in (s..=segs.len()).rev() {
                    spans[t] = (s, end);
                    if self.match_from(t + 1, segs, end, spans) {
                        return true;
                    }
                }
                false
            }
        }
    }
}

/// The byte of a `%XX` escape's two characters: exactly two hex digits (`u8::from_str_radix`
/// would also take a sign, reading `%+1` as 0x01).
pub(crate) fn hex_byte(pair: &[u8]) -> Option<u8> {
    match pair {
        [hi, lo] => {
            let digit = |b: u8| char::from(b).to_digit(16);
            u8::try_from(digit(*hi)? * 16 + digit(*lo)?).ok()
        }
        _ => None,
    }
}

/// Refuses a URL path whose percent-escapes are malformed or do not decode to UTF-8, so
/// it is a 400 naming the segment rather than a silent "no route matched".
pub fn check_path(path: &str) -> Result<(), String> {
    match path.split('/').find(|seg| decode(seg).is_none()) {
        None => Ok(()),
        Some(seg) => Err(format!(
            "the URL path segment {} is not valid percent-encoding: each '%' must be \
             followed by two hex digits and the decoded bytes must be UTF-8",
            crate::error::quoted(seg)
        )),
    }
}

fn decode(seg: &str) -> Option<String> {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(hex_byte(bytes.get(i + 1..i + 3)?)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One HTTP binding of one RPC.
#[derive(Debug, Clone)]
pub struct Route {
    /// `flyteidl.service.AdminService`
    pub service: String,
    /// `GetTask`
    pub method: String,
    pub http_method: Method,
    /// The template as written in the proto.
    pub template: String,
    pub path: PathTemplate,
    pub body: BodySpec,
    /// `response_body`: the response field to send instead of the whole message.
    pub response_body: Option<String>,
    pub input: MessageDescriptor,
    pub output: MessageDescriptor,
}

impl Route {
    /// `/flyteidl.service.AdminService/GetTask`
    pub fn grpc_path(&self) -> String {
        format!("/{}/{}", self.service, self.method)
    }
}

/// Reads the `google.api.http` rule of a method, if any.
fn http_rule(pool: &DescriptorPool, method: &MethodDescriptor) -> Option<HttpRule> {
    let ext = pool.get_extension_by_name("google.api.http")?;
    let options = method.options();
    if !options.has_extension(&ext) {
        return None;
    }
    match options.get_extension(&ext).as_ref() {
        Value::Message(rule) => HttpRule::decode(rule.encode_to_vec().as_slice()).ok(),
        _ => None,
    }
}

/// The route table of every service in `pool`, most specific templates first.
pub fn build_routes(pool: &DescriptorPool) -> Result<Vec<Route>, String> {
    let mut routes = Vec::new();
    for service in pool.services() {
        for method in service.methods() {
            if method.is_client_streaming() {
                continue;
            }
            let Some(rule) = http_rule(pool, &method) else {
                continue;
            };
            let mut bindings = vec![rule.clone()];
            bindings.extend(rule.additional_bindings.iter().cloned());
            for binding in bindings {
                let (http_method, template) = match binding.pattern {
                    Some(Pattern::Get(p)) => (Method::GET, p),
                    Some(Pattern::Put(p)) => (Method::PUT, p),
                    Some(Pattern::Post(p)) => (Method::POST, p),
                    Some(Pattern::Delete(p)) => (Method::DELETE, p),
                    Some(Pattern::Patch(p)) => (Method::PATCH, p),
                    Some(Pattern::Custom(c)) => (
                        Method::from_bytes(c.kind.as_bytes()).map_err(|e| e.to_string())?,
                        c.path,
                    ),
                    None => continue,
                };
                let path = PathTemplate::parse(&template)
                    .map_err(|e| format!("{}.{}: {e}", service.full_name(), method.name()))?;
                let body = match binding.body.as_str() {
                    "" => BodySpec::None,
                    "*" => BodySpec::All,
                    field => BodySpec::Field(field.to_string()),
                };
                routes.push(Route {
                    service: service.full_name().to_string(),
                    method: method.name().to_string(),
                    http_method,
                    template,
                    path,
                    body,
                    response_body: Some(binding.response_body).filter(|r| !r.is_empty()),
                    input: method.input(),
                    output: method.output(),
                });
            }
        }
    }
    // Most literal segments first, `**` templates after fixed-length ones; otherwise keep
    // declaration order (sort is stable).
    routes.sort_by_key(|r| {
        (
            std::cmp::Reverse(r.path.literals()),
            r.path.has_deep_wildcard(),
        )
    });
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(t: &str, p: &str) -> Option<Vec<(String, String)>> {
        PathTemplate::parse(t).unwrap().matches(p)
    }

    #[test]
    fn templates() {
        let t = "/api/v1/tasks/{id.project}/{id.domain}/{id.name}/{id.version}";
        assert_eq!(
            m(t, "api/v1/tasks/p/d/my.mod.t/v%201"),
            Some(vec![
                ("id.project".into(), "p".into()),
                ("id.domain".into(), "d".into()),
                ("id.name".into(), "my.mod.t".into()),
                ("id.version".into(), "v 1".into()),
            ])
        );
        assert_eq!(m(t, "api/v1/tasks/p/d/n"), None);
        assert_eq!(m(t, "api/v1/tasks/p/d/n/v/x"), None);
        assert_eq!(m(t, "api/v1/tasks/p//n/v"), None);
        assert_eq!(
            m("/v1/{name=projects/*/docs/**}", "v1/projects/a/docs/x/y"),
            Some(vec![("name".into(), "projects/a/docs/x/y".into())])
        );
        assert_eq!(
            m("/v1/{name=projects/*/docs/**}", "v1/projects/a/other/x"),
            None
        );
        assert_eq!(
            m("/v1/things/{id}:cancel", "v1/things/7:cancel"),
            Some(vec![("id".into(), "7".into())])
        );
        assert_eq!(m("/v1/things/{id}:cancel", "v1/things/7"), None);
        assert_eq!(m("/api/v1/projects", "api/v1/projects"), Some(vec![]));
        assert!(PathTemplate::parse("no/slash").is_err());
    }
}
