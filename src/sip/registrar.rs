//! Registrar and location service (RFC 3261 §10.3): which contacts each agent
//! is reachable at, until when. Pure: REGISTER facts and the time go in, the
//! outcome and the changes to persist come out.

use std::collections::HashMap;
use std::net::SocketAddr;

/// One contact an agent registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub aor: String,
    /// The Contact URI as the phone sent it.
    pub contact: String,
    /// Where the REGISTER really came from: calls go here (phones behind NAT
    /// put unreachable private addresses in Contact).
    pub source: SocketAddr,
    pub transport: String,
    pub expires_at_ms: u64,
    pub call_id: String,
    pub cseq: u32,
    pub user_agent: String,
}

impl Binding {
    /// Registered over a WebSocket (a browser softphone): reachable only on
    /// that connection, so the binding lives and dies with it.
    pub fn is_flow(&self) -> bool {
        super::leg::is_websocket(&self.transport)
    }

    pub fn remaining_secs(&self, now_ms: u64) -> u64 {
        self.expires_at_ms.saturating_sub(now_ms).div_ceil(1000)
    }
}

/// The facts of one REGISTER, already authenticated.
#[derive(Debug, Clone)]
pub struct RegisterRequest {
    pub aor: String,
    /// Raw Contact header values (each may hold several contacts).
    pub contact_headers: Vec<String>,
    pub expires_header: Option<String>,
    pub call_id: String,
    pub cseq: u32,
    pub source: SocketAddr,
    pub transport: String,
    pub user_agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Saved(Binding),
    Removed { aor: String, contact: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// 200 OK listing every current binding of the AOR.
    Ok {
        bindings: Vec<Binding>,
        changes: Vec<Change>,
    },
    /// 423 Interval Too Brief with Min-Expires.
    IntervalTooBrief { min_expires: u32 },
    /// 400 Bad Request with this reason.
    Invalid(&'static str),
    /// 500: an older or repeated CSeq for the same Call-ID (§10.3 step 7).
    OutOfOrder,
    /// 403: more contacts than an agent may hold.
    TooManyContacts,
}

#[derive(Debug, Clone, Copy)]
pub struct RegistrarPolicy {
    pub min_expires: u32,
    pub max_expires: u32,
    pub max_contacts: usize,
}

#[derive(Debug)]
pub struct Registrar {
    policy: RegistrarPolicy,
    bindings: HashMap<String, Vec<Binding>>,
}

/// One entry of a Contact header.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ContactSpec {
    Star,
    Uri {
        uri: String,
        expires: Option<String>,
    },
}

impl Registrar {
    pub fn new(policy: RegistrarPolicy) -> Self {
        Self {
            policy,
            bindings: HashMap::new(),
        }
    }

    /// Restore bindings saved before a restart. Expired ones are skipped, and
    /// so are WebSocket ones: their connection died with the old process (the
    /// browser registers again when it reconnects).
    pub fn restore(&mut self, bindings: Vec<Binding>, now_ms: u64) {
        for b in bindings {
            if b.expires_at_ms > now_ms && !b.is_flow() {
                self.bindings.entry(b.aor.clone()).or_default().push(b);
            }
        }
    }

    pub fn register(&mut self, req: &RegisterRequest, now_ms: u64) -> RegisterOutcome {
        let mut specs = Vec::new();
        for h in &req.contact_headers {
            match parse_contacts(h) {
                Some(mut s) => specs.append(&mut s),
                None => return RegisterOutcome::Invalid("Bad Contact"),
            }
        }
        let header_expires = match req.expires_header.as_deref().map(str::trim) {
            None => None,
            Some(v) => match v.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => return RegisterOutcome::Invalid("Bad Expires"),
            },
        };
        let p = self.policy;
        let existing = self.bindings.entry(req.aor.clone()).or_default();
        existing.retain(|b| b.expires_at_ms > now_ms);

        // Query: no Contact at all lists the current bindings.
        if specs.is_empty() {
            return RegisterOutcome::Ok {
                bindings: existing.clone(),
                changes: vec![],
            };
        }
        if specs.contains(&ContactSpec::Star) {
            if specs.len() != 1 || header_expires != Some(0) {
                return RegisterOutcome::Invalid("Contact * Needs Expires 0");
            }
            // Remove all, unless an existing binding of this Call-ID is newer.
            if existing
                .iter()
                .any(|b| b.call_id == req.call_id && b.cseq >= req.cseq)
            {
                return RegisterOutcome::OutOfOrder;
            }
            let changes = existing
                .drain(..)
                .map(|b| Change::Removed {
                    aor: b.aor,
                    contact: b.contact,
                })
                .collect();
            return RegisterOutcome::Ok {
                bindings: vec![],
                changes,
            };
        }

