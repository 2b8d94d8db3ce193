//! Sizes and durations as a user types them, one rule for every flag.
//!
//! Sizes count in 1024s, as iperf3 (`-l 128K`, `-n 1G`) and the kernel's buffer sizes do:
//! k, K and KiB are 1024 bytes; M and MiB 1024²; G and GiB 1024³. `kB`, `MB` and `GB` are
//! refused rather than guessed at. Durations need a unit (ns, us, ms, s, m, h): a bare
//! `20` could be milliseconds or seconds, so it is refused with the two readings.

use std::time::Duration;

/// The suffixes of a size and their multipliers; a bare number is bytes.
const SIZE_UNITS: [(&str, u64); 11] = [
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("k", 1 << 10),
    ("K", 1 << 10),
    ("m", 1 << 20),
    ("M", 1 << 20),
    ("g", 1 << 30),
    ("G", 1 << 30),
    ("B", 1),
    ("", 1),
];

/// A size in bytes: "4096", "64k", "1.5M", "4G", "8KiB".
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let wrong = || {
        format!(
            "'{text}' is not a byte count; write e.g. 4096, 64k, 4M or 1G (k is 1024, as in iperf3; \
             KiB, MiB and GiB are accepted too)"
        )
    };
    let t = text.trim();
    if ["kB", "KB", "MB", "GB", "kb", "mb", "gb"]
        .iter()
        .any(|u| t.ends_with(u))
    {
        let number = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = t[number.len()..]
            .chars()
            .next()
            .unwrap_or('k')
            .to_ascii_uppercase();
        let unit = if unit == 'K' { 'k' } else { unit };
        return Err(format!(
            "'{text}': sizes count in 1024s here, as in iperf3; write {number}{unit} or \
             {number}{}iB",
            unit.to_ascii_uppercase()
        ));
    }
    let (number, scale) = SIZE_UNITS
        .iter()
        .find_map(|(unit, scale)| t.strip_suffix(unit).map(|n| (n, *scale)))
        .ok_or_else(wrong)?;
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(wrong());
    }
    let value: f64 = number.parse().map_err(|_| wrong())?;
    let bytes = value * scale as f64;
    if !(0.0..=u64::MAX as f64 / 2.0).contains(&bytes) || bytes.fract() != 0.0 {
        return Err(wrong());
    }
    Ok(bytes as u64)
}

/// A value parser for a size from `min` to `max` bytes, into the flag's own integer type.
pub(crate) fn size_in<T>(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: TryFrom<u64>,
{
    move |text: &str| {
        let bytes = parse_size(text)?;
        if bytes < min || bytes > max {
            return Err(format!(
                "'{text}' is {bytes} bytes; this takes {} to {}",
                show_size(min),
                show_size(max)
            ));
        }
        T::try_from(bytes).map_err(|_| format!("'{text}' is too large here"))
    }
}

/// A size as the parser reads it back: 64k, 4M, 1G, or bytes.
pub(crate) fn show_size(bytes: u64) -> String {
    for (unit, scale) in [("G", 1u64 << 30), ("M", 1 << 20), ("k", 1 << 10)] {
        if bytes >= scale && bytes.is_multiple_of(scale) {
            return format!("{}{unit}", bytes / scale);
        }
    }
    bytes.to_string()
}

/// A count with its noun, singular for one: "1 byte", "2 bytes", "3 replies" (`one` is
/// the singular).
pub(crate) fn count<T>(n: T, one: &str) -> String
where
    T: std::fmt::Display + PartialEq + From<u8>,
{
    if n == T::from(1) {
        return format!("{n} {one}");
    }
    match one.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'o', 'u']) => format!("{n} {stem}ies"),
        _ => format!("{n} {one}s"),
    }
}

/// A time taken, for a reader: "2.35 s", "4.6 ms", "850 us": never "0.00 s" beside a rate
/// that is not zero.
pub(crate) fn took(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 1.0 {
        format!("{secs:.2} s")
    } else if secs >= 1e-3 {
        format!("{:.1} ms", secs * 1e3)
    } else {
        format!("{:.0} us", secs * 1e6)
    }
}

