"""The ``codedock`` command: a demo, batch grading and its reports, the sandbox images, a
check of every promise, an orphan sweep, kernel autoload, the hub fragment, and the sandbox
service."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import autoload
from .core.errors import CodedockError, InvalidValueError
from .core.limits import LIMIT, Limits
from .engines import ENGINE_ENV, connect
from .engines.cleanup import sweep
from .grading.formats import EXPORTS, FORMATS
from .runner import DEFAULT_IMAGE, run

__all__ = ["main"]

# The limits grade takes from its command line, with their help.
_GRADE_LIMITS = {"timeout": "each case's default wall clock", "memory": "e.g. 100m"}

DEMO_SNIPPETS: Sequence[tuple[str, str, Limits]] = (
    ("print('hello from the sandbox')", "", Limits(timeout=5)),
    ("name = input()\nprint(f'hello, {name}')", "Ada\n", Limits(timeout=5)),
    ("import sys\nprint('about to fail', file=sys.stderr)\nsys.exit(3)", "", Limits(timeout=5)),
    ("while True:\n    pass", "", Limits(timeout=1)),
    ("hog = bytearray(300 * 1024 * 1024)", "", Limits(timeout=10, memory="100m")),
)


def engine_options(pairs: Sequence[str]) -> dict[str, Any]:
    """Engine options from ``KEY=VALUE`` words: each value as JSON, else as a string.

    Raises:
        InvalidValueError: a word has no ``=`` or no key.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not equals or not key.strip():
            raise InvalidValueError("--option", pair, "KEY=VALUE, e.g. timeout=30")
        try:
            options[key.strip()] = json.loads(text)
        except ValueError:
            options[key.strip()] = text
    return options


def _one_line(text: str, width: int = 60) -> str:
    flat = " | ".join(line for line in text.strip().splitlines())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def demo(image: str) -> int:
    """Run a few snippets and the pycodedock API; print one outcome per line."""
    engine = connect()
    engine.ping()
    print(f"engine {engine.address}, image {image}")
    for code, stdin, limits in DEMO_SNIPPETS:
        started = time.monotonic()
        result = run(code, stdin=stdin, limits=limits, image=image, engine=engine)
        took = time.monotonic() - started
        shown = _one_line(result.stdout or result.stderr)
        print(f"{result.describe():<32} {took:6.2f}s  {_one_line(code, 40):<40}  -> {shown}")

    from . import dock

    with tempfile.TemporaryDirectory() as root:
        script = Path(root, "script.py")
        script.write_text("print(sum(int(x) for x in input().split()))\n")
        data = Path(root, "input.txt")
        data.write_text("1 2 3 4\n")
        job = dock.Docker("codedock-demo", str(script), str(data), 5, {"DOCKER_ROOT": root})
        try:
            status = job.run()
            output = Path(job.output_file).read_text()
        finally:
            job.destroy()
        outcome = f"old API dock.Docker.run() -> {status}"
        print(f"{outcome:<32} {'':7}  {'sum of input':<40}  -> {_one_line(output)}")
    return 0


def _autoload(state: str, path: Path) -> int:
    if state == "on":
        changed = autoload.enable(path)
        print(f"autoload {'turned on' if changed else 'was already on'} in {path}")
    elif state == "off":
        changed = autoload.disable(path)
        print(f"autoload {'turned off' if changed else 'was not on'} in {path}")
    else:
        print(f"autoload is {'on' if autoload.is_enabled(path) else 'off'} in {path}")
    return 0


