"""What the registrant's pages and the registration station's share about reading a palm
(R14): the messages their scripts may show, the challenges handed to the terminal agent, and
the captures it sends back."""

from __future__ import annotations

from flask import g, jsonify
from werkzeug.wrappers import Response

from authsvc.domain.messages import text
from authsvc.services import registration, vein
from authsvc.web.common import deps
from authsvc.web.jsonbody import json_body

# what the pages' scripts may show: the agent's and the reader's answers, and the service's
VEIN_MESSAGES = ("vein_no_hand", "vein_timeout", "vein_disconnected", "vein_not_read", "vein_cancelled",
                 "vein_reposition", "vein_busy", "vein_reader_error", "vein_agent_unreachable",
                 "vein_enrol_again", "vein_capture_refused", "vein_duplicate_person",
                 "request_invalid", "camera_unavailable", "registration_image_invalid",
                 "registration_image_too_large", "agent_wrong_address")


def script_messages() -> dict[str, str]:
    return {c: text(c, g.lang, limit=registration.MAX_IMAGE_BYTES // (1024 * 1024))
            for c in VEIN_MESSAGES}


def challenges(made: list[vein.Challenge]) -> Response:
    """Challenges for the terminal agent, one per palm reading of an enrolment."""
    return jsonify(challenges=[{"id": c.id, "challenge": c.challenge} for c in made],
                   agent_url=deps().settings.vein.agent_url,
                   origins=list(deps().settings.webauthn.origins))  # the pages the agent answers


def sent_captures() -> object:
    """The captures the agent returned, as sent (the service checks each)."""
    return json_body().get("captures")
