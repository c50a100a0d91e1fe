//! `resource.Quantity` as apimachinery prints it.
//!
//! A Quantity is stored in protobuf as a string, but the API server never
//! prints that string back as is: `Quantity.Unmarshal` runs `ParseQuantity`
//! and `MarshalJSON` prints `String()`, which is the canonical form unless
//! `ParseQuantity` decided the input already was canonical and kept it. This
//! module follows `k8s.io/apimachinery/pkg/api/resource/quantity.go` step by
//! step, quirks included (a DecimalSI exponent past `E` loses its suffix, a
//! leading `+` of an otherwise canonical string is kept), with an arbitrary
//! precision decimal in place of `inf.Dec` so huge values print exactly.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    DecimalExponent,
    BinarySI,
    DecimalSI,
}

/// Why a string is not a Quantity; the texts are apimachinery's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuantityError {
    Format,
    Suffix,
    Numeric,
    TooLarge,
}

impl std::fmt::Display for QuantityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QuantityError::Format => "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            QuantityError::Suffix => "unable to parse quantity's suffix",
            QuantityError::Numeric => "unable to parse quantity's numeric part",
            QuantityError::TooLarge => "quantity exponent is too large to print",
        })
    }
}

/// Digits beyond this are refused: apimachinery would build the number too,
/// but a hostile `1e2000000000` must not exhaust memory here.
const MAX_DIGITS: i64 = 4096;

/// A decimal: `digits × 10^exp`, digits big-endian without leading zeros
/// (empty for zero).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dec {
    negative: bool,
    digits: Vec<u8>,
    exp: i64,
}

impl Dec {
    fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    fn normalize(mut self) -> Dec {
        let lead = self.digits.iter().take_while(|&&d| d == 0).count();
        self.digits.drain(..lead);
        self
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for d in self.digits.iter_mut().rev() {
            let v = u64::from(*d) * u64::from(m) + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            self.digits.insert(0, (carry % 10) as u8);
            carry /= 10;
        }
    }

    /// Adds one unit in the last place of the magnitude.
    fn increment(&mut self) {
        for d in self.digits.iter_mut().rev() {
            if *d == 9 {
                *d = 0;
            } else {
                *d += 1;
                return;
            }
        }
        self.digits.insert(0, 1);
    }

    /// Rounds the magnitude up (away from zero) to `exp` ≥ current exponent.
    fn round_up_to(&mut self, exp: i64) {
        if self.exp >= exp {
            return;
        }
        let cut = (exp - self.exp) as usize;
        let keep = self.digits.len().saturating_sub(cut);
        let dropped_nonzero = self.digits[keep..].iter().any(|&d| d != 0);
        self.digits.truncate(keep);
        self.exp = exp;
        if dropped_nonzero {
            self.increment();
        }
    }

    /// Moves trailing zero digits into the exponent.
    fn strip_trailing_zeros(&mut self) {
        while self.digits.last() == Some(&0) {
            self.digits.pop();
            self.exp += 1;
        }
    }

    /// The magnitude as an integer's digits, if it has no fractional part.
    fn integer_digits(&self) -> Option<Vec<u8>> {
        let mut d = self.clone();
        d.strip_trailing_zeros();
        if d.exp < 0 {
            return None;
        }
        let mut digits = d.digits;
        digits.extend(std::iter::repeat_n(0, d.exp as usize));
        Some(digits)
    }

    /// Compares magnitudes.
    fn cmp_abs(&self, other: &Dec) -> std::cmp::Ordering {
        let (a, b) = (self.aligned(other.exp), other.aligned(self.exp));
        a.len().cmp(&b.len()).then_with(|| a.cmp(&b))
    }

    /// Digits of the magnitude at exponent min(self.exp, exp).
    fn aligned(&self, exp: i64) -> Vec<u8> {
        let mut v = self.digits.clone();
        if self.exp > exp {
            v.extend(std::iter::repeat_n(0, (self.exp - exp) as usize));
        }
        let lead = v.iter().take_while(|&&d| d == 0).count();
        v.drain(..lead);
        v
    }

    fn from_u64(v: u64) -> Dec {
        Dec {
            negative: false,
            digits: v.to_string().bytes().map(|b| b - b'0').collect(),
            exp: 0,
        }
        .normalize()
    }
}

fn digits_to_string(negative: bool, digits: &[u8]) -> String {
    let mut s = String::with_capacity(digits.len() + 1);
    if negative {
        s.push('-');
    }
    if digits.is_empty() {
        s.push('0');
    }
    s.extend(digits.iter().map(|&d| char::from(b'0' + d)));
    s
}

/// Divides a decimal integer by `d`, returning the quotient if exact.
fn div_exact(digits: &[u8], d: u64) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(digits.len());
    let mut rem = 0u64;
    for &x in digits {
        let cur = rem * 10 + u64::from(x);
        q.push((cur / d) as u8);
        rem = cur % d;
    }
    if rem != 0 {
        return None;
    }
    let lead = q.iter().take_while(|&&x| x == 0).count();
    q.drain(..lead);
    Some(q)
}

