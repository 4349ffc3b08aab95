//! Faces with the real BlazeFace model on photos with known content.

use crate::clip;
use crate::run::run_file;

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let ix = ((a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0])).max(0.0);
    let iy = ((a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    inter / (a[2] * a[3] + b[2] * b[3] - inter)
}

#[test]
fn astronaut_has_exactly_one_face_where_it_is() {
    let r = run_file(&clip::shared("astronaut.png"));
    assert!(r.ok(), "{}", r.stderr());
    r.assert_lifecycles_closed();
    let faces = r.events("face", "start");
    assert_eq!(faces.len(), 1, "{faces:?}");
    let b: Vec<f64> = faces[0]["bbox"]
        .as_array()
        .expect("a bbox")
        .iter()
        .filter_map(|v| v.as_f64())
        .collect();
    // ../shared/media/README.md: the face is at x 0.34–0.54, y 0.10–0.36.
    let truth = [0.34, 0.10, 0.20, 0.26];
    let overlap = iou([b[0], b[1], b[2], b[3]], truth);
    assert!(overlap >= 0.5, "IoU {overlap:.2} of {b:?} with {truth:?}");
    assert!(faces[0]["score"].as_f64().unwrap_or(0.0) >= 0.75);
}

#[test]
fn a_cat_has_no_face() {
    let r = run_file(&clip::shared("chelsea.png"));
    assert!(r.ok(), "{}", r.stderr());
    assert!(
        r.events("face", "start").is_empty(),
        "{:?}",
        r.events("face", "start")
    );
}
