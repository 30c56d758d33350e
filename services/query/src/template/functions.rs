//! The functions a template may call: Tinybird's typed parameter functions, its SQL helpers and a
//! few Python builtins. Each returns a [`Value`]; only the helpers that escaped or validated every
//! piece of their output return [`Value::Sql`].

use roost_types::{quote_ident, quote_string};

use super::TemplateError;
use super::Variables;
use super::value::{MAX_COLLECTION, Number, Value, compare, equals, runtime};

/// Typed parameter functions: name, the type they validate against, how they render.
pub(crate) const TYPED_FUNCTIONS: &[&str] = &[
    "String",
    "Boolean",
    "DateTime64",
    "DateTime",
    "Date",
    "Float32",
    "Float64",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "Int128",
    "Int256",
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt64",
    "UInt128",
    "UInt256",
    "Int",
    "Integer",
    "Array",
    "JSON",
];

/// Functions whose first argument names a parameter without typing it (Tinybird's
/// `VALID_CUSTOM_FUNCTION_NAMES`).
pub(crate) const NAMING_FUNCTIONS: &[&str] = &[
    "defined",
    "column",
    "columns",
    "day_diff",
    "date_diff_in_seconds",
    "date_diff_in_minutes",
    "date_diff_in_hours",
    "date_diff_in_days",
    "split_to_array",
    "enumerate_with_last",
    "sql_and",
];

const OTHER_FUNCTIONS: &[&str] = &[
    "symbol",
    "Symbol",
    "Column",
    "table",
    "TABLE",
    "error",
    "custom_error",
    "sql_unescape",
    "tb_secret",
    "tb_var",
    "max_threads",
    "cache_ttl",
    "backend_hint",
    "activate",
    "disable",
    "len",
    "list",
    "min",
    "max",
    "int",
    "float",
    "str",
    "bool",
    "sum",
    "enumerate",
    "range",
    "abs",
    "round",
    "sorted",
];

pub(crate) fn is_function(name: &str) -> bool {
    TYPED_FUNCTIONS.contains(&name)
        || NAMING_FUNCTIONS.contains(&name)
        || OTHER_FUNCTIONS.contains(&name)
}

/// The evaluated arguments of a call.
pub(crate) struct Args {
    pub(crate) positional: Vec<Value>,
    pub(crate) keywords: Vec<(String, Value)>,
    /// The variable named by the first positional argument when it is a bare name (`String(x)`),
    /// so errors can name the parameter.
    pub(crate) first_name: Option<String>,
}

impl Args {
    /// The argument at `index`, or passed as `keyword`.
    fn get(&self, index: usize, keyword: &str) -> Option<&Value> {
        self.positional.get(index).or_else(|| {
            self.keywords
                .iter()
                .find(|(k, _)| k == keyword)
                .map(|(_, v)| v)
        })
    }

    fn value(&self, index: usize, keyword: &str) -> Value {
        self.get(index, keyword).cloned().unwrap_or(Value::None)
    }

    fn flag(&self, keyword: &str, default: bool) -> bool {
        self.keywords
            .iter()
            .find(|(k, _)| k == keyword)
            .map(|(_, v)| v.truthy())
            .unwrap_or(default)
    }

    fn param_name(&self) -> String {
        self.first_name.clone().unwrap_or_default()
    }
}

/// A string literal as Tinybird writes it: escaped for ClickHouse, with `%` escaped as `\%` so a
/// value used in `LIKE` matches literally (ClickHouse keeps `\%` as is in string literals).
pub(crate) fn sql_string(s: &str) -> String {
    quote_string(s).replace('%', "\\%")
}

/// Calls `name` (a known function).
pub(crate) fn call(
    name: &str,
    args: Args,
    variables: &dyn Variables,
) -> Result<Value, TemplateError> {
    match name {
        "String" | "DateTime64" | "DateTime" | "Date" | "Float32" | "Float64" | "Int8"
        | "Int16" | "Int32" | "Int64" | "Int128" | "Int256" | "UInt8" | "UInt16" | "UInt32"
        | "UInt64" | "UInt128" | "UInt256" | "Int" | "Integer" => typed_scalar(name, &args),
        "Boolean" | "bool" => boolean(&args),
        "Array" => array(&args),
        "JSON" => json(&args),
        "defined" => Ok(Value::Bool(!args.value(0, "x").is_none())),
        "column" => column(&args.value(0, "x"), &args.value(1, "default")),
        "columns" => columns(&args),
        "symbol" | "Symbol" | "Column" => symbol(&args),
        "table" | "TABLE" => table(&args.value(0, "x")),
        "sql_and" => sql_and(&args),
        "split_to_array" => split_to_array(&args),
        "enumerate_with_last" => {
            let items = args.value(0, "arr").iterate()?;
            let count = items.len();
            Ok(Value::List(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, x)| Value::Tuple(vec![Value::Bool(i + 1 == count), x]))
                    .collect(),
            ))
        }
        "day_diff" => date_diff(&args, "day_diff"),
        "date_diff_in_seconds"
        | "date_diff_in_minutes"
        | "date_diff_in_hours"
        | "date_diff_in_days" => date_diff(&args, name),
        "error" => Err(TemplateError::Custom {
            status: status_code(args.get(1, "code")),
            message: args.value(0, "s").py_str(),
        }),
        "custom_error" => custom_error(&args),
        "sql_unescape" => sql_unescape(&args),
        "tb_secret" | "tb_var" => secret(&args, variables, name == "tb_secret"),
        "max_threads" => Ok(Value::Sql(match integer_of(&args.value(0, "x")) {
            Some(n) => format!("-- max_threads {n}\n"),
            None => "-- max_threads: wrong argument\n".to_string(),
        })),
        "cache_ttl" => {
            const VALID: &[&str] = &["5s", "1m", "5m", "30m", "1h"];
            match args.value(0, "ttl_expression").as_str() {
                Some(ttl) if VALID.contains(&ttl) => {
                    Ok(Value::Sql(format!("-- cache_ttl {ttl}\n")))
                }
                _ => Err(runtime(
                    "Invalid TTL cache expression, valid expressions are ('5s', '1m', '5m', '30m', '1h')",
                )),
            }
        }
        "backend_hint" => {
            let hint = args.value(0, "hint").py_str();
            let safe: String = hint
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "_-.:".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            Ok(Value::Sql(format!("-- backend_hint {safe}\n")))
        }
        "activate" => {
            const VALID: &[&str] = &[
                "analyzer",
                "parallel_replicas",
                "optimize_aggregation_in_order",
            ];
            let feature = args.value(0, "feature");
            match feature.as_str() {
                Some(f) if VALID.contains(&f) => Ok(Value::Sql(format!("-- activate {f}\n"))),
                _ => Err(runtime(format!(
                    "'{}' is not a valid 'activate' argument",
                    feature.py_str()
                ))),
            }
        }
        "disable" => {
            let feature = args.value(0, "feature");
            match feature.as_str() {
                Some("analyzer") => Ok(Value::Sql("-- disable analyzer\n".into())),
                _ => Err(runtime(format!(
                    "'{}' is not a valid 'disable' argument",
                    feature.py_str()
                ))),
            }
        }
        _ => builtin(name, &args),
    }
}

