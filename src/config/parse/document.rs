//! The TOML document as the parser walks it: a table's keys with the offsets of each key and its
//! value, and the elements of an array with theirs. Reads `toml_edit` only; must not judge any
//! value (that is `values` and the table modules).

use toml_edit::{InlineTable, Item, Table, Value};

/// A key of a table with the offsets of the key and of its value.
#[derive(Clone, Copy)]
pub(super) struct Entry<'d> {
    pub key: &'d str,
    pub key_at: usize,
    pub value_at: usize,
    pub item: &'d Item,
}

/// `[[account]]` tables and `account = [{ ... }]` inline tables are the same thing in TOML.
#[derive(Clone, Copy)]
pub(super) enum TableRef<'d> {
    Table(&'d Table),
    Inline(&'d InlineTable),
}

impl<'d> TableRef<'d> {
    pub(super) fn entries(self, fallback: usize) -> Vec<Entry<'d>> {
        let keys: Vec<&'d str> = match self {
            TableRef::Table(t) => t.iter().map(|(k, _)| k).collect(),
            TableRef::Inline(t) => t.iter().map(|(k, _)| k).collect(),
        };
        keys.into_iter()
            .filter_map(|k| {
                let (key, item) = match self {
                    TableRef::Table(t) => t.get_key_value(k)?,
                    TableRef::Inline(t) => t.get_key_value(k)?,
                };
                if item.is_none() {
                    return None;
                }
                let key_at = key.span().map_or(fallback, |s| s.start);
                let value_at = item.span().map_or(key_at, |s| s.start);
                Some(Entry {
                    key: key.get(),
                    key_at,
                    value_at,
                    item,
                })
            })
            .collect()
    }
}

/// One element of an array value, with its offset.
pub(super) struct Element<'d> {
    pub at: usize,
    pub value: &'d Value,
}
