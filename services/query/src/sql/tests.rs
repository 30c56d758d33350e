use super::*;

/// A workspace with a few Data Sources, a pipe node resolved to a subquery, and Data Sources whose
/// names collide with ClickHouse words (`numbers`, `system`).
struct Workspace;

impl TableResolver for Workspace {
    fn resolve(&self, name: &str) -> Option<String> {
        match name {
            "events" | "events_quarantine" | "users" | "numbers" | "system" => {
                Some(format!("`d_ws`.`{name}`"))
            }
            "node" => Some("(SELECT 1 AS x)".to_string()),
            _ => None,
        }
    }
}

fn check(sql: &str) -> Result<ValidatedSql, SqlError> {
    validate_and_rewrite(sql, &Workspace)
}

/// Accepted queries and their rewritten SQL.
const REWRITES: &[(&str, &str)] = &[
    // Plain selects.
    ("SELECT 1", "SELECT 1"),
    ("select * from events", "select * from `d_ws`.`events`"),
    (
        "SELECT count() FROM events WHERE x > 1",
        "SELECT count() FROM `d_ws`.`events` WHERE x > 1",
    ),
    ("  \n SELECT 1  \n", "SELECT 1"),
    ("-- leading comment\nSELECT 1", "SELECT 1"),
    // Joins of every kind.
    (
        "SELECT * FROM events AS e INNER JOIN users u ON e.id = u.id",
        "SELECT * FROM `d_ws`.`events` AS e INNER JOIN `d_ws`.`users` u ON e.id = u.id",
    ),
    (
        "SELECT * FROM events LEFT JOIN users USING id",
        "SELECT * FROM `d_ws`.`events` LEFT JOIN `d_ws`.`users` USING id",
    ),
    (
        "SELECT * FROM events RIGHT OUTER JOIN users USING (id)",
        "SELECT * FROM `d_ws`.`events` RIGHT OUTER JOIN `d_ws`.`users` USING (id)",
    ),
    (
        "SELECT * FROM events FULL JOIN users ON 1",
        "SELECT * FROM `d_ws`.`events` FULL JOIN `d_ws`.`users` ON 1",
    ),
    (
        "SELECT * FROM events CROSS JOIN users",
        "SELECT * FROM `d_ws`.`events` CROSS JOIN `d_ws`.`users`",
    ),
    (
        "SELECT * FROM events ANY LEFT JOIN users USING id",
        "SELECT * FROM `d_ws`.`events` ANY LEFT JOIN `d_ws`.`users` USING id",
    ),
    (
        "SELECT * FROM events ALL INNER JOIN users USING id",
        "SELECT * FROM `d_ws`.`events` ALL INNER JOIN `d_ws`.`users` USING id",
    ),
    (
        "SELECT * FROM events LEFT SEMI JOIN users USING id",
        "SELECT * FROM `d_ws`.`events` LEFT SEMI JOIN `d_ws`.`users` USING id",
    ),
    (
        "SELECT * FROM events LEFT ANTI JOIN users USING id",
        "SELECT * FROM `d_ws`.`events` LEFT ANTI JOIN `d_ws`.`users` USING id",
    ),
    (
        "SELECT * FROM events ASOF JOIN users ON e.id = u.id AND e.t >= u.t",
        "SELECT * FROM `d_ws`.`events` ASOF JOIN `d_ws`.`users` ON e.id = u.id AND e.t >= u.t",
    ),
    (
        "SELECT * FROM events GLOBAL JOIN users USING id",
        "SELECT * FROM `d_ws`.`events` GLOBAL JOIN `d_ws`.`users` USING id",
    ),
    (
        "SELECT * FROM events PASTE JOIN users",
        "SELECT * FROM `d_ws`.`events` PASTE JOIN `d_ws`.`users`",
    ),
    (
        "SELECT * FROM events AS array JOIN users USING id",
        "SELECT * FROM `d_ws`.`events` AS array JOIN `d_ws`.`users` USING id",
    ),
    // Comma joins, and commas that are not.
    (
        "SELECT * FROM events AS a, users AS b WHERE a.x = b.x",
        "SELECT * FROM `d_ws`.`events` AS a, `d_ws`.`users` AS b WHERE a.x = b.x",
    ),
    (
        "SELECT a, b FROM events, users ORDER BY a, b LIMIT 1, 2",
        "SELECT a, b FROM `d_ws`.`events`, `d_ws`.`users` ORDER BY a, b LIMIT 1, 2",
    ),
    (
        "SELECT * FROM events e JOIN users u ON e.id = u.id, events_quarantine q",
        "SELECT * FROM `d_ws`.`events` e JOIN `d_ws`.`users` u ON e.id = u.id, `d_ws`.`events_quarantine` q",
    ),
    (
        "SELECT * FROM events JOIN users USING id, name WHERE 1",
        "SELECT * FROM `d_ws`.`events` JOIN `d_ws`.`users` USING id, name WHERE 1",
    ),
    (
        "SELECT a FROM events, users UNION ALL SELECT b, c FROM events_quarantine",
        "SELECT a FROM `d_ws`.`events`, `d_ws`.`users` UNION ALL SELECT b, c FROM `d_ws`.`events_quarantine`",
    ),
    (
        "SELECT * FROM events JOIN users ON e.k = [1, 2][1] WHERE x",
        "SELECT * FROM `d_ws`.`events` JOIN `d_ws`.`users` ON e.k = [1, 2][1] WHERE x",
    ),
    // Subqueries.
    (
        "SELECT * FROM (SELECT a, b FROM events) AS t, users",
        "SELECT * FROM (SELECT a, b FROM `d_ws`.`events`) AS t, `d_ws`.`users`",
    ),
    (
        "SELECT (SELECT count() FROM users) FROM events",
        "SELECT (SELECT count() FROM `d_ws`.`users`) FROM `d_ws`.`events`",
    ),
    (
        "SELECT * FROM events WHERE exists(SELECT 1 FROM users)",
        "SELECT * FROM `d_ws`.`events` WHERE exists(SELECT 1 FROM `d_ws`.`users`)",
    ),
    ("SELECT * FROM ((SELECT 1))", "SELECT * FROM ((SELECT 1))"),
    // CTEs and WITH expressions.
    (
        "WITH t AS (SELECT * FROM events) SELECT * FROM t JOIN users USING id",
        "WITH t AS (SELECT * FROM `d_ws`.`events`) SELECT * FROM t JOIN `d_ws`.`users` USING id",
    ),
    (
        "WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b, a",
        "WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b, a",
    ),
    (
        "WITH events AS (SELECT 1) SELECT * FROM events",
        "WITH events AS (SELECT 1) SELECT * FROM events",
    ),
    (
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
    ),
    (
        "WITH t AS (SELECT 1) SELECT * FROM t UNION ALL SELECT * FROM t",
        "WITH t AS (SELECT 1) SELECT * FROM t UNION ALL SELECT * FROM t",
    ),
    (
        "WITH 1 AS x SELECT x FROM events",
        "WITH 1 AS x SELECT x FROM `d_ws`.`events`",
    ),
    (
        "WITH (SELECT max(a) FROM events) AS m SELECT m",
        "WITH (SELECT max(a) FROM `d_ws`.`events`) AS m SELECT m",
    ),
    (
        "SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t)",
        "SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t)",
    ),
    // IN with tables, lists and subqueries.
    (
        "SELECT * FROM events WHERE id IN users",
        "SELECT * FROM `d_ws`.`events` WHERE id IN `d_ws`.`users`",
    ),
    (
        "SELECT * FROM events WHERE id NOT IN users",
        "SELECT * FROM `d_ws`.`events` WHERE id NOT IN `d_ws`.`users`",
    ),
    (
        "SELECT * FROM events WHERE id GLOBAL IN (users)",
        "SELECT * FROM `d_ws`.`events` WHERE id GLOBAL IN (`d_ws`.`users`)",
    ),
    (
        "SELECT * FROM events WHERE id IN (1, 2, 3)",
        "SELECT * FROM `d_ws`.`events` WHERE id IN (1, 2, 3)",
    ),
    (
        "SELECT * FROM events WHERE id IN ('a', NULL)",
        "SELECT * FROM `d_ws`.`events` WHERE id IN ('a', NULL)",
    ),
    (
        "SELECT * FROM events WHERE id IN (SELECT id FROM users)",
        "SELECT * FROM `d_ws`.`events` WHERE id IN (SELECT id FROM `d_ws`.`users`)",
    ),
    (
        "WITH t AS (SELECT 1) SELECT * FROM events WHERE id IN t",
        "WITH t AS (SELECT 1) SELECT * FROM `d_ws`.`events` WHERE id IN t",
    ),
    (
        "SELECT x IN [1, 2], y IN tuple(1, 2) FROM events",
        "SELECT x IN [1, 2], y IN tuple(1, 2) FROM `d_ws`.`events`",
    ),
    (
        "SELECT * FROM events WHERE x IN node",
        "SELECT * FROM `d_ws`.`events` WHERE x IN (SELECT 1 AS x)",
    ),
    ("SELECT in(1, events)", "SELECT in(1, `d_ws`.`events`)"),
    // ARRAY JOIN takes expressions.
    (
        "SELECT * FROM events ARRAY JOIN arr AS a, arr2 AS b WHERE a > 1",
        "SELECT * FROM `d_ws`.`events` ARRAY JOIN arr AS a, arr2 AS b WHERE a > 1",
    ),
    (
        "SELECT * FROM events LEFT ARRAY JOIN arr AS a JOIN users USING id",
        "SELECT * FROM `d_ws`.`events` LEFT ARRAY JOIN arr AS a JOIN `d_ws`.`users` USING id",
    ),
    (
        "SELECT * FROM events e JOIN users u ON e.id = u.id ARRAY JOIN u.tags AS tag",
        "SELECT * FROM `d_ws`.`events` e JOIN `d_ws`.`users` u ON e.id = u.id ARRAY JOIN u.tags AS tag",
    ),
    (
        "SELECT * FROM events FINAL ARRAY JOIN tags",
        "SELECT * FROM `d_ws`.`events` FINAL ARRAY JOIN tags",
    ),
    (
        "SELECT * FROM events AS e INNER ARRAY JOIN e.tags AS t",
        "SELECT * FROM `d_ws`.`events` AS e INNER ARRAY JOIN e.tags AS t",
    ),
    (
        "SELECT * FROM (SELECT [1] AS arr) ARRAY JOIN arr, [2] AS b",
        "SELECT * FROM (SELECT [1] AS arr) ARRAY JOIN arr, [2] AS b",
    ),
    // Modifiers and aliases after a table.
    (
        "SELECT * FROM events FINAL",
        "SELECT * FROM `d_ws`.`events` FINAL",
    ),
    (
        "SELECT * FROM events AS e FINAL SAMPLE 1/10 OFFSET 1/2",
        "SELECT * FROM `d_ws`.`events` AS e FINAL SAMPLE 1/10 OFFSET 1/2",
    ),
    (
        "SELECT * FROM events AS system",
        "SELECT * FROM `d_ws`.`events` AS system",
    ),
    (
        "SELECT * FROM events system",
        "SELECT * FROM `d_ws`.`events` system",
    ),
    (
        "SELECT events.a, system.tables.name FROM events",
        "SELECT events.a, system.tables.name FROM `d_ws`.`events`",
    ),
    // Names that look like ClickHouse things are still Data Sources.
    ("SELECT * FROM numbers", "SELECT * FROM `d_ws`.`numbers`"),
    ("SELECT * FROM system", "SELECT * FROM `d_ws`.`system`"),
    ("SELECT x FROM node", "SELECT x FROM (SELECT 1 AS x)"),
    // Quoted table names and text that would merge with the replacement.
    ("SELECT * FROM \"events\"", "SELECT * FROM `d_ws`.`events`"),
    ("SELECT * FROM `events`", "SELECT * FROM `d_ws`.`events`"),
    (
        "SELECT * FROM\"events\"WHERE 1",
        "SELECT * FROM `d_ws`.`events` WHERE 1",
    ),
    // Allowed table functions.
    ("SELECT * FROM numbers(10)", "SELECT * FROM numbers(10)"),
    (
        "SELECT number FROM numbers(1, 10) AS n",
        "SELECT number FROM numbers(1, 10) AS n",
    ),
    (
        "SELECT * FROM zeros(3), numbers_mt(2)",
        "SELECT * FROM zeros(3), numbers_mt(2)",
    ),
    (
        "SELECT * FROM generate_series(1, 5)",
        "SELECT * FROM generate_series(1, 5)",
    ),
    (
        "SELECT * FROM values('x UInt8', 1, 2)",
        "SELECT * FROM values('x UInt8', 1, 2)",
    ),
    (
        "SELECT * FROM generateRandom('a UInt8') LIMIT 1",
        "SELECT * FROM generateRandom('a UInt8') LIMIT 1",
    ),
    ("SELECT * FROM `numbers`(3)", "SELECT * FROM `numbers`(3)"),
    // Set operations.
    (
        "SELECT a FROM events UNION ALL SELECT a FROM events_quarantine",
        "SELECT a FROM `d_ws`.`events` UNION ALL SELECT a FROM `d_ws`.`events_quarantine`",
    ),
    (
        "(SELECT 1) UNION DISTINCT (SELECT 2)",
        "(SELECT 1) UNION DISTINCT (SELECT 2)",
    ),
    (
        "SELECT a FROM events INTERSECT SELECT a FROM users",
        "SELECT a FROM `d_ws`.`events` INTERSECT SELECT a FROM `d_ws`.`users`",
    ),
    (
        "SELECT a FROM events EXCEPT SELECT a FROM users",
        "SELECT a FROM `d_ws`.`events` EXCEPT SELECT a FROM `d_ws`.`users`",
    ),
    // Expression syntax passes through.
    (
        "SELECT arrayMap(x -> x + 1, arr) FROM events",
        "SELECT arrayMap(x -> x + 1, arr) FROM `d_ws`.`events`",
    ),
    (
        "SELECT uniqState(a), sumMerge(s), countIf(x > 1) FROM events",
        "SELECT uniqState(a), sumMerge(s), countIf(x > 1) FROM `d_ws`.`events`",
    ),
    (
        "SELECT count() FILTER (WHERE x > 1) FROM events",
        "SELECT count() FILTER (WHERE x > 1) FROM `d_ws`.`events`",
    ),
    (
        "SELECT x::Int32, CAST(y AS String) FROM events",
        "SELECT x::Int32, CAST(y AS String) FROM `d_ws`.`events`",
    ),
    (
        "SELECT extract(YEAR FROM ts), substring(s FROM 2 FOR 3), trim(BOTH ' ' FROM s) FROM events",
        "SELECT extract(YEAR FROM ts), substring(s FROM 2 FOR 3), trim(BOTH ' ' FROM s) FROM `d_ws`.`events`",
    ),
    (
        "SELECT position(needle IN haystack) FROM events",
        "SELECT position(needle IN haystack) FROM `d_ws`.`events`",
    ),
    (
        "SELECT d FROM events ORDER BY d WITH FILL FROM toDate('2020-01-01') TO toDate('2020-02-01') STEP 1",
        "SELECT d FROM `d_ws`.`events` ORDER BY d WITH FILL FROM toDate('2020-01-01') TO toDate('2020-02-01') STEP 1",
    ),
    (
        "SELECT count() OVER (PARTITION BY a ORDER BY b ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM events WINDOW w AS (PARTITION BY a), w2 AS (ORDER BY b)",
        "SELECT count() OVER (PARTITION BY a ORDER BY b ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM `d_ws`.`events` WINDOW w AS (PARTITION BY a), w2 AS (ORDER BY b)",
    ),
    (
        "SELECT t.1, tupleElement(t, 1).2, 1.5, 1. FROM events",
        "SELECT t.1, tupleElement(t, 1).2, 1.5, 1. FROM `d_ws`.`events`",
    ),
    (
        "SELECT 1e10, 0x1F, 0b101, 1_000, .5, inf, nan, 1e-5, -1 FROM events",
        "SELECT 1e10, 0x1F, 0b101, 1_000, .5, inf, nan, 1e-5, -1 FROM `d_ws`.`events`",
    ),
    (
        "SELECT 1e--5 FROM events",
        "SELECT 1e--5 FROM `d_ws`.`events`",
    ),
    (
        "SELECT m['k'], [1, 2], (1, 'a') FROM events LIMIT 10 BY a",
        "SELECT m['k'], [1, 2], (1, 'a') FROM `d_ws`.`events` LIMIT 10 BY a",
    ),
    (
        "SELECT COLUMNS('a') APPLY(toString) FROM events",
        "SELECT COLUMNS('a') APPLY(toString) FROM `d_ws`.`events`",
    ),
    (
        "SELECT version(), throwIf(0), format('{}', 1) FROM events",
        "SELECT version(), throwIf(0), format('{}', 1) FROM `d_ws`.`events`",
    ),
    (
        "SELECT a || b, a <=> b, a != b, a <> b, a == b FROM events",
        "SELECT a || b, a <=> b, a != b, a <> b, a == b FROM `d_ws`.`events`",
    ),
    (
        "SELECT now() - INTERVAL 1 DAY, date_diff('day', a, b) FROM events",
        "SELECT now() - INTERVAL 1 DAY, date_diff('day', a, b) FROM `d_ws`.`events`",
    ),
    // Strings, heredocs and comments are never touched.
    (
        "SELECT 'FROM system.tables' FROM events",
        "SELECT 'FROM system.tables' FROM `d_ws`.`events`",
    ),
    (
        "SELECT 'it''s', 'a\\'b; --' FROM events",
        "SELECT 'it''s', 'a\\'b; --' FROM `d_ws`.`events`",
    ),
    (
        "SELECT $$FROM system.tables$$, $t$ it's $t$ FROM events",
        "SELECT $$FROM system.tables$$, $t$ it's $t$ FROM `d_ws`.`events`",
    ),
    (
        "SELECT x'41', b'01', \"a\"\"b\" FROM events",
        "SELECT x'41', b'01', \"a\"\"b\" FROM `d_ws`.`events`",
    ),
    (
        "SELECT /* FROM system.tables */ 1",
        "SELECT /* FROM system.tables */ 1",
    ),
    ("SELECT 1 -- ; DROP TABLE events", "SELECT 1"),
    ("SELECT 1 // ; DROP TABLE events", "SELECT 1"),
    ("SELECT 1 # ; DROP TABLE events", "SELECT 1"),
    (
        "SELECT 1 -- c\nFROM events",
        "SELECT 1 -- c\nFROM `d_ws`.`events`",
    ),
    (
        "SELECT * FROM events WHERE s LIKE '%{x}%'",
        "SELECT * FROM `d_ws`.`events` WHERE s LIKE '%{x}%'",
    ),
    // Trailing semicolons.
    ("SELECT 1;", "SELECT 1"),
    ("SELECT 1 ; -- done", "SELECT 1"),
    ("SELECT 1 -- c\n;", "SELECT 1"),
    // Settings.
    (
        "SELECT * FROM events SETTINGS max_threads = 2, join_use_nulls = 1",
        "SELECT * FROM `d_ws`.`events` SETTINGS max_threads = 2, join_use_nulls = 1",
    ),
    (
        "SELECT * FROM (SELECT 1 SETTINGS max_threads = 1) SETTINGS date_time_output_format = 'iso'",
        "SELECT * FROM (SELECT 1 SETTINGS max_threads = 1) SETTINGS date_time_output_format = 'iso'",
    ),
    (
        "SELECT settings FROM events",
        "SELECT settings FROM `d_ws`.`events`",
    ),
    (
        "SELECT x AS settings FROM events WHERE settings = 1",
        "SELECT x AS settings FROM `d_ws`.`events` WHERE settings = 1",
    ),
    // FORMAT look-alikes that are not a FORMAT clause.
    (
        "SELECT 1 AS format FROM events",
        "SELECT 1 AS format FROM `d_ws`.`events`",
    ),
    (
        "SELECT format FROM events",
        "SELECT format FROM `d_ws`.`events`",
    ),
];