fn status_code(code: Option<&Value>) -> u16 {
    match code.map(Value::as_number) {
        Some(Ok(Some(Number::Int(code)))) if (400..=599).contains(&code) => code as u16,
        _ => 400,
    }
}

fn integer_of(value: &Value) -> Option<i128> {
    match value {
        Value::Str(s) | Value::Sql(s) => s.trim().parse().ok(),
        other => match other.as_number() {
            Ok(Some(Number::Int(i))) => Some(i),
            Ok(Some(Number::Float(f))) if f.is_finite() => Some(f.trunc() as i128),
            _ => None,
        },
    }
}

/// The single value of a parameter: repeated query parameters keep every value, and a scalar
/// function reads the last one, as a web framework's `get_argument` does.
fn scalar(value: Value) -> Value {
    match value {
        Value::List(mut items)
            if items.iter().all(|v| matches!(v, Value::Str(_))) && !items.is_empty() =>
        {
            items.pop().unwrap_or(Value::None)
        }
        other => other,
    }
}

fn invalid(name: &str, value: &str, ty: &str) -> TemplateError {
    let shown: String = value.chars().take(100).collect();
    let ellipsis = if value.chars().count() > 100 {
        "..."
    } else {
        ""
    };
    let message = if name.is_empty() {
        format!("Error validating '{shown}{ellipsis}' to type {ty}")
    } else {
        format!("Error validating '{shown}{ellipsis}' to type {ty} for parameter '{name}'")
    };
    TemplateError::InvalidParam {
        name: name.to_string(),
        message,
    }
}

/// The value of a typed call after defaults: `None` only when the call says `defined=False`.
fn resolve(args: &Args, default_index: usize) -> Result<Option<Value>, TemplateError> {
    let Some(value) = args.positional.first() else {
        return Err(runtime(
            "one of the transform type functions is missing an argument",
        ));
    };
    let value = scalar(value.clone());
    if !value.is_none() {
        return Ok(Some(value));
    }
    if args.flag("required", false) {
        return Err(TemplateError::MissingParam(args.param_name()));
    }
    let default = args.value(default_index, "default");
    if !default.is_none() {
        return Ok(Some(default));
    }
    if args.flag("defined", true) {
        Err(TemplateError::MissingParam(args.param_name()))
    } else {
        Ok(None)
    }
}

fn typed_scalar(function: &str, args: &Args) -> Result<Value, TemplateError> {
    let Some(value) = resolve(args, 1)? else {
        return Ok(Value::None);
    };
    let text = value.py_str();
    let name = args.param_name();
    match function {
        "String" => Ok(Value::Str(text)),
        "Date" | "DateTime" | "DateTime64" => {
            if check_date(function, &text) {
                Ok(Value::Str(text))
            } else {
                Err(invalid(&name, &text, function))
            }
        }
        "Float32" | "Float64" => {
            let ty = if function == "Float32" {
                "Float32"
            } else {
                "Float64"
            };
            parse_float(&text)
                .map(|value| Value::TypedFloat { value, ty })
                .ok_or_else(|| invalid(&name, &text, ty))
        }
        "Int" | "Integer" => {
            match check_int(&text, "Int32").and_then(|digits| digits.parse::<i128>().ok()) {
                Some(i) => Ok(Value::Int(i)),
                None => Err(invalid(&name, &text, "Int32")),
            }
        }
        _ => {
            let ty =
                int_type(function).ok_or_else(|| runtime(format!("unknown type {function}")))?;
            check_int(&text, ty)
                .map(|digits| Value::TypedInt { digits, ty })
                .ok_or_else(|| invalid(&name, &text, ty))
        }
    }
}

fn int_type(name: &str) -> Option<&'static str> {
    const TYPES: &[&str] = &[
        "Int8", "Int16", "Int32", "Int64", "Int128", "Int256", "UInt8", "UInt16", "UInt32",
        "UInt64", "UInt128", "UInt256",
    ];
    TYPES.iter().find(|t| **t == name).copied()
}

