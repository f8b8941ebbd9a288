"""The ``mlsec`` command.

    mlsec grade ex0                        grade exercises/ex0_security_metrics.py
    mlsec grade ex0 --path my_ex0.py       grade another file
    mlsec grade ex0 --solutions            grade the reference solution (must score full marks)
    mlsec grade ex1 --check pgd_step_increases_the_loss
                                           run only the named check(s), to iterate on one part
    mlsec grade --all --path submissions/alice
                                           grade every exercise found in a folder
    mlsec stubs [--check]                  regenerate exercises/*.py from solutions/*.py

    mlsec grade ex0 --path my.py --format gradescope --output results.json
                                           the report as JSON (--format json) or Gradescope's results
    mlsec grade --batch submissions [--jobs N] [--format csv|json|gradescope] [--output FILE]
                [--exercise EX ...] [--no-sandbox]
                                           grade a class (one folder per student), in the sandbox;
                                           a gradebook, feedback/<student>.md; a rerun grades only changes
    mlsec gradescope ex0 [--output autograder.zip] [--sandbox]
                                           Gradescope's autograder bundle for an exercise
    mlsec release OUTDIR                   the student copy of the course, without the solutions
    mlsec notebook run NOTEBOOK...         execute lessons top to bottom and save them clean
    mlsec notebook check [NOTEBOOK...]     prose numbers no cell backs, machine paths, saved noise

    mlsec serve [--model-dir DIR] [--secret-file F] [--host 127.0.0.1] [--port 8000] [--tls | --cert C --key K]
                                           serve a signed model over HTTP(S) (default: the demo model)
    mlsec token --sub NAME --role {user,admin} [--secret-file F | --private-key K] [--models a,b] [--ttl S]
                                           print a JWT for the server (HS256, or EdDSA with --private-key)
    mlsec sign DIR [--key K]               write DIR/MANIFEST.json and its Ed25519 signature
    mlsec verify DIR [--public-key P]      check DIR against its signed manifest
    mlsec audit verify LOG [--key-file F | --secret-file F]
                                           check the audit log's HMAC chain
    mlsec federated [--clients 4] [--rounds 3] [--scheme dirichlet]
                                           lesson 06's FedAvg as a real deployment: a Flower
                                           SuperLink and SuperNodes as processes on 127.0.0.1

Without --secret-file, --key, --public-key or --key-file the development keys in the cache are used.

Exit codes: 0 at full marks (or stubs up to date, or a valid signature or log), 1 otherwise,
2 for a usage error.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import course, stubs
from .grading import batch, exercises, gradescope, release, report, runner


def build_parser():
    parser = argparse.ArgumentParser(prog="mlsec", description="mlsec-lessons: grade exercises, make stubs, serve models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    grade = commands.add_parser("grade", help="grade an exercise (or --all of them)",
                                description=f"Known exercises: {', '.join(exercises.known())}.")
    grade.add_argument("exercise", nargs="?", help="ex0 or ex0_security_metrics")
    grade.add_argument("--all", action="store_true", help="grade every known exercise")
    grade.add_argument("--path", type=Path,
                       help="the file to grade; with --all, the folder that holds the files")
    grade.add_argument("--solutions", action="store_true", help="grade the reference solutions")
    grade.add_argument("--timeout", type=float, default=None, metavar="S",
                       help="seconds for one exercise (default: the exercise's own limit, 60 s unless it says)")
    grade.add_argument("--check", action="append", metavar="NAME",
                       help="run only this check, or one case of a parametrized one, by the name the report "
                            "shows (repeat for more); the error for a wrong name lists them")
    grade.add_argument("--format", choices=["text", "json", "gradescope", "csv"], default=None,
                       help="text (default), json (the report), gradescope (its results.json); "
                            "with --batch: csv (default), json or gradescope")
    grade.add_argument("--output", type=Path, metavar="FILE",
                       help="write the result there (default: print it; with --batch: <DIR>-grades/)")
    batch_options = grade.add_argument_group("a class (--batch)")
    batch_options.add_argument("--batch", type=Path, metavar="SUBMISSIONS_DIR",
                               help="grade a class: one folder per student, named by the student's id")
    batch_options.add_argument("--jobs", type=int, default=None, metavar="N",
                               help="groups of students graded at the same time, each group's files of an exercise "
                                    "by one judge (default: half the CPU cores)")
    batch_options.add_argument("--exercise", dest="exercises", action="extend", nargs="+", metavar="EX",
                               help="grade only these exercises (default: every one handed in)")
    isolation = grade.add_mutually_exclusive_group()
    isolation.add_argument("--sandbox", action="store_true", default=None,
                           help="run the student's code in the sandbox (the default with --batch)")
    isolation.add_argument("--no-sandbox", dest="sandbox", action="store_false",
                           help="with --batch: grade without the sandbox")
    grade.set_defaults(run=run_grade, parser=grade)

    stub = commands.add_parser("stubs", help="regenerate exercises/*.py from solutions/*.py")
    stub.add_argument("--check", action="store_true",
                      help="change nothing; exit 1 and list the stubs that are out of date")
    stub.set_defaults(run=run_stubs, parser=stub)

    hint = commands.add_parser("hint", help="show both hints for a check or a function of an exercise",
                               description="Hint 1 is the stub's: the idea and the pitfall. Hint 2 is closer "
                                           "to the code: try on your own first.")
    hint.add_argument("exercise", help="ex0 or ex0_security_metrics")
    hint.add_argument("name", nargs="?", help="a check as the grader prints it (asr_ignores_already_misclassified) "
                                              "or a function (perturb, AdversarialDefense.perturb); leave it out "
                                              "to list the names that have hints")
    hint.set_defaults(run=run_hint, parser=hint)

    notebook = commands.add_parser("notebook", help="run a lesson and save it clean, or check the saved lessons",
                                   description="run: execute each notebook top to bottom and save it without "
                                               "widget state, timestamps or progress bars. check: list prose "
                                               "numbers no cell backs, machine paths and saved noise.")
    notebook.add_argument("action", choices=["run", "check"])
    notebook.add_argument("paths", nargs="*", type=Path,
                          help="notebooks (default for check: every lesson and exercise notebook)")
    notebook.set_defaults(run=run_notebook, parser=notebook)
    _add_deploy_commands(commands)

    federated = commands.add_parser("federated", help="run FedAvg on a local Flower SuperLink and SuperNodes")
    federated.add_argument("--clients", type=int, default=4, help="SuperNodes to start (default: 4)")
    federated.add_argument("--rounds", type=int, default=3, help="FedAvg rounds (default: 3)")
    federated.add_argument("--scheme", choices=["dirichlet", "iid"], default="dirichlet",
                           help="how digits is split among the clients (default: dirichlet, non-IID)")
    federated.add_argument("--print-commands", action="store_true",
                           help="print the commands for each process (to run them on several machines) and exit")
    federated.set_defaults(run=run_federated, parser=federated)
    _add_instructor_commands(commands)
    return parser


def _add_instructor_commands(commands):
    bundle = commands.add_parser("gradescope", help="build a Gradescope autograder zip for an exercise",
                                 description="Build the autograder bundle (setup.sh, run_autograder and the "
                                             "course source) that grades EX on Gradescope.")
    bundle.add_argument("exercise", help="ex0 or ex0_security_metrics")
    bundle.add_argument("--output", type=Path, default=None, metavar="ZIP",
                        help="the zip to write (default: autograder-<exercise>.zip)")
    bundle.add_argument("--sandbox", action="store_true",
                        help="grade in the sandbox (setup.sh installs bubblewrap; the image must allow namespaces)")
    bundle.set_defaults(run=run_gradescope, parser=bundle)

    release = commands.add_parser("release", help="write the student copy of the course (no solutions)",
                                  description="Copy the course without solutions/ and without the tests, "
                                              "benchmarks and lessons that read them.")
    release.add_argument("outdir", type=Path, help="a new or empty folder")
    release.set_defaults(run=run_release, parser=release)


def _add_deploy_commands(commands):
    serve = commands.add_parser("serve", help="serve a signed model over HTTP(S)",
                                description="Serve a signed model (default: the demo digits model) with "
                                            "JWT auth, rate limits, input validation and an audit log.")
    serve.add_argument("--model-dir", type=Path,
                       help="a signed model directory, or a folder of them (default: the course's demo model)")
    serve.add_argument("--secret-file", type=Path, help="the HS256 JWT secret (default: the development secret)")
    serve.add_argument("--public-key", type=Path, help="the Ed25519 key models must be signed with")
    serve.add_argument("--jwt-public-key", type=Path,
                       help="accept EdDSA tokens verified with this Ed25519 public key instead of HS256 ones")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--tls", action="store_true", help="HTTPS with a generated self-signed certificate")
    serve.add_argument("--cert", type=Path, help="HTTPS with this certificate (PEM); needs --key")
    serve.add_argument("--key", type=Path, help="the private key (PEM) of --cert")
    serve.add_argument("--audit-log", type=Path, help="the JSONL audit log (default: in the cache)")
    serve.add_argument("--audit-key-file", type=Path, help="the audit log's HMAC key")
    serve.add_argument("--model-key-file", type=Path,
                       help="AES key for a model encrypted at rest (default: $MLSEC_MODEL_KEY if set)")
    serve.add_argument("--rate", type=float, default=20.0, help="requests per second per token subject")
    serve.add_argument("--burst", type=int, default=40, help="burst size per token subject")
    serve.add_argument("--max-token-lifetime", type=float, default=86400.0,
                       help="refuse tokens that live longer than this, in seconds (default: a day)")
    serve.add_argument("--client-rate", type=float, default=100.0,
                       help="requests per second per client address, before authentication (default: 100)")
    serve.add_argument("--client-burst", type=int, default=200, help="burst size per client address")
    serve.add_argument("--body-timeout", type=float, default=10.0,
                       help="seconds a request body may take to arrive (default: 10)")
    serve.add_argument("--header-timeout", type=float, default=10.0,
                       help="seconds a connection may take to send a request's line and headers (default: 10)")
    serve.add_argument("--max-header-bytes", type=int, default=65536,
                       help="request line and headers at most this long (default: 64 KiB)")
    serve.add_argument("--max-connections", type=int, default=64, help="open connections at most (default: 64)")
    serve.set_defaults(run=run_serve, parser=serve)

    token = commands.add_parser("token", help="print a JWT for the model server")
    which = token.add_mutually_exclusive_group()
    which.add_argument("--secret-file", type=Path, help="the HS256 secret (default: the development secret)")
    which.add_argument("--private-key", type=Path, help="sign with EdDSA and this Ed25519 private key instead")
    token.add_argument("--sub", required=True, help="who the token is for")
    token.add_argument("--role", required=True, choices=["user", "admin"])
    token.add_argument("--models", help="comma-separated model names the token may use (default: all)")
    token.add_argument("--ttl", type=int, default=900, help="lifetime in seconds (default: 900)")
    token.add_argument("--aud", default=None, help="audience (default: the server's)")
    token.add_argument("--iss", default=None, help="issuer (default: the course's)")
    token.set_defaults(run=run_token, parser=token)

    sign = commands.add_parser("sign", help="sign a model directory (MANIFEST.json + MANIFEST.sig)")
    sign.add_argument("dir", type=Path)
    sign.add_argument("--key", type=Path, help="Ed25519 private key (default: the development key)")
    sign.set_defaults(run=run_sign, parser=sign)

    verify = commands.add_parser("verify", help="verify a signed model directory; exit 1 if anything changed")
    verify.add_argument("dir", type=Path)
    verify.add_argument("--public-key", type=Path, help="Ed25519 public key (default: the development key)")
    verify.set_defaults(run=run_verify, parser=verify)

    audit = commands.add_parser("audit", help="audit-log tools")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    check = audit_commands.add_parser("verify", help="check the log's HMAC chain; exit 1 at the first bad entry")
    check.add_argument("log", type=Path)
    which = check.add_mutually_exclusive_group()
    which.add_argument("--key-file", type=Path, help="the HMAC key, if the server was given --audit-key-file")
    which.add_argument("--secret-file", type=Path,
                       help="derive the key from this JWT secret, as the server does (default: the development secret)")
    check.set_defaults(run=run_audit_verify, parser=check)


def run_grade(args):
    parser = args.parser  # errors show the usage of `mlsec grade`
    if args.timeout is not None and args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout:g}")
    if args.batch is not None:
        return run_batch(args)
    for given, option in [(args.jobs is not None, "--jobs"), (args.exercises, "--exercise"),
                          (args.sandbox is False, "--no-sandbox")]:
        if given:
            parser.error(f"{option} goes with --batch")
    if args.all == bool(args.exercise):
        parser.error("name one exercise, or give --all or --batch SUBMISSIONS_DIR")
    if args.solutions and args.path:
        parser.error("--solutions grades solutions/; it does not take --path")
    fmt = args.format or "text"
    if fmt == "csv":
        parser.error("--format csv is a class's gradebook: it goes with --batch")
    options = _sandbox_option(args.sandbox, parser)
    if args.all:
        if args.check:
            parser.error("--check names checks of one exercise; it does not go with --all")
        if fmt != "text" or args.output:
            parser.error("--format and --output go with one exercise, or with --batch; not with --all")
        return grade_all(args.path, args.solutions, args.timeout, **options)
    start = time.monotonic()
    try:
        name = exercises.resolve(args.exercise)
        result = runner.grade(name, args.path, args.solutions, args.timeout, checks=args.check, **options)
    except ValueError as e:
        parser.error(str(e))
    except RuntimeError as e:  # the sandbox is not available here: the error says what is missing
        print(f"mlsec grade: error: {e}", file=sys.stderr)
        return 2
    seconds = time.monotonic() - start
    if fmt == "text" and args.output is None:
        print(result)
    else:
        if args.output is not None:
            print(result)  # the table for a person (or Gradescope's log); the file for a program
        _write_result(result, fmt, seconds, args.output)
    return 0 if result.full_marks else 1


def _sandbox_option(sandbox, parser):
    """``{"sandbox": True}`` for --sandbox; an error when this grader has none."""
    if not sandbox:
        return {}
    if not batch.has_sandbox():
        parser.error("--sandbox: this version of the grader has no sandbox")
    return {"sandbox": True}


def _write_result(result, fmt, seconds, output):
    """One report as text, JSON (:func:`batch.as_dict`) or Gradescope's results, to ``output`` or stdout."""
    if fmt == "text":
        text = result.table() + "\n"
    else:
        data = (gradescope.results_json(result, seconds) if fmt == "gradescope"
                else {**batch.as_dict(result, seconds), "grader_version": batch.grader_version()})
        text = json.dumps(data, indent=1) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")


