//! Published pipe endpoints: render each node's template with the request's typed parameters,
//! resolve what every node reads (earlier nodes of the pipe, data sources, other pipes' endpoints),
//! and run the result as one statement.
//!
//! A node the endpoint reads becomes a common table expression named after it, so the user's SQL
//! runs unchanged apart from data source names, which point at the workspace's tables:
//! `WITH `filtered` AS (<node 1>), `other_pipe` AS (<its endpoint>) <node 2>`. Every node's text
//! goes through the same validation as `/v0/sql`, after rendering, so a parameter can never add a
//! table, a table function or a setting.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream;
use roost_bus::CatalogChanges;
use roost_engine::Engine;
use roost_proto::catalog::v1::{
    ListDataSourcesRequest, ListPipesRequest, ListVariablesRequest, Node, Pipe,
};
use roost_proto::common::v1::RequestHeader;
use roost_proto::query::v1 as proto;
use roost_proto::{CatalogClient, EndpointService, PipeCatalogClient, ServiceError, SqlAnswer};
use roost_types::quote_ident;

use crate::cache::CatalogCache;
use crate::format::output_format;
use crate::sql::{TableResolver, validate_and_rewrite};
use crate::template::{Params, Template, TemplateError};
use crate::{WorkspaceTables, query_failure};

/// Endpoint formats: the extension of `/v0/pipes/<name>.<ext>` and the ClickHouse format it means.
fn endpoint_format(extension: &str) -> Option<&'static str> {
    match extension.to_ascii_lowercase().as_str() {
        "" | "json" => Some("JSON"),
        "csv" => Some("CSVWithNames"),
        "ndjson" => Some("JSONEachRow"),
        "parquet" => Some("Parquet"),
        _ => None,
    }
}

/// The endpoint service.
pub struct Endpoints {
    engine: Arc<dyn Engine>,
    catalog: CatalogClient,
    pipes: PipeCatalogClient,
    /// Parsed templates by node id and version, so a node is parsed once per change.
    templates: Mutex<HashMap<(String, String), Arc<Template>>>,
    /// What the catalog lists, per workspace: a call needs no catalog round trip while the
    /// catalog's changes (when this process is told of them) say the listing is current.
    listings: CatalogCache<Listing>,
}

impl Endpoints {
    /// An endpoint service running on `engine` (configured with the query limits).
    pub fn new(engine: Arc<dyn Engine>, catalog: CatalogClient, pipes: PipeCatalogClient) -> Self {
        Endpoints {
            engine,
            catalog,
            pipes,
            templates: Mutex::new(HashMap::new()),
            listings: CatalogCache::default(),
        }
    }

    /// Caches catalog listings while `changes` says they are current.
    pub fn with_changes(mut self, changes: Arc<CatalogChanges>) -> Self {
        self.listings = CatalogCache::following(changes);
        self
    }

