//! ClickHouse column types: parsing the spellings ClickHouse accepts and printing the canonical one.

use std::fmt;
use std::str::FromStr;

use crate::lex::read_quoted;
use crate::names::{is_plain_identifier, quote_ident, quote_string};

/// A ClickHouse data type, as used in Tinybird schemas.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChType {
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    UInt128,
    UInt256,
    Int8,
    Int16,
    Int32,
    Int64,
    Int128,
    Int256,
    Float32,
    Float64,
    /// `Decimal(P, S)`; `Decimal32(S)`, `Decimal64(S)`, `Decimal128(S)` and `Decimal256(S)` parse to
    /// precision 9, 18, 38 and 76.
    Decimal {
        /// Total number of digits, 1 to 76.
        precision: u8,
        /// Digits after the decimal point, at most `precision`.
        scale: u8,
    },
    Bool,
    String,
    /// `FixedString(N)`, N bytes.
    FixedString(usize),
    Uuid,
    Date,
    Date32,
    /// `DateTime` with an optional timezone.
    DateTime(Option<String>),
    /// `DateTime64(precision)` with an optional timezone; precision is 0 to 9.
    DateTime64(u8, Option<String>),
    IPv4,
    IPv6,
    Enum8(Vec<(String, i8)>),
    Enum16(Vec<(String, i16)>),
    Array(Box<ChType>),
    Map(Box<ChType>, Box<ChType>),
    /// Elements are either all named or all unnamed.
    Tuple(Vec<(Option<String>, ChType)>),
    Nullable(Box<ChType>),
    LowCardinality(Box<ChType>),
    /// ClickHouse's `JSON` type (without parameters).
    Json,
    /// `AggregateFunction(f[(params)], T...)`: the intermediate state of an aggregate, as its
    /// `-State` combinator produces it (materialized views into AggregatingMergeTree).
    AggregateFunction(AggregateSignature),
    /// `SimpleAggregateFunction(f, T)`: plain values of `T` that merges combine with `f`.
    SimpleAggregateFunction(AggregateSignature),
}

/// An aggregate function and the types it takes, as the aggregate column types name them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AggregateSignature {
    /// The function with its combinators, e.g. `uniq` or `sumIf`.
    pub function: String,
    /// Parameters, canonical literals (numbers, quoted strings): `0.5, 0.9` in `quantiles(0.5, 0.9)`.
    pub parameters: Vec<String>,
    /// Argument types.
    pub arguments: Vec<ChType>,
}

impl fmt::Display for AggregateSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.function)?;
        if !self.parameters.is_empty() {
            write!(f, "({})", self.parameters.join(", "))?;
        }
        for argument in &self.arguments {
            write!(f, ", {argument}")?;
        }
        Ok(())
    }
}

/// A type string that is not a ClickHouse type this crate understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    /// The text does not follow the type grammar.
    #[error("invalid type '{input}' at position {position}: {reason}")]
    Syntax {
        /// The whole type string.
        input: String,
        /// Byte offset where parsing failed.
        position: usize,
        /// What was expected or found.
        reason: String,
    },
    /// The type name is not one ClickHouse knows (or one this crate supports).
    #[error("unknown type '{name}' in '{input}'")]
    Unknown {
        /// The unrecognized type name.
        name: String,
        /// The whole type string.
        input: String,
    },
    /// The type is well formed but its parameters are not allowed.
    #[error("invalid type '{input}': {reason}")]
    Invalid {
        /// The whole type string.
        input: String,
        /// Why the parameters are refused.
        reason: String,
    },
}

impl ChType {
    /// True when the column accepts NULL: `Nullable(T)` or `LowCardinality(Nullable(T))`.
    pub fn is_nullable(&self) -> bool {
        match self {
            ChType::Nullable(_) => true,
            ChType::LowCardinality(inner) => matches!(**inner, ChType::Nullable(_)),
            _ => false,
        }
    }

    /// The type inside a top-level `Nullable`, or `self`. `LowCardinality(Nullable(T))` is returned as is,
    /// since the stripped type would have to be built rather than borrowed.
    pub fn unwrap_nullable(&self) -> &ChType {
        match self {
            ChType::Nullable(inner) => inner,
            other => other,
        }
    }

    /// The type inside a top-level `LowCardinality`, or `self`.
    pub fn strip_low_cardinality(&self) -> &ChType {
        match self {
            ChType::LowCardinality(inner) => inner,
            other => other,
        }
    }

    /// The nullable version of this type: `Nullable(self)`, or `self` when it already accepts NULL.
    /// `LowCardinality(T)` becomes `LowCardinality(Nullable(T))`; types ClickHouse cannot wrap in
    /// `Nullable` (arrays, maps, tuples, JSON) are returned unchanged.
    pub fn nullable(self) -> ChType {
        if self.is_nullable() || !self.can_be_inside_nullable() {
            if let ChType::LowCardinality(inner) = self {
                if inner.is_nullable() {
                    return ChType::LowCardinality(inner);
                }
                return ChType::LowCardinality(Box::new(ChType::Nullable(inner)));
            }
            return self;
        }
        ChType::Nullable(Box::new(self))
    }

    /// False for the types ClickHouse refuses inside `Nullable(...)`.
    pub fn can_be_inside_nullable(&self) -> bool {
        !matches!(
            self,
            ChType::Array(_)
                | ChType::Map(..)
                | ChType::Tuple(_)
                | ChType::Nullable(_)
                | ChType::LowCardinality(_)
                | ChType::Json
                | ChType::AggregateFunction(_)
                | ChType::SimpleAggregateFunction(_)
        )
    }

