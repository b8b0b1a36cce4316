//! One handler per command, as etcd's `rafttest/interaction_env_handler_*.go`.

pub mod add_nodes;
pub mod campaign;
pub mod compact;
pub mod deliver_msgs;
pub mod inspect;
pub mod log_level;
pub mod network;
pub mod process_ready;
pub mod propose;
pub mod propose_conf_change;
pub mod read_index;
pub mod stabilize;
pub mod tick;
pub mod transfer_leader;