/// 2^n in decimal.
fn pow2_decimal(n: u32) -> String {
    let mut digits = vec![1u8]; // little-endian
    for _ in 0..n {
        let mut carry = 0;
        for d in digits.iter_mut() {
            let v = *d * 2 + carry;
            *d = v % 10;
            carry = v / 10;
        }
        if carry > 0 {
            digits.push(carry);
        }
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

fn decimal_less(a: &str, b: &str) -> bool {
    a.len() < b.len() || a.len() == b.len() && a < b
}

/// Validates an integer of ClickHouse type `ty` as Tinybird does (`[+-]?\d+`, no sign for
/// `UInt8`..`UInt64`, range checked) and returns it normalized.
pub(crate) fn check_int(text: &str, ty: &str) -> Option<String> {
    let signed = ty.starts_with("Int");
    let bits: u32 = ty
        .trim_start_matches('U')
        .trim_start_matches("Int")
        .parse()
        .ok()?;
    let (negative, digits) = match text.as_bytes().first()? {
        b'+' | b'-' if !signed && bits <= 64 => return None,
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    let magnitude = if trimmed.is_empty() { "0" } else { trimmed };
    let bound = pow2_decimal(if signed { bits - 1 } else { bits });
    let fits = match (signed, negative) {
        (_, true) if magnitude == "0" => true,
        (true, true) => !decimal_less(&bound, magnitude),
        (false, true) => false,
        (_, false) => decimal_less(magnitude, &bound),
    };
    if !fits {
        return None;
    }
    Some(if negative && magnitude != "0" {
        format!("-{magnitude}")
    } else {
        magnitude.to_string()
    })
}

/// Python's `float()` of a string, without `_` (Tinybird's `float_test`).
fn parse_float(text: &str) -> Option<f64> {
    if text.contains('_') {
        return None;
    }
    text.trim().parse::<f64>().ok()
}

/// Tinybird's date testers: `Date` is exactly `dddd-dd-dd`; `DateTime` and `DateTime64` only need
/// to start like one (`dddd?dd?dd[T ]dd:dd:dd`, with `.ddd` for DateTime64, or the day-first form).
fn check_date(ty: &str, text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    // A pattern: 'd' a digit, '.' any char but newline, 's' 'T' or whitespace, 'D' an optional
    // second digit, anything else literal.
    fn matches_prefix(chars: &[char], pattern: &str, full: bool) -> bool {
        let mut i = 0;
        for p in pattern.chars() {
            match p {
                'D' => {
                    if chars.get(i).is_some_and(char::is_ascii_digit) {
                        i += 1;
                    }
                    continue;
                }
                _ => {
                    let Some(&c) = chars.get(i) else {
                        return false;
                    };
                    let ok = match p {
                        'd' => c.is_ascii_digit(),
                        '.' => c != '\n',
                        's' => c == 'T' || c.is_whitespace(),
                        literal => c == literal,
                    };
                    if !ok {
                        return false;
                    }
                    i += 1;
                }
            }
        }
        !full || i == chars.len()
    }
    match ty {
        "Date" => matches_prefix(&chars, "dddd-dd-dd", true),
        "DateTime" => {
            matches_prefix(&chars, "dddd.dd.ddsdd:dd:dd", false)
                || matches_prefix(&chars, "dd.dd.dddd.dD:dD:dD", false)
        }
        _ => {
            matches_prefix(&chars, "dddd.dd.ddsdd:dd:dd.ddd", false)
                || matches_prefix(&chars, "dd.dd.dddd.dD:dD:dD.dDD", false)
        }
    }
}

fn boolean(args: &Args) -> Result<Value, TemplateError> {
    fn of(value: &Value) -> i128 {
        match value {
            Value::Str(s) if s == "0" || s.to_lowercase() == "false" => 0,
            other => i128::from(other.truthy()),
        }
    }
    let value = scalar(args.value(0, "x"));
    if value.is_none() {
        if args.flag("required", false) {
            return Err(TemplateError::MissingParam(args.param_name()));
        }
        let default = args.value(1, "default");
        return Ok(Value::Int(if default.is_none() { 0 } else { of(&default) }));
    }
    Ok(Value::Int(of(&value)))
}

/// Renders one element of `Array(x, 'Type')`, validated by type.
fn array_element(
    ty: &str,
    item: &Value,
    index: usize,
    whole: &str,
    name: &str,
) -> Result<String, TemplateError> {
    let text = item.py_str();
    let fail = || {
        let shown = if text.is_empty() {
            "empty string".to_string()
        } else {
            text.clone()
        };
        let message = format!("Error validating [{whole}][{index}] ({shown}) to type {ty}");
        let message = if name.is_empty() {
            message
        } else {
            format!("{message} for parameter '{name}'")
        };
        TemplateError::InvalidParam {
            name: name.to_string(),
            message,
        }
    };
    match ty {
        "Int" | "Integer" => check_int(&text, "Int32").ok_or_else(fail),
        "Float32" | "Float64" => parse_float(&text)
            .map(super::value::float_repr)
            .ok_or_else(fail),
        "Date" | "DateTime" | "DateTime64" if check_date(ty, &text) => Ok(sql_string(&text)),
        "Date" | "DateTime" | "DateTime64" => Err(fail()),
        "Boolean" | "bool" => Ok(match item {
            Value::Str(s) if s == "0" || s.to_lowercase() == "false" => "0".into(),
            other => i128::from(other.truthy()).to_string(),
        }),
        _ => match int_type(ty) {
            Some(int) => check_int(&text, int).ok_or_else(fail),
            None => Ok(sql_string(&text)),
        },
    }
}

fn array(args: &Args) -> Result<Value, TemplateError> {
    let ty = match args.get(1, "_type") {
        Some(Value::Str(t)) => t.clone(),
        _ => "String".to_string(),
    };
    let Some(first) = args.positional.first() else {
        return Err(runtime(
            "one of the transform type functions is missing an argument",
        ));
    };
    let mut value = first.clone();
    if value.is_none() {
        if args.flag("required", false) {
            return Err(TemplateError::MissingParam(args.param_name()));
        }
        value = args.value(2, "default");
        if value.is_none() {
            if args.flag("defined", true) {
                return Err(TemplateError::MissingParam(args.param_name()));
            }
            return Ok(Value::None);
        }
    }
    let (items, whole) = match &value {
        Value::List(items) | Value::Tuple(items) => (
            items.clone(),
            items
                .iter()
                .map(Value::py_str)
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Str(s) | Value::Sql(s) => (
            s.split(',').map(|p| Value::Str(p.to_string())).collect(),
            s.clone(),
        ),
        _ => return Err(runtime("transform type function Array is not well defined")),
    };
    let name = args.param_name();
    let rendered = items
        .iter()
        .enumerate()
        .map(|(i, item)| array_element(&ty, item, i, &whole, &name))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Sql(format!("[{}]", rendered.join(","))))
}

/// Converts a parameter's raw values to the typed list Tinybird passes to templates whose
/// parameter is declared `Array(Type)`; `None` when a value does not fit (the `Array()` call then
/// reports it).
pub(crate) fn array_param(ty: &str, values: &[String]) -> Option<Value> {
    let items: Vec<&str> = match values {
        [single] => single.split(',').collect(),
        many => many.iter().map(String::as_str).collect(),
    };
    let convert = |text: &str| -> Option<Value> {
        Some(match ty {
            "Float32" | "Float64" => Value::Float(parse_float(text)?),
            "Boolean" | "bool" => Value::Int(i128::from(
                !(text == "0" || text.eq_ignore_ascii_case("false") || text.is_empty()),
            )),
            "Int" | "Integer" => Value::Int(check_int(text, "Int32")?.parse().ok()?),
            "Date" | "DateTime" | "DateTime64" => {
                check_date(ty, text).then(|| Value::Str(text.to_string()))?
            }
            _ => match int_type(ty) {
                Some(int) => Value::Int(check_int(text, int)?.parse().ok()?),
                None => Value::Str(text.to_string()),
            },
        })
    };
    items
        .into_iter()
        .map(convert)
        .collect::<Option<Vec<_>>>()
        .map(Value::List)
}

fn json(args: &Args) -> Result<Value, TemplateError> {
    let mut value = scalar(args.value(0, "x"));
    if value.is_none() {
        value = match args.value(1, "default") {
            Value::Str(s) => Value::Str(s),
            _ => Value::Str("{}".into()),
        };
    }
    let Some(text) = value.as_str() else {
        return Ok(value);
    };
    let shown = if text.chars().count() > 16 {
        format!("{}...", text.chars().take(16).collect::<String>())
    } else {
        text.to_string()
    };
    let parsed: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| runtime(format!("Error parsing JSON: '{shown}' - {e}")))?;
    Ok(from_json(parsed))
}

pub(crate) fn from_json(value: serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::None,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i128::from(i)),
            (_, Some(u)) => Value::Int(i128::from(u)),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Str(s),
        serde_json::Value::Array(items) => Value::List(items.into_iter().map(from_json).collect()),
        serde_json::Value::Object(entries) => Value::Dict(
            entries
                .into_iter()
                .map(|(k, v)| (Value::Str(k), from_json(v)))
                .collect(),
        ),
    }
}

