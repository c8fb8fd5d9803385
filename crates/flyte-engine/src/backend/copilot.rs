//! Raw-container tasks' data (`container.data_config`, flytekit's `ContainerTask` with
//! `input_data_dir` / `output_data_dir`), as propeller's copilot sidecar provides it:
//!
//! - before the command runs, every input is written to `<input dir>/<name>`: a primitive as
//!   its text (`42`, `3.5`, `true`, RFC 3339 times, Go durations), a file blob as the file,
//!   collections and maps as directories of their items; plus `inputs.pb` (the literal map,
//!   blob URIs pointing at the local copies) and `inputs.json` / `inputs.yaml` (the values)
//!   as the task's `format` asks;
//! - after it exits 0, every declared output is read from `<output dir>/<name>`: simple types
//!   parsed from the file's text, blobs uploaded (a file, or a directory's files) to the
//!   attempt's raw-output prefix; a `_ERROR` file fails the task with its text (a user
//!   error). The outputs become `outputs.pb`, as any task's.
//!
//! On this host there is no container: the command runs as a local process, so the two
//! directories are per-attempt directories and the container's paths (`/var/inputs`) in the
//! command and arguments are rewritten to them.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use flyte_blob::BlobStore;
use flyteidl::core::{
    Blob, BlobMetadata, BlobType, Literal, LiteralMap, Primitive, Scalar, SimpleType, TaskTemplate,
    Void, blob_type::BlobDimensionality, data_loading_config::LiteralMapFormat, literal,
    literal_type, primitive, scalar, task_template,
};
use prost::Message;

use super::BackendError;
use super::task_io;

/// The `_ERROR` file a raw container writes to fail with a message (copilot's name).
const ERROR_FILE: &str = "_ERROR";
/// Largest simple-type output file copilot reads.
const MAX_PRIMITIVE_BYTES: u64 = 1024;

/// A raw-container attempt's data directories.
#[derive(Debug, Clone)]
pub struct Copilot {
    container_inputs: String,
    container_outputs: String,
    format: LiteralMapFormat,
    inputs_dir: PathBuf,
    outputs_dir: PathBuf,
}

impl Copilot {
    /// The task's copilot settings, with its directories under `data_dir` (the attempt's
    /// own); `None` unless the template enables data loading.
    pub fn for_template(template: &TaskTemplate, data_dir: &Path) -> Option<Self> {
        let Some(task_template::Target::Container(container)) = &template.target else {
            return None;
        };
        let config = container.data_config.as_ref().filter(|c| c.enabled)?;
        Some(Self {
            container_inputs: config.input_path.trim_end_matches('/').to_string(),
            container_outputs: config.output_path.trim_end_matches('/').to_string(),
            format: LiteralMapFormat::try_from(config.format).unwrap_or(LiteralMapFormat::Json),
            inputs_dir: data_dir.join("inputs"),
            outputs_dir: data_dir.join("outputs"),
        })
    }

    /// The command with the container's data paths replaced by this attempt's directories.
    pub fn rewrite(&self, argv: &mut [String]) {
        for arg in argv.iter_mut() {
            for (from, to) in [
                (&self.container_inputs, &self.inputs_dir),
                (&self.container_outputs, &self.outputs_dir),
            ] {
                if !from.is_empty() && arg.contains(from.as_str()) {
                    *arg = arg.replace(from.as_str(), &to.to_string_lossy());
                }
            }
        }
    }

