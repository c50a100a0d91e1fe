#!/usr/bin/env python3
"""Table and JSON for benches/compare/run.sh.

    report.py facts RESULTS_DIR           print machine, corpus and tool facts
    report.py report RESULTS_DIR [JSON]   print the comparison table (and write JSON)
    report.py series RESULTS_DIR [JSON]   print series.sh's table (and write JSON)

RESULTS_DIR holds the tab-separated files run.sh writes: meta.tsv (key value),
status.tsv (tool status version note), raw.tsv (tool rep key value) and
commands.tsv (tool phase command).
"""

import json
import os
import statistics
import sys

TOOL_ORDER = ["hokan", "hokan-base", "restic", "rustic", "borg"]
PHASES = [("backup1", "first backup"), ("backup2", "re-backup"), ("restore", "restore")]


def read_tsv(path, ncols):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            parts = line.split("\t")
            parts += [""] * (ncols - len(parts))
            rows.append(parts[:ncols - 1] + ["\t".join(parts[ncols - 1:])])
    return rows


def load(results):
    meta = dict(read_tsv(os.path.join(results, "meta.tsv"), 2))
    status = {}
    for tool, st, version, note in read_tsv(os.path.join(results, "status.tsv"), 4):
        status[tool] = {"status": st, "version": version, "note": note}
    raw = {}
    for tool, rep, key, value in read_tsv(os.path.join(results, "raw.tsv"), 4):
        raw.setdefault(tool, {}).setdefault(int(rep), {})[key] = value
    commands = {}
    for tool, phase, cmd in read_tsv(os.path.join(results, "commands.tsv"), 3):
        commands.setdefault(tool, {})[phase] = cmd
    return meta, status, raw, commands


def ordered(tools):
    return sorted(tools, key=lambda t: (TOOL_ORDER.index(t) if t in TOOL_ORDER else 99, t))


def human_bytes(n):
    n = float(n)
    for unit in ["B", "KiB", "MiB", "GiB", "TiB"]:
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024


def facts(results):
    meta, status, _, _ = load(results)
    print()
    print("== machine ==")
    print(f"  nproc: {meta.get('nproc', '?')}   memory: {meta.get('mem_total', '?')}   "
          f"cpu: {meta.get('cpu', '?')}   kernel: {meta.get('kernel', '?')}")
    print(f"  load average before the run: {meta.get('load_before', '?')}")
    print("== corpus ==")
    print(f"  {meta.get('corpus', '?')}")
    b = int(meta.get("corpus_bytes", "0") or 0)
    print(f"  {meta.get('corpus_files', '?')} files, {meta.get('corpus_dirs', '?')} directories, "
          f"{meta.get('corpus_symlinks', '?')} symlinks, {b} bytes ({human_bytes(b)}) in files")
    if "corpus_extract_seconds" in meta:
        print(f"  (extracted in {meta['corpus_extract_seconds']} s this run)")
    print(f"  page cache: {meta.get('page_cache', '?')}"
          + ("  -- dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every timed phase"
             if meta.get("page_cache") == "cold" else "  -- page cache warm"))
    print(f"  runs per tool: {meta.get('repeat', '1')} (median reported)")
    print("== tools ==")
    for tool in ordered(status):
        s = status[tool]
        line = f"  {tool:10s} {s['status']:12s} {s['version']}"
        if s["note"]:
            line += f"  [{s['note']}]"
        print(line)
    print(flush=True)


def median(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values)


def num(rep, key):
    v = rep.get(key)
    if v is None:
        return None
    try:
        return float(v)
    except ValueError:
        return None


def summarize(raw):
    """Median per tool of every figure, plus per-run verification notes."""
    out = {}
    for tool, reps in raw.items():
        s = {}
        for phase, _ in PHASES:
            s[f"{phase}_s"] = median([num(r, f"{phase}_s") for r in reps.values()])
            kb = median([num(r, f"{phase}_kb") for r in reps.values()])
            s[f"{phase}_peak_mib"] = None if kb is None else kb / 1024
            errs = [r[f"{phase}_error"] for r in reps.values() if f"{phase}_error" in r]
            if errs:
                s[f"{phase}_error"] = errs
        peaks = [s[f"{p}_peak_mib"] for p, _ in PHASES if s[f"{p}_peak_mib"] is not None]
        s["peak_mib"] = max(peaks) if peaks else None
        b1 = median([num(r, "repo_after_backup1_bytes") for r in reps.values()])
        b2 = median([num(r, "repo_bytes") for r in reps.values()])
        s["repo_after_backup1_mib"] = None if b1 is None else b1 / 2**20
        s["repo_mib"] = None if b2 is None else b2 / 2**20
        s["verify"] = sorted({r.get("verify", "not run") for r in reps.values()})
        if any("init_error" in r for r in reps.values()):
            s["init_error"] = True
        out[tool] = s
    return out