/// `` `a`.`b` `` from `a.b`: each dotted part quoted as an identifier. Tinybird drops double quotes.
fn identifier(text: &str) -> String {
    text.split('.')
        .map(|part| quote_ident(&part.replace('"', "")))
        .collect::<Vec<_>>()
        .join(".")
}

fn column(value: &Value, default: &Value) -> Result<Value, TemplateError> {
    let value = scalar(value.clone());
    let value = if value.is_none() {
        if default.is_none() {
            return Err(runtime(
                "Missing column() default value, use `column(column_name, 'default_column_name')`",
            ));
        }
        default.clone()
    } else {
        value
    };
    match value.as_str() {
        Some(name) => Ok(Value::Sql(identifier(name))),
        None => Err(runtime(format!(
            "column() expects a column name, not {}",
            value.type_name()
        ))),
    }
}

fn is_plain_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn columns(args: &Args) -> Result<Value, TemplateError> {
    let mut value = args.value(0, "x");
    if value.is_none() {
        value = args.value(1, "default");
        if value.is_none() {
            return Err(runtime(
                "Missing columns() default value, use `columns(column_names, 'default_column_name')`",
            ));
        }
    }
    let Some(list) = value.as_str() else {
        return Err(runtime(
            "The 'columns' function expects a String not an Array",
        ));
    };
    let function = match args.value(2, "fn") {
        Value::None => None,
        Value::Str(f) if is_plain_identifier(&f) => Some(f),
        other => {
            return Err(runtime(format!(
                "columns() fn must be a function name, not {}",
                other.py_repr()
            )));
        }
    };
    let rendered: Vec<String> = list
        .split(',')
        .map(str::trim)
        .map(|name| match &function {
            Some(f) => format!(
                "{f}({}) as {}",
                identifier(name),
                quote_ident(&name.replace('"', ""))
            ),
            None => identifier(name),
        })
        .collect();
    Ok(Value::Sql(rendered.join(",")))
}

