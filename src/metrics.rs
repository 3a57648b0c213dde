//! Metric names and the Prometheus recorder. Names live here so every module reports
//! under the same spelling; hot paths take handles once per session and increment
//! them once per read burst, not once per stanza.

use metrics::{counter, gauge, Counter, Gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const CONNECTIONS_OPEN: &str = "stanzagate_connections_open";
pub const CONNECTIONS_TOTAL: &str = "stanzagate_connections_total";
pub const STANZAS_TOTAL: &str = "stanzagate_stanzas_total";
pub const BYTES_TOTAL: &str = "stanzagate_bytes_total";
pub const STREAM_ERRORS_TOTAL: &str = "stanzagate_stream_errors_total";
pub const CONFIG_RELOADS_TOTAL: &str = "stanzagate_config_reloads_total";
pub const QUOTA_TOTAL: &str = "stanzagate_quota_exceeded_total";
pub const VERDICTS_TOTAL: &str = "stanzagate_verdicts_total";

/// How often histogram samples are folded into their summaries. The recorder keeps
/// every sample recorded since the last fold, so without it a proxy nobody scrapes
/// would grow by every delegated IQ's latency sample.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide recorder and its upkeep task. Call once, from `main`,
/// inside the runtime.
pub fn install() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

fn describe() {
    metrics::describe_gauge!(CONNECTIONS_OPEN, "Open connections per listener");
    metrics::describe_counter!(CONNECTIONS_TOTAL, "Accepted connections per listener");
    metrics::describe_counter!(STANZAS_TOTAL, "Top-level elements relayed, per direction");
    metrics::describe_counter!(BYTES_TOTAL, "Bytes relayed, per direction");
    metrics::describe_counter!(
        STREAM_ERRORS_TOTAL,
        "Stream errors seen, by condition and the side that sent them"
    );
    metrics::describe_counter!(CONFIG_RELOADS_TOTAL, "Config reload attempts by result");
    metrics::describe_counter!(
        QUOTA_TOTAL,
        "Times a peer hit a quota, by quota (the offender got an error)"
    );
    metrics::describe_counter!(VERDICTS_TOTAL, "Routing verdicts, by direction and verdict");
}

/// Which way data flows, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    ClientToServer,
    ServerToClient,
    ComponentToServer,
    ServerToComponent,
}

impl Flow {
    pub fn label(self) -> &'static str {
        match self {
            Flow::ClientToServer => "client_to_server",
            Flow::ServerToClient => "server_to_client",
            Flow::ComponentToServer => "component_to_server",
            Flow::ServerToComponent => "server_to_component",
        }
    }
}

/// Counters for one direction of one stream, fetched once.
#[derive(Clone)]
pub struct FlowCounters {
    pub stanzas: Counter,
    pub bytes: Counter,
}

impl FlowCounters {
    pub fn new(flow: Flow) -> Self {
        FlowCounters {
            stanzas: counter!(STANZAS_TOTAL, "direction" => flow.label()),
            bytes: counter!(BYTES_TOTAL, "direction" => flow.label()),
        }
    }
}

/// Counts a connection for as long as it lives.
pub struct ConnectionGuard {
    open: Gauge,
}

impl ConnectionGuard {
    pub fn new(listener: &'static str) -> Self {
        counter!(CONNECTIONS_TOTAL, "listener" => listener).increment(1);
        let open = gauge!(CONNECTIONS_OPEN, "listener" => listener);
        open.increment(1.0);
        ConnectionGuard { open }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

/// Records a stream error; `sent_by` is "proxy", "client", "server" or "component".
pub fn stream_error(condition: &str, sent_by: &'static str) {
    counter!(STREAM_ERRORS_TOTAL, "condition" => condition.to_owned(), "sent_by" => sent_by)
        .increment(1);
}

/// Records that a peer hit the quota `name` (a `[limits]` key).
pub fn quota_exceeded(name: &'static str) {
    counter!(QUOTA_TOTAL, "quota" => name).increment(1);
}
