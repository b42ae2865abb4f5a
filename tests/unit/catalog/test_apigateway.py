"""Reading usage plans and API keys from moto's API Gateway (a local server, no network)."""


import boto3
import pytest

from worker.catalog.apigateway import AwsTarget, read_apigateway_catalog


async def test_every_key_of_a_usage_plan_becomes_a_catalog_entry(moto_url: str) -> None:
    client = boto3.client("apigateway", region_name="us-east-1", endpoint_url=moto_url,
                          aws_access_key_id="test", aws_secret_access_key="test")
    gold = client.create_usage_plan(name="Gold")
    free = client.create_usage_plan(name="Free")
    acme = client.create_api_key(name="Acme Corp", enabled=True, customerId="cust-acme")
    globex = client.create_api_key(name="Globex", enabled=True)
    client.create_api_key(name="No plan", enabled=True)
    client.create_usage_plan_key(usagePlanId=gold["id"], keyId=acme["id"], keyType="API_KEY")
    client.create_usage_plan_key(usagePlanId=free["id"], keyId=globex["id"], keyType="API_KEY")

    entries = await read_apigateway_catalog(
        AwsTarget(region="us-east-1", endpoint_url=moto_url, access_key_id="test",
                  secret_access_key="test")
    )

    by_key = {entry.api_key_id: entry for entry in entries}
    assert set(by_key) == {acme["id"], globex["id"]}
    assert (by_key[acme["id"]].usage_plan_name, by_key[acme["id"]].customer_id,
            by_key[acme["id"]].customer_name) == ("Gold", "cust-acme", "Acme Corp")
    assert (by_key[globex["id"]].usage_plan_id, by_key[globex["id"]].api_key_name) == (
        free["id"], "Globex")


async def test_a_refused_call_is_one_line_with_aws_code_and_the_permissions_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from botocore.exceptions import ClientError

    from worker.catalog import apigateway

    async def refused(target: AwsTarget) -> list:
        raise ClientError({"Error": {"Code": "AccessDeniedException",
                                     "Message": "User is not authorized"}}, "GetApiKeys")

    monkeypatch.setattr(apigateway, "_read", refused)
    with pytest.raises(apigateway.ApiGatewayError) as error:
        await read_apigateway_catalog(AwsTarget(region="us-east-1"))
    assert str(error.value) == (
        "AWS API Gateway refused GetApiKeys: AccessDeniedException: User is not authorized. "
        f"Check the AWS credentials and that they allow {apigateway.PERMISSIONS}")
    assert not isinstance(error.value, apigateway.ApiGatewaySettingError)  # exit code 1
