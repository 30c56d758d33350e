//! The structural scan over the tokens: statement shape, table positions, calls and settings.
//!
//! Every rule errs on the side of checking more: a word is treated as a keyword that *starts* a
//! check (`FROM`, `JOIN`, `IN`, `SETTINGS`) even where it might be a column name, and it is treated
//! as a keyword that *ends* a check (`WHERE` ending a `FROM a, b` list) only where ClickHouse cannot
//! read it as an alias. The few exemptions (`ARRAY JOIN`, `extract(DAY FROM d)`, `WITH FILL FROM`,
//! `position(a IN b)`, `USING a, b`) are each pinned to the exact syntax ClickHouse parses that way.

use std::collections::BTreeMap;

use super::lexer::{self, Kind, Token};
use super::policy;
use super::{SqlError, TableResolver, ValidatedSql};

/// Words that never name a setting; `SETTINGS` followed by one of them (and no `=`) is a column.
const NOT_SETTING_NAMES: &[&str] = &[
    "FROM",
    "AS",
    "WHERE",
    "PREWHERE",
    "GROUP",
    "ORDER",
    "LIMIT",
    "HAVING",
    "UNION",
    "INTERSECT",
    "EXCEPT",
    "FORMAT",
    "INTO",
    "WINDOW",
    "QUALIFY",
    "AND",
    "OR",
    "NOT",
    "IS",
    "IN",
    "LIKE",
    "ILIKE",
    "BETWEEN",
    "JOIN",
    "LEFT",
    "RIGHT",
    "INNER",
    "FULL",
    "CROSS",
    "ON",
    "USING",
    "FINAL",
    "SAMPLE",
    "ARRAY",
    "GLOBAL",
    "ASC",
    "DESC",
    "SETTINGS",
    "SELECT",
    "WITH",
    "BY",
    "THEN",
    "ELSE",
    "END",
    "WHEN",
    "OVER",
    "FILTER",
    "OFFSET",
];

/// Words that end a `FROM a, b` list: clause keywords ClickHouse never accepts as an implicit alias.
const FROM_LIST_ENDERS: &[&str] = &[
    "WHERE",
    "PREWHERE",
    "GROUP",
    "HAVING",
    "ORDER",
    "LIMIT",
    "SETTINGS",
    "FORMAT",
    "UNION",
    "INTERSECT",
    "EXCEPT",
    "WINDOW",
    "INTO",
];

/// Words after which ClickHouse expects an operand (operators, clause heads, `AS`). A word here
/// cannot end an expression or table, so a following `ARRAY`, `USING` or clause word must be an
/// identifier. Missing a word would be unsafe, so the list is generous.
const OPERAND_EXPECTING: &[&str] = &[
    "AND",
    "OR",
    "NOT",
    "XOR",
    "IS",
    "IN",
    "LIKE",
    "ILIKE",
    "REGEXP",
    "RLIKE",
    "BETWEEN",
    "DIV",
    "MOD",
    "ESCAPE",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "INTERVAL",
    "EXISTS",
    "ANY",
    "ALL",
    "SOME",
    "DISTINCT",
    "AS",
    "ON",
    "USING",
    "SELECT",
    "WHERE",
    "PREWHERE",
    "HAVING",
    "QUALIFY",
    "FROM",
    "JOIN",
    "ARRAY",
    "GLOBAL",
    "BY",
    "WITH",
    "LIMIT",
    "OFFSET",
    "FETCH",
    "FIRST",
    "NEXT",
    "TOP",
    "SAMPLE",
    "TO",
    "STEP",
    "FOR",
    "LEADING",
    "TRAILING",
    "BOTH",
    "COLLATE",
    "FILTER",
    "OVER",
    "WINDOW",
    "PARTITION",
    "ROWS",
    "RANGE",
    "RECURSIVE",
    "MATERIALIZED",
    "TABLE",
    "SETTINGS",
    "FORMAT",
    "UNION",
    "INTERSECT",
    "EXCEPT",
    "REPLACE",
    "APPLY",
    "ORDER",
    "GROUP",
    "INTO",
    "INTERPOLATE",
    "STALENESS",
    "TIES",
    "CAST",
    "DATE",
    "TIMESTAMP",
    "TIME",
];

