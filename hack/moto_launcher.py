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

A second patch: moto renders the errors of that IAM check (AccessDenied,
InvalidClientTokenId, SignatureDoesNotMatch) as <ErrorResponse><Errors><Error>... XML
whatever protocol the client spoke. A JSON-protocol client (Content-Type
application/x-amz-json-1.0/1.1, e.g. SQS) cannot parse that at all, and the AWS SDK for
Rust's awsQuery parser (STS, IAM) only looks for <Error> directly under the root, so both
lose the error code (boto3 tolerates the XML). The error is re-rendered as AWS sends it.
JSON-protocol requests get:
    Content-Type: application/x-amz-json-1.0            (the request's JSON version)
    x-amzn-query-error: AccessDenied;Sender              (awsQueryCompatible services only)
    {"__type": "com.amazon.coral.service#AccessDeniedException", "message": "..."}
SDKs of an awsQueryCompatible service (SQS) take the code from x-amzn-query-error
(botocore parsers.py _do_query_compatible_error_parse; aws-sdk-sqs
parse_aws_query_compatible_error), so they see 'AccessDenied' as with the query protocol;
other JSON services see the __type name (AccessDeniedException, UnrecognizedClientException,
InvalidSignatureException), as from AWS. Query-protocol services (STS, IAM) stay XML, in
awsQuery's shape:
    Content-Type: text/xml
    <ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>
    <Code>AccessDenied</Code><Message>...</Message></Error><RequestId>...</RequestId></ErrorResponse>
A service that also speaks awsQuery but defaults to another protocol (CloudWatch) gets
the awsQuery shape when the request was form-encoded. Other protocols (ec2, rest-json,
rest-xml) keep moto's answer; rest-json (EKS) gets the code in x-amzn-ErrorType and
{"message": ...}, as AWS sends it. moto's own service errors need nothing: its serializer
already renders both shapes like this.

Throttling on demand (not a patch of moto: a WSGI layer in front of it), since moto never
throttles: `POST /_swell/throttle?key=AKID&on=1` makes every request signed with access key
AKID answer as AWS does when a quota is exceeded (400, code Throttling, in the request's
protocol: awsQuery XML for a form-encoded request, JSON with x-amzn-query-error otherwise),
until `on=0`; `GET /_swell/throttle?key=AKID` returns how many requests were refused so.
Scoped to one access key so that tests sharing this moto do not throttle each other.

EKS Pod Identity associations (CreatePodIdentityAssociation, ListPodIdentityAssociations,
DescribePodIdentityAssociation) are added to moto's EKS service: moto 5.2.5 has none
(later moto versions do, but none is released yet). They are written from the EKS API
reference and served through moto's own routing, IAM check and serializer (botocore's
model), so an identity without eks:ListPodIdentityAssociations is refused as by AWS.
Kept in memory per account, region and cluster; the cluster must exist (moto's
CreateCluster).

