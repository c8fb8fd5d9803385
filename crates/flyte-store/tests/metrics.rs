//! The store records one latency sample per operation, labelled with the operation.

use std::sync::{Arc, Mutex};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

#[derive(Default)]
struct Captured {
    /// (metric name, op label, value)
    samples: Mutex<Vec<(String, String, f64)>>,
}

struct Sample {
    captured: Arc<Captured>,
    name: String,
    op: String,
}

impl HistogramFn for Sample {
    fn record(&self, value: f64) {
        self.captured
            .samples
            .lock()
            .unwrap()
            .push((self.name.clone(), self.op.clone(), value));
    }
}

struct TestRecorder(Arc<Captured>);

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let op = key
            .labels()
            .find(|l| l.key() == flyte_store::metrics::LABEL_OP)
            .map(|l| l.value().to_owned());
        Histogram::from_arc(Arc::new(Sample {
            captured: self.0.clone(),
            name: key.name().to_owned(),
            op: op.unwrap_or_default(),
        }))
    }
}

#[test]
fn operations_record_latency_by_op() {
    let captured = Arc::new(Captured::default());
    let recorder = TestRecorder(captured.clone());
    metrics::with_local_recorder(&recorder, || {
        flyte_store::metrics::describe();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = flyte_store::open("sqlite::memory:").await.unwrap();
            store.get_project("flytesnacks").await.unwrap();
            store.get_project("missing").await.unwrap_err();
        });
    });
    let samples = captured.samples.lock().unwrap();
    let get: Vec<_> = samples
        .iter()
        .filter(|(name, op, _)| {
            name == flyte_store::metrics::QUERY_DURATION_SECONDS && op == "get_project"
        })
        .collect();
    assert_eq!(get.len(), 2, "{samples:?}");
    assert!(get.iter().all(|(_, _, secs)| *secs >= 0.0 && *secs < 60.0));
    assert_eq!(
        flyte_store::metrics::QUERY_DURATION_SECONDS,
        "flyte_store_query_duration_seconds"
    );
}
