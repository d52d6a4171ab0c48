//! DTMF carried in SIP INFO bodies: `application/dtmf-relay` (`Signal=5`,
//! `Duration=160`) and `application/dtmf` (the bare key). Pure.

/// The key pressed, if the body is a DTMF INFO we understand.
pub fn dtmf_from_info(content_type: &str, body: &str) -> Option<char> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let raw = if ct.eq_ignore_ascii_case("application/dtmf-relay") {
        body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?
    } else if ct.eq_ignore_ascii_case("application/dtmf") {
        body.trim()
    } else {
        return None;
    };
    key(raw)
}

fn key(raw: &str) -> Option<char> {
    let mut chars = raw.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        // Some phones send the RFC 4733 event number: 10 = '*', 11 = '#'.
        return match raw {
            "10" => Some('*'),
            "11" => Some('#'),
            "12" => Some('A'),
            "13" => Some('B'),
            "14" => Some('C'),
            "15" => Some('D'),
            _ => None,
        };
    }
    let c = c.to_ascii_uppercase();
    (c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_relay_and_plain_dtmf() {
        assert_eq!(
            dtmf_from_info("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(
            dtmf_from_info("Application/DTMF-Relay", "Signal= #\nDuration=100"),
            Some('#')
        );
        assert_eq!(
            dtmf_from_info("application/dtmf-relay", "Signal=11\r\n"),
            Some('#')
        );
        assert_eq!(dtmf_from_info("application/dtmf", "7"), Some('7'));
        assert_eq!(dtmf_from_info("application/dtmf", "*\r\n"), Some('*'));
    }

    #[test]
    fn other_bodies_are_not_dtmf() {
        assert_eq!(dtmf_from_info("application/sdp", "v=0"), None);
        assert_eq!(
            dtmf_from_info("application/dtmf-relay", "Duration=160"),
            None
        );
        assert_eq!(dtmf_from_info("application/dtmf", "x"), None);
        assert_eq!(dtmf_from_info("application/dtmf", ""), None);
    }
}
