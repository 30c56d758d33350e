//! JWTs as Tinybird issues them: HS256, signed with the workspace admin token's value, with the
//! claims `workspace_id`, `name`, `exp`, `scopes` (`PIPES:READ` with `fixed_params`,
//! `DATASOURCES:READ` with a row `filter`) and `limits`.
//!
//! Only HS256 is accepted: the algorithm in a token's header is checked, never trusted to choose
//! how to verify, so `alg: none` or a public-key algorithm cannot slip through. The signature is
//! compared in constant time by `hmac`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use roost_types::Scope;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The claims of a Tinybird JWT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The workspace whose admin token signs the JWT.
    pub workspace_id: String,
    /// A name for the JWT (not unique, not stored).
    pub name: String,
    /// Expiry, in Unix seconds.
    pub exp: i64,
    /// What the JWT may read.
    pub scopes: Vec<ClaimScope>,
    /// Request limits, e.g. `{"rps": 10}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// One scope of a JWT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimScope {
    /// `PIPES:READ` or `DATASOURCES:READ`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The pipe or data source name.
    pub resource: String,
    /// Endpoint parameters the JWT fixes (PIPES:READ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_params: Option<serde_json::Map<String, Value>>,
    /// A SQL row filter (DATASOURCES:READ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Request limits of a JWT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rps: Option<i64>,
}

/// Why a JWT is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON, or claims of the wrong shape.
    #[error("the JWT is malformed")]
    Malformed,
    /// An algorithm other than HS256.
    #[error("the JWT must be signed with HS256")]
    Algorithm,
    /// The signature does not match the workspace's key.
    #[error("the JWT signature is not valid")]
    Signature,
    /// `exp` is past.
    #[error("the JWT has expired")]
    Expired,
    /// A scope JWTs cannot carry or cannot be parsed.
    #[error("invalid JWT scope: {0}")]
    Scope(String),
}

/// True when a token value has a JWT's shape (static tokens start with `p.`).
pub fn looks_like_jwt(value: &str) -> bool {
    value.starts_with("eyJ") && value.split('.').count() == 3
}

/// Signs `claims` with `secret` (the workspace admin token's value).
pub fn sign(claims: &Claims, secret: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    // Claims are strings, numbers and JSON values: serializing cannot fail.
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let signature = URL_SAFE_NO_PAD.encode(mac(secret, &signing_input).finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

fn mac(secret: &str, input: &str) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(input.as_bytes());
    mac
}

/// The `workspace_id` claim, read before verification to find the key. Never trust anything
/// else of an unverified token.
pub fn unverified_workspace(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    payload.get("workspace_id")?.as_str().map(str::to_owned)
}

/// Verifies signature and expiry against `secret` at `now` (Unix seconds) and returns the claims.
pub fn verify(token: &str, secret: &str, now: i64) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(header_part), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(header_part)
            .map_err(|_| JwtError::Malformed)?,
    )
    .map_err(|_| JwtError::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(JwtError::Algorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwtError::Signature)?;
    mac(secret, &format!("{header_part}.{payload}"))
        .verify_slice(&signature)
        .map_err(|_| JwtError::Signature)?;
    let claims: Claims = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| JwtError::Malformed)?,
    )
    .map_err(|_| JwtError::Malformed)?;
    if claims.exp <= now {
        return Err(JwtError::Expired);
    }
    Ok(claims)
}

/// The scope string a JWT scope grants (`PIPES:READ:p`, `DATASOURCES:READ:ds[:filter]`); JWTs
/// carry no other kind of scope.
pub fn scope_string(scope: &ClaimScope) -> Result<String, JwtError> {
    let kind = scope.kind.trim().to_ascii_uppercase();
    let text = match (
        kind.as_str(),
        scope
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty()),
    ) {
        ("PIPES:READ", _) => format!("PIPES:READ:{}", scope.resource),
        ("DATASOURCES:READ", None) => format!("DATASOURCES:READ:{}", scope.resource),
        ("DATASOURCES:READ", Some(filter)) => {
            format!("DATASOURCES:READ:{}:{filter}", scope.resource)
        }
        _ => {
            return Err(JwtError::Scope(format!(
                "'{}': JWTs take only PIPES:READ and DATASOURCES:READ scopes",
                scope.kind
            )));
        }
    };
    let parsed: Scope = text
        .parse()
        .map_err(|e: roost_types::ScopeError| JwtError::Scope(e.to_string()))?;
    Ok(parsed.to_string())
}

