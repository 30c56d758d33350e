//! Runtime values of the template language and their Python semantics: truthiness, equality,
//! ordering, `str()`/`repr()` and arithmetic, close enough to CPython for what templates do.

use std::cmp::Ordering;

use super::TemplateError;

/// The largest list or string a template may build (repetition, `range`), against memory abuse.
pub(crate) const MAX_COLLECTION: usize = 1_000_000;

/// How deep lists, tuples and dicts may nest inside each other. Comparing, rendering, cloning and
/// dropping a value recurse once per level, so a template building `[[[...]]]` in a loop could
/// otherwise overflow the stack. JSON parameters (at most 128 levels, serde_json's own limit) fit.
pub(crate) const MAX_NESTING: usize = 200;

/// Refuses a value nested deeper than [`MAX_NESTING`], walking it without recursion.
pub(crate) fn check_nesting(value: &Value) -> Result<(), TemplateError> {
    let is_container = |v: &&Value| matches!(v, Value::List(_) | Value::Tuple(_) | Value::Dict(_));
    let mut pending: Vec<(&Value, usize)> = vec![(value, 1)];
    while let Some((value, depth)) = pending.pop() {
        if depth > MAX_NESTING {
            return Err(TemplateError::Unsupported(format!(
                "a template value may not nest more than {MAX_NESTING} levels deep"
            )));
        }
        match value {
            Value::List(items) | Value::Tuple(items) => {
                pending.extend(
                    items
                        .iter()
                        .filter(is_container)
                        .map(|item| (item, depth + 1)),
                );
            }
            Value::Dict(entries) => pending.extend(
                entries
                    .iter()
                    .flat_map(|(key, value)| [key, value])
                    .filter(is_container)
                    .map(|item| (item, depth + 1)),
            ),
            _ => {}
        }
    }
    Ok(())
}

/// A value during rendering.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    /// A plain string: rendered as an escaped string literal.
    Str(String),
    /// A fragment of SQL built by a function that escaped or validated every part of it (Tinybird's
    /// `Expression`/`Symbol`): rendered as is. Everywhere else it behaves as a string, and anything
    /// computed from it is a plain [`Value::Str`] again, so raw SQL cannot be forged.
    Sql(String),
    /// An integer from `Int32(x)` and friends, rendered `toInt32('5')` (Tinybird's `Integer`);
    /// `digits` is the normalized decimal, which may exceed `i128` for 256-bit types.
    TypedInt {
        digits: String,
        ty: &'static str,
    },
    /// A float from `Float32(x)`/`Float64(x)`, rendered `toFloat32('1.5')`.
    TypedFloat {
        value: f64,
        ty: &'static str,
    },
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
}

/// A number, for arithmetic and comparisons.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Number {
    Int(i128),
    Float(f64),
}

