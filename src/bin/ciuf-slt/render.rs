//! Values rendered as the sqllogictest SQLite driver renders them, and the corpus's
//! sort, hash and comparison rules (../shared/slt/README.md, "Format and comparison
//! rules").

use ciuf::Value;
use ciuf::core::value::format_float;

/// One value for column type `t` (`I`, `R` or `T`).
pub fn render(v: &Value, t: u8) -> String {
    if v.is_null() {
        return "NULL".into();
    }
    match t {
        b'I' => wrap32(as_i64(v)).to_string(),
        b'R' => fixed3(as_f64(v)),
        _ => {
            let text = match v {
                Value::Float(f) => format_float(*f),
                Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
                Value::Int(i) => i.to_string(),
                Value::Text(s) => s.to_string(),
                Value::Decimal(d) => d.to_string(),
                Value::Date(d) => ciuf::core::datetime::format_date(*d),
                Value::Timestamp(t) => ciuf::core::datetime::format_timestamp(*t),
                Value::Null => unreachable!("NULL handled above"),
            };
            if text.is_empty() {
                return "(empty)".into();
            }
            text.bytes().map(|b| if (0x20..=0x7e).contains(&b) { b as char } else { '@' }).collect()
        }
    }
}

/// `printf("%.3f")` as SQLite's own printf writes it: at most 16 significant digits,
/// the rest zeros (so 2^64 prints as 18446744073709550000.000).
fn fixed3(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "NULL".into()
        } else if f > 0.0 {
            "Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let plain = format!("{f:.3}");
    let digits = plain.bytes().filter(u8::is_ascii_digit).count();
    let leading_zeros =
        plain.trim_start_matches('-').bytes().take_while(|&b| b == b'0' || b == b'.').filter(|&b| b == b'0').count();
    if digits - leading_zeros <= 16 {
        return plain;
    }
    // 16 significant digits, then zeros.
    let sci = format!("{:.15e}", f.abs());
    let (mant, exp) = sci.split_once('e').expect("exponent");
    let exp: usize = exp.parse().unwrap_or(0);
    let mut m: String = mant.chars().filter(char::is_ascii_digit).collect();
    while m.len() < exp + 4 {
        m.push('0');
    }
    let sign = if f < 0.0 { "-" } else { "" };
    format!("{sign}{}.{}", &m[..exp + 1], &m[exp + 1..exp + 4])
}

/// `sqlite3_column_int64` of a value.
fn as_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Bool(b) => i64::from(*b),
        Value::Float(f) => real_to_i64(*f),
        Value::Decimal(d) => real_to_i64(d.to_f64()),
        Value::Text(s) => text_to_i64(s),
        Value::Date(d) => i64::from(*d),
        Value::Timestamp(t) => *t,
        Value::Null => 0,
    }
}

fn real_to_i64(r: f64) -> i64 {
    if r.is_nan() {
        0
    } else if r <= i64::MIN as f64 {
        i64::MIN
    } else if r >= i64::MAX as f64 {
        i64::MAX
    } else {
        r as i64
    }
}

/// The leading integer of a text, saturating (sqlite3Atoi64).
fn text_to_i64(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0c', '\r', '\x0b']);
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: &str = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
    let mut v: i128 = 0;
    for d in digits.bytes() {
        v = (v * 10 + i128::from(d - b'0')).min(i128::from(i64::MAX) + 1);
    }
    let v = if neg { -v } else { v };
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// A double's value for `%.3f` (text as SQLite's atof reads its prefix).
fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Decimal(d) => d.to_f64(),
        Value::Text(s) => {
            let t = s.trim_start();
            let end = t
                .char_indices()
                .take_while(|(i, c)| {
                    c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '-' || *c == '+')) || *c == 'e' || *c == 'E'
                })
                .count();
            (0..=end).rev().find_map(|n| t.get(..n).and_then(|p| p.parse::<f64>().ok())).unwrap_or(0.0)
        }
        Value::Date(d) => f64::from(*d),
        Value::Timestamp(t) => *t as f64,
        Value::Null => 0.0,
    }
}

fn wrap32(v: i64) -> i32 {
    v as i32
}

/// The record's sort mode applied to rendered values (byte order).
pub fn sort_values(values: Vec<String>, width: usize, sort: &str) -> Vec<String> {
    match sort {
        "rowsort" => {
            let mut rows: Vec<&[String]> = values.chunks(width.max(1)).collect();
            rows.sort();
            rows.concat()
        }
        "valuesort" => {
            let mut v = values;
            v.sort();
            v
        }
        _ => values,
    }
}

