"""Configures the moto servers that scripts/moto.sh starts; prints shell
`export` lines for the env file. Run with the moto venv's python.

Open server (plain HTTP, any credentials): the bucket `hokan-lock` with
S3 Object Lock and a default GOVERNANCE retention, as a ransomware-safe
backup bucket is set up; `hokan-eu` in eu-west-1 for the region test.

IAM server (HTTPS, credentials enforced once configured): the bucket
`hokan-sts`; a role for AssumeRoleWithWebIdentity (OADP on AWS STS) allowed
everything on it; users that may only read, or may not delete.
"""

import json
import ssl
import sys
import urllib.request

import boto3

open_url, iam_url, ca_file = sys.argv[1:4]
out = []


def client(service, url, region="us-east-1", **kw):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=kw.get("key", "setup"),
        aws_secret_access_key=kw.get("secret", "setup"),
        verify=ca_file if url.startswith("https") else None,
    )


def ensure_bucket(s3, name, region="us-east-1", **kw):
    existing = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    if name in existing:
        return False
    args = {"Bucket": name, **kw}
    if region != "us-east-1":
        args["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**args)
    return True


# ---- the open server
s3 = client("s3", open_url)
if ensure_bucket(s3, "hokan-lock", ObjectLockEnabledForBucket=True):
    s3.put_object_lock_configuration(
        Bucket="hokan-lock",
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
ensure_bucket(client("s3", open_url, "eu-west-1"), "hokan-eu", "eu-west-1")

# ---- the IAM server: set up while it still accepts anything, then enforce.
s3 = client("s3", iam_url)
iam = client("iam", iam_url)
ensure_bucket(s3, "hokan-sts")
arn = "arn:aws:s3:::hokan-sts"


def policy(actions):
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": actions, "Resource": [arn, arn + "/*"]}
            ],
        }
    )


roles = [r["RoleName"] for r in iam.list_roles()["Roles"]]
if "hokan-backup" not in roles:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.test"},
                "Action": "sts:AssumeRoleWithWebIdentity",
            }
        ],
    }
    iam.create_role(RoleName="hokan-backup", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName="hokan-backup", PolicyName="s3", PolicyDocument=policy(["s3:*"]))
role_arn = iam.get_role(RoleName="hokan-backup")["Role"]["Arn"]
out.append(f"export HOKAN_TEST_STS_ROLE_ARN={role_arn}")

users = {
    "HOKAN_TEST_MOTO_ADMIN": ["s3:*"],
    "HOKAN_TEST_MOTO_READ_ONLY": ["s3:GetObject", "s3:ListBucket"],
    "HOKAN_TEST_MOTO_NO_DELETE": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
}
existing = [u["UserName"] for u in iam.list_users()["Users"]]
for var, actions in users.items():
    name = var.lower().replace("_", "-")
    if name not in existing:
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="s3", PolicyDocument=policy(actions))
    # Keys cannot be read back: replace them on every run.
    for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=name, AccessKeyId=k["AccessKeyId"])
    key = iam.create_access_key(UserName=name)["AccessKey"]
    out.append(f"export {var}_KEY={key['AccessKeyId']}")
    out.append(f"export {var}_SECRET={key['SecretAccessKey']}")

# From here on every request to the IAM server must be signed by a known key.
req = urllib.request.Request(iam_url + "/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"})
urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca_file)).read()
print("\n".join(out))
