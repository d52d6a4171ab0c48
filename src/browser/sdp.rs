//! What the answer we sent says about payload types.
//!
//! An answer reuses the offer's payload type numbers (RFC 3264 §6.1), and
//! Chromium numbers telephone-event dynamically (126 for 8 kHz today), so the
//! leg learns the numbers from its own final answer instead of assuming them.

use crate::browser::frame::G711;

/// The payload types negotiated for the audio m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The law we send (the first G.711 format of the answer's m-line, which
    /// the browser will send too, as the answer's preference).
    pub codec: G711,
    /// Payload type of `codec`.
    pub payload_type: u8,
    /// The other G.711 law if it was also accepted, with its payload type.
    /// A browser may switch to it mid-call; frames are tagged per packet.
    pub other: Option<(G711, u8)>,
    /// Payload type of 8 kHz telephone-event, if negotiated.
    pub telephone_event: Option<u8>,
}

impl Negotiated {
    /// Which law a received payload type carries, if it is one of ours.
    pub fn law_of(&self, pt: u8) -> Option<G711> {
        if pt == self.payload_type {
            return Some(self.codec);
        }
        match self.other {
            Some((law, p)) if p == pt => Some(law),
            _ => None,
        }
    }
}

/// Reads the first audio m-line of `sdp`: its format order and `a=rtpmap`s.
/// Returns `None` if the answer carries no G.711 at all (then the call
/// cannot be bridged and must be refused with 488).
pub fn negotiated(sdp: &str) -> Option<Negotiated> {
    let mut formats: Vec<u8> = Vec::new();
    let mut maps: Vec<(u8, String, u32)> = Vec::new();
    let mut in_audio = false;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            if in_audio {
                break;
            }
            let mut parts = m.split_whitespace();
            if parts.next() == Some("audio") {
                in_audio = true;
                // port and proto, then the formats
                formats = parts.skip(2).filter_map(|f| f.parse().ok()).collect();
            }
        } else if in_audio {
            if let Some(rest) = line.strip_prefix("a=rtpmap:") {
                let Some((pt, enc)) = rest.split_once(' ') else {
                    continue;
                };
                let Ok(pt) = pt.parse::<u8>() else { continue };
                let mut enc = enc.split('/');
                let name = enc.next().unwrap_or_default().to_ascii_uppercase();
                let rate = enc.next().and_then(|r| r.parse().ok()).unwrap_or(0);
                maps.push((pt, name, rate));
            }
        }
    }
    let law_of = |pt: u8| -> Option<G711> {
        let by_map = maps.iter().find(|(p, _, _)| *p == pt).map(|(_, n, _)| n);
        match by_map.map(String::as_str) {
            Some("PCMU") => Some(G711::Pcmu),
            Some("PCMA") => Some(G711::Pcma),
            Some(_) => None,
            // Static types may appear without an rtpmap (RFC 3551).
            None => match pt {
                0 => Some(G711::Pcmu),
                8 => Some(G711::Pcma),
                _ => None,
            },
        }
    };
    let mut laws = formats.iter().filter_map(|&pt| law_of(pt).map(|l| (l, pt)));
    let (codec, payload_type) = laws.next()?;
    let other = laws.find(|(l, _)| *l != codec);
    let telephone_event = maps
        .iter()
        .find(|(p, n, r)| n == "TELEPHONE-EVENT" && *r == 8000 && formats.contains(p))
        .map(|(p, _, _)| *p);
    Some(Negotiated {
        codec,
        payload_type,
        other,
        telephone_event,
    })
}

