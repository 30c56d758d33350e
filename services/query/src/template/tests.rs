//! Template cases, written from Tinybird's documentation of each function and the behaviour of
//! its `sql_template.py`: a template, the request's parameters, and the SQL or error expected.

use std::collections::HashMap;

use serde_json::json;

use super::*;

/// Workspace variables for the cases: one secret, one plain variable.
struct TestVariables;

impl Variables for TestVariables {
    fn get(&self, name: &str, secret: bool) -> Option<String> {
        match (name, secret) {
            ("db_password", true) => Some("s3cr'et".into()),
            ("region", false) => Some("eu".into()),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum Expect {
    /// The rendered SQL.
    Sql(&'static str),
    /// A syntax (or unsupported) error whose message contains this.
    Error(&'static str),
    /// A missing parameter, by name.
    Missing(&'static str),
    /// An invalid parameter: its name and a fragment of the message.
    Invalid(&'static str, &'static str),
    /// `error()`/`custom_error()`: status and message.
    Custom(u16, &'static str),
}

use Expect::*;

type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Expect,
);

fn params(pairs: &[(&str, &str)]) -> Params {
    let mut params: Params = HashMap::new();
    for (name, value) in pairs {
        params
            .entry(name.to_string())
            .or_default()
            .push(value.to_string());
    }
    params
}

/// Renders `%\n<template>` and compares; returns a description of the mismatch.
fn check((template, pairs, expect): &Case) -> Option<String> {
    let source = format!("%\n{template}");
    let result = Template::parse(&source).and_then(|t| t.render(&params(pairs), &TestVariables));
    let ok = match (&result, expect) {
        (Ok(sql), Sql(expected)) => sql == expected,
        (Err(TemplateError::Syntax(m) | TemplateError::Unsupported(m)), Error(fragment)) => {
            m.contains(fragment)
        }
        (Err(TemplateError::MissingParam(name)), Missing(expected)) => name == expected,
        (Err(TemplateError::InvalidParam { name, message }), Invalid(expected, fragment)) => {
            name == expected && message.contains(fragment)
        }
        (
            Err(TemplateError::Custom { status, message }),
            Custom(expected_status, expected_message),
        ) => status == expected_status && message == expected_message,
        _ => false,
    };
    (!ok).then(|| {
        format!("template {template:?} with {pairs:?}: expected {expect:?}, got {result:?}")
    })
}

const CASES: &[Case] = &[
    // String: the value, else the default, always an escaped literal.
    ("SELECT {{String(country, 'ES')}}", &[], Sql("SELECT 'ES'")),
    (
        "SELECT {{String(country, 'ES')}}",
        &[("country", "FR")],
        Sql("SELECT 'FR'"),
    ),
    (
        "SELECT {{String(country, 'ES', description=\"Country\", required=False)}}",
        &[],
        Sql("SELECT 'ES'"),
    ),
    (
        "SELECT {{String(country, default='ES')}}",
        &[("country", "")],
        Sql("SELECT ''"),
    ),
    ("SELECT {{String(name)}}", &[], Missing("name")),
    (
        "SELECT {{String(name, required=True)}}",
        &[],
        Missing("name"),
    ),
    (
        "SELECT {{String(name, 'x', required=True)}}",
        &[],
        Missing("name"),
    ),
    (
        "SELECT {{String(name, 'x', required=True)}}",
        &[("name", "y")],
        Sql("SELECT 'y'"),
    ),
    ("SELECT {{String(n, 5)}}", &[], Sql("SELECT '5'")),
    (
        "SELECT {{String(name)}}",
        &[("name", "a"), ("name", "b")],
        Sql("SELECT 'b'"),
    ),
    // Integers render as typed ClickHouse casts, range-checked per type.
    (
        "LIMIT {{Int32(limit, 10)}}",
        &[],
        Sql("LIMIT toInt32('10')"),
    ),
    (
        "LIMIT {{Int32(limit, 10)}}",
        &[("limit", "25")],
        Sql("LIMIT toInt32('25')"),
    ),
    (
        "LIMIT {{Int32(limit, 10)}}",
        &[("limit", "abc")],
        Invalid("limit", "Error validating 'abc' to type Int32"),
    ),
    (
        "LIMIT {{Int32(limit, 10)}}",
        &[("limit", "007")],
        Sql("LIMIT toInt32('7')"),
    ),
    (
        "LIMIT {{Int32(limit, 10)}}",
        &[("limit", "1.0")],
        Invalid("limit", "to type Int32"),
    ),
    (
        "LIMIT {{Int32(limit, 10)}}",
        &[("limit", " 5")],
        Invalid("limit", "to type Int32"),
    ),
    (
        "LIMIT {{Int32(limit, 10)}}",
        &[("limit", "1 OR 1=1")],
        Invalid("limit", "to type Int32"),
    ),
    (
        "LIMIT {{Int32(limit, 10)}}",
        &[("limit", "5\n")],
        Invalid("limit", "to type Int32"),
    ),
    (
        "LIMIT {{Int32(limit, 10)}}",
        &[("limit", "2147483648")],
        Invalid("limit", "to type Int32"),
    ),
    ("{{Int8(x)}}", &[("x", "127")], Sql("toInt8('127')")),
    ("{{Int8(x)}}", &[("x", "-128")], Sql("toInt8('-128')")),
    ("{{Int8(x)}}", &[("x", "128")], Invalid("x", "to type Int8")),
    (
        "{{Int16(x)}}",
        &[("x", "-32769")],
        Invalid("x", "to type Int16"),
    ),
    ("{{UInt8(x)}}", &[("x", "255")], Sql("toUInt8('255')")),
    (
        "{{UInt8(x)}}",
        &[("x", "256")],
        Invalid("x", "to type UInt8"),
    ),
    (
        "{{UInt8(x)}}",
        &[("x", "-1")],
        Invalid("x", "to type UInt8"),
    ),
    (
        "{{UInt16(x)}}",
        &[("x", "+1")],
        Invalid("x", "to type UInt16"),
    ),
    (
        "{{UInt32(x)}}",
        &[("x", "4294967295")],
        Sql("toUInt32('4294967295')"),
    ),
    (
        "{{UInt64(x)}}",
        &[("x", "18446744073709551615")],
        Sql("toUInt64('18446744073709551615')"),
    ),
    (
        "{{UInt64(x)}}",
        &[("x", "18446744073709551616")],
        Invalid("x", "to type UInt64"),
    ),
    (
        "{{Int64(x)}}",
        &[("x", "-9223372036854775808")],
        Sql("toInt64('-9223372036854775808')"),
    ),
    (
        "{{Int64(x)}}",
        &[("x", "9223372036854775808")],
        Invalid("x", "to type Int64"),
    ),
    (
        "{{Int128(x)}}",
        &[("x", "170141183460469231731687303715884105727")],
        Sql("toInt128('170141183460469231731687303715884105727')"),
    ),
    (
        "{{Int256(x)}}",
        &[(
            "x",
            "57896044618658097711785492504343953926634992332820282019728792003956564819967",
        )],
        Sql(
            "toInt256('57896044618658097711785492504343953926634992332820282019728792003956564819967')",
        ),
    ),
    (
        "{{Int256(x)}}",
        &[(
            "x",
            "57896044618658097711785492504343953926634992332820282019728792003956564819968",
        )],
        Invalid("x", "to type Int256"),
    ),
    ("{{UInt128(x)}}", &[("x", "-0")], Sql("toUInt128('0')")),
    (
        "{{UInt256(x)}}",
        &[("x", "-1")],
        Invalid("x", "to type UInt256"),
    ),
    // Int and Integer are plain Int32-checked integers.
    ("LIMIT {{Int(limit, 5)}}", &[], Sql("LIMIT 5")),
    (
        "LIMIT {{Integer(limit)}}",
        &[("limit", "42")],
        Sql("LIMIT 42"),
    ),
    (
        "LIMIT {{Int(limit)}}",
        &[("limit", "3000000000")],
        Invalid("limit", "to type Int32"),
    ),
    // Floats.
    ("{{Float32(x, 0.5)}}", &[], Sql("toFloat32('0.5')")),
    ("{{Float32(x)}}", &[("x", "1")], Sql("toFloat32('1.0')")),
    (
        "{{Float32(x)}}",
        &[("x", "1e3")],
        Sql("toFloat32('1000.0')"),
    ),
    ("{{Float32(x)}}", &[("x", " 2.5 ")], Sql("toFloat32('2.5')")),
    (
        "{{Float64(x)}}",
        &[("x", "1e20")],
        Sql("toFloat64('1e+20')"),
    ),
    ("{{Float64(x)}}", &[("x", "-0.1")], Sql("toFloat64('-0.1')")),
    (
        "{{Float64(x)}}",
        &[("x", "0.00001")],
        Sql("toFloat64('1e-05')"),
    ),
    (
        "{{Float32(x)}}",
        &[("x", "abc")],
        Invalid("x", "Error validating 'abc' to type Float32"),
    ),
    (
        "{{Float32(x)}}",
        &[("x", "1_000")],
        Invalid("x", "to type Float32"),
    ),
    (
        "{{Float32(x)}}",
        &[("x", "1) OR (1")],
        Invalid("x", "to type Float32"),
    ),
    // Boolean renders 1/0 and never fails.
    ("{{Boolean(flag)}}", &[], Sql("0")),
    ("{{Boolean(flag, True)}}", &[], Sql("1")),
    ("{{Boolean(flag)}}", &[("flag", "true")], Sql("1")),
    ("{{Boolean(flag)}}", &[("flag", "FALSE")], Sql("0")),
    ("{{Boolean(flag)}}", &[("flag", "0")], Sql("0")),
    ("{{Boolean(flag)}}", &[("flag", "1")], Sql("1")),
    // Dates: Date exactly, DateTime/DateTime64 by prefix, always quoted.
    ("{{Date(d)}}", &[("d", "2024-01-31")], Sql("'2024-01-31'")),
    ("{{Date(d, '2019-01-01')}}", &[], Sql("'2019-01-01'")),
    (
        "{{Date(d)}}",
        &[("d", "2024/01/31")],
        Invalid("d", "Error validating '2024/01/31' to type Date"),
    ),
    (
        "{{Date(d)}}",
        &[("d", "2024-01-31' OR 1=1")],
        Invalid("d", "to type Date"),
    ),
    (
        "{{DateTime(t)}}",
        &[("t", "2018-09-07 23:55:00")],
        Sql("'2018-09-07 23:55:00'"),
    ),
    (
        "{{DateTime(t)}}",
        &[("t", "2024-01-31T10:00:00Z")],
        Sql("'2024-01-31T10:00:00Z'"),
    ),
    (
        "{{DateTime(t)}}",
        &[("t", "yesterday")],
        Invalid("t", "to type DateTime"),
    ),
    (
        "{{DateTime(t)}}",
        &[("t", "2024-01-31 10:00:00' OR 1=1 --")],
        Sql("'2024-01-31 10:00:00\\' OR 1=1 --'"),
    ),
    (
        "{{DateTime64(t, '2020-09-09 10:10:10.000')}}",
        &[],
        Sql("'2020-09-09 10:10:10.000'"),
    ),
    (
        "{{DateTime64(t)}}",
        &[("t", "2024-01-31 10:00:00")],
        Invalid("t", "to type DateTime64"),
    ),
    // Arrays: from a comma-separated value or repeated parameters, each element by type.
    (
        "{{Array(ids, 'Int32')}}",
        &[("ids", "1,2,3")],
        Sql("[1,2,3]"),
    ),
    (
        "{{Array(ids, 'Int32')}}",
        &[("ids", "1"), ("ids", "2")],
        Sql("[1,2]"),
    ),
    (
        "{{Array(ids, 'Int32')}}",
        &[("ids", "1,x")],
        Invalid("ids", "Error validating [1,x][1] (x) to type Int32"),
    ),
    (
        "{{Array(ids, 'Int32', '')}}",
        &[],
        Invalid("ids", "(empty string) to type Int32"),
    ),
    (
        "{{Array(ids, 'UInt8')}}",
        &[("ids", "1,300")],
        Invalid("ids", "to type UInt8"),
    ),
    ("{{Array(ids, 'Int32')}}", &[], Missing("ids")),
    ("{{Array(tags)}}", &[("tags", "a,b")], Sql("['a','b']")),
    (
        "{{Array(tags, 'String', default='x,y')}}",
        &[],
        Sql("['x','y']"),
    ),
    (
        "{{Array(tags, 'String', 'pre,pro')}}",
        &[],
        Sql("['pre','pro']"),
    ),
    (
        "{{Array(tags, 'String', default=['mobile','desktop'])}}",
        &[],
        Sql("['mobile','desktop']"),
    ),
    ("{{Array(tags, 'String', '')}}", &[], Sql("['']")),
    (
        "{{Array(v, 'Float32')}}",
        &[("v", "1,2.5")],
        Sql("[1.0,2.5]"),
    ),
    (
        "{{Array(d, 'Date')}}",
        &[("d", "2024-01-01,2024-02-01")],
        Sql("['2024-01-01','2024-02-01']"),
    ),
    (
        "{{Array(tags, 'String')}}",
        &[("tags", "a'b,c\\")],
        Sql("['a\\'b','c\\\\']"),
    ),
    (
        "{% for id in ids %}{{id}};{% end %}{{Array(ids, 'Int32')}}",
        &[("ids", "1,2")],
        Sql("1;2;[1,2]"),
    ),
    // defined
    (
        "{% if defined(x) %}yes{% else %}no{% end %}",
        &[],
        Sql("no"),
    ),
    (
        "{% if defined(x) %}yes{% else %}no{% end %}",
        &[("x", "1")],
        Sql("yes"),
    ),
    (
        "{% if defined(x) %}yes{% else %}no{% end %}",
        &[("x", "")],
        Sql("yes"),
    ),
    (
        "{% if not defined(x) %}ERROR{% else %}{{x}}{% end %}",
        &[("x", "v")],
        Sql("'v'"),
    ),
    // column, columns, symbol, table: quoted (or validated) identifiers.
    (
        "ORDER BY {{column(sort, 'timestamp')}}",
        &[],
        Sql("ORDER BY `timestamp`"),
    ),
    (
        "ORDER BY {{column(sort, 'timestamp')}}",
        &[("sort", "price")],
        Sql("ORDER BY `price`"),
    ),
    (
        "SELECT {{column(c, 'a')}}",
        &[("c", "json.a")],
        Sql("SELECT `json`.`a`"),
    ),
    (
        "SELECT {{column(c, 'a')}}",
        &[("c", "\"foo\"")],
        Sql("SELECT `foo`"),
    ),
    (
        "SELECT {{column(c)}}",
        &[],
        Error("Missing column() default value"),
    ),
    (
        "ORDER BY {{column(sort, 'ts')}}",
        &[("sort", "price` DESC; DROP TABLE x; --")],
        Sql("ORDER BY `price\\` DESC; DROP TABLE x; --`"),
    ),
    (
        "SELECT {{columns(cols, 'a,b,c')}} FROM t",
        &[],
        Sql("SELECT `a`,`b`,`c` FROM t"),
    ),
    (
        "SELECT {{columns(cols, 'a,b,c')}} FROM t",
        &[("cols", "x, y")],
        Sql("SELECT `x`,`y` FROM t"),
    ),
    (
        "{% set cols = 'date,user_id' %}SELECT {{columns(cols)}}",
        &[],
        Sql("SELECT `date`,`user_id`"),
    ),
    (
        "SELECT {{columns(cols)}}",
        &[],
        Error("Missing columns() default value"),
    ),
    (
        "SELECT {{columns(cols, 'a,b', fn='sum')}}",
        &[],
        Sql("SELECT sum(`a`) as `a`,sum(`b`) as `b`"),
    ),
    (
        "SELECT {{columns(cols, 'a', fn='x) FROM y --')}}",
        &[],
        Error("fn must be a function name"),
    ),
    (
        "SELECT * FROM {{symbol(t)}}",
        &[("t", "table-name")],
        Sql("SELECT * FROM `table-name`"),
    ),
    (
        "SELECT * FROM {{symbol(t)}}",
        &[("t", "\"table-name\"")],
        Sql("SELECT * FROM `table-name`"),
    ),
    (
        "SELECT * FROM {{symbol(t)}}",
        &[("t", "a`b")],
        Sql("SELECT * FROM `a\\`b`"),
    ),
    (
        "SELECT * FROM {{table(t)}}",
        &[("t", "events")],
        Sql("SELECT * FROM events"),
    ),
    (
        "SELECT * FROM {{table(t)}}",
        &[("t", "events; DROP TABLE x")],
        Error("Invalid table name"),
    ),
    // sql_and
    (
        "WHERE {{sql_and(a=a, b=b)}}",
        &[("a", "1"), ("b", "2")],
        Sql("WHERE a = '1' and b = '2'"),
    ),
    (
        "WHERE {{sql_and(a=a, b=b)}}",
        &[("b", "2")],
        Sql("WHERE b = '2'"),
    ),
    (
        "WHERE {{sql_and(a=Int(a, defined=False), b=Int(b, defined=False))}}",
        &[("b", "2")],
        Sql("WHERE b = 2"),
    ),
    (
        "WHERE {{sql_and(a__in=Array(a), b=b)}}",
        &[("a", "a,b,c"), ("b", "2")],
        Sql("WHERE a in ['a','b','c'] and b = '2'"),
    ),
    (
        "WHERE {{sql_and(a__not_in=Array(a, 'Int32'))}}",
        &[("a", "1,2")],
        Sql("WHERE a not in [1,2]"),
    ),
    (
        "WHERE {{sql_and(x__gt=Int32(x, defined=False), y__lte=Float64(y, defined=False), z__gte=z, w__lt=w)}}",
        &[("x", "5"), ("y", "1.5"), ("z", "a"), ("w", "b")],
        Sql("WHERE x > toInt32('5') and y <= toFloat64('1.5') and z >= 'a' and w < 'b'"),
    ),
    (
        "WHERE {{sql_and(a__like=a)}}",
        &[("a", "1")],
        Error("operand like not supported"),
    ),
    ("WHERE 1 {{sql_and(a=a)}}", &[], Sql("WHERE 1 ")),
    (
        "WHERE {{sql_and(name=name)}}",
        &[("name", "x' OR '1'='1")],
        Sql("WHERE name = 'x\\' OR \\'1\\'=\\'1'"),
    ),
    // split_to_array and enumerate_with_last
    (
        "{{split_to_array(tags)}}",
        &[("tags", "a, b ,c")],
        Sql("['a','b','c']"),
    ),
    ("{{split_to_array(tags)}}", &[], Sql("['']")),
    (
        "{{split_to_array(tags, 'x|y', separator='|')}}",
        &[],
        Sql("['x','y']"),
    ),
    (
        "{% for t in split_to_array(tags, 'a,b') %}{{t}};{% end %}",
        &[],
        Sql("'a';'b';"),
    ),
    (
        "{{split_to_array(tags)}}",
        &[("tags", "a'),('b")],
        Sql("['a\\')','(\\'b']"),
    ),
    (
        "{% for last, t in enumerate_with_last(split_to_array(tags, 'a,b,c')) %}{{t}}{% if not last %},{% end %}{% end %}",
        &[],
        Sql("'a','b','c'"),
    ),
    // Dates differences
    ("{{day_diff('2019-01-01', '2019-02-01')}}", &[], Sql("31")),
    (
        "{{day_diff(d1, d2)}}",
        &[("d1", "2019-02-01"), ("d2", "2019-01-02")],
        Sql("30"),
    ),
    (
        "{{day_diff('2019-01-01', 'bad')}}",
        &[],
        Error("invalid date format in function `day_diff`"),
    ),
    (
        "{{date_diff_in_seconds('2022-12-19 18:42:22', '2022-12-19 18:43:22')}}",
        &[],
        Sql("60"),
    ),
    (
        "{{date_diff_in_seconds('2022-12-19T18:42:23.521Z', '2022-12-19T18:44:23.531Z', '%Y-%m-%dT%H:%M:%S.%fz')}}",
        &[],
        Sql("120"),
    ),
    (
        "{{date_diff_in_minutes('2022-12-14 18:42:22', '2022-12-19 18:42:22')}}",
        &[],
        Sql("7200"),
    ),
    (
        "{{date_diff_in_hours('2022-12-19', '2022-12-19 02:01:00', backup_date_format='%Y-%m-%d')}}",
        &[],
        Sql("2"),
    ),
    (
        "{{date_diff_in_hours('2022-12-19T20:43:22Z', '2022-12-19T18:42:23Z', '%Y-%m-%dT%H:%M:%Sz')}}",
        &[],
        Sql("2"),
    ),
    (
        "{{date_diff_in_days('2019-01-01', '2019/01/04', backup_date_format='%Y/%m/%d')}}",
        &[],
        Sql("3"),
    ),
    (
        "{% if date_diff_in_days('2019-01-01', '2019-00-02', none_if_error=True) is None %}none{% end %}",
        &[],
        Sql("none"),
    ),
    (
        "{{date_diff_in_hours('2022-12-32 18:42:22', '2022-12-19 18:42:22')}}",
        &[],
        Error("date_diff_in_hours"),
    ),
    // error and custom_error
    (
        "{% if not defined(x) %}{{error('x is required')}}{% end %}SELECT 1",
        &[],
        Custom(400, "x is required"),
    ),
    (
        "{% if not defined(x) %}{{error('x is required')}}{% end %}SELECT 1",
        &[("x", "1")],
        Sql("SELECT 1"),
    ),
    (
        "{{error('forbidden', code=403)}}",
        &[],
        Custom(403, "forbidden"),
    ),
    (
        "{{custom_error({'error': 'Not allowed', 'code': 403})}}",
        &[],
        Custom(403, "Not allowed"),
    ),
    ("{{custom_error('gone', 404)}}", &[], Custom(404, "gone")),
    // sql_unescape and `%`
    ("{{String(p)}}", &[("p", "50%")], Sql("'50\\%'")),
    (
        "LIKE {{sql_unescape(String(p), '%')}}",
        &[("p", "raul_%")],
        Sql("LIKE 'raul_%'"),
    ),
    (
        "LIKE {{sql_unescape(String(p), \"'\")}}",
        &[("p", "x")],
        Error("cannot unescape"),
    ),
    (
        "LIKE {{sql_unescape(String(p))}}",
        &[("p", "it's")],
        Sql("LIKE 'it\\'s'"),
    ),
    // tb_secret and tb_var
    ("{{tb_secret('db_password')}}", &[], Sql("'s3cr\\'et'")),
    ("{{tb_var('region')}}", &[], Sql("'eu'")),
    ("{{tb_secret('missing', 'dflt')}}", &[], Sql("'dflt'")),
    (
        "{{tb_secret('missing')}}",
        &[],
        Error("Cannot access secret 'missing'"),
    ),
    (
        "{{tb_secret('region')}}",
        &[],
        Error("Cannot access secret 'region'"),
    ),
    // Untyped parameters are strings, escaped like String().
    ("SELECT {{x}}", &[("x", "test")], Sql("SELECT 'test'")),
    (
        "SELECT {{x}}",
        &[],
        Error("expression \"x\" evaluated to null"),
    ),
    (
        "SELECT {{x}}",
        &[("x", "a"), ("x", "b")],
        Sql("SELECT ['a','b']"),
    ),
    // Injection attempts all stay inside literals.
    (
        "{{String(p)}}",
        &[("p", "'; DROP TABLE users; --")],
        Sql("'\\'; DROP TABLE users; --'"),
    ),
    ("{{p}}", &[("p", "\\'")], Sql("'\\\\\\''")),
    (
        "{{String(p)}}",
        &[("p", "a\nb\r\tc")],
        Sql("'a\\x0Ab\\x0D\\x09c'"),
    ),
    (
        "{{String(p)}}",
        &[("p", "/* c */ -- x")],
        Sql("'/* c */ -- x'"),
    ),
    ("{{String(p)}}", &[("p", "ñ 日本 😀")], Sql("'ñ 日本 😀'")),
    ("{{String(p)}}", &[("p", "\0")], Sql("'\\x00'")),
    (
        "{{String(p)}}",
        &[("p", "{{x}} {% end %}")],
        Sql("'{{x}} {\\% end \\%}'"),
    ),
    (
        "{{String(p)}}",
        &[("p", "x\" OR \"1\"=\"1")],
        Sql("'x\" OR \"1\"=\"1'"),
    ),
    ("{{column(c, 'a') + ' DESC'}}", &[], Sql("'`a` DESC'")),
    (
        "{% for kv in JSON(payload) %}{{kv['dp']}}{% end %}",
        &[("payload", "[{\"dp\": \"a'b\"}]")],
        Sql("'a\\'b'"),
    ),
    // Control flow
    (
        "{% if x == 'a' %}A{% elif x == 'b' %}B{% else %}C{% end %}",
        &[("x", "b")],
        Sql("B"),
    ),
    (
        "{% if x == 'a' %}A{% elif x == 'b' %}B{% else %}C{% end %}",
        &[("x", "z")],
        Sql("C"),
    ),
    (
        "{% if defined(a) %}{% if defined(b) %}ab{% else %}a{% end %}{% end %}",
        &[("a", "1")],
        Sql("a"),
    ),
    (
        "{% for x in [] %}x{% else %}empty{% end %}",
        &[],
        Sql("empty"),
    ),
    (
        "{% set i = 0 %}{% while i < 3 %}{{i}}{% set i = i + 1 %}{% end %}",
        &[],
        Sql("012"),
    ),
    (
        "{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{% continue %}{% end %}{% if x == 4 %}{% break %}{% end %}{{x}}{% end %}",
        &[],
        Sql("13"),
    ),
    (
        "{% try %}{{error('boom')}}{% except %}fallback{% end %}",
        &[],
        Sql("fallback"),
    ),
    (
        "SELECT 1{# a comment #} {% comment nothing here %}",
        &[],
        Sql("SELECT 1 "),
    ),
    ("SELECT '{{!x}}'", &[], Sql("SELECT '{{x}}'")),
    (
        "{% whitespace oneline %}SELECT\n  a,\n  b",
        &[],
        Sql("SELECT a, b"),
    ),
    (
        "{% if Boolean(desc) %}DESC{% else %}ASC{% end %}",
        &[("desc", "true")],
        Sql("DESC"),
    ),
    (
        "LIMIT {{Int32(page_size, 10)}} OFFSET {{Int32(page, 0) * Int32(page_size, 10)}}",
        &[("page", "3")],
        Sql("LIMIT toInt32('10') OFFSET 30"),
    ),
    (
        "{% if Int32(n, 0) > 5 and n != '10' %}big{% end %}",
        &[("n", "7")],
        Sql("big"),
    ),
    (
        "{% if x in ['a', 'b'] %}yes{% end %}{% if x not in ('a',) %}no{% end %}",
        &[("x", "a")],
        Sql("yes"),
    ),
    (
        "{% if x is None %}none{% end %}{% if x is not None %}some{% end %}",
        &[],
        Sql("none"),
    ),
    ("{{ 'x' if defined(a) else 'y' }}", &[], Sql("'y'")),
    (
        "{% set limit = Int32(limit, 10) %}LIMIT {{limit}}",
        &[],
        Sql("LIMIT toInt32('10')"),
    ),
    (
        "{% set limit = Int32(limit, 10) %}LIMIT {{limit}}",
        &[("limit", "5")],
        Sql("LIMIT toInt32('5')"),
    ),
    ("{{{x}}}", &[("x", "a")], Sql("{'a'}")),
    ("{% if x %}true{% end %}", &[("x", "0")], Sql("true")),
    // Expressions and helpers
    ("{{len(split_to_array(tags, 'a,b,c'))}}", &[], Sql("3")),
    (
        "{{split_to_array(tags, 'a,b')[1]}}{{split_to_array(tags, 'a,b')[-1]}}",
        &[],
        Sql("'b''b'"),
    ),
    ("{{ x.upper() }}", &[("x", "ab")], Sql("'AB'")),
    (
        "{{ ','.join(split_to_array(tags, 'a,b')) }}",
        &[],
        Sql("'a,b'"),
    ),
    (
        "{% set d = JSON(payload, '{\"k\": \"v\"}') %}{{ d.get('k') }}{{ d['k'] }}",
        &[],
        Sql("'v''v'"),
    ),
    (
        "{% for kv in JSON(payload) %} OR department = {{kv['dp']}} {% end %}",
        &[("payload", "[{\"dp\":\"Design\"},{\"dp\":\"Marketing\"}]")],
        Sql(" OR department = 'Design'  OR department = 'Marketing' "),
    ),
    (
        "{{ max(1, Int(x, 5)) }} {{ min([3, 1, 2]) }} {{ str(Int(x, 5)) }}",
        &[],
        Sql("5 1 '5'"),
    ),
    (
        "{{ int('7') + 1 }} {{ float('1.5') }} {{ 1 / 2 }} {{ 10 // 3 }} {{ -7 // 2 }} {{ 7 % 3 }}",
        &[],
        Sql("8 1.5 0.5 3 -4 1"),
    ),
    (
        "{{ 1.0 }} {{ True }} {{ -x }}",
        &[],
        Error("bad operand type for unary -"),
    ),
    ("{{ 1.0 }} {{ True }}", &[], Sql("1.0 True")),
    ("{{ None }}", &[], Error("evaluated to null")),
    ("{{ {'a': 1} }}", &[], Error("dict")),
    (
        "{{ max_threads(2) }}SELECT 1",
        &[],
        Sql("-- max_threads 2\nSELECT 1"),
    ),
    (
        "{{ cache_ttl('1h') }}SELECT 1",
        &[],
        Sql("-- cache_ttl 1h\nSELECT 1"),
    ),
    (
        "{{ cache_ttl('2h') }}SELECT 1",
        &[],
        Error("Invalid TTL cache expression"),
    ),
    // Refused constructs
    (
        "SELECT * FROM {% import os %}{{ os.popen('whoami').read() }}",
        &[],
        Error("import is forbidden"),
    ),
    (
        "{% from os import popen %}",
        &[],
        Error("import is forbidden"),
    ),
    (
        "{{ x.popen('ls') }}",
        &[],
        Error("Invalid method name: popen"),
    ),
    (
        "{{ eval('1+1') }}",
        &[],
        Error("Invalid function name: eval"),
    ),
    (
        "{{ __import__('os') }}",
        &[],
        Error("Invalid function name: __import__"),
    ),
    ("{{ x.__class__ }}", &[], Error("attribute access")),
    (
        "SELECT {{len([1] * 10**7)}}",
        &[],
        Error("Invalid BinOp: Pow()"),
    ),
    ("SELECT {{len([1] * 10000000)}}", &[], Error("more than")),
    ("{{ (lambda: 1) }}", &[], Error("lambda")),
    ("{{ [x for x in y] }}", &[], Error("comprehension")),
    ("{% while True %}x{% end %}", &[], Error("steps")),
    (
        "SELECT {% if defined(x) %} x, 1",
        &[],
        Error("Missing {% end %} block for if"),
    ),
    ("SELECT 1 {% end %}", &[], Error("Extra {% end %} block")),
    ("{% else %}", &[], Error("else outside")),
    (
        "{% for x in y %}{% elif z %}{% end %}",
        &[],
        Error("elif block cannot be attached to for block"),
    ),
    ("{% break %}", &[], Error("break outside")),
    ("SELECT {{ }}", &[], Error("Empty expression")),
    ("SELECT {{ x ", &[], Error("Missing end expression }}")),
    (
        "SELECT {{format}}",
        &[],
        Error("\"format\" can not be used as a variable name"),
    ),
    ("{% raw x %}", &[], Error("raw is forbidden")),
    ("{% include 'other' %}", &[], Error("include is forbidden")),
    (
        "{% frobnicate %}",
        &[],
        Error("unknown operator: 'frobnicate'"),
    ),
    (
        "{% if defined((x) %}{% end %}",
        &[],
        Error("invalid syntax"),
    ),
];

#[test]
fn template_cases() {
    assert!(CASES.len() >= 80, "only {} cases", CASES.len());
    let failures: Vec<String> = CASES.iter().filter_map(check).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn template_marker_and_literal_sql() {
    let none = Params::new();
    assert!(is_templated("  %\nSELECT 1"));
    assert!(!is_templated("SELECT 1 % 2"));
    let literal = Template::parse("SELECT '{{x}}' % 2").unwrap();
    assert_eq!(literal.render(&none, &()).unwrap(), "SELECT '{{x}}' % 2");
    assert!(literal.parameters().is_empty());
    assert_eq!(
        Template::parse("%\nSELECT 1")
            .unwrap()
            .render(&none, &())
            .unwrap(),
        "SELECT 1"
    );
    assert_eq!(
        Template::parse("% SELECT 1")
            .unwrap()
            .render(&none, &())
            .unwrap(),
        " SELECT 1"
    );
    assert_eq!(
        Template::parse("  %  \n  SELECT 1")
            .unwrap()
            .render(&none, &())
            .unwrap(),
        "  SELECT 1"
    );
}

#[test]
fn template_error_statuses() {
    assert_eq!(TemplateError::Syntax("x".into()).status(), 400);
    assert_eq!(TemplateError::MissingParam("x".into()).status(), 400);
    assert_eq!(
        TemplateError::InvalidParam {
            name: "x".into(),
            message: "m".into()
        }
        .status(),
        400
    );
    assert_eq!(
        TemplateError::Custom {
            status: 404,
            message: "m".into()
        }
        .status(),
        404
    );
    assert_eq!(
        TemplateError::MissingParam("limit".into()).to_string(),
        "Template Syntax Error: Required parameter is not defined. Check the parameters limit. Please provide a value or set a default value in the pipe code."
    );
}

fn spec(
    name: &str,
    ty: &str,
    default: Option<serde_json::Value>,
    description: Option<&str>,
    required: bool,
) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        r#type: ty.into(),
        default,
        description: description.map(Into::into),
        required,
    }
}

#[test]
fn template_parameters_of_an_endpoint() {
    let template = Template::parse(
        "%\nSELECT * FROM events\nWHERE 1 = 1\n\
         {% if defined(country) %} AND country = {{String(country, 'ES', description=\"Country code\", required=False)}} {% end %}\n\
         {% if defined(since) %} AND day >= {{Date(since, description=\"First day\")}} {% end %}\n\
         AND kind IN {{Array(kinds, 'String', default='click,view')}}\n\
         ORDER BY {{column(sort, 'day')}}\n\
         LIMIT {{Int32(limit, 100, required=True)}}",
    )
    .unwrap();
    assert_eq!(
        template.parameters(),
        vec![
            spec(
                "country",
                "String",
                Some(json!("ES")),
                Some("Country code"),
                false
            ),
            spec("since", "Date", None, Some("First day"), false),
            spec(
                "kinds",
                "Array(String)",
                Some(json!("click,view")),
                None,
                false
            ),
            spec("sort", "String", None, None, false),
            spec("limit", "Int32", Some(json!(100)), None, true),
        ]
    );
}

#[test]
fn template_parameters_rules() {
    let names = |sql: &str| Template::parse(sql).unwrap().parameters();
    // A block's body is read before its condition, as Tinybird does.
    assert_eq!(
        names("%{% if defined(y) %}{{UInt64(x)}}{% end %}"),
        vec![
            spec("x", "UInt64", None, None, false),
            spec("y", "String", None, None, false)
        ]
    );
    // Variables the template assigns are not parameters.
    assert_eq!(
        names("%{% set a = Int32(x, 0) %}{{a}}"),
        vec![spec("x", "Int32", Some(json!(0)), None, false)]
    );
    assert_eq!(
        names("%{% for v in split_to_array(tags, '') %}{{v}}{% end %}"),
        vec![spec("tags", "String", None, None, false)]
    );
    assert_eq!(
        names("%{% set limit = Int32(limit, 10) %}LIMIT {{limit}}"),
        vec![spec("limit", "Int32", Some(json!(10)), None, false)]
    );
    // The first typed declaration wins; an untyped mention keeps its position.
    assert_eq!(
        names("%{{Int32(dup, 1)}} {{String(dup, 'last')}}"),
        vec![spec("dup", "Int32", Some(json!(1)), None, false)]
    );
    assert_eq!(
        names("%{% if defined(x) %}1{% end %}{{y}}{{Int32(x, 5)}}"),
        vec![
            spec("x", "Int32", Some(json!(5)), None, false),
            spec("y", "String", None, None, false)
        ]
    );
    // Defaults are JSON literals; huge integers become strings; Int is Int32.
    assert_eq!(
        names(
            "%{{Int64(id, 9223372036854775807)}}{{Float32(v, -0.1)}}{{Boolean(b, False)}}{{Int(n, 3)}}"
        ),
        vec![
            spec(
                "id",
                "Int64",
                Some(json!("9223372036854775807")),
                None,
                false
            ),
            spec("v", "Float32", Some(json!(-0.1)), None, false),
            spec("b", "Boolean", Some(json!(false)), None, false),
            spec("n", "Int32", Some(json!(3)), None, false),
        ]
    );
    assert_eq!(
        names("%{{Array(ids, 'Int16', defined=False)}}{{Array(tags, default=['a', 'b'])}}"),
        vec![
            spec("ids", "Array(Int16)", None, None, false),
            spec(
                "tags",
                "Array(String)",
                Some(json!(["a", "b"])),
                None,
                false
            ),
        ]
    );
    // Names passed straight to other calls are not parameters; keyword values are.
    assert_eq!(
        names("%{{ len(x) }}{{ sql_and(a=b) }}"),
        vec![spec("b", "String", None, None, false)]
    );
}

#[test]
fn template_nesting_is_bounded() {
    // Deeper than any template needs: refused with a 400, never a stack overflow.
    let expression = |inner: String| format!("%SELECT {{{{ {inner} }}}}");
    let many = |text: &str, n: usize| text.repeat(n);
    let refused = [
        expression(many("(", 10_000) + "1" + &many(")", 10_000)),
        expression(many("[", 10_000) + "1" + &many("]", 10_000)),
        expression(many("-", 10_000) + "1"),
        expression(many("not ", 10_000) + "1"),
        expression(vec!["1"; 10_000].join(" + ")),
        expression(vec!["x"; 10_000].join(" or ")),
        expression("1".to_string() + &many(" if 1 else 1", 10_000)),
        expression("'a'".to_string() + &many("[0]", 10_000)),
        format!(
            "%{}1{}",
            many("{% if 1 %}", 10_000),
            many("{% end %}", 10_000)
        ),
        "%{% set a = [] %}{% for i in range(100000) %}{% set a = [a] %}{% end %}1".to_string(),
        "%{% set a = 1 %}{% for i in range(100000) %}{% set a = {'k': a} %}{% end %}1".to_string(),
        "%{% set a = 1 %}{% for i in range(100000) %}{% set a = enumerate([a]) %}{% end %}1"
            .to_string(),
    ];
    for template in &refused {
        let outcome = Template::parse(template).and_then(|t| t.render(&params(&[]), &()));
        let error = outcome.expect_err(&template[..template.len().min(60)]);
        assert_eq!(error.status(), 400, "{error}");
    }
    // Within the bounds, templates work as before.
    let fine = [
        expression(many("(", 40) + "1" + &many(")", 40)),
        expression(vec!["1"; 40].join(" + ")),
        format!("%{}1{}", many("{% if 1 %}", 40), many("{% end %}", 40)),
        "%{% set a = 1 %}{% for i in range(100) %}{% set a = [a] %}{% end %}1".to_string(),
    ];
    for template in &fine {
        let rendered = Template::parse(template).and_then(|t| t.render(&params(&[]), &()));
        assert!(
            rendered.is_ok(),
            "{}: {rendered:?}",
            &template[..template.len().min(60)]
        );
    }
}
