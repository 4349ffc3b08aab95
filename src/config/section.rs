//! Encoder sections no typed field of [`EncodersConfig`] names: an encoder
//! outside the built-in modalities declares its own settings type in its own
//! file, reads its `[encoders.NAME]` section with a [`SectionReader`], and
//! the pipeline holds the result here, type-erased.
//!
//! The built-in encoders keep typed fields because other stages read their
//! settings (fusion reads the detector's labels, rules the sound classes);
//! a section here is read by its own encoder only.
//!
//! [`EncodersConfig`]: super::EncodersConfig

use std::any::Any;
use std::fmt::Debug;

use serde::{Serialize, Serializer};

/// An encoder's settings, as the pipeline holds them.
pub trait Section: Any + Debug + Send + Sync {
    fn clone_box(&self) -> Box<dyn Section>;
    /// The settings as JSON: how a reload tells a changed section.
    fn to_json(&self) -> serde_json::Value;
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any + Debug + Clone + Serialize + Send + Sync> Section for T {
    fn clone_box(&self) -> Box<dyn Section> {
        Box::new(self.clone())
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Reads one encoder's section; an error keeps the place of the value at
/// fault, so that it is reported with its line and column.
pub type SectionReader =
    fn(toml::de::ValueDeserializer<'_>) -> Result<Box<dyn Section>, toml::de::Error>;

/// [`SectionReader`] for a settings type `T`.
pub fn read_section<T: Section + serde::de::DeserializeOwned>(
    d: toml::de::ValueDeserializer<'_>,
) -> Result<Box<dyn Section>, toml::de::Error> {
    T::deserialize(d).map(|t| Box::new(t) as Box<dyn Section>)
}

/// The sections of encoders outside the typed fields, by name.
#[derive(Debug, Default)]
pub struct Sections(Vec<(String, Box<dyn Section>)>);

impl Sections {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the section `name` is there (its encoder is on).
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// The section `name`, if it is there and of type `T`.
    pub fn get<T: Section>(&self, name: &str) -> Option<&T> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, s)| s.as_any().downcast_ref())
    }

    /// Sets the section `name`, in place of one read before.
    pub fn insert(&mut self, name: &str, section: Box<dyn Section>) {
        self.remove(name);
        self.0.push((name.to_string(), section));
    }

    /// Takes the section `name` out (turns its encoder off).
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|(n, _)| n != name);
        self.0.len() != before
    }
}

impl Clone for Sections {
    fn clone(&self) -> Self {
        Sections(
            self.0
                .iter()
                .map(|(n, s)| (n.clone(), s.clone_box()))
                .collect(),
        )
    }
}

impl Serialize for Sections {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(n, v)| (n, v.to_json())))
    }
}
