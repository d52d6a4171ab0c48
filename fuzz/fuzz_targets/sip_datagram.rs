//! Every byte string a peer could send over UDP goes through the same checks
//! the server applies before the SIP stack: nothing may panic, and whatever we
//! pass on must be a request or response the stack can read.
#![no_main]

use hotline::sip::wire::{inspect_datagram, Verdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match inspect_datagram(data) {
        Verdict::Reply { bytes, status, .. } => {
            assert!((400..700).contains(&status));
            // Our own error replies must be valid SIP.
            assert!(hotline::sip::wire::reply_is_parseable(&bytes));
        }
        Verdict::Pass | Verdict::Drop(_) => {}
    }
    // The SDP and INFO parsers see peer text too.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(remote) = hotline::sip::sdp::parse(text) {
            let _ = hotline::sip::sdp::negotiate(&remote);
        }
        let _ = hotline::sip::info::dtmf_from_info("application/dtmf-relay", text);
    }
});
