"""Runs moto's server (test harness only; started by hack/aws.sh) with one patch.

    python moto_launcher.py [--host 127.0.0.1] [--port 0] [--port-file FILE]

With --port 0 the kernel picks a free port; the bound port is written to --port-file
once the socket is listening, so two servers can start at once without racing for a
port. Only loopback addresses are accepted.

The patch: when IAM enforcement is on (POST /moto-api/reset-auth with body 0), moto
authenticates every request and reads the Authorization header unconditionally
(moto.iam.access_control.IAMRequestBase.__init__), so an unsigned
sts:AssumeRoleWithWebIdentity or sts:AssumeRoleWithSAML fails with a 500 (KeyError
'HTTP_AUTHORIZATION'). Real STS takes these two calls unsigned - the web identity token
or SAML assertion is the credential - and the AWS SDKs send them unsigned. So such
requests skip moto's IAM check, as they skip SigV4 in AWS. Everything else, including a
*signed* call to either action, goes through moto's check unchanged.

Not simulated (moto does not do it, enforced or not): the token/assertion is not
validated and the role's trust policy (Federated principal, conditions on
aud/sub) is not evaluated; the role need not even exist.
"""

import argparse
import inspect
import ipaddress
import os
import signal
import sys

# Before moto is imported: moto.settings reads these at import time.
os.environ.setdefault("INITIAL_NO_AUTH_ACTION_COUNT", "inf")
# MOTO_ACCOUNT_ID in the server's environment would force every request into that
# account (moto.core.responses.BaseResponse.get_current_account, priority 1), hiding
# the per-access-key accounts. The harness only ever means moto's default here.
os.environ.pop("MOTO_ACCOUNT_ID", None)

import moto  # noqa: E402
from moto import settings  # noqa: E402
from moto.core import authorization  # noqa: E402

EXPECTED_MOTO = "5.2.5"
UNSIGNED_STS_ACTIONS = frozenset({"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"})


def die(msg: str) -> None:
    print(f"moto_launcher: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def patch_unsigned_sts() -> None:
    mixin = getattr(authorization, "ActionAuthenticatorMixin", None)
    original = getattr(mixin, "__dict__", {}).get("_authenticate_and_authorize_action")
    if original is None:
        die(
            f"moto {moto.__version__}: moto.core.authorization.ActionAuthenticatorMixin."
            "_authenticate_and_authorize_action not found; the unsigned-STS patch cannot be"
            " applied (re-check hack/moto_launcher.py against this moto version)"
        )
    params = list(inspect.signature(original).parameters)
    if params[:3] != ["self", "iam_request_cls", "resource"]:
        die(f"moto {moto.__version__}: unexpected signature {params} of the patched method")
    if not hasattr(mixin, "request_count"):
        die(f"moto {moto.__version__}: ActionAuthenticatorMixin.request_count not found")
    if not hasattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT"):
        die(f"moto {moto.__version__}: moto.settings.INITIAL_NO_AUTH_ACTION_COUNT not found")

    def _authenticate_and_authorize_action(self, iam_request_cls, resource="*"):
        enforcing = mixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT
        if (
            enforcing
            and getattr(self, "service_name", None) == "sts"
            and "Authorization" not in self.headers
            and self._get_action() in UNSIGNED_STS_ACTIONS
        ):
            return  # unsigned federation call: AWS does no SigV4/IAM check here either
        return original(self, iam_request_cls, resource)

    mixin._authenticate_and_authorize_action = _authenticate_and_authorize_action


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    args = ap.parse_args()

    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        die(f"--host {args.host!r} is not a loopback address; refusing to listen there")
    if moto.__version__ != EXPECTED_MOTO:
        die(f"moto {moto.__version__} is installed, this launcher is written for {EXPECTED_MOTO}")
    patch_unsigned_sts()

    # What moto.server.main does, but bound through make_server so that port 0 works
    # and the real port is known (MOTO_PORT is read by a few backends to build URLs).
    from werkzeug.serving import make_server

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # as moto.server.main
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_port
    os.environ["MOTO_PORT"] = str(port)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    if args.port_file:
        tmp = f"{args.port_file}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(
        f"moto {moto.__version__} on http://{args.host}:{port} (pid {os.getpid()}, unsigned STS federation patch on)",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
