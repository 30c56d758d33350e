//! The template reader: splits the text into literal text, `{{ expressions }}` and `{% blocks %}`
//! exactly where Tornado's template reader does, and builds the tree of [`Node`]s.

use super::TemplateError;
use super::expr::{Expr, parse_assignment, parse_except, parse_expression, parse_for};

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Text(String),
    /// `{{ expr }}`; `source` is the expression text, for error messages.
    Output {
        expr: Expr,
        source: String,
    },
    If {
        branches: Vec<(Expr, Vec<Node>)>,
        otherwise: Option<Vec<Node>>,
    },
    For {
        targets: Vec<String>,
        iterable: Expr,
        body: Vec<Node>,
        otherwise: Option<Vec<Node>>,
    },
    While {
        condition: Expr,
        body: Vec<Node>,
        otherwise: Option<Vec<Node>>,
    },
    Try {
        body: Vec<Node>,
        handler: Option<(Option<String>, Vec<Node>)>,
        otherwise: Option<Vec<Node>>,
        finally: Option<Vec<Node>>,
    },
    Set {
        targets: Vec<String>,
        value: Expr,
    },
    Break,
    Continue,
}

/// Tornado's whitespace modes (`{% whitespace mode %}`); Tinybird renders with `all`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Whitespace {
    All,
    Single,
    Oneline,
}

impl Whitespace {
    fn apply(self, text: &str) -> String {
        match self {
            Whitespace::All => text.to_string(),
            Whitespace::Single => {
                // Runs of spaces/tabs become one space, then runs of whitespace holding a newline
                // become one newline.
                let mut spaced = String::with_capacity(text.len());
                let mut in_blank = false;
                for c in text.chars() {
                    if c == ' ' || c == '\t' {
                        if !in_blank {
                            spaced.push(' ');
                        }
                        in_blank = true;
                    } else {
                        spaced.push(c);
                        in_blank = false;
                    }
                }
                collapse_runs(
                    &spaced,
                    |run| if run.contains('\n') { Some("\n") } else { None },
                )
            }
            Whitespace::Oneline => collapse_runs(text, |_| Some(" ")),
        }
    }
}

/// Replaces each maximal run of whitespace by what `replace` says (or keeps it when `None`).
fn collapse_runs(text: &str, replace: impl Fn(&str) -> Option<&'static str>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if !run.is_empty() {
            match replace(run) {
                Some(replacement) => out.push_str(replacement),
                None => out.push_str(run),
            }
            run.clear();
        }
    };
    for c in text.chars() {
        if c.is_whitespace() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// How deep `{% if / for / while / try %}` blocks may nest. Reading, rendering, describing and
/// dropping a template recurse once per level, so deeper templates could overflow the stack.
const MAX_BLOCK_DEPTH: usize = 64;

struct Reader<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    whitespace: Whitespace,
    /// Blocks open around the current position, against [`MAX_BLOCK_DEPTH`].
    depth: usize,
}

impl Reader<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn consume(&mut self, count: usize) -> String {
        let taken = &self.text[self.pos..self.pos + count];
        self.line += taken.matches('\n').count();
        self.pos += count;
        taken.to_string()
    }

    fn error(&self, message: impl std::fmt::Display) -> TemplateError {
        TemplateError::Syntax(format!("{message} at <string>:{}", self.line))
    }
}

/// An item of a block body before intermediate tags (`elif`, `else`, ...) split it into sections.
enum Item {
    Node(Node),
    Intermediate { operator: String, suffix: String },
}

/// Parses a template body (the text after the `%` marker).
pub(crate) fn parse_template(text: &str) -> Result<Vec<Node>, TemplateError> {
    let mut reader = Reader {
        text,
        pos: 0,
        line: 1,
        whitespace: Whitespace::All,
        depth: 0,
    };
    let items = parse_body(&mut reader, None, false)?;
    Ok(items
        .into_iter()
        .filter_map(|item| match item {
            Item::Node(node) => Some(node),
            Item::Intermediate { .. } => None,
        })
        .collect())
}

fn with_line(error: TemplateError, line: usize) -> TemplateError {
    match error {
        TemplateError::Syntax(message) => TemplateError::Syntax(format!("{message}, line {line}")),
        other => other,
    }
}

fn push_text(items: &mut Vec<Item>, text: &str, whitespace: Whitespace) {
    let text = whitespace.apply(text);
    if !text.is_empty() {
        items.push(Item::Node(Node::Text(text)));
    }
}

