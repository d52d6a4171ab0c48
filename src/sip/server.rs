//! The tokio shell around the SIP stack: binds UDP and TCP, runs the
//! transaction layer, and dispatches each new server transaction.
//!
//! One task (the dispatcher) owns the registrar, the digest nonces and the
//! brute-force guard; other parts of the server ask it through [`SipHandle`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rsipstack::sip::{Header, Method, Request, StatusCode};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::{SipAddr, SipConnection};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use super::digest::{Credentials, DigestAuth, Rejection};
use super::guard::{AuthGuard, GuardPolicy};
use super::leg::InboundCall;
use super::registrar::{
    Binding, Change, RegisterOutcome, RegisterRequest, Registrar, RegistrarPolicy,
};
use super::{count_response, wire, USER_AGENT};
use crate::clock::Clock;

/// What the SIP server needs to know at start.
#[derive(Clone)]
pub struct SipSettings {
    pub listen: SocketAddr,
    pub domain: String,
    pub registrar: RegistrarPolicy,
    pub guard: GuardPolicy,
    pub nonce_ttl_ms: u64,
    pub digest_algorithms: Vec<super::digest::Algorithm>,
    /// agent id → digest password.
    pub passwords: HashMap<String, String>,
    /// Bindings saved before the last stop.
    pub restored: Vec<Binding>,
    /// Told (agent, has a live registration) whenever that may have changed.
    pub presence: Option<mpsc::UnboundedSender<(String, bool)>>,
    /// Ping period of browsers' WebSockets (`None`: no pings).
    pub ws_keepalive: Option<Duration>,
}

/// Requests other parts of the server make of the SIP dispatcher.
enum Command {
    Lookup {
        aor: String,
        reply: oneshot::Sender<Vec<Binding>>,
    },
    /// A browser's WebSocket closed: its bindings go with it.
    FlowClosed(SocketAddr),
}

/// A cheap handle to the running SIP server.
#[derive(Clone)]
pub struct SipHandle {
    commands: mpsc::Sender<Command>,
    pub local_addr: SocketAddr,
    dialogs: Arc<rsipstack::dialog::dialog_layer::DialogLayer>,
    contact: rsipstack::sip::Uri,
    domain: String,
    websocket: super::ws::SipWs,
    flows_closed: tokio::sync::broadcast::Sender<SocketAddr>,
}

impl SipHandle {
    /// State of the `/sip` WebSocket route (SIP over WebSocket for browser
    /// softphones), served on the HTTP listener; `secure` under HTTPS (wss:).
    pub fn websocket(&self, secure: bool) -> super::ws::SipWs {
        self.websocket.clone().secure(secure)
    }

    /// Place an outbound call (an agent's phone, a customer through a trunk).
    pub fn invite(
        &self,
        call: super::leg::OutboundCall,
    ) -> Result<
        (
            super::leg::Leg,
            mpsc::UnboundedReceiver<super::leg::LegEvent>,
        ),
        String,
    > {
        // A leg down a browser's WebSocket ends when that socket closes.
        let closed_flows =
            super::leg::is_websocket(&call.transport).then(|| self.flows_closed.subscribe());
        super::leg::outbound(
            self.dialogs.clone(),
            self.contact.clone(),
            &self.domain,
            call,
            closed_flows,
        )
    }

    /// Live contacts of an agent (empty when not registered).
    pub async fn lookup(&self, aor: &str) -> Vec<Binding> {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Lookup {
                aor: aor.to_string(),
                reply: tx,
            })
            .await
            .is_err()
        {
            return vec![];
        }
        rx.await.unwrap_or_default()
    }
}

/// Counts every response the stack sends, by class, for `/metrics`.
struct ResponseCounter;

impl MessageInspector for ResponseCounter {
    fn before_send(
        &self,
        msg: rsipstack::sip::SipMessage,
        _dest: Option<&SipAddr>,
    ) -> rsipstack::sip::SipMessage {
        if let rsipstack::sip::SipMessage::Response(r) = &msg {
            count_response(u16::from(r.status_code.clone()));
        }
        msg
    }

