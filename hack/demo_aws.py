"""AWS side of `make demo`, as the seed's Terraform sets it up (run with hack/aws.sh's python).

    demo_aws.py setup   -> prints shell `export` lines (queue URL, role ARNs)
    demo_aws.py send N  -> sends N messages
    demo_aws.py purge   -> purges the queue
"""
import json
import os
import sys

import boto3

REGION = "ca-central-1"
ENDPOINT = os.environ["SWELL_AWS_ENDPOINT"]
ADMIN = dict(
    aws_access_key_id=os.environ["SWELL_AWS_ADMIN_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["SWELL_AWS_ADMIN_SECRET_ACCESS_KEY"],
)


def client(service, region=REGION):
    return boto3.client(service, region_name=region, endpoint_url=ENDPOINT, **ADMIN)


def policy(statements):
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def setup():
    sqs, iam = client("sqs"), client("iam", "us-east-1")
    url = sqs.create_queue(QueueName="demo-app-sqs")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # keda-operator: Swell's own role, reached through IRSA.
    op = iam.create_role(
        RoleName="keda-operator",
        AssumeRolePolicyDocument=policy([{
            "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.local"},
        }]),
    )["Role"]["Arn"]
    # demo-app: the workload's role; trusts keda-operator and may read the queue.
    app = iam.create_role(
        RoleName="demo-app",
        AssumeRolePolicyDocument=policy([{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": op}}]),
    )["Role"]["Arn"]
    iam.put_role_policy(RoleName="demo-app", PolicyName="demo-app-sqs-policy",
                        PolicyDocument=policy([{"Sid": "SQS", "Effect": "Allow", "Action": ["sqs:GetQueueAttributes"], "Resource": [arn]}]))
    iam.put_role_policy(RoleName="keda-operator", PolicyName="keda-operator-assume-demo-app",
                        PolicyDocument=policy([{"Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": [app]}]))
    print(f"export DEMO_QUEUE_URL={url}\nexport DEMO_OPERATOR_ROLE={op}\nexport DEMO_APP_ROLE={app}")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "setup":
        setup()
    elif cmd == "send":
        sqs = client("sqs")
        url = sqs.get_queue_url(QueueName="demo-app-sqs")["QueueUrl"]
        for i in range(int(sys.argv[2])):
            sqs.send_message(QueueUrl=url, MessageBody=f"hello {i}")
    elif cmd == "purge":
        sqs = client("sqs")
        sqs.purge_queue(QueueUrl=sqs.get_queue_url(QueueName="demo-app-sqs")["QueueUrl"])
    else:
        sys.exit("usage: demo_aws.py setup | send N | purge")


if __name__ == "__main__":
    main()
