#!/usr/bin/env bash
# Self-contained check of the local AWS (hack/aws.sh + hack/moto_launcher.py): SQS,
# IAM enforcement (users, roles, AssumeRole), unsigned STS federation calls with
# enforcement on, the owner watchdog, and that teardown leaves no process behind.
# Prints PASS/FAIL per check and "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
aws="$here/aws.sh"

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
# alive PID: running and not a zombie.
alive() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; [ "${s%% *}" != Z ]; }
wait_gone() { # SECONDS PID DIR: true once PID is gone and DIR removed
  local deadline=$((SECONDS + $1))
  while alive "$2" || [ -e "$3" ]; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.2; done
}

py=$("$aws" python)
work=$(mktemp -d "${TMPDIR:-/tmp}/swell-aws-smoke.XXXXXX")
dir1="$work/a" dir2="$work/b" sleeper=""
cleanup() {
  "$aws" down "$dir1" >/dev/null 2>&1 || true
  "$aws" down "$dir2" >/dev/null 2>&1 || true
  [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# `up` must not leave its stdout open in a background process, or $(…) would hang.
env1=$(timeout 120 "$aws" up --dir "$dir1" --owner-pid $$) || { fail "aws.sh up"; exit 1; }
eval "$env1"
pass "aws.sh up ($SWELL_AWS_ENDPOINT, account $MOTO_ACCOUNT_ID)"
[ "$AWS_ENDPOINT_URL" = "$SWELL_AWS_ENDPOINT" ] && [ -f "$dir1/aws.env" ] && [ -s "$dir1/moto.pid" ] \
  && pass "env file, pid file and exports" || fail "env file, pid file and exports"

# A second server at the same time, owned by a short-lived process: the watchdog must
# stop it and remove its directory once that process is gone.
sleep 300 &
sleeper=$!
env2=$(timeout 120 "$aws" up --dir "$dir2" --owner-pid "$sleeper")
ep2=$(sed -n 's/^export SWELL_AWS_ENDPOINT=//p' <<<"$env2")
pid2=$(cat "$dir2/moto.pid")
if [ "$ep2" != "$SWELL_AWS_ENDPOINT" ] && curl -sf --noproxy '*' -o /dev/null "$ep2/moto-api/" \
  && curl -sf --noproxy '*' -o /dev/null "$SWELL_AWS_ENDPOINT/moto-api/"; then
  pass "two servers at once ($SWELL_AWS_ENDPOINT and $ep2)"
else
  fail "two servers at once"
fi

# ---- the AWS checks, with the venv's boto3; they print their own PASS/FAIL lines
set +e
HERE="$here" "$py" - <<'PY' | tee "$work/py.out"
import base64, json, os, re, subprocess, sys
import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

ep, region, acct = os.environ["SWELL_AWS_ENDPOINT"], os.environ["AWS_REGION"], os.environ["MOTO_ACCOUNT_ID"]
aws_sh = os.path.join(os.environ["HERE"], "aws.sh")
cfg = Config(retries={"max_attempts": 1})
failures = 0

def client(svc, key=None, secret=None, token=None, unsigned=False):
    c = Config(retries={"max_attempts": 1}, signature_version=UNSIGNED) if unsigned else cfg
    return boto3.client(svc, endpoint_url=ep, region_name=region, config=c,
                        aws_access_key_id=key or "swell-smoke", aws_secret_access_key=secret or "swell-smoke",
                        aws_session_token=token)

def check(name, fn, expect_error=None):
    """Run fn; PASS if it returns truthy (or raises ClientError with code expect_error)."""
    global failures
    try:
        got = fn()
        ok = expect_error is None and bool(got)
        detail = "" if ok else f"(expected {expect_error or 'success'}, got {got!r})"
    except ClientError as e:
        code, msg = e.response["Error"]["Code"], e.response["Error"].get("Message", "")
        detail = f"[{code}: {msg}]"
        # The code must be the one boto3 parses itself: an XML error sent to a JSON-protocol
        # client (what unpatched moto does for IAM-check errors) shows up as code '403'.
        ok = expect_error is not None and code == expect_error
    except Exception as e:  # noqa: BLE001
        ok, detail = False, f"[{type(e).__name__}: {e}]"
    print(f"{'PASS' if ok else 'FAIL'} {name} {detail}".rstrip(), flush=True)
    failures += 0 if ok else 1
    return ok

def wire(c):
    """Record the raw (status, headers, body) of c's responses, to check the error shape."""
    seen = []
    c.meta.events.register("after-call", lambda http_response, **_: seen.append(
        (http_response.status_code, {k.lower(): v for k, v in http_response.headers.items()},
         http_response.content.decode("utf-8", "replace"))))
    return c, seen

def shape(name, seen, content_type, query_error, body_check):
    """PASS if the last recorded response has that Content-Type, x-amzn-query-error and body."""
    global failures
    try:
        status, headers, body = seen[-1]
        ok = (headers.get("content-type", "").startswith(content_type)
              and headers.get("x-amzn-query-error") == query_error and body_check(body))
        detail = "" if ok else f"(got {status} {headers.get('content-type')!r} query-error={headers.get('x-amzn-query-error')!r} {body[:200]!r})"
    except Exception as e:  # noqa: BLE001
        ok, detail = False, f"[{type(e).__name__}: {e}]"
    print(f"{'PASS' if ok else 'FAIL'} {name} {detail}".rstrip(), flush=True)
    failures += 0 if ok else 1
    return ok

def policy(action, resource):
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]})

