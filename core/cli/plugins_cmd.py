"""`sfumato plugins install gimp|krita`: put a plug-in where the editor looks for it."""

from __future__ import annotations

import argparse


def register(verbs: argparse._SubParsersAction) -> None:
    cmd = verbs.add_parser("plugins", help="install the GIMP or Krita plug-in")
    sub = cmd.add_subparsers(dest="plugins_verb", required=True, metavar="ACTION")
    inst = sub.add_parser("install", help="install a plug-in with the bridge vendored beside it")
    inst.add_argument("host", choices=["gimp", "krita"])
    inst.add_argument("--dest", help="GIMP: plug-ins folder; Krita: resource folder (holding "
                      "pykrita/ and actions/). Default: the editor's user folder")
    inst.add_argument("--enable", action="store_true",
                      help="Krita: switch the plug-in on in kritarc (while Krita is closed)")
    inst.add_argument("--kritarc", help="Krita: the kritarc to edit with --enable (default: "
                      "Krita's own for this user)")
    inst.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sfumato.core.install.installer import install_plugin

    print(install_plugin(args.host, args.dest, args.enable, args.kritarc))
    return 0
