//! Fault injection for the integration tests (feature `testing`): makes the listener of one
//! slot fail to decode chosen pgoutput messages, as a corrupt or unsupported message would.

use std::sync::Mutex;

use super::pgoutput::{Message, ProtocolError};

/// `(slot, table)`: the next Relation message of `table` on `slot` fails to decode.
static FAIL_RELATION: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Makes the next Relation message describing `table` on the listener of `slot` fail to
/// decode.
pub(crate) fn fail_next_relation(slot: &str, table: &str) {
    let mut f = FAIL_RELATION.lock().unwrap_or_else(|p| p.into_inner());
    f.push((slot.to_string(), table.to_string()));
}

/// Applies the injected faults to a decoded message.
pub(crate) fn inject(slot: &str, msg: Message) -> Result<Message, ProtocolError> {
    if let Message::Relation(rel) = &msg {
        let mut f = FAIL_RELATION.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = f.iter().position(|(s, t)| s == slot && *t == rel.name) {
            f.remove(i);
            return Err(ProtocolError(format!(
                "injected fault: the Relation message of {:?}",
                rel.name
            )));
        }
    }
    Ok(msg)
}
