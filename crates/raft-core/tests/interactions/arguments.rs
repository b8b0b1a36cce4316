//! A command line of a script: the command word, bare words and `key=value` words.

use raft_core::NodeId;

/// One command's words after the command name.
pub struct Arguments<'line> {
    words: Vec<&'line str>,
}

impl<'line> Arguments<'line> {
    /// Splits the words after the command name.
    pub fn new(words: &[&'line str]) -> Arguments<'line> {
        Arguments { words: words.to_vec() }
    }

    /// The raw word at `position` (counting from 0 after the command), if any.
    pub fn word(&self, position: usize) -> Option<&'line str> {
        self.words.get(position).copied()
    }

    /// The number at `position`, which the command requires.
    pub fn number(&self, position: usize) -> u64 {
        let word = self.word(position).unwrap_or_else(|| panic!("missing argument {position}"));
        word.parse().unwrap_or_else(|_| panic!("{word:?} is not a number"))
    }

    /// The number at `position`, or `default` when the word is missing.
    pub fn number_or(&self, position: usize, default: u64) -> u64 {
        self.word(position).map_or(default, |_| self.number(position))
    }

    /// The node id at `position`, which the command requires.
    pub fn node(&self, position: usize) -> NodeId {
        NodeId(self.number(position))
    }

    /// Every bare numeric word, as node ids (`stabilize 1 3`).
    pub fn nodes(&self) -> Vec<NodeId> {
        let bare = self.words.iter().filter(|word| !word.contains('='));
        bare.map(|word| NodeId(word.parse().unwrap_or_else(|_| panic!("{word:?} is no id"))))
            .collect()
    }

    /// The value of `key=value`, if given.
    pub fn named(&self, key: &str) -> Option<&'line str> {
        self.words.iter().find_map(|word| {
            let (name, value) = word.split_once('=')?;
            (name == key).then_some(value)
        })
    }

    /// The number in `key=N`, if given.
    pub fn named_number(&self, key: &str) -> Option<u64> {
        let value = self.named(key)?;
        Some(value.parse().unwrap_or_else(|_| panic!("{key}={value:?} is not a number")))
    }

    /// The node id in `key=N`, which the command requires.
    pub fn named_node(&self, key: &str) -> NodeId {
        NodeId(self.named_number(key).unwrap_or_else(|| panic!("missing {key}=")))
    }

    /// The switch in `key=true|false`, or `default` when not given.
    pub fn named_switch(&self, key: &str, default: bool) -> bool {
        self.named(key).map_or(default, |value| {
            value.parse().unwrap_or_else(|_| panic!("{key}={value:?} is not true or false"))
        })
    }

    /// The ids in `key=(1,2,3)`, if given; `key=()` is an empty list.
    pub fn named_nodes(&self, key: &str) -> Option<Vec<NodeId>> {
        let value = self.named(key)?;
        let inner = value.trim_start_matches('(').trim_end_matches(')');
        let parts = inner.split(',').filter(|part| !part.is_empty());
        Some(
            parts
                .map(|part| NodeId(part.parse().unwrap_or_else(|_| panic!("{part:?} is no id"))))
                .collect(),
        )
    }
}