    /// Writes the inputs into the input directory and creates the output directory.
    pub async fn write_inputs(&self, store: &BlobStore, inputs: &LiteralMap) -> Result<(), String> {
        for dir in [&self.inputs_dir, &self.outputs_dir] {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let mut local = LiteralMap::default();
        let mut values = serde_json::Map::new();
        for (name, lit) in &inputs.literals {
            let path = self.inputs_dir.join(name);
            let (value, rewritten) = Box::pin(write_literal(store, lit, &path)).await?;
            values.insert(name.clone(), value);
            local.literals.insert(name.clone(), rewritten);
        }
        write(&self.inputs_dir.join("inputs.pb"), local.encode_to_vec()).await?;
        let values = serde_json::Value::Object(values);
        match self.format {
            LiteralMapFormat::Json => {
                let text = serde_json::to_vec_pretty(&values).map_err(|e| e.to_string())?;
                write(&self.inputs_dir.join("inputs.json"), text).await
            }
            LiteralMapFormat::Yaml => {
                let text = serde_yaml::to_string(&values).map_err(|e| e.to_string())?;
                write(&self.inputs_dir.join("inputs.yaml"), text.into_bytes()).await
            }
            LiteralMapFormat::Proto => Ok(()),
        }
    }

    /// Reads the declared outputs from the output directory; blobs are uploaded under
    /// `raw_prefix` (a native URL). `Err(user message)` when the task wrote `_ERROR` or left an
    /// output out.
    pub async fn read_outputs(
        &self,
        store: &BlobStore,
        template: &TaskTemplate,
        raw_prefix: &str,
    ) -> Result<LiteralMap, CopilotError> {
        let error_file = self.outputs_dir.join(ERROR_FILE);
        if let Ok(text) = tokio::fs::read_to_string(&error_file).await {
            return Err(CopilotError::User(text.trim().to_string()));
        }
        let raw_key =
            task_io::key_of(store, raw_prefix).map_err(|e| CopilotError::System(e.to_string()))?;
        let mut outputs = LiteralMap::default();
        let declared = template
            .interface
            .as_ref()
            .and_then(|i| i.outputs.as_ref())
            .map(|o| o.variables.clone())
            .unwrap_or_default();
        for (name, variable) in declared {
            let path = self.outputs_dir.join(&name);
            let shown = format!("{}/{name}", self.container_outputs);
            let kind = variable.r#type.and_then(|t| t.r#type);
            let literal = match kind {
                Some(literal_type::Type::Simple(simple)) => {
                    let simple = SimpleType::try_from(simple).unwrap_or(SimpleType::None);
                    read_simple(&path, simple, &shown).await?
                }
                Some(literal_type::Type::Blob(blob_type)) => {
                    let key = task_io::child_key(&raw_key, &name);
                    upload_blob(store, &path, &key, blob_type, &shown).await?
                }
                other => {
                    return Err(CopilotError::User(format!(
                        "output {name:?}: raw containers return simple types and files only \
                         (as Flyte's copilot), not {other:?}"
                    )));
                }
            };
            outputs.literals.insert(name, literal);
        }
        Ok(outputs)
    }
}

/// Why a raw container's outputs could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum CopilotError {
    /// The task's fault (a missing or malformed output, `_ERROR`).
    User(String),
    /// Ours (the store).
    System(String),
}

impl From<CopilotError> for BackendError {
    fn from(err: CopilotError) -> Self {
        match err {
            CopilotError::User(m) | CopilotError::System(m) => BackendError::Internal(m),
        }
    }
}