def _printable(name: str) -> str:
    # A student's file name may hold escape sequences that would rewrite the terminal.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def _grade(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .grading.batch import grade

    limits = Limits(
        **{name: getattr(args, name) for name in _GRADE_LIMITS if getattr(args, name) is not None}
    )
    bars: list[tqdm[Any]] = []

    def progress(done: int, total: int) -> None:
        # Made once the cases and the folder have been read, so that a bad one is
        # the only line printed.
        if not bars:
            bars.append(tqdm(total=total, unit="submission", file=sys.stderr, dynamic_ncols=True))
        bars[0].update(done)

    form, record = _grade_record(args.format, args.out)
    # Beside what was asked for: an export's folder holds nothing but its students.
    folder = args.out.with_name(args.out.name + ".history")
    fresh, history, checkers = _regrade(args.cases, record, folder, fresh=args.fresh)
    against = history.run(args.compare) if args.compare is not None else None
    try:
        report = grade(
            args.submissions,
            args.cases,
            record,
            jobs=args.jobs,
            limits=limits,
            image=args.image,
            tag=args.tag,
            fresh=fresh,
            progress=None if args.quiet else progress,
        )
    finally:
        for bar in bars:
            bar.close()
    _keep_run(history, checkers, against)
    where = f"results in {record}"
    if form in EXPORTS:
        from .grading.formats import read_record, write_export

        written = write_export(
            form, read_record(record), args.out, assignment=args.assignment or args.cases.stem
        )
        where += f"; {form} export in {args.out} ({len(written)} file(s))"
    print(
        f"graded {len(report.graded)}, already graded {len(report.skipped)}, "
        f"not graded {len(report.failed)}; {where}"
    )
    if report.untrusted:
        names = ", ".join(repr(name) for name in report.untrusted)
        print(f"  graded again, their rows could not be trusted: {names}", file=sys.stderr)
    for student, why in sorted(report.failed.items()):
        print(f"  not graded: {_printable(student)}: {why}", file=sys.stderr)
    if report.interrupted:
        print("interrupted: run the same command again to grade the rest", file=sys.stderr)
        return 130
    return 1 if report.failed else 0


def _regrade(cases: Path, record: Path, folder: Path, *, fresh: bool) -> tuple[bool, Any, str]:
    """Whether to grade everyone again, the record's history, and the checkers' digest.

    Results already in ``record`` are kept in its history first, and everyone is
    graded again when the cases or a checker changed since.
    """
    from .gradebook.history import History, checkers_digest, read_results
    from .grading.cases import load_cases
    from .grading.records import cases_digest

    loaded = load_cases(cases)
    history = History(record, folder)
    checkers = checkers_digest(loaded)
    if not record.exists():
        return fresh, history, checkers
    runs = history.runs() or [history.keep(None)[0]]
    _, digest = read_results(record)
    why = []
    if digest and digest != cases_digest(loaded):
        why.append("the cases changed")
    if runs[-1].checkers_sha256 not in (None, checkers):
        why.append("a checker changed")
    if why and not fresh:
        print(
            f"{' and '.join(why)} since run {runs[-1].id}: grading everyone again "
            f"(run {runs[-1].id} is kept in {history.folder})",
            file=sys.stderr,
        )
    return fresh or bool(why), history, checkers


def _keep_run(history: Any, checkers: str, against: Any) -> None:
    from .gradebook.history import describe

    if not history.results.exists():
        return
    run, changes = history.keep(checkers, against=against)
    base = against.id if against is not None else run.id - 1
    if base < 1:
        print(f"run {run.id} kept in {history.folder}")
        return
    print(f"run {run.id} kept in {history.folder}; against run {base}: {len(changes)} changed")
    for change in changes:
        print(f"  {_printable(describe(change))}")