    fn after_received(
        &self,
        msg: rsipstack::sip::SipMessage,
        _from: Option<&SipAddr>,
    ) -> rsipstack::sip::SipMessage {
        msg
    }
}

/// Start the SIP server; it runs until `cancel` fires.
pub async fn start(
    settings: SipSettings,
    clock: Arc<dyn Clock>,
    changes: Option<mpsc::UnboundedSender<Change>>,
    calls: Option<mpsc::Sender<InboundCall>>,
    cancel: CancellationToken,
) -> anyhow::Result<SipHandle> {
    let ws_keepalive = settings.ws_keepalive;
    let udp = tokio::net::UdpSocket::bind(settings.listen)
        .await
        .with_context(|| format!("cannot bind SIP UDP {}", settings.listen))?;
    let local_addr = udp.local_addr()?;
    // The stack binds TCP when it starts serving; bind once here so a port
    // already in use is reported at start, not lost in a log line.
    let tcp_addr = SocketAddr::new(local_addr.ip(), local_addr.port());
    drop(
        std::net::TcpListener::bind(tcp_addr)
            .with_context(|| format!("cannot bind SIP TCP {tcp_addr}"))?,
    );

    let transport = rsipstack::transport::TransportLayer::new(cancel.child_token());
    let udp_conn = rsipstack::transport::udp::UdpConnection::from_socket(
        Arc::new(super::socket::InspectingUdpSocket::new(udp)),
        None,
        Some(cancel.child_token()),
    )
    .await
    .map_err(|e| anyhow::anyhow!("SIP UDP transport: {e}"))?;
    transport.add_transport(SipConnection::Udp(udp_conn));
    let tcp = rsipstack::transport::tcp_listener::TcpListenerConnection::new(tcp_addr, None)
        .await
        .map_err(|e| anyhow::anyhow!("SIP TCP transport: {e}"))?;
    transport.add_transport(SipConnection::TcpListener(tcp));

    let endpoint = rsipstack::EndpointBuilder::new()
        .with_user_agent(USER_AGENT)
        .with_transport_layer(transport)
        .with_cancel_token(cancel.child_token())
        .with_inspector(Box::new(ResponseCounter))
        .build();
    let mut incoming = endpoint
        .incoming_transactions()
        .map_err(|e| anyhow::anyhow!("SIP endpoint: {e}"))?;
    let dialogs = Arc::new(rsipstack::dialog::dialog_layer::DialogLayer::new(
        endpoint.inner.clone(),
    ));
    let contact = rsipstack::sip::Uri::try_from(format!("sip:hotline@{local_addr}").as_str())
        .map_err(|e| anyhow::anyhow!("local contact: {e}"))?;
    let endpoint_inner = endpoint.inner.clone();
    tokio::spawn(async move { endpoint.serve().await });

    let mut secret = [0u8; 32];
    rand::fill(&mut secret);
    let now = clock.now_ms();
    let mut registrar = Registrar::new(settings.registrar);
    registrar.restore(settings.restored.clone(), now);
    metrics::gauge!("hotline_registrations").set(registrar.live_count(now) as f64);
    let handle_dialogs = dialogs.clone();
    let handle_contact = contact.clone();
    let handle_domain = settings.domain.clone();
    let mut dispatcher = Dispatcher {
        auth: DigestAuth::new(&settings.domain, settings.nonce_ttl_ms, secret)
            .with_algorithms(settings.digest_algorithms.clone()),
        guard: AuthGuard::new(settings.guard),
        registrar,
        settings,
        clock,
        changes,
        calls,
        dialogs,
        contact,
    };
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<Command>(256);
    let closed_tx = cmd_tx.clone();
    let (flows_closed, _) = tokio::sync::broadcast::channel(64);
    let flows_closed_tx = flows_closed.clone();
    let websocket = super::ws::SipWs::new(
        endpoint_inner,
        ws_keepalive,
        cancel.child_token(),
        Arc::new(move |peer| {
            // No receiver (no call on a browser) is not an error.
            let _ = flows_closed_tx.send(peer);
            if closed_tx.try_send(Command::FlowClosed(peer)).is_err() {
                warn!(%peer, "SIP dispatcher busy; the closed flow's bindings expire on their own");
            }
        }),
    );
    info!(%local_addr, "SIP listening on UDP and TCP");

    tokio::spawn(async move {
        let mut housekeeping = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                tx = incoming.recv() => match tx {
                    Some(tx) => dispatcher.on_transaction(tx).await,
                    None => break,
                },
                Some(cmd) = cmd_rx.recv() => dispatcher.on_command(cmd),
                _ = housekeeping.tick() => dispatcher.housekeeping(),
            }
        }
        info!("SIP dispatcher stopped");
    });

    Ok(SipHandle {
        commands: cmd_tx,
        local_addr,
        dialogs: handle_dialogs,
        contact: handle_contact,
        domain: handle_domain,
        websocket,
        flows_closed,
    })
}