#[test]
fn accepted_queries_are_rewritten() {
    for (input, expected) in REWRITES {
        let got = check(input).unwrap_or_else(|e| panic!("{input:?} was refused: {e}"));
        assert_eq!(got.sql, *expected, "input: {input:?}");
    }
}

/// Refused queries and the start of the message shown to the user.
const REFUSALS: &[(&str, &str)] = &[
    // Empty and multiple statements.
    ("", "The query is empty"),
    ("  -- only a comment", "The query is empty"),
    (";", "The query is empty"),
    ("SELECT 1; SELECT 2", "Multiple statements are not allowed"),
    ("SELECT 1;;", "Multiple statements are not allowed"),
    (
        "SELECT 1; DROP TABLE events",
        "Multiple statements are not allowed",
    ),
    // Statement shape.
    (
        "(INSERT INTO x SELECT 1)",
        "Only SELECT queries are supported",
    ),
    (
        "SELECT * FROM (EXPLAIN SELECT 1)",
        "Only SELECT queries are supported",
    ),
    ("SELECT (SHOW TABLES)", "Only SELECT queries are supported"),
    (
        "SELECT * FROM (DESCRIBE TABLE events)",
        "Only SELECT queries are supported",
    ),
    ("FROM events SELECT *", "Only SELECT queries are supported"),
    (
        "SELECT 1 INTO OUTFILE 'x.csv'",
        "INTO OUTFILE is not allowed",
    ),
    (
        "SELECT * FROM events INTO OUTFILE 'x' FORMAT CSV",
        "INTO OUTFILE is not allowed",
    ),
    // Other databases.
    (
        "SELECT * FROM system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM information_schema.tables",
        "Access to database 'information_schema' is not allowed",
    ),
    (
        "SELECT * FROM INFORMATION_SCHEMA.TABLES",
        "Access to database 'INFORMATION_SCHEMA' is not allowed",
    ),
    (
        "SELECT * FROM default.events",
        "Access to database 'default' is not allowed",
    ),
    (
        "SELECT * FROM `system`.`tables`",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM system . tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM d_other.events",
        "Access to database 'd_other' is not allowed",
    ),
    (
        "SELECT * FROM events JOIN system.tables ON 1",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events, system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events /* , */ , system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events WHERE x IN system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events WHERE x GLOBAL NOT IN system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events WHERE x IN (system.tables)",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events WHERE x IN ((system.tables))",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events WHERE (a, b) IN default.t",
        "Access to database 'default' is not allowed",
    ),
    (
        "SELECT in(1, system.tables)",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events WHERE x IN (SELECT * FROM system.tables)",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events AS where, system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events AS array JOIN system.tables ON 1",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events JOIN users USING (id), system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events e JOIN users u ON e.a = u.array JOIN system.tables ON 1",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events e JOIN users u ON e.a = 1 AND array JOIN system.tables ON 1",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events e JOIN users u ON e.a = array JOIN system.tables ON 1",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events e JOIN users u ON e.a = using, system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events e JOIN users u ON e.a = where, system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events e JOIN users u ON e.a = u.where, system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events e JOIN users u ON e.a = NOT group, system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events select, system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM events SAMPLE 1 OFFSET 1, system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT * FROM numbers(1), system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT 1e--5 FROM system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT extract(DAY FROM d) FROM system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT trim(BOTH 'x' FROM (SELECT name FROM system.tables))",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT position(x IN y) AND z IN system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT 1 AS fill FROM system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT extract(FROM system.tables SELECT 1)",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT position(IN system.tables)",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT x WITH FILL FROM system.tables",
        "Access to database 'system' is not allowed",
    ),
    (
        "SELECT x FROM events ORDER BY x WITH FILL FROM 1 UNION ALL SELECT 1 FROM system.tables",
        "Access to database 'system' is not allowed",
    ),
    // Unknown tables and CTE scoping.
    (
        "SELECT * FROM unknown_table",
        "Resource 'unknown_table' not found",
    ),
    (
        "SELECT * FROM events JOIN nope ON 1",
        "Resource 'nope' not found",
    ),
    (
        "SELECT * FROM events WHERE x IN nope",
        "Resource 'nope' not found",
    ),
    (
        "SELECT * FROM `system.tables`",
        "Resource 'system.tables' not found",
    ),
    (
        "SELECT * FROM \"/etc/passwd\"",
        "Resource '/etc/passwd' not found",
    ),
    ("SELECT * FROM Events", "Resource 'Events' not found"),
    (
        "SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) AS a, t",
        "Resource 't' not found",
    ),
    ("WITH 1 AS t SELECT * FROM t", "Resource 't' not found"),
    (
        "SELECT * FROM events, settings",
        "Resource 'settings' not found",
    ),
    (
        "WITH \"/etc/passwd\" AS (SELECT 1) SELECT * FROM \"/etc/passwd\"",
        "Syntax error: CTE name",
    ),
    // Table functions.
    (
        "SELECT * FROM file('/etc/passwd')",
        "Table function 'file' is not allowed",
    ),
    (
        "SELECT * FROM url('http://x', CSV)",
        "Table function 'url' is not allowed",
    ),
    (
        "SELECT * FROM s3('http://x')",
        "Table function 's3' is not allowed",
    ),
    (
        "SELECT * FROM remote('h', system.tables)",
        "Table function 'remote' is not allowed",
    ),
    (
        "SELECT * FROM events JOIN mysql('h', 'db', 't', 'u', 'p') ON 1",
        "Table function 'mysql' is not allowed",
    ),
    (
        "SELECT * FROM merge('system', '.*')",
        "Table function 'merge' is not allowed",
    ),
    (
        "SELECT * FROM view(SELECT 1)",
        "Table function 'view' is not allowed",
    ),
    (
        "SELECT * FROM input('a UInt8')",
        "Table function 'input' is not allowed",
    ),
    (
        "SELECT * FROM null('a UInt8')",
        "Table function 'null' is not allowed",
    ),
    (
        "SELECT * FROM format(JSONEachRow, '{\"a\": 1}')",
        "Table function 'format' is not allowed",
    ),
    (
        "SELECT * FROM dictionary('d')",
        "Table function 'dictionary' is not allowed",
    ),
    (
        "SELECT * FROM events, `file`('x')",
        "Table function 'file' is not allowed",
    ),
    (
        "SELECT * FROM my_pipe(x = 1)",
        "Table function 'my_pipe' is not allowed",
    ),
    (
        "SELECT * FROM numbers(10) WHERE number IN (SELECT * FROM url('http://x', CSV, 'a UInt8'))",
        "Table function 'url' is not allowed",
    ),
    // Functions.
    (
        "SELECT file('/etc/passwd')",
        "Function 'file' is not allowed",
    ),
    ("SELECT `file`('x')", "Function 'file' is not allowed"),
    (
        "SELECT joinGet('j', 'v', 1)",
        "Function 'joinGet' is not allowed",
    ),
    (
        "SELECT dictGet('d', 'a', 1)",
        "Function 'dictGet' is not allowed",
    ),
    (
        "SELECT dictGetString('d', 'a', 1)",
        "Function 'dictGetString' is not allowed",
    ),
    (
        "SELECT dictHas('d', 1)",
        "Function 'dictHas' is not allowed",
    ),
    (
        "SELECT currentDatabase()",
        "Function 'currentDatabase' is not allowed",
    ),
    ("SELECT DATABASE()", "Function 'DATABASE' is not allowed"),
    (
        "SELECT getSetting('readonly')",
        "Function 'getSetting' is not allowed",
    ),
    ("SELECT hostName()", "Function 'hostName' is not allowed"),
    ("SELECT sleep(3)", "Function 'sleep' is not allowed"),
    (
        "SELECT sleepEachRow(1) FROM events",
        "Function 'sleepEachRow' is not allowed",
    ),
    (
        "SELECT getMacro('replica')",
        "Function 'getMacro' is not allowed",
    ),
    (
        "SELECT remote ('h', 'db', 't')",
        "Function 'remote' is not allowed",
    ),
    (
        "SELECT arrayMap(x -> file(x), ['a'])",
        "Function 'file' is not allowed",
    ),
    (
        "SELECT file/* hidden */('x')",
        "Function 'file' is not allowed",
    ),
    (
        "SELECT * APPLY(file) FROM events",
        "Function 'file' is not allowed",
    ),
    (
        "SELECT COLUMNS('a') APPLY currentDatabase FROM events",
        "Function 'currentDatabase' is not allowed",
    ),
    ("SELECT notIn(1, events)", "Function 'notIn' is not allowed"),
    ("SELECT `in`(1, events)", "Function 'in' is not allowed"),
    (
        "SELECT __getScalar('x')",
        "Function '__getScalar' is not allowed",
    ),
    // Settings.
    (
        "SELECT * FROM events SETTINGS readonly = 0",
        "Setting 'readonly' is not allowed",
    ),
    (
        "SELECT * FROM events SETTINGS max_memory_usage = 1",
        "Setting 'max_memory_usage' is not allowed",
    ),
    (
        "SELECT * FROM events SETTINGS max_execution_time = 3600",
        "Setting 'max_execution_time' is not allowed",
    ),
    (
        "SELECT * FROM (SELECT 1 SETTINGS max_result_rows = 0)",
        "Setting 'max_result_rows' is not allowed",
    ),
    (
        "SELECT 1 SETTINGS allow_ddl = 1",
        "Setting 'allow_ddl' is not allowed",
    ),
    (
        "SELECT 1 SETTINGS max_threads = 1, readonly = 0",
        "Setting 'readonly' is not allowed",
    ),
    (
        "SELECT 1 SETTINGS max_threads = -1, readonly",
        "Setting 'readonly' is not allowed",
    ),
    (
        "SELECT 1 SETTINGS `readonly` = 0",
        "Setting 'readonly' is not allowed",
    ),
    (
        "SELECT 1 SETTINGS param_x = 1",
        "Setting 'param_x' is not allowed",
    ),
    ("SELECT 1 SETTINGS a.b = 1", "Setting 'a.b' is not allowed"),
    (
        "SELECT * FROM (SELECT 1 SETTINGS allow_introspection_functions = 1)",
        "Setting 'allow_introspection_functions' is not allowed",
    ),
    (
        "SELECT 1 FORMAT JSON SETTINGS readonly = 0",
        "Setting 'readonly' is not allowed",
    ),
    (
        "SELECT 1 SETTINGS format_template_row = '/etc/passwd' FORMAT Template",
        "Setting 'format_template_row' is not allowed",
    ),
    // Syntax.
    ("SELECT 'abc", "Syntax error: Unterminated string literal"),
    ("SELECT 'a\\'", "Syntax error: Unterminated string literal"),
    (
        "SELECT `abc",
        "Syntax error: Unterminated quoted identifier",
    ),
    (
        "SELECT \"abc",
        "Syntax error: Unterminated quoted identifier",
    ),
    (
        "SELECT `a\\`b`",
        "Syntax error: Backslash escapes in quoted identifiers",
    ),
    ("SELECT /* abc", "Syntax error: Unterminated comment"),
    (
        "SELECT /* /* */ 1 */ 1",
        "Syntax error: Nested comments are not supported",
    ),
    ("SELECT $$abc", "Syntax error: Unexpected '$'"),
    ("SELECT $a b$ x $a b$", "Syntax error: Unexpected '$'"),
    ("SELECT $x", "Syntax error: Unexpected '$'"),
    ("SELECT x'4G'", "Syntax error: Unterminated string literal"),
    ("SELECT (1", "Syntax error: Unbalanced parentheses"),
    ("SELECT 1)", "Syntax error: Unbalanced parentheses"),
    ("SELECT [1)", "Syntax error: Unbalanced parentheses"),
    ("SELECT 1 \\G", "Syntax error: Unexpected character"),
    ("SELECT #1", "Syntax error: Unexpected character '#'"),
    ("SELECT a ! b", "Syntax error: Unexpected character '!'"),
    ("SELECT a & b", "Syntax error: Unexpected character '&'"),
    (
        "SELECT \u{2018}x\u{2019}",
        "Syntax error: Unexpected character",
    ),
    ("SELECT\u{a0}1", "Syntax error: Unexpected character"),
    ("SELECT 1.5abc", "Syntax error: Wrong number"),
    (
        "SELECT * FROM (events)",
        "Syntax error: Expected a SELECT subquery",
    ),
    (
        "SELECT * FROM 'file.csv'",
        "Syntax error: Expected a table name",
    ),
    ("SELECT * FROM", "Syntax error: Expected a table name"),
    // Query parameters, UUIDs.
    (
        "SELECT {x:UInt8}",
        "Query parameters such as {name:Type} are not supported",
    ),
    (
        "SELECT * FROM {tbl:Identifier}",
        "Query parameters such as {name:Type} are not supported",
    ),
    (
        "SELECT * FROM events UUID '00000000-0000-0000-0000-000000000000'",
        "Table references by UUID are not allowed",
    ),
];

