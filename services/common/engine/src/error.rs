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
    /// The engine library or server cannot be reached or loaded.
    #[error("{0}")]
    Unavailable(String),
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

    /// Classifies the error by ClickHouse's code: the one place that decides what is retried.
    pub fn class(&self) -> ErrorClass {
        match self {
            EngineError::Unavailable(_) => ErrorClass::Transient,
            EngineError::Invalid(_) => ErrorClass::BadRequest,
            EngineError::Server { code: None, .. } => ErrorClass::Internal,
            EngineError::Server {
                code: Some(code), ..
            } => classify_code(*code),
        }
    }

    /// The message without ClickHouse's stack trace and version suffix, fit to show a user.
    pub fn user_message(&self) -> String {
        let text = self.to_string();
        let text = text.trim();
        let text = text.split(". Stack trace:").next().unwrap_or(text);
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
        // TABLE_ALREADY_EXISTS, DATABASE_ALREADY_EXISTS
        57 | 82 => ErrorClass::Conflict,
        // TIMEOUT_EXCEEDED, TOO_MANY_SIMULTANEOUS_QUERIES, MEMORY_LIMIT_EXCEEDED, NETWORK_ERROR,
        // SOCKET_TIMEOUT, TABLE_IS_READ_ONLY, ABORTED, TOO_MANY_PARTS
        159 | 202 | 241 | 210 | 209 | 242 | 236 | 252 => ErrorClass::Transient,
        // LOGICAL_ERROR and the like
        49 | 1001 => ErrorClass::Internal,
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
}
