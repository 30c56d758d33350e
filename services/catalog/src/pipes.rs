//! Pipes and their nodes: metadata only. Rendering and running them is the query service's job.
//! Every change rewrites a pipe with its whole node list in one store transaction.

use async_trait::async_trait;
use roost_proto::catalog::v1 as proto;
use roost_proto::{PipeCatalogService, ServiceError};
use roost_store::{NodeRecord, PipeRecord, StoreError};
use roost_types::validate_name;

use crate::{Catalog, CatalogError, finishing, now, workspace_id};

/// Node types Tinybird knows; materialized, copy and sink nodes are stored and validated here and
/// run with their own issue.
const NODE_TYPES: &[&str] = &["standard", "endpoint", "materialized", "copy", "sink"];

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

fn check_node(node: &proto::Node) -> Result<(), ServiceError> {
    validate_name("Node", &node.name).map_err(|e| ServiceError::bad_request(e.to_string()))?;
    if node.sql.trim().is_empty() {
        return Err(ServiceError::bad_request(format!(
            "Node '{}' has no SQL",
            node.name
        )));
    }
    let kind = node.node_type.to_ascii_lowercase();
    if !kind.is_empty() && !NODE_TYPES.contains(&kind.as_str()) {
        return Err(ServiceError::bad_request(format!(
            "Invalid node type '{}' for node '{}': use one of {}",
            node.node_type,
            node.name,
            NODE_TYPES.join(", ")
        )));
    }
    Ok(())
}

fn node_record(node: &proto::Node, pipe_id: &str, at: &str) -> NodeRecord {
    let settings = if node.settings_json.trim().is_empty() {
        "{}".to_string()
    } else {
        node.settings_json.clone()
    };
    NodeRecord {
        id: if node.id.is_empty() {
            new_id("t")
        } else {
            node.id.clone()
        },
        pipe_id: pipe_id.to_string(),
        name: node.name.clone(),
        sql: node.sql.clone(),
        description: node.description.clone(),
        node_type: node.node_type.to_ascii_lowercase(),
        settings,
        created_at: at.to_string(),
        updated_at: at.to_string(),
    }
}

pub(crate) fn node_message(node: &NodeRecord) -> proto::Node {
    proto::Node {
        id: node.id.clone(),
        name: node.name.clone(),
        sql: node.sql.clone(),
        description: node.description.clone(),
        node_type: node.node_type.clone(),
        settings_json: node.settings.clone(),
        created_at: node.created_at.clone(),
        updated_at: node.updated_at.clone(),
    }
}

fn pipe_message(pipe: &PipeRecord, nodes: &[NodeRecord]) -> proto::Pipe {
    proto::Pipe {
        id: pipe.id.clone(),
        name: pipe.name.clone(),
        workspace_id: pipe.workspace_id.clone(),
        description: pipe.description.clone(),
        nodes: nodes.iter().map(node_message).collect(),
        endpoint_node_id: pipe.endpoint_node_id.clone(),
        created_at: pipe.created_at.clone(),
        updated_at: pipe.updated_at.clone(),
    }
}

/// The published node follows the node types: the last node typed `endpoint`, if any.
fn endpoint_of(nodes: &[NodeRecord]) -> String {
    nodes
        .iter()
        .rev()
        .find(|n| n.node_type == "endpoint")
        .map(|n| n.id.clone())
        .unwrap_or_default()
}

fn find_node<'a>(
    nodes: &'a mut [NodeRecord],
    name_or_id: &str,
) -> Result<&'a mut NodeRecord, ServiceError> {
    nodes
        .iter_mut()
        .find(|n| n.name == name_or_id || n.id == name_or_id)
        .ok_or_else(|| ServiceError::not_found(format!("Node '{name_or_id}' not found")))
}

fn check_unique_names(nodes: &[NodeRecord]) -> Result<(), ServiceError> {
    for (index, node) in nodes.iter().enumerate() {
        if nodes[..index].iter().any(|other| other.name == node.name) {
            return Err(ServiceError::bad_request(format!(
                "Node name '{}' is used twice in the pipe",
                node.name
            )));
        }
    }
    Ok(())
}

/// Whether `sql` names `name` as a whole identifier (bare, back-quoted or double-quoted). A
/// column of the same name also counts: when in doubt a pipe is reported as a reader, since the
/// cost of a false alarm is a `force=true`, and of a miss a broken endpoint.
pub(crate) fn mentions(sql: &str, name: &str) -> bool {
    sql.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|word| word == name)
}

