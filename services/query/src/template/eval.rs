//! Rendering: walks the parsed nodes with the request's parameters and writes the SQL.

use std::collections::HashMap;

use super::expr::{CompareOp, Expr};
use super::functions::{self, Args, array_param, render_value};
use super::parse::Node;
use super::value::{Value, binary, check_nesting, compare, contains, equals, runtime};
use super::{Params, TemplateError, Variables};

/// Work a single render may do (nodes run, loop turns), against runaway loops.
const MAX_STEPS: usize = 1_000_000;
/// The longest SQL a template may render.
const MAX_OUTPUT: usize = 16 * 1024 * 1024;

enum Flow {
    Normal,
    Break,
    Continue,
}

pub(crate) struct Renderer<'a> {
    pub(crate) params: &'a Params,
    pub(crate) variables: &'a dyn Variables,
    /// Element type of each parameter declared `Array(Type)`, whose values arrive as lists.
    pub(crate) array_params: &'a HashMap<String, String>,
    pub(crate) locals: HashMap<String, Value>,
    pub(crate) out: String,
    pub(crate) steps: usize,
}

impl Renderer<'_> {
    fn step(&mut self) -> Result<(), TemplateError> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(TemplateError::Unsupported(format!(
                "the template did more than {MAX_STEPS} steps"
            )));
        }
        Ok(())
    }

    fn write(&mut self, text: &str) -> Result<(), TemplateError> {
        if self.out.len() + text.len() > MAX_OUTPUT {
            return Err(TemplateError::Unsupported(format!(
                "the rendered SQL is longer than {MAX_OUTPUT} bytes"
            )));
        }
        self.out.push_str(text);
        Ok(())
    }

    pub(crate) fn run(&mut self, nodes: &[Node]) -> Result<(), TemplateError> {
        match self.block(nodes)? {
            Flow::Normal => Ok(()),
            // The parser only accepts break/continue inside loops.
            Flow::Break | Flow::Continue => Err(runtime("'break' outside loop")),
        }
    }

    fn block(&mut self, nodes: &[Node]) -> Result<Flow, TemplateError> {
        for node in nodes {
            self.step()?;
            match node {
                Node::Text(text) => self.write(text)?,
                Node::Output { expr, source } => {
                    let value = self.eval(expr)?;
                    let sql = render_value(&value, source)?;
                    self.write(&sql)?;
                }
                Node::If {
                    branches,
                    otherwise,
                } => {
                    let mut chosen = otherwise.as_deref();
                    for (condition, body) in branches {
                        if self.eval(condition)?.truthy() {
                            chosen = Some(body);
                            break;
                        }
                    }
                    if let Some(body) = chosen {
                        match self.block(body)? {
                            Flow::Normal => {}
                            flow => return Ok(flow),
                        }
                    }
                }
                Node::For {
                    targets,
                    iterable,
                    body,
                    otherwise,
                } => {
                    let items = self.eval(iterable)?.iterate()?;
                    let mut broke = false;
                    for item in items {
                        self.step()?;
                        self.assign(targets, item)?;
                        match self.block(body)? {
                            Flow::Break => {
                                broke = true;
                                break;
                            }
                            Flow::Continue | Flow::Normal => {}
                        }
                    }
                    if !broke && let Some(otherwise) = otherwise {
                        match self.block(otherwise)? {
                            Flow::Normal => {}
                            flow => return Ok(flow),
                        }
                    }
                }
                Node::While {
                    condition,
                    body,
                    otherwise,
                } => {
                    let mut broke = false;
                    while self.eval(condition)?.truthy() {
                        self.step()?;
                        match self.block(body)? {
                            Flow::Break => {
                                broke = true;
                                break;
                            }
                            Flow::Continue | Flow::Normal => {}
                        }
                    }
                    if !broke && let Some(otherwise) = otherwise {
                        match self.block(otherwise)? {
                            Flow::Normal => {}
                            flow => return Ok(flow),
                        }
                    }
                }
                Node::Try {
                    body,
                    handler,
                    otherwise,
                    finally,
                } => {
                    let outcome = match self.block(body) {
                        // Limits are not exceptions a template can swallow.
                        Err(error @ TemplateError::Unsupported(_)) => Err(error),
                        Err(error) => match handler {
                            Some((bound, handler)) => {
                                if let Some(name) = bound {
                                    self.locals
                                        .insert(name.clone(), Value::Str(error.to_string()));
                                }
                                self.block(handler)
                            }
                            None => Err(error),
                        },
                        Ok(Flow::Normal) => match otherwise {
                            Some(otherwise) => self.block(otherwise),
                            None => Ok(Flow::Normal),
                        },
                        Ok(flow) => Ok(flow),
                    };
                    if let Some(finally) = finally {
                        match self.block(finally)? {
                            Flow::Normal => {}
                            flow => return Ok(flow),
                        }
                    }
                    match outcome? {
                        Flow::Normal => {}
                        flow => return Ok(flow),
                    }
                }
                Node::Set { targets, value } => {
                    let value = self.eval(value)?;
                    self.assign(targets, value)?;
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn assign(&mut self, targets: &[String], value: Value) -> Result<(), TemplateError> {
        if let [target] = targets {
            self.locals.insert(target.clone(), value);
            return Ok(());
        }
        let items = match value {
            Value::List(items) | Value::Tuple(items) => items,
            other => other.iterate()?,
        };
        if items.len() != targets.len() {
            return Err(runtime(format!(
                "cannot unpack {} values into {} names",
                items.len(),
                targets.len()
            )));
        }
        for (target, item) in targets.iter().zip(items) {
            self.locals.insert(target.clone(), item);
        }
        Ok(())
    }

    /// A name's value: a template variable, else the request parameter (typed lists for
    /// parameters declared `Array(Type)`), else `None`, as every unknown name is in Tinybird.
    fn lookup(&self, name: &str) -> Value {
        if let Some(value) = self.locals.get(name) {
            return value.clone();
        }
        let Some(values) = self.params.get(name).filter(|v| !v.is_empty()) else {
            return Value::None;
        };
        if let Some(ty) = self.array_params.get(name)
            && let Some(list) = array_param(ty, values)
        {
            return list;
        }
        match values.as_slice() {
            [single] => Value::Str(single.clone()),
            many => Value::List(many.iter().cloned().map(Value::Str).collect()),
        }
    }

    pub(crate) fn eval(&mut self, expr: &Expr) -> Result<Value, TemplateError> {
        let value = self.eval_unchecked(expr)?;
        // Only literals and functions build new levels of nesting.
        if matches!(
            expr,
            Expr::List(_)
                | Expr::Tuple(_)
                | Expr::Dict(_)
                | Expr::Call { .. }
                | Expr::Method { .. }
        ) {
            check_nesting(&value)?;
        }
        Ok(value)
    }

    fn eval_unchecked(&mut self, expr: &Expr) -> Result<Value, TemplateError> {
        Ok(match expr {
            Expr::Const(value) => value.clone(),
            Expr::Name(name) => self.lookup(name),
            Expr::List(items) => Value::List(self.eval_all(items)?),
            Expr::Tuple(items) => Value::Tuple(self.eval_all(items)?),
            Expr::Dict(entries) => {
                let mut out: Vec<(Value, Value)> = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    let key = self.eval(key)?;
                    let value = self.eval(value)?;
                    match out.iter_mut().find(|(k, _)| equals(k, &key)) {
                        Some(entry) => entry.1 = value,
                        None => out.push((key, value)),
                    }
                }
                Value::Dict(out)
            }
            Expr::Negate(inner) => {
                let value = self.eval(inner)?;
                match value.as_number()? {
                    Some(_) => binary(super::value::BinaryOp::Sub, &Value::Int(0), &value)?,
                    None => {
                        return Err(runtime(format!(
                            "bad operand type for unary -: '{}'",
                            value.type_name()
                        )));
                    }
                }
            }
            Expr::Plus(inner) => {
                let value = self.eval(inner)?;
                match value.as_number()? {
                    Some(_) => binary(super::value::BinaryOp::Add, &Value::Int(0), &value)?,
                    None => {
                        return Err(runtime(format!(
                            "bad operand type for unary +: '{}'",
                            value.type_name()
                        )));
                    }
                }
            }
            Expr::Not(inner) => Value::Bool(!self.eval(inner)?.truthy()),
            Expr::Binary(op, left, right) => {
                let left = self.eval(left)?;
                let right = self.eval(right)?;
                binary(*op, &left, &right)?
            }
            Expr::And(left, right) => {
                let left = self.eval(left)?;
                if left.truthy() {
                    self.eval(right)?
                } else {
                    left
                }
            }
            Expr::Or(left, right) => {
                let left = self.eval(left)?;
                if left.truthy() {
                    left
                } else {
                    self.eval(right)?
                }
            }
            Expr::Compare(first, rest) => {
                let mut left = self.eval(first)?;
                for (op, right) in rest {
                    let right = self.eval(right)?;
                    if !compare_values(*op, &left, &right)? {
                        return Ok(Value::Bool(false));
                    }
                    left = right;
                }
                Value::Bool(true)
            }
            Expr::IfElse {
                condition,
                then,
                otherwise,
            } => {
                if self.eval(condition)?.truthy() {
                    self.eval(then)?
                } else {
                    self.eval(otherwise)?
                }
            }
            Expr::Call {
                function,
                args,
                kwargs,
            } => {
                let args = self.arguments(args, kwargs)?;
                functions::call(function, args, self.variables)?
            }
            Expr::Method {
                target,
                method,
                args,
                kwargs,
            } => {
                let target = self.eval(target)?;
                let args = self.arguments(args, kwargs)?;
                functions::method(&target, method, &args)?
            }
            Expr::Index(target, index) => {
                let target = self.eval(target)?;
                let index = self.eval(index)?;
                subscript(&target, &index)?
            }
            Expr::Slice(target, start, end) => {
                let target = self.eval(target)?;
                let start = match start {
                    Some(e) => self.eval(e)?,
                    None => Value::None,
                };
                let end = match end {
                    Some(e) => self.eval(e)?,
                    None => Value::None,
                };
                slice(&target, &start, &end)?
            }
        })
    }

    fn eval_all(&mut self, items: &[Expr]) -> Result<Vec<Value>, TemplateError> {
        items.iter().map(|item| self.eval(item)).collect()
    }

    fn arguments(
        &mut self,
        args: &[Expr],
        kwargs: &[(String, Expr)],
    ) -> Result<Args, TemplateError> {
        let first_name = match args.first() {
            Some(Expr::Name(name)) => Some(name.clone()),
            _ => None,
        };
        let positional = self.eval_all(args)?;
        let mut keywords = Vec::with_capacity(kwargs.len());
        for (name, value) in kwargs {
            keywords.push((name.clone(), self.eval(value)?));
        }
        Ok(Args {
            positional,
            keywords,
            first_name,
        })
    }
}

fn compare_values(op: CompareOp, left: &Value, right: &Value) -> Result<bool, TemplateError> {
    Ok(match op {
        CompareOp::Eq => equals(left, right),
        CompareOp::NotEq => !equals(left, right),
        CompareOp::Lt => compare(left, right, "<")?.is_lt(),
        CompareOp::LtE => compare(left, right, "<=")?.is_le(),
        CompareOp::Gt => compare(left, right, ">")?.is_gt(),
        CompareOp::GtE => compare(left, right, ">=")?.is_ge(),
        CompareOp::In => contains(right, left)?,
        CompareOp::NotIn => !contains(right, left)?,
        // Identity only means something for the singletons None, True and False.
        CompareOp::Is => is_same(left, right),
        CompareOp::IsNot => !is_same(left, right),
    })
}

fn is_same(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::None, Value::None) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        _ => false,
    }
}

