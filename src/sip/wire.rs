//! First look at every datagram, before the SIP stack parses it.
//!
//! The stack's parser is lenient (it truncates a short body, ignores a bad
//! Content-Length, drops what it cannot parse without a word). A server must
//! instead answer a broken request with a status that says what is wrong
//! (RFC 3261 §8.2, §18.3; RFC 4475), so this module checks the framing and the
//! mandatory headers on the raw bytes and builds the stateless reply itself.
//! Pure: bytes in, verdict out; it is also the fuzz target.

use std::fmt::Write as _;

/// What to do with one received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Well formed: hand it to the stack.
    Pass,
    /// Broken request: send these bytes back to the source and drop it.
    Reply {
        status: u16,
        reason: String,
        bytes: Vec<u8>,
    },
    /// Not answerable (garbage, broken response, broken ACK): drop it.
    Drop(&'static str),
}

/// Methods the stack can carry. Anything else that is a valid token gets 501.
pub const KNOWN_METHODS: &[&str] = &[
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

/// Methods hotline implements; `Allow` lists them.
pub const ALLOWED_METHODS: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, REFER";

/// URI schemes we accept in a Request-URI.
const URI_SCHEMES: &[&str] = &["sip", "sips", "tel"];

const MAX_CSEQ: u64 = (1 << 31) - 1;

/// A header as it appeared on the wire (name canonicalised, value trimmed,
/// folded lines joined).
#[derive(Debug, Clone)]
struct RawHeader<'a> {
    name: &'static str,
    other: &'a str,
    value: String,
}

impl RawHeader<'_> {
    fn is(&self, name: &str) -> bool {
        if self.name.is_empty() {
            self.other.eq_ignore_ascii_case(name)
        } else {
            self.name == name
        }
    }
}

fn canonical_name(name: &str) -> &'static str {
    const NAMES: &[(&str, &str)] = &[
        ("via", "Via"),
        ("v", "Via"),
        ("from", "From"),
        ("f", "From"),
        ("to", "To"),
        ("t", "To"),
        ("call-id", "Call-ID"),
        ("i", "Call-ID"),
        ("cseq", "CSeq"),
        ("max-forwards", "Max-Forwards"),
        ("content-length", "Content-Length"),
        ("l", "Content-Length"),
        ("contact", "Contact"),
        ("m", "Contact"),
        ("content-type", "Content-Type"),
        ("c", "Content-Type"),
        ("expires", "Expires"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| *c)
        .unwrap_or("")
}

/// Headers of which a request carries at most one.
const SINGLETONS: &[&str] = &[
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
];

struct Parsed<'a> {
    start_line: &'a str,
    headers: Vec<RawHeader<'a>>,
    body_len: usize,
    /// True when the header block ended with CRLFCRLF.
    terminated: bool,
    /// A header line was not `name: value`.
    bad_line: bool,
    /// The header section holds control characters (RFC 3261 §25.1 allows none but HTAB).
    bad_char: bool,
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// Split the datagram into start line, headers and body. Lines may end in
/// CRLF or (leniently, for reading fields of a reply only) a bare LF.
fn split(datagram: &[u8]) -> Option<Parsed<'_>> {
    let text_end = find(datagram, b"\r\n\r\n");
    let (head, body_len, terminated) = match text_end {
        Some(i) => (&datagram[..i], datagram.len() - i - 4, true),
        None => (datagram, 0, false),
    };
    let head = std::str::from_utf8(head).ok()?;
    let bad_char = head.bytes().any(is_forbidden_control);
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next()?;
    let mut headers: Vec<RawHeader> = Vec::new();
    let mut bad_line = false;
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.value.push(' ');
                last.value.push_str(line.trim());
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            bad_line = true;
            continue;
        };
        let name = name.trim_end();
        if name.is_empty() || !name.chars().all(is_token_char) {
            bad_line = true;
            continue;
        }
        headers.push(RawHeader {
            name: canonical_name(name),
            other: name,
            value: value.trim().to_string(),
        });
    }
    Some(Parsed {
        start_line,
        headers,
        body_len,
        terminated,
        bad_line,
        bad_char,
    })
}

/// Control characters SIP headers may not carry (CR and LF frame lines; HTAB is whitespace).
fn is_forbidden_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t' && b != b'\r' && b != b'\n') || b == 0x7f
}