    fn template(&self, node: &Node) -> Result<Arc<Template>, ServiceError> {
        let key = (node.id.clone(), node.updated_at.clone());
        if let Some(template) = self
            .templates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(template.clone());
        }
        let template =
            Arc::new(Template::parse(&node.sql).map_err(|e| template_error(&node.name, e))?);
        self.templates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, template.clone());
        Ok(template)
    }

    /// What the catalog lists for the caller's workspace.
    async fn listing(&self, header: &Option<RequestHeader>) -> Result<Arc<Listing>, ServiceError> {
        let workspace_id = header.as_ref().map(|h| h.workspace_id.as_str());
        self.listings
            .get(workspace_id.unwrap_or_default(), || {
                self.fetch_listing(header)
            })
            .await
    }

    async fn fetch_listing(&self, header: &Option<RequestHeader>) -> Result<Listing, ServiceError> {
        let data_sources = self.catalog.list_data_sources(ListDataSourcesRequest {
            header: header.clone(),
            with_statistics: false,
        });
        let pipes = self.pipes.list_pipes(ListPipesRequest {
            header: header.clone(),
        });
        let (data_sources, pipes) = futures::try_join!(data_sources, pipes)?;
        let mut tables = HashMap::new();
        for data_source in data_sources.data_sources {
            tables.insert(
                format!("{}_quarantine", data_source.name),
                data_source.quarantine_table,
            );
            tables.insert(data_source.name, data_source.table);
        }
        let pipes: HashMap<String, Pipe> = pipes
            .pipes
            .into_iter()
            .map(|pipe| (pipe.name.clone(), pipe))
            .collect();
        // Variables are read only when some template uses them: most endpoints never do.
        let uses_variables = pipes.values().any(|pipe| {
            pipe.nodes
                .iter()
                .any(|n| n.sql.contains("tb_secret") || n.sql.contains("tb_var"))
        });
        let variables = if uses_variables {
            self.pipes
                .list_variables(ListVariablesRequest {
                    header: header.clone(),
                    with_values: true,
                })
                .await?
                .variables
                .into_iter()
                .map(|v| (v.name, v.value))
                .collect()
        } else {
            HashMap::new()
        };
        Ok(Listing {
            tables: WorkspaceTables(tables),
            pipes,
            variables,
        })
    }

    /// The caller's workspace as one request sees it: the listing with the caller's row filters.
    async fn workspace(
        &self,
        header: &Option<RequestHeader>,
        filters: &[proto::RowFilter],
    ) -> Result<Workspace, ServiceError> {
        let listing = self.listing(header).await?;
        let mut tables = listing.tables.clone();
        crate::apply_filters(&mut tables, filters)?;
        Ok(Workspace { tables, listing })
    }

    /// The full statement for `request` (its pipe, node or endpoint, and `q`), and the format.
    async fn compile(
        &self,
        request: &proto::ExecuteEndpointRequest,
    ) -> Result<(String, &'static str, WorkspaceTables), ServiceError> {
        let workspace = self.workspace(&request.header, &request.filters).await?;
        let pipe =
            workspace.listing.pipes.get(&request.pipe).ok_or_else(|| {
                ServiceError::not_found(format!("Pipe '{}' not found", request.pipe))
            })?;
        let index = target_node(pipe, &request.node)?;
        let params = request_params(&request.params);
        let compiler = Compiler {
            endpoints: self,
            workspace: &workspace,
            params: &params,
            visiting: RefCell::new(vec![pipe.name.clone()]),
            compiled: RefCell::new(HashMap::new()),
            depth: Cell::new(0),
        };
        let sql = compiler.statement(pipe, index)?;
        let (sql, format_name) = if request.q.trim().is_empty() {
            (sql, endpoint_format(&request.format))
        } else {
            let result = SingleTable(quote_ident("_"));
            let validated = validate_and_rewrite(&request.q, &result)
                .map_err(|e| ServiceError::bad_request(format!("[Error] q: {e}")))?;
            let format = match validated.format.as_deref() {
                Some(name) => Some(output_format(name).map(|f| f.clickhouse).ok_or_else(|| {
                    ServiceError::bad_request(format!("Format '{name}' is not supported"))
                })?),
                None => endpoint_format(&request.format),
            };
            (with_ctes(&[("_".to_string(), sql)], &validated.sql), format)
        };
        let format = format_name.ok_or_else(|| {
            ServiceError::bad_request(format!("Format '{}' is not supported", request.format))
        })?;
        Ok((sql, format, workspace.tables))
    }
}

/// What the catalog lists for a workspace, as endpoints need it.
struct Listing {
    tables: WorkspaceTables,
    pipes: HashMap<String, Pipe>,
    /// Values for `tb_secret()` and `tb_var()`.
    variables: HashMap<String, String>,
}

/// A workspace as one request sees it: its tables behind the caller's row filters.
struct Workspace {
    tables: WorkspaceTables,
    listing: Arc<Listing>,
}

/// The node a request runs: the one it names, else the published one.
fn target_node(pipe: &Pipe, node: &str) -> Result<usize, ServiceError> {
    if !node.is_empty() {
        return pipe
            .nodes
            .iter()
            .position(|n| n.name == node || n.id == node)
            .ok_or_else(|| {
                ServiceError::not_found(format!("Node '{node}' not found in pipe '{}'", pipe.name))
            });
    }
    pipe.nodes
        .iter()
        .position(|n| !pipe.endpoint_node_id.is_empty() && n.id == pipe.endpoint_node_id)
        .ok_or_else(|| {
            ServiceError::not_found(format!(
                "The pipe '{}' does not have an endpoint yet",
                pipe.name
            ))
        })
}

/// Request parameters as templates take them: repeated names keep every value.
fn request_params(params: &[proto::EndpointParam]) -> Params {
    let mut map: Params = HashMap::new();
    for param in params {
        map.entry(param.name.clone())
            .or_default()
            .push(param.value.clone());
    }
    map
}

fn template_error(node: &str, error: TemplateError) -> ServiceError {
    let status = error.status();
    let message = format!("[Error] {error} (in node '{node}')");
    match status {
        400 => ServiceError::bad_request(message),
        403 => ServiceError::forbidden(message),
        404 => ServiceError::not_found(message),
        409 => ServiceError::conflict(message),
        429 => ServiceError::new(roost_proto::ErrorCode::TooManyRequests, message),
        500.. => ServiceError::internal(message),
        _ => ServiceError::bad_request(message),
    }
}

