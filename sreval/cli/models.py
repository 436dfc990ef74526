"""`sreval zoo`, `interpolate`, `train` and `recipes`: the model zoo, and the models trained or blended into it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from sreval import settings
from sreval.cli.common import DEVICE_HELP, Subcommands, asset_paths, split_list
from sreval.errors import SrevalError

if TYPE_CHECKING:
    from sreval import zoo as zoo_module


def add_commands(sub: Subcommands) -> None:
    _add_zoo_commands(sub)
    _add_train_commands(sub)


def _add_zoo_commands(sub: Subcommands) -> None:
    zoo_help = "extra zoo folder, searched first (and written to by interpolate); default: $SREVAL_ZOO or the user zoo"
    asset_help = "file for an external-weights asset (e.g. esrgan-official=PATH); repeatable"
    zoo = sub.add_parser("zoo", help="model zoo: list entries (with their weights status) or show one")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", metavar="ACTION")
    zoo_list = zoo_sub.add_parser("list", help="every entry: name, architecture, parameters, status, recipe")
    zoo_show = zoo_sub.add_parser("show", help="one entry's config, model card, tensors and checksum status")
    zoo_show.add_argument("name")
    zoo_show.add_argument("--asset", action="append", default=[], metavar="NAME=PATH", help=asset_help)
    zoo_add = zoo_sub.add_parser("add", help="make a zoo entry from a finished `sreval train` run")
    zoo_add.add_argument("run", type=Path, help="the run folder (sreval train ... --out RUN)")
    zoo_add.add_argument("--name", required=True, help="name of the new zoo model")
    zoo_add.add_argument("--overwrite", action="store_true", help="replace a model of the same name")
    for p in (zoo, zoo_list, zoo_show, zoo_add):
        p.add_argument("--zoo", type=Path, default=argparse.SUPPRESS if p is not zoo else None, help=zoo_help)
    zoo.set_defaults(func=cmd_zoo)

    interp = sub.add_parser("interpolate", help="ESRGAN network interpolation θ = (1−α)θ_A + αθ_B of two zoo models")
    interp.add_argument("a", help="zoo model A (α = 0)")
    interp.add_argument("b", help="zoo model B (α = 1), same architecture as A")
    how = interp.add_mutually_exclusive_group(required=True)
    how.add_argument("--alpha", type=float, help="weight of B, in [0, 1] (needs --name)")
    how.add_argument("--sweep", metavar="A1,A2,...", help="several alphas, e.g. 0,0.2,0.4,0.6,0.8,1")
    interp.add_argument("--name", help="name of the new zoo model (with --alpha)")
    interp.add_argument("--name-prefix", help="models are named PREFIX-aALPHA (with --sweep; default: A-to-B)")
    interp.add_argument("--zoo", type=Path, help=zoo_help)
    interp.add_argument("--overwrite", action="store_true", help="replace models of the same name")
    interp.add_argument("--asset", action="append", default=[], metavar="NAME=PATH", help=asset_help)
    interp.set_defaults(func=cmd_interpolate)


def _add_train_commands(sub: Subcommands) -> None:
    train = sub.add_parser("train", help="train an SR model with a paper's recipe (resumes when OUT has checkpoints)")
    train.add_argument("recipe", help="recipe name (`sreval recipes` lists them)")
    train.add_argument("--out", required=True, type=Path, help="run folder: checkpoints, logs, final weights")
    train.add_argument("--steps", type=int, help="total steps (the schedule is scaled to fit)")
    train.add_argument("--config", type=Path, help="YAML file of recipe overrides (unknown keys are errors)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one recipe field, value in YAML (e.g. lr=2e-4, losses={l1: 1}); repeatable")
    train.add_argument("--train-dir", help="folder of HR training images, or a name under $SREVAL_TRAINING_ROOT "
                       "(default: T91)", default="T91")
    train.add_argument("--data-root", help="benchmark data for validation (default: $SREVAL_DATA_ROOT)")
    train.add_argument("--device", default="auto", help=DEVICE_HELP)
    train.add_argument("--vgg", type=Path, help="VGG19 ImageNet weights (vgg19-dcbb9e9d.pth) for VGG-based losses")
    train.add_argument("--stop-after", type=int, help="stop (with a checkpoint) after N steps of this invocation")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)

    recipes = sub.add_parser("recipes", help="list training recipes, or show one with every field")
    recipes.add_argument("name", nargs="?")
    recipes.set_defaults(func=cmd_recipes)


def _zoo_roots(args: argparse.Namespace) -> list[Path]:
    from sreval import zoo

    return zoo.zoo_roots([args.zoo] if args.zoo else [])


def _format_params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def cmd_zoo(args: argparse.Namespace) -> int:
    from sreval import zoo

    roots = _zoo_roots(args)
    if args.zoo_command == "show":
        return _zoo_show(zoo.get_entry(args.name, roots), asset_paths(args.asset))
    if args.zoo_command == "add":
        from sreval.train.export import add_run

        entry = add_run(args.run, args.name, root=args.zoo, overwrite=args.overwrite)
        print(f"added {entry.name} to {entry.folder} (sreval run-benchmarks --methods {entry.name} to score it)")
        return 0
    entries, problems = zoo.scan(roots)
    rows = []
    for e in entries:
        try:
            params = _format_params(zoo.count_parameters(e))
        except SrevalError as error:  # one bad entry is reported below; the others are still listed
            params = "?"
            problems.append(str(error))
        rows.append({"name": e.name, "architecture": e.architecture, "params": params, "status": e.weights.status,
                     "recipe": e.recipe or "-", "description": e.description})
    if rows:
        widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]}
        for row in [{k: k for k in widths}, *rows]:
            print("  ".join(row[k].ljust(widths[k]) for k in widths).rstrip())
    else:
        print("(no zoo models)")
    print(f"\nsearched: {', '.join(map(str, roots))}")
    if problems:
        count = f"{len(problems)} invalid zoo entr{'y' if len(problems) == 1 else 'ies'}"
        raise SrevalError(f"{count}: {'; '.join(problems)}")
    return 0


def _zoo_show(entry: zoo_module.ZooEntry, asset_paths: dict[str, Path]) -> int:
    from sreval import archs, assets, zoo

    print(f"{entry.name}  ({entry.folder})\n")
    print((entry.folder / zoo.CONFIG).read_text(encoding="utf-8").rstrip())
    print(f"\nparameters (architecture): {zoo.count_parameters(entry):,}")
    weights = entry.weights
    if weights.status == "trained":
        status = zoo.checksum_status(entry)
        print(f"weights: {entry.weights_path}, sha256 {status}")
        if status == "ok":
            n_tensors, n_elements = zoo.tensor_summary(entry)
            print(f"tensors: {n_tensors} ({n_elements:,} values)")
    elif weights.status == "external":
        assert weights.asset is not None and weights.loader is not None
        loader = "registered" if weights.loader in archs.weight_loader_names() else "NOT registered"
        try:
            place = f"found at {assets.locate(weights.asset, asset_paths.get(weights.asset))}"
        except SrevalError as e:  # a missing or unknown asset is what `show` is there to report, not a failure
            place = f"not available: {e}"
        print(f"weights: external; loader {weights.loader} {loader}; asset {weights.asset} {place}")
    else:
        print(f"weights: none ({weights.status}): {weights.reason}")
    print()
    card = entry.card_path
    print(card.read_text(encoding="utf-8").rstrip() if card.is_file() else f"(no model card: {card} is missing)")
    return 0


def _parse_alphas(spec: str) -> list[float]:
    try:
        return [float(x) for x in split_list(spec)]
    except ValueError:
        raise SrevalError(f"--sweep expects comma-separated numbers such as 0,0.2,0.4, got {spec!r}") from None


def cmd_interpolate(args: argparse.Namespace) -> int:
    from sreval import zoo

    roots = _zoo_roots(args)
    assets = asset_paths(args.asset)
    if args.alpha is not None:
        if not args.name or args.name_prefix:
            raise SrevalError("--alpha needs --name (and no --name-prefix)")
        entry = zoo.interpolate(args.a, args.b, args.alpha, args.name, root=args.zoo, overwrite=args.overwrite,
                                asset_paths=assets, roots=roots)
        print(f"wrote zoo model {entry.name} (α = {args.alpha:g}) to {entry.folder}")
        return 0
    if args.name:
        raise SrevalError("--sweep names its models with --name-prefix, not --name")
    prefix = args.name_prefix or f"{args.a}-to-{args.b}"
    names = zoo.alpha_sweep(args.a, args.b, _parse_alphas(args.sweep), prefix, root=args.zoo,
                            overwrite=args.overwrite, asset_paths=assets, roots=roots)
    print(f"wrote {len(names)} zoo models to {zoo.write_root(args.zoo)}: {', '.join(names)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from sreval.provenance import resolve_device
    from sreval.train import recipes
    from sreval.train.data import training_inputs
    from sreval.train.devices import process_device
    from sreval.train.loop import TrainOptions, train
    from sreval.train.validation import METRICS

    recipe = recipes.get_recipe(args.recipe)
    if args.config:
        recipe = recipes.with_overrides(recipe, recipes.load_overrides(args.config), str(args.config))
    recipe = recipes.with_overrides(recipe, recipes.parse_set(args.set), "--set")
    if args.steps is not None:
        recipe = recipe.scaled_to(args.steps)
    device = process_device(resolve_device(args.device))
    data_root = settings.data_root(args.data_root) if recipe.validate_every else None
    validation_sets = recipe.validation_sets if recipe.validate_every else []
    train_dir = training_inputs(args.train_dir, data_root=data_root, validation_sets=validation_sets)
    options = TrainOptions(
        out=args.out, train_dir=train_dir, device=device, data_root=data_root,
        vgg_weights=args.vgg, progress=not args.quiet, stop_after=args.stop_after,
    )
    result = train(recipe, options)
    if result.finished and result.final_dir is not None:
        print(f"{recipe.name}: {result.step} steps in {result.wall_s:.0f} s; final weights in {result.final_dir}")
        for v in result.validation:
            scores = ", ".join(validation_score(name, v[name]) for name in METRICS)
            print(f"  {v['dataset']}: {scores} ({v['n']} images)")
        print(f"add it to the zoo: sreval zoo add {args.out} --name NAME")
    elif not result.finished:
        print(f"{recipe.name}: stopped at step {result.step} of {recipe.steps}; run the same command to resume")
    return 0


def validation_score(metric: str, value: float) -> str:
    """"PSNR 30.123 dB": the metric's label, its decimals and unit."""
    from sreval.metrics import metric_info

    info = metric_info(metric)
    unit = f" {info.unit}" if info.unit else ""
    return f"{info.label} {value:.{info.decimals}f}{unit}"


def cmd_recipes(args: argparse.Namespace) -> int:
    from sreval.train import recipes

    if args.name:
        for key, value in recipes.get_recipe(args.name).as_dict().items():
            print(f"{key}: {value}")
        return 0
    for r in recipes.RECIPES.values():
        losses = ", ".join(f"{k} {v:g}" for k, v in r.losses.items())
        init = f", from {r.init_from}" if r.init_from else ""
        print(f"{r.name:16} {r.generator:11} {r.steps:>9,} steps  lr {r.lr:g}  crop {r.crop}  [{losses}]{init}")
    return 0
