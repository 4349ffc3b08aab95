//! `vigil ask`: a question to the index of moments, answered on the
//! terminal (or as JSON); `vigil index`: the index brought up to date.

use std::path::Path;

use anyhow::{Context, Result};

use vigil::search::{Answer, Answers};

use super::args::{AskArgs, IndexArgs};

pub fn ask(args: AskArgs) -> Result<i32> {
    let AskArgs {
        question,
        db,
        stream,
        since,
        until,
        top,
        mode,
        json,
        now: asked_at,
        server,
        token_file,
    } = args;
    if let Some(server) = server {
        // The server parses the times and the question itself.
        let mut query = vec![
            ("q", question.join(" ")),
            ("top", top.to_string()),
            ("mode", format!("{mode:?}").to_lowercase()),
        ];
        for (k, v) in [
            ("stream", stream),
            ("since", since),
            ("until", until),
            ("now", asked_at),
        ] {
            if let Some(v) = v {
                query.push((k, v));
            }
        }
        let client = super::remote::client(&server, token_file.as_deref())?;
        let answers = super::remote::api_call(client.search(&query))?;
        let base = server.trim_end_matches('/').to_string();
        return Ok(show(&answers, json, &|p| format!("{base}/media/{p}")));
    }
    let asked_at = match asked_at {
        Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
            .with_context(|| format!("--now {t}: expected RFC 3339 (2026-12-06T15:30:00+01:00)"))?,
        None => chrono::Local::now().fixed_offset(),
    };
    let now = asked_at.with_timezone(&chrono::Utc);
    let ms = |t: Option<String>, flag: &str| -> Result<Option<i64>> {
        t.map(|t| {
            vigil::export::parse_time(&t, now)
                .map_err(|e| anyhow::anyhow!("--{flag} {e}"))
                .and_then(|t| {
                    chrono::DateTime::parse_from_rfc3339(&t)
                        .map(|t| t.timestamp_millis())
                        .with_context(|| format!("--{flag} {t}"))
                })
        })
        .transpose()
    };
    let request = vigil::search::Ask {
        question: question.join(" "),
        stream,
        since_ms: ms(since, "since")?,
        until_ms: ms(until, "until")?,
        top,
        mode,
        now: asked_at,
    };
    let answers = vigil::search::ask_store(&db, &request)?;
    let out_dir = db.parent().unwrap_or(Path::new(".")).to_path_buf();
    Ok(show(&answers, json, &|p| {
        out_dir.join(p).display().to_string()
    }))
}

/// Prints the answers; the exit code (1: none).
/// `link` makes a record's media path (snapshot, clip) something to open.
fn show(answers: &Answers, json: bool, link: &dyn Fn(&str) -> String) -> i32 {
    if json {
        match serde_json::to_string_pretty(answers) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("vigil: cannot write the answers as JSON: {e}"),
        }
    } else {
        print!("{}", text(answers, link));
    }
    if answers.answers.is_empty() { 1 } else { 0 }
}

/// The answers as a person reads them.
fn text(a: &Answers, link: &dyn Fn(&str) -> String) -> String {
    let mut s = String::new();
    for u in &a.understood {
        s.push_str(&format!("filter: {u}\n"));
    }
    for n in &a.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    if a.answers.is_empty() {
        s.push_str("nothing matches\n");
    }
    for (i, ans) in a.answers.iter().enumerate() {
        let node = ans
            .node
            .as_ref()
            .map(|n| format!(" on node {n}"))
            .unwrap_or_default();
        s.push_str(&format!(
            "\n{}. {}{node} {:.1}–{:.1} s, {} ({})\n",
            i + 1,
            ans.stream,
            ans.start,
            ans.end,
            ans.utc,
            ans.kinds.join(", ")
        ));
        for said in ans.said.iter().take(4) {
            s.push_str(&format!("   {}\n", shorten(said, 160)));
        }
        s.push_str(&format!("   why: {}\n", why(ans)));
        for w in &ans.why {
            s.push_str(&format!("   evidence: {}\n", shorten(w, 200)));
        }
        if let Some(p) = &ans.snapshot {
            s.push_str(&format!("   snapshot: {}\n", link(p)));
        }
        if let Some(p) = &ans.clip {
            s.push_str(&format!("   clip: {}\n", link(p)));
        }
        s.push_str(&format!(
            "   replay: vigil clip --stream {} --from {} --to {} --out {}.mp4 (continuous recording), or the console's review at that time\n",
            ans.stream, ans.utc, ans.utc_end, ans.stream
        ));
    }
    s
}

/// Why an answer matched, in a line.
fn why(a: &Answer) -> String {
    let mut parts = Vec::new();
    if !a.words.is_empty() {
        parts.push(format!("words {}", a.words.join(", ")));
    }
    if let Some(m) = a.meaning {
        parts.push(format!("meaning {m:.2}"));
    }
    parts.push(format!("score {:.4}", a.score));
    parts.join(" · ")
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

pub fn index(args: IndexArgs) -> Result<i32> {
    use vigil::encode::text::{TextEncoder, Use};
    use vigil::search::index;
    let IndexArgs { db, rebuild } = args;
    let mut conn = vigil::search::open(&db)?;
    let store = |e: rusqlite::Error| anyhow::anyhow!("{}: {e}", db.display());
    if rebuild {
        index::clear(&mut conn).map_err(store)?;
        eprintln!("index: emptied; indexing every record again");
    }
    let mut encoder = if TextEncoder::installed() {
        Some(TextEncoder::load(Use::Many)?)
    } else {
        eprintln!(
            "index: the text model (minilm) is not installed: words only; run `make setup` for meaning"
        );
        None
    };
    let started = std::time::Instant::now();
    let mut said = std::time::Instant::now();
    let done = index::catch_up(&mut conn, encoder.as_mut(), &mut |done, left| {
        if said.elapsed().as_secs() >= 2 {
            said = std::time::Instant::now();
            eprintln!("index: {done} records indexed, {left} to go");
        }
    })?;
    let filled = match encoder.as_mut() {
        Some(e) => index::fill_vectors(&mut conn, e)?,
        None => 0,
    };
    let c = index::coverage(&conn).map_err(store)?;
    println!(
        "indexed {} records ({} new sentences{}) in {:.1} s; the index holds {} moments, {} sentences{}",
        done.records,
        done.phrases,
        if filled > 0 {
            format!(", {filled} given their vectors")
        } else {
            String::new()
        },
        started.elapsed().as_secs_f64(),
        c.moments,
        c.phrases,
        if c.without_vector > 0 {
            format!(" ({} without a vector)", c.without_vector)
        } else {
            String::new()
        }
    );
    Ok(0)
}