async fn write(path: &Path, data: Vec<u8>) -> Result<(), String> {
    tokio::fs::write(path, data)
        .await
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Writes one input at `path`; its JSON value and the literal pointing at local copies.
async fn write_literal(
    store: &BlobStore,
    lit: &Literal,
    path: &Path,
) -> Result<(serde_json::Value, Literal), String> {
    use serde_json::Value as J;
    match &lit.value {
        Some(literal::Value::Scalar(s)) => match &s.value {
            Some(scalar::Value::Primitive(p)) => {
                let (text, json) = primitive_text(p);
                write(path, text.into_bytes()).await?;
                Ok((json, lit.clone()))
            }
            Some(scalar::Value::Blob(blob)) => {
                let key = store
                    .path_from_native_url(&blob.uri)
                    .ok_or_else(|| format!("input file {} is not in the blob store", blob.uri))?;
                let data = store
                    .get(&key)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", blob.uri))?;
                write(path, data.to_vec()).await?;
                let local = path.to_string_lossy().to_string();
                let mut rewritten = lit.clone();
                if let Some(literal::Value::Scalar(s)) = &mut rewritten.value
                    && let Some(scalar::Value::Blob(b)) = &mut s.value
                {
                    b.uri = local.clone();
                }
                Ok((J::String(local), rewritten))
            }
            Some(scalar::Value::NoneType(_)) => {
                write(path, b"null".to_vec()).await?;
                Ok((J::Null, lit.clone()))
            }
            Some(scalar::Value::Generic(st)) => {
                let json = serde_json::to_value(st).map_err(|e| e.to_string())?;
                write(path, json.to_string().into_bytes()).await?;
                Ok((json, lit.clone()))
            }
            Some(scalar::Value::Union(u)) => match &u.value {
                Some(inner) => Box::pin(write_literal(store, inner, path)).await,
                None => Ok((J::Null, lit.clone())),
            },
            _ => Err(format!(
                "input {}: raw containers take primitives, files, structs, lists and maps",
                path.display()
            )),
        },
        Some(literal::Value::Collection(c)) => {
            tokio::fs::create_dir_all(path)
                .await
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let mut items = Vec::new();
            let mut rewritten = c.clone();
            for (i, item) in c.literals.iter().enumerate() {
                let (json, local) =
                    Box::pin(write_literal(store, item, &path.join(i.to_string()))).await?;
                items.push(json);
                rewritten.literals[i] = local;
            }
            Ok((
                J::Array(items),
                Literal {
                    value: Some(literal::Value::Collection(rewritten)),
                    ..lit.clone()
                },
            ))
        }
        Some(literal::Value::Map(m)) => {
            tokio::fs::create_dir_all(path)
                .await
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let mut items = serde_json::Map::new();
            let mut rewritten = m.clone();
            for (k, item) in &m.literals {
                let (json, local) = Box::pin(write_literal(store, item, &path.join(k))).await?;
                items.insert(k.clone(), json);
                rewritten.literals.insert(k.clone(), local);
            }
            Ok((
                J::Object(items),
                Literal {
                    value: Some(literal::Value::Map(rewritten)),
                    ..lit.clone()
                },
            ))
        }
        _ => Err(format!(
            "input {}: an offloaded or empty literal cannot be given to a raw container",
            path.display()
        )),
    }
}

/// A primitive as copilot writes it (Go's formatting) and as a JSON value.
fn primitive_text(p: &Primitive) -> (String, serde_json::Value) {
    use serde_json::Value as J;
    match &p.value {
        Some(primitive::Value::Integer(i)) => (i.to_string(), J::from(*i)),
        Some(primitive::Value::FloatValue(f)) => (f.to_string(), J::from(*f)),
        Some(primitive::Value::StringValue(s)) => (s.clone(), J::String(s.clone())),
        Some(primitive::Value::Boolean(b)) => (b.to_string(), J::Bool(*b)),
        Some(primitive::Value::Datetime(t)) => {
            let text = chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                .unwrap_or_default();
            (text.clone(), J::String(text))
        }
        Some(primitive::Value::Duration(d)) => {
            let nanos = i128::from(d.seconds) * 1_000_000_000 + i128::from(d.nanos);
            (
                super::template::go_duration(d.seconds, d.nanos),
                J::from(i64::try_from(nanos).unwrap_or(i64::MAX)),
            )
        }
        None => (String::new(), J::Null),
    }
}

async fn read_simple(path: &Path, t: SimpleType, shown: &str) -> Result<Literal, CopilotError> {
    let missing = |e: std::io::Error| {
        CopilotError::User(format!("the task did not write its output {shown}: {e}"))
    };
    let meta = tokio::fs::metadata(path).await.map_err(missing)?;
    if meta.is_dir() {
        return Err(CopilotError::User(format!(
            "output {shown} is a directory; a {} output is a file with its value",
            t.as_str_name()
        )));
    }
    if meta.len() > MAX_PRIMITIVE_BYTES {
        return Err(CopilotError::User(format!(
            "output {shown} has {} bytes; a {} output may have at most {MAX_PRIMITIVE_BYTES}",
            meta.len(),
            t.as_str_name()
        )));
    }
    let text = tokio::fs::read_to_string(path).await.map_err(missing)?;
    let text = text.trim_matches([' ', '\n', '\t']);
    let bad = |why: String| {
        CopilotError::User(format!(
            "output {shown} = {text:?} is not a {}: {why}",
            t.as_str_name()
        ))
    };
    let value = match t {
        SimpleType::Integer => {
            primitive::Value::Integer(text.parse().map_err(|e| bad(format!("{e}")))?)
        }
        SimpleType::Float => {
            primitive::Value::FloatValue(text.parse().map_err(|e| bad(format!("{e}")))?)
        }
        SimpleType::String => primitive::Value::StringValue(text.to_string()),
        SimpleType::Boolean => primitive::Value::Boolean(match text {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
            "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
            _ => return Err(bad("expected true or false".into())),
        }),
        SimpleType::Datetime => {
            let t = chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|e| bad(format!("expected RFC 3339: {e}")))?;
            primitive::Value::Datetime(pbjson_types::Timestamp {
                seconds: t.timestamp(),
                nanos: t.timestamp_subsec_nanos() as i32,
            })
        }
        SimpleType::None => {
            return Ok(scalar_literal(scalar::Value::NoneType(Void {})));
        }
        SimpleType::Struct => {
            let st: pbjson_types::Struct = serde_json::from_str(text)
                .map_err(|e| bad(format!("expected a JSON object: {e}")))?;
            return Ok(scalar_literal(scalar::Value::Generic(st)));
        }
        other => {
            return Err(CopilotError::User(format!(
                "output {shown}: raw containers cannot return a {} (as Flyte's copilot)",
                other.as_str_name()
            )));
        }
    };
    Ok(scalar_literal(scalar::Value::Primitive(Primitive {
        value: Some(value),
    })))
}

