"""Realistic computed outputs for the offline engine: what AWS and Kubernetes would return.

Values are deterministic (derived from the resource name) so plans are stable across runs.
Every invoke the program makes needs an entry in INVOKES; an unknown one fails loudly.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

ACCOUNT_ID = "111122223333"
DEPLOY_ROLE = "llmops-deploy"


def _hex(seed: str, length: int = 17) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


def _module_and_kind(type_: str) -> tuple[str, str]:
    # "aws:ec2/subnet:Subnet" -> ("ec2", "subnet")
    module_path = type_.split(":")[1]
    module, _, kind = module_path.partition("/")
    return module, kind


# EC2-style ids by resource kind.
_ID_PREFIX = {
    "vpc": "vpc",
    "subnet": "subnet",
    "securityGroup": "sg",
    "defaultSecurityGroup": "sg",
    "routeTable": "rtb",
    "natGateway": "nat",
    "eip": "eipalloc",
    "internetGateway": "igw",
    "vpcEndpoint": "vpce",
    "launchTemplate": "lt",
    "flowLog": "fl",
    "routeTableAssociation": "rtbassoc",
    "networkInterface": "eni",
}


def resource_state(type_: str, name: str, inputs: dict[str, Any], region: str) -> tuple[str, dict[str, Any]]:
    """The (id, outputs) a real provider would return for a new resource."""
    state = dict(inputs)
    if type_ == "random:index/randomPassword:RandomPassword":
        # A fixed fake (the engine masks it: RandomPassword.result is a secret output).
        fake = f"offline-fake-{_hex(name, int(inputs.get('length', 32)))}"
        state.update(result=fake, bcryptHash="$2a$10$fake")
        return f"{name}-id", state
    if type_.startswith("tls:"):
        return f"{name}-id", {**state, **_tls_state(type_, name)}
    if not type_.startswith("aws:"):
        if type_.startswith("kubernetes:") and "metadata" in inputs:
            meta = {"name": f"{name}-{_hex(name, 8)}", **(inputs.get("metadata") or {})}
            state["metadata"] = meta
            if (
                type_ == "kubernetes:core/v1:Service"
                and (inputs.get("spec") or {}).get("type") == "LoadBalancer"
            ):
                host = f"internal-{_hex(name, 20)}.{region}.elb.amazonaws.com"
                state["status"] = {"loadBalancer": {"ingress": [{"hostname": host}]}}
            return meta["name"], state
        return f"{name}-id", state

    module, kind = _module_and_kind(type_)
    physical = inputs.get("name") or f"{name}-{_hex(name, 7)}"
    arn = f"arn:aws:{module}:{region}:{ACCOUNT_ID}:{kind.lower()}/{physical}"
    rid = f"{_ID_PREFIX[kind]}-{_hex(name)}" if kind in _ID_PREFIX else physical
    state.setdefault("name", physical)

    if module == "iam" and kind == "openIdConnectProvider":
        # The ARN names the issuer's host (what components/platform.py computes for its trust).
        host = str(inputs.get("url", "")).removeprefix("https://")
        rid = arn = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{host}"
    elif module == "iam":
        arn = f"arn:aws:iam::{ACCOUNT_ID}:{kind.lower()}/{physical}"
        state["uniqueId"] = "AROA" + _hex(name, 16).upper()
    elif module == "kms":
        digits = _hex(name, 32)  # a key id is a UUID
        rid = f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
        arn = f"arn:aws:kms:{region}:{ACCOUNT_ID}:key/{rid}"
        state["keyId"] = rid
    elif module == "s3" and kind == "bucket":
        bucket = inputs.get("bucket") or f"{inputs.get('bucketPrefix') or name + '-'}{_hex(name, 8)}"
        rid, arn = bucket, f"arn:aws:s3:::{bucket}"
        state.update(
            bucket=bucket,
            bucketDomainName=f"{bucket}.s3.amazonaws.com",
            bucketRegionalDomainName=f"{bucket}.s3.{region}.amazonaws.com",
        )
    elif module == "sqs" and kind == "queue":
        arn = f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{physical}"
        state["url"] = f"https://sqs.{region}.amazonaws.com/{ACCOUNT_ID}/{physical}"
        rid = state["url"]
    elif module == "cloudwatch" and kind == "logGroup":
        arn = f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:{physical}"
    elif module == "eks" and kind == "cluster":
        cert = "-----BEGIN CERTIFICATE-----\nMIIC-offline-fake\n-----END CERTIFICATE-----\n"
        state.update(
            endpoint=f"https://{_hex(name, 32).upper()}.gr7.{region}.eks.amazonaws.com",
            certificateAuthority={"data": base64.b64encode(cert.encode()).decode()},
            identities=[
                {
                    "oidcs": [
                        {"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{_hex(name, 32).upper()}"}
                    ]
                }
            ],
            vpcConfig={
                **(inputs.get("vpcConfig") or {}),
                "clusterSecurityGroupId": f"sg-{_hex(name + 'sg')}",
                "vpcId": f"vpc-{_hex(name + 'vpc')}",
            },
            status="ACTIVE",
        )
        arn = f"arn:aws:eks:{region}:{ACCOUNT_ID}:cluster/{physical}"
    elif module == "ec2" and kind == "vpcEndpoint" and inputs.get("vpcEndpointType") == "Gateway":
        # The service's prefix-list ranges (documentation ranges here; AWS returns S3's own).
        state.update(prefixListId=f"pl-{_hex(name, 8)}", cidrBlocks=["192.0.2.0/24", "198.51.100.0/24"])
    elif module == "ec2" and kind == "instance":
        rid = f"i-{_hex(name)}"  # not by _ID_PREFIX: RDS instances keep their names as ids
        arn = f"arn:aws:ec2:{region}:{ACCOUNT_ID}:instance/{rid}"
        state["instanceState"] = "running"
    elif module == "ec2" and kind == "launchTemplate":
        state["latestVersion"] = 1
    elif module == "ec2" and kind == "eip":
        state.update(allocationId=rid, publicIp="198.51.100." + str(int(_hex(name, 2), 16) % 250 + 1))
    elif module == "elasticache" and kind == "serverlessCache":
        # Serverless caches answer on 6379 (primary) and 6380 (read from replicas), TLS only.
        host = f"{physical}-{_hex(name, 6)}.serverless.{region}.cache.amazonaws.com"
        state["endpoints"] = [{"address": host, "port": 6379}]
        state["readerEndpoints"] = [{"address": host, "port": 6380}]
    elif module == "rds" and kind == "instance":
        host = f"{physical}.{_hex(name, 12)}.{region}.rds.amazonaws.com"
        state.update(address=host, endpoint=f"{host}:5432", port=5432)
    elif module == "lambda" and kind == "function":
        arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{physical}"
        state["invokeArn"] = f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations"
    elif module == "sns" and kind == "topic":
        arn = f"arn:aws:sns:{region}:{ACCOUNT_ID}:{physical}"
        rid = arn
    elif module == "dynamodb" and kind == "table":
        arn = f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{physical}"
    elif module == "secretsmanager" and kind == "secret":
        arn = f"arn:aws:secretsmanager:{region}:{ACCOUNT_ID}:secret:{physical}-{_hex(name, 6)}"
        rid = arn
    elif module == "amp" and kind == "workspace":
        rid = f"ws-{_hex(name, 8)}-{_hex(name + 'ws', 4)}-{_hex(name + 'ws2', 4)}"
        arn = f"arn:aws:aps:{region}:{ACCOUNT_ID}:workspace/{rid}"
        state["prometheusEndpoint"] = f"https://aps-workspaces.{region}.amazonaws.com/workspaces/{rid}/"
    elif module == "amp" and kind == "scraper":
        rid = f"s-{_hex(name, 8)}-{_hex(name + 's', 4)}"
        arn = f"arn:aws:aps:{region}:{ACCOUNT_ID}:scraper/{rid}"
        state["roleArn"] = (
            f"arn:aws:iam::{ACCOUNT_ID}:role/aws-service-role/scraper.aps.amazonaws.com/"
            f"AWSServiceRoleForAmazonPrometheusScraper_{_hex(name, 15)}"
        )
    elif module == "codebuild" and kind == "project":
        rid = arn = f"arn:aws:codebuild:{region}:{ACCOUNT_ID}:project/{physical}"
        state["badgeUrl"] = ""
    elif module == "codebuild" and kind == "webhook":
        # No `secret` output: the real one is a secret, and the engine never records its value.
        rid = str(inputs.get("projectName"))
        url = f"https://codebuild.{region}.amazonaws.com/webhooks?t={_hex(name, 32)}"
        state.update(url=url, payloadUrl=url)
    elif module == "codeconnections" and kind == "connection":
        digits = _hex(name, 32)
        uuid = f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
        rid = arn = f"arn:aws:codeconnections:{region}:{ACCOUNT_ID}:connection/{uuid}"
        state.update(connectionStatus="PENDING", ownerAccountId=ACCOUNT_ID)
    elif module == "vpc" and kind == "securityGroupIngressRule":
        rid = f"sgr-{_hex(name)}"
        arn = f"arn:aws:ec2:{region}:{ACCOUNT_ID}:security-group-rule/{rid}"
        state["securityGroupRuleId"] = rid
    elif module == "route53" and kind == "zone":
        rid = "Z" + _hex(name, 20).upper()
        state.update(zoneId=rid, nameServers=[f"ns-{i}.awsdns-00.com" for i in (1, 2)])
        arn = f"arn:aws:route53:::hostedzone/{rid}"
    state.setdefault("arn", arn)
    state.setdefault("id", rid)
    return rid, state


def _pem(kind: str, seed: str) -> str:
    body = base64.b64encode(f"offline-fake-{kind}-{seed}".encode()).decode()
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n"


def _tls_state(type_: str, name: str) -> dict[str, Any]:
    """pulumi-tls outputs: fake PEMs (the private key is a secret output the engine masks)."""
    if type_ == "tls:index/privateKey:PrivateKey":
        return {"privateKeyPem": _pem("PRIVATE KEY", name), "publicKeyPem": _pem("PUBLIC KEY", name)}
    if type_ == "tls:index/certRequest:CertRequest":
        return {"certRequestPem": _pem("CERTIFICATE REQUEST", name)}
    return {
        "certPem": _pem("CERTIFICATE", name),
        "validityStartTime": "2026-01-01T00:00:00Z",
        "validityEndTime": "2027-01-01T00:00:00Z",
        "readyForRenewal": False,
    }


def _caller_identity(args: dict, region: str) -> dict:
    return {
        "accountId": ACCOUNT_ID,
        "arn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{DEPLOY_ROLE}/pulumi",
        "userId": f"AROA{_hex('deploy', 16).upper()}:pulumi",
        "id": ACCOUNT_ID,
    }


def _session_context(args: dict, region: str) -> dict:
    return {
        "arn": args["arn"],
        "issuerArn": f"arn:aws:iam::{ACCOUNT_ID}:role/{DEPLOY_ROLE}",
        "issuerId": f"AROA{_hex('deploy', 16).upper()}",
        "issuerName": DEPLOY_ROLE,
        "sessionName": "pulumi",
        "id": args["arn"],
    }


def _partition(args: dict, region: str) -> dict:
    return {
        "partition": "aws",
        "dnsSuffix": "amazonaws.com",
        "reverseDnsPrefix": "com.amazonaws",
        "id": "aws",
    }


def _availability_zones(args: dict, region: str) -> dict:
    letters = "abc"
    return {
        "names": [f"{region}{x}" for x in letters],
        "zoneIds": [f"{region[:3]}{region.split('-')[-1]}-az{i + 1}" for i in range(len(letters))],
        "groupNames": [region],
        "state": args.get("state", "available"),
        "id": region,
    }


def _region(args: dict, region: str) -> dict:
    return {"name": region, "region": region, "endpoint": f"ec2.{region}.amazonaws.com", "id": region}


def _secret_version(args: dict, region: str) -> dict:
    """A provider API key the operator stored in Secrets Manager (fake value, never a real key)."""
    name = args["secretId"]
    return {
        "arn": f"arn:aws:secretsmanager:{region}:{ACCOUNT_ID}:secret:{name}-{_hex(name, 6)}",
        "id": f"{name}|AWSCURRENT",
        "secretId": name,
        "secretString": f"offline-fake-{_hex(name, 12)}",
        "versionId": _hex(name + "v", 32),
        "versionStage": "AWSCURRENT",
        "versionStages": ["AWSCURRENT"],
    }


def _ami(args: dict, region: str) -> dict:
    """The one image whose exact name the program filters on (llmops/versions.py pins it)."""
    filters = {f.get("name"): f.get("values") or [] for f in args.get("filters") or []}
    name = (filters.get("name") or ["offline-fake-image"])[0]
    arch = filters.get("architecture") or ["x86_64"]
    ami = f"ami-{_hex(region + name)}"
    return {
        "id": ami,
        "imageId": ami,
        "name": name,
        "architecture": arch[0],
        "ownerId": "137112412989",  # Amazon's own images (owner alias "amazon")
        "owners": args.get("owners") or [],
        "rootDeviceName": "/dev/xvda",
        "rootDeviceType": "ebs",
        "virtualizationType": "hvm",
        "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": "8", "volumeType": "gp3"}}],
    }


INVOKES = {
    "aws:index/getCallerIdentity:getCallerIdentity": _caller_identity,
    "aws:iam/getSessionContext:getSessionContext": _session_context,
    "aws:index/getPartition:getPartition": _partition,
    "aws:index/getAvailabilityZones:getAvailabilityZones": _availability_zones,
    "aws:index/getRegion:getRegion": _region,
    "aws:secretsmanager/getSecretVersion:getSecretVersion": _secret_version,
    "aws:ec2/getAmi:getAmi": _ami,
}
