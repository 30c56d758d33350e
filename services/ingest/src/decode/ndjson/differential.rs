//! The fast path against the serde_json path on randomized schemas and rows: both must give the
//! same bytes, the same good-row count and the same quarantine rows, line for line.
//!
//! Rows are written as text (not through serde_json) so they can hold what serializers never
//! produce: every escape, surrogate pairs and lone surrogates, odd whitespace, number spellings at
//! the edges of serde_json's conversions, duplicate and escaped keys, and broken lines.

use roost_types::{Column, Segment, parse_schema};

use super::super::native::{split_rows, write_block};
use super::super::{BlockFormat, checked_columns};
use super::{decode_ndjson, decode_ndjson_as, decode_ndjson_serde};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TYPES: &[&str] = &[
    "String",
    "Nullable(String)",
    "LowCardinality(String)",
    "LowCardinality(Nullable(String))",
    "FixedString(4)",
    "UInt8",
    "Int8",
    "UInt16",
    "Int32",
    "UInt32",
    "UInt64",
    "Int64",
    "Int128",
    "UInt256",
    "Float32",
    "Float64",
    "Nullable(Float64)",
    "Decimal(9, 2)",
    "Decimal(38, 10)",
    "Bool",
    "Date",
    "Date32",
    "DateTime",
    "DateTime64(3)",
    "DateTime64(6, 'UTC')",
    "UUID",
    "IPv4",
    "IPv6",
    "Enum8('a' = 1, 'b' = 2)",
    "Array(String)",
    "Array(Nullable(Int32))",
    "Array(Array(UInt8))",
    "Array(Float64)",
    "Array(LowCardinality(String))",
    "Nullable(Int32)",
    "Map(String, UInt8)",
    "Tuple(a String, b UInt8)",
];

const DEFAULTS: &[&str] = &["", "", "", " DEFAULT 5", " DEFAULT 'x'"];

/// Keys rows use: plain, needing brackets, non-ASCII, and ones written escaped in rows.
const KEYS: &[&str] = &["a", "b", "c", "odd key", "naïve", "q\"k", "t"];

/// A jsonpath and the keys it walks through (for building rows that have values there).
fn random_path(rng: &mut Rng) -> String {
    let key = |rng: &mut Rng| {
        let key = rng.pick(KEYS);
        if key.chars().all(|c| c.is_ascii_alphanumeric()) && rng.chance(70) {
            format!(".{key}")
        } else {
            format!("['{}']", key.replace('\'', "\\'"))
        }
    };
    match rng.below(12) {
        0 => "$".to_owned(),
        1 => format!("${}[0]", key(rng)),
        2 => format!("${}[:]", key(rng)),
        3 => format!("${}[:]{}", key(rng), key(rng)),
        4 => format!("$[0]{}", key(rng)),
        5..=7 => format!("${}{}", key(rng), key(rng)),
        8 => format!("${}{}{}", key(rng), key(rng), key(rng)),
        _ => format!("${}", key(rng)),
    }
}

