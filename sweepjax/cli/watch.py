"""``sweepjax watch [SWEEP]``: serve the live command center of a store over HTTP while
its sweeps run (standard library ``http.server``; nothing is fetched from elsewhere, so
it works offline). The pages and routes: :mod:`sweepjax.cli.watch_server`.

Exit codes: 0 stopped with Ctrl-C, 2 missing store / unknown sweep / port in use.
"""

from __future__ import annotations

import argparse
import sys

from sweepjax.cli.inspect import one_line_errors
from sweepjax.cli.options import add_options

DEFAULT_PORT = 8765


def port_number(text: str) -> int:
    """``--port``'s type: an integer in 0..65535 (argparse says so in one line)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 0..65535 (0: any free port)")
    return port


def register(sub) -> None:
    p = one_line_errors(
        sub.add_parser(
            "watch",
            help="serve the live command center of the store over HTTP",
            description=(
                "Serve the command center of a store on http://HOST:PORT/ while its sweeps "
                "run: every sweep's state (running, done, interrupted), progress, ETA, best "
                "so far, and charts of the best so far, the members training and alive, "
                "the top and typical members' curves and the surface so far. The pages "
                "refresh every 2 s; Ctrl-C stops the server."
            ),
        )
    )
    p.add_argument(
        "sweep",
        nargs="?",
        default=None,
        metavar="SWEEP",
        help="open this sweep's page at / (default: the index of every sweep)",
    )
    add_options(p, "coarse", only=("store",))  # declared once, in sweepjax.spec
    p.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_PORT,
        help="TCP port to listen on (0: any free port; the URL is printed)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface, "
        "so anyone who can reach this machine can read the store's results; see docs/watch.md)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests whose Host header is NAME, at any port (a reverse proxy's "
        "or this machine's name; repeatable); others get 421",
    )
    p.set_defaults(func=run, compiles=False)  # no jax: it listens within a second


def run(args: argparse.Namespace) -> int:
    from sweepjax.cli.watch_server import Center, make_server  # deferred: the pages load lazily
    from sweepjax.store.db import Store, default_path

    path = args.store or default_path()
    with Store.open(path) as store:  # a missing store or unknown sweep: one line, exit 2
        if args.sweep is not None:
            store.sweep_row(args.sweep)
    server = make_server(Center(path, args.sweep), args.host, args.port, args.allow_host)
    host, port = server.server_address[:2]
    print(f"http://{host}:{port}/", flush=True)
    print(f"sweepjax: serving the command center of {path}; Ctrl-C stops", file=sys.stderr)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("sweepjax: watch stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