/// Statements ClickHouse accepts inside parentheses as if they were subqueries.
const STATEMENTS_IN_PARENS: &[&str] = &["EXPLAIN", "DESCRIBE", "DESC", "SHOW"];

/// Functions whose parentheses hold SQL-standard syntax with a non-table `FROM` or `IN`.
const FROM_SYNTAX_FUNCTIONS: &[&str] = &[
    "extract",
    "substring",
    "substr",
    "trim",
    "ltrim",
    "rtrim",
    "overlay",
];

/// A removed or replaced span of the original text.
struct Edit {
    end: usize,
    text: String,
    /// Add spaces around `text` where it would otherwise touch a neighbouring token.
    pad: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Special {
    None,
    /// `extract(DAY FROM d)`, `substring(s FROM 2)`, `trim(BOTH 'x' FROM s)`: first `FROM` is not a table.
    From,
    /// `position(needle IN haystack)`: first `IN` is not a table.
    In,
}

/// One level of brackets (frame 0 is the query itself) and the scan state at that level.
struct Frame {
    parent: usize,
    /// A comma at this level starts a new table (`FROM a, b`).
    from_list: bool,
    /// Inside `ORDER BY` at this level, where `WITH FILL FROM x` takes an expression.
    in_order_by: bool,
    special: Special,
    special_used: bool,
    seen_select: bool,
}

impl Frame {
    fn new(parent: usize, special: Special) -> Self {
        Self {
            parent,
            from_list: false,
            in_order_by: false,
            special,
            special_used: false,
            seen_select: false,
        }
    }
}

/// Validates `sql` and rewrites its table references; see the module documentation of `sql`.
pub(super) fn run(sql: &str, resolver: &dyn TableResolver) -> Result<ValidatedSql, SqlError> {
    let mut tokens = lexer::tokenize(sql)?;
    if tokens
        .iter()
        .any(|t| matches!(t.kind, Kind::LBrace | Kind::RBrace))
    {
        return Err(SqlError::QueryParameter);
    }
    if tokens.last().is_some_and(|t| t.kind == Kind::Semicolon) {
        tokens.pop();
    }
    if tokens.is_empty() {
        return Err(SqlError::Empty);
    }
    if tokens.iter().any(|t| t.kind == Kind::Semicolon) {
        return Err(SqlError::MultipleStatements);
    }
    let first = tokens.iter().find(|t| t.kind != Kind::LParen);
    let starts_with_select =
        first.is_some_and(|t| is_word(sql, t, "SELECT") || is_word(sql, t, "WITH"));
    if !starts_with_select {
        return Err(SqlError::NotSelect);
    }
    let (format, format_edit) = match take_format(sql, &mut tokens) {
        Some((name, edit)) => (Some(name), edit),
        None => (None, None),
    };
    let mut scanner = Scanner::new(sql, tokens, resolver)?;
    if let Some((start, edit)) = format_edit {
        scanner.edits.insert(start, edit);
    }
    scanner.collect_ctes()?;
    scanner.scan()?;
    Ok(ValidatedSql {
        sql: scanner.render(),
        format,
        tables: scanner.tables,
    })
}

fn is_word(sql: &str, t: &Token, word: &str) -> bool {
    t.kind == Kind::Word && sql[t.start..t.end].eq_ignore_ascii_case(word)
}

/// The name an identifier token stands for: bare text, or quoted text with doubled quotes undone
/// (the lexer refuses backslashes in quoted identifiers).
fn ident_value(sql: &str, t: &Token) -> String {
    let text = &sql[t.start..t.end];
    if t.kind == Kind::QuotedIdent {
        let quote = &text[..1];
        text[1..text.len() - 1].replace(&quote.repeat(2), quote)
    } else {
        text.to_string()
    }
}

/// Finds a top-level `FORMAT name` at the end of the query (or before a final `SETTINGS`), removes
/// its tokens and returns the format name with the edit that cuts it out of the text, if any.
fn take_format(sql: &str, tokens: &mut Vec<Token>) -> Option<(String, Option<(usize, Edit)>)> {
    let mut depth = 0i64;
    for f in 0..tokens.len() {
        match tokens[f].kind {
            Kind::LParen | Kind::LBracket => depth += 1,
            Kind::RParen | Kind::RBracket => depth -= 1,
            _ => {}
        }
        if depth != 0 || f == 0 || f + 1 >= tokens.len() || !is_word(sql, &tokens[f], "FORMAT") {
            continue;
        }
        let prev = &tokens[f - 1];
        if is_word(sql, prev, "AS") || matches!(prev.kind, Kind::Dot | Kind::Comma) {
            continue;
        }
        let name = &tokens[f + 1];
        if !matches!(name.kind, Kind::Word | Kind::QuotedIdent) {
            continue;
        }
        let at_end = f + 2 == tokens.len();
        if !at_end && !is_word(sql, &tokens[f + 2], "SETTINGS") {
            continue;
        }
        let format = ident_value(sql, name);
        let edit = (!at_end).then(|| {
            let followed_by_space = sql[name.end..].starts_with(|c: char| c.is_ascii_whitespace());
            let text = if followed_by_space { "" } else { " " };
            (
                prev.end,
                Edit {
                    end: name.end,
                    text: text.to_string(),
                    pad: false,
                },
            )
        });
        tokens.drain(f..f + 2);
        return Some((format, edit));
    }
    None
}

struct Scanner<'a> {
    sql: &'a str,
    toks: Vec<Token>,
    resolver: &'a dyn TableResolver,
    /// For a bracket, the index of its partner; unused otherwise.
    partner: Vec<usize>,
    /// The frame a token sits in (for a bracket, the frame around it).
    frame_of: Vec<usize>,
    frames: Vec<Frame>,
    /// CTE names (`WITH name AS (SELECT ...)`) and the frame that defines them.
    ctes: Vec<(String, usize)>,
    /// Tokens already taken as table names, so they are never read as keywords.
    table_name: Vec<bool>,
    edits: BTreeMap<usize, Edit>,
    tables: Vec<String>,
}