fn random_schema(rng: &mut Rng) -> String {
    let columns = 1 + rng.below(4);
    (0..columns)
        .map(|i| {
            let ty = rng.pick(TYPES);
            let default = if ty.starts_with("Map") || ty.starts_with("Tuple") {
                ""
            } else {
                match rng.pick(DEFAULTS) {
                    " DEFAULT 'x'" if !ty.contains("String") => "",
                    " DEFAULT 5" if ty.contains("String") || ty.contains('(') => "",
                    other => other,
                }
            };
            if rng.chance(15) {
                // No jsonpath: the column name is the key.
                let name = rng.pick(&["a", "b", "c", "t"]);
                format!("`{name}` {ty}{default}")
            } else {
                let path = random_path(rng).replace('`', "");
                format!("`col{i}` {ty} `json:{path}`{default}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Optional whitespace between tokens, as JSON allows it.
fn ws(rng: &mut Rng) -> &'static str {
    match rng.below(20) {
        0 => " ",
        1 => "\t",
        2 => " \r ",
        3 => "  ",
        _ => "",
    }
}

/// A string's content as JSON text, escapes included.
fn string_content(rng: &mut Rng) -> String {
    let pieces: &[&str] = &[
        "abc",
        "x",
        "hello world",
        "42",
        "-7",
        "1.5",
        " 12 ",
        "1e3",
        "300",
        "true",
        "0",
        "1",
        "2024-01-15 10:11:12",
        "2024-01-15T10:11:12.123Z",
        "2024-01-15",
        "1705313472",
        "1705313472.5",
        "11223344-5566-7788-99aa-bbccddeeff00",
        "1.2.3.4",
        "2001:db8::1",
        "a",
        "b",
        "['a','b']",
        "[1,2]",
        "{'k':1}",
        "('x', 7)",
        "\\\\N",
        "é",
        "😀",
        "\\\"",
        "\\\\",
        "\\/",
        "\\b\\f\\n\\r\\t",
        "\\u00e9",
        "\\u0041",
        "\\u0000",
        "\\uD83D\\uDE00",
        "\\ud83d\\ude00",
        "123456789012345678901234567890",
        "inf",
        "nan",
        "",
    ];
    let mut text = String::new();
    for _ in 0..=rng.below(2) {
        text.push_str(rng.pick(pieces));
    }
    // Now and then something serde_json refuses.
    match rng.below(200) {
        0 => text.push_str("\\ud83d"),
        1 => text.push_str("\\ude00x"),
        2 => text.push(char::from(rng.below(0x20) as u8)),
        3 => text.push_str("\\x"),
        4 => text.push_str("\\u12G4"),
        _ => {}
    }
    text
}

fn number(rng: &mut Rng) -> String {
    let spellings: &[&str] = &[
        "0",
        "-0",
        "1",
        "-1",
        "7",
        "127",
        "128",
        "-128",
        "255",
        "256",
        "65535",
        "2147483647",
        "-2147483649",
        "4294967295",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "123456789012345678901234567890",
        "1.5",
        "-2.25",
        "0.1",
        "0.30000000000000004",
        "1705313472",
        "1705313472.123",
        "1705313472.1239",
        "1e3",
        "1E3",
        "1e+2",
        "2.5e-3",
        "1e22",
        "1e23",
        "1e-7",
        "123456789.0123456789",
        "12345678901234567890.5",
        "0.000",
        "1.0",
        "-0.0",
        "19737",
        "16909060",
        "1e400",
        "-1e400",
        "01",
        "1.",
        ".5",
        "-",
        "+1",
        "1e",
    ];
    let spelling = rng.pick(spellings);
    // The malformed ones at the end, rarely.
    if spellings[40..].contains(&spelling) && !rng.chance(10) {
        return "2".to_owned();
    }
    spelling.to_owned()
}

fn key_text(rng: &mut Rng, key: &str) -> String {
    let escaped = key.replace('"', "\\\"");
    if rng.chance(5) {
        // The same key spelled with an escape.
        let mut chars = escaped.chars();
        if let Some(first) = chars.next()
            && first.is_ascii_alphanumeric()
        {
            return format!("\"\\u{:04x}{}\"", first as u32, chars.as_str());
        }
    }
    format!("\"{escaped}\"")
}

/// A value that tends to fit `ty` (and sometimes does not).
fn value(rng: &mut Rng, ty: &str, depth: usize) -> String {
    if rng.chance(5) {
        return "null".to_owned();
    }
    if rng.chance(5) || depth > 3 {
        return any_value(rng, depth);
    }
    let inner = |prefix: &str| ty[prefix.len()..ty.len() - 1].to_owned();
    if let Some(rest) = ty.strip_prefix("Nullable(") {
        return value(rng, &rest[..rest.len() - 1], depth);
    }
    if let Some(rest) = ty.strip_prefix("LowCardinality(") {
        return value(rng, &rest[..rest.len() - 1], depth);
    }
    if ty.starts_with("Array(") {
        let element = inner("Array(");
        if rng.chance(10) {
            return format!("\"{}\"", string_content(rng));
        }
        let items: Vec<String> = (0..rng.below(4))
            .map(|_| value(rng, &element, depth + 1))
            .collect();
        let separator = format!("{},{}", ws(rng), ws(rng));
        return format!("[{}{}{}]", ws(rng), items.join(&separator), ws(rng));
    }
    if ty.starts_with("Map(") {
        let entries: Vec<String> = (0..rng.below(3))
            .map(|_| {
                let key = rng.pick(&["k", "x", "k"]);
                format!("\"{key}\":{}", value(rng, "UInt8", depth + 1))
            })
            .collect();
        return format!("{{{}}}", entries.join(","));
    }
    if ty.starts_with("Tuple(") {
        return if rng.chance(50) {
            format!("[\"s\",{}]", number(rng))
        } else {
            format!("{{\"b\":{},\"a\":\"s\"}}", number(rng))
        };
    }
    let quoted = |text: &str| format!("\"{text}\"");
    if rng.chance(8) {
        // Anything at all, as text.
        return quoted(&string_content(rng));
    }
    match ty {
        "Bool" => rng
            .pick(&["true", "false", "0", "1", "\"true\"", "\"0\""])
            .to_owned(),
        t if t.contains("Int") => {
            if rng.chance(60) {
                rng.pick(&["0", "1", "7", "-1", "100", "\"42\"", "-0", "1.0"])
                    .to_owned()
            } else {
                number(rng)
            }
        }
        t if t.contains("Float") || t.contains("Decimal") => number(rng),
        "Date" | "Date32" => rng
            .pick(&["\"2024-01-15\"", "19737", "\"1970-01-02\""])
            .to_owned(),
        "DateTime" => rng
            .pick(&[
                "\"2024-01-15 10:11:12\"",
                "\"2024-01-15T10:11:12Z\"",
                "\"2024-01-15T12:11:12+02:00\"",
                "1705313472",
                "\"1705313472\"",
            ])
            .to_owned(),
        t if t.starts_with("DateTime64") => rng
            .pick(&[
                "\"2024-01-15 10:11:12.123\"",
                "\"2024-01-15T10:11:12.123456Z\"",
                "1705313472.123",
                "1705313472",
                "1705313472.1239",
                "\"1705313472.5\"",
            ])
            .to_owned(),
        "UUID" => quoted("11223344-5566-7788-99aa-bbccddeeff00"),
        "IPv4" => rng
            .pick(&["\"1.2.3.4\"", "16909060", "4294967296"])
            .to_owned(),
        "IPv6" => rng.pick(&["\"2001:db8::1\"", "\"1.2.3.4\""]).to_owned(),
        t if t.starts_with("Enum8") => rng.pick(&["\"a\"", "\"b\"", "1", "2", "3"]).to_owned(),
        "FixedString(4)" => rng
            .pick(&["\"ab\"", "\"abcd\"", "\"\\u00e9\"", "12"])
            .to_owned(),
        _ => quoted(&string_content(rng)),
    }
}

fn any_value(rng: &mut Rng, depth: usize) -> String {
    match rng.below(if depth > 3 { 5 } else { 7 }) {
        0 => "null".to_owned(),
        1 => rng.pick(&["true", "false"]).to_owned(),
        2 | 3 => number(rng),
        4 => format!("\"{}\"", string_content(rng)),
        5 => {
            let items: Vec<String> = (0..rng.below(3))
                .map(|_| any_value(rng, depth + 1))
                .collect();
            format!("[{}]", items.join(","))
        }
        _ => object(rng, &[], depth + 1),
    }
}

/// One column's place in a row: the path steps still to go and the column type.
#[derive(Clone)]
struct Place {
    steps: Vec<Segment>,
    ty: String,
}

/// A value for the places that all continue below one spot of the row (possibly none: noise).
fn value_for(rng: &mut Rng, places: &[Place], depth: usize) -> String {
    if let Some(leaf) = places.iter().find(|p| p.steps.is_empty())
        && (places.len() == 1 || rng.chance(50))
    {
        return value(rng, &leaf.ty, depth);
    }
    match places
        .iter()
        .find(|p| !p.steps.is_empty())
        .map(|p| &p.steps[0])
    {
        None => any_value(rng, depth),
        Some(Segment::Key(_)) => object(rng, places, depth + 1),
        Some(Segment::Index(index)) => {
            let index = *index;
            let below: Vec<Place> = places
                .iter()
                .filter(|p| p.steps.first() == Some(&Segment::Index(index)))
                .map(|p| Place {
                    steps: p.steps[1..].to_vec(),
                    ty: p.ty.clone(),
                })
                .collect();
            let len = index + rng.below(3) + usize::from(!rng.chance(10));
            let items: Vec<String> = (0..len)
                .map(|i| {
                    if i == index {
                        value_for(rng, &below, depth + 1)
                    } else {
                        any_value(rng, depth + 1)
                    }
                })
                .collect();
            format!("[{}]", items.join(","))
        }
        Some(Segment::All) => {
            // Each element holds what the rest of the path reads, typed as the array's element.
            let below: Vec<Place> = places
                .iter()
                .filter(|p| p.steps.first() == Some(&Segment::All))
                .map(|p| Place {
                    steps: p.steps[1..].to_vec(),
                    ty: p
                        .ty
                        .strip_prefix("Array(")
                        .and_then(|t| t.strip_suffix(')'))
                        .unwrap_or(&p.ty)
                        .to_owned(),
                })
                .collect();
            let items: Vec<String> = (0..rng.below(4))
                .map(|_| value_for(rng, &below, depth + 1))
                .collect();
            format!("[{}]", items.join(","))
        }
    }
}

/// An object with values at the given places (those whose next step is a key), plus noise keys.
fn object(rng: &mut Rng, places: &[Place], depth: usize) -> String {
    let mut entries: Vec<String> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    for place in places {
        if let Some(Segment::Key(first)) = place.steps.first()
            && !keys.contains(first)
        {
            keys.push(first.clone());
        }
    }
    for key in &keys {
        if rng.chance(4) {
            continue; // missing
        }
        let below: Vec<Place> = places
            .iter()
            .filter(|p| matches!(p.steps.first(), Some(Segment::Key(k)) if k == key))
            .map(|p| Place {
                steps: p.steps[1..].to_vec(),
                ty: p.ty.clone(),
            })
            .collect();
        let text = value_for(rng, &below, depth);
        entries.push(format!(
            "{}{}:{}{}",
            key_text(rng, key),
            ws(rng),
            ws(rng),
            text
        ));
        if rng.chance(2) {
            // A duplicate: the last one wins.
            entries.push(format!("{}:{}", key_text(rng, key), any_value(rng, depth)));
        }
    }
    for _ in 0..rng.below(3) {
        let key = rng.pick(&["noise", "extra", "z"]);
        entries.push(format!("\"{key}\":{}", any_value(rng, depth)));
    }
    // Shuffle a little: key order must not matter.
    if entries.len() > 1 && rng.chance(30) {
        let i = rng.below(entries.len());
        let j = rng.below(entries.len());
        entries.swap(i, j);
    }
    let separator = format!("{},{}", ws(rng), ws(rng));
    format!("{{{}{}{}}}", ws(rng), entries.join(&separator), ws(rng))
}

fn line(rng: &mut Rng, columns: &[Column]) -> String {
    let places: Vec<Place> = columns
        .iter()
        .map(|c| Place {
            steps: match &c.jsonpath {
                Some(path) => path.segments().to_vec(),
                None => vec![Segment::Key(c.name.clone())],
            },
            ty: c.ty.to_string(),
        })
        // A root that is not an object never decodes; those paths are covered by noise.
        .filter(|p| matches!(p.steps.first(), Some(Segment::Key(_))))
        .collect();
    let mut text = object(rng, &places, 1);
    match rng.below(120) {
        0 => {
            let mut half = text.len() / 2;
            while !text.is_char_boundary(half) {
                half -= 1;
            }
            text.truncate(half);
        }
        1 => text.push_str(" x"),
        2 => text = format!("[{text}]"),
        3 => text.insert(text.len() - 1, ','),
        4 => text = format!("{}{text}{}", "[".repeat(130), "]".repeat(130)),
        5 => text = format!("{{\"deep\":{}1{}}}", "[".repeat(101), "]".repeat(101)),
        6 => text = "\u{c}".to_owned() + &text,
        7 => text.push('\r'),
        _ => {}
    }
    text
}

/// The Native block of `RowBinaryWithDefaults` rows.
fn native_block(columns: &[Column], rows: &[u8], count: u64) -> Vec<u8> {
    let columns = checked_columns(columns).unwrap();
    let mut values = vec![Vec::new(); columns.len()];
    split_rows(&columns, rows, &mut values).unwrap();
    let mut out = Vec::new();
    if count > 0 {
        write_block(&columns, &values, count, &mut out).unwrap();
    }
    out
}

#[test]
fn fast_path_matches_serde_json_path() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut fast_rows = 0;
    let mut native_blocks = 0;
    let mut compared = 0;
    for round in 0..600 {
        let schema = random_schema(&mut rng);
        let Ok(columns) = parse_schema(&schema) else {
            continue;
        };
        let body: String = (0..40).map(|_| line(&mut rng, &columns) + "\n").collect();
        let fast = decode_ndjson(&columns, body.as_bytes()).unwrap();
        let reference = decode_ndjson_serde(&columns, body.as_bytes()).unwrap();
        assert_eq!(
            fast.quarantined, reference.quarantined,
            "round {round}, schema {schema}\n{body}"
        );
        if fast.data != reference.data {
            // Find the first line that differs, to show it.
            for line in body.lines() {
                let a = decode_ndjson(&columns, line.as_bytes()).unwrap();
                let b = decode_ndjson_serde(&columns, line.as_bytes()).unwrap();
                assert_eq!(
                    a.data, b.data,
                    "round {round}, schema {schema}\nline {line}"
                );
            }
        }
        assert_eq!(fast.rows, reference.rows, "round {round}, schema {schema}");
        if BlockFormat::for_columns(&columns) == BlockFormat::Native {
            let native = decode_ndjson_as(&columns, body.as_bytes(), BlockFormat::Native).unwrap();
            assert_eq!(native.format, BlockFormat::Native);
            assert_eq!(
                native.rows, reference.rows,
                "round {round}, schema {schema}"
            );
            assert_eq!(native.quarantined, reference.quarantined, "round {round}");
            assert_eq!(
                native.data,
                native_block(&columns, &reference.data, reference.rows),
                "round {round}, schema {schema}\n{body}"
            );
            native_blocks += 1;
        }
        fast_rows += fast.rows;
        compared += 40;
    }
    assert!(native_blocks > 100, "only {native_blocks} Native blocks");
    // The generator must exercise good rows, not only quarantine.
    assert!(
        fast_rows > compared / 5,
        "only {fast_rows} of {compared} rows were good"
    );
}

#[test]
fn fast_path_matches_on_fixed_edge_cases() {
    let cases: &[(&str, &str)] = &[
        ("a String", r#"{"a":"x","a":"y"}"#),
        ("a String `json:$.o.k`", r#"{"o":{"k":"1"},"o":{"j":2}}"#),
        ("a String `json:$.o.k`", r#"{"o":{"k":"1"},"o":"flat"}"#),
        (
            "a String `json:$.o`, b String `json:$.o.k`",
            r#"{"o":{"k":"v","z":[1,{"y":null}]}}"#,
        ),
        ("a String", r#"{"\u0061":"escaped key"}"#),
        ("a String `json:$`", r#"{"b": 1.50, "a": [true, null]}"#),
        ("a Array(String) `json:$.t[:]`", r#"{"t":"notarray"}"#),
        (
            "a Array(String) `json:$.t[:].n`",
            r#"{"t":[{"n":"x"},{"m":1},{"n":2}]}"#,
        ),
        ("a Float64", r#"{"a":123456789012345678901234567890}"#),
        ("a Float64", r#"{"a":1e400}"#),
        ("a UInt64", r#"{"a":18446744073709551616}"#),
        ("a Int64", r#"{"a":-0}"#),
        ("a String", r#"{"a":-0}"#),
        ("a String", r#"{"a":1E+2}"#),
        ("a DateTime64(3)", r#"{"a":1705313472.1239}"#),
        ("a String", "{\"a\":\"\u{1}\"}"),
        ("a String", "{\"a\":\"0123456789\u{1f}\"}"),
        ("a String", "{\"a\":\"0123456\u{7f}\"}"),
        ("a String", r#"{"a":"\ud83d"}"#),
        ("a String", r#"{"a":"\uD83D\uDE00 ok"}"#),
        ("a String", r#"{"a":"x"} "#),
        ("a String", r#"{"a":"x"}x"#),
        ("a String", r#"{"a":"x",}"#),
        ("a String", "{\"a\":\"x\"\r}"),
        ("a String", "{\"a\"\t:\t\"x\"}"),
        ("a Nullable(String)", r#"{"a":null}"#),
        ("a Int32 DEFAULT 5", r#"{"a":null}"#),
        ("a Map(String, UInt8)", r#"{"a":{"k":1,"k":2}}"#),
        ("a Tuple(a String, b UInt8)", r#"{"a":{"b":1,"a":"s"}}"#),
        ("a Array(Array(UInt8))", r#"{"a":[[1,2],[],[3]]}"#),
        ("a String", r#"{"a":"\/\b\f\n\r\t\"\\"}"#),
        ("a String", "{\"a\":\"caf\u{e9} \u{1F600}\"}"),
        (
            "a String",
            &format!(
                "{{\"a\":\"x\",\"d\":{}1{}}}",
                "[".repeat(99),
                "]".repeat(99)
            ),
        ),
        (
            "a String",
            &format!(
                "{{\"a\":\"x\",\"d\":{}1{}}}",
                "[".repeat(127),
                "]".repeat(127)
            ),
        ),
        (
            "a String",
            &format!(
                "{{\"a\":\"x\",\"d\":{}1{}}}",
                "[".repeat(128),
                "]".repeat(128)
            ),
        ),
    ];
    for (schema, line) in cases {
        let columns = parse_schema(schema).unwrap();
        let fast = decode_ndjson(&columns, line.as_bytes()).unwrap();
        let reference = decode_ndjson_serde(&columns, line.as_bytes()).unwrap();
        assert_eq!(fast.data, reference.data, "{schema}: {line}");
        assert_eq!(fast.rows, reference.rows, "{schema}: {line}");
        assert_eq!(fast.quarantined, reference.quarantined, "{schema}: {line}");
    }
}