struct Dispatcher {
    settings: SipSettings,
    auth: DigestAuth,
    guard: AuthGuard,
    registrar: Registrar,
    clock: Arc<dyn Clock>,
    changes: Option<mpsc::UnboundedSender<Change>>,
    calls: Option<mpsc::Sender<InboundCall>>,
    dialogs: Arc<rsipstack::dialog::dialog_layer::DialogLayer>,
    contact: rsipstack::sip::Uri,
}

impl Dispatcher {
    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Lookup { aor, reply } => {
                let _ = reply.send(self.registrar.lookup(&aor, self.clock.now_ms()));
            }
            Command::FlowClosed(peer) => {
                let removed = self.registrar.drop_flow(peer);
                for c in &removed {
                    if let Change::Removed { aor, contact } = c {
                        info!(%aor, %contact, %peer, "WebSocket closed: unregistered");
                    }
                }
                self.persist(removed);
                let now = self.clock.now_ms();
                metrics::gauge!("hotline_registrations").set(self.registrar.live_count(now) as f64);
            }
        }
    }

    fn housekeeping(&mut self) {
        let now = self.clock.now_ms();
        let removed = self.registrar.purge(now);
        self.persist(removed);
        self.auth.purge(now);
        self.guard.purge(now);
        metrics::gauge!("hotline_registrations").set(self.registrar.live_count(now) as f64);
    }

    fn persist(&self, changes: Vec<Change>) {
        let now = self.clock.now_ms();
        if let Some(presence) = &self.settings.presence {
            let mut aors: Vec<&str> = changes
                .iter()
                .map(|c| match c {
                    Change::Saved(b) => b.aor.as_str(),
                    Change::Removed { aor, .. } => aor.as_str(),
                })
                .collect();
            aors.dedup();
            for aor in aors {
                let _ = presence.send((aor.to_string(), self.registrar.is_registered(aor, now)));
            }
        }
        if let Some(tx) = &self.changes {
            for c in changes {
                let _ = tx.send(c);
            }
        }
    }

    async fn on_transaction(&mut self, mut tx: Transaction) {
        let method = tx.original.method;
        let call_id = header_value(&tx.original, "Call-ID").unwrap_or_default();
        let span = info_span!("sip", %method, call_id = %call_id);
        let _entered = span.enter();
        metrics::counter!("hotline_sip_requests_total", "method" => method.to_string())
            .increment(1);
        if method == Method::Ack {
            return;
        }
        let source = request_source(&tx);
        let now = self.clock.now_ms();
        if let Some(src) = source {
            if self.guard.is_blocked(src.ip(), now) {
                debug!(%src, "request from blocked source");
                spawn_reply(tx, StatusCode::Forbidden, vec![]);
                return;
            }
        }
        if has_to_tag(&tx.original) && method != Method::Register && method != Method::Options {
            self.in_dialog(tx);
            return;
        }
        match method {
            Method::Register => {
                drop(_entered);
                self.on_register(&mut tx, source, now)
                    .instrument(span.clone())
                    .await
            }
            Method::Options => {
                let headers = vec![
                    other("Allow", wire::ALLOWED_METHODS),
                    other(
                        "Accept",
                        "application/sdp, application/dtmf-relay, application/dtmf",
                    ),
                    other("Accept-Language", "zh-CN, en"),
                    other("Supported", ""),
                ];
                spawn_reply(tx, StatusCode::OK, headers);
            }
            Method::Invite => self.on_invite(tx, call_id),
            Method::Bye | Method::Info | Method::Refer => {
                spawn_reply(tx, StatusCode::CallTransactionDoesNotExist, vec![]);
            }
            _ => spawn_reply(
                tx,
                StatusCode::NotImplemented,
                vec![other("Allow", wire::ALLOWED_METHODS)],
            ),
        }
    }

    /// A request inside an existing dialog: the dialog handles it.
    fn in_dialog(&mut self, mut tx: Transaction) {
        match self.dialogs.match_dialog(&tx) {
            Some(rsipstack::dialog::dialog::Dialog::Invite(mut d)) => {
                tokio::spawn(async move {
                    if let Err(e) = d.handle(&mut tx).await {
                        debug!(error = %e, "in-dialog request failed");
                    }
                });
            }
            _ => spawn_reply(tx, StatusCode::CallTransactionDoesNotExist, vec![]),
        }
    }

    /// A new INVITE: create the dialog and hand the call to the call manager.
    fn on_invite(&mut self, mut tx: Transaction, call_id: String) {
        let Some(calls) = self.calls.clone() else {
            spawn_reply(tx, StatusCode::TemporarilyUnavailable, vec![]);
            return;
        };
        let req = &tx.original;
        let caller = header_value(req, "P-Asserted-Identity")
            .and_then(|v| uri_user(&v))
            .or_else(|| header_value(req, "From").and_then(|v| uri_user(&v)))
            .unwrap_or_else(|| "anonymous".to_string());
        let called = uri_user(&req.uri.to_string()).unwrap_or_default();
        let offer = (!req.body.is_empty()).then(|| String::from_utf8_lossy(&req.body).into_owned());
        let source = request_source(&tx);
        let (state_tx, state_rx) = mpsc::unbounded_channel();
        let dialog = match self.dialogs.get_or_create_server_invite(
            &tx,
            state_tx,
            None,
            Some(self.contact.clone()),
        ) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot create dialog");
                spawn_reply(tx, StatusCode::ServerInternalError, vec![]);
                return;
            }
        };
        let call = super::leg::inbound(
            dialog.clone(),
            state_rx,
            self.dialogs.clone(),
            super::leg::InviteFacts {
                call_id,
                caller,
                called,
                offer,
                source,
            },
        );
        let mut d = dialog;
        tokio::spawn(async move {
            // Runs the INVITE transaction: 100 Trying, our final answer, ACK or CANCEL.
            if let Err(e) = d.handle(&mut tx).await {
                debug!(error = %e, "INVITE transaction ended with error");
            }
        });
        if let Err(e) = calls.try_send(call) {
            warn!("call manager is not keeping up; rejecting call");
            let call = match e {
                mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
            };
            call.leg.reject(503, Some("overloaded"));
        }
    }

    async fn on_register(&mut self, tx: &mut Transaction, source: Option<SocketAddr>, now: u64) {
        let req = &tx.original;
        let Some(aor) = header_value(req, "To").and_then(|to| uri_user(&to)) else {
            reply_reason(tx, StatusCode::BadRequest, "Bad To", vec![]).await;
            return;
        };
        let Some(password) = self.settings.passwords.get(&aor).cloned() else {
            debug!(%aor, "REGISTER for unknown user");
            reply(tx, StatusCode::NotFound, vec![]).await;
            return;
        };
        let Some(source) = source else {
            reply_reason(tx, StatusCode::BadRequest, "Bad Via", vec![]).await;
            return;
        };
        let creds = header_value(req, "Authorization").and_then(|v| Credentials::parse(&v));
        let Some(creds) = creds else {
            self.challenge(tx, now, false).await;
            return;
        };
        if creds.username != aor {
            self.auth_failed(source.ip(), &aor, "username does not match To", now);
            reply(tx, StatusCode::Forbidden, vec![]).await;
            return;
        }
        match self.auth.verify(&creds, "REGISTER", &password, now) {
            Ok(()) => self.guard.record_success(source.ip()),
            Err(Rejection::Stale) => {
                self.challenge(tx, now, true).await;
                return;
            }
            Err(Rejection::Unusable(why)) => {
                debug!(%aor, why, "credentials not usable; challenging again");
                self.challenge(tx, now, false).await;
                return;
            }
            Err(Rejection::Failed(why)) => {
                self.auth_failed(source.ip(), &aor, why, now);
                reply(tx, StatusCode::Forbidden, vec![]).await;
                return;
            }
        }

        let register = RegisterRequest {
            aor: aor.clone(),
            contact_headers: header_values(req, "Contact"),
            expires_header: header_value(req, "Expires"),
            call_id: header_value(req, "Call-ID").unwrap_or_default(),
            cseq: header_value(req, "CSeq")
                .and_then(|c| c.split_whitespace().next().and_then(|n| n.parse().ok()))
                .unwrap_or(0),
            source,
            transport: flow_transport(tx)
                .or_else(|| via_transport(req))
                .unwrap_or_else(|| "UDP".into()),
            user_agent: header_value(req, "User-Agent").unwrap_or_default(),
        };
        match self.registrar.register(&register, now) {
            RegisterOutcome::Ok { bindings, changes } => {
                for c in &changes {
                    match c {
                        Change::Saved(b) => {
                            info!(aor = %b.aor, contact = %b.contact, %source, transport = %b.transport, expires_s = b.remaining_secs(now), "registered")
                        }
                        Change::Removed { aor, contact } => info!(%aor, %contact, "unregistered"),
                    }
                }
                self.persist(changes);
                metrics::gauge!("hotline_registrations").set(self.registrar.live_count(now) as f64);
                let mut headers: Vec<Header> = bindings
                    .iter()
                    .map(|b| {
                        other(
                            "Contact",
                            &format!("<{}>;expires={}", b.contact, b.remaining_secs(now)),
                        )
                    })
                    .collect();
                headers.push(other(
                    "Date",
                    &chrono::Utc::now()
                        .format("%a, %d %b %Y %H:%M:%S GMT")
                        .to_string(),
                ));
                reply(tx, StatusCode::OK, headers).await;
            }
            RegisterOutcome::IntervalTooBrief { min_expires } => {
                reply(
                    tx,
                    StatusCode::IntervalTooBrief,
                    vec![other("Min-Expires", &min_expires.to_string())],
                )
                .await;
            }
            RegisterOutcome::Invalid(reason) => {
                reply_reason(tx, StatusCode::BadRequest, reason, vec![]).await
            }
            RegisterOutcome::OutOfOrder => {
                reply_reason(
                    tx,
                    StatusCode::ServerInternalError,
                    "Out Of Order CSeq",
                    vec![],
                )
                .await
            }
            RegisterOutcome::TooManyContacts => {
                reply_reason(tx, StatusCode::Forbidden, "Too Many Contacts", vec![]).await
            }
        }
    }

    fn auth_failed(&mut self, ip: IpAddr, aor: &str, why: &str, now: u64) {
        metrics::counter!("hotline_sip_auth_failures_total").increment(1);
        warn!(source = %ip, %aor, why, "authentication failed");
        if self.guard.record_failure(ip, now) {
            warn!(source = %ip, "too many failed authentications: source blocked");
            metrics::counter!("hotline_sip_blocked_sources_total").increment(1);
        }
    }

    async fn challenge(&mut self, tx: &mut Transaction, now: u64, stale: bool) {
        let headers = self
            .auth
            .challenge(now, rand::random(), stale)
            .into_iter()
            .map(|v| other("WWW-Authenticate", &v))
            .collect();
        reply(tx, StatusCode::Unauthorized, headers).await;
    }
}

