//! A serde `Deserializer` over the merged [`Node`] tree.
//!
//! Two things make this necessary rather than going through `serde_json::Value`: errors
//! must carry the failing node's source (attached here, innermost first), and untyped
//! text from env and flags (`Value::Raw`) must be coerced to whatever type the schema
//! asks for — `"on"` for a bool, `"8080"` for a port, `"a, b"` for a list.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};

use super::tree::{Node, Source, Value};

/// A deserialisation failure, with the node it happened at once known.
#[derive(Debug)]
pub(crate) struct DeError {
    pub(crate) msg: String,
    pub(crate) at: Option<At>,
}

/// Where a [`DeError`] happened.
#[derive(Debug)]
pub(crate) struct At {
    pub(crate) source: Source,
    pub(crate) value: String,
    /// Set when the failure was deserialising a map key (an unknown field).
    pub(crate) key: Option<String>,
}

pub(crate) struct NodeDe<'a>(pub(crate) &'a Node);

struct SeqDe {
    items: std::vec::IntoIter<Node>,
}

struct MapDe<'a> {
    entries: std::collections::btree_map::Iter<'a, String, Node>,
    pending: Option<&'a Node>,
}

struct EnumDe<'a> {
    variant: &'a str,
    node: &'a Node,
}

struct VariantDe<'a>(&'a Node);

/// Accepted spellings of booleans in env values and flags.
pub(crate) const BOOL_SPELLINGS: &str = "true|false|1|0|yes|no|on|off";

/// Parses an env/flag boolean, any case.
pub(crate) fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl DeError {
    fn at(mut self, node: &Node) -> Self {
        if self.at.is_none() {
            self.at = Some(At {
                source: node.source.clone(),
                value: node.render(),
                key: None,
            });
        }
        self
    }

    fn in_key(mut self, key: &str, node: &Node) -> Self {
        self.at = Some(At {
            source: node.source.clone(),
            value: node.render(),
            key: Some(key.to_owned()),
        });
        self
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            msg: msg.to_string(),
            at: None,
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for DeError {}

fn visit_int<'de, V: Visitor<'de>>(i: i128, visitor: V) -> Result<V::Value, DeError> {
    if let Ok(u) = u64::try_from(i) {
        visitor.visit_u64(u)
    } else if let Ok(s) = i64::try_from(i) {
        visitor.visit_i64(s)
    } else {
        visitor.visit_i128(i)
    }
}

fn split_list(raw: &str, source: &Source) -> Vec<Node> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Node::new(Value::Raw(s.to_owned()), source.clone()))
        .collect()
}

impl<'a> NodeDe<'a> {
    fn raw(&self) -> Option<&'a str> {
        match &self.0.value {
            Value::Raw(s) => Some(s),
            _ => None,
        }
    }

    fn integer<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        match self.raw() {
            Some(raw) => match raw.trim().parse::<i128>() {
                Ok(i) => visit_int(i, visitor),
                Err(_) => Err(de::Error::invalid_value(Unexpected::Str(raw), &visitor)),
            },
            None => return de::Deserializer::deserialize_any(self, visitor),
        }
        .map_err(|e| e.at(node))
    }

    fn float<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        match self.raw() {
            Some(raw) => match raw.trim().parse::<f64>() {
                Ok(x) => visitor.visit_f64(x),
                Err(_) => Err(de::Error::invalid_value(Unexpected::Str(raw), &visitor)),
            },
            None => return de::Deserializer::deserialize_any(self, visitor),
        }
        .map_err(|e: DeError| e.at(node))
    }
}

macro_rules! integers {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.integer(visitor)
        }
    )*};
}

