//! A real browser SIP stack (JsSIP 3.13.8, bundled offline with esbuild) in
//! headless Chromium registers over our axum `/sip` WebSocket into the
//! rsipstack endpoint, and answers an OPTIONS that hotline sends back on the
//! registered flow (its Contact is an unroutable `.invalid` host, so only
//! the flow reaches it).

mod common;

use std::time::Duration;

use axum::http::header;
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use rsipstack::sip::{SipMessage, StatusCode};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;

use common::browser;
use common::sip::start_with;

const PAGE: &str = include_str!("browser/jssip.html");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jssip_registers_over_our_websocket_and_answers_on_the_flow() {
    browser::check_prerequisites();
    let bundle = browser::jssip_bundle();
    let pages = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/jssip.js",
            get(move || {
                let js = bundle.clone();
                async move { ([(header::CONTENT_TYPE, "application/javascript")], js) }
            }),
        );
    let server = start_with(pages).await;
    let mic = browser::tone_wav(440);
    let url = format!("http://{0}/?ws=ws://{0}/sip", server.http);

    let browser_run =
        tokio::spawn(
            async move { browser::run_pages(&mic, &[url], Duration::from_secs(60)).await },
        );

    let reg = server.registered().await;
    println!("JsSIP Contact: {}", reg.contact);
    assert!(reg.contact.contains(";transport=ws"), "{}", reg.contact);
    let uri = reg
        .contact
        .split_once('<')
        .and_then(|(_, r)| r.split_once('>'))
        .map(|(u, _)| u.to_string())
        .expect("contact uri");

    let options = format!(
        "OPTIONS {uri} SIP/2.0\r\n\
Via: SIP/2.0/WS {};branch=z9hG4bK-jssip-opt-1\r\n\
Max-Forwards: 70\r\n\
To: <sip:1001@127.0.0.1>\r\n\
From: <sip:hotline@127.0.0.1>;tag=srv2\r\n\
Call-ID: jssip-options-1\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n",
        server.sip_udp
    );
    let SipMessage::Request(options) = SipMessage::try_from(options.as_str()).expect("parse")
    else {
        panic!("not a request");
    };
    let key = TransactionKey::from_request(&options, TransactionRole::Client).expect("key");
    let mut tx = Transaction::new_client(key, options, server.endpoint.clone(), Some(reg.flow));
    tx.send().await.expect("send OPTIONS");
    let status = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tx.receive().await {
                Some(SipMessage::Response(r)) => return Some(r.status_code),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await
    .expect("JsSIP answered in time");
    assert_eq!(status, Some(StatusCode::OK));

    let results = browser_run.await.expect("browser task");
    println!("page: {}", results[0]);
    assert_eq!(results[0]["phase"], "done", "{}", results[0]);
    assert_eq!(results[0]["registered"], true);
    assert_eq!(results[0]["registerStatus"], 200);
    assert_eq!(results[0]["optionsFrom"], "sip:hotline@127.0.0.1");
}

const CALL_PAGE: &str = include_str!("browser/jssip-call.html");

/// The issue-7 flow end to end, minus the customer: hotline INVITEs a
/// registered browser agent over its WebSocket flow with our WebRTC offer;
/// JsSIP answers; two-way audio and an RFC 4733 key; the agent hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jssip_agent_takes_a_call_with_two_way_audio_dtmf_and_hangs_up() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    use rsipstack::dialog::dialog::DialogState;
    use rsipstack::dialog::invitation::InviteOption;
    use webrtc_leg::{BrowserMedia, LegConfig, WebRtcMedia};

    browser::check_prerequisites();
    let bundle = browser::jssip_bundle();
    let pages = Router::new()
        .route("/", get(|| async { Html(CALL_PAGE) }))
        .route(
            "/jssip.js",
            get(move || {
                let js = bundle.clone();
                async move { ([(header::CONTENT_TYPE, "application/javascript")], js) }
            }),
        );
    let server = start_with(pages).await;
    let media =
        WebRtcMedia::new(LegConfig::new(std::net::Ipv4Addr::LOCALHOST.into())).expect("media");
    let mic = browser::tone_wav(440);
    let url = format!(
        "http://{0}/?ws=ws://{0}/sip&digits=5&hold=1000",
        server.http
    );
    let browser_run =
        tokio::spawn(
            async move { browser::run_pages(&mic, &[url], Duration::from_secs(60)).await },
        );

    let reg = server.registered().await;
    let uri = reg
        .contact
        .split_once('<')
        .and_then(|(_, r)| r.split_once('>'))
        .map(|(u, _)| u.to_string())
        .expect("contact uri");

    let offered = media.offer().await.expect("offer");
    let option = InviteOption {
        caller: "sip:hotline@127.0.0.1".try_into().expect("caller"),
        callee: uri.as_str().try_into().expect("callee"),
        // The registered flow: the Contact's `.invalid` host resolves nowhere.
        destination: Some(reg.flow.get_addr().clone()),
        content_type: Some("application/sdp".into()),
        offer: Some(offered.sdp.clone().into_bytes()),
        contact: format!("sip:hotline@{};transport=ws", server.http)
            .as_str()
            .try_into()
            .expect("contact"),
        ..Default::default()
    };
    let (state_tx, mut states) = server.dialogs.new_dialog_state_channel();
    let (_dialog, result) = server
        .dialogs
        .do_invite_async(option, state_tx)
        .expect("INVITE");
    let resp = tokio::time::timeout(Duration::from_secs(15), result)
        .await
        .expect("answered in time")
        .expect("invite task")
        .expect("invite result")
        .1
        .expect("final response");
    assert_eq!(resp.status_code, StatusCode::OK);
    let answer = String::from_utf8_lossy(&resp.body).into_owned();
    println!("OFFER:\n{}\nANSWER:\n{answer}", offered.sdp);
    let leg = offered.accept(&answer).await.expect("accept answer");
    let law = leg.media.codec;

    let terminated = tokio::spawn(async move {
        while let Some(state) = states.recv().await {
            if let DialogState::Terminated(_, reason) = state {
                return Some(format!("{reason:?}"));
            }
        }
        None
    });
    let side = common::drive::drive(leg, 1000.0).await;
    let results = browser_run.await.expect("browser task");
    let page = &results[0];
    let ended = tokio::time::timeout(Duration::from_secs(5), terminated)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();

    let skip = 8000 / 2;
    let heard = &side.samples[skip.min(side.samples.len())..];
    println!(
        "{law}: rust got {} frames, 440 Hz share {:.2}, digits {:?}, stats {:?}; dialog {ended:?}",
        side.frames_in,
        common::audio::tone_share(heard, 440.0),
        side.digits,
        side.stats
    );
    println!("page: {page}");
    assert_eq!(page["phase"], "done", "{page}");
    assert_eq!(page["confirmed"], true);
    assert_eq!(page["endedBy"], "local", "the agent hung up");
    assert!(
        ended.is_some_and(|r| r.contains("Bye")),
        "BYE ended the dialog"
    );
    // Rust hears the agent's microphone.
    assert!(side.frames_in >= 100, "only {} frames", side.frames_in);
    assert!(common::audio::tone_share(heard, 440.0) > 0.5);
    assert_eq!(side.digits, "5");
    // The agent hears us.
    assert_eq!(
        page["inbound"]["mimeType"],
        format!("audio/{}", law.encoding_name())
    );
    assert!(page["inbound"]["audioLevel"].as_f64().unwrap_or(0.0) > 0.05);
    let hz = page["peakHz"].as_f64().unwrap_or(0.0);
    assert!((hz - 1000.0).abs() < 30.0, "agent hears a peak at {hz} Hz");
}

