//! The wire protocol: subject names, header names and the frames a call is made of. Everything a
//! client in another language would need to talk to a Roost service over NATS is defined here.
//!
//! A call is a request published on `<prefix>.<service>.<method>` (default prefix `roost.rpc`)
//! with a reply subject private to the call. Its payload is the prost-encoded request message; its
//! headers carry the deadline ([`HEADER_DEADLINE`]). Every message sent back to the reply subject
//! is a [`Frame`], told apart by headers only, so payloads stay raw bytes:
//!
//! | `Roost-Status`  | `Roost-Seq` | frame                                                      |
//! |-----------------|-------------|------------------------------------------------------------|
//! | `ok`            | absent      | [`Frame::Whole`]: the whole response in this one message   |
//! | absent          | `n`         | [`Frame::Chunk`]: part `n` of a multi-message answer       |
//! | `ok`            | `n`         | [`Frame::End`]: the answer had `n` chunks (`0..n`)         |
//! | an error code   | any         | [`Frame::Failed`]: the call failed; payload is the message |
//!
//! A response too large for one message goes as chunks `0..n` and an end frame `n`; a streamed
//! response (query results) sends its head message as chunk 0 and the body bytes as the following
//! chunks. A request too large for one message is announced with [`HEADER_UPLOAD`]; the replica
//! that takes it answers [`Frame::UploadTo`] with a subject of its own, and the client sends the
//! request there as chunks and an end frame.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use bytes::Bytes;
use roost_proto::{ErrorCode, ServiceError};
use thiserror::Error;

/// The subject prefix services are reached under unless configured otherwise.
pub const DEFAULT_SUBJECT_PREFIX: &str = "roost.rpc";

/// Request header: the call's deadline, in milliseconds since the Unix epoch. Servers refuse to
/// start a call whose deadline has passed and answer `Timeout`.
pub const HEADER_DEADLINE: &str = "Roost-Deadline";
/// Response header: `ok`, or the error code (`ERROR_CODE_NOT_FOUND`, ...) of a failed call.
pub const HEADER_STATUS: &str = "Roost-Status";
/// Frame header: the position of a frame in a multi-message request or response.
pub const HEADER_SEQ: &str = "Roost-Seq";
/// Request header: the request body follows in chunks; the value is its size in bytes.
pub const HEADER_UPLOAD: &str = "Roost-Upload";
/// Response header: the subject the client sends the chunks of an announced upload to.
pub const HEADER_UPLOAD_TO: &str = "Roost-Upload-To";
/// The value of [`HEADER_STATUS`] for success.
pub const STATUS_OK: &str = "ok";

/// Bytes of a NATS message kept free for headers when payloads are cut into frames.
pub const HEADER_ALLOWANCE: usize = 4 * 1024;

/// The subject a method of a service is served on, e.g. `roost.rpc.catalog.get_data_source`.
pub fn method_subject(prefix: &str, service: &str, method: &str) -> String {
    format!("{prefix}.{service}.{method}")
}

/// The queue group replicas of `service` share, so each call reaches exactly one of them.
pub fn queue_group(service: &str) -> String {
    format!("roost.{service}")
}

/// NATS's default `max_payload`, assumed while the server's is unknown (not connected yet).
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// The largest frame payload that fits a message on a server with `max_payload` (0: unknown).
pub fn frame_limit(max_payload: usize) -> usize {
    let max_payload = if max_payload == 0 {
        DEFAULT_MAX_PAYLOAD
    } else {
        max_payload
    };
    max_payload.saturating_sub(HEADER_ALLOWANCE).max(1)
}

/// The value of [`HEADER_DEADLINE`] for `deadline`.
pub fn encode_deadline(deadline: SystemTime) -> String {
    let millis = deadline
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis();
    millis.to_string()
}

/// Reads a [`HEADER_DEADLINE`] value; `None` when it is not a number.
pub fn decode_deadline(value: &str) -> Option<SystemTime> {
    let millis: u64 = value.trim().parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(millis))
}

/// The value of [`HEADER_STATUS`] for an error code.
pub fn encode_status(code: ErrorCode) -> &'static str {
    code.as_str_name()
}

/// Reads an error code from a [`HEADER_STATUS`] value that is not [`STATUS_OK`].
pub fn decode_status(value: &str) -> Option<ErrorCode> {
    ErrorCode::from_str_name(value.trim())
}

