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

/// A 3-second, 10 fps H.264 clip of `photo`: scaled to `side`×`side`,
/// then through `transform` (a crop or a border: shifted, resized), at a
/// low bitrate (recompressed).
fn photo_clip(photo: &std::path::Path, side: u32, transform: &str, out: &std::path::Path) {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    gst::init().expect("GStreamer");
    let launch = format!(
        "filesrc location=\"{}\" ! pngdec ! imagefreeze num-buffers=30 ! videoconvert ! videoscale \
         ! video/x-raw,width={side},height={side},framerate=10/1 ! {transform} ! videoconvert \
         ! x264enc speed-preset=ultrafast bitrate=300 ! mp4mux ! filesink location=\"{}\"",
        photo.display(),
        out.display()
    );
    let pipeline = gst::parse::launch(&launch).expect("clip pipeline");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let bus = pipeline.bus().expect("bus");
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("making {}: {}", out.display(), e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).expect("null");
}

/// The second face: scikit-image's "cameraman" (CC0), fetched by `make
/// setup` (models/cameraman.toml).
fn cameraman() -> std::path::PathBuf {
    let p = crate::run::cache().join("media/camera.png");
    assert!(p.is_file(), "{} (make setup)", p.display());
    p
}

/// Detail inside the face of `start`'s snapshot (eyes, nose, mouth: the
/// middle of its box).
fn face_detail(r: &crate::run::RunResult, start: &vigil::record::EventRecord) -> f64 {
    let snap = start.snapshot.as_deref().expect("a snapshot");
    let jpeg = std::fs::read(r.out_dir.join(snap)).expect("the JPEG");
    let mut decoder = jpeg_decoder::Decoder::new(&jpeg[..]);
    let pixels = decoder.decode().expect("decodes");
    let info = decoder.info().expect("info");
    let b = start.bbox.expect("a box");
    let inner = [
        (b.x + b.w * 0.2) as f64,
        (b.y + b.h * 0.3) as f64,
        (b.w * 0.6) as f64,
        (b.h * 0.4) as f64,
    ];
    detail(&pixels, info.width as usize, info.height as usize, inner)
}

fn vigil_ok(args: &[&str]) -> String {
    let out = crate::run::vigil().args(args).output().expect("vigil");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "vigil {args:?}: {o}{e}");
    o
}