Another patch: moto checks a CloudWatch call as monitoring:<Action> (its SigV4 signing
name); AWS checks cloudwatch:<Action>. The action is renamed (IAM_PREFIX).
"""

import argparse
import inspect
import ipaddress
import os
import signal
import sys

from werkzeug.exceptions import HTTPException

# Before moto is imported: moto.settings reads these at import time.
os.environ.setdefault("INITIAL_NO_AUTH_ACTION_COUNT", "inf")
# MOTO_ACCOUNT_ID in the server's environment would force every request into that
# account (moto.core.responses.BaseResponse.get_current_account, priority 1), hiding
# the per-access-key accounts. The harness only ever means moto's default here.
os.environ.pop("MOTO_ACCOUNT_ID", None)

import json  # noqa: E402
import re  # noqa: E402
from xml.sax.saxutils import escape  # noqa: E402

import moto  # noqa: E402
from moto import settings  # noqa: E402
from moto.core import authorization, exceptions, responses, utils  # noqa: E402

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


# moto's IAM-check error code -> the exception name AWS's JSON services put in __type
# (the code itself stays in x-amzn-query-error for awsQueryCompatible services).
JSON_AUTH_ERROR_TYPES = {
    "AccessDenied": "AccessDeniedException",
    "InvalidClientTokenId": "UnrecognizedClientException",
    "SignatureDoesNotMatch": "InvalidSignatureException",
}
JSON_CONTENT_TYPES = ("application/x-amz-json-1.0", "application/x-amz-json-1.1")


def patch_auth_error_shapes() -> None:
    mixin = getattr(authorization, "ActionAuthenticatorMixin", None)
    original = getattr(mixin, "__dict__", {}).get("_authenticate_and_authorize_normal_action")
    if original is None:
        die(
            f"moto {moto.__version__}: ActionAuthenticatorMixin._authenticate_and_authorize_normal_action"
            " not found; the auth-error-shape patch cannot be applied"
        )
    # BaseResponse.call_action turns the exception into (description, status) and sends it
    # with self.response_headers; that is where the Content-Type etc. have to go.
    call_action = inspect.getsource(responses.BaseResponse.call_action)
    if "self._authenticate_and_authorize_normal_action(" not in call_action or (
        "headers = self.response_headers" not in call_action
    ):
        die(f"moto {moto.__version__}: BaseResponse.call_action no longer renders IAM-check errors as expected")
    if not callable(getattr(utils, "get_service_model", None)):
        die(f"moto {moto.__version__}: moto.core.utils.get_service_model not found")
    sample = exceptions.AccessDeniedError(user_arn="arn", action="sqs:X")
    if not (sample.error_type == "AccessDenied" and sample.message and sample.code == 403):
        die(f"moto {moto.__version__}: AccessDeniedError no longer has error_type/message/code")

    def _authenticate_and_authorize_normal_action(self, resource="*"):
        try:
            return original(self, resource)
        except HTTPException as e:
            query_code = getattr(e, "error_type", None)  # AccessDenied, InvalidClientTokenId, ...
            if not query_code:
                raise
            try:
                metadata = utils.get_service_model(self.boto3_service_name).metadata
            except Exception:  # noqa: BLE001 - no botocore model: leave moto's answer alone
                metadata = {}
            message = getattr(e, "message", "")
            content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type in JSON_CONTENT_TYPES:
                self.response_headers["Content-Type"] = content_type
                if "awsQueryCompatible" in metadata:  # SQS: yes; DynamoDB, Logs: no
                    self.response_headers["x-amzn-query-error"] = f"{query_code};Sender"
                exc_name = JSON_AUTH_ERROR_TYPES.get(query_code, query_code)
                body = json.dumps({"__type": f"com.amazon.coral.service#{exc_name}", "message": message})
            elif metadata.get("protocol") == "query" or (
                # A service whose default is another protocol but that also speaks
                # awsQuery (CloudWatch: smithy-rpc-v2-cbor, json, query), spoken here.
                content_type == "application/x-www-form-urlencoded"
                and "query" in metadata.get("protocols", [])
            ):  # STS, IAM, ...: awsQuery XML
                self.response_headers["Content-Type"] = "text/xml"
                xmlns = f' xmlns="{escape(metadata["xmlNamespace"])}"' if metadata.get("xmlNamespace") else ""
                body = (
                    f"<ErrorResponse{xmlns}><Error><Type>Sender</Type><Code>{escape(query_code)}</Code>"
                    f"<Message>{escape(message)}</Message></Error><RequestId></RequestId></ErrorResponse>"
                )  # call_action (_enrich_response) fills in the RequestId
            elif metadata.get("protocol") == "rest-json":  # EKS: the code in x-amzn-ErrorType
                self.response_headers["Content-Type"] = "application/json"
                self.response_headers["x-amzn-ErrorType"] = JSON_AUTH_ERROR_TYPES.get(query_code, query_code)
                body = json.dumps({"message": message})
            else:
                raise  # other protocols (ec2, rest-xml): moto's answer unchanged
            rendered = HTTPException(description=body)
            rendered.code = e.code
            raise rendered from e

    mixin._authenticate_and_authorize_normal_action = _authenticate_and_authorize_normal_action


ASSUMED_ROLE_ARN = re.compile(r"^arn:(aws[\w-]*):sts::(\d{12}):assumed-role/([^/]+)/[^/]+$")


def patch_role_session_principals() -> None:
    """Trust policies name a role; AWS matches that role's sessions against it.

    moto compares the caller ARN literally, so a session of role keda-operator
    (arn:aws:sts::A:assumed-role/keda-operator/s) never matches a trust policy naming
    arn:aws:iam::A:role/keda-operator, which is exactly the seed's set-up. Also accept the
    account root, which AWS treats as "any principal of this account allowed by its own
    policy" (the caller's own policy is still checked separately by moto).
    """
    from moto.iam import access_control

    stmt_cls = getattr(access_control, "IAMPolicyStatement", None)
    original = getattr(stmt_cls, "__dict__", {}).get("_check_principal")
    if original is None:
        die(f"moto {moto.__version__}: moto.iam.access_control.IAMPolicyStatement._check_principal not found")

    def _check_principal(self, principal):
        if original(self, principal):
            return True
        m = ASSUMED_ROLE_ARN.match(principal or "")
        if not m:
            return False
        partition, account, role = m.groups()
        for alias in (f"arn:{partition}:iam::{account}:role/{role}", f"arn:{partition}:iam::{account}:root", account):
            if original(self, alias):
                return True
        return False

    stmt_cls._check_principal = _check_principal


# Services whose SigV4 signing name is not their IAM action prefix.
IAM_PREFIX = {"monitoring": "cloudwatch"}


def patch_iam_action_prefix() -> None:
    """moto names the action of an enforced request after the SigV4 signing name
    (credential scope), so a CloudWatch call is checked as monitoring:GetMetricData; AWS
    checks cloudwatch:GetMetricData. Rename it for the services in IAM_PREFIX."""
    from moto.iam import access_control

    base = access_control.IAMRequestBase
    original = base.__dict__.get("__init__")
    if original is None or "self._action = (" not in inspect.getsource(original):
        die(f"moto {moto.__version__}: IAMRequestBase.__init__ no longer sets self._action")

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        service, _, action = self._action.partition(":")
        if service in IAM_PREFIX:
            self._action = f"{IAM_PREFIX[service]}:{action}"

    base.__init__ = __init__


def patch_eks_pod_identity() -> None:
    from moto.eks import urls as eks_urls
    from moto.eks.exceptions import ResourceNotFoundException
    from moto.eks.responses import EKSResponse

    if hasattr(EKSResponse, "list_pod_identity_associations"):
        die(f"moto {moto.__version__} serves EKS Pod Identity itself; drop patch_eks_pod_identity")
    base = "{0}/clusters/(?P<name>[^/]+)/pod-identity-associations"
    eks_urls.url_paths[base + "$"] = eks_urls.response.dispatch
    eks_urls.url_paths[base + "/(?P<associationId>[^/]+)$"] = eks_urls.response.dispatch
    associations: dict[tuple[str, str, str], dict[str, dict]] = {}

    def path_param(self, member: str, label: str):
        # moto's rest-json parser keeps a URI label under its own name (`name`), not the
        # member's (`clusterName`).
        return self._get_param(member) or (getattr(self, "uri_match", None) or {}).get(label)

    def of_cluster(self) -> dict[str, dict]:
        name = path_param(self, "clusterName", "name")
        if name not in self.eks_backend.clusters:
            raise ResourceNotFoundException(
                clusterName=None, nodegroupName=None, fargateProfileName=None, addonName=None,
                message=f"No cluster found for name: {name}.",
            )
        return associations.setdefault((self.current_account, self.region, name), {})

    def create(self):
        import datetime
        import uuid

        cluster = path_param(self, "clusterName", "name")
        aid = "a-" + uuid.uuid4().hex[:17]
        now = datetime.datetime.now(datetime.timezone.utc)
        a = {
            "clusterName": cluster,
            "namespace": self._get_param("namespace"),
            "serviceAccount": self._get_param("serviceAccount"),
            "roleArn": self._get_param("roleArn"),
            "associationArn": f"arn:aws:eks:{self.region}:{self.current_account}:podidentityassociation/{cluster}/{aid}",
            "associationId": aid,
            "tags": self._get_param("tags") or {},
            "createdAt": now,
            "modifiedAt": now,
        }
        of_cluster(self)[aid] = a
        return responses.ActionResult({"association": a})

    def list_(self):
        ns, sa = self._get_param("namespace"), self._get_param("serviceAccount")
        found = [
            {k: a[k] for k in ("clusterName", "namespace", "serviceAccount", "associationArn", "associationId")}
            for a in of_cluster(self).values()
            if (not ns or a["namespace"] == ns) and (not sa or a["serviceAccount"] == sa)
        ]
        return responses.ActionResult({"associations": found})

    def describe(self):
        aid = path_param(self, "associationId", "associationId")
        a = of_cluster(self).get(aid)
        if a is None:
            raise ResourceNotFoundException(
                clusterName=None, nodegroupName=None, fargateProfileName=None, addonName=None,
                message=f"No Pod Identity Association found for id: {aid}.",
            )
        return responses.ActionResult({"association": a})

    EKSResponse.create_pod_identity_association = create
    EKSResponse.list_pod_identity_associations = list_
    EKSResponse.describe_pod_identity_association = describe


def patch_signed_get() -> None:
    """moto checks a request's SigV4 signature over `data`, which for a GET is its parsed
    query string, so botocore hashes it as a form body and a correctly signed GET with a
    query (EKS ListPodIdentityAssociations?namespace=...) fails with SignatureDoesNotMatch.
    A GET or DELETE without a body is checked as sent: empty payload, the query in the URL."""
    from moto.iam import access_control

    base = access_control.IAMRequestBase
    original = getattr(base, "_create_aws_request", None)
    if original is None or "data=self._body or self._data" not in inspect.getsource(original):
        die(f"moto {moto.__version__}: IAMRequestBase._create_aws_request changed; revisit patch_signed_get")

    def _create_aws_request(self):
        if self._method in ("GET", "DELETE", "HEAD") and not self._body:
            saved, self._data = self._data, b""
            try:
                return original(self)
            finally:
                self._data = saved
        return original(self)

    base._create_aws_request = _create_aws_request


CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")


def throttling(app):
    """The WSGI layer described in the module's docstring."""
    import threading
    from urllib.parse import parse_qs

    lock = threading.Lock()
    throttled: dict[str, int] = {}  # access key -> requests refused (present: throttling on)

    def answer(start_response, status, body, headers):
        start_response(status, [("Content-Length", str(len(body)))] + headers)
        return [body]

    def wrapped(environ, start_response):
        if environ.get("PATH_INFO") == "/_swell/throttle":
            q = parse_qs(environ.get("QUERY_STRING", ""))
            key = q.get("key", [""])[0]
            with lock:
                if environ.get("REQUEST_METHOD") == "POST":
                    if q.get("on", ["1"])[0] == "1":
                        throttled.setdefault(key, 0)
                    else:
                        throttled.pop(key, None)
                count = throttled.get(key, 0)
            return answer(start_response, "200 OK", str(count).encode(), [("Content-Type", "text/plain")])
        m = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        key = m.group(1) if m else None
        with lock:
            hit = key in throttled
            if hit:
                throttled[key] += 1
        if not hit:
            return app(environ, start_response)
        content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            body = (
                "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
                "<Message>Rate exceeded</Message></Error><RequestId>swell-throttle</RequestId></ErrorResponse>"
            ).encode()
            headers = [("Content-Type", "text/xml")]
        else:
            body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
            headers = [
                ("Content-Type", content_type or "application/x-amz-json-1.0"),
                ("x-amzn-query-error", "ThrottlingException;Sender"),
            ]
        return answer(start_response, "400 Bad Request", body, headers)

    return wrapped


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
    patch_auth_error_shapes()
    patch_role_session_principals()
    patch_iam_action_prefix()
    patch_eks_pod_identity()
    patch_signed_get()

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
    server = make_server(
        args.host, args.port, throttling(app), threaded=True, request_handler=MotoRequestHandler
    )
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
        f"moto {moto.__version__} on http://{args.host}:{port} (pid {os.getpid()}, unsigned STS federation + auth error shape patches on)",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
