//! ClickHouse version numbers, so callers can tell what an old server lacks.

use std::fmt;

/// A ClickHouse version: `major.minor.patch` (the build number, when present, is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    /// The year-based major version (18 for 18.16.1).
    pub major: u32,
    /// The minor version.
    pub minor: u32,
    /// The patch version.
    pub patch: u32,
}

impl ServerVersion {
    /// Reads what `SELECT version()` answers ("18.16.1", "26.7.3.1"); None when it is not a version.
    pub fn parse(text: &str) -> Option<ServerVersion> {
        let mut parts = text.trim().split('.');
        let mut number = || parts.next().and_then(|part| part.parse::<u32>().ok());
        let major = number()?;
        let minor = number()?;
        let patch = number().unwrap_or(0);
        Some(ServerVersion {
            major,
            minor,
            patch,
        })
    }

    /// Whether this version is `major.minor` or newer.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_old_and_new_versions() {
        let old = ServerVersion::parse("18.16.1\n").unwrap();
        assert_eq!((old.major, old.minor, old.patch), (18, 16, 1));
        assert!(old.at_least(18, 16));
        assert!(!old.at_least(19, 1));
        let new = ServerVersion::parse("26.7.3.1").unwrap();
        assert!(new.at_least(22, 2));
        assert!(new > old);
        assert_eq!(new.to_string(), "26.7.3");
        assert_eq!(ServerVersion::parse("unknown"), None);
        assert_eq!(ServerVersion::parse("18"), None);
    }
}
