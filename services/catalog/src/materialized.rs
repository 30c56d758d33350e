//! Materialized nodes and the node settings of copy and sink pipes; environment variables.
//!
//! A materialized node is a ClickHouse materialized view named after the node, in the workspace's
//! database, writing into the target data source's table. The node's settings remember the
//! target and the view, so dropping the pipe, the node or the target drops the view with it.

use roost_proto::ServiceError;
use roost_proto::catalog::v1 as proto;
use roost_store::{NodeRecord, StoreError, VariableRecord};
use roost_types::{quote_ident, validate_name};
use serde_json::{Map, Value, json};

use crate::{Catalog, CatalogError, now, workspace_id};

/// A node's settings as a JSON object.
pub(crate) fn settings_of(node: &NodeRecord) -> Map<String, Value> {
    match serde_json::from_str(&node.settings) {
        Ok(Value::Object(settings)) => settings,
        _ => Map::new(),
    }
}

/// The view of a materialized node, if it has one.
pub(crate) fn view_of(node: &NodeRecord) -> Option<String> {
    settings_of(node)
        .get("view")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The data source id a materialized node writes into, if any.
pub(crate) fn target_of(node: &NodeRecord) -> Option<String> {
    (node.node_type == "materialized")
        .then(|| settings_of(node))
        .and_then(|s| {
            s.get("datasource_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
}

/// Makes a materialized node standard again, forgetting its target and view (the caller drops
/// the view).
fn unmaterialize(node: &mut NodeRecord) {
    node.node_type = "standard".into();
    let mut settings = settings_of(node);
    for key in ["datasource", "datasource_id", "view"] {
        settings.remove(key);
    }
    node.settings = Value::Object(settings).to_string();
    node.updated_at = now();
}

/// Merges `changes` into a node's settings; a null removes a key.
pub(crate) fn merge_settings(node: &mut NodeRecord, changes: &Map<String, Value>) {
    let mut settings = settings_of(node);
    for (key, value) in changes {
        if value.is_null() {
            settings.remove(key);
        } else {
            settings.insert(key.clone(), value.clone());
        }
    }
    node.settings = Value::Object(settings).to_string();
}

impl Catalog {
    /// Drops the views of materialized nodes (by their stored view names).
    pub(crate) async fn drop_views(
        &self,
        database: &str,
        nodes: &[NodeRecord],
    ) -> Result<(), ServiceError> {
        let sync = self
            .engine
            .drop_sync_clause()
            .await
            .map_err(CatalogError::from)?;
        for view in nodes.iter().filter_map(view_of) {
            let view = format!("{}.{}", quote_ident(database), quote_ident(&view));
            self.engine
                .execute(&self.placement().drop_view(&view, sync))
                .await
                .map_err(CatalogError::from)?;
        }
        Ok(())
    }

    pub(crate) async fn set_materialization_of(
        &self,
        request: proto::SetMaterializationRequest,
    ) -> Result<proto::SetMaterializationResponse, ServiceError> {
        let database = self.database_of(&request.header).await?;
        let (pipe, mut nodes) = self.load_pipe(&request.header, &request.pipe).await?;
        let target = self
            .get_record(&request.header, &request.datasource)
            .await?;
        let index = nodes
            .iter()
            .position(|n| n.name == request.node || n.id == request.node)
            .ok_or_else(|| ServiceError::not_found(format!("Node '{}' not found", request.node)))?;
        if request.compiled_sql.trim().is_empty() {
            return Err(ServiceError::bad_request("The node compiled to no SQL"));
        }
        let view = format!("mv_{}", nodes[index].id);
        let view_name = format!("{}.{}", quote_ident(&database), quote_ident(&view));
        let target_table = format!(
            "{}.{}",
            quote_ident(&database),
            quote_ident(&target.table_name)
        );
        // A node materialized before (a forced push) gets its new query: the old view goes first.
        self.drop_views(&database, std::slice::from_ref(&nodes[index]))
            .await?;
        self.engine
            // On a cluster every server gets the view, so inserts through any of them feed it.
            .execute(&format!(
                "CREATE MATERIALIZED VIEW {view_name}{} TO {target_table} AS {}",
                self.placement().on_cluster(),
                request.compiled_sql
            ))
            .await
            .map_err(|e| {
                ServiceError::bad_request(format!(
                    "Cannot materialize node '{}' into Data Source '{}': {}",
                    nodes[index].name,
                    target.name,
                    e.user_message()
                ))
            })?;
        let node = &mut nodes[index];
        node.node_type = "materialized".into();
        let changes = json!({
            "datasource": target.name,
            "datasource_id": target.id,
            "view": view,
        });
        if let Value::Object(changes) = changes {
            merge_settings(node, &changes);
        }
        node.updated_at = now();
        let pipe = self.save_pipe(pipe, nodes).await?;
        tracing::info!(pipe = %pipe.name, target = %target.name, "node materialized");
        let data_source = self.message(&target, &database, None).await;
        Ok(proto::SetMaterializationResponse {
            pipe: Some(pipe),
            data_source: Some(data_source),
        })
    }

    pub(crate) async fn drop_materialization_of(
        &self,
        request: proto::DropMaterializationRequest,
    ) -> Result<proto::DropMaterializationResponse, ServiceError> {
        let database = self.database_of(&request.header).await?;
        let (pipe, mut nodes) = self.load_pipe(&request.header, &request.pipe).await?;
        let index = nodes
            .iter()
            .position(|n| n.name == request.node || n.id == request.node)
            .ok_or_else(|| ServiceError::not_found(format!("Node '{}' not found", request.node)))?;
        self.drop_views(&database, std::slice::from_ref(&nodes[index]))
            .await?;
        unmaterialize(&mut nodes[index]);
        Ok(proto::DropMaterializationResponse {
            pipe: Some(self.save_pipe(pipe, nodes).await?),
        })
    }

    pub(crate) async fn set_node_settings_of(
        &self,
        request: proto::SetNodeSettingsRequest,
    ) -> Result<proto::SetNodeSettingsResponse, ServiceError> {
        let (pipe, mut nodes) = self.load_pipe(&request.header, &request.pipe).await?;
        let changes = match serde_json::from_str::<Value>(&request.settings_json) {
            Ok(Value::Object(changes)) => changes,
            _ if request.settings_json.trim().is_empty() => Map::new(),
            _ => {
                return Err(ServiceError::bad_request(
                    "Node settings must be a JSON object",
                ));
            }
        };
        let node = nodes
            .iter_mut()
            .find(|n| n.name == request.node || n.id == request.node)
            .ok_or_else(|| ServiceError::not_found(format!("Node '{}' not found", request.node)))?;
        if !request.node_type.is_empty() {
            node.node_type = request.node_type.to_ascii_lowercase();
        }
        merge_settings(node, &changes);
        node.updated_at = now();
        let updated = crate::pipes::node_message(node);
        Ok(proto::SetNodeSettingsResponse {
            pipe: Some(self.save_pipe(pipe, nodes).await?),
            node: Some(updated),
        })
    }

    /// Views that write into or read from the data source `id`/`name`: dropped when it is.
    pub(crate) async fn unlink_views_of(
        &self,
        workspace: &str,
        database: &str,
        id: &str,
        name: &str,
    ) -> Result<(), ServiceError> {
        let pipes = self
            .store
            .list_pipes(workspace)
            .await
            .map_err(CatalogError::from)?;
        for (pipe, mut nodes) in pipes {
            let linked: Vec<usize> = nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    n.node_type == "materialized"
                        && (target_of(n).as_deref() == Some(id)
                            || crate::pipes::mentions(&n.sql, name))
                })
                .map(|(i, _)| i)
                .collect();
            if linked.is_empty() {
                continue;
            }
            for &index in &linked {
                self.drop_views(database, std::slice::from_ref(&nodes[index]))
                    .await?;
                unmaterialize(&mut nodes[index]);
            }
            self.save_pipe(pipe, nodes).await?;
        }
        Ok(())
    }

    /// Pipes that depend on the data source `id` named `name`: those whose nodes read it and
    /// those with a materialized node writing into it, from one read of the workspace's pipes.
    pub(crate) async fn dependents_of(
        &self,
        workspace: &str,
        id: &str,
        name: &str,
    ) -> Result<Vec<String>, ServiceError> {
        let pipes = self
            .store
            .list_pipes(workspace)
            .await
            .map_err(CatalogError::from)?;
        Ok(pipes
            .into_iter()
            .filter(|(_, nodes)| {
                nodes.iter().any(|n| {
                    crate::pipes::mentions(&n.sql, name) || target_of(n).as_deref() == Some(id)
                })
            })
            .map(|(pipe, _)| pipe.name)
            .collect())
    }

    pub(crate) async fn list_variables_of(
        &self,
        request: proto::ListVariablesRequest,
    ) -> Result<proto::ListVariablesResponse, ServiceError> {
        let workspace = workspace_id(&request.header)?;
        let variables = self
            .store
            .list_variables(workspace)
            .await
            .map_err(CatalogError::from)?;
        Ok(proto::ListVariablesResponse {
            variables: variables
                .iter()
                .map(|v| variable_message(v, request.with_values))
                .collect(),
        })
    }

    pub(crate) async fn set_variable_of(
        &self,
        request: proto::SetVariableRequest,
    ) -> Result<proto::SetVariableResponse, ServiceError> {
        let workspace = workspace_id(&request.header)?;
        validate_name("Variable", &request.name)
            .map_err(|e| ServiceError::bad_request(e.to_string()))?;
        let kind = match request.r#type.as_str() {
            "" | "secret" => "secret",
            other => {
                return Err(ServiceError::bad_request(format!(
                    "Invalid variable type '{other}': the only type is 'secret'"
                )));
            }
        };
        if request.value.len() > MAX_VARIABLE_BYTES {
            return Err(ServiceError::bad_request(format!(
                "The value of variable '{}' is longer than {MAX_VARIABLE_BYTES} bytes",
                request.name
            )));
        }
        let at = now();
        let mut record = VariableRecord {
            workspace_id: workspace.to_string(),
            name: request.name.clone(),
            kind: kind.to_string(),
            value: request.value,
            edited_by: request.edited_by,
            created_at: at.clone(),
            updated_at: at,
        };
        let stored = if request.create {
            self.store.insert_variable(&record).await
        } else {
            self.store.update_variable(&record).await
        };
        stored.map_err(|e| match e {
            StoreError::Conflict(_) => {
                ServiceError::conflict(format!("Variable '{}' already exists", request.name))
            }
            StoreError::NotFound(_) => {
                ServiceError::not_found(format!("Variable '{}' not found", request.name))
            }
            other => CatalogError::from(other).into(),
        })?;
        record = self
            .store
            .get_variable(workspace, &request.name)
            .await
            .map_err(CatalogError::from)?;
        Ok(proto::SetVariableResponse {
            variable: Some(variable_message(&record, false)),
        })
    }

    pub(crate) async fn delete_variable_of(
        &self,
        request: proto::DeleteVariableRequest,
    ) -> Result<proto::DeleteVariableResponse, ServiceError> {
        let workspace = workspace_id(&request.header)?;
        let record = self
            .store
            .get_variable(workspace, &request.name)
            .await
            .map_err(|_| {
                ServiceError::not_found(format!("Variable '{}' not found", request.name))
            })?;
        self.store
            .delete_variable(workspace, &request.name)
            .await
            .map_err(CatalogError::from)?;
        Ok(proto::DeleteVariableResponse {
            variable: Some(variable_message(&record, false)),
        })
    }
}

/// Variables hold credentials, not documents.
const MAX_VARIABLE_BYTES: usize = 64 * 1024;

fn variable_message(record: &VariableRecord, with_value: bool) -> proto::Variable {
    proto::Variable {
        name: record.name.clone(),
        r#type: record.kind.clone(),
        value: if with_value {
            record.value.clone()
        } else {
            String::new()
        },
        created_at: record.created_at.clone(),
        updated_at: record.updated_at.clone(),
        edited_by: record.edited_by.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_merge_and_nulls_remove() {
        let mut node = NodeRecord {
            settings: r#"{"a": 1, "b": 2}"#.into(),
            ..NodeRecord::default()
        };
        let Value::Object(changes) = json!({"b": null, "c": "x"}) else {
            unreachable!()
        };
        merge_settings(&mut node, &changes);
        assert_eq!(
            serde_json::from_str::<Value>(&node.settings).unwrap(),
            json!({"a": 1, "c": "x"})
        );
    }

    #[test]
    fn only_materialized_nodes_have_a_target() {
        let mut node = NodeRecord {
            node_type: "materialized".into(),
            settings: r#"{"datasource_id": "t_1", "view": "mv_n"}"#.into(),
            ..NodeRecord::default()
        };
        assert_eq!(target_of(&node).as_deref(), Some("t_1"));
        assert_eq!(view_of(&node).as_deref(), Some("mv_n"));
        node.node_type = "copy".into();
        assert_eq!(target_of(&node), None);
    }
}