/// The MD5 of the values as the corpus hashes them.
pub fn md5_of(values: &[String]) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    for v in values {
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// None if `values` match the file's stored answer under `threshold`, else why not.
pub fn compare_file(expected: &[String], values: &[String], threshold: usize) -> Option<String> {
    let n = values.len();
    if threshold == 0 || n <= threshold {
        if expected == values {
            return None;
        }
        if expected.len() == 1 && expected[0].contains(" values hashing to ") {
            return Some(format!("expected [{}], got {n} values", expected[0]));
        }
        for (i, (e, g)) in expected.iter().zip(values).enumerate() {
            if e != g {
                return Some(format!("value {i}: expected [{e}] got [{g}]"));
            }
        }
        return Some(format!("expected {} values got {n}", expected.len()));
    }
    let got = format!("{n} values hashing to {}", md5_of(values));
    let exp = expected.first().map_or("(no result lines)", |s| s.trim());
    if exp == got { None } else { Some(format!("expected [{exp}] got [{got}]")) }
}

/// 0-based output columns of a trailing positional `ORDER BY 1 DESC, 3, …`.
pub fn order_positions(sql: &str, width: usize) -> Option<Vec<usize>> {
    let upper = sql.to_ascii_uppercase();
    let mut at = None;
    let mut search = 0;
    while let Some(i) = upper[search..].find("ORDER") {
        let start = search + i;
        let after = upper[start + 5..].trim_start();
        if after.starts_with("BY") {
            at = Some(sql.len() - after.len() + 2);
        }
        search = start + 5;
    }
    let tail = &sql[at?..];
    if tail.contains(')') {
        return None;
    }
    let mut out = Vec::new();
    for term in tail.split(',') {
        let t = term.trim();
        let t = t
            .strip_suffix("DESC")
            .or_else(|| t.strip_suffix("desc"))
            .or_else(|| t.strip_suffix("ASC"))
            .or_else(|| t.strip_suffix("asc"))
            .unwrap_or(t)
            .trim();
        let p: usize = t.parse().ok()?;
        if p == 0 || p > width {
            return None;
        }
        out.push(p - 1);
    }
    Some(out)
}

/// Check B's form of an answer: `nosort` rows kept in ORDER BY order but sorted
/// within runs of equal keys (or as rowsort without a positional ORDER BY).
pub fn canonical_b(sql: &str, sort: &str, width: usize, values: Vec<String>) -> Vec<String> {
    if sort != "nosort" && !sort.is_empty() {
        return values;
    }
    let mut rows: Vec<Vec<String>> = values.chunks(width.max(1)).map(<[String]>::to_vec).collect();
    match order_positions(sql, width) {
        None => rows.sort(),
        Some(pos) => {
            let mut i = 0;
            while i < rows.len() {
                let key: Vec<&String> = pos.iter().map(|&p| &rows[i][p]).collect();
                let mut j = i;
                while j < rows.len() && pos.iter().map(|&p| &rows[j][p]).collect::<Vec<_>>() == key {
                    j += 1;
                }
                rows[i..j].sort();
                i = j;
            }
        }
    }
    rows.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_follows_the_sqlite_driver() {
        assert_eq!(render(&Value::Float(48.67), b'I'), "48");
        assert_eq!(render(&Value::Float(-48.67), b'I'), "-48");
        assert_eq!(render(&Value::Int(1 << 33 | 5), b'I'), "5");
        assert_eq!(render(&Value::text("12ab"), b'I'), "12");
        assert_eq!(render(&Value::text("abc"), b'I'), "0");
        assert_eq!(render(&Value::Float(12.5), b'R'), "12.500");
        assert_eq!(render(&Value::Float(-18446744073709551616.0), b'R'), "-18446744073709550000.000");
        assert_eq!(render(&Value::Int(i64::MIN), b'R'), "-9223372036854776000.000");
        assert_eq!(render(&Value::Float(1234567890123.4567), b'R'), "1234567890123.457");
        assert_eq!(render(&Value::Int(3), b'R'), "3.000");
        assert_eq!(render(&Value::text(""), b'T'), "(empty)");
        assert_eq!(render(&Value::text("a\tb"), b'T'), "a@b");
        assert_eq!(render(&Value::Float(2.0), b'T'), "2.0");
        assert_eq!(render(&Value::Null, b'I'), "NULL");
    }

    #[test]
    fn sorting_hashing_and_ties() {
        let v: Vec<String> = ["9", "b", "10", "a"].iter().map(|s| s.to_string()).collect();
        assert_eq!(sort_values(v.clone(), 2, "rowsort"), ["10", "a", "9", "b"]);
        assert_eq!(sort_values(v, 2, "valuesort"), ["10", "9", "a", "b"]);
        assert_eq!(md5_of(&["1".to_string()]), "b026324c6904b2a9cb4b88d6d61c81d1");
        assert_eq!(order_positions("SELECT a, b FROM t ORDER BY 2 DESC, 1", 2), Some(vec![1, 0]));
        assert_eq!(order_positions("SELECT (SELECT 1 ORDER BY 1) FROM t", 1), None);
        let rows: Vec<String> = ["1", "z", "1", "a", "2", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(canonical_b("SELECT x, y FROM t ORDER BY 1", "nosort", 2, rows), ["1", "a", "1", "z", "2", "b"]);
    }
}