fn other(name: &str, value: &str) -> Header {
    Header::Other(name.to_string(), value.to_string())
}

/// Answer a transaction from its own task, so the dispatcher never waits on a send.
fn spawn_reply(mut tx: Transaction, status: StatusCode, headers: Vec<Header>) {
    tokio::spawn(async move { reply(&mut tx, status, headers).await });
}

async fn reply(tx: &mut Transaction, status: StatusCode, headers: Vec<Header>) {
    if let Err(e) = tx.reply_with(status, headers, None).await {
        warn!(error = %e, "could not send response");
    }
}

/// A response whose Warning header says what was wrong (the stack writes the
/// standard reason phrase).
async fn reply_reason(
    tx: &mut Transaction,
    status: StatusCode,
    reason: &str,
    mut headers: Vec<Header>,
) {
    headers.push(other("Warning", &format!("399 hotline \"{reason}\"")));
    reply(tx, status, headers).await;
}

/// First value of a header by canonical name.
fn header_value(req: &Request, name: &str) -> Option<String> {
    req.headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
        .map(|h| h.value().to_string())
}

fn header_values(req: &Request, name: &str) -> Vec<String> {
    req.headers
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .map(|h| h.value().to_string())
        .collect()
}

/// The user part of the URI in a From/To/Contact value.
pub fn uri_user(value: &str) -> Option<String> {
    let uri = match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next()?,
    };
    let rest = uri.trim().split_once(':')?.1;
    let (user, _) = rest.split_once('@')?;
    let user = user.split(';').next()?;
    (!user.is_empty()).then(|| user.to_string())
}