def _gradebook(args: argparse.Namespace) -> int:
    from .gradebook.history import History, compare, describe

    if args.action == "history" and args.assignment is None:
        if args.results is None:
            raise InvalidValueError("RESULTS", "", "a results file, or --assignment NAME")
        history = History(args.results)
        runs = history.runs()
        if args.compare:
            old = history.run(args.compare[0])
            new = history.run(args.compare[1]) if len(args.compare) > 1 else runs[-1]
            changes = compare(old, new)
            print(f"run {old.id} -> run {new.id}: {len(changes)} changed")
            for change in changes:
                print(f"  {_printable(describe(change))}")
            return 0
        for run in runs:
            checkers = (run.checkers_sha256 or "unknown")[:12]
            print(
                f"run {run.id}  {run.at}  {len(run.students)} student(s)  cases "
                f"{run.cases_sha256[:12]}  checkers {checkers}  {len(run.changes)} changed"
            )
        if not runs:
            print(f"no runs kept in {history.folder}")
        return 0
    from .gradebook import Gradebook
    from .service.app import db_url_from_config

    url = args.db_url or db_url_from_config(args.config or "")
    with Gradebook(url) as book:
        if args.action == "history":
            return _regrade_history(book, args.assignment, args.compare)
        if args.action == "regrade":
            return _gradebook_regrade(book, args)
        from .gradebook.export import export

        attempts = book.all_attempts(args.assignment)
        newest = book.newest_results(args.assignment)
    form = args.format or (args.out.suffix.lstrip(".").lower() or "csv")
    written = export(
        form, attempts, args.out, assignment=args.assignment, policy=args.policy, newest=newest
    )
    students = len({a.user for a in attempts})
    print(f"{args.policy} attempt of {students} student(s); {form} in {args.out} ({len(written)})")
    return 0


def _regraded_line(result: Any) -> str:
    old = "-" if result.old_score is None else f"{result.old_score:g}/{result.old_max_score:g}"
    if not result.judged:
        return f"{result.user}: {old} -> not judged ({'; '.join(result.why)})"
    line = f"{result.user}: {old} -> {result.score:g}/{result.max_score:g}"
    if not result.why:
        return line + " (unchanged)"
    flips = "; ".join(f"{name}: {a} -> {b}" for name, a, b in result.flipped)
    return f"{line} ({', '.join(result.why)})" + (f"; {flips}" if flips else "")


def _counts(done: Any) -> str:
    """``2 changed`` (``, 1 not judged`` when a checker could not read some output)."""
    changed = sum(1 for r in done.results if r.why and r.judged)
    failed = sum(1 for r in done.results if not r.judged)
    return f"{changed} changed" + (f", {failed} not judged" if failed else "")


def _gradebook_regrade(book: Any, args: argparse.Namespace) -> int:
    from .gradebook.regrade import regrade
    from .grading.assignments import load_assignment
    from .service.app import assignments_dir_from_config, run_defaults_from_config

    folder = args.assignments_dir or assignments_dir_from_config(args.config or "")
    if not folder:
        raise InvalidValueError(
            "assignments_dir", "", "set in --config, or given as --assignments-dir DIR"
        )
    path = Path(folder).expanduser() / args.name
    if not path.is_dir():
        raise InvalidValueError("NAME", args.name, f"an assignment folder in {folder}")
    # Each attempt runs with the limits and image the service recorded for it; an
    # attempt recorded without them, with the service's base defaults.
    defaults, image = run_defaults_from_config(args.config or "")
    done = regrade(
        book,
        load_assignment(path),
        policy=args.policy,
        against=args.compare,
        jobs=args.jobs,
        image=args.image,
        defaults=defaults,
        default_image=image,
    )
    base = "the recorded attempts" if done.compared_with == 0 else f"regrade {done.compared_with}"
    print(
        f"regrade {done.number} of {done.assignment}: {len(done.results)} student(s), "
        f"{args.policy} attempt each; against {base}: {_counts(done)}"
    )
    for result in done.results:
        print(f"  {_printable(_regraded_line(result))}")
    return 0


