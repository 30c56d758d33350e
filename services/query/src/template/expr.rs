//! The expression language: a small, closed subset of Python, tokenized and parsed into [`Expr`].
//!
//! Literals, names, calls of known functions (positional and keyword arguments), a few string and
//! dict methods, `and`/`or`/`not`, comparisons (chained, `in`, `not in`, `is`, `is not`),
//! `+ - * / // %`, unary `-`/`+`, indexing and slicing, `a if c else b`, lists, tuples and dicts.
//! Everything else (attribute access, `**`, lambdas, comprehensions, f-strings) is refused here,
//! so it can never be evaluated.

use super::TemplateError;
use super::functions::is_function;
use super::value::{BinaryOp, Value};

/// String and dict methods a template may call (Tinybird allows `split`, `get`, `join` and
/// `replace` in expressions; the others are harmless string helpers used in control blocks).
const METHODS: &[&str] = &[
    "split",
    "get",
    "join",
    "replace",
    "lower",
    "upper",
    "strip",
    "lstrip",
    "rstrip",
    "startswith",
    "endswith",
    "keys",
    "values",
    "items",
];

/// Names a template may not use as variables: Tinybird reserves them for the API itself.
const RESERVED_VARIABLES: &[&str] = &["format", "q"];

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CompareOp {
    Eq,
    NotEq,
    Lt,
    LtE,
    Gt,
    GtE,
    In,
    NotIn,
    Is,
    IsNot,
}

/// Keyword arguments of a call, in order.
pub(crate) type Keywords = Vec<(String, Expr)>;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Const(Value),
    Name(String),
    List(Vec<Expr>),
    Tuple(Vec<Expr>),
    Dict(Vec<(Expr, Expr)>),
    Negate(Box<Expr>),
    Plus(Box<Expr>),
    Not(Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Box<Expr>, Vec<(CompareOp, Expr)>),
    IfElse {
        condition: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    Call {
        function: String,
        args: Vec<Expr>,
        kwargs: Vec<(String, Expr)>,
    },
    Method {
        target: Box<Expr>,
        method: String,
        args: Vec<Expr>,
        kwargs: Vec<(String, Expr)>,
    },
    Index(Box<Expr>, Box<Expr>),
    Slice(Box<Expr>, Option<Box<Expr>>, Option<Box<Expr>>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Int(i128),
    Float(f64),
    Str(String),
    Op(&'static str),
}

const OPERATORS: &[&str] = &[
    "**", "//", "==", "!=", "<=", ">=", "<>", "(", ")", "[", "]", "{", "}", ",", ":", ".", "=",
    "<", ">", "+", "-", "*", "/", "%", "~", "&", "|", "^", "@", ";",
];

fn syntax(message: impl std::fmt::Display) -> TemplateError {
    TemplateError::Syntax(format!("invalid syntax: {message}"))
}

fn tokenize(source: &str) -> Result<Vec<Token>, TemplateError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == '\\' && chars.get(i + 1) == Some(&'\n') {
            i += 1;
            continue;
        }
        if c == '#' {
            return Err(syntax("comments are not allowed in expressions"));
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // String prefixes: r'..' is raw, u'..' is plain; bytes and f-strings are refused.
            if i < chars.len() && (chars[i] == '\'' || chars[i] == '"') {
                let prefix = word.to_ascii_lowercase();
                if prefix == "r" || prefix == "u" {
                    let (text, next) = read_string(&chars, i, prefix == "r")?;
                    tokens.push(Token::Str(text));
                    i = next;
                    continue;
                }
                return Err(syntax(format!("string prefix {word} is not supported")));
            }
            tokens.push(Token::Name(word));
            continue;
        }
        if c.is_ascii_digit() || c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            let (token, next) = read_number(&chars, i)?;
            tokens.push(token);
            i = next;
            continue;
        }
        if c == '\'' || c == '"' {
            let (text, next) = read_string(&chars, i, false)?;
            tokens.push(Token::Str(text));
            i = next;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        match OPERATORS.iter().find(|op| rest.starts_with(**op)) {
            Some(op) => {
                tokens.push(Token::Op(op));
                i += op.chars().count();
            }
            None => return Err(syntax(format!("unexpected character {c:?}"))),
        }
    }
    Ok(tokens)
}

