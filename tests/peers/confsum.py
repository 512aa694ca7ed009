#!/usr/bin/env python3
"""confsum.py: per-scenario pass/fail from a conformance-suite result folder (stdlib only).

  python3 confsum.py RESULTDIR [--baseline FILE] [--not-scored NAMES] [--label TEXT] [--json OUT]

RESULTDIR holds the CLI's `server-<scenario>-<timestamp>/checks.json` folders (conformance `-o`).
A scenario FAILS when any of its checks has status FAILURE; WARNING/INFO/SKIPPED never fail it.
--baseline: the CLI's expected-failures YAML (`server:` list); a listed scenario that fails is XFAIL
(does not count), one that passes is XPASS (counts as a failure: stale baseline).
--not-scored: comma list of scenarios reported but not counted (extension/pending in --requirements runs).
Prints one line per scenario, then a summary line; exit status 1 if any counted scenario failed
(or no result was found), else 0.
"""
import argparse
import glob
import json
import os
import re
import sys


def load_baseline(path):
    names, section = set(), None
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        m = re.match(r"^(\w+):\s*$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^\s*-\s*['\"]?([\w.\-]+)['\"]?\s*$", line)
        if m and section == "server":
            names.add(m.group(1))
    return names


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("resultdir")
    p.add_argument("--baseline")
    p.add_argument("--not-scored", default="")
    p.add_argument("--label", default="conformance")
    p.add_argument("--json")
    a = p.parse_args()
    baseline = load_baseline(a.baseline) if a.baseline else set()
    not_scored = {x for x in a.not_scored.split(",") if x}

    rows = {}
    for sd in sorted(glob.glob(os.path.join(a.resultdir, "server-*"))):
        scen = re.sub(r"^server-", "", re.sub(r"-\d{4}-\d{2}-\d{2}T.*$", "", os.path.basename(sd)))
        c = {"SUCCESS": 0, "FAILURE": 0, "WARNING": 0}
        msgs = []
        try:
            with open(os.path.join(sd, "checks.json"), encoding="utf-8") as f:
                checks = json.load(f)
        except Exception as e:  # noqa: BLE001 - a broken result is a failure of that scenario
            checks, c["FAILURE"] = [], 1
            msgs.append(f"unreadable checks.json: {e}")
        for ch in checks:
            s = ch.get("status", "INFO")
            if s in c:
                c[s] += 1
            if s == "FAILURE":
                msgs.append(f"{ch.get('id')}: {(ch.get('errorMessage') or '').strip()[:200]}")
        prev = rows.get(scen)
        if prev:  # the same scenario run twice (repeated --scenario): add up
            for k in c:
                c[k] += prev[k]
            msgs = prev["msgs"] + msgs
        rows[scen] = {**c, "msgs": msgs}

    counted_fail = counted = passed = checks_ok = checks_all = warns = 0
    out = []
    for scen, r in rows.items():
        failed = r["FAILURE"] > 0
        if scen in not_scored:
            verdict, count = ("fail" if failed else "pass") + "*", False
        elif scen in baseline:
            verdict, count = ("XFAIL", False) if failed else ("XPASS", True)
        else:
            verdict, count = ("FAIL" if failed else "PASS"), True
        if count:
            counted += 1
            if verdict in ("FAIL", "XPASS"):
                counted_fail += 1
            else:
                passed += 1
        checks_ok += r["SUCCESS"]
        checks_all += r["SUCCESS"] + r["FAILURE"]
        warns += r["WARNING"]
        r["verdict"] = verdict
        extra = f" ({r['WARNING']} warning{'s' if r['WARNING'] != 1 else ''})" if r["WARNING"] else ""
        why = f"  {r['msgs'][0]}" if failed and r["msgs"] else ""
        if verdict == "XPASS":
            why = "  listed as an expected failure but passed: remove it from the baseline"
        out.append(f"{verdict:<6} {scen:<48} {r['SUCCESS']}/{r['SUCCESS'] + r['FAILURE']}{extra}{why}")
    if out:
        print("\n".join(out))
    notes = []
    if not_scored & rows.keys():
        notes.append(f"{len(not_scored & rows.keys())} not scored (marked *)")
    if baseline & rows.keys():
        notes.append(f"{sum(1 for s in rows if s in baseline and rows[s]['verdict'] == 'XFAIL')} expected failures")
    if warns:
        notes.append(f"{warns} warnings")
    summary = (f"{a.label}: {passed}/{counted} scenarios passed, {counted_fail} failed; "
               f"{checks_ok}/{checks_all} checks passed{'; ' + ', '.join(notes) if notes else ''}")
    if not rows:
        summary = f"{a.label}: no scenario results found in {a.resultdir}"
    print(summary)
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"summary": summary, "passed": passed, "counted": counted, "failed": counted_fail,
                       "checks_passed": checks_ok, "checks": checks_all, "warnings": warns, "scenarios": rows}, f, indent=1)
    sys.exit(1 if counted_fail or not rows else 0)


if __name__ == "__main__":
    main()
