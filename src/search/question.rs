//! What a question says besides its words: when ("yesterday", "last hour",
//! "this evening", "after 10 pm", "between 9 and 11 am", "in the last 3
//! days") and where ("on cam1": any stream's name). Those words become
//! filters, said back to the asker as they were understood; the rest is
//! what moments are matched against.
//!
//! Times are the asker's local clock (the offset of `now`); parts of the
//! day: morning 06–12, afternoon 12–18, evening 18–24, night 22–06.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone};

/// Which moments a question is about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    pub stream: Option<String>,
    /// Wall clock, ms since the epoch: moments that end at or after it.
    pub since_ms: Option<i64>,
    /// Moments that start before it.
    pub until_ms: Option<i64>,
}

/// A question, understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// The words left to match.
    pub words: String,
    pub filters: Filters,
    /// The filters in words, as understood ("yesterday evening: …").
    pub understood: Vec<String>,
}

fn number(word: &str) -> Option<u32> {
    const WORDS: [&str; 13] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve",
    ];
    match word {
        "a" | "an" => Some(1),
        w => w
            .parse()
            .ok()
            .or_else(|| WORDS.iter().position(|x| *x == w).map(|n| n as u32)),
    }
}

/// Minutes of a unit word.
fn unit(word: &str) -> Option<i64> {
    match word.trim_end_matches('s') {
        "minute" | "min" => Some(1),
        "hour" | "hr" => Some(60),
        "day" => Some(24 * 60),
        "week" => Some(7 * 24 * 60),
        _ => None,
    }
}

/// Hours of a part of the day: start and end (end may pass midnight).
fn part(word: &str) -> Option<(u32, u32, &'static str)> {
    match word {
        "morning" => Some((6, 12, "morning")),
        "afternoon" => Some((12, 18, "afternoon")),
        "evening" => Some((18, 24, "evening")),
        "night" | "tonight" => Some((22, 30, "night")),
        _ => None,
    }
}

/// A clock time at `words[i..]`: "10", "10pm", "10 pm", "22:30", "noon";
/// minutes after midnight and the words it took.
fn clock(words: &[String], i: usize) -> Option<(u32, usize)> {
    let w = words.get(i)?;
    if w == "noon" || w == "midday" {
        return Some((12 * 60, 1));
    }
    if w == "midnight" {
        return Some((0, 1));
    }
    let (digits, suffix) = match w.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => (&w[..at], Some(&w[at..])),
        None => (w.as_str(), None),
    };
    let (h, m) = match digits.split_once(':') {
        Some((h, m)) => (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
        None => (number(digits)?, 0),
    };
    let (half, took) = match suffix {
        Some(s @ ("am" | "pm")) => (Some(s == "pm"), 1),
        Some(_) => return None,
        None => match words.get(i + 1).map(String::as_str) {
            Some(s @ ("am" | "pm")) => (Some(s == "pm"), 2),
            Some("o'clock") => (None, 2),
            _ => (None, 1),
        },
    };
    if m > 59 {
        return None;
    }
    let h = match half {
        Some(pm) if (1..=12).contains(&h) => h % 12 + if pm { 12 } else { 0 },
        Some(_) => return None,
        None if h <= 23 => h,
        None => return None,
    };
    Some((h * 60 + m, took))
}

