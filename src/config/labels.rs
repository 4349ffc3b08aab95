//! Object labels as rules and zones name them: a COCO class name
//! (`person`, `"sports ball"`) or a group of them (`vehicle`), matched
//! case-insensitively. A pipeline's `[fusion.groups]` adds groups or
//! redefines these.

use std::collections::BTreeMap;

use super::Groups;

/// The 80 COCO classes, in the detector's output order.
const COCO: &str = include_str!("../../models/coco80.txt");

/// The COCO class names, in the detector's output order.
pub fn coco_classes() -> Vec<&'static str> {
    COCO.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
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
    /// The built-in groups with a pipeline's `[fusion.groups]` over them;
    /// an error names a member that is not a COCO class.
    pub fn new(extra: &Groups) -> Result<ObjectLabels, String> {
        let classes = coco_classes();
        let mut groups: BTreeMap<String, Vec<&'static str>> = OBJECT_GROUPS
            .iter()
            .map(|(g, m)| (g.to_string(), m.to_vec()))
            .collect();
        for (g, members) in extra {
            if members.is_empty() {
                return Err(format!(
                    "[fusion.groups]: group `{g}` is empty: name at least one COCO class"
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
                            format!("[fusion.groups]: group `{g}` names `{m}`, which is not a COCO class")
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
                    "`{label}` is neither an object group ({}) nor a COCO class name (models/coco80.txt)",
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