impl Number {
    fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

pub(crate) fn runtime(message: impl Into<String>) -> TemplateError {
    TemplateError::Syntax(message.into())
}

impl Value {
    /// Python's type name, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::TypedInt { .. } => "int",
            Value::Float(_) | Value::TypedFloat { .. } => "float",
            Value::Str(_) | Value::Sql(_) => "str",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
        }
    }

    pub(crate) fn is_none(&self) -> bool {
        matches!(self, Value::None)
    }

    /// The text of a string value (plain or SQL fragment).
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Sql(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_number(&self) -> Result<Option<Number>, TemplateError> {
        Ok(Some(match self {
            Value::Bool(b) => Number::Int(i128::from(*b)),
            Value::Int(i) => Number::Int(*i),
            Value::TypedInt { digits, .. } => {
                Number::Int(digits.parse::<i128>().map_err(|_| {
                    runtime(format!("integer {digits} is too large for arithmetic"))
                })?)
            }
            Value::Float(f) | Value::TypedFloat { value: f, .. } => Number::Float(*f),
            _ => return Ok(None),
        }))
    }

    /// Python truthiness.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::TypedInt { digits, .. } => digits != "0",
            Value::Float(f) | Value::TypedFloat { value: f, .. } => *f != 0.0,
            Value::Str(s) | Value::Sql(s) => !s.is_empty(),
            Value::List(items) | Value::Tuple(items) => !items.is_empty(),
            Value::Dict(entries) => !entries.is_empty(),
        }
    }

    /// Python `str(value)`.
    pub(crate) fn py_str(&self) -> String {
        match self {
            Value::Str(s) | Value::Sql(s) => s.clone(),
            Value::TypedInt { digits, ty } => format!("to{ty}('{digits}')"),
            Value::TypedFloat { value, ty } => format!("to{ty}('{}')", float_repr(*value)),
            other => other.py_repr(),
        }
    }

    /// Python `repr(value)`.
    pub(crate) fn py_repr(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(true) => "True".into(),
            Value::Bool(false) => "False".into(),
            Value::Int(i) => i.to_string(),
            Value::TypedInt { digits, .. } => digits.clone(),
            Value::Float(f) | Value::TypedFloat { value: f, .. } => float_repr(*f),
            Value::Str(s) | Value::Sql(s) => string_repr(s),
            Value::List(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(Value::py_repr)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::Tuple(items) if items.len() == 1 => format!("({},)", items[0].py_repr()),
            Value::Tuple(items) => format!(
                "({})",
                items
                    .iter()
                    .map(Value::py_repr)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::Dict(entries) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.py_repr(), v.py_repr()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The items of an iterable value (`for`, `list()`, `join`...).
    pub(crate) fn iterate(&self) -> Result<Vec<Value>, TemplateError> {
        match self {
            Value::List(items) | Value::Tuple(items) => Ok(items.clone()),
            Value::Str(s) | Value::Sql(s) => {
                Ok(s.chars().map(|c| Value::Str(c.to_string())).collect())
            }
            Value::Dict(entries) => Ok(entries.iter().map(|(k, _)| k.clone()).collect()),
            other => Err(runtime(format!(
                "'{}' object is not iterable",
                other.type_name()
            ))),
        }
    }

    /// Python `len(value)`.
    pub(crate) fn len(&self) -> Result<usize, TemplateError> {
        match self {
            Value::Str(s) | Value::Sql(s) => Ok(s.chars().count()),
            Value::List(items) | Value::Tuple(items) => Ok(items.len()),
            Value::Dict(entries) => Ok(entries.len()),
            other => Err(runtime(format!(
                "object of type '{}' has no len()",
                other.type_name()
            ))),
        }
    }
}

/// Python `a == b`.
pub(crate) fn equals(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        return x == y;
    }
    if let (Ok(Some(x)), Ok(Some(y))) = (a.as_number(), b.as_number()) {
        return match (x, y) {
            (Number::Int(x), Number::Int(y)) => x == y,
            (x, y) => x.as_f64() == y.as_f64(),
        };
    }
    if let (Value::TypedInt { digits: x, .. }, Value::TypedInt { digits: y, .. }) = (a, b) {
        return x == y;
    }
    match (a, b) {
        (Value::None, Value::None) => true,
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| equals(x, y))
        }
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| equals(k, k2) && equals(v, v2)))
        }
        _ => false,
    }
}

/// Python ordering (`<`, `max()`...), a `TypeError` between unrelated types.
pub(crate) fn compare(a: &Value, b: &Value, op: &str) -> Result<Ordering, TemplateError> {
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        return Ok(x.cmp(y));
    }
    if let (Some(x), Some(y)) = (a.as_number()?, b.as_number()?) {
        return Ok(match (x, y) {
            (Number::Int(x), Number::Int(y)) => x.cmp(&y),
            (x, y) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
        });
    }
    match (a, b) {
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            for (x, y) in x.iter().zip(y) {
                if !equals(x, y) {
                    return compare(x, y, op);
                }
            }
            Ok(x.len().cmp(&y.len()))
        }
        _ => Err(runtime(format!(
            "'{op}' not supported between instances of '{}' and '{}'",
            a.type_name(),
            b.type_name()
        ))),
    }
}

/// Python `item in container`.
pub(crate) fn contains(container: &Value, item: &Value) -> Result<bool, TemplateError> {
    match container {
        Value::Str(s) | Value::Sql(s) => match item.as_str() {
            Some(needle) => Ok(s.contains(needle)),
            None => Err(runtime(format!(
                "'in <string>' requires string as left operand, not {}",
                item.type_name()
            ))),
        },
        Value::List(items) | Value::Tuple(items) => Ok(items.iter().any(|x| equals(x, item))),
        Value::Dict(entries) => Ok(entries.iter().any(|(k, _)| equals(k, item))),
        other => Err(runtime(format!(
            "argument of type '{}' is not iterable",
            other.type_name()
        ))),
    }
}

/// The arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
}

impl BinaryOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::FloorDiv => "//",
            BinaryOp::Mod => "%",
        }
    }
}

fn repeat<T: Clone>(items: &[T], times: i128) -> Result<Vec<T>, TemplateError> {
    let times = usize::try_from(times.max(0)).unwrap_or(usize::MAX);
    if items.len().saturating_mul(times) > MAX_COLLECTION {
        return Err(TemplateError::Unsupported(format!(
            "a template may not build more than {MAX_COLLECTION} items"
        )));
    }
    Ok(items
        .iter()
        .cloned()
        .cycle()
        .take(items.len() * times)
        .collect())
}

