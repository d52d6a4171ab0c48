//! Completed work orders from the ERP: CSV files and the JSON body of
//! `POST /api/work-orders`.
//!
//! Both paths end in the same validation, so a row means the same thing
//! whichever way it came. A bad row becomes one [`RowError`] per bad field
//! and never stops the good rows. Duplicates are not merged here: the store
//! upserts by `order_no`, so the last row of a file wins there.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::csv::Reader;

/// Installation or repair (the store's `WorkOrderKind`, same text form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderKind {
    /// 安装: callback the day after completion.
    Install,
    /// 维修: callback within 1 to 3 days after completion.
    Repair,
}

impl OrderKind {
    /// `install` / `repair`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Repair => "repair",
        }
    }

    /// English or Chinese names, case-insensitive.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let is = |name: &str| s.eq_ignore_ascii_case(name);
        if is("install") || is("installation") || s == "安装" {
            Some(Self::Install)
        } else if is("repair") || s == "维修" {
            Some(Self::Repair)
        } else {
            None
        }
    }
}

/// A clean, validated completed work order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkOrderRow {
    pub order_no: String,
    pub kind: OrderKind,
    pub customer_id: Option<String>,
    pub customer_name: String,
    /// As given (trimmed); the store normalises it.
    pub phone: String,
    pub address: String,
    pub region: String,
    pub product: String,
    pub technician: String,
    pub department: String,
    pub completed_at: DateTime<Utc>,
    /// Fees charged in cents (分).
    pub fees_cents: i64,
    /// Set by the shell from the customer record (or an optional
    /// `do_not_call` column); such orders get no callback task.
    #[serde(default)]
    pub do_not_call: bool,
}

/// One problem with one field of one row. `line` is the CSV line the record
/// starts on (the header is line 1), or the 1-based position in a JSON array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("line {line}, {field}: {message}")]
pub struct RowError {
    pub line: usize,
    /// Column name, or `*` for the whole record.
    pub field: String,
    pub message: String,
}

/// Problems with the file as a whole: nothing can be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the file is empty (no header row)")]
    Empty,
    #[error("header row: {0}")]
    Header(String),
    #[error("required column {0:?} is missing from the header")]
    MissingColumn(&'static str),
    #[error("column {0:?} appears twice in the header")]
    DuplicateColumn(String),
    #[error(
        "line {line}: the file is not UTF-8 (save it as UTF-8; GBK exports must be converted)"
    )]
    NotUtf8 { line: usize },
}

/// Good rows and per-row errors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub rows: Vec<WorkOrderRow>,
    pub errors: Vec<RowError>,
}

/// The columns; the header may use the English names or the Chinese ones
/// ERP exports commonly carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    OrderNo,
    Kind,
    CustomerId,
    CustomerName,
    Phone,
    Address,
    Region,
    Product,
    Technician,
    Department,
    CompletedAt,
    Fees,
    DoNotCall,
}

const COLUMNS: [(Col, &str, &[&str]); 13] = [
    (Col::OrderNo, "order_no", &["工单号", "单号"]),
    (Col::Kind, "type", &["kind", "类型", "工单类型"]),
    (Col::CustomerId, "customer_id", &["客户编号"]),
    (Col::CustomerName, "customer_name", &["客户姓名", "姓名"]),
    (Col::Phone, "phone", &["电话", "联系电话"]),
    (Col::Address, "address", &["地址"]),
    (Col::Region, "region", &["区域"]),
    (Col::Product, "product", &["产品", "品类"]),
    (Col::Technician, "technician", &["师傅", "技术员"]),
    (Col::Department, "department", &["部门"]),
    (Col::CompletedAt, "completed_at", &["完工时间"]),
    (Col::Fees, "fees", &["费用", "收费"]),
    (Col::DoNotCall, "do_not_call", &[]),
];

const REQUIRED: [Col; 4] = [Col::OrderNo, Col::Kind, Col::Phone, Col::CompletedAt];

fn col_name(c: Col) -> &'static str {
    COLUMNS
        .iter()
        .find(|(k, _, _)| *k == c)
        .map(|(_, n, _)| *n)
        .unwrap_or("?")
}