/// A duration with its unit: "2s", "500ms", "1.5s", "1m", "250us", "1h".
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let units: [(&str, f64); 6] = [
        ("ns", 1e-9),
        ("us", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ];
    let zero = || format!("{t}: a duration here is more than 0, e.g. 500ms or 2s");
    // A value may start with a dash (so -1s gets the line above): a flag there means the
    // duration was left out.
    if t.starts_with("--") || t.starts_with('-') && t[1..].starts_with(char::is_alphabetic) {
        return Err(format!(
            "'{t}' is a flag where a duration goes: give the duration first, e.g. 500ms or 2s"
        ));
    }
    if t.starts_with('-') || t.parse::<f64>().is_ok_and(|v| v == 0.0) {
        return Err(zero());
    }
    if !t.is_empty() && t.parse::<f64>().is_ok() {
        return Err(format!(
            "{t} what? write {t}ms or {t}s (a duration needs its unit)"
        ));
    }
    let wrong = || format!("'{text}' is not a duration; write e.g. 2s, 500ms or 1m");
    let (number, scale) = units
        .iter()
        .find_map(|(unit, scale)| t.strip_suffix(unit).map(|n| (n, *scale)))
        .ok_or_else(wrong)?;
    if !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(wrong());
    }
    // About 31 years: longer waits are a typo, and past this the clocks' sums overflow.
    const LONGEST: f64 = 1e9;
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v * scale < LONGEST => {
            Ok(Duration::from_secs_f64(v * scale))
        }
        Ok(0.0) => Err(zero()),
        Ok(v) if v > 0.0 => Err(format!(
            "{t}: a duration here is less than {LONGEST:.0}s (about 31 years)"
        )),
        _ => Err(wrong()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_time_taken_has_the_unit_that_shows_it() {
        use std::time::Duration;
        assert_eq!(super::took(Duration::from_millis(2350)), "2.35 s");
        assert_eq!(super::took(Duration::from_micros(4630)), "4.6 ms");
        assert_eq!(super::took(Duration::from_micros(850)), "850 us");
    }

    #[test]
    fn a_flag_where_a_duration_goes_is_named_as_one() {
        for flag in ["--count", "-c", "-v"] {
            let err = super::parse_duration(flag).unwrap_err();
            assert!(
                err.contains("is a flag where a duration goes"),
                "{flag}: {err}"
            );
        }
        assert!(
            super::parse_duration("-1s")
                .unwrap_err()
                .contains("more than 0")
        );
    }

    #[test]
    fn a_duration_too_long_says_the_longest() {
        for text in ["9999999999s", "300000h", "99999999999999ms"] {
            let err = super::parse_duration(text).unwrap_err();
            assert!(err.contains("less than 1000000000s"), "{text}: {err}");
        }
    }

    use super::*;

    #[test]
    fn sizes_count_in_1024s() {
        let ok = |t: &str| parse_size(t).unwrap();
        assert_eq!(ok("4096"), 4096);
        assert_eq!(ok("512B"), 512);
        assert_eq!(ok("1k"), 1024);
        assert_eq!(ok("1K"), 1024);
        assert_eq!(ok("8KiB"), 8192);
        assert_eq!(ok("1.5M"), 3 << 19);
        assert_eq!(ok("4MiB"), 4 << 20);
        assert_eq!(ok("4G"), 4 << 30);
        assert_eq!(ok("1GiB"), 1 << 30);
        assert!(parse_size("4MB").unwrap_err().contains("1024s"));
        assert!(parse_size("lots").unwrap_err().contains("not a byte count"));
        assert!(parse_size("-1k").is_err());
        assert!(parse_size("1.1").is_err());
    }

    #[test]
    fn a_size_is_held_to_its_range() {
        let parse = size_in::<u16>(1, 65535);
        assert_eq!(parse("8k"), Ok(8192));
        assert!(parse("64k").unwrap_err().contains("1 to 65535"));
        assert!(parse("0").is_err());
        assert_eq!(show_size(4 << 30), "4G");
        assert_eq!(show_size(1500), "1500");
    }

    #[test]
    fn durations_need_their_unit() {
        let ok = |t: &str| parse_duration(t).unwrap();
        assert_eq!(ok("2s"), Duration::from_secs(2));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("1m"), Duration::from_secs(60));
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(
            parse_duration("20").unwrap_err(),
            "20 what? write 20ms or 20s (a duration needs its unit)"
        );
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
        for zero in ["0s", "0ms", "0", "-1s", "-1", "-0.5ms"] {
            assert!(
                parse_duration(zero).unwrap_err().contains("more than 0"),
                "{zero}"
            );
        }
    }
}
