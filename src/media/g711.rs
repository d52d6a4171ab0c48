//! G.711 µ-law (PCMU) and A-law (PCMA) per ITU-T G.711.
//!
//! Decoding and law-to-law transcoding are 256-entry tables built at compile
//! time; encoding is a few integer operations per sample. The slice helpers
//! write into caller buffers and never allocate.

/// The two G.711 laws, as RTP names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711 {
    /// µ-law, static payload type 0.
    Pcmu,
    /// A-law, static payload type 8.
    Pcma,
}

impl G711 {
    /// Static RTP payload type (RFC 3551).
    pub const fn payload_type(self) -> u8 {
        match self {
            G711::Pcmu => 0,
            G711::Pcma => 8,
        }
    }

    /// The law for a static payload type, if it is a G.711 one.
    pub const fn from_payload_type(pt: u8) -> Option<G711> {
        match pt {
            0 => Some(G711::Pcmu),
            8 => Some(G711::Pcma),
            _ => None,
        }
    }

    /// The code that decodes to (near) zero: what a silent frame is filled with.
    pub const fn silence(self) -> u8 {
        match self {
            G711::Pcmu => ULAW_SILENCE,
            G711::Pcma => ALAW_SILENCE,
        }
    }

    pub const fn encode(self, sample: i16) -> u8 {
        match self {
            G711::Pcmu => linear_to_ulaw(sample),
            G711::Pcma => linear_to_alaw(sample),
        }
    }

    pub const fn decode(self, code: u8) -> i16 {
        match self {
            G711::Pcmu => ulaw_to_linear(code),
            G711::Pcma => alaw_to_linear(code),
        }
    }

    /// Encodes `min(pcm.len(), out.len())` samples.
    pub fn encode_slice(self, pcm: &[i16], out: &mut [u8]) {
        match self {
            G711::Pcmu => encode_ulaw(pcm, out),
            G711::Pcma => encode_alaw(pcm, out),
        }
    }

    /// Decodes `min(codes.len(), out.len())` samples.
    pub fn decode_slice(self, codes: &[u8], out: &mut [i16]) {
        match self {
            G711::Pcmu => decode_ulaw(codes, out),
            G711::Pcma => decode_alaw(codes, out),
        }
    }
}

/// µ-law code for silence (decodes to 0).
pub const ULAW_SILENCE: u8 = 0xFF;
/// A-law code for silence (decodes to +8, the smallest A-law magnitude).
pub const ALAW_SILENCE: u8 = 0xD5;

/// Added before the segment search so that segment boundaries fall on
/// powers of two (G.711 µ-law bias, 33 in 14-bit units).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude µ-law can represent once the bias is added.
const ULAW_CLIP: i32 = 32635;

/// Encodes one 16-bit linear sample to µ-law.
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    let mut magnitude = sample as i32;
    let sign: u8 = if magnitude < 0 {
        magnitude = -magnitude;
        0x80
    } else {
        0
    };
    if magnitude > ULAW_CLIP {
        magnitude = ULAW_CLIP;
    }
    magnitude += ULAW_BIAS;
    // magnitude is in 132..=32767, so its top bit is at position 7..=14.
    let top_bit = 31 - (magnitude as u32).leading_zeros();
    let exponent = top_bit - 7;
    let mantissa = ((magnitude >> (exponent + 3)) & 0x0F) as u8;
    !(sign | ((exponent as u8) << 4) | mantissa)
}

/// Decodes one µ-law code to 16-bit linear (table lookup).
pub const fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

const fn ulaw_decode_formula(code: u8) -> i16 {
    let code = !code;
    let exponent = (code & 0x70) >> 4;
    let mantissa = (code & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if code & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Encodes one 16-bit linear sample to A-law (G.711 works on the top 13 bits).
pub const fn linear_to_alaw(sample: i16) -> u8 {
    let mut linear13 = (sample as i32) >> 3;
    // Even bits are inverted on the wire; the sign bit is 1 for positive.
    let mask: u8 = if linear13 >= 0 {
        0xD5
    } else {
        linear13 = -linear13 - 1;
        0x55
    };
    // linear13 is in 0..=4096 now.
    let code = if linear13 < 32 {
        (linear13 >> 1) as u8
    } else if linear13 > 0xFFF {
        0x7F
    } else {
        let top_bit = 31 - (linear13 as u32).leading_zeros();
        let segment = top_bit - 4;
        ((segment as u8) << 4) | ((linear13 >> segment) & 0x0F) as u8
    };
    code ^ mask
}

/// Decodes one A-law code to 16-bit linear (table lookup).
pub const fn alaw_to_linear(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

const fn alaw_decode_formula(code: u8) -> i16 {
    let code = code ^ 0x55;
    let segment = (code & 0x70) >> 4;
    let mut magnitude = ((code & 0x0F) as i32) << 4;
    magnitude += if segment == 0 { 8 } else { 0x108 };
    if segment > 1 {
        magnitude <<= segment - 1;
    }
    if code & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn build_decode_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = if alaw {
            alaw_decode_formula(code as u8)
        } else {
            ulaw_decode_formula(code as u8)
        };
        code += 1;
    }
    table
}

const fn build_transcode_table(from_ulaw: bool) -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = if from_ulaw {
            linear_to_alaw(ulaw_decode_formula(code as u8))
        } else {
            linear_to_ulaw(alaw_decode_formula(code as u8))
        };
        code += 1;
    }
    table
}