/// Python `a <op> b`.
pub(crate) fn binary(op: BinaryOp, a: &Value, b: &Value) -> Result<Value, TemplateError> {
    let overflow = || runtime("integer overflow");
    if let (Some(x), Some(y)) = (a.as_number()?, b.as_number()?) {
        return Ok(match (x, y) {
            (Number::Int(x), Number::Int(y)) => match op {
                BinaryOp::Add => Value::Int(x.checked_add(y).ok_or_else(overflow)?),
                BinaryOp::Sub => Value::Int(x.checked_sub(y).ok_or_else(overflow)?),
                BinaryOp::Mul => Value::Int(x.checked_mul(y).ok_or_else(overflow)?),
                BinaryOp::Div if y == 0 => return Err(runtime("division by zero")),
                BinaryOp::Div => Value::Float(x as f64 / y as f64),
                BinaryOp::FloorDiv | BinaryOp::Mod if y == 0 => {
                    return Err(runtime("integer division or modulo by zero"));
                }
                BinaryOp::FloorDiv => Value::Int(floor_div(x, y)),
                BinaryOp::Mod => Value::Int(x - y * floor_div(x, y)),
            },
            (x, y) => {
                let (x, y) = (x.as_f64(), y.as_f64());
                match op {
                    BinaryOp::Add => Value::Float(x + y),
                    BinaryOp::Sub => Value::Float(x - y),
                    BinaryOp::Mul => Value::Float(x * y),
                    BinaryOp::Div | BinaryOp::FloorDiv | BinaryOp::Mod if y == 0.0 => {
                        return Err(runtime("float division by zero"));
                    }
                    BinaryOp::Div => Value::Float(x / y),
                    BinaryOp::FloorDiv => Value::Float((x / y).floor()),
                    BinaryOp::Mod => Value::Float(x - y * (x / y).floor()),
                }
            }
        });
    }
    match (op, a, b) {
        (BinaryOp::Add, _, _) if a.as_str().is_some() && b.as_str().is_some() => {
            let (x, y) = (
                a.as_str().unwrap_or_default(),
                b.as_str().unwrap_or_default(),
            );
            if x.len() + y.len() > MAX_COLLECTION {
                return Err(TemplateError::Unsupported(format!(
                    "a template may not build strings longer than {MAX_COLLECTION} bytes"
                )));
            }
            Ok(Value::Str(format!("{x}{y}")))
        }
        (BinaryOp::Add, Value::List(x), Value::List(y)) => {
            Ok(Value::List(x.iter().chain(y).cloned().collect()))
        }
        (BinaryOp::Add, Value::Tuple(x), Value::Tuple(y)) => {
            Ok(Value::Tuple(x.iter().chain(y).cloned().collect()))
        }
        (BinaryOp::Mul, sequence, count) | (BinaryOp::Mul, count, sequence)
            if matches!(
                count,
                Value::Int(_) | Value::Bool(_) | Value::TypedInt { .. }
            ) =>
        {
            let times = match count.as_number()? {
                Some(Number::Int(n)) => n,
                _ => 0,
            };
            match sequence {
                Value::Str(s) | Value::Sql(s) => {
                    let chars: Vec<char> = s.chars().collect();
                    Ok(Value::Str(repeat(&chars, times)?.into_iter().collect()))
                }
                Value::List(items) => Ok(Value::List(repeat(items, times)?)),
                Value::Tuple(items) => Ok(Value::Tuple(repeat(items, times)?)),
                _ => Err(unsupported_operands(op, a, b)),
            }
        }
        _ => Err(unsupported_operands(op, a, b)),
    }
}

/// Python's `//` on integers: rounds toward negative infinity.
fn floor_div(x: i128, y: i128) -> i128 {
    let quotient = x / y;
    if x % y != 0 && ((x < 0) != (y < 0)) {
        quotient - 1
    } else {
        quotient
    }
}

fn unsupported_operands(op: BinaryOp, a: &Value, b: &Value) -> TemplateError {
    runtime(format!(
        "unsupported operand type(s) for {}: '{}' and '{}'",
        op.symbol(),
        a.type_name(),
        b.type_name()
    ))
}

/// Python's `repr()` of a float: the shortest text that reads back the same number, in fixed
/// notation for exponents from -4 to 15 and scientific notation (`1e+16`, `1.5e-05`) otherwise.
pub(crate) fn float_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if value < 0.0 { "-" } else { "" };
    if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        let text = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if digits.len() <= point as usize {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{text}")
    } else {
        let fraction = if digits.len() > 1 {
            format!(".{}", &digits[1..])
        } else {
            String::new()
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{sign}{}{fraction}e{exponent_sign}{:02}",
            &digits[..1],
            exponent.abs()
        )
    }
}

/// Python's `repr()` of a string.
fn string_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}