impl Catalog {
    pub(crate) async fn load_pipe(
        &self,
        header: &Option<roost_proto::common::v1::RequestHeader>,
        name_or_id: &str,
    ) -> Result<(PipeRecord, Vec<NodeRecord>), ServiceError> {
        let workspace = workspace_id(header)?;
        self.store
            .get_pipe(workspace, name_or_id)
            .await
            .map_err(|e| CatalogError::from(e).into())
    }

    pub(crate) async fn save_pipe(
        &self,
        mut pipe: PipeRecord,
        nodes: Vec<NodeRecord>,
    ) -> Result<proto::Pipe, ServiceError> {
        check_unique_names(&nodes)?;
        pipe.updated_at = now();
        self.store
            .replace_pipe(&pipe, &nodes)
            .await
            .map_err(CatalogError::from)?;
        Ok(pipe_message(&pipe, &nodes))
    }

    /// Data sources and pipes share one namespace (SQL reads either by name): refuses a data
    /// source name a pipe already has.
    pub(crate) async fn no_pipe_named(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<(), ServiceError> {
        match self.store.get_pipe(workspace, name).await {
            Ok((pipe, _)) if pipe.name == name => Err(ServiceError::conflict(format!(
                "There is already a Pipe named '{name}'"
            ))),
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(other) => Err(CatalogError::from(other).into()),
        }
    }

    async fn name_is_free(&self, workspace: &str, name: &str) -> Result<(), ServiceError> {
        match self.store.get_data_source(workspace, name).await {
            Ok(_) => Err(ServiceError::conflict(format!(
                "There is already a Data Source named '{name}'"
            ))),
            Err(StoreError::NotFound(_)) => Ok(()),
            Err(other) => Err(CatalogError::from(other).into()),
        }
    }
}

#[async_trait]
impl PipeCatalogService for Catalog {
    async fn create_pipe(
        &self,
        request: proto::CreatePipeRequest,
    ) -> Result<proto::CreatePipeResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, async move {
            validate_name("Pipe", &request.name)
                .map_err(|e| ServiceError::bad_request(e.to_string()))?;
            let workspace = workspace_id(&request.header)?.to_string();
            self.name_is_free(&workspace, &request.name).await?;
            for node in &request.nodes {
                check_node(node)?;
            }
            let at = now();
            let existing = match self.store.get_pipe(&workspace, &request.name).await {
                Ok((pipe, old_nodes)) if request.force => {
                    // The replaced nodes' views stop at once; the new nodes are materialized anew.
                    let database = self.database_of(&request.header).await?;
                    self.drop_views(&database, &old_nodes).await?;
                    Some(pipe)
                }
                Ok(_) => {
                    return Err(ServiceError::conflict(format!(
                        "Pipe '{}' already exists",
                        request.name
                    )));
                }
                Err(StoreError::NotFound(_)) => None,
                Err(other) => return Err(CatalogError::from(other).into()),
            };
            let pipe_id = existing
                .as_ref()
                .map(|p| p.id.clone())
                .unwrap_or_else(|| new_id("t"));
            let nodes: Vec<NodeRecord> = request
                .nodes
                .iter()
                .map(|node| node_record(node, &pipe_id, &at))
                .collect();
            check_unique_names(&nodes)?;
            let pipe = PipeRecord {
                id: pipe_id,
                workspace_id: workspace,
                name: request.name.clone(),
                description: request.description.clone(),
                endpoint_node_id: endpoint_of(&nodes),
                created_at: existing
                    .as_ref()
                    .map(|p| p.created_at.clone())
                    .unwrap_or_else(|| at.clone()),
                updated_at: at,
            };
            match existing {
                Some(_) => self.store.replace_pipe(&pipe, &nodes).await,
                None => self.store.insert_pipe(&pipe, &nodes).await,
            }
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    ServiceError::conflict(format!("Pipe '{}' already exists", request.name))
                }
                other => CatalogError::from(other).into(),
            })?;
            tracing::info!(pipe = %pipe.name, nodes = nodes.len(), "pipe saved");
            Ok(proto::CreatePipeResponse {
                pipe: Some(pipe_message(&pipe, &nodes)),
            })
        })
        .await
    }

    async fn get_pipe(
        &self,
        request: proto::GetPipeRequest,
    ) -> Result<proto::GetPipeResponse, ServiceError> {
        let (pipe, nodes) = self.load_pipe(&request.header, &request.name_or_id).await?;
        Ok(proto::GetPipeResponse {
            pipe: Some(pipe_message(&pipe, &nodes)),
        })
    }

    async fn list_pipes(
        &self,
        request: proto::ListPipesRequest,
    ) -> Result<proto::ListPipesResponse, ServiceError> {
        let listed = self
            .store
            .list_pipes(workspace_id(&request.header)?)
            .await
            .map_err(CatalogError::from)?;
        Ok(proto::ListPipesResponse {
            pipes: listed
                .iter()
                .map(|(pipe, nodes)| pipe_message(pipe, nodes))
                .collect(),
        })
    }

    async fn update_pipe(
        &self,
        request: proto::UpdatePipeRequest,
    ) -> Result<proto::UpdatePipeResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, async move {
            let (mut pipe, nodes) = self.load_pipe(&request.header, &request.name_or_id).await?;
            if let Some(name) = request.new_name.filter(|name| *name != pipe.name) {
                validate_name("Pipe", &name)
                    .map_err(|e| ServiceError::bad_request(e.to_string()))?;
                self.name_is_free(&pipe.workspace_id, &name).await?;
                pipe.name = name;
            }
            if let Some(description) = request.description {
                pipe.description = description;
            }
            Ok(proto::UpdatePipeResponse {
                pipe: Some(self.save_pipe(pipe, nodes).await?),
            })
        })
        .await
    }

    async fn delete_pipe(
        &self,
        request: proto::DeletePipeRequest,
    ) -> Result<proto::DeletePipeResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, async move {
            let (pipe, nodes) = self.load_pipe(&request.header, &request.name_or_id).await?;
            let database = self.database_of(&request.header).await?;
            self.drop_views(&database, &nodes).await?;
            self.store
                .delete_pipe(&pipe.workspace_id, &pipe.id)
                .await
                .map_err(CatalogError::from)?;
            tracing::info!(pipe = %pipe.name, "pipe deleted");
            Ok(proto::DeletePipeResponse {
                pipe: Some(pipe_message(&pipe, &nodes)),
            })
        })
        .await
    }

    async fn create_node(
        &self,
        request: proto::CreateNodeRequest,
    ) -> Result<proto::CreateNodeResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, async move {
            let node = request.node.unwrap_or_default();
            check_node(&node)?;
            let (mut pipe, mut nodes) = self.load_pipe(&request.header, &request.pipe).await?;
            let record = node_record(&node, &pipe.id, &now());
            nodes.push(record.clone());
            if record.node_type == "endpoint" {
                pipe.endpoint_node_id = record.id.clone();
            }
            let pipe = self.save_pipe(pipe, nodes).await?;
            Ok(proto::CreateNodeResponse {
                pipe: Some(pipe),
                node: Some(node_message(&record)),
            })
        })
        .await
    }

    async fn update_node(
        &self,
        request: proto::UpdateNodeRequest,
    ) -> Result<proto::UpdateNodeResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, async move {
            let (mut pipe, mut nodes) = self.load_pipe(&request.header, &request.pipe).await?;
            let node = find_node(&mut nodes, &request.node)?;
            if let Some(name) = request.new_name {
                node.name = name;
            }
            if let Some(sql) = request.sql {
                node.sql = sql;
            }
            if let Some(description) = request.description {
                node.description = description;
            }
            if let Some(kind) = request.node_type {
                node.node_type = kind.to_ascii_lowercase();
            }
            node.updated_at = now();
            check_node(&node_message(node))?;
            let updated = node.clone();
            if updated.node_type == "endpoint" {
                pipe.endpoint_node_id = updated.id.clone();
            } else if pipe.endpoint_node_id == updated.id {
                pipe.endpoint_node_id = String::new();
            }
            let pipe = self.save_pipe(pipe, nodes).await?;
            Ok(proto::UpdateNodeResponse {
                pipe: Some(pipe),
                node: Some(node_message(&updated)),
            })
        })
        .await
    }

    async fn delete_node(
        &self,
        request: proto::DeleteNodeRequest,
    ) -> Result<proto::DeleteNodeResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, async move {
            let (mut pipe, mut nodes) = self.load_pipe(&request.header, &request.pipe).await?;
            let node = find_node(&mut nodes, &request.node)?.clone();
            let database = self.database_of(&request.header).await?;
            self.drop_views(&database, std::slice::from_ref(&node))
                .await?;
            let id = node.id;
            nodes.retain(|n| n.id != id);
            if pipe.endpoint_node_id == id {
                pipe.endpoint_node_id = String::new();
            }
            Ok(proto::DeleteNodeResponse {
                pipe: Some(self.save_pipe(pipe, nodes).await?),
            })
        })
        .await
    }

    async fn set_endpoint(
        &self,
        request: proto::SetEndpointRequest,
    ) -> Result<proto::SetEndpointResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, async move {
            let (mut pipe, mut nodes) = self.load_pipe(&request.header, &request.pipe).await?;
            for node in nodes.iter_mut().filter(|n| n.node_type == "endpoint") {
                node.node_type = "standard".into();
            }
            if request.node.is_empty() {
                pipe.endpoint_node_id = String::new();
            } else {
                let node = find_node(&mut nodes, &request.node)?;
                if matches!(node.node_type.as_str(), "materialized" | "copy" | "sink") {
                    return Err(ServiceError::bad_request(format!(
                        "Node '{}' is a {} node and cannot be published as an endpoint",
                        node.name, node.node_type
                    )));
                }
                node.node_type = "endpoint".into();
                pipe.endpoint_node_id = node.id.clone();
            }
            Ok(proto::SetEndpointResponse {
                pipe: Some(self.save_pipe(pipe, nodes).await?),
            })
        })
        .await
    }

    async fn set_materialization(
        &self,
        request: proto::SetMaterializationRequest,
    ) -> Result<proto::SetMaterializationResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, self.set_materialization_of(request)).await
    }

    async fn drop_materialization(
        &self,
        request: proto::DropMaterializationRequest,
    ) -> Result<proto::DropMaterializationResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, self.drop_materialization_of(request)).await
    }

    async fn set_node_settings(
        &self,
        request: proto::SetNodeSettingsRequest,
    ) -> Result<proto::SetNodeSettingsResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, self.set_node_settings_of(request)).await
    }

    async fn list_variables(
        &self,
        request: proto::ListVariablesRequest,
    ) -> Result<proto::ListVariablesResponse, ServiceError> {
        self.list_variables_of(request).await
    }

    async fn set_variable(
        &self,
        request: proto::SetVariableRequest,
    ) -> Result<proto::SetVariableResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, self.set_variable_of(request)).await
    }

    async fn delete_variable(
        &self,
        request: proto::DeleteVariableRequest,
    ) -> Result<proto::DeleteVariableResponse, ServiceError> {
        let change = self.changing(&request.header);
        finishing(change, self.delete_variable_of(request)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, kind: &str) -> NodeRecord {
        node_record(
            &proto::Node {
                name: name.into(),
                sql: "SELECT 1".into(),
                node_type: kind.into(),
                ..Default::default()
            },
            "p",
            "now",
        )
    }

    #[test]
    fn mentions_whole_identifiers_only() {
        assert!(mentions("SELECT * FROM events", "events"));
        assert!(mentions("SELECT * FROM `events` AS e", "events"));
        assert!(mentions("%\nSELECT * FROM \"events\"\nWHERE 1", "events"));
        assert!(!mentions("SELECT * FROM events_2", "events"));
        assert!(!mentions("SELECT * FROM my_events", "events"));
    }

    #[test]
    fn the_last_endpoint_node_is_published() {
        assert_eq!(endpoint_of(&[node("a", ""), node("b", "")]), "");
        let nodes = [node("a", "endpoint"), node("b", "standard")];
        assert_eq!(endpoint_of(&nodes), nodes[0].id);
    }

    #[test]
    fn nodes_are_validated() {
        let good = proto::Node {
            name: "n".into(),
            sql: "SELECT 1".into(),
            node_type: "Endpoint".into(),
            ..Default::default()
        };
        check_node(&good).unwrap();
        for bad in [
            proto::Node {
                name: "1bad".into(),
                ..good.clone()
            },
            proto::Node {
                sql: "  ".into(),
                ..good.clone()
            },
            proto::Node {
                node_type: "weird".into(),
                ..good.clone()
            },
        ] {
            assert_eq!(
                check_node(&bad).unwrap_err().code.http_status(),
                400,
                "{bad:?}"
            );
        }
        assert!(check_unique_names(&[node("a", ""), node("a", "")]).is_err());
    }
}
