//! The properties the fuzz targets check, shared by the libFuzzer and AFL++ entry points.
//! A violated property panics, which both fuzzers report as a crash.

use cti_server::sip::message::{Frame, Response, SipMessage, frame};

/// `parse` never panics; whatever it accepts prints to bytes that parse back to the same
/// message, print is a fixed point, and the printed message frames exactly on a stream.
pub fn check_message(data: &[u8]) {
    let m = match SipMessage::parse(data) {
        Ok(m) => m,
        Err(e) => {
            // The 400 to a refused request is built from what was readable: must not panic.
            if let Some(raw) = &e.raw
                && let Some(resp) = Response::for_raw_request(raw, 400, "Bad Request")
            {
                let _ = resp.to_bytes();
            }
            return;
        }
    };
    let printed = m.to_bytes();
    let again = SipMessage::parse(&printed)
        .unwrap_or_else(|e| panic!("printed message does not parse: {e:?}"));
    assert_eq!(again, m, "parse(print(m)) != m");
    assert_eq!(again.to_bytes(), printed, "print is not a fixed point");
    assert_eq!(frame(&printed), Ok(Frame::Message(printed.len())));
    assert_eq!(SipMessage::parse_framed(&printed).ok().as_ref(), Some(&m));
}

/// `frame` never panics and never claims bytes past the buffer; walking a stream with it
/// always makes progress, and every framed message goes through `check_message`'s contract.
pub fn check_frame(data: &[u8]) {
    let mut pos = 0;
    while pos < data.len() {
        let n = match frame(&data[pos..]) {
            Ok(Frame::Message(n)) => {
                assert!(n > 0 && pos + n <= data.len(), "Message({n}) past the buffer");
                if let Ok(m) = SipMessage::parse_framed(&data[pos..pos + n]) {
                    let printed = m.to_bytes();
                    assert_eq!(SipMessage::parse_framed(&printed).ok().as_ref(), Some(&m));
                }
                n
            }
            Ok(Frame::Ping(n) | Frame::Skip(n)) => {
                assert!(n > 0 && pos + n <= data.len(), "Ping/Skip({n}) past the buffer");
                n
            }
            Ok(Frame::Incomplete) | Err(_) => break,
        };
        pos += n;
    }
}
