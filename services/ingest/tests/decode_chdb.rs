//! The decoder's `RowBinaryWithDefaults` against real ClickHouse (chDB): a table with every supported
//! type takes a decoded batch, and the values read back are the ones sent. One process may hold one
//! chDB data path, so every test here opens the same temporary directory and uses its own database.

mod common;

use common::fresh_table;
use roost_engine::{Chdb, Engine, InsertBlock};
use roost_ingest::decode::{
    BlockFormat, CsvDialect, DecodedBatch, decode_csv, decode_ndjson, decode_ndjson_as,
    encode_quarantine, insert_column_list, quarantine_columns,
};
use roost_types::{Column, parse_schema};
use serde_json::{Value, json};

async fn create_table(engine: &Chdb, database: &str, columns: &[Column]) -> String {
    fresh_table(engine, database, columns, "MergeTree ORDER BY tuple()").await
}

async fn insert(engine: &Chdb, table: &str, columns: &[Column], data: Vec<u8>) {
    let list = insert_column_list(columns);
    engine
        .insert(InsertBlock {
            table,
            columns: &list,
            format: "RowBinaryWithDefaults",
            data: data.into(),
            settings: "",
        })
        .await
        .unwrap();
}

async fn rows(engine: &Chdb, sql: &str) -> Vec<Value> {
    let answer = engine.query(sql, "JSONEachRow").await.unwrap();
    std::str::from_utf8(&answer.data)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

const ALL_TYPES: &str = "k UInt8, u16 UInt16, i8 Int8, i16 Int16, u32 UInt32, i32 Int32, u64 UInt64, \
     i64 Int64, u128 UInt128, i128 Int128, u256 UInt256, i256 Int256, f32 Float32, f64 Float64, \
     d9 Decimal(9, 2), d18 Decimal(18, 4), d38 Decimal(38, 10), d76 Decimal(76, 20), b Bool, s String, \
     fs FixedString(4), id UUID, day Date, day32 Date32, dt DateTime, dt64 DateTime64(3), \
     dtz DateTime('Asia/Tokyo'), ip4 IPv4, ip6 IPv6, e8 Enum8('a' = 1, 'b' = -2), \
     e16 Enum16('x' = 1000, 'y' = -1000), arr Array(Nullable(Int32)), nested Array(Array(String)), \
     m Map(String, UInt64), t Tuple(a String, b UInt8), n Nullable(String), lc LowCardinality(String), \
     lcn LowCardinality(Nullable(String)), def Int32 DEFAULT 42, upper String MATERIALIZED upper(s)";

/// Every column of ALL_TYPES as text, so the comparison does not depend on JSON number quoting.
const SELECT_ALL: &str = "SELECT toString(k) AS k, toString(u16) AS u16, toString(i8) AS i8, \
     toString(i16) AS i16, toString(u32) AS u32, toString(i32) AS i32, toString(u64) AS u64, \
     toString(i64) AS i64, toString(u128) AS u128, toString(i128) AS i128, toString(u256) AS u256, \
     toString(i256) AS i256, toString(f32) AS f32, toString(f64) AS f64, toString(d9) AS d9, \
     toString(d18) AS d18, toString(d38) AS d38, toString(d76) AS d76, toString(b) AS b, s, \
     hex(fs) AS fs, toString(id) AS id, toString(day) AS day, toString(day32) AS day32, \
     toString(dt, 'UTC') AS dt, toString(dt64, 'UTC') AS dt64, toString(dtz, 'UTC') AS dtz, \
     toString(ip4) AS ip4, toString(ip6) AS ip6, toString(e8) AS e8, toString(e16) AS e16, \
     toString(arr) AS arr, toString(nested) AS nested, toString(m) AS m, toString(t) AS t, n, \
     toString(lc) AS lc, lcn, toString(def) AS def, upper";

fn first_row_expected() -> Value {
    json!({
        "k": "1", "u16": "65535", "i8": "-128", "i16": "-32768", "u32": "4294967295",
        "i32": "-2147483648", "u64": "18446744073709551615", "i64": "-9223372036854775808",
        "u128": "340282366920938463463374607431768211455",
        "i128": "-170141183460469231731687303715884105728",
        "u256": "115792089237316195423570985008687907853269984665640564039457584007913129639935",
        "i256": "-57896044618658097711785492504343953926634992332820282019728792003956564819968",
        "f32": "1.5", "f64": "-2.25", "d9": "-1234567.89", "d18": "12345678901234.5678",
        "d38": "-1234567890123456789012345678.0123456789",
        // ClickHouse prints decimals without trailing zeros.
        "d76": "12345678901234567890123456789012345678901234567890.1234567890123456789",
        "b": "true", "s": "héllo\u{0}\n", "fs": "61620000",
        "id": "11223344-5566-7788-99aa-bbccddeeff00", "day": "2024-01-15", "day32": "1900-01-01",
        "dt": "2024-01-15 10:11:12", "dt64": "2024-01-15 10:11:12.123", "dtz": "2024-01-15 09:11:12",
        "ip4": "1.2.3.4", "ip6": "2001:db8::1", "e8": "b", "e16": "y", "arr": "[1,NULL,-3]",
        "nested": "[['a','b'],[]]", "m": "{'k1':1,'k2':18446744073709551615}", "t": "('x',7)",
        "n": null, "lc": "low", "lcn": null, "def": "42", // upper() is ASCII-only.
        "upper": "HéLLO\u{0}\n"
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn ndjson_values_round_trip_through_clickhouse() {
    let engine = common::engine("decode");
    let columns = parse_schema(ALL_TYPES).unwrap();
    let table = create_table(&engine, "decode_ndjson", &columns).await;
    let body = [
        json!({
            "k": 1, "u16": 65535, "i8": -128, "i16": "-32768", "u32": 4294967295u64,
            "i32": -2147483648i64, "u64": 18446744073709551615u64, "i64": i64::MIN,
            "u128": "340282366920938463463374607431768211455",
            "i128": "-170141183460469231731687303715884105728",
            "u256": "115792089237316195423570985008687907853269984665640564039457584007913129639935",
            "i256": "-57896044618658097711785492504343953926634992332820282019728792003956564819968",
            "f32": 1.5, "f64": "-2.25", "d9": -1234567.89, "d18": "12345678901234.56789",
            "d38": "-1234567890123456789012345678.0123456789",
            "d76": "12345678901234567890123456789012345678901234567890.12345678901234567890",
            "b": true, "s": "héllo\u{0}\n", "fs": "ab",
            "id": "11223344-5566-7788-99aa-bbccddeeff00", "day": "2024-01-15", "day32": "1900-01-01",
            "dt": "2024-01-15T12:11:12+02:00", "dt64": "2024-01-15 10:11:12.123456",
            "dtz": 1705309872, "ip4": "1.2.3.4", "ip6": "2001:db8::1", "e8": "b", "e16": -1000,
            "arr": [1, null, -3], "nested": [["a", "b"], []],
            "m": {"k1": 1, "k2": 18446744073709551615u64}, "t": {"a": "x", "b": 7},
            "n": null, "lc": "low"
        }),
        json!({"k": 2, "i32": "nope"}),
        json!({
            "k": 3, "u16": 0, "i8": 0, "i16": 0, "u32": 0, "i32": 0, "u64": "0", "i64": 0,
            "u128": 0, "i128": -1, "u256": 1, "i256": -1, "f32": "inf", "f64": "nan", "d9": 0,
            "d18": "-0.0001", "d38": 1, "d76": "-1e-20", "b": 0, "s": "", "fs": "abcd",
            "id": "00000000-0000-0000-0000-000000000001", "day": 0, "day32": "2299-12-31",
            "dt": 0, "dt64": 1.5, "dtz": "1970-01-01 00:00:00", "ip4": 4294967295u64,
            "ip6": "1.2.3.4", "e8": 1, "e16": "x", "arr": [], "nested": [[""]], "m": {},
            "t": ["y", 255], "n": "present", "lc": "", "lcn": "some", "def": -1
        }),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let batch = decode_ndjson(&columns, body.as_bytes()).unwrap();
    assert_eq!(batch.rows, 2, "{:?}", batch.quarantined);
    assert_eq!(batch.quarantined.len(), 1);
    assert_eq!(batch.quarantined[0].error_columns[0], "u16");
    insert(&engine, &table, &columns, batch.data).await;

    let got = rows(&engine, &format!("{SELECT_ALL} FROM {table} ORDER BY k")).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], first_row_expected());
    let expected_second = json!({
        "k": "3", "u16": "0", "i8": "0", "i16": "0", "u32": "0", "i32": "0", "u64": "0", "i64": "0",
        "u128": "0", "i128": "-1", "u256": "1", "i256": "-1", "f32": "inf", "f64": "nan",
        "d9": "0", "d18": "-0.0001", "d38": "1", "d76": "-0.00000000000000000001", "b": "false",
        "s": "", "fs": "61626364", "id": "00000000-0000-0000-0000-000000000001",
        "day": "1970-01-01", "day32": "2299-12-31", "dt": "1970-01-01 00:00:00",
        "dt64": "1970-01-01 00:00:01.500", "dtz": "1970-01-01 00:00:00", "ip4": "255.255.255.255",
        "ip6": "::ffff:1.2.3.4", "e8": "a", "e16": "x", "arr": "[]", "nested": "[['']]", "m": "{}",
        "t": "('y',255)", "n": "present", "lc": "", "lcn": "some", "def": "-1", "upper": ""
    });
    assert_eq!(got[1], expected_second);
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_values_round_trip_through_clickhouse() {
    let engine = common::engine("decode");
    let columns = parse_schema(ALL_TYPES).unwrap();
    let table = create_table(&engine, "decode_csv", &columns).await;
    let header = "k,u16,i8,i16,u32,i32,u64,i64,u128,i128,u256,i256,f32,f64,d9,d18,d38,d76,b,s,fs,id,\
                  day,day32,dt,dt64,dtz,ip4,ip6,e8,e16,arr,nested,m,t,n,lc,lcn,def";
    let good = "1,65535,-128,-32768,4294967295,-2147483648,18446744073709551615,-9223372036854775808,\
        340282366920938463463374607431768211455,-170141183460469231731687303715884105728,\
        115792089237316195423570985008687907853269984665640564039457584007913129639935,\
        -57896044618658097711785492504343953926634992332820282019728792003956564819968,\
        1.5,-2.25,-1234567.89,12345678901234.5678,-1234567890123456789012345678.0123456789,\
        12345678901234567890123456789012345678901234567890.12345678901234567890,true,\
        \"héllo\u{0}\n\",ab,11223344-5566-7788-99aa-bbccddeeff00,2024-01-15,1900-01-01,\
        2024-01-15 10:11:12,2024-01-15T10:11:12.123Z,1705309872,1.2.3.4,2001:db8::1,b,-1000,\
        \"[1,NULL,-3]\",\"[['a','b'],[]]\",\"{'k1':1,'k2':18446744073709551615}\",\"('x',7)\",,low,\\N,";
    let bad = format!("2,x{}", ",".repeat(37));
    let body = format!("{header}\n{good}\r\n{bad}\n");
    let dialect = CsvDialect {
        delimiter: b',',
        has_header: true,
    };
    let batch: DecodedBatch = decode_csv(&columns, body.as_bytes(), &dialect).unwrap();
    assert_eq!(batch.rows, 1, "{:?}", batch.quarantined);
    assert_eq!(batch.quarantined.len(), 1);
    insert(&engine, &table, &columns, batch.data).await;
    let got = rows(&engine, &format!("{SELECT_ALL} FROM {table} ORDER BY k")).await;
    assert_eq!(got, vec![first_row_expected()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn quarantine_rows_insert_into_the_quarantine_table() {
    let engine = common::engine("decode");
    let columns =
        parse_schema("id Int32, name String, up String MATERIALIZED upper(name)").unwrap();
    let quarantine = quarantine_columns(&columns);
    let table = create_table(&engine, "decode_quarantine", &quarantine).await;
    let batch = decode_ndjson(
        &columns,
        b"{\"id\": \"abc\", \"name\": \"x\"}\n{\"id\": 1}\nnot json\n{\"id\": 2, \"name\": \"ok\"}",
    )
    .unwrap();
    assert_eq!(batch.rows, 1);
    let data = encode_quarantine(&batch.quarantined, Some("job-1"), 1_705_313_472);
    insert(&engine, &table, &quarantine, data).await;
    let got = rows(
        &engine,
        &format!(
            "SELECT c__error_column, c__error, c__import_id, toString(insertion_date, 'UTC') AS at, id, name \
             FROM {table} ORDER BY c__error"
        ),
    )
    .await;
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0],
        json!({
            "c__error_column": ["name"], "c__error": ["column 'name' is not nullable and the value is missing"],
            "c__import_id": "job-1", "at": "2024-01-15 10:11:12", "id": "1", "name": null
        })
    );
    assert_eq!(got[1]["c__error_column"], json!([]));
    assert_eq!(got[1]["id"], "not json");
    assert_eq!(
        got[2],
        json!({
            "c__error_column": ["id"], "c__error": ["value 'abc' is not a valid Int32 for column 'id'"],
            "c__import_id": "job-1", "at": "2024-01-15 10:11:12", "id": "abc", "name": "x"
        })
    );
}

/// Native blocks carry the same values as RowBinaryWithDefaults: every type but those that need a
/// DEFAULT, with NULLs inside nullable columns and arrays, empty and nested arrays, maps, tuples,
/// and LowCardinality columns declared as their plain type.
#[tokio::test(flavor = "multi_thread")]
async fn native_blocks_hold_the_same_rows_as_row_binary() {
    let engine = common::engine("decode");
    let schema = ALL_TYPES.replace(", def Int32 DEFAULT 42", "");
    let columns = parse_schema(&schema).unwrap();
    assert_eq!(BlockFormat::for_columns(&columns), BlockFormat::Native);
    let from_rows = create_table(&engine, "decode_native_rows", &columns).await;
    let from_native = create_table(&engine, "decode_native_block", &columns).await;
    let full = json!({
        "k": 1, "u16": 65535, "i8": -128, "i16": "-32768", "u32": 4294967295u64,
        "i32": -2147483648i64, "u64": 18446744073709551615u64, "i64": i64::MIN,
        "u128": "340282366920938463463374607431768211455", "i128": -1, "u256": 1, "i256": -1,
        "f32": 1.5, "f64": "-2.25", "d9": -1234567.89, "d18": "12345678901234.56789",
        "d38": "-1234567890123456789012345678.0123456789", "d76": "-1e-20", "b": true,
        "s": "héllo\u{0}\n", "fs": "ab", "id": "11223344-5566-7788-99aa-bbccddeeff00",
        "day": "2024-01-15", "day32": "1900-01-01", "dt": "2024-01-15T12:11:12+02:00",
        "dt64": "2024-01-15 10:11:12.123456", "dtz": 1705309872, "ip4": "1.2.3.4",
        "ip6": "2001:db8::1", "e8": "b", "e16": -1000, "arr": [1, null, -3],
        "nested": [["a", "b"], []], "m": {"k1": 1, "k2": 18446744073709551615u64},
        "t": {"a": "x", "b": 7}, "n": null, "lc": "low", "lcn": "some"
    });
    let sparse = json!({
        "k": 2, "u16": 0, "i8": 0, "i16": 0, "u32": 0, "i32": 0, "u64": 0, "i64": 0, "u128": 0,
        "i128": 0, "u256": 0, "i256": 0, "f32": 0, "f64": 0, "d9": 0, "d18": 0, "d38": 0, "d76": 0,
        "b": false, "s": "", "fs": "", "id": "00000000-0000-0000-0000-000000000000", "day": 0,
        "day32": 0, "dt": 0, "dt64": 0, "dtz": 0, "ip4": 0, "ip6": "::", "e8": "a", "e16": "x",
        "arr": [], "nested": [], "t": ["", 0], "n": "present", "lc": ""
    });
    let mut lines = vec![full.to_string(), sparse.to_string()];
    for k in 3..=200u32 {
        let mut row = if k % 2 == 0 {
            full.clone()
        } else {
            sparse.clone()
        };
        row["k"] = json!(k % 250);
        row["arr"] = json!(
            (0..k % 4)
                .map(|i| if i == 1 { None } else { Some(i) })
                .collect::<Vec<_>>()
        );
        row["n"] = if k % 3 == 0 {
            json!(null)
        } else {
            json!(format!("n{k}"))
        };
        row["lcn"] = if k % 5 == 0 {
            json!(null)
        } else {
            json!(format!("l{}", k % 7))
        };
        lines.push(row.to_string());
    }
    let body = lines.join("\n");
    let row_binary = decode_ndjson(&columns, body.as_bytes()).unwrap();
    assert_eq!(row_binary.quarantined, vec![]);
    insert(&engine, &from_rows, &columns, row_binary.data).await;
    let native = decode_ndjson_as(&columns, body.as_bytes(), BlockFormat::Native).unwrap();
    assert_eq!(native.format, BlockFormat::Native);
    assert_eq!(native.rows, 200);
    let list = insert_column_list(&columns);
    engine
        .insert(InsertBlock {
            table: &from_native,
            columns: &list,
            format: "Native",
            data: native.data.into(),
            settings: "",
        })
        .await
        .unwrap();
    let select = SELECT_ALL.replace(", toString(def) AS def", "");
    let expected = rows(
        &engine,
        &format!("{select} FROM {from_rows} ORDER BY k, i8"),
    )
    .await;
    let got = rows(
        &engine,
        &format!("{select} FROM {from_native} ORDER BY k, i8"),
    )
    .await;
    assert_eq!(expected.len(), 200);
    assert_eq!(got, expected);
}