def _regrade_history(book: Any, name: str, pair: Sequence[int] | None) -> int:
    regrades = book.regrades(name)
    if pair:
        from .gradebook.export import choose
        from .gradebook.history import compare, describe
        from .gradebook.regrade import base_runs, not_judged_in

        chosen = choose(book.all_attempts(name), regrades[-1].policy if regrades else "best")
        old_number, old = base_runs(book, name, chosen, pair[0])
        new_number, new = base_runs(book, name, chosen, pair[1] if len(pair) > 1 else None)
        # A student either side could not judge is said so, not compared through
        # the recorded attempt that stands in for them.
        said: dict[str, list[str]] = {}
        for number in sorted({old_number, new_number}):
            for user, why in not_judged_in(book, name, number).items():
                if user in old:
                    said.setdefault(user, []).append(f"not judged in regrade {number} ({why})")
        unjudged = {user: "; ".join(lines) for user, lines in said.items()}
        changes = [
            c for user in sorted(old) if user not in unjudged for c in compare(old[user], new[user])
        ]
        label = {0: "the recorded attempts"}
        print(
            f"{label.get(old_number, f'regrade {old_number}')} -> "
            f"{label.get(new_number, f'regrade {new_number}')}: {len(changes)} changed"
            + (f", {len(unjudged)} not judged" if unjudged else "")
        )
        for change in changes:
            print(f"  {_printable(describe(change))}")
        for user in sorted(unjudged):
            print(f"  {_printable(f'{user}: {unjudged[user]}')}")
        return 0
    for done in regrades:
        print(
            f"regrade {done.number}  {done.at.isoformat(timespec='seconds')}  {done.policy}  "
            f"{len(done.results)} student(s)  cases {done.cases_sha256[:12]}  checkers "
            f"{done.checkers_sha256[:12]}  {_counts(done)} against "
            + ("the attempts" if done.compared_with == 0 else f"regrade {done.compared_with}")
        )
    if not regrades:
        print(f"no regrades of {name} in the gradebook")
    return 0


def _add_gradebook_parser(commands: Any) -> None:
    from .gradebook import POLICIES

    parser = commands.add_parser(
        "gradebook",
        help="export and regrade the service's gradebook; list and compare runs and regrades",
        description="export: the best (or last) attempt per student at an assignment, from "
        "the database of the service's db_url; after a regrade, its newest scores. regrade: "
        "each student's best (or last) attempt run again against the assignment's cases "
        "as they are now, kept beside the old results. history: the runs of codedock "
        "grade kept beside a results file, or an assignment's regrades, and what changed "
        "between two of them.",
    )
    actions = parser.add_subparsers(dest="action", required=True)

    def database(action: Any) -> None:
        action.add_argument(
            "--config", metavar="FILE", help="the service's config (as codedock serve)"
        )
        action.add_argument(
            "--db-url", metavar="URL", help="the database itself, instead of --config"
        )

    out = actions.add_parser(
        "export",
        help="the attempt standing for each student (the newest regrade's scores, if any)",
    )
    out.add_argument("--assignment", required=True, metavar="NAME")
    out.add_argument("--format", choices=FORMATS, help="csv, json or an export (from --out)")
    out.add_argument("--out", type=Path, required=True, metavar="PATH")
    database(out)
    out.add_argument("--policy", choices=POLICIES, default="best", help="best (default) or last")
    again = actions.add_parser(
        "regrade",
        help="run each student's attempt again against the assignment's current cases",
        description="Runs each student's best (or, with --policy last, last) attempt at "
        "NAME again on the local engine, against the cases and checkers in the service's "
        "assignments_dir now. The recorded attempts, and the students' attempt counts, "
        "stay as they are; the new results are kept beside them, and the export uses the "
        "newest. Prints per student the old and new score, the cases that flipped, and why.",
    )
    again.add_argument(
        "name", metavar="NAME", help="the assignment: its folder's name in assignments_dir"
    )
    database(again)
    again.add_argument(
        "--assignments-dir", metavar="DIR", help="the assignments, instead of --config's"
    )
    again.add_argument(
        "--policy", choices=POLICIES, default="best", help="best (default) or last attempt"
    )
    again.add_argument(
        "--compare",
        type=int,
        metavar="N",
        help="compare with regrade N (0: the recorded attempts; default: the newest regrade)",
    )
    again.add_argument("--jobs", type=int, default=4, help="attempts run at once (4)")
    again.add_argument(
        "--image",
        default=None,
        help="image every attempt runs in (default: the one each ran in, as the service recorded)",
    )
    history = actions.add_parser(
        "history", help="the runs kept beside a results file, or an assignment's regrades"
    )
    history.add_argument("results", type=Path, metavar="RESULTS", nargs="?")
    history.add_argument(
        "--assignment", metavar="NAME", help="list NAME's regrades in the gradebook instead"
    )
    database(history)
    history.add_argument(
        "--compare",
        type=int,
        nargs="+",
        metavar="RUN",
        help="run A against B (default: the last); with --assignment, regrade numbers, "
        "0 being the recorded attempts",
    )


