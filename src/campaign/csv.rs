//! A small RFC 4180 reader: quoted fields, `""` escapes, commas and line
//! breaks inside quotes, CRLF or LF line ends, a leading UTF-8 BOM.
//!
//! Records come out one at a time with the line they start on, so a bad
//! record is reported with its line and the reader carries on with the next.
//! It is lenient where ERP exports commonly are sloppy (a stray quote inside
//! an unquoted field is kept as text) and strict where data would be lost
//! (text after a closing quote, a quote never closed). Fields borrow from
//! the input unless they had to be unescaped.

use std::borrow::Cow;

/// One record: the physical line (1-based) it starts on and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub line: usize,
    pub fields: Vec<Cow<'a, str>>,
}

/// A record that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CsvError {
    pub line: usize,
    pub message: String,
}

/// Iterator over the records of a CSV text. Empty lines are skipped.
pub struct Reader<'a> {
    s: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Reader<'a> {
    pub fn new(s: &'a str) -> Self {
        let s = s.strip_prefix('\u{feff}').unwrap_or(s);
        Self { s, pos: 0, line: 1 }
    }

    /// Consumes a line end at `pos` if there is one (CRLF, LF or a lone CR).
    fn eat_line_end(&mut self) -> bool {
        let b = self.s.as_bytes();
        match b.get(self.pos) {
            Some(b'\r') => {
                self.pos += 1;
                if b.get(self.pos) == Some(&b'\n') {
                    self.pos += 1;
                }
                self.line += 1;
                true
            }
            Some(b'\n') => {
                self.pos += 1;
                self.line += 1;
                true
            }
            _ => false,
        }
    }

    /// After an error: drop the rest of the physical line.
    fn skip_line(&mut self) {
        let b = self.s.as_bytes();
        while self.pos < b.len() && !matches!(b[self.pos], b'\r' | b'\n') {
            self.pos += 1;
        }
        self.eat_line_end();
    }

    fn read_record(&mut self) -> Result<Vec<Cow<'a, str>>, String> {
        let b = self.s.as_bytes();
        let mut fields = Vec::new();
        loop {
            let field = if b.get(self.pos) == Some(&b'"') {
                self.pos += 1;
                let start = self.pos;
                // Only a field with an escaped quote needs a copy.
                let mut copy: Option<String> = None;
                let field = loop {
                    let Some(q) = self.s[self.pos..].find('"').map(|i| self.pos + i) else {
                        self.line += self.s[self.pos..].matches('\n').count();
                        self.pos = b.len();
                        return Err("quoted field is never closed".into());
                    };
                    let chunk = &self.s[self.pos..q];
                    self.line += chunk.matches('\n').count();
                    self.pos = q + 1;
                    if b.get(self.pos) == Some(&b'"') {
                        let c = copy.get_or_insert_with(String::new);
                        c.push_str(chunk);
                        c.push('"');
                        self.pos += 1;
                        continue;
                    }
                    break match copy.take() {
                        Some(mut c) => {
                            c.push_str(chunk);
                            Cow::Owned(c)
                        }
                        None => Cow::Borrowed(&self.s[start..q]),
                    };
                };
                if !matches!(b.get(self.pos), None | Some(b',' | b'\r' | b'\n')) {
                    return Err("unexpected text after a closing quote".into());
                }
                field
            } else {
                let start = self.pos;
                while self.pos < b.len() && !matches!(b[self.pos], b',' | b'\r' | b'\n') {
                    self.pos += 1;
                }
                Cow::Borrowed(&self.s[start..self.pos])
            };
            fields.push(field);
            if b.get(self.pos) == Some(&b',') {
                self.pos += 1;
                continue;
            }
            self.eat_line_end();
            return Ok(fields);
        }
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Record<'a>, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.pos < self.s.len() {
            // An empty line is no record (and no error).
            if self.eat_line_end() {
                continue;
            }
            let line = self.line;
            return Some(match self.read_record() {
                Ok(fields) => Ok(Record { line, fields }),
                Err(message) => {
                    self.skip_line();
                    Err(CsvError { line, message })
                }
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Vec<Result<Record<'_>, CsvError>> {
        Reader::new(s).collect()
    }

    fn rec(line: usize, f: &[&'static str]) -> Result<Record<'static>, CsvError> {
        Ok(Record {
            line,
            fields: f.iter().map(|s| Cow::Borrowed(*s)).collect(),
        })
    }

    #[test]
    fn plain_crlf_bom_and_blank_lines() {
        let r = read("\u{feff}a,b\r\n1,2\r\n\r\n3,\r\n");
        assert_eq!(
            r,
            vec![rec(1, &["a", "b"]), rec(2, &["1", "2"]), rec(4, &["3", ""])]
        );
        // No trailing newline; LF only.
        assert_eq!(read("x\ny"), vec![rec(1, &["x"]), rec(2, &["y"])]);
    }

    #[test]
    fn quoted_fields() {
        let r = read("\"a,b\",\"say \"\"hi\"\"\",\"two\r\nlines\"\nnext,\"\"\n");
        assert_eq!(
            r,
            vec![
                rec(1, &["a,b", "say \"hi\"", "two\r\nlines"]),
                rec(3, &["next", ""])
            ]
        );
    }

    #[test]
    fn errors_carry_line_and_reading_goes_on() {
        let r = read("a,b\n\"bad\"x,1\nok,2\n\"open,3\n");
        assert_eq!(r[0], rec(1, &["a", "b"]));
        assert_eq!(r[1].as_ref().unwrap_err().line, 2);
        assert_eq!(r[2], rec(3, &["ok", "2"]));
        assert_eq!(r[3].as_ref().unwrap_err().line, 4);
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn stray_quote_in_unquoted_field_is_kept() {
        assert_eq!(read("12\" screen,x\n"), vec![rec(1, &["12\" screen", "x"])]);
    }

    #[test]
    fn chinese_text() {
        assert_eq!(
            read("工单号,类型\nW1,\"维修,上门\"\n"),
            vec![rec(1, &["工单号", "类型"]), rec(2, &["W1", "维修,上门"])]
        );
    }
}
