//! The operator's error, with the label its failures are counted under.

use roost_engine::EngineError;
use roost_proto::ServiceError;

/// Why a reconciliation failed; the controller retries it with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A ClickHouse statement failed.
    #[error("ClickHouse: {0}")]
    Engine(#[from] EngineError),
    /// A call to a Roost service (the catalog of workspaces) failed.
    #[error("catalog: {0}")]
    Catalog(#[from] ServiceError),
    /// Adding or removing the finalizer, or the reconciliation behind it, failed.
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Writing or deleting the admin token's Secret failed.
    #[error("secret: {0}")]
    Secret(String),
    /// The workspace is being deleted while data sources still use it.
    #[error("{0} data source(s) still use the workspace; delete them first")]
    DataSourcesRemain(usize),
    /// The object lacks something Kubernetes always sets (name, namespace, uid).
    #[error("the object has no {0}")]
    MissingField(&'static str),
}

impl Error {
    /// The `error` label of `roost_operator_reconcile_failures_total`: one short word per kind of
    /// failure, the kind behind the finalizer for failures inside it.
    pub fn metric_label(&self) -> &'static str {
        use kube::runtime::finalizer::Error as Finalizer;
        match self {
            Error::Kube(_) => "kube",
            Error::Engine(_) => "clickhouse",
            Error::Catalog(_) => "catalog",
            Error::Finalizer(inner) => match inner.as_ref() {
                Finalizer::ApplyFailed(error) | Finalizer::CleanupFailed(error) => {
                    error.metric_label()
                }
                _ => "finalizer",
            },
            Error::Secret(_) => "secret",
            Error::DataSourcesRemain(_) => "data_sources_remain",
            Error::MissingField(_) => "invalid_object",
        }
    }
}

impl From<kube::runtime::finalizer::Error<Error>> for Error {
    fn from(error: kube::runtime::finalizer::Error<Error>) -> Self {
        Error::Finalizer(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_inside_the_finalizer_keep_their_label() {
        use kube::runtime::finalizer::Error as Finalizer;
        let inner = Error::Engine(EngineError::Unavailable("down".into()));
        assert_eq!(inner.metric_label(), "clickhouse");
        let wrapped = Error::from(Finalizer::ApplyFailed(inner));
        assert_eq!(wrapped.metric_label(), "clickhouse");
        let cleanup = Error::from(Finalizer::CleanupFailed(Error::DataSourcesRemain(2)));
        assert_eq!(cleanup.metric_label(), "data_sources_remain");
        let unnamed: Error = Finalizer::<Error>::UnnamedObject.into();
        assert_eq!(unnamed.metric_label(), "finalizer");
    }
}