fn symbol(args: &Args) -> Result<Value, TemplateError> {
    let value = scalar(args.value(0, "x"));
    let Some(name) = value.as_str() else {
        return Err(runtime(format!(
            "symbol() expects a name, not {}",
            value.type_name()
        )));
    };
    let name = name.replace('"', "");
    match args.get(1, "quote").and_then(Value::as_str).unwrap_or("`") {
        "`" => Ok(Value::Sql(quote_ident(&name))),
        "\"" => Ok(Value::Sql(format!("\"{}\"", name.replace('\\', "\\\\")))),
        other => Err(runtime(format!(
            "symbol() quote must be '`' or '\"', not '{other}'"
        ))),
    }
}

fn table(value: &Value) -> Result<Value, TemplateError> {
    let value = scalar(value.clone());
    let name = value
        .as_str()
        .map(|s| s.replace('"', ""))
        .unwrap_or_default();
    if name.split('.').all(is_plain_identifier) {
        Ok(Value::Sql(name))
    } else {
        Err(runtime(format!("Invalid table name {}", value.py_repr())))
    }
}

/// Renders a value into SQL: strings as escaped literals, SQL fragments as they are, numbers as
/// Python prints them, lists as ClickHouse arrays. `None` has no SQL form (Tinybird refuses it).
pub(crate) fn render_value(value: &Value, source: &str) -> Result<String, TemplateError> {
    match value {
        Value::Str(s) => Ok(sql_string(s)),
        Value::Sql(s) => Ok(s.clone()),
        Value::None => {
            let shown = if source.chars().count() > 20 {
                format!("{}...", source.chars().take(20).collect::<String>())
            } else {
                source.to_string()
            };
            Err(runtime(format!("expression \"{shown}\" evaluated to null")))
        }
        Value::List(items) => Ok(format!("[{}]", render_items(items)?)),
        Value::Tuple(items) => Ok(format!("({})", render_items(items)?)),
        Value::Dict(_) => Err(TemplateError::Unsupported(format!(
            "expression \"{source}\" is a dict, which has no SQL form; render one of its values"
        ))),
        other => Ok(other.py_str()),
    }
}

fn render_items(items: &[Value]) -> Result<String, TemplateError> {
    let rendered = items
        .iter()
        .map(|item| match item {
            Value::None => Ok("NULL".to_string()),
            other => render_value(other, "item"),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rendered.join(","))
}

fn sql_and(args: &Args) -> Result<Value, TemplateError> {
    let mut conditions = Vec::new();
    for (key, value) in &args.keywords {
        if value.is_none() {
            continue;
        }
        let (column, operator) = match key.rsplit_once("__") {
            None => (key.as_str(), "="),
            Some((column, suffix)) => {
                let operator = match suffix {
                    "in" => "in",
                    "not_in" => "not in",
                    "gt" => ">",
                    "lt" => "<",
                    "gte" => ">=",
                    "lte" => "<=",
                    other => return Err(runtime(format!("operand {other} not supported"))),
                };
                (column, operator)
            }
        };
        // Keyword names are identifiers of the template's own source, never caller input.
        conditions.push(format!("{column} {operator} {}", render_value(value, key)?));
    }
    Ok(Value::Sql(conditions.join(" and ")))
}

fn split_to_array(args: &Args) -> Result<Value, TemplateError> {
    let mut value = args.value(0, "x");
    if value.is_none() {
        value = args
            .get(1, "default")
            .cloned()
            .unwrap_or_else(|| Value::Str(String::new()));
    }
    let separator = match args.get(2, "separator") {
        None => ",".to_string(),
        Some(Value::Str(s)) if !s.is_empty() => s.clone(),
        Some(_) => {
            return Err(runtime(
                "split_to_array separator must be a non-empty string",
            ));
        }
    };
    match &value {
        Value::Str(s) | Value::Sql(s) => Ok(Value::List(
            s.split(separator.as_str())
                .map(|p| Value::Str(p.trim().to_string()))
                .collect(),
        )),
        // Repeated query parameters arrive as a list already.
        Value::List(items) if items.iter().all(|i| matches!(i, Value::Str(_))) => Ok(Value::List(
            items
                .iter()
                .map(|i| Value::Str(i.as_str().unwrap_or_default().trim().to_string()))
                .collect(),
        )),
        _ => Err(runtime(
            "First argument of split_to_array has to be a value that can be split to a list of elements",
        )),
    }
}

fn custom_error(args: &Args) -> Result<Value, TemplateError> {
    let error = args.value(0, "s");
    let mut status = status_code(args.get(1, "code"));
    let message = match &error {
        Value::Dict(entries) => {
            let field = |name: &str| {
                entries
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(name))
                    .map(|(_, v)| v.clone())
            };
            if args.get(1, "code").is_none()
                && let Some(code) = field("code")
            {
                status = status_code(Some(&code));
            }
            match field("error") {
                Some(Value::Str(message)) => message,
                _ => to_json(&error).to_string(),
            }
        }
        other => other.py_str(),
    };
    Err(TemplateError::Custom { status, message })
}

fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::None => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => i64::try_from(*i)
            .map(Into::into)
            .unwrap_or_else(|_| i.to_string().into()),
        Value::Float(f) | Value::TypedFloat { value: f, .. } => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::TypedInt { digits, .. } => digits
            .parse::<i64>()
            .map(Into::into)
            .unwrap_or_else(|_| digits.clone().into()),
        Value::Str(s) | Value::Sql(s) => s.clone().into(),
        Value::List(items) | Value::Tuple(items) => items.iter().map(to_json).collect(),
        Value::Dict(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.py_str(), to_json(v)))
                .collect(),
        ),
    }
}