/// A datagram larger than we read (RFC 3261 §21.5.14: 513 Message Too Large),
/// judged on its first `head` bytes.
pub fn inspect_oversized(head: &[u8]) -> Verdict {
    let Some(p) = split(head) else {
        return Verdict::Drop("oversized and unreadable");
    };
    let method = p.start_line.split(' ').next().unwrap_or("");
    if p.start_line.starts_with("SIP/") || method.is_empty() {
        return Verdict::Drop("oversized response or garbage");
    }
    reply_or_drop(&p, method, 513, "Message Too Large")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Inspect one datagram received over UDP.
pub fn inspect_datagram(datagram: &[u8]) -> Verdict {
    if datagram.iter().all(u8::is_ascii_whitespace) {
        // CRLF keep-alives (RFC 5626): the stack answers them.
        return Verdict::Pass;
    }
    let Some(p) = split(datagram) else {
        return Verdict::Drop("unreadable message");
    };
    if p.start_line.starts_with("SIP/") {
        // A broken response cannot be answered; the stack drops what it cannot use.
        return if p.terminated {
            Verdict::Pass
        } else {
            Verdict::Drop("response without end of headers")
        };
    }
    let mut parts = p.start_line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return reply_or_drop(&p, "", 400, "Bad Request Line");
    };
    if method.is_empty() || !method.chars().all(is_token_char) {
        return reply_or_drop(&p, "", 400, "Bad Request Line");
    }
    if method == "ACK" {
        // Never answered; let the stack judge it if it is framed at all.
        return if p.terminated
            && !p.bad_line
            && !p.bad_char
            && check_headers(&p, method, true).is_ok()
        {
            Verdict::Pass
        } else {
            Verdict::Drop("malformed ACK")
        };
    }
    if !p.terminated {
        return reply_or_drop(&p, method, 400, "Missing End Of Headers");
    }
    if p.bad_line {
        return reply_or_drop(&p, method, 400, "Malformed Header Line");
    }
    if p.bad_char {
        return reply_or_drop(&p, method, 400, "Invalid Character In Header");
    }
    if let Err((status, reason)) = check_headers(&p, method, true) {
        return reply_or_drop(&p, method, status, reason);
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return reply_or_drop(&p, method, 505, "Version Not Supported");
    }
    match uri.split_once(':') {
        Some((scheme, rest)) if !rest.is_empty() && !scheme.is_empty() => {
            if !URI_SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
                return reply_or_drop(&p, method, 416, "Unsupported URI Scheme");
            }
        }
        _ => return reply_or_drop(&p, method, 400, "Bad Request-URI"),
    }
    if !KNOWN_METHODS.contains(&method) {
        return reply_or_drop(&p, method, 501, "Not Implemented");
    }
    // Last word: the stack must be able to read it too, or it would drop it silently.
    match rsipstack::sip::SipMessage::try_from(datagram) {
        Ok(rsipstack::sip::SipMessage::Request(req)) => {
            if rsipstack::transaction::key::TransactionKey::from_request(
                &req,
                rsipstack::transaction::key::TransactionRole::Server,
            )
            .is_err()
            {
                return reply_or_drop(&p, method, 400, "Bad Via, From or CSeq");
            }
            if req.uri.host_with_port.to_string().is_empty() {
                return reply_or_drop(&p, method, 400, "Bad Request-URI");
            }
            Verdict::Pass
        }
        Ok(_) => Verdict::Drop("start line disagrees with message kind"),
        Err(_) => reply_or_drop(&p, method, 400, "Unparseable Header"),
    }
}

/// Check mandatory headers, singletons, CSeq, Max-Forwards and Content-Length.
fn check_headers(p: &Parsed, method: &str, datagram: bool) -> Result<(), (u16, &'static str)> {
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if !p.headers.iter().any(|h| h.is(name)) {
            return Err((400, missing_reason(name)));
        }
    }
    for name in SINGLETONS {
        if p.headers.iter().filter(|h| h.is(name)).count() > 1 {
            return Err((400, duplicate_reason(name)));
        }
    }
    for h in &p.headers {
        if h.is("Via") && !h.value.to_ascii_uppercase().starts_with("SIP/2.0/") {
            return Err((400, "Bad Via"));
        }
    }
    let cseq = header(p, "CSeq").unwrap_or_default();
    let mut it = cseq.split_ascii_whitespace();
    let (Some(num), Some(cseq_method), None) = (it.next(), it.next(), it.next()) else {
        return Err((400, "Bad CSeq"));
    };
    match num.parse::<u64>() {
        Ok(n) if n <= MAX_CSEQ && num.chars().all(|c| c.is_ascii_digit()) => {}
        _ => return Err((400, "Bad CSeq")),
    }
    if cseq_method != method {
        return Err((400, "CSeq Method Mismatch"));
    }
    let from = header(p, "From").unwrap_or_default();
    if !has_tag(from) {
        return Err((400, "Missing From Tag"));
    }
    if header(p, "Call-ID").is_some_and(|v| v.is_empty() || v.contains(char::is_whitespace)) {
        return Err((400, "Bad Call-ID"));
    }
    if let Some(mf) = header(p, "Max-Forwards") {
        match mf.parse::<u32>() {
            Ok(0) => return Err((483, "Too Many Hops")),
            Ok(n) if n <= 255 => {}
            _ => return Err((400, "Bad Max-Forwards")),
        }
    }
    if let Some(cl) = header(p, "Content-Length") {
        match cl.parse::<usize>() {
            Ok(n) if cl.chars().all(|c| c.is_ascii_digit()) => {
                if datagram && n > p.body_len {
                    // RFC 3261 §18.3: the datagram ended before the body did.
                    return Err((400, "Content-Length Exceeds Body"));
                }
            }
            _ => return Err((400, "Bad Content-Length")),
        }
    }
    Ok(())
}