#[test]
fn refused_queries_say_why() {
    for (input, expected) in REFUSALS {
        match check(input) {
            Ok(got) => panic!("{input:?} was accepted as {:?}", got.sql),
            Err(e) => assert!(
                e.to_string().starts_with(expected),
                "input: {input:?}\n  got: {e}\n want: {expected}"
            ),
        }
    }
}

#[test]
fn statements_other_than_select_are_refused() {
    let statements = [
        "INSERT INTO events VALUES (1)",
        "ALTER TABLE events DELETE WHERE 1",
        "DROP TABLE events",
        "CREATE TABLE t (a UInt8) ENGINE = Memory",
        "SYSTEM RELOAD DICTIONARIES",
        "SET readonly = 0",
        "SHOW TABLES",
        "DESCRIBE events",
        "DESC events",
        "EXPLAIN SELECT 1",
        "KILL QUERY WHERE 1",
        "OPTIMIZE TABLE events FINAL",
        "ATTACH TABLE events",
        "DETACH TABLE events",
        "GRANT ALL ON *.* TO x",
        "USE system",
        "EXISTS TABLE events",
        "CHECK TABLE events",
        "RENAME TABLE events TO e2",
        "TRUNCATE TABLE events",
        "DELETE FROM events WHERE 1",
        "UPDATE events SET a = 1 WHERE 1",
        "BACKUP TABLE events TO Disk('b', 'x')",
        "WATCH events",
        "VALUES (1)",
        "`SELECT` 1",
    ];
    for sql in statements {
        assert_eq!(check(sql), Err(SqlError::NotSelect), "{sql}");
    }
}