fn parse_body(
    reader: &mut Reader,
    in_block: Option<&str>,
    in_loop: bool,
) -> Result<Vec<Item>, TemplateError> {
    let mut items = Vec::new();
    loop {
        // Find the next directive; `{{{` uses the innermost braces, like Tornado.
        let mut curly = 0;
        let found = loop {
            let rest = reader.rest().as_bytes();
            match reader.rest()[curly..].find('{').map(|i| i + curly) {
                Some(at) if at + 1 < rest.len() => {
                    if !matches!(rest[at + 1], b'{' | b'%' | b'#') {
                        curly = at + 1;
                        continue;
                    }
                    if at + 2 < rest.len() && rest[at + 1] == b'{' && rest[at + 2] == b'{' {
                        curly = at + 1;
                        continue;
                    }
                    break Some(at);
                }
                _ => break None,
            }
        };
        let Some(curly) = found else {
            if in_block.is_some() {
                return Err(TemplateError::Syntax(format!(
                    "Missing {{% end %}} block for if at line {}",
                    reader.line
                )));
            }
            let rest = reader.consume(reader.rest().len());
            push_text(&mut items, &rest, reader.whitespace);
            return Ok(items);
        };
        if curly > 0 {
            let text = reader.consume(curly);
            push_text(&mut items, &text, reader.whitespace);
        }
        let start = reader.consume(2);
        let line = reader.line;

        // `{{!`, `{%!` and `{#!` output the braces literally.
        if reader.rest().starts_with('!') {
            reader.consume(1);
            items.push(Item::Node(Node::Text(start)));
            continue;
        }

        if start == "{#" {
            let Some(end) = reader.rest().find("#}") else {
                return Err(reader.error("Missing end comment #}"));
            };
            reader.consume(end + 2);
            continue;
        }

        if start == "{{" {
            let Some(end) = reader.rest().find("}}") else {
                return Err(reader.error("Missing end expression }}"));
            };
            let contents = reader.consume(end).trim().to_string();
            reader.consume(2);
            if contents.is_empty() {
                return Err(reader.error("Empty expression"));
            }
            let expr = parse_expression(&contents).map_err(|e| with_line(e, line))?;
            items.push(Item::Node(Node::Output {
                expr,
                source: contents,
            }));
            continue;
        }

        let Some(end) = reader.rest().find("%}") else {
            return Err(reader.error("Missing end block %}"));
        };
        let contents = reader.consume(end).trim().to_string();
        reader.consume(2);
        if contents.is_empty() {
            return Err(reader.error("Empty block tag ({% %})"));
        }
        let (operator, suffix) = match contents.split_once(' ') {
            Some((operator, suffix)) => (operator.to_string(), suffix.trim().to_string()),
            None => (contents.clone(), String::new()),
        };

        let allowed_parents: Option<&[&str]> = match operator.as_str() {
            "else" => Some(&["if", "for", "while", "try"]),
            "elif" => Some(&["if"]),
            "except" | "finally" => Some(&["try"]),
            _ => None,
        };
        if let Some(parents) = allowed_parents {
            let Some(block) = in_block else {
                return Err(reader.error(format!(
                    "{operator} outside {} block",
                    describe_set(parents)
                )));
            };
            if !parents.contains(&block) {
                return Err(reader.error(format!(
                    "{operator} block cannot be attached to {block} block"
                )));
            }
            items.push(Item::Intermediate { operator, suffix });
            continue;
        }

        match operator.as_str() {
            "end" => {
                if in_block.is_none() {
                    return Err(reader.error("Extra {% end %} block"));
                }
                return Ok(items);
            }
            "comment" => {}
            "extends" | "include" | "autoescape" | "raw" | "module" | "apply" | "block" => {
                return Err(reader.error(format!("{operator} is forbidden")));
            }
            "import" | "from" => return Err(reader.error("import is forbidden")),
            "set" => {
                if suffix.is_empty() {
                    return Err(reader.error("set missing statement"));
                }
                let (targets, value) = parse_assignment(&suffix).map_err(|e| with_line(e, line))?;
                items.push(Item::Node(Node::Set { targets, value }));
            }
            "whitespace" => {
                reader.whitespace = match suffix.as_str() {
                    "all" => Whitespace::All,
                    "single" => Whitespace::Single,
                    "oneline" => Whitespace::Oneline,
                    other => return Err(reader.error(format!("invalid whitespace mode {other}"))),
                };
            }
            "if" | "for" | "while" | "try" => {
                let is_loop = operator == "for" || operator == "while";
                if reader.depth >= MAX_BLOCK_DEPTH {
                    return Err(reader.error(format!(
                        "blocks are nested more than {MAX_BLOCK_DEPTH} levels deep"
                    )));
                }
                reader.depth += 1;
                let body = parse_body(reader, Some(operator.as_str()), in_loop || is_loop)?;
                reader.depth -= 1;
                let node =
                    build_block(&operator, &suffix, line, body).map_err(|e| with_line(e, line))?;
                items.push(Item::Node(node));
            }
            "break" | "continue" => {
                if !in_loop {
                    return Err(
                        reader.error(format!("{operator} outside {{'for', 'while'}} block"))
                    );
                }
                items.push(Item::Node(if operator == "break" {
                    Node::Break
                } else {
                    Node::Continue
                }));
            }
            other => return Err(reader.error(format!("unknown operator: '{other}'"))),
        }
    }
}

