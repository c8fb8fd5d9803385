//! Output: `--output table|json|yaml`, plain when piped, coloured only on a terminal.

use std::io::IsTerminal;

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;
use serde_json::Value;

use crate::error::{CliError, CliResult};

/// `println!` that stops quietly when the reader has gone (`flyte-rs get ... | head`)
/// instead of panicking on the broken pipe.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}

pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        exit_on_write_error(&e);
    }
}

/// The reader went away: stop quietly (exit 0, as `yes | head` does); any other write error
/// ends the command with a message.
pub fn exit_on_write_error(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("flyte-rs: error: cannot write the output: {e}");
    std::process::exit(i32::from(crate::error::exit::FAILURE));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Prints a value as JSON or YAML (for table output the caller draws its own table).
pub fn print_data<T: Serialize + ?Sized>(format: Format, value: &T) -> CliResult<()> {
    let text = match format {
        Format::Json | Format::Table => serde_json::to_string_pretty(value)
            .map_err(|e| CliError::Io(format!("cannot encode the output: {e}")))?,
        Format::Yaml => serde_yaml::to_string(value)
            .map_err(|e| CliError::Io(format!("cannot encode the output: {e}")))?,
    };
    outln!("{}", text.trim_end());
    Ok(())
}

/// A table: whitespace-aligned columns with no colour, which `awk`/`cut` can read; on a
/// terminal the header is underlined with a rule.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_content_arrangement(ContentArrangement::Disabled);
    t.set_header(header.iter().map(|h| h.to_string()));
    for row in rows {
        t.add_row(row);
    }
    // NOTHING pads every cell with one space on each side: trim the line ends.
    let mut lines: Vec<String> = t
        .to_string()
        .lines()
        .map(|l| {
            l.trim_end()
                .strip_prefix(' ')
                .unwrap_or(l.trim_end())
                .to_string()
        })
        .collect();
    if std::io::stdout().is_terminal() {
        let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        lines.insert(1.min(lines.len()), "─".repeat(width));
    }
    lines.join("\n")
}

pub fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    outln!("{}", table(header, rows));
}

/// Key/value lines (`Name:  value`), aligned.
pub fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (k, v) in fields {
        // Continuation lines of a multi-line value (a traceback) line up under its start.
        let v = v.trim_end().replace('\n', &format!("\n{:width$} ", ""));
        outln!("{:<width$} {v}", format!("{k}:"));
    }
}

/// Styles for a phase, applied only when `colour` is on.
pub fn phase_styled(phase: &str, colour: bool) -> String {
    if !colour {
        return phase.to_string();
    }
    use anstyle::{AnsiColor, Style};
    let style = match phase {
        "SUCCEEDED" | "RECOVERED" => Style::new().fg_color(Some(AnsiColor::Green.into())),
        "FAILED" | "FAILING" | "TIMED_OUT" => {
            Style::new().fg_color(Some(AnsiColor::Red.into())).bold()
        }
        "ABORTED" | "ABORTING" | "SKIPPED" => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
        "RUNNING" | "DYNAMIC_RUNNING" | "SUCCEEDING" => {
            Style::new().fg_color(Some(AnsiColor::Cyan.into()))
        }
        _ => Style::new(),
    };
    format!("{style}{phase}{style:#}")
}

/// Whether stdout is a terminal that takes colour (`NO_COLOR` unset, `TERM` not dumb).
pub fn colour_on_stdout(no_color: bool, term_dumb: bool) -> bool {
    std::io::stdout().is_terminal() && !no_color && !term_dumb
}

/// A protobuf timestamp as `2024-01-02 03:04:05Z` (UTC, seconds).
pub fn timestamp(ts: Option<&pbjson_types::Timestamp>) -> String {
    ts.filter(|t| t.seconds != 0 || t.nanos != 0)
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// A duration as a person reads it: `850ms`, `4.2s`, `3m05s`, `2h01m`.
pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return String::new();
    }
    if secs < 1.0 {
        format!("{}ms", (secs * 1000.0).round() as u64)
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        let s = secs as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        let s = secs as u64;
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

pub fn proto_duration(d: Option<&pbjson_types::Duration>) -> String {
    d.filter(|d| d.seconds != 0 || d.nanos != 0)
        .map(|d| human_duration(d.seconds as f64 + f64::from(d.nanos) / 1e9))
        .unwrap_or_default()
}

/// A JSON value for a table cell: strings bare, the rest as compact JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "\"\"".into(),
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(0.25), "250ms");
        assert_eq!(human_duration(4.24), "4.2s");
        assert_eq!(human_duration(185.0), "3m05s");
        assert_eq!(human_duration(7260.0), "2h01m");
    }

    #[test]
    fn piped_table_is_plain_columns() {
        // Under `cargo test` stdout is not a terminal.
        let text = table(
            &["NAME", "PHASE"],
            vec![vec!["a".into(), "SUCCEEDED".into()]],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("NAME"), "{text}");
        assert!(lines[1].starts_with("a "), "{text}");
        assert!(!text.contains('\u{1b}'));
    }
}