def fmt(v, nd=1):
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{nd}f}" if abs(v) >= 10 else f"{v:.{nd + 1}f}"


def table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = "  ".join(h.ljust(widths[i]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])
                        for i, c in enumerate(r)))


def ratio(other, mine):
    if other is None or mine is None or mine == 0:
        return None
    return other / mine


def report(results, json_path=None):
    meta, status, raw, commands = load(results)
    summary = summarize(raw)
    tools = [t for t in ordered(status) if t in summary]

    print()
    print("== results ==  (wall seconds; peak = max RSS; MiB = 2^20 bytes; "
          f"median of {meta.get('repeat', '1')} run(s); page cache {meta.get('page_cache', '?')})")
    header = ["tool", "backup s", "re-backup s", "restore s", "peak MiB",
              "peak b1/b2/rs MiB", "repo MiB b1", "repo MiB", "restore check"]
    rows = []
    for t in tools:
        s = summary[t]
        per = "/".join(fmt(s[f"{p}_peak_mib"], 0) if s[f"{p}_peak_mib"] is not None else "-"
                       for p, _ in PHASES)
        rows.append([t, fmt(s["backup1_s"]), fmt(s["backup2_s"]), fmt(s["restore_s"]),
                     fmt(s["peak_mib"], 0), per, fmt(s["repo_after_backup1_mib"]),
                     fmt(s["repo_mib"]), "; ".join(s["verify"])])
    for t in ordered(status):
        if status[t]["status"] != "ok":
            rows.append([t] + ["unavailable"] + [""] * (len(header) - 2))
    if rows:
        table(rows, header)
    corpus_bytes = int(meta.get("corpus_bytes", "0") or 0)
    if corpus_bytes:
        print(f"(corpus: {corpus_bytes / 2**20:.1f} MiB in {meta.get('corpus_files', '?')} files)")

    ratios = {}
    if "hokan" in summary:
        h = summary["hokan"]
        print()
        print("== hokan vs others ==  (other / hokan: > 1 means hokan is faster / smaller)")
        header = ["", "backup", "re-backup", "restore", "peak mem", "repo size"]
        rows = []
        for t in tools:
            if t == "hokan":
                continue
            o = summary[t]
            r = {
                "backup1_time": ratio(o["backup1_s"], h["backup1_s"]),
                "backup2_time": ratio(o["backup2_s"], h["backup2_s"]),
                "restore_time": ratio(o["restore_s"], h["restore_s"]),
                "peak_memory": ratio(o["peak_mib"], h["peak_mib"]),
                "repo_size": ratio(o["repo_mib"], h["repo_mib"]),
            }
            ratios[t] = r
            rows.append([f"hokan vs {t}"] + [("n/a" if v is None else f"{v:.2f}x") for v in r.values()])
        if rows:
            table(rows, header)
    elif "hokan" in status:
        print()
        print(f"hokan: {status['hokan']['status']} -- {status['hokan']['note'] or 'no figures'}; "
              "no ratios computed")

    aims = {}
    if "hokan" in summary:
        h = summary["hokan"]
        lines = []
        if "restic" in summary:
            r = ratio(h["repo_mib"], summary["restic"]["repo_mib"])
            aims["repo_hokan_over_restic"] = r
            lines.append(("repository size, hokan / restic", r, "aim <= 0.85"))
        if "hokan-base" in summary:
            b = summary["hokan-base"]
            for phase, name in PHASES:
                r = ratio(h[f"{phase}_s"], b[f"{phase}_s"])
                aims[f"{phase}_time_hokan_over_base"] = r
                lines.append((f"{name} time, hokan / hokan-base", r,
                              "aim <= 1" if phase != "backup2" else ""))
            r = ratio(h["repo_mib"], b["repo_mib"])
            aims["repo_hokan_over_base"] = r
            lines.append(("repository size, hokan / hokan-base", r, ""))
        if lines:
            print()
            print("== aims ==  (hokan / other: below 1 means hokan is faster / smaller)")
            for name, r, aim in lines:
                print(f"  {name:40s} {'n/a' if r is None else f'{r:.3f}'}  {aim}")

    bad = [t for t in tools if any(v.startswith("MISMATCH") or "failed" in v for v in summary[t]["verify"])]
    errs = [(t, k) for t in tools for k in summary[t] if k.endswith("_error")]
    if bad or errs:
        print()
        for t in bad:
            print(f"!!! {t}: RESTORE DID NOT MATCH THE CORPUS: {'; '.join(summary[t]['verify'])}")
        for t, k in errs:
            print(f"!!! {t}: {k.replace('_error', '')} failed: {summary[t][k]}")

    print()
    print("== commands ==")
    for t in ordered(commands):
        for phase in ["init", "backup1", "backup2", "restore"]:
            if phase in commands[t]:
                print(f"  {t:10s} {phase:8s} {commands[t][phase]}")
    print()
    print(f"load average after the run: {meta.get('load_after', '?')} "
          "(other processes on the machine make timings noisy)")

    if json_path:
        doc = {
            "meta": meta,
            "tools": status,
            "commands": commands,
            "runs": {t: {str(k): v for k, v in sorted(reps.items())} for t, reps in raw.items()},
            "median": summary,
            "ratios_other_over_hokan": ratios,
            "aims_hokan_over_other": aims,
        }
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
            f.write("\n")
        print(f"raw figures written to {json_path}")


