//! `flyte-rs gate list|approve|reject|set`: the signals of `approve` and `wait_for_input`
//! gates (SignalService, as flytekit's `FlyteRemote.approve/reject/set_signal`).

use flyteidl::admin::{Signal, SignalListRequest, SignalSetRequest};
use flyteidl::core::{
    Literal, Primitive, Scalar, SignalIdentifier, SimpleType, literal, literal_type, primitive,
    scalar,
};
use serde_json::json;

use crate::cli::{Common, GateCommand};
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::literals::{flag_value, to_json, to_literal, type_name};
use crate::output::{Format, cell, print_data, print_table};

pub async fn run(client: &mut Client, what: GateCommand, common: &Common) -> CliResult<()> {
    match what {
        GateCommand::List { execution } => {
            let signals = signals(client, &execution).await?;
            if common.output != Format::Table {
                return print_data(common.output, &signals);
            }
            let rows = signals
                .iter()
                .map(|s| {
                    vec![
                        signal_id(s),
                        s.r#type.as_ref().map(type_name).unwrap_or_default(),
                        s.value
                            .as_ref()
                            .map(|v| cell(&to_json(v)))
                            .unwrap_or_else(|| "(waiting)".into()),
                    ]
                })
                .collect();
            print_table(&["SIGNAL", "TYPE", "VALUE"], rows);
            Ok(())
        }
        GateCommand::Approve { execution, signal } => {
            set(client, &execution, signal, Value::Approve(true), common).await
        }
        GateCommand::Reject { execution, signal } => {
            set(client, &execution, signal, Value::Approve(false), common).await
        }
        GateCommand::Set {
            execution,
            signal,
            value,
        } => set(client, &execution, Some(signal), Value::Text(value), common).await,
    }
}

enum Value {
    Approve(bool),
    Text(String),
}

fn signal_id(s: &Signal) -> String {
    s.id.as_ref()
        .map(|i| i.signal_id.clone())
        .unwrap_or_default()
}

fn is_bool(s: &Signal) -> bool {
    matches!(
        s.r#type.as_ref().and_then(|t| t.r#type.as_ref()),
        Some(literal_type::Type::Simple(x)) if *x == SimpleType::Boolean as i32
    )
}

async fn signals(client: &mut Client, execution: &str) -> CliResult<Vec<Signal>> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .signal
            .list_signals(SignalListRequest {
                workflow_execution_id: Some(client.execution_id(execution)),
                limit: 1000,
                token: token.clone(),
                ..Default::default()
            })
            .await
            .map_err(CliError::rpc(format!(
                "cannot list the gates of execution {execution}"
            )))?
            .into_inner();
        all.extend(page.signals);
        if page.token.is_empty() {
            return Ok(all);
        }
        token = page.token;
    }
}

async fn set(
    client: &mut Client,
    execution: &str,
    signal: Option<String>,
    value: Value,
    common: &Common,
) -> CliResult<()> {
    let signals = signals(client, execution).await?;
    let chosen = match &signal {
        Some(id) => signals
            .iter()
            .find(|s| signal_id(s) == *id)
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "execution {execution} has no gate {id:?}; its gates: {}",
                    names(&signals)
                ))
            })?,
        None => {
            let waiting: Vec<&Signal> = signals
                .iter()
                .filter(|s| s.value.is_none() && is_bool(s))
                .collect();
            match waiting.as_slice() {
                [one] => *one,
                [] => {
                    return Err(CliError::Usage(format!(
                        "execution {execution} has no approval gate waiting (gates: {})",
                        names(&signals)
                    )));
                }
                _ => {
                    return Err(CliError::Usage(format!(
                        "execution {execution} has several approval gates waiting: name one of {}",
                        names(&signals)
                    )));
                }
            }
        }
    };
    let id = signal_id(chosen);
    let literal = match &value {
        Value::Approve(approved) => {
            if !is_bool(chosen) {
                return Err(CliError::Usage(format!(
                    "gate {id} takes a {} value, not an approval: use `flyte-rs gate set {execution} {id} VALUE`",
                    chosen.r#type.as_ref().map(type_name).unwrap_or_default()
                )));
            }
            Literal {
                value: Some(literal::Value::Scalar(Box::new(Scalar {
                    value: Some(scalar::Value::Primitive(Primitive {
                        value: Some(primitive::Value::Boolean(*approved)),
                    })),
                }))),
                ..Default::default()
            }
        }
        Value::Text(text) => {
            let ty = chosen.r#type.as_ref().ok_or_else(|| {
                CliError::Usage(format!("gate {id} has no type to parse {text:?} by"))
            })?;
            to_literal(&flag_value(text, ty)?, ty)
                .map_err(|e| CliError::Usage(format!("gate {id}: {e}")))?
        }
    };
    client
        .signal
        .set_signal(SignalSetRequest {
            id: Some(SignalIdentifier {
                signal_id: id.clone(),
                execution_id: Some(client.execution_id(execution)),
            }),
            value: Some(literal.clone()),
        })
        .await
        .map_err(CliError::rpc(format!(
            "cannot set gate {id} of execution {execution}"
        )))?;
    let shown = match value {
        Value::Approve(true) => "approved".to_string(),
        Value::Approve(false) => "rejected".to_string(),
        Value::Text(_) => format!("set to {}", cell(&to_json(&literal))),
    };
    match common.output {
        Format::Table => outln!("gate {id} of {execution} {shown}"),
        format => print_data(
            format,
            &json!({"execution": execution, "signal": id, "value": to_json(&literal)}),
        )?,
    }
    Ok(())
}

fn names(signals: &[Signal]) -> String {
    if signals.is_empty() {
        return "none yet".into();
    }
    signals.iter().map(signal_id).collect::<Vec<_>>().join(", ")
}
