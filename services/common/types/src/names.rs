//! Resource and column name validation, and quoting of identifiers and string literals for ClickHouse SQL.
//!
//! Names are checked here once so that every crate refuses the same inputs with the same message, and
//! quoting lives here so that no crate formats a raw name or value into SQL.
//!
//! Tinybird also reserves some suffixes by convention (a data source `x` has a quarantine table
//! `x_quarantine`); those are refused by the catalog, which knows what exists, not here.

/// Longest accepted resource name (data sources, pipes, nodes, tokens).
pub const MAX_NAME_LEN: usize = 128;

/// Longest accepted column name.
pub const MAX_COLUMN_NAME_LEN: usize = 256;

/// A name that cannot be used for a resource or column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("{kind} name is empty")]
    Empty {
        /// What was being named, e.g. "Data Source".
        kind: String,
    },
    /// The name is longer than the limit.
    #[error("{kind} name '{name}' is too long: the maximum is {max} characters")]
    TooLong {
        /// What was being named.
        kind: String,
        /// The refused name.
        name: String,
        /// The limit.
        max: usize,
    },
    /// A resource name with a character outside `[A-Za-z0-9_]`, or starting with a digit.
    #[error(
        "Invalid {kind} name '{name}': it must start with a letter or an underscore and contain only letters, digits and underscores"
    )]
    Invalid {
        /// What was being named.
        kind: String,
        /// The refused name.
        name: String,
    },
    /// A column name containing a character ClickHouse identifiers cannot hold.
    #[error("Invalid column name '{name}': it must not contain {what}")]
    ForbiddenCharacter {
        /// The refused name (with the character escaped if it is NUL).
        name: String,
        /// A description of the character, e.g. "a backquote".
        what: &'static str,
    },
}

/// Checks a Tinybird resource name: a letter or underscore, then letters, digits and underscores, at
/// most [`MAX_NAME_LEN`] characters. `kind` (e.g. "Data Source", "Pipe") goes into the error message.
pub fn validate_name(kind: &str, name: &str) -> Result<(), NameError> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(NameError::Empty {
            kind: kind.to_owned(),
        });
    };
    if name.chars().count() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            kind: kind.to_owned(),
            name: name.to_owned(),
            max: MAX_NAME_LEN,
        });
    }
    let valid_start = first.is_ascii_alphabetic() || first == '_';
    if !valid_start || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(NameError::Invalid {
            kind: kind.to_owned(),
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Checks a column name. Columns are always quoted in SQL, so anything is accepted except the empty
/// name, backquotes and NUL (which Tinybird refuses and which would make schema strings ambiguous),
/// up to [`MAX_COLUMN_NAME_LEN`] characters.
pub fn validate_column_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty {
            kind: "Column".to_owned(),
        });
    }
    if name.chars().count() > MAX_COLUMN_NAME_LEN {
        return Err(NameError::TooLong {
            kind: "Column".to_owned(),
            name: name.to_owned(),
            max: MAX_COLUMN_NAME_LEN,
        });
    }
    if name.contains('`') {
        return Err(NameError::ForbiddenCharacter {
            name: name.to_owned(),
            what: "a backquote",
        });
    }
    if name.contains('\0') {
        return Err(NameError::ForbiddenCharacter {
            name: name.replace('\0', "\\0"),
            what: "a NUL character",
        });
    }
    Ok(())
}

/// True when `name` can appear unquoted in ClickHouse SQL and Tinybird jsonpaths:
/// `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Quotes an identifier for ClickHouse: `` `name` ``, escaping backslash and backquote.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        if c == '\\' || c == '`' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('`');
    out
}

/// Quotes a string literal for ClickHouse: `'text'`, escaping backslash and single quote with a
/// backslash and control characters (including NUL) as `\xNN`, so the literal is one printable line.
pub fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
            out.push(c);
        } else if c.is_ascii_control() {
            out.push_str(&format!("\\x{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names() {
        let long = "a".repeat(MAX_NAME_LEN);
        let too_long = "a".repeat(MAX_NAME_LEN + 1);
        let cases: &[(&str, bool)] = &[
            ("events", true),
            ("_events", true),
            ("Events_2024", true),
            (&long, true),
            ("", false),
            ("2events", false),
            ("my-events", false),
            ("my events", false),
            ("événements", false),
            ("a.b", false),
            (&too_long, false),
        ];
        for (name, ok) in cases {
            assert_eq!(validate_name("Data Source", name).is_ok(), *ok, "{name}");
        }
    }

    #[test]
    fn resource_name_messages() {
        let err = validate_name("Data Source", "my-ds").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Invalid Data Source name 'my-ds'"),
            "{err}"
        );
        assert_eq!(
            validate_name("Pipe", "").unwrap_err().to_string(),
            "Pipe name is empty"
        );
        let err = validate_name("Pipe", &"x".repeat(200)).unwrap_err();
        assert!(matches!(
            err,
            NameError::TooLong {
                max: MAX_NAME_LEN,
                ..
            }
        ));
    }

    #[test]
    fn column_names() {
        let cases: &[(&str, bool)] = &[
            ("a", true),
            ("a b", true),
            ("1st", true),
            ("naïve", true),
            ("a.b", true),
            ("a\\b", true),
            ("", false),
            ("a`b", false),
            ("a\0b", false),
        ];
        for (name, ok) in cases {
            assert_eq!(validate_column_name(name).is_ok(), *ok, "{name:?}");
        }
        assert!(validate_column_name(&"é".repeat(MAX_COLUMN_NAME_LEN)).is_ok());
        assert!(validate_column_name(&"e".repeat(MAX_COLUMN_NAME_LEN + 1)).is_err());
        let err = validate_column_name("a\0b").unwrap_err().to_string();
        assert!(err.contains("a\\0b") && err.contains("NUL"), "{err}");
    }

    #[test]
    fn plain_identifiers() {
        assert!(is_plain_identifier("a_1"));
        assert!(is_plain_identifier("_"));
        assert!(!is_plain_identifier(""));
        assert!(!is_plain_identifier("1a"));
        assert!(!is_plain_identifier("a b"));
    }

    #[test]
    fn quoting_identifiers() {
        let cases = [
            ("a", "`a`"),
            ("a b", "`a b`"),
            ("a`b", "`a\\`b`"),
            ("a\\b", "`a\\\\b`"),
            ("", "``"),
        ];
        for (input, expected) in cases {
            assert_eq!(quote_ident(input), expected);
        }
    }

    #[test]
    fn quoting_strings() {
        let cases = [
            ("abc", "'abc'"),
            ("it's", "'it\\'s'"),
            ("back\\slash", "'back\\\\slash'"),
            ("line\nbreak", "'line\\x0Abreak'"),
            ("nul\0", "'nul\\x00'"),
            ("tab\tdel\x7f", "'tab\\x09del\\x7F'"),
            ("ünïcode", "'ünïcode'"),
            ("\"", "'\"'"),
        ];
        for (input, expected) in cases {
            assert_eq!(quote_string(input), expected, "{input:?}");
        }
    }
}
