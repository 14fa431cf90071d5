"""R6/R7: account states and the allowed transitions."""

import pytest

from authsvc.domain.errors import DomainError
from authsvc.domain.lifecycle import Status, holds_identifier, transition

P, A, S, D, X, DEL = (Status.PENDING, Status.ACTIVE, Status.SUSPENDED, Status.DISABLED,
                      Status.EXPIRED, Status.DELETED)

# Written out by hand from R6/R7 (not derived from TRANSITIONS): (from, action) -> to.
ALLOWED = {
    (P, "approve"): A,
    (A, "suspend"): S,
    (D, "suspend"): S,
    (S, "resume"): A,
    (D, "resume"): A,
    (A, "disable"): D,
    (P, "expire"): X,
    (A, "expire"): X,
    (S, "expire"): X,
    (D, "expire"): X,
    (P, "delete"): DEL,
    (A, "delete"): DEL,
    (S, "delete"): DEL,
    (D, "delete"): DEL,
    (X, "delete"): DEL,
}
ACTIONS = ("approve", "suspend", "resume", "disable", "expire", "delete")
ALL = [(status, action) for status in Status for action in ACTIONS]


@pytest.mark.parametrize(("current", "action"), [k for k in ALL if k in ALLOWED])
def test_allowed_transitions(current, action):
    assert transition(current, action) is ALLOWED[(current, action)]


@pytest.mark.parametrize(("current", "action"), [k for k in ALL if k not in ALLOWED])
def test_refused_transitions(current, action):
    with pytest.raises(DomainError) as exc:
        transition(current, action)
    err = exc.value
    assert err.code == "bad_transition"
    assert err.params == {"status": current.value, "action": action}
    assert current.value in err.message("en")


def test_some_refusals_that_matter():
    # an expired account cannot be brought back by resume, a pending one cannot be resumed
    # without approval, and an active one is not "approved" twice
    for current, action in ((X, "resume"), (P, "resume"), (A, "approve"), (S, "disable")):
        with pytest.raises(DomainError):
            transition(current, action)


def test_deleted_is_final():
    for action in ACTIONS:
        with pytest.raises(DomainError):
            transition(DEL, action)


def test_only_deleted_releases_the_identifier():
    assert [s for s in Status if not holds_identifier(s)] == [DEL]


def test_unknown_action_is_an_error():
    with pytest.raises((DomainError, KeyError)):
        transition(A, "promote")