fn scalar_literal(value: scalar::Value) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(value),
        }))),
        ..Default::default()
    }
}

/// Uploads a file, or a directory's files (flat, as copilot), to `key`.
async fn upload_blob(
    store: &BlobStore,
    path: &Path,
    key: &str,
    blob_type: BlobType,
    shown: &str,
) -> Result<Literal, CopilotError> {
    let meta = tokio::fs::metadata(path).await.map_err(|e| {
        CopilotError::User(format!("the task did not write its output {shown}: {e}"))
    })?;
    let system = |e: String| CopilotError::System(e);
    let multipart = meta.is_dir();
    if multipart {
        let mut entries = tokio::fs::read_dir(path)
            .await
            .map_err(|e| system(format!("cannot list {}: {e}", path.display())))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| system(format!("cannot list {}: {e}", path.display())))?
        {
            let file = entry.path();
            if !file.is_file() {
                continue;
            }
            let data = tokio::fs::read(&file)
                .await
                .map_err(|e| system(format!("cannot read {}: {e}", file.display())))?;
            let name = entry.file_name().to_string_lossy().to_string();
            store
                .put(&task_io::child_key(key, &name), Bytes::from(data))
                .await
                .map_err(|e| system(format!("cannot upload {}: {e}", file.display())))?;
        }
    } else {
        let data = tokio::fs::read(path)
            .await
            .map_err(|e| system(format!("cannot read {}: {e}", path.display())))?;
        store
            .put(key, Bytes::from(data))
            .await
            .map_err(|e| system(format!("cannot upload {}: {e}", path.display())))?;
    }
    let dimensionality = if multipart {
        BlobDimensionality::Multipart
    } else {
        BlobDimensionality::Single
    };
    Ok(scalar_literal(scalar::Value::Blob(Blob {
        metadata: Some(BlobMetadata {
            r#type: Some(BlobType {
                format: blob_type.format,
                dimensionality: dimensionality as i32,
            }),
        }),
        uri: store.literal_uri(key),
    })))
}
