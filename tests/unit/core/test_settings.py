import pytest

from cachewarm.errors import ConfigError
from cachewarm.settings import ENV_VARS, SPECS, Settings, setting


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


NUMERIC = [(name, spec) for name, spec in SPECS.items() if spec.kind is not str]


@pytest.mark.parametrize(("name", "spec"), NUMERIC, ids=[name for name, _ in NUMERIC])
def test_numeric_bounds_are_enforced_at_both_ends(name, spec):
    step = 1 if spec.kind is int else 0.001
    edges = [b for b in (spec.minimum, spec.maximum) if b is not None]
    assert edges, f"{spec.env} has no bound"
    for edge in edges:  # the bounds themselves are allowed
        assert getattr(Settings.from_env({spec.env: str(spec.kind(edge))}), name) == edge
    outside = ([spec.minimum - step] if spec.minimum is not None else []) + (
        [spec.maximum + step] if spec.maximum is not None else [])
    for value in [*outside, "nan", "x"]:
        with pytest.raises(ConfigError) as info:
            Settings.from_env({spec.env: str(value)})
        assert info.value.variable == spec.env and info.value.exit_code == 2


def test_bound_messages_are_unchanged():
    with pytest.raises(ConfigError, match=r"CACHE_TTL_SECONDS='0' is invalid: must be at least 1$"):
        Settings.from_env({"CACHE_TTL_SECONDS": "0"})
    with pytest.raises(ConfigError, match=r"REDIS_TIMEOUT_SECONDS='61' is invalid: must be between 0.01 and 60$"):
        Settings.from_env({"REDIS_TIMEOUT_SECONDS": "61"})
    with pytest.raises(ConfigError, match=r"WARM_CONCURRENCY='two' is invalid: expected an integer$"):
        Settings.from_env({"WARM_CONCURRENCY": "two"})


def test_every_default_passes_its_own_validation():
    # Reading each default back as text must give the default: no declared default lies outside its bounds.
    env = {spec.env: str(spec.default) for spec in SPECS.values() if spec.default is not None}
    assert Settings.from_env(env) == Settings()


def test_a_blank_variable_means_the_default():
    assert Settings.from_env({spec.env: "  " for spec in SPECS.values()}) == Settings()


def test_flower_basic_auth_is_never_shown():
    s = Settings.from_env({"FLOWER_BASIC_AUTH": "admin:s3cret,ops:other"})
    assert s.flower_logins == ["admin:s3cret", "ops:other"]
    assert "s3cret" not in repr(s)
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"FLOWER_BASIC_AUTH": "admin-s3cret"})
    assert "s3cret" not in str(info.value)


def test_redis_hostname_is_validated_only_when_it_is_used():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"REDIS_HOSTNAME": "h:port"})
    assert info.value.variable == "REDIS_HOSTNAME"
    s = Settings.from_env({"REDIS_HOSTNAME": "h:port", "REDIS_URL": "redis://r:1/0"})
    assert (s.redis_url, s.redis_hostname) == ("redis://r:1/0", "h:port")


@pytest.mark.parametrize(
    "var", ["WARM_HOT_SCHEDULE", "INVALIDATE_STALE_SCHEDULE", "BENCHMARK_SCHEDULE", "LOAD_SCHEDULE"]
)
def test_schedules_are_checked(var):
    field_name = {env: name for name, env in ENV_VARS.items()}[var]
    assert getattr(Settings.from_env({var: "*/5 * * * *"}), field_name) == "*/5 * * * *"
    with pytest.raises(ConfigError) as info:
        Settings.from_env({var: "every day"})
    assert info.value.variable == var


def test_bounds_on_a_text_setting_are_refused():
    with pytest.raises(TypeError, match="bounds need"):
        setting("text", "SOME_VAR", "help", minimum=1)