/// Where the request really came from: the stack stamps `received` and
/// `rport` on the top Via (RFC 3261 §18.2.1, RFC 3581).
/// A browser's WebSocket connection, if the request came over one: its
/// address (the TCP peer) and "WS"/"WSS".
fn websocket_flow(tx: &Transaction) -> Option<(SocketAddr, &'static str)> {
    use rsipstack::sip::transport::Transport;
    let addr = tx.connection.as_ref()?.get_addr();
    let kind = match addr.r#type {
        Some(Transport::Ws) => "WS",
        Some(Transport::Wss) => "WSS",
        _ => return None,
    };
    Some((addr.get_socketaddr().ok()?, kind))
}

/// Where a request really came from. Over a WebSocket that is the
/// connection, whatever the Via says (browsers write `*.invalid` there, other
/// clients their own address with no port, and the stack adds `received`
/// only when the host differs): calls to the agent must go down that socket.
/// Otherwise the top Via's `received`/`rport`.
fn request_source(tx: &Transaction) -> Option<SocketAddr> {
    websocket_flow(tx)
        .map(|(addr, _)| addr)
        .or_else(|| source_addr(&tx.original))
}

/// "WS"/"WSS" for a request that came over a WebSocket.
fn flow_transport(tx: &Transaction) -> Option<String> {
    websocket_flow(tx).map(|(_, kind)| kind.to_string())
}

