//! A minimal SIP server for the WebSocket tests: an rsipstack endpoint with a
//! UDP listener (as hotline has), our axum `/sip` bridge in front of it, and
//! a dispatcher that accepts every REGISTER (no digest: hotline's registrar
//! and digest are not part of the scratch crate).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use rsipstack::dialog::dialog::Dialog;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::{Header, Method, StatusCode};
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipConnection, TransportLayer};
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;
use webrtc_leg::ws::{self, SipWs};

/// A registration the dispatcher accepted.
#[derive(Debug)]
pub struct Registered {
    /// The Contact header value.
    pub contact: String,
    /// The connection the REGISTER came on: the browser's flow.
    pub flow: SipConnection,
}

pub struct TestSip {
    pub http: SocketAddr,
    pub sip_udp: SocketAddr,
    pub endpoint: Arc<EndpointInner>,
    pub dialogs: Arc<DialogLayer>,
    registrations: Mutex<mpsc::UnboundedReceiver<Registered>>,
    invites: Mutex<mpsc::UnboundedReceiver<Transaction>>,
    pub cancel: CancellationToken,
    /// Extra routes (a test page) can be merged by the caller before start.
    _priv: (),
}

impl TestSip {
    /// The next new INVITE (not yet answered: the test does that).
    pub async fn invited(&self) -> Transaction {
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            self.invites.lock().await.recv(),
        )
        .await
        .expect("INVITE in time")
        .expect("dispatcher alive")
    }

    pub async fn registered(&self) -> Registered {
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            self.registrations.lock().await.recv(),
        )
        .await
        .expect("REGISTER in time")
        .expect("dispatcher alive")
    }
}

impl Drop for TestSip {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub async fn start() -> TestSip {
    start_with(Router::new()).await
}

/// Like hotline's `wire::inspect_datagram` for one case: an unknown method
/// gets a stateless 501.
fn test_check(frame: &[u8]) -> ws::FrameVerdict {
    if frame.starts_with(b"FROB ") {
        ws::FrameVerdict::Reply(
            b"SIP/2.0 501 Not Implemented\r\nContent-Length: 0\r\n\r\n".to_vec(),
        )
    } else {
        ws::FrameVerdict::Pass
    }
}

/// Starts the endpoint, the dispatcher and an HTTP server with `/sip` plus
/// `extra` routes, all on 127.0.0.1.
pub async fn start_with(extra: Router) -> TestSip {
    let cancel = CancellationToken::new();
    let transport = TransportLayer::new(cancel.child_token());
    let udp = UdpConnection::create_connection(
        "127.0.0.1:0".parse().expect("addr"),
        None,
        Some(cancel.child_token()),
    )
    .await
    .expect("udp");
    let sip_udp = udp.get_addr().get_socketaddr().expect("udp addr");
    transport.add_transport(SipConnection::Udp(udp));
    let endpoint = rsipstack::EndpointBuilder::new()
        .with_user_agent("hotline-webrtc-leg-test")
        .with_transport_layer(transport)
        .with_cancel_token(cancel.child_token())
        .build();
    let mut incoming = endpoint.incoming_transactions().expect("incoming");
    let inner = endpoint.inner.clone();
    let dialogs = Arc::new(DialogLayer::new(inner.clone()));
    tokio::spawn(async move { endpoint.serve().await });
    let layer = dialogs.clone();

    let (reg_tx, reg_rx) = mpsc::unbounded_channel();
    let (inv_tx, inv_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(mut tx) = incoming.recv().await {
            let method = tx.original.method;
            let in_dialog = tx
                .original
                .headers
                .iter()
                .any(|h| h.name().eq_ignore_ascii_case("To") && h.value().contains("tag="));
            if in_dialog && method != Method::Options {
                // BYE, INFO, re-INVITE: the dialog they belong to handles them.
                match layer.match_dialog(&tx) {
                    Some(Dialog::Invite(mut d)) => {
                        tokio::spawn(async move {
                            let _ = d.handle(&mut tx).await;
                        });
                    }
                    _ => {
                        let _ = tx.reply(StatusCode::CallTransactionDoesNotExist).await;
                    }
                }
                continue;
            }
            match method {
                Method::Register => {
                    let contact = tx
                        .original
                        .headers
                        .iter()
                        .find(|h| h.name().eq_ignore_ascii_case("Contact"))
                        .map(|h| h.value().to_string())
                        .unwrap_or_default();
                    let headers = vec![Header::Other("Contact".into(), contact.clone())];
                    if let Some(flow) = tx.connection.clone() {
                        let _ = reg_tx.send(Registered { contact, flow });
                    }
                    let _ = tx.reply_with(StatusCode::OK, headers, None).await;
                }
                Method::Invite => {
                    let _ = inv_tx.send(tx);
                }
                Method::Ack => {}
                _ => {
                    let _ = tx.reply(StatusCode::OK).await;
                }
            }
        }
    });

    let app = Router::new()
        .route("/sip", get(ws::upgrade))
        .with_state(
            SipWs::new(inner.clone(), false, cancel.child_token())
                .with_frame_check(Arc::new(test_check)),
        )
        .merge(extra);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http = listener.local_addr().expect("http addr");
    let http_cancel = cancel.child_token();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { http_cancel.cancelled().await })
        .await
    });

    TestSip {
        http,
        sip_udp,
        endpoint: inner,
        dialogs,
        registrations: Mutex::new(reg_rx),
        invites: Mutex::new(inv_rx),
        cancel,
        _priv: (),
    }
}
