//! Exact decimals: a 120-bit two's-complement mantissa and a scale, in 16 bytes.
//!
//! The value is `mantissa / 10^scale`. Packing the scale into the top byte keeps a
//! [`crate::Value`] at 24 bytes. Equality and hashing are numeric (`1.50 == 1.5`), so a
//! decimal can be a group or join key whatever scale it was written with. Arithmetic
//! that leaves the 120-bit range returns `None`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

const MANTISSA_BITS: u32 = 120;
const MAX_MANTISSA: i128 = (1i128 << (MANTISSA_BITS - 1)) - 1;
const MIN_MANTISSA: i128 = -(1i128 << (MANTISSA_BITS - 1));
/// The largest scale a decimal can have.
pub const MAX_SCALE: u8 = 35;

/// An exact decimal number.
#[derive(Clone, Copy)]
pub struct Decimal {
    /// Low 64 bits of the mantissa; high 56 bits of the mantissa and the scale in the
    /// top byte.
    words: [u64; 2],
}

impl Decimal {
    /// `mantissa / 10^scale`, or `None` if the mantissa does not fit in 120 bits or the
    /// scale is above [`MAX_SCALE`].
    pub fn new(mantissa: i128, scale: u8) -> Option<Decimal> {
        if !(MIN_MANTISSA..=MAX_MANTISSA).contains(&mantissa) || scale > MAX_SCALE {
            return None;
        }
        let bits = mantissa as u128 & ((1u128 << MANTISSA_BITS) - 1);
        let lo = bits as u64;
        let hi = ((bits >> 64) as u64) | ((scale as u64) << 56);
        Some(Decimal { words: [lo, hi] })
    }

    /// The integer `v` at scale 0.
    pub fn from_i64(v: i64) -> Decimal {
        Decimal::new(v as i128, 0).expect("i64 fits")
    }

    /// The mantissa.
    pub fn mantissa(self) -> i128 {
        let bits = (self.words[0] as u128) | (((self.words[1] & ((1 << 56) - 1)) as u128) << 64);
        // Sign-extend from 120 bits.
        ((bits << (128 - MANTISSA_BITS)) as i128) >> (128 - MANTISSA_BITS)
    }

    /// Digits after the point.
    pub fn scale(self) -> u8 {
        (self.words[1] >> 56) as u8
    }

    /// The same number at `scale`, rounding half away from zero when digits are dropped.
    pub fn rescale(self, scale: u8) -> Option<Decimal> {
        let (m, s) = (self.mantissa(), self.scale());
        match scale.cmp(&s) {
            Ordering::Equal => Some(self),
            Ordering::Greater => Decimal::new(m.checked_mul(pow10(scale - s)?)?, scale),
            Ordering::Less => Decimal::new(div_round(m, pow10(s - scale)?), scale),
        }
    }

    /// The nearest `f64`.
    pub fn to_f64(self) -> f64 {
        self.mantissa() as f64 / 10f64.powi(self.scale() as i32)
    }

    /// `v` rounded to `scale` digits, or `None` if it does not fit (or is not finite).
    pub fn from_f64(v: f64, scale: u8) -> Option<Decimal> {
        if !v.is_finite() {
            return None;
        }
        // Go through the shortest round-trip text so that 0.1 becomes exactly 0.1.
        Decimal::parse(&format!("{v:?}"))?.rescale(scale)
    }

    /// Parses `[+-]digits[.digits][e[+-]digits]`; `None` if it is not a number or does
    /// not fit.
    pub fn parse(text: &str) -> Option<Decimal> {
        let t = text.trim();
        let (mantissa_text, exp) = match t.find(['e', 'E']) {
            Some(i) => (&t[..i], t[i + 1..].parse::<i32>().ok()?),
            None => (t, 0),
        };
        let (neg, digits) = match mantissa_text.as_bytes().first()? {
            b'-' => (true, &mantissa_text[1..]),
            b'+' => (false, &mantissa_text[1..]),
            _ => (false, mantissa_text),
        };
        let (int_part, frac_part) = match digits.find('.') {
            Some(i) => (&digits[..i], &digits[i + 1..]),
            None => (digits, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let mut m: i128 = 0;
        for c in int_part.bytes().chain(frac_part.bytes()) {
            if !c.is_ascii_digit() {
                return None;
            }
            m = m.checked_mul(10)?.checked_add((c - b'0') as i128)?;
        }
        if neg {
            m = -m;
        }
        let scale = frac_part.len() as i32 - exp;
        if scale < 0 {
            Decimal::new(m.checked_mul(pow10(u8::try_from(-scale).ok()?)?)?, 0)
        } else if scale > MAX_SCALE as i32 {
            // More digits after the point than can be kept: drop the excess, rounding.
            let div = pow10(u8::try_from(scale - MAX_SCALE as i32).ok()?)?;
            Decimal::new(div_round(m, div), MAX_SCALE)
        } else {
            Decimal::new(m, scale as u8)
        }
    }

    /// Exact sum at the larger scale.
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let s = self.scale().max(other.scale());
        let (a, b) = (self.rescale(s)?, other.rescale(s)?);
        Decimal::new(a.mantissa().checked_add(b.mantissa())?, s)
    }

    /// Exact difference at the larger scale.
    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        self.checked_add(other.checked_neg()?)
    }