/// A fixed parameter's value as endpoint parameters take it: arrays give one value per element.
pub fn param_values(value: &Value) -> Vec<String> {
    match value {
        Value::Null => Vec::new(),
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items.iter().flat_map(param_values).collect(),
        other => vec![other.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            workspace_id: "w1".into(),
            name: "frontend".into(),
            exp,
            scopes: vec![ClaimScope {
                kind: "PIPES:READ".into(),
                resource: "top".into(),
                fixed_params: Some(
                    serde_json::from_str(r#"{"org": "acme", "ids": [1, 2]}"#).unwrap(),
                ),
                filter: None,
            }],
            limits: Some(Limits { rps: Some(10) }),
        }
    }

    #[test]
    fn signs_and_verifies() {
        let token = sign(&claims(2_000), "p.secret");
        assert!(looks_like_jwt(&token));
        assert!(!looks_like_jwt("p.abc.def"));
        assert_eq!(unverified_workspace(&token).as_deref(), Some("w1"));
        assert_eq!(verify(&token, "p.secret", 1_000).unwrap(), claims(2_000));
        let payload: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(payload["scopes"][0]["fixed_params"]["org"], "acme");
        assert_eq!(payload["limits"]["rps"], 10);
    }

    #[test]
    fn a_known_hs256_vector_verifies() {
        // jwt.io's example token, signed with "your-256-bit-secret".
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        let (input, signature) = token.rsplit_once('.').unwrap();
        let expected =
            URL_SAFE_NO_PAD.encode(mac("your-256-bit-secret", input).finalize().into_bytes());
        assert_eq!(expected, signature);
    }

    #[test]
    fn refuses_wrong_keys_tampering_expiry_and_other_algorithms() {
        let token = sign(&claims(2_000), "p.secret");
        assert_eq!(verify(&token, "p.other", 1_000), Err(JwtError::Signature));
        assert_eq!(verify(&token, "p.secret", 2_000), Err(JwtError::Expired));
        assert_eq!(verify(&token, "p.secret", 3_000), Err(JwtError::Expired));

        let mut forged = claims(2_000);
        forged.scopes[0].resource = "secret_pipe".into();
        let forged_payload = sign(&forged, "p.guess")
            .split('.')
            .nth(1)
            .unwrap()
            .to_string();
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(
            verify(&tampered, "p.secret", 1_000),
            Err(JwtError::Signature)
        );

        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            verify(&format!("{none_header}.{}.", parts[1]), "p.secret", 1_000),
            Err(JwtError::Algorithm)
        );
        assert_eq!(
            verify(&format!("{}.{}", parts[0], parts[1]), "p.secret", 1_000),
            Err(JwtError::Malformed)
        );
        assert_eq!(
            verify("eyJ.x.y", "p.secret", 1_000),
            Err(JwtError::Malformed)
        );
    }

    #[test]
    fn jwt_scopes_are_read_scopes_only() {
        let scope = |kind: &str, resource: &str, filter: Option<&str>| ClaimScope {
            kind: kind.into(),
            resource: resource.into(),
            fixed_params: None,
            filter: filter.map(str::to_owned),
        };
        assert_eq!(
            scope_string(&scope("PIPES:READ", "top", None)).unwrap(),
            "PIPES:READ:top"
        );
        assert_eq!(
            scope_string(&scope("DATASOURCES:READ", "events", Some("country = 'ES'"))).unwrap(),
            "DATASOURCES:READ:events:country = 'ES'"
        );
        assert_eq!(
            scope_string(&scope("datasources:read", "events", Some(" "))).unwrap(),
            "DATASOURCES:READ:events"
        );
        for (kind, resource) in [
            ("ADMIN", ""),
            ("DATASOURCES:APPEND", "events"),
            ("TOKENS", ""),
            ("PIPES:READ", ""),
        ] {
            assert!(
                scope_string(&scope(kind, resource, None)).is_err(),
                "{kind}"
            );
        }
    }

    #[test]
    fn fixed_param_values_flatten_arrays() {
        let value: Value = serde_json::from_str(r#"["a", 1, true]"#).unwrap();
        assert_eq!(param_values(&value), ["a", "1", "true"]);
        assert_eq!(param_values(&Value::from(3.5)), ["3.5"]);
        assert!(param_values(&Value::Null).is_empty());
    }
}