impl<'a> Scanner<'a> {
    fn new(
        sql: &'a str,
        toks: Vec<Token>,
        resolver: &'a dyn TableResolver,
    ) -> Result<Self, SqlError> {
        let n = toks.len();
        let mut partner = vec![usize::MAX; n];
        let mut frame_of = vec![0; n];
        let mut frames = vec![Frame::new(0, Special::None)];
        let mut stack: Vec<(usize, usize)> = Vec::new(); // (opening token, frame it opened)
        for i in 0..n {
            let current = stack.last().map_or(0, |&(_, frame)| frame);
            frame_of[i] = current;
            match toks[i].kind {
                Kind::LParen | Kind::LBracket => {
                    let mut special = Special::None;
                    if toks[i].kind == Kind::LParen && i > 0 && toks[i - 1].kind == Kind::Word {
                        let name = sql[toks[i - 1].start..toks[i - 1].end].to_ascii_lowercase();
                        if FROM_SYNTAX_FUNCTIONS.contains(&name.as_str()) {
                            special = Special::From;
                        } else if name == "position" {
                            special = Special::In;
                        }
                    }
                    frames.push(Frame::new(current, special));
                    stack.push((i, frames.len() - 1));
                }
                Kind::RParen | Kind::RBracket => {
                    let Some((open, frame)) = stack.pop() else {
                        return Err(SqlError::Syntax(format!(
                            "Unbalanced parentheses: unexpected '{}' at position {}",
                            &sql[toks[i].start..toks[i].end],
                            toks[i].start + 1
                        )));
                    };
                    let expected = if toks[open].kind == Kind::LParen {
                        Kind::RParen
                    } else {
                        Kind::RBracket
                    };
                    if toks[i].kind != expected {
                        return Err(SqlError::Syntax(format!(
                            "Unbalanced parentheses: '{}' at position {} does not match '{}' at position {}",
                            &sql[toks[i].start..toks[i].end],
                            toks[i].start + 1,
                            &sql[toks[open].start..toks[open].end],
                            toks[open].start + 1
                        )));
                    }
                    partner[open] = i;
                    partner[i] = open;
                    frame_of[i] = frames[frame].parent;
                }
                _ => {}
            }
        }
        if let Some(&(open, _)) = stack.last() {
            return Err(SqlError::Syntax(format!(
                "Unbalanced parentheses: '{}' at position {} is never closed",
                &sql[toks[open].start..toks[open].end],
                toks[open].start + 1
            )));
        }
        Ok(Self {
            sql,
            resolver,
            partner,
            frame_of,
            frames,
            ctes: Vec::new(),
            table_name: vec![false; n],
            edits: BTreeMap::new(),
            tables: Vec::new(),
            toks,
        })
    }

