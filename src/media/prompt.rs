//! Voice prompts: WAV files loaded once, converted to 8 kHz mono 16-bit and
//! pre-encoded to PCMU and PCMA so playback only slices 160-byte frames.
//!
//! hound reads integer and float PCM; µ-law (format tag 7) and A-law (tag 6)
//! WAV files, which hound refuses, are decoded by a small RIFF reader here.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use thiserror::Error;

use super::g711::{ALAW_DECODE, G711, ULAW_DECODE};
use super::resample::{resample_to_8k, OUTPUT_RATE};

/// Samples (and G.711 bytes) per 20 ms frame.
pub const FRAME_LEN: usize = 160;

const FORMAT_PCM: u16 = 1;
const FORMAT_FLOAT: u16 = 3;
const FORMAT_ALAW: u16 = 6;
const FORMAT_ULAW: u16 = 7;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Why a prompt file cannot be used.
#[derive(Debug, Error)]
pub enum PromptErrorReason {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a RIFF/WAVE file")]
    NotWav,
    #[error("truncated: {0}")]
    Truncated(&'static str),
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("unsupported audio format: {0}")]
    Unsupported(String),
    #[error("contains no audio samples")]
    NoSamples,
}

/// A prompt that could not be loaded, naming the file and the reason.
#[derive(Debug, Error)]
#[error("prompt {}: {reason}", path.display())]
pub struct PromptError {
    pub path: PathBuf,
    pub reason: PromptErrorReason,
}

/// The parts of the `fmt ` chunk we use, and where the samples are.
#[derive(Debug, Clone, Copy)]
struct WavLayout {
    format: u16,
    channels: u16,
    sample_rate: u32,
    bits_per_sample: u16,
    data_start: usize,
    data_len: usize,
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Walks the RIFF chunks to find `fmt ` and `data`.
fn read_layout(bytes: &[u8]) -> Result<WavLayout, PromptErrorReason> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        if bytes.len() < 12 && bytes.starts_with(b"RIFF") {
            return Err(PromptErrorReason::Truncated("RIFF header"));
        }
        return Err(PromptErrorReason::NotWav);
    }
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    let mut at = 12usize;
    while at < bytes.len() {
        let (Some(id), Some(size)) = (bytes.get(at..at + 4), le32(bytes, at + 4)) else {
            return Err(PromptErrorReason::Truncated("chunk header"));
        };
        let body = at + 8;
        let size = size as usize;
        let end = body.saturating_add(size);
        match id {
            b"fmt " => {
                let body_bytes = bytes
                    .get(body..end)
                    .filter(|b| b.len() >= 16)
                    .ok_or(PromptErrorReason::Truncated("fmt chunk"))?;
                let mut format = le16(body_bytes, 0).unwrap_or(0);
                if format == FORMAT_EXTENSIBLE {
                    // The real format is the first two bytes of the sub-format GUID.
                    format = le16(body_bytes, 24).ok_or(PromptErrorReason::Truncated(
                        "WAVE_FORMAT_EXTENSIBLE fmt chunk",
                    ))?;
                }
                fmt = Some((
                    format,
                    le16(body_bytes, 2).unwrap_or(0),
                    le32(body_bytes, 4).unwrap_or(0),
                    le16(body_bytes, 14).unwrap_or(0),
                ));
            }
            b"data" => {
                let (format, channels, sample_rate, bits_per_sample) = fmt.ok_or_else(|| {
                    PromptErrorReason::Malformed("data chunk before fmt chunk".into())
                })?;
                if end > bytes.len() {
                    return Err(PromptErrorReason::Truncated(
                        "data chunk is shorter than its header says",
                    ));
                }
                return Ok(WavLayout {
                    format,
                    channels,
                    sample_rate,
                    bits_per_sample,
                    data_start: body,
                    data_len: size,
                });
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = end.saturating_add(size & 1);
    }
    Err(if fmt.is_none() {
        PromptErrorReason::Malformed("no fmt chunk".into())
    } else {
        PromptErrorReason::Truncated("no data chunk")
    })
}

/// Averages interleaved channels into one.
fn downmix(interleaved: &[i32], channels: usize) -> Vec<i32> {
    if channels <= 1 {
        return interleaved.to_vec();
    }
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<i32>() / channels as i32)
        .collect()
}

