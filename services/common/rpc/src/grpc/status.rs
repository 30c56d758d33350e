//! [`ServiceError`] ⇄ [`tonic::Status`], without losing the [`ErrorCode`]: the gRPC code comes
//! from [`ErrorCode::grpc_code`] (for generic gRPC clients), the exact code rides along in the
//! `roost-error-code` metadata.

use roost_proto::{ErrorCode, ServiceError};
use tonic::Code;
use tonic::metadata::{MetadataMap, MetadataValue};

/// The metadata key carrying the [`ErrorCode`]'s name (`ERROR_CODE_NOT_FOUND`, ...).
pub const ERROR_CODE_METADATA: &str = "roost-error-code";

/// The status a server answers with for `error`.
pub fn to_status(error: ServiceError) -> tonic::Status {
    let mut metadata = MetadataMap::new();
    metadata.insert(
        ERROR_CODE_METADATA,
        MetadataValue::from_static(error.code.as_str_name()),
    );
    tonic::Status::with_metadata(
        Code::from_i32(error.code.grpc_code()),
        error.message,
        metadata,
    )
}

/// The error a client returns for `status`: the Roost code when the metadata carries one, else
/// one read from the gRPC code (a proxy, a server that is not Roost, the transport itself).
pub fn from_status(status: tonic::Status) -> ServiceError {
    let carried = status
        .metadata()
        .get(ERROR_CODE_METADATA)
        .and_then(|value| value.to_str().ok())
        .and_then(ErrorCode::from_str_name);
    let code = carried.unwrap_or_else(|| code_of(&status));
    ServiceError::new(code, status.message().to_string())
}

/// An [`ErrorCode`] for a status that carries none.
fn code_of(status: &tonic::Status) -> ErrorCode {
    match status.code() {
        Code::InvalidArgument | Code::FailedPrecondition => ErrorCode::BadRequest,
        Code::Unauthenticated => ErrorCode::Unauthorized,
        Code::PermissionDenied => ErrorCode::Forbidden,
        Code::NotFound => ErrorCode::NotFound,
        Code::AlreadyExists | Code::Aborted => ErrorCode::Conflict,
        Code::OutOfRange => ErrorCode::PayloadTooLarge,
        Code::ResourceExhausted => ErrorCode::TooManyRequests,
        Code::DeadlineExceeded => ErrorCode::Timeout,
        // tonic's own deadline (the `grpc-timeout` a side enforces) ends a call as CANCELLED.
        Code::Cancelled if status.message().contains("Timeout expired") => ErrorCode::Timeout,
        Code::Unavailable | Code::Cancelled => ErrorCode::Unavailable,
        Code::Unimplemented => ErrorCode::Unsupported,
        Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => ErrorCode::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY_CODE: [ErrorCode; 12] = [
        ErrorCode::Unspecified,
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::TooManyRequests,
        ErrorCode::Timeout,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::Unsupported,
    ];

    #[test]
    fn every_code_survives_the_round_trip() {
        for code in EVERY_CODE {
            let error = ServiceError::new(code, format!("{code:?} happened"));
            let status = to_status(error.clone());
            assert_eq!(status.code() as i32, code.grpc_code(), "{code:?}");
            assert_eq!(from_status(status), error);
        }
    }

    #[test]
    fn a_status_without_the_metadata_is_read_from_its_grpc_code() {
        let read = |status: tonic::Status| from_status(status).code;
        assert_eq!(read(tonic::Status::not_found("x")), ErrorCode::NotFound);
        assert_eq!(
            read(tonic::Status::unavailable("tcp connect error")),
            ErrorCode::Unavailable
        );
        assert_eq!(
            read(tonic::Status::deadline_exceeded("late")),
            ErrorCode::Timeout
        );
        assert_eq!(
            read(tonic::Status::cancelled("Timeout expired")),
            ErrorCode::Timeout
        );
        assert_eq!(read(tonic::Status::unknown("?")), ErrorCode::Internal);
    }
}
