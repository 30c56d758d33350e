//! Tinybird datafiles (`.datasource`, `.pipe`) as the Forward CLI sends them to `POST /v1/build`:
//! parsed here into what the data source and pipe APIs take.
//!
//! The format: one instruction per line, `KEY value` (a value may be quoted), or `KEY >` followed
//! by an indented block (SQL, schema, descriptions). In a pipe, `NODE name` starts a node and the
//! instructions after it belong to that node. Lines starting with `#` are comments.

use std::collections::BTreeMap;

/// A parsed `.datasource`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataSourceFile {
    pub name: String,
    pub description: String,
    pub schema: String,
    /// Engine instructions under the API's parameter names (`engine`, `engine_sorting_key`, ...).
    pub engine: BTreeMap<String, String>,
    /// `TOKEN name SCOPE` lines.
    pub tokens: Vec<(String, String)>,
}

/// A parsed `.pipe`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PipeFile {
    pub name: String,
    pub description: String,
    pub nodes: Vec<NodeFile>,
    pub tokens: Vec<(String, String)>,
}

/// A node of a pipe: its SQL and its other instructions (`type`, `datasource`, `copy_schedule`,
/// ...) lower-cased, as the pipes API takes them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeFile {
    pub name: String,
    pub description: String,
    pub sql: String,
    pub settings: BTreeMap<String, String>,
}

/// What is wrong with a datafile, with the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatafileError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for DatafileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// One instruction: its key (upper-case), its value, and the line it starts on.
struct Instruction {
    key: String,
    value: String,
    line: usize,
}

fn unquote(value: &str) -> &str {
    let value = value.trim();
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

/// The lines of a block with their common indentation removed.
fn dedent(lines: &[&str]) -> String {
    let indent = lines
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    let text: Vec<&str> = lines
        .iter()
        .map(|line| line.get(indent..).unwrap_or("").trim_end())
        .collect();
    text.join("\n").trim_matches('\n').to_string()
}

fn instructions(text: &str) -> Result<Vec<Instruction>, DatafileError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let line = lines[at];
        let number = at + 1;
        at += 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            return Err(DatafileError {
                line: number,
                message: format!("indented text outside a block: '{trimmed}'"),
            });
        }
        let (key, rest) = trimmed
            .split_once(char::is_whitespace)
            .unwrap_or((trimmed, ""));
        let rest = rest.trim();
        let value = if rest == ">" {
            let start = at;
            while at < lines.len()
                && (lines[at].trim().is_empty() || lines[at].starts_with(char::is_whitespace))
            {
                at += 1;
            }
            dedent(&lines[start..at])
        } else {
            unquote(rest).to_string()
        };
        found.push(Instruction {
            key: key.to_ascii_uppercase(),
            value,
            line: number,
        });
    }
    Ok(found)
}

fn token(instruction: &Instruction) -> Result<(String, String), DatafileError> {
    let mut words = instruction.value.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(name), scope, None) => Ok((
            unquote(name).to_string(),
            scope.unwrap_or("READ").to_ascii_uppercase(),
        )),
        _ => Err(DatafileError {
            line: instruction.line,
            message: "TOKEN takes a name and a scope, e.g. TOKEN app_read READ".into(),
        }),
    }
}

fn unknown(instruction: &Instruction, what: &str) -> DatafileError {
    DatafileError {
        line: instruction.line,
        message: format!("unknown instruction '{}' in a {what}", instruction.key),
    }
}

/// Engine instructions of a `.datasource`, and the API parameter each becomes.
const ENGINE_KEYS: &[&str] = &[
    "ENGINE",
    "ENGINE_SORTING_KEY",
    "ENGINE_PARTITION_KEY",
    "ENGINE_PRIMARY_KEY",
    "ENGINE_TTL",
    "ENGINE_VER",
    "ENGINE_SIGN",
    "ENGINE_VERSION",
    "ENGINE_IS_DELETED",
    "ENGINE_SETTINGS",
    "ENGINE_COLUMNS",
];

/// Parses a `.datasource` named `name` (its file stem).
pub fn parse_data_source(name: &str, text: &str) -> Result<DataSourceFile, DatafileError> {
    let mut file = DataSourceFile {
        name: name.to_string(),
        ..DataSourceFile::default()
    };
    for instruction in instructions(text)? {
        match instruction.key.as_str() {
            "SCHEMA" => file.schema = instruction.value,
            "DESCRIPTION" => file.description = instruction.value,
            "TOKEN" => file.tokens.push(token(&instruction)?),
            // Forward's migration query and tags change nothing a build makes here.
            "FORWARD_QUERY" | "TAGS" => {}
            key if ENGINE_KEYS.contains(&key) => {
                file.engine
                    .insert(key.to_ascii_lowercase(), instruction.value);
            }
            _ => return Err(unknown(&instruction, "datasource")),
        }
    }
    if file.schema.is_empty() {
        return Err(DatafileError {
            line: 1,
            message: "a .datasource needs a SCHEMA".into(),
        });
    }
    Ok(file)
}