/// `WITH a AS (...), b AS (...) <body>`, merged into the body's own WITH when it has one.
fn with_ctes(ctes: &[(String, String)], body: &str) -> String {
    if ctes.is_empty() {
        return body.to_string();
    }
    let list: Vec<String> = ctes
        .iter()
        .map(|(name, sql)| format!("{} AS ({sql})", quote_ident(name)))
        .collect();
    let list = list.join(", ");
    let starts_with_with = body
        .get(..4)
        .is_some_and(|w| w.eq_ignore_ascii_case("with"))
        && body[4..].starts_with(|c: char| c.is_whitespace() || c == '`' || c == '"' || c == '(');
    if starts_with_with {
        format!("WITH {list}, {}", &body[4..].trim_start())
    } else if body.starts_with('(') {
        format!("WITH {list} SELECT * FROM ({body})")
    } else {
        format!("WITH {list} {body}")
    }
}

struct SingleTable(String);

impl TableResolver for SingleTable {
    fn resolve(&self, name: &str) -> Option<String> {
        (name == "_").then(|| self.0.clone())
    }
}

/// Compiles nodes for one request: the same parameters for every node, pipes visited once.
struct Compiler<'a> {
    endpoints: &'a Endpoints,
    workspace: &'a Workspace,
    params: &'a Params,
    /// Pipes being compiled, to refuse a pipe that reads itself.
    visiting: RefCell<Vec<String>>,
    /// Nodes already compiled, by pipe and index: a node read from several places is compiled
    /// once, else nodes each reading the one before twice would take exponential time.
    compiled: RefCell<HashMap<(String, usize), CompiledNode>>,
    /// How many nodes are being compiled inside each other, against [`MAX_READ_DEPTH`].
    depth: Cell<usize>,
}

/// A node's CTEs, in dependency order, and its own SQL.
type CompiledNode = (Vec<(String, String)>, String);

/// How deep nodes and pipes may read each other: ClickHouse refuses subqueries nested deeper than
/// 100 anyway, and compiling recurses once per level.
const MAX_READ_DEPTH: usize = 100;

impl Compiler<'_> {
    /// Node `index` of `pipe` as one statement with its dependencies as CTEs.
    fn statement(&self, pipe: &Pipe, index: usize) -> Result<String, ServiceError> {
        let (ctes, body) = self.node(pipe, index)?;
        Ok(with_ctes(&ctes, &body))
    }

    /// Node `index` of `pipe`: the CTEs it needs, in dependency order, and its own SQL.
    fn node(&self, pipe: &Pipe, index: usize) -> Result<CompiledNode, ServiceError> {
        let key = (pipe.name.clone(), index);
        if let Some(compiled) = self.compiled.borrow().get(&key) {
            return Ok(compiled.clone());
        }
        if self.depth.get() >= MAX_READ_DEPTH {
            return Err(ServiceError::bad_request(format!(
                "[Error] Nodes and pipes read each other more than {MAX_READ_DEPTH} levels deep (in pipe '{}')",
                pipe.name
            )));
        }
        self.depth.set(self.depth.get() + 1);
        let compiled = self.compile_node(pipe, index);
        self.depth.set(self.depth.get() - 1);
        let compiled = compiled?;
        self.compiled.borrow_mut().insert(key, compiled.clone());
        Ok(compiled)
    }

    fn compile_node(&self, pipe: &Pipe, index: usize) -> Result<CompiledNode, ServiceError> {
        let node = &pipe.nodes[index];
        let rendered = self
            .endpoints
            .template(node)?
            .render(self.params, &self.workspace.listing.variables)
            .map_err(|e| template_error(&node.name, e))?;
        let resolver = NodeResolver {
            compiler: self,
            pipe,
            index,
            ctes: RefCell::new(Vec::new()),
            error: RefCell::new(None),
        };
        let validated = validate_and_rewrite(&rendered, &resolver);
        if let Some(error) = resolver.error.into_inner() {
            return Err(error);
        }
        let validated = validated.map_err(|e| {
            ServiceError::bad_request(format!("[Error] {e} (in node '{}')", node.name))
        })?;
        Ok((resolver.ctes.into_inner(), validated.sql))
    }
}