    /// True for aggregate state columns, which only aggregate `-State` functions can fill.
    pub fn is_aggregate_state(&self) -> bool {
        matches!(self, ChType::AggregateFunction(_))
    }
}

impl FromStr for ChType {
    type Err = TypeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let mut parser = Parser { input, pos: 0 };
        let ty = parser.ty()?;
        parser.skip_ws();
        if parser.pos < input.len() {
            return Err(parser.syntax("unexpected text after the type"));
        }
        Ok(ty)
    }
}

impl fmt::Display for ChType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChType::UInt8 => f.write_str("UInt8"),
            ChType::UInt16 => f.write_str("UInt16"),
            ChType::UInt32 => f.write_str("UInt32"),
            ChType::UInt64 => f.write_str("UInt64"),
            ChType::UInt128 => f.write_str("UInt128"),
            ChType::UInt256 => f.write_str("UInt256"),
            ChType::Int8 => f.write_str("Int8"),
            ChType::Int16 => f.write_str("Int16"),
            ChType::Int32 => f.write_str("Int32"),
            ChType::Int64 => f.write_str("Int64"),
            ChType::Int128 => f.write_str("Int128"),
            ChType::Int256 => f.write_str("Int256"),
            ChType::Float32 => f.write_str("Float32"),
            ChType::Float64 => f.write_str("Float64"),
            ChType::Decimal { precision, scale } => write!(f, "Decimal({precision}, {scale})"),
            ChType::Bool => f.write_str("Bool"),
            ChType::String => f.write_str("String"),
            ChType::FixedString(n) => write!(f, "FixedString({n})"),
            ChType::Uuid => f.write_str("UUID"),
            ChType::Date => f.write_str("Date"),
            ChType::Date32 => f.write_str("Date32"),
            ChType::DateTime(None) => f.write_str("DateTime"),
            ChType::DateTime(Some(tz)) => write!(f, "DateTime({})", quote_string(tz)),
            ChType::DateTime64(precision, None) => write!(f, "DateTime64({precision})"),
            ChType::DateTime64(precision, Some(tz)) => {
                write!(f, "DateTime64({precision}, {})", quote_string(tz))
            }
            ChType::IPv4 => f.write_str("IPv4"),
            ChType::IPv6 => f.write_str("IPv6"),
            ChType::Enum8(items) => {
                write_enum(f, "Enum8", items.iter().map(|(n, v)| (n, i16::from(*v))))
            }
            ChType::Enum16(items) => write_enum(f, "Enum16", items.iter().map(|(n, v)| (n, *v))),
            ChType::Array(inner) => write!(f, "Array({inner})"),
            ChType::Map(key, value) => write!(f, "Map({key}, {value})"),
            ChType::Tuple(elements) => {
                f.write_str("Tuple(")?;
                for (i, (name, ty)) in elements.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match name {
                        Some(name) if is_plain_identifier(name) => write!(f, "{name} {ty}")?,
                        Some(name) => write!(f, "{} {ty}", quote_ident(name))?,
                        None => write!(f, "{ty}")?,
                    }
                }
                f.write_str(")")
            }
            ChType::Nullable(inner) => write!(f, "Nullable({inner})"),
            ChType::LowCardinality(inner) => write!(f, "LowCardinality({inner})"),
            ChType::Json => f.write_str("JSON"),
            ChType::AggregateFunction(signature) => write!(f, "AggregateFunction({signature})"),
            ChType::SimpleAggregateFunction(signature) => {
                write!(f, "SimpleAggregateFunction({signature})")
            }
        }
    }
}

impl serde::Serialize for ChType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ChType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn write_enum<'a>(
    f: &mut fmt::Formatter<'_>,
    family: &str,
    items: impl Iterator<Item = (&'a String, i16)>,
) -> fmt::Result {
    write!(f, "{family}(")?;
    for (i, (name, value)) in items.enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{} = {value}", quote_string(name))?;
    }
    f.write_str(")")
}

/// A type constructor, before its parameters are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Simple(SimpleKind),
    Decimal,
    DecimalFixed(u8),
    FixedString,
    DateTime,
    DateTime64,
    Enum,
    Enum8,
    Enum16,
    Array,
    Map,
    Tuple,
    Nullable,
    LowCardinality,
    Json,
    Aggregate,
    SimpleAggregate,
}

/// Types without parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SimpleKind {
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    UInt128,
    UInt256,
    Int8,
    Int16,
    Int32,
    Int64,
    Int128,
    Int256,
    Float32,
    Float64,
    Bool,
    String,
    Uuid,
    Date,
    Date32,
    IPv4,
    IPv6,
}

impl SimpleKind {
    fn to_type(self) -> ChType {
        match self {
            SimpleKind::UInt8 => ChType::UInt8,
            SimpleKind::UInt16 => ChType::UInt16,
            SimpleKind::UInt32 => ChType::UInt32,
            SimpleKind::UInt64 => ChType::UInt64,
            SimpleKind::UInt128 => ChType::UInt128,
            SimpleKind::UInt256 => ChType::UInt256,
            SimpleKind::Int8 => ChType::Int8,
            SimpleKind::Int16 => ChType::Int16,
            SimpleKind::Int32 => ChType::Int32,
            SimpleKind::Int64 => ChType::Int64,
            SimpleKind::Int128 => ChType::Int128,
            SimpleKind::Int256 => ChType::Int256,
            SimpleKind::Float32 => ChType::Float32,
            SimpleKind::Float64 => ChType::Float64,
            SimpleKind::Bool => ChType::Bool,
            SimpleKind::String => ChType::String,
            SimpleKind::Uuid => ChType::Uuid,
            SimpleKind::Date => ChType::Date,
            SimpleKind::Date32 => ChType::Date32,
            SimpleKind::IPv4 => ChType::IPv4,
            SimpleKind::IPv6 => ChType::IPv6,
        }
    }