fn read_number(chars: &[char], start: usize) -> Result<(Token, usize), TemplateError> {
    let mut i = start;
    let mut text = String::new();
    let mut is_float = false;
    let digits = |i: &mut usize, text: &mut String| {
        while *i < chars.len() && (chars[*i].is_ascii_digit() || chars[*i] == '_') {
            if chars[*i] != '_' {
                text.push(chars[*i]);
            }
            *i += 1;
        }
    };
    digits(&mut i, &mut text);
    if i < chars.len() && chars[i] == '.' {
        is_float = true;
        text.push('.');
        i += 1;
        digits(&mut i, &mut text);
    }
    if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
        let mut j = i + 1;
        let mut exponent = String::from("e");
        if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
            exponent.push(chars[j]);
            j += 1;
        }
        if j < chars.len() && chars[j].is_ascii_digit() {
            is_float = true;
            i = j;
            text.push_str(&exponent);
            digits(&mut i, &mut text);
        }
    }
    if i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
        return Err(syntax(format!(
            "invalid number literal near {:?}",
            chars[i]
        )));
    }
    if is_float {
        let value = text
            .parse::<f64>()
            .map_err(|_| syntax(format!("invalid number {text}")))?;
        return Ok((Token::Float(value), i));
    }
    if text.len() > 1 && text.starts_with('0') && text.chars().any(|c| c != '0') {
        return Err(syntax(
            "leading zeros in decimal integer literals are not permitted",
        ));
    }
    let value = text
        .parse::<i128>()
        .map_err(|_| syntax(format!("integer literal {text} is too large")))?;
    Ok((Token::Int(value), i))
}