fn describe_set(names: &[&str]) -> String {
    format!(
        "{{{}}}",
        names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Splits a block body at its intermediate tags and builds the block.
fn build_block(
    operator: &str,
    suffix: &str,
    line: usize,
    body: Vec<Item>,
) -> Result<Node, TemplateError> {
    // Sections: (tag, suffix, nodes); the first is the block's own.
    let mut sections: Vec<(String, String, Vec<Node>)> =
        vec![(operator.to_string(), suffix.to_string(), Vec::new())];
    for item in body {
        match item {
            Item::Node(node) => {
                if let Some(section) = sections.last_mut() {
                    section.2.push(node);
                }
            }
            Item::Intermediate { operator, suffix } => {
                sections.push((operator, suffix, Vec::new()))
            }
        }
    }
    let order_error = |tag: &str| {
        TemplateError::Syntax(format!(
            "invalid syntax: unexpected {{% {tag} %}} in {operator} block"
        ))
    };
    let mut sections = sections.into_iter();
    let (_, _, first) = sections.next().unwrap_or_default();
    match operator {
        "if" => {
            let mut branches = vec![(parse_expression(suffix)?, first)];
            let mut otherwise = None;
            for (tag, condition, nodes) in sections {
                match tag.as_str() {
                    "elif" if otherwise.is_none() => {
                        branches.push((parse_expression(&condition)?, nodes))
                    }
                    "else" if otherwise.is_none() => otherwise = Some(nodes),
                    other => return Err(order_error(other)),
                }
            }
            Ok(Node::If {
                branches,
                otherwise,
            })
        }
        "for" | "while" => {
            let mut otherwise = None;
            for (tag, _, nodes) in sections {
                match tag.as_str() {
                    "else" if otherwise.is_none() => otherwise = Some(nodes),
                    other => return Err(order_error(other)),
                }
            }
            if operator == "for" {
                let (targets, iterable) = parse_for(suffix)?;
                Ok(Node::For {
                    targets,
                    iterable,
                    body: first,
                    otherwise,
                })
            } else {
                Ok(Node::While {
                    condition: parse_expression(suffix)?,
                    body: first,
                    otherwise,
                })
            }
        }
        _ => {
            if !suffix.is_empty() {
                return Err(TemplateError::Syntax(format!(
                    "invalid syntax: try takes no argument, line {line}"
                )));
            }
            let (mut handler, mut otherwise, mut finally) = (None, None, None);
            for (tag, rest, nodes) in sections {
                match tag.as_str() {
                    "except" if handler.is_none() && otherwise.is_none() && finally.is_none() => {
                        handler = Some((parse_except(&rest)?, nodes));
                    }
                    "else" if handler.is_some() && otherwise.is_none() && finally.is_none() => {
                        otherwise = Some(nodes)
                    }
                    "finally" if finally.is_none() => finally = Some(nodes),
                    other => return Err(order_error(other)),
                }
            }
            if handler.is_none() && finally.is_none() {
                return Err(TemplateError::Syntax(
                    "invalid syntax: try needs an except or finally".into(),
                ));
            }
            Ok(Node::Try {
                body: first,
                handler,
                otherwise,
                finally,
            })
        }
    }
}