fn sql_unescape(args: &Args) -> Result<Value, TemplateError> {
    let value = args.value(0, "x");
    let Some(text) = value.as_str() else {
        return Err(runtime(format!(
            "sql_unescape() expects a string, not {}",
            value.type_name()
        )));
    };
    let what = match args.value(1, "what") {
        Value::None => String::new(),
        other => other.py_str(),
    };
    // Only punctuation other than the quote and the backslash may be unescaped: those two are
    // what keeps the literal closed.
    if let Some(bad) = what
        .chars()
        .find(|c| !c.is_ascii_punctuation() || *c == '\'' || *c == '\\')
    {
        return Err(runtime(format!("sql_unescape() cannot unescape {bad:?}")));
    }
    let mut literal = sql_string(text);
    for c in what.chars() {
        literal = literal.replace(&format!("\\{c}"), &c.to_string());
    }
    Ok(Value::Sql(literal))
}

fn secret(args: &Args, variables: &dyn Variables, is_secret: bool) -> Result<Value, TemplateError> {
    let name = args.value(0, "x");
    let Some(name) = name.as_str() else {
        return Err(runtime("the name of a secret must be a string"));
    };
    if let Some(value) = variables.get(name, is_secret) {
        return Ok(Value::Str(value));
    }
    let default = args.value(1, "default");
    if !default.is_none() {
        return Ok(default);
    }
    Err(runtime(format!(
        "Cannot access secret '{name}'. Check the secret exists in the Workspace and the token has the required scope."
    )))
}

