//! Property tests of what the engine makes of a task's templates and inputs (docs/fuzzing.md):
//! command-line templates (`{{.Inputs.x}}`, `{{ .outputPrefix }}`…) come from registered task
//! templates and literals from clients, and the engine renders them for every attempt, so any
//! string and any literal must render or fail with an error, never panic.

#[path = "../../flyte-core/tests/proptest_support/mod.rs"]
mod proptest_support;

use flyte_engine::backend::AttemptPaths;
use flyte_engine::backend::builtin::sleep_duration;
use flyte_engine::backend::template::{
    TemplateValues, go_duration, go_float, go_timestamp, literal_to_template_string, needs_inputs,
    needs_task_template, render,
};
use flyteidl::core::literal_type::Type;
use flyteidl::core::{LiteralMap, TaskTemplate, TypedInterface, Variable, VariableMap};
use proptest::prelude::*;
use proptest_support::{literal, literal_map, wrap};

fn paths() -> AttemptPaths {
    AttemptPaths {
        inputs: "s3://b/in/inputs.pb".into(),
        input_prefix: "s3://b/in".into(),
        output_prefix: "s3://b/out".into(),
        raw_output_prefix: "s3://b/raw".into(),
        checkpoint_prefix: "s3://b/ck".into(),
        prev_checkpoint_prefix: None,
        task_template: "/tmp/task.pb".into(),
    }
}

/// Strings made of template syntax and the names it knows, in any order.
fn template_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{{".to_string()),
        Just("}}".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just(".".to_string()),
        Just("$".to_string()),
        Just(" ".to_string()),
        Just("\u{3000}".to_string()),
        Just("é".to_string()),
        prop::sample::select(
            &[
                "Inputs.",
                "inputs.",
                "INPUTS.",
                "input",
                "inputPrefix",
                "outputPrefix",
                "rawOutputDataPrefix",
                "checkpointOutputPrefix",
                "prevCheckpointPrefix",
                "perRetryUniqueKey",
                "taskTemplatePath",
                "namespace",
                "a",
                "b",
                "x",
            ][..]
        )
        .prop_map(str::to_string),
        any::<char>().prop_map(String::from),
    ];
    prop_oneof![
        4 => prop::collection::vec(piece, 0..16).prop_map(|v| v.concat()),
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_template_renders_or_fails(s in template_text(), inputs in prop::option::of(literal_map())) {
        let paths = paths();
        let values = TemplateValues {
            paths: &paths,
            per_retry_unique_key: "k".into(),
            namespace: "p-d".into(),
            inputs: inputs.as_ref(),
        };
        let rendered = render(&s, &values);
        let parts = [s.clone()];
        let _ = (needs_inputs(&parts), needs_task_template(&parts));
        if !s.contains("{{") {
            prop_assert_eq!(rendered, Ok(s));
        }
    }

    #[test]
    fn a_known_variable_renders_to_its_value(
        before in "[^{}]{0,5}",
        after in "[^{}]{0,5}",
        ws in "[ \t]{0,2}",
        sigil in "[.$]?",
    ) {
        let paths = paths();
        let values = TemplateValues {
            paths: &paths,
            per_retry_unique_key: "k".into(),
            namespace: "p-d".into(),
            inputs: None,
        };
        let s = format!("{before}{{{{{ws}{sigil}OutputPrefix{ws}}}}}{after}");
        prop_assert_eq!(render(&s, &values), Ok(format!("{before}s3://b/out{after}")));
    }

    #[test]
    fn any_literal_has_a_string_form_or_an_error(lit in literal()) {
        let _ = literal_to_template_string(&lit);
    }

    /// Go's `%v` for floats is the shortest form that reads back as the same number.
    #[test]
    fn go_floats_read_back_exactly(f in any::<f64>()) {
        let s = go_float(f);
        let back: f64 = s.parse().map_err(|e| TestCaseError::fail(format!("{s}: {e}")))?;
        prop_assert!(back == f || (back.is_nan() && f.is_nan()), "{} -> {} -> {}", f, s, back);
    }

    #[test]
    fn any_timestamp_and_duration_format(seconds: i64, nanos: i32) {
        prop_assert!(!go_timestamp(seconds, nanos).is_empty());
        let d = go_duration(seconds, nanos);
        prop_assert!(d.ends_with('s'), "{}", d);
    }

    /// `core-sleep`: whatever the inputs, a duration or an error, and a duration only for a
    /// non-negative value, of exactly that length (saturating).
    #[test]
    fn sleep_takes_a_non_negative_duration_or_refuses(inputs in literal_map(), seconds: i64, nanos: i32, use_duration: bool) {
        let template = TaskTemplate {
            interface: Some(TypedInterface {
                inputs: Some(VariableMap {
                    variables: [("d".to_string(), Variable {
                        r#type: Some(wrap(Type::Simple(6))),
                        ..Default::default()
                    })].into(),
                }),
                outputs: None,
            }),
            ..Default::default()
        };
        let _ = sleep_duration(&template, &inputs);
        let _ = sleep_duration(&TaskTemplate::default(), &inputs);
        if use_duration {
            let lit = proptest_support::scalar_literal(Some(flyteidl::core::scalar::Value::Primitive(
                flyteidl::core::Primitive {
                    value: Some(flyteidl::core::primitive::Value::Duration(pbjson_types::Duration { seconds, nanos })),
                },
            )));
            let inputs = LiteralMap { literals: [("d".to_string(), lit)].into() };
            let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
            match sleep_duration(&template, &inputs) {
                Ok(d) => {
                    prop_assert!(total >= 0);
                    prop_assert_eq!(d.as_nanos(), u128::try_from(total).unwrap().min(u128::from(u64::MAX)));
                }
                Err(_) => prop_assert!(total < 0),
            }
        }
    }
}
