//! Prometheus metrics of the reconcilers, served on `/metrics`.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    kind: String,
    error: String,
}

/// The operator's metrics and their registry.
pub struct Metrics {
    registry: Mutex<Registry>,
    reconciliations: Family<KindLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    durations: Family<KindLabels, Histogram>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("roost_operator");
        let reconciliations = Family::<KindLabels, Counter>::default();
        registry.register(
            "reconciliations",
            "Reconciliations started, by resource kind",
            reconciliations.clone(),
        );
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "reconcile_failures",
            "Reconciliations that failed, by resource kind and error",
            failures.clone(),
        );
        let durations = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0])
        });
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciliations took, by resource kind",
            durations.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            reconciliations,
            failures,
            durations,
            leader,
        }
    }
}

impl Metrics {
    /// Counts a reconciliation of `kind` and its duration.
    pub fn reconciled(&self, kind: &str, took: Duration) {
        let labels = KindLabels { kind: kind.into() };
        self.reconciliations.get_or_create(&labels).inc();
        self.durations
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Counts a failed reconciliation of `kind` under `error` ([`crate::Error::metric_label`]).
    pub fn failed(&self, kind: &str, error: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                kind: kind.into(),
                error: error.into(),
            })
            .inc();
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_kind_and_error() {
        let metrics = Metrics::default();
        metrics.reconciled("Workspace", Duration::from_millis(20));
        metrics.failed("DataSource", "clickhouse");
        metrics.failed("DataSource", "clickhouse");
        metrics.set_leader(true);
        let text = metrics.render();
        assert!(
            text.contains(r#"roost_operator_reconciliations_total{kind="Workspace"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"roost_operator_reconcile_failures_total{kind="DataSource",error="clickhouse"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains("roost_operator_leader 1"), "{text}");
        assert!(
            text.contains("roost_operator_reconcile_duration_seconds_bucket"),
            "{text}"
        );
    }
}
