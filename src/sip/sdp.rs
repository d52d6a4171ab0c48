//! SDP offer/answer for one audio stream (RFC 4566, RFC 3264): G.711 µ-law or
//! A-law plus RFC 4733 telephone-event on whatever payload type the offer
//! uses. Pure: text in, negotiated session out.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// Audio codecs hotline speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl From<Codec> for crate::media::g711::G711 {
    fn from(c: Codec) -> Self {
        match c {
            Codec::Pcmu => crate::media::g711::G711::Pcmu,
            Codec::Pcma => crate::media::g711::G711::Pcma,
        }
    }
}

impl From<crate::media::g711::G711> for Codec {
    fn from(law: crate::media::g711::G711) -> Self {
        match law {
            crate::media::g711::G711::Pcmu => Codec::Pcmu,
            crate::media::g711::G711::Pcma => Codec::Pcma,
        }
    }
}

impl Codec {
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// Media direction attribute, from the sender of the SDP's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The answer's direction for an offered one (RFC 3264 §6.1).
    pub fn answer_to(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }
}

/// What the remote side described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAudio {
    /// Where to send RTP (port 0 = stream refused).
    pub addr: SocketAddr,
    /// Payload types in the order offered, with their encoding names.
    pub formats: Vec<(u8, String, u32)>,
    pub direction: Direction,
    /// True when the connection address is 0.0.0.0 (old-style hold, RFC 2543).
    pub held_by_address: bool,
}

/// The result of negotiation: what we send and how we read DTMF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub remote: SocketAddr,
    pub codec: Codec,
    /// Payload type of telephone-event, when offered.
    pub dtmf_pt: Option<u8>,
    /// Our direction in the answer.
    pub direction: Direction,
}

