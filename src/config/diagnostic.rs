//! One configuration problem, located as `path:line:col`, and the byte-offset to line/column
//! conversion behind it. Messages are built by the parser; this file only positions and prints them.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem in a configuration file. `line` and `col` are 1-based; `col` counts characters, the
/// way editors do. The message never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Diagnostic {
    pub fn new(
        path: impl Into<PathBuf>,
        line: usize,
        col: usize,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            path: path.into(),
            line,
            col,
            message: message.into(),
        }
    }

    /// A problem about a whole file or directory (missing, unreadable): reported at 1:1.
    pub fn whole_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic::new(path, 1, 1, message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Maps byte offsets of one source text to 1-based line and column.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, line_starts }
    }

    /// Line and column of a byte offset; offsets past the end point just after the last character.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self.line_starts[line - 1];
        let col = match self.text.get(line_start..offset) {
            Some(prefix) => prefix.chars().count(),
            // Not on a character boundary: fall back to bytes rather than guess.
            None => offset - line_start,
        };
        (line, col + 1)
    }

    pub(crate) fn diagnostic(&self, path: &Path, offset: usize, message: String) -> Diagnostic {
        let (line, col) = self.position(offset);
        Diagnostic::new(path, line, col, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let index = LineIndex::new("ab\nçd = 1\r\n\nx");
        assert_eq!(index.position(0), (1, 1));
        assert_eq!(index.position(2), (1, 3));
        assert_eq!(index.position(3), (2, 1));
        // "ç" is two bytes but one column.
        assert_eq!(index.position(5), (2, 2));
        assert_eq!(index.position(13), (4, 1));
        assert_eq!(index.position(999), (4, 2));
    }

    #[test]
    fn displays_as_path_line_col_message() {
        let d = Diagnostic::new("/etc/x.toml", 3, 7, "bad");
        assert_eq!(d.to_string(), "/etc/x.toml:3:7: bad");
    }
}