def run_batch(args):
    """``mlsec grade --batch DIR``: the whole class; 0 when every student was graded, 2 for bad input."""
    parser = args.parser
    if args.exercise or args.all or args.path or args.solutions or args.check:
        parser.error("--batch grades every student's folder: it takes --exercise EX, "
                     "not an exercise, --all, --path, --solutions or --check")
    if args.format == "text":
        parser.error("--batch writes --format csv, json or gradescope")
    jobs = args.jobs if args.jobs is not None else max(1, (os.cpu_count() or 2) // 2)
    try:
        summary = batch.grade_class(args.batch, args.exercises, jobs, args.output, args.format or "csv",
                                    sandbox=args.sandbox is not False, timeout=args.timeout)
    except batch.BatchError as e:
        print(f"mlsec grade: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlsec grade: interrupted; the grades so far are kept: run the same command to go on",
              file=sys.stderr)
        return 130
    print(f"{len(summary.students)} students, {summary.graded} files graded, {summary.reused} unchanged since "
          f"the last run\ngradebook: {summary.gradebook}\nfeedback:  {summary.feedback}/"
          + (f"\n{args.format}:  {summary.output}" if summary.output != summary.gradebook else ""))
    return 0


def grade_all(folder, solutions, timeout, **options):
    """Grade every known exercise in ``folder``; a file that is missing scores 0."""
    if folder is None:
        folder = course.repo_root() / ("solutions" if solutions else "exercises")
    if not Path(folder).is_dir():
        print(f"mlsec grade: error: {folder} is not a folder", file=sys.stderr)
        return 2
    reports = []
    for name in exercises.known():
        path = Path(folder) / f"{name}.py"
        try:
            if path.is_file():
                reports.append(runner.grade(name, path, timeout=timeout, **options))
            else:  # every check fails, and the points still count in the total
                reports.append(batch.missing_report(name, path, **options))
        except RuntimeError as e:  # no sandbox here
            print(f"mlsec grade: error: {e}", file=sys.stderr)
            return 2
        print(reports[-1], end="\n\n")
    print(f"summary for {folder}")
    print(report.summary(reports))
    return 0 if all(r.full_marks for r in reports) else 1


def run_gradescope(args):
    try:
        name = exercises.resolve(args.exercise)
        path = gradescope.bundle(name, args.output or Path(f"autograder-{name}.zip"), sandbox=args.sandbox)
    except ValueError as e:
        print(f"mlsec gradescope: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}: upload it as the autograder of {name} (students submit {name}.py)")
    return 0


def run_release(args):
    try:
        left_out = release.build(args.outdir)
    except release.ReleaseError as e:
        print(f"mlsec release: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote the student release to {args.outdir}; left out {len(left_out)} files (see RELEASE.md)")
    return 0


def run_stubs(args):
    root = course.repo_root()
    if args.check:
        stale = stubs.outdated(root)
        for path in stale:
            print(f"{path.relative_to(root)} differs from what solutions/{path.name} generates")
        if stale:
            print("run `make stubs` to regenerate them")
        return 1 if stale else 0
    for path in stubs.write(root):
        print(f"wrote {path.relative_to(root)}")
    return 0


def run_hint(args):
    from .grading import hints

    try:
        print(hints.listing(args.exercise) if args.name is None else hints.explain(args.exercise, args.name))
    except ValueError as e:  # an unknown exercise or name: one line, and the usage error's exit code
        print(f"mlsec hint: error: {e}", file=sys.stderr)
        return 2
    return 0


def run_notebook(args):
    from . import notebook_hygiene

    paths = args.paths
    if not paths:
        if args.action == "run":
            args.parser.error("name the notebook(s) to run")
        root = course.repo_root()
        paths = sorted((root / "notebooks").glob("*.ipynb")) + sorted((root / "exercises").glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        args.parser.error(f"no such notebook: {', '.join(missing)}")
    report = {}
    for path in paths:
        if args.action == "run":
            started = time.perf_counter()
            found = notebook_hygiene.execute(path)
            print(f"ran {path} in {time.perf_counter() - started:.1f} s")
            if found:
                report[str(path)] = found
        else:
            report.update(notebook_hygiene.check([path]))
    for path, found in report.items():
        print(f"{path}:", *(f"  {line}" for line in found), sep="\n")
    return 1 if report else 0


def _reports_errors(run):
    """A bad key, file or setting (a ValueError) or a bad signature (an IntegrityError, an MLSecError)
    is a message and exit 1."""
    from .errors import MLSecError

    def wrapped(args):
        try:
            return run(args)
        except (ValueError, MLSecError) as e:
            print(f"mlsec {args.command}: {e}", file=sys.stderr)
            return 1
    return wrapped


@_reports_errors
def run_serve(args):
    import os

    from .deployment import keys, server

    if (args.cert is None) != (args.key is None):
        args.parser.error("--cert and --key go together")
    if not 0 <= args.port <= 65535:
        args.parser.error(f"--port must be in 0-65535, got {args.port}")
    model_key = None
    if args.model_key_file or os.environ.get("MLSEC_MODEL_KEY"):
        model_key = keys.load_encryption_key(args.model_key_file)
    model_dir = args.model_dir
    if model_dir is None:  # the course's demo model, chosen here and said so: the server never picks one
        model_dir = course.demo_model_dir()
        print(f"no --model-dir: serving the course's demo model ({model_dir.name})", flush=True)
    settings = server.ServerSettings(
        model_dir=model_dir, secret_file=args.secret_file, public_key=args.public_key, audit_log=args.audit_log,
        audit_key_file=args.audit_key_file, rate=args.rate, burst=args.burst, encryption_key=model_key,
        jwt_public_key=args.jwt_public_key, max_token_lifetime=args.max_token_lifetime,
        client_rate=args.client_rate, client_burst=args.client_burst, body_timeout_s=args.body_timeout,
        header_timeout_s=args.header_timeout,
        max_header_bytes=args.max_header_bytes, max_connections=args.max_connections)
    server.serve(host=args.host, port=args.port, tls=args.tls or args.cert is not None, cert=args.cert,
                 key=args.key, settings=settings)
    return 0


@_reports_errors
def run_token(args):
    from .deployment import auth, keys

    if args.private_key:
        secret, algorithm = keys.load_private_key(args.private_key), "EdDSA"
    else:
        secret, algorithm = keys.load_jwt_secret(args.secret_file or keys.dev_jwt_secret_file()), "HS256"
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    if args.ttl > auth.MAX_LIFETIME_S:
        print(f"mlsec token: warning: --ttl {args.ttl} is over the server's default maximum lifetime of "
              f"{auth.MAX_LIFETIME_S} s; `mlsec serve` refuses this token unless started with a larger "
              "--max-token-lifetime", file=sys.stderr)
    print(auth.issue_token(secret, args.sub, args.role, models=models, ttl=args.ttl, aud=args.aud or auth.AUDIENCE,
                           iss=args.iss or auth.ISSUER, algorithm=algorithm))
    return 0


@_reports_errors
def run_sign(args):
    from .deployment import artifacts, keys

    artifacts.sign_dir(args.dir, args.key or keys.dev_signing_key()[0])
    print(f"signed {args.dir}")
    return 0


@_reports_errors
def run_verify(args):
    from .deployment import artifacts, keys

    manifest = artifacts.verify_dir(args.dir, args.public_key or keys.dev_signing_key()[1])
    print(f"{args.dir}: signature valid, {len(manifest['files'])} file(s) match the manifest")
    return 0


@_reports_errors
def run_audit_verify(args):
    from .deployment import audit, server

    key = server.audit_key(args.key_file, args.secret_file)
    result = audit.verify_log(args.log, key)
    if result.ok:
        print(f"{args.log}: {result.entries} entries, chain intact")
        return 0
    print(f"{args.log}: first bad entry at line {result.first_bad}: {result.reason}", file=sys.stderr)
    return 1


def run_federated(args):
    from .federated import deployment

    if args.print_commands:
        superlink, supernodes = deployment.commands(args.clients)
        for command in [superlink, *supernodes]:
            print(" ".join(command))
        print(f"FLWR_HOME=<dir with config.toml> flwr run {deployment.APP_DIR} {deployment.CONNECTION} --stream")
        return 0
    try:
        status = deployment.launch(args.clients, args.rounds, args.scheme)
    except ValueError as e:
        args.parser.error(str(e))
    except RuntimeError as e:
        print(f"mlsec federated: {e}", file=sys.stderr)
        return 1
    return status


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except stubs.MarkerError as e:
        print(f"mlsec: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