# -- set-up with IAM enforcement off
sqs = client("sqs")
url = sqs.create_queue(QueueName="swell-smoke")["QueueUrl"]
queue_arn = f"arn:aws:sqs:{region}:{acct}:swell-smoke"
for i in range(3):
    sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")

def depth(c):
    return c.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"]

check("SQS: 3 messages sent, ApproximateNumberOfMessages=3", lambda: depth(sqs) == "3")
check("SQS: queue ARN is " + queue_arn, lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"] == queue_arn)

iam = client("iam")
iam.create_user(UserName="nope")
iam.create_user(UserName="reader")
iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=policy("sqs:GetQueueAttributes", queue_arn))
nope_k = iam.create_access_key(UserName="nope")["AccessKey"]
reader_k = iam.create_access_key(UserName="reader")["AccessKey"]
reader_arn = f"arn:aws:iam::{acct}:user/reader"
role_arn = iam.create_role(RoleName="queue-reader", AssumeRolePolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": reader_arn}, "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"Federated": f"arn:aws:iam::{acct}:oidc-provider/example.com"},
         "Action": "sts:AssumeRoleWithWebIdentity"},
    ]}))["Role"]["Arn"]
iam.put_role_policy(RoleName="queue-reader", PolicyName="read", PolicyDocument=policy("sqs:GetQueueAttributes", queue_arn))

def as_user(svc, k):
    return client(svc, k["AccessKeyId"], k["SecretAccessKey"])

def as_creds(svc, c):
    return client(svc, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])

# -- IAM enforcement on
subprocess.run([aws_sh, "auth", "on", "--endpoint", ep], check=True)
nope_sqs, nope_wire = wire(as_user("sqs", nope_k))
check("auth on: user 'nope' (no policy) GetQueueAttributes -> AccessDenied", lambda: depth(nope_sqs), "AccessDenied")
# What AWS sends a JSON-protocol, awsQueryCompatible client (SQS): JSON body, the query
# code in x-amzn-query-error (what the SDKs report as the code).
shape("auth on: ... sent as JSON, x-amzn-query-error 'AccessDenied;Sender'", nope_wire,
      "application/x-amz-json-1.0", "AccessDenied;Sender",
      lambda b: json.loads(b)["__type"].endswith("#AccessDeniedException") and "sqs:GetQueueAttributes" in json.loads(b)["message"])