struct Parts<'a> {
    positive: bool,
    num: &'a [u8],
    denom: &'a [u8],
    suffix: &'a [u8],
}

/// `parseQuantityString`.
fn parse_parts(s: &[u8]) -> Result<Parts<'_>, QuantityError> {
    let end = s.len();
    let mut pos = 0;
    let mut positive = true;
    if pos < end {
        match s[0] {
            b'-' => {
                positive = false;
                pos += 1;
            }
            b'+' => pos += 1,
            _ => {}
        }
    }
    while pos < end && s[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(Parts {
            positive,
            num: b"0",
            denom: b"",
            suffix: b"",
        });
    }
    let start = pos;
    while pos < end && s[pos].is_ascii_digit() {
        pos += 1;
    }
    let mut num = &s[start..pos];
    if pos >= end {
        return Ok(Parts {
            positive,
            num,
            denom: b"",
            suffix: b"",
        });
    }
    if num.is_empty() {
        num = b"0";
    }
    let mut denom: &[u8] = b"";
    if s[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < end && s[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[start..pos];
        if pos >= end {
            return Ok(Parts {
                positive,
                num,
                denom,
                suffix: b"",
            });
        }
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&s[pos]) {
        pos += 1;
    }
    if pos < end && (s[pos] == b'-' || s[pos] == b'+') {
        pos += 1;
    }
    while pos < end && s[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::Format);
    }
    Ok(Parts {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

/// `quantitySuffixer.interpret`: (base, exponent, format).
fn interpret(suffix: &[u8]) -> Option<(u32, i32, Format)> {
    let dec = |e| Some((10, e, Format::DecimalSI));
    let bin = |e| Some((2, e, Format::BinarySI));
    match suffix {
        b"" => dec(0),
        b"n" => dec(-9),
        b"u" => dec(-6),
        b"m" => dec(-3),
        b"k" => dec(3),
        b"M" => dec(6),
        b"G" => dec(9),
        b"T" => dec(12),
        b"P" => dec(15),
        b"E" => dec(18),
        b"Ki" => bin(10),
        b"Mi" => bin(20),
        b"Gi" => bin(30),
        b"Ti" => bin(40),
        b"Pi" => bin(50),
        b"Ei" => bin(60),
        [b'e' | b'E', rest @ ..] if !rest.is_empty() => {
            // strconv.ParseInt(…, 10, 64) then a wrapping int32 conversion.
            let text = std::str::from_utf8(rest).ok()?;
            let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let v: i64 = text.parse().ok()?;
            Some((10, v as i32, Format::DecimalExponent))
        }
        _ => None,
    }
}

/// Parses `s` as `ParseQuantity` does and returns what `String()` prints.
pub(crate) fn canonical(s: &str) -> Result<String, QuantityError> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(QuantityError::Format);
    }
    if s == "0" {
        return Ok("0".into());
    }
    let p = parse_parts(b)?;
    let (base, exponent, mut format) = interpret(p.suffix).ok_or(QuantityError::Suffix)?;
    // The int64 fast path, which also decides whether `s` is kept verbatim.
    let mut mantissa = 1i64;
    let (precision, mut scale) = match format {
        Format::DecimalExponent | Format::DecimalSI => (
            18 - (p.num.len() + p.denom.len()) as i64,
            i64::from(exponent),
        ),
        Format::BinarySI if exponent >= 0 && p.denom.is_empty() => {
            mantissa <<= exponent;
            // 1Mi (2^20) has about 6 decimal digits: exponent*3/10 - 1 approximates the precision lost.
            (
                15 - p.num.len() as i64 - (exponent as f32 * 3.0 / 10.0) as i64 - 1,
                0,
            )
        }
        Format::BinarySI => (-1, 0),
    };
    if precision >= 0 {
        scale -= p.denom.len() as i64;
        if scale >= -9 {
            let shifted: Vec<u8> = p.num.iter().chain(p.denom).copied().collect();
            let value: i64 = std::str::from_utf8(&shifted)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or(QuantityError::Numeric)?;
            if value.checked_mul(mantissa).is_some() {
                let keep = match format {
                    Format::BinarySI => exponent % 10 == 0 && value & 7 != 0,
                    _ => scale % 3 == 0 && !shifted.ends_with(b"000") && shifted[0] != b'0',
                };
                if keep {
                    return Ok(s.to_string());
                }
            }
        }
    }
    // The arbitrary-precision path (inf.Dec in apimachinery).
    let digits: Vec<u8> = p.num.iter().chain(p.denom).map(|c| c - b'0').collect();
    let mut amount = Dec {
        negative: false,
        digits,
        exp: -(p.denom.len() as i64),
    }
    .normalize();
    if base == 10 {
        amount.exp += i64::from(exponent);
    } else {
        for _ in 0..exponent {
            amount.mul_small(2);
        }
    }
    if amount.digits.len() as i64 + amount.exp.max(0) > MAX_DIGITS || amount.exp < -MAX_DIGITS {
        return Err(QuantityError::TooLarge);
    }
    if !amount.is_zero() {
        amount.round_up_to(-9);
    }
    let max = Dec::from_u64(i64::MAX as u64);
    if format == Format::BinarySI && amount.cmp_abs(&max) == std::cmp::Ordering::Greater {
        amount = max;
    }
    if format == Format::BinarySI
        && !amount.is_zero()
        && amount.cmp_abs(&Dec::from_u64(1)) == std::cmp::Ordering::Less
    {
        format = Format::DecimalSI;
    }
    amount.negative = !p.positive;
    Ok(canonicalize(amount, format))
}