impl Negotiated {
    /// Whether the remote side put the call on hold (we should not send audio).
    pub fn remote_on_hold(&self) -> bool {
        matches!(self.direction, Direction::RecvOnly | Direction::Inactive)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP is not valid: {0}")]
    Malformed(&'static str),
    #[error("no audio stream offered")]
    NoAudio,
    #[error("no codec in common (we speak PCMU and PCMA)")]
    NoCommonCodec,
}

/// Parse the first audio stream of an SDP body.
pub fn parse(body: &str) -> Result<RemoteAudio, SdpError> {
    let mut session_conn: Option<IpAddr> = None;
    let mut media_conn: Option<IpAddr> = None;
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut port: Option<u16> = None;
    let mut pts: Vec<u8> = Vec::new();
    let mut rtpmaps: Vec<(u8, String, u32)> = Vec::new();
    let mut session_dir = None;
    let mut media_dir = None;
    let mut saw_version = false;
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let (kind, value) = line
            .split_once('=')
            .ok_or(SdpError::Malformed("line without '='"))?;
        match kind {
            "v" => saw_version = true,
            "m" => {
                if seen_audio {
                    // Only the first audio stream matters; later streams are refused.
                    in_audio = false;
                    continue;
                }
                let mut f = value.split_whitespace();
                let media = f.next().ok_or(SdpError::Malformed("empty m= line"))?;
                if media != "audio" {
                    in_audio = false;
                    continue;
                }
                in_audio = true;
                seen_audio = true;
                let p = f.next().ok_or(SdpError::Malformed("m= without port"))?;
                let p = p.split('/').next().unwrap_or(p);
                port = Some(p.parse().map_err(|_| SdpError::Malformed("bad m= port"))?);
                let proto = f.next().ok_or(SdpError::Malformed("m= without protocol"))?;
                if !proto.eq_ignore_ascii_case("RTP/AVP") && !proto.eq_ignore_ascii_case("RTP/AVPF")
                {
                    // SRTP or other profiles are not for the plain RTP path.
                    pts.clear();
                    continue;
                }
                for fmt in f {
                    if let Ok(pt) = fmt.parse::<u8>() {
                        if pt < 128 {
                            pts.push(pt);
                        }
                    }
                }
            }
            "c" => {
                let mut f = value.split_whitespace();
                let (_net, _family, addr) = (f.next(), f.next(), f.next());
                let addr = addr.ok_or(SdpError::Malformed("c= without address"))?;
                let addr = addr.split('/').next().unwrap_or(addr);
                let ip: IpAddr = addr
                    .parse()
                    .map_err(|_| SdpError::Malformed("c= address is not an IP"))?;
                if in_audio {
                    media_conn = Some(ip);
                } else if !seen_audio {
                    session_conn = Some(ip);
                }
            }
            "a" => {
                let dir = match value {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                if let Some(d) = dir {
                    if in_audio {
                        media_dir = Some(d);
                    } else if !seen_audio {
                        session_dir = Some(d);
                    }
                    continue;
                }
                if in_audio {
                    if let Some(rest) = value.strip_prefix("rtpmap:") {
                        let (pt, enc) = rest
                            .split_once(' ')
                            .ok_or(SdpError::Malformed("bad rtpmap"))?;
                        let pt: u8 = pt
                            .trim()
                            .parse()
                            .map_err(|_| SdpError::Malformed("bad rtpmap payload type"))?;
                        let mut e = enc.trim().split('/');
                        let name = e.next().unwrap_or("").to_string();
                        let rate = e.next().and_then(|r| r.parse().ok()).unwrap_or(8000);
                        rtpmaps.push((pt, name, rate));
                    }
                }
            }
            _ => {}
        }
    }
    if !saw_version {
        return Err(SdpError::Malformed("missing v= line"));
    }
    let port = port.ok_or(SdpError::NoAudio)?;
    let ip = media_conn
        .or(session_conn)
        .ok_or(SdpError::Malformed("no c= line for audio"))?;
    let formats = pts
        .iter()
        .map(|&pt| {
            rtpmaps
                .iter()
                .find(|(p, _, _)| *p == pt)
                .cloned()
                .unwrap_or_else(|| (pt, static_name(pt).to_string(), 8000))
        })
        .collect();
    Ok(RemoteAudio {
        addr: SocketAddr::new(ip, port),
        formats,
        direction: media_dir.or(session_dir).unwrap_or(Direction::SendRecv),
        held_by_address: ip.is_unspecified(),
    })
}

fn static_name(pt: u8) -> &'static str {
    match pt {
        0 => "PCMU",
        8 => "PCMA",
        9 => "G722",
        18 => "G729",
        _ => "",
    }
}

/// Choose our codec and DTMF payload type from an offer.
pub fn negotiate(offer: &RemoteAudio) -> Result<Negotiated, SdpError> {
    if offer.addr.port() == 0 {
        return Err(SdpError::NoAudio);
    }
    // The offerer's order is its preference (RFC 3264 §6.1): take the first we speak.
    let codec = offer
        .formats
        .iter()
        .find_map(
            |(pt, name, rate)| match (name.to_ascii_uppercase().as_str(), rate) {
                ("PCMU", 8000) if *pt == 0 || *pt >= 96 => Some(Codec::Pcmu),
                ("PCMA", 8000) if *pt == 8 || *pt >= 96 => Some(Codec::Pcma),
                _ => None,
            },
        )
        .ok_or(SdpError::NoCommonCodec)?;
    let dtmf_pt = offer
        .formats
        .iter()
        .find(|(_, name, rate)| name.eq_ignore_ascii_case("telephone-event") && *rate == 8000)
        .map(|(pt, _, _)| *pt);
    let direction = if offer.held_by_address {
        Direction::Inactive
    } else {
        offer.direction.answer_to()
    };
    Ok(Negotiated {
        remote: offer.addr,
        codec,
        dtmf_pt,
        direction,
    })
}

/// Our SDP (offer or answer) for one audio stream.
pub fn write(
    session_id: u64,
    version: u64,
    local: SocketAddr,
    codec: Codec,
    dtmf_pt: Option<u8>,
    direction: Direction,
) -> String {
    let ip = local.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        "v=0\r\no=hotline {session_id} {version} IN {family} {ip}\r\ns=hotline\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP {}",
        local.port(),
        codec.payload_type()
    );
    if let Some(pt) = dtmf_pt {
        let _ = write!(s, " {pt}");
    }
    let _ = write!(
        s,
        "\r\na=rtpmap:{} {}/8000\r\n",
        codec.payload_type(),
        codec.name()
    );
    if let Some(pt) = dtmf_pt {
        let _ = write!(
            s,
            "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n"
        );
    }
    let _ = write!(s, "a=ptime:20\r\na={}\r\n", direction.attr());
    s
}