fn index_of(index: &Value, len: usize) -> Result<Option<usize>, TemplateError> {
    let Some(super::value::Number::Int(i)) = index.as_number()? else {
        return Err(runtime(format!(
            "indices must be integers, not {}",
            index.type_name()
        )));
    };
    let i = if i < 0 { i + len as i128 } else { i };
    Ok(usize::try_from(i).ok().filter(|i| *i < len))
}

fn subscript(target: &Value, index: &Value) -> Result<Value, TemplateError> {
    match target {
        Value::List(items) | Value::Tuple(items) => match index_of(index, items.len())? {
            Some(i) => Ok(items[i].clone()),
            None => Err(runtime(format!(
                "{} index out of range",
                target.type_name()
            ))),
        },
        Value::Str(s) | Value::Sql(s) => {
            let chars: Vec<char> = s.chars().collect();
            match index_of(index, chars.len())? {
                Some(i) => Ok(Value::Str(chars[i].to_string())),
                None => Err(runtime(
                    "String index out of range. Check that string parameters have values before accessing specific characters (e.g., param[0]). Provide default values or add length checks in your template.",
                )),
            }
        }
        Value::Dict(entries) => entries
            .iter()
            .find(|(k, _)| equals(k, index))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| runtime(format!("KeyError: {}", index.py_repr()))),
        other => Err(runtime(format!(
            "'{}' object is not subscriptable",
            other.type_name()
        ))),
    }
}

