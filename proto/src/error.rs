use crate::common::v1 as common;

/// The error kinds every service maps its own errors to. HTTP and gRPC status come from here only.
pub use common::ErrorCode;

impl ErrorCode {
    /// The HTTP status Tinybird answers with for this kind of error.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized | ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Timeout => 408,
            ErrorCode::Unavailable => 503,
            ErrorCode::Unsupported => 501,
            ErrorCode::Internal | ErrorCode::Unspecified => 500,
        }
    }

    /// The gRPC status code (as its number, so this crate needs no gRPC library).
    pub fn grpc_code(self) -> i32 {
        match self {
            ErrorCode::BadRequest => 3,       // INVALID_ARGUMENT
            ErrorCode::Unauthorized => 16,    // UNAUTHENTICATED
            ErrorCode::Forbidden => 7,        // PERMISSION_DENIED
            ErrorCode::NotFound => 5,         // NOT_FOUND
            ErrorCode::Conflict => 6,         // ALREADY_EXISTS
            ErrorCode::PayloadTooLarge => 11, // OUT_OF_RANGE
            ErrorCode::TooManyRequests => 8,  // RESOURCE_EXHAUSTED
            ErrorCode::Timeout => 4,          // DEADLINE_EXCEEDED
            ErrorCode::Unavailable => 14,     // UNAVAILABLE
            ErrorCode::Unsupported => 12,     // UNIMPLEMENTED
            ErrorCode::Internal | ErrorCode::Unspecified => 13,
        }
    }
}

/// An error as services return it: a code and a message that is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    /// What kind of error.
    pub code: ErrorCode,
    /// Shown to the user as is: never internal details.
    pub message: String,
}

impl ServiceError {
    /// An error of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError {
            code,
            message: message.into(),
        }
    }
    /// 400: the request is invalid.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
    /// 404: the resource does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    /// 409: the resource already exists or is in use.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }
    /// 403: the token may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    /// 500: something broke; the details belong in the log, not in `message`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
    /// The transport form.
    pub fn to_status(&self) -> common::Status {
        common::Status {
            code: self.code as i32,
            message: self.message.clone(),
        }
    }
}

impl From<common::Status> for ServiceError {
    fn from(status: common::Status) -> Self {
        let code = ErrorCode::try_from(status.code).unwrap_or(ErrorCode::Internal);
        ServiceError {
            code,
            message: status.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_tinybird() {
        assert_eq!(ErrorCode::Forbidden.http_status(), 403);
        assert_eq!(ErrorCode::Unauthorized.http_status(), 403);
        assert_eq!(ErrorCode::PayloadTooLarge.http_status(), 413);
        assert_eq!(ErrorCode::NotFound.grpc_code(), 5);
    }

    #[test]
    fn status_round_trips() {
        let error = ServiceError::conflict("exists");
        assert_eq!(ServiceError::from(error.to_status()), error);
    }
}
