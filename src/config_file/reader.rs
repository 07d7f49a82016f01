//! Reading the parsed TOML tree: typed values with readable locations, and problem collection.

use std::fmt;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::ConfigProblem;
use super::interpolate::interpolate;

/// Where a value sits, for people: `models[1] "gpt-4o" .routes[0].provider`. Array elements
/// carry the object's name when it has one; the root is the empty path.
#[derive(Debug, Clone, Default)]
pub(super) struct Path(String);

impl Path {
    pub(super) fn key(&self, key: &str) -> Path {
        let separator = if self.0.is_empty() {
            ""
        } else if self.0.ends_with('"') {
            " ."
        } else {
            "."
        };
        let key = if !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            key.to_owned()
        } else {
            format!("{key:?}")
        };
        Path(format!("{}{separator}{key}", self.0))
    }

    pub(super) fn index(&self, index: usize) -> Path {
        Path(format!("{}[{index}]", self.0))
    }

    pub(super) fn named(&self, name: &str) -> Path {
        Path(format!("{} {name:?}", self.0))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A table of the document, with its path and the byte offset where it starts.
pub(super) struct Node<'t, 'i> {
    pub(super) table: &'t DeTable<'i>,
    pub(super) path: Path,
    pub(super) offset: usize,
}

impl<'t, 'i> Node<'t, 'i> {
    pub(super) fn root(table: &'t DeTable<'i>) -> Self {
        Self {
            table,
            path: Path::default(),
            offset: 0,
        }
    }

    /// The same node, its path now showing the object's name (when it has a usable one).
    pub(super) fn named(self, name: Option<&Located<String>>) -> Self {
        match name {
            Some(name) => Self {
                path: self.path.named(&name.value),
                ..self
            },
            None => self,
        }
    }
}

/// A value read from the document, remembering where it came from for later cross-checks.
#[derive(Debug)]
pub(super) struct Located<T> {
    pub(super) value: T,
    pub(super) path: Path,
    pub(super) offset: usize,
}

/// Walks the document and collects every problem it meets, each with its byte offset so the
/// final report can follow the file's order.
pub(super) struct Reader<'a> {
    text: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<(usize, ConfigProblem)>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(text: &'a str, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            text,
            env,
            problems: Vec::new(),
        }
    }

    /// The problems in file order; problems at the same place keep the order they were found in.
    pub(super) fn into_problems(mut self) -> Vec<ConfigProblem> {
        self.problems.sort_by_key(|(offset, _)| *offset);
        self.problems
            .into_iter()
            .map(|(_, problem)| problem)
            .collect()
    }

    pub(super) fn line(&self, offset: usize) -> usize {
        line_and_column(self.text, offset).0
    }

    pub(super) fn problem(&mut self, path: &Path, offset: usize, message: impl Into<String>) {
        let line = self.line(offset);
        let location = if path.0.is_empty() {
            format!("line {line}")
        } else {
            format!("{path} (line {line})")
        };
        self.problems.push((
            offset,
            ConfigProblem {
                location,
                message: message.into(),
            },
        ));
    }

    pub(super) fn problem_at<T>(&mut self, at: &Located<T>, message: impl Into<String>) {
        self.problem(&at.path, at.offset, message);
    }

    /// Reports every key of `node` that is not in `known`: a typo must not pass silently.
    pub(super) fn known_keys(&mut self, node: &Node<'_, '_>, known: &[&str]) {
        for (key, _) in node.table.iter() {
            if !known.contains(&key.get_ref().as_ref()) {
                self.problem(
                    &node.path,
                    key.span().start,
                    format!(
                        "unknown key {:?}; expected one of: {}",
                        key.get_ref(),
                        known.join(", ")
                    ),
                );
            }
        }
    }

    /// The value under `key`, if present, with its path.
    pub(super) fn field<'t, 'i>(
        &self,
        node: &Node<'t, 'i>,
        key: &str,
    ) -> Option<(Path, &'t Spanned<DeValue<'i>>)> {
        node.table.get(key).map(|value| (node.path.key(key), value))
    }

    /// Like [`Reader::field`], but reports a missing key.
    fn required_field<'t, 'i>(
        &mut self,
        node: &Node<'t, 'i>,
        key: &str,
    ) -> Option<(Path, &'t Spanned<DeValue<'i>>)> {
        let field = self.field(node, key);
        if field.is_none() {
            self.problem(&node.path, node.offset, format!("missing key {key:?}"));
        }
        field
    }

    /// An optional string, with its `${VAR}` references expanded.
    pub(super) fn string(&mut self, node: &Node<'_, '_>, key: &str) -> Option<Located<String>> {
        let (path, value) = self.field(node, key)?;
        self.expect_string(path, value)
    }

    /// A required string, with its `${VAR}` references expanded.
    pub(super) fn required_string(
        &mut self,
        node: &Node<'_, '_>,
        key: &str,
    ) -> Option<Located<String>> {
        let (path, value) = self.required_field(node, key)?;
        self.expect_string(path, value)
    }

    /// A required string that must not be blank.
    pub(super) fn required_text(
        &mut self,
        node: &Node<'_, '_>,
        key: &str,
    ) -> Option<Located<String>> {
        let text = self.required_string(node, key)?;
        self.non_blank(text)
    }

    /// A required name, checked by the one rule for names ([`crate::names::check_name`]) and
    /// trimmed like the admin API trims it.
    pub(super) fn required_name(
        &mut self,
        node: &Node<'_, '_>,
        key: &str,
    ) -> Option<Located<String>> {
        let text = self.required_string(node, key)?;
        self.name(text)
    }

    /// A name read elsewhere (an array element), checked like [`Reader::required_name`].
    pub(super) fn name(&mut self, text: Located<String>) -> Option<Located<String>> {
        match crate::names::check_name(&text.value) {
            Ok(name) => Some(Located {
                value: name.to_owned(),
                ..text
            }),
            Err(problem) => {
                self.problem_at(&text, problem.to_string());
                None
            }
        }
    }

    pub(super) fn non_blank(&mut self, text: Located<String>) -> Option<Located<String>> {
        if text.value.trim().is_empty() {
            self.problem_at(&text, "must not be empty");
            return None;
        }
        Some(text)
    }

    /// A string value anywhere (a field or an array element), with `${VAR}` expanded.
    pub(super) fn expect_string(
        &mut self,
        path: Path,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<Located<String>> {
        let offset = value.span().start;
        let DeValue::String(raw) = value.get_ref() else {
            self.problem(&path, offset, expected("a string", value.get_ref()));
            return None;
        };
        match interpolate(raw, self.env) {
            Ok(value) => Some(Located {
                value,
                path,
                offset,
            }),
            Err(messages) => {
                for message in messages {
                    self.problem(&path, offset, message);
                }
                None
            }
        }
    }

    /// An optional boolean.
    pub(super) fn boolean(&mut self, node: &Node<'_, '_>, key: &str) -> Option<Located<bool>> {
        let (path, value) = self.field(node, key)?;
        let offset = value.span().start;
        let DeValue::Boolean(flag) = value.get_ref() else {
            self.problem(&path, offset, expected("true or false", value.get_ref()));
            return None;
        };
        Some(Located {
            value: *flag,
            path,
            offset,
        })
    }

    /// An optional integer within `min..=max`.
    pub(super) fn integer<T>(
        &mut self,
        node: &Node<'_, '_>,
        key: &str,
        min: T,
        max: T,
    ) -> Option<Located<T>>
    where
        T: Copy + fmt::Display + Into<i128> + TryFrom<i128>,
    {
        let (path, value) = self.field(node, key)?;
        let offset = value.span().start;
        let DeValue::Integer(integer) = value.get_ref() else {
            self.problem(&path, offset, expected("an integer", value.get_ref()));
            return None;
        };
        // Beyond i128 only a number too large for any field can fail to parse.
        let number = i128::from_str_radix(integer.as_str(), integer.radix()).unwrap_or(i128::MAX);
        if number < min.into() {
            self.problem(&path, offset, format!("must be at least {min}"));
            return None;
        }
        if number > max.into() {
            self.problem(&path, offset, format!("must be at most {max}"));
            return None;
        }
        let value = T::try_from(number).ok()?;
        Some(Located {
            value,
            path,
            offset,
        })
    }

    /// An optional non-negative number, written as an integer or a decimal (a price, an amount
    /// of USD), turned into `T` by `convert`, whose error is reported at the value.
    pub(super) fn amount<T>(
        &mut self,
        node: &Node<'_, '_>,
        key: &str,
        convert: impl FnOnce(f64) -> Result<T, String>,
    ) -> Option<Located<T>> {
        let (path, value) = self.field(node, key)?;
        let offset = value.span().start;
        let text = match value.get_ref() {
            DeValue::Integer(integer) if integer.radix() == 10 => integer.as_str(),
            DeValue::Float(float) => float.as_str(),
            other => {
                self.problem(&path, offset, expected("a number", other));
                return None;
            }
        };
        let number: Option<f64> = text.replace('_', "").parse().ok();
        match number
            .ok_or_else(|| format!("{text} is not a number"))
            .and_then(convert)
        {
            Ok(value) => Some(Located {
                value,
                path,
                offset,
            }),
            Err(message) => {
                self.problem(&path, offset, message);
                None
            }
        }
    }

    /// An optional array of strings; `None` when absent or not an array.
    pub(super) fn string_list(
        &mut self,
        node: &Node<'_, '_>,
        key: &str,
    ) -> Option<Vec<Option<Located<String>>>> {
        let (path, value) = self.field(node, key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.problem(
                &path,
                value.span().start,
                expected("an array of strings", value.get_ref()),
            );
            return None;
        };
        let items = items
            .iter()
            .enumerate()
            .map(|(index, item)| self.expect_string(path.index(index), item))
            .collect();
        Some(items)
    }

    /// An optional table, like `[server]`.
    pub(super) fn table<'t, 'i>(&mut self, node: &Node<'t, 'i>, key: &str) -> Option<Node<'t, 'i>> {
        let (path, value) = self.field(node, key)?;
        let offset = value.span().start;
        let DeValue::Table(table) = value.get_ref() else {
            self.problem(&path, offset, expected("a table", value.get_ref()));
            return None;
        };
        Some(Node {
            table,
            path,
            offset,
        })
    }

    /// An optional array of tables, like `[[providers]]`; absent is empty. `None` when the
    /// value is not an array; elements that are not tables are reported and skipped.
    pub(super) fn tables<'t, 'i>(
        &mut self,
        node: &Node<'t, 'i>,
        key: &str,
        header: &str,
    ) -> Option<Vec<Node<'t, 'i>>> {
        let Some((path, value)) = self.field(node, key) else {
            return Some(Vec::new());
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.problem(
                &path,
                value.span().start,
                expected(
                    &format!("an array of tables ([[{header}]])"),
                    value.get_ref(),
                ),
            );
            return None;
        };
        let mut nodes = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let path = path.index(index);
            let offset = item.span().start;
            match item.get_ref() {
                DeValue::Table(table) => nodes.push(Node {
                    table,
                    path,
                    offset,
                }),
                other => self.problem(&path, offset, expected("a table", other)),
            }
        }
        Some(nodes)
    }
}

fn expected(what: &str, found: &DeValue<'_>) -> String {
    let found = match found {
        DeValue::Integer(_) => "an integer",
        DeValue::Array(_) => "an array",
        DeValue::String(_) => "a string",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Table(_) => "a table",
    };
    format!("expected {what}, found {found}")
}

/// The 1-based line and column (in characters) of a byte offset.
pub(super) fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&byte| byte == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    let column = match text.get(line_start..offset) {
        Some(prefix) => prefix.chars().count() + 1,
        None => offset - line_start + 1,
    };
    (line, column)
}
