//! Connections: the credentials sink pipes write with. Settings are shown to callers; secrets
//! only to the jobs that ask for them. A connection a sink node uses cannot be deleted.

use roost_proto::ServiceError;
use roost_proto::catalog::v1 as proto;
use roost_store::{ConnectionRecord, NodeRecord, StoreError};
use roost_types::validate_name;
use serde_json::{Map, Value};

use crate::{Catalog, CatalogError, now, workspace_id};

/// Services a connection may be for.
const SERVICES: &[&str] = &["s3", "local"];

/// Settings and secrets are a few keys, not documents.
const MAX_CONNECTION_BYTES: usize = 16 * 1024;

fn object(text: &str, what: &str) -> Result<Map<String, Value>, ServiceError> {
    match text.trim() {
        "" => Ok(Map::new()),
        text => match serde_json::from_str(text) {
            Ok(Value::Object(fields)) => Ok(fields),
            _ => Err(ServiceError::bad_request(format!(
                "The connection's {what} must be a JSON object"
            ))),
        },
    }
}

fn text<'a>(fields: &'a Map<String, Value>, key: &str) -> &'a str {
    fields
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default()
}

/// Checks what each service needs: S3 its keys (and an http(s) endpoint when one is given), a
/// local directory a root relative to the server's export root.
fn check(
    service: &str,
    settings: &mut Map<String, Value>,
    secrets: &Map<String, Value>,
) -> Result<(), ServiceError> {
    match service {
        "s3" => {
            if text(settings, "s3_access_key_id").is_empty()
                || text(secrets, "s3_secret_access_key").is_empty()
            {
                return Err(ServiceError::bad_request(
                    "An s3 connection needs s3_access_key_id and s3_secret_access_key",
                ));
            }
            let endpoint = text(settings, "s3_endpoint");
            let web = ["http://", "https://"]
                .iter()
                .any(|s| endpoint.starts_with(s));
            if !endpoint.is_empty() && !web {
                return Err(ServiceError::bad_request(format!(
                    "Invalid s3_endpoint '{endpoint}': use an http:// or https:// URL"
                )));
            }
            if text(settings, "s3_region").is_empty() {
                settings.insert("s3_region".into(), Value::from("us-east-1"));
            }
            Ok(())
        }
        "local" => {
            let root = roost_types::sink::relative_path(text(settings, "root"))
                .map_err(ServiceError::bad_request)?;
            settings.insert("root".into(), Value::from(root));
            Ok(())
        }
        other => Err(ServiceError::bad_request(format!(
            "Invalid service '{other}': use one of {}",
            SERVICES.join(", ")
        ))),
    }
}

fn connection_message(record: &ConnectionRecord, with_secrets: bool) -> proto::Connection {
    proto::Connection {
        id: record.id.clone(),
        name: record.name.clone(),
        service: record.service.clone(),
        settings_json: record.settings.clone(),
        secrets_json: if with_secrets {
            record.secrets.clone()
        } else {
            String::new()
        },
        created_at: record.created_at.clone(),
        updated_at: record.updated_at.clone(),
    }
}

/// Whether a sink node writes through the connection `record`.
fn uses(node: &NodeRecord, record: &ConnectionRecord) -> bool {
    if node.node_type != "sink" {
        return false;
    }
    let Ok(Value::Object(settings)) = serde_json::from_str::<Value>(&node.settings) else {
        return false;
    };
    text(&settings, "connection_id") == record.id
        || ["connection", "export_connection_name"]
            .iter()
            .any(|key| text(&settings, key) == record.name)
}

