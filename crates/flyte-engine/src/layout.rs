//! Where things live in the blob store, as Flyte lays them out (propeller's workflow/node
//! status data dirs, flyteplugins' `ioutils` paths), and the ids propeller derives.
//!
//! ```text
//! <metadata_prefix>/<project>-<domain>-<name>/            execution dir
//!   start-node/data/0/outputs.pb                          workflow inputs
//!   <node>/data/inputs.pb                                 top-level node
//!   <node>/data/<attempt>/{outputs,error,futures}.pb      per-attempt output dir
//!   <node>/data/<attempt>/<child>/inputs.pb               sub-nodes (subworkflow, branch, dynamic)
//!   <node>/data/<attempt>/dynamic_compiled.pb             a dynamic node's compiled workflow
//!   <node>/data/<attempt>/<i>/<sub attempt>/outputs.pb    array sub-node i
//!   end-node/data/0/outputs.pb                            workflow outputs
//! <raw_prefix>/<shard>/<attempt unique id>/               raw output data (+ _flytecheckpoints)
//! ```
//! Paths here are store keys; [`flyte_blob::BlobStore::native_url`] turns them into URLs.

pub const INPUTS_FILE: &str = "inputs.pb";
pub const OUTPUTS_FILE: &str = "outputs.pb";
pub const ERROR_FILE: &str = "error.pb";
pub const FUTURES_FILE: &str = "futures.pb";
/// The compiled dynamic workflow, next to `futures.pb` (propeller's
/// `implicitCompiledWorkflowClosureName`).
pub const DYNAMIC_COMPILED_FILE: &str = "dynamic_compiled.pb";
pub const TASK_TEMPLATE_FILE: &str = "task.pb";
pub const DECK_FILE: &str = "deck.html";
pub const CHECKPOINT_DIR: &str = "_flytecheckpoints";

/// propeller's `maxUniqueIDLength` for node unique ids.
pub const MAX_UNIQUE_ID_LENGTH: usize = 20;
/// propeller's `IDMaxLength` for per-attempt generated names.
pub const ATTEMPT_ID_MAX_LENGTH: usize = 50;

pub fn join(base: &str, part: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.is_empty() {
        part.to_string()
    } else {
        format!("{base}/{part}")
    }
}

/// `<metadata_prefix>/<project>-<domain>-<name>`.
pub fn execution_dir(metadata_prefix: &str, project: &str, domain: &str, name: &str) -> String {
    join(metadata_prefix, &format!("{project}-{domain}-{name}"))
}

/// Data dir of a top-level node (start-node, end-node, failure node included).
pub fn top_node_data_dir(exec_dir: &str, node_id: &str) -> String {
    join(exec_dir, &format!("{node_id}/data"))
}

/// Data dir of a node nested under a parent (subworkflow child, branch-taken node).
pub fn sub_node_data_dir(parent_output_dir: &str, spec_node_id: &str) -> String {
    join(parent_output_dir, spec_node_id)
}

pub fn output_dir(data_dir: &str, attempt: u32) -> String {
    join(data_dir, &attempt.to_string())
}

pub fn inputs_file(data_dir: &str) -> String {
    join(data_dir, INPUTS_FILE)
}

pub fn outputs_file(output_dir: &str) -> String {
    join(output_dir, OUTPUTS_FILE)
}

pub fn futures_file(output_dir: &str) -> String {
    join(output_dir, FUTURES_FILE)
}

pub fn dynamic_compiled_file(output_dir: &str) -> String {
    join(output_dir, DYNAMIC_COMPILED_FILE)
}

pub fn task_template_file(data_dir: &str) -> String {
    join(data_dir, TASK_TEMPLATE_FILE)
}

/// `<raw>/<shard>/<unique id>` (ioutils `NewShardedRawOutputPath`, base36 2-char shards).
pub fn raw_output_dir(raw_prefix: &str, attempt_unique_id: &str) -> String {
    join(
        &join(raw_prefix, &shard_prefix(attempt_unique_id)),
        attempt_unique_id,
    )
}

/// `<raw output dir>/_flytecheckpoints`.
pub fn checkpoint_dir(raw_output_dir: &str) -> String {
    join(raw_output_dir, CHECKPOINT_DIR)
}

fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The shard of a raw output path: one of `aa`..`99` (36×36) by fnv32a of the id.
pub fn shard_prefix(unique_id: &str) -> String {
    const CHARS: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let idx = (fnv32a(unique_id.as_bytes()) % (36 * 36)) as usize;
    let mut s = String::with_capacity(2);
    s.push(CHARS[idx / 36] as char);
    s.push(CHARS[idx % 36] as char);
    s
}

/// Base32 with Flyte's alphabet, no padding.
fn base32_flyte(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz123456";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        buffer = (buffer << 8) | u32::from(*b);
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

/// `encoding.FixedLengthUniqueID`: the id itself if short enough, else `f` + base32(fnv32a).
pub fn fixed_length_unique_id(input: &str, max_length: usize) -> String {
    if input.len() <= max_length {
        return input.to_string();
    }
    format!("f{}", base32_flyte(&fnv32a(input.as_bytes()).to_be_bytes()))
}

/// `encoding.FixedLengthUniqueIDForParts`: parts joined by `-` (no dash while still empty).
pub fn fixed_length_unique_id_for_parts(max_length: usize, parts: &[&str]) -> String {
    let mut joined = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 && !joined.is_empty() {
            joined.push('-');
        }
        joined.push_str(p);
    }
    fixed_length_unique_id(&joined, max_length)
}

/// `common.GenerateUniqueID`: a node's unique id from its parent's unique id and attempt.
pub fn node_unique_id(parent: Option<(&str, u32)>, spec_node_id: &str) -> String {
    match parent {
        None => fixed_length_unique_id(spec_node_id, MAX_UNIQUE_ID_LENGTH),
        Some((pid, attempt)) => fixed_length_unique_id_for_parts(
            MAX_UNIQUE_ID_LENGTH,
            &[pid, &attempt.to_string(), spec_node_id],
        ),
    }
}

/// The per-attempt generated name (`{{.perRetryUniqueKey}}`, raw output dir, task event
/// `metadata.generated_name`): `FixedLengthUniqueIDForParts(50, [exec, node, attempt])`.
pub fn attempt_unique_id(execution_name: &str, node_unique_id: &str, attempt: u32) -> String {
    fixed_length_unique_id_for_parts(
        ATTEMPT_ID_MAX_LENGTH,
        &[execution_name, node_unique_id, &attempt.to_string()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_follow_propeller() {
        assert_eq!(node_unique_id(None, "n0"), "n0");
        assert_eq!(node_unique_id(Some(("n1", 0)), "n1-n0"), "n1-0-n1-n0");
        let long = node_unique_id(Some(("some-long-node", 2)), "another-long-node");
        assert_eq!(long.len(), 8);
        assert!(long.starts_with('f'));
        // FNV-1a 32 of "a": 0xe40c292c.
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fixed_length_unique_id_for_parts(5, &["", "", "abc"]), "abc");
        assert_eq!(attempt_unique_id("exec", "n0", 1), "exec-n0-1");
    }

    #[test]
    fn base32_matches_go_encoding() {
        // Go: base32.NewEncoding("abcdefghijklmnopqrstuvwxyz123456").WithPadding(NoPadding)
        // of []byte{0xff,0xff,0xff,0xff}: six groups of 11111, then 11 padded with 000.
        assert_eq!(base32_flyte(&[0xff, 0xff, 0xff, 0xff]), "666666y");
        assert_eq!(base32_flyte(&[0, 0, 0, 0]), "aaaaaaa");
    }

    #[test]
    fn paths() {
        let e = execution_dir("metadata", "p", "d", "x");
        assert_eq!(e, "metadata/p-d-x");
        let n = top_node_data_dir(&e, "n0");
        assert_eq!(n, "metadata/p-d-x/n0/data");
        assert_eq!(
            outputs_file(&output_dir(&n, 1)),
            "metadata/p-d-x/n0/data/1/outputs.pb"
        );
        let raw = raw_output_dir("s3://b/raw", "x-n0-0");
        assert!(raw.starts_with("s3://b/raw/") && raw.ends_with("/x-n0-0"));
        assert_eq!(shard_prefix("x-n0-0").len(), 2);
    }
}