def series(results, json_path=None):
    """series.sh: raw.tsv holds `tool version key value` rows."""
    meta = dict(read_tsv(os.path.join(results, "meta.tsv"), 2))
    data = {}
    order = []
    for tool, version, key, value in read_tsv(os.path.join(results, "raw.tsv"), 4):
        t = data.setdefault(tool, {"versions": {}, "facts": {}})
        if version == "-":
            t["facts"][key] = value
        else:
            t["versions"].setdefault(version, {})[key] = value
            if version not in order and version not in ("last",):
                order.append(version)
    print()
    print(f"== {meta.get('package', '?')} {meta.get('versions', '')} ==")
    print(f"  {meta.get('files_per_release', '?')} files, "
          f"{human_bytes(meta.get('bytes_per_release', 0) or 0)} in the first release; "
          f"{meta.get('nproc', '?')} x {meta.get('cpu', '?')}; load {meta.get('load_before', '?')}")
    tools = ordered(data)
    summary = {}
    for t in tools:
        vs = [data[t]["versions"].get(v, {}) for v in order]
        logical = sum(int(v.get("logical_bytes", 0)) for v in vs)
        stored = [int(v["stored_bytes"]) for v in vs if "stored_bytes" in v]
        secs = [float(v["backup_s"]) for v in vs if "backup_s" in v]
        complete = len(stored) == len(order)
        summary[t] = {
            "logical_bytes": logical,
            "stored_bytes": stored[-1] if complete else None,
            "stored_after_each": stored,
            "backup_seconds_total": sum(secs) if complete else None,
            "restore_last_s": num(data[t]["versions"].get("last", {}), "restore_s"),
            "verify": data[t]["facts"].get("verify", "not run"),
            "version": data[t]["facts"].get("version", ""),
        }
    base = summary.get("restic", {}).get("stored_bytes")
    header = ["tool", "logical MB", "stored MB", "logical/stored", "stored / restic",
              "backups s", "restore check"]
    rows = []
    for t in tools:
        s = summary[t]
        st = s["stored_bytes"]
        r = ratio(st, base)
        s["stored_over_restic"] = r
        rows.append([t, f"{s['logical_bytes'] / 1e6:.1f}",
                     "n/a" if st is None else f"{st / 1e6:.2f}",
                     "n/a" if not st else f"{s['logical_bytes'] / st:.1f}x",
                     "n/a" if r is None else f"{r:.3f}",
                     fmt(s["backup_seconds_total"]), s["verify"]])
    print()
    table(rows, header)
    print()
    print("stored MB after each release:")
    table([[t] + [f"{b / 1e6:.2f}" for b in summary[t]["stored_after_each"]] for t in tools],
          ["tool"] + order)
    print()
    for t in tools:
        print(f"  {t:10s} {summary[t]['version']}")
    print(f"load average after the run: {meta.get('load_after', '?')}")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump({"meta": meta, "summary": summary, "raw": data}, f, indent=2, sort_keys=True)
            f.write("\n")
        print(f"raw figures written to {json_path}")


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("facts", "report", "series"):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "facts":
        facts(sys.argv[2])
    elif sys.argv[1] == "series":
        series(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        report(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
