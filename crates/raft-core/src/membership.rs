//! The rule for one membership change (add a learner, add a voter, remove a member); see
//! `node/membership.rs` for how a leader proposes it and when it takes effect.

use crate::error::{Error, MembershipChangeProblem};
// `MembershipChange` lives in `types`, so `error` can name it without importing this module.
use crate::types::{Membership, MembershipChange};

impl MembershipChange {
    /// The membership after this change, which differs from `current` by at most one voter.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMembershipChange`] when the change is a no-op or would leave no voter.
    pub fn apply_to(self, current: &Membership) -> Result<Membership, Error> {
        let invalid = |reason| Err(Error::InvalidMembershipChange { change: self, reason });
        let mut next = current.clone();
        match self {
            MembershipChange::AddLearner(id) => {
                if current.contains(id) {
                    return invalid(MembershipChangeProblem::AlreadyMember);
                }
                next.learners.insert(id);
            }
            MembershipChange::AddVoter(id) => {
                if current.is_voter(id) {
                    return invalid(MembershipChangeProblem::AlreadyVoter);
                }
                next.learners.remove(&id);
                next.voters.insert(id);
            }
            MembershipChange::Remove(id) => {
                if !current.contains(id) {
                    return invalid(MembershipChangeProblem::NotMember);
                }
                next.learners.remove(&id);
                next.voters.remove(&id);
                if next.voters.is_empty() {
                    return invalid(MembershipChangeProblem::NoVoterLeft);
                }
            }
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NodeId;

    #[test]
    fn a_change_moves_at_most_one_voter() {
        let current = Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]);
        let with_learner = MembershipChange::AddLearner(NodeId(4)).apply_to(&current).unwrap();
        assert_eq!(with_learner.voters, current.voters);
        let promoted = MembershipChange::AddVoter(NodeId(4)).apply_to(&with_learner).unwrap();
        assert!(promoted.is_voter(NodeId(4)));
        assert!(promoted.learners.is_empty());
        let removed = MembershipChange::Remove(NodeId(1)).apply_to(&promoted).unwrap();
        assert_eq!(removed.voters.len(), 3);
    }

    #[test]
    fn invalid_changes_are_refused_with_the_rule() {
        let current = Membership::with_voters([NodeId(1)]);
        let errors = [
            MembershipChange::AddVoter(NodeId(1)),
            MembershipChange::AddLearner(NodeId(1)),
            MembershipChange::Remove(NodeId(2)),
            MembershipChange::Remove(NodeId(1)),
        ]
        .map(|change| change.apply_to(&current).unwrap_err().to_string());
        assert!(errors[0].contains("already a voter"), "{}", errors[0]);
        assert!(errors[1].contains("already a member"), "{}", errors[1]);
        assert!(errors[2].contains("not a member"), "{}", errors[2]);
        assert!(errors[3].contains("no voter"), "{}", errors[3]);
    }
}
