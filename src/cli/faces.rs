//! `vigil faces`: the face gallery of a pipeline's output folder.

use anyhow::{Result, bail};

use vigil::config::{FacesConfig, IdentityConfig};
use vigil::encode::face_id;
use vigil::gallery::Gallery;

use super::args::{FacesAction, GalleryArgs};

pub fn faces(action: FacesAction) -> Result<i32> {
    match action {
        FacesAction::Enroll {
            name,
            images,
            gallery,
        } => {
            let config = settings(&gallery)?;
            let done = vigil::encode::faces::enroll(&config, &name, &images)?;
            for e in &done {
                let b = e.bbox;
                println!(
                    "enrolled {name} from {} as face {} (score {:.2}, at x {:.2} y {:.2} w {:.2} h {:.2}{})",
                    e.image.display(),
                    e.id,
                    e.score,
                    b.x,
                    b.y,
                    b.w,
                    b.h,
                    if e.faces > 1 {
                        format!("; the largest of {} faces", e.faces)
                    } else {
                        String::new()
                    }
                );
            }
            Ok(0)
        }
        FacesAction::List { gallery } => {
            let g = open(&gallery)?;
            let entries = g.entries()?;
            println!("{}", g.path().display());
            for e in &entries {
                println!(
                    "{:>6}  {:<24}  {}  {}",
                    e.id,
                    e.name.as_deref().unwrap_or("(unknown)"),
                    e.added_utc,
                    e.source
                );
            }
            let named = entries.iter().filter(|e| e.name.is_some()).count();
            println!(
                "{} faces: {named} enrolled, {} unknown",
                entries.len(),
                entries.len() - named
            );
            Ok(0)
        }
        FacesAction::Name { id, name, gallery } => {
            vigil::encode::faces::check_name(&name)?;
            if !open(&gallery)?.name(id, &name)? {
                bail!("no face {id} in the gallery (`vigil faces list` shows them)");
            }
            println!("face {id} is {name}");
            Ok(0)
        }
        FacesAction::Forget { who, gallery } => {
            let mut g = open(&gallery)?;
            let n = match who.parse::<i64>() {
                Ok(id) => usize::from(g.forget_id(id)?),
                Err(_) => g.forget_name(&who)?,
            };
            if n == 0 {
                bail!("no face `{who}` in the gallery (`vigil faces list` shows them)");
            }
            println!("forgot {n} face(s) of {who}");
            Ok(0)
        }
    }
}

/// The face settings of the pipeline (identity on, with its defaults if
/// the pipeline has none), the gallery's path resolved.
fn settings(args: &GalleryArgs) -> Result<FacesConfig> {
    let mut faces = match &args.pipeline {
        Some(p) => vigil::encode::load_pipeline(p)?
            .encoders
            .faces
            .unwrap_or_default(),
        None => FacesConfig::default(),
    };
    let mut identity = faces
        .identity
        .take()
        .unwrap_or_else(IdentityConfig::default);
    identity.gallery = args.out.join(&identity.gallery);
    faces.identity = Some(identity);
    Ok(faces)
}

fn open(args: &GalleryArgs) -> Result<Gallery> {
    let config = settings(args)?;
    let path = config.identity.map(|i| i.gallery).unwrap_or_default();
    if !path.is_file() {
        bail!(
            "{}: no face gallery here (`vigil faces enroll` makes one; --out and --pipeline say where)",
            path.display()
        );
    }
    Ok(Gallery::open(&path, face_id::MODEL)?)
}
