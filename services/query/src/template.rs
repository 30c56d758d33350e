//! Tinybird's SQL template language: the `%` dialect of Tornado templates pipe nodes are written in.
//!
//! ```text
//! %
//! SELECT * FROM events
//! WHERE country = {{ String(country, 'ES', description="Country") }}
//! {% if defined(since) %} AND day >= {{ Date(since) }} {% end %}
//! LIMIT {{ Int32(limit, 100) }}
//! ```
//!
//! A node is templated when its first non-blank character is `%`. [`Template::parse`] reads it
//! once (cache the result per node version) into a tree of text, `{{ expressions }}` and
//! `{% if / elif / else / for / while / try / set / break / continue / comment / whitespace %}`
//! blocks, split exactly where Tornado's reader splits them (`{#..#}` comments, `{{!` escapes,
//! innermost braces of `{{{`, the same error texts). [`Template::parameters`] lists the request
//! parameters the template declares, as Tinybird lists them for `/v0/pipes` and OpenAPI.
//! [`Template::render`] evaluates it against one request's parameters.
//!
//! # Design
//!
//! Tinybird compiles templates to Python and runs them with a list of allowed names. We do not
//! run Python: expressions are parsed into our own small AST (`expr`) and evaluated by an
//! interpreter (`eval`) over a closed set of values (`value`) with Python's semantics
//! (truthiness, `==`, `in`, `+` on strings and lists, `a if c else b`...). The functions
//! (`functions`) follow Tinybird's `sql_template.py` for names, arguments, defaults, validation
//! rules, rendering and error texts. There is no attribute access, no import, no lambda, no
//! comprehension and no way to name a function that is not in the list, so there is nothing to
//! escape from; loops, collection sizes and output length are bounded.
//!
//! # Safety argument
//!
//! Caller input enters only as `Value::Str` (or lists of them): request parameters,
//! secrets and variables are strings. The only text written to the SQL is:
//!
//! 1. the template's own literal text;
//! 2. the rendering of a `{{ }}` value, where a string always becomes a ClickHouse string literal
//!    through [`roost_types::quote_string`] (plus `%` → `\%`, as Tinybird does), numbers are
//!    written by our own formatting of a parsed number, lists become `[..]` of rendered elements,
//!    and `None` or dicts are refused;
//! 3. a `Value::Sql` fragment, which only the SQL helpers create and only from
//!    escaped or validated parts: identifiers through [`roost_types::quote_ident`] (`column`,
//!    `columns`, `symbol`), validated bare identifiers (`table`), typed numbers as
//!    `toInt32('<digits>')`, arrays of validated and escaped elements, `sql_and` conditions whose
//!    column names are keyword names of the template source. Any operation on a fragment
//!    (concatenation, slicing, `str()`, methods) yields a plain string again, which is quoted on
//!    output, so a caller cannot forge a fragment.
//!
//! So whatever a caller sends, it reaches the SQL inside a quoted literal or identifier, or not at
//! all. (Tinybird renders `tb_secret` as a ClickHouse query parameter; we have no parameter channel
//! here and render the value as an escaped literal instead.)

mod eval;
mod expr;
mod functions;
mod params;
mod parse;
mod value;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use self::eval::Renderer;
use self::parse::Node;

/// A parsed node template (cache it: parsing happens once per node version).
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    parameters: Vec<ParamSpec>,
    /// Element type of every parameter declared `Array(Type)`.
    array_params: HashMap<String, String>,
}

/// A request parameter a template declares.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// The parameter name, as passed in the query string.
    pub name: String,
    /// Its type as Tinybird reports it: `String`, `Int32`, `DateTime`, `Array(Int32)`...
    pub r#type: String,
    /// The default written in the template, when it is a literal.
    pub default: Option<serde_json::Value>,
    /// The `description=` of the declaration.
    pub description: Option<String>,
    /// Whether the declaration says `required=True`.
    pub required: bool,
}

/// Request parameters: name → values (repeated query params keep every value, in order).
pub type Params = HashMap<String, Vec<String>>;

/// Workspace variables and secrets, for `tb_var()` and `tb_secret()`.
pub trait Variables {
    /// The value of variable `name`; `secret` is true for `tb_secret()`.
    fn get(&self, name: &str, secret: bool) -> Option<String>;
}

/// No variables at all.
impl Variables for () {
    fn get(&self, _name: &str, _secret: bool) -> Option<String> {
        None
    }
}

/// A workspace's variables by name: Tinybird has one kind, read by both functions.
impl Variables for HashMap<String, String> {
    fn get(&self, name: &str, _secret: bool) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

/// Why a template could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The template is malformed, or an expression failed while rendering (HTTP 400).
    #[error("Template Syntax Error: {0}")]
    Syntax(String),
    /// A parameter's value does not fit its declared type (HTTP 400).
    #[error("Template Syntax Error: {message}")]
    InvalidParam { name: String, message: String },
    /// A parameter without default was not passed (HTTP 400).
    #[error(
        "Template Syntax Error: Required parameter is not defined. Check the parameters {0}. Please provide a value or set a default value in the pipe code."
    )]
    MissingParam(String),
    /// The template raised `error()` or `custom_error()` (the status it asked for).
    #[error("{message}")]
    Custom { status: u16, message: String },
    /// The template does something Roost does not support, or went over a rendering limit (HTTP 400).
    #[error("Template Syntax Error: {0}")]
    Unsupported(String),
}

impl TemplateError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            TemplateError::Custom { status, .. } => *status,
            _ => 400,
        }
    }
}

/// Whether `sql` is a template: its first non-blank character is `%`.
pub fn is_templated(sql: &str) -> bool {
    sql.trim_start().starts_with('%')
}

impl Template {
    /// Parses a node's SQL; SQL that is not templated becomes a template of literal text.
    pub fn parse(sql: &str) -> Result<Template, TemplateError> {
        if !is_templated(sql) {
            return Ok(Template {
                nodes: vec![Node::Text(sql.to_string())],
                parameters: Vec::new(),
                array_params: HashMap::new(),
            });
        }
        // Drop the `%` marker, and the rest of its line when that is blank.
        let body = &sql.trim_start()[1..];
        let body = match body.find('\n') {
            Some(newline) if body[..newline].trim().is_empty() => &body[newline + 1..],
            _ => body,
        };
        let nodes = parse::parse_template(body)?;
        let parameters = params::discover(&nodes);
        let array_params = parameters
            .iter()
            .filter_map(|p| {
                let element = p.r#type.strip_prefix("Array(")?.strip_suffix(')')?;
                Some((p.name.clone(), element.to_string()))
            })
            .collect();
        Ok(Template {
            nodes,
            parameters,
            array_params,
        })
    }

    /// The parameters the template declares, in first-seen order, one per name.
    pub fn parameters(&self) -> Vec<ParamSpec> {
        self.parameters.clone()
    }

    /// Renders the SQL for one request.
    pub fn render(
        &self,
        params: &Params,
        variables: &dyn Variables,
    ) -> Result<String, TemplateError> {
        let mut renderer = Renderer {
            params,
            variables,
            array_params: &self.array_params,
            locals: HashMap::new(),
            out: String::new(),
            steps: 0,
        };
        renderer.run(&self.nodes)?;
        Ok(renderer.out)
    }
}