def _grade_record(form: str | None, out: Path) -> tuple[str, Path]:
    """The format asked for, and the record the batch keeps (and resumes from).

    For ``csv`` and ``json`` the record is ``--out`` itself. For an export, the
    batch keeps its JSON record beside it (``DIR/codedock-results.json`` in the
    folder of a per-submission format, ``NAME.json`` beside ``NAME.csv`` for
    Canvas), and the export is written from it.
    """
    suffix = out.suffix.lower()
    if form is None:
        form = suffix.lstrip(".") if suffix in (".csv", ".json") else "csv"
    if form in ("csv", "json"):
        if suffix != f".{form}":
            raise InvalidValueError("--out", str(out), f"a path ending in .{form}")
        return form, out
    if form == "canvas":
        if suffix != ".csv":
            raise InvalidValueError("--out", str(out), "a path ending in .csv for Canvas")
        return form, out.with_suffix(".json")
    if suffix in (".csv", ".json"):
        raise InvalidValueError("--out", str(out), f"a folder for {form}: one results.json each")
    return form, out / "codedock-results.json"


def _similarity(args: argparse.Namespace) -> int:
    from .grading.similarity import THRESHOLD, compare, fingerprint, report, starter_hashes
    from .grading.submissions import find_submissions

    starter = frozenset[int]()
    if args.starter is not None:
        try:
            starter = starter_hashes(args.starter.read_text(encoding="utf-8", errors="replace"))
        except OSError as exc:
            raise InvalidValueError("--starter", str(args.starter), f"readable ({exc})") from None
    found = find_submissions(args.submissions)
    skipped = [(s.student, s.problem) for s in found if s.problem]
    prints = [
        fingerprint(s.student, s.code.decode("utf-8", errors="replace"), starter=starter)
        for s in found
        if not s.problem
    ]
    pairs = compare(prints)
    text = report(
        prints,
        pairs,
        shown=args.pairs,
        skipped=skipped,
        starter=args.starter.name if args.starter else None,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    flagged = [p for p in pairs if p.similarity >= THRESHOLD]
    print(
        f"compared {len(prints)} submissions, {len(pairs)} pairs; {len(flagged)} at or above "
        f"{THRESHOLD:.0%}; report in {args.out}"
    )
    for pair in flagged[:10]:
        print(f"  {pair.similarity:4.0%}  {pair.a} · {pair.b}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .grading.classreport import class_report
    from .grading.formats import read_record

    graded = read_record(args.results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        class_report(graded, title=args.title or f"Class report: {args.results.stem}"),
        encoding="utf-8",
    )
    print(f"{len(graded)} submissions; report in {args.out}")
    return 0


def _add_similarity_parsers(commands: Any) -> None:
    parser = commands.add_parser(
        "similarity",
        help="rank a class's submissions by how alike they are; an HTML report",
        description="Compare every pair of submissions in SUBMISSIONS (as codedock grade "
        "finds them), offline: names normalised, comments and layout ignored, the starter "
        "code left out. Writes one HTML page: the pairs ranked, the top ones side by side "
        "with the matching lines marked.",
    )
    parser.add_argument("submissions", type=Path, metavar="SUBMISSIONS", help="the folder")
    parser.add_argument("--starter", type=Path, metavar="FILE", help="the code students got")
    parser.add_argument("--out", type=Path, required=True, metavar="PATH", help="the report")
    parser.add_argument(
        "--pairs", type=int, default=20, metavar="N", help="pairs shown side by side (20)"
    )
    report = commands.add_parser(
        "report",
        help="one HTML page of a class's results: scores, pass rates, slowest, hungriest",
        description="From the JSON record codedock grade writes (--out PATH.json, or the "
        "codedock-results.json kept with an export): the score distribution, the pass rate "
        "per case, the slowest and the most memory-hungry submissions, and the late ones.",
    )
    report.add_argument("results", type=Path, metavar="RESULTS", help="the JSON record")
    report.add_argument("--out", type=Path, required=True, metavar="PATH", help="the page")
    report.add_argument("--title", help="the page's title")


def _image(args: argparse.Namespace) -> int:
    from .engines.docker_images import IMAGES, STANDARD, ImageBuilder
    from .supervisor import SUPERVISOR_HASH, baked_files

    builder = ImageBuilder(baked=(baked_files(), SUPERVISOR_HASH))
    if args.action == "build":
        builder.build(STANDARD, force=args.force, offline=args.offline, base=args.base)
        if args.sci:
            # --base is the standard image's: the sci image needs Debian's python3.
            builder.build(IMAGES["pybuntu-sci"], force=args.force, offline=args.offline)
        return 0
    rows = builder.list()
    if not rows:
        print("no sandbox images on this engine; build them with: codedock image build [--sci]")
        return 0
    width = max(len(row.name) for row in rows)
    for row in rows:
        state = "current" if row.current else "outdated: codedock image build rebuilds it"
        version = f"built for {row.version}" if row.version else "built for an older version"
        size = f"{row.size / 2**20:,.0f} MiB"
        print(f"{row.name:<{width}}  {size:>9}  {version}  {state}")
    return 0


def _add_image_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "image",
        help="build the sandbox images from the files in this package, or list them",
        description="build: codedock/pybuntu (and with --sci codedock/pybuntu-sci), from the "
        "Dockerfiles shipped in the package; with no registry, on a Debian base made by "
        "debootstrap from this machine's apt mirror (as root). Nothing is rebuilt when an "
        "image built from the same files exists. list: the sandbox images on the engine, "
        "their sizes and the package version each was built for.",
    )
    parser.add_argument("action", choices=["build", "list"])
    parser.add_argument("--sci", action="store_true", help="also build codedock/pybuntu-sci")
    parser.add_argument(
        "--force", action="store_true", help="build even when a current image exists"
    )
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--offline", action="store_true", help="build on a debootstrap base at once, no registry"
    )
    how.add_argument(
        "--base", metavar="IMAGE", help="build codedock/pybuntu on this image (with python3)"
    )