/// A message that does not follow this protocol.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// A header that must be a number is not.
    #[error("header {name} is not a number: {value:?}")]
    BadNumber {
        /// The header.
        name: &'static str,
        /// What it held.
        value: String,
    },
    /// The message has none of the headers that make it a frame.
    #[error("the message is not a frame of the Roost RPC protocol")]
    NotAFrame,
}

/// One message of a call's answer (or of an uploaded request); see the module docs for the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The whole response in one message.
    Whole(Bytes),
    /// Part `seq` of a multi-message request or response.
    Chunk {
        /// Position, from 0.
        seq: u64,
        /// The bytes of this part.
        data: Bytes,
    },
    /// The end of a multi-message request or response that had `seq` chunks.
    End {
        /// Position of this frame, which is the number of chunks before it.
        seq: u64,
    },
    /// The call failed; `seq` is set when the failure ends a multi-message answer.
    Failed {
        /// Position, when it follows chunks.
        seq: Option<u64>,
        /// The error the client returns, code preserved.
        error: ServiceError,
    },
    /// Send the chunks of the announced request to this subject.
    UploadTo(String),
}

impl Frame {
    /// The position of a frame that belongs to a sequence.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Frame::Chunk { seq, .. } | Frame::End { seq } => Some(*seq),
            Frame::Failed { seq, .. } => *seq,
            Frame::Whole(_) | Frame::UploadTo(_) => None,
        }
    }

    /// The headers and payload of the message that carries this frame.
    pub fn to_message(&self) -> (HeaderMap, Bytes) {
        let mut headers = HeaderMap::new();
        let payload = match self {
            Frame::Whole(data) => {
                headers.insert(HEADER_STATUS, STATUS_OK);
                data.clone()
            }
            Frame::Chunk { seq, data } => {
                headers.insert(HEADER_SEQ, seq.to_string());
                data.clone()
            }
            Frame::End { seq } => {
                headers.insert(HEADER_STATUS, STATUS_OK);
                headers.insert(HEADER_SEQ, seq.to_string());
                Bytes::new()
            }
            Frame::Failed { seq, error } => {
                headers.insert(HEADER_STATUS, encode_status(error.code));
                if let Some(seq) = seq {
                    headers.insert(HEADER_SEQ, seq.to_string());
                }
                Bytes::from(error.message.clone().into_bytes())
            }
            Frame::UploadTo(subject) => {
                headers.insert(HEADER_UPLOAD_TO, subject.as_str());
                Bytes::new()
            }
        };
        (headers, payload)
    }

    /// Reads the frame a message carries.
    pub fn from_message(headers: Option<&HeaderMap>, payload: Bytes) -> Result<Frame, WireError> {
        let header = |name: &'static str| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
        if let Some(subject) = header(HEADER_UPLOAD_TO) {
            return Ok(Frame::UploadTo(subject.to_string()));
        }
        let seq = match header(HEADER_SEQ) {
            Some(value) => Some(
                value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| WireError::BadNumber {
                        name: HEADER_SEQ,
                        value: value.to_string(),
                    })?,
            ),
            None => None,
        };
        match (header(HEADER_STATUS), seq) {
            (Some(STATUS_OK), None) => Ok(Frame::Whole(payload)),
            (Some(STATUS_OK), Some(seq)) => Ok(Frame::End { seq }),
            (Some(status), seq) => {
                // An unknown code (a newer peer) still fails the call, as Internal, with its text.
                let code = decode_status(status).unwrap_or(ErrorCode::Internal);
                let message = String::from_utf8_lossy(&payload).into_owned();
                Ok(Frame::Failed {
                    seq,
                    error: ServiceError::new(code, message),
                })
            }
            (None, Some(seq)) => Ok(Frame::Chunk { seq, data: payload }),
            (None, None) => Err(WireError::NotAFrame),
        }
    }
}