        // Validate every contact before changing anything (all-or-nothing).
        let mut wanted = Vec::new();
        for s in &specs {
            let ContactSpec::Uri { uri, expires } = s else {
                continue;
            };
            let exp = match expires {
                Some(e) => match e.trim().parse::<u64>() {
                    Ok(n) => n,
                    Err(_) => return RegisterOutcome::Invalid("Bad Contact Expires"),
                },
                None => header_expires.unwrap_or(u64::from(p.max_expires)),
            };
            if exp != 0 && exp < u64::from(p.min_expires) {
                return RegisterOutcome::IntervalTooBrief {
                    min_expires: p.min_expires,
                };
            }
            let exp = exp.min(u64::from(p.max_expires));
            if let Some(b) = existing.iter().find(|b| same_uri(&b.contact, uri)) {
                if b.call_id == req.call_id && b.cseq >= req.cseq {
                    return RegisterOutcome::OutOfOrder;
                }
            }
            wanted.push((uri.clone(), exp));
        }
        let adding = wanted
            .iter()
            .filter(|(u, e)| *e > 0 && !existing.iter().any(|b| same_uri(&b.contact, u)))
            .count();
        if existing.len() + adding > p.max_contacts {
            return RegisterOutcome::TooManyContacts;
        }

        let mut changes = Vec::new();
        for (uri, exp) in wanted {
            let pos = existing.iter().position(|b| same_uri(&b.contact, &uri));
            if exp == 0 {
                if let Some(i) = pos {
                    let b = existing.remove(i);
                    changes.push(Change::Removed {
                        aor: b.aor,
                        contact: b.contact,
                    });
                }
                continue;
            }
            let binding = Binding {
                aor: req.aor.clone(),
                contact: uri,
                source: req.source,
                transport: req.transport.clone(),
                expires_at_ms: now_ms + exp * 1000,
                call_id: req.call_id.clone(),
                cseq: req.cseq,
                user_agent: req.user_agent.clone(),
            };
            match pos {
                Some(i) => existing[i] = binding.clone(),
                None => existing.push(binding.clone()),
            }
            changes.push(Change::Saved(binding));
        }
        RegisterOutcome::Ok {
            bindings: existing.clone(),
            changes,
        }
    }

    /// Live contacts of an agent, most recently registered first.
    pub fn lookup(&self, aor: &str, now_ms: u64) -> Vec<Binding> {
        let mut v: Vec<Binding> = self
            .bindings
            .get(aor)
            .map(|bs| {
                bs.iter()
                    .filter(|b| b.expires_at_ms > now_ms)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|b| std::cmp::Reverse(b.expires_at_ms));
        v
    }

    /// Whether the agent has at least one live registration.
    pub fn is_registered(&self, aor: &str, now_ms: u64) -> bool {
        self.bindings
            .get(aor)
            .is_some_and(|bs| bs.iter().any(|b| b.expires_at_ms > now_ms))
    }

    /// Number of live bindings over all agents.
    pub fn live_count(&self, now_ms: u64) -> usize {
        self.bindings
            .values()
            .flatten()
            .filter(|b| b.expires_at_ms > now_ms)
            .count()
    }

    /// Drop expired bindings; returns what was removed (to delete from storage).
    pub fn purge(&mut self, now_ms: u64) -> Vec<Change> {
        self.remove_where(|b| b.expires_at_ms <= now_ms)
    }

    /// A browser's WebSocket from `peer` closed: drop the bindings made over it.
    pub fn drop_flow(&mut self, peer: SocketAddr) -> Vec<Change> {
        self.remove_where(|b| b.is_flow() && b.source == peer)
    }

    fn remove_where(&mut self, dead: impl Fn(&Binding) -> bool) -> Vec<Change> {
        let mut removed = Vec::new();
        for bs in self.bindings.values_mut() {
            bs.retain(|b| {
                if dead(b) {
                    removed.push(Change::Removed {
                        aor: b.aor.clone(),
                        contact: b.contact.clone(),
                    });
                    return false;
                }
                true
            });
        }
        self.bindings.retain(|_, bs| !bs.is_empty());
        removed
    }
}

/// RFC 3261 §19.1.4 compares URIs part by part; for the contacts phones send,
/// scheme and host case-insensitively and the rest exactly is close enough.
fn same_uri(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Split a Contact header value into entries, honouring quotes and `<>`.
fn parse_contacts(value: &str) -> Option<Vec<ContactSpec>> {
    let mut out = Vec::new();
    for part in split_top_level(value, ',')? {
        let part = part.trim();
        if part.is_empty() {
            return None;
        }
        if part == "*" {
            out.push(ContactSpec::Star);
            continue;
        }
        let (uri, params) = if let Some(lt) = find_unquoted(part, '<') {
            let gt = part[lt..].find('>')? + lt;
            (&part[lt + 1..gt], &part[gt + 1..])
        } else {
            // Without <>, parameters after the URI belong to the contact (§20.10).
            match part.find(';') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            }
        };
        let uri = uri.trim();
        let (scheme, rest) = uri.split_once(':')?;
        if rest.is_empty()
            || !["sip", "sips", "tel"]
                .iter()
                .any(|s| s.eq_ignore_ascii_case(scheme))
        {
            return None;
        }
        let expires = params.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("expires")
                .then(|| v.trim().to_string())
        });
        out.push(ContactSpec::Uri {
            uri: uri.to_string(),
            expires,
        });
    }
    Some(out)
}

