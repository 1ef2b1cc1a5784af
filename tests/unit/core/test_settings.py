import pytest

from cachewarm.errors import ConfigError
from cachewarm.settings import ENV_VARS, Settings


def test_defaults():
    s = Settings.from_env({})
    assert s.table_name == "Restaurants"
    assert s.cache_ttl == 900
    assert s.cache_url == s.redis_url == s.broker_url
    assert s.dynamodb_endpoint is None


def test_cache_url_overrides_only_the_cache():
    s = Settings.from_env({"REDIS_URL": "redis://a:1/0", "CACHE_REDIS_URL": "rediss://b:2/1"})
    assert s.broker_url == "redis://a:1/0"
    assert s.cache_url == "rediss://b:2/1"


@pytest.mark.parametrize("hostname,url", [("cache.local", "redis://cache.local:6379/0"), ("h:7000", "redis://h:7000/0")])
def test_legacy_redis_hostname(hostname, url):
    assert Settings.from_env({"REDIS_HOSTNAME": hostname}).redis_url == url


def test_redis_url_wins_over_hostname():
    assert Settings.from_env({"REDIS_HOSTNAME": "x", "REDIS_URL": "unix:///tmp/r.sock"}).redis_url.startswith("unix")


def test_region_falls_back_to_aws_default_region():
    assert Settings.from_env({"AWS_DEFAULT_REGION": "eu-west-1"}).aws_region == "eu-west-1"
    assert Settings.from_env({"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "us-west-2"}).aws_region == "us-west-2"


@pytest.mark.parametrize(
    "var,value",
    [
        ("REDIS_URL", "foo://x"),
        ("REDIS_URL", "redis://"),
        ("REDIS_URL", "redis://h:notaport/0"),
        ("REDIS_URL", "redis://h:6379/abc"),
        ("CACHE_REDIS_URL", "http://h"),
        ("REDIS_HOSTNAME", "h:port"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "localhost:8000"),
        ("TABLE_NAME", "x"),
        ("TABLE_NAME", "bad name!"),
        ("CACHE_TTL_SECONDS", "ten"),
        ("CACHE_TTL_SECONDS", "0"),
        ("CACHE_TTL_JITTER", "2"),
        ("HOT_SAMPLE_RATE", "-1"),
        ("CACHE_KEY_PREFIX", "a:b*"),
    ],
)
def test_bad_values_name_the_variable(var, value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({var: value})
    assert info.value.variable == var
    assert str(info.value).startswith(f"{var}=")
    assert "\n" not in str(info.value)


def test_password_is_masked_in_errors():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"REDIS_URL": "redis://u:s3cret@h:bad/0"})
    assert "s3cret" not in str(info.value)


def test_every_field_has_a_variable():
    from dataclasses import fields

    assert {f.name for f in fields(Settings)} == set(ENV_VARS)
