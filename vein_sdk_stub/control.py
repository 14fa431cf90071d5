"""The control channel of an emulated unit, after libfprint's virtual devices: a test or a person
scripts exactly what the next capture returns. Commands queue up, one per capture, in order;
a capture with nothing scripted waits for a command until its timeout (nobody presents a hand,
so it times out). `unplug`/`plug` change the unit's state at once, `delay` holds the next
capture before it reads the script.

Line protocol (one command per line, ASCII; the answer is one line, `ok …` or `error: …`):

    present N [left|right] [quality Q]   palm N (right hand by default) is presented
    spoof N [left|right]                 an artefact of palm N (low liveness score)
    poor_quality [N] [left|right]        palm N badly presented (quality 10–35)
    no_hand                              the sensor gives up: no hand detected
    reposition left|right|closer|farther|tilt
    error CODE                           the capture fails with that return code (name or number)
    timeout                              the capture runs into its timeout
    delay MS                             the next capture holds MS milliseconds first
    unplug | plug                        the unit is removed / inserted
    clear | status | help
"""

from __future__ import annotations

import socketserver
import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

from vein_sdk_stub.bir import Hand
from vein_sdk_stub.errors import HINT_CODES, Code
from vein_sdk_stub.population import MAX_PALM

OutcomeKind = Literal["present", "spoof", "poor_quality", "no_hand", "reposition", "error", "timeout"]
MAX_LINE = 256
MAX_QUEUE = 1024
MAX_DELAY_MS = 600_000


class ControlError(ValueError):
    """A malformed or impossible control command."""


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    palm: int = 0
    hand: Hand = Hand.RIGHT
    quality: int | None = None
    hint: str | None = None
    code: int | None = None


def _palm(text: str) -> int:
    try:
        palm = int(text, 10)
    except ValueError:
        raise ControlError(f"palm number expected, got {text[:20]!r}") from None
    if not 0 <= palm <= MAX_PALM:
        raise ControlError(f"palm number out of range 0..{MAX_PALM}")
    return palm


def _hand(text: str) -> Hand:
    try:
        return {"right": Hand.RIGHT, "left": Hand.LEFT}[text]
    except KeyError:
        raise ControlError(f"hand is left or right, got {text[:20]!r}") from None


def parse_code(text: str) -> int:
    name = text.upper()
    if name in Code.__members__:
        code = int(Code[name])
    else:
        try:
            code = int(text, 0)
        except ValueError:
            raise ControlError(f"unknown return code {text[:20]!r}") from None
    if not 0 < code <= 0xFFFF or code == Code.MORE_SAMPLES_NEEDED:
        raise ControlError("a return code is a failure code in 1..0xFFFF")
    return code