#[test]
fn format_clause_is_removed_and_reported() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        (
            "SELECT * FROM events FORMAT JSON",
            "SELECT * FROM `d_ws`.`events`",
            Some("JSON"),
        ),
        (
            "SELECT 1 format CSVWithNames;",
            "SELECT 1",
            Some("CSVWithNames"),
        ),
        ("SELECT 1 FORMAT JSON -- trailing", "SELECT 1", Some("JSON")),
        (
            "SELECT 1 FORMAT \"JSONEachRow\"",
            "SELECT 1",
            Some("JSONEachRow"),
        ),
        (
            "SELECT 1 FORMAT JSON SETTINGS max_threads = 2",
            "SELECT 1 SETTINGS max_threads = 2",
            Some("JSON"),
        ),
        (
            "SELECT * FROM events FORMAT JSON SETTINGS max_threads = 2",
            "SELECT * FROM `d_ws`.`events` SETTINGS max_threads = 2",
            Some("JSON"),
        ),
        (
            "SELECT (1)FORMAT `JSON`SETTINGS max_threads = 2",
            "SELECT (1) SETTINGS max_threads = 2",
            Some("JSON"),
        ),
        ("SELECT 1", "SELECT 1", None),
        (
            "SELECT * FROM (SELECT 1) AS format",
            "SELECT * FROM (SELECT 1) AS format",
            None,
        ),
    ];
    for (input, sql, format) in cases {
        let got = check(input).unwrap_or_else(|e| panic!("{input:?} was refused: {e}"));
        assert_eq!(got.sql, *sql, "input: {input:?}");
        assert_eq!(got.format.as_deref(), *format, "input: {input:?}");
    }
}