#[test]
fn an_enrolled_face_is_named_in_clips_and_another_stays_unknown_until_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let gallery = d.join("gallery/faces.db");
    let photo = clip::shared("astronaut.png");
    let out = d.join("enroll");
    // The gallery is where the pipeline says; `vigil faces` reads it there.
    let pipeline = format!(
        "[encoders.faces]\n[encoders.faces.identity]\ngallery = \"{}\"\n\
         [snapshots]\nkinds = [\"face\"]\n[privacy]\nblur_faces = true\nblur_known = false\n\
         [[rules]]\nname = \"welcome\"\nwhen = \"face(name=Astronaut)\"\n\
         [[rules]]\nname = \"stranger\"\nwhen = \"face(unknown)\"\n\
         [sinks.jsonl]\npath = \"events.jsonl\"\n",
        gallery.display()
    );
    let file = d.join("p.toml");
    std::fs::write(&file, &pipeline).expect("write");
    let (p, o) = (file.to_str().expect("utf-8"), out.to_str().expect("utf-8"));
    let said = vigil_ok(&[
        "faces",
        "enroll",
        "astronaut",
        photo.to_str().expect("utf-8"),
        "--pipeline",
        p,
        "--out",
        o,
    ]);
    assert!(said.contains("enrolled astronaut from"), "{said}");
    let mode = std::fs::metadata(&gallery)
        .expect("the gallery")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the gallery is its owner's alone");

    // The same face, scaled up and cropped off-centre, and scaled down
    // into a wider frame; the other face, cropped.
    let clips = [
        (
            "closer",
            photo.clone(),
            640,
            "videocrop left=60 top=20 right=100 bottom=140",
        ),
        (
            "farther",
            photo.clone(),
            400,
            "videobox left=-60 top=-30 right=-20 bottom=-50 fill=black",
        ),
        (
            "other",
            cameraman(),
            600,
            "videocrop left=40 top=40 right=80 bottom=80",
        ),
    ];
    let mut seen = Vec::new();
    for (name, src, side, transform) in &clips {
        let clip = d.join(format!("{name}.mp4"));
        photo_clip(src, *side, transform, &clip);
        let r = crate::run::run(&[p, "--source", clip.to_str().expect("utf-8")]);
        assert!(r.ok(), "{}", r.stderr());
        r.assert_lifecycles_closed();
        let starts = r.events("face", Phase::Start);
        let ends = r.events("face", Phase::End);
        assert_eq!((starts.len(), ends.len()), (1, 1), "{name}: {starts:?}");
        let rules: Vec<String> = r
            .events("rule", Phase::Start)
            .iter()
            .flat_map(|e| e.labels.clone())
            .collect();
        seen.push((
            name.to_string(),
            starts[0].clone(),
            ends[0].clone(),
            rules,
            r,
        ));
    }
    let distance = |e: &vigil::record::EventRecord| {
        e.details["distance"]
            .as_f64()
            .expect("a distance to the enrolled face")
    };
    let mut worst_same: f64 = 0.0;
    for (name, start, end, rules, r) in &seen[..2] {
        assert_eq!(start.labels, ["astronaut"], "{name}: {start:?}");
        assert_eq!(end.details["name"], "astronaut", "{name}");
        assert_eq!(rules, &["welcome"], "{name}");
        // The first frame's distance, and the least over the event.
        worst_same = worst_same.max(distance(start)).max(distance(end));
        eprintln!(
            "{name}: astronaut at distance {:.3} (first frame), {:.3} (closest)",
            distance(start),
            distance(end)
        );
        // Enrolled, and privacy.blur_known = false: the face is not blurred.
        let sharp = face_detail(r, start);
        assert!(
            sharp > 2.0,
            "{name}: the enrolled face is kept sharp ({sharp:.2})"
        );
    }
    let (_, start, _, rules, r) = &seen[2];
    assert_eq!(start.labels, ["unknown"], "{start:?}");
    assert!(start.details.get("name").is_none(), "{start:?}");
    assert_eq!(rules, &["stranger"]);
    let other = distance(start);
    eprintln!(
        "the other face: distance {other:.3} to the astronaut; the astronaut's worst {worst_same:.3}; max_distance 1.0"
    );
    assert!(worst_same < 0.75, "the same face within {worst_same:.3}");
    assert!(other > 1.2, "another face is far: {other:.3}");
    // An unknown face is blurred still.
    let blurred = face_detail(r, start);
    assert!(blurred < 1.5, "the unknown face is blurred ({blurred:.2})");

    // The unknown face was kept; named, it is known the next time.
    let id = start.details["face_id"].as_i64().expect("a face_id");
    let listed = vigil_ok(&["faces", "list", "--pipeline", p, "--out", o]);
    assert!(listed.contains("1 enrolled, 1 unknown"), "{listed}");
    vigil_ok(&[
        "faces",
        "name",
        &id.to_string(),
        "Cameraman",
        "--pipeline",
        p,
        "--out",
        o,
    ]);
    let clip = d.join("other.mp4");
    let r = crate::run::run(&[p, "--source", clip.to_str().expect("utf-8")]);
    assert!(r.ok(), "{}", r.stderr());
    let again = r.events("face", Phase::Start);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].labels, ["Cameraman"], "{:?}", again[0]);
    assert!(distance(&again[0]) < 0.75, "{:?}", again[0]);
    // The records never carry an embedding.
    let log = std::fs::read_to_string(r.out_dir.join("events.jsonl")).expect("the log");
    assert!(!log.contains("embedding"), "{log}");
    vigil_ok(&["faces", "forget", "Cameraman", "--pipeline", p, "--out", o]);
    let listed = vigil_ok(&["faces", "list", "--pipeline", p, "--out", o]);
    assert!(listed.contains("1 enrolled, 0 unknown"), "{listed}");
}

#[test]
fn a_picture_without_a_face_is_not_enrolled_and_says_why() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("out");
    let cat = clip::shared("chelsea.png");
    let o = crate::run::vigil()
        .args(["faces", "enroll", "chelsea"])
        .arg(&cat)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("vigil");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("chelsea.png") && err.contains("none clear enough to enroll"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // Nothing was written: no gallery.
    assert!(!out.join("faces.db").exists());
    let o = crate::run::vigil()
        .args(["faces", "enroll", "x", "/no/such.png", "--out"])
        .arg(&out)
        .output()
        .expect("vigil");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("/no/such.png: no such file"),
        "{err}"
    );
}
