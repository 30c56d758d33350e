//! Static discovery of a template's parameters, in Tinybird's order and with its typing rules:
//! a typed call (`Int32(limit, 10, description="..")`) declares a typed parameter; a bare name
//! (`{{ x }}`, `{% if x %}`) or a naming helper (`defined(x)`, `column(x)`...) declares a `String`
//! one; a block's body is read before its condition.

use std::collections::{HashSet, VecDeque};

use super::ParamSpec;
use super::expr::Expr;
use super::functions::{NAMING_FUNCTIONS, TYPED_FUNCTIONS, is_function};
use super::parse::Node;
use super::value::Value;

/// JavaScript's largest safe integer: Tinybird reports larger defaults as strings.
const MAX_SAFE_INTEGER: i128 = 9_007_199_254_740_991;

struct Found {
    spec: ParamSpec,
    typed: bool,
}

/// Every parameter of `nodes`, first-seen order, one per name; a typed declaration wins over an
/// untyped mention of the same name, and names the template assigns are not parameters unless a
/// typed call declares them.
pub(crate) fn discover(nodes: &[Node]) -> Vec<ParamSpec> {
    let mut locals = HashSet::new();
    collect_locals(nodes, &mut locals);
    let mut found = Vec::new();
    let mut expression_names = HashSet::new();
    walk(nodes, &mut found, &mut expression_names);

    let mut specs: Vec<(ParamSpec, bool)> = Vec::new();
    for Found { spec, typed } in found {
        // A typed call on an assigned name (`{% set limit = Int32(limit, 10) %}`) still declares
        // the parameter; untyped mentions of it are the template's own variable.
        if locals.contains(&spec.name) && !typed {
            continue;
        }
        match specs.iter_mut().find(|(s, _)| s.name == spec.name) {
            Some((existing, existing_typed)) => {
                if typed && !*existing_typed {
                    *existing = spec;
                    *existing_typed = true;
                }
            }
            None => specs.push((spec, typed)),
        }
    }
    specs.into_iter().map(|(spec, _)| spec).collect()
}

/// Names the template assigns itself (`{% set %}`, loop variables, `except ... as`): variables,
/// not parameters.
fn collect_locals(nodes: &[Node], locals: &mut HashSet<String>) {
    for node in nodes {
        match node {
            Node::Set { targets, .. } => locals.extend(targets.iter().cloned()),
            Node::For {
                targets,
                body,
                otherwise,
                ..
            } => {
                locals.extend(targets.iter().cloned());
                collect_locals(body, locals);
                collect_locals(otherwise.as_deref().unwrap_or_default(), locals);
            }
            Node::If {
                branches,
                otherwise,
            } => {
                for (_, body) in branches {
                    collect_locals(body, locals);
                }
                collect_locals(otherwise.as_deref().unwrap_or_default(), locals);
            }
            Node::While {
                body, otherwise, ..
            } => {
                collect_locals(body, locals);
                collect_locals(otherwise.as_deref().unwrap_or_default(), locals);
            }
            Node::Try {
                body,
                handler,
                otherwise,
                finally,
            } => {
                collect_locals(body, locals);
                if let Some((bound, handler)) = handler {
                    locals.extend(bound.iter().cloned());
                    collect_locals(handler, locals);
                }
                collect_locals(otherwise.as_deref().unwrap_or_default(), locals);
                collect_locals(finally.as_deref().unwrap_or_default(), locals);
            }
            Node::Text(_) | Node::Output { .. } | Node::Break | Node::Continue => {}
        }
    }
}

fn walk(nodes: &[Node], found: &mut Vec<Found>, expression_names: &mut HashSet<String>) {
    for node in nodes {
        match node {
            Node::Output { expr, .. } => {
                let start = found.len();
                from_expr(expr, found);
                expression_names.extend(found[start..].iter().map(|f| f.spec.name.clone()));
            }
            Node::If {
                branches,
                otherwise,
            } => {
                // Tinybird reads the body (with each `elif` condition where it stands) first and
                // the `if` condition last.
                let mut first_condition = None;
                for (i, (condition, body)) in branches.iter().enumerate() {
                    if i == 0 {
                        first_condition = Some(condition);
                    } else {
                        from_statement(condition, found, expression_names);
                    }
                    walk(body, found, expression_names);
                }
                walk(
                    otherwise.as_deref().unwrap_or_default(),
                    found,
                    expression_names,
                );
                if let Some(condition) = first_condition {
                    from_statement(condition, found, expression_names);
                }
            }
            Node::For {
                iterable: condition,
                body,
                otherwise,
                ..
            }
            | Node::While {
                condition,
                body,
                otherwise,
            } => {
                walk(body, found, expression_names);
                walk(
                    otherwise.as_deref().unwrap_or_default(),
                    found,
                    expression_names,
                );
                from_statement(condition, found, expression_names);
            }
            Node::Try {
                body,
                handler,
                otherwise,
                finally,
            } => {
                walk(body, found, expression_names);
                if let Some((_, handler)) = handler {
                    walk(handler, found, expression_names);
                }
                walk(
                    otherwise.as_deref().unwrap_or_default(),
                    found,
                    expression_names,
                );
                walk(
                    finally.as_deref().unwrap_or_default(),
                    found,
                    expression_names,
                );
            }
            Node::Set { value, .. } => from_statement(value, found, expression_names),
            Node::Text(_) | Node::Break | Node::Continue => {}
        }
    }
}