/// Fields of one order as text, before validation.
#[derive(Default)]
struct Raw<'a> {
    order_no: &'a str,
    kind: &'a str,
    customer_id: &'a str,
    customer_name: &'a str,
    phone: &'a str,
    address: &'a str,
    region: &'a str,
    product: &'a str,
    technician: &'a str,
    department: &'a str,
    completed_at: &'a str,
    fees: &'a str,
    do_not_call: &'a str,
}

impl<'a> Raw<'a> {
    fn set(&mut self, c: Col, v: &'a str) {
        let slot = match c {
            Col::OrderNo => &mut self.order_no,
            Col::Kind => &mut self.kind,
            Col::CustomerId => &mut self.customer_id,
            Col::CustomerName => &mut self.customer_name,
            Col::Phone => &mut self.phone,
            Col::Address => &mut self.address,
            Col::Region => &mut self.region,
            Col::Product => &mut self.product,
            Col::Technician => &mut self.technician,
            Col::Department => &mut self.department,
            Col::CompletedAt => &mut self.completed_at,
            Col::Fees => &mut self.fees,
            Col::DoNotCall => &mut self.do_not_call,
        };
        *slot = v;
    }
}

/// CSV bytes as uploaded: UTF-8 (with or without BOM) only.
pub fn parse_csv_bytes(
    bytes: &[u8],
    zone_for_region: impl Fn(&str) -> Tz,
) -> Result<ImportReport, ImportError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => parse_csv(s, zone_for_region),
        Err(e) => {
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            Err(ImportError::NotUtf8 { line })
        }
    }
}

/// Parses a work-order CSV. `zone_for_region` gives the zone in which a
/// `completed_at` without an offset is read (pass
/// `|r| rules.zone_for(r)`).
pub fn parse_csv(
    text: &str,
    zone_for_region: impl Fn(&str) -> Tz,
) -> Result<ImportReport, ImportError> {
    let mut reader = Reader::new(text);
    let header = match reader.next() {
        None => return Err(ImportError::Empty),
        Some(Err(e)) => return Err(ImportError::Header(e.message)),
        Some(Ok(h)) => h,
    };
    // Column position → meaning; unknown columns are ignored.
    let mut map: Vec<Option<Col>> = Vec::with_capacity(header.fields.len());
    for name in &header.fields {
        let n = name.trim().to_lowercase();
        let col = COLUMNS
            .iter()
            .find(|(_, en, zh)| *en == n || zh.contains(&n.as_str()))
            .map(|(c, _, _)| *c);
        if col.is_some() && map.contains(&col) {
            return Err(ImportError::DuplicateColumn(name.to_string()));
        }
        map.push(col);
    }
    for c in REQUIRED {
        if !map.contains(&Some(c)) {
            return Err(ImportError::MissingColumn(col_name(c)));
        }
    }

    let mut report = ImportReport::default();
    for rec in reader {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                report.errors.push(RowError {
                    line: e.line,
                    field: "*".into(),
                    message: e.message,
                });
                continue;
            }
        };
        if rec.fields.len() != map.len() {
            report.errors.push(RowError {
                line: rec.line,
                field: "*".into(),
                message: format!(
                    "expected {} fields, found {} (unquoted comma?)",
                    map.len(),
                    rec.fields.len()
                ),
            });
            continue;
        }
        let mut raw = Raw::default();
        for (col, v) in map.iter().zip(&rec.fields) {
            if let Some(c) = col {
                raw.set(*c, v);
            }
        }
        match validate(&raw, &zone_for_region) {
            Ok(row) => report.rows.push(row),
            Err(errs) => report
                .errors
                .extend(errs.into_iter().map(|(field, message)| RowError {
                    line: rec.line,
                    field: field.into(),
                    message,
                })),
        }
    }
    Ok(report)
}

/// A JSON scalar given as text or number (ERPs send phone numbers and fees
/// either way).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Int(i) => i.to_string(),
            // Display is the shortest text that reads back the same value,
            // so 120.5 becomes "120.5" and not 120.4999….
            Self::Float(f) => f.to_string(),
        }
    }
}

