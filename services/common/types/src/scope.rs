//! Tinybird token scopes (`ADMIN`, `DATASOURCES:READ:events:country='ES'`, `PIPES:READ:top`, …).

use std::fmt;
use std::str::FromStr;

/// One permission carried by a token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `ADMIN`: everything in the workspace.
    Admin,
    /// `ADMIN_USER`: the admin token tied to a user.
    AdminUser,
    /// `DATASOURCES:CREATE`.
    DatasourcesCreate,
    /// `DATASOURCES:APPEND:<data source>`.
    DatasourcesAppend(String),
    /// `DATASOURCES:READ:<data source>[:<SQL filter>]`; the filter restricts the rows the token sees.
    DatasourcesRead {
        /// The data source name.
        resource: String,
        /// A SQL condition applied to every read, e.g. `country='ES'`.
        filter: Option<String>,
    },
    /// `DATASOURCES:DROP:<data source>`.
    DatasourcesDrop(String),
    /// `PIPES:CREATE`.
    PipesCreate,
    /// `PIPES:READ:<pipe>`.
    PipesRead(String),
    /// `PIPES:DROP:<pipe>`.
    PipesDrop(String),
    /// `TOKENS`: manage tokens.
    Tokens,
}

/// A scope string that is not one of the Tinybird scopes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Not a known scope.
    #[error("invalid scope '{0}'")]
    Unknown(String),
    /// A scope that names a resource was given without one.
    #[error("invalid scope '{0}': it needs a resource name, e.g. '{0}:name'")]
    MissingResource(String),
    /// Something follows a complete scope.
    #[error("invalid scope '{0}': unexpected text after the resource name")]
    TrailingText(String),
}