/// Keeps, in every audio m-line of a browser's offer, only the formats a
/// browser leg can take: the G.711 laws of `prefer`, in that order, then
/// telephone-event/8000. Returns `None` when no G.711 is left.
///
/// The order matters: `webrtc` 0.21.1 answers in the offer's format order
/// whatever the media engine's registration order, and the browser sends the
/// answer's first format. Reordering here is how hotline chooses the law,
/// e.g. the customer's, so the bridge is a copy.
///
/// Why: `webrtc` 0.21.1 matches telephone-event without regard to its clock
/// rate, so against Chromium's offer (telephone-event at 48000 *and* 8000)
/// it answered the 48 kHz one, twice, and the browser's 8 kHz key presses
/// never matched. Narrowing the offer first makes the answer exact, and
/// the browser accepts an answer that is a subset of its offer.
pub fn restrict_offer(offer: &str, prefer: &[G711]) -> Option<String> {
    let eol = if offer.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = offer.lines().map(str::trim_end).collect();
    let mut out = String::with_capacity(offer.len());
    let mut any_g711 = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let is_audio = line.starts_with("m=audio ");
        if !is_audio {
            out.push_str(line);
            out.push_str(eol);
            i += 1;
            continue;
        }
        // The section runs to the next m= line.
        let end = lines[i + 1..]
            .iter()
            .position(|l| l.starts_with("m="))
            .map_or(lines.len(), |p| i + 1 + p);
        let section = &lines[i + 1..end];
        let rtpmap = |pt: &str| {
            section.iter().find_map(|l| {
                let rest = l.strip_prefix("a=rtpmap:")?;
                let (p, enc) = rest.split_once(' ')?;
                (p == pt).then(|| enc.to_ascii_uppercase())
            })
        };
        let mut fields = line.split_whitespace();
        let head: Vec<&str> = fields.by_ref().take(3).collect();
        // (rank, pt): laws ranked by `prefer`, events after them.
        let mut ranked: Vec<(usize, &str)> = fields
            .filter_map(|pt| {
                let law = match rtpmap(pt).as_deref() {
                    Some("PCMU/8000") => G711::Pcmu,
                    Some("PCMA/8000") => G711::Pcma,
                    Some("TELEPHONE-EVENT/8000") => return Some((prefer.len(), pt)),
                    Some(_) => return None,
                    None if pt == "0" => G711::Pcmu,
                    None if pt == "8" => G711::Pcma,
                    None => return None,
                };
                prefer.iter().position(|p| *p == law).map(|rank| (rank, pt))
            })
            .collect();
        // Stable: the offer's order breaks ties.
        ranked.sort_by_key(|(rank, _)| *rank);
        any_g711 |= ranked.iter().any(|(rank, _)| *rank < prefer.len());
        let keep: Vec<&str> = ranked.into_iter().map(|(_, pt)| pt).collect();
        out.push_str(&head.join(" "));
        for pt in &keep {
            out.push(' ');
            out.push_str(pt);
        }
        out.push_str(eol);
        for l in section {
            let per_format = ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
                .iter()
                .find_map(|p| l.strip_prefix(p));
            if let Some(rest) = per_format {
                let pt = rest.split([' ', ':']).next().unwrap_or_default();
                if pt != "*" && !keep.contains(&pt) {
                    continue;
                }
            }
            out.push_str(l);
            out.push_str(eol);
        }
        i = end;
    }
    any_g711.then_some(out)
}

