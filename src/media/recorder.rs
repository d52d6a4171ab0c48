//! Call recording: a stereo 8 kHz 16-bit WAV, customer on the left channel
//! and agent on the right, written frame by frame with hound.
//!
//! The header is rewritten about once per second of audio, so a process
//! killed mid-call leaves a playable file missing at most that second;
//! [`repair`] also fixes files whose header lags further behind.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

const SAMPLE_RATE: u32 = 8000;
const CHANNELS: u16 = 2;
const BYTES_PER_FRAME: u64 = 4;
/// Sample frames between header updates: one second.
const FLUSH_EVERY: u32 = SAMPLE_RATE;

#[derive(Debug, Error)]
pub enum RecorderError {
    #[error("recording {}: {source}", path.display())]
    Wav {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    #[error("recording {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("recording {}: cannot repair: {reason}", path.display())]
    Unrepairable { path: PathBuf, reason: &'static str },
}

/// Writes one call's recording.
pub struct Recorder {
    path: PathBuf,
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    frames_written: u64,
    frames_since_flush: u32,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("frames_written", &self.frames_written)
            .finish()
    }
}

impl Recorder {
    /// Creates (or truncates) the WAV file at `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Recorder, RecorderError> {
        let path = path.as_ref().to_path_buf();
        let spec = hound::WavSpec {
            channels: CHANNELS,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer =
            hound::WavWriter::create(&path, spec).map_err(|source| RecorderError::Wav {
                path: path.clone(),
                source,
            })?;
        Ok(Recorder {
            path,
            writer: Some(writer),
            frames_written: 0,
            frames_since_flush: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Recorded length so far, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.frames_written * 1000 / u64::from(SAMPLE_RATE)
    }

    fn wav_error(&self, source: hound::Error) -> RecorderError {
        RecorderError::Wav {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends one frame of each side (normally 160 samples each). If one side
    /// is shorter (or missing: pass `&[]`), it is padded with silence so the
    /// channels stay in step. No allocation.
    pub fn push(&mut self, customer: &[i16], agent: &[i16]) -> Result<(), RecorderError> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        let frames = customer.len().max(agent.len());
        let mut result = Ok(());
        for i in 0..frames {
            let left = customer.get(i).copied().unwrap_or(0);
            let right = agent.get(i).copied().unwrap_or(0);
            if let Err(e) = writer
                .write_sample(left)
                .and_then(|()| writer.write_sample(right))
            {
                result = Err(e);
                break;
            }
        }
        if let Err(e) = result {
            return Err(self.wav_error(e));
        }
        self.frames_written += frames as u64;
        self.frames_since_flush = self.frames_since_flush.saturating_add(frames as u32);
        if self.frames_since_flush >= FLUSH_EVERY {
            self.frames_since_flush = 0;
            // hound's flush writes the buffered samples and a header that matches them.
            if let Err(e) = writer.flush() {
                return Err(self.wav_error(e));
            }
        }
        Ok(())
    }

    /// Writes the final header and closes the file; returns the duration in ms.
    pub fn finish(mut self) -> Result<u64, RecorderError> {
        if let Some(writer) = self.writer.take() {
            writer.finalize().map_err(|e| self.wav_error(e))?;
        }
        Ok(self.duration_ms())
    }
}

/// What [`repair`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairReport {
    /// Whole sample frames (all channels) now in the file.
    pub sample_frames: u64,
    /// Whether any header field or the length had to change.
    pub changed: bool,
}

/// Makes a WAV left behind by a crash playable again: drops a trailing
/// partial sample frame and sets the RIFF and data sizes from the file's
/// real length. The data chunk must be the last chunk (as hound writes it).
pub fn repair(path: impl AsRef<Path>) -> Result<RepairReport, RecorderError> {
    let path = path.as_ref();
    let io = |source| RecorderError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |reason| RecorderError::Unrepairable {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    // Headers are small; read enough to find the data chunk.
    let mut head = Vec::new();
    Read::by_ref(&mut file)
        .take(4096)
        .read_to_end(&mut head)
        .map_err(io)?;
    if head.get(0..4) != Some(b"RIFF") || head.get(8..12) != Some(b"WAVE") {
        return Err(bad("not a RIFF/WAVE file"));
    }
    let le32 = |at: usize| {
        head.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut block_align: Option<u64> = None;
    let mut at = 12usize;
    let data_start = loop {
        let (Some(id), Some(size)) = (head.get(at..at + 4), le32(at + 4)) else {
            return Err(bad("no data chunk in the first 4 KiB"));
        };
        if id == b"data" {
            break (at + 8) as u64;
        }
        if id == b"fmt " {
            block_align = head
                .get(at + 20..at + 22)
                .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])));
        }
        at = at + 8 + size as usize + (size as usize & 1);
    };
    let block_align = block_align
        .filter(|&b| b > 0)
        .ok_or_else(|| bad("no usable fmt chunk before the data chunk"))?;
    let data_len = file_len.saturating_sub(data_start);
    let data_len = (data_len / block_align * block_align).min(u64::from(u32::MAX) - data_start);
    let new_len = data_start + data_len;
    let riff_size = (new_len - 8) as u32;
    let data_size = data_len as u32;
    let old_riff = le32(4).unwrap_or(0);
    let old_data = le32(data_start as usize - 4).unwrap_or(0);
    let changed = new_len != file_len || old_riff != riff_size || old_data != data_size;
    if changed {
        file.set_len(new_len).map_err(io)?;
        file.seek(SeekFrom::Start(4)).map_err(io)?;
        file.write_all(&riff_size.to_le_bytes()).map_err(io)?;
        file.seek(SeekFrom::Start(data_start - 4)).map_err(io)?;
        file.write_all(&data_size.to_le_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    Ok(RepairReport {
        sample_frames: data_len / block_align,
        changed,
    })
}

/// Stereo frame size, for callers sizing files.
pub const RECORDING_BYTES_PER_SAMPLE_FRAME: u64 = BYTES_PER_FRAME;

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(value: i16) -> [i16; 160] {
        [value; 160]
    }

    fn read_back(path: &Path) -> (hound::WavSpec, Vec<i16>) {
        let mut r = hound::WavReader::open(path).unwrap();
        let samples = r.samples::<i16>().collect::<Result<Vec<_>, _>>().unwrap();
        (r.spec(), samples)
    }

    #[test]
    fn records_stereo_customer_left_agent_right() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.wav");
        let mut rec = Recorder::create(&path).unwrap();
        rec.push(&frame(100), &frame(-200)).unwrap();
        rec.push(&frame(7), &[]).unwrap(); // agent silent this tick
        rec.push(&[1, 2], &[3, 4, 5]).unwrap();
        assert_eq!(rec.finish().unwrap(), 40);
        let (spec, s) = read_back(&path);
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 8000, 16)
        );
        assert_eq!(s.len(), (160 + 160 + 3) * 2);
        assert_eq!(&s[..4], &[100, -200, 100, -200]);
        assert_eq!(&s[320..324], &[7, 0, 7, 0]);
        assert_eq!(&s[640..], &[1, 3, 2, 4, 0, 5]);
    }

    #[test]
    fn header_stays_valid_while_recording() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.wav");
        let mut rec = Recorder::create(&path).unwrap();
        for i in 0..60 {
            rec.push(&frame(i), &frame(-i)).unwrap();
        }
        // 1.2 s pushed: the first second is on disk with a matching header,
        // readable while the call goes on.
        let (_, s) = read_back(&path);
        assert_eq!(s.len(), 8000 * 2);
        assert_eq!(&s[s.len() - 2..], &[49, -49]);
        rec.finish().unwrap();
        assert_eq!(read_back(&path).1.len(), 60 * 160 * 2);
    }

    #[test]
    fn repair_after_crash_and_mid_sample_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crash.wav");
        let mut rec = Recorder::create(&path).unwrap();
        // Exactly one second: the last push flushes, so disk and header agree.
        for i in 0..50 {
            rec.push(&frame(i), &frame(1000 + i)).unwrap();
        }
        // Crash: no finalize.
        std::mem::forget(rec);
        assert_eq!(read_back(&path).1.len(), 8000 * 2);
        // The OS wrote part of a later buffer, ending in the middle of a sample.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0x10, 0x00, 0x20, 0x00, 0x30, 0x00, 0x40]);
        std::fs::write(&path, &bytes).unwrap();

        let report = repair(&path).unwrap();
        assert_eq!(
            report,
            RepairReport {
                sample_frames: 8001,
                changed: true
            }
        );
        let (spec, s) = read_back(&path);
        assert_eq!(spec.channels, 2);
        assert_eq!(s.len(), 8001 * 2);
        assert_eq!(&s[..2], &[0, 1000]);
        assert_eq!(&s[s.len() - 4..], &[49, 1049, 0x10, 0x20]);
        // Already good: nothing to do.
        assert!(!repair(&path).unwrap().changed);

        // A header that was never updated (sizes 0) is repaired too.
        let stale = dir.path().join("stale.wav");
        let mut bytes = std::fs::read(&path).unwrap();
        let data = bytes.windows(4).position(|w| w == b"data").unwrap();
        bytes[4..8].copy_from_slice(&0u32.to_le_bytes());
        bytes[data + 4..data + 8].copy_from_slice(&0u32.to_le_bytes());
        std::fs::write(&stale, &bytes).unwrap();
        assert_eq!(repair(&stale).unwrap().sample_frames, 8001);
        assert_eq!(read_back(&stale).1.len(), 8001 * 2);

        let junk = dir.path().join("junk.wav");
        std::fs::write(&junk, b"not a wav").unwrap();
        assert!(matches!(
            repair(&junk),
            Err(RecorderError::Unrepairable { .. })
        ));
        assert!(matches!(
            repair(dir.path().join("absent.wav")),
            Err(RecorderError::Io { .. })
        ));
    }

    #[test]
    fn repair_after_crash_with_partly_written_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partial.wav");
        let mut rec = Recorder::create(&path).unwrap();
        for i in 0..75 {
            rec.push(&frame(i), &frame(1000 + i)).unwrap();
        }
        // Whatever the write buffer had already passed to the OS stays; the rest is lost.
        std::mem::forget(rec);
        let report = repair(&path).unwrap();
        assert!(report.sample_frames >= 8000 && report.sample_frames <= 75 * 160);
        let (_, s) = read_back(&path);
        assert_eq!(s.len() as u64, report.sample_frames * 2);
        for (k, pair) in s.chunks(2).enumerate() {
            let i = (k / 160) as i16;
            assert_eq!(pair, &[i, 1000 + i], "sample frame {k}");
        }
    }
}