/// One order in `POST /api/work-orders`; same fields as the CSV. Missing
/// fields become per-row errors, not a rejected request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct WorkOrderInput {
    pub order_no: Option<Scalar>,
    #[serde(rename = "type", alias = "kind")]
    pub kind: String,
    pub customer_id: Option<Scalar>,
    pub customer_name: String,
    pub phone: Option<Scalar>,
    pub address: String,
    pub region: String,
    pub product: String,
    pub technician: String,
    pub department: String,
    pub completed_at: String,
    pub fees: Option<Scalar>,
    pub do_not_call: bool,
}

/// The request body: one object or an array of them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum WorkOrderInputs {
    One(Box<WorkOrderInput>),
    Many(Vec<WorkOrderInput>),
}

/// Validates JSON orders; `line` in errors is the 1-based array position.
pub fn parse_json_orders(
    inputs: WorkOrderInputs,
    zone_for_region: impl Fn(&str) -> Tz,
) -> ImportReport {
    let list = match inputs {
        WorkOrderInputs::One(o) => vec![*o],
        WorkOrderInputs::Many(v) => v,
    };
    let mut report = ImportReport::default();
    for (i, o) in list.iter().enumerate() {
        let order_no = o.order_no.as_ref().map(Scalar::text).unwrap_or_default();
        let customer_id = o.customer_id.as_ref().map(Scalar::text).unwrap_or_default();
        let phone = o.phone.as_ref().map(Scalar::text).unwrap_or_default();
        let fees = o.fees.as_ref().map(Scalar::text).unwrap_or_default();
        let raw = Raw {
            order_no: &order_no,
            kind: &o.kind,
            customer_id: &customer_id,
            customer_name: &o.customer_name,
            phone: &phone,
            address: &o.address,
            region: &o.region,
            product: &o.product,
            technician: &o.technician,
            department: &o.department,
            completed_at: &o.completed_at,
            fees: &fees,
            do_not_call: if o.do_not_call { "1" } else { "" },
        };
        match validate(&raw, &zone_for_region) {
            Ok(row) => report.rows.push(row),
            Err(errs) => report
                .errors
                .extend(errs.into_iter().map(|(field, message)| RowError {
                    line: i + 1,
                    field: field.into(),
                    message,
                })),
        }
    }
    report
}

/// All problems of a row, or the clean row.
fn validate(
    raw: &Raw<'_>,
    zone_for_region: &impl Fn(&str) -> Tz,
) -> Result<WorkOrderRow, Vec<(&'static str, String)>> {
    let mut errs = Vec::new();
    let order_no = raw.order_no.trim();
    if order_no.is_empty() {
        errs.push(("order_no", "is empty".to_string()));
    }
    let kind = OrderKind::parse(raw.kind);
    if kind.is_none() {
        errs.push((
            "type",
            format!("{:?} is not install/安装 or repair/维修", raw.kind.trim()),
        ));
    }
    let phone = raw.phone.trim();
    if let Err(m) = check_phone(phone) {
        errs.push(("phone", m));
    }
    let region = raw.region.trim();
    let completed_at = parse_time(raw.completed_at, zone_for_region(region))
        .map_err(|m| errs.push(("completed_at", m)))
        .ok();
    let fees_cents = parse_yuan(raw.fees)
        .map_err(|m| errs.push(("fees", m)))
        .ok();
    let do_not_call = match raw.do_not_call.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "n" | "否" => false,
        "1" | "true" | "yes" | "y" | "是" => true,
        other => {
            errs.push(("do_not_call", format!("{other:?} is not yes/no")));
            false
        }
    };
    match (kind, completed_at, fees_cents) {
        (Some(kind), Some(completed_at), Some(fees_cents)) if errs.is_empty() => {
            let customer_id = raw.customer_id.trim();
            Ok(WorkOrderRow {
                order_no: order_no.to_string(),
                kind,
                customer_id: (!customer_id.is_empty()).then(|| customer_id.to_string()),
                customer_name: raw.customer_name.trim().to_string(),
                phone: phone.to_string(),
                address: raw.address.trim().to_string(),
                region: region.to_string(),
                product: raw.product.trim().to_string(),
                technician: raw.technician.trim().to_string(),
                department: raw.department.trim().to_string(),
                completed_at,
                fees_cents,
                do_not_call,
            })
        }
        _ => Err(errs),
    }
}