    /// MySQL-style aliases such as `INT(11)` or `VARCHAR(255)` take a display width ClickHouse ignores.
    fn ignores_width(self) -> bool {
        !matches!(
            self,
            SimpleKind::Uuid
                | SimpleKind::Date
                | SimpleKind::Date32
                | SimpleKind::IPv4
                | SimpleKind::IPv6
        )
    }
}

/// Names matched case-sensitively, as ClickHouse registers them.
const EXACT_NAMES: &[(&str, Family)] = &[
    ("UInt8", Family::Simple(SimpleKind::UInt8)),
    ("UInt16", Family::Simple(SimpleKind::UInt16)),
    ("UInt32", Family::Simple(SimpleKind::UInt32)),
    ("UInt64", Family::Simple(SimpleKind::UInt64)),
    ("UInt128", Family::Simple(SimpleKind::UInt128)),
    ("UInt256", Family::Simple(SimpleKind::UInt256)),
    ("Int8", Family::Simple(SimpleKind::Int8)),
    ("Int16", Family::Simple(SimpleKind::Int16)),
    ("Int32", Family::Simple(SimpleKind::Int32)),
    ("Int64", Family::Simple(SimpleKind::Int64)),
    ("Int128", Family::Simple(SimpleKind::Int128)),
    ("Int256", Family::Simple(SimpleKind::Int256)),
    ("Float32", Family::Simple(SimpleKind::Float32)),
    ("Float64", Family::Simple(SimpleKind::Float64)),
    ("String", Family::Simple(SimpleKind::String)),
    ("FixedString", Family::FixedString),
    ("Array", Family::Array),
    ("Map", Family::Map),
    ("Tuple", Family::Tuple),
    ("Nullable", Family::Nullable),
    ("LowCardinality", Family::LowCardinality),
    ("AggregateFunction", Family::Aggregate),
    ("SimpleAggregateFunction", Family::SimpleAggregate),
];

/// Names and aliases ClickHouse registers case-insensitively (stored upper-case).
const CASE_INSENSITIVE_NAMES: &[(&str, Family)] = &[
    ("BOOL", Family::Simple(SimpleKind::Bool)),
    ("BOOLEAN", Family::Simple(SimpleKind::Bool)),
    ("TINYINT", Family::Simple(SimpleKind::Int8)),
    ("INT1", Family::Simple(SimpleKind::Int8)),
    ("BYTE", Family::Simple(SimpleKind::Int8)),
    ("SMALLINT", Family::Simple(SimpleKind::Int16)),
    ("INT", Family::Simple(SimpleKind::Int32)),
    ("INTEGER", Family::Simple(SimpleKind::Int32)),
    ("MEDIUMINT", Family::Simple(SimpleKind::Int32)),
    ("BIGINT", Family::Simple(SimpleKind::Int64)),
    ("FLOAT", Family::Simple(SimpleKind::Float32)),
    ("REAL", Family::Simple(SimpleKind::Float32)),
    ("SINGLE", Family::Simple(SimpleKind::Float32)),
    ("DOUBLE", Family::Simple(SimpleKind::Float64)),
    ("TEXT", Family::Simple(SimpleKind::String)),
    ("TINYTEXT", Family::Simple(SimpleKind::String)),
    ("MEDIUMTEXT", Family::Simple(SimpleKind::String)),
    ("LONGTEXT", Family::Simple(SimpleKind::String)),
    ("VARCHAR", Family::Simple(SimpleKind::String)),
    ("VARCHAR2", Family::Simple(SimpleKind::String)),
    ("NVARCHAR", Family::Simple(SimpleKind::String)),
    ("CHAR", Family::Simple(SimpleKind::String)),
    ("NCHAR", Family::Simple(SimpleKind::String)),
    ("CHARACTER", Family::Simple(SimpleKind::String)),
    ("CLOB", Family::Simple(SimpleKind::String)),
    ("BLOB", Family::Simple(SimpleKind::String)),
    ("TINYBLOB", Family::Simple(SimpleKind::String)),
    ("MEDIUMBLOB", Family::Simple(SimpleKind::String)),
    ("LONGBLOB", Family::Simple(SimpleKind::String)),
    ("BYTEA", Family::Simple(SimpleKind::String)),
    ("UUID", Family::Simple(SimpleKind::Uuid)),
    ("DATE", Family::Simple(SimpleKind::Date)),
    ("DATE32", Family::Simple(SimpleKind::Date32)),
    ("DATETIME", Family::DateTime),
    ("TIMESTAMP", Family::DateTime),
    ("DATETIME64", Family::DateTime64),
    ("IPV4", Family::Simple(SimpleKind::IPv4)),
    ("INET4", Family::Simple(SimpleKind::IPv4)),
    ("IPV6", Family::Simple(SimpleKind::IPv6)),
    ("INET6", Family::Simple(SimpleKind::IPv6)),
    ("DECIMAL", Family::Decimal),
    ("DEC", Family::Decimal),
    ("NUMERIC", Family::Decimal),
    ("FIXED", Family::Decimal),
    ("DECIMAL32", Family::DecimalFixed(9)),
    ("DECIMAL64", Family::DecimalFixed(18)),
    ("DECIMAL128", Family::DecimalFixed(38)),
    ("DECIMAL256", Family::DecimalFixed(76)),
    ("ENUM", Family::Enum),
    ("ENUM8", Family::Enum8),
    ("ENUM16", Family::Enum16),
    ("JSON", Family::Json),
];