macro_rules! as_any {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.deserialize_any(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        match &node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visit_int(*i, visitor),
            Value::Float(x) => visitor.visit_f64(*x),
            Value::Str(s) | Value::Raw(s) => visitor.visit_str(s),
            Value::List(items) => visitor.visit_seq(SeqDe {
                items: items.clone().into_iter(),
            }),
            Value::Map(map) => visitor.visit_map(MapDe {
                entries: map.iter(),
                pending: None,
            }),
        }
        .map_err(|e| e.at(node))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        let Some(raw) = self.raw() else {
            return self.deserialize_any(visitor);
        };
        match parse_bool(raw) {
            Some(b) => visitor.visit_bool(b),
            None => Err(de::Error::invalid_value(
                Unexpected::Str(raw),
                &BOOL_SPELLINGS,
            )),
        }
        .map_err(|e: DeError| e.at(node))
    }

    integers!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
              deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.float(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.float(visitor)
    }

    as_any!(deserialize_char deserialize_str deserialize_string deserialize_bytes
            deserialize_byte_buf deserialize_unit deserialize_identifier);

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        match &node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e| e.at(node))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let node = self.0;
        visitor.visit_newtype_struct(self).map_err(|e| e.at(node))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        let Some(raw) = self.raw() else {
            return self.deserialize_any(visitor);
        };
        visitor
            .visit_seq(SeqDe {
                items: split_list(raw, &node.source).into_iter(),
            })
            .map_err(|e| e.at(node))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let node = self.0;
        match &node.value {
            Value::Str(s) | Value::Raw(s) => visitor.visit_enum(s.trim().into_deserializer()),
            Value::Map(map) if map.len() == 1 => {
                let (variant, inner) = map.iter().next().expect("one entry");
                visitor.visit_enum(EnumDe {
                    variant,
                    node: inner,
                })
            }
            _ => return self.deserialize_any(visitor),
        }
        .map_err(|e| e.at(node))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

impl<'de> de::SeqAccess<'de> for SeqDe {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(node) => seed.deserialize(NodeDe(&node)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

impl<'de> de::MapAccess<'de> for MapDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, node)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some(node);
        // Keys go through the Raw coercion so that maps keyed by numbers work from files too.
        let key_node = Node::new(Value::Raw(key.clone()), node.source.clone());
        seed.deserialize(NodeDe(&key_node))
            .map(Some)
            .map_err(|e| e.in_key(key, node))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.pending.take() {
            Some(node) => seed.deserialize(NodeDe(node)),
            None => Err(de::Error::custom("map value requested before its key")),
        }
    }
}

impl<'de, 'a> de::EnumAccess<'de> for EnumDe<'a> {
    type Error = DeError;
    type Variant = VariantDe<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, VariantDe<'a>), DeError> {
        let variant = seed.deserialize(self.variant.into_deserializer())?;
        Ok((variant, VariantDe(self.node)))
    }
}

impl<'de> de::VariantAccess<'de> for VariantDe<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        de::Deserialize::deserialize(NodeDe(self.0))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(NodeDe(self.0))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(NodeDe(self.0), visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(NodeDe(self.0), visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn raw(s: &str) -> Node {
        Node::new(
            Value::Raw(s.into()),
            Source::Env {
                var: "P_X".into(),
                dotenv: None,
            },
        )
    }

    #[test]
    fn raw_text_coerces_to_the_expected_type() {
        assert!(bool::deserialize(NodeDe(&raw("ON"))).unwrap());
        assert!(!bool::deserialize(NodeDe(&raw("no"))).unwrap());
        assert_eq!(u16::deserialize(NodeDe(&raw("8080"))).unwrap(), 8080);
        assert_eq!(f64::deserialize(NodeDe(&raw("0.5"))).unwrap(), 0.5);
        assert_eq!(
            Vec::<String>::deserialize(NodeDe(&raw(" a, b ,c"))).unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(
            Option::<u8>::deserialize(NodeDe(&raw("7"))).unwrap(),
            Some(7)
        );
    }

    #[test]
    fn bad_raw_text_names_its_source() {
        let err = u16::deserialize(NodeDe(&raw("lots"))).unwrap_err();
        let at = err.at.unwrap();
        assert_eq!(at.source.to_string(), "env P_X");
        assert_eq!(at.value, "lots");
        let err = bool::deserialize(NodeDe(&raw("maybe"))).unwrap_err();
        assert!(err.msg.contains(BOOL_SPELLINGS), "{}", err.msg);
    }

    #[test]
    fn typed_file_strings_are_not_coerced() {
        let node = Node::new(Value::Str("80".into()), Source::Default);
        assert!(u16::deserialize(NodeDe(&node)).is_err());
    }

    #[test]
    fn enums_read_from_strings_and_single_key_maps() {
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(rename_all = "snake_case")]
        enum Mode {
            Fast,
            Slow { factor: u8 },
        }
        assert_eq!(Mode::deserialize(NodeDe(&raw("fast"))).unwrap(), Mode::Fast);
        let json = serde_json::json!({"slow": {"factor": 3}});
        let node = Node::from_json(&json, &Source::Default);
        assert_eq!(
            Mode::deserialize(NodeDe(&node)).unwrap(),
            Mode::Slow { factor: 3 }
        );
    }
}
