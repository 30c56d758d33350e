//! What user SQL may call and set, shared by every crate that checks SQL: the query service's
//! validator and the catalog's checks of DDL expressions (DEFAULT, engine settings). Every list is compared case-insensitively (ASCII), which refuses
//! at least as much as ClickHouse's own mix of case-sensitive and case-insensitive names.

/// Table functions allowed at a table position (`FROM numbers(10)`): pure generators that read
/// nothing outside the query. Everything else (`file`, `url`, `s3`, `remote`, `mysql`, `merge`,
/// `view`, `input`, `format`, `null`, parametrized views, ...) is refused there.
pub const ALLOWED_TABLE_FUNCTIONS: &[&str] = &[
    "numbers",
    "numbers_mt",
    "zeros",
    "zeros_mt",
    "generate_series",
    "generateseries",
    "values",
    "generaterandom",
];

/// Functions refused wherever they are called (`name(` anywhere, including inside lambdas and
/// `APPLY`). Four groups:
/// - table functions that reach outside the workspace, refused even in expression position in case
///   some syntax treats them as tables (`file`, `url`, `s3`, `remote`, `cluster`, `mysql`, ...);
/// - functions that read other tables or dictionaries by name (`joinGet`, `hasColumnInTable`, the
///   function forms of `IN` such as `notIn(x, tbl)`; `dict*` is in [`DENIED_FUNCTION_PREFIXES`];
///   `in(` itself is handled by the scanner, since `x IN (1, 2)` looks the same);
/// - functions that reveal the server, the session or its settings (`currentDatabase`,
///   `currentUser`, `getSetting`, `hostName`, `getMacro`, `serverUUID`, `queryID`, ...);
/// - functions that stall, crash or write (`sleep*`, `trap`, `logTrace`) or introspect binaries
///   (`addressTo*`, `demangle`), and model evaluation that loads files (`catboostEvaluate`).
///
/// `version()`, `throwIf`, `evalMLMethod`, `getSubcolumn` and `format` (string formatting) are allowed.
pub const DENIED_FUNCTIONS: &[&str] = &[
    // Table functions reaching outside the workspace.
    "file",
    "filecluster",
    // Places data on an arbitrary disk (DDL settings).
    "disk",
    "url",
    "urlcluster",
    "remote",
    "remotesecure",
    "cluster",
    "clusterallreplicas",
    "mysql",
    "postgresql",
    "jdbc",
    "odbc",
    "mongodb",
    "redis",
    "sqlite",
    "gcs",
    "cosn",
    "oss",
    "hive",
    "input",
    "merge",
    "executable",
    "view",
    "viewifpermitted",
    "viewexplain",
    "loop",
    "fuzzjson",
    "fuzzquery",
    "ytsaurus",
    "meilisearch",
    "meilimatch",
    "kafka",
    "nats",
    "rabbitmq",
    // Reading tables or dictionaries by name.
    "joinget",
    "joingetornull",
    "hascolumnintable",
    "notin",
    "globalin",
    "globalnotin",
    "nullin",
    "notnullin",
    "globalnullin",
    "globalnotnullin",
    "inignoreset",
    "notinignoreset",
    "globalinignoreset",
    "globalnotinignoreset",
    "nullinignoreset",
    "notnullinignoreset",
    "globalnullinignoreset",
    "globalnotnullinignoreset",
    "getmaxtablenamelengthfordatabase",
    // Server, session and settings introspection.
    "getsetting",
    "getsettingordefault",
    "getserversetting",
    "getmergetreesetting",
    "currentdatabase",
    "current_database",
    "database",
    "schema",
    "currentschemas",
    "current_schemas",
    "currentuser",
    "current_user",
    "user",
    "session_user",
    "currentprofiles",
    "currentroles",
    "enabledprofiles",
    "enabledroles",
    "defaultprofiles",
    "defaultroles",
    "hostname",
    "fqdn",
    "fullhostname",
    "getmacro",
    "getserverport",
    "tcpport",
    "serveruuid",
    "uptime",
    "displayname",
    "shardnum",
    "shardcount",
    "globalvariable",
    "hasthreadfuzzer",
    "buildid",
    "initialqueryid",
    "initial_query_id",
    "initialquerystarttime",
    "initial_query_start_time",
    "queryid",
    "query_id",
    "currentqueryid",
    "getclienthttpheader",
    "revision",
    "zookeepersessionuptime",
    "getoskernelversion",
    "showcertificate",
    "connectionid",
    "connection_id",
    // Stalling, crashing, writing, binary introspection, model files.
    "trap",
    "logtrace",
    "demangle",
    "catboostevaluate",
    "modelevaluate",
    "naivebayesclassifier",
];

/// Name prefixes refused like [`DENIED_FUNCTIONS`]: whole families (`dictGet*`, `dictHas`,
/// `dictionary`, `sleepEachRow`, `transactionID`, `filesystemAvailable`, `s3Cluster`,
/// `icebergS3`, `azureBlobStorage`, `mergeTreeIndex`, ...) and ClickHouse's internal `__` functions.
pub const DENIED_FUNCTION_PREFIXES: &[&str] = &[
    "remote",
    "cluster",
    "dict",
    "__",
    "sleep",
    "transaction",
    "filesystem",
    "addressto",
    "s3",
    "hdfs",
    "azureblob",
    "iceberg",
    "deltalake",
    "hudi",
    "paimon",
    "timeseries",
    "prometheus",
    "arrowflight",
    "mergetree",
];

/// Settings a query may change in a `SETTINGS` clause; any other name is refused, above all those
/// that raise the limits every query runs under (`max_execution_time`, `max_result_rows`,
/// `max_memory_usage`), and `readonly`, `allow_*`, `param_*`, format settings that name files, ...).
pub const ALLOWED_SETTINGS: &[&str] = &[
    "max_threads",
    "max_block_size",
    "join_algorithm",
    "join_use_nulls",
    "optimize_read_in_order",
    "aggregate_functions_null_for_empty",
    "output_format_json_quote_64bit_integers",
    "output_format_json_quote_denormals",
    "date_time_output_format",
    "max_bytes_before_external_group_by",
    "max_bytes_before_external_sort",
];

/// Whether calling the function `name` is refused.
pub fn is_denied_function(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    DENIED_FUNCTIONS.contains(&lower.as_str())
        || DENIED_FUNCTION_PREFIXES
            .iter()
            .any(|p| lower.starts_with(p))
}

/// Whether the table function `name` may be used at a table position.
pub fn is_allowed_table_function(name: &str) -> bool {
    ALLOWED_TABLE_FUNCTIONS.contains(&name.to_ascii_lowercase().as_str())
}

/// Whether the setting `name` may be changed by a query.
pub fn is_allowed_setting(name: &str) -> bool {
    ALLOWED_SETTINGS.contains(&name.to_ascii_lowercase().as_str())
}
