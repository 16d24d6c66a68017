"""`sfumato plugins install gimp|krita`: put a plug-in where the editor looks for it."""

from __future__ import annotations

import argparse


def register(verbs: argparse._SubParsersAction) -> None:
    cmd = verbs.add_parser("plugins", help="install the GIMP or Krita plug-in")
    sub = cmd.add_subparsers(dest="plugins_verb", required=True, metavar="ACTION")
    inst = sub.add_parser("install", help="install a plug-in with the bridge vendored beside it")
    inst.add_argument("host", choices=["gimp"])
    inst.add_argument("--dest", help="plug-ins folder (default: the editor's user folder)")
    inst.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..plugin_install import install_plugin

    print(install_plugin(args.host, args.dest))
    return 0
