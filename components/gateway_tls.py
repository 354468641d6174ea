"""How clients reach the gateway: HTTPS on its DNS name, end to end.

The stack runs its own small CA (pulumi-tls): an ECDSA P-256 root valid ten years and a serving
certificate for the gateway's DNS name and its in-cluster Service names. LiteLLM terminates TLS in
the pod, so the internal NLB only passes TCP through and nothing in the VPC sees the traffic in
clear; clients trust the CA certificate the stack exports (gatewayCaCertificate). Chosen over an
ACM certificate on the NLB because that needs a domain the organisation has delegated to ACM and
leaves the NLB-to-pod hop in plain HTTP, and over cert-manager because it adds a controller and
CRDs the first `pulumi up` would have to wait for. The keys live in Pulumi state as secrets.

The DNS name is a CNAME to the load balancer in a Route 53 private hosted zone for its parent
domain, associated with the VPC (Lambdas and pods resolve it; VPN clients need a resolver rule).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_tls as tls

CA_VALIDITY_HOURS = 10 * 365 * 24
RENEW_BEFORE_HOURS = 30 * 24  # a `pulumi up` in the certificate's last 30 days issues a new one


@dataclass
class ServingCertificate:
    ca_cert_pem: pulumi.Output[str]
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]  # secret
    dns_names: list[str]


def issue(
    name: str, dns_names: list[str], validity_days: int, organisation: str, parent
) -> ServingCertificate:
    """A private CA and a server certificate for `dns_names` signed by it."""
    child = pulumi.ResourceOptions(parent=parent)
    ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
    ca = tls.SelfSignedCert(
        f"{name}-ca",
        private_key_pem=ca_key.private_key_pem,
        is_ca_certificate=True,
        subject={"common_name": f"{organisation} gateway CA", "organization": organisation},
        validity_period_hours=CA_VALIDITY_HOURS,
        allowed_uses=["cert_signing", "crl_signing"],
        opts=child,
    )
    key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
    request = tls.CertRequest(
        f"{name}-request",
        private_key_pem=key.private_key_pem,
        subject={"common_name": dns_names[0], "organization": organisation},
        dns_names=dns_names,
        opts=child,
    )
    cert = tls.LocallySignedCert(
        f"{name}-cert",
        cert_request_pem=request.cert_request_pem,
        ca_private_key_pem=ca_key.private_key_pem,
        ca_cert_pem=ca.cert_pem,
        validity_period_hours=validity_days * 24,
        early_renewal_hours=RENEW_BEFORE_HOURS,
        allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
        opts=child,
    )
    return ServingCertificate(
        ca.cert_pem, cert.cert_pem, pulumi.Output.secret(key.private_key_pem), dns_names
    )


def private_record(
    name: str, hostname: str, vpc_id: pulumi.Input[str], target: pulumi.Input[str], parent
) -> None:
    """`hostname` CNAME `target` in a private hosted zone for its parent domain, in the VPC."""
    child = pulumi.ResourceOptions(parent=parent)
    zone = aws.route53.Zone(
        f"{name}-zone",
        name=hostname.split(".", 1)[1],
        comment="Private names of the LLMOps platform",
        vpcs=[{"vpc_id": vpc_id}],
        force_destroy=True,  # it holds only the records this program writes
        opts=child,
    )
    aws.route53.Record(
        f"{name}-record",
        zone_id=zone.zone_id,
        name=hostname,
        type="CNAME",
        ttl=60,
        records=[target],
        opts=child,
    )
