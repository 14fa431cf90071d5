"""Reports of the system log (R22; 004 第9 1(2) 分析・報告) for the company's system
administrators and staff and the agency's operators: over a period of JST days, logons and
failures per company and day, locks and unlocks, administrative actions, registrations,
refused uses of privileges, off-hours logons, repeated failures from one terminal or source,
accounts unused for the inactivity period and sessions from two terminals at once, each
anomaly flagged with the rule that raised it, and a chart of the logons per day. `report`
reads (access checked and the report itself audited, `audit.report`); `to_csv`, `to_html`
and `to_pdf` render the same content (charts and PDF drawn by adapters/report_render.py).

Which company an event belongs to (a company's report shows the events of its company only):
every company the event touches, of
  - the detail's `company` (groups, contracts, directory runs name it),
  - the subject's account (`Account.user_id`, compared in lower case as identifiers are, the
    newest account holding that ID → its contract's company) or service client, and
  - the actor's account or service client (a refused use of privileges is also the refused
    actor's company's, as its alert is: guard.refused).
A logon attempt by an unknown ID (logged under a pseudonym, R5) belongs to no company: it is in
the agency's report (every company) only. The per-company counts take the first of these.

Times are JST; a day is a JST calendar day. Off hours: outside 8:00–20:00 on business days,
and any time on weekends and public holidays (domain/calendar.py, `deps.holidays`). Accounts
unused for the inactivity period are judged by their current last use (the last logon, or
when they last became active) as of the end of the period (or now, when earlier)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from authsvc.domain.calendar import JST, is_business_day, jst_iso
from authsvc.domain.errors import DomainError, InvalidInput, NotFound
from authsvc.domain.messages import label, text
from authsvc.domain.roles import Actor, Perm, company_key
from authsvc.services import Deps, guard

FORMATS = ("html", "csv", "pdf")
MAX_DAYS = 366  # one report covers at most a year
BUSINESS_HOURS = (time(8, 0), time(20, 0))  # [start, end) on business days, JST
REPEATED_FAILURES = 5  # failed logon attempts from one terminal or source in one day
ROWS_MAX = 5000  # rows listed per section (the counts are always complete)

LOGON_DONE = ("logon.complete", "logon.console")  # a logon that opened a session
LOCKS = ("account.lock", "client.lock")
UNLOCKS = ("account.unlock", "account.auto_unlock", "client.auto_unlock")
# Administrative use cases (the names services/guard.audited gives them, and the events they
# write); a refusal of one is a refused use of privileges (guard.refused).
ADMIN_PREFIXES = ("account.", "alert.", "audit.", "client.", "contract.", "device.", "directory.",
                  "group.", "identifier.", "maintenance.")
ADMIN_ACTIONS = frozenset({"oidc.key_rotated", "oidc.logouts", "password.reset", "registration.consent",
                           "registration.in_person", "totp.remove", "vein.enrol", "webauthn.remove",
                           "account.end_sessions", "account.reset_factor"})
NOT_ADMIN = frozenset({*LOCKS, *UNLOCKS, "client.authenticate"})

# the anomaly rules (each flag names the one that raised it)
OFF_HOURS = "off_hours_logon"
REPEATED_TERMINAL = "repeated_failures_terminal"
REPEATED_SOURCE = "repeated_failures_source"
SHARED_ID = "shared_id_suspected"
PRIVILEGE_REFUSED = "privilege_refused"
INACTIVE = "inactive_account"
RULES = (OFF_HOURS, REPEATED_TERMINAL, REPEATED_SOURCE, SHARED_ID, PRIVILEGE_REFUSED, INACTIVE)

SECTIONS = ("logons", "locks", "admin", "registrations", "refused", "off_hours", "repeated",
            "inactive", "shared")


@dataclass
class Section:
    """One table of the report: `key` (stable), its title and column headers in the report's
    language, the rows (plain strings and numbers), and how many there were (`total`: rows
    may list at most ROWS_MAX)."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    total: int = 0

    def add(self, row: list[Any]) -> None:
        self.total += 1
        if len(self.rows) < ROWS_MAX:
            self.rows.append(row)