    fn kind(&self, i: usize) -> Option<Kind> {
        self.toks.get(i).map(|t| t.kind)
    }

    fn text(&self, i: usize) -> &'a str {
        let t = &self.toks[i];
        &self.sql[t.start..t.end]
    }

    /// Token `i` is the bare keyword `kw` (and not a name already taken as a table).
    fn is_kw(&self, i: usize, kw: &str) -> bool {
        i < self.toks.len() && !self.table_name[i] && is_word(self.sql, &self.toks[i], kw)
    }

    fn is_ident(&self, i: usize) -> bool {
        matches!(self.kind(i), Some(Kind::Word | Kind::QuotedIdent))
    }

    fn is_op(&self, i: usize, op: &str) -> bool {
        self.kind(i) == Some(Kind::Op) && self.text(i) == op
    }

    fn ident(&self, i: usize) -> String {
        ident_value(self.sql, &self.toks[i])
    }

    /// Token `p` can end an expression or a table expression: a literal, a closing bracket, a quoted
    /// name, a table name, or a bare word that is not in [`OPERAND_EXPECTING`].
    fn ends_operand(&self, p: usize) -> bool {
        match self.kind(p) {
            Some(Kind::Number | Kind::Str | Kind::RParen | Kind::RBracket | Kind::QuotedIdent) => {
                true
            }
            Some(Kind::Word) => {
                self.table_name[p]
                    || !OPERAND_EXPECTING.contains(&self.text(p).to_ascii_uppercase().as_str())
            }
            _ => false,
        }
    }

    /// `NULL`, `TRUE`, `FALSE`: literals, never tables.
    fn is_literal_word(&self, i: usize) -> bool {
        ["NULL", "TRUE", "FALSE"].iter().any(|w| self.is_kw(i, w))
    }

    /// The first token at or after `i` that is not `(`.
    fn skip_lparens(&self, mut i: usize) -> usize {
        while self.kind(i) == Some(Kind::LParen) {
            i += 1;
        }
        i
    }

    /// Records `WITH name AS (SELECT ...)` definitions with the frame that scopes them.
    fn collect_ctes(&mut self) -> Result<(), SqlError> {
        let mut in_with = vec![false; self.frames.len()];
        for i in 0..self.toks.len() {
            let frame = self.frame_of[i];
            if self.is_kw(i, "WITH") {
                let modifier = ["FILL", "TOTALS", "ROLLUP", "CUBE", "TIES"]
                    .iter()
                    .any(|w| self.is_kw(i + 1, w));
                if !modifier {
                    in_with[frame] = true;
                }
                continue;
            }
            if self.is_kw(i, "SELECT") {
                in_with[frame] = false;
                continue;
            }
            if !in_with[frame] || !self.is_ident(i) || i == 0 {
                continue;
            }
            let starts_element = self.is_kw(i - 1, "WITH")
                || self.is_kw(i - 1, "RECURSIVE")
                || self.kind(i - 1) == Some(Kind::Comma);
            if !starts_element || !self.is_kw(i + 1, "AS") {
                continue;
            }
            let mut open = i + 2;
            if self.is_kw(open, "NOT") && self.is_kw(open + 1, "MATERIALIZED") {
                open += 2;
            } else if self.is_kw(open, "MATERIALIZED") {
                open += 1;
            }
            if self.kind(open) != Some(Kind::LParen) {
                continue;
            }
            let body = self.skip_lparens(open);
            if !(self.is_kw(body, "SELECT") || self.is_kw(body, "WITH")) {
                continue;
            }
            let name = self.ident(i);
            let plain = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !plain {
                return Err(SqlError::Syntax(format!(
                    "CTE name '{name}' is not supported: use letters, digits and underscores"
                )));
            }
            self.ctes.push((name, frame));
        }
        Ok(())
    }

    /// Whether `name` is a CTE defined in `frame` or an enclosing frame.
    fn cte_visible(&self, name: &str, mut frame: usize) -> bool {
        loop {
            if self
                .ctes
                .iter()
                .any(|(cte, defined_in)| cte == name && *defined_in == frame)
            {
                return true;
            }
            if frame == 0 {
                return false;
            }
            frame = self.frames[frame].parent;
        }
    }

    fn scan(&mut self) -> Result<(), SqlError> {
        for i in 0..self.toks.len() {
            match self.toks[i].kind {
                Kind::LParen if STATEMENTS_IN_PARENS.iter().any(|w| self.is_kw(i + 1, w)) => {
                    return Err(SqlError::NotSelect);
                }
                Kind::Comma if self.frames[self.frame_of[i]].from_list => self.table_item(i + 1)?,
                Kind::Word => {
                    if !self.table_name[i] {
                        self.keyword(i)?;
                    }
                    self.check_call(i)?;
                }
                Kind::QuotedIdent => self.check_call(i)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn keyword(&mut self, i: usize) -> Result<(), SqlError> {
        let frame = self.frame_of[i];
        let word = self.text(i).to_ascii_uppercase();
        // A clause word ends a FROM list only right after a complete expression or table; after
        // `AS`, `.`, `=` or `AND` it is an alias or a column, and ClickHouse reads on.
        let can_end = i > 0 && self.ends_operand(i - 1);
        if FROM_LIST_ENDERS.contains(&word.as_str()) {
            if can_end {
                self.frames[frame].from_list = false;
            }
            self.frames[frame].in_order_by = word == "ORDER" && can_end && self.is_kw(i + 1, "BY");
        }
        match word.as_str() {
            "SELECT" => {
                self.frames[frame].seen_select = true;
                self.frames[frame].in_order_by = false;
            }
            "FROM" => self.after_from(i)?,
            "JOIN" => {
                // `ARRAY` is the keyword only after a complete table or expression (or `LEFT`/`INNER`);
                // in `ON a = t.array JOIN t2` or `AS array JOIN t2` it is a name and `JOIN t2` is a join.
                let array_join = i > 1
                    && self.is_kw(i - 1, "ARRAY")
                    && (self.is_kw(i - 2, "LEFT")
                        || self.is_kw(i - 2, "INNER")
                        || self.ends_operand(i - 2));
                self.frames[frame].in_order_by = false;
                if array_join {
                    // `ARRAY JOIN arr AS a, b` takes expressions, not tables.
                    self.frames[frame].from_list = false;
                } else {
                    self.frames[frame].from_list = true;
                    self.table_item(i + 1)?;
                }
            }
            // `USING a, b` without parentheses is a column list running to the next JOIN.
            "USING" if can_end && self.kind(i + 1) != Some(Kind::LParen) => {
                self.frames[frame].from_list = false
            }
            "IN" => {
                let after_argument = self.kind(i - 1) != Some(Kind::LParen);
                let f = &mut self.frames[frame];
                if f.special == Special::In && !f.special_used && !f.seen_select && after_argument {
                    f.special_used = true;
                } else {
                    self.in_operand(i + 1)?;
                }
            }
            "SETTINGS" => self.settings_clause(i)?,
            "INTO" if self.is_kw(i + 1, "OUTFILE") => return Err(SqlError::IntoOutfile),
            "APPLY" => self.apply_transformer(i)?,
            _ => {}
        }
        Ok(())
    }

    fn after_from(&mut self, i: usize) -> Result<(), SqlError> {
        let frame_id = self.frame_of[i];
        let with_fill = i > 1 && self.is_kw(i - 1, "FILL") && self.is_kw(i - 2, "WITH");
        // `extract(DAY FROM d)` always has an argument before FROM; `extract(FROM t ...)` does not.
        let after_argument = self.kind(i - 1) != Some(Kind::LParen);
        let f = &mut self.frames[frame_id];
        if f.special == Special::From && !f.special_used && !f.seen_select && after_argument {
            f.special_used = true;
            return Ok(());
        }
        if f.in_order_by && with_fill {
            return Ok(());
        }
        f.from_list = true;
        f.in_order_by = false;
        self.table_item(i + 1)
    }

    /// Checks the table expression starting at token `j` (after `FROM`, `JOIN` or a list comma).
    fn table_item(&mut self, j: usize) -> Result<(), SqlError> {
        let Some(kind) = self.kind(j) else {
            return Err(SqlError::Syntax(
                "Expected a table name at the end of the query".to_string(),
            ));
        };
        match kind {
            Kind::LParen => {
                let body = self.skip_lparens(j);
                if self.is_kw(body, "SELECT") || self.is_kw(body, "WITH") {
                    Ok(())
                } else if STATEMENTS_IN_PARENS.iter().any(|w| self.is_kw(body, w)) {
                    Err(SqlError::NotSelect)
                } else {
                    Err(SqlError::Syntax(format!(
                        "Expected a SELECT subquery after '(' at position {}",
                        self.toks[j].start + 1
                    )))
                }
            }
            Kind::Word | Kind::QuotedIdent => {
                let name = self.ident(j);
                if self.kind(j + 1) == Some(Kind::LParen) {
                    return if policy::is_allowed_table_function(&name) {
                        Ok(())
                    } else {
                        Err(SqlError::TableFunction(name))
                    };
                }
                if self.kind(j + 1) == Some(Kind::Dot) {
                    return Err(SqlError::ForbiddenDatabase(name));
                }
                if self.is_kw(j + 1, "UUID") {
                    return Err(SqlError::Forbidden(
                        "Table references by UUID are not allowed".to_string(),
                    ));
                }
                self.table_ref(j)
            }
            _ => Err(SqlError::Syntax(format!(
                "Expected a table name at position {}, found '{}'",
                self.toks[j].start + 1,
                self.text(j)
            ))),
        }
    }

    /// Token `j` names a table: keep it if it is a visible CTE, otherwise replace it by the resolver's text.
    fn table_ref(&mut self, j: usize) -> Result<(), SqlError> {
        let name = self.ident(j);
        self.table_name[j] = true;
        if self.cte_visible(&name, self.frame_of[j]) {
            return Ok(());
        }
        let Some(replacement) = self.resolver.resolve(&name) else {
            return Err(SqlError::UnknownTable(name));
        };
        let t = self.toks[j];
        self.edits.insert(
            t.start,
            Edit {
                end: t.end,
                text: replacement,
                pad: true,
            },
        );
        if !self.tables.contains(&name) {
            self.tables.push(name);
        }
        Ok(())
    }

    /// The right side of `IN` starting at token `j`: `x IN tbl`, `x IN (tbl)` and the elements of
    /// `in(x, tbl)` name tables; lists, subqueries and function calls are left to the scan.
    fn in_operand(&mut self, j: usize) -> Result<(), SqlError> {
        match self.kind(j) {
            Some(Kind::Word | Kind::QuotedIdent) => {
                if self.kind(j + 1) == Some(Kind::LParen) || self.is_literal_word(j) {
                    return Ok(());
                }
                if self.kind(j + 1) == Some(Kind::Dot) {
                    return Err(SqlError::ForbiddenDatabase(self.ident(j)));
                }
                self.table_ref(j)
            }
            Some(Kind::LParen) => {
                let close = self.partner[j];
                let mut start = j + 1;
                let mut k = j + 1;
                while k < close {
                    match self.toks[k].kind {
                        Kind::LParen | Kind::LBracket => k = self.partner[k],
                        Kind::Comma => {
                            self.in_element(start, k)?;
                            start = k + 1;
                        }
                        _ => {}
                    }
                    k += 1;
                }
                self.in_element(start, close)
            }
            _ => Ok(()),
        }
    }

    /// One element `[start, end)` of a parenthesized `IN` operand: a lone identifier (possibly in
    /// more parentheses) is a table; a dotted name is a table in another database.
    fn in_element(&mut self, mut start: usize, mut end: usize) -> Result<(), SqlError> {
        while end > start + 1
            && self.kind(start) == Some(Kind::LParen)
            && self.partner[start] == end - 1
        {
            start += 1;
            end -= 1;
        }
        if end == start + 1 && self.is_ident(start) && !self.is_literal_word(start) {
            return self.table_ref(start);
        }
        let dotted_name = end >= start + 3
            && !(end - start).is_multiple_of(2)
            && (start..end).all(|k| {
                if (k - start).is_multiple_of(2) {
                    self.is_ident(k)
                } else {
                    self.kind(k) == Some(Kind::Dot)
                }
            });
        if dotted_name {
            return Err(SqlError::ForbiddenDatabase(self.ident(start)));
        }
        Ok(())
    }

    /// `SETTINGS name [= value], ...`: every name must be allowed. `SETTINGS` used as a column name
    /// (`SELECT settings FROM t`, `x AS settings`) is recognised and left alone.
    fn settings_clause(&mut self, i: usize) -> Result<(), SqlError> {
        if i > 0 && (self.is_kw(i - 1, "AS") || self.kind(i - 1) == Some(Kind::Dot)) {
            return Ok(());
        }
        let mut j = i + 1;
        if !self.is_ident(j) {
            return Ok(());
        }
        let word = self.text(j).to_ascii_uppercase();
        if self.kind(j) == Some(Kind::Word)
            && NOT_SETTING_NAMES.contains(&word.as_str())
            && !self.is_op(j + 1, "=")
        {
            return Ok(());
        }
        loop {
            let mut name = self.ident(j);
            j += 1;
            while self.kind(j) == Some(Kind::Dot) && self.is_ident(j + 1) {
                name.push('.');
                name.push_str(&self.ident(j + 1));
                j += 2;
            }
            if !policy::is_allowed_setting(&name) {
                return Err(SqlError::ForbiddenSetting(name));
            }
            if self.is_op(j, "=") {
                j = self.skip_setting_value(j + 1);
            }
            if self.kind(j) == Some(Kind::Comma) && self.is_ident(j + 1) {
                j += 1;
            } else {
                return Ok(());
            }
        }
    }

    /// The index after the setting value starting at `j` (a literal, signed number, array, map or call).
    fn skip_setting_value(&self, mut j: usize) -> usize {
        if self.is_op(j, "-") || self.is_op(j, "+") {
            j += 1;
        }
        match self.kind(j) {
            None => j,
            Some(Kind::LParen | Kind::LBracket) => self.partner[j] + 1,
            Some(Kind::Word | Kind::QuotedIdent) if self.kind(j + 1) == Some(Kind::LParen) => {
                self.partner[j + 1] + 1
            }
            Some(_) => j + 1,
        }
    }

    /// `APPLY(fn)` / `APPLY fn` calls `fn` on columns by name, without `fn(`.
    fn apply_transformer(&mut self, i: usize) -> Result<(), SqlError> {
        let mut j = i + 1;
        if self.kind(j) == Some(Kind::LParen) {
            j += 1;
        }
        if self.is_ident(j) && self.kind(j + 1) != Some(Kind::Arrow) {
            let name = self.ident(j);
            if policy::is_denied_function(&name) || name.eq_ignore_ascii_case("in") {
                return Err(SqlError::ForbiddenFunction(name));
            }
        }
        Ok(())
    }

    /// An identifier followed by `(` is a call: refuse denied functions.
    fn check_call(&self, i: usize) -> Result<(), SqlError> {
        if self.kind(i + 1) != Some(Kind::LParen) {
            return Ok(());
        }
        let name = self.ident(i);
        // A quoted `in` can only be the function form `in(x, tbl)`; bare `IN (` is the operator.
        let quoted_in = self.toks[i].kind == Kind::QuotedIdent && name.eq_ignore_ascii_case("in");
        if quoted_in || policy::is_denied_function(&name) {
            return Err(SqlError::ForbiddenFunction(name));
        }
        Ok(())
    }

    /// The query text from its first to its last kept token, with the edits applied.
    fn render(&self) -> String {
        let (Some(first), Some(last)) = (self.toks.first(), self.toks.last()) else {
            return String::new();
        };
        let sql = self.sql;
        let mut out = String::with_capacity(last.end - first.start + 32);
        let mut cursor = first.start;
        for (&start, edit) in &self.edits {
            if start < cursor || start > last.end {
                continue;
            }
            out.push_str(&sql[cursor..start]);
            let before = sql[..start].chars().next_back();
            let after = sql[edit.end..].chars().next();
            if edit.pad && before.is_some_and(|c| !c.is_whitespace() && !"(,".contains(c)) {
                out.push(' ');
            }
            out.push_str(&edit.text);
            if edit.pad
                && edit.end < last.end
                && after.is_some_and(|c| !c.is_whitespace() && !"),;".contains(c))
            {
                out.push(' ');
            }
            cursor = edit.end;
        }
        if cursor < last.end {
            out.push_str(&sql[cursor..last.end]);
        }
        out
    }
}
