from cachewarm.masking import mask_text, mask_url


def test_mask_url_password():
    assert mask_url("rediss://default:tok3n@host:6379/0") == "rediss://default:***@host:6379/0"
    assert mask_url("redis://:tok3n@host:6379/0") == "redis://:***@host:6379/0"
    assert mask_url("redis://host:6379/0?password=tok3n") == "redis://host:6379/0?password=***"
    assert mask_url("redis://host:6379/0") == "redis://host:6379/0"


def test_mask_text():
    text = "cannot connect to rediss://u:secret@h:1/0 and redis://:other@x:2"
    masked = mask_text(text)
    assert "secret" not in masked and "other" not in masked
