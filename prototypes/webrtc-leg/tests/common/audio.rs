//! Test-side audio: G.711 both laws, a tone generator and Goertzel.
//! (hotline has its own `media::g711`; the scratch crate carries a copy-free
//! test version so it stands alone.)

#![allow(dead_code)]

use webrtc_leg::G711;

/// ITU-T G.711 μ-law, from 16-bit linear.
pub fn ulaw_encode(pcm: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = i32::from(pcm);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let mut exp = 7;
    while exp > 0 && s & (0x80 << exp) == 0 {
        exp -= 1;
    }
    let mant = (s >> (exp + 3)) & 0x0F;
    !((sign | (exp << 4) | mant) as u8)
}

/// μ-law to 16-bit linear.
pub fn ulaw_decode(u: u8) -> i16 {
    let u = !u;
    let exp = i32::from((u >> 4) & 7);
    let mant = i32::from(u & 0x0F);
    let mag = (((mant << 3) + 0x84) << exp) - 0x84;
    if u & 0x80 != 0 {
        -mag as i16
    } else {
        mag as i16
    }
}

/// ITU-T G.711 A-law, from 16-bit linear.
pub fn alaw_encode(pcm: i16) -> u8 {
    let s = i32::from(pcm) >> 3; // 13-bit
    let (sign, mag) = if s >= 0 { (0x80, s) } else { (0, -s - 1) };
    let mag = mag.min(4095);
    let code = if mag < 32 {
        mag >> 1
    } else {
        let mut seg = 1;
        while mag >> (seg + 5) != 0 {
            seg += 1;
        }
        (seg << 4) | ((mag >> seg) & 0x0F)
    };
    ((sign | code) as u8) ^ 0x55
}

/// A-law to 16-bit linear.
pub fn alaw_decode(a: u8) -> i16 {
    let a = a ^ 0x55;
    let seg = i32::from((a >> 4) & 7);
    let mant = i32::from(a & 0x0F);
    let mag = if seg == 0 {
        (mant << 1) + 1
    } else {
        ((mant << 1) + 33) << (seg - 1)
    };
    let v = (mag << 3) as i16;
    if a & 0x80 != 0 {
        v
    } else {
        -v
    }
}

pub fn encode(law: G711, pcm: i16) -> u8 {
    match law {
        G711::Pcmu => ulaw_encode(pcm),
        G711::Pcma => alaw_encode(pcm),
    }
}

pub fn decode(law: G711, byte: u8) -> i16 {
    match law {
        G711::Pcmu => ulaw_decode(byte),
        G711::Pcma => alaw_decode(byte),
    }
}

/// Generates a continuous sine at 8 kHz, one 160-sample frame at a time.
pub struct Tone {
    hz: f64,
    amplitude: f64,
    n: u64,
}

impl Tone {
    pub fn new(hz: f64, amplitude: f64) -> Self {
        Self {
            hz,
            amplitude,
            n: 0,
        }
    }

    pub fn frame(&mut self, law: G711) -> [u8; 160] {
        let mut out = [0u8; 160];
        for b in out.iter_mut() {
            let t = self.n as f64 / 8000.0;
            let s = (self.amplitude * (2.0 * std::f64::consts::PI * self.hz * t).sin()) as i16;
            *b = encode(law, s);
            self.n += 1;
        }
        out
    }
}

/// Share of the signal's energy at `hz` (≈1 for a pure tone at `hz`, ≈0 for
/// a tone elsewhere), by the Goertzel algorithm over all of `samples`.
pub fn tone_share(samples: &[i16], hz: f64) -> f64 {
    let n = samples.len() as f64;
    let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    if energy == 0.0 {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power / (n * energy)
}

pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let e: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (e / samples.len() as f64).sqrt()
}
