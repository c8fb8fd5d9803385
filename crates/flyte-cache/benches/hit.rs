//! The cost of a cache hit on the embedded SQLite store: `TaskCache::lookup` (the catalog
//! read and decoding the outputs) plus the output copy the engine does on a hit (encoding the
//! outputs and writing `outputs.pb`).
//!
//! `cargo bench -p flyte-cache --bench hit` (optimised). Prints mean, p50 and p99 per hit, for
//! the lookup alone and with the copy, over `FLYTE_CACHE_BENCH_ITERS`-free fixed iterations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flyte_cache::{CacheKey, StoreTaskCache, TaskCache};
use flyteidl::core::{
    self, Blob, BlobMetadata, BlobType, Literal, LiteralMap, Primitive, Scalar, blob_type, literal,
    primitive, scalar,
};
use prost::Message;

const WARMUP: usize = 200;
const ITERS: usize = 5_000;

fn scalar_lit(value: scalar::Value) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(value),
        }))),
        ..Default::default()
    }
}

fn prim(v: primitive::Value) -> Literal {
    scalar_lit(scalar::Value::Primitive(Primitive { value: Some(v) }))
}

/// A typical task's outputs: a number, a string, a file reference.
fn outputs() -> LiteralMap {
    let file = scalar_lit(scalar::Value::Blob(Blob {
        metadata: Some(BlobMetadata {
            r#type: Some(BlobType {
                format: "csv".into(),
                dimensionality: blob_type::BlobDimensionality::Single as i32,
            }),
        }),
        uri: "file:///data/raw/ab/cd/0123456789abcdef/result.csv".into(),
    }));
    LiteralMap {
        literals: [
            ("o0".to_string(), prim(primitive::Value::Integer(42))),
            (
                "o1".to_string(),
                prim(primitive::Value::StringValue("x".repeat(200))),
            ),
            ("o2".to_string(), file),
        ]
        .into_iter()
        .collect(),
    }
}

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{name:<28} mean {:>7.1} µs   p50 {:>7.1} µs   p99 {:>7.1} µs   ({} hits)",
        mean.as_secs_f64() * 1e6,
        p(0.50).as_secs_f64() * 1e6,
        p(0.99).as_secs_f64() * 1e6,
        samples.len()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("flyte.db").display());
    let store = flyte_store::open(&url).await.expect("open store");
    let cache = Arc::new(StoreTaskCache::new(store));

    let task = core::Identifier {
        resource_type: core::ResourceType::Task as i32,
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: "bench.task".into(),
        version: "v1".into(),
        org: String::new(),
    };
    let source = core::TaskExecutionIdentifier {
        task_id: Some(task.clone()),
        node_execution_id: Some(core::NodeExecutionIdentifier {
            node_id: "n0".into(),
            execution_id: Some(core::WorkflowExecutionIdentifier {
                project: "flytesnacks".into(),
                domain: "development".into(),
                name: "bench".into(),
                org: String::new(),
            }),
        }),
        retry_attempt: 0,
    };
    // Some unrelated entries, so the lookup is not on a one-row table.
    for i in 0..1_000 {
        let inputs = LiteralMap {
            literals: [("a".to_string(), prim(primitive::Value::Integer(i)))]
                .into_iter()
                .collect(),
        };
        let key = CacheKey::compute(&task, "1", None, &inputs, &[]).expect("key");
        cache
            .put(&key, &outputs(), &source, false)
            .await
            .expect("put");
    }
    let inputs = LiteralMap {
        literals: [("a".to_string(), prim(primitive::Value::Integer(7)))]
            .into_iter()
            .collect(),
    };

    // The key is computed once per node execution, before the lookup: measured apart.
    let mut key_samples = Vec::with_capacity(ITERS);
    for _ in 0..ITERS {
        let t = Instant::now();
        let key = CacheKey::compute(&task, "1", None, &inputs, &[]).expect("key");
        key_samples.push(t.elapsed());
        std::hint::black_box(key);
    }
    let key = CacheKey::compute(&task, "1", None, &inputs, &[]).expect("key");

    let out_path = dir.path().join("outputs.pb");
    for _ in 0..WARMUP {
        cache.lookup(&key).await.expect("lookup").expect("hit");
    }
    let mut lookup = Vec::with_capacity(ITERS);
    let mut with_copy = Vec::with_capacity(ITERS);
    for _ in 0..ITERS {
        let t = Instant::now();
        let hit = cache.lookup(&key).await.expect("lookup").expect("hit");
        lookup.push(t.elapsed());
        tokio::fs::write(&out_path, hit.outputs.encode_to_vec())
            .await
            .expect("write outputs.pb");
        with_copy.push(t.elapsed());
    }
    println!("cache hit on embedded SQLite (1,001 cached entries, 3 outputs)");
    stats("key (hash inputs)", key_samples);
    stats("lookup", lookup);
    stats("lookup + outputs.pb write", with_copy);
}