def _hub_config(show: bool) -> int:
    from .core.shipped import hub_fragment

    if show:
        sys.stdout.write(hub_fragment().read_text())
    else:
        print(hub_fragment())
    return 0


def _doctor(image: str) -> int:
    from .doctor import all_hold, diagnose, report

    findings = diagnose(image=image)
    print(report(findings))
    return 0 if all_hold(findings) else 1


def _add_grade_parser(commands: Any) -> None:
    from .grading.submissions import ANSWER_TAG

    parser = commands.add_parser(
        "grade",
        help="check every submission in a folder against test cases; write CSV or JSON",
        description="Check every submission in SUBMISSIONS (NAME.py, NAME/main.py, or "
        f"NAME.ipynb with its answer cells tagged {ANSWER_TAG!r}) against the cases in "
        "FILE, each submission in fresh containers of its own. The results are written after each "
        "submission; running the same command again skips the ones already graded.",
    )
    parser.add_argument("submissions", type=Path, metavar="SUBMISSIONS", help="the folder")
    parser.add_argument(
        "--cases", type=Path, required=True, metavar="FILE", help="a .json or .yaml file"
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="PATH",
        help="results: PATH.csv or PATH.json; a folder for gradescope and prairielearn",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="csv or json (by default from --out), or an export: gradescope or "
        "prairielearn (DIR/STUDENT/results.json each), canvas (a gradebook CSV)",
    )
    parser.add_argument(
        "--assignment", metavar="NAME", help="Canvas's assignment column (default: the cases' name)"
    )
    parser.add_argument(
        "--jobs", type=int, default=4, metavar="N", help="submissions at once (default 4)"
    )
    for name, help in _GRADE_LIMITS.items():
        limit = LIMIT[name]
        parser.add_argument(*limit.flags, dest=name, metavar=limit.metavar, help=help)
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="image to run in")
    parser.add_argument(
        "--tag", default=ANSWER_TAG, help=f"notebooks' answer cell tag (default {ANSWER_TAG!r})"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="grade everyone again, whatever --out holds"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--compare", type=int, metavar="RUN", help="show changes against this kept run"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``codedock`` console script."""
    parser = argparse.ArgumentParser(prog="codedock", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="run a few snippets and print their outcomes")
    demo_parser.add_argument("--image", default=DEFAULT_IMAGE, help="image to run in")
    sweep_parser = commands.add_parser(
        "sweep",
        help="remove sandbox containers whose owner is gone or whose lifetime has passed",
    )
    sweep_parser.add_argument(
        "--dry-run", action="store_true", help="only list what would be removed"
    )
    sweep_parser.add_argument(
        "--engine",
        metavar="NAME",
        help=f"the engine whose sandboxes to sweep (default: ${ENGINE_ENV}, else docker)",
    )
    sweep_parser.add_argument(
        "--option",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="an engine option, as the kernels set it in engine_options (a JSON value, "
        "else a string), e.g. base_url=unix:///run/docker.sock; repeat for more",
    )
    commands.add_parser(
        "serve",
        help="run the sandbox service for a multi-user hub (codedock serve --help-all)",
        add_help=False,
    )
    _add_grade_parser(commands)
    _add_gradebook_parser(commands)
    _add_similarity_parsers(commands)
    _add_image_parser(commands)
    doctor_parser = commands.add_parser(
        "doctor",
        help="check each promise of a sandbox on this machine: one row each, ok or why not",
    )
    doctor_parser.add_argument("--image", default=DEFAULT_IMAGE, help="image to check")
    hub_parser = commands.add_parser(
        "hub-config",
        help="print the path of the JupyterHub fragment shipped in this package",
        description="Print the path of the JupyterHub config fragment that registers the "
        "sandbox service, for load_subconfig() in jupyterhub_config.py; with --print, the "
        "fragment itself.",
    )
    hub_parser.add_argument("--print", dest="show", action="store_true", help="print the file")
    autoload_parser = commands.add_parser(
        "autoload", help="make IPython kernels load the extension at start, or stop that"
    )
    autoload_parser.add_argument("state", choices=["on", "off", "status"])
    where = autoload_parser.add_mutually_exclusive_group()
    where.add_argument(
        "--scope",
        choices=autoload.SCOPES,
        default="env",
        help="env: this environment's kernels; system: the machine's (/usr/local/etc/ipython "
        "or /etc/ipython); user: your profile",
    )
    where.add_argument("--path", type=Path, help="a kernel config file to edit instead")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        # The service is a traitlets application with its own command line; it is
        # imported only here, so that the rest of the core never loads a web server.
        from .service import main as serve

        return serve(argv[1:])
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return demo(args.image)
        if args.command == "grade":
            return _grade(args)
        if args.command == "gradebook":
            return _gradebook(args)
        if args.command == "similarity":
            return _similarity(args)
        if args.command == "report":
            return _report(args)
        if args.command == "image":
            return _image(args)
        if args.command == "doctor":
            return _doctor(args.image)
        if args.command == "hub-config":
            return _hub_config(args.show)
        if args.command == "autoload":
            return _autoload(args.state, args.path or autoload.config_path(args.scope))
        engine = connect(args.engine, **engine_options(args.option))
        orphans = sweep(engine, dry_run=args.dry_run)
        verb = "would remove" if args.dry_run else "removed"
        for orphan in orphans:
            print(f"{verb} {orphan.id[:12]} ({orphan.engine or 'engine unknown'}): {orphan.reason}")
        print(f"{verb} {len(orphans)} orphaned sandbox container(s)")
        return 0
    except CodedockError as exc:
        print(f"codedock: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(
            f"codedock: cannot write {exc.filename}: permission denied (try as root)",
            file=sys.stderr,
        )
        return 1
