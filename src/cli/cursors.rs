//! `vigil cursors`: where each live sink stands in the event store, and
//! `--forget` for a sink that is gone for good.

use anyhow::Result;

use super::args::CursorsArgs;

pub fn cursors(args: CursorsArgs) -> Result<i32> {
    let CursorsArgs { db, forget } = args;
    if !db.exists() {
        anyhow::bail!(
            "no event store at {}; give the one `vigil run` wrote with --db OUT/events.db",
            db.display()
        );
    }
    let store = vigil::sink::store::open(&db)?;
    if let Some(sink) = forget {
        if !vigil::sink::store::forget_cursor(&store, &sink, &db)? {
            anyhow::bail!("{} has no cursor named `{sink}`", db.display());
        }
        println!("forgot {sink}: retention no longer keeps records for it");
        return Ok(0);
    }
    println!("{:<12} {:>12} {:>10}", "sink", "acknowledged", "owed");
    for (sink, seq, owed) in vigil::sink::store::cursors(&store, &db)? {
        println!("{sink:<12} {seq:>12} {owed:>10}");
    }
    Ok(0)
}
