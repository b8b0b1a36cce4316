//! `propose ID DATA`: node ID proposes the command DATA (text without spaces or commas).
//! Prints the result as `Ok(LogId ..)` or `Err(..)`.

use bytes::Bytes;

use crate::arguments::Arguments;
use crate::environment::Environment;

/// Runs `propose`.
pub fn propose(environment: &mut Environment, arguments: &Arguments) {
    let id = arguments.node(0);
    let data = arguments.word(1).expect("propose ID DATA").to_string();
    let result = environment.with_node(id, |node| node.propose(Bytes::from(data)));
    environment.print(&format!("{result:?}"));
}