#[test]
fn referenced_tables_are_listed_once_in_order() {
    let got = check(
        "WITH c AS (SELECT * FROM events_quarantine) \
         SELECT * FROM users JOIN events USING id, c WHERE x IN events OR y IN (SELECT 1 FROM users)",
    )
    .unwrap();
    assert_eq!(got.tables, ["events_quarantine", "users", "events"]);
    assert_eq!(
        check("SELECT 1 FROM numbers(3)").unwrap().tables,
        Vec::<String>::new()
    );
    assert_eq!(check("SELECT * FROM `events`").unwrap().tables, ["events"]);
}

#[test]
fn rewritten_sql_can_be_appended_to() {
    for input in [
        "SELECT 1 -- comment",
        "SELECT 1 /* c */ ;",
        "SELECT 1 # c\n FORMAT JSON -- x",
    ] {
        let got = check(input).unwrap();
        assert_eq!(got.sql, "SELECT 1", "input: {input:?}");
    }
}

#[test]
fn errors_read_well() {
    assert_eq!(
        SqlError::TableFunction("file".into()).to_string(),
        "Table function 'file' is not allowed"
    );
    assert_eq!(
        SqlError::UnknownTable("foo".into()).to_string(),
        "Resource 'foo' not found"
    );
    assert_eq!(
        SqlError::ForbiddenFunction("joinGet".into()).to_string(),
        "Function 'joinGet' is not allowed"
    );
    assert_eq!(
        SqlError::ForbiddenSetting("readonly".into()).to_string(),
        "Setting 'readonly' is not allowed"
    );
    assert_eq!(
        SqlError::NotSelect.to_string(),
        "Only SELECT queries are supported"
    );
    assert_eq!(
        SqlError::MultipleStatements.to_string(),
        "Multiple statements are not allowed"
    );
}

