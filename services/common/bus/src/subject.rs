//! Subjects and patterns with NATS rules, so the in-process bus accepts and matches exactly what
//! NATS would: dot-separated non-empty tokens without spaces; in patterns `*` is one token and a
//! final `>` is one or more.

use crate::BusError;

fn invalid(what: &'static str, name: &str, reason: &'static str) -> BusError {
    BusError::InvalidName {
        what,
        name: name.to_string(),
        reason,
    }
}

fn check_tokens(what: &'static str, name: &str) -> Result<(), BusError> {
    if name.is_empty() {
        return Err(invalid(what, name, "it is empty"));
    }
    if name.chars().any(char::is_whitespace) {
        return Err(invalid(what, name, "it contains white space"));
    }
    if name.split('.').any(str::is_empty) {
        return Err(invalid(what, name, "it has an empty token"));
    }
    Ok(())
}

/// Checks a subject to publish on: no wildcards.
pub(crate) fn check_subject(subject: &str) -> Result<(), BusError> {
    check_tokens("subject", subject)?;
    if subject.split('.').any(|token| token == "*" || token == ">") {
        return Err(invalid(
            "subject",
            subject,
            "wildcards are for subscriptions",
        ));
    }
    Ok(())
}

/// Checks a subscription pattern.
pub(crate) fn check_pattern(pattern: &str) -> Result<(), BusError> {
    check_tokens("pattern", pattern)?;
    let tokens: Vec<&str> = pattern.split('.').collect();
    let last = tokens.len() - 1;
    if tokens[..last].contains(&">") {
        return Err(invalid("pattern", pattern, "'>' must be the last token"));
    }
    Ok(())
}

/// Whether `subject` matches `pattern` (both already checked).
pub(crate) fn matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for token in pattern.split('.') {
        match token {
            ">" => return subject_tokens.next().is_some(),
            "*" => {
                if subject_tokens.next().is_none() {
                    return false;
                }
            }
            literal => {
                if subject_tokens.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_nats() {
        assert!(matches("a.b.c", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(matches("a.*.c", "a.x.c"));
        assert!(!matches("a.*.c", "a.x.y.c"));
        assert!(matches("a.*", "a.x"));
        assert!(!matches("a.*", "a"));
        assert!(matches("a.>", "a.x"));
        assert!(matches("a.>", "a.x.y.z"));
        assert!(!matches("a.>", "a"));
        assert!(matches(">", "anything.at.all"));
        assert!(matches("*.b.>", "a.b.c"));
        assert!(!matches("*.b.>", "a.c.c"));
    }

    #[test]
    fn names_follow_nats_rules() {
        assert!(check_subject("roost.catalog.changed.ws_1").is_ok());
        for bad in ["", "a..b", ".a", "a.", "a b", "a.*", "a.>"] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
        assert!(check_pattern("roost.*.changed.>").is_ok());
        for bad in ["", "a..b", "a.>.b", "a\tb"] {
            assert!(check_pattern(bad).is_err(), "{bad:?}");
        }
    }
}