/// Resolves the names one node reads.
struct NodeResolver<'c, 'a> {
    compiler: &'c Compiler<'a>,
    pipe: &'c Pipe,
    index: usize,
    ctes: RefCell<Vec<(String, String)>>,
    error: RefCell<Option<ServiceError>>,
}

impl NodeResolver<'_, '_> {
    fn add(&self, ctes: Vec<(String, String)>) {
        let mut own = self.ctes.borrow_mut();
        for (name, sql) in ctes {
            if !own.iter().any(|(existing, _)| *existing == name) {
                own.push((name, sql));
            }
        }
    }

    fn fail(&self, error: ServiceError) -> Option<String> {
        self.error.borrow_mut().get_or_insert(error);
        None
    }
}

impl TableResolver for NodeResolver<'_, '_> {
    fn resolve(&self, name: &str) -> Option<String> {
        if let Some(earlier) = self.pipe.nodes[..self.index]
            .iter()
            .position(|n| n.name == name)
        {
            return match self.compiler.node(self.pipe, earlier) {
                Ok((mut ctes, body)) => {
                    ctes.push((name.to_string(), body));
                    self.add(ctes);
                    Some(quote_ident(name))
                }
                Err(error) => self.fail(error),
            };
        }
        if let Some(table) = self.compiler.workspace.tables.0.get(name) {
            return Some(table.clone());
        }
        let other = self.compiler.workspace.listing.pipes.get(name)?;
        if self
            .compiler
            .visiting
            .borrow()
            .iter()
            .any(|visiting| visiting == name)
        {
            return self.fail(ServiceError::bad_request(format!(
                "[Error] Pipe '{name}' reads itself through its nodes"
            )));
        }
        let Ok(index) = target_node(other, "") else {
            return self.fail(ServiceError::bad_request(format!(
                "[Error] Pipe '{name}' is read by another pipe but has no endpoint"
            )));
        };
        self.compiler.visiting.borrow_mut().push(name.to_string());
        let compiled = self.compiler.statement(other, index);
        self.compiler.visiting.borrow_mut().pop();
        match compiled {
            Ok(sql) => {
                self.add(vec![(name.to_string(), sql)]);
                Some(quote_ident(name))
            }
            Err(error) => self.fail(error),
        }
    }
}

/// `SELECT * FROM <table> WHERE `: what a resolved condition is cut out of.
fn condition_prefix(table: &str) -> String {
    format!("SELECT * FROM {table} WHERE ")
}

#[async_trait]
impl EndpointService for Endpoints {
    async fn execute_endpoint(
        &self,
        request: proto::ExecuteEndpointRequest,
    ) -> Result<SqlAnswer, ServiceError> {
        let (sql, format, tables) = self.compile(&request).await?;
        let content_type = output_format(format)
            .map(|f| f.content_type)
            .unwrap_or("application/octet-stream");
        let answer = self
            .engine
            .query(&sql, format)
            .await
            .map_err(|e| query_failure(e, &tables))?;
        Ok(SqlAnswer {
            content_type: content_type.to_string(),
            body: Box::pin(stream::once(async move { Ok(answer.data) })),
        })
    }

    async fn explain_endpoint(
        &self,
        request: proto::ExecuteEndpointRequest,
    ) -> Result<proto::ExplainEndpointResponse, ServiceError> {
        let (sql, _, tables) = self.compile(&request).await?;
        let plan = self
            .engine
            .query(&format!("EXPLAIN {sql}"), "TSVRaw")
            .await
            .map_err(|e| query_failure(e, &tables))?;
        Ok(proto::ExplainEndpointResponse {
            sql: tables.unresolve(&sql),
            plan: tables.unresolve(&String::from_utf8_lossy(&plan.data)),
        })
    }

    async fn describe_endpoint(
        &self,
        request: proto::DescribeEndpointRequest,
    ) -> Result<proto::DescribeEndpointResponse, ServiceError> {
        let listing = self.listing(&request.header).await?;
        let pipe = listing
            .pipes
            .get(&request.pipe)
            .ok_or_else(|| ServiceError::not_found(format!("Pipe '{}' not found", request.pipe)))?;
        let mut params: Vec<proto::ParamSpec> = Vec::new();
        for node in &pipe.nodes {
            for spec in self.template(node)?.parameters() {
                if params.iter().any(|p| p.name == spec.name) {
                    continue;
                }
                params.push(proto::ParamSpec {
                    name: spec.name,
                    r#type: spec.r#type,
                    // As JSON, so a default keeps its type (`10`, `"10"`, `false`) to the API.
                    default_value: spec.default.map(|d| d.to_string()).unwrap_or_default(),
                    description: spec.description.unwrap_or_default(),
                    required: spec.required,
                });
            }
        }
        Ok(proto::DescribeEndpointResponse { params })
    }