/// Our offer for an INVITE we send, or for a 200 OK to an INVITE without SDP:
/// both G.711 laws and telephone-event on 101.
pub fn write_offer(session_id: u64, version: u64, local: SocketAddr) -> String {
    let ip = local.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=hotline {session_id} {version} IN {family} {ip}\r\ns=hotline\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
        local.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n";

    #[test]
    fn sipp_offer_negotiates_pcma_and_dtmf_96() {
        let offer = parse(SIPP_OFFER).unwrap();
        assert_eq!(offer.addr, "127.0.0.1:6000".parse::<SocketAddr>().unwrap());
        let n = negotiate(&offer).unwrap();
        assert_eq!(n.codec, Codec::Pcma);
        assert_eq!(n.dtmf_pt, Some(96));
        assert_eq!(n.direction, Direction::SendRecv);
        let answer = write(
            1,
            1,
            "127.0.0.1:20000".parse().unwrap(),
            n.codec,
            n.dtmf_pt,
            n.direction,
        );
        assert!(
            answer.contains("m=audio 20000 RTP/AVP 8 96\r\n"),
            "{answer}"
        );
        assert!(answer.contains("a=rtpmap:96 telephone-event/8000\r\n"));
        // Our answer parses as what it says.
        let back = parse(&answer).unwrap();
        assert_eq!(negotiate(&back).unwrap().codec, Codec::Pcma);
    }

    #[test]
    fn offer_order_decides_codec() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 9 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        let n = negotiate(&parse(sdp).unwrap()).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.dtmf_pt, Some(101));
    }

    #[test]
    fn no_common_codec_and_no_audio_are_errors() {
        let g729 = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18 9\r\n";
        assert_eq!(
            negotiate(&parse(g729).unwrap()),
            Err(SdpError::NoCommonCodec)
        );
        let video = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=video 4000 RTP/AVP 96\r\n";
        assert_eq!(parse(video), Err(SdpError::NoAudio));
        let srtp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n";
        assert_eq!(
            negotiate(&parse(srtp).unwrap()),
            Err(SdpError::NoCommonCodec)
        );
        assert!(parse("garbage").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn hold_by_direction_and_by_zero_address() {
        let sendonly = SIPP_OFFER.replace("a=fmtp:96 0-15\r\n", "a=fmtp:96 0-15\r\na=sendonly\r\n");
        let n = negotiate(&parse(&sendonly).unwrap()).unwrap();
        assert_eq!(n.direction, Direction::RecvOnly);
        assert!(n.remote_on_hold());
        let zero = SIPP_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        let n = negotiate(&parse(&zero).unwrap()).unwrap();
        assert_eq!(n.direction, Direction::Inactive);
        let resumed = negotiate(&parse(SIPP_OFFER).unwrap()).unwrap();
        assert!(!resumed.remote_on_hold());
    }

    #[test]
    fn media_level_connection_overrides_session_level() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\n";
        assert_eq!(
            parse(sdp).unwrap().addr,
            "10.0.0.2:4000".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn offer_lists_both_laws_and_dtmf() {
        let o = write_offer(7, 1, "127.0.0.1:20002".parse().unwrap());
        let p = parse(&o).unwrap();
        let pts: Vec<u8> = p.formats.iter().map(|f| f.0).collect();
        assert_eq!(pts, [0, 8, 101]);
    }
}