class Control:
    """The script of one emulated unit. Thread-safe; captures wait on `condition`."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self._queue: deque[Outcome] = deque()
        self._delay_ms = 0
        self._plugged = True
        self._generation = 0  # bumped by every unplug: handles of an older generation are dead

    # -- scripting ------------------------------------------------------------------------
    def _push(self, outcome: Outcome) -> None:
        with self.condition:
            if len(self._queue) >= MAX_QUEUE:
                raise ControlError("the script is full")
            self._queue.append(outcome)
            self.condition.notify_all()

    def present(self, palm: int, hand: Hand | str = Hand.RIGHT, quality: int | None = None) -> None:
        if quality is not None and not 0 <= int(quality) <= 100:
            raise ControlError("quality is 0..100")
        self._push(Outcome("present", _palm(str(palm)), _as_hand(hand), quality))

    def spoof(self, palm: int, hand: Hand | str = Hand.RIGHT) -> None:
        self._push(Outcome("spoof", _palm(str(palm)), _as_hand(hand)))

    def poor_quality(self, palm: int = 0, hand: Hand | str = Hand.RIGHT) -> None:
        self._push(Outcome("poor_quality", _palm(str(palm)), _as_hand(hand)))

    def no_hand(self) -> None:
        self._push(Outcome("no_hand"))

    def reposition(self, hint: str) -> None:
        if hint not in HINT_CODES:
            raise ControlError(f"reposition hint is one of {', '.join(HINT_CODES)}")
        self._push(Outcome("reposition", hint=hint))

    def error(self, code: int | str) -> None:
        self._push(Outcome("error", code=parse_code(str(code))))

    def timeout(self) -> None:
        self._push(Outcome("timeout"))

    def delay(self, ms: int) -> None:
        if not 0 <= int(ms) <= MAX_DELAY_MS:
            raise ControlError(f"delay is 0..{MAX_DELAY_MS} ms")
        with self.condition:
            self._delay_ms += int(ms)

    def unplug(self) -> None:
        with self.condition:
            if self._plugged:
                self._plugged = False
                self._generation += 1
            self.condition.notify_all()

    def plug(self) -> None:
        with self.condition:
            self._plugged = True
            self.condition.notify_all()

    def clear(self) -> None:
        with self.condition:
            self._queue.clear()
            self._delay_ms = 0

    # -- state, for the SDK ---------------------------------------------------------------
    @property
    def plugged(self) -> bool:
        return self._plugged

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def pending(self) -> list[Outcome]:
        with self.condition:
            return list(self._queue)

    def take_delay_ms(self) -> int:
        with self.condition:
            ms, self._delay_ms = self._delay_ms, 0
            return ms

    def take(self) -> Outcome | None:
        """The next scripted outcome, if any (call with `condition` held or not)."""
        with self.condition:
            return self._queue.popleft() if self._queue else None

    # -- the line protocol ----------------------------------------------------------------
    def execute(self, line: str) -> str:
        """Run one command line; returns the answer line. Never raises for bad input."""
        try:
            return self._execute(line)
        except ControlError as exc:
            return f"error: {exc}"

    def _execute(self, line: str) -> str:
        if len(line) > MAX_LINE or not line.isascii():
            raise ControlError("a command is one short ASCII line")
        words = line.strip().lower().split()
        if not words:
            raise ControlError("empty command")
        cmd, args = words[0], words[1:]
        if cmd in ("present", "spoof", "poor_quality"):
            if cmd != "poor_quality" and not args:
                raise ControlError(f"{cmd} needs a palm number")
            palm = _palm(args[0]) if args else 0
            rest = args[1:]
            hand = Hand.RIGHT
            if rest and rest[0] in ("left", "right"):
                hand, rest = _hand(rest[0]), rest[1:]
            quality = None
            if cmd == "present" and len(rest) == 2 and rest[0] == "quality":
                try:
                    quality = int(rest[1])
                except ValueError:
                    raise ControlError("quality is 0..100") from None
                rest = []
            if rest:
                raise ControlError(f"unexpected {' '.join(rest)[:40]!r}")
            {"present": lambda: self.present(palm, hand, quality),
             "spoof": lambda: self.spoof(palm, hand),
             "poor_quality": lambda: self.poor_quality(palm, hand)}[cmd]()
        elif cmd in ("no_hand", "timeout", "unplug", "plug", "clear") and not args:
            getattr(self, cmd)()
        elif cmd == "reposition" and len(args) == 1:
            self.reposition(args[0])
        elif cmd == "error" and len(args) == 1:
            self.error(args[0])
        elif cmd == "delay" and len(args) == 1:
            try:
                self.delay(int(args[0]))
            except ValueError:
                raise ControlError("delay needs milliseconds") from None
        elif cmd == "status" and not args:
            with self.condition:
                queued = " ".join(o.kind for o in self._queue) or "-"
                return (f"ok plugged={'yes' if self._plugged else 'no'} delay_ms={self._delay_ms} "
                        f"queue={queued}")
        elif cmd == "help" and not args:
            return "ok " + " | ".join(_COMMANDS)
        else:
            raise ControlError(f"unknown command or wrong arguments: {line.strip()[:40]!r}")
        return "ok"


_COMMANDS = ("present N [left|right] [quality Q]", "spoof N [left|right]", "poor_quality [N]",
             "no_hand", "reposition left|right|closer|farther|tilt", "error CODE", "timeout",
             "delay MS", "unplug", "plug", "clear", "status")


def _as_hand(hand: Hand | str) -> Hand:
    return _hand(hand) if isinstance(hand, str) else Hand(hand)


class _LineHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        control: Control = self.server.control  # type: ignore[attr-defined]
        while True:
            raw = self.rfile.readline(MAX_LINE + 2)
            if not raw:
                return
            try:
                line = raw.decode("ascii")
            except UnicodeDecodeError:
                answer = "error: a command is one short ASCII line"
            else:
                if line.strip().lower() == "quit":
                    return
                answer = control.execute(line)
            self.wfile.write(answer.encode("ascii") + b"\n")


class ControlServer(socketserver.ThreadingTCPServer):
    """The line protocol on a loopback TCP socket (the terminal agent's emulator page, or a
    person with `nc 127.0.0.1 PORT`). Port 0 picks a free port; see `address`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, control: Control, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("the control channel listens on loopback only")
        self.control = control
        super().__init__((host, port), _LineHandler)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return str(host), int(port)

    def start(self) -> ControlServer:
        self._thread = threading.Thread(target=self.serve_forever, name="vein-control", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def __enter__(self) -> ControlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
