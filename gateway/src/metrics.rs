//! Prometheus metrics (`GET /metrics`): requests and latencies by route, active broadcasts.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
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
    /// Per participant's link (labels `broadcast`, `participant`), while they are in the studio.
    pub connection: ConnectionGauges,
    /// This node's load as it reports it to the cluster directory (label `node`), and the nodes it sees.
    pub node_load: GaugeVec,
    pub cluster_nodes: IntGauge,
}

/// A participant's link: what the studio's quality indicator shows.
pub struct ConnectionGauges {
    pub rtt_seconds: GaugeVec,
    /// `direction`: `downlink` (server → client) or `uplink`.
    pub loss_ratio: GaugeVec,
    pub jitter_seconds: GaugeVec,
    pub downlink_estimate_bps: GaugeVec,
}

impl ConnectionGauges {
    /// Sets the participant's series from one report.
    pub fn set(&self, broadcast: &str, participant: &str, q: &backyard_core::router::quality::ConnectionQuality) {
        let who = [broadcast, participant];
        if let Some(ms) = q.rtt_ms {
            self.rtt_seconds.with_label_values(&who).set(f64::from(ms) / 1000.0);
        }
        for (direction, loss) in [("downlink", q.downlink_loss), ("uplink", q.uplink_loss)] {
            if let Some(l) = loss {
                self.loss_ratio.with_label_values(&[broadcast, participant, direction]).set(f64::from(l));
            }
        }
        if let Some(ms) = q.jitter_ms {
            self.jitter_seconds.with_label_values(&who).set(f64::from(ms) / 1000.0);
        }
        if let Some(kbps) = q.downlink_kbps {
            self.downlink_estimate_bps.with_label_values(&who).set(f64::from(kbps) * 1000.0);
        }
    }

    /// Drops the participant's series (they left).
    pub fn remove(&self, broadcast: &str, participant: &str) {
        let who = [broadcast, participant];
        let _ = self.rtt_seconds.remove_label_values(&who);
        let _ = self.jitter_seconds.remove_label_values(&who);
        let _ = self.downlink_estimate_bps.remove_label_values(&who);
        for direction in ["downlink", "uplink"] {
            let _ = self.loss_ratio.remove_label_values(&[broadcast, participant, direction]);
        }
    }
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
        let float_gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = GaugeVec::new(Opts::new(name, help), labels).expect(DEFINED);
            registry.register(Box::new(g.clone())).expect(DEFINED);
            g
        };
        let who = &["broadcast", "participant"];
        let connection = ConnectionGauges {
            rtt_seconds: float_gauge("backyard_connection_rtt_seconds", "Round-trip time of a participant's link", who),
            loss_ratio: float_gauge(
                "backyard_connection_loss_ratio",
                "Share of a participant's packets lost over the last second, by direction",
                &["broadcast", "participant", "direction"],
            ),
            jitter_seconds: float_gauge(
                "backyard_connection_jitter_seconds",
                "Interarrival jitter of what a participant sends",
                who,
            ),
            downlink_estimate_bps: float_gauge(
                "backyard_connection_downlink_estimate_bits_per_second",
                "Estimated bandwidth towards a participant (what its simulcast layers are chosen within)",
                who,
            ),
        };
        let node_load = float_gauge(
            "backyard_node_load",
            "This node's load as written to the cluster directory: cpu_cores, participants, programs",
            &["node", "what"],
        );
        let cluster_nodes =
            IntGauge::new("backyard_cluster_nodes", "Nodes whose cluster directory entry is current").expect(DEFINED);
        registry.register(Box::new(cluster_nodes.clone())).expect(DEFINED);
        Self {
            connection,
            node_load,
            cluster_nodes,
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