/// Reads integer or float PCM with hound, as 16-bit-range integers.
fn read_pcm(bytes: &[u8]) -> Result<Vec<i32>, PromptErrorReason> {
    let reader = hound::WavReader::new(Cursor::new(bytes)).map_err(hound_reason)?;
    let spec = reader.spec();
    match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .map(|s| {
                s.map(|v| (v * 32768.0).clamp(-32768.0, 32767.0) as i32)
                    .map_err(hound_reason)
            })
            .collect(),
        hound::SampleFormat::Int => {
            let bits = spec.bits_per_sample;
            // Bring every width to the 16-bit range.
            let shift_left = 16u16.saturating_sub(bits);
            let shift_right = bits.saturating_sub(16);
            reader
                .into_samples::<i32>()
                .map(|s| {
                    s.map(|v| (v << shift_left) >> shift_right)
                        .map_err(hound_reason)
                })
                .collect()
        }
    }
}

fn hound_reason(e: hound::Error) -> PromptErrorReason {
    match e {
        hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            PromptErrorReason::Truncated("samples end early")
        }
        hound::Error::IoError(io) => PromptErrorReason::Io(io),
        hound::Error::Unsupported => {
            PromptErrorReason::Unsupported("hound cannot read this WAV variant".into())
        }
        other => PromptErrorReason::Malformed(other.to_string()),
    }
}

/// Decodes a µ-law or A-law data chunk.
fn read_g711(bytes: &[u8], layout: &WavLayout) -> Result<Vec<i32>, PromptErrorReason> {
    if layout.bits_per_sample != 8 {
        return Err(PromptErrorReason::Unsupported(format!(
            "G.711 with {} bits per sample",
            layout.bits_per_sample
        )));
    }
    let table = if layout.format == FORMAT_ULAW {
        &ULAW_DECODE
    } else {
        &ALAW_DECODE
    };
    let data = bytes
        .get(layout.data_start..layout.data_start + layout.data_len)
        .ok_or(PromptErrorReason::Truncated("data chunk"))?;
    Ok(data
        .iter()
        .map(|&c| i32::from(table[usize::from(c)]))
        .collect())
}

fn to_i16(x: f32) -> i16 {
    x.round().clamp(-32768.0, 32767.0) as i16
}

/// Decodes a WAV image to 8 kHz mono samples.
fn decode_wav(bytes: &[u8]) -> Result<Vec<i16>, PromptErrorReason> {
    let layout = read_layout(bytes)?;
    if layout.channels == 0 {
        return Err(PromptErrorReason::Malformed("zero channels".into()));
    }
    if layout.sample_rate == 0 {
        return Err(PromptErrorReason::Malformed("sample rate 0".into()));
    }
    let interleaved = match layout.format {
        FORMAT_PCM | FORMAT_FLOAT => read_pcm(bytes)?,
        FORMAT_ULAW | FORMAT_ALAW => read_g711(bytes, &layout)?,
        other => {
            return Err(PromptErrorReason::Unsupported(format!(
                "WAV format tag {other}"
            )));
        }
    };
    let mono = downmix(&interleaved, usize::from(layout.channels));
    if mono.is_empty() {
        return Err(PromptErrorReason::NoSamples);
    }
    if layout.sample_rate == OUTPUT_RATE {
        return Ok(mono
            .iter()
            .map(|&v| v.clamp(-32768, 32767) as i16)
            .collect());
    }
    let as_float: Vec<f32> = mono.iter().map(|&v| v as f32).collect();
    let resampled = resample_to_8k(&as_float, layout.sample_rate);
    if resampled.is_empty() {
        return Err(PromptErrorReason::NoSamples);
    }
    Ok(resampled.into_iter().map(to_i16).collect())
}

/// A prompt ready to play: 8 kHz PCM plus both G.711 encodings, padded to
/// whole 20 ms frames with silence.
#[derive(Debug, Clone)]
pub struct Prompt {
    path: PathBuf,
    pcm: Vec<i16>,
    pcmu: Vec<u8>,
    pcma: Vec<u8>,
}

impl Prompt {
    /// Loads and converts a WAV file.
    pub fn load(path: impl AsRef<Path>) -> Result<Prompt, PromptError> {
        let path = path.as_ref();
        let fail = |reason| PromptError {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| fail(PromptErrorReason::Io(e)))?;
        let pcm = decode_wav(&bytes).map_err(fail)?;
        Ok(Self::from_samples(path.to_path_buf(), pcm))
    }

