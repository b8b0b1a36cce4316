//! The fault-injection switch over HTTP, for process-level fault tests; compiled in only
//! with the `fault-injection` feature.
//!
//! - `GET /fault?peer=2&partitioned=true&drop=0.1&delay_ms=5`: sets this node's faults for
//!   its traffic with peer 2 (omitted fields are cleared);
//! - `GET /fault/clear`: removes every fault.

use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use raft_core::NodeId;
use raft_net_quic::{FaultInjector, PeerFault};
use tracing::warn;

/// The routes, bound to this node's switchboard.
pub(crate) fn router(faults: FaultInjector) -> Router {
    Router::new()
        .route("/fault", get(set_fault))
        .route("/fault/clear", get(clear_faults))
        .with_state(faults)
}

async fn clear_faults(State(faults): State<FaultInjector>) -> (StatusCode, String) {
    faults.clear();
    warn!("fault injection: cleared");
    (StatusCode::OK, "cleared\n".to_owned())
}

async fn set_fault(
    State(faults): State<FaultInjector>,
    RawQuery(query): RawQuery,
) -> (StatusCode, String) {
    match parse(query.as_deref().unwrap_or("")) {
        Ok((peer, fault)) => {
            faults.set(peer, fault);
            warn!(%peer, partitioned = fault.partitioned, drop = fault.drop_probability, delay_ms = fault.delay.as_millis(), "fault injection: set");
            (StatusCode::OK, format!("{peer}: {fault:?}\n"))
        }
        Err(reason) => (StatusCode::BAD_REQUEST, format!("{reason}\n")),
    }
}

fn parse(query: &str) -> Result<(NodeId, PeerFault), String> {
    let mut peer = None;
    let mut fault = PeerFault::default();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = || format!("bad value {value:?} for {name}");
        match name {
            "peer" => peer = Some(NodeId(value.parse().map_err(|_| bad())?)),
            "partitioned" => fault.partitioned = value.parse().map_err(|_| bad())?,
            "drop" => fault.drop_probability = value.parse().map_err(|_| bad())?,
            "delay_ms" => fault.delay = Duration::from_millis(value.parse().map_err(|_| bad())?),
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    let peer = peer.ok_or("missing peer=ID")?;
    if !(0.0..=1.0).contains(&fault.drop_probability) {
        return Err(format!("drop must be within 0..=1, not {}", fault.drop_probability));
    }
    Ok((peer, fault))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn queries_set_each_field_and_refuse_nonsense() {
        let (peer, fault) = parse("peer=2&partitioned=true&drop=0.5&delay_ms=7").unwrap();
        assert_eq!(peer, NodeId(2));
        assert!(fault.partitioned);
        assert!((fault.drop_probability - 0.5).abs() < f64::EPSILON);
        assert_eq!(fault.delay, Duration::from_millis(7));
        assert!(parse("partitioned=true").is_err());
        assert!(parse("peer=x").is_err());
        assert!(parse("peer=1&drop=2").is_err());
        assert!(parse("peer=1&colour=red").is_err());
    }
}
