"""Writes docs/retention.md from the retention table (``webmeeting/domain/retention.py``) and
the tests that prove each rule (``@pytest.mark.retention("<rule>")``):

    .venv/bin/python -m infra.retention_doc > docs/retention.md   (make retention-doc)

``tests/unit/test_retention_doc.py`` fails when the file and the table disagree."""

from __future__ import annotations

import re
from pathlib import Path

from webmeeting.domain.retention import RULES, durations

ROOT = Path(__file__).resolve().parent.parent

INTRO = """# Retention: every deletion the privacy policy promises

Generated from `webmeeting/domain/retention.py` by `make retention-doc`; a test fails when this
file and the table disagree, and another when a rule has no test. Durations are the defaults;
each can be changed with `WEBMEETING_RETENTION_<RULE>_S` (seconds).

## How the engine works

- The scheduler's daily job `retention` (job table `webmeeting/jobs.py`; Cloud Scheduler in
  production, `infra/scheduler.py` locally) fans out one Cloud Task per swept rule to
  `POST /tasks/v1/retention/<rule>`; each task deletes or clears one batch of due items found
  with an indexed query (a time field, and a flag where data is cleared rather than deleted)
  and enqueues itself again while more is due. Cost follows what expires, not what is stored
  (`bench/retention_sweep.py`, docs/benchmarks.md).
- Every sweep is idempotent: a second run finds nothing; an interrupted run leaves the rest
  due, and the next run (the re-enqueued task, or tomorrow's job) finishes it. Storage objects
  are deleted before their records, so an interruption never orphans an object.
- Firestore TTL policies on `expire_at` (participant events, mails, recordings, reports,
  statistics, nonces) are the production safety net for rules that are a fixed time after an
  event; the bucket lifecycle deletes recordings at 7 days.
- The daily job `dns-checks` resolves every PBX's FQDN (dnspython, resolver
  `WEBMEETING_DNS_SERVER`); a failure starts or continues a streak (`dns_failing_since`, the
  time of the streak's first failed check), a success ends it.
- Handlers accept only authenticated calls: OIDC tokens of the scheduler/tasks service accounts
  in production (the function's invoker IAM), the shared secret header locally.

## How the policy's overlapping numbers are read

- **DNS: "resolved at least once every 29 days" and "failed DNS resolution for 30 days".** A
  PBX whose FQDN has failed every daily check for 30 days (counted from the first failed check
  of the streak) loses all its data: on day 30 it has not resolved for 29 full days, so both
  sentences hold. One success resets the streak.
- **DNS, meeting data: 14 days.** After 14 days of the same streak its meetings and what hangs
  on them go (scheduled meetings with their shared PDFs, files, sessions, participant events,
  recordings, mails, poll runs; Quick Meetings stay with their extensions, what hangs on them
  goes). The PBX, its users and polls stay until day 30.
- **Contact: "syncs at least once every 59 days", "60 consecutive days", "2 months".** A PBX
  with no authenticated call for 60 days loses all its data (on day 60 it has not synced for 59
  full days). The policy's "meeting data after 2 months without contact" is therefore already
  covered: 2 months are at least 59 days, and by then all its data is gone, meetings included;
  the table has no separate rule for it.
- **"2 months"** (reports, statistics) is read as 60 days; **"1 year"** as 365 days.
- **Meeting names, comments and invitees' names: 7 days after the scheduled date** (the
  scheduled start); **invitees' emails: 7 days after completion** (start + duration).
- **Participant names and IPs seen by the MCU: 7 days after the meeting**, counted from each
  participant event (so the last of them goes 7 days after the meeting ended).

## The rules
"""


def proofs_by_rule() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        text = path.read_text()
        for match in re.finditer(r'((?:@pytest\.mark\.retention\("[a-z_]+"\)\s*)+)def (test_\w+)', text):
            for rule in re.findall(r'retention\("([a-z_]+)"\)', match.group(1)):
                out.setdefault(rule, []).append(f"`{path.relative_to(ROOT)}::{match.group(2)}`")
    return out


def render() -> str:
    proofs = proofs_by_rule()
    current = durations({})
    lines = [
        INTRO,
        "| rule | data | trigger | duration | policy | enforced by | test |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in RULES:
        duration = "at once" if r.duration is None else f"{current[r.name].days} days"
        test = "<br>".join(proofs.get(r.name, [])) or "**none**"
        lines.append(f"| `{r.name}` | {r.data} | {r.trigger} | {duration} | {r.policy} | {r.enforced_by} | {test} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
