//! Faces with the real BlazeFace model on photos with known content.

use vigil::geometry::BBox;
use vigil::record::Phase;

use crate::clip;
use crate::run::run_file;

#[test]
fn astronaut_has_exactly_one_face_where_it_is() {
    let r = run_file(&clip::shared("astronaut.png"));
    assert!(r.ok(), "{}", r.stderr());
    r.assert_lifecycles_closed();
    let faces = r.events("face", Phase::Start);
    assert_eq!(faces.len(), 1, "{faces:?}");
    let b = faces[0].bbox.expect("a face has a box");
    // ../shared/media/README.md: the face is at x 0.34–0.54, y 0.10–0.36.
    let truth = BBox {
        x: 0.34,
        y: 0.10,
        w: 0.20,
        h: 0.26,
    };
    let overlap = b.iou(truth);
    assert!(overlap >= 0.5, "IoU {overlap:.2} of {b:?} with {truth:?}");
    assert!(faces[0].score >= 0.75);
}

#[test]
fn a_cat_has_no_face() {
    let r = run_file(&clip::shared("chelsea.png"));
    assert!(r.ok(), "{}", r.stderr());
    assert!(
        r.events("face", Phase::Start).is_empty(),
        "{:?}",
        r.events("face", Phase::Start)
    );
}

/// Detail over `[x, y, w, h]` (fractions) of an RGB image: the mean
/// absolute difference of luma between neighbouring pixels.
fn detail(rgb: &[u8], width: usize, height: usize, r: [f64; 4]) -> f64 {
    let luma = |x: usize, y: usize| {
        let i = (y * width + x) * 3;
        0.299 * rgb[i] as f64 + 0.587 * rgb[i + 1] as f64 + 0.114 * rgb[i + 2] as f64
    };
    let (x0, y0) = (
        (r[0] * width as f64) as usize,
        (r[1] * height as f64) as usize,
    );
    let (x1, y1) = (
        ((r[0] + r[2]) * width as f64) as usize,
        ((r[1] + r[3]) * height as f64) as usize,
    );
    let mut sum = 0.0;
    let mut n = 0.0;
    for y in y0..y1 {
        for x in x0..x1 {
            sum += (luma(x + 1, y) - luma(x, y)).abs() + (luma(x, y + 1) - luma(x, y)).abs();
            n += 2.0;
        }
    }
    sum / n
}

#[test]
fn snapshots_blur_the_face_when_privacy_asks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        "[encoders.faces]\n[encoders.detector]\n[snapshots]\nkinds = [\"face\", \"object\"]\n[privacy]\nblur_faces = true\n[sinks.jsonl]\npath = \"events.jsonl\"\n",
    )
    .expect("write");
    let photo = clip::shared("astronaut.png");
    let r = crate::run::run(&[
        pipeline.to_str().expect("utf-8"),
        "--source",
        photo.to_str().expect("utf-8"),
    ]);
    assert!(r.ok(), "{}", r.stderr());
    let face = &r.events("face", Phase::Start)[0];
    let snap = face.snapshot.as_deref().expect("a snapshot");
    let jpeg = std::fs::read(r.out_dir.join(snap)).expect("the JPEG");
    let mut decoder = jpeg_decoder::Decoder::new(&jpeg[..]);
    let pixels = decoder.decode().expect("decodes");
    let info = decoder.info().expect("info");
    let (w, h) = (info.width as usize, info.height as usize);
    let original = crate::frames::decode(&photo, 1, w as u32);
    assert_eq!(original[0].height as usize, h);
    // Inside the face box (README: x 0.34–0.54, y 0.10–0.36), well clear
    // of the drawn box's outline.
    let inner = [0.38, 0.19, 0.12, 0.12];
    let before = detail(&original[0].rgb, w, h, inner);
    let after = detail(&pixels, w, h, inner);
    eprintln!("face detail: {before:.2} in the photo, {after:.2} in the snapshot");
    assert!(
        after * 4.0 < before,
        "the face is not blurred: {before:.2} → {after:.2}"
    );
    // Away from the face (the shuttle, right), the picture is kept.
    let away = [0.75, 0.55, 0.15, 0.2];
    let (b, a) = (
        detail(&original[0].rgb, w, h, away),
        detail(&pixels, w, h, away),
    );
    assert!(a > b * 0.5, "the rest is kept: {b:.2} → {a:.2}");
}
