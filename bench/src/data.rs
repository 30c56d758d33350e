//! The benchmark's data: deterministic NDJSON rows and the schema both sides store them in.

use bytes::Bytes;

/// How the timestamp is stored: with milliseconds where the engine has `DateTime64` (ClickHouse
/// 20.1 and later, chDB), else to the second (`DateTime`; ClickHouse 18.16 parses no fraction into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamps {
    /// `DateTime64(3)`, written `2024-01-01 00:00:00.123`.
    Millis,
    /// `DateTime`, written `2024-01-01 00:00:00`.
    Seconds,
}

impl Timestamps {
    /// The ClickHouse type of `ts`.
    pub fn column_type(self) -> &'static str {
        match self {
            Timestamps::Millis => "DateTime64(3)",
            Timestamps::Seconds => "DateTime",
        }
    }
}

/// The Tinybird schema of the `bench` data source (jsonpaths included).
pub fn schema(timestamps: Timestamps) -> String {
    format!(
        "`ts` {} `json:$.ts`, {SCHEMA_AFTER_TS}",
        timestamps.column_type()
    )
}

const SCHEMA_AFTER_TS: &str = "\
    `event_id` UInt64 `json:$.event_id`, \
    `user_id` UInt64 `json:$.user_id`, \
    `session_id` String `json:$.session_id`, \
    `country` String `json:$.country`, \
    `event` String `json:$.event`, \
    `device_os` String `json:$.device.os`, \
    `device_version` String `json:$.device.version`, \
    `amount` Float64 `json:$.amount`, \
    `quantity` Int32 `json:$.quantity`, \
    `tags` Array(String) `json:$.tags[:]`";

/// The raw table with the same columns. ClickHouse's JSONEachRow reads the nested `device`
/// object into `device.os` / `device.version` with `input_format_import_nested_json = 1`, so the
/// stored columns match Roost's `device_os` / `device_version` one for one.
pub fn raw_columns(timestamps: Timestamps) -> String {
    format!("`ts` {}, {RAW_COLUMNS_AFTER_TS}", timestamps.column_type())
}

const RAW_COLUMNS_AFTER_TS: &str = "`event_id` UInt64, `user_id` UInt64, \
    `session_id` String, `country` String, `event` String, `device.os` String, \
    `device.version` String, `amount` Float64, `quantity` Int32, `tags` Array(String)";

/// Settings of every raw insert.
pub const RAW_INSERT_SETTINGS: &str = "input_format_import_nested_json = 1";

/// The sorting key of both tables.
pub const SORTING_KEY: &str = "ts";

/// Countries the rows (and the endpoint parameters) draw from.
pub const COUNTRIES: [&str; 8] = ["ES", "FR", "DE", "IT", "US", "GB", "BR", "JP"];
const EVENTS: [&str; 6] = [
    "view",
    "click",
    "add_to_cart",
    "purchase",
    "search",
    "login",
];
const OSES: [&str; 4] = ["linux", "android", "ios", "windows"];
const TAGS: [&str; 6] = ["new", "promo", "mobile", "returning", "beta", "vip"];

/// SplitMix64: small, fast, and the same sequence on every machine and Rust version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Row `index` of the data set: the same bytes for the same index, always.
pub fn row(index: u64, timestamps: Timestamps, out: &mut String) {
    use std::fmt::Write;
    let mut rng = Rng::new(index.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xB0057);
    // 2024-01-01 00:00:00 UTC plus about one event every 30 ms.
    let millis = 1_704_067_200_000u64 + index * 30 + rng.below(30);
    let (secs, ms) = (millis / 1000, millis % 1000);
    let ts = chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    let user_id = rng.below(100_000);
    let session = rng.next_u64();
    let country = rng.pick(&COUNTRIES);
    let event = rng.pick(&EVENTS);
    let os = rng.pick(&OSES);
    let major = rng.below(15) + 1;
    let minor = rng.below(10);
    let cents = rng.below(100_000);
    let quantity = rng.below(10) as i32;
    let fraction = match timestamps {
        Timestamps::Millis => format!(".{ms:03}"),
        Timestamps::Seconds => String::new(),
    };
    let _ = write!(
        out,
        r#"{{"ts":"{ts}{fraction}","event_id":{index},"user_id":{user_id},"session_id":"{session:016x}","country":"{country}","event":"{event}","device":{{"os":"{os}","version":"{major}.{minor}"}},"amount":{}.{:02},"quantity":{quantity},"tags":["#,
        cents / 100,
        cents % 100
    );
    let tags = rng.below(4);
    for t in 0..tags {
        if t > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{}\"", rng.pick(&TAGS));
    }
    out.push_str("]}\n");
}

/// `rows` rows in NDJSON batches of `batch` rows each (the last may be shorter).
pub fn batches(rows: u64, batch: u64, timestamps: Timestamps) -> Vec<Bytes> {
    let batch = batch.max(1);
    let mut out = Vec::with_capacity(rows.div_ceil(batch) as usize);
    let mut start = 0;
    while start < rows {
        let end = (start + batch).min(rows);
        let mut text = String::with_capacity(((end - start) * 300) as usize);
        for index in start..end {
            row(index, timestamps, &mut text);
        }
        out.push(Bytes::from(text));
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_index_gives_the_same_row() {
        let (mut a, mut b) = (String::new(), String::new());
        row(12_345, Timestamps::Millis, &mut a);
        row(12_345, Timestamps::Millis, &mut b);
        assert_eq!(a, b);
        let mut c = String::new();
        row(12_346, Timestamps::Millis, &mut c);
        assert_ne!(a, c);
    }

    #[test]
    fn batches_are_deterministic_and_cover_every_row() {
        let first = batches(25_001, 10_000, Timestamps::Millis);
        let second = batches(25_001, 10_000, Timestamps::Millis);
        assert_eq!(first, second);
        let lines: Vec<usize> = first
            .iter()
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .collect();
        assert_eq!(lines, [10_000, 10_000, 5_001]);
        assert!(batches(0, 10, Timestamps::Millis).is_empty());
    }

    #[test]
    fn rows_are_json_with_every_field() {
        let mut text = String::new();
        for index in 0..200 {
            text.clear();
            row(index, Timestamps::Millis, &mut text);
            let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
            assert_eq!(value["event_id"], index);
            for key in [
                "ts",
                "user_id",
                "session_id",
                "country",
                "event",
                "amount",
                "quantity",
                "tags",
            ] {
                assert!(!value[key].is_null(), "{key} missing in {text}");
            }
            assert!(value["device"]["os"].is_string(), "{text}");
            assert!(value["tags"].is_array(), "{text}");
            assert_eq!(value["ts"].as_str().unwrap().len(), 23, "{text}");
        }
    }

    #[test]
    fn second_timestamps_have_no_fraction() {
        let (mut millis, mut seconds) = (String::new(), String::new());
        row(7, Timestamps::Millis, &mut millis);
        row(7, Timestamps::Seconds, &mut seconds);
        let ts = |text: &str| {
            let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
            value["ts"].as_str().unwrap().to_string()
        };
        assert_eq!(ts(&seconds).len(), 19);
        assert_eq!(ts(&millis)[..19], ts(&seconds));
    }

    #[test]
    fn the_generator_is_pinned() {
        // SplitMix64's published first output for seed 0.
        assert_eq!(Rng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }
}
