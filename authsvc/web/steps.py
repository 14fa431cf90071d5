"""Where a logon goes next, shared by the logon pages and the registration pages: the page of
each step, and the answer that sends the browser there carrying the new token."""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, session, url_for
from werkzeug.wrappers import Response

from authsvc.domain.logon_flow import Step
from authsvc.services import logon
from authsvc.web.common import CONSOLE, deps, set_token, surface

# The logon blueprint serves the user's logon at / and, registered a second time, the console's
# own logon at /console/logon (R8): the same steps, its own cookie, its own kind of session.
STEP_PAGES = {
    Step.CHANGE_PASSWORD: ".password_form",
    Step.ENROL: ".enrol",
    Step.SECOND_FACTOR: ".factor",
    Step.REGISTER: "register.index",
    Step.TERMINAL: ".terminal",
    Step.DONE: ".home",
}
Page = Response | str | tuple[str, int]


RESUME = "oidc_resume"  # the Flask session's note of an authorization request to come back to


def resume_url() -> str | None:
    """The authorization request ([8 of 12]) that sent the user to the logon pages, while the
    logon it started may last; None when there is none."""
    resume = session.get(RESUME)
    if not isinstance(resume, dict) or float(resume.get("until", 0)) < deps().clock.now().timestamp():
        session.pop(RESUME, None)
        return None
    return url_for("oidc.authorize") + "?" + str(resume.get("query", ""))


def next_page(step: Step | None) -> str:
    """The URL of the page of `step` on this request's surface (the logon page when none); a
    finished user logon goes back to the relying party that sent the user here, if one did."""
    if step is Step.DONE and surface() == CONSOLE:
        return url_for("console.index")
    if step is Step.DONE and (back := resume_url()):
        return back
    endpoint = STEP_PAGES.get(step, ".index")  # type: ignore[arg-type]
    own = "console_logon" if surface() == CONSOLE else "login"  # also when called from elsewhere
    return url_for(own + endpoint if endpoint.startswith(".") else endpoint)


def go(state: logon.State, failed_status: int = 401) -> Response:
    """Send the browser to the page of the step it has reached, carrying the new token."""
    if state.step is Step.NO_FACTOR:
        resp: Any = (render_template("message.html", code="second_factor_unavailable", back=True), 403)
    elif state.failed or state.step not in STEP_PAGES:
        resp = (render_template("login.html", error="logon_failed"), failed_status)
    else:
        resp = redirect(next_page(state.step))
    out = current_app.make_response(resp)
    if state.token or state.failed or state.step is Step.NO_FACTOR:
        set_token(out, state.token)
    return out
