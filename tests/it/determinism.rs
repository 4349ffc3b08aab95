//! The same file and pipeline give the same records, apart from `run` and `utc`.

use vigil::record::Phase;

use crate::clip::{self, ClipSpec};
use crate::run::{run_file, run_id, without_run_and_utc};

#[test]
fn the_same_file_twice_gives_identical_records() {
    let clip = clip::temp(&ClipSpec::default(), "twice.mkv");
    let a = run_file(&clip.path);
    let b = run_file(&clip.path);
    assert!(a.ok() && b.ok(), "{}\n{}", a.stderr(), b.stderr());
    let (ra, rb) = (a.records(), b.records());
    assert!(ra.len() > 3, "too few records to compare: {ra:?}");
    assert_ne!(run_id(&ra[0]), run_id(&rb[0]), "each run has its own id");
    assert_eq!(without_run_and_utc(ra), without_run_and_utc(rb));
}

#[test]
fn start_time_sets_utc() {
    let clip = clip::temp(&ClipSpec::default(), "utc.mkv");
    let r = crate::run::run(&[
        "--source",
        clip.path.to_str().unwrap_or_default(),
        "--start-time",
        "2026-11-28T15:00:00Z",
    ]);
    assert!(r.ok(), "{}", r.stderr());
    let motion = r.events("motion", Phase::Start);
    assert_eq!(motion[0].utc, "2026-11-28T15:00:03.000Z");
}
