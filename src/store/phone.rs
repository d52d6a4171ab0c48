//! Phone number normalisation: the key under which a number is stored in
//! `customer_phones.phone` and looked up by [`Store::find_by_phone`](super::Store::find_by_phone).

/// How many trailing digits of a number form its key.
///
/// Eleven is the length of a mainland-China mobile number (`1xxxxxxxxxx`) and
/// the upper bound of a landline written without its trunk `0`
/// (2–3 digit area code + 7–8 digit subscriber number).
pub const PHONE_KEY_DIGITS: usize = 11;

/// Normalise a phone number to its lookup key.
///
/// 1. Keep only the ASCII digits (`+86 138-1234-5678` → `8613812345678`).
/// 2. Drop a country code 86: written `+86…`, `0086…`, or a bare `86` in
///    front of an 11-digit mobile (`8613812345678`).
/// 3. Drop one national trunk prefix `0` from numbers of 10 or more digits
///    (`0755 1234 5678` → `75512345678`, `013812345678` → `13812345678`), so a
///    landline is the same key whether the trunk sends it with `0` or after `+86`.
/// 4. Keep the last [`PHONE_KEY_DIGITS`] digits, which also discards dial
///    prefixes some carriers put in front (`17951 13812345678`).
///
/// Short numbers (extensions, service numbers such as `10086`) pass through
/// step 4 unchanged. An input without digits gives the empty string, which
/// never matches a stored number.
pub fn normalize_phone(raw: &str) -> String {
    let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
    let plus = raw.trim_start().starts_with('+');
    let mut d: &str = &digits;
    if plus {
        if let Some(rest) = d.strip_prefix("86") {
            d = rest;
        }
    } else if let Some(rest) = d.strip_prefix("0086") {
        d = rest;
    } else if d.len() == 13 && d.starts_with("861") {
        d = &d[2..];
    }
    if d.len() >= 10 {
        if let Some(rest) = d.strip_prefix('0') {
            d = rest;
        }
    }
    let start = d.len().saturating_sub(PHONE_KEY_DIGITS);
    d[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::normalize_phone as n;

    #[test]
    fn mobile_forms_agree() {
        for raw in [
            "13812345678",
            "138 1234 5678",
            "138-1234-5678",
            "+86 138 1234 5678",
            "+8613812345678",
            "008613812345678",
            "8613812345678",
            "013812345678",
            "1795113812345678",
            "sip:+8613812345678@trunk",
        ] {
            assert_eq!(n(raw), "13812345678", "{raw}");
        }
    }

    #[test]
    fn landline_forms_agree() {
        for raw in [
            "0755-12345678",
            "(0755) 1234 5678",
            "+86 755 12345678",
            "0086 755 12345678",
        ] {
            assert_eq!(n(raw), "75512345678", "{raw}");
        }
        assert_eq!(n("010-12345678"), "1012345678");
        assert_eq!(n("+86 10 12345678"), "1012345678");
    }

    #[test]
    fn short_and_empty() {
        assert_eq!(n("10086"), "10086");
        assert_eq!(n("1001"), "1001");
        assert_eq!(n("anonymous"), "");
    }
}
