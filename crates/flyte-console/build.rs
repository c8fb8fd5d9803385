//! Builds the web console (web/: Vite + TypeScript + Preact) into `$OUT_DIR/dist`, which
//! `src/lib.rs` embeds with `include_dir!`. See docs/adr-007-console.md.
//!
//! The sources are copied to `$OUT_DIR/web` and built there, so the source tree stays clean
//! (no node_modules, no dist) and each profile has its own copy. `npm ci` runs only when the
//! lockfile changed since the last install in that copy; `npm run build` (tsc + vite) runs
//! whenever a source changed. npm (Node.js ≥ 20.19) must be on PATH: the flyteidl crate's
//! build needs it too.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;

type BoxError = Box<dyn Error>;

/// What the web build reads, besides `src/`.
const TOP_FILES: &[&str] = &[
    "package.json",
    "package-lock.json",
    "index.html",
    "vite.config.ts",
    "tsconfig.json",
];

fn main() -> Result<(), BoxError> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let web = manifest.join("web");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=web/src");
    for f in TOP_FILES {
        println!("cargo:rerun-if-changed=web/{f}");
    }

    let work = out_dir.join("web");
    std::fs::create_dir_all(&work)?;
    for f in TOP_FILES {
        std::fs::copy(web.join(f), work.join(f))
            .map_err(|e| format!("copying web/{f} into {}: {e}", work.display()))?;
    }
    let _ = std::fs::remove_dir_all(work.join("src"));
    copy_dir(&web.join("src"), &work.join("src"))?;

    // `npm ci` wipes and reinstalls node_modules: only when the lockfile changed.
    let lock = std::fs::read(web.join("package-lock.json"))?;
    let stamp = work.join("node_modules").join(".flyte-console-lock");
    if std::fs::read(&stamp).ok().as_deref() != Some(lock.as_slice()) {
        npm(
            &work,
            &[
                "ci",
                "--no-audit",
                "--no-fund",
                "--prefer-offline",
                "--loglevel=error",
            ],
        )?;
        std::fs::write(&stamp, &lock)?;
    }
    let dist = out_dir.join("dist");
    let dist_arg = dist.to_string_lossy().into_owned();
    npm(
        &work,
        &[
            "run",
            "build",
            "--silent",
            "--",
            "--outDir",
            &dist_arg,
            "--emptyOutDir",
            "--logLevel",
            "warn",
        ],
    )?;
    if !dist.join("index.html").is_file() {
        return Err(format!("the console build left no index.html in {}", dist.display()).into());
    }
    // The unit tests (tests/web_unit.rs) run vitest in this installed copy.
    println!(
        "cargo:rustc-env=FLYTE_CONSOLE_WEB_BUILD_DIR={}",
        work.display()
    );
    Ok(())
}

fn npm(dir: &Path, args: &[&str]) -> Result<(), BoxError> {
    let shown = format!("npm {}", args.join(" "));
    let output = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| {
            format!(
                "building the web console needs npm (Node.js >= 20.19) on PATH, and running \
                 `{shown}` failed: {e}. Install Node.js and npm (Debian: apt-get install nodejs npm)"
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "`{shown}` in {} failed ({}):\n{}\n{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), BoxError> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