/// `CanonicalizeBytes`.
fn canonicalize(mut amount: Dec, mut format: Format) -> String {
    if amount.is_zero() {
        return "0".into();
    }
    let mut binary = None;
    if format == Format::BinarySI {
        if amount.cmp_abs(&Dec::from_u64(1024)) == std::cmp::Ordering::Less {
            format = Format::DecimalSI;
        } else if let Some(int) = amount.integer_digits() {
            binary = Some(int);
        } else {
            format = Format::DecimalSI;
        }
    }
    if let Some(mut int) = binary {
        let mut e = 0;
        while let Some(q) = div_exact(&int, 1024) {
            if q.is_empty() {
                break;
            }
            int = q;
            e += 1;
        }
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
            .get(e)
            .copied()
            .unwrap_or("");
        return digits_to_string(amount.negative, &int) + suffix;
    }
    amount.strip_trailing_zeros();
    while amount.exp % 3 != 0 {
        amount.digits.push(0);
        amount.exp -= 1;
    }
    let suffix = match format {
        Format::DecimalExponent if amount.exp == 0 => String::new(),
        Format::DecimalExponent => format!("e{}", amount.exp),
        _ => match amount.exp {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            // No SI suffix: apimachinery prints the digits alone.
            _ => "",
        }
        .to_string(),
    };
    digits_to_string(amount.negative, &amount.digits) + &suffix
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from apimachinery's quantity_test.go (TestQuantityParse and
    /// friends): input → String().
    #[test]
    fn upstream_cases() {
        let cases = [
            ("0", "0"),
            ("0n", "0"),
            ("0u", "0"),
            ("0m", "0"),
            ("0Ki", "0"),
            ("0k", "0"),
            ("0Mi", "0"),
            ("0M", "0"),
            ("0Gi", "0"),
            ("0G", "0"),
            ("0Ti", "0"),
            ("0T", "0"),
            ("1n", "1n"),
            ("1u", "1u"),
            ("1m", "1m"),
            ("1Ki", "1Ki"),
            ("1k", "1k"),
            ("1Mi", "1Mi"),
            ("1M", "1M"),
            ("1Gi", "1Gi"),
            ("1G", "1G"),
            ("1Ti", "1Ti"),
            ("1T", "1T"),
            ("1Pi", "1Pi"),
            ("1P", "1P"),
            ("1Ei", "1Ei"),
            ("1E", "1E"),
            ("1000m", "1"),
            ("1.5", "1500m"),
            ("0.1", "100m"),
            ("0.001", "1m"),
            ("0.0001", "100u"),
            ("1.1Ki", "1126400m"),
            ("1024Ki", "1Mi"),
            ("1025Ki", "1025Ki"),
            ("8Ki", "8Ki"),
            ("1e3", "1e3"),
            ("1E3", "1E3"),
            ("1e-3", "1e-3"),
            ("10e3", "10e3"),
            ("1.5e3", "1500"),
            ("100m", "100m"),
            ("12.34", "12340m"),
            ("0.5Gi", "512Mi"),
            ("1500m", "1500m"),
            ("-1", "-1"),
            ("-1.5", "-1500m"),
            ("-1Ki", "-1Ki"),
            ("+1", "+1"),
            ("1.0000000001", "1000000001n"),
            ("0.0000000001", "1n"),
            ("1Ki", "1Ki"),
            ("512", "512"),
            ("2048", "2048"),
            (".5", "500m"),
            ("1.", "1."),
            ("1000E", "1"),
            ("12E", "12E"),
            ("9223372036854775807Ki", "9223372036854775807"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(canonical(input).as_deref(), Ok(want), "input {input}");
        }
    }

    #[test]
    fn rejects_what_apimachinery_rejects() {
        for bad in ["", "1Qi", "1.2.3", "abc", "1e", "1ki", "1 ", "--1", "1Mi1"] {
            assert!(canonical(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(canonical("1e999999998"), Err(QuantityError::TooLarge));
    }
}
