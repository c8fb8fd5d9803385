//! Secret keys the server keeps in a file (the console's session key, the task-token signing
//! key): read when the file exists, made there when it does not.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The bytes kept base64-encoded in `path`; when the file does not exist, `make()`'s bytes are
/// written there first (0600, never over an existing file). Replicas sharing the directory
/// agree on one key: a replica that loses the race to create the file reads the winner's.
/// `setting` names the configuration key and `what` the key in messages.
pub(crate) fn read_or_create(
    path: &Path,
    setting: &str,
    what: &str,
    make: &dyn Fn() -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, String> {
    let shown = path.display();
    match std::fs::read_to_string(path) {
        Ok(text) => STANDARD
            .decode(text.trim())
            .map_err(|e| format!("{setting} {shown}: not base64 ({e})")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes = make()?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let written = options
                .open(path)
                .and_then(|mut f| writeln!(f, "{}", STANDARD.encode(&bytes)));
            match written {
                Ok(()) => {
                    tracing::info!(path = %shown, "made a new {what}");
                    Ok(bytes)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    read_or_create(path, setting, what, make)
                }
                Err(e) => Err(format!("cannot write the {what} {shown}: {e}")),
            }
        }
        Err(e) => Err(format!("cannot read {setting} {shown}: {e}")),
    }
}
