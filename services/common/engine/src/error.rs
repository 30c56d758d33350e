use thiserror::Error;

/// How a caller should treat an engine error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The statement or the data is wrong: never retry, report to the user.
    BadRequest,
    /// A table, column or database does not exist.
    NotFound,
    /// Something already exists.
    Conflict,
    /// The engine could not run it now (resources, timeouts, network): may be retried.
    Transient,
    /// Anything else.
    Internal,
}

/// Errors from an engine.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The engine library or server cannot be reached or loaded: the statement did not start
    /// (for a server: no connection could be made, so no byte of the request was sent).
    #[error("{0}")]
    Unavailable(String),
    /// The request may have reached the server but its answer was lost (connection reset, timed
    /// out): whether the statement ran is unknown.
    #[error("{0}")]
    Network(String),
    /// ClickHouse refused or failed the statement.
    #[error("{message}")]
    Server {
        /// ClickHouse's numeric error code, when the message carried one.
        code: Option<u32>,
        /// ClickHouse's message.
        message: String,
    },
    /// Misuse of the API (e.g. a NUL byte in a SQL string).
    #[error("{0}")]
    Invalid(String),
    /// This engine does not offer the operation.
    #[error("not supported by this engine: {0}")]
    Unsupported(&'static str),
}

impl EngineError {
    /// Builds a server error from ClickHouse's message, reading the `Code: N.` prefix it starts with.
    pub fn from_server_message(message: impl Into<String>) -> Self {
        let message = message.into();
        EngineError::Server {
            code: parse_code(&message),
            message,
        }
    }

    /// ClickHouse's error code, if any.
    pub fn code(&self) -> Option<u32> {
        match self {
            EngineError::Server { code, .. } => *code,
            _ => None,
        }
    }

    /// Classifies the error by ClickHouse's code; with [`Self::may_retry`], the one place that
    /// decides what is retried.
    pub fn class(&self) -> ErrorClass {
        match self {
            EngineError::Unavailable(_) | EngineError::Network(_) => ErrorClass::Transient,
            EngineError::Invalid(_) => ErrorClass::BadRequest,
            EngineError::Unsupported(_) => ErrorClass::Internal,
            EngineError::Server { code: None, .. } => ErrorClass::Internal,
            EngineError::Server {
                code: Some(code), ..
            } => classify_code(*code),
        }
    }

    /// Whether sending the same statement again may succeed and do no harm. Only transient
    /// failures are worth repeating, and a statement that may already have run is repeated only
    /// when running it twice is harmless (`idempotent`: a read, `CREATE ... IF NOT EXISTS`, an
    /// insert the server deduplicates). Failures that prove the statement never started may always
    /// be repeated. Bad SQL or data is never repeated.
    pub fn may_retry(&self, idempotent: bool) -> bool {
        if self.never_started() {
            return true;
        }
        // TIMEOUT_EXCEEDED is the statement's own time limit (max_execution_time or the
        // distributed DDL timeout): transient for the caller, but running it again only spends
        // the same time again, and a timed-out ON CLUSTER DDL may still finish on its own.
        // A query over its own memory limit ("Memory limit (for query) exceeded") fails the
        // same way every time; only the server's or the user's total limit frees up.
        let over_own_memory_limit =
            self.code() == Some(241) && self.to_string().contains("(for query)");
        idempotent
            && self.class() == ErrorClass::Transient
            && self.code() != Some(159)
            && !over_own_memory_limit
    }

    /// Whether the failure proves the statement did not start: no connection could be made, or
    /// the server refused it at admission (TOO_MANY_SIMULTANEOUS_QUERIES).
    fn never_started(&self) -> bool {
        matches!(self, EngineError::Unavailable(_)) || self.code() == Some(202)
    }

    /// The message without ClickHouse's stack trace and version suffix, fit to show a user.
    pub fn user_message(&self) -> String {
        let text = self.to_string();
        let text = text.trim();
        let text = text.split(". Stack trace:").next().unwrap_or(text);
        // Servers before 20.x end messages with ", e.what() = DB::Exception".
        let text = text.split(", e.what() = ").next().unwrap_or(text);
        let text = match text.find("DB::Exception: ") {
            Some(at) => &text[at + "DB::Exception: ".len()..],
            None => text,
        };
        let text = match text.rfind(" (version ") {
            Some(at) => &text[..at],
            None => text,
        };
        text.trim_end().to_string()
    }
}

