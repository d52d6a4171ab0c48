pub mod audio;
pub mod browser;
pub mod drive;
pub mod sip;