/// A dialable-looking number: digits with the usual separators. Whether it
/// is a real number is found out by calling it (404/604 → flagged).
fn check_phone(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("is empty".into());
    }
    let mut digits = 0;
    for (i, c) in p.chars().enumerate() {
        match c {
            '0'..='9' => digits += 1,
            '+' if i == 0 => {}
            ' ' | '-' | '(' | ')' => {}
            _ => return Err(format!("unexpected character {c:?} in {p:?}")),
        }
    }
    if !(5..=20).contains(&digits) {
        return Err(format!("{p:?} has {digits} digits"));
    }
    Ok(())
}

/// Yuan text (`120.50`, `¥1,200`, `35元`) to cents; empty is 0 (free
/// warranty work). No floats: `0.1 + 0.2` must stay 30 cents.
pub fn parse_yuan(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let t = t
        .strip_prefix('¥')
        .or_else(|| t.strip_prefix('￥'))
        .unwrap_or(t);
    let t = t.strip_suffix('元').unwrap_or(t).trim();
    if t.is_empty() {
        return Ok(0);
    }
    // Thousands separators; copy only when there are any.
    let t: std::borrow::Cow<str> = if t.contains(',') {
        t.replace(',', "").into()
    } else {
        t.into()
    };
    let bad = || format!("{s:?} is not an amount in yuan");
    if t.starts_with('-') {
        return Err(format!("{s:?} is negative"));
    }
    let (int, frac) = t.split_once('.').unwrap_or((&t, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 2 {
        return Err(format!("{s:?} has more than 2 decimals"));
    }
    let yuan: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let cents = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(2)
        .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    yuan.checked_mul(100)
        .and_then(|y| y.checked_add(cents))
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// ISO 8601 / RFC 3339 with an offset, or a local time in `tz`:
/// `YYYY-MM-DD HH:MM[:SS[.fff]]` (also with `T` or `/`).
pub fn parse_time(s: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("is empty".into());
    }
    let naive = match fast_local(s) {
        Some(n) => n,
        None => {
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Ok(t.with_timezone(&Utc));
            }
            for f in [
                "%Y-%m-%dT%H:%M%:z",
                "%Y-%m-%d %H:%M%:z",
                "%Y-%m-%d %H:%M:%S%z",
            ] {
                if let Ok(t) = DateTime::<FixedOffset>::parse_from_str(s, f) {
                    return Ok(t.with_timezone(&Utc));
                }
            }
            slow_local(s)?
        }
    };
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{s:?} does not exist in {} (DST gap)", tz.name()))
}

/// `YYYY-MM-DD HH:MM[:SS]` (space or `T`), the ERP's usual form, read
/// without chrono's format interpreter (which was a third of import time).
fn fast_local(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if !(b.len() == 16 || b.len() == 19) || b[4] != b'-' || b[7] != b'-' || b[13] != b':' {
        return None;
    }
    if !matches!(b[10], b' ' | b'T') || (b.len() == 19 && b[16] != b':') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let sec = if b.len() == 19 { num(17..19)? } else { 0 };
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    date.and_hms_opt(num(11..13)?, num(14..16)?, sec)
}

/// The other local forms, including fractional seconds and `/` dates.
fn slow_local(s: &str) -> Result<NaiveDateTime, String> {
    const LOCAL: [&str; 6] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y/%m/%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
    ];
    LOCAL
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .ok_or_else(|| format!("{s:?} is not a date and time (YYYY-MM-DD HH:MM[:SS] or ISO 8601)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(_: &str) -> Tz {
        chrono_tz::Asia::Shanghai
    }

    const HEADER: &str = "order_no,type,customer_id,customer_name,phone,address,region,product,technician,department,completed_at,fees";

    #[test]
    fn good_rows_with_bom_crlf_quotes_and_chinese_types() {
        let csv = format!(
            "\u{feff}{HEADER}\r\n\
             W1,安装,C1,张三,13800000001,\"杭州市西湖区文三路1号, 2单元\",杭州,空调,李四,安装部,2024-03-08 17:00,120.50\r\n\
             W2,维修,,\"王 \"\"小\"\" 五\",0571-8888 8888,\"多行\r\n地址\",宁波,热水器,赵六,维修部,2024-03-08T09:30:00+08:00,\r\n"
        );
        let r = parse_csv(&csv, sh).unwrap();
        assert_eq!(r.errors, vec![]);
        assert_eq!(r.rows.len(), 2);
        let a = &r.rows[0];
        assert_eq!(a.kind, OrderKind::Install);
        assert_eq!(a.customer_id.as_deref(), Some("C1"));
        assert_eq!(a.address, "杭州市西湖区文三路1号, 2单元");
        assert_eq!(a.fees_cents, 12050);
        assert_eq!(a.completed_at.to_rfc3339(), "2024-03-08T09:00:00+00:00");
        let b = &r.rows[1];
        assert_eq!(b.kind, OrderKind::Repair);
        assert_eq!(b.customer_id, None);
        assert_eq!(b.customer_name, "王 \"小\" 五");
        assert_eq!(b.address, "多行\r\n地址");
        assert_eq!(b.fees_cents, 0);
        assert_eq!(b.completed_at.to_rfc3339(), "2024-03-08T01:30:00+00:00");
    }

    #[test]
    fn bad_rows_are_reported_with_line_numbers_and_do_not_block_good_ones() {
        let csv = format!(
            "{HEADER}\n\
             W1,install,,A,13800000001,,r,,,,2024-03-08 17:00,1\n\
             W2,uninstall,,B,abc,,r,,,,2024-13-40 25:00,-3\n\
             W3,\"repair\n\",,C,13800000003,,r,,,,2024-03-08 17:00:05,9.999\n\
             W4,repair,,D,13800000004\n\
             \"W5\"oops,repair,,E,13800000005,,r,,,,2024-03-08 17:00,1\n\
             ,repair,,F,13800000006,,r,,,,2024-03-08 17:00,1\n\
             W7,REPAIR,,G,+86 138-0000-0007,,r,,,,2024/03/08 17:00,\"1,200.5\"\n"
        );
        let r = parse_csv(&csv, sh).unwrap();
        let ok: Vec<&str> = r.rows.iter().map(|o| o.order_no.as_str()).collect();
        assert_eq!(ok, ["W1", "W7"]);
        assert_eq!(r.rows[1].fees_cents, 120_050);
        let errs: Vec<(usize, &str)> = r
            .errors
            .iter()
            .map(|e| (e.line, e.field.as_str()))
            .collect();
        assert_eq!(
            errs,
            [
                (3, "type"),
                (3, "phone"),
                (3, "completed_at"),
                (3, "fees"),
                (4, "fees"), // W3: type "repair\n" trims to repair; 9.999 has 3 decimals
                (6, "*"),    // W4: too few fields (line 6: W3 spans lines 4-5)
                (7, "*"),    // text after closing quote
                (8, "order_no"),
            ]
        );
    }

    #[test]
    fn header_problems_are_file_errors() {
        assert_eq!(parse_csv("", sh), Err(ImportError::Empty));
        assert_eq!(
            parse_csv("order_no,type,phone\n", sh),
            Err(ImportError::MissingColumn("completed_at"))
        );
        assert!(matches!(
            parse_csv("order_no,工单号,type,phone,completed_at\n", sh),
            Err(ImportError::DuplicateColumn(_))
        ));
        // Chinese headers, extra unknown column, header only.
        let r = parse_csv(
            "工单号,类型,电话,完工时间,备注\nW1,维修,13800000000,2024-03-08 10:00,x\n",
            sh,
        )
        .unwrap();
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.rows[0].region, "");
    }

    #[test]
    fn non_utf8_is_reported_with_its_line() {
        let mut bytes = b"order_no,type,phone,completed_at\nW1,".to_vec();
        bytes.extend_from_slice(&[0xb0, 0xb2, 0xd7, 0xb0]); // 安装 in GBK
        assert_eq!(
            parse_csv_bytes(&bytes, sh),
            Err(ImportError::NotUtf8 { line: 2 })
        );
    }

    #[test]
    fn local_time_uses_the_region_zone() {
        let zone = |r: &str| {
            if r == "新疆" {
                chrono_tz::Asia::Urumqi
            } else {
                chrono_tz::Asia::Shanghai
            }
        };
        let csv = "order_no,type,phone,region,completed_at\nA,安装,13800000000,新疆,2024-03-08 10:00\nB,安装,13800000000,杭州,2024-03-08 10:00\nC,安装,13800000000,新疆,2024-03-08T10:00:00Z\n";
        let r = parse_csv(csv, zone).unwrap();
        assert_eq!(
            r.rows[0].completed_at.to_rfc3339(),
            "2024-03-08T04:00:00+00:00"
        );
        assert_eq!(
            r.rows[1].completed_at.to_rfc3339(),
            "2024-03-08T02:00:00+00:00"
        );
        assert_eq!(
            r.rows[2].completed_at.to_rfc3339(),
            "2024-03-08T10:00:00+00:00"
        );
    }

    #[test]
    fn time_forms() {
        let tz = chrono_tz::Asia::Shanghai;
        let utc = |s| parse_time(s, tz).map(|t| t.to_rfc3339());
        let want = Ok("2024-03-08T09:00:05+00:00".to_string());
        assert_eq!(utc("2024-03-08 17:00:05"), want);
        assert_eq!(utc("2024-03-08T17:00:05"), want);
        assert_eq!(utc("2024-03-08 17:00:05.000"), want);
        assert_eq!(utc("2024/03/08 17:00:05"), want);
        assert_eq!(utc("2024-03-08T09:00:05Z"), want);
        assert_eq!(utc("2024-03-08 17:00:05+08:00"), want);
        assert_eq!(
            utc(" 2024-03-08 17:00 "),
            Ok("2024-03-08T09:00:00+00:00".into())
        );
        for bad in [
            "",
            "2024-02-30 10:00",
            "2024-03-08 24:00",
            "2024-03-08",
            "yesterday",
            "2024-0a-08 10:00",
        ] {
            assert!(utc(bad).is_err(), "{bad}");
        }
        // A DST gap in a zone that has one.
        assert!(parse_time("2024-03-10 02:30", chrono_tz::America::New_York).is_err());
    }

    #[test]
    fn yuan() {
        assert_eq!(parse_yuan("120.50"), Ok(12050));
        assert_eq!(parse_yuan("120.5"), Ok(12050));
        assert_eq!(parse_yuan("120"), Ok(12000));
        assert_eq!(parse_yuan(".5"), Ok(50));
        assert_eq!(parse_yuan("￥35元"), Ok(3500));
        assert_eq!(parse_yuan("0.10"), Ok(10));
        assert_eq!(parse_yuan("1.230"), Ok(123));
        assert!(parse_yuan("1.234").is_err());
        assert!(parse_yuan("abc").is_err());
        assert!(parse_yuan(".").is_err());
        assert!(parse_yuan("1e3").is_err());
        assert!(parse_yuan("99999999999999999999").is_err());
    }

    #[test]
    fn json_one_or_many() {
        let one: WorkOrderInputs = serde_json::from_str(
            r#"{"order_no":"W1","type":"安装","phone":13800000000,"completed_at":"2024-03-08 17:00","fees":120.5}"#,
        )
        .unwrap();
        let r = parse_json_orders(one, sh);
        assert_eq!(r.errors, vec![]);
        assert_eq!(r.rows[0].phone, "13800000000");
        assert_eq!(r.rows[0].fees_cents, 12050);

        let many: WorkOrderInputs = serde_json::from_str(
            r#"[{"order_no":1001,"kind":"repair","phone":"13800000000","completed_at":"2024-03-08T17:00:00+08:00","fees":"35.00","region":"杭州","do_not_call":true},
                {"order_no":"W3","type":"维修"}]"#,
        )
        .unwrap();
        let r = parse_json_orders(many, sh);
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.rows[0].order_no, "1001");
        assert!(r.rows[0].do_not_call);
        let errs: Vec<(usize, &str)> = r
            .errors
            .iter()
            .map(|e| (e.line, e.field.as_str()))
            .collect();
        assert_eq!(errs, [(2, "phone"), (2, "completed_at")]);
    }
}
