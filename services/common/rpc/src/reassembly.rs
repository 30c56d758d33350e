//! Putting the frames of one answer (or one uploaded request) back in order. NATS delivers the
//! messages of one publisher to one subscriber in order, but a frame can still be lost (a slow
//! consumer's buffer overflows, a replica dies mid-answer); frames are therefore numbered, held
//! back when they arrive early, and a gap that does not close in time fails the call instead of
//! silently corrupting the answer.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_nats::{Message, StatusCode};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::wire::Frame;

/// Frames that arrived before the one expected next, by position.
#[derive(Debug)]
pub(crate) struct Reassembler {
    next_seq: u64,
    early: BTreeMap<u64, Frame>,
    early_bytes: usize,
    max_early_bytes: usize,
}

/// Why a frame was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReassemblyError {
    /// Too many bytes are waiting for a frame that has not come.
    TooManyEarlyBytes {
        /// The frame everything waits for.
        waiting_for: u64,
    },
}

impl Reassembler {
    /// An empty reassembler that holds at most `max_early_bytes` of out-of-order frames.
    pub(crate) fn new(max_early_bytes: usize) -> Self {
        Reassembler {
            next_seq: 0,
            early: BTreeMap::new(),
            early_bytes: 0,
            max_early_bytes,
        }
    }

    /// Nothing sequenced has been seen yet, so a frame without a position may start the answer.
    pub(crate) fn at_start(&self) -> bool {
        self.next_seq == 0 && self.early.is_empty()
    }

    /// The position of the frame expected next.
    pub(crate) fn expected(&self) -> u64 {
        self.next_seq
    }

    /// Whether later frames are waiting for the expected one.
    pub(crate) fn has_early_frames(&self) -> bool {
        !self.early.is_empty()
    }

    /// Takes a frame with a position. Frames already passed and duplicates are dropped.
    pub(crate) fn push(&mut self, seq: u64, frame: Frame) -> Result<(), ReassemblyError> {
        if seq < self.next_seq || self.early.contains_key(&seq) {
            return Ok(());
        }
        let size = frame_size(&frame);
        if seq != self.next_seq && self.early_bytes + size > self.max_early_bytes {
            return Err(ReassemblyError::TooManyEarlyBytes {
                waiting_for: self.next_seq,
            });
        }
        self.early_bytes += size;
        self.early.insert(seq, frame);
        Ok(())
    }

    /// The expected frame, when it has arrived.
    pub(crate) fn pop(&mut self) -> Option<Frame> {
        let frame = self.early.remove(&self.next_seq)?;
        self.early_bytes -= frame_size(&frame);
        self.next_seq += 1;
        Some(frame)
    }
}

fn frame_size(frame: &Frame) -> usize {
    match frame {
        Frame::Chunk { data, .. } | Frame::Whole(data) => data.len(),
        Frame::Failed { error, .. } => error.message.len(),
        Frame::End { .. } => 0,
        Frame::UploadTo(subject) => subject.len(),
    }
}

/// Why no frame came out of a [`FrameReceiver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReceiveError {
    /// The deadline passed while waiting for frame `waiting_for`.
    TimedOut {
        /// The position expected next.
        waiting_for: u64,
        /// Whether later frames had arrived (a frame went missing rather than a slow answer).
        gap: bool,
    },
    /// NATS answered that nobody subscribes to the request subject.
    NoResponders,
    /// The messages stopped (the connection or the call's subscription closed).
    Closed,
    /// A message broke the protocol.
    Protocol(String),
}

/// The messages of one call (or one upload), read as frames in order.
pub(crate) struct FrameReceiver<S> {
    messages: S,
    reassembler: Reassembler,
}

impl<S: Stream<Item = Message> + Unpin> FrameReceiver<S> {
    /// Reads frames from `messages`, holding at most `max_early_bytes` out of order.
    pub(crate) fn new(messages: S, max_early_bytes: usize) -> Self {
        FrameReceiver {
            messages,
            reassembler: Reassembler::new(max_early_bytes),
        }
    }

