//! Server side of HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616,
//! RFC 8760): challenges with MD5 and SHA-256, `qop=auth`.
//!
//! Nonces are self-describing (issue time + random + MAC over both with a
//! per-process secret), so any nonce we issued can be checked without a table;
//! the table only remembers, per nonce still in use, the highest nonce-count
//! seen, which is what stops a captured request from being replayed.
//! Pure: the caller passes the time in.

use std::collections::HashMap;

use md5::Md5;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

/// The fields of a `Digest` Authorization header that matter to a server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

impl Credentials {
    /// Parse an `Authorization: Digest k=v, k="v", ...` header value.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut c = Credentials::default();
        for (k, v) in parse_params(rest)? {
            match k.to_ascii_lowercase().as_str() {
                "username" => c.username = v,
                "realm" => c.realm = v,
                "nonce" => c.nonce = v,
                "uri" => c.uri = v,
                "response" => c.response = v,
                "algorithm" => c.algorithm = Some(v),
                "qop" => c.qop = Some(v),
                "nc" => c.nc = Some(v),
                "cnonce" => c.cnonce = Some(v),
                "opaque" => c.opaque = Some(v),
                _ => {}
            }
        }
        if c.username.is_empty() || c.nonce.is_empty() || c.response.is_empty() {
            return None;
        }
        Some(c)
    }
}

/// `k=v, k="quoted, with comma"` → pairs. None on unbalanced quotes.
fn parse_params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.push(chars.next()?),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => val.push(c),
                }
            }
            if !closed {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
            val = val.trim().to_string();
        }
        out.push((key.trim().to_string(), val));
    }
}

