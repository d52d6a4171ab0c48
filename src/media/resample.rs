//! Sample-rate conversion to 8 kHz with a Blackman-windowed sinc low-pass,
//! used once when a prompt is loaded (never per frame).
//!
//! The cut-off sits at 0.45 × the lower of the two rates (3.6 kHz when going
//! down to 8 kHz) with 32 zero crossings per side: the pass band is flat to
//! about 3.3 kHz and everything above about 3.9 kHz is down by more than
//! 70 dB, so nothing aliases into the telephone band.

/// Telephone sample rate everything is converted to.
pub const OUTPUT_RATE: u32 = 8000;
/// Zero crossings of the sinc on each side of the centre.
const ZERO_CROSSINGS: usize = 32;
/// Kernel table resolution: entries per zero crossing (linearly interpolated).
const TABLE_RESOLUTION: usize = 512;
const CUTOFF_FRACTION: f64 = 0.45;

/// sinc(u)·blackman(u/Z) for u in [0, Z], sampled every 1/TABLE_RESOLUTION.
fn kernel_table() -> Vec<f32> {
    let len = ZERO_CROSSINGS * TABLE_RESOLUTION + 2;
    (0..len)
        .map(|i| {
            let u = i as f64 / TABLE_RESOLUTION as f64;
            if u >= ZERO_CROSSINGS as f64 {
                return 0.0;
            }
            let sinc = if i == 0 {
                1.0
            } else {
                (std::f64::consts::PI * u).sin() / (std::f64::consts::PI * u)
            };
            // Blackman window over [-Z, Z], evaluated at u (centre is 1).
            let x = std::f64::consts::PI * u / ZERO_CROSSINGS as f64;
            let window = 0.42 + 0.5 * x.cos() + 0.08 * (2.0 * x).cos();
            (sinc * window) as f32
        })
        .collect()
}

fn lookup(table: &[f32], u: f64) -> f64 {
    let pos = u.abs() * TABLE_RESOLUTION as f64;
    let i = pos as usize;
    let frac = pos - i as f64;
    match (table.get(i), table.get(i + 1)) {
        (Some(&a), Some(&b)) => f64::from(a) + (f64::from(b) - f64::from(a)) * frac,
        _ => 0.0,
    }
}

/// Converts mono samples at `input_rate` to 8 kHz. Allocates the output.
pub fn resample_to_8k(input: &[f32], input_rate: u32) -> Vec<f32> {
    if input_rate == OUTPUT_RATE || input_rate == 0 || input.is_empty() {
        return input.to_vec();
    }
    let table = kernel_table();
    let rate_in = f64::from(input_rate);
    let cutoff_hz = CUTOFF_FRACTION * f64::from(input_rate.min(OUTPUT_RATE));
    // Kernel argument per input sample: 2·fc/R zero crossings.
    let scale = 2.0 * cutoff_hz / rate_in;
    // Half width of the kernel in input samples.
    let half_width = ZERO_CROSSINGS as f64 / scale;
    let out_len = (input.len() as u64 * u64::from(OUTPUT_RATE) / u64::from(input_rate)) as usize;
    let last = input.len() as i64 - 1;
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len {
        // Position of this output sample in input samples.
        let centre = n as f64 * rate_in / f64::from(OUTPUT_RATE);
        let first_k = ((centre - half_width).ceil() as i64).max(0);
        let last_k = ((centre + half_width).floor() as i64).min(last);
        let mut acc = 0.0f64;
        let mut k = first_k;
        while k <= last_k {
            let x = input.get(k as usize).copied().unwrap_or(0.0);
            acc += f64::from(x) * lookup(&table, (centre - k as f64) * scale);
            k += 1;
        }
        out.push((acc * scale) as f32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f64, amplitude: f64, seconds: f64) -> Vec<f32> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| {
                (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as f32
            })
            .collect()
    }

    /// RMS of the middle half (away from the zero-padded edges).
    fn middle_rms(x: &[f32]) -> f64 {
        let mid = &x[x.len() / 4..x.len() * 3 / 4];
        (mid.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / mid.len() as f64).sqrt()
    }

    #[test]
    fn pass_band_kept_and_stop_band_removed() {
        let expected_rms = 10_000.0 / 2f64.sqrt();
        for rate in [11_025, 16_000, 22_050, 44_100, 48_000] {
            let out = resample_to_8k(&sine(rate, 1000.0, 10_000.0, 0.25), rate);
            assert!(out.len().abs_diff(2000) <= 1, "rate {rate}: {}", out.len());
            let db = 20.0 * (middle_rms(&out) / expected_rms).log10();
            assert!(db.abs() < 0.1, "1 kHz at {rate}: {db:.2} dB");
        }
        let out = resample_to_8k(&sine(22_050, 3000.0, 10_000.0, 0.25), 22_050);
        let db = 20.0 * (middle_rms(&out) / expected_rms).log10();
        assert!(db.abs() < 0.5, "3 kHz: {db:.2} dB");
        for f in [4500.0, 6000.0, 9000.0] {
            let out = resample_to_8k(&sine(22_050, f, 10_000.0, 0.25), 22_050);
            let db = 20.0 * (middle_rms(&out) / expected_rms).log10();
            assert!(db < -60.0, "{f} Hz aliased at {db:.1} dB");
        }
    }

    #[test]
    fn upsampling_keeps_the_tone() {
        let out = resample_to_8k(&sine(6000, 1000.0, 8000.0, 0.5), 6000);
        assert_eq!(out.len(), 4000);
        let db = 20.0 * (middle_rms(&out) / (8000.0 / 2f64.sqrt())).log10();
        assert!(db.abs() < 0.2, "{db:.2} dB");
    }
}