@dataclass(frozen=True)
class Flag:
    """An anomaly: the rule that raised it (`rule`, and its name in the report's language),
    when (JST) or which day, whom, and what was seen."""

    rule: str
    rule_label: str
    at: str
    subject: str
    company: str
    detail: str


@dataclass(frozen=True)
class Chart:
    """A chart's data: one label per day, and the series (name in the report's language ->
    one value per label)."""

    key: str
    title: str
    labels: list[str]
    series: dict[str, list[int]]


@dataclass
class Report:
    start: date
    end: date
    company: str | None  # None: every company (an agency operator's report)
    lang: str
    generated_at: str  # JST
    generated_by: str
    title: str
    heading: list[str]  # the lines under the title: period, company, generated
    sections: list[Section]
    flags: list[Flag]
    charts: list[Chart]
    counts: dict[str, int]  # the totals: logons, failures, refused, each section and each rule

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)

    def flags_of(self, rule: str) -> list[Flag]:
        return [f for f in self.flags if f.rule == rule]


def is_admin_action(action: str) -> bool:
    return action not in NOT_ADMIN and (action in ADMIN_ACTIONS or action.startswith(ADMIN_PREFIXES))


def off_hours(moment: datetime, is_holiday: Any) -> str | None:
    """Why `moment` (JST) is outside business hours: "weekend", "holiday", "night"; None inside."""
    local = moment.astimezone(JST)
    day = local.date()
    if day.weekday() >= 5:
        return "weekend"
    if not is_business_day(day, is_holiday):
        return "holiday"
    if not BUSINESS_HOURS[0] <= local.time() < BUSINESS_HOURS[1]:
        return "night"
    return None


def _period(start: date, end: date) -> tuple[datetime, datetime]:
    if end < start or (end - start).days + 1 > MAX_DAYS:
        raise InvalidInput("report_period_invalid", days=MAX_DAYS)
    return (datetime.combine(start, time(0), JST), datetime.combine(end + timedelta(days=1), time(0), JST))


def _scope(deps: Deps, actor: Actor, company: str | None) -> str | None:
    """The company the report covers (None: every company, for an agency operator), checked:
    another company answers like an unknown one (guard.check)."""
    actor.require(Perm.READ_AUDIT)
    company = " ".join((company or "").split())[:200] or None
    if company is None and not actor.everywhere:
        company = actor.company or None
        if company is None:  # administers no company and is not the agency's
            guard.check(actor, Perm.READ_AUDIT, None, "contract_company_unknown", company="-")
    if company is not None:
        guard.check(actor, Perm.READ_AUDIT, company, "contract_company_unknown", company=company)
        with deps.uow(read_only=True) as uow:
            known = {company_key(c): c for c in uow.audit_reports.companies()}
        if company_key(company) not in known:
            raise NotFound("contract_company_unknown", company=company)
        company = known[company_key(company)]
    return company


def report(deps: Deps, actor: Actor, start: date, end: date, company: str | None = None,
           lang: str = "ja", fmt: str = "html") -> Report:
    """The report of the JST days `start`..`end` (inclusive) for `company` (None: the actor's
    own; an agency operator: every company). Only system administrators and staff of the
    company, and agency operators, may read it; a refusal is audited (and alerted) as a refused
    use of privileges, its subject the company asked for ("*": none named), and every report
    made is audited (`audit.report`: from, to, company, format)."""
    return _report(deps, actor, start, end, company or "*", lang, fmt)