fn missing_reason(name: &str) -> &'static str {
    match name {
        "Via" => "Missing Via",
        "From" => "Missing From",
        "To" => "Missing To",
        "Call-ID" => "Missing Call-ID",
        _ => "Missing CSeq",
    }
}

fn duplicate_reason(name: &str) -> &'static str {
    match name {
        "From" => "Duplicate From",
        "To" => "Duplicate To",
        "Call-ID" => "Duplicate Call-ID",
        "CSeq" => "Duplicate CSeq",
        "Max-Forwards" => "Duplicate Max-Forwards",
        _ => "Duplicate Content-Length",
    }
}

fn header<'p>(p: &'p Parsed, name: &str) -> Option<&'p str> {
    p.headers
        .iter()
        .find(|h| h.is(name))
        .map(|h| h.value.as_str())
}

/// Whether a From/To value carries a `tag` parameter (outside the URI's `<>`).
fn has_tag(value: &str) -> bool {
    let params = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    params
        .split(';')
        .skip(1)
        .any(|p| p.trim().to_ascii_lowercase().starts_with("tag="))
}

/// Build a stateless error reply when enough of the request is readable to
/// address one (Via, From, To, Call-ID, CSeq); otherwise drop.
fn reply_or_drop(p: &Parsed, method: &str, status: u16, reason: &str) -> Verdict {
    if method == "ACK" {
        return Verdict::Drop("malformed ACK");
    }
    let vias: Vec<&RawHeader> = p.headers.iter().filter(|h| h.is("Via")).collect();
    let (Some(from), Some(to), Some(call_id), Some(cseq)) = (
        header(p, "From"),
        header(p, "To"),
        header(p, "Call-ID"),
        header(p, "CSeq"),
    ) else {
        return Verdict::Drop("too broken to answer");
    };
    if vias.is_empty() {
        return Verdict::Drop("no Via to answer to");
    }
    let echoed = vias
        .iter()
        .map(|v| v.value.as_str())
        .chain([from, to, call_id, cseq]);
    if echoed.clone().any(|v| v.bytes().any(is_forbidden_control)) {
        // Echoing control characters back would make our reply as broken as the request.
        return Verdict::Drop("control characters in the headers a reply must echo");
    }
    let mut out = String::with_capacity(512);
    let _ = write!(out, "SIP/2.0 {status} {reason}\r\n");
    for v in vias {
        let _ = write!(out, "Via: {}\r\n", v.value);
    }
    let _ = write!(out, "From: {from}\r\n");
    if has_tag(to) {
        let _ = write!(out, "To: {to}\r\n");
    } else {
        let _ = write!(out, "To: {to};tag={}\r\n", stateless_tag(call_id));
    }
    let _ = write!(out, "Call-ID: {call_id}\r\nCSeq: {cseq}\r\n");
    if status == 501 || status == 405 {
        let _ = write!(out, "Allow: {ALLOWED_METHODS}\r\n");
    }
    let _ = write!(
        out,
        "Warning: 399 hotline \"{}\"\r\nServer: {}\r\nContent-Length: 0\r\n\r\n",
        reason,
        crate::sip::USER_AGENT
    );
    Verdict::Reply {
        status,
        reason: reason.to_string(),
        bytes: out.into_bytes(),
    }
}

/// Whether bytes we built as a reply are a SIP message the stack reads back
/// (used by the fuzz target to check our own replies).
pub fn reply_is_parseable(bytes: &[u8]) -> bool {
    matches!(
        rsipstack::sip::SipMessage::try_from(bytes),
        Ok(rsipstack::sip::SipMessage::Response(_))
    )
}

