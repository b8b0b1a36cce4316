//! `raft-sim`: deterministic simulation of whole raft-core clusters (being written).
