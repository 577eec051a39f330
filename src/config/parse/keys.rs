//! A table's keys, declared once: each [`Key`] names a key and says how its value is read into the
//! table's draft. The same list answers "is this key allowed here?", gives the "did you mean"
//! hints and dispatches the parsing. Knows no table (each table module declares its own list).

/// One key of a table: its name as written in the file, and the function that reads its value.
pub(super) struct Key<Read> {
    pub name: &'static str,
    pub read: Read,
}

/// A [`Key`]; short, so that each table declares one key a line.
pub(super) const fn key<Read>(name: &'static str, read: Read) -> Key<Read> {
    Key { name, read }
}

/// The reader of `name` in `keys`, when the table accepts that key.
pub(super) fn lookup<Read: Copy>(keys: &[Key<Read>], name: &str) -> Option<Read> {
    keys.iter().find(|key| key.name == name).map(|key| key.read)
}

/// The names of `keys`, in their declared order.
pub(super) fn names<Read>(keys: &[Key<Read>]) -> Vec<&'static str> {
    keys.iter().map(|key| key.name).collect()
}