/// Node instructions besides NODE, SQL and DESCRIPTION, passed to the pipes API lower-cased.
const NODE_KEYS: &[&str] = &[
    "TYPE",
    "DATASOURCE",
    "TARGET_DATASOURCE",
    "COPY_SCHEDULE",
    "COPY_MODE",
    "ENGINE",
    "ENGINE_SORTING_KEY",
    "ENGINE_PARTITION_KEY",
    "ENGINE_PRIMARY_KEY",
    "ENGINE_TTL",
    "ENGINE_VER",
    "ENGINE_SIGN",
    "ENGINE_SETTINGS",
    "EXPORT_CONNECTION_NAME",
    "EXPORT_BUCKET_URI",
    "EXPORT_FILE_TEMPLATE",
    "EXPORT_FORMAT",
    "EXPORT_COMPRESSION",
    "EXPORT_SCHEDULE",
    "EXPORT_WRITE_STRATEGY",
];

/// Parses a `.pipe` named `name` (its file stem).
pub fn parse_pipe(name: &str, text: &str) -> Result<PipeFile, DatafileError> {
    let mut file = PipeFile {
        name: name.to_string(),
        ..PipeFile::default()
    };
    for instruction in instructions(text)? {
        let node = file.nodes.last_mut();
        match (instruction.key.as_str(), node) {
            ("NODE", _) => file.nodes.push(NodeFile {
                name: instruction.value,
                ..NodeFile::default()
            }),
            ("DESCRIPTION", None) => file.description = instruction.value,
            ("DESCRIPTION", Some(node)) => node.description = instruction.value,
            ("SQL", Some(node)) => node.sql = instruction.value,
            ("TOKEN", _) => file.tokens.push(token(&instruction)?),
            ("TAGS", _) => {}
            (key, Some(node)) if NODE_KEYS.contains(&key) => {
                let value = match key {
                    "TYPE" => instruction.value.to_ascii_lowercase(),
                    _ => instruction.value,
                };
                node.settings.insert(key.to_ascii_lowercase(), value);
            }
            ("INCLUDE", _) => {
                return Err(DatafileError {
                    line: instruction.line,
                    message: "INCLUDE files are not supported by this server's build".into(),
                });
            }
            _ => return Err(unknown(&instruction, "pipe")),
        }
    }
    if let Some(node) = file.nodes.iter().find(|node| node.sql.is_empty()) {
        return Err(DatafileError {
            line: 1,
            message: format!("node '{}' has no SQL", node.name),
        });
    }
    if file.nodes.is_empty() {
        return Err(DatafileError {
            line: 1,
            message: "a .pipe needs at least one NODE with SQL".into(),
        });
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_source_reads_its_schema_engine_and_tokens() {
        let text = "DESCRIPTION >\n    Orders, one per line\n\nTOKEN \"app\" APPEND\n\nSCHEMA >\n    `ts` DateTime `json:$.ts`,\n    `amount` Float64 `json:$.amount`\n\nENGINE \"MergeTree\"\nENGINE_SORTING_KEY \"ts\"\nENGINE_TTL \"ts + toIntervalDay(30)\"\n";
        let file = parse_data_source("orders", text).unwrap();
        assert_eq!(file.description, "Orders, one per line");
        assert_eq!(
            file.schema,
            "`ts` DateTime `json:$.ts`,\n`amount` Float64 `json:$.amount`"
        );
        assert_eq!(file.engine["engine"], "MergeTree");
        assert_eq!(file.engine["engine_sorting_key"], "ts");
        assert_eq!(file.engine["engine_ttl"], "ts + toIntervalDay(30)");
        assert_eq!(file.tokens, [("app".to_string(), "APPEND".to_string())]);
    }

    #[test]
    fn a_pipe_reads_its_nodes_in_order_with_their_settings() {
        let text = "DESCRIPTION >\n    Top users\n\nNODE filtered\nSQL >\n    %\n    SELECT *\n    FROM orders\n      WHERE 1\n\nNODE agg\nDESCRIPTION >\n    Totals\nSQL >\n    SELECT user, sum(amount) AS total FROM filtered GROUP BY user\n\nTYPE Copy\nTARGET_DATASOURCE totals\nCOPY_SCHEDULE \"0 * * * *\"\n";
        let file = parse_pipe("top", text).unwrap();
        assert_eq!(file.description, "Top users");
        assert_eq!(file.nodes.len(), 2);
        assert_eq!(file.nodes[0].sql, "%\nSELECT *\nFROM orders\n  WHERE 1");
        assert_eq!(file.nodes[1].description, "Totals");
        assert_eq!(file.nodes[1].settings["type"], "copy");
        assert_eq!(file.nodes[1].settings["target_datasource"], "totals");
        assert_eq!(file.nodes[1].settings["copy_schedule"], "0 * * * *");
    }

    #[test]
    fn mistakes_name_their_line() {
        for (text, line, message) in [
            (
                "SCHEMA >\n    `a` String\nBOGUS 1\n",
                3,
                "unknown instruction 'BOGUS'",
            ),
            ("   SCHEMA >\n", 1, "indented text outside a block"),
            ("ENGINE \"MergeTree\"\n", 1, "needs a SCHEMA"),
            ("SCHEMA >\n    `a` String\nTOKEN a b c\n", 3, "TOKEN takes"),
        ] {
            let error = parse_data_source("x", text).unwrap_err();
            assert_eq!(error.line, line, "{text}");
            assert!(error.message.contains(message), "{error}");
        }
        for (text, message) in [
            ("SQL >\n    SELECT 1\n", "unknown instruction 'SQL'"),
            ("NODE a\nTYPE endpoint\n", "node 'a' has no SQL"),
            ("DESCRIPTION >\n    nothing\n", "at least one NODE"),
            ("INCLUDE \"x.incl\"\n", "INCLUDE"),
        ] {
            let error = parse_pipe("x", text).unwrap_err();
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }
}
