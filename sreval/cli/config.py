"""`sreval config ...`: keep settings (data root, database, ...) in the user's config file, and show where each
setting a command would use comes from."""

from __future__ import annotations

import argparse

from sreval import settings
from sreval.cli.common import Subcommands


def add_commands(sub: Subcommands) -> None:
    keys = ", ".join(settings.SETTINGS)
    config = sub.add_parser(
        "config", help="settings kept in the user's config file: set, unset, show",
        description=f"Keep settings in {settings.config_file()} so that no command needs them again. A flag beats "
        f"an environment variable, which beats the config file, which beats the default. Settings: {keys}.",
    )  # fmt: skip
    actions = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")

    set_ = actions.add_parser("set", help="keep a setting in the config file (folders are stored absolute)")
    set_.add_argument("key", metavar="KEY", help=keys)
    set_.add_argument("value", metavar="VALUE", help="a folder, or for db a database URL")
    set_.set_defaults(func=cmd_config_set)

    unset = actions.add_parser("unset", help="remove a setting from the config file")
    unset.add_argument("key", metavar="KEY", help=keys)
    unset.set_defaults(func=cmd_config_unset)

    show = actions.add_parser("show", help="every setting, its value and where it comes from")
    for setting in settings.SETTINGS.values():
        if setting.flag:
            show.add_argument(setting.flag, dest=setting.key, metavar="VALUE",
                              help=f"as the commands' {setting.flag}: show it as a flag's value")  # fmt: skip
    show.set_defaults(func=cmd_config_show)


def _shown(resolved: settings.Resolved) -> str:
    from sreval.db.engine import mask_url

    return mask_url(resolved.value) if resolved.setting.kind == "url" else resolved.value


def cmd_config_set(args: argparse.Namespace) -> int:
    from sreval.db.engine import mask_url

    path, kept = settings.set_config(args.key, args.value)
    shown = mask_url(kept) if settings.SETTINGS[args.key].kind == "url" else kept
    print(f"{args.key} = {shown} (in {path})")
    overridden = settings.resolve(args.key)
    if overridden.source == "environment":
        print(f"note: {overridden.detail} is set and takes precedence over the config file")
    return 0


def cmd_config_unset(args: argparse.Namespace) -> int:
    path, was_set = settings.unset_config(args.key)
    print(f"{args.key}: removed from {path}" if was_set else f"{args.key} was not set in {path}")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    given = {key: getattr(args, key, None) for key in settings.SETTINGS}
    rows = [(r.setting.key, _shown(r), r.source + (f" ({r.detail})" if r.detail else "")) for r in
            settings.resolve_all(given)]  # fmt: skip
    width = max(len(key) for key, _, _ in rows)
    print(f"config file: {settings.config_file()}")
    for key, value, source in rows:
        print(f"{key:<{width}}  {value}  [{source}]")
    return 0