/// A To tag derived from the Call-ID, so a retransmitted broken request gets
/// the same reply (no state is kept for it).
fn stateless_tag(call_id: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in call_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:x}", h & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(lines: &[&str], body: &str) -> Vec<u8> {
        let mut s = lines.join("\r\n");
        s.push_str("\r\n\r\n");
        s.push_str(body);
        s.into_bytes()
    }

    fn options(extra: &[&str]) -> Vec<&'static str> {
        let mut v = vec![
            "OPTIONS sip:hotline.local SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport",
            "Max-Forwards: 70",
            "From: <sip:probe@127.0.0.1>;tag=abc",
            "To: <sip:hotline.local>",
            "Call-ID: c1@127.0.0.1",
            "CSeq: 1 OPTIONS",
        ];
        for e in extra {
            v.push(Box::leak(e.to_string().into_boxed_str()));
        }
        v
    }

    fn status(v: &Verdict) -> Option<(u16, String)> {
        match v {
            Verdict::Reply { status, reason, .. } => Some((*status, reason.clone())),
            _ => None,
        }
    }

    #[test]
    fn well_formed_request_passes() {
        let mut l = options(&[]);
        l.push("Content-Length: 0");
        assert_eq!(inspect_datagram(&req(&l, "")), Verdict::Pass);
    }

    #[test]
    fn body_shorter_than_content_length_is_400() {
        let mut l = options(&[]);
        l.push("Content-Type: application/sdp");
        l.push("Content-Length: 150");
        let v = inspect_datagram(&req(&l, "v=0\r\n"));
        assert_eq!(
            status(&v),
            Some((400, "Content-Length Exceeds Body".into()))
        );
        let Verdict::Reply { bytes, .. } = v else {
            unreachable!()
        };
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with("SIP/2.0 400 Content-Length Exceeds Body\r\n"),
            "{text}"
        );
        assert!(text.contains("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n"));
        assert!(text.contains("CSeq: 1 OPTIONS\r\n"));
        assert!(text.contains("To: <sip:hotline.local>;tag="));
        // The reply itself must be a message the stack can read.
        assert!(rsipstack::sip::SipMessage::try_from(text.as_bytes()).is_ok());
    }

    #[test]
    fn body_longer_than_content_length_passes() {
        let mut l = options(&[]);
        l.push("Content-Length: 2");
        assert_eq!(inspect_datagram(&req(&l, "abcdef")), Verdict::Pass);
    }

    #[test]
    fn max_forwards_zero_is_483() {
        let l: Vec<_> = options(&[])
            .into_iter()
            .map(|h| {
                if h.starts_with("Max-Forwards") {
                    "Max-Forwards: 0"
                } else {
                    h
                }
            })
            .collect();
        assert_eq!(
            status(&inspect_datagram(&req(&l, ""))).map(|s| s.0),
            Some(483)
        );
    }

    #[test]
    fn unknown_method_is_501_with_allow() {
        let l: Vec<_> = options(&[])
            .into_iter()
            .map(|h| match h {
                "OPTIONS sip:hotline.local SIP/2.0" => "NEWMETHOD sip:hotline.local SIP/2.0",
                "CSeq: 1 OPTIONS" => "CSeq: 1 NEWMETHOD",
                h => h,
            })
            .collect();
        let v = inspect_datagram(&req(&l, ""));
        assert_eq!(status(&v).map(|s| s.0), Some(501));
        let Verdict::Reply { bytes, .. } = v else {
            unreachable!()
        };
        assert!(String::from_utf8(bytes).unwrap().contains("Allow: INVITE"));
    }

    #[test]
    fn torture_cases() {
        let cases: &[(&[&str], &str, Option<u16>)] = &[
            (&["CSeq: 1 INVITE"], "CSeq mismatch", Some(400)),
            (&["Content-Length: abc"], "bad content length", Some(400)),
            (
                &["Content-Length: -5"],
                "negative content length",
                Some(400),
            ),
            (
                &["Max-Forwards: 70", "Max-Forwards: 69"],
                "dup max-forwards",
                Some(400),
            ),
            (&["CSeq: 99999999999 OPTIONS"], "cseq too big", Some(400)),
        ];
        for (extra, what, want) in cases {
            let mut l: Vec<&str> = options(&[])
                .into_iter()
                .filter(|h| {
                    // Drop the base header that the case replaces.
                    let replaced = |name: &str| {
                        extra.iter().any(|e| e.starts_with(name)) && h.starts_with(name)
                    };
                    !replaced("CSeq") && !replaced("Max-Forwards")
                })
                .collect();
            l.extend_from_slice(extra);
            let got = status(&inspect_datagram(&req(&l, ""))).map(|s| s.0);
            assert_eq!(got, *want, "{what}");
        }
    }

    #[test]
    fn missing_headers_and_bad_lines() {
        for drop in ["Call-ID", "From", "To", "CSeq"] {
            let l: Vec<_> = options(&[])
                .into_iter()
                .filter(|h| !h.starts_with(drop))
                .collect();
            let v = inspect_datagram(&req(&l, ""));
            // Without the header a reply cannot be addressed: dropped, or 400 if it can.
            assert!(
                matches!(v, Verdict::Drop(_) | Verdict::Reply { status: 400, .. }),
                "{drop}: {v:?}"
            );
        }
        let l: Vec<_> = options(&[])
            .into_iter()
            .map(|h| {
                if h.starts_with("OPTIONS") {
                    "OPTIONS  sip:hotline.local SIP/2.0"
                } else {
                    h
                }
            })
            .collect();
        assert_eq!(
            status(&inspect_datagram(&req(&l, ""))).map(|s| s.0),
            Some(400)
        );
        let l: Vec<_> = options(&[])
            .into_iter()
            .map(|h| {
                if h.starts_with("OPTIONS") {
                    "OPTIONS sip:hotline.local SIP/7.0"
                } else {
                    h
                }
            })
            .collect();
        assert_eq!(
            status(&inspect_datagram(&req(&l, ""))).map(|s| s.0),
            Some(505)
        );
        let l: Vec<_> = options(&[])
            .into_iter()
            .map(|h| {
                if h.starts_with("OPTIONS") {
                    "OPTIONS http://hotline.local SIP/2.0"
                } else {
                    h
                }
            })
            .collect();
        assert_eq!(
            status(&inspect_datagram(&req(&l, ""))).map(|s| s.0),
            Some(416)
        );
        let l: Vec<_> = options(&[])
            .into_iter()
            .map(|h| {
                if h.starts_with("From") {
                    "From: <sip:probe@127.0.0.1>"
                } else {
                    h
                }
            })
            .collect();
        assert_eq!(
            status(&inspect_datagram(&req(&l, ""))),
            Some((400, "Missing From Tag".into()))
        );
    }

    #[test]
    fn garbage_and_responses_never_get_replies() {
        for g in [
            &b"\x00\x01\x02garbage"[..],
            b"hello",
            b"SIP/2.0 200 OK\r\n",
            b"\r\n\r\n",
            b"",
        ] {
            assert!(!matches!(inspect_datagram(g), Verdict::Reply { .. }));
        }
    }

    #[test]
    fn header_line_without_colon_is_400() {
        let mut l = options(&["this line has no colon"]);
        l.push("Content-Length: 0");
        assert_eq!(
            status(&inspect_datagram(&req(&l, ""))),
            Some((400, "Malformed Header Line".into()))
        );
    }

    #[test]
    fn control_characters_in_headers_are_refused() {
        let mut l = options(&["Subject: bell\u{7}here"]);
        l.push("Content-Length: 0");
        assert_eq!(
            status(&inspect_datagram(&req(&l, ""))),
            Some((400, "Invalid Character In Header".into()))
        );
        // In a header the reply would echo: dropped rather than echoed.
        let l: Vec<_> = options(&["Content-Length: 0"])
            .into_iter()
            .map(|h| {
                if h.starts_with("Call-ID") {
                    "Call-ID: c1\u{0}x"
                } else {
                    h
                }
            })
            .collect();
        assert!(matches!(inspect_datagram(&req(&l, "")), Verdict::Drop(_)));
    }

    #[test]
    fn oversized_request_gets_513() {
        let mut l = options(&[]);
        l.push("Content-Length: 0");
        let v = inspect_oversized(&req(&l, ""));
        assert_eq!(status(&v).map(|s| s.0), Some(513));
    }

    #[test]
    fn compact_and_folded_headers_are_understood() {
        let msg = "OPTIONS sip:hotline.local SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-2\r\nf: <sip:p@127.0.0.1>\r\n ;tag=x\r\nt: <sip:hotline.local>\r\ni: c2\r\nCSeq: 2 OPTIONS\r\nl: 0\r\n\r\n";
        assert_eq!(inspect_datagram(msg.as_bytes()), Verdict::Pass);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let base = req(&options(&["Content-Length: 0"]), "");
        let mut seed: u32 = 7;
        for i in 0..5000 {
            let mut m = base.clone();
            for _ in 0..(i % 7 + 1) {
                seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                let pos = (seed as usize) % m.len();
                m[pos] = (seed >> 24) as u8;
            }
            m.truncate((seed as usize >> 3) % (m.len() + 1));
            let _ = inspect_datagram(&m);
        }
    }
}