    /// The next frame in order, waiting until `deadline`.
    pub(crate) async fn next(&mut self, deadline: Instant) -> Result<Frame, ReceiveError> {
        loop {
            if let Some(frame) = self.reassembler.pop() {
                return Ok(frame);
            }
            let message = match tokio::time::timeout_at(deadline, self.messages.next()).await {
                Ok(Some(message)) => message,
                Ok(None) => return Err(ReceiveError::Closed),
                Err(_) => {
                    return Err(ReceiveError::TimedOut {
                        waiting_for: self.reassembler.expected(),
                        gap: self.reassembler.has_early_frames(),
                    });
                }
            };
            if message.status == Some(StatusCode::NO_RESPONDERS) {
                return Err(ReceiveError::NoResponders);
            }
            let frame = Frame::from_message(message.headers.as_ref(), message.payload)
                .map_err(|error| ReceiveError::Protocol(error.to_string()))?;
            match frame.seq() {
                Some(seq) => self.reassembler.push(seq, frame).map_err(
                    |ReassemblyError::TooManyEarlyBytes { waiting_for }| {
                        ReceiveError::Protocol(format!(
                            "too much data arrived ahead of frame {waiting_for}"
                        ))
                    },
                )?,
                None if self.reassembler.at_start() => return Ok(frame),
                None => {
                    return Err(ReceiveError::Protocol(
                        "an unnumbered frame arrived in the middle of an answer".to_string(),
                    ));
                }
            }
        }
    }
}

/// An unbounded channel of messages as a [`Stream`].
pub(crate) struct ChannelMessages(pub(crate) mpsc::UnboundedReceiver<Message>);

impl Stream for ChannelMessages {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn chunk(seq: u64, data: &'static [u8]) -> Frame {
        Frame::Chunk {
            seq,
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn frames_come_out_in_order_whatever_order_they_arrive_in() {
        let mut reassembler = Reassembler::new(1024);
        assert!(reassembler.at_start());
        reassembler.push(2, chunk(2, b"c")).expect("held");
        reassembler.push(1, chunk(1, b"b")).expect("held");
        assert!(!reassembler.at_start());
        assert_eq!(reassembler.pop(), None, "frame 0 has not come");
        reassembler.push(0, chunk(0, b"a")).expect("accepted");
        reassembler
            .push(3, Frame::End { seq: 3 })
            .expect("accepted");
        let order: Vec<Frame> = std::iter::from_fn(|| reassembler.pop()).collect();
        assert_eq!(
            order,
            vec![
                chunk(0, b"a"),
                chunk(1, b"b"),
                chunk(2, b"c"),
                Frame::End { seq: 3 }
            ]
        );
        assert_eq!(reassembler.expected(), 4);
    }

    #[test]
    fn duplicates_and_stale_frames_are_dropped() {
        let mut reassembler = Reassembler::new(1024);
        reassembler.push(0, chunk(0, b"a")).expect("accepted");
        assert_eq!(reassembler.pop(), Some(chunk(0, b"a")));
        reassembler.push(0, chunk(0, b"again")).expect("ignored");
        reassembler.push(2, chunk(2, b"c")).expect("held");
        reassembler
            .push(2, chunk(2, b"duplicate"))
            .expect("ignored");
        assert_eq!(reassembler.pop(), None);
        reassembler.push(1, chunk(1, b"b")).expect("accepted");
        assert_eq!(reassembler.pop(), Some(chunk(1, b"b")));
        assert_eq!(reassembler.pop(), Some(chunk(2, b"c")));
        assert_eq!(reassembler.pop(), None);
    }

    #[test]
    fn early_frames_are_bounded() {
        let mut reassembler = Reassembler::new(4);
        reassembler.push(1, chunk(1, b"abc")).expect("held");
        assert_eq!(
            reassembler.push(2, chunk(2, b"de")),
            Err(ReassemblyError::TooManyEarlyBytes { waiting_for: 0 })
        );
        // The frame everybody waits for is always taken.
        reassembler
            .push(0, chunk(0, b"a large first frame"))
            .expect("expected frame");
        assert_eq!(reassembler.pop(), Some(chunk(0, b"a large first frame")));
        assert_eq!(reassembler.pop(), Some(chunk(1, b"abc")));
    }
}
