//! W3C trace context (`traceparent`): the gateway continues the client's trace or starts one,
//! and forwards it with a new parent id so the user-service's lines share the `trace_id`.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

pub const HEADER: HeaderName = HeaderName::from_static("traceparent");

/// The trace this request belongs to; in the request extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    /// This hop's span id: the parent id of anything it calls.
    span_id: u64,
    sampled: bool,
}

impl TraceContext {
    /// Continues the incoming trace if the header is valid, else starts a new one.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let incoming = headers.get(HEADER).and_then(|v| v.to_str().ok()).and_then(parse);
        let span_id = nonzero();
        match incoming {
            Some((trace_id, sampled)) => Self {
                trace_id,
                span_id,
                sampled,
            },
            None => Self {
                trace_id: nonzero(),
                span_id,
                sampled: true,
            },
        }
    }

    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The header to send downstream: same trace, this hop as parent.
    pub fn traceparent(&self) -> HeaderValue {
        // Hex by hand into a stack buffer: `write!` with `{:032x}` costs more than the rest
        // of building the upstream request.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buffer = *b"00-00000000000000000000000000000000-0000000000000000-00";
        for (i, slot) in buffer[3..35].iter_mut().enumerate() {
            *slot = HEX[((self.trace_id >> (124 - 4 * i)) & 0xf) as usize];
        }
        for (i, slot) in buffer[36..52].iter_mut().enumerate() {
            *slot = HEX[((self.span_id >> (60 - 4 * i)) & 0xf) as usize];
        }
        buffer[54] = if self.sampled { b'1' } else { b'0' };
        HeaderValue::from_bytes(&buffer).expect("hex digits and dashes are a valid header value")
    }
}

/// `version-traceid-parentid-flags`; all-zero ids are invalid per the spec.
fn parse(value: &str) -> Option<(u128, bool)> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let parent_id = parts.next()?;
    let flags = parts.next()?;
    let lower_hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !lower_hex(version, 2)
        || version == "ff"
        || !lower_hex(trace_id, 32)
        || !lower_hex(parent_id, 16)
        || !lower_hex(flags, 2)
    {
        return None;
    }
    // Version 00 has exactly four fields; later versions may append more.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace = u128::from_str_radix(trace_id, 16).ok().filter(|t| *t != 0)?;
    u64::from_str_radix(parent_id, 16).ok().filter(|p| *p != 0)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace, flags & 1 == 1))
}

/// A random id that is not all zeros (the spec's "invalid" value).
fn nonzero<T>() -> T
where
    T: Default + PartialEq,
    rand::distr::StandardUniform: rand::distr::Distribution<T>,
{
    loop {
        let value = rand::random::<T>();
        if value != T::default() {
            return value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_str(value).expect("header"));
        headers
    }

    #[test]
    fn continues_a_valid_trace_with_a_new_parent() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::from_headers(&headers(incoming));
        assert_eq!(ctx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let outgoing = ctx.traceparent();
        let outgoing = outgoing.to_str().expect("ascii");
        assert!(outgoing.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(outgoing.ends_with("-01"));
        assert_ne!(outgoing, incoming);
    }

    #[test]
    fn starts_a_new_trace_for_invalid_headers() {
        for bad in [
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            let ctx = TraceContext::from_headers(&headers(bad));
            assert_ne!(ctx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
            assert_eq!(ctx.trace_id().len(), 32);
        }
    }
}