/// `day_diff` and `date_diff_in_*`: the absolute difference between two dates, truncated.
fn date_diff(args: &Args, function: &str) -> Result<Value, TemplateError> {
    let (unit, default_format, message): (i128, &str, &str) = match function {
        "day_diff" => (
            86_400,
            "%Y-%m-%d",
            "invalid date format in function `day_diff`, it must be ISO format date YYYY-MM-DD, e.g. 2018-09-26. For other fotmats, try `date_diff_in_days`",
        ),
        "date_diff_in_days" => (
            86_400,
            "%Y-%m-%d",
            "invalid date format in function `date_diff_in_days`, it must be ISO format date YYYY-MM-DD, e.g. 2018-09-26",
        ),
        "date_diff_in_hours" => (
            3_600,
            "%Y-%m-%d %H:%M:%S",
            "invalid date_format in function `date_diff_in_hours`, defaults to YYYY-MM-DD hh:mm:ss. Or %Y-%m-%d %H:%M:%S [.ssssss]Z, e.g. ms: 2022-12-19T18:42:22.591Z s:2022-12-19T18:42:22Z",
        ),
        "date_diff_in_minutes" => (
            60,
            "%Y-%m-%d %H:%M:%S",
            "invalid date_format in function `date_diff_in_seconds`, defaults to YYYY-MM-DD hh:mm:ss. Or %Y-%m-%d %H:%M:%S [.ssssss]Z, e.g. ms: 2022-12-19T18:42:22.591Z s:2022-12-19T18:42:22Z",
        ),
        _ => (
            1,
            "%Y-%m-%d %H:%M:%S",
            "invalid date_format in function `date_diff_in_seconds`, defaults to YYYY-MM-DD hh:mm:ss. Or %Y-%m-%d %H:%M:%S [.ssssss]Z, e.g. ms: 2022-12-19T18:42:22.591Z s:2022-12-19T18:42:22Z",
        ),
    };
    let format = if function == "day_diff" {
        default_format.to_string()
    } else {
        args.get(2, "date_format")
            .and_then(Value::as_str)
            .unwrap_or(default_format)
            .to_string()
    };
    let backup = if function == "day_diff" {
        None
    } else {
        args.get(4, "backup_date_format")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let none_if_error =
        function != "day_diff" && args.get(5, "none_if_error").is_some_and(Value::truthy);
    let parse = |value: Value| -> Option<i128> {
        let text = scalar(value);
        let text = text.as_str()?;
        strptime(text, &format).or_else(|| backup.as_deref().and_then(|b| strptime(text, b)))
    };
    match (parse(args.value(0, "d0")), parse(args.value(1, "d1"))) {
        (Some(a), Some(b)) => Ok(Value::Int((a - b).abs() / (unit * 1_000_000))),
        _ if none_if_error => Ok(Value::None),
        _ => Err(runtime(message)),
    }
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A subset of Python's `datetime.strptime` (`%Y %m %d %H %M %S %f %y %z %%`, literals matched
/// without case, whitespace matching any run of whitespace); returns microseconds since the epoch.
pub(crate) fn strptime(text: &str, format: &str) -> Option<i128> {
    let input: Vec<char> = text.chars().collect();
    let mut i = 0;
    let (mut year, mut month, mut day, mut hour, mut minute, mut second, mut micros, mut offset) =
        (1900i64, 1i64, 1i64, 0i64, 0i64, 0i64, 0i64, 0i64);
    let number = |i: &mut usize, min: usize, max: usize| -> Option<(i64, usize)> {
        let start = *i;
        while *i < input.len() && *i - start < max && input[*i].is_ascii_digit() {
            *i += 1;
        }
        if *i - start < min {
            return None;
        }
        let digits: String = input[start..*i].iter().collect();
        Some((digits.parse().ok()?, *i - start))
    };
    let mut spec = format.chars().peekable();
    while let Some(f) = spec.next() {
        if f == '%' {
            match spec.next()? {
                'Y' => year = number(&mut i, 4, 4)?.0,
                'y' => {
                    let y = number(&mut i, 2, 2)?.0;
                    year = if y < 69 { 2000 + y } else { 1900 + y };
                }
                'm' => month = number(&mut i, 1, 2)?.0,
                'd' => day = number(&mut i, 1, 2)?.0,
                'H' => hour = number(&mut i, 1, 2)?.0,
                'M' => minute = number(&mut i, 1, 2)?.0,
                'S' => second = number(&mut i, 1, 2)?.0,
                'f' => {
                    let (value, width) = number(&mut i, 1, 6)?;
                    micros = value * 10i64.pow(6 - width as u32);
                }
                'z' => {
                    if input.get(i).is_some_and(|c| *c == 'Z' || *c == 'z') {
                        i += 1;
                    } else {
                        let sign = match input.get(i)? {
                            '+' => 1,
                            '-' => -1,
                            _ => return None,
                        };
                        i += 1;
                        let hours = number(&mut i, 2, 2)?.0;
                        if input.get(i) == Some(&':') {
                            i += 1;
                        }
                        let minutes = number(&mut i, 2, 2)?.0;
                        offset = sign * (hours * 3600 + minutes * 60);
                    }
                }
                '%' => {
                    if input.get(i) != Some(&'%') {
                        return None;
                    }
                    i += 1;
                }
                _ => return None,
            }
        } else if f.is_whitespace() {
            let start = i;
            while i < input.len() && input[i].is_whitespace() {
                i += 1;
            }
            if i == start {
                return None;
            }
            while spec.peek().is_some_and(|c| c.is_whitespace()) {
                spec.next();
            }
        } else {
            let c = *input.get(i)?;
            if !c.to_lowercase().eq(f.to_lowercase()) {
                return None;
            }
            i += 1;
        }
    }
    if i != input.len() {
        return None;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
        || year < 1
    {
        return None;
    }
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(i128::from(seconds) * 1_000_000 + i128::from(micros))
}

fn builtin(name: &str, args: &Args) -> Result<Value, TemplateError> {
    let first = || {
        args.positional
            .first()
            .cloned()
            .ok_or_else(|| runtime(format!("{name}() takes at least one argument")))
    };
    match name {
        "len" => Ok(Value::Int(first()?.len()? as i128)),
        "list" => Ok(Value::List(match args.positional.first() {
            Some(v) => v.iterate()?,
            None => Vec::new(),
        })),
        "str" => Ok(Value::Str(
            args.positional
                .first()
                .map(Value::py_str)
                .unwrap_or_default(),
        )),
        "int" => {
            let value = first()?;
            match &value {
                Value::Str(s) | Value::Sql(s) => {
                    let cleaned = s.trim().replace('_', "");
                    cleaned.parse::<i128>().map(Value::Int).map_err(|_| {
                        runtime(format!(
                            "invalid literal for int() with base 10: {}",
                            value.py_repr()
                        ))
                    })
                }
                other => match other.as_number()? {
                    Some(Number::Int(i)) => Ok(Value::Int(i)),
                    Some(Number::Float(f)) if f.is_finite() => Ok(Value::Int(f.trunc() as i128)),
                    _ => Err(runtime(format!(
                        "int() argument must be a string or a number, not '{}'",
                        other.type_name()
                    ))),
                },
            }
        }
        "float" => {
            let value = first()?;
            match &value {
                Value::Str(s) | Value::Sql(s) => {
                    parse_float(s).map(Value::Float).ok_or_else(|| {
                        runtime(format!(
                            "could not convert string to float: {}",
                            value.py_repr()
                        ))
                    })
                }
                other => match other.as_number()? {
                    Some(n) => Ok(Value::Float(match n {
                        Number::Int(i) => i as f64,
                        Number::Float(f) => f,
                    })),
                    None => Err(runtime(format!(
                        "float() argument must be a string or a number, not '{}'",
                        other.type_name()
                    ))),
                },
            }
        }
        "min" | "max" => {
            let items = if args.positional.len() == 1 {
                first()?.iterate()?
            } else {
                args.positional.clone()
            };
            let mut best: Option<Value> = None;
            for item in items {
                best = Some(match best {
                    None => item,
                    Some(current) => {
                        let ordering =
                            compare(&item, &current, if name == "min" { "<" } else { ">" })?;
                        let better = if name == "min" {
                            ordering.is_lt()
                        } else {
                            ordering.is_gt()
                        };
                        if better { item } else { current }
                    }
                });
            }
            best.ok_or_else(|| runtime(format!("{name}() arg is an empty sequence")))
        }
        "sum" => {
            let mut total = args.value(1, "start");
            if total.is_none() {
                total = Value::Int(0);
            }
            for item in first()?.iterate()? {
                total = super::value::binary(super::value::BinaryOp::Add, &total, &item)?;
            }
            Ok(total)
        }
        "enumerate" => {
            let start = integer_of(&args.value(1, "start")).unwrap_or(0);
            Ok(Value::List(
                first()?
                    .iterate()?
                    .into_iter()
                    .enumerate()
                    .map(|(i, x)| Value::Tuple(vec![Value::Int(start + i as i128), x]))
                    .collect(),
            ))
        }
        "range" => {
            let numbers = args
                .positional
                .iter()
                .map(|v| match v.as_number()? {
                    Some(Number::Int(i)) => Ok(i),
                    _ => Err(runtime(format!(
                        "'{}' object cannot be interpreted as an integer",
                        v.type_name()
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let (start, stop, step) = match numbers.as_slice() {
                [stop] => (0, *stop, 1),
                [start, stop] => (*start, *stop, 1),
                [start, stop, step] if *step != 0 => (*start, *stop, *step),
                _ => {
                    return Err(runtime(
                        "range() takes 1 to 3 integer arguments, the step not zero",
                    ));
                }
            };
            let count = if step > 0 {
                (stop - start + step - 1).max(0) / step
            } else {
                (start - stop - step - 1).max(0) / -step
            };
            if count > MAX_COLLECTION as i128 {
                return Err(TemplateError::Unsupported(format!(
                    "a template may not build more than {MAX_COLLECTION} items"
                )));
            }
            Ok(Value::List(
                (0..count).map(|i| Value::Int(start + i * step)).collect(),
            ))
        }
        "abs" => match first()?.as_number()? {
            Some(Number::Int(i)) => Ok(Value::Int(i.abs())),
            Some(Number::Float(f)) => Ok(Value::Float(f.abs())),
            None => Err(runtime("bad operand type for abs()")),
        },
        "round" => {
            let digits = integer_of(&args.value(1, "ndigits"));
            match (first()?.as_number()?, digits) {
                (Some(Number::Int(i)), _) => Ok(Value::Int(i)),
                (Some(Number::Float(f)), None) => Ok(Value::Int(round_half_even(f) as i128)),
                (Some(Number::Float(f)), Some(d)) => {
                    let scale = 10f64.powi(d.clamp(-300, 300) as i32);
                    Ok(Value::Float(round_half_even(f * scale) / scale))
                }
                (None, _) => Err(runtime("type doesn't define __round__ method")),
            }
        }
        "sorted" => {
            let mut items = first()?.iterate()?;
            let mut failure = None;
            items.sort_by(|a, b| {
                compare(a, b, "<").unwrap_or_else(|e| {
                    failure.get_or_insert(e);
                    std::cmp::Ordering::Equal
                })
            });
            if let Some(e) = failure {
                return Err(e);
            }
            if args.flag("reverse", false) {
                items.reverse();
            }
            Ok(Value::List(items))
        }
        _ => Err(TemplateError::Syntax(format!(
            "Invalid function name: {name}"
        ))),
    }
}

fn round_half_even(f: f64) -> f64 {
    let rounded = f.round();
    if (f - f.trunc()).abs() == 0.5 && rounded % 2.0 != 0.0 {
        rounded - f.signum()
    } else {
        rounded
    }
}

/// Python string and dict methods.
pub(crate) fn method(target: &Value, name: &str, args: &Args) -> Result<Value, TemplateError> {
    if let Value::Dict(entries) = target {
        let lookup = |key: &Value| {
            entries
                .iter()
                .find(|(k, _)| equals(k, key))
                .map(|(_, v)| v.clone())
        };
        return match name {
            "get" => Ok(lookup(&args.value(0, "key")).unwrap_or_else(|| args.value(1, "default"))),
            "keys" => Ok(Value::List(
                entries.iter().map(|(k, _)| k.clone()).collect(),
            )),
            "values" => Ok(Value::List(
                entries.iter().map(|(_, v)| v.clone()).collect(),
            )),
            "items" => Ok(Value::List(
                entries
                    .iter()
                    .map(|(k, v)| Value::Tuple(vec![k.clone(), v.clone()]))
                    .collect(),
            )),
            _ => Err(no_attribute(target, name)),
        };
    }
    let Some(text) = target.as_str() else {
        return Err(no_attribute(target, name));
    };
    let string_arg = |index: usize, keyword: &str| -> Result<Option<String>, TemplateError> {
        match args.get(index, keyword) {
            None | Some(Value::None) => Ok(None),
            Some(v) => v.as_str().map(|s| Some(s.to_string())).ok_or_else(|| {
                runtime(format!(
                    "{name}() argument must be str, not {}",
                    v.type_name()
                ))
            }),
        }
    };
    Ok(match name {
        "split" => {
            let parts: Vec<Value> = match string_arg(0, "sep")? {
                Some(sep) if sep.is_empty() => return Err(runtime("empty separator")),
                Some(sep) => text
                    .split(sep.as_str())
                    .map(|p| Value::Str(p.to_string()))
                    .collect(),
                None => text
                    .split_whitespace()
                    .map(|p| Value::Str(p.to_string()))
                    .collect(),
            };
            Value::List(parts)
        }
        "join" => {
            let items = args.value(0, "iterable").iterate()?;
            let parts = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    item.as_str().map(str::to_string).ok_or_else(|| {
                        runtime(format!(
                            "sequence item {i}: expected str instance, {} found",
                            item.type_name()
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Value::Str(parts.join(text))
        }
        "replace" => {
            let old = string_arg(0, "old")?
                .ok_or_else(|| runtime("replace() takes two string arguments"))?;
            let new = string_arg(1, "new")?
                .ok_or_else(|| runtime("replace() takes two string arguments"))?;
            let replaced = text.replace(&old, &new);
            if replaced.len() > MAX_COLLECTION {
                return Err(TemplateError::Unsupported(format!(
                    "a template may not build strings longer than {MAX_COLLECTION} bytes"
                )));
            }
            Value::Str(replaced)
        }
        "lower" => Value::Str(text.to_lowercase()),
        "upper" => Value::Str(text.to_uppercase()),
        "strip" | "lstrip" | "rstrip" => {
            let chars = string_arg(0, "chars")?;
            let matcher = |c: char| match &chars {
                Some(set) => set.contains(c),
                None => c.is_whitespace(),
            };
            Value::Str(
                match name {
                    "strip" => text.trim_matches(matcher),
                    "lstrip" => text.trim_start_matches(matcher),
                    _ => text.trim_end_matches(matcher),
                }
                .to_string(),
            )
        }
        "startswith" | "endswith" => {
            let affix = string_arg(0, "prefix")?
                .ok_or_else(|| runtime(format!("{name}() takes a string argument")))?;
            Value::Bool(if name == "startswith" {
                text.starts_with(&affix)
            } else {
                text.ends_with(&affix)
            })
        }
        _ => return Err(no_attribute(target, name)),
    })
}

fn no_attribute(target: &Value, name: &str) -> TemplateError {
    runtime(format!(
        "'{}' object has no attribute '{name}'",
        target.type_name()
    ))
}