/// Why a set of credentials was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The response is right but the nonce is too old: challenge again with `stale=true`.
    Stale,
    /// Wrong password, wrong user, forged or replayed nonce: counts as a failed attempt.
    Failed(&'static str),
    /// Not something we can judge (other realm, unknown algorithm, no qop): challenge again.
    Unusable(&'static str),
}

#[derive(Debug)]
pub struct DigestAuth {
    realm: String,
    secret: [u8; 32],
    nonce_ttl_ms: u64,
    /// nonce → highest nonce-count accepted (0 = issued, none used).
    used: HashMap<String, u64>,
    algorithms: Vec<Algorithm>,
}

impl DigestAuth {
    pub fn new(realm: &str, nonce_ttl_ms: u64, secret: [u8; 32]) -> Self {
        Self {
            realm: realm.to_string(),
            secret,
            nonce_ttl_ms,
            used: HashMap::new(),
            // Most preferred first (RFC 8760 §2.4); the config decides.
            algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
        }
    }

    pub fn with_algorithms(mut self, algorithms: Vec<Algorithm>) -> Self {
        self.algorithms = algorithms;
        self
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// A fresh nonce for a challenge issued at `now_ms`; `salt` comes from a RNG.
    pub fn nonce(&self, now_ms: u64, salt: u64) -> String {
        let body = format!("{now_ms:x}.{salt:016x}");
        format!("{body}.{}", self.mac(&body))
    }

    fn mac(&self, body: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(body.as_bytes());
        h.update(self.secret);
        hex::encode(&h.finalize()[..12])
    }

    /// When the nonce was issued, if it is one of ours.
    fn nonce_issued_at(&self, nonce: &str) -> Option<u64> {
        let (body, mac) = nonce.rsplit_once('.')?;
        let expected = self.mac(body);
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return None;
        }
        let (t, _) = body.split_once('.')?;
        u64::from_str_radix(t, 16).ok()
    }

    /// `WWW-Authenticate` header values for a challenge, one per algorithm.
    pub fn challenge(&self, now_ms: u64, salt: u64, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now_ms, salt);
        self.algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{}\", algorithm={}, qop=\"auth\"{}",
                    self.realm,
                    nonce,
                    a.name(),
                    if stale { ", stale=true" } else { "" }
                )
            })
            .collect()
    }

    /// Check credentials for `method` against the user's password.
    pub fn verify(
        &mut self,
        creds: &Credentials,
        method: &str,
        password: &str,
        now_ms: u64,
    ) -> Result<(), Rejection> {
        if creds.realm != self.realm {
            return Err(Rejection::Unusable("realm"));
        }
        let algorithm = match creds.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(a).ok_or(Rejection::Unusable("algorithm"))?,
        };
        if !self.algorithms.contains(&algorithm) {
            return Err(Rejection::Unusable("algorithm"));
        }
        let issued = self
            .nonce_issued_at(&creds.nonce)
            .ok_or(Rejection::Failed("nonce not issued by us"))?;
        let ha1 = algorithm.hash(&format!("{}:{}:{}", creds.username, self.realm, password));
        let ha2 = algorithm.hash(&format!("{method}:{}", creds.uri));
        let (expected, nc) = match creds.qop.as_deref() {
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc_text = creds.nc.as_deref().ok_or(Rejection::Unusable("nc"))?;
                let cnonce = creds
                    .cnonce
                    .as_deref()
                    .ok_or(Rejection::Unusable("cnonce"))?;
                let nc = u64::from_str_radix(nc_text, 16).map_err(|_| Rejection::Unusable("nc"))?;
                (
                    algorithm.hash(&format!(
                        "{ha1}:{}:{nc_text}:{cnonce}:auth:{ha2}",
                        creds.nonce
                    )),
                    nc,
                )
            }
            Some(_) => return Err(Rejection::Unusable("qop")),
            // RFC 2069 style: no nonce-count, so the nonce is single-use.
            None => (algorithm.hash(&format!("{ha1}:{}:{ha2}", creds.nonce)), 1),
        };
        if !constant_time_eq(
            expected.as_bytes(),
            creds.response.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(Rejection::Failed("wrong response"));
        }
        if now_ms.saturating_sub(issued) > self.nonce_ttl_ms || issued > now_ms + 60_000 {
            return Err(Rejection::Stale);
        }
        let last = self.used.entry(creds.nonce.clone()).or_insert(0);
        if nc <= *last {
            return Err(Rejection::Failed("replayed nonce-count"));
        }
        *last = nc;
        Ok(())
    }

    /// Forget nonces that can no longer be accepted (bounded memory).
    pub fn purge(&mut self, now_ms: u64) {
        let ttl = self.nonce_ttl_ms;
        let secret_ok = |n: &str| self.nonce_issued_at(n);
        let expired: Vec<String> = self
            .used
            .keys()
            .filter(|n| secret_ok(n).is_none_or(|t| now_ms.saturating_sub(t) > ttl))
            .cloned()
            .collect();
        for n in expired {
            self.used.remove(&n);
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a phone computes for REGISTER sip:hotline.local as user 1001, cnonce "abc".
    fn client_response(alg: Algorithm, realm: &str, pass: &str, nonce: &str, nc: &str) -> String {
        let ha1 = alg.hash(&format!("1001:{realm}:{pass}"));
        let ha2 = alg.hash("REGISTER:sip:hotline.local");
        alg.hash(&format!("{ha1}:{nonce}:{nc}:abc:auth:{ha2}"))
    }

    fn creds(auth: &DigestAuth, alg: Algorithm, pass: &str, nonce: &str, nc: &str) -> Credentials {
        Credentials {
            username: "1001".into(),
            realm: auth.realm().into(),
            nonce: nonce.into(),
            uri: "sip:hotline.local".into(),
            response: client_response(alg, auth.realm(), pass, nonce, nc),
            algorithm: Some(alg.name().into()),
            qop: Some("auth".into()),
            nc: Some(nc.into()),
            cnonce: Some("abc".into()),
            opaque: None,
        }
    }

    #[test]
    fn rfc_2617_md5_example_matches() {
        // RFC 2617 §3.5 worked example (HTTP, but the arithmetic is the same).
        let ha1 = Algorithm::Md5.hash("Mufasa:testrealm@host.com:Circle Of Life");
        let ha2 = Algorithm::Md5.hash("GET:/dir/index.html");
        let r = Algorithm::Md5.hash(&format!(
            "{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:{ha2}"
        ));
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn accepts_md5_and_sha256_and_rejects_wrong_password() {
        let mut auth = DigestAuth::new("hotline.local", 300_000, [7; 32]);
        let nonce = auth.nonce(1_000, 42);
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let c = creds(
                &auth,
                alg,
                "secret",
                &nonce,
                if alg == Algorithm::Md5 {
                    "00000001"
                } else {
                    "00000002"
                },
            );
            assert_eq!(auth.verify(&c, "REGISTER", "secret", 2_000), Ok(()));
        }
        let c = creds(&auth, Algorithm::Md5, "wrong", &nonce, "00000003");
        assert_eq!(
            auth.verify(&c, "REGISTER", "secret", 2_000),
            Err(Rejection::Failed("wrong response"))
        );
    }

    #[test]
    fn replay_of_same_nonce_count_is_refused() {
        let mut auth = DigestAuth::new("hotline.local", 300_000, [7; 32]);
        let nonce = auth.nonce(1_000, 1);
        let c = creds(&auth, Algorithm::Md5, "secret", &nonce, "00000001");
        assert_eq!(auth.verify(&c, "REGISTER", "secret", 1_500), Ok(()));
        assert_eq!(
            auth.verify(&c, "REGISTER", "secret", 1_600),
            Err(Rejection::Failed("replayed nonce-count"))
        );
        let c2 = creds(&auth, Algorithm::Md5, "secret", &nonce, "00000002");
        assert_eq!(auth.verify(&c2, "REGISTER", "secret", 1_700), Ok(()));
    }

    #[test]
    fn expired_nonce_is_stale_and_forged_nonce_fails() {
        let mut auth = DigestAuth::new("hotline.local", 300_000, [7; 32]);
        let nonce = auth.nonce(1_000, 1);
        let c = creds(&auth, Algorithm::Sha256, "secret", &nonce, "00000001");
        assert_eq!(
            auth.verify(&c, "REGISTER", "secret", 1_000 + 300_001),
            Err(Rejection::Stale)
        );
        let other = DigestAuth::new("hotline.local", 300_000, [8; 32]);
        let forged = other.nonce(1_000, 1);
        let c = creds(&auth, Algorithm::Md5, "secret", &forged, "00000001");
        assert_eq!(
            auth.verify(&c, "REGISTER", "secret", 2_000),
            Err(Rejection::Failed("nonce not issued by us"))
        );
    }

    #[test]
    fn challenge_lists_both_algorithms_with_stale_flag() {
        let auth = DigestAuth::new("hotline.local", 300_000, [7; 32])
            .with_algorithms(vec![Algorithm::Sha256, Algorithm::Md5]);
        let ch = auth.challenge(5, 6, true);
        assert_eq!(ch.len(), 2);
        assert!(ch[0].contains("algorithm=SHA-256") && ch[0].contains("stale=true"));
        assert!(ch[1].contains("algorithm=MD5") && ch[1].contains("qop=\"auth\""));
    }

    #[test]
    fn parses_authorization_header() {
        let v = r#"Digest username="1001",realm="hotline.local", nonce="a.b.c", uri="sip:hotline.local",response="0123abcd", algorithm=MD5, cnonce="x,y", qop=auth, nc=00000001"#;
        let c = Credentials::parse(v).unwrap();
        assert_eq!(c.username, "1001");
        assert_eq!(c.cnonce.as_deref(), Some("x,y"));
        assert_eq!(c.nc.as_deref(), Some("00000001"));
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert!(Credentials::parse("Basic abc").is_none());
        assert!(Credentials::parse("Digest username=\"unterminated").is_none());
    }

    #[test]
    fn purge_forgets_old_nonces() {
        let mut auth = DigestAuth::new("hotline.local", 1_000, [7; 32]);
        let nonce = auth.nonce(0, 1);
        let c = creds(&auth, Algorithm::Md5, "secret", &nonce, "00000001");
        auth.verify(&c, "REGISTER", "secret", 10).unwrap();
        assert_eq!(auth.used.len(), 1);
        auth.purge(5_000);
        assert!(auth.used.is_empty());
    }
}
