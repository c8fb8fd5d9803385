//! The admin API's one error type, and its mapping to gRPC and HTTP codes (the only place
//! where codes are chosen). flytekit starts a browser login on UNKNOWN or UNAUTHENTICATED, so
//! neither is ever produced here.

use flyte_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AdminError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// No valid credentials (crate::auth). Only for that: flytekit answers it with a login.
    #[error("{0}")]
    Unauthenticated(String),
    /// Something the answer depends on is down (the identity provider); retry later.
    #[error("{0}")]
    Unavailable(String),
}

impl From<flyte_auth::AuthError> for AdminError {
    fn from(err: flyte_auth::AuthError) -> Self {
        match err {
            flyte_auth::AuthError::ProviderUnavailable(_) => Self::Unavailable(err.to_string()),
            _ => Self::Unauthenticated(err.to_string()),
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

impl AdminError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidArgument(msg.into())
    }

    /// An INTERNAL error for `err` with its whole source chain ("a: b: c"), so the log and
    /// the answer say what failed underneath, not only the outermost layer.
    pub fn internal(err: &(dyn std::error::Error + 'static)) -> Self {
        Self::Internal(error_chain(err))
    }

    /// The code and message sent to a client, gRPC or HTTP; every wire mapping goes through
    /// here. INTERNAL is logged at ERROR (it is our fault, so someone must see it), and the
    /// message is kept readable: overlong words shortened, the whole capped.
    pub fn answer(self) -> (tonic::Code, String) {
        let code = self.grpc_code();
        if code == tonic::Code::Internal {
            tracing::error!(error = %self, "internal error answered to a client");
        }
        (code, capped(shorten_words(&self.to_string(), WORD_MAX)))
    }

    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            Self::InvalidArgument(_) => tonic::Code::InvalidArgument,
            Self::NotFound(_) => tonic::Code::NotFound,
            Self::AlreadyExists(_) => tonic::Code::AlreadyExists,
            Self::FailedPrecondition(_) => tonic::Code::FailedPrecondition,
            Self::ResourceExhausted(_) => tonic::Code::ResourceExhausted,
            Self::Unimplemented(_) => tonic::Code::Unimplemented,
            Self::Internal(_) => tonic::Code::Internal,
            Self::Unauthenticated(_) => tonic::Code::Unauthenticated,
            Self::Unavailable(_) => tonic::Code::Unavailable,
        }
    }
}

/// The HTTP status grpc-gateway uses for a gRPC code (runtime.HTTPStatusFromCode), so
/// REST clients see what Flyte's gateway would send. UNKNOWN is mapped too, for safety.
pub fn http_status_for(code: tonic::Code) -> http::StatusCode {
    use http::StatusCode as S;
    use tonic::Code as C;
    match code {
        C::Ok => S::OK,
        C::Cancelled => S::from_u16(499).unwrap_or(S::BAD_REQUEST),
        C::InvalidArgument | C::OutOfRange => S::BAD_REQUEST,
        C::DeadlineExceeded => S::GATEWAY_TIMEOUT,
        C::NotFound => S::NOT_FOUND,
        C::AlreadyExists | C::Aborted => S::CONFLICT,
        C::PermissionDenied => S::FORBIDDEN,
        C::Unauthenticated => S::UNAUTHORIZED,
        C::ResourceExhausted => S::TOO_MANY_REQUESTS,
        C::FailedPrecondition => S::BAD_REQUEST,
        C::Unimplemented => S::NOT_IMPLEMENTED,
        C::Unavailable => S::SERVICE_UNAVAILABLE,
        C::Unknown | C::Internal | C::DataLoss => S::INTERNAL_SERVER_ERROR,
    }
}

impl From<AdminError> for tonic::Status {
    fn from(err: AdminError) -> Self {
        let (code, message) = err.answer();
        tonic::Status::new(code, message)
    }
}

impl From<StoreError> for AdminError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => {
                Self::NotFound(format!("{} not found", shorten_words(&what, QUOTED_MAX)))
            }
            StoreError::AlreadyExists(what) => Self::AlreadyExists(format!(
                "{} already exists",
                shorten_words(&what, QUOTED_MAX)
            )),
            StoreError::InvalidArgument(msg) => {
                Self::InvalidArgument(shorten_words(&msg, QUOTED_MAX))
            }
            full @ StoreError::StorageFull(_) => Self::ResourceExhausted(full.to_string()),
            // Only the engine's fenced writes get this; no RPC is fenced.
            lost @ StoreError::LeaseLost(_) => Self::FailedPrecondition(lost.to_string()),
            StoreError::Internal(source) => Self::internal(source.as_ref()),
        }
    }
}

// --- readable messages ----------------------------------------------------------------------
//
// Errors quote what a client sent; a 10 KB name echoed back makes a grpc-message header that
// clients cannot read (grpcio reports RESOURCE_EXHAUSTED instead of the real code).