/// Cuts `data` into chunk frames of at most `limit` bytes numbered from `first_seq`, without
/// copying. Empty data gives no chunk.
pub fn chunk_frames(data: Bytes, limit: usize, first_seq: u64) -> Vec<Frame> {
    let limit = limit.max(1);
    let mut frames = Vec::with_capacity(data.len().div_ceil(limit));
    let mut offset = 0;
    let mut seq = first_seq;
    while offset < data.len() {
        let end = (offset + limit).min(data.len());
        frames.push(Frame::Chunk {
            seq,
            data: data.slice(offset..end),
        });
        offset = end;
        seq += 1;
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: Frame) -> Frame {
        let (headers, payload) = frame.to_message();
        Frame::from_message(Some(&headers), payload).expect("a frame")
    }

    #[test]
    fn subjects_and_groups_use_snake_case_names() {
        assert_eq!(
            method_subject(DEFAULT_SUBJECT_PREFIX, "catalog", "get_data_source"),
            "roost.rpc.catalog.get_data_source"
        );
        assert_eq!(
            method_subject("roost.test.x1.rpc", "pipe_catalog", "create_pipe"),
            "roost.test.x1.rpc.pipe_catalog.create_pipe"
        );
        assert_eq!(queue_group("catalog"), "roost.catalog");
    }

    #[test]
    fn every_frame_round_trips_through_headers() {
        let frames = [
            Frame::Whole(Bytes::from_static(b"\x0a\x03abc")),
            Frame::Whole(Bytes::new()),
            Frame::Chunk {
                seq: 7,
                data: Bytes::from_static(b"part"),
            },
            Frame::End { seq: 8 },
            Frame::Failed {
                seq: None,
                error: ServiceError::not_found("Data Source 'x' not found"),
            },
            Frame::Failed {
                seq: Some(3),
                error: ServiceError::new(ErrorCode::Timeout, "too slow"),
            },
            Frame::UploadTo("_INBOX.abc.upload".to_string()),
        ];
        for frame in frames {
            assert_eq!(round_trip(frame.clone()), frame);
        }
    }

    #[test]
    fn every_error_code_travels_by_name() {
        for value in 0..=11 {
            let code = ErrorCode::try_from(value).expect("a code");
            let header = encode_status(code);
            assert!(header.starts_with("ERROR_CODE_"), "{header}");
            assert_eq!(decode_status(header), Some(code));
            let frame = round_trip(Frame::Failed {
                seq: None,
                error: ServiceError::new(code, "message"),
            });
            assert_eq!(
                frame,
                Frame::Failed {
                    seq: None,
                    error: ServiceError::new(code, "message")
                }
            );
        }
    }

    #[test]
    fn unknown_status_is_an_internal_failure_with_the_text() {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_STATUS, "ERROR_CODE_FROM_THE_FUTURE");
        let frame = Frame::from_message(Some(&headers), Bytes::from_static(b"why")).expect("frame");
        assert_eq!(
            frame,
            Frame::Failed {
                seq: None,
                error: ServiceError::internal("why")
            }
        );
    }

    #[test]
    fn messages_without_protocol_headers_are_refused() {
        assert_eq!(
            Frame::from_message(None, Bytes::from_static(b"x")),
            Err(WireError::NotAFrame)
        );
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_SEQ, "minus one");
        assert!(matches!(
            Frame::from_message(Some(&headers), Bytes::new()),
            Err(WireError::BadNumber { .. })
        ));
    }

    #[test]
    fn deadlines_are_unix_milliseconds() {
        let deadline = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(encode_deadline(deadline), "1700000000123");
        assert_eq!(decode_deadline("1700000000123"), Some(deadline));
        assert_eq!(decode_deadline("soon"), None);
    }

    #[test]
    fn chunking_covers_the_data_in_order() {
        let data = Bytes::from((0..=255u8).cycle().take(10_000).collect::<Vec<u8>>());
        let frames = chunk_frames(data.clone(), 3_000, 1);
        assert_eq!(frames.len(), 4);
        let mut joined = Vec::new();
        for (index, frame) in frames.iter().enumerate() {
            match frame {
                Frame::Chunk { seq, data } => {
                    assert_eq!(*seq, index as u64 + 1);
                    assert!(data.len() <= 3_000);
                    joined.extend_from_slice(data);
                }
                other => panic!("not a chunk: {other:?}"),
            }
        }
        assert_eq!(joined, data);
        assert!(chunk_frames(Bytes::new(), 10, 0).is_empty());
        assert_eq!(frame_limit(1024 * 1024), 1024 * 1024 - HEADER_ALLOWANCE);
        assert_eq!(frame_limit(0), DEFAULT_MAX_PAYLOAD - HEADER_ALLOWANCE);
    }
}
