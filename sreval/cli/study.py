"""`sreval study ...`: create a MOS study, invite raters, follow it, export its ratings, simulate raters, close it."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from sreval import settings
from sreval.cli.common import DATA_ROOT_HELP, Subcommands, split_list, write_csv
from sreval.errors import SrevalError


def add_commands(sub: Subcommands) -> None:
    db_help = "database URL (default: $SREVAL_DB or an SQLite file); the study tables live beside the results"
    study = sub.add_parser("study", help="MOS studies (SRGAN protocol): create, invite, status, export, simulate")
    study_sub = study.add_subparsers(dest="study_command", required=True, metavar="ACTION")

    create = study_sub.add_parser("create", help="render a study's stimuli (opaque file names) and store the study")
    create.add_argument("--name", required=True, help="study name (letters, digits, '.', '_', '-')")
    create.add_argument("--methods", required=True,
                        help="methods to rate, e.g. nn,bicubic,hr,folder:PATH,ZOO-MODEL (hr = the reference image)")
    create.add_argument("--datasets", default="set5,set14,bsd100", help="default: set5,set14,bsd100 (as SRGAN)")
    create.add_argument("--images", help="only these images of the datasets, comma-separated (e.g. baby,bird)")
    create.add_argument("--retest", type=float, default=0.1,
                        help="fraction of test items each rater sees twice (default: 0.1)")
    create.add_argument("--min-retest-gap", type=int, default=5,
                        help="fewest positions between the two showings of a retest item (default: 5)")
    create.add_argument("--gold-images", type=int, default=5,
                        help="test images whose HR and NN versions are hidden as attention checks (default: 5)")
    create.add_argument("--calibration-images", type=int, default=20,
                        help="images outside the test set shown first as NN (= 1) and HR (= 5) (default: 20)")
    create.add_argument("--calibration-dir",
                        help="folder of calibration images, or a name under $SREVAL_TRAINING_ROOT (default: T91)")
    create.add_argument("--dir", type=Path, help="study folder (default: $SREVAL_STUDIES/NAME or ~/.local/share/"
                        "sreval/studies/NAME); must not exist or be empty (it is replaced by the finished folder)")
    create.add_argument("--group-read", action="store_true",
                        help="let the folder's group read the stimuli (folder 0750, files 0640; default 0700 and 0600, "
                        "only you): the rater app must run as you, or as a user of that group")
    create.add_argument("--seed", type=int, help="seed of every random choice and every rater's order "
                        "(default: random, stored with the study)")
    create.add_argument("--data-root", help=DATA_ROOT_HELP)
    create.add_argument("--cache-dir", help="SR cache shared with run-benchmarks (default: $SREVAL_CACHE)")
    create.add_argument("--no-cache", action="store_true", help="compute every SR image afresh")
    create.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    invite = study_sub.add_parser("invite", help="add raters; prints one link per rater (shown only once)")
    invite.add_argument("--n", required=True, type=int, help="number of raters to invite")
    invite.add_argument("--base-url", required=True, help="address of the rater app, e.g. https://mos.example.org/")

    status = study_sub.add_parser("status", help="progress per rater and per method, failed gold items")
    status.add_argument("--include-simulated", action="store_true", help="count simulated raters too")

    export = study_sub.add_parser("export", help="ratings as CSV in long format (simulated ones left out)")
    export.add_argument("--out", required=True, type=Path, help="CSV file to write")
    export.add_argument("--include-simulated", action="store_true", help="also the ratings of simulated raters")
    export.add_argument("--no-gold", action="store_true", help="leave out the gold items")
    export.add_argument("--no-calibration", action="store_true", help="leave out the calibration answers")

    simulate = study_sub.add_parser("simulate", help="synthetic raters (bias, inconsistency) rating concurrently")
    simulate.add_argument("--raters", type=int, default=20, help="number of simulated raters (default: 20)")
    simulate.add_argument("--workers", type=int, default=8, help="raters rating at the same time (default: 8)")
    simulate.add_argument("--seed", type=int, help="seed of the simulated scores (default: random)")

    close = study_sub.add_parser("close", help="stop a study taking ratings")
    study_list = study_sub.add_parser("list", help="every study with its raters and ratings")

    for p in (invite, status, export, simulate, close):
        p.add_argument("--study", required=True, help="study name")
    for p in (create, invite, status, export, simulate, close, study_list):
        p.add_argument("--db", help=db_help)
    create.set_defaults(func=cmd_study_create)
    invite.set_defaults(func=cmd_study_invite)
    status.set_defaults(func=cmd_study_status)
    export.set_defaults(func=cmd_study_export)
    simulate.set_defaults(func=cmd_study_simulate)
    close.set_defaults(func=cmd_study_close)
    study_list.set_defaults(func=cmd_study_list)

    hash_pw = study_sub.add_parser(
        "hash-password", help="hash an admin password for the rater app's .streamlit/secrets.toml"
    )
    hash_pw.add_argument("--iterations", type=int, help="PBKDF2 iterations (default and least: 600000)")
    hash_pw.add_argument(
        "--force", action="store_true", help="accept fewer iterations or a password under 12 characters (tests only)"
    )
    hash_pw.set_defaults(func=cmd_study_hash_password)


def cmd_study_create(args: argparse.Namespace) -> int:
    from sreval import progress as progress_lines
    from sreval.benchmark.cache import Cache
    from sreval.study import open_study_store
    from sreval.study.builder import build_study

    cache = None if args.no_cache else Cache(settings.cache_dir(args.cache_dir))
    images = split_list(args.images) if args.images else None
    with open_study_store(args.db) as store, contextlib.ExitStack() as stack:
        bars: list[progress_lines.Progress] = []  # made at the first report, which brings the total

        def progress(done: int, total: int) -> None:
            if not bars:
                bar = progress_lines.Progress(
                    total, "rendering", "img", enabled=not args.quiet, interval=progress_lines.LINE_INTERVAL_S
                )
                bars.append(stack.enter_context(bar))
            bars[0].update(done - bars[0].done)

        info = build_study(
            store, args.name, split_list(args.methods), split_list(args.datasets),
            data_root=settings.data_root(args.data_root),
            images=images, retest=args.retest, gold_images=args.gold_images,
            calibration_images=args.calibration_images, calibration_dir=args.calibration_dir, folder=args.dir,
            seed=args.seed, min_retest_gap=args.min_retest_gap, cache=cache, progress=progress,
            group_read=args.group_read,
        )
    s = info.stimuli
    print(
        f"created study {info.name}: {s['test']} test items ({len(info.methods)} methods: {', '.join(info.methods)}), "
        f"{s['gold_hr'] + s['gold_nn']} gold items, {s['calibration_hr'] + s['calibration_nn']} calibration items"
        f"\nfiles in {info.folder}; seed {info.seed}"
        f"\nnext: sreval study invite --study {info.name} --n 26 --base-url URL"
    )
    return 0


def cmd_study_invite(args: argparse.Namespace) -> int:
    from sreval.study import invite_link, open_study_store
    from sreval.study.security import check_base_url

    check_base_url(args.base_url)  # a bad URL fails before anyone is invited
    with open_study_store(args.db) as store:
        invitations = store.invite(args.study, args.n)
    for rater, token in invitations:
        print(f"{rater}\t{invite_link(args.base_url, token)}")
    print(f"invited {len(invitations)} raters to {args.study}; the links are shown only this once (the database keeps "
          "only a hash of each token): send them now", file=sys.stderr)
    return 0


def cmd_study_status(args: argparse.Namespace) -> int:
    from sreval.study import open_study_store

    with open_study_store(args.db) as store:
        status = store.status(args.study, include_simulated=args.include_simulated)
    info = status.info
    state = f"closed {info.closed_at:%Y-%m-%d %H:%M} UTC" if info.closed_at else "open"
    raters = status.raters
    finished = int(raters["finished_at"].notna().sum())
    who = "raters" if args.include_simulated else "raters (simulated ones left out; --include-simulated)"
    print(f"study {info.name}: {state}; {len(raters)} {who}, {finished} finished; {sum(info.stimuli.values())} stimuli")
    if not raters.empty:
        shown = raters[["rater", "simulated", "done", "total", "gold_failures", "calibration_misses", "finished_at"]]
        print("\n" + shown.to_string(index=False))
    print("\n" + status.methods.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\ngold failures: {len(status.gold_failures)} ({status.gold_rule})")
    if not status.gold_failures.empty:
        print(status.gold_failures.to_string(index=False))
    if not status.problems.empty:
        print(f"\nstimuli the rater app could not show (raters get no buttons for them): {len(status.problems)}")
        print(status.problems.to_string(index=False))
    return 0


def cmd_study_export(args: argparse.Namespace) -> int:
    from sreval.study import open_study_store

    with open_study_store(args.db) as store:
        ratings = store.export(
            args.study, include_simulated=args.include_simulated, include_gold=not args.no_gold,
            include_calibration=not args.no_calibration,
        )
    write_csv(ratings, args.out)
    print(f"wrote {len(ratings)} ratings of {ratings['rater'].nunique()} raters to {args.out}")
    return 0


def cmd_study_simulate(args: argparse.Namespace) -> int:
    from sreval.study import open_study_store
    from sreval.study.simulate import simulate

    with open_study_store(args.db) as store:
        result = simulate(store, args.study, raters=args.raters, workers=args.workers, seed=args.seed)
    ids = [r.rater for r in result.raters]
    print(f"simulated raters {ids[0]}..{ids[-1]} ({len(ids)}, seed {result.seed}): {result.ratings} ratings in "
          f"{result.seconds:.1f} s with {args.workers} workers; flagged simulated (left out of export and status "
          "unless --include-simulated)")
    return 0


def cmd_study_close(args: argparse.Namespace) -> int:
    from sreval.study import open_study_store

    with open_study_store(args.db) as store:
        closed_at = store.close_study(args.study)
    print(f"study {args.study} closed at {closed_at:%Y-%m-%d %H:%M:%S} UTC; it takes no more ratings")
    return 0


def cmd_study_list(args: argparse.Namespace) -> int:
    from sreval.study import open_study_store

    with open_study_store(args.db) as store:
        studies = store.list_studies()
    print(studies.to_string(index=False) if not studies.empty else "(no studies)")
    return 0


def cmd_study_hash_password(args: argparse.Namespace) -> int:
    import getpass

    from sreval.study.security import PBKDF2_ITERATIONS, check_password_strength, hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("admin password: ")
        if getpass.getpass("again: ") != password:
            raise SrevalError("the two passwords differ; nothing was hashed")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    iterations = args.iterations or PBKDF2_ITERATIONS
    if not args.force:
        check_password_strength(password, iterations)
    hashed = hash_password(password, iterations=iterations)
    print(hashed)
    print(f'put it in the app\'s .streamlit/secrets.toml as: admin_password_hash = "{hashed}"', file=sys.stderr)
    return 0