/// Understands `question` asked at `now` of a store holding `streams`.
pub fn understand(question: &str, now: DateTime<FixedOffset>, streams: &[String]) -> Question {
    let words: Vec<String> = question
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '?' | '!' | ';' | '"'))
        .map(|w| w.trim_end_matches('.').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    let mut used = vec![false; words.len()];
    let mut stream = None;
    let mut day: Option<(NaiveDate, &str)> = None;
    let mut span: Option<(u32, u32, &str)> = None;
    let mut after: Option<u32> = None;
    let mut before: Option<u32> = None;
    let mut back: Option<(i64, String)> = None;
    let today = now.date_naive();
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let next = words.get(i + 1).map(String::as_str);
        let take = |used: &mut Vec<bool>, from: usize, n: usize| {
            for u in used.iter_mut().skip(from).take(n) {
                *u = true;
            }
        };
        if let Some(s) = streams.iter().find(|s| s.to_lowercase() == w) {
            stream = Some(s.clone());
            take(&mut used, i, 1);
            // "on cam1", "at cam1", "from cam1": the preposition goes too.
            if i > 0 && matches!(words[i - 1].as_str(), "on" | "at" | "from" | "in") {
                used[i - 1] = true;
            }
        } else if w == "yesterday" {
            day = Some((today - Duration::days(1), "yesterday"));
            take(&mut used, i, 1);
        } else if w == "today" {
            day = Some((today, "today"));
            take(&mut used, i, 1);
        } else if w == "tonight" {
            day = Some((today, "today"));
            span = part(w);
            take(&mut used, i, 1);
        } else if (w == "last" || w == "this") && next.and_then(part).is_some() {
            let p = next.and_then(part);
            day = Some(if w == "last" && next == Some("night") {
                (today - Duration::days(1), "yesterday")
            } else {
                (today, "today")
            });
            span = p;
            take(&mut used, i, 2);
            i += 1;
        } else if let Some(p) = part(w) {
            span = Some(p);
            take(&mut used, i, 1);
            if i > 0 && matches!(words[i - 1].as_str(), "the" | "in" | "at") {
                used[i - 1] = true;
                if i > 1 && words[i - 2] == "in" {
                    used[i - 2] = true;
                }
            }
        } else if matches!(w, "last" | "past" | "previous") {
            // "last hour", "past 3 days", "last two weeks".
            let (n, u, took) = match (next.and_then(number), next.and_then(unit)) {
                (_, Some(u)) => (1, u, 2),
                (Some(n), None) => match words.get(i + 2).and_then(|x| unit(x)) {
                    Some(u) => (n, u, 3),
                    None => (0, 0, 0),
                },
                _ => (0, 0, 0),
            };
            if took > 0 && n > 0 {
                let minutes = i64::from(n) * u;
                let said = words[i..i + took].join(" ");
                back = Some((minutes, said));
                take(&mut used, i, took);
                if i > 1 && words[i - 2] == "in" && words[i - 1] == "the" {
                    take(&mut used, i - 2, 2);
                }
                i += took - 1;
            }
        } else if matches!(w, "after" | "since" | "before" | "until" | "between")
            && let Some((m, took)) = clock(&words, i + 1)
        {
            let mut end = i + 1 + took;
            if w == "between" {
                if words.get(end).map(String::as_str) == Some("and")
                    && let Some((m2, took2)) = clock(&words, end + 1)
                {
                    // "between 9 and 11 am": the half of the day said
                    // once is meant for both.
                    let said_half = words[end + 1..end + 1 + took2]
                        .iter()
                        .any(|x| x.ends_with("am") || x.ends_with("pm"));
                    let bare = !words[i + 1..i + 1 + took]
                        .iter()
                        .any(|x| x.ends_with("am") || x.ends_with("pm") || x.contains(':'));
                    let m = if said_half && bare && m2 >= 12 * 60 && m < 12 * 60 {
                        m + 12 * 60
                    } else {
                        m
                    };
                    after = Some(m.min(m2));
                    before = Some(m.max(m2));
                    end += 1 + took2;
                } else {
                    i += 1;
                    continue;
                }
            } else if matches!(w, "after" | "since") {
                after = Some(m);
            } else {
                before = Some(m);
            }
            take(&mut used, i, end - i);
            i = end;
            continue;
        }
        i += 1;
    }
    let offset = *now.offset();
    let at = |d: NaiveDate, minutes: u32| -> i64 {
        let base = d.and_time(NaiveTime::MIN) + Duration::minutes(i64::from(minutes));
        offset
            .from_local_datetime(&base)
            .single()
            .map_or(now.timestamp_millis(), |t| t.timestamp_millis())
    };
    let now_ms = now.timestamp_millis();
    let mut filters = Filters {
        stream: stream.clone(),
        ..Default::default()
    };
    let mut understood = Vec::new();
    if let Some((minutes, said)) = &back {
        filters.since_ms = Some(now_ms - minutes * 60_000);
        filters.until_ms = Some(now_ms);
        understood.push(format!("{said}: since {}", local(filters.since_ms, offset)));
    }
    if day.is_some() || span.is_some() || after.is_some() || before.is_some() {
        let (from, to) = match span {
            Some((a, b, _)) => (a * 60, b * 60),
            None => (0, 24 * 60),
        };
        let from = after.map_or(from, |a| a.max(from));
        let to = before.map_or(to, |b| b.min(to));
        // Without a day: the last such time of day that has begun.
        let (d, said_day) = match day {
            Some((d, said)) => (d, said.to_string()),
            None if at(today, from) <= now_ms => (today, "today".to_string()),
            None => (today - Duration::days(1), "yesterday".to_string()),
        };
        let since = at(d, from);
        let until = at(d, to.max(from));
        filters.since_ms = Some(filters.since_ms.map_or(since, |s| s.max(since)));
        filters.until_ms = Some(filters.until_ms.map_or(until, |u| u.min(until)));
        let mut said = said_day;
        if let Some((_, _, name)) = span {
            said.push(' ');
            said.push_str(name);
        }
        if let Some(a) = after {
            said.push_str(&format!(" after {:02}:{:02}", a / 60, a % 60));
        }
        if let Some(b) = before {
            said.push_str(&format!(" before {:02}:{:02}", b / 60, b % 60));
        }
        understood.push(format!(
            "{said}: {} to {}",
            local(Some(since), offset),
            local(Some(until), offset)
        ));
    }
    if let Some(s) = &stream {
        understood.push(format!("on {s}"));
    }
    let rest: Vec<&str> = words
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(w, _)| w.as_str())
        .collect();
    Question {
        words: rest.join(" "),
        filters,
        understood,
    }
}

