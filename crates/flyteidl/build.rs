//! Generates the flyteidl 1.16 contract.
//!
//! The .proto files are never committed: they come from the npm registry packages
//! `@flyteorg/flyteidl` (flyteidl's own protos) and `google-proto-files` (google/api
//! annotations), fetched with `npm pack` into OUT_DIR on first build. Set
//! `FLYTEIDL_PROTOS_DIR` (a directory holding `flyteidl/` and `google/api/`) to build offline.
//! No system protoc is needed: protox compiles the files in pure Rust.

use std::path::{Path, PathBuf};
use std::process::Command;

const FLYTEIDL_PACKAGE: &str = "@flyteorg/flyteidl@1.16.5";
const GOOGLE_PROTOS_PACKAGE: &str = "google-proto-files@6.0.1";

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../../proto-stubs");
    println!("cargo:rerun-if-env-changed=FLYTEIDL_PROTOS_DIR");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let (flyteidl_root, google_root) = match std::env::var_os("FLYTEIDL_PROTOS_DIR") {
        Some(dir) => (PathBuf::from(&dir), PathBuf::from(dir)),
        None => fetch_packages(&out_dir.join("registry"))?,
    };

    let mut files = Vec::new();
    collect_protos(&flyteidl_root, &flyteidl_root.join("flyteidl"), &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(format!("no flyteidl protos under {}", flyteidl_root.display()).into());
    }

    // protox's bundled well-known types come before google-proto-files, whose
    // google/protobuf copies use syntax newer than protox parses.
    let mut resolver = protox::file::ChainFileResolver::new();
    resolver.add(protox::file::IncludeFileResolver::new(
        flyteidl_root.clone(),
    ));
    resolver.add(protox::file::GoogleFileResolver::new());
    resolver.add(protox::file::IncludeFileResolver::new(PathBuf::from(
        "../../proto-stubs",
    )));
    resolver.add(protox::file::IncludeFileResolver::new(google_root.clone()));
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;
    let descriptor_set = compiler.file_descriptor_set();
    let descriptor_bytes = compiler.encode_file_descriptor_set();
    std::fs::write(out_dir.join("flyteidl_descriptor.bin"), &descriptor_bytes)?;

    let mut prost_config = prost_build::Config::new();
    // BTreeMap keeps encoding deterministic, so content digests are stable.
    prost_config
        // An explicit out_dir makes the include file say `include!("x.rs")`, the form the
        // serde patch below looks for.
        .out_dir(&out_dir)
        .btree_map(["."])
        // `prost::Name` on every message: the server codec names the request it cannot decode.
        .enable_type_names()
        // A compiled workflow inline made every NodeExecutionEvent 2.6 KB, even the ones
        // without it: the batch starting a 100,000-node @dynamic holds 200,000 of them.
        .boxed(".flyteidl.event.TaskNodeMetadata.dynamic_workflow")
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        .include_file("mod.rs");
    // Servers decode requests with `codec::ServerCodec` (an undecodable request is the
    // client's fault: INVALID_ARGUMENT); clients keep tonic-prost's codec, for which an
    // undecodable response stays INTERNAL, as gRPC's status code guide has it.
    let generators: Vec<Box<dyn prost_build::ServiceGenerator>> = vec![
        tonic_prost_build::configure()
            .build_server(false)
            .build_client(true)
            .compile_well_known_types(true)
            .service_generator(),
        tonic_prost_build::configure()
            .build_server(true)
            .build_client(false)
            .compile_well_known_types(true)
            .codec_path("crate::codec::ServerCodec")
            .service_generator(),
    ];
    prost_config.service_generator(Box::new(ServiceGenerators(generators)));
    prost_config.compile_fds(descriptor_set)?;

    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .btree_map(["."])
        .build(&[".flyteidl", ".datacatalog"])?;

    // prost's include file does not pull in pbjson's `<package>.serde.rs`: add them.
    let mod_rs = out_dir.join("mod.rs");
    let mut patched = String::new();
    for line in std::fs::read_to_string(&mod_rs)?.lines() {
        patched.push_str(line);
        patched.push('\n');
        if let Some(name) = line
            .trim()
            .strip_prefix("include!(\"")
            .and_then(|s| s.strip_suffix(".rs\");"))
        {
            let serde_file = format!("{name}.serde.rs");
            if out_dir.join(&serde_file).exists() {
                patched.push_str(&format!("include!(\"{serde_file}\");\n"));
            }
        }
    }
    std::fs::write(&mod_rs, patched)?;
    Ok(())
}

/// Runs several service generators on each service, in order (client code, then server code).
struct ServiceGenerators(Vec<Box<dyn prost_build::ServiceGenerator>>);

impl prost_build::ServiceGenerator for ServiceGenerators {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        for generator in &mut self.0 {
            generator.generate(service.clone(), buf);
        }
    }

    fn finalize(&mut self, buf: &mut String) {
        for generator in &mut self.0 {
            generator.finalize(buf);
        }
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        for generator in &mut self.0 {
            generator.finalize_package(package, buf);
        }
    }
}

/// Fetches and unpacks the two npm packages once; later builds reuse them.
fn fetch_packages(cache: &Path) -> Result<(PathBuf, PathBuf), BoxError> {
    let flyteidl = unpack(cache, FLYTEIDL_PACKAGE, "flyteidl")?.join("package/protos");
    let google = unpack(cache, GOOGLE_PROTOS_PACKAGE, "google-proto-files")?.join("package");
    Ok((flyteidl, google))
}

fn unpack(cache: &Path, package: &str, dir_name: &str) -> Result<PathBuf, BoxError> {
    let target = cache.join(dir_name);
    let done_marker = target.join(".unpacked");
    if done_marker.exists() {
        return Ok(target);
    }
    let _ = std::fs::remove_dir_all(&target);
    std::fs::create_dir_all(&target)?;
    let output = Command::new("npm")
        .args(["pack", "--silent", package, "--pack-destination"])
        .arg(&target)
        .output()
        .map_err(|e| format!("running `npm pack {package}` (is npm installed?): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`npm pack {package}` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let tarball = String::from_utf8(output.stdout)?
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let status = Command::new("tar")
        .arg("xzf")
        .arg(target.join(&tarball))
        .arg("-C")
        .arg(&target)
        .status()?;
    if !status.success() {
        return Err(format!("unpacking {tarball} failed").into());
    }
    std::fs::remove_file(target.join(&tarball))?;
    std::fs::write(&done_marker, package)?;
    Ok(target)
}

fn collect_protos(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), BoxError> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(
                path.strip_prefix(root)?
                    .to_string_lossy()
                    .replace('\\', "/"),
            );
        }
    }
    Ok(())
}