    /// Exact product; the scales add (rounded back to [`MAX_SCALE`] if above it).
    pub fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        let m = self.mantissa().checked_mul(other.mantissa())?;
        let s = self.scale() as u16 + other.scale() as u16;
        if s > MAX_SCALE as u16 {
            let div = pow10((s - MAX_SCALE as u16) as u8)?;
            Decimal::new(div_round(m, div), MAX_SCALE)
        } else {
            Decimal::new(m, s as u8)
        }
    }

    /// `-self`.
    pub fn checked_neg(self) -> Option<Decimal> {
        Decimal::new(self.mantissa().checked_neg()?, self.scale())
    }

    /// `|self|`.
    pub fn abs(self) -> Decimal {
        if self.mantissa() < 0 { self.checked_neg().expect("negation of a 120-bit value fits") } else { self }
    }

    /// The integer part, truncated toward zero, if it fits in i64.
    pub fn trunc_i64(self) -> Option<i64> {
        let q = self.mantissa() / pow10(self.scale())?;
        i64::try_from(q).ok()
    }

    /// Whether the value is zero.
    pub fn is_zero(self) -> bool {
        self.mantissa() == 0
    }

    /// Canonical form: trailing zeros after the point removed.
    fn normalized(self) -> (i128, u8) {
        let (mut m, mut s) = (self.mantissa(), self.scale());
        while s > 0 && m % 10 == 0 {
            m /= 10;
            s -= 1;
        }
        (m, s)
    }
}

/// `m / div` rounded half away from zero (`div` > 0).
fn div_round(m: i128, div: i128) -> i128 {
    let q = m / div;
    if (m % div).abs() * 2 >= div { q + m.signum() } else { q }
}

/// 10^n, or `None` past i128.
pub(crate) fn pow10(n: u8) -> Option<i128> {
    10i128.checked_pow(n as u32)
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.normalized() == other.normalized()
    }
}

impl Eq for Decimal {}

impl Hash for Decimal {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalized().hash(state);
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        let s = self.scale().max(other.scale());
        match (self.rescale(s), other.rescale(s)) {
            (Some(a), Some(b)) => a.mantissa().cmp(&b.mantissa()),
            // Rescaling overflowed: the one that overflowed is the larger magnitude.
            _ => self.to_f64().total_cmp(&other.to_f64()),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (m, s) = (self.mantissa(), self.scale() as usize);
        let digits = m.unsigned_abs().to_string();
        if m < 0 {
            f.write_str("-")?;
        }
        if s == 0 {
            return f.write_str(&digits);
        }
        if digits.len() > s {
            let (int, frac) = digits.split_at(digits.len() - s);
            write!(f, "{int}.{frac}")
        } else {
            write!(f, "0.{}{}", "0".repeat(s - digits.len()), digits)
        }
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn packs_and_unpacks_sign_and_scale() {
        for (m, s) in [(0i128, 0u8), (-1, 2), (12345, 3), (MAX_MANTISSA, 35), (MIN_MANTISSA, 7)] {
            let x = Decimal::new(m, s).unwrap();
            assert_eq!((x.mantissa(), x.scale()), (m, s));
        }
        assert!(Decimal::new(MAX_MANTISSA + 1, 0).is_none());
        assert_eq!(std::mem::size_of::<Decimal>(), 16);
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(d("12.50").to_string(), "12.50");
        assert_eq!(d("-0.05").to_string(), "-0.05");
        assert_eq!(d("1e3").to_string(), "1000");
        assert_eq!(d("1.5e-2").to_string(), "0.015");
        assert!(Decimal::parse("abc").is_none());
        assert!(Decimal::parse("").is_none());
    }

    #[test]
    fn arithmetic_is_exact() {
        assert_eq!(d("0.1").checked_add(d("0.2")).unwrap(), d("0.3"));
        assert_eq!(d("1.25").checked_mul(d("4")).unwrap().to_string(), "5.00");
        assert_eq!(d("1.005").rescale(2).unwrap().to_string(), "1.01");
        assert_eq!(d("-1.005").rescale(2).unwrap().to_string(), "-1.01");
        assert_eq!(Decimal::from_f64(0.1, 2).unwrap().to_string(), "0.10");
    }

    #[test]
    fn equality_and_order_are_numeric() {
        assert_eq!(d("1.50"), d("1.5"));
        assert!(d("1.49") < d("1.5"));
        assert!(d("-2") < d("-1.99"));
        use std::collections::hash_map::DefaultHasher;
        let h = |x: Decimal| {
            let mut s = DefaultHasher::new();
            x.hash(&mut s);
            s.finish()
        };
        assert_eq!(h(d("1.50")), h(d("1.5")));
    }
}