@guard.audited("audit.report", "company")
def _report(deps: Deps, actor: Actor, start: date, end: date, company: str, lang: str,
            fmt: str) -> Report:
    if fmt not in (*FORMATS, "png"):  # png: the console's chart image (web/console.py)
        raise InvalidInput("report_format_unknown", formats=", ".join(FORMATS))
    company = _scope(deps, actor, None if company == "*" else company)  # who may, first
    since, until = _period(start, end)
    lang = "en" if lang == "en" else "ja"
    now = deps.clock.now()
    deps.seal_audit()  # the report reads the chain: what is committed is in it
    built = _Builder(deps, company, lang, since, until, min(until, now)).run()
    made = Report(start, end, company, lang, jst_iso(now), actor.id, text("rpt_title", lang),
                  [text("rpt_period", lang, start=start.isoformat(), end=end.isoformat()),
                   text("rpt_company", lang, company=company or text("rpt_all_companies", lang)),
                   text("rpt_generated", lang, at=jst_iso(now)[:19].replace("T", " "), actor=actor.id)],
                  *built)
    with deps.uow() as uow:
        uow.audit(now, actor, "audit.report", company or "*", "ok", start=start.isoformat(),
                  end=end.isoformat(), company=company, format=fmt, lang=lang,
                  events=made.counts.get("events", 0))
        uow.commit()
    return made


