//! Token values.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use subtle::ConstantTimeEq;

/// A new token value for `token_id` of `workspace_id` (empty for a user token).
pub fn new_value(workspace_id: &str, token_id: &str) -> String {
    let payload = serde_json::json!({ "u": workspace_id, "id": token_id });
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    format!(
        "p.{}.{}",
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(secret)
    )
}

/// The token id a value names, if it is well formed.
pub fn id_of(value: &str) -> Option<String> {
    let mut parts = value.split('.');
    let (Some("p"), Some(payload), Some(_secret), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let payload: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    payload.get("id")?.as_str().map(str::to_owned)
}

/// Constant-time equality of two token values.
pub fn same_value(stored: &str, presented: &str) -> bool {
    stored.len() == presented.len() && bool::from(stored.as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_id_and_differ_each_time() {
        let first = new_value("w1", "t1");
        let second = new_value("w1", "t1");
        assert_ne!(first, second);
        assert_eq!(id_of(&first).as_deref(), Some("t1"));
        assert!(first.starts_with("p."));
    }

    #[test]
    fn malformed_values_have_no_id() {
        for value in ["", "p.", "p.x.y", "q.e30.x", "p.e30.x.y", "p.bm90LWpzb24.x"] {
            assert_eq!(id_of(value), None, "{value}");
        }
    }

    #[test]
    fn comparison_is_exact() {
        assert!(same_value("p.a.b", "p.a.b"));
        assert!(!same_value("p.a.b", "p.a.c"));
        assert!(!same_value("p.a.b", "p.a.bb"));
    }
}
