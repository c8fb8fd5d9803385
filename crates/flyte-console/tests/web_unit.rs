//! The front end's own unit tests (vitest: literal rendering, layout, routing), run in the
//! copy of web/ that build.rs installed and built, so `cargo test` runs them too.

use std::process::Command;

#[test]
fn vitest_passes() {
    let dir = env!("FLYTE_CONSOLE_WEB_BUILD_DIR");
    let output = Command::new("npm")
        .args(["test", "--silent"])
        .current_dir(dir)
        .output()
        .expect("npm is on PATH (the build needed it)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "vitest failed in {dir}:\n{text}");
    // A run that collected no test files would also be a failure to notice.
    assert!(text.contains("passed"), "vitest ran no tests:\n{text}");
}
