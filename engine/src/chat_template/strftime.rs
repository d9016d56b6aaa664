//! The subset of C `strftime` that chat templates use for `strftime_now`
//! ("%d %b %Y" in Llama 3.x templates), in UTC: seldon has no time-zone
//! database, and a date for a system prompt does not need one.

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// A UTC date and time broken into fields.
#[derive(Debug, PartialEq, Eq)]
struct DateTime {
    year: i64,
    /// 1..=12
    month: u32,
    /// 1..=31
    day: u32,
    /// 1..=366
    yday: u32,
    /// 0 = Monday
    weekday: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Splits seconds since 1970-01-01T00:00:00Z into calendar fields
/// (proleptic Gregorian).
fn breakdown(secs: i64) -> DateTime {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    // 1970-01-01 was a Thursday (3 with Monday = 0).
    let weekday = (days + 3).rem_euclid(7) as u32;
    // Count in 400-year eras from 0000-03-01 so that leap days fall at the
    // end of each year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut yday = day;
    for m in 1..month {
        yday += match m {
            2 if is_leap(year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
    }
    DateTime {
        year,
        month,
        day,
        yday,
        weekday,
        hour: rem / 3600,
        minute: rem / 60 % 60,
        second: rem % 60,
    }
}

/// `format` with the time `secs` (Unix seconds, UTC) filled in. Unknown
/// directives are kept as written.
pub(super) fn format_utc(format: &str, secs: i64) -> String {
    let t = breakdown(secs);
    let month = MONTHS[(t.month - 1) as usize % 12];
    let weekday = WEEKDAYS[t.weekday as usize % 7];
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(d) = chars.next() else {
            out.push('%');
            break;
        };
        let hour12 = if t.hour.is_multiple_of(12) {
            12
        } else {
            t.hour % 12
        };
        let piece = match d {
            'Y' => t.year.to_string(),
            'y' => format!("{:02}", t.year.rem_euclid(100)),
            'm' => format!("{:02}", t.month),
            'd' => format!("{:02}", t.day),
            'e' => format!("{:2}", t.day),
            'j' => format!("{:03}", t.yday),
            'H' => format!("{:02}", t.hour),
            'I' => format!("{hour12:02}"),
            'M' => format!("{:02}", t.minute),
            'S' => format!("{:02}", t.second),
            'p' => if t.hour < 12 { "AM" } else { "PM" }.to_owned(),
            'b' | 'h' => month[..3].to_owned(),
            'B' => month.to_owned(),
            'a' => weekday[..3].to_owned(),
            'A' => weekday.to_owned(),
            'F' => format!("{}-{:02}-{:02}", t.year, t.month, t.day),
            'T' => format!("{:02}:{:02}:{:02}", t.hour, t.minute, t.second),
            '%' => "%".to_owned(),
            other => format!("%{other}"),
        };
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(
            format_utc("%Y-%m-%d %H:%M:%S %a", 0),
            "1970-01-01 00:00:00 Thu"
        );
        // 2024-02-29T13:05:09Z, a leap day (Thursday).
        assert_eq!(
            format_utc("%d %b %Y|%B|%A|%j|%I%p|%y|%F %T|%%|%q", 1_709_211_909),
            "29 Feb 2024|February|Thursday|060|01PM|24|2024-02-29 13:05:09|%|%q"
        );
        // 2000-12-31T23:59:59Z: day 366 of a leap century year.
        assert_eq!(format_utc("%j %d %m %Y", 978_307_199), "366 31 12 2000");
        // Before the epoch: 1969-12-31T23:59:59Z (Wednesday).
        assert_eq!(format_utc("%F %T %A", -1), "1969-12-31 23:59:59 Wednesday");
    }
}