check("auth on: user 'reader' GetQueueAttributes -> 3", lambda: depth(as_user("sqs", reader_k)) == "3")
check("auth on: unknown access key -> InvalidClientTokenId", lambda: depth(client("sqs", "AKIAUNKNOWNUNKNOWN00")), "InvalidClientTokenId")
# Query-protocol services get XML, in awsQuery's shape: <Error> directly under
# <ErrorResponse> (the AWS SDK for Rust finds the code nowhere else).
def query_xml(code):
    return lambda b: re.fullmatch(r'<ErrorResponse xmlns="[^"]+"><Error><Type>Sender</Type><Code>' + code
                                  + r'</Code><Message>[^<]+</Message></Error><RequestId>[^<]+</RequestId></ErrorResponse>', b)
nope_iam, iam_wire = wire(as_user("iam", nope_k))
check("auth on: user 'nope' iam:ListUsers -> AccessDenied", lambda: nope_iam.list_users(), "AccessDenied")
shape("auth on: ... sent as awsQuery XML, no x-amzn-query-error", iam_wire, "text/xml", None, query_xml("AccessDenied"))
bad_sts, sts_wire = wire(client("sts", "AKIAUNKNOWNUNKNOWN00"))
check("auth on: unknown access key GetCallerIdentity -> InvalidClientTokenId",
      lambda: bad_sts.get_caller_identity(), "InvalidClientTokenId")
shape("auth on: ... sent as awsQuery XML", sts_wire, "text/xml", None, query_xml("InvalidClientTokenId"))
check("auth on: 'reader' with a wrong secret -> SignatureDoesNotMatch",
      lambda: depth(client("sqs", reader_k["AccessKeyId"], "wrong")), "SignatureDoesNotMatch")
check("auth on: 'reader' SendMessage (not in its policy) -> AccessDenied",
      lambda: as_user("sqs", reader_k).send_message(QueueUrl=url, MessageBody="x"), "AccessDenied")

def assume(k):
    return as_user("sts", k).assume_role(RoleArn=role_arn, RoleSessionName="smoke")["Credentials"]

# moto evaluates AssumeRole as (caller's identity policy allows sts:AssumeRole) AND (trust
# policy names the caller). Real AWS, same account, grants it when the trust policy names the
# user ARN even with no identity policy. Show what moto does, then give reader the (AWS-valid)
# identity permission too.
trust_only = None
try:
    assume(reader_k); trust_only = "allowed"
except ClientError as e:
    trust_only = e.response["Error"]["Code"]
print(f"INFO AssumeRole by 'reader' with the trust policy only (no sts:AssumeRole in its own policy): {trust_only}"
      " (real AWS, same account: allowed)", flush=True)
subprocess.run([aws_sh, "auth", "off", "--endpoint", ep], check=True)
iam.put_user_policy(UserName="reader", PolicyName="assume", PolicyDocument=policy("sts:AssumeRole", role_arn))
subprocess.run([aws_sh, "auth", "on", "--endpoint", ep], check=True)

creds = {}
check("auth on: AssumeRole by 'reader' (named in the trust policy) works", lambda: creds.update(assume(reader_k)) or creds)
check("auth on: AssumeRole by 'nope' -> AccessDenied", lambda: assume(nope_k), "AccessDenied")
check("auth on: assumed-role creds GetQueueAttributes -> 3", lambda: depth(as_creds("sqs", creds)) == "3")
check("auth on: assumed-role creds SendMessage (not in role policy) -> AccessDenied",
      lambda: as_creds("sqs", creds).send_message(QueueUrl=url, MessageBody="x"), "AccessDenied")

sts_unsigned = client("sts", unsigned=True)
wi = {}
check("auth on: UNSIGNED AssumeRoleWithWebIdentity works",
      lambda: wi.update(sts_unsigned.assume_role_with_web_identity(
          RoleArn=role_arn, RoleSessionName="web", WebIdentityToken="header.payload.signature")["Credentials"]) or wi)
check("auth on: web-identity creds GetQueueAttributes -> 3", lambda: depth(as_creds("sqs", wi)) == "3")
check("auth on: web-identity creds GetCallerIdentity is the assumed role",
      lambda: as_creds("sts", wi).get_caller_identity()["Arn"] == f"arn:aws:sts::{acct}:assumed-role/queue-reader/web")

