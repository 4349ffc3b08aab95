//! Object labels as rules and zones name them: a class name of the
//! detector's model (COCO's for the built-in ones: `person`, `"sports
//! ball"`; the labels file of a model of your own) or a group of them
//! (`vehicle`), matched case-insensitively. A pipeline's `[fusion.groups]`
//! adds groups or redefines these.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{LazyLock, Mutex};

use super::Groups;
use crate::lock::Locked;

/// The 80 COCO classes, in the detector's output order.
const COCO: &str = include_str!("../../models/coco80.txt");

/// The COCO class names, in the detector's output order.
pub fn coco_classes() -> Vec<&'static str> {
    COCO.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Whether `[encoders.detector] model` names a model of the user's own (a
/// path to an `.onnx` file) rather than a built-in one.
pub fn is_own_model(model: &str) -> bool {
    model.to_ascii_lowercase().ends_with(".onnx")
}

/// Class names of users' models, kept for the life of the process (a
/// label is `&'static str` throughout vigil); each distinct name once.
static INTERNED: LazyLock<Mutex<BTreeSet<&'static str>>> = LazyLock::new(Default::default);

fn intern(name: &str) -> &'static str {
    let mut set = INTERNED.locked();
    if let Some(s) = set.get(name) {
        return s;
    }
    let s: &'static str = Box::leak(name.to_string().into_boxed_str());
    set.insert(s);
    s
}

/// The classes of the detector model `model`, in its output order: COCO's
/// for the built-in models; for a model of your own, the lines of the
/// labels file its manifest (`MODEL.toml` beside `MODEL.onnx`) names.
pub fn classes_of(model: &str) -> Result<Vec<&'static str>, String> {
    if !is_own_model(model) {
        return Ok(coco_classes());
    }
    let manifest = Path::new(model).with_extension("toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| {
        format!(
            "[encoders.detector] model {model}: cannot read its manifest {}: {e}",
            manifest.display()
        )
    })?;
    let doc: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {}", manifest.display(), e.message()))?;
    let labels = doc.get("labels").and_then(|l| l.as_str()).ok_or_else(|| {
        format!(
            "{}: no `labels = \"FILE\"` (the class names, one a line)",
            manifest.display()
        )
    })?;
    let file = manifest
        .parent()
        .unwrap_or_else(|| Path::new(""))
        .join(labels);
    let names = std::fs::read_to_string(&file).map_err(|e| {
        format!(
            "{}: cannot read its labels {}: {e}",
            manifest.display(),
            file.display()
        )
    })?;
    let classes: Vec<&'static str> = names
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(intern)
        .collect();
    if classes.is_empty() {
        return Err(format!("{}: no class names in it", file.display()));
    }
    for (i, c) in classes.iter().enumerate() {
        if classes[..i].iter().any(|o| o.eq_ignore_ascii_case(c)) {
            return Err(format!("{}: `{c}` is there twice", file.display()));
        }
    }
    Ok(classes)
}

/// The built-in object groups: name → COCO class names.
pub const OBJECT_GROUPS: &[(&str, &[&str])] = &[
    ("people", &["person"]),
    (
        "vehicle",
        &[
            "bicycle",
            "car",
            "motorcycle",
            "bus",
            "truck",
            "train",
            "boat",
            "airplane",
        ],
    ),
    ("car", &["car", "truck", "bus"]),
    (
        "animal",
        &[
            "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
        ],
    ),
    ("bag", &["backpack", "handbag", "suitcase"]),
    ("weapon", &["knife", "baseball bat"]),
];

/// Resolves object labels through the groups.
#[derive(Clone, Debug)]
pub struct ObjectLabels {
    classes: Vec<&'static str>,
    groups: BTreeMap<String, Vec<&'static str>>,
}

impl ObjectLabels {
    /// COCO's classes and the built-in groups with a pipeline's
    /// `[fusion.groups]` over them; an error names a member that is not a
    /// class.
    pub fn new(extra: &Groups) -> Result<ObjectLabels, String> {
        ObjectLabels::of(coco_classes(), extra)
    }

    /// The labels of a detector with `classes`: the built-in groups (their
    /// members that are classes of it) with `extra` over them.
    pub fn of(classes: Vec<&'static str>, extra: &Groups) -> Result<ObjectLabels, String> {
        let mut groups: BTreeMap<String, Vec<&'static str>> = OBJECT_GROUPS
            .iter()
            .map(|(g, m)| {
                let members: Vec<&'static str> = m
                    .iter()
                    .filter_map(|c| classes.iter().find(|k| k.eq_ignore_ascii_case(c)).copied())
                    .collect();
                (g.to_string(), members)
            })
            .filter(|(_, m)| !m.is_empty())
            .collect();
        for (g, members) in extra {
            if members.is_empty() {
                return Err(format!(
                    "[fusion.groups]: group `{g}` is empty: name at least one class"
                ));
            }
            let resolved = members
                .iter()
                .map(|m| {
                    classes
                        .iter()
                        .find(|c| c.eq_ignore_ascii_case(m))
                        .copied()
                        .ok_or_else(|| {
                            format!("[fusion.groups]: group `{g}` names `{m}`, which is not a class of the detector's model")
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            groups.insert(g.to_lowercase(), resolved);
        }
        Ok(ObjectLabels { classes, groups })
    }

    /// The COCO classes `label` stands for: a group's members, else the
    /// class of that name.
    pub fn resolve(&self, label: &str) -> Result<Vec<&'static str>, String> {
        if let Some(m) = self.groups.get(&label.to_lowercase()) {
            return Ok(m.clone());
        }
        self.classes
            .iter()
            .find(|c| c.eq_ignore_ascii_case(label))
            .map(|c| vec![*c])
            .ok_or_else(|| {
                format!(
                    "`{label}` is neither an object group ({}) nor a class name of the detector's model (COCO's: models/coco80.txt)",
                    self.groups.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })
    }

    /// Resolves a list of labels (zones, lines); empty stays empty (all).
    pub fn resolve_all(&self, labels: &[String]) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for l in labels {
            for c in self.resolve(l)? {
                if !out.iter().any(|o: &String| o == c) {
                    out.push(c.to_string());
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_resolve_through_groups_case_insensitively() {
        let l = ObjectLabels::new(&Groups::new()).unwrap();
        assert_eq!(l.resolve("Person").unwrap(), ["person"]);
        assert!(l.resolve("vehicle").unwrap().contains(&"truck"));
        assert_eq!(l.resolve("SPORTS BALL").unwrap(), ["sports ball"]);
        assert!(l.resolve("unicorn").unwrap_err().contains("neither"));
        // A model of other classes: the built-in groups keep the members
        // it has.
        let own = ObjectLabels::of(vec!["human", "car", "bus"], &Groups::new()).unwrap();
        assert_eq!(own.resolve("car").unwrap(), ["car", "bus"]);
        assert_eq!(own.resolve("HUMAN").unwrap(), ["human"]);
        assert!(own.resolve("people").is_err());
        let mut extra = Groups::new();
        extra.insert("Pets".into(), vec!["Dog".into(), "cat".into()]);
        let l = ObjectLabels::new(&extra).unwrap();
        assert_eq!(l.resolve("pets").unwrap(), ["dog", "cat"]);
        extra.insert("bad".into(), vec!["dragon".into()]);
        assert!(ObjectLabels::new(&extra).unwrap_err().contains("`dragon`"));
        assert_eq!(
            l.resolve_all(&["people".into(), "person".into(), "pets".into()])
                .unwrap(),
            ["person", "dog", "cat"]
        );
    }
}