/// The other direction: the agent dials out from the browser. JsSIP's
/// INVITE carries Chromium's offer; `WebRtcMedia::answer` (ICE-lite) answers
/// it in our 200 OK; audio both ways, a key, and the agent hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jssip_agent_dials_out_and_we_answer_with_ice_lite() {
    use rsipstack::dialog::dialog::DialogState;
    use rsipstack::sip::Header;
    use webrtc_leg::{BrowserMedia, LegConfig, WebRtcMedia};

    browser::check_prerequisites();
    let bundle = browser::jssip_bundle();
    let pages = Router::new()
        .route("/", get(|| async { Html(CALL_PAGE) }))
        .route(
            "/jssip.js",
            get(move || {
                let js = bundle.clone();
                async move { ([(header::CONTENT_TYPE, "application/javascript")], js) }
            }),
        );
    let server = start_with(pages).await;
    let media =
        WebRtcMedia::new(LegConfig::new(std::net::Ipv4Addr::LOCALHOST.into())).expect("media");
    let mic = browser::tone_wav(440);
    let url = format!(
        "http://{0}/?ws=ws://{0}/sip&dial=sip:queue@127.0.0.1&digits=7&hold=1000",
        server.http
    );
    let browser_run =
        tokio::spawn(
            async move { browser::run_pages(&mic, &[url], Duration::from_secs(60)).await },
        );

    let mut tx = server.invited().await;
    let offer = String::from_utf8_lossy(&tx.original.body).into_owned();
    let (state_tx, mut states) = server.dialogs.new_dialog_state_channel();
    let contact = format!("sip:hotline@{};transport=ws", server.http);
    let dialog = server
        .dialogs
        .get_or_create_server_invite(
            &tx,
            state_tx,
            None,
            Some(contact.as_str().try_into().expect("contact")),
        )
        .expect("server dialog");
    let mut d = dialog.clone();
    tokio::spawn(async move {
        let _ = d.handle(&mut tx).await;
    });
    let leg = media
        .answer(&offer)
        .await
        .expect("answer the browser's offer");
    dialog
        .accept(
            Some(vec![Header::ContentType("application/sdp".into())]),
            Some(leg.sdp.clone().into_bytes()),
        )
        .expect("200 OK");
    let law = leg.media.codec;

    let terminated = tokio::spawn(async move {
        while let Some(state) = states.recv().await {
            if let DialogState::Terminated(_, reason) = state {
                return Some(format!("{reason:?}"));
            }
        }
        None
    });
    let side = common::drive::drive(leg, 1000.0).await;
    let results = browser_run.await.expect("browser task");
    let page = &results[0];
    let ended = tokio::time::timeout(Duration::from_secs(5), terminated)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    let skip = 8000 / 2;
    let heard = &side.samples[skip.min(side.samples.len())..];
    println!(
        "{law}: rust got {} frames, 440 Hz share {:.2}, digits {:?}; dialog {ended:?}",
        side.frames_in,
        common::audio::tone_share(heard, 440.0),
        side.digits,
    );
    println!("page: {page}");
    assert_eq!(page["phase"], "done", "{page}");
    assert_eq!(page["answerHasIceLite"], true);
    assert_eq!(page["endedBy"], "local", "the agent hung up");
    assert!(ended.is_some(), "BYE ended the dialog");
    assert!(side.frames_in >= 100, "only {} frames", side.frames_in);
    assert!(common::audio::tone_share(heard, 440.0) > 0.5);
    assert_eq!(side.digits, "7");
    assert_eq!(
        page["inbound"]["mimeType"],
        format!("audio/{}", law.encoding_name())
    );
    let hz = page["peakHz"].as_f64().unwrap_or(0.0);
    assert!((hz - 1000.0).abs() < 30.0, "agent hears a peak at {hz} Hz");
}