/// Looks a type name up; the flag is true when it matched through a case-insensitive alias whose
/// canonical spelling differs.
fn family(name: &str) -> Option<(Family, bool)> {
    if let Some((_, family)) = EXACT_NAMES.iter().find(|(n, _)| *n == name) {
        return Some((*family, false));
    }
    let upper = name.to_ascii_uppercase();
    CASE_INSENSITIVE_NAMES
        .iter()
        .find(|(n, _)| *n == upper)
        .map(|(_, family)| (*family, true))
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn syntax(&self, reason: impl Into<String>) -> TypeError {
        TypeError::Syntax {
            input: self.input.to_owned(),
            position: self.pos,
            reason: reason.into(),
        }
    }

    fn invalid(&self, reason: impl Into<String>) -> TypeError {
        TypeError::Invalid {
            input: self.input.to_owned(),
            reason: reason.into(),
        }
    }

    fn skip_ws(&mut self) {
        let rest = &self.input[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.input.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), TypeError> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.syntax(format!("expected '{}'", byte as char)))
        }
    }

    fn ident(&mut self) -> Result<&'a str, TypeError> {
        self.skip_ws();
        let rest = &self.input[self.pos..];
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if len == 0 || rest.as_bytes()[0].is_ascii_digit() {
            return Err(self.syntax("expected a type name"));
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    fn quoted(&mut self) -> Result<String, TypeError> {
        if !matches!(self.peek(), Some(b'\'' | b'`' | b'"')) {
            return Err(self.syntax("expected a quoted string"));
        }
        let (text, end) =
            read_quoted(self.input, self.pos).map_err(|reason| self.syntax(reason))?;
        self.pos = end;
        Ok(text)
    }

    fn integer(&mut self) -> Result<i64, TypeError> {
        self.skip_ws();
        let rest = &self.input[self.pos..];
        let sign = usize::from(rest.starts_with('-') || rest.starts_with('+'));
        let digits = rest[sign..].bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(self.syntax("expected a number"));
        }
        let value = rest[..sign + digits]
            .parse()
            .map_err(|_| self.syntax("number out of range"))?;
        self.pos += sign + digits;
        Ok(value)
    }

    /// An integer parameter that must fit `T` and lie in `range`.
    fn bounded<T: TryFrom<i64>>(
        &mut self,
        what: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<T, TypeError> {
        let value = self.integer()?;
        if !range.contains(&value) {
            return Err(self.invalid(format!(
                "{what} must be between {} and {}, got {value}",
                range.start(),
                range.end()
            )));
        }
        T::try_from(value).map_err(|_| self.invalid(format!("{what} out of range")))
    }

    fn ty(&mut self) -> Result<ChType, TypeError> {
        let name_start = self.pos;
        let name = self.ident()?;
        let Some((family, via_alias)) = family(name) else {
            self.pos = name_start;
            return Err(TypeError::Unknown {
                name: name.to_owned(),
                input: self.input.to_owned(),
            });
        };
        let has_args = self.eat(b'(');
        let ty = match family {
            Family::Simple(kind) => {
                if has_args {
                    if !(via_alias && kind.ignores_width()) {
                        return Err(self.invalid(format!("type '{name}' takes no parameters")));
                    }
                    self.integer()?;
                    self.expect(b')')?;
                }
                return Ok(kind.to_type());
            }
            Family::Json => {
                if has_args {
                    return Err(self.invalid("JSON type parameters are not supported"));
                }
                return Ok(ChType::Json);
            }
            Family::DateTime => {
                if !has_args {
                    return Ok(ChType::DateTime(None));
                }
                ChType::DateTime(Some(self.quoted()?))
            }
            Family::DateTime64 => {
                if !has_args {
                    return Ok(ChType::DateTime64(3, None));
                }
                let precision = self.bounded("DateTime64 precision", 0..=9)?;
                let tz = if self.eat(b',') {
                    Some(self.quoted()?)
                } else {
                    None
                };
                ChType::DateTime64(precision, tz)
            }
            Family::Decimal => {
                if !has_args {
                    return Ok(ChType::Decimal {
                        precision: 10,
                        scale: 0,
                    });
                }
                let precision = self.bounded("Decimal precision", 1..=76)?;
                let scale = if self.eat(b',') {
                    self.bounded("Decimal scale", 0..=i64::from(precision))?
                } else {
                    0
                };
                ChType::Decimal { precision, scale }
            }
            Family::DecimalFixed(precision) => {
                if !has_args {
                    return Err(self.syntax(format!("{name} needs a scale, e.g. {name}(2)")));
                }
                let scale = self.bounded("Decimal scale", 0..=i64::from(precision))?;
                ChType::Decimal { precision, scale }
            }
            Family::FixedString => {
                if !has_args {
                    return Err(self.syntax("FixedString needs a length, e.g. FixedString(16)"));
                }
                ChType::FixedString(self.bounded("FixedString length", 1..=i64::from(u32::MAX))?)
            }
            Family::Enum | Family::Enum8 | Family::Enum16 => {
                if !has_args {
                    return Err(self.syntax(format!(
                        "{name} needs values, e.g. {name}('a' = 1, 'b' = 2)"
                    )));
                }
                self.enum_items(family)?
            }
            Family::Array | Family::Nullable | Family::LowCardinality => {
                if !has_args {
                    return Err(
                        self.syntax(format!("{name} needs a nested type, e.g. {name}(String)"))
                    );
                }
                let inner = self.ty()?;
                match family {
                    Family::Array => ChType::Array(Box::new(inner)),
                    Family::Nullable => {
                        if !inner.can_be_inside_nullable() {
                            return Err(self.invalid(format!(
                                "nested type {inner} cannot be inside Nullable"
                            )));
                        }
                        ChType::Nullable(Box::new(inner))
                    }
                    _ => {
                        if !inner.unwrap_nullable().can_be_inside_nullable() {
                            return Err(self.invalid(format!(
                                "nested type {inner} cannot be inside LowCardinality"
                            )));
                        }
                        ChType::LowCardinality(Box::new(inner))
                    }
                }
            }
            Family::Map => {
                if !has_args {
                    return Err(
                        self.syntax("Map needs key and value types, e.g. Map(String, UInt64)")
                    );
                }
                let key = self.ty()?;
                self.expect(b',')?;
                let value = self.ty()?;
                ChType::Map(Box::new(key), Box::new(value))
            }
            Family::Tuple => {
                if !has_args {
                    return Err(
                        self.syntax("Tuple needs element types, e.g. Tuple(a String, b Int32)")
                    );
                }
                self.tuple_elements()?
            }
            Family::Aggregate | Family::SimpleAggregate => {
                if !has_args {
                    return Err(self.syntax(format!(
                        "{name} needs a function and its argument types, e.g. {name}(sum, UInt64)"
                    )));
                }
                let signature = self.aggregate_signature()?;
                if family == Family::Aggregate {
                    ChType::AggregateFunction(signature)
                } else {
                    if signature.arguments.len() != 1 || !signature.parameters.is_empty() {
                        return Err(self.invalid(
                            "SimpleAggregateFunction takes a function without parameters and one type",
                        ));
                    }
                    ChType::SimpleAggregateFunction(signature)
                }
            }
        };
        self.expect(b')')?;
        Ok(ty)
    }

    /// `f[(params)][, T...]` inside an aggregate type. Parameters are kept as canonical literals so
    /// the printed type can never carry anything but numbers and quoted strings.
    fn aggregate_signature(&mut self) -> Result<AggregateSignature, TypeError> {
        let function = self.ident()?.to_owned();
        let mut parameters = Vec::new();
        if self.eat(b'(') && !self.eat(b')') {
            loop {
                parameters.push(self.aggregate_parameter()?);
                if !self.eat(b',') {
                    break;
                }
            }
            self.expect(b')')?;
        }
        let mut arguments = Vec::new();
        while self.eat(b',') {
            arguments.push(self.ty()?);
        }
        Ok(AggregateSignature {
            function,
            parameters,
            arguments,
        })
    }

    fn aggregate_parameter(&mut self) -> Result<String, TypeError> {
        if matches!(self.peek(), Some(b'\'')) {
            return Ok(quote_string(&self.quoted()?));
        }
        let rest = &self.input[self.pos..];
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
            .count();
        let literal = &rest[..len];
        if literal.parse::<f64>().is_err() {
            return Err(self.syntax("expected a number or a quoted string as a parameter"));
        }
        self.pos += len;
        Ok(literal.to_owned())
    }

    fn tuple_elements(&mut self) -> Result<ChType, TypeError> {
        let mut elements = Vec::new();
        loop {
            let name = if self.peek() == Some(b'`') {
                Some(self.quoted()?)
            } else {
                // `a String` names the element; a lone `String` is its type. Look past the first word.
                let start = self.pos;
                let word = self.ident()?;
                let next = self.peek();
                if matches!(next, Some(b) if b.is_ascii_alphabetic() || b == b'_') {
                    Some(word.to_owned())
                } else {
                    self.pos = start;
                    None
                }
            };
            elements.push((name, self.ty()?));
            if !self.eat(b',') {
                break;
            }
        }
        let named = elements.iter().filter(|(name, _)| name.is_some()).count();
        if named != 0 && named != elements.len() {
            return Err(self.invalid("tuple elements must be either all named or all unnamed"));
        }
        Ok(ChType::Tuple(elements))
    }

    fn enum_items(&mut self, family: Family) -> Result<ChType, TypeError> {
        let mut items: Vec<(String, Option<i64>)> = Vec::new();
        loop {
            let name = self.quoted()?;
            let value = if self.eat(b'=') {
                Some(self.integer()?)
            } else {
                None
            };
            items.push((name, value));
            if !self.eat(b',') {
                break;
            }
        }
        let explicit = items.iter().filter(|(_, v)| v.is_some()).count();
        let items: Vec<(String, i64)> = if explicit == 0 {
            // ClickHouse numbers values from 1 when none is given.
            items
                .into_iter()
                .zip(1..)
                .map(|((name, _), value)| (name, value))
                .collect()
        } else if explicit == items.len() {
            items
                .into_iter()
                .map(|(name, value)| (name, value.unwrap_or_default()))
                .collect()
        } else {
            return Err(self.invalid("enum values must be given for all elements or for none"));
        };
        for (i, (name, value)) in items.iter().enumerate() {
            if items[..i].iter().any(|(other, _)| other == name) {
                return Err(self.invalid(format!("duplicate enum element '{name}'")));
            }
            if items[..i].iter().any(|(_, other)| other == value) {
                return Err(self.invalid(format!("duplicate enum value {value}")));
            }
        }
        let fits_i8 = items.iter().all(|(_, v)| i8::try_from(*v).is_ok());
        let fits_i16 = items.iter().all(|(_, v)| i16::try_from(*v).is_ok());
        let sixteen = match family {
            Family::Enum8 if !fits_i8 => {
                return Err(self.invalid("Enum8 values must be between -128 and 127"));
            }
            Family::Enum8 => false,
            _ if !fits_i16 => {
                return Err(self.invalid("Enum16 values must be between -32768 and 32767"));
            }
            Family::Enum16 => true,
            _ => !fits_i8,
        };
        // The conversions cannot fail after the range checks above; `unwrap_or_default` keeps the
        // function panic-free.
        Ok(if sixteen {
            ChType::Enum16(
                items
                    .into_iter()
                    .map(|(n, v)| (n, i16::try_from(v).unwrap_or_default()))
                    .collect(),
            )
        } else {
            ChType::Enum8(
                items
                    .into_iter()
                    .map(|(n, v)| (n, i8::try_from(v).unwrap_or_default()))
                    .collect(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ChType {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn b(ty: ChType) -> Box<ChType> {
        Box::new(ty)
    }

    #[test]
    fn aggregate_state_types_parse_and_print_as_clickhouse_describes_them() {
        for (input, printed) in [
            (
                "AggregateFunction(uniq, String)",
                "AggregateFunction(uniq, String)",
            ),
            ("AggregateFunction(count)", "AggregateFunction(count)"),
            (
                "AggregateFunction(quantiles(0.5,0.9), Float64)",
                "AggregateFunction(quantiles(0.5, 0.9), Float64)",
            ),
            (
                "AggregateFunction(argMax, String, DateTime('UTC'))",
                "AggregateFunction(argMax, String, DateTime('UTC'))",
            ),
            (
                "AggregateFunction(sequenceMatch('(?1)(?2)'), DateTime, UInt8, UInt8)",
                "AggregateFunction(sequenceMatch('(?1)(?2)'), DateTime, UInt8, UInt8)",
            ),
            (
                "SimpleAggregateFunction(max, Nullable(Int64))",
                "SimpleAggregateFunction(max, Nullable(Int64))",
            ),
        ] {
            assert_eq!(parse(input).to_string(), printed, "{input}");
        }
        assert!(parse("AggregateFunction(sum, UInt64)").is_aggregate_state());
        assert!(!parse("SimpleAggregateFunction(sum, UInt64)").is_aggregate_state());
    }

    #[test]
    fn aggregate_types_refuse_anything_but_literal_parameters() {
        for input in [
            "AggregateFunction",
            "AggregateFunction()",
            "AggregateFunction(uniq, Strin)",
            "AggregateFunction(quantile(x), Float64)",
            "AggregateFunction(quantile(0.5) FROM t, Float64)",
            "AggregateFunction(sum, UInt64); DROP TABLE t",
            "SimpleAggregateFunction(sum)",
            "SimpleAggregateFunction(sum, UInt64, UInt64)",
            "SimpleAggregateFunction(quantile(0.5), Float64)",
            "Nullable(AggregateFunction(sum, UInt64))",
        ] {
            assert!(input.parse::<ChType>().is_err(), "{input} was accepted");
        }
    }

    #[test]
    fn parses_and_prints_canonical_spelling() {
        let cases: Vec<(&str, ChType, &str)> = vec![
            ("UInt8", ChType::UInt8, "UInt8"),
            ("UInt256", ChType::UInt256, "UInt256"),
            ("Int64", ChType::Int64, "Int64"),
            ("Int128", ChType::Int128, "Int128"),
            ("Float32", ChType::Float32, "Float32"),
            ("Float64", ChType::Float64, "Float64"),
            ("Bool", ChType::Bool, "Bool"),
            ("String", ChType::String, "String"),
            ("UUID", ChType::Uuid, "UUID"),
            ("Date", ChType::Date, "Date"),
            ("Date32", ChType::Date32, "Date32"),
            ("IPv4", ChType::IPv4, "IPv4"),
            ("IPv6", ChType::IPv6, "IPv6"),
            ("JSON", ChType::Json, "JSON"),
            (
                "Decimal(10, 2)",
                ChType::Decimal {
                    precision: 10,
                    scale: 2,
                },
                "Decimal(10, 2)",
            ),
            (
                "Decimal(5)",
                ChType::Decimal {
                    precision: 5,
                    scale: 0,
                },
                "Decimal(5, 0)",
            ),
            (
                "Decimal",
                ChType::Decimal {
                    precision: 10,
                    scale: 0,
                },
                "Decimal(10, 0)",
            ),
            (
                "Decimal32(4)",
                ChType::Decimal {
                    precision: 9,
                    scale: 4,
                },
                "Decimal(9, 4)",
            ),
            (
                "Decimal64(4)",
                ChType::Decimal {
                    precision: 18,
                    scale: 4,
                },
                "Decimal(18, 4)",
            ),
            (
                "Decimal128(0)",
                ChType::Decimal {
                    precision: 38,
                    scale: 0,
                },
                "Decimal(38, 0)",
            ),
            (
                "Decimal256(76)",
                ChType::Decimal {
                    precision: 76,
                    scale: 76,
                },
                "Decimal(76, 76)",
            ),
            (
                "FixedString(16)",
                ChType::FixedString(16),
                "FixedString(16)",
            ),
            ("DateTime", ChType::DateTime(None), "DateTime"),
            (
                "DateTime('UTC')",
                ChType::DateTime(Some("UTC".into())),
                "DateTime('UTC')",
            ),
            (
                "DateTime64(3)",
                ChType::DateTime64(3, None),
                "DateTime64(3)",
            ),
            ("DateTime64", ChType::DateTime64(3, None), "DateTime64(3)"),
            (
                "DateTime64(3, 'Europe/Madrid')",
                ChType::DateTime64(3, Some("Europe/Madrid".into())),
                "DateTime64(3, 'Europe/Madrid')",
            ),
            (
                "DateTime64( 6 ,'UTC' )",
                ChType::DateTime64(6, Some("UTC".into())),
                "DateTime64(6, 'UTC')",
            ),
            (
                "Array(String)",
                ChType::Array(b(ChType::String)),
                "Array(String)",
            ),
            (
                "Array( Nullable(String) )",
                ChType::Array(b(ChType::Nullable(b(ChType::String)))),
                "Array(Nullable(String))",
            ),
            (
                "Array(Array(Int32))",
                ChType::Array(b(ChType::Array(b(ChType::Int32)))),
                "Array(Array(Int32))",
            ),
            (
                "Map(String,UInt64)",
                ChType::Map(b(ChType::String), b(ChType::UInt64)),
                "Map(String, UInt64)",
            ),
            (
                "Map(String, Array(Float64))",
                ChType::Map(b(ChType::String), b(ChType::Array(b(ChType::Float64)))),
                "Map(String, Array(Float64))",
            ),
            (
                "LowCardinality(String)",
                ChType::LowCardinality(b(ChType::String)),
                "LowCardinality(String)",
            ),
            (
                "LowCardinality(Nullable(String))",
                ChType::LowCardinality(b(ChType::Nullable(b(ChType::String)))),
                "LowCardinality(Nullable(String))",
            ),
            (
                "Tuple(a String, b Int32)",
                ChType::Tuple(vec![
                    (Some("a".into()), ChType::String),
                    (Some("b".into()), ChType::Int32),
                ]),
                "Tuple(a String, b Int32)",
            ),
            (
                "Tuple(String, Int32)",
                ChType::Tuple(vec![(None, ChType::String), (None, ChType::Int32)]),
                "Tuple(String, Int32)",
            ),
            (
                "Tuple(`a b` Nullable(String), String String)",
                ChType::Tuple(vec![
                    (Some("a b".into()), ChType::Nullable(b(ChType::String))),
                    (Some("String".into()), ChType::String),
                ]),
                "Tuple(`a b` Nullable(String), String String)",
            ),
            (
                "Tuple(Array(String), Map(String, String))",
                ChType::Tuple(vec![
                    (None, ChType::Array(b(ChType::String))),
                    (None, ChType::Map(b(ChType::String), b(ChType::String))),
                ]),
                "Tuple(Array(String), Map(String, String))",
            ),
            (
                "Enum8('a' = 1, 'b' = -2)",
                ChType::Enum8(vec![("a".into(), 1), ("b".into(), -2)]),
                "Enum8('a' = 1, 'b' = -2)",
            ),
            (
                "Enum16('a'=1000,'b'=2)",
                ChType::Enum16(vec![("a".into(), 1000), ("b".into(), 2)]),
                "Enum16('a' = 1000, 'b' = 2)",
            ),
            (
                "Enum8('it\\'s' = 1, 'a,b)' = 2, 'x''y' = 3)",
                ChType::Enum8(vec![
                    ("it's".into(), 1),
                    ("a,b)".into(), 2),
                    ("x'y".into(), 3),
                ]),
                "Enum8('it\\'s' = 1, 'a,b)' = 2, 'x\\'y' = 3)",
            ),
            (
                "Enum('a', 'b')",
                ChType::Enum8(vec![("a".into(), 1), ("b".into(), 2)]),
                "Enum8('a' = 1, 'b' = 2)",
            ),
            (
                "Enum('a' = 1, 'b' = 300)",
                ChType::Enum16(vec![("a".into(), 1), ("b".into(), 300)]),
                "Enum16('a' = 1, 'b' = 300)",
            ),
            (
                "  Nullable ( Int32 )  ",
                ChType::Nullable(b(ChType::Int32)),
                "Nullable(Int32)",
            ),
        ];
        for (input, expected, canonical) in cases {
            let parsed = parse(input);
            assert_eq!(parsed, expected, "{input}");
            assert_eq!(parsed.to_string(), canonical, "{input}");
            assert_eq!(parse(canonical), expected, "round trip of {canonical}");
        }
    }

    #[test]
    fn accepts_aliases() {
        let cases = [
            ("Boolean", ChType::Bool),
            ("BOOLEAN", ChType::Bool),
            ("bool", ChType::Bool),
            ("INT", ChType::Int32),
            ("Int", ChType::Int32),
            ("int", ChType::Int32),
            ("INTEGER", ChType::Int32),
            ("INT(11)", ChType::Int32),
            ("TINYINT", ChType::Int8),
            ("SMALLINT", ChType::Int16),
            ("BIGINT", ChType::Int64),
            ("bigint", ChType::Int64),
            ("FLOAT", ChType::Float32),
            ("DOUBLE", ChType::Float64),
            ("TEXT", ChType::String),
            ("VARCHAR", ChType::String),
            ("VARCHAR(255)", ChType::String),
            ("varchar", ChType::String),
            ("UUID", ChType::Uuid),
            ("uuid", ChType::Uuid),
            ("DATE", ChType::Date),
            ("DATETIME", ChType::DateTime(None)),
            ("datetime64(3)", ChType::DateTime64(3, None)),
            (
                "DECIMAL(10, 2)",
                ChType::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            ("ipv4", ChType::IPv4),
            ("json", ChType::Json),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input), expected, "{input}");
        }
    }

    #[test]
    fn timezone_escapes_round_trip() {
        let ty = ChType::DateTime(Some("odd'zone\\".into()));
        assert_eq!(ty.to_string(), "DateTime('odd\\'zone\\\\')");
        assert_eq!(parse(&ty.to_string()), ty);
        let ty = ChType::Enum8(vec![("line\nbreak".into(), 1), ("".into(), 2)]);
        assert_eq!(parse(&ty.to_string()), ty);
        let ty = ChType::Tuple(vec![
            (Some("a`b".into()), ChType::String),
            (Some("1x".into()), ChType::Int8),
        ]);
        assert_eq!(ty.to_string(), "Tuple(`a\\`b` String, `1x` Int8)");
        assert_eq!(parse(&ty.to_string()), ty);
    }

    #[test]
    fn rejects_invalid_types() {
        let cases = [
            "",
            "   ",
            "Strin",
            "string",
            "int8",
            "float64",
            "nullable(String)",
            "Array",
            "Array()",
            "Array(String",
            "Array(String))",
            "Array(String) x",
            "Nullable(Array(String))",
            "Nullable(Nullable(String))",
            "Nullable(LowCardinality(String))",
            "LowCardinality(Array(String))",
            "Map(String)",
            "Tuple()",
            "Tuple(a String, Int32)",
            "FixedString",
            "FixedString(0)",
            "FixedString(x)",
            "Decimal(0, 0)",
            "Decimal(77, 2)",
            "Decimal(5, 6)",
            "Decimal32(10)",
            "Decimal32",
            "DateTime64(10)",
            "DateTime(UTC)",
            "DateTime('UTC'",
            "Enum8",
            "Enum8()",
            "Enum8('a' = 1, 'a' = 2)",
            "Enum8('a' = 1, 'b' = 1)",
            "Enum8('a' = 200)",
            "Enum16('a' = 40000)",
            "Enum8('a' = 1, 'b')",
            "Enum8('a = 1)",
            "Int32(11)",
            "UUID(1)",
            "JSON(max_dynamic_paths = 10)",
            "123",
            "String,",
        ];
        for input in cases {
            assert!(
                input.parse::<ChType>().is_err(),
                "{input} should be refused"
            );
        }
    }

    #[test]
    fn error_messages_are_clear() {
        let err = "Strin".parse::<ChType>().unwrap_err();
        assert_eq!(err.to_string(), "unknown type 'Strin' in 'Strin'");
        let err = "Array(String".parse::<ChType>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid type 'Array(String' at position 12: expected ')'"
        );
        let err = "Decimal(5, 6)".parse::<ChType>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid type 'Decimal(5, 6)': Decimal scale must be between 0 and 5, got 6"
        );
        let err = "Nullable(Array(String))".parse::<ChType>().unwrap_err();
        assert!(
            err.to_string()
                .contains("Array(String) cannot be inside Nullable"),
            "{err}"
        );
    }

    #[test]
    fn nullability_helpers() {
        let s = ChType::String;
        let ns = ChType::Nullable(b(ChType::String));
        let lc = ChType::LowCardinality(b(ChType::String));
        let lcn = ChType::LowCardinality(b(ChType::Nullable(b(ChType::String))));
        let arr = ChType::Array(b(ChType::String));

        assert!(!s.is_nullable());
        assert!(ns.is_nullable());
        assert!(!lc.is_nullable());
        assert!(lcn.is_nullable());

        assert_eq!(ns.unwrap_nullable(), &s);
        assert_eq!(s.unwrap_nullable(), &s);
        assert_eq!(lcn.unwrap_nullable(), &lcn);

        assert_eq!(lc.strip_low_cardinality(), &s);
        assert_eq!(lcn.strip_low_cardinality(), &ns);
        assert_eq!(s.strip_low_cardinality(), &s);

        assert_eq!(s.clone().nullable(), ns);
        assert_eq!(ns.clone().nullable(), ns);
        assert_eq!(lc.clone().nullable(), lcn);
        assert_eq!(lcn.clone().nullable(), lcn);
        assert_eq!(arr.clone().nullable(), arr);
        assert_eq!(ChType::Json.nullable(), ChType::Json);
    }

    #[test]
    fn serde_uses_the_type_string() {
        let ty = ChType::Array(b(ChType::Nullable(b(ChType::Int32))));
        let json = serde_json::to_string(&ty).unwrap();
        assert_eq!(json, "\"Array(Nullable(Int32))\"");
        assert_eq!(serde_json::from_str::<ChType>(&json).unwrap(), ty);
        assert!(serde_json::from_str::<ChType>("\"Nope\"").is_err());
    }
}
