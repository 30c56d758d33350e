use roost_engine::{EngineError, ErrorClass};
use roost_proto::ServiceError;
use roost_store::StoreError;
use thiserror::Error;

/// Errors of the catalog service.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The request names no workspace.
    #[error("the request carries no workspace")]
    NoWorkspace,
    /// A data source of that name exists.
    #[error("Data Source '{0}' already exists")]
    Exists(String),
    /// An engine setting is not acceptable.
    #[error("{0}")]
    InvalidSetting(String),
    /// The store failed or found nothing.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine refused or failed the DDL.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<CatalogError> for ServiceError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::NoWorkspace => {
                ServiceError::forbidden("This token is not bound to a workspace")
            }
            CatalogError::Exists(_) => ServiceError::conflict(error.to_string()),
            CatalogError::InvalidSetting(message) => ServiceError::bad_request(message),
            CatalogError::Store(StoreError::NotFound(what)) => {
                ServiceError::not_found(format!("{what} not found"))
            }
            CatalogError::Store(StoreError::InvalidText(_)) => {
                ServiceError::bad_request(error.to_string())
            }
            CatalogError::Store(StoreError::Conflict(what)) => {
                ServiceError::conflict(format!("{what} already exists"))
            }
            CatalogError::Store(other) => {
                tracing::error!(error = %other, "catalog store failure");
                ServiceError::internal("internal error")
            }
            CatalogError::Engine(engine) => match engine.class() {
                ErrorClass::BadRequest => ServiceError::bad_request(engine.user_message()),
                ErrorClass::NotFound => ServiceError::not_found(engine.user_message()),
                ErrorClass::Conflict => ServiceError::conflict(engine.user_message()),
                ErrorClass::Transient | ErrorClass::Internal => {
                    tracing::error!(error = %engine, "engine failure in catalog");
                    ServiceError::internal("internal error")
                }
            },
        }
    }
}