/// Drops the remote ICE candidates our socket bound to `local` cannot reach:
/// another address family, or anything but loopback when we are bound to
/// loopback. The browser lists every interface it has (a second NIC, IPv6,
/// VPNs), and a full-ICE agent would otherwise send checks to all of them.
pub fn reachable_candidates(sdp: &str, local: std::net::IpAddr) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("a=candidate:") {
            let addr = rest
                .split_whitespace()
                .nth(4)
                .and_then(|a| a.parse::<std::net::IpAddr>().ok());
            let keep = match addr {
                Some(ip) => {
                    ip.is_ipv4() == local.is_ipv4() && (!local.is_loopback() || ip.is_loopback())
                }
                // mDNS names (`*.local`): unresolvable here; the browser's
                // checks reveal its address as peer-reflexive anyway.
                None => false,
            };
            if !keep {
                continue;
            }
        }
        out.push_str(line);
        out.push_str(eol);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=ice-lite\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 8 0 126\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:126 telephone-event/8000\r\n\
        a=fmtp:126 0-15\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
        a=rtpmap:96 VP8/90000\r\n";

    #[test]
    fn first_g711_leads_and_events_are_found() {
        let n = negotiated(ANSWER).expect("g711 negotiated");
        assert_eq!(n.codec, G711::Pcma);
        assert_eq!(n.payload_type, 8);
        assert_eq!(n.other, Some((G711::Pcmu, 0)));
        assert_eq!(n.telephone_event, Some(126));
        assert_eq!(n.law_of(0), Some(G711::Pcmu));
        assert_eq!(n.law_of(126), None);
    }

    const CHROMIUM_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=mid:0\r\n\
        a=rtpmap:111 opus/48000/2\r\n\
        a=rtcp-fb:111 transport-cc\r\n\
        a=fmtp:111 minptime=10;useinbandfec=1\r\n\
        a=rtpmap:63 red/48000/2\r\n\
        a=fmtp:63 111/111\r\n\
        a=rtpmap:9 G722/8000\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:13 CN/8000\r\n\
        a=rtpmap:110 telephone-event/48000\r\n\
        a=rtpmap:126 telephone-event/8000\r\n\
        a=ssrc:1 cname:x\r\n";

    #[test]
    fn offer_is_narrowed_to_g711_and_8k_events() {
        let o = restrict_offer(CHROMIUM_OFFER, &[G711::Pcmu, G711::Pcma]).expect("g711 offered");
        assert!(o.contains("m=audio 9 UDP/TLS/RTP/SAVPF 0 8 126\r\n"), "{o}");
        for gone in [
            "opus",
            "red/",
            "G722",
            "CN/",
            "telephone-event/48000",
            "a=fmtp:111",
            "a=fmtp:63",
            "a=rtcp-fb:111",
        ] {
            assert!(!o.contains(gone), "{gone} left in {o}");
        }
        for kept in [
            "a=rtpmap:126 telephone-event/8000",
            "a=mid:0",
            "a=ssrc:1 cname:x",
            "a=group:BUNDLE 0",
        ] {
            assert!(o.contains(kept), "{kept} lost");
        }
        let opus = "v=0\r\nm=audio 9 RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert_eq!(restrict_offer(opus, &[G711::Pcmu]), None);
    }

    #[test]
    fn our_preference_orders_the_laws_and_can_exclude_one() {
        let o = restrict_offer(CHROMIUM_OFFER, &[G711::Pcma, G711::Pcmu]).expect("g711");
        assert!(o.contains("m=audio 9 UDP/TLS/RTP/SAVPF 8 0 126\r\n"), "{o}");
        let o = restrict_offer(CHROMIUM_OFFER, &[G711::Pcma]).expect("pcma");
        assert!(o.contains("m=audio 9 UDP/TLS/RTP/SAVPF 8 126\r\n"), "{o}");
        assert!(!o.contains("PCMU"));
        let pcmu_only = "v=0\r\nm=audio 9 RTP/SAVPF 0\r\n";
        assert_eq!(restrict_offer(pcmu_only, &[G711::Pcma]), None);
    }

    #[test]
    fn unreachable_candidates_are_dropped() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n\
            a=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n\
            a=candidate:2 1 udp 1 192.0.2.2 5001 typ host\r\n\
            a=candidate:3 1 udp 1 ::1 5002 typ host\r\n\
            a=candidate:4 1 udp 1 abcd.local 5003 typ host\r\n\
            a=mid:0\r\n";
        let lo = reachable_candidates(sdp, "127.0.0.1".parse().expect("ip"));
        assert!(lo.contains("127.0.0.1 5000") && lo.contains("a=mid:0"));
        for gone in ["192.0.2.2", "::1", "abcd.local"] {
            assert!(!lo.contains(gone), "{gone}");
        }
        let lan = reachable_candidates(sdp, "192.0.2.1".parse().expect("ip"));
        assert!(lan.contains("192.0.2.2") && lan.contains("127.0.0.1"));
        assert!(!lan.contains("::1"));
    }

    #[test]
    fn opus_only_is_refused() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert_eq!(negotiated(sdp), None);
    }

    #[test]
    fn static_types_without_rtpmap_count() {
        let sdp = "v=0\r\nm=audio 9 RTP/SAVPF 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        let n = negotiated(sdp).expect("pcmu");
        assert_eq!(
            (n.codec, n.payload_type, n.telephone_event),
            (G711::Pcmu, 0, Some(101))
        );
    }
}
