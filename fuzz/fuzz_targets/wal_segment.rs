//! Runs [`raft_kv_fuzz::targets::wal_segment`] on every input; see its documentation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = raft_kv_fuzz::targets::wal_segment(data);
});