impl Catalog {
    pub(crate) async fn create_connection_of(
        &self,
        request: proto::CreateConnectionRequest,
    ) -> Result<proto::CreateConnectionResponse, ServiceError> {
        let workspace = workspace_id(&request.header)?;
        validate_name("Connection", &request.name)
            .map_err(|e| ServiceError::bad_request(e.to_string()))?;
        if request.settings_json.len() + request.secrets_json.len() > MAX_CONNECTION_BYTES {
            return Err(ServiceError::bad_request(
                "The connection's settings are too large",
            ));
        }
        let service = request.service.trim().to_ascii_lowercase();
        let mut settings = object(&request.settings_json, "settings")?;
        let secrets = object(&request.secrets_json, "secrets")?;
        check(&service, &mut settings, &secrets)?;
        let at = now();
        let record = ConnectionRecord {
            id: format!("c_{}", uuid::Uuid::new_v4().simple()),
            workspace_id: workspace.to_string(),
            name: request.name.clone(),
            service,
            settings: Value::Object(settings).to_string(),
            secrets: Value::Object(secrets).to_string(),
            created_at: at.clone(),
            updated_at: at,
        };
        self.store
            .insert_connection(&record)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    ServiceError::conflict(format!("Connection '{}' already exists", request.name))
                }
                other => CatalogError::from(other).into(),
            })?;
        Ok(proto::CreateConnectionResponse {
            connection: Some(connection_message(&record, false)),
        })
    }

    pub(crate) async fn get_connection_of(
        &self,
        request: proto::GetConnectionRequest,
    ) -> Result<proto::GetConnectionResponse, ServiceError> {
        let workspace = workspace_id(&request.header)?;
        let record = self.connection(workspace, &request.name_or_id).await?;
        Ok(proto::GetConnectionResponse {
            connection: Some(connection_message(&record, request.with_secrets)),
        })
    }

    pub(crate) async fn list_connections_of(
        &self,
        request: proto::ListConnectionsRequest,
    ) -> Result<proto::ListConnectionsResponse, ServiceError> {
        let workspace = workspace_id(&request.header)?;
        let service = request.service.trim().to_ascii_lowercase();
        let connections = self
            .store
            .list_connections(workspace)
            .await
            .map_err(CatalogError::from)?;
        Ok(proto::ListConnectionsResponse {
            connections: connections
                .iter()
                .filter(|c| service.is_empty() || c.service == service)
                .map(|c| connection_message(c, false))
                .collect(),
        })
    }

    pub(crate) async fn delete_connection_of(
        &self,
        request: proto::DeleteConnectionRequest,
    ) -> Result<proto::DeleteConnectionResponse, ServiceError> {
        let workspace = workspace_id(&request.header)?;
        let record = self.connection(workspace, &request.name_or_id).await?;
        let users: Vec<String> = self
            .store
            .list_pipes(workspace)
            .await
            .map_err(CatalogError::from)?
            .into_iter()
            .filter(|(_, nodes)| nodes.iter().any(|n| uses(n, &record)))
            .map(|(pipe, _)| pipe.name)
            .collect();
        if !users.is_empty() {
            return Err(ServiceError::conflict(format!(
                "Connection '{}' is used by the sink pipes {}: remove their sinks first",
                record.name,
                users.join(", ")
            )));
        }
        self.store
            .delete_connection(workspace, &record.id)
            .await
            .map_err(CatalogError::from)?;
        Ok(proto::DeleteConnectionResponse {
            connection: Some(connection_message(&record, false)),
        })
    }

    async fn connection(
        &self,
        workspace: &str,
        name_or_id: &str,
    ) -> Result<ConnectionRecord, ServiceError> {
        self.store
            .get_connection(workspace, name_or_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => {
                    ServiceError::not_found(format!("Connection '{name_or_id}' not found"))
                }
                other => CatalogError::from(other).into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(fields) => fields,
            _ => unreachable!(),
        }
    }

    #[test]
    fn s3_connections_need_keys_and_get_a_default_region() {
        let mut settings = fields(json!({"s3_access_key_id": "AK"}));
        let secrets = fields(json!({"s3_secret_access_key": "SK"}));
        check("s3", &mut settings, &secrets).unwrap();
        assert_eq!(settings["s3_region"], "us-east-1");
        assert!(check("s3", &mut Map::new(), &secrets).is_err());
        let mut bad_endpoint = fields(json!({"s3_access_key_id": "AK", "s3_endpoint": "ftp://x"}));
        assert!(check("s3", &mut bad_endpoint, &secrets).is_err());
    }

    #[test]
    fn local_roots_stay_relative_and_unknown_services_are_refused() {
        let mut settings = fields(json!({"root": "./team//exports/"}));
        check("local", &mut settings, &Map::new()).unwrap();
        assert_eq!(settings["root"], "team/exports");
        let mut climbing = fields(json!({"root": "../elsewhere"}));
        assert!(check("local", &mut climbing, &Map::new()).is_err());
        let error = check("gcs", &mut Map::new(), &Map::new()).unwrap_err();
        assert!(error.message.contains("gcs"), "{}", error.message);
    }

    #[test]
    fn sink_nodes_use_a_connection_by_id_or_name() {
        let record = ConnectionRecord {
            id: "c_1".into(),
            name: "warehouse".into(),
            ..ConnectionRecord::default()
        };
        let node = |kind: &str, settings: Value| NodeRecord {
            node_type: kind.into(),
            settings: settings.to_string(),
            ..NodeRecord::default()
        };
        assert!(uses(
            &node("sink", json!({"connection_id": "c_1"})),
            &record
        ));
        assert!(uses(
            &node("sink", json!({"export_connection_name": "warehouse"})),
            &record
        ));
        assert!(!uses(
            &node("copy", json!({"connection_id": "c_1"})),
            &record
        ));
        assert!(!uses(
            &node("sink", json!({"connection": "other"})),
            &record
        ));
    }
}
