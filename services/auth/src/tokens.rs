//! Static tokens as the Tokens API manages them: scope lists checked and written canonically,
//! origins, and the tokens no one may delete.

use roost_proto::auth::v1 as proto;
use roost_store::TokenRecord;
use roost_types::Scope;

/// The name of a workspace's own admin token, whose value signs the workspace's JWTs.
pub const WORKSPACE_ADMIN_TOKEN: &str = "admin token";

/// Tinybird's origin codes a client may send: custom, a data source's or a pipe's TOKEN line.
const ORIGINS: &[&str] = &["C", "DS", "P"];

/// Parses scope strings and writes them canonically, without duplicates, in the order given.
/// A workspace token takes every Tinybird scope but `ADMIN_USER`, which belongs to user tokens.
pub fn normalize_scopes(scopes: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for text in scopes {
        let scope: Scope = text
            .parse()
            .map_err(|e: roost_types::ScopeError| e.to_string())?;
        if scope == Scope::AdminUser {
            return Err(
                "invalid scope 'ADMIN_USER': it belongs to user tokens, not workspace tokens"
                    .into(),
            );
        }
        let canonical = scope.to_string();
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    if out.is_empty() {
        return Err("A token needs at least one scope: use the 'scope' parameter".into());
    }
    Ok(out)
}

/// The origin code to store: `C` unless a known one is given.
pub fn origin(code: &str) -> Result<String, String> {
    let code = code.trim().to_ascii_uppercase();
    if code.is_empty() {
        return Ok("C".into());
    }
    if ORIGINS.contains(&code.as_str()) {
        Ok(code)
    } else {
        Err(format!(
            "Invalid origin '{code}': use one of {}",
            ORIGINS.join(", ")
        ))
    }
}

/// The scopes of a record (a JSON array of strings).
pub fn scopes_of(record: &TokenRecord) -> Vec<String> {
    serde_json::from_str(&record.scopes).unwrap_or_default()
}

/// True for the admin tokens the seed creates (the workspace's, whose value signs JWTs, and the
/// user's): they may be refreshed but not deleted, renamed or narrowed.
pub fn is_protected(record: &TokenRecord) -> bool {
    let admin = scopes_of(record).iter().any(|s| s == "ADMIN");
    admin && (record.name == WORKSPACE_ADMIN_TOKEN || record.name.starts_with("admin "))
}

/// The Tokens API's view of a record.
pub fn message(record: &TokenRecord) -> proto::Token {
    proto::Token {
        id: record.id.clone(),
        name: record.name.clone(),
        token: record.value.clone(),
        description: record.description.clone(),
        scopes: scopes_of(record),
        origin: if record.origin.is_empty() {
            "C".into()
        } else {
            record.origin.clone()
        },
        origin_resource: record.origin_resource.clone(),
        created_at: record.created_at.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scopes_are_canonical_and_deduplicated() {
        let scopes = strings(&[
            "pipes:read:top",
            "PIPES:READ:top",
            "DATASOURCES:READ:events:country = 'ES'",
            "DATASOURCES:CREATE",
            "TOKENS",
            "ADMIN",
            "DATASOURCES:APPEND:events",
            "DATASOURCES:DROP:events",
            "PIPES:CREATE",
            "PIPES:DROP:top",
        ]);
        assert_eq!(
            normalize_scopes(&scopes).unwrap(),
            strings(&[
                "PIPES:READ:top",
                "DATASOURCES:READ:events:country = 'ES'",
                "DATASOURCES:CREATE",
                "TOKENS",
                "ADMIN",
                "DATASOURCES:APPEND:events",
                "DATASOURCES:DROP:events",
                "PIPES:CREATE",
                "PIPES:DROP:top",
            ])
        );
    }

    #[test]
    fn invalid_scopes_are_refused() {
        for bad in [
            "ADMIN_USER",
            "PIPES:READ",
            "DATASOURCES:WRITE:x",
            "READ",
            "PIPES:READ:a:b",
        ] {
            assert!(normalize_scopes(&strings(&[bad])).is_err(), "{bad}");
        }
        assert!(normalize_scopes(&[]).is_err());
    }

    #[test]
    fn origins() {
        assert_eq!(origin("").unwrap(), "C");
        assert_eq!(origin("ds").unwrap(), "DS");
        assert_eq!(origin("P").unwrap(), "P");
        assert!(origin("X").is_err());
    }

    #[test]
    fn the_seed_admin_tokens_are_protected() {
        let record = |name: &str, scopes: &str| TokenRecord {
            id: "t".into(),
            workspace_id: Some("w".into()),
            user_id: "u".into(),
            name: name.into(),
            value: "p.x".into(),
            scopes: scopes.into(),
            description: String::new(),
            created_at: String::new(),
            origin: "C".into(),
            origin_resource: String::new(),
        };
        assert!(is_protected(&record("admin token", r#"["ADMIN"]"#)));
        assert!(is_protected(&record(
            "admin local@roost.dev",
            r#"["ADMIN"]"#
        )));
        assert!(!is_protected(&record("admin token", r#"["PIPES:READ:p"]"#)));
        assert!(!is_protected(&record("reader", r#"["ADMIN"]"#)));
    }
}