fn parse_code(message: &str) -> Option<u32> {
    let start = message.find("Code: ")? + "Code: ".len();
    let digits: String = message[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn classify_code(code: u32) -> ErrorClass {
    match code {
        // UNKNOWN_TABLE, UNKNOWN_DATABASE
        60 | 81 => ErrorClass::NotFound,
        // TABLE_ALREADY_EXISTS, DATABASE_ALREADY_EXISTS, REPLICA_IS_ALREADY_EXIST (a replicated
        // table's ZooKeeper path is taken)
        57 | 82 | 253 => ErrorClass::Conflict,
        // The server or the cluster cannot run it now; the same statement may succeed later:
        // TIMEOUT_EXCEEDED, CANNOT_ALLOCATE_MEMORY, DNS_ERROR, TOO_MANY_SIMULTANEOUS_QUERIES,
        // NO_FREE_CONNECTION, SOCKET_TIMEOUT, NETWORK_ERROR, NO_ZOOKEEPER, ABORTED,
        // MEMORY_LIMIT_EXCEEDED, TABLE_IS_READ_ONLY (a replica lost its ZooKeeper session),
        // TOO_MANY_PARTS, ALL_CONNECTION_TRIES_FAILED, ALL_REPLICAS_ARE_STALE,
        // TOO_FEW_LIVE_REPLICAS, UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE, UNKNOWN_STATUS_OF_INSERT,
        // CANNOT_SCHEDULE_TASK, KEEPER_EXCEPTION (ZooKeeper session expired, connection loss),
        // QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING (an earlier try of an identified insert still runs)
        159 | 173 | 198 | 202 | 203 | 209 | 210 | 216 | 225 | 236 | 241 | 242 | 252 | 279 | 285
        | 286 | 319 | 439 | 999 => ErrorClass::Transient,
        // Our own configuration is wrong, not the caller's statement: UNKNOWN_USER,
        // WRONG_PASSWORD, REQUIRED_PASSWORD, IP_ADDRESS_NOT_ALLOWED, ACCESS_DENIED,
        // AUTHENTICATION_FAILED; LOGICAL_ERROR, POCO_EXCEPTION, STD_EXCEPTION, UNKNOWN_EXCEPTION.
        192..=195 | 497 | 516 | 49 | 1000..=1002 => ErrorClass::Internal,
        // Everything else is a statement or data the engine refused: syntax, types, unknown
        // identifiers, parse errors of input formats, illegal arguments.
        _ => ErrorClass::BadRequest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_code_and_classifies() {
        let error = EngineError::from_server_message(
            "Code: 60. DB::Exception: Unknown table expression identifier 'x' in scope SELECT * FROM x. (UNKNOWN_TABLE) (version 26.7.3.1)",
        );
        assert_eq!(error.code(), Some(60));
        assert_eq!(error.class(), ErrorClass::NotFound);
        assert_eq!(
            error.user_message(),
            "Unknown table expression identifier 'x' in scope SELECT * FROM x. (UNKNOWN_TABLE)"
        );
    }

    #[test]
    fn syntax_errors_are_bad_requests_and_timeouts_transient() {
        assert_eq!(
            EngineError::from_server_message("Code: 62. DB::Exception: Syntax error").class(),
            ErrorClass::BadRequest
        );
        assert_eq!(
            EngineError::from_server_message("Code: 159. DB::Exception: Timeout").class(),
            ErrorClass::Transient
        );
        assert_eq!(
            EngineError::from_server_message("no code here").class(),
            ErrorClass::Internal
        );
    }

    #[test]
    fn every_code_family_has_its_class() {
        let class = |code: u32| {
            EngineError::Server {
                code: Some(code),
                message: String::new(),
            }
            .class()
        };
        for code in [60, 81] {
            assert_eq!(class(code), ErrorClass::NotFound, "{code}");
        }
        for code in [57, 82, 253] {
            assert_eq!(class(code), ErrorClass::Conflict, "{code}");
        }
        // Timeouts, too many queries, memory, network, read-only replica, ZooKeeper.
        for code in [159, 202, 209, 210, 241, 242, 279, 999] {
            assert_eq!(class(code), ErrorClass::Transient, "{code}");
        }
        // Credentials and server bugs are ours, not the caller's.
        for code in [49, 192, 193, 516, 1000, 1001] {
            assert_eq!(class(code), ErrorClass::Internal, "{code}");
        }
        // Syntax, unknown identifier, bad input data, type mismatch, unknown format, unknown setting.
        for code in [62, 47, 27, 53, 73, 115, 117] {
            assert_eq!(class(code), ErrorClass::BadRequest, "{code}");
        }
    }

    #[test]
    fn old_servers_messages_are_read_too() {
        let error = EngineError::from_server_message(
            "Code: 81, e.displayText() = DB::Exception: Database nope doesn't exist, e.what() = DB::Exception",
        );
        assert_eq!(error.code(), Some(81));
        assert_eq!(error.class(), ErrorClass::NotFound);
        assert_eq!(error.user_message(), "Database nope doesn't exist");
    }

    #[test]
    fn only_transient_failures_are_retried_and_only_harmless_ones_after_they_may_have_run() {
        let server = |code: u32| EngineError::Server {
            code: Some(code),
            message: String::new(),
        };
        let unreachable = EngineError::Unavailable("connection refused".into());
        let lost = EngineError::Network("connection reset".into());
        // Never started: always safe.
        assert!(unreachable.may_retry(false) && unreachable.may_retry(true));
        assert!(server(202).may_retry(false));
        // May have run: only when running twice is harmless.
        let total_memory = EngineError::from_server_message(
            "Code: 241, e.displayText() = DB::Exception: Memory limit (total) exceeded",
        );
        for error in [lost, total_memory, server(242), server(999), server(210)] {
            assert!(error.may_retry(true), "{error:?}");
            assert!(!error.may_retry(false), "{error:?}");
        }
        // Never: bad statements, missing tables, our own faults, the statement's own limits.
        for error in [
            EngineError::from_server_message(
                "Code: 241, e.displayText() = DB::Exception: Memory limit (for query) exceeded: would use 2.00 MiB",
            ),
            server(62),
            server(60),
            server(57),
            server(193),
            server(159),
            EngineError::Invalid("NUL byte".into()),
            EngineError::from_server_message("no code"),
        ] {
            assert!(!error.may_retry(true), "{error:?}");
        }
    }
}