fn slice(target: &Value, start: &Value, end: &Value) -> Result<Value, TemplateError> {
    let bound = |value: &Value, len: usize, default: usize| -> Result<usize, TemplateError> {
        if value.is_none() {
            return Ok(default);
        }
        let Some(super::value::Number::Int(i)) = value.as_number()? else {
            return Err(runtime("slice indices must be integers or None"));
        };
        let i = if i < 0 { i + len as i128 } else { i };
        Ok(i.clamp(0, len as i128) as usize)
    };
    match target {
        Value::List(items) | Value::Tuple(items) => {
            let (a, b) = (
                bound(start, items.len(), 0)?,
                bound(end, items.len(), items.len())?,
            );
            let part = if a < b {
                items[a..b].to_vec()
            } else {
                Vec::new()
            };
            Ok(if matches!(target, Value::List(_)) {
                Value::List(part)
            } else {
                Value::Tuple(part)
            })
        }
        Value::Str(s) | Value::Sql(s) => {
            let chars: Vec<char> = s.chars().collect();
            let (a, b) = (
                bound(start, chars.len(), 0)?,
                bound(end, chars.len(), chars.len())?,
            );
            Ok(Value::Str(if a < b {
                chars[a..b].iter().collect()
            } else {
                String::new()
            }))
        }
        other => Err(runtime(format!(
            "'{}' object is not subscriptable",
            other.type_name()
        ))),
    }
}