/// A control statement's names, except those `{{ }}` expressions already declared.
fn from_statement(expr: &Expr, found: &mut Vec<Found>, expression_names: &HashSet<String>) {
    let mut own = Vec::new();
    from_expr(expr, &mut own);
    found.extend(
        own.into_iter()
            .filter(|f| !expression_names.contains(&f.spec.name)),
    );
}

fn untyped(name: &str) -> Found {
    Found {
        spec: ParamSpec {
            name: name.to_string(),
            r#type: "String".into(),
            default: None,
            description: None,
            required: false,
        },
        typed: false,
    }
}

/// The parameters an expression declares, walking it breadth-first as Tinybird does.
fn from_expr(expr: &Expr, found: &mut Vec<Found>) {
    // (expression, whether its parent is a call that consumes it as a positional argument)
    let mut queue: VecDeque<(&Expr, bool)> = VecDeque::from([(expr, false)]);
    while let Some((expr, is_call_argument)) = queue.pop_front() {
        match expr {
            Expr::Name(name) => {
                if !is_call_argument && !is_function(name) {
                    found.push(untyped(name));
                }
            }
            Expr::Call {
                function,
                args,
                kwargs,
            } => {
                if let Some(spec) = declared(function, args, kwargs) {
                    found.push(spec);
                }
                queue.extend(args.iter().map(|a| (a, true)));
                queue.extend(kwargs.iter().map(|(_, v)| (v, false)));
            }
            Expr::Method {
                target,
                args,
                kwargs,
                ..
            } => {
                queue.push_back((target, false));
                queue.extend(args.iter().map(|a| (a, true)));
                queue.extend(kwargs.iter().map(|(_, v)| (v, false)));
            }
            Expr::Const(_) => {}
            Expr::List(items) | Expr::Tuple(items) => {
                queue.extend(items.iter().map(|i| (i, false)))
            }
            Expr::Dict(entries) => {
                queue.extend(entries.iter().map(|(k, _)| (k, false)));
                queue.extend(entries.iter().map(|(_, v)| (v, false)));
            }
            Expr::Negate(inner) | Expr::Plus(inner) | Expr::Not(inner) => {
                queue.push_back((inner, false))
            }
            Expr::Binary(_, left, right) | Expr::And(left, right) | Expr::Or(left, right) => {
                queue.push_back((left, false));
                queue.push_back((right, false));
            }
            Expr::Compare(first, rest) => {
                queue.push_back((first, false));
                queue.extend(rest.iter().map(|(_, e)| (e, false)));
            }
            Expr::IfElse {
                condition,
                then,
                otherwise,
            } => {
                queue.push_back((condition, false));
                queue.push_back((then, false));
                queue.push_back((otherwise, false));
            }
            Expr::Index(target, index) => {
                queue.push_back((target, false));
                queue.push_back((index, false));
            }
            Expr::Slice(target, start, end) => {
                queue.push_back((target, false));
                queue.extend(start.iter().map(|e| (e.as_ref(), false)));
                queue.extend(end.iter().map(|e| (e.as_ref(), false)));
            }
        }
    }
}

/// The parameter a call declares, if any.
fn declared(function: &str, args: &[Expr], kwargs: &[(String, Expr)]) -> Option<Found> {
    let Some(Expr::Name(name)) = args.first() else {
        return None;
    };
    if NAMING_FUNCTIONS.contains(&function) {
        return Some(untyped(name));
    }
    if !TYPED_FUNCTIONS.contains(&function) {
        return None;
    }
    let keyword = |key: &str| kwargs.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let (r#type, default) = match function {
        "Array" => {
            let element = match args.get(1) {
                Some(Expr::Const(Value::Str(t))) => t.clone(),
                Some(Expr::Name(t)) => t.clone(),
                _ => "String".to_string(),
            };
            let positional = args
                .get(2)
                .filter(|e| literal(e).is_some_and(|v| is_truthy_json(&v)));
            (
                format!("Array({element})"),
                keyword("default").or(positional),
            )
        }
        "Int" | "Integer" => ("Int32".to_string(), keyword("default").or(args.get(1))),
        other => (other.to_string(), keyword("default").or(args.get(1))),
    };
    let description = match keyword("description") {
        Some(Expr::Const(Value::Str(s))) => Some(s.clone()),
        _ => None,
    };
    let required = matches!(keyword("required").and_then(literal), Some(v) if is_truthy_json(&v));
    Some(Found {
        spec: ParamSpec {
            name: name.clone(),
            r#type,
            default: default.and_then(literal),
            description,
            required,
        },
        typed: true,
    })
}

fn is_truthy_json(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Array(items) => !items.is_empty(),
        serde_json::Value::Object(entries) => !entries.is_empty(),
    }
}

/// A literal default as JSON (`None` for anything computed).
fn literal(expr: &Expr) -> Option<serde_json::Value> {
    match expr {
        Expr::Const(Value::None) => None,
        Expr::Const(Value::Bool(b)) => Some((*b).into()),
        Expr::Const(Value::Int(i)) if i.abs() > MAX_SAFE_INTEGER => Some(i.to_string().into()),
        Expr::Const(Value::Int(i)) => i64::try_from(*i).ok().map(Into::into),
        Expr::Const(Value::Float(f)) => {
            serde_json::Number::from_f64(*f).map(serde_json::Value::Number)
        }
        Expr::Const(Value::Str(s)) => Some(s.clone().into()),
        Expr::List(items) | Expr::Tuple(items) => items
            .iter()
            .map(literal)
            .collect::<Option<Vec<_>>>()
            .map(Into::into),
        _ => None,
    }
}