/// Longest quoted input shown whole, in bytes (any real name or id fits).
pub const QUOTED_MAX: usize = 128;
/// Longest word (run without whitespace) an answer keeps whole: a safety net for inputs
/// echoed without [`quoted`].
const WORD_MAX: usize = 512;
/// Most bytes of an answer's message as sent: tonic percent-encodes the grpc-message header,
/// so a byte outside printable ASCII costs three.
pub const MESSAGE_MAX: usize = 4096;

/// A client's input quoted for an error message: `'name'`, or its first [`QUOTED_MAX`] bytes
/// marked as shortened: `'xxxx…' (10000 bytes, shortened)`.
pub fn quoted(input: &str) -> String {
    if input.len() <= QUOTED_MAX {
        format!("'{input}'")
    } else {
        format!(
            "'{}…' ({} bytes, shortened)",
            prefix(input, QUOTED_MAX),
            input.len()
        )
    }
}

/// `text` with every word longer than `max` bytes shortened to its first `max` bytes and
/// marked, as [`quoted`] does. For messages built elsewhere from client input (the store's
/// keys, compile errors).
pub fn shorten_words(text: &str, max: usize) -> String {
    if text.split_whitespace().all(|w| w.len() <= max) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len().min(4 * max));
    let mut rest = text;
    while !rest.is_empty() {
        let word_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(word_len);
        if word.len() > max {
            out.push_str(prefix(word, max));
            out.push_str(&format!("… ({} bytes, shortened)", word.len()));
        } else {
            out.push_str(word);
        }
        let space_len = tail
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(tail.len());
        out.push_str(&tail[..space_len]);
        rest = &tail[space_len..];
    }
    out
}

/// `message` cut so that it is at most [`MESSAGE_MAX`] bytes once percent-encoded.
fn capped(message: String) -> String {
    const MARK: &str = " … (message shortened)";
    let cost = |c: char| {
        if c.is_ascii() && !c.is_ascii_control() && c != '%' {
            1
        } else {
            3 * c.len_utf8()
        }
    };
    if message.chars().map(cost).sum::<usize>() <= MESSAGE_MAX {
        return message;
    }
    let mut spent: usize = MARK.chars().map(cost).sum();
    let end = message
        .char_indices()
        .find(|&(_, c)| {
            spent += cost(c);
            spent > MESSAGE_MAX
        })
        .map_or(message.len(), |(i, _)| i);
    format!("{}{MARK}", &message[..end])
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// "outer: cause: root cause".
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Many errors repeat their source in their own message; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn quoted_inputs_are_shortened_and_marked() {
        assert_eq!(quoted("wf"), "'wf'");
        let long = "x".repeat(10_000);
        let q = quoted(&long);
        assert!(
            q.starts_with(&format!("'{}…'", "x".repeat(QUOTED_MAX))),
            "{q}"
        );
        assert!(q.ends_with("(10000 bytes, shortened)"), "{q}");
        // Never cut inside a character.
        let q = quoted(&"é".repeat(100));
        assert!(q.contains("shortened"), "{q}");
    }

    #[test]
    fn long_words_are_shortened_and_the_rest_kept() {
        let text = format!("execution p/d/{} not found", "x".repeat(10_000));
        let short = shorten_words(&text, QUOTED_MAX);
        assert!(short.starts_with("execution p/d/xxx"), "{short}");
        assert!(
            short.ends_with("… (10004 bytes, shortened) not found"),
            "{short}"
        );
        assert!(short.len() < 300);
        assert_eq!(shorten_words("a  b\nc", 1), "a  b\nc");
    }

    #[test]
    fn answers_are_capped_as_sent() {
        let many_words = "word ".repeat(10_000);
        let (code, message) = AdminError::invalid(many_words).answer();
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(message.len() <= MESSAGE_MAX, "{}", message.len());
        assert!(message.ends_with("(message shortened)"));
        // Non-ASCII costs its percent-encoding.
        let (_, message) = AdminError::invalid("é ".repeat(10_000)).answer();
        assert!(message.len() <= MESSAGE_MAX / 2, "{}", message.len());
        // A readable message is left alone.
        let (_, message) = AdminError::NotFound("task t not found".into()).answer();
        assert_eq!(message, "task t not found");
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn internal_errors_are_logged_at_error_with_their_source_chain() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let root = std::io::Error::other("disk I/O error");
        let store = StoreError::Internal(Box::new(std::io::Error::other(Wrapped(root))));
        let status = tracing::subscriber::with_default(subscriber, || {
            let _ = tonic::Status::from(AdminError::invalid("not logged"));
            tonic::Status::from(AdminError::from(store))
        });
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(
            status.message().contains("writing a row: disk I/O error"),
            "{status:?}"
        );
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 1, "{log}");
        assert!(lines[0].contains("ERROR"), "{log}");
        assert!(lines[0].contains("writing a row: disk I/O error"), "{log}");
    }

    /// An error whose message does not repeat its source.
    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("writing a row")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
