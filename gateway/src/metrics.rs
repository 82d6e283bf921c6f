//! Prometheus metrics (`GET /metrics`): requests and latencies by route, active broadcasts.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::state::AppState;

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub active_broadcasts: IntGauge,
    /// Per output (destination or recording): 1 for the state it is in, 0 for the others.
    pub output_state: IntGaugeVec,
    pub output_bitrate_kbps: IntGaugeVec,
    pub output_dropped_frames: IntGaugeVec,
    pub output_connects: IntGaugeVec,
}

/// Why registering the metrics below cannot fail.
const DEFINED: &str = "constant, valid metric definitions registered once into a fresh registry";

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("backyard_http_requests_total", "HTTP requests by method, route and status"),
            &["method", "route", "status"],
        )
        .expect(DEFINED);
        let latency = HistogramVec::new(
            HistogramOpts::new("backyard_http_request_duration_seconds", "HTTP request latency by route")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["method", "route"],
        )
        .expect(DEFINED);
        let active_broadcasts =
            IntGauge::new("backyard_active_broadcasts", "Broadcasts currently live").expect(DEFINED);
        registry.register(Box::new(requests.clone())).expect(DEFINED);
        registry.register(Box::new(latency.clone())).expect(DEFINED);
        registry.register(Box::new(active_broadcasts.clone())).expect(DEFINED);
        let labels = &["broadcast", "output", "kind"];
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect(DEFINED);
            registry.register(Box::new(g.clone())).expect(DEFINED);
            g
        };
        let output_state = gauge(
            "backyard_output_state",
            "1 when the output (destination or recording) is in this state",
            &["broadcast", "output", "kind", "state"],
        );
        let output_bitrate_kbps = gauge("backyard_output_bitrate_kbps", "Bitrate an output sends, kb/s", labels);
        let output_dropped_frames =
            gauge("backyard_output_dropped_frames", "Frames an output dropped because it was slow", labels);
        let output_connects =
            gauge("backyard_output_connects", "Successful connects of an output (1 + reconnects)", labels);
        Self {
            registry,
            requests,
            latency,
            active_broadcasts,
            output_state,
            output_bitrate_kbps,
            output_dropped_frames,
            output_connects,
        }
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("encoding into a Vec cannot fail");
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts and times every request by its route template (not the raw path, which would explode cardinality).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "other".into());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let res = next.run(req).await;
    state.metrics.latency.with_label_values(&[&method, &route]).observe(start.elapsed().as_secs_f64());
    state.metrics.requests.with_label_values(&[&method, &route, res.status().as_str()]).inc();
    res
}
