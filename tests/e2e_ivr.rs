#[path = "common/audio.rs"]
mod audio;
mod common;