fn read_string(chars: &[char], start: usize, raw: bool) -> Result<(String, usize), TemplateError> {
    let quote = chars[start];
    if chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote) {
        return Err(syntax("triple-quoted strings are not supported"));
    }
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(syntax("unterminated string literal"));
        };
        i += 1;
        if c == quote {
            return Ok((out, i));
        }
        if c == '\n' {
            return Err(syntax("unterminated string literal"));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(&next) = chars.get(i) else {
            return Err(syntax("unterminated string literal"));
        };
        i += 1;
        if raw {
            out.push('\\');
            out.push(next);
            continue;
        }
        let hex = |i: &mut usize, count: usize| -> Result<char, TemplateError> {
            let text: String = chars
                .get(*i..*i + count)
                .unwrap_or_default()
                .iter()
                .collect();
            *i += count;
            u32::from_str_radix(&text, 16)
                .ok()
                .filter(|_| text.len() == count)
                .and_then(char::from_u32)
                .ok_or_else(|| syntax("invalid escape sequence in string"))
        };
        match next {
            '\n' => {}
            '\\' | '\'' | '"' => out.push(next),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '0' => out.push('\0'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'v' => out.push('\x0b'),
            'x' => out.push(hex(&mut i, 2)?),
            'u' => out.push(hex(&mut i, 4)?),
            'U' => out.push(hex(&mut i, 8)?),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
}

/// Parses a whole expression (a bare `a, b` is a tuple, as in Python).
pub(crate) fn parse_expression(source: &str) -> Result<Expr, TemplateError> {
    let mut parser = Parser {
        tokens: tokenize(source)?,
        pos: 0,
        depth: 0,
    };
    let expr = parser.testlist()?;
    parser.finish()?;
    Ok(expr)
}

/// Parses `target [, target]* = expression` (`{% set %}`).
pub(crate) fn parse_assignment(source: &str) -> Result<(Vec<String>, Expr), TemplateError> {
    let mut parser = Parser {
        tokens: tokenize(source)?,
        pos: 0,
        depth: 0,
    };
    let targets = parser.targets()?;
    parser.expect("=")?;
    let value = parser.testlist()?;
    parser.finish()?;
    Ok((targets, value))
}

/// Parses `target [, target]* in expression` (`{% for %}`).
pub(crate) fn parse_for(source: &str) -> Result<(Vec<String>, Expr), TemplateError> {
    let mut parser = Parser {
        tokens: tokenize(source)?,
        pos: 0,
        depth: 0,
    };
    let targets = parser.targets()?;
    if !parser.eat_keyword("in") {
        return Err(syntax("expected 'in' in for statement"));
    }
    let iterable = parser.testlist()?;
    parser.finish()?;
    Ok((targets, iterable))
}

/// Parses `[Name [as name]]` after `except`; returns the bound name.
pub(crate) fn parse_except(source: &str) -> Result<Option<String>, TemplateError> {
    let mut parser = Parser {
        tokens: tokenize(source)?,
        pos: 0,
        depth: 0,
    };
    if parser.tokens.is_empty() {
        return Ok(None);
    }
    parser.or_test()?;
    let bound = if parser.eat_keyword("as") {
        Some(parser.name()?)
    } else {
        None
    };
    parser.finish()?;
    Ok(bound)
}

/// How deep an expression may nest (brackets, calls, unary operators, links of an operator chain).
/// Parsing, evaluating, describing and dropping an expression recurse once per level, so without
/// a bound a template author could overflow the stack and take the whole process down.
const MAX_DEPTH: usize = 64;

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Nesting of the expression being parsed, against [`MAX_DEPTH`].
    depth: usize,
}

const KEYWORDS: &[&str] = &[
    "and", "or", "not", "in", "is", "if", "else", "None", "True", "False", "lambda", "for", "as",
    "import", "from", "def", "class", "return", "yield", "await", "async", "del", "global",
    "nonlocal", "pass", "with", "while",
];

impl Parser {
    /// One level deeper; refused past [`MAX_DEPTH`]. Callers put `depth` back when done.
    fn deeper(&mut self) -> Result<(), TemplateError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(TemplateError::Syntax(format!(
                "the expression is nested more than {MAX_DEPTH} levels deep"
            )));
        }
        Ok(())
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn at_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Token::Op(o)) if *o == op)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        let found = self.at_op(op);
        if found {
            self.pos += 1;
        }
        found
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Name(n)) if n == keyword)
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = self.at_keyword(keyword);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, op: &str) -> Result<(), TemplateError> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(syntax(format!("expected '{op}'")))
        }
    }

    fn finish(&self) -> Result<(), TemplateError> {
        match self.peek() {
            None => Ok(()),
            Some(token) => Err(syntax(format!("unexpected {}", describe(token)))),
        }
    }

    fn name(&mut self) -> Result<String, TemplateError> {
        match self.peek() {
            Some(Token::Name(n)) if !KEYWORDS.contains(&n.as_str()) => {
                let n = n.clone();
                self.pos += 1;
                Ok(n)
            }
            Some(token) => Err(syntax(format!(
                "expected a name, found {}",
                describe(token)
            ))),
            None => Err(syntax("expected a name")),
        }
    }

    fn targets(&mut self) -> Result<Vec<String>, TemplateError> {
        let parenthesized = self.eat_op("(");
        let mut targets = vec![self.target()?];
        while self.eat_op(",") {
            if self.at_op(")") || self.at_op("=") || self.at_keyword("in") {
                break;
            }
            targets.push(self.target()?);
        }
        if parenthesized {
            self.expect(")")?;
        }
        Ok(targets)
    }

    fn target(&mut self) -> Result<String, TemplateError> {
        let name = self.name()?;
        if is_function(&name) {
            return Err(syntax(format!("cannot assign to the function {name}")));
        }
        check_variable_name(&name)?;
        Ok(name)
    }

    fn testlist(&mut self) -> Result<Expr, TemplateError> {
        let first = self.test()?;
        if !self.at_op(",") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_op(",") {
            if self.peek().is_none() {
                break;
            }
            items.push(self.test()?);
        }
        Ok(Expr::Tuple(items))
    }

    fn test(&mut self) -> Result<Expr, TemplateError> {
        let depth = self.depth;
        self.deeper()?;
        let parsed = self.conditional();
        self.depth = depth;
        parsed
    }

    fn conditional(&mut self) -> Result<Expr, TemplateError> {
        if self.at_keyword("lambda") {
            return Err(TemplateError::Syntax(
                "Invalid expression type: lambda".into(),
            ));
        }
        let then = self.or_test()?;
        if !self.eat_keyword("if") {
            return Ok(then);
        }
        let condition = self.or_test()?;
        if !self.eat_keyword("else") {
            return Err(syntax("expected 'else' in conditional expression"));
        }
        let otherwise = self.test()?;
        Ok(Expr::IfElse {
            condition: Box::new(condition),
            then: Box::new(then),
            otherwise: Box::new(otherwise),
        })
    }

    // Each link of an operator chain nests the tree one level deeper (`a + b + c` is
    // `(a + b) + c`), as does each unary operator: both count against the depth.
    fn or_test(&mut self) -> Result<Expr, TemplateError> {
        let depth = self.depth;
        let mut left = self.and_test()?;
        while self.eat_keyword("or") {
            self.deeper()?;
            left = Expr::Or(Box::new(left), Box::new(self.and_test()?));
        }
        self.depth = depth;
        Ok(left)
    }

    fn and_test(&mut self) -> Result<Expr, TemplateError> {
        let depth = self.depth;
        let mut left = self.not_test()?;
        while self.eat_keyword("and") {
            self.deeper()?;
            left = Expr::And(Box::new(left), Box::new(self.not_test()?));
        }
        self.depth = depth;
        Ok(left)
    }

    fn not_test(&mut self) -> Result<Expr, TemplateError> {
        if self.eat_keyword("not") {
            let depth = self.depth;
            self.deeper()?;
            let operand = self.not_test()?;
            self.depth = depth;
            return Ok(Expr::Not(Box::new(operand)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, TemplateError> {
        let left = self.arithmetic()?;
        let mut rest = Vec::new();
        loop {
            let op = if self.eat_op("==") {
                CompareOp::Eq
            } else if self.eat_op("!=") {
                CompareOp::NotEq
            } else if self.eat_op("<=") {
                CompareOp::LtE
            } else if self.eat_op(">=") {
                CompareOp::GtE
            } else if self.eat_op("<") {
                CompareOp::Lt
            } else if self.eat_op(">") {
                CompareOp::Gt
            } else if self.eat_keyword("in") {
                CompareOp::In
            } else if self.at_keyword("not")
                && matches!(self.tokens.get(self.pos + 1), Some(Token::Name(n)) if n == "in")
            {
                self.pos += 2;
                CompareOp::NotIn
            } else if self.eat_keyword("is") {
                if self.eat_keyword("not") {
                    CompareOp::IsNot
                } else {
                    CompareOp::Is
                }
            } else {
                break;
            };
            rest.push((op, self.arithmetic()?));
        }
        Ok(if rest.is_empty() {
            left
        } else {
            Expr::Compare(Box::new(left), rest)
        })
    }

    fn arithmetic(&mut self) -> Result<Expr, TemplateError> {
        let depth = self.depth;
        let mut left = self.term()?;
        loop {
            let op = if self.eat_op("+") {
                BinaryOp::Add
            } else if self.eat_op("-") {
                BinaryOp::Sub
            } else {
                break;
            };
            self.deeper()?;
            left = Expr::Binary(op, Box::new(left), Box::new(self.term()?));
        }
        self.depth = depth;
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, TemplateError> {
        let depth = self.depth;
        let mut left = self.factor()?;
        loop {
            let op = if self.eat_op("*") {
                BinaryOp::Mul
            } else if self.eat_op("//") {
                BinaryOp::FloorDiv
            } else if self.eat_op("/") {
                BinaryOp::Div
            } else if self.eat_op("%") {
                BinaryOp::Mod
            } else {
                break;
            };
            self.deeper()?;
            left = Expr::Binary(op, Box::new(left), Box::new(self.factor()?));
        }
        self.depth = depth;
        Ok(left)
    }

    fn factor(&mut self) -> Result<Expr, TemplateError> {
        let depth = self.depth;
        if self.eat_op("-") {
            self.deeper()?;
            let operand = self.factor()?;
            self.depth = depth;
            return Ok(match operand {
                Expr::Const(Value::Int(i)) => Expr::Const(Value::Int(-i)),
                Expr::Const(Value::Float(f)) => Expr::Const(Value::Float(-f)),
                other => Expr::Negate(Box::new(other)),
            });
        }
        if self.eat_op("+") {
            self.deeper()?;
            let operand = self.factor()?;
            self.depth = depth;
            return Ok(Expr::Plus(Box::new(operand)));
        }
        let value = self.postfix()?;
        if self.at_op("**") {
            return Err(TemplateError::Syntax("Invalid BinOp: Pow()".into()));
        }
        Ok(value)
    }

    fn postfix(&mut self) -> Result<Expr, TemplateError> {
        let depth = self.depth;
        let mut value = self.atom()?;
        loop {
            if self.at_op("[") || self.at_op(".") {
                self.deeper()?;
            }
            if self.eat_op("[") {
                let start = if self.at_op(":") {
                    None
                } else {
                    Some(self.test()?)
                };
                if self.eat_op(":") {
                    let end = if self.at_op("]") {
                        None
                    } else {
                        Some(Box::new(self.test()?))
                    };
                    self.expect("]")?;
                    value = Expr::Slice(Box::new(value), start.map(Box::new), end);
                } else {
                    self.expect("]")?;
                    let index = start.ok_or_else(|| syntax("empty index"))?;
                    value = Expr::Index(Box::new(value), Box::new(index));
                }
            } else if self.eat_op(".") {
                let method = self.name()?;
                if !self.at_op("(") {
                    return Err(TemplateError::Syntax(format!(
                        "Invalid expression type: attribute access .{method}"
                    )));
                }
                if !METHODS.contains(&method.as_str()) {
                    return Err(TemplateError::Syntax(format!(
                        "Invalid method name: {method}"
                    )));
                }
                self.expect("(")?;
                let (args, kwargs) = self.arguments()?;
                value = Expr::Method {
                    target: Box::new(value),
                    method,
                    args,
                    kwargs,
                };
            } else if self.at_op("(") {
                return Err(TemplateError::Syntax(
                    "Invalid function: only named functions can be called".into(),
                ));
            } else {
                self.depth = depth;
                return Ok(value);
            }
        }
    }

    /// Call arguments after `(`, through `)`.
    fn arguments(&mut self) -> Result<(Vec<Expr>, Keywords), TemplateError> {
        let mut args = Vec::new();
        let mut kwargs: Keywords = Vec::new();
        while !self.eat_op(")") {
            if self.at_op("*") || self.at_op("**") {
                return Err(syntax("argument unpacking is not supported"));
            }
            let is_keyword = matches!(self.peek(), Some(Token::Name(_)))
                && matches!(self.tokens.get(self.pos + 1), Some(Token::Op("=")));
            if is_keyword {
                let name = self.name()?;
                self.expect("=")?;
                if kwargs.iter().any(|(k, _)| *k == name) {
                    return Err(syntax(format!("keyword argument repeated: {name}")));
                }
                kwargs.push((name, self.test()?));
            } else {
                if !kwargs.is_empty() {
                    return Err(syntax("positional argument follows keyword argument"));
                }
                args.push(self.test()?);
            }
            if self.at_keyword("for") {
                return Err(TemplateError::Syntax(
                    "Invalid expression type: comprehension".into(),
                ));
            }
            if !self.eat_op(",") {
                self.expect(")")?;
                break;
            }
        }
        Ok((args, kwargs))
    }

    fn atom(&mut self) -> Result<Expr, TemplateError> {
        let Some(token) = self.peek().cloned() else {
            return Err(syntax("unexpected end of expression"));
        };
        self.pos += 1;
        match token {
            Token::Int(i) => Ok(Expr::Const(Value::Int(i))),
            Token::Float(f) => Ok(Expr::Const(Value::Float(f))),
            Token::Str(mut s) => {
                // Adjacent literals concatenate, as in Python.
                while let Some(Token::Str(next)) = self.peek() {
                    s.push_str(next);
                    self.pos += 1;
                }
                Ok(Expr::Const(Value::Str(s)))
            }
            Token::Name(name) => match name.as_str() {
                "None" => Ok(Expr::Const(Value::None)),
                "True" => Ok(Expr::Const(Value::Bool(true))),
                "False" => Ok(Expr::Const(Value::Bool(false))),
                keyword if KEYWORDS.contains(&keyword) => {
                    Err(syntax(format!("unexpected keyword {keyword}")))
                }
                _ if self.at_op("(") => {
                    self.pos += 1;
                    if !is_function(&name) {
                        return Err(TemplateError::Syntax(format!(
                            "Invalid function name: {name}"
                        )));
                    }
                    let (args, kwargs) = self.arguments()?;
                    Ok(Expr::Call {
                        function: name,
                        args,
                        kwargs,
                    })
                }
                _ => {
                    check_variable_name(&name)?;
                    Ok(Expr::Name(name))
                }
            },
            Token::Op("(") => {
                if self.eat_op(")") {
                    return Ok(Expr::Tuple(Vec::new()));
                }
                let first = self.test()?;
                if self.at_keyword("for") {
                    return Err(TemplateError::Syntax(
                        "Invalid expression type: comprehension".into(),
                    ));
                }
                if self.eat_op(")") {
                    return Ok(first);
                }
                let mut items = vec![first];
                while self.eat_op(",") {
                    if self.at_op(")") {
                        break;
                    }
                    items.push(self.test()?);
                }
                self.expect(")")?;
                Ok(Expr::Tuple(items))
            }
            Token::Op("[") => {
                let mut items = Vec::new();
                while !self.eat_op("]") {
                    items.push(self.test()?);
                    if self.at_keyword("for") {
                        return Err(TemplateError::Syntax(
                            "Invalid expression type: comprehension".into(),
                        ));
                    }
                    if !self.eat_op(",") {
                        self.expect("]")?;
                        break;
                    }
                }
                Ok(Expr::List(items))
            }
            Token::Op("{") => {
                let mut entries = Vec::new();
                while !self.eat_op("}") {
                    let key = self.test()?;
                    if !self.eat_op(":") {
                        return Err(TemplateError::Syntax(
                            "Invalid expression type: set literal".into(),
                        ));
                    }
                    entries.push((key, self.test()?));
                    if !self.eat_op(",") {
                        self.expect("}")?;
                        break;
                    }
                }
                Ok(Expr::Dict(entries))
            }
            other => Err(syntax(format!("unexpected {}", describe(&other)))),
        }
    }
}

fn check_variable_name(name: &str) -> Result<(), TemplateError> {
    if RESERVED_VARIABLES.contains(&name) {
        return Err(TemplateError::Syntax(format!(
            "\"{name}\" can not be used as a variable name"
        )));
    }
    Ok(())
}

fn describe(token: &Token) -> String {
    match token {
        Token::Name(n) => format!("'{n}'"),
        Token::Int(i) => i.to_string(),
        Token::Float(f) => f.to_string(),
        Token::Str(_) => "string".into(),
        Token::Op(op) => format!("'{op}'"),
    }
}
