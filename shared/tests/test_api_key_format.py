from tollgate_shared import api_key_format


def test_generated_keys_are_well_formed_and_distinct():
    keys = {api_key_format.generate_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith("tg_live_")
        assert len(key) == len("tg_live_") + 32 + 6
        assert api_key_format.is_well_formed(key)
    assert api_key_format.generate_key("test").startswith("tg_test_")


def test_any_single_character_change_breaks_the_checksum():
    key = api_key_format.generate_key()
    for position in range(len("tg_live_"), len(key)):
        replacement = "a" if key[position] != "a" else "b"
        mutated = key[:position] + replacement + key[position + 1 :]
        assert not api_key_format.is_well_formed(mutated), position


def test_garbage_is_refused():
    for garbage in (
        "",
        "tg_live_",
        "tg_prod_" + "a" * 38,
        "Bearer x",
        "tg_live_" + "!" * 38,
        "tg_live_" + "a" * 500,
    ):
        assert not api_key_format.is_well_formed(garbage)


def test_hash_and_display_parts():
    key = api_key_format.generate_key()
    assert api_key_format.hash_key(key) == api_key_format.hash_key(key)
    assert len(api_key_format.hash_key(key)) == 64
    assert api_key_format.display_prefix(key) == key[:12]
    assert api_key_format.last_four(key) == key[-4:]