    /// Wraps 8 kHz mono samples (e.g. generated tones) as a prompt.
    pub fn from_samples(path: PathBuf, pcm: Vec<i16>) -> Prompt {
        let frames = pcm.len().div_ceil(FRAME_LEN);
        let mut pcmu = vec![G711::Pcmu.silence(); frames * FRAME_LEN];
        let mut pcma = vec![G711::Pcma.silence(); frames * FRAME_LEN];
        G711::Pcmu.encode_slice(&pcm, &mut pcmu);
        G711::Pcma.encode_slice(&pcm, &mut pcma);
        Prompt {
            path,
            pcm,
            pcmu,
            pcma,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 8 kHz mono samples (not padded).
    pub fn pcm(&self) -> &[i16] {
        &self.pcm
    }

    pub fn duration_ms(&self) -> u64 {
        self.pcm.len() as u64 * 1000 / u64::from(OUTPUT_RATE)
    }

    /// Number of 20 ms frames, the last one padded with silence.
    pub fn frame_count(&self) -> usize {
        self.pcmu.len() / FRAME_LEN
    }

    /// The `index`-th 160-byte frame in the given law, or `None` past the end.
    pub fn frame(&self, codec: G711, index: usize) -> Option<&[u8]> {
        let encoded = match codec {
            G711::Pcmu => &self.pcmu,
            G711::Pcma => &self.pcma,
        };
        let start = index.checked_mul(FRAME_LEN)?;
        encoded.get(start..start.checked_add(FRAME_LEN)?)
    }
}

/// Loads each prompt file once and shares it between calls.
#[derive(Debug, Default)]
pub struct PromptCache {
    prompts: Mutex<HashMap<PathBuf, Arc<Prompt>>>,
}

impl PromptCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached prompt, loading it on first use. Failures are not cached,
    /// so a fixed file is picked up on the next call.
    pub fn get(&self, path: impl AsRef<Path>) -> Result<Arc<Prompt>, PromptError> {
        let path = path.as_ref();
        // A panic elsewhere while holding the lock leaves the map intact.
        let mut prompts = self.prompts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = prompts.get(path) {
            return Ok(Arc::clone(p));
        }
        let prompt = Arc::new(Prompt::load(path)?);
        prompts.insert(path.to_path_buf(), Arc::clone(&prompt));
        Ok(prompt)
    }

    /// Forgets everything (on configuration reload); calls keep their `Arc`s.
    pub fn clear(&self) {
        self.prompts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    pub fn len(&self) -> usize {
        self.prompts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::{linear_to_alaw, linear_to_ulaw};
    use std::f64::consts::PI;

    fn sine(rate: u32, freq: f64, amplitude: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| amplitude * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin())
            .collect()
    }

    fn write_int(path: &Path, rate: u32, channels: u16, bits: u16, frames: &[Vec<i32>]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for f in frames {
            for &s in f {
                w.write_sample(s).unwrap();
            }
        }
        w.finalize().unwrap();
    }

    fn mono16(samples: &[f64]) -> Vec<Vec<i32>> {
        samples.iter().map(|&s| vec![s.round() as i32]).collect()
    }

    /// A minimal G.711 WAV: fmt (18 bytes, as WAVE_FORMAT_ALAW/MULAW require), fact, data.
    fn g711_wav(tag: u16, channels: u16, codes: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        let riff_len = 4 + (8 + 18) + (8 + 4) + 8 + codes.len() + (codes.len() & 1);
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(riff_len as u32).to_le_bytes());
        v.extend_from_slice(b"WAVE");
        v.extend_from_slice(b"fmt ");
        v.extend_from_slice(&18u32.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&8000u32.to_le_bytes());
        v.extend_from_slice(&(8000 * u32::from(channels)).to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&8u16.to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(b"fact");
        v.extend_from_slice(&4u32.to_le_bytes());
        v.extend_from_slice(&(codes.len() as u32 / u32::from(channels)).to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(codes.len() as u32).to_le_bytes());
        v.extend_from_slice(codes);
        if codes.len() % 2 == 1 {
            v.push(0);
        }
        v
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    fn middle(x: &[i16]) -> &[i16] {
        &x[x.len() / 4..x.len() * 3 / 4]
    }

    #[test]
    fn eight_khz_mono_used_as_is_and_framed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.wav");
        let samples: Vec<i32> = (0..500).map(|i| (i * 37 % 2000) - 1000).collect();
        let frames: Vec<Vec<i32>> = samples.iter().map(|&s| vec![s]).collect();
        write_int(&path, 8000, 1, 16, &frames);
        let p = Prompt::load(&path).unwrap();
        let expect: Vec<i16> = samples.iter().map(|&s| s as i16).collect();
        assert_eq!(p.pcm(), &expect[..]);
        assert_eq!(p.frame_count(), 4);
        assert_eq!(p.duration_ms(), 62);
        let f0 = p.frame(G711::Pcmu, 0).unwrap();
        assert_eq!(f0.len(), 160);
        assert_eq!(f0[1], linear_to_ulaw(expect[1]));
        assert_eq!(
            p.frame(G711::Pcma, 0).unwrap()[1],
            linear_to_alaw(expect[1])
        );
        // Last frame: 20 real samples, then silence.
        let last = p.frame(G711::Pcma, 3).unwrap();
        assert_eq!(last[19], linear_to_alaw(expect[499]));
        assert!(last[20..].iter().all(|&c| c == 0xD5));
        assert!(p.frame(G711::Pcmu, 3).unwrap()[20..]
            .iter()
            .all(|&c| c == 0xFF));
        assert_eq!(p.frame(G711::Pcmu, 4), None);
        assert_eq!(p.frame(G711::Pcmu, usize::MAX), None);
    }

    #[test]
    fn stereo_is_downmixed_and_widths_are_normalised() {
        let dir = tempfile::tempdir().unwrap();
        let stereo = dir.path().join("s.wav");
        write_int(
            &stereo,
            8000,
            2,
            16,
            &[vec![1000, 3000], vec![-2000, 0], vec![5, 7]],
        );
        assert_eq!(Prompt::load(&stereo).unwrap().pcm(), &[2000, -1000, 6]);

        let eight = dir.path().join("8.wav");
        write_int(&eight, 8000, 1, 8, &[vec![100], vec![-128], vec![0]]);
        assert_eq!(Prompt::load(&eight).unwrap().pcm(), &[25_600, -32_768, 0]);

        let twenty_four = dir.path().join("24.wav");
        write_int(
            &twenty_four,
            8000,
            1,
            24,
            &[vec![0x12_3456], vec![-0x80_0000]],
        );
        assert_eq!(Prompt::load(&twenty_four).unwrap().pcm(), &[0x1234, -32768]);

        let float = dir.path().join("f.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&float, spec).unwrap();
        for v in [0.5f32, -1.0, 2.0] {
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
        assert_eq!(Prompt::load(&float).unwrap().pcm(), &[16384, -32768, 32767]);
    }

    #[test]
    fn g711_wav_files() {
        let dir = tempfile::tempdir().unwrap();
        let pcm: Vec<i16> = (0..321)
            .map(|i| ((i * 211) % 16000 - 8000) as i16)
            .collect();
        let ulaw: Vec<u8> = pcm.iter().map(|&s| linear_to_ulaw(s)).collect();
        let alaw: Vec<u8> = pcm.iter().map(|&s| linear_to_alaw(s)).collect();
        let u = dir.path().join("u.wav");
        std::fs::write(&u, g711_wav(FORMAT_ULAW, 1, &ulaw)).unwrap();
        let a = dir.path().join("a.wav");
        std::fs::write(&a, g711_wav(FORMAT_ALAW, 1, &alaw)).unwrap();
        let pu = Prompt::load(&u).unwrap();
        let pa = Prompt::load(&a).unwrap();
        assert_eq!(pu.pcm().len(), 321);
        // Re-encoding decoded G.711 gives back the very same bytes.
        assert_eq!(pu.frame(G711::Pcmu, 0).unwrap(), &ulaw[..160]);
        assert_eq!(pa.frame(G711::Pcma, 1).unwrap(), &alaw[160..320]);
        for (i, &s) in pcm.iter().enumerate() {
            assert!((i32::from(pu.pcm()[i]) - i32::from(s)).abs() <= 256);
        }
        // Stereo A-law: channels averaged.
        let st = dir.path().join("st.wav");
        let codes = [linear_to_alaw(1000), linear_to_alaw(3000)];
        std::fs::write(&st, g711_wav(FORMAT_ALAW, 2, &codes)).unwrap();
        let expect = (i32::from(ALAW_DECODE[usize::from(codes[0])])
            + i32::from(ALAW_DECODE[usize::from(codes[1])]))
            / 2;
        assert_eq!(Prompt::load(&st).unwrap().pcm(), &[expect as i16]);
    }

    #[test]
    fn resampled_at_load_without_aliasing() {
        let dir = tempfile::tempdir().unwrap();
        let n = 22_050 / 2;
        let pass = dir.path().join("3k.wav");
        write_int(
            &pass,
            22_050,
            1,
            16,
            &mono16(&sine(22_050, 3000.0, 10_000.0, n)),
        );
        let p = Prompt::load(&pass).unwrap();
        assert_eq!(p.pcm().len(), 4000);
        let db = 20.0 * (rms(middle(p.pcm())) / (10_000.0 / 2f64.sqrt())).log10();
        assert!(db.abs() < 0.5, "3 kHz changed by {db:.2} dB");

        let stop = dir.path().join("6k.wav");
        write_int(
            &stop,
            22_050,
            1,
            16,
            &mono16(&sine(22_050, 6000.0, 10_000.0, n)),
        );
        let p = Prompt::load(&stop).unwrap();
        let db = 20.0 * (rms(middle(p.pcm())) / (10_000.0 / 2f64.sqrt())).log10();
        assert!(db < -30.0, "6 kHz only down {db:.1} dB");

        // 48 kHz stereo: resampled and downmixed.
        let hi = dir.path().join("48k.wav");
        let left = sine(48_000, 1000.0, 8000.0, 4800);
        let frames: Vec<Vec<i32>> = left.iter().map(|&s| vec![s as i32, s as i32]).collect();
        write_int(&hi, 48_000, 2, 16, &frames);
        let p = Prompt::load(&hi).unwrap();
        assert_eq!(p.pcm().len(), 800);
        let db = 20.0 * (rms(middle(p.pcm())) / (8000.0 / 2f64.sqrt())).log10();
        assert!(db.abs() < 0.2, "{db:.2} dB");
    }

    #[test]
    fn unusable_files_are_refused_with_file_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let check = |name: &str, bytes: &[u8], reason: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let err = Prompt::load(&path).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(name), "{msg}");
            assert!(msg.contains(reason), "{msg} should say {reason}");
        };
        check(
            "text.wav",
            b"hello, this is not audio at all",
            "not a RIFF/WAVE",
        );
        check("empty.wav", b"", "not a RIFF/WAVE");
        check("short.wav", b"RIFF\x10\0\0", "truncated");
        let good = g711_wav(FORMAT_ULAW, 1, &[0xFF; 400]);
        check("cut.wav", &good[..good.len() - 100], "truncated");
        check("nodata.wav", &good[..46], "no data chunk");
        check(
            "zero.wav",
            &g711_wav(FORMAT_ULAW, 1, &[]),
            "no audio samples",
        );
        let mut adpcm = g711_wav(FORMAT_ULAW, 1, &[0; 8]);
        adpcm[20] = 2; // MS ADPCM
        check(
            "adpcm.wav",
            &adpcm,
            "unsupported audio format: WAV format tag 2",
        );
        let mut no_channels = g711_wav(FORMAT_ULAW, 1, &[0; 8]);
        no_channels[22] = 0;
        check("nochan.wav", &no_channels, "zero channels");

        // hound's PCM path: data cut mid-way.
        let pcm = dir.path().join("pcm.wav");
        write_int(&pcm, 8000, 1, 16, &mono16(&[1.0; 400]));
        let bytes = std::fs::read(&pcm).unwrap();
        check("pcmcut.wav", &bytes[..bytes.len() - 301], "truncated");

        let missing = dir.path().join("missing.wav");
        let err = Prompt::load(&missing).unwrap_err();
        assert!(matches!(err.reason, PromptErrorReason::Io(_)));
        assert!(err.to_string().contains("missing.wav"));
    }

    #[test]
    fn layout_reader_never_panics_on_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let pcm_path = dir.path().join("fuzz.wav");
        write_int(&pcm_path, 16_000, 2, 16, &vec![vec![1, 2]; 40]);
        let pcm = std::fs::read(&pcm_path).unwrap();
        let mut x = 0x9E37_79B9u32;
        for good in [g711_wav(FORMAT_ALAW, 1, &[0xD5; 64]), pcm]
            .iter()
            .cycle()
            .take(3000)
        {
            let mut b = good.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = x as usize % b.len();
                b[i] = (x >> 24) as u8;
            }
            b.truncate(x as usize % (good.len() + 1));
            let _ = decode_wav(&b);
        }
    }

    #[test]
    fn cache_loads_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.wav");
        write_int(&path, 8000, 1, 16, &mono16(&[100.0; 160]));
        let cache = PromptCache::new();
        let a = cache.get(&path).unwrap();
        // Even after the file changes, the cached prompt is served.
        std::fs::write(&path, b"garbage").unwrap();
        let b = cache.get(&path).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.len(), 1);
        cache.clear();
        assert!(cache.is_empty());
        assert!(cache.get(&path).is_err());
        assert!(cache.is_empty());
    }
}