/// Random concatenations of SQL fragments never panic, and whatever is accepted never names a
/// database-qualified table right after FROM or JOIN.
#[test]
fn arbitrary_input_never_panics() {
    const FRAGMENTS: &[&str] = &[
        "SELECT",
        "FROM",
        "events",
        "system",
        ".",
        "tables",
        "(",
        ")",
        "[",
        "]",
        ",",
        "JOIN",
        "ARRAY",
        "IN",
        "AS",
        "'",
        "\"",
        "`",
        "--",
        "/*",
        "*/",
        "//",
        "$$",
        "$a$",
        "1e",
        "-",
        "0x",
        ".5",
        "1",
        "FORMAT",
        "JSON",
        "SETTINGS",
        "max_threads",
        "=",
        "WITH",
        "x",
        "FILL",
        "ORDER",
        "BY",
        "USING",
        "ON",
        "\n",
        ";",
        "# ",
        "#",
        "!",
        "\\",
        "é",
        "numbers",
        "file",
        "extract",
        "position",
        "UNION",
        "ALL",
        "WHERE",
        "x'",
        "b'0'",
        "{",
        "}",
        "->",
        "::",
        "_",
        "\u{a0}",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..30_000 {
        let len = 1 + (next() % 14) as usize;
        let mut sql = String::new();
        for _ in 0..len {
            sql.push_str(FRAGMENTS[(next() % FRAGMENTS.len() as u64) as usize]);
            if next() % 3 != 0 {
                sql.push(' ');
            }
        }
        if let Ok(got) = check(&sql) {
            let lowered = got.sql.to_ascii_lowercase();
            assert!(
                !lowered.contains("from system . tables"),
                "{sql:?} -> {:?}",
                got.sql
            );
            assert!(
                !lowered.contains("join system . tables"),
                "{sql:?} -> {:?}",
                got.sql
            );
            assert!(
                !lowered.contains("from system.tables"),
                "{sql:?} -> {:?}",
                got.sql
            );
        }
    }
}