    async fn compile_node(
        &self,
        request: proto::ExecuteEndpointRequest,
    ) -> Result<proto::CompileNodeResponse, ServiceError> {
        let request = proto::ExecuteEndpointRequest {
            q: String::new(),
            ..request
        };
        let (sql, _, tables) = self.compile(&request).await?;
        let described = self
            .engine
            .query(&format!("DESCRIBE ({sql})"), "TSVRaw")
            .await
            .map_err(|e| query_failure(e, &tables))?;
        let columns = String::from_utf8_lossy(&described.data)
            .lines()
            .filter_map(|line| {
                let mut fields = line.split('\t');
                Some(proto::OutputColumn {
                    name: fields.next()?.to_string(),
                    r#type: fields.next()?.to_string(),
                })
            })
            .collect();
        Ok(proto::CompileNodeResponse { sql, columns })
    }

    async fn resolve_condition(
        &self,
        request: proto::ResolveConditionRequest,
    ) -> Result<proto::ResolveConditionResponse, ServiceError> {
        if request.condition.trim().is_empty() {
            return Err(ServiceError::bad_request("The condition is empty"));
        }
        let workspace = self.workspace(&request.header, &[]).await?;
        let data_source = self
            .catalog
            .get_data_source(roost_proto::catalog::v1::GetDataSourceRequest {
                header: request.header.clone(),
                name_or_id: request.datasource.clone(),
                with_statistics: false,
            })
            .await?
            .data_source
            .ok_or_else(|| {
                ServiceError::not_found(format!("Data Source '{}' not found", request.datasource))
            })?;
        // Validated as the condition of a SELECT over the data source, so it reads what any
        // query may read and nothing else; the resolved condition is that SELECT's WHERE.
        let sql = format!(
            "SELECT * FROM {} WHERE {}",
            quote_ident(&data_source.name),
            request.condition
        );
        let validated = validate_and_rewrite(&sql, &workspace.tables)
            .map_err(|e| ServiceError::bad_request(format!("[Error] Invalid condition: {e}")))?;
        if validated.format.is_some() {
            return Err(ServiceError::bad_request(
                "[Error] Invalid condition: FORMAT is not allowed",
            ));
        }
        let condition = validated
            .sql
            .strip_prefix(&condition_prefix(&data_source.table))
            .filter(|rest| !rest.trim().is_empty())
            .ok_or_else(|| {
                ServiceError::bad_request(
                    "[Error] Invalid condition: it must be a WHERE expression",
                )
            })?;
        Ok(proto::ResolveConditionResponse {
            table: data_source.table,
            condition: format!("({condition})"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctes_merge_into_the_bodys_own_with() {
        let ctes = [("a".to_string(), "SELECT 1 AS x".to_string())];
        assert_eq!(
            with_ctes(&ctes, "SELECT x FROM `a`"),
            "WITH `a` AS (SELECT 1 AS x) SELECT x FROM `a`"
        );
        assert_eq!(
            with_ctes(&ctes, "WITH 2 AS y SELECT x, y FROM `a`"),
            "WITH `a` AS (SELECT 1 AS x), 2 AS y SELECT x, y FROM `a`"
        );
        assert_eq!(
            with_ctes(&ctes, "(SELECT 1) UNION ALL (SELECT 2)"),
            "WITH `a` AS (SELECT 1 AS x) SELECT * FROM ((SELECT 1) UNION ALL (SELECT 2))"
        );
        assert_eq!(with_ctes(&[], "SELECT 1"), "SELECT 1");
        assert_eq!(
            with_ctes(&ctes, "WITHIN"),
            "WITH `a` AS (SELECT 1 AS x) WITHIN"
        );
    }

    #[test]
    fn formats_follow_the_extension() {
        assert_eq!(endpoint_format("json"), Some("JSON"));
        assert_eq!(endpoint_format("CSV"), Some("CSVWithNames"));
        assert_eq!(endpoint_format("ndjson"), Some("JSONEachRow"));
        assert_eq!(endpoint_format("parquet"), Some("Parquet"));
        assert_eq!(endpoint_format("xml"), None);
    }

    #[test]
    fn repeated_params_keep_every_value() {
        let params = request_params(&[
            proto::EndpointParam {
                name: "a".into(),
                value: "1".into(),
            },
            proto::EndpointParam {
                name: "a".into(),
                value: "2".into(),
            },
        ]);
        assert_eq!(params["a"], ["1", "2"]);
    }
}