fn find_unquoted(s: &str, ch: char) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == ch && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Split on `sep` outside quotes and angle brackets; None on unbalanced input.
fn split_top_level(s: &str, sep: char) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, 0i32, 0);
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle += 1,
            '>' if !quoted => angle -= 1,
            c if c == sep && !quoted && angle == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if angle < 0 {
            return None;
        }
    }
    if quoted || angle != 0 {
        return None;
    }
    parts.push(&s[start..]);
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RegistrarPolicy {
        RegistrarPolicy {
            min_expires: 60,
            max_expires: 3600,
            max_contacts: 3,
        }
    }

    fn req(contact: &str, expires: Option<&str>, call_id: &str, cseq: u32) -> RegisterRequest {
        RegisterRequest {
            aor: "1001".into(),
            contact_headers: if contact.is_empty() {
                vec![]
            } else {
                vec![contact.into()]
            },
            expires_header: expires.map(str::to_string),
            call_id: call_id.into(),
            cseq,
            source: "127.0.0.1:5070".parse().unwrap(),
            transport: "UDP".into(),
            user_agent: "test".into(),
        }
    }

    #[test]
    fn register_refresh_and_unregister() {
        let mut r = Registrar::new(policy());
        let out = r.register(&req("<sip:1001@127.0.0.1:5070>", Some("300"), "a", 1), 0);
        let RegisterOutcome::Ok { bindings, changes } = out else {
            panic!("{out:?}")
        };
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].expires_at_ms, 300_000);
        assert_eq!(changes.len(), 1);
        assert!(r.is_registered("1001", 299_999));
        assert!(!r.is_registered("1001", 300_000));
        // Refresh with a higher CSeq extends.
        r.register(
            &req("<sip:1001@127.0.0.1:5070>", Some("600"), "a", 2),
            100_000,
        );
        assert_eq!(r.lookup("1001", 0)[0].expires_at_ms, 700_000);
        // Expires: 0 removes.
        let out = r.register(
            &req("<sip:1001@127.0.0.1:5070>", Some("0"), "a", 3),
            200_000,
        );
        let RegisterOutcome::Ok { bindings, changes } = out else {
            panic!()
        };
        assert!(bindings.is_empty());
        assert!(matches!(&changes[0], Change::Removed { .. }));
        assert!(!r.is_registered("1001", 200_001));
    }

    #[test]
    fn several_contacts_and_per_contact_expires() {
        let mut r = Registrar::new(policy());
        r.register(
            &req(
                "<sip:1001@10.0.0.1>;expires=120, \"Desk, 2\" <sip:1001@10.0.0.2>",
                Some("3600"),
                "a",
                1,
            ),
            0,
        );
        let b = r.lookup("1001", 0);
        assert_eq!(b.len(), 2);
        assert_eq!(
            b.iter()
                .find(|b| b.contact == "sip:1001@10.0.0.1")
                .unwrap()
                .expires_at_ms,
            120_000
        );
        assert_eq!(
            b.iter()
                .find(|b| b.contact == "sip:1001@10.0.0.2")
                .unwrap()
                .expires_at_ms,
            3_600_000
        );
        // A second phone with its own Call-ID adds a third binding.
        r.register(&req("sip:1001@10.0.0.3;expires=200", None, "b", 1), 0);
        assert_eq!(r.lookup("1001", 0).len(), 3);
        assert_eq!(r.live_count(0), 3);
        // A fourth is too many.
        assert_eq!(
            r.register(&req("<sip:1001@10.0.0.4>", None, "c", 1), 0),
            RegisterOutcome::TooManyContacts
        );
    }

    #[test]
    fn too_brief_is_423_and_too_long_is_clamped() {
        let mut r = Registrar::new(policy());
        assert_eq!(
            r.register(&req("<sip:1001@h>", Some("30"), "a", 1), 0),
            RegisterOutcome::IntervalTooBrief { min_expires: 60 }
        );
        r.register(&req("<sip:1001@h>", Some("99999"), "a", 2), 0);
        assert_eq!(r.lookup("1001", 0)[0].expires_at_ms, 3_600_000);
    }

    #[test]
    fn star_removes_all_and_needs_expires_zero() {
        let mut r = Registrar::new(policy());
        r.register(&req("<sip:1001@a>, <sip:1001@b>", None, "a", 1), 0);
        assert_eq!(
            r.register(&req("*", None, "a", 2), 0),
            RegisterOutcome::Invalid("Contact * Needs Expires 0")
        );
        let RegisterOutcome::Ok { bindings, changes } = r.register(&req("*", Some("0"), "z", 1), 0)
        else {
            panic!()
        };
        assert!(bindings.is_empty());
        assert_eq!(changes.len(), 2);
    }

    #[test]
    fn old_cseq_for_same_call_id_is_refused() {
        let mut r = Registrar::new(policy());
        r.register(&req("<sip:1001@a>", None, "a", 5), 0);
        assert_eq!(
            r.register(&req("<sip:1001@a>", None, "a", 5), 0),
            RegisterOutcome::OutOfOrder
        );
        assert_eq!(
            r.register(&req("<sip:1001@a>", None, "a", 4), 0),
            RegisterOutcome::OutOfOrder
        );
    }

    #[test]
    fn query_lists_and_purge_expires() {
        let mut r = Registrar::new(policy());
        r.register(&req("<sip:1001@a>", Some("60"), "a", 1), 0);
        let RegisterOutcome::Ok { bindings, changes } = r.register(&req("", None, "q", 1), 1_000)
        else {
            panic!()
        };
        assert_eq!(bindings.len(), 1);
        assert!(changes.is_empty());
        assert_eq!(r.purge(60_000).len(), 1);
        assert_eq!(r.live_count(60_000), 0);
    }

    #[test]
    fn bad_contacts_are_rejected() {
        let mut r = Registrar::new(policy());
        for bad in [
            "<sip:1001@a",
            "\"x <sip:a@b>",
            "http://x",
            "<sip:1001@a>;expires=soon",
        ] {
            assert!(
                matches!(
                    r.register(&req(bad, None, "a", 1), 0),
                    RegisterOutcome::Invalid(_)
                ),
                "{bad}"
            );
        }
        assert_eq!(
            r.register(&req("<sip:1001@a>", Some("x"), "a", 1), 0),
            RegisterOutcome::Invalid("Bad Expires")
        );
    }

    #[test]
    fn restore_skips_expired() {
        let mut r = Registrar::new(policy());
        let mk = |c: &str, exp| Binding {
            aor: "1001".into(),
            contact: c.into(),
            source: "127.0.0.1:1".parse().unwrap(),
            transport: "UDP".into(),
            expires_at_ms: exp,
            call_id: "a".into(),
            cseq: 1,
            user_agent: String::new(),
        };
        r.restore(vec![mk("sip:a@x", 10), mk("sip:b@x", 1_000)], 500);
        assert_eq!(r.lookup("1001", 500).len(), 1);
    }

    #[test]
    fn websocket_bindings_die_with_their_connection_and_are_not_restored() {
        let mut r = Registrar::new(policy());
        let browser: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let other_tab: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let mk = |c: &str, source, transport: &str| Binding {
            aor: "1001".into(),
            contact: c.into(),
            source,
            transport: transport.into(),
            expires_at_ms: 10_000,
            call_id: c.into(),
            cseq: 1,
            user_agent: String::new(),
        };
        let phone = mk("sip:1001@192.0.2.1", browser, "UDP");
        let ws = mk("sip:1001@a.invalid;transport=ws", browser, "WS");
        let ws2 = mk("sip:1001@b.invalid;transport=ws", other_tab, "WSS");
        r.restore(vec![phone.clone(), ws.clone(), ws2.clone()], 0);
        // A restart keeps only the UDP phone: the sockets are gone.
        assert_eq!(r.lookup("1001", 0), vec![phone.clone()]);

        r.bindings
            .insert("1001".into(), vec![phone.clone(), ws.clone(), ws2.clone()]);
        let removed = r.drop_flow(browser);
        assert_eq!(
            removed,
            vec![Change::Removed {
                aor: "1001".into(),
                contact: ws.contact.clone()
            }]
        );
        assert_eq!(
            r.lookup("1001", 0).len(),
            2,
            "the phone at the same address and the other tab stay"
        );
    }
}