saml = base64.b64encode(f"""<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"
 xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><saml:Assertion><saml:AttributeStatement>
 <saml:Attribute Name="https://aws.amazon.com/SAML/Attributes/Role"><saml:AttributeValue>{role_arn},arn:aws:iam::{acct}:saml-provider/smoke</saml:AttributeValue></saml:Attribute>
 <saml:Attribute Name="https://aws.amazon.com/SAML/Attributes/RoleSessionName"><saml:AttributeValue>saml-user</saml:AttributeValue></saml:Attribute>
 </saml:AttributeStatement></saml:Assertion></samlp:Response>""".encode()).decode()
sm = {}
check("auth on: UNSIGNED AssumeRoleWithSAML works",
      lambda: sm.update(sts_unsigned.assume_role_with_saml(
          RoleArn=role_arn, PrincipalArn=f"arn:aws:iam::{acct}:saml-provider/smoke", SAMLAssertion=saml)["Credentials"]) or sm)
check("auth on: SAML creds GetQueueAttributes -> 3", lambda: depth(as_creds("sqs", sm)) == "3")
# The patch covers unsigned calls only: every other unsigned call is still refused.
def refused(fn):
    try:
        fn()
        return False
    except Exception:  # noqa: BLE001 - moto answers 500 (no Authorization header), not XML
        return True
check("auth on: UNSIGNED GetCallerIdentity is still refused (patch is that narrow)",
      lambda: refused(lambda: sts_unsigned.get_caller_identity()))

subprocess.run([aws_sh, "auth", "off", "--endpoint", ep], check=True)
check("auth off: user 'nope' GetQueueAttributes -> 3 again", lambda: depth(as_user("sqs", nope_k)) == "3")
# moto's own SQS errors already have that shape (its JSON serializer, unpatched).
check("auth off: GetQueueAttributes of a missing queue -> AWS.SimpleQueueService.NonExistentQueue",
      lambda: nope_sqs.get_queue_attributes(QueueUrl=url + "-missing"), "AWS.SimpleQueueService.NonExistentQueue")
shape("auth off: ... sent as JSON, x-amzn-query-error 'AWS.SimpleQueueService.NonExistentQueue;Sender'", nope_wire,
      "application/x-amz-json-1.0", "AWS.SimpleQueueService.NonExistentQueue;Sender",
      lambda b: json.loads(b)["__type"].endswith("#QueueDoesNotExist"))
subprocess.run([aws_sh, "reset", "--endpoint", ep], check=True)
check("reset: the queue is gone",
      lambda: sqs.get_queue_url(QueueName="swell-smoke"), "AWS.SimpleQueueService.NonExistentQueue")
sys.exit(1 if failures else 0)
PY
py_rc=${PIPESTATUS[0]}
set -e
py_pass=$(grep -c '^PASS' "$work/py.out" || true)
py_fail=$(grep -c '^FAIL' "$work/py.out" || true)
passed=$((passed + py_pass)) failed=$((failed + py_fail))
[ "$py_rc" -eq 0 ] || [ "$py_fail" -gt 0 ] || fail "python checks exited $py_rc"

# ---- teardown
kill "$sleeper"; wait "$sleeper" 2>/dev/null || true
if wait_gone 10 "$pid2" "$dir2"; then pass "watchdog: owner exited -> server $pid2 stopped, $dir2 removed"
else fail "watchdog: server $pid2 or $dir2 still there 10s after its owner exited"; fi

pid1=$(cat "$dir1/moto.pid") wd1=$(cat "$dir1/watchdog.pid")
"$aws" down "$dir1" 2>/dev/null
if ! alive "$pid1" && ! alive "$wd1" && [ ! -e "$dir1" ]; then pass "down: server $pid1 and watchdog $wd1 stopped, $dir1 removed"
else fail "down: something is left (server $pid1, watchdog $wd1, $dir1)"; fi
"$aws" down "$dir1" 2>/dev/null && pass "down again: idempotent" || fail "down again"

left=""
for f in /proc/[0-9]*/cmdline; do
  c=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
  [[ "$c" == *"$work"* ]] && left+=" ${f#/proc/}"
done
alive "$sleeper" && left+=" $sleeper/sleeper"
[ -z "$left" ] && pass "no process left behind" || fail "processes left:$left"

echo "aws-smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
