//! What a report says about its own run, so that it stands alone: netecho's version, the
//! machine (host name, kernel, cores), the date in UTC, the exact command, and every
//! parameter of the run.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};

/// A run's metadata, as every report format carries it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Meta {
    pub netecho_version: &'static str,
    pub host: String,
    pub kernel: String,
    pub cores: usize,
    /// When the run started, as 2026-11-30T17:03:41Z.
    pub date_utc: String,
    /// The command line as typed, each argument quoted for a POSIX shell where it must be.
    pub command: String,
    /// Every setting the run used, by name, asked for or not.
    pub parameters: Map<String, Value>,
}

impl Meta {
    /// This machine, now, and this process's command line.
    pub(crate) fn now(parameters: Map<String, Value>) -> Meta {
        let (host, kernel) = uname();
        Meta {
            netecho_version: env!("CARGO_PKG_VERSION"),
            host,
            kernel,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            date_utc: utc(SystemTime::now()),
            command: std::env::args()
                .map(|a| shell_quote(&a))
                .collect::<Vec<_>>()
                .join(" "),
            parameters,
        }
    }

    /// The metadata as (name, value) pairs, parameters last, each as one CSV field.
    pub(crate) fn fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![
            (
                "netecho_version".to_string(),
                self.netecho_version.to_string(),
            ),
            ("host".into(), self.host.clone()),
            ("kernel".into(), self.kernel.clone()),
            ("cores".into(), self.cores.to_string()),
            ("date_utc".into(), self.date_utc.clone()),
            ("command".into(), self.command.clone()),
        ];
        for (name, value) in &self.parameters {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            fields.push((format!("param_{name}"), text));
        }
        fields
    }
}

/// The host name, and the kernel's name and release ("Linux 6.1.0"), from uname(2).
fn uname() -> (String, String) {
    // SAFETY: uname fills the zeroed struct it is given; its fields end in a NUL.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return ("unknown".into(), "unknown".into());
    }
    let text = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let kernel = format!("{} {}", text(&u.sysname), text(&u.release));
    (text(&u.nodename), kernel)
}

/// `time` as an ISO 8601 date and time in UTC, to the second.
pub(crate) fn utc(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// `arg` as a POSIX shell reads it back: bare when it is plain, else in single quotes.
pub(crate) fn shell_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn dates_are_utc_and_arguments_quoted() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_058_221);
        assert_eq!(utc(t), "2026-11-30T17:03:41Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc(leap), "2000-02-29T00:00:00Z");
        assert_eq!(shell_quote("--loss"), "--loss");
        assert_eq!(shell_quote("5%"), "5%");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn every_field_and_parameter_has_a_column() {
        let mut p = Map::new();
        p.insert("clients".into(), Value::from(4));
        p.insert("rate".into(), Value::Null);
        let meta = Meta::now(p);
        let fields = meta.fields();
        assert_eq!(fields[0].0, "netecho_version");
        assert!(fields.contains(&("param_clients".into(), "4".into())));
        assert!(fields.contains(&("param_rate".into(), String::new())));
        assert!(meta.cores >= 1);
    }
}
