//! Go's text forms of the values apimachinery prints by hand: times in
//! RFC 3339, `time.Duration.String()`, and strings coerced to valid UTF-8 the
//! way `encoding/json` does it.

/// Seconds from 0001-01-01 to 1970-01-01: `time.Unix(s, 0).IsZero()` at this value.
const ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `t.UTC().Format(layout)` for RFC 3339 with `micros` digits of fraction
/// (None: no fraction). Go pads the year to four digits, with a sign if negative.
fn rfc3339(secs: i64, micros: Option<u32>) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let year = if y < 0 {
        format!("-{:04}", -y)
    } else {
        format!("{y:04}")
    };
    let frac = micros.map(|u| format!(".{u:06}")).unwrap_or_default();
    format!(
        "{year}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// `metav1.Time` JSON: whole seconds (its protobuf form drops the nanoseconds
/// on purpose), or None for the zero time, which prints as `null`.
pub(crate) fn time(secs: i64) -> Option<String> {
    (secs != ZERO_TIME_UNIX).then(|| rfc3339(secs, None))
}

/// `metav1.MicroTime` JSON: nanoseconds truncated to microseconds, as its
/// `Unmarshal` does, then normalised like `time.Unix`.
pub(crate) fn micro_time(secs: i64, nanos: i64) -> Option<String> {
    let nanos = nanos - nanos % 1000;
    let secs = secs.checked_add(nanos.div_euclid(1_000_000_000))?;
    let micros = (nanos.rem_euclid(1_000_000_000) / 1000) as u32;
    (secs != ZERO_TIME_UNIX || micros != 0).then(|| rfc3339(secs, Some(micros)))
}

/// The fraction of `v / 10^prec` without trailing zeros (".5", or "" if none),
/// and the integer part — Go's `fmtFrac`.
fn frac(v: u64, prec: u32) -> (String, u64) {
    let p = 10u64.pow(prec);
    let f = v % p;
    if f == 0 {
        return (String::new(), v / p);
    }
    let digits = format!("{f:0width$}", width = prec as usize);
    (format!(".{}", digits.trim_end_matches('0')), v / p)
}

/// `time.Duration(nanos).String()`, e.g. `1h2m3.5s`, `1.5ms`, `0s`.
pub(crate) fn duration(nanos: i64) -> String {
    let mut u = nanos.unsigned_abs();
    let body = if u == 0 {
        "0s".to_string()
    } else if u < 1_000_000_000 {
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        let (f, int) = frac(u, prec);
        format!("{int}{f}{unit}")
    } else {
        let (f, secs) = frac(u, 9);
        u = secs / 60;
        let s = format!("{}{f}s", secs % 60);
        if u == 0 {
            s
        } else if u / 60 == 0 {
            format!("{}m{s}", u % 60)
        } else {
            format!("{}h{}m{s}", u / 60, u % 60)
        }
    };
    if nanos < 0 { format!("-{body}") } else { body }
}

/// Bytes as a JSON string the way `encoding/json` writes a Go string: each
/// byte that is not part of valid UTF-8 becomes one U+FFFD.
pub(crate) fn string(mut b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let mut out = String::with_capacity(b.len() + 8);
            loop {
                match std::str::from_utf8(b) {
                    Ok(s) => {
                        out.push_str(s);
                        return out;
                    }
                    Err(e) => {
                        let (ok, rest) = b.split_at(e.valid_up_to());
                        out.push_str(std::str::from_utf8(ok).unwrap_or_default());
                        let bad = e.error_len().unwrap_or(rest.len());
                        out.extend(std::iter::repeat_n('\u{fffd}', bad));
                        b = &rest[bad..];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_match_go() {
        assert_eq!(time(1_199_149_261).as_deref(), Some("2008-01-01T01:01:01Z"));
        assert_eq!(time(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(time(ZERO_TIME_UNIX), None);
        assert_eq!(
            time(ZERO_TIME_UNIX + 1).as_deref(),
            Some("0001-01-01T00:00:01Z")
        );
        assert_eq!(
            time(253_402_300_800).as_deref(),
            Some("10000-01-01T00:00:00Z")
        );
        assert_eq!(
            micro_time(1_199_149_261, 123_456_789).as_deref(),
            Some("2008-01-01T01:01:01.123456Z")
        );
        assert_eq!(
            micro_time(5, -1_500).as_deref(),
            Some("1970-01-01T00:00:04.999999Z")
        );
        assert_eq!(micro_time(ZERO_TIME_UNIX, 999), None);
        // Out of range after normalising: printed as null rather than wrapped.
        assert_eq!(micro_time(i64::MAX, 2_000_000_000), None);
    }

    #[test]
    fn durations_match_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (4 * 60 * 1_000_000_000 + 5_000_000_000, "4m5s"),
            (3_723_000_000_000, "1h2m3s"),
            (-1_500_000_000, "-1.5s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
            (i64::MAX, "2562047h47m16.854775807s"),
        ];
        for (n, want) in cases {
            assert_eq!(duration(n), want);
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_per_byte() {
        assert_eq!(string(b"ok"), "ok");
        assert_eq!(string(b"a\xe2\x82b"), "a\u{fffd}\u{fffd}b");
        assert_eq!(string(b"\xff"), "\u{fffd}");
    }
}
