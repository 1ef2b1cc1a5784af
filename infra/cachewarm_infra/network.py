"""Where everything runs: an existing VPC (imported offline or looked up), or a new one."""

from __future__ import annotations

from aws_cdk import Fn, Stack, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from cachewarm_infra.config import ConfigError
from cachewarm_infra.lint import LOG_GROUP_KEYS, ignore_cfn_lint, skip_checkov
from cachewarm_infra.nag import acknowledge

#: CIDR of the VPC this app creates when no VPC context is given (context vpcCidr overrides it).
DEFAULT_VPC_CIDR = "10.42.0.0/16"

#: The custom-resource provider a new VPC brings (feature flag @aws-cdk/aws-ec2:restrictDefaultSecurityGroup),
#: a child of the stack; its function removes the rules of the VPC's default security group during deployment.
RESTRICT_DEFAULT_SG_PROVIDER = "Custom::VpcRestrictDefaultSGCustomResourceProvider"
_PROVIDER_REASON = (
    "CDK's own custom-resource provider for restrictDefaultSecurityGroup: CloudFormation invokes it only when the "
    "VPC's custom resource is created, updated or deleted, and fails the deployment if it fails"
)


class Network(Construct):
    """The VPC and the private subnets that the cache and the workers use.

    Three shapes, chosen by which context keys are set:

    * ``vpc_id`` + ``private_subnet_ids``: :meth:`Vpc.from_vpc_attributes`. Needs no credentials and no
      network, so it is the path for offline synth and CI.
    * ``vpc_id`` and/or ``vpc_name`` alone: :meth:`Vpc.from_lookup`, the original design. The CDK CLI
      resolves it with AWS credentials and caches the answer in ``cdk.context.json``.
    * nothing: a new VPC (``vpc_cidr`` or 10.42.0.0/16) over two AZs with one NAT gateway, a
      DynamoDB gateway endpoint and flow logs.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc_id: str | None = None,
        vpc_name: str | None = None,
        private_subnet_ids: tuple[str, ...] = (),
        availability_zones: tuple[str, ...] = (),
        vpc_cidr: str | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, construct_id)
        self.created = False
        if vpc_id and private_subnet_ids:
            # No lookup: AZ names are only labels here, so unknown ones become deploy-time tokens.
            zones = list(availability_zones) or [
                Fn.select(index, Fn.get_azs()) for index in range(len(private_subnet_ids))
            ]
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=vpc_id,
                availability_zones=zones,
                private_subnet_ids=list(private_subnet_ids),
                vpc_cidr_block=vpc_cidr,
            )
            acknowledge(
                self,
                "Annotation::@aws-cdk/aws-ec2:noSubnetRouteTableId",
                "Nothing in this app reads the imported subnets' route tables (no gateway endpoints or "
                "routes are added to an existing VPC), so their ids are not needed.",
            )
        elif vpc_id or vpc_name:
            stack = Stack.of(self)
            if Token.is_unresolved(stack.account) or Token.is_unresolved(stack.region):
                raise ConfigError(
                    "vpcId" if vpc_id else "vpcName",
                    vpc_id or vpc_name,
                    "looking a VPC up needs AWS credentials (the CDK CLI then sets CDK_DEFAULT_ACCOUNT and "
                    "CDK_DEFAULT_REGION); to synth offline, also pass privateSubnetIds",
                )
            self.vpc = ec2.Vpc.from_lookup(self, "Vpc", vpc_id=vpc_id, vpc_name=vpc_name)
        else:
            self.created = True
            vpc_cidr = vpc_cidr or DEFAULT_VPC_CIDR
            self.vpc = ec2.Vpc(
                self,
                "Vpc",
                # A literal CIDR (not the VPC's CidrBlock attribute) so that rules built from it stay
                # checkable at synth.
                ip_addresses=ec2.IpAddresses.cidr(vpc_cidr),
                max_azs=2,
                nat_gateways=1,
                subnet_configuration=[
                    ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                    ec2.SubnetConfiguration(
                        name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
                    ),
                ],
                # DynamoDB traffic stays off the NAT gateway (gateway endpoints cost nothing).
                gateway_endpoints={
                    "DynamoDb": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB)
                },
            )
            flow_logs = logs.LogGroup(self, "FlowLogs", retention=log_retention)
            skip_checkov(
                flow_logs,
                "CKV_AWS_158",
                f"The flow logs hold rejected connections' addresses and ports, no payloads. {LOG_GROUP_KEYS}",
            )
            self.vpc.add_flow_log(
                "FlowLog",
                destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                traffic_type=ec2.FlowLogTrafficType.REJECT,
            )
            self._acknowledge_provider()
        # Imported CIDRs are known only when given; a created VPC always knows its own.
        self.vpc_cidr: str | None = vpc_cidr

    def _acknowledge_provider(self) -> None:
        """cfn-lint's and checkov's findings on the function of the provider a new VPC brings (cachewarm_infra.lint)."""
        provider = Stack.of(self).node.try_find_child(RESTRICT_DEFAULT_SG_PROVIDER)
        if provider is None:  # the feature flag is off: no provider, nothing to acknowledge
            return
        handler = provider.node.find_child("Handler")
        ignore_cfn_lint(
            handler,
            "W3005",
            f"{_PROVIDER_REASON}. CDK renders its DependsOn on the role that the Role GetAtt already implies; "
            "harmless, and the resource is CDK's to shape.",
        )
        skip_checkov(
            handler,
            "CKV_AWS_116",
            f"{_PROVIDER_REASON}, so a failure surfaces in the stack events; a dead-letter queue would hold nothing "
            "to act on.",
        )
        skip_checkov(
            handler,
            "CKV_AWS_117",
            f"{_PROVIDER_REASON}. It calls only EC2 APIs (revoke the default security group's rules) and reaches "
            "nothing inside the VPC, so it runs outside it.",
        )
        skip_checkov(
            handler,
            "CKV_AWS_115",
            f"{_PROVIDER_REASON}, one invocation at a time. Reserving concurrency would take from the account's "
            "unreserved pool for no gain.",
        )

    @property
    def private_subnets(self) -> ec2.SubnetSelection:
        """Private subnets: with egress when the VPC has them, otherwise isolated ones."""
        if self.vpc.private_subnets:
            return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)

    @property
    def private_subnet_ids(self) -> list[str]:
        return self.vpc.select_subnets(subnet_type=self.private_subnets.subnet_type).subnet_ids