class _Builder:
    """One pass over the period's events, then the accounts and alerts."""

    def __init__(self, deps: Deps, company: str | None, lang: str, since: datetime, until: datetime,
                 as_of: datetime) -> None:
        self.deps, self.company, self.lang = deps, company, lang
        self.key = company_key(company) if company else None
        self.since, self.until, self.as_of = since, until, as_of  # as_of: the inactivity's instant
        self.t = lambda code, **kw: text(code, lang, **kw)

    def _section(self, key: str, *columns: str, **params: Any) -> Section:
        cols = ([] if self.company else ["rpt_col_company"]) + list(columns)
        return Section(key, self.t(f"rpt_sec_{key}", **params), [self.t(c) for c in cols])

    def _row(self, company: str, *values: Any) -> list[Any]:
        return ([] if self.company else [company or self.t("rpt_no_company")]) + list(values)

    def run(self) -> tuple[list[Section], list[Flag], list[Chart], dict[str, int]]:
        deps, t = self.deps, self.t
        days = deps.settings.identifiers.disable_after_days
        sec = {
            "locks": self._section("locks", "rpt_col_time", "rpt_col_action", "rpt_col_subject",
                                   "rpt_col_actor", "rpt_col_detail"),
            "admin": self._section("admin", "rpt_col_time", "rpt_col_actor", "rpt_col_action",
                                   "rpt_col_subject", "rpt_col_result"),
            "registrations": self._section("registrations", "rpt_col_time", "rpt_col_actor",
                                           "rpt_col_action", "rpt_col_subject", "rpt_col_result"),
            "refused": self._section("refused", "rpt_col_time", "rpt_col_actor", "rpt_col_action",
                                     "rpt_col_subject", "rpt_col_reason"),
            "off_hours": self._section("off_hours", "rpt_col_time", "rpt_col_subject", "rpt_col_terminal",
                                       "rpt_col_source", "rpt_col_why"),
            "repeated": self._section("repeated", "rpt_col_day", "rpt_col_kind", "rpt_col_value",
                                      "rpt_col_count", threshold=REPEATED_FAILURES),
            "inactive": self._section("inactive", "rpt_col_user", "rpt_col_status", "rpt_col_last_used",
                                      "rpt_col_days_unused", days=days),
            "shared": self._section("shared", "rpt_col_time", "rpt_col_subject", "rpt_col_terminals"),
        }
        flags: list[Flag] = []
        per_day: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)  # (company, day) -> counts
        failed_from: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)  # (day, kind, v)
        totals: Counter[str] = Counter()
        since_ts, until_ts = jst_iso(self.since), jst_iso(self.until)
        with deps.uow(read_only=True, snapshot=True) as uow:
            reports = uow.audit_reports
            accounts, clients = reports.account_companies(), reports.client_companies()

            def owner(who: str) -> str | None:
                low = who.lower()
                return accounts.get(low) or clients.get(low)

            for ev in reports.events(since_ts, until_ts):
                detail: dict[str, Any] | None = None
                if not ev.action.startswith("logon.") or ev.action in LOGON_DONE:
                    detail = _detail(ev.detail)
                touched = [c for c in ((detail or {}).get("company"), owner(ev.subject), owner(ev.actor))
                           if isinstance(c, str) and c]
                if self.key is not None and self.key not in {company_key(c) for c in touched}:
                    continue
                first = self.company or (touched[0] if touched else "")
                totals["events"] += 1
                at = ev.ts[:19].replace("T", " ")
                day = ev.ts[:10]
                if ev.action.startswith("logon."):
                    counts = per_day[(first, day)]
                    if ev.action in LOGON_DONE and ev.result == "ok":
                        counts["logons"] += 1
                        why = off_hours(datetime.fromisoformat(ev.ts), deps.holidays.is_holiday)
                        if why:
                            sec["off_hours"].add(self._row(first, at, ev.subject, ev.terminal, ev.source,
                                                           t(f"rpt_off_{why}")))
                            seen = f"{t(f'rpt_off_{why}')} {ev.terminal} {ev.source}".strip()
                            flags.append(self._flag(OFF_HOURS, at, ev.subject, first, seen))
                    elif ev.result in ("failed", "refused"):
                        counts["failures" if ev.result == "failed" else "refused"] += 1
                    if ev.result == "failed":
                        for kind, value in (("terminal", ev.terminal), ("source", ev.source)):
                            if value:
                                failed_from[(day, kind, value)][first] += 1
                    continue
                if ev.action in LOCKS or ev.action in UNLOCKS:
                    extra = {k: (detail or {})[k] for k in ("failures", "locked_until", "was_locked")
                             if k in (detail or {})}
                    sec["locks"].add(self._row(first, at, ev.action, ev.subject, ev.actor,
                                               json.dumps(extra, ensure_ascii=False) if extra else ""))
                    continue
                if ev.action.startswith("registration."):
                    sec["registrations"].add(self._row(first, at, ev.actor, ev.action, ev.subject,
                                                       label("hist_", ev.result, self.lang)))
                if is_admin_action(ev.action):
                    if ev.result == "refused":
                        reason = str((detail or {}).get("reason", ""))
                        sec["refused"].add(self._row(first, at, ev.actor, ev.action, ev.subject, reason))
                        flags.append(self._flag(PRIVILEGE_REFUSED, at, ev.subject, first,
                                                f"{ev.actor}: {ev.action} ({reason})"))
                    elif not ev.action.startswith("registration."):
                        sec["admin"].add(self._row(first, at, ev.actor, ev.action, ev.subject,
                                                   label("hist_", ev.result, self.lang)))
            rows = reports.accounts(None)
            alerts = reports.alerts(SHARED_ID, self.since, self.until)
        # repeated failures from one terminal or source in one day
        for (day, kind, value), by_company in sorted(failed_from.items()):
            count = sum(by_company.values())
            if count >= REPEATED_FAILURES:
                first = by_company.most_common(1)[0][0]
                sec["repeated"].add(self._row(first, day, t(f"rpt_kind_{kind}"), value, count))
                flags.append(self._flag(REPEATED_TERMINAL if kind == "terminal" else REPEATED_SOURCE,
                                        day, value, first, t("rpt_failures_n", count=count)))
        # accounts unused for the inactivity period, as of the end of the period
        for acc in rows:
            if self.key is not None and company_key(acc.company) != self.key:
                continue
            if acc.status not in ("active", "disabled"):
                continue
            last = max(filter(None, (acc.last_used_at, acc.status_changed_at)))
            unused = (self.as_of - last).days
            if unused >= days:
                shown = jst_iso(last)[:16].replace("T", " ")
                sec["inactive"].add(self._row(acc.company, acc.user_id, label("st_", acc.status, self.lang),
                                              shown, unused))
                flags.append(self._flag(INACTIVE, shown, acc.user_id, acc.company,
                                        t("rpt_days_unused_n", days=unused)))
        # one ID on two terminals at once (the alert the logon raised, services/logon.py)
        for a in alerts:
            if self.key is not None and company_key(a.company or "") != self.key:
                continue
            at = jst_iso(a.raised_at)[:19].replace("T", " ")
            terminals = ", ".join(str(x) for x in _detail(a.detail).get("terminals", []))
            sec["shared"].add(self._row(a.company or "", at, a.subject, terminals))
            flags.append(self._flag(SHARED_ID, at, a.subject, a.company or "", terminals))
        logons = self._section("logons", "rpt_col_day", "rpt_col_logons", "rpt_col_failures",
                               "rpt_col_refused")
        daily: dict[str, Counter[str]] = defaultdict(Counter)
        for (company, day), counts in sorted(per_day.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            logons.add(self._row(company, day, counts["logons"], counts["failures"], counts["refused"]))
            daily[day].update(counts)
            totals.update(counts)
        charts = [self._daily_chart(daily)]
        sections = [logons, *sec.values()]
        totals.update({f"section_{s.key}": s.total for s in sections})
        totals.update({f"rule_{r}": 0 for r in RULES})
        totals.update(f"rule_{f.rule}" for f in flags)
        for key in ("logons", "failures", "refused"):
            totals.setdefault(key, 0)
        flags.sort(key=lambda f: (f.at, f.rule))
        return sections, flags, charts, dict(totals)

    def _flag(self, rule: str, at: str, subject: str, company: str, detail: str) -> Flag:
        return Flag(rule, self.t(f"rule_{rule}"), at, subject, company, detail)

    def _daily_chart(self, daily: dict[str, Counter[str]]) -> Chart:
        labels: list[str] = []
        day, last = self.since.date(), (self.until - timedelta(days=1)).date()
        while day <= last:
            labels.append(day.isoformat())
            day += timedelta(days=1)
        series = {self.t(f"rpt_col_{k}"): [daily.get(d, Counter())[k] for d in labels]
                  for k in ("logons", "failures", "refused")}
        return Chart("daily", self.t("rpt_chart_daily"), labels, series)


def _detail(raw: str) -> dict[str, Any]:
    try:
        found = json.loads(raw)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


# ---- renderers -------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: a value starting like a formula (=, +, -, @, a
    tab or carriage return) gets a leading apostrophe (stored strings such as a User-Agent are
    anyone's)."""
    s = str(value)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


def to_csv(rep: Report) -> str:
    """Every section as a block: its title, its header, its rows; a blank line between. The
    flags last. (Written as UTF-8 with a byte order mark for spreadsheets: see `csv_bytes`.)"""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([rep.title])
    for line in rep.heading:
        w.writerow([line])
    for s in rep.sections:
        w.writerow([])
        w.writerow([s.title] + ([text("rpt_truncated", rep.lang, shown=len(s.rows), total=s.total)]
                                if s.total > len(s.rows) else []))
        w.writerow(s.columns)
        for row in s.rows:
            w.writerow([_cell(v) for v in row])
    w.writerow([])
    w.writerow([text("rpt_sec_flags", rep.lang)])
    w.writerow(_flag_columns(rep))
    for f in rep.flags:
        w.writerow([_cell(v) for v in _flag_row(rep, f)])
    return out.getvalue()


def csv_bytes(rep: Report) -> bytes:
    return to_csv(rep).encode("utf-8-sig")


def _flag_columns(rep: Report) -> list[str]:
    cols = ["rpt_col_rule", "rpt_col_time", "rpt_col_subject"] + ([] if rep.company else ["rpt_col_company"])
    return [text(c, rep.lang) for c in [*cols, "rpt_col_detail"]]


def _flag_row(rep: Report, f: Flag) -> list[str]:
    return [f"{f.rule_label} ({f.rule})", f.at, f.subject] + ([] if rep.company else [f.company]) + [f.detail]


def chart_png(chart: Chart) -> bytes:
    from adapters import report_render

    return report_render.chart_png(chart.title, chart.labels, chart.series)


def chart_data_uri(chart: Chart) -> str:
    return "data:image/png;base64," + base64.b64encode(chart_png(chart)).decode("ascii")


def summary(rep: Report) -> list[tuple[str, int]]:
    """The totals a reader looks at first, labelled in the report's language."""
    t = lambda code: text(code, rep.lang)  # noqa: E731
    return ([(t("rpt_col_logons"), rep.counts["logons"]), (t("rpt_col_failures"), rep.counts["failures"]),
             (t("rpt_col_refused"), rep.counts["refused"])]
            + [(s.title, s.total) for s in rep.sections if s.key != "logons"]
            + [(t("rpt_sec_flags"), len(rep.flags))])


_CSS = """body{font-family:"Noto Sans CJK JP","Hiragino Sans","Yu Gothic",sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #bbb;padding:.2em .5em;
font-size:.9em;text-align:left;vertical-align:top}th{background:#eee}td.n{text-align:right}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.5em}p.note{color:#666;font-size:.85em}"""


def _table(columns: list[str], rows: list[list[Any]], section_id: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{v}</td>' if isinstance(v, int) else f"<td>{html.escape(str(v))}</td>" for v in row)
        + "</tr>" for row in rows)
    return f'<table id="{section_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def to_html(rep: Report) -> str:
    """A self-contained page: everything escaped, the charts as PNG data URIs, no script, no
    outside resource (it may be mailed or archived and opened anywhere)."""
    t = lambda code, **kw: text(code, rep.lang, **kw)  # noqa: E731
    parts = [f'<!doctype html><html lang="{rep.lang}"><head><meta charset="utf-8">',
             f"<title>{html.escape(rep.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(rep.title)}</h1>",
             *(f"<p>{html.escape(line)}</p>" for line in rep.heading),
             f'<h2 id="summary">{html.escape(t("rpt_summary"))}</h2>',
             _table([t("rpt_col_kind"), t("rpt_col_count")], [[k, v] for k, v in summary(rep)],
                    "summary-table")]
    for chart in rep.charts:
        parts.append(f'<h2>{html.escape(chart.title)}</h2><img id="chart-{chart.key}" '
                     f'alt="{html.escape(chart.title)}" src="{chart_data_uri(chart)}">')
    for s in rep.sections:
        parts.append(f'<h2 id="sec-{s.key}">{html.escape(s.title)}</h2>')
        if s.total > len(s.rows):
            note = t("rpt_truncated", shown=len(s.rows), total=s.total)
            parts.append(f'<p class="note">{html.escape(note)}</p>')
        parts.append(_table(s.columns, s.rows, f"table-{s.key}") if s.rows
                     else f"<p>{html.escape(t('rpt_none'))}</p>")
    parts.append(f'<h2 id="sec-flags">{html.escape(t("rpt_sec_flags"))}</h2>')
    parts.append(_table(_flag_columns(rep), [_flag_row(rep, f) for f in rep.flags], "table-flags")
                 if rep.flags else f"<p>{html.escape(t('rpt_none'))}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def to_pdf(rep: Report) -> bytes:
    """The same content as a PDF (A4), its text in an embedded Japanese font."""
    from adapters import report_render

    t = lambda code, **kw: text(code, rep.lang, **kw)  # noqa: E731
    tables = [(t("rpt_summary"), [t("rpt_col_kind"), t("rpt_col_count")],
               [[k, v] for k, v in summary(rep)], "")]
    tables += [(s.title, s.columns, s.rows,
                t("rpt_truncated", shown=len(s.rows), total=s.total) if s.total > len(s.rows) else "")
               for s in rep.sections]
    tables.append((t("rpt_sec_flags"), _flag_columns(rep), [_flag_row(rep, f) for f in rep.flags], ""))
    charts = [(c.title, c.labels, c.series) for c in rep.charts]
    try:
        return report_render.pdf(rep.title, rep.heading, charts, tables, t("rpt_none"))
    except report_render.FontMissing:
        raise DomainError("report_font_missing", font=report_render.CJK_FAMILY) from None