fn local(ms: Option<i64>, offset: FixedOffset) -> String {
    ms.and_then(DateTime::from_timestamp_millis)
        .map(|t| {
            t.with_timezone(&offset)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-12-06T15:30:00+01:00").expect("a time")
    }

    fn ask(q: &str) -> Question {
        understand(q, now(), &["cam1".into(), "walkway".into()])
    }

    fn ms(t: &str) -> i64 {
        DateTime::parse_from_rfc3339(t)
            .expect("a time")
            .timestamp_millis()
    }

    #[test]
    fn days_and_parts_of_days() {
        let q = ask("a dog barking near a car yesterday evening");
        assert_eq!(q.words, "a dog barking near a car");
        assert_eq!(q.filters.since_ms, Some(ms("2026-12-05T18:00:00+01:00")));
        assert_eq!(q.filters.until_ms, Some(ms("2026-12-06T00:00:00+01:00")));
        assert_eq!(
            q.understood,
            ["yesterday evening: 2026-12-05 18:00 to 2026-12-06 00:00"]
        );
        let q = ask("who came by last night?");
        assert_eq!(q.words, "who came by");
        assert_eq!(q.filters.since_ms, Some(ms("2026-12-05T22:00:00+01:00")));
        assert_eq!(q.filters.until_ms, Some(ms("2026-12-06T06:00:00+01:00")));
        let q = ask("siren today");
        assert_eq!(q.filters.since_ms, Some(ms("2026-12-06T00:00:00+01:00")));
        assert_eq!(q.words, "siren");
    }

    #[test]
    fn clock_times_and_spans_back_from_now() {
        let q = ask("people at the junction after 10 pm");
        assert_eq!(q.words, "people at the junction");
        // 22:00 has not come yet today: yesterday's.
        assert_eq!(q.filters.since_ms, Some(ms("2026-12-05T22:00:00+01:00")));
        assert_eq!(q.filters.until_ms, Some(ms("2026-12-06T00:00:00+01:00")));
        let q = ask("cars between 9 and 11 am yesterday");
        assert_eq!(q.words, "cars");
        assert_eq!(q.filters.since_ms, Some(ms("2026-12-05T09:00:00+01:00")));
        assert_eq!(q.filters.until_ms, Some(ms("2026-12-05T11:00:00+01:00")));
        let q = ask("glass breaking in the last hour");
        assert_eq!(q.words, "glass breaking");
        assert_eq!(q.filters.since_ms, Some(ms("2026-12-06T14:30:00+01:00")));
        assert_eq!(q.filters.until_ms, Some(now().timestamp_millis()));
        let q = ask("in the past 3 days");
        assert_eq!(q.filters.since_ms, Some(ms("2026-12-03T15:30:00+01:00")));
        assert!(q.words.is_empty(), "{}", q.words);
        let q = ask("before 8:30");
        assert_eq!(q.filters.since_ms, Some(ms("2026-12-06T00:00:00+01:00")));
        assert_eq!(q.filters.until_ms, Some(ms("2026-12-06T08:30:00+01:00")));
    }

    #[test]
    fn a_streams_name_filters_and_other_words_stay() {
        let q = ask("when did someone mention the door on cam1");
        assert_eq!(q.words, "when did someone mention the door");
        assert_eq!(q.filters.stream.as_deref(), Some("cam1"));
        assert_eq!(q.understood, ["on cam1"]);
        // Not times: left as words.
        let q = ask("the last person after the siren");
        assert_eq!(q.words, "the last person after the siren");
        assert_eq!(q.filters, Filters::default());
    }
}