fn source_addr(req: &Request) -> Option<SocketAddr> {
    let via = header_value(req, "Via")?;
    let via = via.split(',').next()?;
    let mut parts = via.split(';');
    let sent_by = parts.next()?.split_whitespace().nth(1)?;
    let (mut host, mut port) = match sent_by.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.trim_matches(|c| c == '[' || c == ']').to_string(),
            p.parse().ok(),
        ),
        _ => (
            sent_by.trim_matches(|c| c == '[' || c == ']').to_string(),
            None,
        ),
    };
    for p in parts {
        match p.trim().split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("received") => host = v.to_string(),
            Some((k, v)) if k.eq_ignore_ascii_case("rport") => port = v.parse().ok(),
            _ => {}
        }
    }
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, port.unwrap_or(5060)))
}

fn has_to_tag(req: &Request) -> bool {
    header_value(req, "To").is_some_and(|to| {
        let params = to.rsplit_once('>').map(|(_, p)| p).unwrap_or(&to);
        params
            .split(';')
            .any(|p| p.trim().to_ascii_lowercase().starts_with("tag="))
    })
}

fn via_transport(req: &Request) -> Option<String> {
    let via = header_value(req, "Via")?;
    let proto = via.split_whitespace().next()?;
    Some(proto.rsplit('/').next()?.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_user_from_header_values() {
        assert_eq!(
            uri_user("\"Agent\" <sip:1001@hotline.local>;tag=x").as_deref(),
            Some("1001")
        );
        assert_eq!(
            uri_user("sip:1002@127.0.0.1:5060;tag=y").as_deref(),
            Some("1002")
        );
        assert_eq!(uri_user("<sip:hotline.local>"), None);
        assert_eq!(
            uri_user("<tel:4008008000;phone-context=x@h>").as_deref(),
            Some("4008008000")
        );
    }
}
