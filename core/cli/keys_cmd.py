"""`sfumato keys`: CURVE keys; the daemon's own are made on its first start, other machines'
clients are made and allowed here."""

from __future__ import annotations

import argparse
from pathlib import Path

from sfumato.core.config import default_home
from sfumato.core.daemon.keys import (
    allow_client,
    allowed_clients,
    create_client,
    create_server_keys,
    keys_dir,
    revoke_client,
)

DESCRIPTION = """\
Every TCP endpoint, loopback included, needs CURVE. On its first start the daemon makes its
key pair and a key pair for this user's own programs in SFUMATO_HOME/keys (readable by this
user only), so the command line, GIMP and Krita of this user connect with no set-up, and no
other local user can connect or pose as the daemon. Bound beyond loopback (e.g.
SFUMATO_ENDPOINT=tcp://0.0.0.0:5655) it also answers the client keys allowed here, and
refuses to start until at least one is. On the daemon's machine:

  sfumato keys server                  make the daemon's key pair now (else on first start)
  sfumato keys client laptop           a key folder for a client machine, already allowed
  sfumato keys allow NAME FILE.key     allow a public key made elsewhere
  sfumato keys revoke NAME             stop answering that client
  sfumato keys list                    the daemon's public key and the allowed clients

Copy the client folder to the client machine and set SFUMATO_CURVE=/path/to/that/folder (and
SFUMATO_ENDPOINT=tcp://DAEMON-HOST:5655) there. Changes apply to a running daemon.
"""


def register(verbs: argparse._SubParsersAction) -> None:
    cmd = verbs.add_parser("keys", help="CURVE keys: the daemon's, and other machines' clients",
                           description=DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = cmd.add_subparsers(dest="keys_action", required=True, metavar="ACTION")
    server = actions.add_parser("server", help="make the daemon's key pair")
    server.add_argument("--force", action="store_true",
                        help="replace an existing key pair (client folders must be remade)")
    server.set_defaults(run=_server)
    client = actions.add_parser("client", help="make and allow a client key folder")
    client.add_argument("name", help="a name for the client machine (letters, digits, .-_)")
    client.add_argument("--out", type=Path, default=None,
                        help="folder to create (default: ./sfumato-keys-NAME)")
    client.set_defaults(run=_client)
    allow = actions.add_parser("allow", help="allow a client public key file")
    allow.add_argument("name")
    allow.add_argument("public_key", type=Path, metavar="FILE.key")
    allow.set_defaults(run=_allow)
    revoke = actions.add_parser("revoke", help="stop answering a client")
    revoke.add_argument("name")
    revoke.set_defaults(run=_revoke)
    listing = actions.add_parser("list", help="show the daemon key and allowed clients")
    listing.set_defaults(run=_list)


def _server(args: argparse.Namespace) -> int:
    had = (keys_dir(default_home()) / "server.key_secret").exists()
    public = create_server_keys(default_home(), force=args.force)
    if had and not args.force:
        print(f"the daemon's key pair is already there ({public}); --force makes a new one")
    else:
        print(f"daemon key pair written beside {public}")
    print("next: `sfumato keys client NAME` for each machine that should connect")
    return 0


def _client(args: argparse.Namespace) -> int:
    out = (args.out or Path(f"sfumato-keys-{args.name}")).resolve()
    create_client(default_home(), args.name, out)
    print(f"client {args.name!r} allowed; its keys are in {out}")
    print("copy that folder to the client machine; there, set SFUMATO_CURVE to its path "
          "and SFUMATO_ENDPOINT to this daemon's address")
    return 0


def _allow(args: argparse.Namespace) -> int:
    target = allow_client(default_home(), args.name, args.public_key)
    print(f"client {args.name!r} allowed ({target})")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    revoke_client(default_home(), args.name)
    print(f"client {args.name!r} revoked")
    return 0


def _list(args: argparse.Namespace) -> int:
    home = default_home()
    public = keys_dir(home) / "server.key"
    if public.exists():
        print(f"daemon key: {public}")
    else:
        print("daemon key: none yet (the daemon makes it on its first start)")
    if (keys_dir(home) / "local.key").exists():
        print(f"this user's programs: {keys_dir(home) / 'local.key'} (no set-up needed)")
    clients = allowed_clients(home)
    if not clients:
        print("allowed clients: none")
    for name, key in clients.items():
        print(f"allowed: {name}  {key.decode()}")
    return 0