impl Scope {
    /// The data source or pipe the scope is about, if any.
    pub fn resource(&self) -> Option<&str> {
        match self {
            Scope::DatasourcesAppend(r)
            | Scope::DatasourcesRead { resource: r, .. }
            | Scope::DatasourcesDrop(r)
            | Scope::PipesRead(r)
            | Scope::PipesDrop(r) => Some(r),
            Scope::Admin
            | Scope::AdminUser
            | Scope::DatasourcesCreate
            | Scope::PipesCreate
            | Scope::Tokens => None,
        }
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    /// Keywords are matched case-insensitively; the filter of `DATASOURCES:READ` is everything after
    /// the third colon, colons included.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let text = input.trim();
        let mut parts = text.splitn(4, ':');
        let first = parts.next().unwrap_or_default().to_ascii_uppercase();
        let second = parts.next().map(str::to_ascii_uppercase);
        let resource = parts.next();
        let rest = parts.next();

        let unknown = || ScopeError::Unknown(input.to_owned());
        let keyword_only = |scope: Scope| {
            if resource.is_some() {
                Err(unknown())
            } else {
                Ok(scope)
            }
        };
        let named = |build: fn(String) -> Scope| {
            let resource = resource.filter(|r| !r.trim().is_empty());
            match (resource, rest) {
                (None, _) => Err(ScopeError::MissingResource(text.to_owned())),
                (Some(_), Some(_)) => Err(ScopeError::TrailingText(text.to_owned())),
                (Some(r), None) => Ok(build(r.trim().to_owned())),
            }
        };

        match (first.as_str(), second.as_deref()) {
            ("ADMIN", None) => Ok(Scope::Admin),
            ("ADMIN_USER", None) => Ok(Scope::AdminUser),
            ("TOKENS", None) => Ok(Scope::Tokens),
            ("DATASOURCES", Some("CREATE")) => keyword_only(Scope::DatasourcesCreate),
            ("PIPES", Some("CREATE")) => keyword_only(Scope::PipesCreate),
            ("DATASOURCES", Some("APPEND")) => named(Scope::DatasourcesAppend),
            ("DATASOURCES", Some("DROP")) => named(Scope::DatasourcesDrop),
            ("PIPES", Some("READ")) => named(Scope::PipesRead),
            ("PIPES", Some("DROP")) => named(Scope::PipesDrop),
            ("DATASOURCES", Some("READ")) => {
                let resource = resource.map(str::trim).filter(|r| !r.is_empty());
                let Some(resource) = resource else {
                    return Err(ScopeError::MissingResource(text.to_owned()));
                };
                let filter = rest
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned);
                Ok(Scope::DatasourcesRead {
                    resource: resource.to_owned(),
                    filter,
                })
            }
            _ => Err(unknown()),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Admin => f.write_str("ADMIN"),
            Scope::AdminUser => f.write_str("ADMIN_USER"),
            Scope::DatasourcesCreate => f.write_str("DATASOURCES:CREATE"),
            Scope::DatasourcesAppend(r) => write!(f, "DATASOURCES:APPEND:{r}"),
            Scope::DatasourcesRead {
                resource,
                filter: None,
            } => write!(f, "DATASOURCES:READ:{resource}"),
            Scope::DatasourcesRead {
                resource,
                filter: Some(filter),
            } => {
                write!(f, "DATASOURCES:READ:{resource}:{filter}")
            }
            Scope::DatasourcesDrop(r) => write!(f, "DATASOURCES:DROP:{r}"),
            Scope::PipesCreate => f.write_str("PIPES:CREATE"),
            Scope::PipesRead(r) => write!(f, "PIPES:READ:{r}"),
            Scope::PipesDrop(r) => write!(f, "PIPES:DROP:{r}"),
            Scope::Tokens => f.write_str("TOKENS"),
        }
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let cases: Vec<(&str, Scope, &str)> = vec![
            ("ADMIN", Scope::Admin, "ADMIN"),
            ("ADMIN_USER", Scope::AdminUser, "ADMIN_USER"),
            ("TOKENS", Scope::Tokens, "TOKENS"),
            (
                "DATASOURCES:CREATE",
                Scope::DatasourcesCreate,
                "DATASOURCES:CREATE",
            ),
            ("PIPES:CREATE", Scope::PipesCreate, "PIPES:CREATE"),
            (
                "DATASOURCES:APPEND:events",
                Scope::DatasourcesAppend("events".into()),
                "DATASOURCES:APPEND:events",
            ),
            (
                "DATASOURCES:DROP:events",
                Scope::DatasourcesDrop("events".into()),
                "DATASOURCES:DROP:events",
            ),
            (
                "PIPES:READ:top_pages",
                Scope::PipesRead("top_pages".into()),
                "PIPES:READ:top_pages",
            ),
            (
                "PIPES:DROP:top_pages",
                Scope::PipesDrop("top_pages".into()),
                "PIPES:DROP:top_pages",
            ),
            (
                "DATASOURCES:READ:events",
                Scope::DatasourcesRead {
                    resource: "events".into(),
                    filter: None,
                },
                "DATASOURCES:READ:events",
            ),
            (
                "DATASOURCES:READ:events:country='ES'",
                Scope::DatasourcesRead {
                    resource: "events".into(),
                    filter: Some("country='ES'".into()),
                },
                "DATASOURCES:READ:events:country='ES'",
            ),
            (
                "DATASOURCES:READ:events:ts > '2024-01-01 00:00:00'",
                Scope::DatasourcesRead {
                    resource: "events".into(),
                    filter: Some("ts > '2024-01-01 00:00:00'".into()),
                },
                "DATASOURCES:READ:events:ts > '2024-01-01 00:00:00'",
            ),
            (
                "DATASOURCES:READ:events:",
                Scope::DatasourcesRead {
                    resource: "events".into(),
                    filter: None,
                },
                "DATASOURCES:READ:events",
            ),
            ("admin", Scope::Admin, "ADMIN"),
            (
                "pipes:read:Top",
                Scope::PipesRead("Top".into()),
                "PIPES:READ:Top",
            ),
            (" TOKENS ", Scope::Tokens, "TOKENS"),
        ];
        for (input, expected, canonical) in cases {
            let parsed: Scope = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed, expected, "{input}");
            assert_eq!(parsed.to_string(), canonical, "{input}");
            assert_eq!(
                canonical.parse::<Scope>().unwrap(),
                parsed,
                "round trip of {canonical}"
            );
        }
    }

    #[test]
    fn rejects_invalid_scopes() {
        let cases: Vec<(&str, ScopeError)> = vec![
            ("", ScopeError::Unknown("".into())),
            ("READ", ScopeError::Unknown("READ".into())),
            ("ADMIN:x", ScopeError::Unknown("ADMIN:x".into())),
            ("TOKENS:READ", ScopeError::Unknown("TOKENS:READ".into())),
            ("DATASOURCES", ScopeError::Unknown("DATASOURCES".into())),
            (
                "DATASOURCES:CREATE:x",
                ScopeError::Unknown("DATASOURCES:CREATE:x".into()),
            ),
            (
                "DATASOURCES:WRITE:x",
                ScopeError::Unknown("DATASOURCES:WRITE:x".into()),
            ),
            (
                "DATASOURCES:READ",
                ScopeError::MissingResource("DATASOURCES:READ".into()),
            ),
            (
                "DATASOURCES:READ:",
                ScopeError::MissingResource("DATASOURCES:READ:".into()),
            ),
            (
                "DATASOURCES:APPEND",
                ScopeError::MissingResource("DATASOURCES:APPEND".into()),
            ),
            (
                "DATASOURCES:DROP",
                ScopeError::MissingResource("DATASOURCES:DROP".into()),
            ),
            (
                "PIPES:READ",
                ScopeError::MissingResource("PIPES:READ".into()),
            ),
            (
                "PIPES:DROP: ",
                ScopeError::MissingResource("PIPES:DROP:".into()),
            ),
            (
                "PIPES:READ:a:b",
                ScopeError::TrailingText("PIPES:READ:a:b".into()),
            ),
            (
                "DATASOURCES:APPEND:a:b",
                ScopeError::TrailingText("DATASOURCES:APPEND:a:b".into()),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(input.parse::<Scope>(), Err(expected), "{input}");
        }
        assert_eq!(
            "PIPES:READ".parse::<Scope>().unwrap_err().to_string(),
            "invalid scope 'PIPES:READ': it needs a resource name, e.g. 'PIPES:READ:name'"
        );
    }

    #[test]
    fn resource_and_serde() {
        assert_eq!(Scope::Admin.resource(), None);
        assert_eq!(Scope::PipesRead("p".into()).resource(), Some("p"));
        let scope = Scope::DatasourcesRead {
            resource: "ds".into(),
            filter: Some("a:b=1".into()),
        };
        assert_eq!(scope.resource(), Some("ds"));
        let json = serde_json::to_string(&scope).unwrap();
        assert_eq!(json, "\"DATASOURCES:READ:ds:a:b=1\"");
        assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
    }
}