/// µ-law code → linear sample.
pub static ULAW_DECODE: [i16; 256] = build_decode_table(false);
/// A-law code → linear sample.
pub static ALAW_DECODE: [i16; 256] = build_decode_table(true);
/// µ-law code → nearest A-law code (via the linear value).
pub static ULAW_TO_ALAW: [u8; 256] = build_transcode_table(true);
/// A-law code → nearest µ-law code (via the linear value).
pub static ALAW_TO_ULAW: [u8; 256] = build_transcode_table(false);

/// Encodes `min(pcm.len(), out.len())` samples to µ-law.
pub fn encode_ulaw(pcm: &[i16], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = linear_to_ulaw(s);
    }
}

/// Decodes `min(codes.len(), out.len())` µ-law codes.
pub fn decode_ulaw(codes: &[u8], out: &mut [i16]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = ULAW_DECODE[usize::from(c)];
    }
}

/// Encodes `min(pcm.len(), out.len())` samples to A-law.
pub fn encode_alaw(pcm: &[i16], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = linear_to_alaw(s);
    }
}

/// Decodes `min(codes.len(), out.len())` A-law codes.
pub fn decode_alaw(codes: &[u8], out: &mut [i16]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = ALAW_DECODE[usize::from(c)];
    }
}

/// Rewrites µ-law codes as A-law in place (for bridging a PCMU leg to a PCMA leg).
pub fn ulaw_to_alaw_in_place(codes: &mut [u8]) {
    for c in codes {
        *c = ULAW_TO_ALAW[usize::from(*c)];
    }
}

/// Rewrites A-law codes as µ-law in place.
pub fn alaw_to_ulaw_in_place(codes: &mut [u8]) {
    for c in codes {
        *c = ALAW_TO_ULAW[usize::from(*c)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);

        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(linear_to_alaw(8), 0xD5);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(G711::Pcmu.silence(), 0xFF);
        assert_eq!(G711::Pcma.silence(), 0xD5);
    }

    #[test]
    fn every_code_round_trips() {
        for code in 0..=255u8 {
            // µ-law has two zeros (0xFF and 0x7F); both decode to 0, which encodes as 0xFF.
            let back = linear_to_ulaw(ulaw_to_linear(code));
            if code == 0x7F {
                assert_eq!(back, 0xFF);
            } else {
                assert_eq!(back, code, "µ-law {code:#04x}");
            }
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law {code:#04x}"
            );
        }
    }

    #[test]
    fn encode_error_is_bounded_by_the_segment_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let x = i32::from(s);
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(s)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
            // Quantisation step doubles per segment; the error is at most one step
            // (half a step from rounding plus the clipping near full scale).
            let ulaw_bound = (x.abs() / 16).max(8) + 1;
            let alaw_bound = (x.abs() / 16).max(16) + 1;
            if x.abs() <= ULAW_CLIP {
                assert!((u - x).abs() <= ulaw_bound, "µ-law {x} -> {u}");
            }
            assert!((a - x).abs() <= alaw_bound, "A-law {x} -> {a}");
        }
    }

    #[test]
    fn slices_and_transcoding() {
        let pcm: Vec<i16> = (0..160)
            .map(|i| ((i * 397) % 20000 - 10000) as i16)
            .collect();
        let mut u = [0u8; 160];
        let mut a = [0u8; 160];
        encode_ulaw(&pcm, &mut u);
        encode_alaw(&pcm, &mut a);
        let mut du = [0i16; 160];
        let mut da = [0i16; 160];
        decode_ulaw(&u, &mut du);
        decode_alaw(&a, &mut da);
        for i in 0..160 {
            assert!((i32::from(du[i]) - i32::from(pcm[i])).abs() <= 320);
            assert!((i32::from(da[i]) - i32::from(pcm[i])).abs() <= 320);
        }
        let mut t = u;
        ulaw_to_alaw_in_place(&mut t);
        for i in 0..160 {
            let via = i32::from(alaw_to_linear(t[i]));
            assert!((via - i32::from(du[i])).abs() <= 512, "{i}");
        }
        assert_eq!(ULAW_TO_ALAW[0xFF], 0xD5);
        assert_eq!(ALAW_TO_ULAW[0xD5], linear_to_ulaw(8));
        // Shorter destination: only that many written, no panic.
        let mut short = [0u8; 4];
        G711::Pcmu.encode_slice(&pcm, &mut short);
        assert_eq!(short, [u[0], u[1], u[2], u[3]]);
    }
}
